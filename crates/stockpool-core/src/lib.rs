//! stockpool-core: every stock decision stockpool makes, pure.
//!
//! This crate holds the domain of SPEC sections 1 to 4 and every decision over it: the
//! published quantity of a listing with its explanation (`publish`), capacity from bills
//! of materials (`bom`), and the atomic order decision with its transitions and deadline
//! sweep (`decide`); and for SPEC section 5 the push policy (`push`: what goes to each
//! channel, and when) and the rolling sales window behind `buffer: auto` (`velocity`).
//! It does no I/O and reads no clock: time comes in as a `Timestamp` argument, ids come
//! in from the shell, and every decision comes out as a `Change` (the
//! movements, orders and cards to persist) that `State::apply` replays.
//!
//! The server, the workers, the simulator and the tests all drive this one crate.

pub mod bom;
pub mod buffer;
pub mod build;
pub mod catalog;
pub mod decide;
pub mod ids;
pub mod limits;
pub mod order;
pub mod publish;
pub mod push;
pub mod rng;
pub mod rules;
pub mod state;
pub mod stock;
pub mod velocity;

pub use bom::{Bom, BomError, Hold};
pub use buffer::{AutoBuffer, Buffer, Latency, Velocity};
pub use catalog::{
    CatalogError, Channel, Component, Item, ItemKind, ItemStatus, Listing, ListingStatus, MakeAction, Qty, Schedule,
    Store, Warehouse, ZeroPolicy,
};
pub use decide::{Adjustment, Intake, StockError};
pub use ids::{CardId, ItemId, ListingId, OrderId, RuleId, StoreId, Timestamp, WarehouseId, WorkspaceId};
pub use limits::Limits;
pub use order::{
    CardFor, CardStatus, Line, LineStatus, NewLine, NewOrder, Order, OrderError, OrderSource, OrderStatus, Payment,
    ProductionCard,
};
pub use publish::{Explain, InactiveReason, PoolPart, Published, Step};
pub use rules::{ItemsSelector, RuleError, RuleRef, SyncRule};
pub use state::{Change, Finding, State};
pub use stock::{Movement, MovementReason, Reference, StockLevel};
