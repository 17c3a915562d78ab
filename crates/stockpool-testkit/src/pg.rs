//! `PgCluster`: a throwaway PostgreSQL cluster for a test suite, with its data directory in
//! a fresh temporary directory and its server on a fresh port, stopped and removed when the
//! cluster is dropped or, for the shared cluster, when the test process exits.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::proc::{file_tail, is_root, lookup_user, run_bounded, RunAs, Watchdog};

/// The major version the project targets; its binaries are preferred wherever found.
const PG_VERSION_MAJOR: &str = "15";

/// Upper bound on `initdb`: it normally takes a second or two, but a loaded CI machine can
/// be much slower, and a stuck initdb must still fail the test.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);

/// What `pg_ctl start -w -t` waits for the server to accept connections.
const START_WAIT_SECS: u64 = 60;

/// Upper bound on the `pg_ctl start` process itself: its own wait plus slack.
const START_TIMEOUT: Duration = Duration::from_secs(START_WAIT_SECS + 30);

/// What `pg_ctl stop -t` waits for the server to go away; immediate shutdown takes far less.
const STOP_WAIT_SECS: u64 = 30;

/// Upper bound on the `pg_ctl stop` process itself: its own wait plus slack.
const STOP_TIMEOUT: Duration = Duration::from_secs(STOP_WAIT_SECS + 10);

/// Upper bound on client commands (`createdb`, `psql`) against a running cluster.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How many fresh ports `start` tries when another process takes the chosen port between
/// our probe and the server's bind.
const START_ATTEMPTS_MAX: u32 = 3;

/// Connections the cluster accepts. Many tests run in parallel in one binary, each with a
/// connection pool and sometimes several `serve` processes, so the default 100 is too few.
const MAX_CONNECTIONS: u32 = 300;

/// Lines of the server log quoted in errors.
const LOG_TAIL_LINES: usize = 40;

/// A running, throwaway PostgreSQL cluster listening on 127.0.0.1 only.
///
/// The superuser is `postgres`, authentication is `trust`, the encoding is UTF8 with the C
/// locale, and `fsync` is on because durability after `kill -9` is tested. When this process
/// is root, initdb and the server run as the `postgres` system user, since PostgreSQL refuses
/// to run as root.
///
/// Cleanup: dropping the cluster stops it (`pg_ctl stop -m immediate`) and removes its
/// directory. A `Watchdog` started with the cluster does the same if this process dies
/// without running destructors (a crash, SIGKILL, or simply exiting with the `shared`
/// cluster still in its static). Every cluster gets a fresh directory and port, so a cluster
/// orphaned by anything worse cannot disturb the next run.
#[derive(Debug)]
pub struct PgCluster {
    port: u16,
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    run_as: Option<RunAs>,
    /// `None` once the cluster has been stopped and its directory removed.
    dir: Option<tempfile::TempDir>,
    watchdog: Option<Watchdog>,
    /// Makes the names from `fresh_database_url` unique within this process.
    databases_created: AtomicU64,
}

impl PgCluster {
    /// Initialises and starts a new cluster in a fresh temporary directory on a free port.
    pub fn start() -> anyhow::Result<Self> {
        let bin_dir = find_bin_dir().context("finding the PostgreSQL server binaries")?;
        let run_as = if is_root() {
            let user = lookup_user("postgres").context(
                "running as root, so PostgreSQL must run as the `postgres` system user, which was not found \
                 (installing the postgresql-15 package creates it)",
            )?;
            Some(user)
        } else {
            None
        };

        let base = temp_base(run_as);
        let dir = tempfile::Builder::new()
            .prefix("stockpool-pg-")
            .tempdir_in(&base)
            .with_context(|| format!("creating the cluster's temporary directory in {}", base.display()))?;
        let data_dir = dir.path().join("data");
        let socket_dir = dir.path().join("sock");
        let log_path = dir.path().join("postgres.log");
        std::fs::create_dir(&socket_dir)
            .with_context(|| format!("creating the socket directory {}", socket_dir.display()))?;
        if let Some(user) = run_as {
            for path in [dir.path(), socket_dir.as_path()] {
                std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                    .with_context(|| format!("handing {} to the postgres user", path.display()))?;
            }
        }

        // Armed before anything starts, so a crash from here on still cleans up.
        let pg_ctl = bin_dir.join("pg_ctl");
        let watchdog = Watchdog::spawn(
            r#""$1" stop -D "$2" -m immediate -t 30 >/dev/null 2>&1; rm -rf "$3""#,
            &[pg_ctl.as_os_str(), data_dir.as_os_str(), dir.path().as_os_str()],
            run_as,
            dir.path(),
        )
        .context("arming the cluster's cleanup watchdog")?;

        let mut cluster = Self {
            port: 0,
            bin_dir,
            data_dir,
            socket_dir,
            log_path,
            run_as,
            dir: Some(dir),
            watchdog: Some(watchdog),
            databases_created: AtomicU64::new(0),
        };
        cluster.init().context("initialising the cluster with initdb")?;
        cluster.start_server().context("starting the PostgreSQL server")?;
        Ok(cluster)
    }

    /// The cluster shared by every test in this process, started on first use.
    ///
    /// It is never dropped: its watchdog stops it and removes its directory when the test
    /// process exits. Panics, with the whole error chain, when the cluster cannot start.
    pub fn shared() -> &'static PgCluster {
        match Self::try_shared() {
            Ok(cluster) => cluster,
            Err(error) => panic!("{error:#}"),
        }
    }

    /// Like `shared`, but returns the start-up error instead of panicking.
    pub fn try_shared() -> anyhow::Result<&'static PgCluster> {
        static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|error| format!("{error:#}")))
            .as_ref()
            .map_err(|error| anyhow::anyhow!("starting the shared PostgreSQL test cluster: {error}"))
    }

    /// The TCP port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL for database `db`: `postgres://postgres@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server's log file, useful when a test needs to see what PostgreSQL said.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Creates database `name` with `createdb`.
    pub fn create_database(&self, name: &str) -> anyhow::Result<()> {
        let mut cmd = self.client_command("createdb");
        cmd.arg(name);
        run_bounded(&mut cmd, CLIENT_TIMEOUT, &format!("creating database {name:?}"))?;
        Ok(())
    }

    /// Creates a database with a name unique in this cluster and returns its URL.
    ///
    /// The name is `prefix` (lowercased, with anything but letters, digits and `_` replaced
    /// by `_`) followed by this process id and a counter.
    pub fn fresh_database_url(&self, prefix: &str) -> anyhow::Result<String> {
        let clean: String = prefix
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' })
            .take(32)
            .collect();
        let number = self.databases_created.fetch_add(1, Ordering::Relaxed);
        let name = format!("{clean}_{}_{number}", std::process::id());
        self.create_database(&name)?;
        Ok(self.url(&name))
    }

    /// Runs `sql` in database `db` with `psql` and returns its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let mut cmd = self.client_command("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql]);
        let output = run_bounded(&mut cmd, CLIENT_TIMEOUT, &format!("running {sql:?} in database {db:?}"))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim_end().to_owned())
    }

    /// Stops the server and removes the cluster's directory, reporting any failure.
    ///
    /// Dropping the cluster does the same but can only print its errors.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn init(&self) -> anyhow::Result<()> {
        let mut cmd = self.server_command("initdb");
        cmd.arg("-D").arg(&self.data_dir);
        // --no-sync only skips flushing initdb's own files; the running server keeps
        // fsync=on, which is what the durability tests depend on.
        cmd.args(["--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"]);
        run_bounded(&mut cmd, INITDB_TIMEOUT, "running initdb")?;

        let conf_path = self.data_dir.join("postgresql.conf");
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf_path)
            .with_context(|| format!("opening {} to append settings", conf_path.display()))?;
        // The port is passed on the command line instead, so a retry can pick a new one.
        let settings = format!(
            "\n# Added by stockpool-testkit.\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = on\nsynchronous_commit = on\nmax_connections = {MAX_CONNECTIONS}\n",
            self.socket_dir.display()
        );
        conf.write_all(settings.as_bytes()).with_context(|| format!("appending settings to {}", conf_path.display()))
    }

    fn start_server(&mut self) -> anyhow::Result<()> {
        let mut attempt = 1;
        loop {
            let port = crate::free_port()?;
            let mut cmd = self.server_command("pg_ctl");
            cmd.arg("start").arg("-D").arg(&self.data_dir).arg("-l").arg(&self.log_path);
            cmd.args(["-w", "-t", &START_WAIT_SECS.to_string(), "-o", &format!("-p {port}")]);
            match run_bounded(&mut cmd, START_TIMEOUT, &format!("pg_ctl start on port {port}")) {
                Ok(_) => {
                    self.port = port;
                    return Ok(());
                }
                Err(error) => {
                    let log = file_tail(&self.log_path, LOG_TAIL_LINES);
                    let port_taken = log.contains("could not bind") || log.contains("already in use");
                    if port_taken && attempt < START_ATTEMPTS_MAX {
                        attempt += 1;
                        continue;
                    }
                    return Err(error.context(format!(
                        "the server did not start (attempt {attempt}); last lines of {}:\n{log}",
                        self.log_path.display()
                    )));
                }
            }
        }
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        let Some(dir) = self.dir.take() else { return Ok(()) };
        let mut cmd = self.server_command("pg_ctl");
        cmd.arg("stop").arg("-D").arg(&self.data_dir);
        cmd.args(["-m", "immediate", "-t", &STOP_WAIT_SECS.to_string()]);
        let stopped = run_bounded(&mut cmd, STOP_TIMEOUT, &format!("stopping the cluster on port {}", self.port));
        let dir_path = dir.path().to_owned();
        let removed = dir.close().with_context(|| format!("removing the cluster directory {}", dir_path.display()));
        // Both steps are done, or have failed loudly; the watchdog has nothing left to do.
        self.watchdog = None;
        stopped?;
        removed
    }

    /// A command for a server-side binary, run as the postgres user when we are root.
    fn server_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        if let Some(run_as) = self.run_as {
            run_as.apply(&mut cmd);
        }
        // The postgres user may not be allowed into the test's working directory.
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir.path());
        }
        cmd
    }

    /// A command for a client binary connecting over TCP as the `postgres` superuser.
    fn client_command(&self, program: &str) -> Command {
        let bundled = self.bin_dir.join(program);
        let mut cmd = Command::new(if bundled.is_file() { bundled.into_os_string() } else { program.into() });
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"]);
        // Bounded connection attempts; the password prompt can never block (trust auth).
        cmd.env("PGCONNECT_TIMEOUT", "10").arg("-w");
        cmd
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            eprintln!("stockpool-testkit: cleaning up the PostgreSQL test cluster failed: {error:#}");
        }
    }
}

/// Finds a directory holding `initdb`, `pg_ctl` and `postgres`.
///
/// Looks, in order, at `$STOCKPOOL_PG_BIN_DIR`, the PostgreSQL 15 directory Debian uses,
/// `pg_config --bindir`, every `PATH` entry, and other Debian-installed versions, newest
/// first.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("STOCKPOOL_PG_BIN_DIR") {
        candidates.push(dir.into());
    }
    candidates.push(PathBuf::from(format!("/usr/lib/postgresql/{PG_VERSION_MAJOR}/bin")));
    if let Ok(output) = run_bounded(Command::new("pg_config").arg("--bindir"), Duration::from_secs(10), "pg_config") {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        candidates.extend(versions.into_iter().map(|(_, dir)| dir));
    }
    let has_all = |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|name| dir.join(name).is_file());
    if let Some(dir) = candidates.iter().find(|dir| has_all(dir)) {
        return Ok(dir.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|dir| dir.display().to_string()).collect();
    bail!(
        "no directory holds initdb, pg_ctl and postgres; looked in: {}. Install PostgreSQL {PG_VERSION_MAJOR} \
         (./scripts/test does so with apt-get) or set STOCKPOOL_PG_BIN_DIR",
        looked.join(", ")
    )
}

/// The directory to create the cluster's temporary directory in.
///
/// When the server runs as another user, every ancestor must be searchable by it; a
/// `TMPDIR` under a private home directory is not, so `/tmp` is used instead.
fn temp_base(run_as: Option<RunAs>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let base = std::env::temp_dir();
    if run_as.is_none() {
        return base;
    }
    let searchable_by_others = base
        .ancestors()
        .all(|dir| std::fs::metadata(dir).map(|meta| meta.permissions().mode() & 0o001 != 0).unwrap_or(false));
    if searchable_by_others {
        base
    } else {
        PathBuf::from("/tmp")
    }
}
