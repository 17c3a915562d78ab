//! What `/metrics` shows of each store's pushes: attempts by result and how stale the
//! figures they delivered had been.
//!
//! The writer records a settled batch here when it decides it (like the other counters of
//! `Metrics`): for each attempt its result, and for each push the channel took, the time
//! from when the listing's figure first moved away from what the channel had (the outbox
//! row's `queued_at`, so the oldest of the changes it coalesced) to the settle. That is
//! the staleness a seller cares about: how long a channel showed a figure we already knew
//! to be wrong. Keys are `(workspace id, store id)`; the HTTP layer names them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use stockpool_core::Timestamp;

/// Most stores `/metrics` lists (`Storage::store_gauges`): a scrape stays bounded.
pub const METRICS_STORES_MAX: i64 = 10_000;

/// One store's names and outbox, as `/metrics` shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreGauge {
    pub workspace_id: i64,
    pub workspace: String,
    pub store_id: i64,
    pub store: String,
    /// Listings with a push queued.
    pub pending: i64,
    /// When the oldest of them first moved away from what the channel has.
    pub oldest_queued_at: Option<Timestamp>,
}

/// Upper bounds of the staleness histogram's buckets, in milliseconds (Prometheus's
/// `le`, in seconds, is these over 1,000); the last bucket is `+Inf`.
pub const STALENESS_BUCKETS_MS: [i64; 14] =
    [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 60_000, 300_000, 900_000];

/// Sync-record results in SPEC section 6's order: the index of each in `StorePushes::results`.
pub const RESULTS: [&str; 5] = ["ok", "retry", "failed", "stale", "drift"];

/// One store's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorePushes {
    /// Attempts by result, in `RESULTS` order.
    pub results: [u64; 5],
    /// Pushes taken, by staleness bucket (`STALENESS_BUCKETS_MS`, then `+Inf`); not
    /// cumulative (the renderer sums).
    pub staleness: [u64; 15],
    pub staleness_sum_ms: i64,
    /// Calls made to the channel for the store: push calls (one a listing where the
    /// channel takes one a request), read-back pages and order polls.
    pub calls: u64,
    /// The rate the dispatcher paces the store's calls by, in thousandths of a call a
    /// second (0: not configured on this node). `calls` against it is the budget's use.
    pub rate_milli: u64,
    /// When the store's last completed order poll started (polled channels).
    pub polled_at: Option<Timestamp>,
}

impl StorePushes {
    /// Counts one attempt with result `result` (one of `RESULTS`).
    pub fn attempt(&mut self, result: &str) {
        if let Some(i) = RESULTS.iter().position(|r| *r == result) {
            self.results[i] += 1;
        }
    }

    /// Counts one push taken `staleness_ms` after its figure first moved.
    pub fn delivered(&mut self, staleness_ms: i64) {
        let ms = staleness_ms.max(0);
        let i = STALENESS_BUCKETS_MS.iter().position(|b| ms <= *b).unwrap_or(STALENESS_BUCKETS_MS.len());
        self.staleness[i] += 1;
        self.staleness_sum_ms = self.staleness_sum_ms.saturating_add(ms);
    }
}

/// Every store's counters, by `(workspace id, store id)`.
#[derive(Debug, Default)]
pub struct PushMetrics {
    stores: Mutex<BTreeMap<(i64, i64), StorePushes>>,
}

impl PushMetrics {
    /// Applies `f` to one store's counters.
    pub fn record(&self, ws: i64, store: i64, f: impl FnOnce(&mut StorePushes)) {
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        f(stores.entry((ws, store)).or_default());
    }

    /// A copy of every store's counters.
    pub fn snapshot(&self) -> BTreeMap<(i64, i64), StorePushes> {
        self.stores.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_lands_in_the_first_bucket_it_fits() {
        let mut s = StorePushes::default();
        for ms in [0, 5, 6, 100, 1_000_000] {
            s.delivered(ms);
        }
        assert_eq!(s.staleness[0], 2, "0 and 5 ms are within 5 ms");
        assert_eq!(s.staleness[1], 1, "6 ms is within 10 ms");
        assert_eq!(s.staleness[4], 1, "100 ms is within 100 ms");
        assert_eq!(s.staleness[14], 1, "a quarter hour and more is +Inf");
        assert_eq!(s.staleness_sum_ms, 1_000_111);
        s.attempt("retry");
        s.attempt("nonsense");
        assert_eq!(s.results, [0, 1, 0, 0, 0]);
    }
}
