//! The writer task: one per process, committing a batch of commands per transaction.
//!
//! SQLite has one writer, and a durable commit costs about one fsync; so commands queue
//! here and the writer takes up to `BATCH_COMMANDS_MAX` at a time, decides each on the
//! cached workspace, runs all their statements in one transaction, commits once, and only
//! then replies to each caller (group commit). On PostgreSQL the workspace rows of a batch
//! are locked in id order first, and a workspace another process changed is reloaded
//! under that lock before anything is decided. If a batch fails, the caches it touched
//! are dropped and each command is retried alone, so one bad command fails only itself.

use crate::db::{args, Backend};
use crate::exec::{execute, Reply, Stmt};
use crate::workspace::Ws;
use crate::{Inner, Job, StoreError};
use sqlx::Row;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// Commands committed together at most. Bounds a transaction's size and the latency the
/// last command in a batch waits.
pub const BATCH_COMMANDS_MAX: usize = 512;

pub(crate) async fn run(inner: Arc<Inner>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < BATCH_COMMANDS_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let work: Vec<(i64, crate::Command)> = jobs.iter().map(|j| (j.ws, j.cmd.clone())).collect();
        let results = match batch(&inner, &work).await {
            Ok(results) => results,
            Err(e) if work.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, commands = work.len(), "batch failed; retrying each command alone");
                let mut results = Vec::with_capacity(work.len());
                for w in &work {
                    results.push(batch(&inner, std::slice::from_ref(w)).await.and_then(|mut r| r.remove(0)));
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
async fn batch(inner: &Inner, work: &[(i64, crate::Command)]) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
    let out = batch_inner(inner, work).await;
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
    work: &[(i64, crate::Command)],
) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
    let mut tx = inner.db.pool.begin().await?;
    let now = (inner.clock)();
    // Lock the batch's workspaces in id order, and bring each cache up to date.
    let ids: BTreeSet<i64> = work.iter().map(|(ws, _)| *ws).collect();
    let lock_sql = match inner.db.backend {
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
                let ws = Ws::load(&mut tx, &inner.key, id).await?;
                let h = Arc::new(RwLock::new(ws));
                inner.cache.lock().unwrap().insert(id, h.clone());
                h
            }
        };
        handles.push((id, handle));
    }
    let mut results = Vec::with_capacity(work.len());
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
                    let done = sqlx::query_with(s.sql, args(&s.args)).execute(&mut *tx).await?;
                    if s.guard && done.rows_affected() != 1 {
                        return Err(StoreError::Corrupt(format!(
                            "a guarded stock update changed {} rows: the stored level would break 0 <= reserved <= on_hand",
                            done.rows_affected()
                        )));
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
    Ok(results)
}
