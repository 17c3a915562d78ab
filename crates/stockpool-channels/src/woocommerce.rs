//! The `woocommerce` channel (SPEC section 5a): a seller's self-hosted WooCommerce site,
//! REST `wc/v3` with HTTP Basic (`consumer_key:consumer_secret`).
//!
//! Out: `POST {base}/wp-json/wc/v3/products/batch` for simple products and
//! `POST {base}/wp-json/wc/v3/products/{product_id}/variations/batch` for variations, each
//! `{"update": [{"id", "manage_stock": true, "stock_quantity", "backorders"}]}`, at most
//! [`BATCH_MAX`] objects a call (WooCommerce's default `woocommerce_rest_batch_items_limit`;
//! above it the site answers 413 `woocommerce_rest_request_entity_too_large`). A batch
//! mixing products and variations of several parents is one call per parent. An error the
//! site reports for one object (`update[i].error`) fails only that listing.
//!
//! `backorders` comes from the zero policy (SPEC section 2): `no` when the listing stops at
//! zero, `yes` when it keeps selling (`continue`, `request`), `notify` when it keeps
//! selling and shows back-order status (`backorder`).
//!
//! Read back: `GET /products?include=...&per_page=100` and
//! `GET /products/{id}/variations?include=...&per_page=100`, at most 100 ids a page, only the
//! fields we read (`_fields`). A listing whose stock the site does not manage
//! (`manage_stock` false, or `parent` for a variation) or that it no longer has reads as
//! `None`: the site holds no quantity of ours, and a push sets one.
//!
//! In: webhooks `order.created` and `order.updated`, signed `X-WC-Webhook-Signature`
//! (base64 HMAC-SHA256 of the raw body with the store's `secret`), deduplicated on
//! `X-WC-Webhook-Delivery-ID`. Status `cancelled` or `refunded` cancels. The ping
//! WooCommerce sends when a webhook is created (the form body `webhook_id=N`, unsigned) is
//! the one delivery taken without a signature, and changes nothing.
//!
//! WooCommerce documents no rate limit for its REST API (the host decides): a connector
//! keeps at most [`IN_FLIGHT_MAX`] calls out at once and declares a modest rate
//! ([`WOOCOMMERCE_LIMITS`]); the host's 429 and `Retry-After` slow it further.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stockpool_core::{Channel, ListingId, Payment, Qty, Timestamp};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{ChannelError, ConfigError, ParseError, SignatureError};
use crate::http::{result_for_status, retry_after_ms, transport_failure, truncate_detail};
use crate::model::{
    Attempt, AttemptResult, ChannelLimits, InboundEvent, InboundLine, InboundOrder, PushItem, ReadItem,
};
use crate::sign::{hmac_sha256, verify_hmac_sha256, TAG_BYTES};
use crate::{BoxFuture, Connector, HeaderMap, ReadBack, StoreSettings};

/// The channel's name in messages.
const CHANNEL: &str = "woocommerce";

/// Most objects one batch call carries: WooCommerce's default batch limit.
pub const BATCH_MAX: usize = 100;

/// Most ids one read-back page asks for: `per_page` is at most 100 in the WordPress REST API.
pub const READ_PAGE_MAX: usize = 100;

/// Most calls one store's connector has out at once (pushes and reads together). A shop
/// on shared hosting runs a handful of PHP workers; four leaves the shoppers the rest.
pub const IN_FLIGHT_MAX: usize = 4;

/// Most bytes of an answer read. A batch answer carries each whole product (descriptions,
/// images, metadata): 100 of them can reach a few megabytes. Past this the answer counts
/// as unreadable.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// What we promise a WooCommerce site, which documents no limit: two calls a second with
/// a burst of four, each call up to 100 listings (200 listings a second sustained, a full
/// Sync now of 10,000 listings in under a minute). The store's `push_rate_per_second`
/// replaces the rate when set: the site is the seller's, as for the generic webhook.
pub const WOOCOMMERCE_LIMITS: ChannelLimits = ChannelLimits {
    batch_max: BATCH_MAX,
    read_batch_max: READ_PAGE_MAX,
    requests_per_second_milli: 2_000,
    burst: 4,
    call_per_item: false,
};

/// The signature header (base64 HMAC-SHA256 of the raw body).
pub const SIGNATURE_HEADER: &str = "x-wc-webhook-signature";
/// The topic header (`order.created`, ...).
pub const TOPIC_HEADER: &str = "x-wc-webhook-topic";
/// The delivery id header, the key redeliveries are deduplicated on.
pub const DELIVERY_HEADER: &str = "x-wc-webhook-delivery-id";

/// Longest delivery id kept; a longer one is treated as absent.
pub const DELIVERY_ID_CHARS_MAX: usize = 200;

/// Most digits of the webhook id in a ping body.
const PING_ID_DIGITS_MAX: usize = 20;

/// A listing's `external_id`: a product, or one variation of a variable product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WooId {
    Product(u64),
    Variation { product: u64, variation: u64 },
}

impl WooId {
    /// `93` or `22/23` (ids as decimal digits).
    pub fn parse(text: &str) -> Option<WooId> {
        let digits = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        };
        let text = text.trim();
        match text.split_once('/') {
            None => digits(text).map(WooId::Product),
            Some((p, v)) => Some(WooId::Variation { product: digits(p)?, variation: digits(v)? }),
        }
    }

    /// The parent a batch call goes to: `None` for `products/batch`.
    fn parent(self) -> Option<u64> {
        match self {
            WooId::Product(_) => None,
            WooId::Variation { product, .. } => Some(product),
        }
    }

    /// The id the batch and list calls name.
    fn object_id(self) -> u64 {
        match self {
            WooId::Product(id) => id,
            WooId::Variation { variation, .. } => variation,
        }
    }
}

impl fmt::Display for WooId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WooId::Product(id) => write!(f, "{id}"),
            WooId::Variation { product, variation } => write!(f, "{product}/{variation}"),
        }
    }
}

/// `backorders` from the zero policy's two switches (see the module docs).
pub fn backorders(sell_when_out_of_stock: bool, show_backorder: bool) -> &'static str {
    match (sell_when_out_of_stock, show_backorder) {
        (false, _) => "no",
        (true, false) => "yes",
        (true, true) => "notify",
    }
}

/// The wire shapes of the calls made, as WooCommerce documents them (only the fields read
/// or sent; unknown fields are ignored on the way in).
pub mod wire {
    use super::*;

    /// A batch call's body: `{"update": [...]}` (we create and delete nothing).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct BatchRequest {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub update: Vec<StockUpdate>,
    }

    /// One object of a batch update: its id and the stock fields.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct StockUpdate {
        pub id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub manage_stock: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stock_quantity: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub backorders: Option<String>,
    }

    /// A batch call's answer: each list holds the objects (or their errors) in the order sent.
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct BatchResponse {
        #[serde(default)]
        pub create: Vec<Stocked>,
        #[serde(default)]
        pub update: Vec<Stocked>,
        #[serde(default)]
        pub delete: Vec<Stocked>,
    }

    /// A product or variation as the API shows it (the stock fields), or, inside a batch
    /// answer, the error for one object.
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct Stocked {
        #[serde(default)]
        pub id: Option<u64>,
        #[serde(default)]
        pub parent_id: Option<u64>,
        #[serde(default)]
        pub sku: Option<String>,
        /// `true`, `false`, or for a variation `"parent"` (its product manages the stock).
        #[serde(default)]
        pub manage_stock: Option<Value>,
        #[serde(default)]
        pub stock_quantity: Option<Value>,
        #[serde(default)]
        pub backorders: Option<String>,
        #[serde(default)]
        pub stock_status: Option<String>,
        #[serde(default)]
        pub error: Option<WooError>,
    }

    impl Stocked {
        /// The quantity the site holds for us: `None` unless it manages the stock itself.
        pub fn managed_quantity(&self) -> Option<Qty> {
            if self.manage_stock != Some(Value::Bool(true)) {
                return None;
            }
            match self.stock_quantity.as_ref()? {
                Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
        }
    }

    /// WooCommerce's error object (`WP_Error` as JSON), for a whole call or one object.
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct WooError {
        #[serde(default)]
        pub code: String,
        #[serde(default)]
        pub message: String,
        #[serde(default)]
        pub data: Option<Value>,
    }

    impl WooError {
        /// `code: message`, as a sync record's detail.
        pub fn sentence(&self) -> String {
            match (self.code.is_empty(), self.message.is_empty()) {
                (true, true) => "WooCommerce gave an error without a message".to_string(),
                (false, true) => self.code.clone(),
                (true, false) => self.message.clone(),
                (false, false) => format!("{}: {}", self.code, self.message),
            }
        }

        /// The HTTP status WooCommerce gives the error (`data.status`).
        pub fn status(&self) -> Option<u16> {
            self.data.as_ref()?.get("status")?.as_u64().and_then(|s| u16::try_from(s).ok())
        }
    }

    /// An order as `GET /orders/{id}` shows it, which is what the webhook carries.
    #[derive(Clone, Debug, Deserialize)]
    pub struct Order {
        pub id: Value,
        #[serde(default)]
        pub status: String,
        #[serde(default)]
        pub line_items: Vec<LineItem>,
    }

    /// One line of an order.
    #[derive(Clone, Debug, Deserialize)]
    pub struct LineItem {
        #[serde(default)]
        pub id: Option<u64>,
        #[serde(default)]
        pub product_id: u64,
        /// 0 for a simple product.
        #[serde(default)]
        pub variation_id: u64,
        #[serde(default)]
        pub sku: Option<String>,
        pub quantity: i64,
    }
}

use wire::{BatchRequest, BatchResponse, StockUpdate, Stocked, WooError};

/// Statuses of an order that release what it holds.
pub const RELEASING_STATUSES: [&str; 2] = ["cancelled", "refunded"];

/// The connector of one `woocommerce` store. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct WoocommerceConnector {
    inner: Arc<Inner>,
}

struct Inner {
    store: String,
    /// `{base_url}/wp-json/wc/v3`, without a trailing slash; `None` for a connector built
    /// only to take webhooks (`receiving`).
    api: Option<String>,
    /// `Basic base64(consumer_key:consumer_secret)`.
    authorization: Option<String>,
    /// The webhook secret; `None` when the store has none (every signed delivery is then
    /// refused).
    secret: Option<Vec<u8>>,
    client: reqwest::Client,
    request_timeout: Duration,
    limits: ChannelLimits,
    in_flight: Semaphore,
}

/// The credentials never reach a log.
impl fmt::Debug for WoocommerceConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WoocommerceConnector")
            .field("store", &self.inner.store)
            .field("api", &self.inner.api)
            .field("request_timeout", &self.inner.request_timeout)
            .finish_non_exhaustive()
    }
}

/// A credential given as a non-empty string (or a number, as ids may be).
fn credential(credentials: Option<&Value>, field: &'static str, store: &str) -> Result<String, ConfigError> {
    let missing = || ConfigError::MissingCredential {
        channel: CHANNEL,
        store: store.to_string(),
        field,
        hint: "set it in the store's credentials",
    };
    match credentials.and_then(|c| c.get(field)) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(missing()),
    }
}

/// The store's `base_url` as the site's address: absolute `http` or `https`, with a host. A trailing
/// slash is dropped, a path (a site in a subdirectory) kept.
fn site(settings: &StoreSettings) -> Result<String, ConfigError> {
    let store = settings.code.clone();
    let text = settings.base_url.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let text = text.ok_or_else(|| ConfigError::MissingBaseUrl { channel: CHANNEL, store: store.clone() })?;
    let bad_url = |reason: String| ConfigError::BadUrl { store: store.clone(), url: text.to_string(), reason };
    let url = Url::parse(text).map_err(|e| bad_url(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(bad_url(format!("the scheme is {other}, and only http and https are supported"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad_url("it names no host".to_string()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad_url("a site's address has no query or fragment".to_string()));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Whether `body` is WooCommerce's ping: exactly `webhook_id=` and the webhook's id.
pub fn is_ping(body: &[u8]) -> bool {
    ping_id(body).is_some()
}

fn ping_id(body: &[u8]) -> Option<&str> {
    let id = std::str::from_utf8(body).ok()?.strip_prefix("webhook_id=")?;
    (!id.is_empty() && id.len() <= PING_ID_DIGITS_MAX && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// A push of one call: the listings (their index in the batch) and what they are set to.
struct Call {
    parent: Option<u64>,
    items: Vec<(usize, StockUpdate)>,
}

/// What one read page asks: the parent (`None`: products) and the ids.
struct Page {
    parent: Option<u64>,
    ids: Vec<u64>,
}

impl WoocommerceConnector {
    /// A connector for the store `settings` describe: its `base_url` (the site, absolute
    /// `http`) and `credentials` `consumer_key` and `consumer_secret` are required, its
    /// `secret` (the webhooks') optional here. Every call gives up after
    /// `request_timeout`.
    pub fn new(
        settings: &StoreSettings,
        client: reqwest::Client,
        request_timeout: Duration,
    ) -> Result<WoocommerceConnector, ConfigError> {
        let store = settings.code.clone();
        let site = site(settings)?;
        let key = credential(settings.credentials.as_ref(), "consumer_key", &store)?;
        let secret = credential(settings.credentials.as_ref(), "consumer_secret", &store)?;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"));
        let limits = match settings.push_rate_per_second {
            Some(rate) => {
                ChannelLimits { requests_per_second_milli: u64::from(rate.max(1)) * 1000, ..WOOCOMMERCE_LIMITS }
            }
            None => WOOCOMMERCE_LIMITS,
        };
        Ok(WoocommerceConnector {
            inner: Arc::new(Inner {
                store,
                api: Some(format!("{site}/wp-json/wc/v3")),
                authorization: Some(format!("Basic {basic}")),
                secret: settings.secret.as_deref().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()),
                client,
                request_timeout,
                limits,
                in_flight: Semaphore::new(IN_FLIGHT_MAX),
            }),
        })
    }

    /// A connector that only takes the store's webhooks: it needs the `secret` alone, so a
    /// store whose site or credentials are wrong still takes its orders in. It refuses to
    /// push or read.
    pub fn receiving(settings: &StoreSettings, client: reqwest::Client) -> Result<WoocommerceConnector, ConfigError> {
        let store = settings.code.clone();
        let secret = settings.secret.as_deref().filter(|s| !s.is_empty());
        let secret =
            secret.ok_or_else(|| ConfigError::MissingWebhookSecret { channel: CHANNEL, store: store.clone() })?;
        Ok(WoocommerceConnector {
            inner: Arc::new(Inner {
                store,
                api: None,
                authorization: None,
                secret: Some(secret.as_bytes().to_vec()),
                client,
                request_timeout: crate::REQUEST_TIMEOUT,
                limits: WOOCOMMERCE_LIMITS,
                in_flight: Semaphore::new(IN_FLIGHT_MAX),
            }),
        })
    }

    /// The `X-WC-Webhook-Signature` value WooCommerce would send for `body`, `None`
    /// without a secret.
    pub fn signature(&self, body: &[u8]) -> Option<String> {
        let secret = self.inner.secret.as_ref()?;
        Some(base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret, body)))
    }

    /// Sends one call, holding one of the store's in-flight permits while it is out.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, reqwest::Error> {
        // The semaphore is never closed, so a permit always comes.
        let _permit = self.inner.in_flight.acquire().await.expect("the in-flight semaphore is never closed");
        let request = request.timeout(self.inner.request_timeout);
        let request = match &self.inner.authorization {
            Some(a) => request.header(AUTHORIZATION, a),
            None => request,
        };
        request.send().await
    }

    /// One batch call; one attempt per item, in `call.items`' order.
    async fn push_call(&self, api: &str, call: &Call, now: Timestamp) -> Vec<Attempt> {
        let url = match call.parent {
            None => format!("{api}/products/batch"),
            Some(parent) => format!("{api}/products/{parent}/variations/batch"),
        };
        let body = BatchRequest { update: call.items.iter().map(|(_, u)| u.clone()).collect() };
        let body = serde_json::to_vec(&body).expect("a batch of ids, numbers and strings serializes");
        let started = tokio::time::Instant::now();
        let sent = self.send(self.inner.client.post(url).header(CONTENT_TYPE, "application/json").body(body)).await;
        let elapsed = |started: tokio::time::Instant| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let all = |result: AttemptResult, status_code: Option<u16>, detail: String, duration_ms: u64| {
            call.items
                .iter()
                .map(|_| Attempt { result, status_code, detail: Some(detail.clone()), duration_ms })
                .collect::<Vec<_>>()
        };
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let (result, detail) = transport_failure(e, self.inner.request_timeout);
                return all(result, None, detail, elapsed(started));
            }
        };
        let status = response.status();
        let retry_after = header(&response, RETRY_AFTER).and_then(|v| retry_after_ms(&v, now));
        let text = read_bounded(response).await;
        let duration_ms = elapsed(started);
        let code = Some(status.as_u16());
        if !status.is_success() {
            let (result, detail) = failure(status, retry_after, &text);
            return all(result, code, detail, duration_ms);
        }
        let answer = text.ok().and_then(|t| serde_json::from_slice::<BatchResponse>(&t).ok()).map(|a| a.update);
        let Some(answer) = answer else {
            // The site took the call but its answer is unreadable: pushing the same
            // absolute figure again is harmless, so try again.
            let detail = "WooCommerce answered the batch with a body that is not its batch answer".to_string();
            return all(AttemptResult::Retry { retry_after_ms: None }, code, detail, duration_ms);
        };
        let mut by_id: BTreeMap<u64, &Stocked> = BTreeMap::new();
        for (n, s) in answer.iter().enumerate() {
            // An error object carries the id it was about; an object without one is
            // matched by its position, as WooCommerce answers in the order sent.
            let id = s.id.or_else(|| call.items.get(n).map(|(_, u)| u.id));
            if let Some(id) = id {
                by_id.entry(id).or_insert(s);
            }
        }
        call.items
            .iter()
            .map(|(_, u)| match by_id.get(&u.id) {
                Some(Stocked { error: Some(e), .. }) => {
                    let result = match e.status() {
                        Some(429) => AttemptResult::Throttled { retry_after_ms: retry_after },
                        Some(s) if s >= 500 => AttemptResult::Retry { retry_after_ms: None },
                        _ => AttemptResult::Failed,
                    };
                    let detail = truncate_detail(&e.sentence());
                    Attempt { result, status_code: e.status().or(code), detail, duration_ms }
                }
                Some(_) => Attempt { result: AttemptResult::Ok, status_code: code, detail: None, duration_ms },
                None => Attempt {
                    result: AttemptResult::Failed,
                    status_code: code,
                    detail: Some(format!("WooCommerce's batch answer does not mention object {}", u.id)),
                    duration_ms,
                },
            })
            .collect()
    }

    /// One read page: the site's objects by id.
    async fn read_page(&self, api: &str, page: &Page) -> Result<Vec<Stocked>, ChannelError> {
        let path = match page.parent {
            None => format!("{api}/products"),
            Some(parent) => format!("{api}/products/{parent}/variations"),
        };
        let include: Vec<String> = page.ids.iter().map(u64::to_string).collect();
        let query = [
            ("include", include.join(",")),
            ("per_page", READ_PAGE_MAX.to_string()),
            ("_fields", "id,parent_id,sku,manage_stock,stock_quantity,backorders,stock_status".to_string()),
        ];
        let mut url = Url::parse(&path).map_err(|e| ChannelError::Unavailable {
            channel: CHANNEL,
            detail: format!("the read URL could not be built: {e}"),
        })?;
        url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        let response = self.send(self.inner.client.get(url)).await.map_err(|e| ChannelError::Unavailable {
            channel: CHANNEL,
            detail: transport_failure(e, self.inner.request_timeout).1,
        })?;
        let status = response.status();
        // A read has no clock to measure an HTTP-date from: only delay-seconds count.
        let retry_after = header(&response, RETRY_AFTER)
            .filter(|v| v.trim().bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| retry_after_ms(&v, Timestamp(0)));
        let text = read_bounded(response).await;
        if !status.is_success() {
            let (result, detail) = failure(status, retry_after, &text);
            return Err(match result {
                AttemptResult::Throttled { retry_after_ms } => {
                    ChannelError::Throttled { channel: CHANNEL, retry_after_ms }
                }
                AttemptResult::Retry { .. } => ChannelError::Unavailable { channel: CHANNEL, detail },
                _ => ChannelError::Refused { channel: CHANNEL, status: Some(status.as_u16()), detail },
            });
        }
        text.ok().and_then(|t| serde_json::from_slice::<Vec<Stocked>>(&t).ok()).ok_or_else(|| {
            ChannelError::Unavailable {
                channel: CHANNEL,
                detail: "WooCommerce answered the read with a body that is not a list of products".to_string(),
            }
        })
    }
}

/// A header's value as text.
fn header(response: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// An answer's body, at most [`RESPONSE_BYTES_MAX`] bytes; `Err` with what came when it
/// is longer or breaks off.
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

/// What a refused call means: the result (as `result_for_status`, with 401 a sentence of
/// its own) and a detail naming WooCommerce's error.
fn failure(status: StatusCode, retry_after: Option<i64>, text: &Result<Vec<u8>, Vec<u8>>) -> (AttemptResult, String) {
    let bytes = match text {
        Ok(b) | Err(b) => b,
    };
    let said = serde_json::from_slice::<WooError>(bytes)
        .ok()
        .filter(|e| !e.code.is_empty() || !e.message.is_empty())
        .map(|e| e.sentence())
        .or_else(|| truncate_detail(&String::from_utf8_lossy(&bytes[..bytes.len().min(2048)])));
    let said = said.map_or_else(String::new, |s| format!(": {s}"));
    let result = result_for_status(status, retry_after);
    let detail = match status.as_u16() {
        401 => format!(
            "WooCommerce refused the consumer key and secret (401){said}; check the store's credentials and that \
             the key has read/write permission"
        ),
        413 => format!("WooCommerce refused the batch as too large (413){said}"),
        _ => format!("WooCommerce answered {status}{said}"),
    };
    (result, truncate_detail(&detail).unwrap_or(detail))
}

/// An attempt that never went out.
fn not_sent(detail: String) -> Attempt {
    Attempt { result: AttemptResult::Failed, status_code: None, detail: Some(detail), duration_ms: 0 }
}

impl Connector for WoocommerceConnector {
    fn channel(&self) -> Channel {
        Channel::Woocommerce
    }

    /// [`WOOCOMMERCE_LIMITS`], at the store's `push_rate_per_second` when set.
    fn limits(&self) -> ChannelLimits {
        self.inner.limits
    }

    /// Splits the batch by parent (one call for products, one per variable product), at
    /// most [`BATCH_MAX`] objects a call, and sends the calls side by side within the
    /// store's [`IN_FLIGHT_MAX`]. A listing whose `external_id` is not a WooCommerce id
    /// fails without a call.
    fn push<'a>(&'a self, batch: &'a [PushItem], now: Timestamp) -> BoxFuture<'a, Vec<Attempt>> {
        Box::pin(async move {
            let mut attempts: Vec<Option<Attempt>> = vec![None; batch.len()];
            let Some(api) = self.inner.api.clone() else {
                let detail =
                    format!("store {}'s connector was built to take webhooks only, not to push", self.inner.store);
                return batch.iter().map(|_| not_sent(detail.clone())).collect();
            };
            let mut groups: BTreeMap<Option<u64>, Vec<(usize, StockUpdate)>> = BTreeMap::new();
            for (n, item) in batch.iter().enumerate() {
                let Some(id) = WooId::parse(&item.external_id) else {
                    attempts[n] = Some(not_sent(format!(
                        "the listing's external_id {:?} is not a WooCommerce product id (93) or product/variation \
                         ids (22/23)",
                        item.external_id
                    )));
                    continue;
                };
                let update = StockUpdate {
                    id: id.object_id(),
                    manage_stock: Some(true),
                    stock_quantity: Some(item.quantity),
                    backorders: Some(backorders(item.sell_when_out_of_stock, item.show_backorder).to_string()),
                };
                groups.entry(id.parent()).or_default().push((n, update));
            }
            let mut calls = JoinSet::new();
            for (parent, items) in groups {
                for chunk in items.chunks(BATCH_MAX) {
                    let call = Call { parent, items: chunk.to_vec() };
                    let (this, api) = (self.clone(), api.clone());
                    calls.spawn(async move {
                        let got = this.push_call(&api, &call, now).await;
                        (call, got)
                    });
                }
            }
            while let Some(done) = calls.join_next().await {
                match done {
                    Ok((call, got)) => {
                        for ((n, _), attempt) in call.items.iter().zip(got) {
                            attempts[*n] = Some(attempt);
                        }
                    }
                    Err(e) => tracing::error!(store = %self.inner.store, error = %e, "a WooCommerce call panicked"),
                }
            }
            let attempts: Vec<Attempt> = attempts
                .into_iter()
                .map(|a| {
                    a.unwrap_or_else(|| Attempt {
                        result: AttemptResult::Retry { retry_after_ms: None },
                        status_code: None,
                        detail: Some("the call carrying this listing ended without an answer".to_string()),
                        duration_ms: 0,
                    })
                })
                .collect();
            tracing::debug!(store = %self.inner.store, listings = batch.len(), "woocommerce push");
            attempts
        })
    }

    /// Pages of at most [`READ_PAGE_MAX`] ids per parent, side by side within the store's
    /// [`IN_FLIGHT_MAX`]. The first page that fails fails the read.
    fn read_back<'a>(&'a self, items: &'a [ReadItem]) -> BoxFuture<'a, Result<ReadBack, ChannelError>> {
        Box::pin(async move {
            let Some(api) = self.inner.api.clone() else {
                return Err(ChannelError::Unsupported { channel: CHANNEL, what: "read back on a receiving connector" });
            };
            let ids: Vec<(ListingId, Option<WooId>)> =
                items.iter().map(|i| (i.listing, WooId::parse(&i.external_id))).collect();
            let mut groups: BTreeMap<Option<u64>, Vec<u64>> = BTreeMap::new();
            for (_, id) in &ids {
                if let Some(id) = id {
                    let group = groups.entry(id.parent()).or_default();
                    if !group.contains(&id.object_id()) {
                        group.push(id.object_id());
                    }
                }
            }
            let mut pages = JoinSet::new();
            for (parent, ids) in groups {
                for chunk in ids.chunks(READ_PAGE_MAX) {
                    let page = Page { parent, ids: chunk.to_vec() };
                    let (this, api) = (self.clone(), api.clone());
                    pages.spawn(async move {
                        let got = this.read_page(&api, &page).await;
                        (page.parent, got)
                    });
                }
            }
            let mut found: BTreeMap<(Option<u64>, u64), Option<Qty>> = BTreeMap::new();
            while let Some(done) = pages.join_next().await {
                let (parent, got) = done.map_err(|e| ChannelError::Unavailable {
                    channel: CHANNEL,
                    detail: format!("a read call panicked: {e}"),
                })?;
                for s in got? {
                    if let Some(id) = s.id {
                        found.insert((parent, id), s.managed_quantity());
                    }
                }
            }
            Ok(ids
                .into_iter()
                .map(|(listing, id)| {
                    let q = id.and_then(|id| found.get(&(id.parent(), id.object_id())).copied().flatten());
                    (listing, q)
                })
                .collect())
        })
    }

    /// Exactly one `X-WC-Webhook-Signature`, the base64 HMAC-SHA256 of the raw body,
    /// checked in constant time. Without it only the ping passes (the body exactly
    /// `webhook_id=N`): it carries nothing and changes nothing.
    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        const HEADER: &str = "X-WC-Webhook-Signature";
        let mut values = headers.get_all(SIGNATURE_HEADER).iter();
        let Some(value) = values.next() else {
            return if is_ping(body) { Ok(()) } else { Err(SignatureError::Missing { header: HEADER }) };
        };
        if values.next().is_some() {
            return Err(SignatureError::Repeated { header: HEADER });
        }
        let mismatch = SignatureError::Mismatch { header: HEADER };
        let Some(secret) = &self.inner.secret else { return Err(mismatch) };
        let value = value.to_str().map_err(|_| mismatch.clone())?.trim();
        let tag = base64::engine::general_purpose::STANDARD.decode(value).map_err(|_| mismatch.clone())?;
        if tag.len() == TAG_BYTES && verify_hmac_sha256(secret, body, &tag) {
            Ok(())
        } else {
            Err(mismatch)
        }
    }

    /// The ping: ignored. `order.created` and `order.updated`: the order (status
    /// `cancelled` or `refunded`: its cancellation). Any other topic: ignored. Each line
    /// names its listing by `external_id` (`{product_id}` or
    /// `{product_id}/{variation_id}`) and, when it has one, by `sku` as `store_sku`: the
    /// order path tries the id first, then the SKU, and keeps a line neither finds as
    /// `unmapped`.
    fn parse_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
        if let Some(id) = ping_id(body) {
            return Ok(vec![InboundEvent::Ignored(format!("WooCommerce's ping for webhook {id}"))]);
        }
        let topic = headers.get(TOPIC_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
        if !matches!(topic, "order.created" | "order.updated") {
            let topic = if topic.is_empty() { "(none)" } else { topic };
            return Ok(vec![InboundEvent::Ignored(format!("the topic {topic} is not one stockpool acts on"))]);
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::NotJson { reason: e.to_string() })?;
        if !value.is_object() {
            return Err(ParseError::NotAnOrder { reason: "a WooCommerce order is a JSON object".to_string() });
        }
        let order = wire::Order::deserialize(value).map_err(|e| ParseError::NotAnOrder { reason: e.to_string() })?;
        let external_id = match &order.id {
            Value::Number(n) if n.is_u64() => n.to_string(),
            Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => return Err(ParseError::BadId { field: "id".to_string() }),
        };
        if RELEASING_STATUSES.contains(&order.status.as_str()) {
            return Ok(vec![InboundEvent::Cancel { external_id }]);
        }
        if order.line_items.is_empty() {
            return Err(ParseError::NoLines);
        }
        let mut lines = Vec::with_capacity(order.line_items.len());
        for (n, line) in (1..).zip(&order.line_items) {
            if line.quantity < 1 {
                return Err(ParseError::QuantityNotPositive { line: n, quantity: line.quantity });
            }
            let id = match line.variation_id {
                0 => WooId::Product(line.product_id),
                v => WooId::Variation { product: line.product_id, variation: v },
            };
            let store_sku = line.sku.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
            lines.push(InboundLine { store_sku, external_id: Some(id.to_string()), quantity: line.quantity });
        }
        Ok(vec![InboundEvent::Order(InboundOrder {
            external_id,
            lines,
            payment: Payment::default(),
            pay_within_seconds: None,
        })])
    }

    /// `X-WC-Webhook-Delivery-ID` (visible ASCII, at most [`DELIVERY_ID_CHARS_MAX`]
    /// characters), else `None`.
    fn delivery_id(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(DELIVERY_HEADER)?.to_str().ok()?.trim();
        (!value.is_empty() && value.len() <= DELIVERY_ID_CHARS_MAX).then(|| value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids() {
        assert_eq!(WooId::parse("93"), Some(WooId::Product(93)));
        assert_eq!(WooId::parse(" 22/23 "), Some(WooId::Variation { product: 22, variation: 23 }));
        for bad in ["", "a", "22/", "/23", "22/23/24", "-1", "1.5", "99999999999999999999999"] {
            assert_eq!(WooId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(WooId::Variation { product: 22, variation: 23 }.to_string(), "22/23");
    }

    #[test]
    fn backorders_follow_the_zero_policy() {
        assert_eq!(backorders(false, false), "no");
        assert_eq!(backorders(false, true), "no");
        assert_eq!(backorders(true, false), "yes");
        assert_eq!(backorders(true, true), "notify");
    }

    #[test]
    fn the_ping_is_exactly_a_webhook_id() {
        assert!(is_ping(b"webhook_id=12"));
        for not in [&b"webhook_id="[..], b"webhook_id=12&x=1", b"webhook_id=1a", b" webhook_id=1", b"{}", b""] {
            assert!(!is_ping(not), "{:?}", String::from_utf8_lossy(not));
        }
    }
}
