//! The database connection: one `Db` over SQLite or PostgreSQL, with the schema.
//!
//! Both backends go through sqlx's `Any` driver with one SQL dialect (`$n` parameters,
//! `ON CONFLICT`, integers and text only); the few statements that differ are chosen by
//! `Backend`. SQLite runs in WAL mode with `synchronous=FULL`, so an acknowledged write
//! survives `kill -9` and power loss; PostgreSQL runs with its defaults (`fsync` on).

use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Arguments, Executor};
use std::time::Duration;

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One value bound to a statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    I64(i64),
    Text(String),
    Null,
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::I64(v)
    }
}
impl From<u64> for Arg {
    fn from(v: u64) -> Self {
        Arg::I64(v as i64)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::I64(i64::from(v))
    }
}
impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Arg::Null)
    }
}

/// Builds sqlx arguments from `Arg`s.
pub fn args(values: &[Arg]) -> AnyArguments<'static> {
    let mut a = AnyArguments::default();
    for v in values {
        // Binding an owned i64, String or Option never fails.
        let _ = match v {
            Arg::I64(i) => a.add(*i),
            Arg::Text(t) => a.add(t.clone()),
            Arg::Null => a.add(Option::<i64>::None),
        };
    }
    a
}

/// Connections in the pool. The writer uses one; the rest serve reads and the CLI. Small
/// on purpose: this machine has 2 cores, and SQLite has one writer anyway.
pub const POOL_CONNECTIONS_MAX: u32 = 8;
/// How long to wait for a connection before failing the request.
pub const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// PostgreSQL advisory lock key held while migrating ("stockpool" in ASCII, truncated).
pub const MIGRATION_LOCK_KEY: i64 = 0x73746f636b706f;
/// SQLite: page cache per connection, in KiB.
pub const SQLITE_CACHE_KIB: u32 = 64 * 1024;
/// SQLite: bytes of the database file read through a memory map.
pub const SQLITE_MMAP_BYTES: u64 = 256 * 1024 * 1024;
/// SQLite: how long a statement waits on a lock held by another connection.
pub const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// A connection pool and its backend.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

/// A database URL we cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("database URL {0:?} is neither sqlite:// nor postgres://")]
    UnknownScheme(String),
    #[error("cannot open the database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("cannot start the writer: {0}")]
    Runtime(String),
    #[error("cannot get the key that encrypts channel secrets: {0}")]
    Key(#[from] crate::secrets::KeyError),
}

/// What every SQLite connection of ours runs first (sqlx's pool and the writer's own):
/// WAL with `synchronous=FULL`, so an acknowledged write survives a crash; foreign keys;
/// a busy wait for the CLI writing beside a running server. Durability is unchanged by the
/// last two: a bigger page cache and memory-mapped reads spare read syscalls on a growing
/// database.
pub(crate) fn sqlite_pragmas() -> [String; 6] {
    [
        "PRAGMA journal_mode=WAL".into(),
        "PRAGMA synchronous=FULL".into(),
        "PRAGMA foreign_keys=ON".into(),
        format!("PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}"),
        format!("PRAGMA cache_size=-{SQLITE_CACHE_KIB}"),
        format!("PRAGMA mmap_size={SQLITE_MMAP_BYTES}"),
    ]
}

/// SQLite: the database file grows by this much at a time (`SQLITE_FCNTL_CHUNK_SIZE`).
/// A checkpoint that copies the whole log sets the file's size and fsyncs it; growing it
/// a page at a time made that fsync carry a size change every time, tens of milliseconds
/// on the writer's path (BENCHMARKS.md). In chunks, the size changes once per chunk.
/// SQLite reserves each chunk with `posix_fallocate` (the bundled library is built with
/// `HAVE_POSIX_FALLOCATE`, `.cargo/config.toml`); without it, it writes a byte into every
/// block of the chunk, 16 MiB to write back and sync each time.
pub const SQLITE_CHUNK_BYTES: i32 = 16 * 1024 * 1024;

/// Sets `SQLITE_CHUNK_BYTES` on a connection of the writer's or the checkpointer's: the
/// connections that grow the file. rusqlite has no safe call for this file control.
pub(crate) fn sqlite_grow_in_chunks(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let mut chunk: std::ffi::c_int = SQLITE_CHUNK_BYTES;
    // SAFETY: the handle is this open connection's, "main" is a NUL-terminated name, and
    // SQLITE_FCNTL_CHUNK_SIZE reads one int through the pointer, which outlives the call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_CHUNK_SIZE,
            (&mut chunk as *mut std::ffi::c_int).cast(),
        )
    };
    if rc == rusqlite::ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rc), Some("SQLITE_FCNTL_CHUNK_SIZE".into())))
    }
}

/// The file a `sqlite:` URL names; `None` for an in-memory database or another scheme.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

impl Db {
    /// Opens (creating a SQLite file if missing) and migrates.
    pub async fn connect(url: &str) -> Result<Db, ConnectError> {
        let db = Db::connect_with(url, POOL_CONNECTIONS_MAX).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Opens a pool of at most `connections` connections to an already migrated database
    /// (the writer's own, opened after `connect`).
    pub async fn connect_with(url: &str, connections: u32) -> Result<Db, ConnectError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(ConnectError::UnknownScheme(url.to_string()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in sqlite_pragmas() {
                            conn.execute(pragma.as_str()).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let db = Db { pool, backend };
        Ok(db)
    }

    /// Brings the schema to the newest version, each version in one transaction. On
    /// PostgreSQL every migrating process first takes one advisory lock inside its
    /// transaction, so several `serve` processes starting at once migrate one after the
    /// other instead of racing to create the same tables.
    async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        for (i, step) in MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            if self.backend == Backend::Postgres {
                tx.execute(format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})").as_str()).await?;
            }
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)").await?;
            let current: Option<i64> =
                sqlx::query_scalar("SELECT max(version) FROM schema_version").fetch_one(&mut *tx).await?;
            if version <= current.unwrap_or(0) {
                tx.commit().await?;
                continue;
            }
            for stmt in step.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
                let stmt = match self.backend {
                    Backend::Sqlite => stmt
                        .replace("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT")
                        .replace(" BYTEA ", " BLOB "),
                    Backend::Postgres => stmt.to_string(),
                };
                tx.execute(stmt.as_str()).await?;
            }
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)").bind(version).execute(&mut *tx).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Runs one statement outside any transaction.
    pub async fn fetch_all(&self, sql: &str, values: &[Arg]) -> Result<Vec<AnyRow>, sqlx::Error> {
        sqlx::query_with(sql, args(values)).fetch_all(&self.pool).await
    }
}

/// The schema, one entry per version. Every table is keyed by workspace first: nothing
/// crosses workspaces. Documents (items, rules, orders, cards, stores) are the core's own
/// types as JSON text; the columns beside them are what queries filter on.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE workspaces (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    seq BIGINT NOT NULL DEFAULT 0,
    next_id BIGINT NOT NULL DEFAULT 1,
    sync_enabled BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    created_at BIGINT NOT NULL
);
CREATE TABLE users (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, email)
);
CREATE TABLE warehouses (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    id BIGINT NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, code)
);
CREATE TABLE items (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    id BIGINT NOT NULL,
    sku TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, sku)
);
CREATE TABLE components (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    item_id BIGINT NOT NULL,
    position BIGINT NOT NULL,
    component_id BIGINT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (workspace_id, item_id, position)
);
CREATE TABLE stores (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    id BIGINT NOT NULL,
    code TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, code)
);
CREATE TABLE listings (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    id BIGINT NOT NULL,
    store_id BIGINT NOT NULL,
    external_id TEXT NOT NULL,
    store_sku TEXT NOT NULL,
    item_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    published_quantity BIGINT NOT NULL DEFAULT 0,
    published_doc TEXT,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, store_id, external_id)
);
CREATE TABLE rules (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    id BIGINT NOT NULL,
    version BIGINT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE TABLE rule_versions (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    id BIGINT NOT NULL,
    version BIGINT NOT NULL,
    doc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, id, version)
);
CREATE TABLE stock_levels (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    item_id BIGINT NOT NULL,
    warehouse_id BIGINT NOT NULL,
    on_hand BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, item_id, warehouse_id),
    CHECK (reserved >= 0 AND reserved <= on_hand)
);
CREATE TABLE movements (
    id BIGSERIAL PRIMARY KEY,
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    item_id BIGINT NOT NULL,
    warehouse_id BIGINT NOT NULL,
    on_hand_delta BIGINT NOT NULL,
    reserved_delta BIGINT NOT NULL,
    reason TEXT NOT NULL,
    reference TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX movements_by_level ON movements (workspace_id, item_id, warehouse_id);
CREATE TABLE orders (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    id BIGINT NOT NULL,
    store_id BIGINT NOT NULL,
    external_id TEXT NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, store_id, external_id)
);
CREATE INDEX orders_by_status ON orders (workspace_id, status);
CREATE TABLE cards (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    id BIGINT NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE TABLE outbox (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    listing_id BIGINT NOT NULL,
    quantity BIGINT NOT NULL,
    doc TEXT NOT NULL,
    queued_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, listing_id)
);
CREATE TABLE sync_records (
    id BIGSERIAL PRIMARY KEY,
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    listing_id BIGINT NOT NULL,
    store_id BIGINT NOT NULL,
    item_id BIGINT NOT NULL,
    old_quantity BIGINT,
    new_quantity BIGINT NOT NULL,
    reason TEXT NOT NULL,
    rule_id BIGINT,
    rule_version BIGINT,
    result TEXT NOT NULL,
    detail TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX sync_records_by_time ON sync_records (workspace_id, created_at)
",
    "
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    email TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires_at BIGINT NOT NULL
)
",
    // Nothing reads the ledger by stock level on a hot path (`stockpool check` sums it
    // whole), and keeping this index cost every commit a random page per level it moved:
    // about a fifth of what a SQLite commit logged under the order bench (BENCHMARKS.md).
    "
DROP INDEX movements_by_level
",
    // The deadline sweeper asks every second which workspaces have an order waiting for an
    // answer or a payment. Keyed by workspace first, that question scanned the whole index
    // (6-9 ms at 50,000 orders, and growing with every order); keyed by status first it
    // reads only the open orders' entries.
    "
DROP INDEX orders_by_status;
CREATE INDEX orders_by_status ON orders (status, workspace_id)
",
    // Delivery: an outbox row says which store pushes it, how many attempts it had, when
    // it may next be tried (backoff survives a restart and a change of node), and the
    // workspace `seq` of the commit that last wrote it (a dispatcher's claim names it).
    // A sync record gains the channel's HTTP status and the attempt number (SPEC
    // section 6); records page by id within a workspace.
    "
ALTER TABLE outbox ADD COLUMN store_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE outbox ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
UPDATE outbox SET store_id = COALESCE((SELECT l.store_id FROM listings l WHERE l.workspace_id = outbox.workspace_id AND l.id = outbox.listing_id), 0);
CREATE INDEX outbox_by_store ON outbox (workspace_id, store_id);
ALTER TABLE sync_records ADD COLUMN status_code BIGINT;
ALTER TABLE sync_records ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;
CREATE INDEX sync_records_by_id ON sync_records (workspace_id, id)
",
    // Inbox (SPEC sections 5a and 8): every webhook delivery whose signature checked out,
    // kept raw (`body`, bytes as they came; `headers`, a JSON array of [name, value]
    // pairs) before it is parsed, with what became of it: `outcome` is `pending` until
    // it is applied (`applied`), found to change nothing (`duplicate`, `ignored`) or
    // refused (`failed`, the sentence in `detail`); `order_id` the order it produced.
    // A channel's delivery id is unique per store; deliveries without one (NULL) never
    // collide, since both backends treat NULLs in a unique index as distinct.
    "
CREATE TABLE inbox (
    id BIGSERIAL PRIMARY KEY,
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id),
    store_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    delivery_id TEXT,
    headers TEXT NOT NULL,
    body BYTEA NOT NULL,
    received_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    order_id BIGINT,
    processed_at BIGINT
);
CREATE UNIQUE INDEX inbox_by_delivery ON inbox (workspace_id, store_id, delivery_id);
CREATE INDEX inbox_by_outcome ON inbox (outcome, id)
",
    // Several nodes: one row per workspace names the node that pushes its stores, the
    // lease's generation (moves at every change of holder; settles are fenced by it) and
    // when it expires (`lease.rs`).
    "
CREATE TABLE leases (
    workspace_id BIGINT PRIMARY KEY REFERENCES workspaces(id),
    holder TEXT NOT NULL,
    generation BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
)
",
];

#[cfg(test)]
mod tests {
    /// Bytes this thread has dirtied in files on a block device (Linux's per-thread I/O
    /// accounting); `None` where there is none.
    fn bytes_dirtied_by_this_thread() -> Option<u64> {
        let io = std::fs::read_to_string("/proc/thread-self/io").ok()?;
        io.lines().find_map(|l| l.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn the_database_file_grows_a_chunk_at_a_time_by_allocating_not_by_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grow.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB NOT NULL)").unwrap();
        super::sqlite_grow_in_chunks(&conn).unwrap();
        let before = bytes_dirtied_by_this_thread();
        conn.execute("INSERT INTO t (x) VALUES (zeroblob(200000))", []).unwrap();
        let after = bytes_dirtied_by_this_thread();

        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, super::SQLITE_CHUNK_BYTES as u64, "the file grows by one whole chunk");
        // SQLite built without HAVE_POSIX_FALLOCATE grows a file by writing a byte into
        // every block of the new part: 16 MiB of pages to write back and sync. With it,
        // only the row's pages (and the rollback journal's) are written.
        if let (Some(before), Some(after)) = (before, after) {
            let written = after - before;
            assert!(
                written < 4 * 1024 * 1024,
                "growing the file wrote {written} bytes: is the bundled SQLite built with \
                 HAVE_POSIX_FALLOCATE (.cargo/config.toml)?"
            );
        }
    }
}
