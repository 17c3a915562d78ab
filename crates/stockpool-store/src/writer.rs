//! The writer: one per process, on its own thread (`Store::open`), committing a batch of
//! commands per transaction.
//!
//! SQLite has one writer, and a durable commit costs about one fsync; so commands queue
//! here and the writer takes up to `BATCH_COMMANDS_MAX` at a time, decides each on the
//! cached workspace, runs their catalog SQL in order and their hot rows coalesced
//! (`Coalesced`: a few multi-row statements, stock levels guarded in the statement) in one
//! transaction, commits once, and only then replies to each caller (group commit). On PostgreSQL the workspace rows of a batch
//! are locked in id order first, and a workspace another process changed is reloaded
//! under that lock before anything is decided. If a batch fails, the caches it touched
//! are dropped and each command is retried alone, so one bad command fails only itself.

use crate::db::{args, Arg, Backend, Db};
use crate::exec::{execute, Reply, Row as HotRow, Stmt};
use crate::workspace::Ws;
use crate::{Inner, Job, StoreError};
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// Commands committed together at most. Bounds a transaction's size and the latency the
/// last command in a batch waits.
pub const BATCH_COMMANDS_MAX: usize = 512;

pub(crate) async fn run(inner: Arc<Inner>, db: Db, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < BATCH_COMMANDS_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let work: Vec<(i64, crate::Command)> = jobs.iter().map(|j| (j.ws, j.cmd.clone())).collect();
        let results = match batch(&inner, &db, &work).await {
            Ok(results) => results,
            Err(e) if work.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, commands = work.len(), "batch failed; retrying each command alone");
                let mut results = Vec::with_capacity(work.len());
                for w in &work {
                    results.push(batch(&inner, &db, std::slice::from_ref(w)).await.and_then(|mut r| r.remove(0)));
                }
                results
            }
        };
        for (job, result) in jobs.into_iter().zip(results) {
            if result.is_err() {
                inner.metrics.command_errors.fetch_add(1, Ordering::Relaxed);
            }
            let _ = job.reply.send(result);
        }
    }
}

/// One transaction for `work`. `Err` means nothing was committed.
async fn batch(
    inner: &Inner,
    db: &Db,
    work: &[(i64, crate::Command)],
) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
    let out = batch_inner(inner, db, work).await;
    inner.metrics.batches.fetch_add(1, Ordering::Relaxed);
    if out.is_err() {
        inner.metrics.batch_failures.fetch_add(1, Ordering::Relaxed);
        // The caches may hold decisions that were never committed: drop them.
        let mut cache = inner.cache.lock().unwrap();
        for (ws, _) in work {
            cache.remove(ws);
        }
    }
    out
}

async fn batch_inner(
    inner: &Inner,
    db: &Db,
    work: &[(i64, crate::Command)],
) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
    let started = std::time::Instant::now();
    let mut tx = db.pool.begin().await?;
    let now = (inner.clock)();
    // Lock the batch's workspaces in id order, and bring each cache up to date.
    let ids: BTreeSet<i64> = work.iter().map(|(ws, _)| *ws).collect();
    let lock_sql = match db.backend {
        Backend::Postgres => "SELECT seq FROM workspaces WHERE id = $1 FOR UPDATE",
        Backend::Sqlite => "SELECT seq FROM workspaces WHERE id = $1",
    };
    let mut handles = Vec::with_capacity(ids.len());
    for &id in &ids {
        let row = sqlx::query_with(lock_sql, args(&[id.into()])).fetch_optional(&mut *tx).await?;
        let Some(row) = row else { return Err(StoreError::not_found("workspace", &id.to_string())) };
        let seq: i64 = row.try_get(0)?;
        let cached = inner.cache.lock().unwrap().get(&id).cloned();
        let handle = match cached {
            Some(c) if c.read().unwrap().seq == seq => c,
            _ => {
                let ws = Ws::load(&mut tx, &inner.key, id, now).await?;
                let h = Arc::new(RwLock::new(ws));
                inner.cache.lock().unwrap().insert(id, h.clone());
                h
            }
        };
        handles.push((id, handle));
    }
    let mut results = Vec::with_capacity(work.len());
    let mut rows = Coalesced::default();
    for (ws_id, cmd) in work {
        let handle = &handles.iter().find(|(id, _)| id == ws_id).expect("locked above").1;
        inner.metrics.commands.fetch_add(1, Ordering::Relaxed);
        let decided: Result<(Reply, Vec<Stmt>), StoreError> = {
            let mut ws = handle.write().unwrap();
            execute(&mut ws, cmd, now)
        };
        match decided {
            Ok((reply, stmts)) => {
                for s in stmts {
                    match s {
                        Stmt::Sql { sql, args: values } => {
                            sqlx::query_with(sql, args(&values)).execute(&mut *tx).await?;
                        }
                        Stmt::Row(row) => rows.add(row),
                    }
                }
                if matches!(cmd, crate::Command::CreateOrder(_)) && reply.created {
                    inner.metrics.orders_created.fetch_add(1, Ordering::Relaxed);
                }
                results.push(Ok(reply));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    let decided_at = started.elapsed();
    rows.write(&mut tx, db.backend).await?;
    let written_at = started.elapsed();
    for (id, handle) in &handles {
        let (seq, next_id) = {
            let mut ws = handle.write().unwrap();
            ws.seq += 1;
            (ws.seq, ws.next_id)
        };
        sqlx::query_with(
            "UPDATE workspaces SET seq = $1, next_id = $2 WHERE id = $3",
            args(&[seq.into(), next_id.into(), (*id).into()]),
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::debug!(
        commands = work.len(),
        decide_us = decided_at.as_micros() as u64,
        write_us = (written_at - decided_at).as_micros() as u64,
        commit_us = (started.elapsed() - written_at).as_micros() as u64,
        "batch committed"
    );
    Ok(results)
}

/// Rows of one table in one multi-row statement at most. Bounds the statement's
/// parameters (8 per row at most: 2,000 of SQLite's 32,766 and PostgreSQL's 65,535).
pub const ROWS_PER_STATEMENT_MAX: usize = 250;

/// The hot rows of a batch, coalesced: ledger rows in order, one net change per stock
/// level, and the last version of each order, card, published figure and outbox row.
#[derive(Default)]
struct Coalesced {
    movements: Vec<Vec<Arg>>,
    levels: BTreeMap<(i64, u64, u64), (i64, i64)>,
    orders: BTreeMap<(i64, u64), Vec<Arg>>,
    cards: BTreeMap<(i64, u64), Vec<Arg>>,
    published: BTreeMap<(i64, u64), Vec<Arg>>,
    outbox: BTreeMap<(i64, u64), Vec<Arg>>,
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
            HotRow::Published { ws, listing, quantity, doc } => {
                self.published.insert((ws, listing), vec![ws.into(), listing.into(), quantity.into(), doc.into()]);
            }
            HotRow::Outbox { ws, listing, quantity, doc, at } => {
                self.outbox
                    .insert((ws, listing), vec![ws.into(), listing.into(), quantity.into(), doc.into(), at.into()]);
            }
        }
    }

    /// Writes everything in a few multi-row statements. A stock level whose guarded update
    /// does not apply (it would break `0 <= reserved <= on_hand`) fails the whole batch.
    async fn write(self, tx: &mut sqlx::Transaction<'static, sqlx::Any>, backend: Backend) -> Result<(), StoreError> {
        let levels: Vec<Vec<Arg>> = self
            .levels
            .iter()
            .map(|(&(ws, item, warehouse), &(on_hand, reserved))| {
                vec![ws.into(), item.into(), warehouse.into(), on_hand.into(), reserved.into()]
            })
            .collect();
        // Every level the batch touched exists (a zero level satisfies the CHECK) ...
        let zero: Vec<Vec<Arg>> = levels.iter().map(|v| v[..3].to_vec()).collect();
        many(
            tx,
            backend,
            "INSERT INTO stock_levels (workspace_id, item_id, warehouse_id, on_hand, reserved) VALUES ",
            "($, $, $, 0, 0)",
            " ON CONFLICT (workspace_id, item_id, warehouse_id) DO NOTHING",
            &zero,
            None,
        )
        .await?;
        // ... then each changes by its net, guarded in the statement itself.
        let changed: Vec<Vec<Arg>> =
            levels.into_iter().filter(|v| v[3] != Arg::I64(0) || v[4] != Arg::I64(0)).collect();
        many(
            tx,
            backend,
            "UPDATE stock_levels SET on_hand = stock_levels.on_hand + v.column4, reserved = stock_levels.reserved + v.column5 \
             FROM (VALUES ",
            "($, $, $, $, $)",
            ") AS v WHERE stock_levels.workspace_id = v.column1 AND stock_levels.item_id = v.column2 \
             AND stock_levels.warehouse_id = v.column3 \
             AND stock_levels.on_hand + v.column4 >= stock_levels.reserved + v.column5 \
             AND stock_levels.reserved + v.column5 >= 0",
            &changed,
            Some("a guarded stock update would break 0 <= reserved <= on_hand"),
        )
        .await?;
        many(
            tx,
            backend,
            "INSERT INTO movements (workspace_id, item_id, warehouse_id, on_hand_delta, reserved_delta, reason, reference, created_at) VALUES ",
            "($, $, $, $, $, $, $, $)",
            "",
            &self.movements,
            None,
        )
        .await?;
        let orders: Vec<Vec<Arg>> = self.orders.into_values().collect();
        many(
            tx,
            backend,
            "INSERT INTO orders (workspace_id, id, store_id, external_id, status, doc, created_at, updated_at) VALUES ",
            "($, $, $, $, $, $, $, $)",
            " ON CONFLICT (workspace_id, id) DO UPDATE SET status = excluded.status, doc = excluded.doc, updated_at = excluded.updated_at",
            &orders,
            None,
        )
        .await?;
        let cards: Vec<Vec<Arg>> = self.cards.into_values().collect();
        many(
            tx,
            backend,
            "INSERT INTO cards (workspace_id, id, status, doc) VALUES ",
            "($, $, $, $)",
            " ON CONFLICT (workspace_id, id) DO UPDATE SET status = excluded.status, doc = excluded.doc",
            &cards,
            None,
        )
        .await?;
        let published: Vec<Vec<Arg>> = self.published.into_values().collect();
        many(
            tx,
            backend,
            "UPDATE listings SET published_quantity = v.column3, published_doc = v.column4 FROM (VALUES ",
            "($, $, $, $)",
            ") AS v WHERE listings.workspace_id = v.column1 AND listings.id = v.column2",
            &published,
            Some("a published figure names a listing that does not exist"),
        )
        .await?;
        let outbox: Vec<Vec<Arg>> = self.outbox.into_values().collect();
        many(
            tx,
            backend,
            "INSERT INTO outbox (workspace_id, listing_id, quantity, doc, queued_at) VALUES ",
            "($, $, $, $, $)",
            " ON CONFLICT (workspace_id, listing_id) DO UPDATE SET quantity = excluded.quantity, doc = excluded.doc, queued_at = excluded.queued_at",
            &outbox,
            None,
        )
        .await?;
        Ok(())
    }
}

/// Runs `head (row), (row), ... tail` for `rows` in chunks of `ROWS_PER_STATEMENT_MAX`,
/// each `$` of `row` a parameter: numbered (`$n`) on PostgreSQL, anonymous (`?`) on
/// SQLite, whose lookup of numbered parameters by name costs time quadratic in their
/// count. With `guard`, every row must change exactly one row.
async fn many(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    head: &str,
    row: &str,
    tail: &str,
    rows: &[Vec<Arg>],
    guard: Option<&str>,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT_MAX) {
        let mut sql = String::with_capacity(head.len() + tail.len() + chunk.len() * (row.len() + 16));
        sql.push_str(head);
        let mut n = 0;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            for part in row.split_inclusive('$') {
                match part.strip_suffix('$') {
                    Some(before) => {
                        n += 1;
                        match backend {
                            Backend::Postgres => {
                                let _ = write!(sql, "{before}${n}");
                            }
                            Backend::Sqlite => {
                                let _ = write!(sql, "{before}?");
                            }
                        }
                    }
                    None => sql.push_str(part),
                }
            }
        }
        sql.push_str(tail);
        let values: Vec<Arg> = chunk.iter().flatten().cloned().collect();
        let done = sqlx::query_with(&sql, args(&values)).execute(&mut **tx).await?;
        if let Some(what) = guard {
            if done.rows_affected() != chunk.len() as u64 {
                return Err(StoreError::Corrupt(format!(
                    "{what}: {} of {} rows changed",
                    done.rows_affected(),
                    chunk.len()
                )));
            }
        }
    }
    Ok(())
}
