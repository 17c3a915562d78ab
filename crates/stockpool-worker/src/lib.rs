//! stockpool-worker: the tasks that run beside the HTTP API, each at its own pace.
//!
//! `Workers::start` spawns every background task on the caller's runtime and keeps its
//! handle; `Workers::stop` tells them all to stop and awaits each one, so no task outlives
//! the server and none is fire-and-forget. Today that is the deadline sweeper
//! (`sweeper.rs`); channel sync's dispatchers, pollers and reconciliation join it here.
//!
//! Workers know the store's handle and its commands, never SQL or a channel's HTTP.

pub mod sweeper;

use stockpool_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The background tasks of one server process.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Workers {
    /// Starts every background task for `store`.
    pub fn start(store: Store) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![("deadline sweeper", tokio::spawn(sweeper::run(store, stopped)))];
        Workers { stop, tasks }
    }

    /// Tells every task to stop and waits for each to finish its current step.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(task = name, error = %e, "a background task panicked");
            }
        }
    }
}
