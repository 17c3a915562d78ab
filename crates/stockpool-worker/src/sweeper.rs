//! The deadline sweeper: expires order requests and unpaid acceptances whose deadline
//! passed (SPEC section 4: at least once a second) and ages the sales `buffer: auto`
//! counts, through the writer like every other write (`Storage::sweep_due`).

use std::time::Duration;
use stockpool_store::Storage;
use tokio::sync::watch;

/// How often the sweeper runs: twice within SPEC's "at least once a second".
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

/// Sweeps every `SWEEP_INTERVAL` until `stop` turns true (or its sender is gone).
pub async fn run(store: Storage, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = store.sweep_due().await {
                    tracing::warn!(error = %e, "deadline sweep failed; retrying next tick");
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
}
