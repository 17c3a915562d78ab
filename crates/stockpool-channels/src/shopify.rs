//! The `shopify` channel (SPEC section 5a, row `shopify`): Admin GraphQL at API version
//! 2026-10 out, signed webhooks in.
//!
//! Out: every call is `POST {base}/admin/api/2026-10/graphql.json` with
//! `X-Shopify-Access-Token`, where `base` is the store's `base_url` or
//! `https://{shop_domain}`. A listing's `external_id` is the numeric variant id. We read
//! with `nodes(ids:)` (variant -> inventory item -> its level at the store's location ->
//! `available`), which both resolves the inventory item (cached, bounded by
//! [`INVENTORY_CACHE_MAX`]) and reads back; we push with `inventorySetQuantities`, at most
//! [`BATCH_MAX`] quantities a call, each with `changeFromQuantity` (what was last
//! confirmed, else the figure just read), under an `@idempotent(key:)` directive
//! (required from 2026-04, research/channels.md section 1).
//!
//! Pacing: Shopify meters GraphQL by query cost in a leaky bucket per app and shop, and
//! every answer says where the bucket stands (`extensions.cost.throttleStatus`). The
//! connector keeps its own view of the bucket from those answers and waits (tokio time)
//! before a call whose cost exceeds what is available, reads included, so `THROTTLED`
//! stays an exception; when it comes anyway (or a 429), the attempt is `Throttled` with
//! the wait the bucket implies.
//!
//! The idempotency key: a resend of the very same input (same inventory items, quantities
//! and `changeFromQuantity`s) after a call that got no definitive answer (timeout,
//! 5xx, 429, `THROTTLED`) reuses that call's key, so Shopify applies it at most once;
//! any other call gets a fresh key, `stockpool-{epoch}-{n}` (`epoch`: the time of the
//! connector's first push, so keys differ across restarts; `n`: a counter). A fresh key
//! per definitive answer keeps a later identical change (4 -> 5, 5 -> 4, 4 -> 5) from
//! being taken for a replay. Compare-and-set protects the figure even where the key
//! does not (a pending key forgotten, the process restarted): a second apply finds the
//! quantity moved and answers `CHANGE_FROM_QUANTITY_STALE`.
//!
//! In: webhooks signed `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body with
//! the store's `secret`, the app's client secret), named by `X-Shopify-Event-Id`, their
//! topic in `X-Shopify-Topic`; bodies are REST resources, unwrapped. See
//! [`parse_topic`] for what each topic becomes.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{json, Value};
use stockpool_core::{Channel, Payment, Qty, Timestamp};

use crate::error::{ChannelError, ConfigError, ParseError, SignatureError};
use crate::http::{result_for_status, transport_failure, truncate_detail, RETRY_AFTER_MS_MAX};
use crate::model::{
    Attempt, AttemptResult, ChannelLimits, InboundEvent, InboundLine, InboundOrder, PushItem, ReadItem,
};
use crate::sign::{verify_hmac_sha256, TAG_BYTES};
use crate::{BoxFuture, Connector, HeaderMap, ReadBack, StoreSettings};

/// The Admin API version every call names (SPEC section 5a).
pub const API_VERSION: &str = "2026-10";

/// The path of the GraphQL endpoint under the store's base.
pub const GRAPHQL_PATH: &str = "/admin/api/2026-10/graphql.json";

/// Most quantities one `inventorySetQuantities` takes, and most ids one `nodes(ids:)`
/// reads: Shopify caps array arguments at 250 (research/channels.md section 1).
pub const BATCH_MAX: usize = 250;

/// Most a single query may cost (Shopify refuses more).
pub const QUERY_COST_MAX: u32 = 1000;

/// What one id of our read query costs: the variant, its inventory item, the level and
/// one quantity are an object each. 250 ids cost 1000, just within [`QUERY_COST_MAX`].
pub const READ_COST_PER_ID: u32 = 4;

/// What a mutation costs (Shopify: 10 points a mutation).
pub const MUTATION_COST: u32 = 10;

/// Most variants whose inventory item the connector remembers; past it the cache starts
/// again (a forgotten one is resolved by the next read, which a push without a settled
/// figure makes anyway).
pub const INVENTORY_CACHE_MAX: usize = 100_000;

/// Most idempotency keys kept for resends; past it the oldest half is forgotten (a
/// resend then gets a fresh key and compare-and-set still guards it).
pub const PENDING_KEYS_MAX: usize = 10_000;

/// Most `inventorySetQuantities` calls one push makes: after a call whose user errors
/// name some quantities, the others are sent again without them (Shopify applies none
/// of a call that has user errors).
pub const SET_ROUNDS_MAX: usize = 3;

/// Most bytes of a GraphQL answer read: 250 nodes take some 60 KiB.
pub const GRAPHQL_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The bucket assumed before the first answer says otherwise: the oldest documented
/// figures (1000 points, restoring 50 a second), the most cautious.
pub const ASSUMED_BUCKET: (f64, f64) = (1000.0, 50.0);

/// The webhook headers.
pub const HMAC_HEADER: &str = "x-shopify-hmac-sha256";
pub const TOPIC_HEADER: &str = "x-shopify-topic";
pub const EVENT_ID_HEADER: &str = "x-shopify-event-id";

/// Longest delivery id kept (as for the generic webhook: longer is treated as absent).
pub const DELIVERY_ID_CHARS_MAX: usize = 200;

/// What the dispatcher sees: batches of 250, and a call rate high enough that the cost
/// bucket, which the connector paces by itself, is what limits.
pub const SHOPIFY_LIMITS: ChannelLimits = ChannelLimits {
    batch_max: BATCH_MAX,
    read_batch_max: BATCH_MAX,
    requests_per_second_milli: 10_000,
    burst: 10,
    call_per_item: false,
};

const READ_QUERY: &str = "query StockpoolRead($ids: [ID!]!, $location: ID!) { nodes(ids: $ids) { \
    ... on ProductVariant { id inventoryItem { id inventoryLevel(locationId: $location) { \
    quantities(names: [\"available\"]) { name quantity } } } } } }";

/// Our view of the shop's cost bucket, from the last answer's `throttleStatus`.
#[derive(Debug)]
struct CostBucket {
    maximum: f64,
    available: f64,
    restore_per_second: f64,
    at: tokio::time::Instant,
}

impl CostBucket {
    fn refill(&mut self, now: tokio::time::Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.available = (self.available + dt * self.restore_per_second).min(self.maximum);
        self.at = now;
    }

    /// Takes `cost` from the bucket, and answers how long to wait before the call so
    /// that the shop's bucket holds it (the bucket may go into debt: callers queue).
    fn reserve(&mut self, cost: f64, now: tokio::time::Instant) -> Duration {
        self.refill(now);
        let short = cost - self.available;
        self.available -= cost;
        if short <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(short / self.restore_per_second.max(1.0))
        }
    }
}

/// What `extensions.cost` says.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueryCost {
    pub requested: f64,
    pub actual: Option<f64>,
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

/// Reads `extensions.cost` of a GraphQL answer, when it is there and whole.
pub fn query_cost(answer: &Value) -> Option<QueryCost> {
    let cost = answer.get("extensions")?.get("cost")?;
    let status = cost.get("throttleStatus")?;
    Some(QueryCost {
        requested: cost.get("requestedQueryCost")?.as_f64()?,
        actual: cost.get("actualQueryCost").and_then(Value::as_f64),
        maximum_available: status.get("maximumAvailable")?.as_f64()?,
        currently_available: status.get("currentlyAvailable")?.as_f64()?,
        restore_rate: status.get("restoreRate")?.as_f64()?,
    })
}

/// A call that did not give an answer to read: what each item it carried becomes.
#[derive(Clone, Debug)]
struct CallFailure {
    result: AttemptResult,
    status_code: Option<u16>,
    detail: String,
}

/// What a read found of one variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    pub inventory_item: String,
    /// `available` at the store's location; `None` when the item is not stocked there.
    pub available: Option<Qty>,
}

/// The connector of one `shopify` store.
pub struct ShopifyConnector {
    store: String,
    endpoint: Option<Url>,
    endpoint_error: Option<String>,
    access_token: String,
    location: String,
    secret: Option<Vec<u8>>,
    client: reqwest::Client,
    request_timeout: Duration,
    bucket: Mutex<CostBucket>,
    /// Variant id -> inventory item gid.
    items: Mutex<HashMap<String, String>>,
    /// Digest of a set input -> the key of its call that got no definitive answer.
    pending_keys: Mutex<HashMap<String, String>>,
    epoch: OnceLock<i64>,
    counter: AtomicU64,
}

/// Neither the token nor the secret reaches a log.
impl fmt::Debug for ShopifyConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopifyConnector")
            .field("store", &self.store)
            .field("endpoint", &self.endpoint.as_ref().map(Url::as_str))
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// `location_id` as SPEC 5a allows it (a number, a string of digits, or a Location gid),
/// as the gid GraphQL takes.
pub fn location_gid(value: &Value) -> Option<String> {
    const PREFIX: &str = "gid://shopify/Location/";
    let digits = match value {
        Value::Number(n) => n.as_u64().map(|n| n.to_string())?,
        Value::String(s) => s.trim().strip_prefix(PREFIX).unwrap_or(s.trim()).to_string(),
        _ => return None,
    };
    (!digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{PREFIX}{digits}"))
}

impl ShopifyConnector {
    /// A connector for the store `settings` describe. Its `credentials` need
    /// `access_token` and `location_id`, and `shop_domain` unless `base_url` is set; the
    /// `secret` (the app's client secret) is needed only to take webhooks.
    pub fn new(
        settings: &StoreSettings,
        client: reqwest::Client,
        request_timeout: Duration,
    ) -> Result<ShopifyConnector, ConfigError> {
        let store = settings.code.clone();
        let empty = serde_json::Map::new();
        let creds = settings.credentials.as_ref().and_then(Value::as_object).unwrap_or(&empty);
        let text = |field: &str| creds.get(field).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let access_token = text("access_token")
            .ok_or_else(|| ConfigError::MissingCredential {
                channel: "shopify",
                store: store.clone(),
                field: "access_token",
                hint: "give the Admin API access token of the app installed on the shop",
            })?
            .to_string();
        let location_value = creds.get("location_id").ok_or_else(|| ConfigError::MissingCredential {
            channel: "shopify",
            store: store.clone(),
            field: "location_id",
            hint: "give the id of the shop location whose available quantity stockpool sets",
        })?;
        let location = location_gid(location_value).ok_or_else(|| ConfigError::BadCredential {
            store: store.clone(),
            field: "location_id",
            value: location_value.to_string(),
            expected: "a number, a string of digits or gid://shopify/Location/N",
        })?;
        let base = match settings.base_url.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
            Some(base) => base.trim_end_matches('/').to_string(),
            None => {
                let domain = text("shop_domain").ok_or_else(|| ConfigError::MissingCredential {
                    channel: "shopify",
                    store: store.clone(),
                    field: "shop_domain",
                    hint: "give the shop's myshopify.com domain, or a base_url",
                })?;
                format!("https://{domain}")
            }
        };
        let (endpoint, endpoint_error) = match Url::parse(&format!("{base}{GRAPHQL_PATH}")) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => (Some(url), None),
            Ok(_) => (None, Some(format!("the base {base:?} is not an absolute http(s) URL"))),
            Err(e) => (None, Some(format!("the base {base:?} is not a URL: {e}"))),
        };
        if let Some(reason) = &endpoint_error {
            return Err(ConfigError::BadUrl { store, url: base, reason: reason.clone() });
        }
        let (maximum, restore) = ASSUMED_BUCKET;
        Ok(ShopifyConnector {
            store,
            endpoint,
            endpoint_error,
            access_token,
            location,
            secret: settings.secret.as_deref().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()),
            client,
            request_timeout,
            bucket: Mutex::new(CostBucket {
                maximum,
                available: maximum,
                restore_per_second: restore,
                at: tokio::time::Instant::now(),
            }),
            items: Mutex::new(HashMap::new()),
            pending_keys: Mutex::new(HashMap::new()),
            epoch: OnceLock::new(),
            counter: AtomicU64::new(0),
        })
    }

    /// One GraphQL call of `cost` points, paced by the bucket. `Ok` is an answer with
    /// `data` (it may carry user errors); everything else is a `CallFailure`.
    async fn call(&self, query: &str, variables: Value, cost: u32) -> Result<Value, CallFailure> {
        let Some(endpoint) = &self.endpoint else {
            let detail = self.endpoint_error.clone().unwrap_or_default();
            return Err(CallFailure { result: AttemptResult::Failed, status_code: None, detail });
        };
        let wait = self.bucket.lock().expect("bucket lock").reserve(f64::from(cost), tokio::time::Instant::now());
        if !wait.is_zero() {
            tracing::debug!(store = %self.store, wait_ms = wait.as_millis() as u64, cost, "shopify pacing");
            tokio::time::sleep(wait).await;
        }
        let sent = self
            .client
            .post(endpoint.clone())
            .timeout(self.request_timeout)
            .header(CONTENT_TYPE, "application/json")
            .header("x-shopify-access-token", &self.access_token)
            .body(json!({"query": query, "variables": variables}).to_string())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(error) => {
                let (result, detail) = transport_failure(error, self.request_timeout);
                return Err(CallFailure { result, status_code: None, detail });
            }
        };
        let status = response.status();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(seconds_ms);
        let body = read_body(response).await;
        let fail = |result, detail: String| Err(CallFailure { result, status_code: Some(status.as_u16()), detail });
        if status.as_u16() == 401 {
            return fail(
                AttemptResult::Failed,
                format!(
                    "Shopify refused the access token of store {} (401); install the app again or set \
                     credentials.access_token to a valid Admin API token",
                    self.store
                ),
            );
        }
        if !status.is_success() {
            let result = result_for_status(status, retry_after);
            let said = truncate_detail(&String::from_utf8_lossy(&body)).unwrap_or_default();
            return fail(result, format!("Shopify answered {status}. {said}").trim().to_string());
        }
        let answer: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return fail(
                    AttemptResult::Retry { retry_after_ms: None },
                    format!("Shopify's answer is not JSON: {e}"),
                )
            }
        };
        let cost_seen = query_cost(&answer);
        if let Some(c) = cost_seen {
            let mut b = self.bucket.lock().expect("bucket lock");
            b.maximum = c.maximum_available.max(1.0);
            b.available = c.currently_available;
            b.restore_per_second = c.restore_rate.max(1.0);
            b.at = tokio::time::Instant::now();
        }
        let errors = answer.get("errors").and_then(Value::as_array).cloned().unwrap_or_default();
        let throttled =
            errors.iter().any(|e| e.pointer("/extensions/code").and_then(Value::as_str) == Some("THROTTLED"));
        if throttled {
            let wait_ms = cost_seen.map(|c| {
                let short = (c.requested - c.currently_available).max(0.0);
                ((short / c.restore_rate.max(1.0)) * 1000.0).ceil() as i64
            });
            return fail(
                AttemptResult::Throttled { retry_after_ms: wait_ms.map(|w| w.clamp(0, RETRY_AFTER_MS_MAX)) },
                "Shopify answered THROTTLED: the shop's query cost bucket was empty".to_string(),
            );
        }
        if !errors.is_empty() && answer.get("data").is_none_or(Value::is_null) {
            let messages: Vec<&str> = errors.iter().filter_map(|e| e.get("message").and_then(Value::as_str)).collect();
            let detail =
                truncate_detail(&format!("Shopify refused the query: {}", messages.join("; "))).unwrap_or_default();
            return fail(AttemptResult::Failed, detail);
        }
        Ok(answer)
    }

    /// Reads `variants` (at most `BATCH_MAX`, within the bucket's size) in one
    /// `nodes(ids:)` call: the level of each one Shopify knows, keyed by variant id.
    async fn read_chunk(&self, variants: &[&str]) -> Result<HashMap<String, Level>, CallFailure> {
        let ids: Vec<String> = variants.iter().map(|v| format!("gid://shopify/ProductVariant/{v}")).collect();
        let cost = READ_COST_PER_ID * variants.len() as u32;
        let answer = self.call(READ_QUERY, json!({"ids": ids, "location": self.location}), cost).await?;
        let found = read_levels(&answer, variants);
        self.remember(found.iter().map(|(v, l)| (v.clone(), l.inventory_item.clone())));
        Ok(found)
    }

    /// How many ids one read may carry: 250, fewer when the shop's bucket is smaller
    /// than such a read costs.
    fn read_chunk_size(&self) -> usize {
        let maximum = self.bucket.lock().expect("bucket lock").maximum.min(f64::from(QUERY_COST_MAX));
        ((maximum / f64::from(READ_COST_PER_ID)) as usize).clamp(1, BATCH_MAX)
    }

    /// Reads every variant of `variants`, chunked.
    async fn read(&self, variants: &[&str]) -> Result<HashMap<String, Level>, CallFailure> {
        let mut found = HashMap::new();
        for chunk in variants.chunks(self.read_chunk_size()) {
            found.extend(self.read_chunk(chunk).await?);
        }
        Ok(found)
    }

    fn remember(&self, pairs: impl Iterator<Item = (String, String)>) {
        let mut items = self.items.lock().expect("cache lock");
        for (variant, item) in pairs {
            if items.len() >= INVENTORY_CACHE_MAX && !items.contains_key(&variant) {
                items.clear();
            }
            items.insert(variant, item);
        }
    }

    /// The key for a call carrying `digest`: the pending one of an unanswered call of
    /// the same input, else a fresh one.
    fn key_for(&self, digest: &str, now: Timestamp) -> String {
        if let Some(key) = self.pending_keys.lock().expect("keys lock").get(digest) {
            return key.clone();
        }
        let epoch = *self.epoch.get_or_init(|| now.0);
        format!("stockpool-{epoch}-{}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// Records how the call with `key` for `digest` ended: kept for a resend when it got
    /// no definitive answer, forgotten otherwise.
    fn settle_key(&self, digest: &str, key: &str, definitive: bool) {
        let mut keys = self.pending_keys.lock().expect("keys lock");
        if definitive {
            keys.remove(digest);
        } else {
            if keys.len() >= PENDING_KEYS_MAX {
                keys.clear();
            }
            keys.insert(digest.to_string(), key.to_string());
        }
    }

    /// One `inventorySetQuantities` of `entries` (`(index, item, quantity, change_from)`).
    /// `Ok`: the user errors by index into `entries` (code, message), and those naming
    /// no quantity.
    async fn set(
        &self,
        entries: &[(usize, String, Qty, Qty)],
        now: Timestamp,
    ) -> Result<(HashMap<usize, (String, String)>, Vec<String>), CallFailure> {
        let quantities: Vec<Value> = entries
            .iter()
            .map(|(_, item, quantity, from)| {
                json!({"inventoryItemId": item, "locationId": self.location, "quantity": quantity,
                       "changeFromQuantity": from})
            })
            .collect();
        let digest = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(self.location.as_bytes());
            for (_, item, quantity, from) in entries {
                h.update(format!("|{item}={quantity}<{from}").as_bytes());
            }
            hex::encode(h.finalize())
        };
        let key = self.key_for(&digest, now);
        let query = format!(
            "mutation StockpoolSet($input: InventorySetQuantitiesInput!) {{ inventorySetQuantities(input: $input) \
             @idempotent(key: \"{key}\") {{ userErrors {{ code field message }} }} }}"
        );
        let input = json!({"input": {"name": "available", "reason": "correction", "quantities": quantities}});
        let answer = match self.call(&query, input, MUTATION_COST).await {
            Ok(a) => a,
            Err(f) => {
                let definitive = matches!(f.result, AttemptResult::Failed);
                self.settle_key(&digest, &key, definitive);
                return Err(f);
            }
        };
        self.settle_key(&digest, &key, true);
        Ok(user_errors(&answer, entries.len()))
    }
}

/// What a `nodes(ids:)` answer says of each of `variants` (in the order they were asked
/// for): its inventory item and `available` quantity, for those Shopify knows.
pub fn read_levels(answer: &Value, variants: &[&str]) -> HashMap<String, Level> {
    let nodes = answer.pointer("/data/nodes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut found = HashMap::new();
    for (variant, node) in variants.iter().zip(nodes.iter()) {
        let Some(item) = node.pointer("/inventoryItem/id").and_then(Value::as_str) else { continue };
        let available = node
            .pointer("/inventoryItem/inventoryLevel/quantities")
            .and_then(Value::as_array)
            .and_then(|qs| qs.iter().find(|q| q.get("name").and_then(Value::as_str) == Some("available")))
            .and_then(|q| q.get("quantity").and_then(Value::as_i64));
        found.insert(variant.to_string(), Level { inventory_item: item.to_string(), available });
    }
    found
}

/// The user errors of an `inventorySetQuantities` answer for a call of `entries`
/// quantities: those naming a quantity by its index (`field: ["input", "quantities", i]`)
/// as (code, message), and the sentences of those naming none.
pub fn user_errors(answer: &Value, entries: usize) -> (HashMap<usize, (String, String)>, Vec<String>) {
    let errors = answer
        .pointer("/data/inventorySetQuantities/userErrors")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut named = HashMap::new();
    let mut unnamed = Vec::new();
    for e in errors {
        let code = e.get("code").and_then(Value::as_str).unwrap_or("").to_string();
        let message = e.get("message").and_then(Value::as_str).unwrap_or("").to_string();
        let index = e
            .get("field")
            .and_then(Value::as_array)
            .and_then(|f| f.get(2))
            .and_then(|i| i.as_str().map(str::to_string).or_else(|| i.as_u64().map(|n| n.to_string())))
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < entries);
        match index {
            Some(i) => {
                named.insert(i, (code, message));
            }
            None => unnamed.push(format!("{code}: {message}")),
        }
    }
    (named, unnamed)
}

fn attempt(
    result: AttemptResult,
    status_code: Option<u16>,
    detail: Option<String>,
    started: tokio::time::Instant,
) -> Attempt {
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Attempt { result, status_code, detail, duration_ms }
}

fn failure_attempt(f: &CallFailure, started: tokio::time::Instant) -> Attempt {
    attempt(f.result, f.status_code, Some(f.detail.clone()), started)
}

/// A `Retry-After` as Shopify sends it: seconds, possibly with a fraction.
fn seconds_ms(value: &str) -> Option<i64> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| ((seconds * 1000.0).ceil() as i64).min(RETRY_AFTER_MS_MAX))
}

async fn read_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < GRAPHQL_BODY_BYTES_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = GRAPHQL_BODY_BYTES_MAX - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// A variant id as a listing's `external_id` gives it: digits, or a ProductVariant gid.
fn variant_id(external_id: &str) -> Option<&str> {
    let id = external_id.trim();
    let id = id.strip_prefix("gid://shopify/ProductVariant/").unwrap_or(id);
    (!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

impl Connector for ShopifyConnector {
    fn channel(&self) -> Channel {
        Channel::Shopify
    }

    fn limits(&self) -> ChannelLimits {
        SHOPIFY_LIMITS
    }

    /// Reads what it must (variants not yet resolved, and those without a settled
    /// figure to compare with), then sets the batch in one call. A quantity named by a
    /// user error gets its own result (`CHANGE_FROM_QUANTITY_STALE` is `Stale` with the
    /// figure read again, others `Failed`); the rest are sent again without it.
    fn push<'a>(&'a self, batch: &'a [PushItem], now: Timestamp) -> BoxFuture<'a, Vec<Attempt>> {
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let mut out: Vec<Option<Attempt>> = vec![None; batch.len()];
            let mut to_read: Vec<&str> = Vec::new();
            for (i, item) in batch.iter().enumerate() {
                match variant_id(&item.external_id) {
                    None => {
                        out[i] = Some(attempt(
                            AttemptResult::Failed,
                            None,
                            Some(format!(
                                "the listing's external_id {:?} is not a Shopify variant id; give the numeric id \
                                 of the variant (line_items[].variant_id)",
                                item.external_id
                            )),
                            started,
                        ));
                    }
                    Some(v) => {
                        let cached = self.items.lock().expect("cache lock").contains_key(v);
                        if !cached || item.settled.is_none() {
                            to_read.push(v);
                        }
                    }
                }
            }
            let mut read = HashMap::new();
            if !to_read.is_empty() {
                match self.read(&to_read).await {
                    Ok(found) => read = found,
                    Err(f) => {
                        for (i, item) in batch.iter().enumerate() {
                            if out[i].is_none() && variant_id(&item.external_id).is_some_and(|v| to_read.contains(&v)) {
                                out[i] = Some(failure_attempt(&f, started));
                            }
                        }
                    }
                }
            }
            let mut entries: Vec<(usize, String, Qty, Qty)> = Vec::new();
            for (i, item) in batch.iter().enumerate() {
                if out[i].is_some() {
                    continue;
                }
                let v = variant_id(&item.external_id).expect("checked above");
                let level = read.get(v);
                let inventory_item = level
                    .map(|l| l.inventory_item.clone())
                    .or_else(|| self.items.lock().expect("cache lock").get(v).cloned());
                let Some(inventory_item) = inventory_item else {
                    out[i] = Some(attempt(
                        AttemptResult::Failed,
                        Some(200),
                        Some(format!("Shopify knows no variant {v} in this shop; check the listing's external_id")),
                        started,
                    ));
                    continue;
                };
                let from = match (item.settled, level) {
                    (Some(settled), _) => settled,
                    (None, Some(Level { available: Some(a), .. })) => *a,
                    (None, _) => {
                        out[i] = Some(attempt(
                            AttemptResult::Failed,
                            Some(200),
                            Some(format!(
                                "variant {v} is not stocked at the store's location; stock it there in Shopify \
                                 or change credentials.location_id"
                            )),
                            started,
                        ));
                        continue;
                    }
                };
                entries.push((i, inventory_item, item.quantity, from));
            }
            let mut stale: Vec<usize> = Vec::new();
            for round in 0..SET_ROUNDS_MAX {
                if entries.is_empty() {
                    break;
                }
                match self.set(&entries, now).await {
                    Err(f) => {
                        for (i, ..) in &entries {
                            out[*i] = Some(failure_attempt(&f, started));
                        }
                        entries.clear();
                    }
                    Ok((named, unnamed)) if named.is_empty() && unnamed.is_empty() => {
                        for (i, ..) in &entries {
                            out[*i] = Some(attempt(AttemptResult::Ok, Some(200), None, started));
                        }
                        entries.clear();
                    }
                    Ok((named, unnamed)) if named.is_empty() => {
                        let detail = truncate_detail(&format!("Shopify refused the call: {}", unnamed.join("; ")));
                        for (i, ..) in &entries {
                            out[*i] = Some(attempt(AttemptResult::Failed, Some(200), detail.clone(), started));
                        }
                        entries.clear();
                    }
                    Ok((named, _)) => {
                        let mut rest = Vec::new();
                        for (n, entry) in entries.drain(..).enumerate() {
                            match named.get(&n) {
                                Some((code, _)) if code == "CHANGE_FROM_QUANTITY_STALE" => stale.push(entry.0),
                                Some((code, message)) => {
                                    out[entry.0] = Some(attempt(
                                        AttemptResult::Failed,
                                        Some(200),
                                        truncate_detail(&format!("Shopify refused the quantity: {code}: {message}")),
                                        started,
                                    ));
                                }
                                None => rest.push(entry),
                            }
                        }
                        if round + 1 == SET_ROUNDS_MAX {
                            for (i, ..) in &rest {
                                out[*i] = Some(attempt(
                                    AttemptResult::Retry { retry_after_ms: None },
                                    Some(200),
                                    Some("not set: Shopify refused other quantities of the same call".to_string()),
                                    started,
                                ));
                            }
                        } else {
                            entries = rest;
                        }
                    }
                }
            }
            if !stale.is_empty() {
                let variants: Vec<&str> =
                    stale.iter().map(|i| variant_id(&batch[*i].external_id).expect("checked above")).collect();
                match self.read(&variants).await {
                    Ok(found) => {
                        for (i, v) in stale.iter().zip(variants) {
                            out[*i] = Some(match found.get(v).and_then(|l| l.available) {
                                Some(channel_quantity) => attempt(
                                    AttemptResult::Stale { channel_quantity },
                                    Some(200),
                                    Some(format!(
                                        "CHANGE_FROM_QUANTITY_STALE: the shop had {channel_quantity}, not the \
                                         figure last confirmed"
                                    )),
                                    started,
                                ),
                                None => attempt(
                                    AttemptResult::Failed,
                                    Some(200),
                                    Some(format!("variant {v} is gone from the shop's location")),
                                    started,
                                ),
                            });
                        }
                    }
                    Err(f) => {
                        for i in &stale {
                            out[*i] = Some(failure_attempt(&f, started));
                        }
                    }
                }
            }
            let attempts: Vec<Attempt> = out
                .into_iter()
                .map(|a| {
                    a.unwrap_or_else(|| {
                        attempt(AttemptResult::Retry { retry_after_ms: None }, None, Some("not sent".into()), started)
                    })
                })
                .collect();
            tracing::debug!(store = %self.store, batch = batch.len(), "shopify push");
            attempts
        })
    }

    /// `available` at the store's location of each item; `None` for a variant the shop
    /// no longer knows or that is not stocked at the location.
    fn read_back<'a>(&'a self, items: &'a [ReadItem]) -> BoxFuture<'a, Result<ReadBack, ChannelError>> {
        Box::pin(async move {
            let variants: Vec<&str> = items.iter().filter_map(|i| variant_id(&i.external_id)).collect();
            let found = self.read(&variants).await.map_err(|f| ChannelError::Call { detail: f.detail })?;
            Ok(items
                .iter()
                .map(|i| (i.listing, variant_id(&i.external_id).and_then(|v| found.get(v)).and_then(|l| l.available)))
                .collect())
        })
    }

    /// Exactly one `X-Shopify-Hmac-Sha256`, the base64 of the HMAC-SHA256 of the raw body
    /// under the store's secret, compared in constant time.
    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        const HEADER: &str = "X-Shopify-Hmac-Sha256";
        let mut values = headers.get_all(HMAC_HEADER).iter();
        let value = values.next().ok_or(SignatureError::Missing { header: HEADER })?;
        if values.next().is_some() {
            return Err(SignatureError::Repeated { header: HEADER });
        }
        let bad = SignatureError::NotBase64 { header: HEADER, bytes: TAG_BYTES };
        let value = value.to_str().map_err(|_| bad.clone())?;
        let tag = base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(|_| bad.clone())?;
        if tag.len() != TAG_BYTES {
            return Err(bad);
        }
        match &self.secret {
            Some(secret) if verify_hmac_sha256(secret, body, &tag) => Ok(()),
            _ => Err(SignatureError::Mismatch { header: HEADER }),
        }
    }

    fn parse_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
        let topic = headers.get(TOPIC_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
        parse_topic(topic, body)
    }

    /// `X-Shopify-Event-Id` (visible ASCII, at most `DELIVERY_ID_CHARS_MAX`): the same
    /// event delivered again carries the same id.
    fn delivery_id(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(EVENT_ID_HEADER)?.to_str().ok()?.trim();
        (!value.is_empty() && value.len() <= DELIVERY_ID_CHARS_MAX).then(|| value.to_string())
    }
}

/// An order as the REST webhook body carries it, as loosely typed as we need.
#[derive(Deserialize)]
pub struct WireOrder {
    pub id: Value,
    #[serde(default)]
    pub cancelled_at: Option<String>,
    #[serde(default)]
    pub line_items: Vec<WireLineItem>,
}

#[derive(Deserialize)]
pub struct WireLineItem {
    #[serde(default)]
    pub variant_id: Option<Value>,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    pub quantity: i64,
    /// After edits, removals and refunds; absent in older bodies.
    #[serde(default)]
    pub current_quantity: Option<i64>,
}

/// A refund as the `refunds/create` body carries it.
#[derive(Deserialize)]
pub struct WireRefund {
    pub order_id: Value,
    #[serde(default)]
    pub refund_line_items: Vec<WireRefundLine>,
}

#[derive(Deserialize)]
pub struct WireRefundLine {
    pub quantity: i64,
    #[serde(default)]
    pub restock_type: Option<String>,
    #[serde(default)]
    pub line_item: Option<WireRefundedItem>,
}

#[derive(Deserialize)]
pub struct WireRefundedItem {
    pub quantity: i64,
}

fn object(body: &[u8]) -> Result<Value, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::NotJson { reason: e.to_string() })?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ParseError::NotAnOrder { reason: "a Shopify webhook body is a JSON object".to_string() })
    }
}

fn id_text(value: &Value, field: &str) -> Result<String, ParseError> {
    match value {
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(ParseError::BadId { field: field.to_string() }),
    }
}

/// What a delivery of `topic` becomes:
/// - `orders/create`, `orders/updated`: the order, each line by `variant_id` (as the
///   listing's `external_id`) with its `sku` (as `store_sku`) to fall back on, at its
///   `current_quantity` (lines at 0 left out); a line naming neither keeps its title, so
///   it becomes an `unmapped` line, never dropped. An order with `cancelled_at` is a
///   cancellation.
/// - `orders/cancelled`: a cancellation.
/// - `refunds/create`: a cancellation when every refunded line is restocked in full
///   (`restock_type` `cancel`, `return` or `legacy_restock`); a refund that restocks
///   only part is `Ignored` with the reason: the events cannot release part of an order
///   yet (docs/channels.md).
/// - any other topic: `Ignored`.
pub fn parse_topic(topic: &str, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    match topic {
        "orders/create" | "orders/updated" | "orders/cancelled" => {
            let value = object(body)?;
            let order = WireOrder::deserialize(value).map_err(|e| ParseError::NotAnOrder { reason: e.to_string() })?;
            let external_id = id_text(&order.id, "id")?;
            if topic == "orders/cancelled" || order.cancelled_at.as_deref().is_some_and(|c| !c.is_empty()) {
                return Ok(vec![InboundEvent::Cancel { external_id }]);
            }
            let mut lines = Vec::new();
            for (n, line) in (1..).zip(order.line_items) {
                let quantity = line.current_quantity.unwrap_or(line.quantity);
                if quantity < 0 {
                    return Err(ParseError::QuantityNotPositive { line: n, quantity });
                }
                if quantity == 0 {
                    continue;
                }
                let variant = match &line.variant_id {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(id_text(v, &format!("line_items[{}].variant_id", n - 1))?),
                };
                let sku = line.sku.filter(|s| !s.trim().is_empty());
                let store_sku = match (&variant, sku) {
                    (_, Some(sku)) => Some(sku),
                    (Some(_), None) => None,
                    (None, None) => {
                        Some(line.title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| format!("line {n}")))
                    }
                };
                lines.push(InboundLine { store_sku, external_id: variant, quantity });
            }
            if lines.is_empty() {
                return Ok(vec![InboundEvent::Ignored(format!("order {external_id} has nothing left to fulfil"))]);
            }
            Ok(vec![InboundEvent::Order(InboundOrder {
                external_id,
                lines,
                payment: Payment::Immediate,
                pay_within_seconds: None,
            })])
        }
        "refunds/create" => {
            let value = object(body)?;
            let refund =
                WireRefund::deserialize(value).map_err(|e| ParseError::NotAnOrder { reason: e.to_string() })?;
            let external_id = id_text(&refund.order_id, "order_id")?;
            let restocked =
                |l: &WireRefundLine| matches!(l.restock_type.as_deref(), Some("cancel" | "return" | "legacy_restock"));
            if !refund.refund_line_items.iter().any(restocked) {
                return Ok(vec![InboundEvent::Ignored(format!("the refund of order {external_id} restocks nothing"))]);
            }
            let whole = refund
                .refund_line_items
                .iter()
                .all(|l| restocked(l) && l.line_item.as_ref().is_none_or(|item| l.quantity >= item.quantity));
            if whole {
                Ok(vec![InboundEvent::Cancel { external_id }])
            } else {
                Ok(vec![InboundEvent::Ignored(format!(
                    "the refund of order {external_id} restocks part of it; releasing part of an order is not \
                     supported yet, so its stock stays held until the order is cancelled"
                ))])
            }
        }
        "" => Err(ParseError::NotAnOrder { reason: "the delivery has no X-Shopify-Topic header".to_string() }),
        other => Ok(vec![InboundEvent::Ignored(format!("the topic {other} carries nothing stockpool acts on"))]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_ids_in_every_form_spec_allows() {
        let gid = Some("gid://shopify/Location/655441491".to_string());
        assert_eq!(location_gid(&json!(655441491)), gid);
        assert_eq!(location_gid(&json!("655441491")), gid);
        assert_eq!(location_gid(&json!("gid://shopify/Location/655441491")), gid);
        assert_eq!(location_gid(&json!("shop-1")), None);
        assert_eq!(location_gid(&json!(-3)), None);
    }

    #[test]
    fn the_bucket_waits_for_what_a_call_costs() {
        let at = tokio::time::Instant::now();
        let mut b = CostBucket { maximum: 1000.0, available: 100.0, restore_per_second: 100.0, at };
        assert_eq!(b.reserve(50.0, at), Duration::ZERO);
        // 50 left, 250 asked: 200 short at 100 a second.
        assert_eq!(b.reserve(250.0, at), Duration::from_secs(2));
        // The debt queues the next caller behind.
        assert_eq!(b.reserve(10.0, at), Duration::from_secs_f64(2.1));
    }

    #[test]
    fn retry_after_may_be_fractional() {
        assert_eq!(seconds_ms("2.0"), Some(2000));
        assert_eq!(seconds_ms("0.25"), Some(250));
        assert_eq!(seconds_ms("soon"), None);
    }

    #[test]
    fn other_topics_are_ignored_and_a_missing_topic_is_refused() {
        assert!(matches!(parse_topic("products/update", b"{}").unwrap()[..], [InboundEvent::Ignored(_)]));
        assert!(parse_topic("", b"{}").is_err());
    }
}
