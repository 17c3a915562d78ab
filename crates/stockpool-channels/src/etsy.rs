//! The `etsy` channel (SPEC section 5a): Etsy Open API v3, headers `x-api-key` and
//! `Authorization: Bearer`, OAuth refresh tokens that rotate (`oauth.rs`).
//!
//! Out: `GET {base}/v3/application/listings/{listing_id}/inventory?includes=Listing`, then
//! `PUT` of the same path with the whole inventory sent back (Etsy replaces it: a product
//! left out is deleted): every product kept, prices as decimal numbers (the GET answers
//! money objects), the `*_on_property` arrays kept, only the matching product's offering
//! quantities changed, at most [`QUANTITY_MAX`]. Pushes of several products of one listing
//! in one batch are one GET and one PUT. Etsy refuses an inventory whose every offering
//! is 0, so a listing that would show 0 everywhere is set `state: inactive` with
//! `PATCH {base}/v3/application/shops/{shop_id}/listings/{listing_id}` instead (its stored
//! quantities are left as they were), and set `active` again by the push that restocks it.
//!
//! A listing's `external_id` is its `listing_id`, or `{listing_id}/{product_id}` for one
//! product of a listing with variations. A bare listing id sets every product's offerings.
//!
//! Read back: the same `GET`; an inactive listing reads as 0.
//!
//! In: polling `GET {base}/v3/application/shops/{shop_id}/receipts?min_last_modified=...
//! &limit=100&offset=...&sort_on=updated&sort_order=asc`, at most [`POLL_PAGES_MAX`] pages a
//! poll. The cursor is the last `update_timestamp` seen (unix seconds), with `:{n}` when
//! the whole poll shared that one second (the next poll skips the `n` already read, so a
//! second holding more than a page of receipts cannot stall the cursor). A receipt whose
//! `status` is `canceled` or `fully refunded` releases what it holds.
//!
//! Rate: Etsy counts calls per second and per day per key (`x-limit-per-second`,
//! `x-remaining-this-second`, `x-remaining-today`), 429 above. A push is two calls a
//! listing, so `limits()` declares half the reported per-second limit in listings (10 QPS
//! by default, as Etsy documents). A day's budget spent (`x-remaining-today: 0`) holds the
//! store for [`DAY_SPENT_WAIT_MS`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use stockpool_core::{Channel, Payment, Qty, Timestamp};

use crate::error::{ChannelError, ConfigError, ParseError};
use crate::http::{result_for_status, retry_after_ms, transport_failure, truncate_detail};
use crate::model::{
    Attempt, AttemptResult, ChannelLimits, InboundEvent, InboundLine, InboundOrder, PollPage, PolledOrder, PushItem,
    ReadItem, POLL_LOOKBACK,
};
use crate::oauth::{Grant, TokenCache};
use crate::{BoxFuture, Connector, ReadBack, StoreSettings};

const CHANNEL: &str = "etsy";

/// Etsy's API host; a store's `base_url` replaces it (and the token host with it).
pub const DEFAULT_BASE: &str = "https://openapi.etsy.com";

/// Most an offering's quantity may be on Etsy.
pub const QUANTITY_MAX: Qty = 999;

/// Most listings one push batch carries (each is a GET and a PUT of its own).
pub const BATCH_MAX: usize = 20;

/// Receipts a poll page asks for: Etsy's `limit` is at most 100.
pub const POLL_LIMIT: usize = 100;

/// Most receipt pages one poll reads; `more` tells the poller to come back at once.
pub const POLL_PAGES_MAX: usize = 5;

/// Most bytes of an answer read (an inventory of many variations, a page of 100 receipts).
pub const RESPONSE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Etsy's documented default: 10 calls a second per key.
pub const DEFAULT_CALLS_PER_SECOND: u64 = 10;

/// How long a store waits once Etsy says the day's calls are spent: its window slides, so
/// an hour frees part of it.
pub const DAY_SPENT_WAIT_MS: i64 = 3_600_000;

/// Receipt statuses that release what the order holds.
pub const RELEASING_STATUSES: [&str; 2] = ["canceled", "fully refunded"];

/// The connector of one `etsy` store.
#[derive(Clone)]
pub struct EtsyConnector {
    inner: Arc<Inner>,
}

struct Inner {
    store: String,
    base: String,
    shop_id: String,
    api_key: String,
    tokens: TokenCache,
    client: reqwest::Client,
    request_timeout: Duration,
    /// The last `x-limit-per-second` Etsy reported.
    calls_per_second: AtomicU64,
    /// Etsy said `x-remaining-today: 0` on the last answer.
    day_spent: AtomicBool,
}

impl fmt::Debug for EtsyConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtsyConnector").field("store", &self.inner.store).field("base", &self.inner.base).finish()
    }
}

/// A credential as a non-empty string or a number.
fn credential(credentials: Option<&Value>, field: &'static str, store: &str) -> Result<String, ConfigError> {
    match credentials.and_then(|c| c.get(field)) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(ConfigError::MissingCredential {
            channel: CHANNEL,
            store: store.to_string(),
            field,
            hint: "set it in the store's credentials",
        }),
    }
}

/// A listing's `external_id`: `listing_id` or `listing_id/product_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtsyId {
    pub listing: u64,
    pub product: Option<u64>,
}

impl EtsyId {
    pub fn parse(text: &str) -> Option<EtsyId> {
        let digits = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        };
        match text.trim().split_once('/') {
            None => Some(EtsyId { listing: digits(text.trim())?, product: None }),
            Some((l, p)) => Some(EtsyId { listing: digits(l)?, product: Some(digits(p)?) }),
        }
    }
}

/// How one call went.
enum Answer {
    Got { status: StatusCode, body: String, retry_after_ms: Option<i64> },
    NoAnswer { result: AttemptResult, detail: String },
}

/// The money object `{amount, divisor}` as a decimal number.
fn money(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Object(o) => {
            let amount = o.get("amount")?.as_f64()?;
            let divisor = o.get("divisor")?.as_f64().filter(|d| *d > 0.0).unwrap_or(1.0);
            Some(amount / divisor)
        }
        _ => None,
    }
}

/// The PUT body from a GET answer: every product, only the fields `updateListingInventory`
/// takes, prices as numbers; `set` gives the new quantity of a product (by id) or of all.
pub fn inventory_update(inventory: &Value, set: &dyn Fn(Option<u64>) -> Option<Qty>) -> Result<Value, String> {
    let products = inventory.get("products").and_then(Value::as_array).ok_or("the inventory has no products")?;
    let mut out = Vec::with_capacity(products.len());
    for product in products {
        if product.get("is_deleted").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let id = product.get("product_id").and_then(Value::as_u64);
        let quantity = set(id);
        let mut offerings = Vec::new();
        for offering in product.get("offerings").and_then(Value::as_array).into_iter().flatten() {
            if offering.get("is_deleted").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let price = offering.get("price").and_then(money).ok_or("an offering has no price")?;
            let kept = offering.get("quantity").and_then(Value::as_i64).unwrap_or(0);
            let mut o = json!({
                "price": price,
                "quantity": quantity.map_or(kept, |q| q.clamp(0, QUANTITY_MAX)),
                "is_enabled": offering.get("is_enabled").and_then(Value::as_bool).unwrap_or(true),
            });
            if let Some(r) = offering.get("readiness_state_id").filter(|v| !v.is_null()) {
                o["readiness_state_id"] = r.clone();
            }
            offerings.push(o);
        }
        let mut values = Vec::new();
        for pv in product.get("property_values").and_then(Value::as_array).into_iter().flatten() {
            let mut v = Map::new();
            for field in ["property_id", "value_ids", "scale_id", "property_name", "values"] {
                if let Some(x) = pv.get(field).filter(|x| !x.is_null()) {
                    v.insert(field.into(), x.clone());
                }
            }
            values.push(Value::Object(v));
        }
        out.push(json!({
            "sku": product.get("sku").cloned().unwrap_or(Value::Null),
            "property_values": values,
            "offerings": offerings,
        }));
    }
    let array = |name: &str| inventory.get(name).cloned().filter(Value::is_array).unwrap_or_else(|| json!([]));
    Ok(json!({
        "products": out,
        "price_on_property": array("price_on_property"),
        "quantity_on_property": array("quantity_on_property"),
        "sku_on_property": array("sku_on_property"),
    }))
}

/// Whether every enabled offering of a PUT body shows 0.
pub fn all_zero(update: &Value) -> bool {
    update["products"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["offerings"].as_array().into_iter().flatten())
        .all(|o| o["is_enabled"].as_bool() == Some(false) || o["quantity"].as_i64().unwrap_or(0) == 0)
}

/// The quantity an inventory shows for `id` (a product, or the listing's sum).
fn shown(inventory: &Value, id: EtsyId) -> Option<Qty> {
    if inventory.pointer("/listing/state").and_then(Value::as_str) == Some("inactive") {
        return Some(0);
    }
    let products = inventory.get("products")?.as_array()?;
    let mut found = false;
    let mut total = 0;
    for p in products {
        if id.product.is_some() && p.get("product_id").and_then(Value::as_u64) != id.product {
            continue;
        }
        found = true;
        let q = p["offerings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["is_enabled"].as_bool() != Some(false))
            .filter_map(|o| o["quantity"].as_i64())
            .max()
            .unwrap_or(0);
        total = if id.product.is_some() { q } else { total.max(q) };
    }
    found.then_some(total)
}

impl EtsyConnector {
    /// Needs `credentials` `shop_id`, `api_key`, `refresh_token` (and optionally
    /// `access_token`).
    pub fn new(
        settings: &StoreSettings,
        client: reqwest::Client,
        request_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let store = settings.code.clone();
        let creds = settings.credentials.as_ref();
        let shop_id = credential(creds, "shop_id", &store)?;
        if !shop_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::BadCredential { store, field: "shop_id", value: shop_id, expected: "a number" });
        }
        let api_key = credential(creds, "api_key", &store)?;
        let client_id = api_key.split_once(':').map_or(api_key.as_str(), |(k, _)| k).to_string();
        let base = settings
            .base_url
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .unwrap_or(DEFAULT_BASE)
            .trim_end_matches('/')
            .to_string();
        let mut credentials = creds.cloned().unwrap_or_else(|| json!({}));
        for field in ["access_token", "refresh_token"] {
            if let Some(Value::Number(n)) = credentials.get(field).cloned() {
                credentials[field] = Value::String(n.to_string());
            }
        }
        let grant = Grant {
            channel: CHANNEL,
            store: store.clone(),
            token_url: format!("{base}/v3/public/oauth/token"),
            form: vec![("client_id", client_id)],
            basic: None,
        };
        let tokens = TokenCache::new(grant, &credentials, request_timeout)?;
        Ok(EtsyConnector {
            inner: Arc::new(Inner {
                store,
                base,
                shop_id,
                api_key,
                tokens,
                client,
                request_timeout,
                calls_per_second: AtomicU64::new(DEFAULT_CALLS_PER_SECOND),
                day_spent: AtomicBool::new(false),
            }),
        })
    }

    fn note_rate(&self, headers: &HeaderMap) {
        let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
        if let Some(limit) = number("x-limit-per-second").filter(|l| *l > 0) {
            self.inner.calls_per_second.store(limit.min(10_000), Ordering::Relaxed);
        }
        if let Some(today) = number("x-remaining-today") {
            self.inner.day_spent.store(today == 0, Ordering::Relaxed);
        }
    }

    /// One call with the store's token; a 401 refreshes the token and tries once more.
    async fn call(&self, method: Method, url: &str, body: Option<CallBody>, now: Timestamp) -> Answer {
        let mut refreshed = false;
        loop {
            let token = match self.inner.tokens.access_token(&self.inner.client).await {
                Ok(t) => t,
                Err(ChannelError::AuthRefused { detail, .. }) => {
                    return Answer::NoAnswer { result: AttemptResult::Failed, detail };
                }
                Err(e) => {
                    return Answer::NoAnswer {
                        result: AttemptResult::Retry { retry_after_ms: None },
                        detail: e.to_string(),
                    }
                }
            };
            let mut request = self
                .inner
                .client
                .request(method.clone(), url)
                .timeout(self.inner.request_timeout)
                .header("x-api-key", &self.inner.api_key)
                .header(AUTHORIZATION, format!("Bearer {token}"));
            request = match &body {
                Some(CallBody::Json(v)) => request.json(v),
                Some(CallBody::Form(f)) => request.form(f),
                None => request,
            };
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    let (result, detail) = transport_failure(e, self.inner.request_timeout);
                    return Answer::NoAnswer { result, detail };
                }
            };
            let status = response.status();
            self.note_rate(response.headers());
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                self.inner.tokens.invalidate(&token);
                refreshed = true;
                continue;
            }
            let retry_after =
                response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| retry_after_ms(v, now));
            let body = read_body(response).await;
            return Answer::Got { status, body, retry_after_ms: retry_after };
        }
    }

    async fn get_inventory(&self, listing: u64, now: Timestamp) -> Result<Value, (AttemptResult, Option<u16>, String)> {
        let url = format!("{}/v3/application/listings/{listing}/inventory?includes=Listing", self.inner.base);
        match self.call(Method::GET, &url, None, now).await {
            Answer::NoAnswer { result, detail } => Err((result, None, detail)),
            Answer::Got { status, body, retry_after_ms } if !status.is_success() => {
                Err((failure(status, retry_after_ms), Some(status.as_u16()), message(&body)))
            }
            Answer::Got { status, body, .. } => serde_json::from_str(&body).map_err(|e| {
                (
                    AttemptResult::Retry { retry_after_ms: None },
                    Some(status.as_u16()),
                    format!("Etsy's inventory answer could not be read: {e}"),
                )
            }),
        }
    }

    async fn set_state(
        &self,
        listing: u64,
        state: &str,
        now: Timestamp,
    ) -> Result<(), (AttemptResult, Option<u16>, String)> {
        let url = format!("{}/v3/application/shops/{}/listings/{listing}", self.inner.base, self.inner.shop_id);
        let form = vec![("state".to_string(), state.to_string())];
        match self.call(Method::PATCH, &url, Some(CallBody::Form(form)), now).await {
            Answer::NoAnswer { result, detail } => Err((result, None, detail)),
            Answer::Got { status, body, retry_after_ms } if !status.is_success() => {
                Err((failure(status, retry_after_ms), Some(status.as_u16()), message(&body)))
            }
            Answer::Got { .. } => Ok(()),
        }
    }

    /// One listing's pushes: GET, then PUT (or PATCH inactive), then PATCH active if it was
    /// inactive and now has stock.
    async fn push_listing(
        &self,
        listing: u64,
        items: &[(usize, EtsyId, Qty)],
        now: Timestamp,
    ) -> Result<u16, (AttemptResult, Option<u16>, String)> {
        let inventory = self.get_inventory(listing, now).await?;
        let set = |product: Option<u64>| -> Option<Qty> {
            items.iter().rev().find(|(_, id, _)| id.product.is_none() || id.product == product).map(|(_, _, q)| *q)
        };
        let update = inventory_update(&inventory, &set)
            .map_err(|e| (AttemptResult::Failed, None, format!("listing {listing}: {e}")))?;
        let was_inactive = inventory.pointer("/listing/state").and_then(Value::as_str) == Some("inactive");
        if all_zero(&update) {
            if !was_inactive {
                self.set_state(listing, "inactive", now).await?;
            }
            return Ok(200);
        }
        let url = format!("{}/v3/application/listings/{listing}/inventory", self.inner.base);
        let status = match self.call(Method::PUT, &url, Some(CallBody::Json(update)), now).await {
            Answer::NoAnswer { result, detail } => return Err((result, None, detail)),
            Answer::Got { status, body, retry_after_ms } if !status.is_success() => {
                return Err((failure(status, retry_after_ms), Some(status.as_u16()), message(&body)));
            }
            Answer::Got { status, .. } => status.as_u16(),
        };
        if was_inactive {
            self.set_state(listing, "active", now).await?;
        }
        Ok(status)
    }

    async fn push_batch(&self, batch: &[PushItem], now: Timestamp) -> Vec<Attempt> {
        let started = Instant::now();
        let mut attempts: Vec<Option<Attempt>> = vec![None; batch.len()];
        let mut listings: BTreeMap<u64, Vec<(usize, EtsyId, Qty)>> = BTreeMap::new();
        for (i, item) in batch.iter().enumerate() {
            match EtsyId::parse(&item.external_id) {
                Some(id) => listings.entry(id.listing).or_default().push((i, id, item.quantity.clamp(0, QUANTITY_MAX))),
                None => {
                    attempts[i] = Some(Attempt {
                        result: AttemptResult::Failed,
                        status_code: None,
                        detail: Some(format!(
                            "the external_id {:?} is not an Etsy listing_id or listing_id/product_id",
                            item.external_id
                        )),
                        duration_ms: 0,
                    })
                }
            }
        }
        let mut throttled: Option<Option<i64>> = None;
        for (listing, items) in &listings {
            let outcome = if let Some(after) = throttled {
                Err((AttemptResult::Throttled { retry_after_ms: after }, None, "Etsy asked us to slow down".into()))
            } else if self.inner.day_spent.load(Ordering::Relaxed) {
                Err((
                    AttemptResult::Throttled { retry_after_ms: Some(DAY_SPENT_WAIT_MS) },
                    None,
                    "Etsy's calls for the day are spent (x-remaining-today: 0)".into(),
                ))
            } else {
                self.push_listing(*listing, items, now).await
            };
            if let Err((AttemptResult::Throttled { retry_after_ms }, _, _)) = &outcome {
                throttled = Some(*retry_after_ms);
            }
            let duration_ms = started.elapsed().as_millis() as u64;
            for (i, _, _) in items {
                attempts[*i] = Some(match &outcome {
                    Ok(status) => {
                        Attempt { result: AttemptResult::Ok, status_code: Some(*status), detail: None, duration_ms }
                    }
                    Err((result, code, detail)) => {
                        Attempt { result: *result, status_code: *code, detail: truncate_detail(detail), duration_ms }
                    }
                });
            }
        }
        attempts.into_iter().map(|a| a.expect("every item has an attempt")).collect()
    }

    async fn read(&self, items: &[ReadItem]) -> Result<ReadBack, ChannelError> {
        let mut out = Vec::with_capacity(items.len());
        let mut cache: BTreeMap<u64, Option<Value>> = BTreeMap::new();
        for item in items {
            let Some(id) = EtsyId::parse(&item.external_id) else {
                out.push((item.listing, None));
                continue;
            };
            if let std::collections::btree_map::Entry::Vacant(slot) = cache.entry(id.listing) {
                let got = match self.get_inventory(id.listing, Timestamp(0)).await {
                    Ok(v) => Some(v),
                    Err((_, Some(404), _)) => None,
                    Err((result, status, detail)) => return Err(channel_error(result, status, detail)),
                };
                slot.insert(got);
            }
            let quantity = cache[&id.listing].as_ref().and_then(|inv| shown(inv, id));
            out.push((item.listing, quantity));
        }
        Ok(out)
    }

    async fn poll(&self, cursor: Option<&str>, now: Timestamp) -> Result<PollPage, ChannelError> {
        let (since, start) = match cursor {
            Some(c) => parse_cursor(c).ok_or_else(|| ChannelError::Call {
                detail: format!("the poll cursor {c:?} is not Etsy's seconds[:offset]"),
            })?,
            None => ((now.0 / 1000 - POLL_LOOKBACK.as_secs() as i64).max(0), 0),
        };
        let mut offset = start;
        let mut orders: Vec<(i64, PolledOrder)> = Vec::new();
        let mut more = false;
        for _ in 0..POLL_PAGES_MAX {
            let url = format!(
                "{}/v3/application/shops/{}/receipts?min_last_modified={since}&limit={POLL_LIMIT}&offset={offset}&sort_on=updated&sort_order=asc",
                self.inner.base, self.inner.shop_id
            );
            let (status, body) = match self.call(Method::GET, &url, None, now).await {
                Answer::NoAnswer { result, detail } => return Err(channel_error(result, None, detail)),
                Answer::Got { status, body, retry_after_ms } if !status.is_success() => {
                    return Err(channel_error(failure(status, retry_after_ms), Some(status.as_u16()), message(&body)));
                }
                Answer::Got { status, body, .. } => (status, body),
            };
            let page: Value = serde_json::from_str(&body).map_err(|e| ChannelError::Unavailable {
                channel: CHANNEL,
                detail: format!("the receipts answer ({status}) could not be read: {e}"),
            })?;
            let results = page.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
            let count = page.get("count").and_then(Value::as_u64).unwrap_or(0) as usize;
            for receipt in &results {
                let id = receipt.get("receipt_id").and_then(Value::as_u64);
                let updated = receipt.get("update_timestamp").and_then(Value::as_i64).unwrap_or(since);
                let Some(id) = id else { continue };
                orders.push((
                    updated,
                    PolledOrder {
                        delivery_id: format!("{id}@{updated}"),
                        body: serde_json::to_vec(receipt).unwrap_or_default(),
                    },
                ));
            }
            offset += results.len();
            more = !results.is_empty() && offset < count;
            if !more {
                break;
            }
        }
        orders.sort_by_key(|(t, _)| *t);
        let last = orders.last().map(|(t, _)| *t);
        let next_cursor = last.map(|t| {
            let same = orders.iter().filter(|(u, _)| *u == t).count();
            if orders.len() == same {
                // Every receipt read shares one second: the next poll from that second
                // steps past them by offset, or it would read them again and never move on.
                let skipped = if t == since { start } else { 0 };
                format!("{t}:{}", skipped + same)
            } else {
                t.to_string()
            }
        });
        Ok(PollPage { orders: orders.into_iter().map(|(_, o)| o).collect(), next_cursor, more })
    }
}

/// `seconds` or `seconds:offset`.
fn parse_cursor(text: &str) -> Option<(i64, usize)> {
    match text.split_once(':') {
        None => Some((text.parse().ok()?, 0)),
        Some((s, o)) => Some((s.parse().ok()?, o.parse().ok()?)),
    }
}

enum CallBody {
    Json(Value),
    Form(Vec<(String, String)>),
}

async fn read_body(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn failure(status: StatusCode, retry_after_ms: Option<i64>) -> AttemptResult {
    result_for_status(status, retry_after_ms)
}

/// Etsy's error body `{"error": "..."}` as a sentence.
fn message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

fn channel_error(result: AttemptResult, status: Option<u16>, detail: String) -> ChannelError {
    match result {
        AttemptResult::Throttled { retry_after_ms } => ChannelError::Throttled { channel: CHANNEL, retry_after_ms },
        AttemptResult::Retry { .. } => ChannelError::Unavailable { channel: CHANNEL, detail },
        _ => ChannelError::Refused { channel: CHANNEL, status, detail },
    }
}

/// One receipt as stored: an order, or a cancellation.
pub fn parse_receipt(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let bad = |reason: String| ParseError::BadPolledOrder { channel: CHANNEL, reason };
    let receipt: Value = serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let id = match receipt.get("receipt_id") {
        Some(Value::Number(n)) if n.as_u64().is_some() => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.clone(),
        _ => return Err(bad("it has no receipt_id".into())),
    };
    let status = receipt.get("status").and_then(Value::as_str).unwrap_or("");
    if RELEASING_STATUSES.contains(&status) {
        return Ok(vec![InboundEvent::Cancel { external_id: id }]);
    }
    let transactions = receipt
        .get("transactions")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("receipt {id} has no transactions")))?;
    let mut lines = Vec::with_capacity(transactions.len());
    for (n, t) in transactions.iter().enumerate() {
        let listing = t.get("listing_id").and_then(Value::as_u64);
        let product = t.get("product_id").and_then(Value::as_u64).filter(|p| *p > 0);
        let sku = t.get("sku").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let quantity = t.get("quantity").and_then(Value::as_i64).unwrap_or(0);
        if quantity < 1 {
            return Err(bad(format!("receipt {id}'s transaction {n} has quantity {quantity}")));
        }
        let external_id = listing.map(|l| product.map_or(l.to_string(), |p| format!("{l}/{p}")));
        if external_id.is_none() && sku.is_none() {
            return Err(bad(format!("receipt {id}'s transaction {n} names no listing_id and no sku")));
        }
        lines.push(InboundLine { store_sku: sku, external_id, quantity });
    }
    if lines.is_empty() {
        return Ok(vec![InboundEvent::Ignored(format!("receipt {id} has no transactions"))]);
    }
    Ok(vec![InboundEvent::Order(InboundOrder {
        external_id: id,
        lines,
        payment: Payment::Immediate,
        pay_within_seconds: None,
    })])
}

impl Connector for EtsyConnector {
    fn channel(&self) -> Channel {
        Channel::Etsy
    }

    fn limits(&self) -> ChannelLimits {
        let per_second = self.inner.calls_per_second.load(Ordering::Relaxed).max(1);
        ChannelLimits {
            batch_max: BATCH_MAX,
            read_batch_max: BATCH_MAX,
            // Two calls (GET and PUT) a listing.
            requests_per_second_milli: per_second * 1000 / 2,
            burst: (per_second / 2).max(1) as u32,
            call_per_item: true,
        }
    }

    fn push<'a>(&'a self, batch: &'a [PushItem], now: Timestamp) -> BoxFuture<'a, Vec<Attempt>> {
        Box::pin(self.push_batch(batch, now))
    }

    fn read_back<'a>(&'a self, items: &'a [ReadItem]) -> BoxFuture<'a, Result<ReadBack, ChannelError>> {
        Box::pin(self.read(items))
    }

    fn poll_orders<'a>(
        &'a self,
        cursor: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<PollPage, ChannelError>> {
        Box::pin(self.poll(cursor, now))
    }

    fn parse_polled(&self, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
        parse_receipt(body)
    }

    fn poll_interval_min(&self) -> Option<Duration> {
        // Etsy sets no floor beyond the call budget; one call a second leaves the rest to pushes.
        Some(Duration::from_secs(1))
    }

    fn rotated_credentials(&self) -> Option<Value> {
        self.inner.tokens.rotated_credentials()
    }

    fn auth_refused(&self) -> Option<String> {
        self.inner.tokens.refused()
    }
}
