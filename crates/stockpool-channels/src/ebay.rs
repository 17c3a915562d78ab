//! The `ebay` channel (SPEC section 5a): eBay's Sell APIs (REST), OAuth with a refresh token.
//!
//! Credentials: `client_id`, `client_secret`, `refresh_token` (and optionally an
//! `access_token`). The access token comes from `POST {base}/identity/v1/oauth2/token` with
//! HTTP Basic `client_id:client_secret` and the form `grant_type=refresh_token`,
//! `refresh_token`, `scope` ([`SCOPES`]: `sell.inventory` and `sell.fulfillment`, the scopes
//! the two APIs' OpenAPI documents name); every call carries `Authorization: Bearer`. eBay's
//! refresh tokens do not rotate (they last 18 months); a refused refresh pauses the store
//! (`oauth.rs`).
//!
//! Out: `POST {base}/sell/inventory/v1/bulk_update_price_quantity` with
//! `{"requests": [{"sku", "shipToLocationAvailability": {"quantity"}, "offers": [{"offerId",
//! "availableQuantity"}]}]}`, at most [`BATCH_MAX`] offers (and so requests) a call. A
//! listing's `external_id` is the offer id, its `store_sku` the inventory item's SKU; the
//! listings of one SKU share one request. eBay answers 200 when every part took, 207 with
//! `responses[]` (`statusCode`, `sku`, `offerId`, `errors`, `warnings`) when some did not:
//! only the listings a failed response names fail, each with eBay's message.
//!
//! Read back: `GET {base}/sell/inventory/v1/offer/{offerId}` (`availableQuantity`), one call
//! a listing, [`READ_BATCH_MAX`] a read-back page.
//!
//! In: polling `GET {base}/sell/fulfillment/v1/order?filter=lastmodifieddate:[FROM..]
//! &limit=200&offset=N` (getOrders), at most [`PAGES_PER_POLL_MAX`] pages a poll. The cursor
//! is the `lastModifiedDate` to start from (see [`Cursor`] for why it starts a little before
//! the last one seen). `cancelStatus.cancelState` `CANCELED` cancels; lines map by `sku`
//! (the line items carry no offer id).
//!
//! Pacing: eBay limits calls per day and per application, not per second (Inventory API
//! commonly cited at 2,000,000 a day, Fulfillment at 100,000; research/channels.md marks
//! both unverified). Every call of a store (pushes, reads, polls) waits for the store's
//! pacer: [`CALLS_PER_SECOND`] with a burst of [`BURST`], at most 432,000 calls a day,
//! about a fifth of the Inventory figure; polls are at least [`POLL_INTERVAL_MIN`] apart,
//! at most 43,200 pages a day even when every poll reads five pages. A 429 holds the pacer
//! for its `Retry-After`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stockpool_core::{Channel, ListingId, Payment, Qty, Timestamp};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::{ChannelError, ConfigError, ParseError};
use crate::http::{result_for_status, retry_after_ms, transport_failure, truncate_detail};
use crate::model::{
    Attempt, AttemptResult, ChannelLimits, InboundEvent, InboundLine, InboundOrder, PollPage, PolledOrder, PushItem,
    ReadItem, POLL_LOOKBACK,
};
use crate::oauth::{Grant, TokenCache};
use crate::time::rfc3339;
use crate::{BoxFuture, Connector, ReadBack, StoreSettings};

/// The channel's name in messages.
const CHANNEL: &str = "ebay";

/// eBay's API host, when the store sets no `base_url` (the token endpoint is on it too).
pub const DEFAULT_BASE_URL: &str = "https://api.ebay.com";

/// The OAuth token endpoint, under the base.
pub const TOKEN_PATH: &str = "/identity/v1/oauth2/token";
/// bulkUpdatePriceQuantity, under the base.
pub const BULK_PATH: &str = "/sell/inventory/v1/bulk_update_price_quantity";
/// getOffer is `{OFFER_PATH}/{offerId}`, under the base.
pub const OFFER_PATH: &str = "/sell/inventory/v1/offer";
/// getOrders, under the base.
pub const ORDERS_PATH: &str = "/sell/fulfillment/v1/order";

/// The scopes asked for at refresh: the Inventory API's and the Fulfillment API's (their
/// OpenAPI documents' `security`). They must be among those the seller granted.
pub const SCOPES: [&str; 2] =
    ["https://api.ebay.com/oauth/api_scope/sell.inventory", "https://api.ebay.com/oauth/api_scope/sell.fulfillment"];

/// Most offers (listings) one bulkUpdatePriceQuantity call carries: the schema's "up to 25".
pub const BATCH_MAX: usize = 25;

/// Most listings one read-back page asks for. Each is a `GET /offer/{offerId}` of its own,
/// so a page is a second of the pacer's calls, and pushes wait at most that long behind it
/// (a read page never overlaps a push).
pub const READ_BATCH_MAX: usize = 5;

/// getOrders' largest `limit`.
pub const PAGE_LIMIT: usize = 200;

/// Most getOrders pages one poll reads (1,000 orders); `more` says when there are others.
pub const PAGES_PER_POLL_MAX: usize = 5;

/// Calls a second a store's connector makes at most, sustained (see the module docs).
pub const CALLS_PER_SECOND: u32 = 5;

/// Calls that may go at once after a quiet spell.
pub const BURST: u32 = 5;

/// Most calls a store's connector has out at once.
pub const IN_FLIGHT_MAX: usize = 4;

/// The shortest time between two polls: ten seconds keeps even five-page polls within
/// 43,200 getOrders calls a day.
pub const POLL_INTERVAL_MIN: Duration = Duration::from_secs(10);

/// How far before the last `lastModifiedDate` seen the next poll starts (see [`Cursor`]).
pub const CURSOR_OVERLAP_MS: i64 = 120_000;

/// Most bytes of an answer read: 200 orders of a few kilobytes each fit many times over.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Most characters of an offer id. eBay's are decimal digits; letters, digits, `-` and `_`
/// are taken so that the id is safe in a path.
pub const OFFER_ID_CHARS_MAX: usize = 64;

/// The largest quantity eBay takes (`int32`).
pub const QUANTITY_MAX: Qty = i32::MAX as Qty;

/// What the dispatcher paces an eBay store by: one call per batch of up to 25.
pub const EBAY_LIMITS: ChannelLimits = ChannelLimits {
    batch_max: BATCH_MAX,
    read_batch_max: READ_BATCH_MAX,
    requests_per_second_milli: CALLS_PER_SECOND as u64 * 1000,
    burst: BURST,
    call_per_item: false,
};

/// The cancel state that releases an order.
pub const CANCELED: &str = "CANCELED";

/// The wire shapes of the calls made, as eBay's OpenAPI documents name them (only the
/// fields sent or read; unknown fields are ignored on the way in).
pub mod wire {
    use super::*;

    /// bulkUpdatePriceQuantity's body (`BulkPriceQuantity`).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct BulkPriceQuantity {
        pub requests: Vec<PriceQuantity>,
    }

    /// One inventory item's ship-to-home quantity and its offers' quantities (`PriceQuantity`).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PriceQuantity {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sku: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ship_to_location_availability: Option<ShipToLocationAvailability>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub offers: Vec<OfferPriceQuantity>,
    }

    /// `ShipToLocationAvailability`: the item's total ship-to-home quantity.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct ShipToLocationAvailability {
        pub quantity: i64,
    }

    /// `OfferPriceQuantity`: one offer's available quantity (we send no price).
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct OfferPriceQuantity {
        pub offer_id: String,
        pub available_quantity: i64,
    }

    /// bulkUpdatePriceQuantity's answer (`BulkPriceQuantityResponse`), 200 or 207.
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct BulkPriceQuantityResponse {
        #[serde(default)]
        pub responses: Vec<PriceQuantityResponse>,
    }

    /// How one offer or inventory item fared (`PriceQuantityResponse`).
    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PriceQuantityResponse {
        #[serde(default)]
        pub status_code: Option<i64>,
        #[serde(default)]
        pub sku: Option<String>,
        #[serde(default)]
        pub offer_id: Option<String>,
        #[serde(default)]
        pub errors: Vec<EbayError>,
        #[serde(default)]
        pub warnings: Vec<EbayError>,
    }

    /// eBay's error (and warning) object, the same in every Sell API (`Error`).
    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct EbayError {
        #[serde(default)]
        pub error_id: Option<i64>,
        #[serde(default)]
        pub domain: Option<String>,
        #[serde(default)]
        pub category: Option<String>,
        #[serde(default)]
        pub message: Option<String>,
        #[serde(default)]
        pub long_message: Option<String>,
    }

    impl EbayError {
        /// `errorId message` (the long message when there is no short one).
        pub fn sentence(&self) -> String {
            let text = self
                .message
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .or(self.long_message.as_deref())
                .unwrap_or("")
                .trim();
            match (self.error_id, text.is_empty()) {
                (Some(id), false) => format!("{id} {text}"),
                (Some(id), true) => format!("error {id}"),
                (None, false) => text.to_string(),
                (None, true) => "an error without a message".to_string(),
            }
        }
    }

    /// The body of a refused call: `{"errors": [...]}`.
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct ErrorsBody {
        #[serde(default)]
        pub errors: Vec<EbayError>,
    }

    /// An offer as getOffer answers it (`EbayOfferDetailsWithAll`, the fields read).
    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Offer {
        #[serde(default)]
        pub offer_id: Option<String>,
        #[serde(default)]
        pub sku: Option<String>,
        #[serde(default)]
        pub available_quantity: Option<i64>,
        #[serde(default)]
        pub status: Option<String>,
    }

    /// A getOrders page (`OrderSearchPagedCollection`); each order kept as it came.
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct OrderSearchPagedCollection {
        #[serde(default)]
        pub total: Option<u64>,
        #[serde(default)]
        pub limit: Option<u64>,
        #[serde(default)]
        pub offset: Option<u64>,
        #[serde(default)]
        pub next: Option<String>,
        #[serde(default)]
        pub orders: Vec<Value>,
    }

    /// An order (`Order`, the fields read).
    #[derive(Clone, Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Order {
        pub order_id: Value,
        #[serde(default)]
        pub last_modified_date: Option<String>,
        #[serde(default)]
        pub creation_date: Option<String>,
        #[serde(default)]
        pub order_payment_status: Option<String>,
        #[serde(default)]
        pub cancel_status: Option<CancelStatus>,
        #[serde(default)]
        pub line_items: Vec<LineItem>,
    }

    /// `CancelStatus`.
    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CancelStatus {
        #[serde(default)]
        pub cancel_state: Option<String>,
        #[serde(default)]
        pub cancelled_date: Option<String>,
    }

    /// `LineItem` (the fields read).
    #[derive(Clone, Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct LineItem {
        #[serde(default)]
        pub line_item_id: Option<String>,
        #[serde(default)]
        pub legacy_item_id: Option<String>,
        #[serde(default)]
        pub legacy_variation_id: Option<String>,
        #[serde(default)]
        pub sku: Option<String>,
        #[serde(default)]
        pub title: Option<String>,
        pub quantity: i64,
    }
}

use wire::{BulkPriceQuantity, BulkPriceQuantityResponse, ErrorsBody, OfferPriceQuantity, PriceQuantity};

/// Whether `id` can be an offer id (see [`OFFER_ID_CHARS_MAX`]).
pub fn is_offer_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= OFFER_ID_CHARS_MAX
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where a poll starts: `lastmodifieddate:[from..]`, and, in the middle of a result set
/// too long for one poll, the offset reached and the latest `lastModifiedDate` seen so far.
///
/// After a result set is read to its end the next poll starts [`CURSOR_OVERLAP_MS`] before
/// the latest `lastModifiedDate` seen (never before this poll's start). eBay documents no
/// order for getOrders' results, so an order changed while its set was read by offsets may
/// move to a page already read; its new `lastModifiedDate` is then at most a read's length
/// before the latest one seen, and the overlap reads it next time. Orders read twice are
/// the same deliveries (`{orderId}@{lastModifiedDate}`) and change nothing.
///
/// As text: `2026-12-02T12:00:00.000Z`, or `2026-12-02T12:00:00.000Z;offset=400;seen=
/// 2026-12-02T12:05:00.000Z` in the middle of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub from: Timestamp,
    pub offset: u64,
    pub seen: Option<Timestamp>,
}

impl Cursor {
    /// The cursor's text, as [`Cursor::parse`] reads it.
    pub fn text(&self) -> String {
        let from = rfc3339(self.from);
        match (self.offset, self.seen) {
            (0, None) => from,
            (offset, None) => format!("{from};offset={offset}"),
            (offset, Some(seen)) => format!("{from};offset={offset};seen={}", rfc3339(seen)),
        }
    }

    /// Reads [`Cursor::text`]; `None` for anything else.
    pub fn parse(text: &str) -> Option<Cursor> {
        let mut parts = text.trim().split(';');
        let from = parse_time(parts.next()?)?;
        let mut cursor = Cursor { from, offset: 0, seen: None };
        for part in parts {
            match part.split_once('=')? {
                ("offset", n) => cursor.offset = n.parse().ok()?,
                ("seen", t) => cursor.seen = Some(parse_time(t)?),
                _ => return None,
            }
        }
        Some(cursor)
    }

    /// Where the poll after a finished result set starts.
    fn after(&self) -> Cursor {
        let from = match self.seen {
            Some(seen) => Timestamp(seen.0.saturating_sub(CURSOR_OVERLAP_MS).max(self.from.0)),
            None => self.from,
        };
        Cursor { from, offset: 0, seen: None }
    }
}

/// An ISO 8601 time as eBay writes it (`2015-08-04T19:09:02.768Z`; any number of
/// fraction digits, `Z` or `±hh:mm`), as milliseconds since 1970; `None` when it is not one.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') && rest.as_bytes()[3] == b':' => {
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            if h > 23 || m > 59 {
                return None;
            }
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (h * 60 + m)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some(Timestamp(seconds * 1000 + millis))
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian), by eras of 400 years.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The orders of one getOrders page as the poller keeps them, each with its delivery id
/// `{orderId}@{lastModifiedDate}` and its `lastModifiedDate` read (`None` when absent or
/// unreadable), in the page's order. An order without an `orderId` cannot be applied and
/// is left out (and logged by the caller).
pub fn parse_order_page(body: &[u8]) -> Result<(wire::OrderSearchPagedCollection, Vec<PageOrder>), String> {
    let page: wire::OrderSearchPagedCollection =
        serde_json::from_slice(body).map_err(|e| format!("the getOrders answer is not an order page: {e}"))?;
    let mut orders = Vec::with_capacity(page.orders.len());
    for value in &page.orders {
        let Some(id) = value.get("orderId").and_then(order_id) else { continue };
        let modified = value.get("lastModifiedDate").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let stamp = modified.or_else(|| value.get("creationDate").and_then(Value::as_str)).unwrap_or("-");
        let body = serde_json::to_vec(value).expect("a JSON value serialises");
        orders.push(PageOrder {
            polled: PolledOrder { delivery_id: format!("{id}@{stamp}"), body },
            modified: modified.and_then(parse_time),
        });
    }
    Ok((page, orders))
}

/// One order of a page (see [`parse_order_page`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageOrder {
    pub polled: PolledOrder,
    pub modified: Option<Timestamp>,
}

fn order_id(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// What one listing of a bulkUpdatePriceQuantity call became, from the call's status and
/// the answer's `responses` (`None` when the body was unreadable): the response naming its
/// offer decides; without one, a failed response for its SKU alone (the inventory item's
/// quantity) fails it; a listing no response names is done after a 200, failed after a 207.
pub fn bulk_outcome(
    status: u16,
    answer: Option<&BulkPriceQuantityResponse>,
    offer_id: &str,
    sku: &str,
) -> (AttemptResult, Option<u16>, Option<String>) {
    let responses = answer.map_or(&[][..], |a| &a.responses[..]);
    let for_offer = responses.iter().find(|r| r.offer_id.as_deref().map(str::trim) == Some(offer_id));
    let for_sku = || {
        responses.iter().find(|r| {
            r.offer_id.as_deref().is_none_or(|o| o.trim().is_empty())
                && !sku.is_empty()
                && r.sku.as_deref().map(str::trim) == Some(sku)
                && !r.status_code.is_some_and(|s| (200..300).contains(&s))
        })
    };
    let Some(response) = for_offer.or_else(for_sku) else {
        return if status == 200 {
            (AttemptResult::Ok, Some(status), None)
        } else {
            let detail = format!("eBay's {status} answer does not mention offer {offer_id}");
            (AttemptResult::Failed, Some(status), Some(detail))
        };
    };
    let code = response.status_code.and_then(|s| u16::try_from(s).ok());
    let has_errors = !response.errors.is_empty();
    let result = match code.and_then(|c| StatusCode::from_u16(c).ok()) {
        Some(s) if s.is_success() && !has_errors => AttemptResult::Ok,
        Some(s) if s.is_success() => AttemptResult::Failed,
        Some(s) => result_for_status(s, None),
        None if has_errors => AttemptResult::Failed,
        None => AttemptResult::Ok,
    };
    let sentences = |list: &[wire::EbayError]| list.iter().map(|e| e.sentence()).collect::<Vec<_>>().join("; ");
    let detail = if result == AttemptResult::Ok {
        (!response.warnings.is_empty()).then(|| format!("eBay warned: {}", sentences(&response.warnings)))
    } else {
        let said = if has_errors { sentences(&response.errors) } else { "no message".to_string() };
        let what = match response.offer_id.as_deref() {
            Some(o) if !o.trim().is_empty() => format!("offer {o}"),
            _ => format!("inventory item {sku}"),
        };
        Some(format!("eBay refused {what} ({}): {said}", code.map_or("no status".to_string(), |c| c.to_string())))
    };
    (result, code.or(Some(status)), detail.and_then(|d| truncate_detail(&d)))
}

/// Turns one polled order (an `Order` object as getOrders held it) into events: a
/// cancellation when `cancelStatus.cancelState` is `CANCELED`, else the order with a line
/// per line item by `sku` (as `store_sku`). A line item without a SKU (a listing made
/// outside the Inventory API) keeps its title, or `eBay item {legacyItemId}`, so that it
/// becomes an `unmapped` line, never dropped.
pub fn parse_order(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let bad = |reason: String| ParseError::BadPolledOrder { channel: CHANNEL, reason };
    let value: Value = serde_json::from_slice(body).map_err(|e| bad(format!("it is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad("an order is a JSON object".to_string()));
    }
    let order = wire::Order::deserialize(value).map_err(|e| bad(e.to_string()))?;
    let external_id = order_id(&order.order_id).ok_or_else(|| bad("orderId is not a non-empty string".into()))?;
    let state = order.cancel_status.as_ref().and_then(|c| c.cancel_state.as_deref()).map(str::trim);
    if state == Some(CANCELED) {
        return Ok(vec![InboundEvent::Cancel { external_id }]);
    }
    let mut lines = Vec::with_capacity(order.line_items.len());
    for (n, line) in (1..).zip(&order.line_items) {
        if line.quantity < 0 {
            return Err(bad(format!("line item {n} has quantity {}", line.quantity)));
        }
        if line.quantity == 0 {
            continue;
        }
        let text = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let store_sku = text(&line.sku)
            .or_else(|| text(&line.title))
            .or_else(|| text(&line.legacy_item_id).map(|id| format!("eBay item {id}")))
            .unwrap_or_else(|| format!("line {n}"));
        lines.push(InboundLine { store_sku: Some(store_sku), external_id: None, quantity: line.quantity });
    }
    if lines.is_empty() {
        return Ok(vec![InboundEvent::Ignored(format!("eBay order {external_id} has no line items"))]);
    }
    Ok(vec![InboundEvent::Order(InboundOrder {
        external_id,
        lines,
        payment: Payment::Immediate,
        pay_within_seconds: None,
    })])
}

/// Spaces a store's calls: [`CALLS_PER_SECOND`] sustained, [`BURST`] at once (a virtual
/// schedule, GCRA): each call takes the next slot, and waits until its slot is within the
/// burst of now.
struct Pacer {
    interval: Duration,
    burst: u32,
    /// When the next slot is due.
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(per_second: u32, burst: u32) -> Pacer {
        let interval = Duration::from_secs(1) / per_second.max(1);
        Pacer { interval, burst: burst.max(1), next: Mutex::new(Instant::now()) }
    }

    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot.checked_sub(self.interval * (self.burst - 1)).unwrap_or(now)
        };
        tokio::time::sleep_until(at).await;
    }

    /// No call leaves for `ms` (a 429's `Retry-After`).
    fn hold(&self, ms: i64) {
        let ms = u64::try_from(ms).unwrap_or(0);
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + Duration::from_millis(ms) + self.interval * (self.burst - 1);
        *next = (*next).max(until);
    }
}

/// The connector of one `ebay` store. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct EbayConnector {
    inner: Arc<Inner>,
}

struct Inner {
    store: String,
    /// The base URL without a trailing slash.
    base: String,
    tokens: TokenCache,
    client: reqwest::Client,
    request_timeout: Duration,
    pacer: Pacer,
    in_flight: Semaphore,
}

/// The credentials never reach a log.
impl fmt::Debug for EbayConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EbayConnector")
            .field("store", &self.inner.store)
            .field("base", &self.inner.base)
            .field("request_timeout", &self.inner.request_timeout)
            .finish_non_exhaustive()
    }
}

/// A credential given as a non-empty string, or a number.
fn credential(credentials: Option<&Value>, field: &'static str, store: &str) -> Result<String, ConfigError> {
    match credentials.and_then(|c| c.get(field)) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(ConfigError::MissingCredential {
            channel: CHANNEL,
            store: store.to_string(),
            field,
            hint: "set it from the application's keys on developer.ebay.com",
        }),
    }
}

/// The store's `base_url` (or eBay's host): absolute `http` or `https` with a host, no query.
fn base(settings: &StoreSettings) -> Result<String, ConfigError> {
    let store = settings.code.clone();
    let text = settings.base_url.as_deref().map(str::trim).filter(|u| !u.is_empty()).unwrap_or(DEFAULT_BASE_URL);
    let bad_url = |reason: String| ConfigError::BadUrl { store: store.clone(), url: text.to_string(), reason };
    let url = Url::parse(text).map_err(|e| bad_url(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad_url(format!("the scheme is {}, and only http and https are supported", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad_url("it names no host".to_string()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad_url("a base URL has no query or fragment".to_string()));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// A call that got no answer to read.
enum Failure {
    /// No access token: the refresh failed (refused, throttled or unavailable).
    Token(ChannelError),
    /// The call itself got no answer.
    Transport(reqwest::Error),
}

/// A call's answer.
struct Answer {
    status: StatusCode,
    retry_after: Option<i64>,
    /// The body, or what came of it when it was too long or broke off.
    body: Result<Vec<u8>, Vec<u8>>,
}

impl Answer {
    fn bytes(&self) -> &[u8] {
        match &self.body {
            Ok(b) | Err(b) => b,
        }
    }

    /// What eBay said, as a sentence: its errors, or the start of the body.
    fn said(&self) -> String {
        let bytes = self.bytes();
        let errors = serde_json::from_slice::<ErrorsBody>(bytes).map(|b| b.errors).unwrap_or_default();
        let said = if errors.is_empty() {
            truncate_detail(&String::from_utf8_lossy(&bytes[..bytes.len().min(2048)])).unwrap_or_default()
        } else {
            errors.iter().map(|e| e.sentence()).collect::<Vec<_>>().join("; ")
        };
        if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        }
    }

    /// A refused call's sentence.
    fn refusal(&self) -> String {
        let said = self.said();
        let detail = match self.status.as_u16() {
            401 => format!("eBay refused the access token (401) even after refreshing it{said}"),
            429 => format!("eBay asked us to slow down (429){said}"),
            _ => format!("eBay answered {}{said}", self.status),
        };
        truncate_detail(&detail).unwrap_or(detail)
    }
}

/// An answer's body, at most [`RESPONSE_BYTES_MAX`] bytes; `Err` with what came when it is
/// longer or breaks off.
async fn read_bounded(mut response: Response) -> Result<Vec<u8>, Vec<u8>> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > RESPONSE_BYTES_MAX {
                    let room = RESPONSE_BYTES_MAX - body.len();
                    body.extend_from_slice(&chunk[..room]);
                    return Err(body);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(body),
        }
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl EbayConnector {
    /// A connector for the store `settings` describe: `credentials` `client_id`,
    /// `client_secret` and `refresh_token` are required; `base_url` replaces
    /// `https://api.ebay.com` for every call and the token endpoint. Every call gives up
    /// after `request_timeout`.
    pub fn new(
        settings: &StoreSettings,
        client: reqwest::Client,
        request_timeout: Duration,
    ) -> Result<EbayConnector, ConfigError> {
        let store = settings.code.clone();
        let base = base(settings)?;
        let client_id = credential(settings.credentials.as_ref(), "client_id", &store)?;
        let client_secret = credential(settings.credentials.as_ref(), "client_secret", &store)?;
        let grant = Grant {
            channel: CHANNEL,
            store: store.clone(),
            token_url: format!("{base}{TOKEN_PATH}"),
            form: vec![("scope", SCOPES.join(" "))],
            basic: Some((client_id, client_secret)),
        };
        let empty = Value::Object(Default::default());
        let tokens = TokenCache::new(grant, settings.credentials.as_ref().unwrap_or(&empty), request_timeout)?;
        Ok(EbayConnector {
            inner: Arc::new(Inner {
                store,
                base,
                tokens,
                client,
                request_timeout,
                pacer: Pacer::new(CALLS_PER_SECOND, BURST),
                in_flight: Semaphore::new(IN_FLIGHT_MAX),
            }),
        })
    }

    /// One call with the store's access token, paced and within the in-flight bound; a 401
    /// refreshes the token and tries once more. `now` turns an HTTP-date `Retry-After` into
    /// a delay (without it only delay-seconds count).
    async fn send(
        &self,
        now: Option<Timestamp>,
        make: &(dyn Fn() -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<Answer, Failure> {
        let inner = &self.inner;
        let mut refreshed = false;
        loop {
            let token = inner.tokens.access_token(&inner.client).await.map_err(Failure::Token)?;
            inner.pacer.wait().await;
            let response = {
                // The semaphore is never closed, so a permit always comes.
                let _permit = inner.in_flight.acquire().await.expect("the in-flight semaphore is never closed");
                make().bearer_auth(&token).timeout(inner.request_timeout).send().await
            }
            .map_err(Failure::Transport)?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                inner.tokens.invalidate(&token);
                refreshed = true;
                continue;
            }
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .filter(|v| now.is_some() || v.trim().bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| retry_after_ms(v, now.unwrap_or(Timestamp(0))));
            if status == StatusCode::TOO_MANY_REQUESTS {
                if let Some(ms) = retry_after {
                    inner.pacer.hold(ms);
                }
            }
            let body = read_bounded(response).await;
            return Ok(Answer { status, retry_after, body });
        }
    }

    /// A call's failure as a channel error (reads and polls).
    fn failure_error(&self, failure: Failure) -> ChannelError {
        match failure {
            Failure::Token(e) => e,
            Failure::Transport(e) => ChannelError::Unavailable {
                channel: CHANNEL,
                detail: transport_failure(e, self.inner.request_timeout).1,
            },
        }
    }

    /// A refused answer as a channel error (reads and polls).
    fn answer_error(answer: &Answer) -> ChannelError {
        let detail = answer.refusal();
        match result_for_status(answer.status, answer.retry_after) {
            AttemptResult::Throttled { retry_after_ms } => ChannelError::Throttled { channel: CHANNEL, retry_after_ms },
            AttemptResult::Retry { .. } => ChannelError::Unavailable { channel: CHANNEL, detail },
            _ => ChannelError::Refused { channel: CHANNEL, status: Some(answer.status.as_u16()), detail },
        }
    }

    /// One bulkUpdatePriceQuantity call for `items` (indexes into `batch`); one attempt per
    /// item, in `items`' order.
    async fn push_call(&self, batch: &[PushItem], items: &[usize], now: Timestamp) -> Vec<Attempt> {
        // One request per SKU, in first-seen order; an item without a SKU only sets its
        // offer (eBay refuses offers of different items in one request).
        let mut requests: Vec<PriceQuantity> = Vec::new();
        let mut by_sku: BTreeMap<&str, usize> = BTreeMap::new();
        for &n in items {
            let item = &batch[n];
            let quantity = item.quantity.clamp(0, QUANTITY_MAX);
            let offer =
                OfferPriceQuantity { offer_id: item.external_id.trim().to_string(), available_quantity: quantity };
            let sku = item.store_sku.trim();
            if sku.is_empty() {
                requests.push(PriceQuantity { offers: vec![offer], ..PriceQuantity::default() });
                continue;
            }
            match by_sku.get(sku) {
                Some(&r) => {
                    let request = &mut requests[r];
                    request.offers.push(offer);
                    if let Some(ship) = &mut request.ship_to_location_availability {
                        ship.quantity = ship.quantity.max(quantity);
                    }
                }
                None => {
                    by_sku.insert(sku, requests.len());
                    requests.push(PriceQuantity {
                        sku: Some(sku.to_string()),
                        ship_to_location_availability: Some(wire::ShipToLocationAvailability { quantity }),
                        offers: vec![offer],
                    });
                }
            }
        }
        let body = serde_json::to_vec(&BulkPriceQuantity { requests }).expect("a bulk update serialises");
        let url = format!("{}{BULK_PATH}", self.inner.base);
        let started = Instant::now();
        let make = || self.inner.client.post(&url).header(CONTENT_TYPE, "application/json").body(body.clone());
        let all = |result: AttemptResult, status_code: Option<u16>, detail: String, duration_ms: u64| {
            items.iter().map(|_| Attempt { result, status_code, detail: Some(detail.clone()), duration_ms }).collect()
        };
        let answer = match self.send(Some(now), &make).await {
            Ok(a) => a,
            Err(Failure::Transport(e)) => {
                let (result, detail) = transport_failure(e, self.inner.request_timeout);
                return all(result, None, detail, elapsed_ms(started));
            }
            Err(Failure::Token(e)) => {
                let result = match &e {
                    ChannelError::AuthRefused { .. } | ChannelError::Refused { .. } => AttemptResult::Failed,
                    ChannelError::Throttled { retry_after_ms, .. } => {
                        AttemptResult::Throttled { retry_after_ms: *retry_after_ms }
                    }
                    _ => AttemptResult::Retry { retry_after_ms: None },
                };
                return all(result, None, e.to_string(), elapsed_ms(started));
            }
        };
        let duration_ms = elapsed_ms(started);
        let status = answer.status.as_u16();
        if !matches!(status, 200 | 207) {
            let result = match result_for_status(answer.status, answer.retry_after) {
                // A 2xx eBay does not document for this call says nothing per listing.
                AttemptResult::Ok => AttemptResult::Retry { retry_after_ms: None },
                other => other,
            };
            return all(result, Some(status), answer.refusal(), duration_ms);
        }
        let parsed =
            answer.body.as_ref().ok().and_then(|b| serde_json::from_slice::<BulkPriceQuantityResponse>(b).ok());
        if parsed.is_none() && status == 207 {
            // Which listings failed is unreadable: the same absolute figures may be sent again.
            let detail = "eBay answered 207 with a body that is not its bulk answer".to_string();
            return all(AttemptResult::Retry { retry_after_ms: None }, Some(status), detail, duration_ms);
        }
        items
            .iter()
            .map(|&n| {
                let item = &batch[n];
                let (result, status_code, detail) =
                    bulk_outcome(status, parsed.as_ref(), item.external_id.trim(), item.store_sku.trim());
                Attempt { result, status_code, detail, duration_ms }
            })
            .collect()
    }

    /// One getOffer: the offer's `availableQuantity`, `None` when eBay does not know it.
    async fn read_offer(&self, offer_id: String) -> Result<Option<Qty>, ChannelError> {
        let url = format!("{}{OFFER_PATH}/{offer_id}", self.inner.base);
        let make = || self.inner.client.get(&url);
        let answer = self.send(None, &make).await.map_err(|f| self.failure_error(f))?;
        match answer.status.as_u16() {
            200 => {
                let offer = answer.body.as_ref().ok().and_then(|b| serde_json::from_slice::<wire::Offer>(b).ok());
                let offer = offer.ok_or_else(|| ChannelError::Unavailable {
                    channel: CHANNEL,
                    detail: format!("eBay answered getOffer for {offer_id} with a body that is not an offer"),
                })?;
                Ok(offer.available_quantity)
            }
            401 | 429 | 408 | 409 | 425 | 500..=599 => Err(Self::answer_error(&answer)),
            // 404, or a 400 naming the offer: eBay holds no quantity of ours for it, and a
            // push will say why in its sync record.
            400..=499 => Ok(None),
            _ => Err(Self::answer_error(&answer)),
        }
    }

    /// One getOrders page.
    async fn orders_page(&self, from: Timestamp, offset: u64, now: Timestamp) -> Result<Vec<u8>, ChannelError> {
        let mut url = Url::parse(&format!("{}{ORDERS_PATH}", self.inner.base)).map_err(|e| {
            ChannelError::Unavailable { channel: CHANNEL, detail: format!("the getOrders URL could not be built: {e}") }
        })?;
        url.query_pairs_mut()
            .append_pair("filter", &format!("lastmodifieddate:[{}..]", rfc3339(from)))
            .append_pair("limit", &PAGE_LIMIT.to_string())
            .append_pair("offset", &offset.to_string());
        let make = || self.inner.client.get(url.clone());
        let answer = self.send(Some(now), &make).await.map_err(|f| self.failure_error(f))?;
        if answer.status != StatusCode::OK {
            return Err(Self::answer_error(&answer));
        }
        answer.body.map_err(|_| ChannelError::Unavailable {
            channel: CHANNEL,
            detail: "eBay's getOrders answer broke off or was too long".to_string(),
        })
    }
}

impl Connector for EbayConnector {
    fn channel(&self) -> Channel {
        Channel::Ebay
    }

    /// [`EBAY_LIMITS`].
    fn limits(&self) -> ChannelLimits {
        EBAY_LIMITS
    }

    /// One bulkUpdatePriceQuantity call per [`BATCH_MAX`] listings (a second call only for
    /// an offer that comes twice: eBay refuses a repeated offer id in one call). A listing
    /// whose `external_id` cannot be an offer id fails without a call. Quantities are
    /// capped at [`QUANTITY_MAX`].
    fn push<'a>(&'a self, batch: &'a [PushItem], now: Timestamp) -> BoxFuture<'a, Vec<Attempt>> {
        Box::pin(async move {
            let mut attempts: Vec<Option<Attempt>> = vec![None; batch.len()];
            let mut calls: Vec<Vec<usize>> = Vec::new();
            for (n, item) in batch.iter().enumerate() {
                let offer = item.external_id.trim();
                if !is_offer_id(offer) {
                    attempts[n] = Some(Attempt {
                        result: AttemptResult::Failed,
                        status_code: None,
                        detail: Some(format!(
                            "the listing's external_id {:?} is not an eBay offer id (digits, as getOffers shows \
                             offerId)",
                            item.external_id
                        )),
                        duration_ms: 0,
                    });
                    continue;
                }
                let fits = |call: &Vec<usize>| {
                    call.len() < BATCH_MAX && !call.iter().any(|&m| batch[m].external_id.trim() == offer)
                };
                match calls.iter_mut().find(|c| fits(c)) {
                    Some(call) => call.push(n),
                    None => calls.push(vec![n]),
                }
            }
            for call in &calls {
                for (&n, attempt) in call.iter().zip(self.push_call(batch, call, now).await) {
                    attempts[n] = Some(attempt);
                }
            }
            tracing::debug!(store = %self.inner.store, listings = batch.len(), calls = calls.len(), "ebay push");
            attempts
                .into_iter()
                .map(|a| {
                    a.unwrap_or_else(|| Attempt {
                        result: AttemptResult::Retry { retry_after_ms: None },
                        status_code: None,
                        detail: Some("the call carrying this listing ended without an answer".to_string()),
                        duration_ms: 0,
                    })
                })
                .collect()
        })
    }

    /// One getOffer per distinct offer, [`IN_FLIGHT_MAX`] at once, each paced. A listing
    /// whose `external_id` cannot be an offer id, or that eBay answers 404 (or another 4xx
    /// but 401 and 429) for, reads as `None`; a 401, 429, 5xx or lost call fails the read.
    fn read_back<'a>(&'a self, items: &'a [ReadItem]) -> BoxFuture<'a, Result<ReadBack, ChannelError>> {
        Box::pin(async move {
            let mut offers: Vec<String> = Vec::new();
            for item in items {
                let offer = item.external_id.trim();
                if is_offer_id(offer) && !offers.iter().any(|o| o == offer) {
                    offers.push(offer.to_string());
                }
            }
            let mut reads = JoinSet::new();
            for offer in offers {
                let this = self.clone();
                reads.spawn(async move {
                    let got = this.read_offer(offer.clone()).await;
                    (offer, got)
                });
            }
            let mut found: BTreeMap<String, Option<Qty>> = BTreeMap::new();
            let mut first_error = None;
            while let Some(done) = reads.join_next().await {
                match done {
                    Ok((offer, Ok(q))) => {
                        found.insert(offer, q);
                    }
                    Ok((_, Err(e))) => {
                        first_error.get_or_insert(e);
                    }
                    Err(e) => {
                        first_error.get_or_insert(ChannelError::Unavailable {
                            channel: CHANNEL,
                            detail: format!("a getOffer call panicked: {e}"),
                        });
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
            Ok(items
                .iter()
                .map(|i| (i.listing, found.get(i.external_id.trim()).copied().flatten()))
                .collect::<Vec<(ListingId, Option<Qty>)>>())
        })
    }

    /// getOrders from the cursor (see [`Cursor`]; the first poll looks back
    /// [`POLL_LOOKBACK`]), up to [`PAGES_PER_POLL_MAX`] pages of [`PAGE_LIMIT`]; the orders
    /// oldest first. A cursor this connector did not write starts over from the lookback.
    fn poll_orders<'a>(
        &'a self,
        cursor: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<PollPage, ChannelError>> {
        Box::pin(async move {
            let lookback = Cursor {
                from: Timestamp(now.0.saturating_sub(POLL_LOOKBACK.as_millis() as i64)),
                offset: 0,
                seen: None,
            };
            let mut at = match cursor {
                None => lookback,
                Some(text) => Cursor::parse(text).unwrap_or_else(|| {
                    tracing::warn!(store = %self.inner.store, cursor = text, "an eBay cursor not written by this \
                                   connector; polling from the lookback");
                    lookback
                }),
            };
            let mut orders: Vec<PageOrder> = Vec::new();
            let mut more = false;
            for _ in 0..PAGES_PER_POLL_MAX {
                let body = self.orders_page(at.from, at.offset, now).await?;
                let (page, found) =
                    parse_order_page(&body).map_err(|detail| ChannelError::Unavailable { channel: CHANNEL, detail })?;
                let read = page.orders.len() as u64;
                if found.len() < page.orders.len() {
                    tracing::warn!(store = %self.inner.store, left_out = page.orders.len() - found.len(),
                                   "eBay orders without an orderId were left out");
                }
                for o in &found {
                    if let Some(m) = o.modified {
                        at.seen = Some(at.seen.map_or(m, |s| Timestamp(s.0.max(m.0))));
                    }
                }
                orders.extend(found);
                at.offset += read;
                more = read > 0 && (page.next.is_some() || page.total.is_some_and(|t| at.offset < t));
                if !more {
                    break;
                }
            }
            let next = if more { at } else { at.after() };
            // Oldest first; orders without a readable time keep their place at the front.
            orders.sort_by_key(|o| o.modified.map_or(i64::MIN, |t| t.0));
            Ok(PollPage {
                orders: orders.into_iter().map(|o| o.polled).collect(),
                next_cursor: Some(next.text()),
                more,
            })
        })
    }

    /// [`parse_order`].
    fn parse_polled(&self, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
        parse_order(body)
    }

    /// [`POLL_INTERVAL_MIN`].
    fn poll_interval_min(&self) -> Option<Duration> {
        Some(POLL_INTERVAL_MIN)
    }

    fn rotated_credentials(&self) -> Option<Value> {
        self.inner.tokens.rotated_credentials()
    }

    fn auth_refused(&self) -> Option<String> {
        self.inner.tokens.refused()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_ebay_writes_them() {
        assert_eq!(parse_time("1970-01-01T00:00:00.000Z"), Some(Timestamp(0)));
        assert_eq!(parse_time("2015-08-04T19:09:02.768Z"), Some(Timestamp(1_438_715_342_768)));
        assert_eq!(parse_time("2015-08-04T19:09:02Z"), Some(Timestamp(1_438_715_342_000)));
        assert_eq!(parse_time("2015-08-04T21:09:02.7+02:00"), Some(Timestamp(1_438_715_342_700)));
        assert_eq!(parse_time("2024-02-29T00:00:00.123456Z"), Some(Timestamp(1_709_164_800_123)));
        for bad in ["", "2015-08-04", "2015-02-29T00:00:00Z", "2015-08-04T25:00:00Z", "2015-08-04T19:09:02.Z", "x"] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
        for ms in [0, 1_438_715_342_768, 4_102_444_799_999, 951_782_400_000] {
            assert_eq!(parse_time(&rfc3339(Timestamp(ms))), Some(Timestamp(ms)), "{ms}");
        }
    }

    #[test]
    fn cursors_read_back_what_they_wrote() {
        let c = Cursor { from: Timestamp(1_438_715_342_768), offset: 0, seen: None };
        assert_eq!(c.text(), "2015-08-04T19:09:02.768Z");
        let mid = Cursor { offset: 400, seen: Some(Timestamp(1_438_716_000_000)), ..c };
        assert_eq!(mid.text(), "2015-08-04T19:09:02.768Z;offset=400;seen=2015-08-04T19:20:00.000Z");
        assert_eq!(Cursor::parse(&mid.text()), Some(mid));
        assert_eq!(Cursor::parse(&c.text()), Some(c));
        for bad in ["", "soon", "2015-08-04T19:09:02.768Z;offset=x", "2015-08-04T19:09:02.768Z;page=2"] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
        // After a set: the overlap before the latest seen, never before the start.
        assert_eq!(
            mid.after(),
            Cursor { from: Timestamp(1_438_716_000_000 - CURSOR_OVERLAP_MS), offset: 0, seen: None }
        );
        let close = Cursor { seen: Some(Timestamp(c.from.0 + 1000)), ..c };
        assert_eq!(close.after(), c);
    }

    #[test]
    fn offer_ids_are_safe_in_a_path() {
        assert!(is_offer_id("5005317010"));
        for bad in ["", "12/34", "1 2", "../x", &"9".repeat(OFFER_ID_CHARS_MAX + 1)] {
            assert!(!is_offer_id(bad), "{bad:?}");
        }
    }
}
