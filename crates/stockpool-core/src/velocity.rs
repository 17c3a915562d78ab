//! Recent sales per (store, item): the rolling window behind `buffer: auto`'s velocity.
//!
//! The server (from the orders it takes in, rebuilt from stored orders on load) and the
//! simulator keep one `SalesWindow` each and hand its `Velocity` to the core `State`
//! (`State::set_sales_velocity`). It is pure: sales come in with their time, and
//! questions take `now`. A sale counts while it is at most `window_seconds` old
//! (`at >= now - window`); `next_change` says when the oldest counted sale stops
//! counting, and `age` then forgets everything that left the window and names the keys
//! whose velocity moved, so a buffer shrinks again when a store stops selling.

use crate::buffer::Velocity;
use crate::catalog::Qty;
use crate::ids::{IdMap, ItemId, StoreId, Timestamp};
use std::collections::VecDeque;

/// The window the server counts recent sales over: one day, which covers a daily cycle.
pub const VELOCITY_WINDOW_SECONDS: i64 = 86_400;

/// Sale events kept per (store, item); beyond it the oldest is merged into the next
/// oldest, so the count stays exact and memory stays bounded (the merged units leave the
/// window a little later than they would have).
pub const SALES_PER_KEY_MAX: usize = 1024;

/// Units sold per (store, item) over a rolling window.
#[derive(Clone, Debug)]
pub struct SalesWindow {
    window_ms: i64,
    /// Per key, sales oldest first: (when, units).
    recent: IdMap<(StoreId, ItemId), VecDeque<(Timestamp, Qty)>>,
}

impl Default for SalesWindow {
    fn default() -> Self {
        SalesWindow::new(VELOCITY_WINDOW_SECONDS)
    }
}

impl SalesWindow {
    /// An empty window of `window_seconds` (at least one second).
    pub fn new(window_seconds: i64) -> SalesWindow {
        SalesWindow { window_ms: window_seconds.max(1).saturating_mul(1000), recent: IdMap::default() }
    }

    pub fn window_seconds(&self) -> i64 {
        self.window_ms / 1000
    }

    /// Counts `units` of `item` sold on `store` at `at` (an order's creation time; sales
    /// may come in out of order, as when a workspace is rebuilt from stored orders).
    pub fn record(&mut self, store: StoreId, item: ItemId, units: Qty, at: Timestamp) {
        let events = self.recent.entry((store, item)).or_default();
        let pos = events.iter().rposition(|(t, _)| *t <= at).map_or(0, |p| p + 1);
        events.insert(pos, (at, units));
        if events.len() > SALES_PER_KEY_MAX {
            if let Some((_, q)) = events.pop_front() {
                if let Some(front) = events.front_mut() {
                    front.1 = front.1.saturating_add(q);
                }
            }
        }
    }

    /// Units of `item` sold on `store` in the window ending at `now`.
    pub fn velocity(&self, store: StoreId, item: ItemId, now: Timestamp) -> Velocity {
        let since = self.since(now);
        let units = self
            .recent
            .get(&(store, item))
            .map_or(0, |e| e.iter().filter(|(t, _)| *t >= since && *t <= now).map(|(_, q)| *q).sum());
        Velocity { units, window_seconds: self.window_seconds() }
    }

    /// The first instant at which a counted sale stops counting, if any sale is counted.
    pub fn next_change(&self) -> Option<Timestamp> {
        self.recent
            .values()
            .filter_map(|e| e.front())
            .map(|(at, _)| Timestamp(at.0.saturating_add(self.window_ms).saturating_add(1)))
            .min()
    }

    /// Forgets every sale that left the window at `now` and returns the keys whose
    /// velocity moved, in order.
    pub fn age(&mut self, now: Timestamp) -> Vec<(StoreId, ItemId)> {
        let since = self.since(now);
        let mut changed = Vec::new();
        for (key, events) in self.recent.iter_mut() {
            let before = events.len();
            while events.front().is_some_and(|(at, _)| *at < since) {
                events.pop_front();
            }
            if events.len() != before {
                changed.push(*key);
            }
        }
        self.recent.retain(|_, e| !e.is_empty());
        changed.sort_unstable();
        changed
    }

    /// Every (store, item) with a sale counted, in order.
    pub fn keys(&self) -> Vec<(StoreId, ItemId)> {
        let mut keys: Vec<(StoreId, ItemId)> = self.recent.keys().copied().collect();
        keys.sort_unstable();
        keys
    }

    fn since(&self, now: Timestamp) -> Timestamp {
        Timestamp(now.0.saturating_sub(self.window_ms))
    }
}
