//! `ServerProcess`: the real `stockpool serve` binary as a child process on a free port,
//! with its output in a log file and readiness judged by `GET /readyz`, so end-to-end tests
//! can talk to it over HTTP, `kill -9` it and start it again.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::proc::{file_tail, Watchdog};

/// Default bound on waiting for `/readyz`: migrations on a fresh database plus a cold start
/// of a debug build on a loaded CI machine fit well within it.
const READY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// Bound on one readiness probe (connect, write, read), so a wedged server cannot stall it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// How many fresh ports the first start tries when another process takes the chosen port
/// between our probe and the server's bind.
const START_ATTEMPTS_MAX: u32 = 3;

/// Lines of the server log quoted in errors and printed when a test panics.
const LOG_TAIL_LINES: usize = 60;

/// How to start a `ServerProcess`; made by `ServerProcess::builder`.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    bin: PathBuf,
    database_url: String,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    ready_timeout: Duration,
}

impl ServerBuilder {
    /// Appends an argument after `serve --database URL --listen ADDR`.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Sets an environment variable for the server (kept across `restart`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// How long to wait for `GET /readyz` to answer 200; 30 seconds unless set.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Spawns the server and waits until it is ready.
    pub fn start(self) -> anyhow::Result<ServerProcess> {
        let log_dir = crate::temp_dir().context("creating the server's log directory")?;
        let log_path = log_dir.path().join("server.log");
        let mut server = ServerProcess {
            config: self,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_dir,
            log_path,
            running: None,
        };
        let mut attempt = 1;
        loop {
            let port = crate::free_port()?;
            server.addr = SocketAddr::from(([127, 0, 0, 1], port));
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(error) => {
                    let port_taken = file_tail(&server.log_path, LOG_TAIL_LINES).contains("in use");
                    if port_taken && attempt < START_ATTEMPTS_MAX {
                        attempt += 1;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }
}

/// The running child and the watchdog that kills it if the test process dies first.
#[derive(Debug)]
struct Running {
    child: Child,
    _watchdog: Watchdog,
}

/// A `stockpool serve` child process listening on 127.0.0.1.
///
/// stdout and stderr both go to one log file, kept across restarts; errors quote its tail,
/// and so does the process's `Drop` when the test is panicking, so a failed test shows what
/// the server said. Dropping kills the server with SIGKILL. A watchdog kills it too if the
/// test process dies without running destructors.
#[derive(Debug)]
pub struct ServerProcess {
    config: ServerBuilder,
    addr: SocketAddr,
    /// Holds the log file; removed on drop.
    log_dir: tempfile::TempDir,
    log_path: PathBuf,
    running: Option<Running>,
}

impl ServerProcess {
    /// Starts configuring a server from the binary at `bin` against `database_url`.
    ///
    /// Integration tests of the `stockpool` package pass `env!("CARGO_BIN_EXE_stockpool")`.
    pub fn builder(bin: impl Into<PathBuf>, database_url: impl Into<String>) -> ServerBuilder {
        ServerBuilder {
            bin: bin.into(),
            database_url: database_url.into(),
            args: Vec::new(),
            envs: Vec::new(),
            ready_timeout: READY_TIMEOUT_DEFAULT,
        }
    }

    /// Starts the binary at `bin` against `database_url` with default settings.
    pub fn start(bin: impl Into<PathBuf>, database_url: impl Into<String>) -> anyhow::Result<Self> {
        Self::builder(bin, database_url).start()
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash; stable across `restart`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The database URL the server was started with.
    pub fn database_url(&self) -> &str {
        &self.config.database_url
    }

    /// The file holding the server's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines_max` lines of the server's log.
    pub fn log_tail(&self, lines_max: usize) -> String {
        file_tail(&self.log_path, lines_max)
    }

    /// The server's process id, or `None` after `kill9`.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|running| running.child.id())
    }

    /// Kills the server with SIGKILL (`Child::kill` on Unix) and reaps it; no-op when it is
    /// not running. Nothing the server has not made durable survives.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        let Some(mut running) = self.running.take() else { return Ok(()) };
        running.child.kill().with_context(|| format!("sending SIGKILL to the server at {}", self.addr))?;
        running.child.wait().with_context(|| format!("reaping the killed server at {}", self.addr))?;
        Ok(())
    }

    /// Kills the server if it is running, then starts it again on the same address with the
    /// same arguments and waits until it is ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9()?;
        self.spawn_and_wait()
    }

    /// Spawns the binary on `self.addr` and waits for readiness; on failure the child is
    /// killed and the error quotes the log.
    fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let config = &self.config;
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening the server log {}", self.log_path.display()))?;
        writeln!(log, "--- stockpool-testkit: starting {} on {} ---", config.bin.display(), self.addr)
            .with_context(|| format!("writing to the server log {}", self.log_path.display()))?;
        let stdout = log.try_clone().context("duplicating the server log handle")?;

        let mut cmd = Command::new(&config.bin);
        cmd.arg("serve").arg("--database").arg(&config.database_url).arg("--listen").arg(self.addr.to_string());
        cmd.args(&config.args).envs(config.envs.iter().map(|(key, value)| (key, value)));
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(log);
        let child = cmd.spawn().with_context(|| format!("spawning the server binary {}", config.bin.display()))?;
        let pid = child.id().to_string();
        let watchdog = Watchdog::spawn(r#"kill -9 "$1" 2>/dev/null"#, &[OsStr::new(&pid)], None, self.log_dir.path());
        self.running = Some(Running {
            child,
            _watchdog: match watchdog {
                Ok(watchdog) => watchdog,
                Err(error) => {
                    self.kill9()?;
                    return Err(error);
                }
            },
        });

        if let Err(error) = self.wait_ready() {
            let _ = self.kill9();
            return Err(error.context(format!(
                "starting {} on {}; last lines of {}:\n{}",
                self.config.bin.display(),
                self.addr,
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            )));
        }
        Ok(())
    }

    /// Polls `GET /readyz` until it answers 200, the child exits, or the timeout passes.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let timeout = self.config.ready_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            let running = self.running.as_mut().context("the server is not running")?;
            if let Some(status) = running.child.try_wait().context("checking whether the server exited")? {
                bail!("the server exited with {status} before it was ready");
            }
            let last_outcome = match crate::http_get(self.addr, "/readyz", PROBE_TIMEOUT) {
                Ok(response) if response.status == 200 => return Ok(()),
                Ok(response) => format!("GET /readyz answered {}", response.status),
                Err(error) => format!("{error:#}"),
            };
            if Instant::now() >= deadline {
                bail!("the server was not ready within {timeout:?}; last probe: {last_outcome}");
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- stockpool-testkit: last lines of the server log {} ---\n{}",
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        if let Err(error) = self.kill9() {
            eprintln!("stockpool-testkit: stopping the server failed: {error:#}");
        }
    }
}
