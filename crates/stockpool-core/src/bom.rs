//! Bills of materials: validation, bundle units, capacity and making.
//!
//! A product or material with components can be made; a bundle's components are shipped
//! together. Capacity is computed per warehouse (a product is made in one warehouse, a
//! bundle ships from one), recursively through sub-assemblies. When one material feeds
//! two branches of the same tree, the independent estimate would count it twice; the
//! exact capacity is then found by trying to make units on a `Scratch` (making is
//! monotone, so a binary search finds the largest feasible count).

use crate::catalog::{Component, Item, ItemKind, MakeAction, Qty};
use crate::ids::{CardId, ItemId, WarehouseId};
use crate::limits::Limits;
use crate::stock::{Movement, MovementReason, Reference, Scratch, StockView};
use serde::{Deserialize, Serialize};

/// Read access to the catalog's bills of materials.
pub trait Bom {
    fn item(&self, id: ItemId) -> Option<&Item>;
    fn components(&self, id: ItemId) -> &[Component];
    /// Items whose bill of materials names `id`.
    fn parents(&self, id: ItemId) -> &[ItemId];
}

/// A bill of materials the core refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BomError {
    #[error("unknown component {component}")]
    UnknownComponent { component: ItemId },
    #[error("component {sku} has quantity {quantity}; it must be between 1 and {max}")]
    QuantityOutOfRange { sku: String, quantity: Qty, max: Qty },
    #[error("{sku} cannot be a component of itself")]
    SelfReference { sku: String },
    #[error("component {sku} is listed twice; give it once with the total quantity")]
    DuplicateComponent { sku: String },
    #[error("{count} components given; at most {max} are allowed")]
    TooManyComponents { count: usize, max: usize },
    #[error("bundle {component} cannot be a component of {sku}: only bundles ship bundles")]
    BundleInProduct { sku: String, component: String },
    #[error("components of {sku} would form a cycle through {through}")]
    Cycle { sku: String, through: String },
    #[error("the bill of materials would be {depth} levels deep; at most {max} are allowed")]
    TooDeep { depth: usize, max: usize },
}

/// Whether `item` can be made from components (not a bundle, has a bill of materials).
pub fn is_makeable<B: Bom + ?Sized>(bom: &B, item: ItemId) -> bool {
    match bom.item(item) {
        Some(i) => i.kind != ItemKind::Bundle && !bom.components(item).is_empty(),
        None => false,
    }
}

/// Checks a new bill of materials for `item` against the catalog: known components,
/// quantities, kinds, no cycle, bounded depth.
pub fn validate_components<B: Bom + ?Sized>(
    bom: &B,
    item: &Item,
    components: &[Component],
    limits: &Limits,
) -> Result<(), BomError> {
    if components.len() > limits.components_per_item_max {
        return Err(BomError::TooManyComponents { count: components.len(), max: limits.components_per_item_max });
    }
    for (i, c) in components.iter().enumerate() {
        let comp = bom.item(c.item).ok_or(BomError::UnknownComponent { component: c.item })?;
        if c.quantity < 1 || c.quantity > limits.quantity_max {
            return Err(BomError::QuantityOutOfRange {
                sku: comp.sku.clone(),
                quantity: c.quantity,
                max: limits.quantity_max,
            });
        }
        if c.item == item.id {
            return Err(BomError::SelfReference { sku: item.sku.clone() });
        }
        if components[..i].iter().any(|o| o.item == c.item) {
            return Err(BomError::DuplicateComponent { sku: comp.sku.clone() });
        }
        if comp.kind == ItemKind::Bundle && item.kind != ItemKind::Bundle {
            return Err(BomError::BundleInProduct { sku: item.sku.clone(), component: comp.sku.clone() });
        }
        if reaches(bom, c.item, item.id, limits.bom_depth_max + 1) {
            return Err(BomError::Cycle { sku: item.sku.clone(), through: comp.sku.clone() });
        }
    }
    let below = 1 + components.iter().map(|c| depth_below(bom, c.item, limits.bom_depth_max + 1)).max().unwrap_or(0);
    let depth = if components.is_empty() { 0 } else { below + depth_above(bom, item.id, limits.bom_depth_max + 1) };
    if depth > limits.bom_depth_max {
        return Err(BomError::TooDeep { depth, max: limits.bom_depth_max });
    }
    Ok(())
}

/// Whether `from`'s bill of materials reaches `target` within `budget` levels.
fn reaches<B: Bom + ?Sized>(bom: &B, from: ItemId, target: ItemId, budget: usize) -> bool {
    if from == target {
        return true;
    }
    if budget == 0 {
        return false;
    }
    bom.components(from).iter().any(|c| reaches(bom, c.item, target, budget - 1))
}

/// Levels of components below `item` (0 for an item without components), capped.
fn depth_below<B: Bom + ?Sized>(bom: &B, item: ItemId, cap: usize) -> usize {
    if cap == 0 {
        return 0;
    }
    bom.components(item).iter().map(|c| 1 + depth_below(bom, c.item, cap - 1)).max().unwrap_or(0)
}

/// Levels of parents above `item`, capped.
fn depth_above<B: Bom + ?Sized>(bom: &B, item: ItemId, cap: usize) -> usize {
    if cap == 0 {
        return 0;
    }
    bom.parents(item).iter().map(|p| 1 + depth_above(bom, *p, cap - 1)).max().unwrap_or(0)
}

/// What one bundle ships, flattened through nested bundles: `(item, quantity)` per unit,
/// each item once.
pub fn bundle_leaves<B: Bom + ?Sized>(bom: &B, bundle: ItemId) -> Vec<(ItemId, Qty)> {
    fn walk<B: Bom + ?Sized>(bom: &B, item: ItemId, mult: Qty, out: &mut Vec<(ItemId, Qty)>) {
        for c in bom.components(item) {
            let q = mult.saturating_mul(c.quantity);
            if bom.item(c.item).map(|i| i.kind) == Some(ItemKind::Bundle) {
                walk(bom, c.item, q, out);
            } else {
                match out.iter_mut().find(|(i, _)| *i == c.item) {
                    Some((_, have)) => *have = have.saturating_add(q),
                    None => out.push((c.item, q)),
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(bom, bundle, 1, &mut out);
    out
}

/// Complete bundles one warehouse can ship now: the minimum over its components of
/// `floor(available / quantity)`. 0 for a bundle without components.
pub fn bundle_units<B: Bom + ?Sized, V: StockView + ?Sized>(bom: &B, stock: &V, bundle: ItemId, w: WarehouseId) -> Qty {
    bundle_leaves(bom, bundle).iter().map(|(c, q)| stock.level(*c, w).available().max(0) / q).min().unwrap_or(0)
}

/// Upper bound of capacity that treats every component's supply as independent. Exact
/// for trees; an over-estimate only when one item feeds two branches.
pub fn capacity_estimate<B: Bom + ?Sized, V: StockView + ?Sized>(
    bom: &B,
    stock: &V,
    item: ItemId,
    w: WarehouseId,
) -> Qty {
    if !is_makeable(bom, item) {
        return 0;
    }
    bom.components(item)
        .iter()
        .map(|c| {
            let mut supply = stock.level(c.item, w).available().max(0);
            if is_makeable(bom, c.item) {
                supply = supply.saturating_add(capacity_estimate(bom, stock, c.item, w));
            }
            supply / c.quantity
        })
        .min()
        .unwrap_or(0)
}

/// Whether every component of the tree below `item` appears once (then the estimate is exact).
fn has_sub_assemblies<B: Bom + ?Sized>(bom: &B, item: ItemId) -> bool {
    bom.components(item).iter().any(|c| is_makeable(bom, c.item))
}

/// How many units of `item` can be made now in warehouse `w` from the available stock of
/// its components (recursively). Open production cards already hold their components as
/// reserved stock, so they are accounted for.
pub fn capacity<B: Bom + ?Sized, V: StockView + ?Sized>(
    bom: &B,
    scratch: &mut Scratch<'_, V>,
    item: ItemId,
    w: WarehouseId,
) -> Qty {
    let ub = capacity_estimate(bom, scratch, item, w);
    if ub == 0 || !has_sub_assemblies(bom, item) {
        return ub;
    }
    let feasible = |scratch: &mut Scratch<'_, V>, n: Qty| {
        let mark = scratch.mark();
        let mut holds = Vec::new();
        let ok = try_make(bom, scratch, item, w, n, MakeMode::Deduct, &Reference::Card { card: CardId(0) }, &mut holds);
        scratch.rollback(mark);
        ok
    };
    if feasible(scratch, ub) {
        return ub;
    }
    // Largest n in [lo, hi) that is feasible; lo is always feasible (0 is).
    let (mut lo, mut hi) = (0, ub);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if feasible(scratch, mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// How components are taken when making.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MakeMode {
    /// Consume components now (on hand down).
    Deduct,
    /// Reserve components for a production card (reserved up).
    Hold,
}

impl From<MakeAction> for MakeMode {
    fn from(a: MakeAction) -> Self {
        match a {
            MakeAction::Deduct => MakeMode::Deduct,
            MakeAction::ProductionCard => MakeMode::Hold,
        }
    }
}

/// Stock one line or card holds: `quantity` of `item` reserved in `warehouse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub item: ItemId,
    pub warehouse: WarehouseId,
    pub quantity: Qty,
}

/// Takes the components of `n` units of `item` in warehouse `w`: from available stock
/// first, the rest by making sub-assemblies. Records movements on `scratch` and, in
/// `Hold` mode, appends what it reserved to `holds`. Returns false if the components do
/// not suffice; the caller rolls back to its mark. The product itself is not produced
/// here (the caller does that, or the card when done).
#[allow(clippy::too_many_arguments)]
pub fn try_make<B: Bom + ?Sized, V: StockView + ?Sized>(
    bom: &B,
    scratch: &mut Scratch<'_, V>,
    item: ItemId,
    w: WarehouseId,
    n: Qty,
    mode: MakeMode,
    reference: &Reference,
    holds: &mut Vec<Hold>,
) -> bool {
    for c in bom.components(item) {
        let Some(need) = n.checked_mul(c.quantity) else { return false };
        let take = scratch.available(c.item, w).clamp(0, need);
        if take > 0 {
            let (on_hand_delta, reserved_delta, reason) = match mode {
                MakeMode::Deduct => (-take, 0, MovementReason::MakeConsume),
                MakeMode::Hold => (0, take, MovementReason::CardReserve),
            };
            scratch.record(Movement {
                item: c.item,
                warehouse: w,
                on_hand_delta,
                reserved_delta,
                reason,
                reference: reference.clone(),
            });
            if mode == MakeMode::Hold {
                match holds.iter_mut().find(|h| h.item == c.item && h.warehouse == w) {
                    Some(h) => h.quantity += take,
                    None => holds.push(Hold { item: c.item, warehouse: w, quantity: take }),
                }
            }
        }
        let rest = need - take;
        if rest > 0 && !(is_makeable(bom, c.item) && try_make(bom, scratch, c.item, w, rest, mode, reference, holds)) {
            return false;
        }
    }
    true
}
