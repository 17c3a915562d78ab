//! Property tests: random workspaces, rules, component trees and operation sequences.
//!
//! After every operation the state must keep every promise of SPEC sections 1 to 4:
//! `0 <= reserved <= on_hand`; each stock level is the sum of its movements; `reserved`
//! is exactly what open orders and cards hold (so shared materials are never promised
//! twice); no listing shows more than its rule's pool except the configured
//! `continue_quantity`; and what a listing shows under `stop` can really be sold.

use crate::support::NOW;
use proptest::prelude::*;
use stockpool_core::build::Builder;
use stockpool_core::*;

/// One item: kind selector, zero policy, production card?, stock_plus_capacity, and
/// components as (index into earlier items, quantity).
type ItemSeed = (u8, u8, bool, bool, Vec<(u8, i64)>);
/// One rule: priority, rate, threshold, safety offset, warehouse mask, store mask,
/// priority store.
type RuleSeed = (i32, u8, i64, Option<i64>, u8, u8, u8);

/// A workspace described by small numbers; `build` turns it into a `State`.
#[derive(Clone, Debug)]
struct World {
    warehouses: usize,
    stores: Vec<u8>,
    items: Vec<ItemSeed>,
    /// (item, store) pairs listed, as raw indices.
    listings: Vec<(u8, u8)>,
    rules: Vec<RuleSeed>,
    /// Initial stock: (item, warehouse, quantity).
    stock: Vec<(u8, u8, i64)>,
}

#[derive(Clone, Debug)]
enum Op {
    Order { store: u8, lines: Vec<(u8, i64)>, after_acceptance: bool },
    Redeliver { order: u8 },
    Accept { order: u8 },
    Decline { order: u8 },
    Pay { order: u8 },
    Cancel { order: u8 },
    Fulfill { order: u8 },
    Adjust { item: u8, warehouse: u8, delta: i64 },
    Card { item: u8, warehouse: u8, quantity: i64 },
    StartCard { card: u8 },
    FinishCard { card: u8 },
    CancelCard { card: u8 },
    Wait { seconds: i64 },
}

fn world() -> impl Strategy<Value = World> {
    (
        1usize..=3,
        prop::collection::vec(0u8..7, 1..=3),
        prop::collection::vec(
            (0u8..10, 0u8..4, any::<bool>(), any::<bool>(), prop::collection::vec((any::<u8>(), 1i64..4), 0..=3)),
            2..=8,
        ),
        prop::collection::vec((any::<u8>(), any::<u8>()), 1..=12),
        prop::collection::vec(
            (0i32..5, 1u8..=100, 0i64..6, prop::option::of(1i64..10), any::<u8>(), any::<u8>(), any::<u8>()),
            0..=3,
        ),
        prop::collection::vec((any::<u8>(), any::<u8>(), 0i64..30), 0..=12),
    )
        .prop_map(|(warehouses, stores, items, listings, rules, stock)| World {
            warehouses,
            stores,
            items,
            listings,
            rules,
            stock,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), prop::collection::vec((any::<u8>(), 1i64..6), 1..=3), any::<bool>())
            .prop_map(|(store, lines, after_acceptance)| Op::Order { store, lines, after_acceptance }),
        1 => any::<u8>().prop_map(|order| Op::Redeliver { order }),
        1 => any::<u8>().prop_map(|order| Op::Accept { order }),
        1 => any::<u8>().prop_map(|order| Op::Decline { order }),
        1 => any::<u8>().prop_map(|order| Op::Pay { order }),
        1 => any::<u8>().prop_map(|order| Op::Cancel { order }),
        1 => any::<u8>().prop_map(|order| Op::Fulfill { order }),
        2 => (any::<u8>(), any::<u8>(), -10i64..20).prop_map(|(item, warehouse, delta)| Op::Adjust { item, warehouse, delta }),
        1 => (any::<u8>(), any::<u8>(), 1i64..4).prop_map(|(item, warehouse, quantity)| Op::Card { item, warehouse, quantity }),
        1 => any::<u8>().prop_map(|card| Op::StartCard { card }),
        1 => any::<u8>().prop_map(|card| Op::FinishCard { card }),
        1 => any::<u8>().prop_map(|card| Op::CancelCard { card }),
        1 => (0i64..200_000).prop_map(|seconds| Op::Wait { seconds }),
    ]
}

const CHANNELS: [Channel; 7] = [
    Channel::Shopify,
    Channel::Woocommerce,
    Channel::Etsy,
    Channel::Amazon,
    Channel::Ebay,
    Channel::Webhook,
    Channel::Manual,
];
const POLICIES: [ZeroPolicy; 4] = [ZeroPolicy::Stop, ZeroPolicy::Continue, ZeroPolicy::Backorder, ZeroPolicy::Request];

struct Built {
    b: Builder,
    warehouses: Vec<WarehouseId>,
    stores: Vec<StoreId>,
    skus: Vec<String>,
}

fn build(w: &World) -> Built {
    let mut b = Builder::new();
    let warehouses: Vec<WarehouseId> = (0..w.warehouses).map(|i| b.warehouse(&format!("W{i}"))).collect();
    let stores: Vec<StoreId> =
        w.stores.iter().enumerate().map(|(i, c)| b.store(&format!("S{i}"), CHANNELS[*c as usize])).collect();
    let mut skus: Vec<String> = Vec::new();
    for (i, (kind, policy, card, plus, comps)) in w.items.iter().enumerate() {
        let sku = format!("I{i}");
        // Kinds: mostly materials and products; bundles only over earlier items.
        let kind = match kind {
            0..=3 => ItemKind::Material,
            4..=7 => ItemKind::Product,
            _ => ItemKind::Bundle,
        };
        b.item(&sku, kind);
        let mut list: Vec<(String, i64)> = Vec::new();
        if i > 0 {
            for (c, q) in comps {
                let c = &skus[*c as usize % i];
                let c_kind = b.state.item_by_sku(c).unwrap().kind;
                if list.iter().any(|(s, _)| s == c) || (c_kind == ItemKind::Bundle && kind != ItemKind::Bundle) {
                    continue;
                }
                list.push((c.clone(), *q));
            }
        }
        let kind = if kind == ItemKind::Bundle && list.is_empty() { ItemKind::Product } else { kind };
        b.edit(&sku, |it| {
            it.kind = kind;
            it.zero_policy = POLICIES[*policy as usize];
            it.make_action = if *card { MakeAction::ProductionCard } else { MakeAction::Deduct };
            it.stock_plus_capacity = *plus && kind != ItemKind::Bundle;
            it.continue_quantity = 2;
            it.accept_within_seconds = 3600;
        });
        let refs: Vec<(&str, i64)> = list.iter().map(|(s, q)| (s.as_str(), *q)).collect();
        b.components(&sku, &refs);
        skus.push(sku);
    }
    for (item, store) in &w.listings {
        let sku = skus[*item as usize % skus.len()].clone();
        let store = stores[*store as usize % stores.len()];
        if b.state.listing_by_store_sku(store, &sku).is_none() {
            b.listing(store, &sku);
        }
    }
    for (i, (priority, rate, threshold, safety, wmask, smask, ps)) in w.rules.iter().enumerate() {
        let ws: Vec<WarehouseId> = pick(&warehouses, *wmask);
        let ss: Vec<StoreId> = pick(&stores, *smask);
        b.rule(&format!("R{i}"), &ws, &ss, |r| {
            r.priority = *priority;
            r.sync_rate_percent = *rate;
            r.stock_threshold = *threshold;
            if let Some(offset) = safety {
                r.priority_store = Some(ss[*ps as usize % ss.len()]);
                r.safety_stock = Some(threshold + offset);
            }
            // Bit 6 of the warehouse mask (unused for up to 3 warehouses) turns on the buffer.
            if wmask & 0x40 != 0 {
                r.buffer = Buffer::Auto;
            }
        });
    }
    // Inputs of `buffer: auto`, derived from the indices so every case has some.
    for (si, s) in stores.iter().enumerate() {
        b.state.set_store_latency(*s, Latency { sync_seconds: 30 * si as i64, order_seconds: 90 * si as i64 });
        for (ii, sku) in skus.iter().enumerate() {
            let item = b.sku(sku);
            b.state.set_sales_velocity(*s, item, Velocity { units: ((ii + si) % 4) as i64 * 20, window_seconds: 3600 });
        }
    }
    for (item, wh, q) in &w.stock {
        let sku = skus[*item as usize % skus.len()].clone();
        if b.state.item_by_sku(&sku).unwrap().kind != ItemKind::Bundle && *q > 0 {
            b.stock(&sku, warehouses[*wh as usize % warehouses.len()], *q);
        }
    }
    Built { b, warehouses, stores, skus }
}

/// A non-empty subset chosen by a bit mask, in a mask-dependent order.
fn pick<T: Copy>(all: &[T], mask: u8) -> Vec<T> {
    let mut out: Vec<T> = all.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, t)| *t).collect();
    if out.is_empty() {
        out.push(all[mask as usize % all.len()]);
    }
    if mask & 0x80 != 0 {
        out.reverse();
    }
    out
}

/// Every promise, checked on the whole state.
fn assert_promises(s: &State) -> Result<(), TestCaseError> {
    prop_assert_eq!(s.check(), vec![]);
    for l in s.listings() {
        let e = s.explain(l.id).unwrap();
        let item = s.item(l.item).unwrap();
        let pool = e.steps.iter().find_map(|st| match st {
            Step::Pool { pool, .. } => Some(*pool),
            _ => None,
        });
        let published = e.published.quantity;
        match pool {
            None => prop_assert_eq!(published, 0, "an inactive listing shows 0"),
            Some(pool) => prop_assert!(
                published <= pool || (item.zero_policy.keeps_selling() && published == item.continue_quantity),
                "listing {} shows {} over a pool of {}\n{}",
                l.id,
                published,
                pool,
                e
            ),
        }
        // What a `stop` listing shows can be sold: an order for exactly that is never oversold.
        if item.zero_policy == ZeroPolicy::Stop && published > 0 {
            let new = NewOrder {
                store: l.store,
                external_id: "probe".into(),
                lines: vec![NewLine { store_sku: l.store_sku.clone(), listing: Some(l.id), quantity: published }],
                payment: Payment::Immediate,
                pay_within_seconds: None,
                source: OrderSource::Channel,
            };
            if s.order_by_external_id(l.store, "probe").is_none() {
                match s.take_order(&new, NOW).unwrap() {
                    Intake::Created { change, .. } => {
                        let o = &change.orders[0];
                        prop_assert_eq!(
                            o.lines[0].oversold,
                            0,
                            "listing {} shows {} but cannot sell it\n{}",
                            l.id,
                            published,
                            e
                        );
                    }
                    Intake::Duplicate { .. } => unreachable!(),
                }
            }
        }
    }
    Ok(())
}

fn run(world: &World, ops: &[Op]) -> Result<(), TestCaseError> {
    let Built { mut b, warehouses, stores, skus } = build(world);
    assert_promises(&b.state)?;
    let mut now = NOW;
    let mut orders: Vec<(NewOrder, OrderId)> = Vec::new();
    let mut cards: Vec<CardId> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let pick_order = |i: &u8| orders.get(*i as usize % orders.len().max(1)).map(|(_, id)| *id);
        let change: Option<Change> = match op {
            Op::Order { store, lines, after_acceptance } => {
                let store = stores[*store as usize % stores.len()];
                let lines = lines
                    .iter()
                    .map(|(i, q)| {
                        let sku = &skus[*i as usize % skus.len()];
                        NewLine {
                            store_sku: sku.clone(),
                            listing: b.state.listing_by_store_sku(store, sku).map(|l| l.id),
                            quantity: *q,
                        }
                    })
                    .collect();
                let new = NewOrder {
                    store,
                    external_id: format!("O{n}"),
                    lines,
                    payment: if *after_acceptance { Payment::AfterAcceptance } else { Payment::Immediate },
                    pay_within_seconds: Some(1800),
                    source: OrderSource::Channel,
                };
                match b.state.take_order(&new, now).unwrap() {
                    Intake::Created { order, change } => {
                        orders.push((new, order));
                        cards.extend(change.cards.iter().map(|c| c.id));
                        Some(change)
                    }
                    Intake::Duplicate { .. } => unreachable!("fresh external id"),
                }
            }
            Op::Redeliver { order } => {
                if let Some((new, id)) = orders.get(*order as usize % orders.len().max(1)) {
                    prop_assert_eq!(b.state.take_order(new, now).unwrap(), Intake::Duplicate { order: *id });
                }
                None
            }
            Op::Accept { order } => pick_order(order).and_then(|id| b.state.accept(id, now).ok()),
            Op::Decline { order } => pick_order(order).and_then(|id| b.state.decline(id, now).ok()),
            Op::Pay { order } => pick_order(order).and_then(|id| b.state.pay(id, now).ok()),
            Op::Cancel { order } => pick_order(order).and_then(|id| b.state.cancel(id, now).ok()),
            Op::Fulfill { order } => pick_order(order).and_then(|id| b.state.fulfill(id, now).ok()),
            Op::Adjust { item, warehouse, delta } => {
                let item = b.sku(&skus[*item as usize % skus.len()]);
                let w = warehouses[*warehouse as usize % warehouses.len()];
                b.state.adjust(item, w, Adjustment::Delta(*delta), "counted", now).ok()
            }
            Op::Card { item, warehouse, quantity } => {
                let item = b.sku(&skus[*item as usize % skus.len()]);
                let w = warehouses[*warehouse as usize % warehouses.len()];
                b.state.create_card(item, w, *quantity, now).ok().map(|(id, c)| {
                    cards.push(id);
                    c
                })
            }
            Op::StartCard { card } => {
                cards.get(*card as usize % cards.len().max(1)).and_then(|c| b.state.start_card(*c, now).ok())
            }
            Op::FinishCard { card } => {
                cards.get(*card as usize % cards.len().max(1)).and_then(|c| b.state.finish_card(*c, now).ok())
            }
            Op::CancelCard { card } => {
                cards.get(*card as usize % cards.len().max(1)).and_then(|c| b.state.cancel_card(*c, now).ok())
            }
            Op::Wait { seconds } => {
                now = now.plus_seconds(*seconds);
                Some(b.state.sweep(now))
            }
        };
        if let Some(change) = change {
            b.state.apply(&change);
        }
        assert_promises(&b.state)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_every_promise(world in world(), ops in prop::collection::vec(op(), 1..40)) {
        run(&world, &ops)?;
    }

    /// However N orders for the same last units interleave with cancels, confirmed orders
    /// never hold more than exists.
    #[test]
    fn orders_for_the_last_units_never_reserve_more_than_exists(
        stock in 0i64..20,
        orders in prop::collection::vec((1i64..5, any::<bool>(), 0u8..4), 1..60),
    ) {
        let mut b = Builder::new();
        let main = b.warehouse("main");
        let stores: Vec<StoreId> = (0..4).map(|i| b.store(&format!("S{i}"), CHANNELS[i % CHANNELS.len()])).collect();
        b.item("LAST", ItemKind::Product);
        for s in &stores {
            b.listing(*s, "LAST");
        }
        if stock > 0 {
            b.stock("LAST", main, stock);
        }
        let mut placed = Vec::new();
        for (i, (q, cancel_one, store)) in orders.iter().enumerate() {
            let store = stores[*store as usize];
            let listing = b.state.listing_by_store_sku(store, "LAST").map(|l| l.id);
            let new = NewOrder {
                store,
                external_id: format!("{i}"),
                lines: vec![NewLine { store_sku: "LAST".into(), listing, quantity: *q }],
                payment: Payment::Immediate,
                pay_within_seconds: None,
                source: OrderSource::Channel,
            };
            if let Intake::Created { order, change } = b.state.take_order(&new, NOW).unwrap() {
                b.state.apply(&change);
                placed.push(order);
            }
            if *cancel_one && !placed.is_empty() {
                let id = placed.remove(i % placed.len());
                if let Ok(change) = b.state.cancel(id, NOW) {
                    b.state.apply(&change);
                }
            }
            let held: i64 = b.state.orders().filter(|o| o.status.is_open()).map(|o| o.lines[0].units_held).sum();
            prop_assert!(held <= stock);
            prop_assert_eq!(b.state.level(b.sku("LAST"), main).reserved, held);
            prop_assert_eq!(b.state.check(), vec![]);
        }
    }
}
