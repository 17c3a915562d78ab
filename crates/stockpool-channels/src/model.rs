//! The data that crosses the `Connector` trait.
//!
//! Pushes go out as `PushItem`s and come back as `Attempt`s whose `AttemptResult` uses
//! the words of SPEC section 6's sync records; orders come in as `InboundEvent`s, shaped
//! like what the order API takes, so the intake hands them to the same order path. These
//! are plain values: the caller turns them into sync records and orders.

use std::fmt;

use stockpool_core::{ListingId, Payment, Qty};

/// One listing's quantity to push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushItem {
    /// The caller's key for the listing; attempts come back in the batch's order.
    pub listing: ListingId,
    /// The listing's id as the API shows it (`GET /api/v1/listings` answers it as `id`).
    /// The generic webhook sends it as `listing`, so a receiver can name the listing to
    /// the seller the way the API does.
    pub public_id: String,
    /// The channel's id of the product or variant (SPEC section 5a).
    pub external_id: String,
    /// The channel's SKU of the product or variant.
    pub store_sku: String,
    /// Our merchant SKU.
    pub sku: String,
    /// What SPEC section 3 computed, already capped where the channel caps.
    pub quantity: Qty,
    /// Turn the channel's "sell when out of stock" switch on (zero policy `continue`,
    /// `backorder`, `request`), where it has one.
    pub sell_when_out_of_stock: bool,
    /// Show back-order status to the shopper (zero policy `backorder`), where it can.
    pub show_backorder: bool,
    /// What the channel was last told and confirmed, for compare-and-set where the
    /// channel offers it (Shopify's `changeFromQuantity`); `None` when unknown.
    pub settled: Option<Qty>,
}

/// One listing to read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadItem {
    pub listing: ListingId,
    pub external_id: String,
    pub store_sku: String,
}

/// How one push of one listing went: the stuff of one sync record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub result: AttemptResult,
    /// The channel's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// The channel's message (truncated to `http::DETAIL_CHARS_MAX`) or what went wrong
    /// on the way, as a sentence.
    pub detail: Option<String>,
    /// How long the call took, from a monotonic clock (not the wall clock: it stamps
    /// nothing, it only measures).
    pub duration_ms: u64,
}

/// What became of one push. The words are SPEC section 6's sync-record results; `as_str`
/// gives the one to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// The channel took the quantity.
    Ok,
    /// Try this listing again later (5xx, timeout, connection error, conflict), after
    /// `retry_after_ms` when the channel said so, else after the caller's backoff.
    Retry { retry_after_ms: Option<i64> },
    /// The channel said 429: the whole store waits, `retry_after_ms` when it said so.
    /// Recorded as `retry`.
    Throttled { retry_after_ms: Option<i64> },
    /// The channel refused this listing's push; its message is in `detail`. Pushing the
    /// same again would be refused again, so the caller does not retry it on its own.
    Failed,
    /// Compare-and-set found another quantity on the channel: read again, push again.
    Stale { channel_quantity: Qty },
}

impl AttemptResult {
    /// The sync record's `result` (SPEC section 6): `ok`, `retry`, `failed` or `stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Ok => "ok",
            AttemptResult::Retry { .. } | AttemptResult::Throttled { .. } => "retry",
            AttemptResult::Failed => "failed",
            AttemptResult::Stale { .. } => "stale",
        }
    }
}

/// How far back a store's first poll looks (it has no cursor yet): a day, so that orders
/// taken while the store was being set up are not missed, and no more, so that a new
/// store does not take in a year of history.
pub const POLL_LOOKBACK: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A page of polled orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollPage {
    /// Orders changed since the cursor, oldest first, each as the channel sent it.
    pub orders: Vec<PolledOrder>,
    /// Where the next poll starts; `None` when the channel gave nothing to move it on
    /// (the poller keeps the cursor it had).
    pub next_cursor: Option<String>,
    /// The channel has more changed orders than this page: poll again at once rather
    /// than after `poll_every_seconds`.
    pub more: bool,
}

/// One order a poll found, kept raw in the inbox before it is parsed
/// (`Connector::parse_polled`), like a webhook delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolledOrder {
    /// Deduplicates: the same order seen again in the same state changes nothing, an
    /// update of it (a cancellation, a refund) is a new delivery. The channel's order id
    /// with its last-modified time, e.g. `"1234567@1764590400"`.
    pub delivery_id: String,
    /// The order's own JSON object as the channel's answer held it.
    pub body: Vec<u8>,
}

/// What a webhook delivery or a poll brought in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundEvent {
    /// A new or updated order.
    Order(InboundOrder),
    /// The channel cancelled the order with this `external_id`: release what it holds.
    Cancel { external_id: String },
    /// A delivery that carries nothing for us (a ping, an event we do not act on). Kept
    /// in the inbox like every delivery; the reason says why it changed nothing.
    Ignored(String),
}

/// An order as a channel sent it, in the shape of the order API's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundOrder {
    /// The channel's own order id; `(store, external_id)` is unique.
    pub external_id: String,
    pub lines: Vec<InboundLine>,
    /// When the shopper pays (the order API's `payment`).
    pub payment: Payment,
    /// The order API's `pay_within_seconds`, when given.
    pub pay_within_seconds: Option<i64>,
}

/// One line of an inbound order: the listing by `store_sku` or by its `external_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundLine {
    pub store_sku: Option<String>,
    pub external_id: Option<String>,
    pub quantity: Qty,
}

/// The limits a connector declares for its channel. The dispatcher paces and chunks by
/// them; a connector never exceeds `batch_max` in one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLimits {
    /// Most listings one push call carries.
    pub batch_max: usize,
    /// Most listings one read-back call carries (0: the channel cannot read back).
    pub read_batch_max: usize,
    /// Sustained calls a second, in thousandths (Amazon's 0.5/s is `500`).
    pub requests_per_second_milli: u64,
    /// Calls that may go out at once after a quiet spell (a token bucket's size).
    pub burst: u32,
    /// Each listing of a batch is a call of its own (the generic webhook: one listing a
    /// request), so the rate counts listings, not batches. Otherwise a batch is one call.
    pub call_per_item: bool,
}

/// What a store holds that a connector needs (SPEC sections 1 and 5a). The caller opens
/// the sealed secret and credentials before building a connector.
#[derive(Clone, Default)]
pub struct StoreSettings {
    /// The store's `code`; the generic webhook sends it as `store`.
    pub code: String,
    /// Where the generic webhook POSTs (`webhook` stores only).
    pub url: Option<String>,
    /// Replaces the channel's host for every call (emulators, proxies, tests).
    pub base_url: Option<String>,
    /// Signs the channel's webhooks (and, for `webhook`, our pushes).
    pub secret: Option<String>,
    /// The channel's API credentials, a JSON object (SPEC section 5a).
    pub credentials: Option<serde_json::Value>,
    /// The store's `push_rate_per_second`: the generic webhook's rate when set (the
    /// seller's own site takes what the seller says); for a marketplace the dispatcher
    /// caps the channel's documented rate by it.
    pub push_rate_per_second: Option<u32>,
    /// The store's schedule when it is `{"every_minutes": N}` (`None`: realtime). Amazon
    /// sends an interval store's changes as one listings feed per interval.
    pub every_minutes: Option<u32>,
}

/// Secrets never reach a log: `Debug` shows whether they are set, not what they are.
impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("code", &self.code)
            .field("url", &self.url)
            .field("base_url", &self.base_url)
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .field("credentials", &self.credentials.as_ref().map(|_| "<set>"))
            .field("push_rate_per_second", &self.push_rate_per_second)
            .field("every_minutes", &self.every_minutes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let settings = StoreSettings {
            code: "hook".into(),
            secret: Some("s3cret".into()),
            credentials: Some(serde_json::json!({"access_token": "tok-123"})),
            ..StoreSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("tok-123"), "{shown}");
        assert!(shown.contains("<set>"), "{shown}");
    }

    #[test]
    fn results_use_the_sync_record_words() {
        assert_eq!(AttemptResult::Ok.as_str(), "ok");
        assert_eq!(AttemptResult::Retry { retry_after_ms: None }.as_str(), "retry");
        assert_eq!(AttemptResult::Throttled { retry_after_ms: Some(3000) }.as_str(), "retry");
        assert_eq!(AttemptResult::Failed.as_str(), "failed");
        assert_eq!(AttemptResult::Stale { channel_quantity: 4 }.as_str(), "stale");
    }
}
