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
//! A made-to-order product's pool is mostly what its materials can make, and those
//! materials are shared: a sale of another product made from the same clay, on any store
//! (this one included, since a channel lowers only the listing it sold, and two lines of
//! one order may need the same clay), takes capacity that this listing still shows until
//! it hears. That demand is held back too, by every store, the favoured one included (it
//! is favoured for its item, not for the materials other products need), except by one
//! product per material, the material's favoured product: the one that takes it fastest
//! among those that can still be made, so that the material's last units stay on sale.
//!
//! The core reads no clock, so the inputs come in as data that the shell keeps current:
//! each store's `Latency` and each (store, item)'s recent `Velocity`
//! (`State::set_store_latency`, `State::set_sales_velocity`). Arithmetic is in whole
//! thousandths of a unit; nothing here is floating point.

use crate::catalog::Qty;
use crate::ids::{ItemId, StoreId};
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

/// Recent sales, on one store, of another item that takes one of this item's components
/// (a made-to-order product's material): they lower this item's capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedSale {
    /// The item sold: this item itself (its own sales, which decide whether it is the
    /// component's favoured product), another product made from the component, or the
    /// component itself.
    pub item: ItemId,
    /// Units of the component one unit sold takes.
    pub takes: Qty,
    /// Whether one more unit of the item can be made (the component itself: sold) from
    /// what is available in the rule's warehouses now.
    pub can_make_one: bool,
    /// The selling store's order latency, in seconds: how long its sales go unheard.
    pub order_seconds: i64,
    pub velocity: Velocity,
}

/// One component of a made-to-order item and the recent sales that take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentDemand {
    /// Units of the component one unit of this item needs.
    pub needs: Qty,
    /// Every recent sale that takes the component, on every store, this item's included.
    pub sales: Vec<SharedSale>,
}

impl ComponentDemand {
    /// The component's favoured product: of the items that took it recently and can still
    /// be made, the one that takes it fastest (units of the component a day; ties: the
    /// smaller id). `None` when there is none.
    pub fn favoured_product(&self) -> Option<ItemId> {
        let mut rates: Vec<(ItemId, i128)> = Vec::new();
        for s in self.sales.iter().filter(|s| s.can_make_one) {
            let r = s.velocity.expected_milli(DAY_SECONDS).saturating_mul(i128::from(s.takes.max(0)));
            match rates.iter_mut().find(|(i, _)| *i == s.item) {
                Some((_, have)) => *have = have.saturating_add(r),
                None => rates.push((s.item, r)),
            }
        }
        rates.into_iter().filter(|(_, r)| *r > 0).max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map(|(i, _)| i)
    }
}

const DAY_SECONDS: i64 = 86_400;

/// What `buffer: auto` decided for one store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoBuffer {
    /// The store that shows the whole pool: the rule's priority store, else the store that
    /// sells the item fastest (ties: the freshest picture, then the rule's store order).
    /// `None` when no store of the rule sold the item recently.
    pub favoured_store: Option<StoreId>,
    /// Thousandths of a unit the other stores are expected to sell before this store hears.
    pub expected_elsewhere_milli: i64,
    /// For a made-to-order item: thousandths of a unit of its capacity that sales of other
    /// items sharing its components (on any store) are expected to take before this store
    /// hears; the most over the components it is not the favoured product of. 0 for an
    /// item not made to order.
    pub expected_shared_milli: i64,
    /// For a made-to-order item: whether it is the favoured product of one of its
    /// components (of the products made from it that can still be made, it takes it
    /// fastest), so that what the others take of that component is not held back.
    pub favoured_product: bool,
    /// Units held back from this store: `ceil(L + 2 sqrt(L))` with `L` the expected units
    /// above (for the favoured store only the shared ones); 0 when `L` is 0.
    pub held_back: Qty,
}

/// Sizes the buffer of `store` among `stores` (the rule's stores, in the rule's order).
///
/// `held_back = ceil(L + 2 sqrt(L))` where `L` is the expected units other sales take
/// from this store's pool in its blind window. `2 sqrt(L)` is about two standard
/// deviations of a Poisson count: bursts beyond the mean are the oversells a buffer is for.
/// `L` adds up:
/// - the item on the other stores: for each other store T, T's velocity times
///   (T's order latency + this store's sync latency); left out for the favoured store;
/// - for a made-to-order item, what `shared` (its components and the other sales that take
///   them) takes from its capacity: per component, the component units those sales take
///   in the same window (with the seller's order latency), over the units one of this
///   item needs; the most over the components, since the scarcest one decides. A
///   component whose favoured product is this item counts 0, on every store.
pub fn auto_buffer(
    item: ItemId,
    store: StoreId,
    stores: &[StoreDemand],
    priority_store: Option<StoreId>,
    shared: &[ComponentDemand],
) -> AutoBuffer {
    let favoured_store = priority_store.or_else(|| favoured(stores));
    let Some(me) = stores.iter().find(|d| d.store == store) else {
        return AutoBuffer {
            favoured_store,
            expected_elsewhere_milli: 0,
            expected_shared_milli: 0,
            favoured_product: false,
            held_back: 0,
        };
    };
    let sync = me.latency.sync_seconds;
    let elsewhere: i128 = stores
        .iter()
        .filter(|d| d.store != store)
        .map(|d| d.velocity.expected_milli(d.latency.order_seconds.saturating_add(sync)))
        .sum();
    let shared_milli: i128 = shared
        .iter()
        .filter(|c| c.needs > 0 && c.favoured_product() != Some(item))
        .map(|c| {
            let taken: i128 = c
                .sales
                .iter()
                .filter(|s| s.item != item)
                .map(|s| {
                    s.velocity
                        .expected_milli(s.order_seconds.saturating_add(sync))
                        .saturating_mul(i128::from(s.takes.max(0)))
                })
                .sum();
            taken / i128::from(c.needs)
        })
        .max()
        .unwrap_or(0);
    let expected = shared_milli.saturating_add(if favoured_store == Some(store) { 0 } else { elsewhere });
    let held_back = if expected == 0 {
        0
    } else {
        // In thousandths: 2 sqrt(L) = 2 sqrt(L_milli * 1000) / 1000 * 1000.
        let margin = 2 * isqrt(expected.saturating_mul(1000));
        let total = expected.saturating_add(margin);
        ((total + 999) / 1000).min(i128::from(Qty::MAX)) as Qty
    };
    let milli = |x: i128| x.min(i128::from(i64::MAX)) as i64;
    AutoBuffer {
        favoured_store,
        expected_elsewhere_milli: milli(elsewhere),
        expected_shared_milli: milli(shared_milli),
        favoured_product: shared.iter().any(|c| c.favoured_product() == Some(item)),
        held_back,
    }
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
