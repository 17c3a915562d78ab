//! The writer: one per process, on its own thread (`Storage::open`), committing a batch of
//! commands per transaction.
//!
//! SQLite has one writer, and a durable commit costs about one fsync; so commands queue
//! here and the writer takes up to `BATCH_COMMANDS_MAX` at a time, decides each on the
//! cached workspace, then writes the batch's catalog SQL in order and its hot rows
//! coalesced (`Coalesced`: one net change per stock level, the last version of each
//! document or pending push) in one transaction, commits once, and only then replies to each caller
//! (group commit). Every stock level is written with the guard `0 <= reserved <= on_hand`
//! in the statement itself, so a decision made on stale data fails instead of landing.
//!
//! Commit, then publish (`Locked`): the writer holds the write lock of every workspace in
//! the batch from before it decides until the commit has returned, so no reader and no
//! dispatcher sees a decision before it is durable; releasing the locks publishes the
//! batch, and the `committed` watch then wakes the dispatchers. A batch that fails at any
//! step poisons the workspaces it touched before it lets go of them: they leave the cache,
//! and whoever reads next loads the last commit from the database.
//!
//! Two ways to the database (`Conn`):
//! - SQLite: a synchronous connection (rusqlite, on the same SQLite library as sqlx) owned
//!   by the writer thread, `BEGIN IMMEDIATE`, one cached prepared statement per row kind:
//!   no round trip to another thread per statement. A workspace that must be (re)loaded
//!   is read through the sqlx pool while this connection holds the write lock, so it sees
//!   exactly the last commit.
//!   WAL checkpoints run on a thread of their own (`checkpoint.rs`), not in a commit; when
//!   the log grows long the writer finishes one between two batches.
//! - PostgreSQL: sqlx; the batch's workspace rows are locked in id order first
//!   (`FOR UPDATE`), a workspace another process changed is reloaded under that lock, and
//!   the hot rows go in one statement per table, each column one array parameter
//!   (`unnest`): a fixed statement text, prepared once.
//!
//! If a batch fails, each command is retried alone, so one bad command fails only itself.

use crate::db::{args, Arg, Backend, Db};
use crate::exec::{execute, Reply, Row as HotRow, Stmt};
use crate::lease::{Fence, LeaseChange};
use crate::workspace::Ws;
use crate::{Inner, Job, StoreError, WsHandle};
use rusqlite::OptionalExtension;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedRwLockWriteGuard};

/// Commands committed together at most. Bounds a transaction's size and the latency the
/// last command in a batch waits.
pub const BATCH_COMMANDS_MAX: usize = 512;

/// Prepared statements the SQLite connection keeps: every statement the writer runs
/// (the hot rows' six, the catalog's, the workspace's `seq`) fits.
pub const SQLITE_STATEMENT_CACHE: usize = 128;

/// How the writer reaches the database.
pub(crate) enum Conn {
    /// PostgreSQL through sqlx.
    Postgres(Db),
    /// SQLite: the writer's own synchronous connection for writes, and `db` for loads.
    Sqlite { lite: rusqlite::Connection, db: Db, checkpoints: crate::checkpoint::Checkpointer },
}

impl Conn {
    /// The writer's connection to `url` (already migrated); `db` is its sqlx pool.
    pub(crate) fn open(url: &str, db: Db) -> Result<Conn, crate::db::ConnectError> {
        if db.backend == Backend::Postgres {
            return Ok(Conn::Postgres(db));
        }
        let path = crate::db::sqlite_file(url).ok_or_else(|| {
            crate::db::ConnectError::Runtime(
                "an in-memory SQLite database cannot be shared by the server's connections; name a file".into(),
            )
        })?;
        let lite = rusqlite::Connection::open(&path)
            .map_err(|e| crate::db::ConnectError::Runtime(format!("cannot open {}: {e}", path.display())))?;
        // Ours as on every connection, and no checkpoint inside a commit (`checkpoint.rs`).
        let pragmas = format!("{}; PRAGMA wal_autocheckpoint=0;", crate::db::sqlite_pragmas().join("; "));
        lite.execute_batch(&pragmas)
            .and_then(|()| crate::db::sqlite_grow_in_chunks(&lite))
            .map_err(|e| crate::db::ConnectError::Runtime(format!("cannot set up {}: {e}", path.display())))?;
        lite.set_prepared_statement_cache_capacity(SQLITE_STATEMENT_CACHE);
        let checkpoints = crate::checkpoint::Checkpointer::start(&path)
            .map_err(|e| crate::db::ConnectError::Runtime(format!("cannot checkpoint {}: {e}", path.display())))?;
        Ok(Conn::Sqlite { lite, db, checkpoints })
    }
}

pub(crate) async fn run(inner: Arc<Inner>, mut conn: Conn, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < BATCH_COMMANDS_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // Lease changes first, each a statement of its own, then the batch: a settle
        // fenced by a lease renewed in this same drain sees the renewal.
        let mut commands = Vec::with_capacity(jobs.len());
        for job in jobs {
            match job {
                Job::Lease { change, reply } => {
                    let _ = reply.send(change_lease(&mut conn, &change).await);
                }
                Job::Command { ws, cmd, reply } => commands.push((ws, cmd, reply)),
            }
        }
        if commands.is_empty() {
            continue;
        }
        let work: Vec<(i64, &crate::Command)> = commands.iter().map(|(ws, cmd, _)| (*ws, cmd)).collect();
        let results = match batch(&inner, &mut conn, &work).await {
            Ok(results) => results,
            Err(e) if work.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, commands = work.len(), "batch failed; retrying each command alone");
                let mut results = Vec::with_capacity(work.len());
                for w in &work {
                    results.push(batch(&inner, &mut conn, std::slice::from_ref(w)).await.and_then(|mut r| r.remove(0)));
                }
                results
            }
        };
        drop(work);
        for ((_, _, reply), result) in commands.into_iter().zip(results) {
            if result.is_err() {
                inner.metrics.command_errors.fetch_add(1, Ordering::Relaxed);
            }
            let _ = reply.send(result);
        }
    }
}

/// Runs one lease change (`lease.rs`) on the writer's connection, outside any batch.
async fn change_lease(conn: &mut Conn, change: &LeaseChange) -> Result<Option<crate::Lease>, StoreError> {
    let values = change.args();
    let generation: Option<i64> = match conn {
        Conn::Postgres(db) => sqlx::query_with(change.sql(), args(&values))
            .fetch_optional(&db.pool)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?,
        Conn::Sqlite { lite, .. } => {
            let mut st = lite.prepare_cached(change.sql())?;
            bind_numbered(&mut st, change.sql(), &values)?;
            let mut rows = st.raw_query();
            match rows.next()? {
                Some(row) => Some(row.get(0)?),
                None => None,
            }
        }
    };
    Ok(change.outcome(generation))
}

type Results = Vec<Result<Reply, StoreError>>;

/// One transaction for `work`. `Err` means nothing was committed.
async fn batch(inner: &Inner, conn: &mut Conn, work: &[(i64, &crate::Command)]) -> Result<Results, StoreError> {
    let out = match conn {
        Conn::Postgres(db) => batch_postgres(inner, db, work).await,
        Conn::Sqlite { lite, db, checkpoints } => {
            let out = batch_sqlite(inner, lite, db, work).await;
            if checkpoints.writer_should_checkpoint() {
                crate::checkpoint::by_writer(lite);
            }
            out
        }
    };
    inner.metrics.batches.fetch_add(1, Ordering::Relaxed);
    if out.is_err() {
        // `Locked` poisoned and dropped the caches the batch touched on its way out.
        inner.metrics.batch_failures.fetch_add(1, Ordering::Relaxed);
    }
    out
}

/// A workspace the writer holds for a batch.
type Guard = OwnedRwLockWriteGuard<Ws>;

/// The `seq` of a workspace whose cached copy holds decisions that were never committed:
/// below every real `seq`, so no reader and no writer takes it for current.
pub(crate) const POISONED: i64 = -1;

/// The workspaces of one batch, write-locked from before the batch decides until after it
/// commits. Readers wait on these locks, so they see the batch only once it is durable:
/// releasing them is what publishes it. Dropped without `publish` (the batch failed at any
/// step and its transaction rolled back), every workspace is poisoned and dropped from the
/// cache before its lock is released, so nothing the batch decided is ever seen.
struct Locked<'a> {
    inner: &'a Inner,
    guards: Vec<(i64, Guard)>,
    published: bool,
}

impl<'a> Locked<'a> {
    fn new(inner: &'a Inner) -> Self {
        Locked { inner, guards: Vec::new(), published: false }
    }

    /// Takes the cached workspace `id` if the database has it at `seq`; `Ok(false)` if the
    /// cache has no current copy (the caller loads it), `Err` if the database has none.
    async fn take_cached(&mut self, id: i64, seq: Option<i64>) -> Result<bool, StoreError> {
        let Some(seq) = seq else { return Err(StoreError::not_found("workspace", &id.to_string())) };
        let Some(handle) = self.inner.cache.lock().unwrap().get(&id).cloned() else { return Ok(false) };
        let guard = handle.write_owned().await;
        if guard.seq != seq {
            return Ok(false);
        }
        self.guards.push((id, guard));
        Ok(true)
    }

    /// Loads workspace `id` through `conn` (which must see the last commit: the caller
    /// holds the database's write lock) and takes it.
    async fn take_loaded(
        &mut self,
        id: i64,
        conn: &mut sqlx::AnyConnection,
        now: stockpool_core::Timestamp,
    ) -> Result<(), StoreError> {
        let ws = Ws::load(conn, &self.inner.key, id, now).await?;
        self.inner.metrics.workspace_loads.fetch_add(1, Ordering::Relaxed);
        let handle: WsHandle = Arc::new(tokio::sync::RwLock::new(ws));
        let guard = handle.clone().try_write_owned().expect("nobody else has a lock just made");
        self.inner.cache.lock().unwrap().insert(id, handle);
        self.guards.push((id, guard));
        Ok(())
    }

    /// The batch committed: release its workspaces to readers, then tell the dispatchers.
    fn publish(mut self) {
        self.published = true;
        self.guards.clear();
        self.inner.committed.send_modify(|n| *n += 1);
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if self.published {
            return;
        }
        let mut cache = self.inner.cache.lock().unwrap();
        for (id, guard) in &mut self.guards {
            guard.seq = POISONED;
            if cache.get(id).is_some_and(|h| Arc::ptr_eq(h, OwnedRwLockWriteGuard::rwlock(guard))) {
                cache.remove(id);
            }
        }
    }
}

/// What deciding a batch produced: each command's result, the catalog SQL in order, the
/// hot rows coalesced.
struct Decided {
    results: Results,
    sql: Vec<(&'static str, Vec<Arg>)>,
    rows: Coalesced,
}

/// The fenced settles of `work`: (index, workspace, fence).
fn fences<'w>(work: &'w [(i64, &crate::Command)]) -> impl Iterator<Item = (usize, i64, &'w Fence)> + 'w {
    work.iter().enumerate().filter_map(|(i, (ws, cmd))| match cmd {
        crate::Command::Settle(s) => s.fence.as_ref().map(|f| (i, *ws, f)),
        crate::Command::Connection(c) => c.fence.as_ref().map(|f| (i, *ws, f)),
        _ => None,
    })
}

/// Whether the lease row `(holder, generation)` is the one `fence` names.
fn fence_holds(row: Option<(String, i64)>, fence: &Fence) -> bool {
    row.is_some_and(|(holder, generation)| holder == fence.node.as_str() && generation == fence.generation)
}

/// Decides every command of `work` on its (locked, current) workspace, except the fenced
/// settles in `refused` (their lease changed hands): those fail. Writes nothing.
fn decide(
    inner: &Inner,
    locked: &mut Locked<'_>,
    work: &[(i64, &crate::Command)],
    refused: &BTreeSet<usize>,
    now: stockpool_core::Timestamp,
) -> Decided {
    let mut out = Decided { results: Vec::with_capacity(work.len()), sql: Vec::new(), rows: Coalesced::default() };
    for (i, (ws_id, cmd)) in work.iter().enumerate() {
        let ws = &mut locked.guards.iter_mut().find(|(id, _)| id == ws_id).expect("locked above").1;
        inner.metrics.commands.fetch_add(1, Ordering::Relaxed);
        if refused.contains(&i) {
            out.results.push(Err(StoreError::LeaseLost { workspace: *ws_id }));
            continue;
        }
        // A settle's staleness is measured from the outbox rows it is about to settle.
        let queued: Vec<Option<stockpool_core::Timestamp>> = match cmd {
            crate::Command::Settle(s) => {
                s.attempts.iter().map(|a| ws.pending.get(&a.listing).map(|p| p.queued_at)).collect()
            }
            _ => Vec::new(),
        };
        let decided = execute(ws, cmd, now);
        match decided {
            Ok((reply, stmts)) => {
                for s in stmts {
                    match s {
                        Stmt::Sql { sql, args } => out.sql.push((sql, args)),
                        Stmt::Row(row) => out.rows.add(row),
                    }
                }
                if matches!(cmd, crate::Command::CreateOrder(_) | crate::Command::Deliver(_)) && reply.created {
                    inner.metrics.orders_created.fetch_add(1, Ordering::Relaxed);
                }
                if let crate::Command::Settle(settle) = cmd {
                    record_settle(&inner.metrics.pushes, ws.id, settle, &queued, now);
                }
                out.results.push(Ok(reply));
            }
            Err(e) => out.results.push(Err(e)),
        }
    }
    out
}

/// Counts a settled batch's attempts, and the staleness of each push the channel took.
fn record_settle(
    pushes: &crate::metrics::PushMetrics,
    ws: i64,
    settle: &crate::Settle,
    queued: &[Option<stockpool_core::Timestamp>],
    now: stockpool_core::Timestamp,
) {
    pushes.record(ws, settle.store.0 as i64, |m| {
        for (a, queued_at) in settle.attempts.iter().zip(queued) {
            m.attempt(a.result.as_str());
            if let (crate::SyncResult::Ok, Some(at)) = (a.result, queued_at) {
                m.delivered(now.0 - at.0);
            }
        }
    });
}

/// Bumps each workspace's sequence in its (still locked) cache; returns
/// `(id, seq, next_id)` to store.
fn bump(locked: &mut Locked<'_>) -> Vec<(i64, i64, u64)> {
    locked
        .guards
        .iter_mut()
        .map(|(id, ws)| {
            ws.seq += 1;
            (*id, ws.seq, ws.next_id)
        })
        .collect()
}

/// Logs where a batch's time went: `begin_us` opening the transaction (waiting for the
/// write lock), `decide_us` locking and loading workspaces and deciding, `write_us` the rows,
/// `commit_us` the commit (its sync).
fn log_batch(
    commands: usize,
    started: std::time::Instant,
    begun: std::time::Duration,
    decided: std::time::Duration,
    written: std::time::Duration,
) {
    tracing::debug!(
        commands,
        begin_us = begun.as_micros() as u64,
        decide_us = (decided - begun).as_micros() as u64,
        write_us = (written - decided).as_micros() as u64,
        commit_us = (started.elapsed() - written).as_micros() as u64,
        "batch committed"
    );
}

async fn batch_postgres(inner: &Inner, db: &Db, work: &[(i64, &crate::Command)]) -> Result<Results, StoreError> {
    let started = std::time::Instant::now();
    let mut tx = db.pool.begin().await?;
    let begun_at = started.elapsed();
    let now = (inner.clock)();
    // Lock the batch's workspaces in id order, and bring each cache up to date.
    let ids: BTreeSet<i64> = work.iter().map(|(ws, _)| *ws).collect();
    let lock_sql = "SELECT seq FROM workspaces WHERE id = $1 FOR UPDATE";
    let mut locked = Locked::new(inner);
    for &id in &ids {
        let row = sqlx::query_with(lock_sql, args(&[id.into()])).fetch_optional(&mut *tx).await?;
        let seq = row.map(|r| r.try_get::<i64, _>(0)).transpose()?;
        if !locked.take_cached(id, seq).await? {
            locked.take_loaded(id, &mut tx, now).await?;
        }
    }
    // A settle's fence is checked under the workspace's lock, with the lease row locked
    // too: no node takes the lease between this check and the commit.
    let mut refused = BTreeSet::new();
    for (i, ws, fence) in fences(work) {
        let row = sqlx::query_with(
            "SELECT holder, generation FROM leases WHERE workspace_id = $1 FOR UPDATE",
            args(&[ws.into()]),
        )
        .fetch_optional(&mut *tx)
        .await?;
        let row =
            row.map(|r| Ok::<_, sqlx::Error>((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?))).transpose()?;
        if !fence_holds(row, fence) {
            refused.insert(i);
        }
    }
    let Decided { results, sql, rows } = decide(inner, &mut locked, work, &refused, now);
    let decided_at = started.elapsed();
    for (sql, values) in &sql {
        sqlx::query_with(sql, args(values)).execute(&mut *tx).await?;
    }
    let workspaces = bump(&mut locked);
    rows.write_postgres(&mut tx, &workspaces).await?;
    let written_at = started.elapsed();
    tx.commit().await?;
    locked.publish();
    log_batch(work.len(), started, begun_at, decided_at, written_at);
    Ok(results)
}

/// An open `BEGIN IMMEDIATE` transaction; rolled back when dropped uncommitted.
struct LiteTx<'c> {
    c: &'c rusqlite::Connection,
    open: bool,
}

impl<'c> LiteTx<'c> {
    fn begin(c: &'c rusqlite::Connection) -> Result<Self, StoreError> {
        c.execute_batch("BEGIN IMMEDIATE")?;
        Ok(LiteTx { c, open: true })
    }

    fn commit(mut self) -> Result<(), StoreError> {
        self.c.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

impl Drop for LiteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.c.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rollback failed");
            }
        }
    }
}

async fn batch_sqlite(
    inner: &Inner,
    lite: &rusqlite::Connection,
    db: &Db,
    work: &[(i64, &crate::Command)],
) -> Result<Results, StoreError> {
    let started = std::time::Instant::now();
    let tx = LiteTx::begin(lite)?;
    let begun_at = started.elapsed();
    let now = (inner.clock)();
    let ids: BTreeSet<i64> = work.iter().map(|(ws, _)| *ws).collect();
    let mut locked = Locked::new(inner);
    for &id in &ids {
        let seq: Option<i64> = lite
            .prepare_cached("SELECT seq FROM workspaces WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        if !locked.take_cached(id, seq).await? {
            locked.take_loaded(id, &mut *db.pool.acquire().await?, now).await?;
        }
    }
    // `BEGIN IMMEDIATE` holds the database's write lock: no node takes a lease between
    // this check and the commit.
    let mut refused = BTreeSet::new();
    for (i, ws, fence) in fences(work) {
        let row: Option<(String, i64)> = lite
            .prepare_cached("SELECT holder, generation FROM leases WHERE workspace_id = ?1")?
            .query_row([ws], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if !fence_holds(row, fence) {
            refused.insert(i);
        }
    }
    let Decided { results, sql, rows } = decide(inner, &mut locked, work, &refused, now);
    let decided_at = started.elapsed();
    for (sql, values) in &sql {
        lite_execute(lite, sql, values)?;
    }
    rows.write_sqlite(lite)?;
    let written_at = started.elapsed();
    {
        let mut st = lite.prepare_cached("UPDATE workspaces SET seq = ?1, next_id = ?2 WHERE id = ?3")?;
        for (id, seq, next_id) in bump(&mut locked) {
            st.execute(rusqlite::params![seq, next_id as i64, id])?;
        }
    }
    tx.commit()?;
    locked.publish();
    log_batch(work.len(), started, begun_at, decided_at, written_at);
    Ok(results)
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Arg::I64(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Arg::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Arg::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// Runs one catalog statement written for both backends (`$n` parameters, which SQLite
/// takes as named parameters: each is bound by its number, wherever it appears).
fn lite_execute(c: &rusqlite::Connection, sql: &str, values: &[Arg]) -> Result<(), StoreError> {
    let mut st = c.prepare_cached(sql)?;
    bind_numbered(&mut st, sql, values)?;
    st.raw_execute()?;
    Ok(())
}

/// Binds `values` to a statement written with `$n` parameters, each by its number.
fn bind_numbered(st: &mut rusqlite::CachedStatement<'_>, sql: &str, values: &[Arg]) -> Result<(), StoreError> {
    for i in 1..=st.parameter_count() {
        let n = st
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(i);
        let value = values.get(n - 1).ok_or_else(|| {
            StoreError::Corrupt(format!("statement parameter ${n} has no value ({} given): {sql}", values.len()))
        })?;
        st.raw_bind_parameter(i, value)?;
    }
    Ok(())
}

/// The hot rows of a batch, coalesced: ledger rows in order, one net change per stock
/// level, and the last version of each order, card and outbox row.
#[derive(Default)]
struct Coalesced {
    movements: Vec<Vec<Arg>>,
    levels: BTreeMap<(i64, u64, u64), (i64, i64)>,
    orders: BTreeMap<(i64, u64), Vec<Arg>>,
    cards: BTreeMap<(i64, u64), Vec<Arg>>,
    /// The last version of each listing's outbox row; `None`: the row goes.
    outbox: BTreeMap<(i64, u64), Option<Vec<Arg>>>,
}

impl Coalesced {
    fn add(&mut self, row: HotRow) {
        match row {
            HotRow::Movement { ws, item, warehouse, on_hand_delta, reserved_delta, reason, reference, at } => {
                self.movements.push(vec![
                    ws.into(),
                    item.into(),
                    warehouse.into(),
                    on_hand_delta.into(),
                    reserved_delta.into(),
                    reason.into(),
                    reference.into(),
                    at.into(),
                ]);
            }
            HotRow::Level { ws, item, warehouse, on_hand_delta, reserved_delta } => {
                let net = self.levels.entry((ws, item, warehouse)).or_insert((0, 0));
                net.0 += on_hand_delta;
                net.1 += reserved_delta;
            }
            HotRow::Order { ws, id, store, external_id, status, doc, created_at, at } => {
                let values = vec![
                    ws.into(),
                    id.into(),
                    store.into(),
                    external_id.into(),
                    status.into(),
                    doc.into(),
                    created_at.into(),
                    at.into(),
                ];
                self.orders.insert((ws, id), values);
            }
            HotRow::Card { ws, id, status, doc } => {
                self.cards.insert((ws, id), vec![ws.into(), id.into(), status.into(), doc.into()]);
            }
            HotRow::Outbox { ws, listing, store, quantity, doc, at, attempts, next_attempt_at, generation } => {
                let values = vec![
                    ws.into(),
                    listing.into(),
                    store.into(),
                    quantity.into(),
                    doc.into(),
                    at.into(),
                    attempts.into(),
                    next_attempt_at.into(),
                    generation.into(),
                ];
                self.outbox.insert((ws, listing), Some(values));
            }
            HotRow::OutboxDone { ws, listing } => {
                self.outbox.insert((ws, listing), None);
            }
        }
    }

    /// Writes everything on PostgreSQL, and the batch's workspace sequences, in two
    /// statements whatever the batch's size (two round trips): each column goes as one
    /// array parameter (`unnest`), so the statement text never changes, is prepared once
    /// and its plan reused. The first makes sure every stock level the batch touched exists
    /// (a zero level satisfies the CHECK); the second changes each level by its net,
    /// guarded in the statement (`0 <= reserved <= on_hand` after it), and writes every
    /// other table in data-modifying `WITH` clauses, which PostgreSQL runs to completion
    /// whether or not the final `SELECT` reads them. A level whose guard does not apply
    /// fails the whole batch.
    async fn write_postgres(
        self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        workspaces: &[(i64, i64, u64)],
    ) -> Result<(), StoreError> {
        const WRITE: &str = "WITH \
            lv AS (UPDATE stock_levels SET on_hand = stock_levels.on_hand + v.d_on, reserved = stock_levels.reserved + v.d_res \
              FROM unnest($1::text::bigint[], $2::text::bigint[], $3::text::bigint[], $4::text::bigint[], $5::text::bigint[]) \
              AS v(w, i, h, d_on, d_res) \
              WHERE stock_levels.workspace_id = v.w AND stock_levels.item_id = v.i AND stock_levels.warehouse_id = v.h \
              AND stock_levels.on_hand + v.d_on >= stock_levels.reserved + v.d_res AND stock_levels.reserved + v.d_res >= 0 \
              RETURNING 1), \
            mv AS (INSERT INTO movements (workspace_id, item_id, warehouse_id, on_hand_delta, reserved_delta, reason, reference, created_at) \
              SELECT * FROM unnest($6::text::bigint[], $7::text::bigint[], $8::text::bigint[], $9::text::bigint[], \
              $10::text::bigint[], $11::text::text[], $12::text::text[], $13::text::bigint[])), \
            od AS (INSERT INTO orders (workspace_id, id, store_id, external_id, status, doc, created_at, updated_at) \
              SELECT * FROM unnest($14::text::bigint[], $15::text::bigint[], $16::text::bigint[], $17::text::text[], \
              $18::text::text[], $19::text::text[], $20::text::bigint[], $21::text::bigint[]) \
              ON CONFLICT (workspace_id, id) DO UPDATE SET status = excluded.status, doc = excluded.doc, updated_at = excluded.updated_at), \
            cd AS (INSERT INTO cards (workspace_id, id, status, doc) \
              SELECT * FROM unnest($22::text::bigint[], $23::text::bigint[], $24::text::text[], $25::text::text[]) \
              ON CONFLICT (workspace_id, id) DO UPDATE SET status = excluded.status, doc = excluded.doc), \
            ob AS (INSERT INTO outbox (workspace_id, listing_id, store_id, quantity, doc, queued_at, attempts, next_attempt_at, generation) \
              SELECT * FROM unnest($26::text::bigint[], $27::text::bigint[], $28::text::bigint[], $29::text::bigint[], \
              $30::text::text[], $31::text::bigint[], $32::text::bigint[], $33::text::bigint[], $34::text::bigint[]) \
              ON CONFLICT (workspace_id, listing_id) \
              DO UPDATE SET store_id = excluded.store_id, quantity = excluded.quantity, doc = excluded.doc, \
              queued_at = excluded.queued_at, attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, \
              generation = excluded.generation), \
            obd AS (DELETE FROM outbox USING unnest($35::text::bigint[], $36::text::bigint[]) AS v(w, l) \
              WHERE outbox.workspace_id = v.w AND outbox.listing_id = v.l), \
            ws AS (UPDATE workspaces SET seq = v.s, next_id = v.n \
              FROM unnest($37::text::bigint[], $38::text::bigint[], $39::text::bigint[]) AS v(id, s, n) \
              WHERE workspaces.id = v.id) \
            SELECT count(*) FROM lv";
        let levels: Vec<Vec<Arg>> = self
            .levels
            .iter()
            .map(|(&(ws, item, warehouse), &(on_hand, reserved))| {
                vec![ws.into(), item.into(), warehouse.into(), on_hand.into(), reserved.into()]
            })
            .collect();
        if !levels.is_empty() {
            let keys: Vec<Vec<Arg>> = levels.iter().map(|v| v[..3].to_vec()).collect();
            let created = "INSERT INTO stock_levels (workspace_id, item_id, warehouse_id, on_hand, reserved) \
                 SELECT w, i, h, 0, 0 FROM unnest($1::text::bigint[], $2::text::bigint[], $3::text::bigint[]) AS v(w, i, h) \
                 ON CONFLICT (workspace_id, item_id, warehouse_id) DO NOTHING";
            sqlx::query_with(created, args(&columns(&keys, 3))).execute(&mut **tx).await?;
        }
        let changed: Vec<Vec<Arg>> =
            levels.into_iter().filter(|v| v[3] != Arg::I64(0) || v[4] != Arg::I64(0)).collect();
        let orders: Vec<Vec<Arg>> = self.orders.into_values().collect();
        let cards: Vec<Vec<Arg>> = self.cards.into_values().collect();
        let mut outbox: Vec<Vec<Arg>> = Vec::new();
        let mut outbox_done: Vec<Vec<Arg>> = Vec::new();
        for ((ws, listing), row) in self.outbox {
            match row {
                Some(values) => outbox.push(values),
                None => outbox_done.push(vec![ws.into(), listing.into()]),
            }
        }
        let workspaces: Vec<Vec<Arg>> =
            workspaces.iter().map(|&(id, seq, next_id)| vec![id.into(), seq.into(), next_id.into()]).collect();
        let mut params = columns(&changed, 5);
        params.extend(columns(&self.movements, 8));
        params.extend(columns(&orders, 8));
        params.extend(columns(&cards, 4));
        params.extend(columns(&outbox, 9));
        params.extend(columns(&outbox_done, 2));
        params.extend(columns(&workspaces, 3));
        let row = sqlx::query_with(WRITE, args(&params)).fetch_one(&mut **tx).await?;
        let levels_changed: i64 = row.try_get(0)?;
        if levels_changed != changed.len() as i64 {
            return Err(StoreError::Corrupt(format!(
                "a guarded stock update would break 0 <= reserved <= on_hand: {levels_changed} of {} levels changed",
                changed.len()
            )));
        }
        Ok(())
    }
}

impl Coalesced {
    /// Writes everything on SQLite, one cached prepared statement per kind of row. A stock
    /// level whose guarded update does not apply (it would break `0 <= reserved <= on_hand`)
    /// fails the whole batch.
    fn write_sqlite(self, c: &rusqlite::Connection) -> Result<(), StoreError> {
        use rusqlite::params_from_iter;
        // Every level the batch touched exists (a zero level satisfies the CHECK, which
        // SQLite applies to an upsert's proposed row) and changes by its net, guarded.
        let mut create = c.prepare_cached(
            "INSERT INTO stock_levels (workspace_id, item_id, warehouse_id, on_hand, reserved) VALUES (?1, ?2, ?3, 0, 0) \
             ON CONFLICT (workspace_id, item_id, warehouse_id) DO NOTHING",
        )?;
        let mut change = c.prepare_cached(
            "UPDATE stock_levels SET on_hand = on_hand + ?4, reserved = reserved + ?5 \
             WHERE workspace_id = ?1 AND item_id = ?2 AND warehouse_id = ?3 \
             AND on_hand + ?4 >= reserved + ?5 AND reserved + ?5 >= 0",
        )?;
        for (&(ws, item, warehouse), &(on_hand, reserved)) in &self.levels {
            let (item, warehouse) = (item as i64, warehouse as i64);
            create.execute(rusqlite::params![ws, item, warehouse])?;
            if (on_hand, reserved) != (0, 0)
                && change.execute(rusqlite::params![ws, item, warehouse, on_hand, reserved])? != 1
            {
                return Err(StoreError::Corrupt(format!(
                    "a guarded stock update would break 0 <= reserved <= on_hand (item {item}, warehouse {warehouse})"
                )));
            }
        }
        let mut st = c.prepare_cached(
            "INSERT INTO movements (workspace_id, item_id, warehouse_id, on_hand_delta, reserved_delta, reason, reference, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for row in &self.movements {
            st.execute(params_from_iter(row))?;
        }
        let mut st = c.prepare_cached(
            "INSERT INTO orders (workspace_id, id, store_id, external_id, status, doc, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (workspace_id, id) \
             DO UPDATE SET status = excluded.status, doc = excluded.doc, updated_at = excluded.updated_at",
        )?;
        for row in self.orders.values() {
            st.execute(params_from_iter(row))?;
        }
        let mut st = c.prepare_cached(
            "INSERT INTO cards (workspace_id, id, status, doc) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (workspace_id, id) DO UPDATE SET status = excluded.status, doc = excluded.doc",
        )?;
        for row in self.cards.values() {
            st.execute(params_from_iter(row))?;
        }
        let mut st = c.prepare_cached(
            "INSERT INTO outbox (workspace_id, listing_id, store_id, quantity, doc, queued_at, attempts, next_attempt_at, generation) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (workspace_id, listing_id) \
             DO UPDATE SET store_id = excluded.store_id, quantity = excluded.quantity, doc = excluded.doc, \
             queued_at = excluded.queued_at, attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, \
             generation = excluded.generation",
        )?;
        let mut done = c.prepare_cached("DELETE FROM outbox WHERE workspace_id = ?1 AND listing_id = ?2")?;
        for (&(ws, listing), row) in &self.outbox {
            match row {
                Some(values) => st.execute(params_from_iter(values))?,
                None => done.execute(rusqlite::params![ws, listing as i64])?,
            };
        }
        Ok(())
    }
}

/// The `width` columns of `rows`, each as one PostgreSQL array literal in text (`{1,2}`,
/// `{"a","b\\"c"}`) that the statement casts and `unnest`s.
fn columns(rows: &[Vec<Arg>], width: usize) -> Vec<Arg> {
    (0..width).map(|k| Arg::Text(array_literal(rows.iter().map(|r| &r[k])))).collect()
}

/// A PostgreSQL array literal of `values`: integers bare, text double-quoted with `"` and
/// `\` escaped, NULL bare.
fn array_literal<'a>(values: impl Iterator<Item = &'a Arg>) -> String {
    let mut out = String::from("{");
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        match v {
            Arg::I64(n) => {
                let _ = write!(out, "{n}");
            }
            Arg::Null => out.push_str("NULL"),
            Arg::Text(t) => {
                out.push('"');
                for ch in t.chars() {
                    if ch == '"' || ch == '\\' {
                        out.push('\\');
                    }
                    out.push(ch);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_text_and_leave_numbers_bare() {
        let values = [Arg::I64(-3), Arg::Null, Arg::Text(r#"say "hi" \ {x,y}"#.into()), Arg::Text(String::new())];
        assert_eq!(array_literal(values.iter()), r#"{-3,NULL,"say \"hi\" \\ {x,y}",""}"#);
    }
}
