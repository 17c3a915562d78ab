//! The raw database yardsticks `stockpool bench` compares the order path with: how many
//! single-row durable commits one connection makes per second on the same disk or
//! server. Here because only this crate knows SQL.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What stopped a yardstick.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {0} for the raw measurement: {1}")]
    Open(String, #[source] sqlx::Error),
    #[error("the raw single-row INSERT failed: {0}")]
    Insert(#[source] sqlx::Error),
    #[error("the raw measurement's table could not be set up or dropped: {0}")]
    Table(#[from] sqlx::Error),
}

/// Single-row durable INSERTs on one connection, one commit each, for `duration`: a
/// file beside the database (same disk, WAL, synchronous=FULL), removed afterwards.
pub async fn raw_sqlite(db: &Path, duration: Duration) -> Result<f64, Error> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sqlx::Connection;
    let mut raw = db.as_os_str().to_owned();
    raw.push("-raw");
    let raw = PathBuf::from(raw);
    remove_sqlite_files(&raw);
    let opts = SqliteConnectOptions::new()
        .filename(&raw)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut conn =
        sqlx::SqliteConnection::connect_with(&opts).await.map_err(|e| Error::Open(raw.display().to_string(), e))?;
    sqlx::query("CREATE TABLE raw_orders (id INTEGER PRIMARY KEY, channel TEXT, ext_id TEXT, sku TEXT, qty INTEGER, created_at INTEGER)")
        .execute(&mut conn)
        .await?;
    let start = Instant::now();
    let mut n: u64 = 0;
    let mut failed = None;
    while start.elapsed() < duration {
        let done =
            sqlx::query("INSERT INTO raw_orders (channel, ext_id, sku, qty, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
                .bind("shopify")
                .bind(format!("raw-{n}"))
                .bind("SKU00001")
                .bind(1_i64)
                .bind(n as i64)
                .execute(&mut conn)
                .await;
        if let Err(e) = done {
            failed = Some(e);
            break;
        }
        n += 1;
    }
    let rate = per_second(n, start, failed);
    let _ = conn.close().await;
    remove_sqlite_files(&raw);
    rate
}

fn remove_sqlite_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Commits per second, or the error that stopped the loop.
fn per_second(n: u64, start: Instant, failed: Option<sqlx::Error>) -> Result<f64, Error> {
    match failed {
        Some(e) => Err(Error::Insert(e)),
        None => Ok(n as f64 / start.elapsed().as_secs_f64()),
    }
}

/// The same on PostgreSQL: a table in the database under test, dropped afterwards;
/// `synchronous_commit` is forced on so every commit waits for its WAL flush.
pub async fn raw_postgres(url: &str, run_id: &str, duration: Duration) -> Result<f64, Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(|e| Error::Open("PostgreSQL".into(), e))?;
    let table = format!("stockpool_bench_raw_{run_id}");
    sqlx::query("SET synchronous_commit = on").execute(&mut conn).await?;
    sqlx::query(&format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, channel TEXT, ext_id TEXT, sku TEXT, qty BIGINT, created_at BIGINT)"
    ))
    .execute(&mut conn)
    .await?;
    let insert = format!("INSERT INTO {table} (channel, ext_id, sku, qty, created_at) VALUES ($1, $2, $3, $4, $5)");
    let start = Instant::now();
    let mut n: u64 = 0;
    let mut failed = None;
    while start.elapsed() < duration {
        let done = sqlx::query(&insert)
            .bind("shopify")
            .bind(format!("raw-{n}"))
            .bind("SKU00001")
            .bind(1_i64)
            .bind(n as i64)
            .execute(&mut conn)
            .await;
        if let Err(e) = done {
            failed = Some(e);
            break;
        }
        n += 1;
    }
    let rate = per_second(n, start, failed);
    let dropped = sqlx::query(&format!("DROP TABLE {table}")).execute(&mut conn).await;
    let _ = conn.close().await;
    let rate = rate?;
    dropped?;
    Ok(rate)
}

/// Makes an empty PostgreSQL database `name` (dropping one left by an earlier run) in the
/// cluster `url` points at, for a yardstick that needs a database of its own (pgbench).
/// `name` is the caller's constant, never input.
pub async fn create_scratch_database(url: &str, name: &str) -> Result<(), Error> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(url).await.map_err(|e| Error::Open("PostgreSQL".into(), e))?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut admin).await?;
    let created = sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await;
    let _ = admin.close().await;
    created?;
    Ok(())
}

/// Drops the database `create_scratch_database` made.
pub async fn drop_scratch_database(url: &str, name: &str) -> Result<(), Error> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(url).await.map_err(|e| Error::Open("PostgreSQL".into(), e))?;
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut admin).await;
    let _ = admin.close().await;
    dropped?;
    Ok(())
}
