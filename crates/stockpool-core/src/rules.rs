//! Sync rules: which warehouses feed which stores for which items, and how much to show.
//!
//! A rule is validated as a whole before it is saved (SPEC section 3): rate 1..=100, the
//! priority store inside the rule, safety stock above the threshold, at most 200 rules.
//! Every save makes a new version; orders and sync records keep the version they saw.

use crate::buffer::Buffer;
use crate::catalog::{check_code, check_text, Qty};
use crate::ids::{ItemId, RuleId, StoreId, WarehouseId};
use crate::limits::Limits;
use serde::{Deserialize, Serialize};

/// Which items a rule covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemsSelector {
    /// Every item.
    All,
    /// These items.
    Items(Vec<ItemId>),
    /// Items whose SKU starts with this prefix.
    Prefix(String),
}

impl ItemsSelector {
    /// Whether the selector covers the item with this id and SKU.
    pub fn covers(&self, item: ItemId, sku: &str) -> bool {
        match self {
            ItemsSelector::All => true,
            ItemsSelector::Items(ids) => ids.contains(&item),
            ItemsSelector::Prefix(p) => sku.starts_with(p.as_str()),
        }
    }
}

/// Default `sync_rate_percent`.
pub const SYNC_RATE_PERCENT_DEFAULT: u8 = 100;

/// One version of a sync rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRule {
    pub id: RuleId,
    /// Starts at 1; every save adds one.
    pub version: u32,
    pub name: String,
    /// Smaller wins.
    pub priority: i32,
    pub enabled: bool,
    pub items: ItemsSelector,
    /// One or more, in the order stock is taken from them.
    pub warehouses: Vec<WarehouseId>,
    pub stores: Vec<StoreId>,
    /// 1..=100.
    pub sync_rate_percent: u8,
    /// 0 = off. Below it every store of the rule gets 0.
    pub stock_threshold: Qty,
    /// Below `safety_stock`, only this store keeps selling.
    pub priority_store: Option<StoreId>,
    pub safety_stock: Option<Qty>,
    /// `auto` holds back from each store what the other stores may sell before it hears
    /// (see `buffer.rs`). Absent in JSON means `none`, so rules saved before it existed
    /// load unchanged.
    #[serde(default, skip_serializing_if = "Buffer::is_none")]
    pub buffer: Buffer,
    /// Creation order: ties in `priority` go to the older rule.
    pub created_seq: u64,
}

impl SyncRule {
    /// Whether this rule decides the listing of `item` (with `sku`) in `store`.
    pub fn covers(&self, store: StoreId, item: ItemId, sku: &str) -> bool {
        self.enabled && self.stores.contains(&store) && self.items.covers(item, sku)
    }

    /// The order in which rules compete: priority, then age.
    pub fn precedence(&self) -> (i32, u64) {
        (self.priority, self.created_seq)
    }
}

/// A rule the core refuses to save.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("a workspace may have at most {max} sync rules")]
    TooManyRules { max: usize },
    #[error("sync_rate_percent must be between 1 and 100, got {got}")]
    RateOutOfRange { got: i64 },
    #[error("stock_threshold must be 0 or more, got {got}")]
    NegativeThreshold { got: Qty },
    #[error("a rule needs at least one warehouse")]
    NoWarehouses,
    #[error("a rule needs at least one store")]
    NoStores,
    #[error("a rule names at most {max} {what}")]
    TooManyMembers { what: &'static str, max: usize },
    #[error("{what} {code} is named twice in the rule")]
    DuplicateMember { what: &'static str, code: String },
    #[error("unknown {what} {code}")]
    Unknown { what: &'static str, code: String },
    #[error("priority_store {store} must be one of the rule's stores")]
    PriorityStoreNotInRule { store: String },
    #[error("safety_stock ({safety_stock}) must be greater than stock_threshold ({stock_threshold})")]
    SafetyStockNotAboveThreshold { safety_stock: Qty, stock_threshold: Qty },
    #[error("priority_store and safety_stock go together: give both or neither")]
    PriorityStoreWithoutSafetyStock,
    #[error("the rule's {field} is invalid: {reason}")]
    Field { field: &'static str, reason: String },
}

/// Checks one rule on its own: everything SPEC section 3 requires except the count and
/// that the ids exist, which `State::save_rule` checks against the catalog.
pub fn validate_rule(rule: &SyncRule, limits: &Limits) -> Result<(), RuleError> {
    check_text("name", &rule.name, limits).map_err(|e| RuleError::Field { field: "name", reason: e.to_string() })?;
    check_code("name", &rule.name, limits).map_err(|e| RuleError::Field { field: "name", reason: e.to_string() })?;
    if !(1..=100).contains(&rule.sync_rate_percent) {
        return Err(RuleError::RateOutOfRange { got: i64::from(rule.sync_rate_percent) });
    }
    if rule.stock_threshold < 0 {
        return Err(RuleError::NegativeThreshold { got: rule.stock_threshold });
    }
    if rule.warehouses.is_empty() {
        return Err(RuleError::NoWarehouses);
    }
    if rule.stores.is_empty() {
        return Err(RuleError::NoStores);
    }
    for (what, len) in [("warehouses", rule.warehouses.len()), ("stores", rule.stores.len())] {
        if len > limits.rule_members_max {
            return Err(RuleError::TooManyMembers { what, max: limits.rule_members_max });
        }
    }
    if let Some((i, w)) = rule.warehouses.iter().enumerate().find(|(i, w)| rule.warehouses[..*i].contains(w)) {
        let _ = i;
        return Err(RuleError::DuplicateMember { what: "warehouse", code: w.to_string() });
    }
    if let Some((_, s)) = rule.stores.iter().enumerate().find(|(i, s)| rule.stores[..*i].contains(s)) {
        return Err(RuleError::DuplicateMember { what: "store", code: s.to_string() });
    }
    match &rule.items {
        ItemsSelector::Items(ids) if ids.is_empty() => {
            return Err(RuleError::Field { field: "items", reason: "the SKU list is empty".into() })
        }
        ItemsSelector::Items(ids) if ids.len() > limits.rule_skus_max => {
            return Err(RuleError::TooManyMembers { what: "SKUs", max: limits.rule_skus_max })
        }
        ItemsSelector::Prefix(p) => {
            check_code("prefix", p, limits).map_err(|e| RuleError::Field { field: "items", reason: e.to_string() })?
        }
        _ => {}
    }
    match (rule.priority_store, rule.safety_stock) {
        (None, None) => {}
        (Some(store), Some(safety_stock)) => {
            if !rule.stores.contains(&store) {
                return Err(RuleError::PriorityStoreNotInRule { store: store.to_string() });
            }
            if safety_stock <= rule.stock_threshold {
                return Err(RuleError::SafetyStockNotAboveThreshold {
                    safety_stock,
                    stock_threshold: rule.stock_threshold,
                });
            }
        }
        _ => return Err(RuleError::PriorityStoreWithoutSafetyStock),
    }
    Ok(())
}

/// The rule version a decision saw, kept on order lines and sync records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RuleRef {
    pub id: RuleId,
    pub version: u32,
}
