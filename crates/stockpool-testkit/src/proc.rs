//! Child-process plumbing shared by `PgCluster` and `ServerProcess`: running a command with
//! a deadline, switching to another system user when we are root, and the parent-death
//! `Watchdog` that cleans up after a test process that exits without running destructors.

use std::ffi::{CString, OsStr};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context as _};

/// Numeric identity of a system user that child processes switch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl RunAs {
    /// Makes `cmd` run as this user (std drops supplementary groups when switching from root).
    pub(crate) fn apply(self, cmd: &mut Command) {
        cmd.uid(self.uid).gid(self.gid);
    }
}

/// Whether this process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Looks up a system user by name through the C library (so NSS sources count too).
pub(crate) fn lookup_user(name: &str) -> anyhow::Result<RunAs> {
    /// The passwd entry's strings land in this buffer; 16 KiB is far above any real entry.
    const PASSWD_BUFFER_BYTES: usize = 16 * 1024;
    let c_name = CString::new(name).context("user name contains a NUL byte")?;
    let mut buffer = vec![0 as libc::c_char; PASSWD_BUFFER_BYTES];
    // SAFETY: an all-zero passwd is a valid value of this plain C struct.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live memory of the stated size for the whole call, and
    // getpwnam_r (unlike getpwnam) writes only into what we pass, so it is thread-safe.
    let rc = unsafe { libc::getpwnam_r(c_name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if rc != 0 {
        bail!("looking up system user {name:?}: {}", std::io::Error::from_raw_os_error(rc));
    }
    if found.is_null() {
        bail!("system user {name:?} does not exist");
    }
    Ok(RunAs { uid: entry.pw_uid, gid: entry.pw_gid })
}

/// Runs `cmd` to completion with its output captured, killing it if it outlives `timeout`.
///
/// Fails, with `what` and the command's output in the message, when the command cannot be
/// started, times out, or exits unsuccessfully.
pub(crate) fn run_bounded(cmd: &mut Command, timeout: Duration, what: &str) -> anyhow::Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().with_context(|| format!("{what}: starting {:?}", cmd.get_program()))?;
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    // The waiting thread owns the child so that both pipes are drained while we wait;
    // reading them on this thread after a timer could deadlock on a full pipe.
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let output = match receiver.recv_timeout(timeout) {
        Ok(result) => result.with_context(|| format!("{what}: waiting for {:?}", cmd.get_program()))?,
        Err(_) => {
            kill_pid(pid);
            bail!("{what}: {:?} did not finish within {timeout:?} and was killed", cmd.get_program());
        }
    };
    if !output.status.success() {
        bail!(
            "{what}: {:?} failed with {}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            cmd.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end(),
            String::from_utf8_lossy(&output.stdout).trim_end(),
        );
    }
    Ok(output)
}

/// Sends SIGKILL to `pid`, ignoring failure (the process may already be gone).
fn kill_pid(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill has no memory-safety preconditions; a stale pid at worst fails with ESRCH.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// A `/bin/sh` process that runs a cleanup script when the test process dies.
///
/// The watchdog blocks reading a pipe whose only write end this process holds (std opens
/// pipes close-on-exec, so no other child inherits it). When this process exits for any
/// reason, even SIGKILL or abort, the kernel closes the write end, the read returns, and
/// the script cleans up. It runs in its own process group and ignores SIGINT and SIGHUP so
/// that Ctrl-C on `cargo test` does not take it down before it has done its work.
///
/// Dropping a `Watchdog` disarms it: the owner has cleaned up itself, so the shell is
/// killed without running the script.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    /// Held only so that it closes when this process exits; never written.
    _pipe: ChildStdin,
}

impl Watchdog {
    /// Starts a watchdog that runs `script` with `args` as `$1`, `$2`, ... once the test
    /// process is gone. `run_as` picks the user the script runs as.
    pub(crate) fn spawn(script: &str, args: &[&OsStr], run_as: Option<RunAs>, cwd: &Path) -> anyhow::Result<Self> {
        let full_script = format!("trap '' INT HUP\nread -r _ignored\n{script}\n");
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(full_script).arg("stockpool-testkit-watchdog").args(args);
        cmd.current_dir(cwd).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
        if let Some(run_as) = run_as {
            run_as.apply(&mut cmd);
        }
        let mut child = cmd.spawn().context("starting the cleanup watchdog (/bin/sh)")?;
        let pipe = child.stdin.take().context("the watchdog's stdin pipe is missing")?;
        Ok(Self { child, _pipe: pipe })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // SIGKILL first, so the script never runs; closing the pipe afterwards is harmless.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines_max` lines of the file at `path`, or a note saying why it is unreadable.
pub(crate) fn file_tail(path: &Path, lines_max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(lines_max)..].join("\n")
        }
        Err(error) => format!("(could not read {}: {error})", path.display()),
    }
}
