//! An emulated eBay seller account: the parts of the Sell APIs stockpool calls, and the
//! OAuth token endpoint in front of them.
//!
//! Calls taken (shapes from `fixtures/channels/ebay/`, facts from `research/channels.md`
//! section 4):
//! - `POST /identity/v1/oauth2/token`: HTTP Basic `client_id:client_secret` (else 401
//!   `invalid_client`), a form body with `grant_type=refresh_token` (else 400
//!   `unsupported_grant_type`), the account's `refresh_token` (else 400 `invalid_grant`,
//!   and always once [`EbaySeller::revoke_refresh_token`] was called), and `scope`, when
//!   given, among those granted (else 400 `invalid_scope`). Answers `access_token`,
//!   `expires_in` ([`EbayConfig::token_lifetime`]) and `token_type`; refresh tokens do not
//!   rotate, as on eBay.
//! - Every other call needs `Authorization: Bearer` with a token the endpoint issued and
//!   that has not expired (else 401 with eBay's `errorId` 1001 "Invalid access token"), and
//!   the call's scope (else 403, `errorId` 1100).
//! - `POST /sell/inventory/v1/bulk_update_price_quantity` (`Content-Type: application/json`
//!   required, 415 otherwise): the body must be `BulkPriceQuantity` exactly (a field the
//!   schema does not name is 400 `errorId` 25709); 1 to [`BATCH_MAX`] requests and at most
//!   [`BATCH_MAX`] offers a call (400 25709 above); a repeated `offerId` is 400 25002. Each
//!   offer needs `offerId` and `availableQuantity` (or `price`), at least 0; its SKU must be
//!   the request's. An offer the account does not have is a 404 response with `errorId`
//!   25713 in its place, an inventory item it does not have 404 with 25702; the rest are
//!   applied. 200 when every response is 200, else 207, with `responses[]` (`statusCode`,
//!   `sku`, `offerId`, `errors`) as `BulkPriceQuantityResponse` documents.
//! - `GET /sell/inventory/v1/offer/{offerId}`: the offer (`EbayOfferDetailsWithAll`: offerId,
//!   sku, marketplaceId, format, availableQuantity, status, listing), 404 25713 when unknown.
//! - `GET /sell/fulfillment/v1/order` (getOrders): `filter` with `creationdate`,
//!   `lastmodifieddate` (`[FROM..]` or `[FROM..TO]`, times as `YYYY-MM-DDTHH:MM:SS.sssZ`)
//!   and `orderfulfillmentstatus`, the brackets percent-encoded as eBay requires; `limit`
//!   1 to 200 (default 50), `offset`, `orderIds` (at most 50), `fieldGroups`; the error ids
//!   the OpenAPI document lists (30700, 30800, 30810, 30820, 30840, 30850, 30900, 31000,
//!   31100, 32800). Without a filter: orders created in the last 90 days. Orders come newest
//!   created first with `total`, `offset`, `limit`, `href` and `next`. A query parameter
//!   getOrders does not take is refused (400): eBay would ignore it, the emulator points at it.
//!
//! Orders are built from `sell_fulfillment_v1_oas3.json`'s `Order` (the emulator's tests
//! check every field name against it); [`EbaySeller::add_order`] and
//! [`EbaySeller::cancel_order`] stamp `lastModifiedDate` with the account's clock (the wall
//! clock plus [`EbaySeller::advance`]), each change a millisecond after the last.
//!
//! eBay documents daily call limits, not per-second ones; the emulator also refuses more
//! than [`EbayConfig::calls_per_second`] calls in any second with a 429 (`errorId` 2001)
//! and `Retry-After: 1`, which a connector within its pacing never sees. Faults
//! (`faults.rs`) are drawn per authenticated call: 429 with `Retry-After`, 503, or a slow
//! answer. Every call is in the `calls` log (with the body of each bulk update), with how
//! many calls were out at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::faults::{Fault, FaultDraws, Faults};

/// bulkUpdatePriceQuantity's cap: requests, and offers, a call.
pub const BATCH_MAX: usize = 25;
/// getOrders' largest `limit`.
pub const LIMIT_MAX: usize = 200;
/// getOrders' default `limit`.
pub const LIMIT_DEFAULT: usize = 50;
/// Most `orderIds` one getOrders takes.
pub const ORDER_IDS_MAX: usize = 50;
/// Longest SKU eBay takes.
pub const SKU_CHARS_MAX: usize = 50;
/// Most calls the account remembers; older ones are forgotten first.
pub const LOG_MAX: usize = 100_000;

/// The Inventory API's scope.
pub const SCOPE_INVENTORY: &str = "https://api.ebay.com/oauth/api_scope/sell.inventory";
/// The Fulfillment API's scope.
pub const SCOPE_FULFILLMENT: &str = "https://api.ebay.com/oauth/api_scope/sell.fulfillment";

/// What an account is: the application's keys, the seller's refresh token, and how it
/// misbehaves.
#[derive(Clone, Debug)]
pub struct EbayConfig {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// The scopes the seller granted the application.
    pub scopes: Vec<String>,
    /// `expires_in` of the access tokens issued (eBay's are two hours).
    pub token_lifetime: Duration,
    /// Most calls in any second before a 429; `None` for no such limit.
    pub calls_per_second: Option<u32>,
    /// Most requests (and offers) a bulk update may carry.
    pub batch_max: usize,
    pub faults: Faults,
}

impl EbayConfig {
    /// A well-behaved account with eBay's caps, both scopes granted, tokens for two hours,
    /// and 20 calls a second before a 429 (four times the connector's pacing).
    pub fn new(client_id: &str, client_secret: &str, refresh_token: &str) -> EbayConfig {
        EbayConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_token: refresh_token.into(),
            scopes: vec![SCOPE_INVENTORY.into(), SCOPE_FULFILLMENT.into()],
            token_lifetime: Duration::from_secs(7200),
            calls_per_second: Some(20),
            batch_max: BATCH_MAX,
            faults: Faults::default(),
        }
    }
}

impl Default for EbayConfig {
    fn default() -> EbayConfig {
        EbayConfig::new("stockpool-app-PRD-1a2b3c", "PRD-secret-4d5e6f", "v^1.1#i^1#p^3#r^1#emulated-refresh")
    }
}

#[derive(Clone, Debug)]
struct OfferState {
    sku: String,
    listing_id: String,
    available: i64,
    sold: i64,
}

#[derive(Clone, Debug)]
struct OrderState {
    created_ms: i64,
    modified_ms: i64,
    body: Value,
}

/// One call the account got.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub at: Instant,
    pub method: &'static str,
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// Offers a bulk update carried (requests when it names none), or 1 for other calls.
    pub items: usize,
    pub status: u16,
    /// Calls out at once when this one came (itself included).
    pub in_flight: usize,
    /// A bulk update's body as sent.
    pub body: Option<Value>,
}

/// How often the account refused or answered things, for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Token requests refused.
    pub tokens_refused: u64,
    /// API calls answered 401.
    pub unauthorized: u64,
    /// Calls answered 429 for going over `calls_per_second` (faults not counted).
    pub rate_limited: u64,
    /// Calls answered 429 by a seeded fault.
    pub throttled: u64,
}

#[derive(Debug)]
struct AccountState {
    offers: BTreeMap<String, OfferState>,
    /// Inventory items' ship-to-home quantities, by SKU.
    items: BTreeMap<String, i64>,
    orders: BTreeMap<String, OrderState>,
    /// Access tokens and when they expire.
    tokens: BTreeMap<String, Instant>,
    refresh_revoked: bool,
    next_token: u64,
    next_listing: u64,
    last_stamp_ms: i64,
    clock_offset_ms: i64,
    recent: VecDeque<Instant>,
    calls: VecDeque<Call>,
    dropped_from_log: u64,
    in_flight: usize,
    max_in_flight: usize,
    counters: Counters,
    draws: FaultDraws,
}

#[derive(Clone)]
struct Shared {
    config: Arc<EbayConfig>,
    state: Arc<Mutex<AccountState>>,
}

/// A running account; stops when dropped or at `stop`.
pub struct EbaySeller {
    shared: Shared,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for EbaySeller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EbaySeller").field("addr", &self.addr).finish()
    }
}

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl AccountState {
    fn now_ms(&self) -> i64 {
        wall_ms() + self.clock_offset_ms
    }

    /// A stamp for a change: now, and after every stamp before.
    fn stamp(&mut self) -> i64 {
        let at = self.now_ms().max(self.last_stamp_ms + 1);
        self.last_stamp_ms = at;
        at
    }
}

impl EbaySeller {
    /// Starts an account on `127.0.0.1:0`.
    pub async fn start(config: EbayConfig) -> std::io::Result<EbaySeller> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            state: Arc::new(Mutex::new(AccountState {
                offers: BTreeMap::new(),
                items: BTreeMap::new(),
                orders: BTreeMap::new(),
                tokens: BTreeMap::new(),
                refresh_revoked: false,
                next_token: 1,
                next_listing: 110_000_000_001,
                last_stamp_ms: 0,
                clock_offset_ms: 0,
                recent: VecDeque::new(),
                calls: VecDeque::new(),
                dropped_from_log: 0,
                in_flight: 0,
                max_in_flight: 0,
                counters: Counters::default(),
                draws: FaultDraws::new(config.faults),
            })),
            config: Arc::new(config),
        };
        use axum::routing::{get, post};
        let app = axum::Router::new()
            .route("/identity/v1/oauth2/token", post(token))
            .route("/sell/inventory/v1/bulk_update_price_quantity", post(bulk_update))
            .route("/sell/inventory/v1/offer/{offer_id}", get(get_offer))
            .route("/sell/fulfillment/v1/order", get(get_orders))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                eprintln!("the emulated eBay account stopped: {e}");
            }
        });
        Ok(EbaySeller { shared, addr, stop: Some(stop), task: Some(task) })
    }

    /// The account's address, the store's `base_url` (API and token host alike).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The store's `credentials` for this account.
    pub fn credentials(&self) -> Value {
        let c = &self.shared.config;
        json!({"client_id": c.client_id, "client_secret": c.client_secret, "refresh_token": c.refresh_token})
    }

    fn state(&self) -> MutexGuard<'_, AccountState> {
        lock(&self.shared.state)
    }

    /// Adds (or replaces) published offer `offer_id` of inventory item `sku` at `quantity`
    /// (the item's ship-to-home quantity too).
    pub fn seed_offer(&self, offer_id: &str, sku: &str, quantity: i64) {
        let mut state = self.state();
        let listing_id = state.next_listing.to_string();
        state.next_listing += 1;
        state.items.insert(sku.to_string(), quantity);
        state
            .offers
            .insert(offer_id.to_string(), OfferState { sku: sku.into(), listing_id, available: quantity, sold: 0 });
    }

    /// Offer `offer_id`'s `availableQuantity`, `None` when the account has no such offer.
    pub fn offer_quantity(&self, offer_id: &str) -> Option<i64> {
        self.state().offers.get(offer_id).map(|o| o.available)
    }

    /// Inventory item `sku`'s ship-to-home quantity.
    pub fn item_quantity(&self, sku: &str) -> Option<i64> {
        self.state().items.get(sku).copied()
    }

    /// Changes an offer's quantity behind stockpool's back (an edit in Seller Hub): drift.
    pub fn set_quantity(&self, offer_id: &str, quantity: i64) -> bool {
        match self.state().offers.get_mut(offer_id) {
            Some(o) => {
                o.available = quantity;
                true
            }
            None => false,
        }
    }

    /// A buyer checks out order `order_id` with `lines` (SKU, quantity; an empty SKU is a
    /// listing made outside the Inventory API, without one). Each line's offer, when the
    /// SKU has one, sells that many. Returns the order's `lastModifiedDate`.
    pub fn add_order(&self, order_id: &str, lines: &[(&str, i64)]) -> String {
        let mut state = self.state();
        let at = state.stamp();
        let mut items = Vec::with_capacity(lines.len());
        for (n, (sku, quantity)) in lines.iter().enumerate() {
            let offer = state.offers.values_mut().find(|o| !sku.is_empty() && o.sku == *sku);
            let listing = match offer {
                Some(o) => {
                    o.available = (o.available - quantity).max(0);
                    o.sold += quantity;
                    o.listing_id.clone()
                }
                None => "110000000000".to_string(),
            };
            items.push(line_item(order_id, n, sku, *quantity, &listing));
        }
        let body = order_body(order_id, at, &items);
        state.orders.insert(order_id.to_string(), OrderState { created_ms: at, modified_ms: at, body });
        iso(at)
    }

    /// The seller (or eBay) cancels order `order_id`: `cancelState` `CANCELED`, a new
    /// `lastModifiedDate`. Returns it, or `None` when there is no such order.
    pub fn cancel_order(&self, order_id: &str) -> Option<String> {
        let mut state = self.state();
        let at = state.stamp();
        let order = state.orders.get_mut(order_id)?;
        order.modified_ms = at;
        order.body["lastModifiedDate"] = json!(iso(at));
        order.body["orderPaymentStatus"] = json!("FULLY_REFUNDED");
        order.body["cancelStatus"] = json!({"cancelState": "CANCELED", "cancelledDate": iso(at), "cancelRequests": []});
        Some(iso(at))
    }

    /// Order `order_id` as getOrders shows it.
    pub fn order(&self, order_id: &str) -> Option<Value> {
        self.state().orders.get(order_id).map(|o| o.body.clone())
    }

    /// Moves the account's clock (order stamps, the filter's "future") forward.
    pub fn advance(&self, seconds: i64) {
        self.state().clock_offset_ms += seconds * 1000;
    }

    /// Every access token issued so far expires now.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for until in self.state().tokens.values_mut() {
            *until = now;
        }
    }

    /// The seller revokes the application: the refresh token is refused from now on.
    pub fn revoke_refresh_token(&self) {
        self.state().refresh_revoked = true;
    }

    /// Every call still remembered, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.iter().cloned().collect()
    }

    /// How many calls fell out of the log.
    pub fn dropped_from_log(&self) -> u64 {
        self.state().dropped_from_log
    }

    /// The bulk updates the account took (answered 200 or 207), oldest first.
    pub fn bulk_updates(&self) -> Vec<Value> {
        self.state()
            .calls
            .iter()
            .filter(|c| c.method == "POST" && matches!(c.status, 200 | 207))
            .filter_map(|c| c.body.clone())
            .collect()
    }

    /// The most offers one bulk update carried (of those remembered), refused ones included.
    pub fn max_items_per_call(&self) -> usize {
        let state = self.state();
        state
            .calls
            .iter()
            .filter(|c| c.path.ends_with("bulk_update_price_quantity"))
            .map(|c| c.items)
            .max()
            .unwrap_or(0)
    }

    /// The most calls the account had out at once.
    pub fn max_in_flight(&self) -> usize {
        self.state().max_in_flight
    }

    pub fn counters(&self) -> Counters {
        self.state().counters
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EbaySeller {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn money(value: &str) -> Value {
    json!({"value": value, "currency": "USD"})
}

fn line_item(order_id: &str, n: usize, sku: &str, quantity: i64, listing: &str) -> Value {
    let mut line = json!({
        "lineItemId": format!("{order_id}-{}", n + 1),
        "legacyItemId": listing,
        "title": if sku.is_empty() { format!("Listing {listing}") } else { format!("Item {sku}") },
        "quantity": quantity,
        "lineItemCost": money("10.00"),
        "total": money("10.00"),
        "deliveryCost": {"shippingCost": money("0.00")},
        "lineItemFulfillmentStatus": "NOT_STARTED",
        "listingMarketplaceId": "EBAY_US",
        "purchaseMarketplaceId": "EBAY_US",
        "soldFormat": "FIXED_PRICE",
        "appliedPromotions": [],
        "taxes": [],
        "refunds": [],
    });
    if !sku.is_empty() {
        line["sku"] = json!(sku);
    }
    line
}

fn order_body(order_id: &str, at: i64, items: &[Value]) -> Value {
    json!({
        "orderId": order_id,
        "creationDate": iso(at),
        "lastModifiedDate": iso(at),
        "orderFulfillmentStatus": "NOT_STARTED",
        "orderPaymentStatus": "PAID",
        "sellerId": "stockpool_seller",
        "buyer": {"username": "emulated_buyer"},
        "pricingSummary": {"priceSubtotal": money("10.00"), "total": money("10.00")},
        "cancelStatus": {"cancelState": "NONE_REQUESTED", "cancelRequests": []},
        "paymentSummary": {"totalDueSeller": money("10.00"), "payments": [], "refunds": []},
        "fulfillmentHrefs": [],
        "fulfillmentStartInstructions": [],
        "salesRecordReference": "1",
        "lineItems": items,
    })
}

/// A poisoned lock only means a test thread panicked while holding it.
fn lock(state: &Mutex<AccountState>) -> MutexGuard<'_, AccountState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

// ---- time, as eBay writes it ----

/// `YYYY-MM-DDTHH:MM:SS.sssZ` for milliseconds since 1970.
pub fn iso(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // Civil date from days (eras of 400 years counted from March).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        ms.rem_euclid(1000)
    )
}

/// Reads exactly `YYYY-MM-DDTHH:MM:SS.sssZ` (what [`iso`] writes).
pub fn parse_iso(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let (y, mo, d, h, mi, s, ms) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?, n(20..23)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let ms_total = ((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + ms;
    // A day that the month does not have (2025-02-30) does not come back the same.
    (iso(ms_total) == text).then_some(ms_total)
}

// ---- answers ----

/// eBay's error body: `{"errors": [{errorId, domain, category, message}]}`.
fn errors(status: StatusCode, id: i64, domain: &str, message: &str) -> Response {
    (status, axum::Json(json!({"errors": [error_json(id, domain, message)]}))).into_response()
}

fn error_json(id: i64, domain: &str, message: &str) -> Value {
    json!({"errorId": id, "domain": domain, "category": "REQUEST", "message": message})
}

/// The OAuth endpoint's error body.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(json!({"error": error, "error_description": description}))).into_response()
}

fn invalid_token() -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"errors": [{
            "errorId": 1001, "domain": "OAuth", "category": "REQUEST", "message": "Invalid access token",
            "longMessage": "Invalid access token. Check the value of the Authorization HTTP request header."
        }]})),
    )
        .into_response();
    r.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer"));
    r
}

fn too_many(retry_after_secs: Option<u32>) -> Response {
    let mut r = errors(
        StatusCode::TOO_MANY_REQUESTS,
        2001,
        "ACCESS",
        "Too many requests. The request limit has been reached for the resource.",
    );
    if let Some(s) = retry_after_secs {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            r.headers_mut().insert("retry-after", v);
        }
    }
    r
}

/// Counts a call in flight while it is answered.
struct InFlight(Arc<Mutex<AccountState>>);

impl InFlight {
    fn enter(site: &Shared) -> (InFlight, usize) {
        let mut state = lock(&site.state);
        state.in_flight += 1;
        let now = state.in_flight;
        state.max_in_flight = state.max_in_flight.max(now);
        (InFlight(site.state.clone()), now)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.0).in_flight -= 1;
    }
}

fn log(site: &Shared, call: Call) {
    let mut state = lock(&site.state);
    if state.calls.len() >= LOG_MAX {
        state.calls.pop_front();
        state.dropped_from_log += 1;
    }
    state.calls.push_back(call);
}

/// Checks an API call's bearer token and scope, the per-second limit, and draws a fault:
/// `Some(answer)` to answer instead.
async fn admit(site: &Shared, headers: &HeaderMap, scope: &str) -> Option<Response> {
    let drawn = {
        let mut state = lock(&site.state);
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let now = Instant::now();
        let valid = token.and_then(|t| state.tokens.get(t)).is_some_and(|until| now < *until);
        if !valid {
            state.counters.unauthorized += 1;
            return Some(invalid_token());
        }
        if !site.config.scopes.iter().any(|s| s == scope) {
            return Some(errors(
                StatusCode::FORBIDDEN,
                1100,
                "ACCESS",
                "Insufficient permissions to fulfill the request.",
            ));
        }
        if let Some(limit) = site.config.calls_per_second {
            while state.recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
                state.recent.pop_front();
            }
            if state.recent.len() >= limit as usize {
                state.counters.rate_limited += 1;
                return Some(too_many(Some(1)));
            }
            state.recent.push_back(now);
        }
        state.draws.draw()
    };
    match drawn {
        Fault::None => None,
        Fault::Slow(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Fault::Error => Some(errors(
            StatusCode::SERVICE_UNAVAILABLE,
            25001,
            "API_INVENTORY",
            "A system error has occurred. The service is unavailable; try again later.",
        )),
        Fault::Throttle { retry_after_secs } => {
            lock(&site.state).counters.throttled += 1;
            Some(too_many(retry_after_secs))
        }
    }
}

// ---- the token endpoint ----

async fn token(State(site): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let at = Instant::now();
    let (_guard, in_flight) = InFlight::enter(&site);
    let response = token_answer(&site, &headers, &body);
    if response.status() != StatusCode::OK {
        lock(&site.state).counters.tokens_refused += 1;
    }
    let status = response.status().as_u16();
    let call = Call {
        at,
        method: "POST",
        path: "/identity/v1/oauth2/token".into(),
        query: String::new(),
        items: 1,
        status,
        in_flight,
        body: None,
    };
    log(&site, call);
    response
}

fn token_answer(site: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "request is missing a required parameter or malformed: Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok());
    let expected = format!("{}:{}", site.config.client_id, site.config.client_secret);
    if basic.as_deref() != Some(expected.as_bytes()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "the body is not a form");
    };
    let uri: Uri = match format!("/?{text}").parse() {
        Ok(u) => u,
        Err(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "the body is not a form"),
    };
    let Ok(Query(form)) = Query::<Vec<(String, String)>>::try_from_uri(&uri) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "the body is not a form");
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if field("grant_type") != Some("refresh_token") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant type in request is not supported by the authorization server",
        );
    }
    let mut state = lock(&site.state);
    if state.refresh_revoked || field("refresh_token") != Some(site.config.refresh_token.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the provided authorization refresh token is invalid or was issued to another client",
        );
    }
    if let Some(scope) = field("scope") {
        if scope.split(' ').filter(|s| !s.is_empty()).any(|s| !site.config.scopes.iter().any(|g| g == s)) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "The requested scope is invalid, unknown, malformed, or exceeds the scope granted to the client",
            );
        }
    }
    let token = format!("v^1.1#i^1#f^0#r^0#emulated-access-{}", state.next_token);
    state.next_token += 1;
    state.tokens.insert(token.clone(), Instant::now() + site.config.token_lifetime);
    state.counters.tokens_issued += 1;
    axum::Json(json!({
        "access_token": token,
        "expires_in": site.config.token_lifetime.as_secs(),
        "token_type": "User Access Token",
    }))
    .into_response()
}

// ---- bulkUpdatePriceQuantity ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkIn {
    requests: Option<Vec<RequestIn>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RequestIn {
    sku: Option<String>,
    ship_to_location_availability: Option<ShipIn>,
    offers: Option<Vec<OfferIn>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ShipIn {
    quantity: Option<i64>,
    availability_distributions: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OfferIn {
    offer_id: Option<String>,
    available_quantity: Option<i64>,
    price: Option<Value>,
}

const INVENTORY: &str = "API_INVENTORY";

fn invalid(field: &str, more: &str) -> Value {
    error_json(25709, INVENTORY, &format!("Invalid value for {field}. {more}"))
}

async fn bulk_update(State(site): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let at = Instant::now();
    let (_guard, in_flight) = InFlight::enter(&site);
    let sent: Option<Value> = serde_json::from_slice(&body).ok();
    let items = sent.as_ref().and_then(|v| v.get("requests")).and_then(Value::as_array).map_or(0, |r| {
        let offers: usize = r.iter().map(|q| q.get("offers").and_then(Value::as_array).map_or(0, Vec::len)).sum();
        offers.max(r.len())
    });
    let response = bulk_answer(&site, &headers, &body).await;
    let call = Call {
        at,
        method: "POST",
        path: "/sell/inventory/v1/bulk_update_price_quantity".into(),
        query: String::new(),
        items,
        status: response.status().as_u16(),
        in_flight,
        body: sent,
    };
    log(&site, call);
    response
}

async fn bulk_answer(site: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Some(answer) = admit(site, headers, SCOPE_INVENTORY).await {
        return answer;
    }
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") {
        return errors(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            25002,
            INVENTORY,
            "Any User error. The Content-Type header must be application/json.",
        );
    }
    let bulk: BulkIn = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            let answer = json!({"errors": [invalid("request", &format!("The body is not a BulkPriceQuantity: {e}."))]});
            return (StatusCode::BAD_REQUEST, axum::Json(answer)).into_response();
        }
    };
    let requests = bulk.requests.unwrap_or_default();
    let offers: usize = requests.iter().map(|r| r.offers.as_ref().map_or(0, Vec::len)).sum();
    let cap = site.config.batch_max;
    if requests.is_empty() || requests.len() > cap || offers > cap {
        let more = format!("Send 1 to {cap} requests and at most {cap} offers a call.");
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"errors": [invalid("requests", &more)]}))).into_response();
    }
    let mut seen = BTreeSet::new();
    for offer in requests.iter().flat_map(|r| r.offers.iter().flatten()) {
        if let Some(id) = &offer.offer_id {
            if !seen.insert(id.clone()) {
                let message = format!("Any User error. The offer {id} is given more than once.");
                return errors(StatusCode::BAD_REQUEST, 25002, INVENTORY, &message);
            }
        }
    }
    let mut state = lock(&site.state);
    let mut responses: Vec<Value> = Vec::new();
    for request in requests {
        let sku = request.sku.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let mut request_errors: Vec<Value> = Vec::new();
        if let Some(s) = &sku {
            if s.chars().count() > SKU_CHARS_MAX {
                request_errors.push(invalid("sku", &format!("A SKU has at most {SKU_CHARS_MAX} characters.")));
            }
        }
        if let Some(ship) = &request.ship_to_location_availability {
            match (&sku, ship.quantity) {
                (None, _) => request_errors.push(invalid("sku", "shipToLocationAvailability needs the sku.")),
                (_, None) => request_errors.push(invalid("shipToLocationAvailability.quantity", "It is required.")),
                (_, Some(q)) if q < 0 => request_errors.push(invalid("quantity", "It must be 0 or more.")),
                (Some(s), Some(_)) if !state.items.contains_key(s) => request_errors.push(error_json(
                    25702,
                    INVENTORY,
                    &format!("SKU {s} is not available in the system."),
                )),
                _ => {}
            }
            let _ = &ship.availability_distributions;
        }
        if request_errors.is_empty() {
            if let (Some(s), Some(q)) = (&sku, request.ship_to_location_availability.as_ref().and_then(|s| s.quantity))
            {
                state.items.insert(s.clone(), q);
            }
        }
        let offers = request.offers.unwrap_or_default();
        if !request_errors.is_empty() || offers.is_empty() {
            let status = if request_errors.iter().any(|e| e["errorId"] == 25702) { 404 } else { 400 };
            let status = if request_errors.is_empty() { 200 } else { status };
            let mut r = json!({"statusCode": status});
            if let Some(s) = &sku {
                r["sku"] = json!(s);
            }
            if !request_errors.is_empty() {
                r["errors"] = json!(request_errors);
            }
            responses.push(r);
            if offers.is_empty() {
                continue;
            }
        }
        for offer in offers {
            let id = offer.offer_id.clone().unwrap_or_default();
            let (status, error): (u16, Option<Value>) = match (&offer.offer_id, offer.available_quantity) {
                (None, _) => (400, Some(invalid("offerId", "Each offer needs its offerId."))),
                (_, None) if offer.price.is_none() => {
                    (400, Some(invalid("offers", "Give availableQuantity or price for each offer.")))
                }
                (_, Some(q)) if q < 0 => (400, Some(invalid("availableQuantity", "It must be 0 or more."))),
                (Some(id), q) => match state.offers.get_mut(id) {
                    None => (404, Some(error_json(25713, INVENTORY, &format!("This Offer is not available : {id}.")))),
                    Some(o) if sku.as_deref().is_some_and(|s| s != o.sku) => {
                        (400, Some(invalid("sku", &format!("Offer {id} belongs to SKU {}, not the request's.", o.sku))))
                    }
                    Some(o) => {
                        if let Some(q) = q {
                            o.available = q;
                        }
                        (200, None)
                    }
                },
            };
            let offer_sku = state.offers.get(&id).map(|o| o.sku.clone()).or(sku.clone());
            let mut r = json!({"statusCode": status, "offerId": id});
            if let Some(s) = offer_sku {
                r["sku"] = json!(s);
            }
            if let Some(e) = error {
                r["errors"] = json!([e]);
            }
            responses.push(r);
        }
    }
    let all_ok = responses.iter().all(|r| r["statusCode"] == 200);
    let status = if all_ok { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    (status, axum::Json(json!({"responses": responses}))).into_response()
}

// ---- getOffer ----

async fn get_offer(State(site): State<Shared>, Path(offer_id): Path<String>, headers: HeaderMap) -> Response {
    let at = Instant::now();
    let (_guard, in_flight) = InFlight::enter(&site);
    let response = match admit(&site, &headers, SCOPE_INVENTORY).await {
        Some(answer) => answer,
        None => {
            let state = lock(&site.state);
            match state.offers.get(&offer_id) {
                None => errors(
                    StatusCode::NOT_FOUND,
                    25713,
                    INVENTORY,
                    &format!("This Offer is not available : {offer_id}."),
                ),
                Some(o) => axum::Json(json!({
                    "offerId": offer_id,
                    "sku": o.sku,
                    "marketplaceId": "EBAY_US",
                    "format": "FIXED_PRICE",
                    "availableQuantity": o.available,
                    "status": "PUBLISHED",
                    "listing": {"listingId": o.listing_id, "listingStatus": "ACTIVE", "soldQuantity": o.sold},
                }))
                .into_response(),
            }
        }
    };
    let call = Call {
        at,
        method: "GET",
        path: format!("/sell/inventory/v1/offer/{offer_id}"),
        query: String::new(),
        items: 1,
        status: response.status().as_u16(),
        in_flight,
        body: None,
    };
    log(&site, call);
    response
}

// ---- getOrders ----

const FULFILLMENT: &str = "API_FULFILLMENT";

/// What a getOrders filter chose.
#[derive(Debug, Default)]
struct Filter {
    created: Option<(i64, Option<i64>)>,
    modified: Option<(i64, Option<i64>)>,
    statuses: Option<Vec<String>>,
}

/// A getOrders refusal: eBay's `errorId` and message (a 400).
struct Refusal(i64, String);

impl Refusal {
    fn answer(self) -> Response {
        errors(StatusCode::BAD_REQUEST, self.0, FULFILLMENT, &self.1)
    }
}

/// Parses `[FROM..]` or `[FROM..TO]`.
fn date_range(name: &str, value: &str, now_ms: i64) -> Result<(i64, Option<i64>), Refusal> {
    let bad = |id: i64, message: String| Refusal(id, message);
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .ok_or_else(|| bad(30800, format!("Invalid filter value {value} for filter {name}")))?;
    let (from, to) =
        inner.split_once("..").ok_or_else(|| bad(30800, format!("Invalid filter value {value} for filter {name}")))?;
    if from.is_empty() {
        return Err(bad(30820, "Start date is missing".into()));
    }
    let from = parse_iso(from).ok_or_else(|| bad(30810, "Invalid date format".into()))?;
    let to = match to {
        "" => None,
        t => Some(parse_iso(t).ok_or_else(|| bad(30810, "Invalid date format".into()))?),
    };
    if to.is_some_and(|t| t < from) {
        return Err(bad(30840, "Start date should be before end date".into()));
    }
    // A minute's grace for clocks that differ a little.
    if from > now_ms + 60_000 || to.is_some_and(|t| t > now_ms + 60_000) {
        return Err(bad(30850, "Start and end dates can't be in the future".into()));
    }
    Ok((from, to))
}

fn parse_filter(text: &str, now_ms: i64) -> Result<Filter, Refusal> {
    let mut filter = Filter::default();
    for criterion in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let Some((name, value)) = criterion.split_once(':') else {
            return Err(Refusal(30700, format!("Invalid filter name: {criterion}")));
        };
        match name {
            "creationdate" => filter.created = Some(date_range(name, value, now_ms)?),
            "lastmodifieddate" => filter.modified = Some(date_range(name, value, now_ms)?),
            "orderfulfillmentstatus" => {
                let set = value.strip_prefix('{').and_then(|v| v.strip_suffix('}'));
                let statuses: Option<Vec<String>> = set.map(|s| s.split('|').map(str::to_string).collect());
                let ok = statuses.as_ref().is_some_and(|s| {
                    let mut s = s.clone();
                    s.sort();
                    s == ["IN_PROGRESS", "NOT_STARTED"] || s == ["FULFILLED", "IN_PROGRESS"]
                });
                if !ok {
                    let message = format!("Invalid filter value {value} for filter {name}");
                    return Err(Refusal(30800, message));
                }
                filter.statuses = statuses;
            }
            other => return Err(Refusal(30700, format!("Invalid filter name: {other}"))),
        }
    }
    Ok(filter)
}

async fn get_orders(State(site): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let at = Instant::now();
    let (_guard, in_flight) = InFlight::enter(&site);
    let query = uri.query().unwrap_or("").to_string();
    let response = match admit(&site, &headers, SCOPE_FULFILLMENT).await {
        Some(answer) => answer,
        None => orders_answer(&site, &uri),
    };
    let call = Call {
        at,
        method: "GET",
        path: "/sell/fulfillment/v1/order".into(),
        query,
        items: 1,
        status: response.status().as_u16(),
        in_flight,
        body: None,
    };
    log(&site, call);
    response
}

fn orders_answer(site: &Shared, uri: &Uri) -> Response {
    let raw = uri.query().unwrap_or("");
    let bad = |id: i64, message: String| errors(StatusCode::BAD_REQUEST, id, FULFILLMENT, &message);
    if raw.contains(['[', ']', '{', '}', '|']) {
        return bad(30800, "Invalid filter value: [ ] { } and | must be percent-encoded in the query".into());
    }
    let Ok(Query(params)) = Query::<Vec<(String, String)>>::try_from_uri(uri) else {
        return bad(30800, "Invalid filter value: the query string cannot be read".into());
    };
    let mut seen = BTreeSet::new();
    for (name, _) in &params {
        if !["filter", "limit", "offset", "orderIds", "fieldGroups"].contains(&name.as_str()) {
            return bad(30700, format!("Invalid filter name: {name} (getOrders takes no such query parameter)"));
        }
        if !seen.insert(name.clone()) {
            return bad(30800, format!("Invalid filter value: {name} is given more than once"));
        }
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if let Some(groups) = param("fieldGroups") {
        if groups != "TAX_BREAKDOWN" {
            return bad(32800, format!("Invalid field group: {groups}"));
        }
    }
    let state = lock(&site.state);
    let now_ms = state.now_ms();
    let mut chosen: Vec<&OrderState> = if let Some(ids) = param("orderIds") {
        let ids: Vec<&str> = ids.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if ids.len() > ORDER_IDS_MAX {
            return bad(30900, format!("Exceeded maximum number of order IDs (the current limit is {ORDER_IDS_MAX})"));
        }
        ids.iter().filter_map(|id| state.orders.get(*id)).collect()
    } else {
        let filter = match param("filter").map(|f| parse_filter(f, now_ms)).transpose() {
            Ok(f) => f.unwrap_or_default(),
            Err(refusal) => return refusal.answer(),
        };
        let within = |at: i64, range: Option<(i64, Option<i64>)>| {
            range.is_none_or(|(from, to)| at >= from && to.is_none_or(|to| at <= to))
        };
        // creationdate wins over lastmodifieddate; neither: the last 90 days' orders.
        let (created, modified) = match (filter.created, filter.modified) {
            (Some(c), _) => (Some(c), None),
            (None, Some(m)) => (None, Some(m)),
            (None, None) => (Some((now_ms - 90 * 86_400_000, None)), None),
        };
        state
            .orders
            .values()
            .filter(|o| within(o.created_ms, created) && within(o.modified_ms, modified))
            .filter(|o| {
                let status = o.body["orderFulfillmentStatus"].as_str().unwrap_or("");
                filter.statuses.as_ref().is_none_or(|s| s.iter().any(|x| x == status))
            })
            .collect()
    };
    let number = |name: &str, default: usize| match param(name) {
        None => Some(default),
        Some(s) => s.trim().parse::<usize>().ok(),
    };
    let Some(limit) = number("limit", LIMIT_DEFAULT).filter(|l| (1..=LIMIT_MAX).contains(l)) else {
        return bad(31100, format!("Invalid limit: {}", param("limit").unwrap_or("")));
    };
    let Some(offset) = number("offset", 0) else {
        return bad(31000, format!("Invalid offset: {}", param("offset").unwrap_or("")));
    };
    // Newest created first (eBay documents no order; this one moves nothing when an order changes).
    chosen.sort_by(|a, b| {
        b.created_ms.cmp(&a.created_ms).then_with(|| b.body["orderId"].as_str().cmp(&a.body["orderId"].as_str()))
    });
    let total = chosen.len();
    let orders: Vec<Value> = chosen.iter().skip(offset).take(limit).map(|o| o.body.clone()).collect();
    let path = "/sell/fulfillment/v1/order";
    let link = |offset: usize| {
        let mut q: Vec<String> = params
            .iter()
            .filter(|(k, _)| k != "offset" && k != "limit")
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        q.push(format!("limit={limit}"));
        q.push(format!("offset={offset}"));
        format!("{path}?{}", q.join("&"))
    };
    let mut answer = json!({"href": link(offset), "total": total, "limit": limit, "offset": offset, "orders": orders});
    if offset + limit < total {
        answer["next"] = json!(link(offset + limit));
    }
    if offset > 0 {
        answer["prev"] = json!(link(offset.saturating_sub(limit)));
    }
    axum::Json(answer).into_response()
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_go_both_ways() {
        for ms in [0, 1_438_715_342_768, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_iso(&iso(ms)), Some(ms), "{}", iso(ms));
        }
        assert_eq!(iso(1_438_715_342_768), "2015-08-04T19:09:02.768Z");
        for bad in ["2015-08-04T19:09:02Z", "2025-02-30T00:00:00.000Z", "2015-08-04 19:09:02.768Z"] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }
}
