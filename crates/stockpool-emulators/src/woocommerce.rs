//! An emulated WooCommerce site: the parts of REST `wc/v3` stockpool calls, and the
//! webhooks the site sends.
//!
//! Calls taken (shapes from `fixtures/channels/woocommerce/`, limits from
//! `research/channels.md` section 2):
//! - `POST /wp-json/wc/v3/products/batch` and
//!   `POST /wp-json/wc/v3/products/{product_id}/variations/batch` with
//!   `{"update": [{"id", "manage_stock", "stock_quantity", "backorders"}]}`. More than
//!   `batch_max` objects (create, update and delete together; WooCommerce's default 100) is
//!   413 `woocommerce_rest_request_entity_too_large`, as `check_batch_limit` answers. An
//!   unknown id is an error in that object's place (`{"id", "error": {"code", "message",
//!   "data": {"status": 400}}}`), the others are applied; an unknown parent is 404.
//!   `backorders` other than `no`, `notify`, `yes` is that object's 400 `rest_invalid_param`.
//!   `create` and `delete` are refused (400): stockpool never sends them.
//! - `GET /wp-json/wc/v3/products` and `GET /wp-json/wc/v3/products/{id}/variations` with
//!   `include` (ids, comma separated), `per_page` (default 10, above 100 400
//!   `rest_invalid_param` as WordPress validates it), `page`, and `_fields`; headers
//!   `X-WP-Total` and `X-WP-TotalPages`.
//! - Every call needs HTTP Basic with the site's consumer key and secret; otherwise 401
//!   `woocommerce_rest_cannot_view` (reads) or `woocommerce_rest_cannot_edit` (batches).
//!
//! Faults (`faults.rs`) are drawn per authenticated call: 429 with `Retry-After`, 503, or
//! a slow answer. Every call is in the `calls` log with how many objects it carried, its
//! answer, and how many calls were out at once when it came (`max_in_flight`).
//!
//! Webhooks go the other way: [`WooSite::webhook`] builds a delivery signed as WooCommerce
//! signs it (`X-WC-Webhook-Signature`: base64 HMAC-SHA256 of the body with the webhook
//! secret) with the `X-WC-Webhook-*` headers, [`WooSite::post`] sends it, and
//! [`WooSite::send_ping`] sends the unsigned `webhook_id=N` ping. The site posts with a
//! raw HTTP/1.1 POST shared by the emulators (`post.rs`: they have no HTTP client library).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::faults::{Fault, FaultDraws, Faults};

/// WooCommerce's default batch limit (`woocommerce_rest_batch_items_limit`).
pub const BATCH_MAX: usize = 100;

/// WordPress's largest `per_page`.
pub const PER_PAGE_MAX: usize = 100;

/// Most calls the site remembers; older ones are forgotten first.
pub const LOG_MAX: usize = 100_000;

/// Longest a webhook post may take before the site gives up.
pub use crate::post::POST_TIMEOUT;

/// The webhook id the site's webhooks carry (`X-WC-Webhook-ID`, the ping's `webhook_id`).
pub const WEBHOOK_ID: u64 = 1;

/// The order the site's webhooks are shaped after: WooCommerce's documented order.
const ORDER_SAMPLE: &str =
    include_str!("../../../fixtures/channels/woocommerce/order.created.webhook-body.from-create-order-response.json");

/// What a site is: its keys, its webhook secret and how it misbehaves.
#[derive(Clone, Debug)]
pub struct WooConfig {
    pub consumer_key: String,
    pub consumer_secret: String,
    /// Signs the webhooks the site sends.
    pub webhook_secret: String,
    pub faults: Faults,
    /// Most objects a batch call may carry.
    pub batch_max: usize,
}

impl WooConfig {
    /// A well-behaved site with WooCommerce's default batch limit.
    pub fn new(consumer_key: &str, consumer_secret: &str, webhook_secret: &str) -> WooConfig {
        WooConfig {
            consumer_key: consumer_key.into(),
            consumer_secret: consumer_secret.into(),
            webhook_secret: webhook_secret.into(),
            faults: Faults::default(),
            batch_max: BATCH_MAX,
        }
    }
}

/// A product's or variation's stock fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stock {
    pub manage_stock: bool,
    pub stock_quantity: Option<i64>,
    /// `no`, `notify` or `yes`.
    pub backorders: String,
}

impl Stock {
    /// Stock managed at `quantity`, no backorders.
    pub fn managed(quantity: i64) -> Stock {
        Stock { manage_stock: true, stock_quantity: Some(quantity), backorders: "no".into() }
    }

    /// A new product's stock in WooCommerce: not managed.
    pub fn unmanaged() -> Stock {
        Stock { manage_stock: false, stock_quantity: None, backorders: "no".into() }
    }
}

#[derive(Clone, Debug)]
struct Object {
    sku: String,
    stock: Stock,
}

#[derive(Clone, Debug)]
struct Product {
    object: Object,
    variations: BTreeMap<u64, Object>,
}

/// One call the site got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub at: Instant,
    pub method: &'static str,
    pub path: String,
    /// Objects a batch carried, or ids a read asked for.
    pub items: usize,
    /// What the site answered.
    pub status: u16,
    /// Calls out at once when this one came (itself included).
    pub in_flight: usize,
}

#[derive(Debug)]
struct SiteState {
    products: BTreeMap<u64, Product>,
    calls: VecDeque<Call>,
    dropped_from_log: u64,
    in_flight: usize,
    max_in_flight: usize,
    draws: FaultDraws,
    next_delivery: u64,
}

#[derive(Clone)]
struct Shared {
    config: Arc<WooConfig>,
    state: Arc<Mutex<SiteState>>,
    addr: SocketAddr,
}

/// A running site; stops when dropped or at `stop`.
pub struct WooSite {
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for WooSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WooSite").field("addr", &self.shared.addr).finish()
    }
}

/// A webhook delivery as the site sends it: the topic, the body, and the headers' values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub topic: String,
    pub body: Vec<u8>,
    pub delivery_id: String,
    /// `X-WC-Webhook-Signature`; tests change it to forge one.
    pub signature: String,
}

/// A batch call's body.
#[derive(Deserialize)]
struct BatchBody {
    #[serde(default)]
    create: Vec<Value>,
    #[serde(default)]
    update: Vec<Value>,
    #[serde(default)]
    delete: Vec<Value>,
}

/// One object of a batch update (the stock fields; others are ignored, as prices would be
/// taken by the real site).
#[derive(Deserialize)]
struct UpdateIn {
    id: u64,
    #[serde(default)]
    manage_stock: Option<bool>,
    #[serde(default)]
    stock_quantity: Option<i64>,
    #[serde(default)]
    backorders: Option<String>,
}

/// A list call's query.
#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    include: Option<String>,
    #[serde(default)]
    per_page: Option<String>,
    #[serde(default)]
    page: Option<String>,
    #[serde(default)]
    _fields: Option<String>,
}

impl WooSite {
    /// Starts a site on `127.0.0.1:0`.
    pub async fn start(config: WooConfig) -> std::io::Result<WooSite> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            state: Arc::new(Mutex::new(SiteState {
                products: BTreeMap::new(),
                calls: VecDeque::new(),
                dropped_from_log: 0,
                in_flight: 0,
                max_in_flight: 0,
                draws: FaultDraws::new(config.faults),
                next_delivery: 1,
            })),
            config: Arc::new(config),
            addr,
        };
        use axum::routing::{get, post};
        let app = axum::Router::new()
            .route("/wp-json/wc/v3/products/batch", post(products_batch))
            .route("/wp-json/wc/v3/products/{id}/variations/batch", post(variations_batch))
            .route("/wp-json/wc/v3/products", get(list_products))
            .route("/wp-json/wc/v3/products/{id}/variations", get(list_variations))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                eprintln!("the emulated WooCommerce site stopped: {e}");
            }
        });
        Ok(WooSite { shared, stop: Some(stop), task: Some(task) })
    }

    /// The site's address, the store's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    fn state(&self) -> MutexGuard<'_, SiteState> {
        lock(&self.shared.state)
    }

    /// Adds (or replaces) simple product `id`.
    pub fn seed_product(&self, id: u64, sku: &str, stock: Stock) {
        let object = Object { sku: sku.into(), stock };
        self.state().products.insert(id, Product { object, variations: BTreeMap::new() });
    }

    /// Adds (or replaces) variation `variation` of product `product`, adding the (variable)
    /// product if it is not there, its own stock unmanaged.
    pub fn seed_variation(&self, product: u64, variation: u64, sku: &str, stock: Stock) {
        let mut state = self.state();
        let p = state.products.entry(product).or_insert_with(|| Product {
            object: Object { sku: String::new(), stock: Stock::unmanaged() },
            variations: BTreeMap::new(),
        });
        p.variations.insert(variation, Object { sku: sku.into(), stock });
    }

    /// The stock of `external_id` (`93` or `22/23`), `None` when the site has no such object.
    pub fn stock(&self, external_id: &str) -> Option<Stock> {
        let state = self.state();
        let (p, v) = split_id(external_id)?;
        let product = state.products.get(&p)?;
        match v {
            None => Some(product.object.stock.clone()),
            Some(v) => product.variations.get(&v).map(|o| o.stock.clone()),
        }
    }

    /// The stock quantity of `external_id` when the site manages its stock.
    pub fn quantity(&self, external_id: &str) -> Option<i64> {
        self.stock(external_id).filter(|s| s.manage_stock).and_then(|s| s.stock_quantity)
    }

    /// Changes `external_id`'s quantity behind stockpool's back (an edit in wp-admin, a
    /// sale stockpool did not hear of): drift. `false` when there is no such object.
    pub fn set_quantity(&self, external_id: &str, quantity: i64) -> bool {
        let mut state = self.state();
        let Some((p, v)) = split_id(external_id) else { return false };
        let Some(product) = state.products.get_mut(&p) else { return false };
        let object = match v {
            None => Some(&mut product.object),
            Some(v) => product.variations.get_mut(&v),
        };
        match object {
            Some(o) => {
                o.stock.manage_stock = true;
                o.stock.stock_quantity = Some(quantity);
                true
            }
            None => false,
        }
    }

    /// Every call still remembered, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.iter().cloned().collect()
    }

    /// How many calls fell out of the log.
    pub fn dropped_from_log(&self) -> u64 {
        self.state().dropped_from_log
    }

    /// The most objects one batch call carried (of those remembered), refused ones included.
    pub fn max_items_per_call(&self) -> usize {
        self.state().calls.iter().filter(|c| c.method == "POST").map(|c| c.items).max().unwrap_or(0)
    }

    /// The most calls the site had out at once.
    pub fn max_in_flight(&self) -> usize {
        self.state().max_in_flight
    }

    /// A webhook of `topic` (`order.created`, ...) carrying `resource` (an order, see
    /// [`order_body`]), signed with the webhook secret, with a delivery id of its own.
    pub fn webhook(&self, topic: &str, resource: &Value) -> Delivery {
        let body = serde_json::to_vec(resource).expect("a JSON value serialises");
        let signature = signature(&self.shared.config.webhook_secret, &body);
        let n = {
            let mut state = self.state();
            state.next_delivery += 1;
            state.next_delivery
        };
        Delivery { topic: topic.into(), body, delivery_id: format!("wc-delivery-{n}"), signature }
    }

    /// Posts `delivery` to `url` with the headers WooCommerce sends; the status answered.
    pub async fn post(&self, url: &str, delivery: &Delivery) -> std::io::Result<u16> {
        let (resource, event) = delivery.topic.split_once('.').unwrap_or((delivery.topic.as_str(), ""));
        let headers = [
            ("Content-Type", "application/json".to_string()),
            ("User-Agent", "WooCommerce/9.0.0 Hookshot (WordPress/6.5.0)".to_string()),
            ("X-WC-Webhook-Source", format!("{}/", self.base_url())),
            ("X-WC-Webhook-Topic", delivery.topic.clone()),
            ("X-WC-Webhook-Resource", resource.to_string()),
            ("X-WC-Webhook-Event", event.to_string()),
            ("X-WC-Webhook-Signature", delivery.signature.clone()),
            ("X-WC-Webhook-ID", WEBHOOK_ID.to_string()),
            ("X-WC-Webhook-Delivery-ID", delivery.delivery_id.clone()),
        ];
        crate::post::post(url, &headers, &delivery.body).await
    }

    /// [`WooSite::webhook`] then [`WooSite::post`].
    pub async fn send_webhook(&self, url: &str, topic: &str, resource: &Value) -> std::io::Result<u16> {
        let delivery = self.webhook(topic, resource);
        self.post(url, &delivery).await
    }

    /// The ping WooCommerce sends when a webhook is created: the form body
    /// `webhook_id=N`, unsigned. It expects 200.
    pub async fn send_ping(&self, url: &str) -> std::io::Result<u16> {
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded".to_string()),
            ("User-Agent", "WooCommerce/9.0.0 Hookshot (WordPress/6.5.0)".to_string()),
        ];
        crate::post::post(url, &headers, format!("webhook_id={WEBHOOK_ID}").as_bytes()).await
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

impl Drop for WooSite {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An order in WooCommerce's shape (the documented order, `fixtures/.../order.created...`)
/// with `id`, `status` and `line_items` replaced: each line `(product_id, variation_id,
/// sku, quantity)`, `variation_id` 0 for a simple product.
pub fn order_body(id: u64, status: &str, lines: &[(u64, u64, &str, i64)]) -> Value {
    let mut order: Value = serde_json::from_str(ORDER_SAMPLE).expect("the order sample is JSON");
    let template = order["line_items"][0].clone();
    let items: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(n, (product, variation, sku, quantity))| {
            let mut line = template.clone();
            line["id"] = json!(1000 + n as u64);
            line["product_id"] = json!(product);
            line["variation_id"] = json!(variation);
            line["sku"] = json!(sku);
            line["quantity"] = json!(quantity);
            line
        })
        .collect();
    order["id"] = json!(id);
    order["number"] = json!(id.to_string());
    order["status"] = json!(status);
    order["line_items"] = Value::Array(items);
    order
}

/// `93` or `22/23` as (product, variation).
fn split_id(external_id: &str) -> Option<(u64, Option<u64>)> {
    match external_id.split_once('/') {
        None => Some((external_id.parse().ok()?, None)),
        Some((p, v)) => Some((p.parse().ok()?, Some(v.parse().ok()?))),
    }
}

/// A poisoned lock only means a test thread panicked while holding it.
fn lock(state: &Mutex<SiteState>) -> MutexGuard<'_, SiteState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// base64 HMAC-SHA256 of `body` with `secret`, as WooCommerce's `generate_signature`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// WooCommerce's error object.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"code": code, "message": message, "data": {"status": status.as_u16()}}))).into_response()
}

/// Whether the call carries the site's keys as HTTP Basic.
fn authorized(site: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else { return false };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    let expected = format!("{}:{}", site.config.consumer_key, site.config.consumer_secret);
    // Not constant time: the emulator guards no secret worth timing.
    decoded == expected.as_bytes()
}

/// Counts a call in flight while it is answered.
struct InFlight(Arc<Mutex<SiteState>>);

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

/// The fault for an authenticated call: `Some(answer)` to answer instead, after any delay.
async fn fault(site: &Shared) -> Option<Response> {
    let drawn = lock(&site.state).draws.draw();
    match drawn {
        Fault::None => None,
        Fault::Slow(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Fault::Error => Some(error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "Service Unavailable")),
        Fault::Throttle { retry_after_secs } => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "Too Many Requests");
            if let Some(s) = retry_after_secs {
                if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                    r.headers_mut().insert("retry-after", v);
                }
            }
            Some(r)
        }
    }
}

/// A product or variation as the API shows it (the fields stockpool reads, and a few
/// more of the documented ones).
fn object_json(id: u64, parent_id: u64, o: &Object) -> Value {
    let in_stock = !o.stock.manage_stock || o.stock.stock_quantity.unwrap_or(0) > 0;
    let status = match (in_stock, o.stock.backorders.as_str()) {
        (true, _) => "instock",
        (false, "no") => "outofstock",
        (false, _) => "onbackorder",
    };
    json!({
        "id": id,
        "parent_id": parent_id,
        "sku": o.sku,
        "manage_stock": o.stock.manage_stock,
        "stock_quantity": o.stock.stock_quantity,
        "stock_status": status,
        "backorders": o.stock.backorders,
        "backorders_allowed": o.stock.backorders != "no",
        "backordered": false,
    })
}

async fn products_batch(State(site): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    batch(site, None, headers, body).await
}

async fn variations_batch(
    State(site): State<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    batch(site, Some(id), headers, body).await
}

async fn batch(site: Shared, parent: Option<u64>, headers: HeaderMap, body: Bytes) -> Response {
    let at = Instant::now();
    let (_guard, in_flight) = InFlight::enter(&site);
    let path = match parent {
        None => "/wp-json/wc/v3/products/batch".to_string(),
        Some(p) => format!("/wp-json/wc/v3/products/{p}/variations/batch"),
    };
    let parsed = serde_json::from_slice::<BatchBody>(&body);
    let items = parsed.as_ref().map_or(0, |b| b.create.len() + b.update.len() + b.delete.len());
    let response = batch_answer(&site, parent, &headers, parsed).await;
    log(&site, Call { at, method: "POST", path, items, status: response.status().as_u16(), in_flight });
    response
}

async fn batch_answer(
    site: &Shared,
    parent: Option<u64>,
    headers: &HeaderMap,
    parsed: Result<BatchBody, serde_json::Error>,
) -> Response {
    if !authorized(site, headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "woocommerce_rest_cannot_edit",
            "Sorry, you are not allowed to edit this resource.",
        );
    }
    if let Some(answer) = fault(site).await {
        return answer;
    }
    let Ok(body) = parsed else {
        return error(StatusCode::BAD_REQUEST, "rest_invalid_json", "Invalid JSON body passed.");
    };
    let total = body.create.len() + body.update.len() + body.delete.len();
    if total > site.config.batch_max {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "woocommerce_rest_request_entity_too_large",
            &format!("Unable to accept more than {} items for this request.", site.config.batch_max),
        );
    }
    if !body.create.is_empty() || !body.delete.is_empty() {
        return error(StatusCode::BAD_REQUEST, "emulator_not_emulated", "This emulator takes batch updates only.");
    }
    let mut state = lock(&site.state);
    if let Some(p) = parent {
        if !state.products.contains_key(&p) {
            return error(StatusCode::NOT_FOUND, "woocommerce_rest_product_invalid_id", "Invalid ID.");
        }
    }
    let mut answered = Vec::with_capacity(body.update.len());
    for raw in body.update {
        let id_of = raw.get("id").and_then(Value::as_u64).unwrap_or(0);
        let item_error = |code: &str, message: &str| json!({"id": id_of, "error": {"code": code, "message": message, "data": {"status": 400}}});
        let Ok(update) = serde_json::from_value::<UpdateIn>(raw) else {
            answered.push(item_error("rest_invalid_param", "Invalid parameter(s): id, stock_quantity"));
            continue;
        };
        if update.backorders.as_deref().is_some_and(|b| !["no", "notify", "yes"].contains(&b)) {
            answered.push(item_error("rest_invalid_param", "Invalid parameter(s): backorders"));
            continue;
        }
        let (object, parent_id) = match parent {
            None => (state.products.get_mut(&update.id).map(|p| &mut p.object), 0),
            Some(p) => (state.products.get_mut(&p).and_then(|p| p.variations.get_mut(&update.id)), p),
        };
        let Some(object) = object else {
            let code = if parent.is_some() {
                "woocommerce_rest_product_variation_invalid_id"
            } else {
                "woocommerce_rest_product_invalid_id"
            };
            answered.push(item_error(code, "Invalid ID."));
            continue;
        };
        if let Some(m) = update.manage_stock {
            object.stock.manage_stock = m;
        }
        if let Some(q) = update.stock_quantity {
            object.stock.stock_quantity = Some(q);
        }
        if let Some(b) = update.backorders {
            object.stock.backorders = b;
        }
        answered.push(object_json(update.id, parent_id, object));
    }
    axum::Json(json!({"update": answered})).into_response()
}

async fn list_products(State(site): State<Shared>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    list(site, None, headers, q).await
}

async fn list_variations(
    State(site): State<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    list(site, Some(id), headers, q).await
}

async fn list(site: Shared, parent: Option<u64>, headers: HeaderMap, q: ListQuery) -> Response {
    let at = Instant::now();
    let (_guard, in_flight) = InFlight::enter(&site);
    let path = match parent {
        None => "/wp-json/wc/v3/products".to_string(),
        Some(p) => format!("/wp-json/wc/v3/products/{p}/variations"),
    };
    let include: Option<Vec<Option<u64>>> =
        q.include.as_deref().map(|s| s.split(',').filter(|x| !x.is_empty()).map(|x| x.trim().parse().ok()).collect());
    let items = include.as_ref().map_or(0, Vec::len);
    let response = list_answer(&site, parent, &headers, &q, include).await;
    log(&site, Call { at, method: "GET", path, items, status: response.status().as_u16(), in_flight });
    response
}

async fn list_answer(
    site: &Shared,
    parent: Option<u64>,
    headers: &HeaderMap,
    q: &ListQuery,
    include: Option<Vec<Option<u64>>>,
) -> Response {
    if !authorized(site, headers) {
        return error(StatusCode::UNAUTHORIZED, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.");
    }
    if let Some(answer) = fault(site).await {
        return answer;
    }
    let number = |s: &Option<String>, default: usize| match s {
        None => Some(default),
        Some(s) => s.trim().parse::<usize>().ok(),
    };
    let per_page = number(&q.per_page, 10).filter(|n| (1..=PER_PAGE_MAX).contains(n));
    let Some(per_page) = per_page else {
        return error(StatusCode::BAD_REQUEST, "rest_invalid_param", "Invalid parameter(s): per_page");
    };
    let Some(page) = number(&q.page, 1).filter(|n| *n >= 1) else {
        return error(StatusCode::BAD_REQUEST, "rest_invalid_param", "Invalid parameter(s): page");
    };
    let include: Option<Vec<u64>> = match include {
        None => None,
        Some(ids) => match ids.into_iter().collect::<Option<Vec<u64>>>() {
            Some(ids) => Some(ids),
            None => return error(StatusCode::BAD_REQUEST, "rest_invalid_param", "Invalid parameter(s): include"),
        },
    };
    let state = lock(&site.state);
    let all: Vec<Value> = match parent {
        None => state.products.iter().map(|(id, p)| object_json(*id, 0, &p.object)).collect(),
        Some(p) => match state.products.get(&p) {
            Some(product) => product.variations.iter().map(|(id, o)| object_json(*id, p, o)).collect(),
            None => return error(StatusCode::NOT_FOUND, "woocommerce_rest_product_invalid_id", "Invalid ID."),
        },
    };
    drop(state);
    let chosen: Vec<Value> = all
        .into_iter()
        .filter(|o| include.as_ref().is_none_or(|ids| o["id"].as_u64().is_some_and(|id| ids.contains(&id))))
        .collect();
    let total = chosen.len();
    let pages = total.div_ceil(per_page).max(1);
    let fields: Option<Vec<&str>> = q._fields.as_deref().map(|f| f.split(',').map(str::trim).collect());
    let shown: Vec<Value> = chosen
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|mut o| {
            if let (Some(fields), Some(map)) = (&fields, o.as_object_mut()) {
                map.retain(|k, _| fields.contains(&k.as_str()));
            }
            o
        })
        .collect();
    let mut response = axum::Json(shown).into_response();
    for (name, value) in [("x-wp-total", total), ("x-wp-totalpages", pages)] {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}
