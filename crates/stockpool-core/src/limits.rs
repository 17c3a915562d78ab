//! Every bound the core enforces, in one place.
//!
//! Each limit has a reason in its doc comment. The shell copies these into its own
//! `Limits` (body sizes, timeouts, queue lengths) and docs/limits.md lists them all.

use serde::{Deserialize, Serialize};

/// The bounds the core checks before it decides anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Sync rules per workspace (SPEC section 3): more would make the rule a seller sees
    /// winning impossible to reason about, and every listing scans the rules of its store.
    pub rules_per_workspace_max: usize,
    /// Lines in one order: real carts are far below this; the whole order is decided in
    /// one transaction, so this bounds the work and the rows one transaction locks.
    pub lines_per_order_max: usize,
    /// Levels in a bill of materials (a product made of sub-assemblies made of materials):
    /// bounds the recursion of capacity and of making.
    pub bom_depth_max: usize,
    /// Components in one item's bill of materials.
    pub components_per_item_max: usize,
    /// Units in one order line, and per-unit quantity of one component.
    pub quantity_max: i64,
    /// Absolute size of one stock adjustment and of any on-hand figure it may set.
    pub on_hand_max: i64,
    /// Characters in a SKU, a code, an external id or a store SKU.
    pub code_len_max: usize,
    /// Characters in a name, a unit or an adjustment reason.
    pub text_len_max: usize,
    /// Warehouses and stores named in one rule.
    pub rule_members_max: usize,
    /// SKUs listed in one rule's item selector.
    pub rule_skus_max: usize,
    /// Longest deadline a seller may set (accept or pay within), in seconds: one year.
    pub deadline_seconds_max: i64,
    /// Pushes in one batch, whatever a connector declares: the largest documented channel
    /// batch is an Amazon feed's; a bigger call would be one huge request to retry whole.
    pub push_batch_max: usize,
    /// Longest an increase waits for a polled store's intake (SPEC section 5: never more
    /// than 10 minutes), so a stuck poller cannot keep restocked units off sale.
    pub intake_bound_ms_max: i64,
    /// Longest retry delay before jitter: a listing that keeps failing is still tried
    /// every so often, so its channel converges once the fault clears.
    pub backoff_ms_max: i64,
    /// Longest `Retry-After` honoured: a channel asking for more (or a garbled header) does
    /// not stop a store for longer than this; it is asked again then.
    pub retry_after_ms_max: i64,
}

impl Limits {
    /// The limits stockpool ships with.
    pub const DEFAULT: Limits = Limits {
        rules_per_workspace_max: 200,
        lines_per_order_max: 100,
        bom_depth_max: 8,
        components_per_item_max: 50,
        quantity_max: 1_000_000,
        on_hand_max: 1_000_000_000_000,
        code_len_max: 128,
        text_len_max: 500,
        rule_members_max: 100,
        rule_skus_max: 10_000,
        deadline_seconds_max: 366 * 24 * 3600,
        push_batch_max: 10_000,
        intake_bound_ms_max: 600_000,
        backoff_ms_max: 3_600_000,
        retry_after_ms_max: 3_600_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
