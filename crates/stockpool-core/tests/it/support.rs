//! Shared helpers: a small world of warehouses, stores and items built by name.

use stockpool_core::build::Builder;
use stockpool_core::*;

pub const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// Builds an order of `(store_sku, quantity)` lines for `store`.
pub fn order(b: &Builder, store: StoreId, external_id: &str, lines: &[(&str, Qty)]) -> NewOrder {
    NewOrder {
        store,
        external_id: external_id.into(),
        lines: lines
            .iter()
            .map(|(sku, q)| NewLine {
                store_sku: sku.to_string(),
                listing: b.state.listing_by_store_sku(store, sku).map(|l| l.id),
                quantity: *q,
            })
            .collect(),
        payment: Payment::Immediate,
        pay_within_seconds: None,
        source: OrderSource::Api,
    }
}

/// Takes an order and applies it; returns the decided order.
#[track_caller]
pub fn place(b: &mut Builder, new: &NewOrder, now: Timestamp) -> Order {
    match b.state.take_order(new, now).expect("order is valid") {
        Intake::Created { order, change } => {
            b.state.apply(&change);
            b.state.order(order).unwrap().clone()
        }
        Intake::Duplicate { order } => panic!("order {order} was a duplicate"),
    }
}

/// Takes an API order of `(store_sku, quantity)` lines at `NOW` and applies it.
#[track_caller]
pub fn place_order(b: &mut Builder, store: StoreId, external_id: &str, lines: &[(&str, Qty)]) -> Order {
    let new = order(b, store, external_id, lines);
    place(b, &new, NOW)
}

/// Runs a transition, applies its change and returns the order afterwards.
#[track_caller]
pub fn step(b: &mut Builder, id: OrderId, transition: impl FnOnce(&State) -> Result<Change, OrderError>) -> Order {
    let change = transition(&b.state).expect("transition is allowed");
    b.state.apply(&change);
    assert_eq!(b.state.check(), vec![], "state keeps its promises");
    b.state.order(id).unwrap().clone()
}

pub fn level(b: &Builder, sku: &str, w: WarehouseId) -> (Qty, Qty) {
    let l = b.state.level(b.sku(sku), w);
    (l.on_hand, l.reserved)
}

pub fn line_statuses(o: &Order) -> Vec<&'static str> {
    o.lines.iter().map(|l| l.status.as_str()).collect()
}
