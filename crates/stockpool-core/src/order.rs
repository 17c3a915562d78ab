//! Orders, their lines, production cards, and the errors their transitions raise.
//!
//! An order line keeps exactly what it holds, so that cancel, fulfil and expiry can give
//! back precisely that: `holds` is stock reserved for the line (the item itself, a bundle's
//! components, or a product made for it), `cards` the production cards making it. The
//! remaining quantity is split into `backordered`, `requested` and `oversold`.

use crate::bom::Hold;
use crate::catalog::Qty;
use crate::ids::{CardId, ItemId, ListingId, OrderId, StoreId, Timestamp, WarehouseId};
use crate::rules::RuleRef;
use serde::{Deserialize, Serialize};

/// Order statuses (SPEC section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Confirmed,
    Requested,
    AwaitingPayment,
    Declined,
    Expired,
    Cancelled,
    Fulfilled,
    /// Some line `oversold` or `unmapped`.
    NeedsAttention,
}

impl OrderStatus {
    /// Every status, in the order SPEC section 4 names them.
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::Requested,
        OrderStatus::AwaitingPayment,
        OrderStatus::Confirmed,
        OrderStatus::NeedsAttention,
        OrderStatus::Declined,
        OrderStatus::Expired,
        OrderStatus::Cancelled,
        OrderStatus::Fulfilled,
    ];

    /// Whether the order still holds or waits for stock.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::Confirmed
                | OrderStatus::Requested
                | OrderStatus::AwaitingPayment
                | OrderStatus::NeedsAttention
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Requested => "requested",
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::Declined => "declined",
            OrderStatus::Expired => "expired",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::NeedsAttention => "needs_attention",
        }
    }
}

/// Line statuses (SPEC section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    Confirmed,
    Made,
    Backordered,
    Requested,
    Oversold,
    Unmapped,
    Cancelled,
    Fulfilled,
}

impl LineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LineStatus::Confirmed => "confirmed",
            LineStatus::Made => "made",
            LineStatus::Backordered => "backordered",
            LineStatus::Requested => "requested",
            LineStatus::Oversold => "oversold",
            LineStatus::Unmapped => "unmapped",
            LineStatus::Cancelled => "cancelled",
            LineStatus::Fulfilled => "fulfilled",
        }
    }
}

/// When the shopper pays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payment {
    /// Paid on the channel already (the usual case).
    #[default]
    Immediate,
    /// Paid after the seller accepts an order request, within `pay_within_seconds`.
    AfterAcceptance,
}

/// Where an order came from. The order API refuses draft items; a channel's order is
/// never refused (nothing a channel sends is dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderSource {
    Api,
    Channel,
}

/// One line as it arrives. The shell resolves `store_sku` (or the listing's external id)
/// to a listing; `listing: None` keeps the line as `unmapped`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLine {
    pub store_sku: String,
    pub listing: Option<ListingId>,
    pub quantity: Qty,
}

/// An order as it arrives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    pub store: StoreId,
    pub external_id: String,
    pub lines: Vec<NewLine>,
    pub payment: Payment,
    /// Defaults to `PAY_WITHIN_SECONDS_DEFAULT`.
    pub pay_within_seconds: Option<i64>,
    pub source: OrderSource,
}

/// One order line as decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub store_sku: String,
    pub listing: Option<ListingId>,
    pub item: Option<ItemId>,
    pub quantity: Qty,
    pub status: LineStatus,
    /// The rule version whose warehouses the line was taken from.
    pub rule: Option<RuleRef>,
    /// Warehouses to take stock from, in order (the rule's, or all for the default).
    pub warehouses: Vec<WarehouseId>,
    /// Stock reserved for this line.
    pub holds: Vec<Hold>,
    /// Units covered by `holds` (for a bundle, complete bundles).
    pub units_held: Qty,
    /// Of `units_held`, units made for the line (deduct or a finished card).
    pub units_made: Qty,
    /// Production cards still making units for this line.
    pub cards: Vec<CardId>,
    /// Units waiting in `cards`.
    pub units_in_cards: Qty,
    pub backordered: Qty,
    pub requested: Qty,
    pub oversold: Qty,
}

impl Line {
    /// The status its quantities say, for a line of an open order.
    pub fn derived_status(&self) -> LineStatus {
        if self.item.is_none() {
            LineStatus::Unmapped
        } else if self.oversold > 0 {
            LineStatus::Oversold
        } else if self.requested > 0 {
            LineStatus::Requested
        } else if self.backordered > 0 {
            LineStatus::Backordered
        } else if self.units_made > 0 || self.units_in_cards > 0 {
            LineStatus::Made
        } else {
            LineStatus::Confirmed
        }
    }

    /// Units accounted for; equals `quantity` for every mapped line.
    pub fn accounted(&self) -> Qty {
        self.units_held + self.units_in_cards + self.backordered + self.requested + self.oversold
    }
}

/// An order as decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub store: StoreId,
    pub external_id: String,
    pub status: OrderStatus,
    pub lines: Vec<Line>,
    pub payment: Payment,
    pub pay_within_seconds: i64,
    pub created_at: Timestamp,
    /// Set while `requested`: declined automatically (status `expired`) after this.
    pub accept_by: Option<Timestamp>,
    /// Set while `awaiting_payment`: cancelled automatically (status `expired`) after this.
    pub pay_by: Option<Timestamp>,
}

impl Order {
    /// The status an open, not-awaiting-payment order's lines say.
    pub fn derived_status(&self) -> OrderStatus {
        let statuses = || self.lines.iter().map(|l| l.status);
        if statuses().any(|s| s == LineStatus::Requested) {
            OrderStatus::Requested
        } else if statuses().any(|s| matches!(s, LineStatus::Oversold | LineStatus::Unmapped)) {
            OrderStatus::NeedsAttention
        } else {
            OrderStatus::Confirmed
        }
    }

    /// The next deadline the sweeper must act on.
    pub fn deadline(&self) -> Option<Timestamp> {
        match self.status {
            OrderStatus::Requested => self.accept_by,
            OrderStatus::AwaitingPayment => self.pay_by,
            _ => None,
        }
    }
}

/// Production card statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    Pending,
    InProgress,
    Done,
    Cancelled,
}

impl CardStatus {
    /// `pending` and `in_progress` cards hold components and reduce capacity.
    pub fn is_open(self) -> bool {
        matches!(self, CardStatus::Pending | CardStatus::InProgress)
    }
}

/// The order line a card makes units for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CardFor {
    pub order: OrderId,
    pub line: u32,
}

/// Work to make `quantity` of `item` in `warehouse`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductionCard {
    pub id: CardId,
    pub item: ItemId,
    pub warehouse: WarehouseId,
    pub quantity: Qty,
    pub status: CardStatus,
    /// Components reserved for the card.
    pub holds: Vec<Hold>,
    /// The order line it makes for; `None` for making to stock.
    pub for_line: Option<CardFor>,
    pub created_at: Timestamp,
}

/// An order or card operation the core refuses. Nothing changes when one is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("an order needs at least one line")]
    NoLines,
    #[error("an order may have at most {max} lines, got {got}")]
    TooManyLines { got: usize, max: usize },
    #[error("line {line}: quantity must be between 1 and {max}, got {got}")]
    QuantityOutOfRange { line: usize, got: Qty, max: Qty },
    #[error("unknown store {store}")]
    UnknownStore { store: StoreId },
    #[error("line {line}: listing {listing} belongs to another store")]
    ListingOfAnotherStore { line: usize, listing: ListingId },
    #[error("line {line}: unknown listing {listing}")]
    UnknownListing { line: usize, listing: ListingId },
    #[error("line {line}: item {sku} is a draft and cannot be ordered; set it active first")]
    ItemIsDraft { line: usize, sku: String },
    #[error("{field} is invalid: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("unknown order {order}")]
    UnknownOrder { order: OrderId },
    #[error("order {order} is {status}; {action} needs it to be {needs}")]
    WrongStatus { order: OrderId, status: &'static str, action: &'static str, needs: &'static str },
    #[error("order {order} cannot be fulfilled yet: line {line} still waits for {waiting} unit(s)")]
    NotReadyToFulfill { order: OrderId, line: usize, waiting: Qty },
    #[error("unknown production card {card}")]
    UnknownCard { card: CardId },
    #[error("production card {card} is {status:?}; {action} needs it {needs}")]
    CardWrongStatus { card: CardId, status: CardStatus, action: &'static str, needs: &'static str },
    #[error("production card {card} makes units for order {order}; cancel the order instead")]
    CardBelongsToOrder { card: CardId, order: OrderId },
    #[error("item {sku} cannot be made: it has no bill of materials")]
    NotMakeable { sku: String },
    #[error("not enough components to make {quantity} of {sku}: at most {capacity} can be made in that warehouse")]
    NotEnoughComponents { sku: String, quantity: Qty, capacity: Qty },
    #[error("unknown item {item}")]
    UnknownItem { item: ItemId },
    #[error("unknown warehouse {warehouse}")]
    UnknownWarehouse { warehouse: WarehouseId },
}
