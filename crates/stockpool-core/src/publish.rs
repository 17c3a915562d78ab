//! Published quantity: what each listing may show (SPEC section 3), with its explanation.
//!
//! One function computes it, `compute`, and records each step into an optional trace:
//! `State::explain` keeps the trace for `GET /listings/{id}/explain`, while
//! `State::published` and `State::recompute_all` skip it for speed. The steps are the
//! numbered steps of SPEC section 3, in order.

use crate::bom::{bundle_units, capacity, capacity_estimate, is_makeable};
use crate::buffer::{auto_buffer, Buffer, ComponentDemand, SharedSale, StoreDemand};
use crate::catalog::{ItemKind, ItemStatus, ListingStatus, Qty, ZeroPolicy};
use crate::ids::{ListingId, StoreId, WarehouseId};
use crate::rules::{RuleRef, SyncRule};
use crate::state::State;
use crate::stock::{Scratch, StockView};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a listing shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub listing: ListingId,
    /// The quantity to push to the channel.
    pub quantity: Qty,
    /// Turn on the channel's "sell when out of stock" switch.
    pub sell_when_out_of_stock: bool,
    /// Show back-order status to the shopper where the channel can.
    pub show_backorder: bool,
    /// The rule version that decided it; `None` for the workspace default or inactive.
    pub rule: Option<RuleRef>,
}

/// Why a listing publishes 0 before any rule applies (step 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InactiveReason {
    ItemDraft,
    ListingDraft,
    StoreDisabled,
    SyncOff,
}

/// One warehouse's share of the pool (step 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolPart {
    pub warehouse: WarehouseId,
    /// `on_hand - reserved` of the item (for a bundle: complete bundles from components).
    pub available: Qty,
    /// Units that can be made here, counted only with `stock_plus_capacity`.
    pub capacity: Qty,
}

/// One step of SPEC section 3 with its numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Step {
    /// Step 1: draft item or listing, disabled store, or sync switched off.
    Inactive { reason: InactiveReason },
    /// Step 2: the rule that decides (`rule: None` is the workspace default).
    Rule {
        rule: Option<RuleRef>,
        name: String,
        warehouses: Vec<WarehouseId>,
        sync_rate_percent: u8,
        stock_threshold: Qty,
        priority_store: Option<StoreId>,
        safety_stock: Option<Qty>,
    },
    /// Step 3: the pool over the rule's warehouses.
    Pool { bundle: bool, parts: Vec<PoolPart>, pool: Qty },
    /// Step 4: the threshold, when the rule has one.
    Threshold { pool: Qty, stock_threshold: Qty, below: bool },
    /// Step 5: the priority store's safety stock, when the rule has one.
    SafetyStock { pool: Qty, safety_stock: Qty, priority_store: StoreId, is_priority_store: bool, below: bool },
    /// Step 6: the sync rate.
    SyncRate { pool: Qty, sync_rate_percent: u8, quantity: Qty },
    /// Step 6b, for a rule with `buffer: auto`: what this store holds back because the
    /// rule's other stores may sell it, or other products may take its materials, before
    /// this store hears (`buffer.rs`).
    Buffer {
        pool: Qty,
        favoured_store: Option<StoreId>,
        is_favoured_store: bool,
        /// Thousandths of a unit the other stores are expected to sell in this store's
        /// blind window (not held back by the favoured store).
        expected_elsewhere_milli: i64,
        /// For a made-to-order item: thousandths of a unit of its capacity that sales of
        /// other items made from the same components, on any store, are expected to take
        /// in this store's blind window (held back by every store), the most over the
        /// components it is not the favoured product of.
        expected_shared_milli: i64,
        /// Whether the item is the favoured product of one of its components: what other
        /// products take of that component is not held back, so its last units stay on sale.
        favoured_product: bool,
        held_back: Qty,
        before: Qty,
        after: Qty,
    },
    /// Step 7: the zero policy.
    ZeroPolicy { zero_policy: ZeroPolicy, before: Qty, after: Qty, sell_when_out_of_stock: bool, show_backorder: bool },
}

/// Every step that decided one listing's quantity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explain {
    pub listing: ListingId,
    pub sku: String,
    pub store: String,
    pub steps: Vec<Step>,
    pub published: Published,
}

/// Computes one listing's published quantity on `stock` (the state itself, or a scratch
/// over it), recording steps into `trace` when given.
pub(crate) fn compute<V: StockView + ?Sized>(
    state: &State,
    stock: &mut Scratch<'_, V>,
    listing: ListingId,
    units_cache: &mut Vec<(WarehouseId, PoolPart)>,
    mut trace: Option<&mut Vec<Step>>,
) -> Option<Published> {
    let l = state.listing(listing)?;
    let item = state.item(l.item)?;
    let store = state.store(l.store)?;
    let mut out = Published { listing, quantity: 0, sell_when_out_of_stock: false, show_backorder: false, rule: None };

    // Step 1.
    let inactive = if item.status == ItemStatus::Draft {
        Some(InactiveReason::ItemDraft)
    } else if l.status == ListingStatus::Draft {
        Some(InactiveReason::ListingDraft)
    } else if !store.enabled {
        Some(InactiveReason::StoreDisabled)
    } else if !state.sync_enabled() {
        Some(InactiveReason::SyncOff)
    } else {
        None
    };
    if let Some(reason) = inactive {
        if let Some(t) = trace.as_deref_mut() {
            t.push(Step::Inactive { reason });
        }
        return Some(out);
    }

    // Step 2.
    let rule = state.rule_for(l.store, item.id);
    out.rule = rule.map(|r| RuleRef { id: r.id, version: r.version });
    let default_warehouses;
    let (warehouses, rate, threshold, priority, buffer) = match rule {
        Some(r) => {
            (&r.warehouses[..], r.sync_rate_percent, r.stock_threshold, r.priority_store.zip(r.safety_stock), r.buffer)
        }
        None => {
            default_warehouses = state.warehouse_ids();
            (&default_warehouses[..], 100, 0, None, Buffer::None)
        }
    };
    if let Some(t) = trace.as_deref_mut() {
        t.push(rule_step(rule, warehouses));
    }

    // Step 3.
    let bundle = item.kind == ItemKind::Bundle;
    let with_capacity = !bundle && item.stock_plus_capacity && is_makeable(state, item.id);
    let mut pool: Qty = 0;
    let mut parts = Vec::new();
    for &w in warehouses {
        let part = match units_cache.iter().find(|(cw, _)| *cw == w) {
            Some((_, p)) => *p,
            None => {
                let p = if bundle {
                    PoolPart { warehouse: w, available: bundle_units(state, stock, item.id, w), capacity: 0 }
                } else {
                    let available = stock.available(item.id, w).max(0);
                    let capacity = if with_capacity { capacity(state, stock, item.id, w) } else { 0 };
                    PoolPart { warehouse: w, available, capacity }
                };
                units_cache.push((w, p));
                p
            }
        };
        pool = pool.saturating_add(part.available).saturating_add(part.capacity);
        if trace.is_some() {
            parts.push(part);
        }
    }
    if let Some(t) = trace.as_deref_mut() {
        t.push(Step::Pool { bundle, parts, pool });
    }

    // Steps 4 to 6.
    let mut quantity;
    let below_threshold = threshold > 0 && pool < threshold;
    if threshold > 0 {
        if let Some(t) = trace.as_deref_mut() {
            t.push(Step::Threshold { pool, stock_threshold: threshold, below: below_threshold });
        }
    }
    if below_threshold {
        quantity = 0;
    } else {
        let mut held_back = false;
        if let Some((priority_store, safety_stock)) = priority {
            let below = pool < safety_stock;
            let is_priority_store = priority_store == l.store;
            held_back = below && !is_priority_store;
            if let Some(t) = trace.as_deref_mut() {
                t.push(Step::SafetyStock { pool, safety_stock, priority_store, is_priority_store, below });
            }
        }
        if held_back {
            quantity = 0;
        } else {
            quantity = (i128::from(pool) * i128::from(rate) / 100) as Qty;
            if let Some(t) = trace.as_deref_mut() {
                t.push(Step::SyncRate { pool, sync_rate_percent: rate, quantity });
            }
            if let (Buffer::Auto, Some(r)) = (buffer, rule) {
                let shared =
                    if with_capacity { shared_demand(state, &mut *stock, item.id, warehouses) } else { Vec::new() };
                quantity = apply_auto_buffer(state, r, l.store, item.id, &shared, pool, quantity, trace.as_deref_mut());
            }
        }
    }

    // Step 7.
    let before = quantity;
    let policy = item.zero_policy;
    if policy.keeps_selling() {
        if store.channel.has_sell_when_out_of_stock_switch() {
            out.sell_when_out_of_stock = true;
        } else {
            quantity = quantity.max(item.continue_quantity);
        }
        out.show_backorder = policy == ZeroPolicy::Backorder && store.channel.shows_backorder_status();
    }
    if let Some(t) = trace {
        t.push(Step::ZeroPolicy {
            zero_policy: policy,
            before,
            after: quantity,
            sell_when_out_of_stock: out.sell_when_out_of_stock,
            show_backorder: out.show_backorder,
        });
    }
    out.quantity = quantity;
    Some(out)
}

/// For a made-to-order item (its pool counts capacity): each of its components, with the
/// recent sales on every store of the other items that take it (other products made
/// from it, and the component itself where it is listed).
fn shared_demand<V: StockView + ?Sized>(
    state: &State,
    stock: &mut Scratch<'_, V>,
    item: crate::ids::ItemId,
    warehouses: &[WarehouseId],
) -> Vec<ComponentDemand> {
    let mut out = Vec::new();
    for c in state.components(item) {
        let mut sales = Vec::new();
        let mut add = |other: crate::ids::ItemId, takes: Qty| {
            let mut can_make_one = None;
            for s in state.stores() {
                let velocity = state.sales_velocity(s.id, other);
                if velocity.is_known() {
                    let can_make_one = *can_make_one.get_or_insert_with(|| {
                        warehouses.iter().any(|&w| {
                            if other == c.item {
                                stock.available(other, w) > 0
                            } else {
                                capacity_estimate(state, stock, other, w) > 0
                            }
                        })
                    });
                    let order_seconds = state.store_latency(s.id).order_seconds;
                    sales.push(SharedSale { item: other, takes, can_make_one, order_seconds, velocity });
                }
            }
        };
        add(c.item, 1);
        for &p in state.parents(c.item) {
            if let Some(pc) = state.components(p).iter().find(|pc| pc.item == c.item) {
                add(p, pc.quantity);
            }
        }
        out.push(ComponentDemand { needs: c.quantity, sales });
    }
    out
}

/// Step 6b: lowers `quantity` by what `buffer: auto` holds back from `store`. Never
/// raises it, so the published quantity stays within the rule's pool.
#[allow(clippy::too_many_arguments)]
fn apply_auto_buffer(
    state: &State,
    rule: &SyncRule,
    store: StoreId,
    item: crate::ids::ItemId,
    shared: &[ComponentDemand],
    pool: Qty,
    quantity: Qty,
    trace: Option<&mut Vec<Step>>,
) -> Qty {
    let mut demand: Vec<StoreDemand> = Vec::with_capacity(rule.stores.len());
    for &s in &rule.stores {
        demand.push(StoreDemand { store: s, latency: state.store_latency(s), velocity: state.sales_velocity(s, item) });
    }
    let b = auto_buffer(item, store, &demand, rule.priority_store, shared);
    let after = quantity.min((pool - b.held_back).max(0));
    if let Some(t) = trace {
        t.push(Step::Buffer {
            pool,
            favoured_store: b.favoured_store,
            is_favoured_store: b.favoured_store == Some(store),
            expected_elsewhere_milli: b.expected_elsewhere_milli,
            expected_shared_milli: b.expected_shared_milli,
            favoured_product: b.favoured_product,
            held_back: b.held_back,
            before: quantity,
            after,
        });
    }
    after
}

fn rule_step(rule: Option<&SyncRule>, warehouses: &[WarehouseId]) -> Step {
    match rule {
        Some(r) => Step::Rule {
            rule: Some(RuleRef { id: r.id, version: r.version }),
            name: r.name.clone(),
            warehouses: r.warehouses.clone(),
            sync_rate_percent: r.sync_rate_percent,
            stock_threshold: r.stock_threshold,
            priority_store: r.priority_store,
            safety_stock: r.safety_stock,
        },
        None => Step::Rule {
            rule: None,
            name: "workspace default".into(),
            warehouses: warehouses.to_vec(),
            sync_rate_percent: 100,
            stock_threshold: 0,
            priority_store: None,
            safety_stock: None,
        },
    }
}

/// Ids shown in an explanation are resolved to codes by whoever renders it; the core
/// renders ids as `#n` so that its own snapshots stay readable.
impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "listing #{} ({} on {})", self.listing, self.sku, self.store)?;
        for (i, step) in self.steps.iter().enumerate() {
            write!(f, "{}. ", i + 1)?;
            match step {
                Step::Inactive { reason } => writeln!(f, "inactive ({reason:?}): publish 0")?,
                Step::Rule { rule, name, warehouses, sync_rate_percent, stock_threshold, priority_store, safety_stock } => {
                    let ws: Vec<String> = warehouses.iter().map(|w| format!("#{w}")).collect();
                    match rule {
                        Some(r) => write!(f, "rule #{} v{} {name:?}", r.id, r.version)?,
                        None => write!(f, "no rule covers it: {name}")?,
                    }
                    write!(f, ", warehouses [{}], rate {sync_rate_percent}%, threshold {stock_threshold}", ws.join(", "))?;
                    if let (Some(s), Some(q)) = (priority_store, safety_stock) {
                        write!(f, ", priority store #{s} safety {q}")?;
                    }
                    writeln!(f)?;
                }
                Step::Pool { bundle, parts, pool } => {
                    let ps: Vec<String> = parts
                        .iter()
                        .map(|p| {
                            if p.capacity > 0 {
                                format!("#{}: {} + capacity {}", p.warehouse, p.available, p.capacity)
                            } else {
                                format!("#{}: {}", p.warehouse, p.available)
                            }
                        })
                        .collect();
                    let what = if *bundle { "complete bundles" } else { "available" };
                    writeln!(f, "pool of {what} = {pool} ({})", ps.join(", "))?;
                }
                Step::Threshold { pool, stock_threshold, below } => {
                    if *below {
                        writeln!(f, "pool {pool} < threshold {stock_threshold}: publish 0 to every store of the rule")?
                    } else {
                        writeln!(f, "pool {pool} >= threshold {stock_threshold}: go on")?
                    }
                }
                Step::SafetyStock { pool, safety_stock, priority_store, is_priority_store, below } => match (below, is_priority_store) {
                    (false, _) => writeln!(f, "pool {pool} >= safety stock {safety_stock}: every store sells")?,
                    (true, true) => writeln!(f, "pool {pool} < safety stock {safety_stock}: this is the priority store, it keeps selling")?,
                    (true, false) => {
                        writeln!(f, "pool {pool} < safety stock {safety_stock}: only priority store #{priority_store} sells, publish 0")?
                    }
                },
                Step::SyncRate { pool, sync_rate_percent, quantity } => {
                    writeln!(f, "floor({pool} x {sync_rate_percent}% ) = {quantity}")?
                }
                Step::Buffer {
                    pool,
                    favoured_store,
                    is_favoured_store,
                    expected_elsewhere_milli,
                    expected_shared_milli,
                    favoured_product,
                    held_back,
                    before,
                    after,
                } => {
                    let units = |m: i64| format!("{}.{:03}", m / 1000, m % 1000);
                    let mut shared = String::new();
                    if *favoured_product {
                        shared.push_str(", it is the favoured product of a material it is made from");
                    }
                    if *expected_shared_milli > 0 {
                        shared.push_str(&format!(", other products may take {} of its materials", units(*expected_shared_milli)));
                    }
                    let held = format!("hold back {held_back}: min({before}, {pool} - {held_back}) = {after}");
                    match (favoured_store, is_favoured_store) {
                        (None, _) if *expected_shared_milli == 0 && !*favoured_product => {
                            writeln!(f, "buffer auto: no store sold it recently, hold back 0: {before} -> {after}")?
                        }
                        (None, _) => writeln!(f, "buffer auto: no store sold it recently{shared}, {held}")?,
                        (Some(_), true) if *expected_shared_milli == 0 && !*favoured_product => {
                            writeln!(f, "buffer auto: this is the favoured store, it shows the whole pool: {before} -> {after}")?
                        }
                        (Some(_), true) => writeln!(
                            f,
                            "buffer auto: this is the favoured store, it holds back nothing for its own item{shared}, {held}"
                        )?,
                        (Some(s), false) => writeln!(
                            f,
                            "buffer auto: other stores may sell {} before this one hears{shared}, hold back {held_back} \
                             (favoured store #{s}): min({before}, {pool} - {held_back}) = {after}",
                            units(*expected_elsewhere_milli)
                        )?,
                    }
                }
                Step::ZeroPolicy { zero_policy, before, after, sell_when_out_of_stock, show_backorder } => {
                    write!(f, "zero policy {zero_policy:?}: {before} -> {after}")?;
                    if *sell_when_out_of_stock {
                        write!(f, ", sell when out of stock on")?;
                    }
                    if *show_backorder {
                        write!(f, ", show back-order status")?;
                    }
                    writeln!(f)?;
                }
            }
        }
        write!(f, "published {}", self.published.quantity)
    }
}
