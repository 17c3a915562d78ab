//! WAL checkpoints on SQLite, off the writer's commit path.
//!
//! By default SQLite checkpoints inside the commit that takes the write-ahead log past
//! 1,000 pages: that commit copies the log into the database file and fsyncs it, and every
//! order in its batch waits. The writer's connection turns that off
//! (`wal_autocheckpoint=0`) and this thread, with a connection of its own, runs a
//! `PASSIVE` checkpoint every `CHECKPOINT_INTERVAL` instead: it copies what no reader still
//! needs and never blocks the writer.
//!
//! The log starts again from its beginning only when a write transaction begins with every
//! frame already copied, and under a write load that never pauses a checkpoint from
//! another connection never quite catches up: the writer commits more while it copies.
//! So when this thread sees the log past `WAL_FRAMES_MAX` pages it first copies again
//! straight away until a pass finds fewer than `CATCH_UP_FRAMES` new pages, then raises a
//! flag (`Checkpointer::writer_should_checkpoint`), and the writer, after its next commit,
//! runs one passive checkpoint itself. It only copies those few pages, and as no commit can
//! come between, its next transaction restarts the log: a bounded log for one short step
//! (about a millisecond) on the writer's path now and then. Raising the flag at the first
//! pass past the limit instead left the writer up to a whole interval of pages to copy,
//! 40-60 ms at 5,000 orders/s, and every order in flight waited.
//!
//! Durability is unchanged: a commit is durable once its log frames are synced
//! (`synchronous=FULL`); checkpoints only move pages that are already durable.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// How often the log is checkpointed. Often, so each pass writes and fsyncs little: a
/// commit's flush waits behind the pass's writes on the disk's queue. At 5,000 orders/s
/// in steady state the 99th percentile was 11-19 ms with 20 ms (six runs), 16-21 ms with
/// 50 ms and 29-50 ms with 200 ms; 10 ms was erratic (10-44 ms). BENCHMARKS.md, fourth
/// session.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(20);

/// Pages in the log beyond which the writer is asked to finish a checkpoint itself (128
/// MiB of 4 KiB pages). Each time costs the writer a few milliseconds, so not too often:
/// at 5,200 orders/s on the benchmark's machine stockpool logs about 15,000 pages a second.
pub const WAL_FRAMES_MAX: i64 = 32_768;

/// Pages left uncopied below which the writer is asked to finish the checkpoint (a few
/// milliseconds of commits at the bench's peak, about 1 MiB).
pub const CATCH_UP_FRAMES: i64 = 256;
/// Passes in a row this thread makes to catch up before it waits for the next interval.
pub const CATCH_UP_PASSES_MAX: u32 = 64;

/// The running checkpoint thread; it stops (after one last checkpoint) when dropped.
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    log_too_long: Arc<AtomicBool>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, String> {
        let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
        conn.execute_batch(&format!("PRAGMA busy_timeout={};", crate::db::SQLITE_BUSY_TIMEOUT_MS))
            .map_err(|e| e.to_string())?;
        crate::db::sqlite_grow_in_chunks(&conn).map_err(|e| e.to_string())?;
        let (stop, stopped) = mpsc::channel::<()>();
        let log_too_long = Arc::new(AtomicBool::new(false));
        let flag = log_too_long.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || loop {
                let last =
                    matches!(stopped.recv_timeout(CHECKPOINT_INTERVAL), Err(mpsc::RecvTimeoutError::Disconnected));
                // The log's length at the previous pass, while catching up.
                let mut previous: Option<i64> = None;
                for _ in 0..CATCH_UP_PASSES_MAX {
                    let started = std::time::Instant::now();
                    let done = checkpoint(&conn);
                    tracing::trace!(?done, us = started.elapsed().as_micros() as u64, "passive checkpoint");
                    match done {
                        // A pass copies the log as it was when the pass began; what the
                        // writer committed meanwhile is left. Once a pass had little to copy,
                        // it was short, so little is left: hand that rest to the writer.
                        Ok((log, _)) if log > WAL_FRAMES_MAX => {
                            if previous.is_some_and(|p| log - p < CATCH_UP_FRAMES) {
                                flag.store(true, Ordering::Relaxed);
                                break;
                            }
                            previous = Some(log);
                        }
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries");
                            break;
                        }
                    }
                }
                if last {
                    return;
                }
            })
            .map_err(|e| format!("cannot start the checkpoint thread: {e}"))?;
        Ok(Checkpointer { stop: Some(stop), thread: Some(thread), log_too_long })
    }

    /// Whether the writer should checkpoint after its commit (the flag is cleared).
    pub(crate) fn writer_should_checkpoint(&self) -> bool {
        self.log_too_long.swap(false, Ordering::Relaxed)
    }
}

/// The writer's own checkpoint, run between two of its transactions.
pub(crate) fn by_writer(conn: &rusqlite::Connection) {
    let started = std::time::Instant::now();
    match checkpoint(conn) {
        Ok((log, _)) => tracing::debug!(
            frames = log,
            us = started.elapsed().as_micros() as u64,
            "the writer checkpointed the rest of the log"
        ),
        Err(e) => tracing::warn!(error = %e, "the writer's WAL checkpoint failed; the next one retries"),
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One passive checkpoint; returns the pages in the log and how many of them are copied.
fn checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn commits_stay_in_the_log_until_the_checkpoint_thread_copies_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0; \
                 CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
            )
            .unwrap();
        for i in 0..200 {
            writer.execute("INSERT INTO t (id, body) VALUES (?1, ?2)", rusqlite::params![i, "x".repeat(2000)]).unwrap();
        }
        // 200 commits of 2 KB each, and no checkpoint: the database file is still tiny.
        let before = db_file_len(&path);
        assert!(before < 100_000, "nothing checkpointed yet, but the file has {before} bytes");

        let checkpoints = Checkpointer::start(&path).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while db_file_len(&path) < 400_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(checkpoints);
        let after = db_file_len(&path);
        assert!(after >= 400_000, "the checkpoint thread copied the log: the file has {after} bytes");
        let rows: i64 = writer.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 200);
    }
}
