//! The shell's part of `buffer: auto`: each store's latency and each (store, item)'s recent
//! sales, kept current in the core `State` (`set_store_latency`, `set_sales_velocity`).
//!
//! The core sizes the buffer; it reads no clock, so the server gives it the inputs:
//! - a store's `Latency` from its channel and schedule (`channel_latency`): how long after a
//!   sale stockpool hears of it, and how long until the store shows a new quantity;
//! - a (store, item)'s `Velocity`: units ordered in the last `VELOCITY_WINDOW_SECONDS`,
//!   from the orders taken in (rebuilt from the stored orders when a workspace loads).
//!
//! A velocity changes when an order arrives and when a sale ages out of the window: the
//! server's sweeper asks `Sales::next_change` and, once it is due, `Sales::age` forgets
//! what left the window, so a buffer shrinks again when a store stops selling.

use std::collections::VecDeque;
use stockpool_core::ids::IdMap;
use stockpool_core::{Channel, ItemId, Latency, Order, Qty, Schedule, State, Store, StoreId, Timestamp, Velocity};

/// The window recent sales are counted over: one day, which covers a daily cycle.
pub const VELOCITY_WINDOW_SECONDS: i64 = 86_400;
/// Sale events kept per (store, item); older ones are merged into the oldest kept, so the
/// count stays exact and memory stays bounded.
pub const SALES_PER_KEY_MAX: usize = 1024;

/// How late a channel's orders reach stockpool and how late its shown quantity follows.
///
/// Order latency: webhook channels (Shopify, WooCommerce, the generic webhook) deliver in
/// seconds; Etsy, Amazon and eBay orders are polled (receipts / orders APIs), so a sale is
/// heard of up to a polling interval later; a market stall is told by hand. Sync latency:
/// a realtime store shows a push within seconds, Amazon applies inventory feeds every few
/// minutes, and an `every_minutes: N` store waits up to N minutes for its next push.
/// The figures are the defaults documented in docs/limits.md.
pub fn channel_latency(store: &Store) -> Latency {
    let order_seconds = match store.channel {
        Channel::Shopify | Channel::Woocommerce | Channel::Webhook => 5,
        Channel::Etsy => 180,
        Channel::Ebay => 120,
        Channel::Amazon => 300,
        Channel::Manual => 3600,
    };
    let processing = match store.channel {
        Channel::Amazon => 600,
        _ => 5,
    };
    let schedule = match store.schedule {
        Schedule::Realtime => 0,
        Schedule::EveryMinutes(n) => i64::from(n) * 60,
    };
    Latency { sync_seconds: processing + schedule, order_seconds }
}

/// Recent sales per (store, item).
#[derive(Clone, Debug, Default)]
pub struct Sales {
    recent: IdMap<(StoreId, ItemId), VecDeque<(Timestamp, Qty)>>,
}

impl Sales {
    /// Counts an order's lines (those mapped to an item) as sales at the order's creation,
    /// and gives the core the new velocities. Returns the items whose velocity moved.
    pub fn record(&mut self, state: &mut State, order: &Order, now: Timestamp) -> Vec<ItemId> {
        let mut items = Vec::new();
        for line in &order.lines {
            let Some(item) = line.item else { continue };
            let events = self.recent.entry((order.store, item)).or_default();
            events.push_back((order.created_at, line.quantity));
            if events.len() > SALES_PER_KEY_MAX {
                if let Some((_, q)) = events.pop_front() {
                    if let Some(front) = events.front_mut() {
                        front.1 += q;
                    }
                }
            }
            if !items.contains(&item) {
                items.push(item);
            }
        }
        for &item in &items {
            self.publish(state, order.store, item, now);
        }
        items
    }

    /// When the oldest counted sale leaves the window, if any sale is counted.
    pub fn next_change(&self) -> Option<Timestamp> {
        self.recent
            .values()
            .filter_map(|events| events.front())
            .map(|(at, _)| Timestamp(at.0 + VELOCITY_WINDOW_SECONDS * 1000))
            .min()
    }

    /// Forgets every sale that left the window at `now`, gives the core the new velocities,
    /// and returns the items whose velocity moved.
    pub fn age(&mut self, state: &mut State, now: Timestamp) -> Vec<ItemId> {
        let since = Timestamp(now.0 - VELOCITY_WINDOW_SECONDS * 1000);
        let due: Vec<(StoreId, ItemId)> = self
            .recent
            .iter()
            .filter(|(_, events)| events.front().is_some_and(|(at, _)| *at < since))
            .map(|(k, _)| *k)
            .collect();
        let mut items = Vec::new();
        for (store, item) in due {
            self.publish(state, store, item, now);
            if self.recent.get(&(store, item)).is_some_and(|e| e.is_empty()) {
                self.recent.remove(&(store, item));
            }
            if !items.contains(&item) {
                items.push(item);
            }
        }
        items
    }

    /// Drops what left the window and sets the core's velocity for (store, item).
    fn publish(&mut self, state: &mut State, store: StoreId, item: ItemId, now: Timestamp) {
        let since = Timestamp(now.0 - VELOCITY_WINDOW_SECONDS * 1000);
        let units = match self.recent.get_mut(&(store, item)) {
            Some(events) => {
                while events.front().is_some_and(|(at, _)| *at < since) {
                    events.pop_front();
                }
                events.iter().map(|(_, q)| *q).sum()
            }
            None => 0,
        };
        state.set_sales_velocity(store, item, Velocity { units, window_seconds: VELOCITY_WINDOW_SECONDS });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(channel: Channel, schedule: Schedule) -> Store {
        Store { id: StoreId(1), code: "s".into(), name: "s".into(), channel, schedule, enabled: true }
    }

    #[test]
    fn webhook_channels_are_heard_at_once_and_polled_ones_later() {
        assert_eq!(channel_latency(&store(Channel::Shopify, Schedule::Realtime)).order_seconds, 5);
        assert_eq!(channel_latency(&store(Channel::Etsy, Schedule::Realtime)).order_seconds, 180);
        let amazon = channel_latency(&store(Channel::Amazon, Schedule::EveryMinutes(10)));
        assert_eq!(amazon, Latency { sync_seconds: 600 + 600, order_seconds: 300 });
    }
}
