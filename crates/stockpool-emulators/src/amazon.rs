//! An emulated Amazon seller account: the parts of the Selling Partner API stockpool
//! calls, with Login with Amazon in front.
//!
//! - `POST /auth/o2/token` (form `grant_type=refresh_token`, `refresh_token`, `client_id`,
//!   `client_secret`): a fresh access token (`Atza|...`) that expires after
//!   `token_lifetime`; wrong client or refresh token -> 400 `invalid_grant` /
//!   `invalid_client` as LWA answers.
//! - Every SP-API call needs `x-amz-access-token`: missing, unknown or expired -> 403
//!   `Unauthorized` (SP-API documents no 401), with `x-amzn-ErrorType: UnauthorizedException`.
//! - `PATCH /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=...`: the body is
//!   checked against `ListingsItemPatchRequest` (only `productType` and `patches`, each
//!   `op` of the enum, `path`, `value`); a merge of `/attributes/fulfillment_availability`
//!   sets the listing's quantity. An unknown SKU answers 200 `INVALID` with an issue.
//! - The feed flow: `POST /feeds/2021-06-30/documents` -> `{feedDocumentId, url}` where
//!   `url` is this emulator's `PUT /upload/{id}`; `POST /feeds/2021-06-30/feeds` checks the
//!   spec and processes a `JSON_LISTINGS_FEED` at once (header, at most 25,000 messages,
//!   `PATCH` messages as above): `feed(id)` shows its status and the quantities change.
//! - `GET /orders/2026-01-01/orders` (`searchOrders`): `marketplaceIds`, exactly one of
//!   `createdAfter` / `lastUpdatedAfter`, `maxResultsPerPage` 1..=100, `includedData` of the
//!   documented values, `paginationToken` from a previous page with the same filters.
//!   Orders come oldest update first.
//! - Rates: a token bucket per operation with the usage plan's rate and burst; over it 429
//!   (`x-amzn-RateLimit-Limit` on every answer of the operation, `Retry-After` only from
//!   faults). Seeded faults (`faults.rs`) are drawn per authenticated call.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::faults::{Fault, FaultDraws, Faults};

/// Most messages in a `JSON_LISTINGS_FEED` (the schema's `maxItems`).
pub const FEED_MESSAGES_MAX: usize = 25_000;
/// Calls kept in the log; older ones are dropped (and counted).
pub const CALL_LOG_MAX: usize = 10_000;

/// An operation's usage plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    pub rate: f64,
    pub burst: f64,
}

/// What the account is like.
#[derive(Clone, Debug)]
pub struct AmazonConfig {
    pub seller_id: String,
    pub marketplace_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub token_lifetime: Duration,
    pub patch_plan: Plan,
    pub feed_plan: Plan,
    pub document_plan: Plan,
    pub search_plan: Plan,
    /// Most orders a page holds, whatever `maxResultsPerPage` asks (tests force paging).
    pub page_max: usize,
    pub faults: Faults,
}

impl AmazonConfig {
    /// The documented usage plans (searchOrders 0.0056/s burst 20, patch 5/5, createFeed
    /// 0.0083/15, createFeedDocument 0.5/15), tokens good for an hour.
    pub fn new(seller_id: &str, marketplace_id: &str, client_id: &str, client_secret: &str, refresh: &str) -> Self {
        AmazonConfig {
            seller_id: seller_id.into(),
            marketplace_id: marketplace_id.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_token: refresh.into(),
            token_lifetime: Duration::from_secs(3600),
            patch_plan: Plan { rate: 5.0, burst: 5.0 },
            feed_plan: Plan { rate: 0.0083, burst: 15.0 },
            document_plan: Plan { rate: 0.5, burst: 15.0 },
            search_plan: Plan { rate: 0.0056, burst: 20.0 },
            page_max: 100,
            faults: Faults::default(),
        }
    }
}

/// One call the emulator took.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub body: Option<Value>,
}

/// A processed (or refused) feed.
#[derive(Clone, Debug)]
pub struct Feed {
    pub feed_id: String,
    pub processing_status: String,
    pub messages: usize,
    pub errors: Vec<String>,
}

struct Bucket {
    plan: Plan,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(plan: Plan) -> Bucket {
        Bucket { plan, tokens: plan.burst, at: Instant::now() }
    }
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.plan.rate).min(self.plan.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
struct Order {
    json: Value,
    updated: i64,
}

struct AccountState {
    tokens: HashMap<String, Instant>,
    next_id: u64,
    listings: BTreeMap<String, Option<i64>>,
    documents: HashMap<String, Option<Vec<u8>>>,
    feeds: Vec<Feed>,
    orders: BTreeMap<String, Order>,
    pages: HashMap<String, (String, usize)>,
    buckets: HashMap<&'static str, Bucket>,
    calls: VecDeque<Call>,
    dropped_from_log: u64,
    draws: FaultDraws,
    refused_tokens: u64,
    throttled: u64,
}

#[derive(Clone)]
struct Shared {
    config: Arc<AmazonConfig>,
    state: Arc<Mutex<AccountState>>,
    addr: SocketAddr,
}

/// A running emulated account; stops when dropped or at `stop`.
pub struct AmazonAccount {
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for AmazonAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmazonAccount").field("addr", &self.shared.addr).finish()
    }
}

fn lock(m: &Mutex<AccountState>) -> MutexGuard<'_, AccountState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AmazonAccount {
    /// Starts the account on `127.0.0.1:0`.
    pub async fn start(config: AmazonConfig) -> std::io::Result<AmazonAccount> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut buckets = HashMap::new();
        buckets.insert("patchListingsItem", Bucket::new(config.patch_plan));
        buckets.insert("createFeed", Bucket::new(config.feed_plan));
        buckets.insert("createFeedDocument", Bucket::new(config.document_plan));
        buckets.insert("searchOrders", Bucket::new(config.search_plan));
        let shared = Shared {
            state: Arc::new(Mutex::new(AccountState {
                tokens: HashMap::new(),
                next_id: 1,
                listings: BTreeMap::new(),
                documents: HashMap::new(),
                feeds: Vec::new(),
                orders: BTreeMap::new(),
                pages: HashMap::new(),
                buckets,
                calls: VecDeque::new(),
                dropped_from_log: 0,
                draws: FaultDraws::new(config.faults),
                refused_tokens: 0,
                throttled: 0,
            })),
            config: Arc::new(config),
            addr,
        };
        use axum::routing::{get, patch, post, put};
        let app = axum::Router::new()
            .route("/auth/o2/token", post(token))
            .route("/listings/2021-08-01/items/{seller}/{sku}", patch(patch_listing))
            .route("/feeds/2021-06-30/documents", post(create_document))
            .route("/upload/{id}", put(upload))
            .route("/feeds/2021-06-30/feeds", post(create_feed))
            .route("/orders/2026-01-01/orders", get(search_orders))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                eprintln!("the emulated Amazon account stopped: {e}");
            }
        });
        Ok(AmazonAccount { shared, stop: Some(stop), task: Some(task) })
    }

    /// The store's `base_url` (SP-API and LWA both).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    fn state(&self) -> MutexGuard<'_, AccountState> {
        lock(&self.shared.state)
    }

    /// Adds a listing (seller SKU) with a quantity (`None`: no quantity set yet).
    pub fn seed_listing(&self, sku: &str, quantity: Option<i64>) {
        self.state().listings.insert(sku.to_string(), quantity);
    }

    /// A listing's `DEFAULT` quantity; `None` for an unknown SKU or one without a quantity.
    pub fn quantity(&self, sku: &str) -> Option<i64> {
        self.state().listings.get(sku).copied().flatten()
    }

    /// Every call taken, oldest first (at most `CALL_LOG_MAX`).
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.iter().cloned().collect()
    }

    /// The feeds created, oldest first.
    pub fn feeds(&self) -> Vec<Feed> {
        self.state().feeds.clone()
    }

    /// Calls refused for their access token, and calls throttled by the rate.
    pub fn refusals(&self) -> (u64, u64) {
        let s = self.state();
        (s.refused_tokens, s.throttled)
    }

    /// Expires every access token handed out (the next call with one gets 403).
    pub fn expire_tokens(&self) {
        let past = Instant::now();
        for at in self.state().tokens.values_mut() {
            *at = past;
        }
    }

    /// Places (or replaces) an order: `items` are (seller SKU, ASIN, quantity); `updated`
    /// is its `lastUpdatedTime` in seconds since the epoch.
    pub fn put_order(&self, order_id: &str, updated: i64, status: &str, items: &[(&str, &str, i64)]) {
        let updated = &time_stamp(updated);
        let items: Vec<Value> = items
            .iter()
            .enumerate()
            .map(|(n, (sku, asin, qty))| {
                json!({
                    "orderItemId": format!("{}{n:02}", order_id.replace('-', "")),
                    "quantityOrdered": qty,
                    "product": {"asin": asin, "sellerSku": sku, "title": format!("Item {sku}")},
                })
            })
            .collect();
        let json = json!({
            "orderId": order_id,
            "createdTime": updated,
            "lastUpdatedTime": updated,
            "salesChannel": {"channelName": "AMAZON", "marketplaceId": self.shared.config.marketplace_id},
            "fulfillment": {"fulfillmentStatus": status, "fulfilledBy": "MERCHANT"},
            "orderItems": items,
        });
        let updated = seconds(updated).expect("put_order takes an RFC 3339 time");
        self.state().orders.insert(order_id.to_string(), Order { json, updated });
    }

    /// Cancels an order at `updated` (seconds since the epoch): `fulfillmentStatus` `CANCELLED`.
    pub fn cancel_order(&self, order_id: &str, updated: i64) -> bool {
        let updated = &time_stamp(updated);
        let mut s = self.state();
        let Some(order) = s.orders.get_mut(order_id) else { return false };
        order.json["fulfillment"]["fulfillmentStatus"] = json!("CANCELLED");
        order.json["lastUpdatedTime"] = json!(updated);
        order.updated = seconds(updated).expect("cancel_order takes an RFC 3339 time");
        true
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

impl Drop for AmazonAccount {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of seconds since the epoch.
pub fn time_stamp(seconds: i64) -> String {
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
fn seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !text.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d, h, mi, s) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    let frac = &text[19..text.len() - 1];
    if !(frac.is_empty() || (frac.len() > 1 && frac.starts_with('.') && frac[1..].bytes().all(|c| c.is_ascii_digit())))
    {
        return None;
    }
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Percent-decodes a form or query component.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=2` as pairs, in order.
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn errors(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"errors": [{"code": code, "message": message}]}))).into_response()
}

fn log(shared: &Shared, method: &str, path: &str, query: &str, status: u16, body: Option<Value>) {
    let mut s = lock(&shared.state);
    if s.calls.len() >= CALL_LOG_MAX {
        s.calls.pop_front();
        s.dropped_from_log += 1;
    }
    s.calls.push_back(Call { method: method.into(), path: path.into(), query: query.into(), status, body });
}

/// Checks the token, the fault draw and the operation's rate: `Some(answer)` refuses.
async fn gate(shared: &Shared, headers: &HeaderMap, operation: &'static str) -> Option<Response> {
    let token = headers.get("x-amz-access-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    let valid = lock(&shared.state).tokens.get(token).is_some_and(|until| Instant::now() < *until);
    if !valid {
        lock(&shared.state).refused_tokens += 1;
        let details = if token.is_empty() {
            "The request has no x-amz-access-token header."
        } else {
            "The access token you provided is revoked, malformed or has expired."
        };
        let body = json!({"errors": [{"code": "Unauthorized",
            "message": "Access to requested resource is denied.", "details": details}]});
        let mut r = (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
        r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static("UnauthorizedException"));
        return Some(r);
    }
    let drawn = lock(&shared.state).draws.draw();
    match drawn {
        Fault::None => {}
        Fault::Slow(d) => tokio::time::sleep(d).await,
        Fault::Error => return Some(errors(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Try again.")),
        Fault::Throttle { retry_after_secs } => {
            let mut r = throttled(shared, operation);
            if let Some(s) = retry_after_secs {
                r.headers_mut().insert("retry-after", HeaderValue::from(s));
            }
            return Some(r);
        }
    }
    let mut s = lock(&shared.state);
    let took = s.buckets.get_mut(operation).is_none_or(Bucket::take);
    if !took {
        s.throttled += 1;
        drop(s);
        return Some(throttled(shared, operation));
    }
    None
}

fn rate_header(shared: &Shared, operation: &str) -> HeaderValue {
    let c = &shared.config;
    let plan = match operation {
        "patchListingsItem" => c.patch_plan,
        "createFeed" => c.feed_plan,
        "createFeedDocument" => c.document_plan,
        _ => c.search_plan,
    };
    HeaderValue::from_str(&format!("{}", plan.rate)).unwrap_or(HeaderValue::from_static("1"))
}

fn throttled(shared: &Shared, operation: &str) -> Response {
    let mut r =
        errors(StatusCode::TOO_MANY_REQUESTS, "QuotaExceeded", "You exceeded your quota for the requested resource.");
    r.headers_mut().insert("x-amzn-ratelimit-limit", rate_header(shared, operation));
    r
}

fn with_rate(shared: &Shared, operation: &str, mut r: Response) -> Response {
    r.headers_mut().insert("x-amzn-ratelimit-limit", rate_header(shared, operation));
    r.headers_mut().insert("x-amzn-requestid", HeaderValue::from_static("emulated"));
    r
}

async fn token(State(shared): State<Shared>, body: Bytes) -> Response {
    let form: HashMap<String, String> = pairs(&String::from_utf8_lossy(&body)).into_iter().collect();
    let c = &shared.config;
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let answer = if get("grant_type") != "refresh_token" {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type",
            "error_description": "The authorization grant type is not supported by the authorization server"})),
        )
            .into_response()
    } else if get("client_id") != c.client_id || get("client_secret") != c.client_secret {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client",
            "error_description": "Client authentication failed"})),
        )
            .into_response()
    } else if get("refresh_token") != c.refresh_token {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant",
            "error_description": "The request has an invalid grant parameter : refresh_token"})),
        )
            .into_response()
    } else {
        let mut s = lock(&shared.state);
        let token = format!("Atza|emulated-{}", s.next_id);
        s.next_id += 1;
        s.tokens.insert(token.clone(), Instant::now() + c.token_lifetime);
        axum::Json(json!({"access_token": token, "token_type": "bearer",
            "expires_in": c.token_lifetime.as_secs(), "refresh_token": c.refresh_token}))
        .into_response()
    };
    log(&shared, "POST", "/auth/o2/token", "", answer.status().as_u16(), None);
    answer
}

/// Checks one patch list (of `patchListingsItem` or a feed message): the quantity it sets.
fn check_patches(value: &Value) -> Result<Option<i64>, String> {
    let patches = value.as_array().ok_or("patches must be an array")?;
    if patches.is_empty() {
        return Err("patches must have at least 1 item".into());
    }
    let mut quantity = None;
    for p in patches {
        let o = p.as_object().ok_or("a patch must be an object")?;
        if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "op" | "path" | "value")) {
            return Err(format!("a patch has the unknown field {k}"));
        }
        let op = o.get("op").and_then(Value::as_str).ok_or("a patch needs op")?;
        if !matches!(op, "add" | "replace" | "merge" | "delete") {
            return Err(format!("op {op} is not one of add, replace, merge, delete"));
        }
        let path = o.get("path").and_then(Value::as_str).ok_or("a patch needs path")?;
        if path != "/attributes/fulfillment_availability" {
            continue;
        }
        let values = o.get("value").and_then(Value::as_array).ok_or("fulfillment_availability needs a value array")?;
        for v in values {
            let code = v
                .get("fulfillment_channel_code")
                .and_then(Value::as_str)
                .ok_or("fulfillment_channel_code is required")?;
            let q = v.get("quantity").and_then(Value::as_i64).ok_or("quantity must be an integer")?;
            if q < 0 {
                return Err("quantity must be at least 0".into());
            }
            if code == "DEFAULT" {
                quantity = Some(q);
            }
        }
    }
    Ok(quantity)
}

async fn patch_listing(
    State(shared): State<Shared>,
    Path((seller, sku)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let answer = patch_answer(&shared, &seller, &sku, &query, &headers, parsed.as_ref()).await;
    log(
        &shared,
        "PATCH",
        &format!("/listings/2021-08-01/items/{seller}/{sku}"),
        &query,
        answer.status().as_u16(),
        parsed,
    );
    answer
}

async fn patch_answer(
    shared: &Shared,
    seller: &str,
    sku: &str,
    query: &str,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Response {
    if let Some(r) = gate(shared, headers, "patchListingsItem").await {
        return r;
    }
    let op = "patchListingsItem";
    let bad = |m: &str| with_rate(shared, op, errors(StatusCode::BAD_REQUEST, "InvalidInput", m));
    let c = &shared.config;
    if seller != c.seller_id {
        return with_rate(shared, op, errors(StatusCode::FORBIDDEN, "Unauthorized", "The sellerId is not yours."));
    }
    let q = pairs(query);
    let markets: Vec<&str> = q.iter().filter(|(k, _)| k == "marketplaceIds").flat_map(|(_, v)| v.split(',')).collect();
    if markets.is_empty() {
        return bad("marketplaceIds is required.");
    }
    if markets.iter().any(|m| *m != c.marketplace_id) {
        return bad("marketplaceIds names a marketplace the seller does not sell in.");
    }
    let Some(body) = body.and_then(Value::as_object) else { return bad("The body must be a JSON object.") };
    if let Some(k) = body.keys().find(|k| !matches!(k.as_str(), "productType" | "patches")) {
        return bad(&format!("The body has the unknown field {k}."));
    }
    if !body.get("productType").is_some_and(Value::is_string) {
        return bad("productType is required.");
    }
    let quantity = match check_patches(body.get("patches").unwrap_or(&Value::Null)) {
        Ok(q) => q,
        Err(e) => return bad(&e),
    };
    let mut s = lock(&shared.state);
    let submission = format!("sub-{}", s.next_id);
    s.next_id += 1;
    let Some(listing) = s.listings.get_mut(sku) else {
        return with_rate(
            shared,
            op,
            axum::Json(json!({"sku": sku, "status": "INVALID", "submissionId": submission,
            "issues": [{"code": "4000001", "message": format!("The SKU {sku} does not exist in the catalog."),
                "severity": "ERROR"}]}))
            .into_response(),
        );
    };
    if let Some(q) = quantity {
        *listing = Some(q);
    }
    with_rate(
        shared,
        op,
        axum::Json(json!({"sku": sku, "status": "ACCEPTED", "submissionId": submission, "issues": []})).into_response(),
    )
}

async fn create_document(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let op = "createFeedDocument";
    let answer = match gate(&shared, &headers, op).await {
        Some(r) => r,
        None => match parsed.as_ref().and_then(|b| b.get("contentType")).and_then(Value::as_str) {
            None => with_rate(&shared, op, errors(StatusCode::BAD_REQUEST, "InvalidInput", "contentType is required.")),
            Some(_) => {
                let mut s = lock(&shared.state);
                let id = format!("amzn1.tortuga.emulated.{}", s.next_id);
                s.next_id += 1;
                s.documents.insert(id.clone(), None);
                let url = format!("http://{}/upload/{id}", shared.addr);
                with_rate(
                    &shared,
                    op,
                    (StatusCode::CREATED, axum::Json(json!({"feedDocumentId": id, "url": url}))).into_response(),
                )
            }
        },
    };
    log(&shared, "POST", "/feeds/2021-06-30/documents", "", answer.status().as_u16(), parsed);
    answer
}

async fn upload(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let status = {
        let mut s = lock(&shared.state);
        match s.documents.get_mut(&id) {
            Some(doc) => {
                *doc = Some(body.to_vec());
                StatusCode::OK
            }
            None => StatusCode::FORBIDDEN,
        }
    };
    log(&shared, "PUT", &format!("/upload/{id}"), "", status.as_u16(), None);
    status.into_response()
}

async fn create_feed(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let answer = match gate(&shared, &headers, "createFeed").await {
        Some(r) => r,
        None => with_rate(&shared, "createFeed", create_feed_answer(&shared, parsed.as_ref())),
    };
    log(&shared, "POST", "/feeds/2021-06-30/feeds", "", answer.status().as_u16(), parsed);
    answer
}

fn create_feed_answer(shared: &Shared, body: Option<&Value>) -> Response {
    let bad = |m: &str| errors(StatusCode::BAD_REQUEST, "InvalidInput", m);
    let Some(spec) = body.and_then(Value::as_object) else { return bad("The body must be a JSON object.") };
    if let Some(k) = spec
        .keys()
        .find(|k| !matches!(k.as_str(), "feedType" | "marketplaceIds" | "inputFeedDocumentId" | "feedOptions"))
    {
        return bad(&format!("The body has the unknown field {k}."));
    }
    let Some(feed_type) = spec.get("feedType").and_then(Value::as_str) else { return bad("feedType is required.") };
    let markets = spec.get("marketplaceIds").and_then(Value::as_array);
    let Some(markets) = markets.filter(|m| (1..=25).contains(&m.len())) else {
        return bad("marketplaceIds must list 1 to 25 marketplaces.");
    };
    if markets.iter().any(|m| m.as_str() != Some(shared.config.marketplace_id.as_str())) {
        return bad("marketplaceIds names a marketplace the seller does not sell in.");
    }
    let Some(doc) = spec.get("inputFeedDocumentId").and_then(Value::as_str) else {
        return bad("inputFeedDocumentId is required.");
    };
    let mut s = lock(&shared.state);
    let content = match s.documents.get(doc) {
        None => return bad("inputFeedDocumentId names no document."),
        Some(None) => return bad("The feed document was never uploaded."),
        Some(Some(c)) => c.clone(),
    };
    let feed_id = format!("{}", 50_000 + s.next_id);
    s.next_id += 1;
    let (status, messages, errs, updates) = if feed_type != "JSON_LISTINGS_FEED" {
        ("FATAL", 0, vec![format!("feed type {feed_type} is not emulated")], vec![])
    } else {
        process_feed(&shared.config, &content)
    };
    for (sku, q) in updates {
        if let Some(listing) = s.listings.get_mut(&sku) {
            *listing = Some(q);
        }
    }
    s.feeds.push(Feed { feed_id: feed_id.clone(), processing_status: status.into(), messages, errors: errs });
    (StatusCode::ACCEPTED, axum::Json(json!({"feedId": feed_id}))).into_response()
}

/// A listings feed: its status, message count, errors and the quantities it sets.
fn process_feed(config: &AmazonConfig, content: &[u8]) -> (&'static str, usize, Vec<String>, Vec<(String, i64)>) {
    let fatal = |e: String| ("FATAL", 0, vec![e], vec![]);
    let Ok(doc) = serde_json::from_slice::<Value>(content) else { return fatal("the document is not JSON".into()) };
    let header = &doc["header"];
    if header["sellerId"].as_str() != Some(config.seller_id.as_str()) || header["version"].as_str() != Some("2.0") {
        return fatal("header.sellerId must be the seller and header.version 2.0".into());
    }
    let Some(messages) = doc["messages"].as_array() else { return fatal("messages is required".into()) };
    if messages.is_empty() || messages.len() > FEED_MESSAGES_MAX {
        return fatal(format!("messages must hold 1 to {FEED_MESSAGES_MAX} items"));
    }
    let (mut errs, mut updates) = (Vec::new(), Vec::new());
    for m in messages {
        let id = m["messageId"].as_i64();
        let sku = m["sku"].as_str();
        let checked = match (id, sku, m["operationType"].as_str(), m["productType"].as_str()) {
            (Some(_), Some(_), Some("PATCH"), Some(_)) => check_patches(&m["patches"]),
            _ => Err("a PATCH message needs messageId, sku, operationType and productType".into()),
        };
        match checked {
            Ok(Some(q)) => updates.push((sku.unwrap_or_default().to_string(), q)),
            Ok(None) => {}
            Err(e) => errs.push(format!("message {}: {e}", id.unwrap_or(0))),
        }
    }
    ("DONE", messages.len(), errs, updates)
}

async fn search_orders(State(shared): State<Shared>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let query = query.unwrap_or_default();
    let answer = match gate(&shared, &headers, "searchOrders").await {
        Some(r) => r,
        None => with_rate(&shared, "searchOrders", search_answer(&shared, &query)),
    };
    log(&shared, "GET", "/orders/2026-01-01/orders", &query, answer.status().as_u16(), None);
    answer
}

fn search_answer(shared: &Shared, query: &str) -> Response {
    let bad = |m: &str| errors(StatusCode::BAD_REQUEST, "InvalidInput", m);
    let q = pairs(query);
    let known = [
        "createdAfter",
        "createdBefore",
        "lastUpdatedAfter",
        "lastUpdatedBefore",
        "fulfillmentStatuses",
        "marketplaceIds",
        "fulfilledBy",
        "maxResultsPerPage",
        "paginationToken",
        "includedData",
    ];
    if let Some((k, _)) = q.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return bad(&format!("{k} is not a parameter of searchOrders."));
    }
    let one = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let markets: Vec<String> =
        q.iter().filter(|(k, _)| k == "marketplaceIds").flat_map(|(_, v)| v.split(',').map(str::to_string)).collect();
    if markets.is_empty() || markets.iter().any(|m| *m != shared.config.marketplace_id) {
        return bad("marketplaceIds must name the seller's marketplaces.");
    }
    for (k, v) in q.iter().filter(|(k, _)| k == "includedData") {
        for d in v.split(',') {
            if !matches!(
                d,
                "BUYER"
                    | "RECIPIENT"
                    | "PROCEEDS"
                    | "EXPENSE"
                    | "PROMOTION"
                    | "CANCELLATION"
                    | "FULFILLMENT"
                    | "PACKAGES"
            ) {
                return bad(&format!("{k} value {d} is not a dataset."));
            }
        }
    }
    let (created, updated) = (one("createdAfter"), one("lastUpdatedAfter"));
    let after = match (&created, &updated) {
        (Some(_), Some(_)) | (None, None) => {
            return bad("Exactly one of createdAfter and lastUpdatedAfter is required.")
        }
        (None, Some(t)) => t,
        (Some(t), None) => t,
    };
    let Some(after) = seconds(after) else { return bad("The date must be in ISO 8601 format.") };
    let per_page = match one("maxResultsPerPage").map(|v| v.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => return bad("maxResultsPerPage must be between 1 and 100."),
    };
    let per_page = per_page.min(shared.config.page_max.max(1));
    let filters: String = q
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "paginationToken" | "maxResultsPerPage" | "includedData"))
        .map(|(k, v)| format!("{k}={v}&"))
        .collect();
    let mut s = lock(&shared.state);
    let start = match one("paginationToken") {
        None => 0,
        Some(t) => match s.pages.get(&t) {
            Some((f, offset)) if *f == filters => *offset,
            Some(_) => return bad("The paginationToken was issued for other parameters."),
            None => return bad("The paginationToken is invalid or expired."),
        },
    };
    let mut found: Vec<&Order> = s
        .orders
        .values()
        .filter(|o| {
            let at = if created.is_some() {
                seconds(o.json["createdTime"].as_str().unwrap_or("")).unwrap_or(0)
            } else {
                o.updated
            };
            at >= after
        })
        .collect();
    found.sort_by(|a, b| (a.updated, a.json["orderId"].as_str()).cmp(&(b.updated, b.json["orderId"].as_str())));
    let page: Vec<Value> = found.iter().skip(start).take(per_page).map(|o| o.json.clone()).collect();
    let more = found.len() > start + per_page;
    let mut answer = json!({"orders": page});
    if more {
        let token = format!("page-{}", s.next_id);
        s.next_id += 1;
        s.pages.insert(token.clone(), (filters, start + per_page));
        answer["pagination"] = json!({"nextToken": token});
    }
    axum::Json(answer).into_response()
}
