//! WAL checkpoints on SQLite, off the writer's commit path.
//!
//! By default SQLite checkpoints inside the commit that takes the write-ahead log past
//! 1,000 pages: that commit copies the log into the database file and fsyncs it, and every
//! order in its batch waits. The writer's connection turns that off
//! (`wal_autocheckpoint=0`) and this thread, with a connection of its own, runs a
//! `PASSIVE` checkpoint every `CHECKPOINT_INTERVAL` instead: it copies what no reader still
//! needs, never blocks the writer, and the log restarts from its beginning once a
//! checkpoint has caught up. Under a write load that never pauses a passive checkpoint may
//! never catch up; when the log passes `WAL_FRAMES_MAX` pages the thread runs a
//! `RESTART` checkpoint, which waits for the writer's current transaction and holds the
//! next one back until the rest of the log is copied, so that the next commit writes the
//! log from its beginning again: a bounded log at the price of a short pause.
//!
//! Durability is unchanged: a commit is durable once its log frames are synced
//! (`synchronous=FULL`); checkpoints only move pages that are already durable.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// How often the log is checkpointed.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// Pages in the log beyond which a checkpoint waits for the writer to empty it (64 MiB of
/// 4 KiB pages).
pub const WAL_FRAMES_MAX: i64 = 16_384;

/// The running checkpoint thread; it stops (after one last checkpoint) when dropped.
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, String> {
        let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
        conn.execute_batch(&format!("PRAGMA busy_timeout={};", crate::db::SQLITE_BUSY_TIMEOUT_MS))
            .map_err(|e| e.to_string())?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || loop {
                let last =
                    matches!(stopped.recv_timeout(CHECKPOINT_INTERVAL), Err(mpsc::RecvTimeoutError::Disconnected));
                if let Err(e) = checkpoint(&conn) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries");
                }
                if last {
                    return;
                }
            })
            .map_err(|e| format!("cannot start the checkpoint thread: {e}"))?;
        Ok(Checkpointer { stop: Some(stop), thread: Some(thread) })
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

/// One passive checkpoint; a restarting one if the log has grown past `WAL_FRAMES_MAX`.
fn checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let (_busy, log, _done): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if log > WAL_FRAMES_MAX {
        let (busy, log_after, _): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        tracing::debug!(frames = log, busy, log_after, "WAL past its limit: restarting checkpoint");
    }
    Ok(())
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
