//! The catalog: items, warehouses, stores and listings (SPEC section 1 and 2).
//!
//! These are plain data. Validation of a whole catalog change (unknown ids, cycles) lives
//! in `state.rs` and `bom.rs`; here are the types, their defaults and the checks that need
//! nothing but the value itself.

use crate::ids::{ItemId, ListingId, StoreId, WarehouseId};
use crate::limits::Limits;
use serde::{Deserialize, Serialize};

/// Whole number of an item's base unit (250 g of flour is `250` of an item whose unit is
/// `g`). No floating point anywhere in stock arithmetic.
pub type Qty = i64;

/// What an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// Something sold; may have components it is made of.
    Product,
    /// Something products are made of; may itself be made of components (a sub-assembly).
    Material,
    /// Items shipped together; holds no stock of its own.
    Bundle,
}

/// Whether an item may be sold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Sold normally.
    #[default]
    Active,
    /// Published as 0; the order API refuses new orders for it.
    Draft,
}

/// What to do when a line needs more than stock and capacity covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MakeAction {
    /// Consume the components now; the product is made at once and reserved for the line.
    #[default]
    Deduct,
    /// Create a `pending` production card that reserves the components.
    ProductionCard,
}

/// What happens at zero (SPEC section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroPolicy {
    /// Publish the computed quantity; an order beyond stock is an oversell incident.
    #[default]
    Stop,
    /// Keep selling; lines beyond stock are backordered.
    Continue,
    /// Like `continue`, and the listing shows back-order status where the channel can.
    Backorder,
    /// Published like `continue`; an order beyond stock waits for the seller to accept.
    Request,
}

impl ZeroPolicy {
    /// Whether this policy keeps a listing sellable at zero.
    pub fn keeps_selling(self) -> bool {
        !matches!(self, ZeroPolicy::Stop)
    }
}

/// Default `continue_quantity` (SPEC section 2).
pub const CONTINUE_QUANTITY_DEFAULT: Qty = 1;
/// Default `accept_within_seconds`: 48 hours (SPEC section 2).
pub const ACCEPT_WITHIN_SECONDS_DEFAULT: i64 = 172_800;
/// Default `pay_within_seconds`: 24 hours (SPEC section 4).
pub const PAY_WITHIN_SECONDS_DEFAULT: i64 = 86_400;

/// A merchant SKU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: ItemId,
    pub sku: String,
    pub name: String,
    /// Base unit such as `pcs`, `g`, `cm`.
    pub unit: String,
    pub kind: ItemKind,
    pub status: ItemStatus,
    /// Products with components: publish `available + capacity`.
    pub stock_plus_capacity: bool,
    pub make_action: MakeAction,
    pub zero_policy: ZeroPolicy,
    /// Least quantity published under `continue`, `backorder` and `request` on channels
    /// without a "sell when out of stock" switch.
    pub continue_quantity: Qty,
    /// How long an order request waits for the seller before it is cancelled.
    pub accept_within_seconds: i64,
}

impl Item {
    /// An active item with every setting at its SPEC default.
    pub fn new(id: ItemId, sku: impl Into<String>, kind: ItemKind) -> Item {
        let sku = sku.into();
        Item {
            id,
            name: sku.clone(),
            sku,
            unit: "pcs".to_string(),
            kind,
            status: ItemStatus::Active,
            stock_plus_capacity: false,
            make_action: MakeAction::Deduct,
            zero_policy: ZeroPolicy::Stop,
            continue_quantity: CONTINUE_QUANTITY_DEFAULT,
            accept_within_seconds: ACCEPT_WITHIN_SECONDS_DEFAULT,
        }
    }

    /// Checks that need only the item itself.
    pub fn validate(&self, limits: &Limits) -> Result<(), CatalogError> {
        check_code("sku", &self.sku, limits)?;
        check_text("name", &self.name, limits)?;
        check_code("unit", &self.unit, limits)?;
        if self.continue_quantity < 0 || self.continue_quantity > limits.quantity_max {
            return Err(CatalogError::OutOfRange {
                field: "continue_quantity",
                value: self.continue_quantity,
                min: 0,
                max: limits.quantity_max,
            });
        }
        if self.accept_within_seconds < 1 || self.accept_within_seconds > limits.deadline_seconds_max {
            return Err(CatalogError::OutOfRange {
                field: "accept_within_seconds",
                value: self.accept_within_seconds,
                min: 1,
                max: limits.deadline_seconds_max,
            });
        }
        if self.kind == ItemKind::Bundle && self.stock_plus_capacity {
            return Err(CatalogError::BundleCannotBeMade { sku: self.sku.clone() });
        }
        Ok(())
    }
}

/// A place that holds stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warehouse {
    pub id: WarehouseId,
    pub code: String,
    pub name: String,
}

/// The sales channel a store connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Shopify,
    Woocommerce,
    Etsy,
    Amazon,
    Ebay,
    /// The generic channel: stockpool POSTs signed JSON to the store's URL.
    Webhook,
    /// A physical shop or anything the seller updates by hand.
    Manual,
}

impl Channel {
    /// Whether the channel has a "sell when out of stock" switch on a listing: Shopify's
    /// inventory policy `CONTINUE`, WooCommerce's `backorders` setting. Elsewhere the
    /// zero policy publishes at least `continue_quantity` instead.
    pub fn has_sell_when_out_of_stock_switch(self) -> bool {
        matches!(self, Channel::Shopify | Channel::Woocommerce)
    }

    /// Whether the channel can show a back-order status to the shopper
    /// (WooCommerce `backorders: notify`).
    pub fn shows_backorder_status(self) -> bool {
        matches!(self, Channel::Woocommerce)
    }
}

/// When a store is pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// As soon as the channel's rate limit allows.
    Realtime,
    /// At most once every N minutes (Amazon-style throttled channels).
    EveryMinutes(u32),
}

/// A connection to one sales channel. Credentials and secrets stay in the shell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    pub id: StoreId,
    pub code: String,
    pub name: String,
    pub channel: Channel,
    pub schedule: Schedule,
    pub enabled: bool,
}

/// Whether a listing is sold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListingStatus {
    #[default]
    Active,
    Draft,
}

/// A store's product or variant mapped to one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub id: ListingId,
    pub store: StoreId,
    pub external_id: String,
    pub store_sku: String,
    pub item: ItemId,
    pub status: ListingStatus,
}

/// One line of an item's bill of materials: `quantity` of `item` per unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Component {
    pub item: ItemId,
    pub quantity: Qty,
}

/// A catalog change the core refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is {len} characters long; at most {max} are allowed")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{field} must be between {min} and {max}, got {value}")]
    OutOfRange { field: &'static str, value: i64, min: i64, max: i64 },
    #[error("bundle {sku} holds no stock and cannot be made, so stock_plus_capacity does not apply")]
    BundleCannotBeMade { sku: String },
    #[error("{what} {code} already exists")]
    Duplicate { what: &'static str, code: String },
    #[error("unknown {what} {code}")]
    Unknown { what: &'static str, code: String },
    #[error("item {sku} is a {kind:?}; {reason}")]
    WrongKind { sku: String, kind: ItemKind, reason: &'static str },
}

/// A code-like string (SKU, code, external id): not blank, bounded, no control characters.
pub fn check_code(field: &'static str, value: &str, limits: &Limits) -> Result<(), CatalogError> {
    if value.trim().is_empty() {
        return Err(CatalogError::Empty { field });
    }
    check_len(field, value, limits.code_len_max)
}

/// A human text (name, reason): bounded.
pub fn check_text(field: &'static str, value: &str, limits: &Limits) -> Result<(), CatalogError> {
    check_len(field, value, limits.text_len_max)
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), CatalogError> {
    let len = value.chars().count();
    if len > max {
        return Err(CatalogError::TooLong { field, len, max });
    }
    Ok(())
}
