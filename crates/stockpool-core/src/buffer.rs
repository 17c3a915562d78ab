//! `buffer: auto`: how many units a store holds back because other stores may sell them
//! before it hears.
//!
//! Every channel shows the last quantity pushed to it, and stockpool hears of its orders
//! some time after they happen. While store S still shows units that another store has
//! already sold, both can sell the same unit: an oversell. The window in which that can
//! happen is, for a sale on store T, T's order latency (until stockpool hears of it) plus
//! S's sync latency (until S shows the new number). `buffer: auto` holds back from S what
//! the other stores of the rule are expected to sell in that window, with a margin for
//! bursts, and lets one store, the favoured one, show the whole pool so that the last
//! units stay on sale somewhere.
//!
//! The core reads no clock, so the inputs come in as data that the shell keeps current:
//! each store's `Latency` and each (store, item)'s recent `Velocity`
//! (`State::set_store_latency`, `State::set_sales_velocity`). Arithmetic is in whole
//! thousandths of a unit; nothing here is floating point.

use crate::catalog::Qty;
use crate::ids::StoreId;
use serde::{Deserialize, Serialize};

/// How much a rule holds back from each store beyond its rate, threshold and safety stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Buffer {
    /// Nothing: the rule's rate decides alone (the default).
    #[default]
    None,
    /// Sized per store from recent sales velocity and the channels' latencies.
    Auto,
}

impl Buffer {
    pub fn is_none(&self) -> bool {
        *self == Buffer::None
    }
}

/// How stale a store's picture of the pool can be, in whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Latency {
    /// From a change in stockpool until the channel shows the new quantity: queueing
    /// behind the push rate limit, the push itself, and the channel's own processing
    /// (Amazon applies inventory feeds every few minutes).
    pub sync_seconds: i64,
    /// From a shopper's order on the channel until stockpool hears of it: a webhook in
    /// seconds, a polled channel up to its polling interval.
    pub order_seconds: i64,
}

/// Recent sales of one item on one store: `units` sold in the last `window_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Velocity {
    pub units: Qty,
    pub window_seconds: i64,
}

impl Velocity {
    /// Whether it says anything (a sale in a positive window).
    pub fn is_known(&self) -> bool {
        self.units > 0 && self.window_seconds > 0
    }

    /// Whether `self` sells faster than `other` (compared without division).
    fn faster_than(&self, other: &Velocity) -> bool {
        i128::from(self.units) * i128::from(other.window_seconds.max(1))
            > i128::from(other.units) * i128::from(self.window_seconds.max(1))
    }

    /// Thousandths of a unit expected in `seconds`.
    fn expected_milli(&self, seconds: i64) -> i128 {
        if !self.is_known() {
            return 0;
        }
        i128::from(self.units) * 1000 * i128::from(seconds.max(0)) / i128::from(self.window_seconds)
    }
}

/// One store of the rule as the buffer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreDemand {
    pub store: StoreId,
    pub latency: Latency,
    pub velocity: Velocity,
}

/// What `buffer: auto` decided for one store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoBuffer {
    /// The store that shows the whole pool: the rule's priority store, else the store that
    /// sells the item fastest (ties: the freshest picture, then the rule's store order).
    /// `None` when no store of the rule sold the item recently.
    pub favoured_store: Option<StoreId>,
    /// Thousandths of a unit the other stores are expected to sell before this store hears.
    pub expected_elsewhere_milli: i64,
    /// Units held back from this store (0 for the favoured store).
    pub held_back: Qty,
}

/// Sizes the buffer of `store` among `stores` (the rule's stores, in the rule's order).
///
/// `held_back = ceil(L + 2 sqrt(L))` where `L` is the expected units the other stores
/// sell in this store's blind window: for each other store T, T's velocity times
/// (T's order latency + this store's sync latency). `2 sqrt(L)` is about two standard
/// deviations of a Poisson count: bursts beyond the mean are the oversells a buffer is for.
pub fn auto_buffer(store: StoreId, stores: &[StoreDemand], priority_store: Option<StoreId>) -> AutoBuffer {
    let favoured_store = priority_store.or_else(|| favoured(stores));
    let Some(me) = stores.iter().find(|d| d.store == store) else {
        return AutoBuffer { favoured_store, expected_elsewhere_milli: 0, held_back: 0 };
    };
    let expected: i128 = stores
        .iter()
        .filter(|d| d.store != store)
        .map(|d| d.velocity.expected_milli(d.latency.order_seconds.saturating_add(me.latency.sync_seconds)))
        .sum();
    let expected_elsewhere_milli = expected.min(i128::from(i64::MAX)) as i64;
    let held_back = if favoured_store == Some(store) || expected == 0 {
        0
    } else {
        // In thousandths: 2 sqrt(L) = 2 sqrt(L_milli * 1000) / 1000 * 1000.
        let margin = 2 * isqrt(expected.saturating_mul(1000));
        let total = expected.saturating_add(margin);
        ((total + 999) / 1000).min(i128::from(Qty::MAX)) as Qty
    };
    AutoBuffer { favoured_store, expected_elsewhere_milli, held_back }
}

/// The store that sells fastest; ties go to the shorter blind window, then rule order.
fn favoured(stores: &[StoreDemand]) -> Option<StoreId> {
    let mut best: Option<&StoreDemand> = None;
    for d in stores.iter().filter(|d| d.velocity.is_known()) {
        best = match best {
            None => Some(d),
            Some(b) => {
                let window = |x: &StoreDemand| x.latency.sync_seconds.saturating_add(x.latency.order_seconds);
                if d.velocity.faster_than(&b.velocity)
                    || (!b.velocity.faster_than(&d.velocity) && window(d) < window(b))
                {
                    Some(d)
                } else {
                    Some(b)
                }
            }
        };
    }
    best.map(|d| d.store)
}

/// Integer square root, rounded down (Newton's method).
fn isqrt(n: i128) -> i128 {
    if n < 2 {
        return n.max(0);
    }
    let mut x = n;
    let mut y = (x + 1) / 2;
    while y < x {
        x = y;
        y = (x + n / x) / 2;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_rounds_down() {
        for n in 0..2000i128 {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "isqrt({n}) = {r}");
        }
    }
}
