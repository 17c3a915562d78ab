//! The shell's part of `buffer: auto`: each store's latency and each (store, item)'s recent
//! sales, kept current in the core `State` (`set_store_latency`, `set_sales_velocity`).
//!
//! The core sizes the buffer and counts the sales (`stockpool_core::velocity`); it reads
//! no clock, so the server gives it the inputs:
//! - a store's `Latency` from its channel and schedule (`channel_latency`): how long after a
//!   sale stockpool hears of it, and how long until the store shows a new quantity;
//! - a (store, item)'s `Velocity`: units ordered in the last `VELOCITY_WINDOW_SECONDS`,
//!   from the orders taken in (rebuilt from the stored orders when a workspace loads).
//!
//! A velocity changes when an order arrives and when a sale ages out of the window: the
//! server's sweeper asks `Sales::next_change` and, once it is due, `Sales::age` forgets
//! what left the window, so a buffer shrinks again when a store stops selling.

use stockpool_core::velocity::SalesWindow;
use stockpool_core::{Channel, ItemId, Latency, Order, Schedule, State, Store, Timestamp};

pub use stockpool_core::velocity::{SALES_PER_KEY_MAX, VELOCITY_WINDOW_SECONDS};

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

/// Recent sales per (store, item), counted by the core's `SalesWindow` (the one the
/// simulator uses too) and handed to the `State` as each key's velocity moves.
#[derive(Clone, Debug, Default)]
pub struct Sales {
    window: SalesWindow,
}

impl Sales {
    /// Counts an order's lines and hands the new velocities to `state`; returns the items
    /// whose velocity moved.
    pub fn record(&mut self, state: &mut State, order: &Order, now: Timestamp) -> Vec<ItemId> {
        let mut items = Vec::new();
        for line in &order.lines {
            let Some(item) = line.item else { continue };
            self.window.record(order.store, item, line.quantity, order.created_at);
            if !items.contains(&item) {
                items.push(item);
            }
        }
        for &item in &items {
            state.set_sales_velocity(order.store, item, self.window.velocity(order.store, item, now));
        }
        items
    }

    /// When the oldest counted sale leaves the window (the sweeper then calls `age`).
    pub fn next_change(&self) -> Option<Timestamp> {
        self.window.next_change()
    }

    /// Forgets the sales that left the window and hands the new velocities to `state`;
    /// returns the items whose velocity moved.
    pub fn age(&mut self, state: &mut State, now: Timestamp) -> Vec<ItemId> {
        let mut items = Vec::new();
        for (store, item) in self.window.age(now) {
            state.set_sales_velocity(store, item, self.window.velocity(store, item, now));
            if !items.contains(&item) {
                items.push(item);
            }
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stockpool_core::StoreId;

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
