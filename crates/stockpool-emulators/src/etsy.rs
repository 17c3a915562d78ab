//! An emulated Etsy shop (Open API v3, the calls the `etsy` connector makes), on
//! `127.0.0.1:0`.
//!
//! - `POST /v3/public/oauth/token` (form `grant_type=refresh_token`, `client_id`,
//!   `refresh_token`): a new access token and a new refresh token; the old refresh token
//!   stops working (Etsy rotates them).
//! - `GET` and `PUT /v3/application/listings/{listing_id}/inventory`: the GET answers money
//!   objects; the PUT takes only `updateListingInventory`'s fields (unknown fields, money
//!   objects for prices, quantities above 999 and an inventory whose every offering is 0
//!   are refused with 400) and replaces the whole inventory (a product left out is gone).
//! - `PATCH /v3/application/shops/{shop_id}/listings/{listing_id}` with `state`.
//! - `GET /v3/application/shops/{shop_id}/receipts` with `min_last_modified`, `limit`
//!   (1 to 100), `offset`, `sort_on`, `sort_order`.
//!
//! Every API call needs `x-api-key` (the keystring, or `keystring:shared_secret`) and a
//! live `Authorization: Bearer` token (else 401 `invalid_token`); every answer carries
//! `x-limit-per-second`, `x-remaining-this-second`, `x-limit-per-day`, `x-remaining-today`,
//! and a call over the second's limit gets 429. Seeded faults come from `faults.rs`. The
//! shop's clock (`update_timestamp`s) is the test's: `set_time`.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::faults::{Fault, FaultDraws, Faults};

/// Most an offering's quantity may be.
pub const QUANTITY_MAX: i64 = 999;
/// Most receipts a page shows.
pub const LIMIT_MAX: usize = 100;
/// Calls kept in the log.
pub const LOG_MAX: usize = 100_000;

#[derive(Clone, Debug)]
pub struct EtsyConfig {
    pub keystring: String,
    pub shop_id: u64,
    /// The refresh token the shop was connected with.
    pub refresh_token: String,
    /// An access token already handed out (a store's credentials hold one), if any.
    pub access_token: Option<String>,
    pub token_lifetime: Duration,
    pub limit_per_second: u64,
    pub limit_per_day: u64,
    pub faults: Faults,
}

impl EtsyConfig {
    pub fn new(keystring: &str, shop_id: u64, refresh_token: &str) -> EtsyConfig {
        EtsyConfig {
            keystring: keystring.into(),
            shop_id,
            refresh_token: refresh_token.into(),
            access_token: None,
            token_lifetime: Duration::from_secs(3600),
            limit_per_second: 10,
            limit_per_day: 10_000,
            faults: Faults::default(),
        }
    }
}

/// One product of a listing, as the tests see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    pub product_id: u64,
    pub sku: String,
    /// `property_values` as the PUT sent them.
    pub property_values: Value,
    /// `(price, quantity, is_enabled)` of each offering.
    pub offerings: Vec<(f64, i64, bool)>,
}

#[derive(Clone, Debug)]
struct Listing {
    state: String,
    products: Vec<Product>,
    on_property: [Value; 3],
}

/// One call the shop got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: String,
}

#[derive(Debug)]
struct ShopState {
    listings: BTreeMap<u64, Listing>,
    receipts: BTreeMap<u64, Value>,
    access: BTreeMap<String, Instant>,
    refresh: String,
    next_id: u64,
    now_secs: i64,
    second: (Instant, u64),
    day_used: u64,
    calls: VecDeque<Call>,
    draws: FaultDraws,
}

#[derive(Clone)]
struct Shared {
    config: Arc<EtsyConfig>,
    state: Arc<Mutex<ShopState>>,
}

/// A running shop; stops when dropped.
pub struct EtsyShop {
    shared: Shared,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for EtsyShop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtsyShop").field("addr", &self.addr).finish()
    }
}

impl Drop for EtsyShop {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl EtsyShop {
    pub async fn start(config: EtsyConfig) -> std::io::Result<EtsyShop> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut access = BTreeMap::new();
        if let Some(t) = &config.access_token {
            access.insert(t.clone(), Instant::now() + config.token_lifetime);
        }
        let shared = Shared {
            state: Arc::new(Mutex::new(ShopState {
                listings: BTreeMap::new(),
                receipts: BTreeMap::new(),
                access,
                refresh: config.refresh_token.clone(),
                next_id: 1000,
                now_secs: 1_764_590_400,
                second: (Instant::now(), 0),
                day_used: 0,
                calls: VecDeque::new(),
                draws: FaultDraws::new(config.faults),
            })),
            config: Arc::new(config),
        };
        use axum::routing::{get, patch, post};
        let app = axum::Router::new()
            .route("/v3/public/oauth/token", post(token))
            .route("/v3/application/listings/{listing}/inventory", get(get_inventory).put(put_inventory))
            .route("/v3/application/shops/{shop}/listings/{listing}", patch(patch_listing))
            .route("/v3/application/shops/{shop}/receipts", get(receipts))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(EtsyShop { shared, addr, stop: Some(stop) })
    }

    /// `http://127.0.0.1:port`, the store's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, ShopState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an active listing with one product per `(product_id, sku, quantity)`, each with
    /// one offering at 12.50, varying on property 200 (none for a single product).
    pub fn add_listing(&self, listing_id: u64, products: &[(u64, &str, i64)]) {
        let varies = products.len() > 1;
        let products = products
            .iter()
            .enumerate()
            .map(|(i, (id, sku, q))| Product {
                product_id: *id,
                sku: sku.to_string(),
                property_values: if varies {
                    json!([{"property_id": 200, "property_name": "Color", "scale_id": null,
                            "value_ids": [i as u64 + 1], "values": [format!("Colour {i}")]}])
                } else {
                    json!([])
                },
                offerings: vec![(12.5, *q, true)],
            })
            .collect();
        let on = if varies { json!([200]) } else { json!([]) };
        self.state()
            .listings
            .insert(listing_id, Listing { state: "active".into(), products, on_property: [on.clone(), on, json!([])] });
    }

    /// A listing's products as they stand.
    pub fn products(&self, listing_id: u64) -> Vec<Product> {
        self.state().listings.get(&listing_id).map(|l| l.products.clone()).unwrap_or_default()
    }

    /// The first offering's quantity of a product.
    pub fn quantity(&self, listing_id: u64, product_id: u64) -> Option<i64> {
        self.products(listing_id).iter().find(|p| p.product_id == product_id).map(|p| p.offerings[0].1)
    }

    /// `active` or `inactive`.
    pub fn listing_state(&self, listing_id: u64) -> Option<String> {
        self.state().listings.get(&listing_id).map(|l| l.state.clone())
    }

    /// The shop's clock, in unix seconds (stamps receipts' `update_timestamp`).
    pub fn set_time(&self, secs: i64) {
        self.state().now_secs = secs;
    }

    /// A paid receipt with one transaction per `(listing_id, product_id, sku, quantity)`;
    /// its `receipt_id`.
    pub fn add_receipt(&self, lines: &[(u64, u64, &str, i64)]) -> u64 {
        let mut s = self.state();
        s.next_id += 1;
        let id = s.next_id;
        let now = s.now_secs;
        let transactions: Vec<Value> = lines
            .iter()
            .enumerate()
            .map(|(i, (l, p, sku, q))| {
                json!({"transaction_id": id * 100 + i as u64, "receipt_id": id, "listing_id": l,
                       "product_id": p, "sku": sku, "quantity": q, "title": "Mug",
                       "price": {"amount": 1250, "divisor": 100, "currency_code": "EUR"}})
            })
            .collect();
        let receipt = json!({"receipt_id": id, "receipt_type": 0, "seller_user_id": 1, "status": "paid",
            "is_paid": true, "is_shipped": false, "create_timestamp": now, "created_timestamp": now,
            "update_timestamp": now, "updated_timestamp": now, "transactions": transactions, "refunds": []});
        s.receipts.insert(id, receipt);
        id
    }

    /// Sets a receipt's status (`canceled`, `fully refunded`, ...) at the shop's clock.
    pub fn set_receipt_status(&self, receipt_id: u64, status: &str) {
        let mut s = self.state();
        let now = s.now_secs;
        if let Some(r) = s.receipts.get_mut(&receipt_id) {
            r["status"] = json!(status);
            r["update_timestamp"] = json!(now);
            r["updated_timestamp"] = json!(now);
        }
    }

    /// Every access token handed out stops working.
    pub fn expire_tokens(&self) {
        self.state().access.clear();
    }

    /// The refresh token the shop takes now.
    pub fn refresh_token(&self) -> String {
        self.state().refresh.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.iter().cloned().collect()
    }
}

/// An `application/x-www-form-urlencoded` body (`+` and `%XX` decoded).
fn parse_form(body: &[u8]) -> BTreeMap<String, String> {
    let decode = |s: &str| -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

fn log(s: &mut ShopState, method: &Method, path: &str, status: u16, body: &[u8]) {
    if s.calls.len() >= LOG_MAX {
        s.calls.pop_front();
    }
    s.calls.push_back(Call {
        method: method.to_string(),
        path: path.to_string(),
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    });
}

/// Auth, rate and faults for an API call; `Err` is the answer to send.
// The refusal is the handler's whole answer, built once per refused call: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn admit(sh: &Shared, s: &mut ShopState, headers: &HeaderMap) -> Result<(), Response> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or("");
    let keystring = key.split_once(':').map_or(key, |(k, _)| k);
    if keystring != sh.config.keystring {
        return Err(error(StatusCode::FORBIDDEN, "Invalid API key"));
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match s.access.get(token) {
        Some(until) if *until > Instant::now() => {}
        _ => return Err(error(StatusCode::UNAUTHORIZED, "invalid_token")),
    }
    if s.second.0.elapsed() >= Duration::from_secs(1) {
        s.second = (Instant::now(), 0);
    }
    if s.second.1 >= sh.config.limit_per_second || s.day_used >= sh.config.limit_per_day {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "You have exceeded your quota");
        r.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        return Err(r);
    }
    s.second.1 += 1;
    s.day_used += 1;
    match s.draws.draw() {
        Fault::Throttle { retry_after_secs } => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "You have exceeded your quota");
            if let Some(secs) = retry_after_secs {
                r.headers_mut().insert("retry-after", HeaderValue::from(secs));
            }
            Err(r)
        }
        Fault::Error => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")),
        Fault::Slow(_) | Fault::None => Ok(()),
    }
}

fn rate_headers(sh: &Shared, s: &ShopState, mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("x-limit-per-second", HeaderValue::from(sh.config.limit_per_second));
    h.insert("x-remaining-this-second", HeaderValue::from(sh.config.limit_per_second.saturating_sub(s.second.1)));
    h.insert("x-limit-per-day", HeaderValue::from(sh.config.limit_per_day));
    h.insert("x-remaining-today", HeaderValue::from(sh.config.limit_per_day.saturating_sub(s.day_used)));
    r
}

/// Runs an API call: admit, handle, add the rate headers, log.
fn api(
    sh: &Shared,
    method: Method,
    path: String,
    headers: &HeaderMap,
    body: &[u8],
    handle: impl FnOnce(&mut ShopState) -> Response,
) -> Response {
    let mut s = sh.state.lock().unwrap_or_else(|e| e.into_inner());
    let r = match admit(sh, &mut s, headers) {
        Ok(()) => handle(&mut s),
        Err(r) => r,
    };
    let r = rate_headers(sh, &s, r);
    log(&mut s, &method, &path, r.status().as_u16(), body);
    r
}

async fn token(State(sh): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form: BTreeMap<String, String> = parse_form(&body);
    let mut s = sh.state.lock().unwrap_or_else(|e| e.into_inner());
    let _ = headers;
    let answer = if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        error(StatusCode::BAD_REQUEST, "unsupported_grant_type")
    } else if form.get("client_id") != Some(&sh.config.keystring) {
        error(StatusCode::BAD_REQUEST, "invalid_client")
    } else if form.get("refresh_token") != Some(&s.refresh) {
        error(StatusCode::BAD_REQUEST, "invalid_grant")
    } else {
        s.next_id += 1;
        let n = s.next_id;
        let access = format!("{}.access-{n}", sh.config.shop_id);
        let refresh = format!("{}.refresh-{n}", sh.config.shop_id);
        s.access.insert(access.clone(), Instant::now() + sh.config.token_lifetime);
        s.refresh = refresh.clone();
        axum::Json(json!({"access_token": access, "token_type": "Bearer",
            "expires_in": sh.config.token_lifetime.as_secs(), "refresh_token": refresh}))
        .into_response()
    };
    let status = answer.status().as_u16();
    log(&mut s, &Method::POST, "/v3/public/oauth/token", status, b"");
    answer
}

fn inventory_json(listing_id: u64, sh: &Shared, l: &Listing, with_listing: bool) -> Value {
    let products: Vec<Value> = l
        .products
        .iter()
        .map(|p| {
            let offerings: Vec<Value> = p
                .offerings
                .iter()
                .enumerate()
                .map(|(i, (price, q, enabled))| {
                    json!({"offering_id": p.product_id * 10 + i as u64, "quantity": q, "is_enabled": enabled,
                           "is_deleted": false,
                           "price": {"amount": (price * 100.0).round() as i64, "divisor": 100, "currency_code": "EUR"}})
                })
                .collect();
            json!({"product_id": p.product_id, "sku": p.sku, "is_deleted": false, "offerings": offerings,
                   "property_values": p.property_values})
        })
        .collect();
    let mut v = json!({"products": products, "price_on_property": l.on_property[0],
        "quantity_on_property": l.on_property[1], "sku_on_property": l.on_property[2]});
    if with_listing {
        v["listing"] = json!({"listing_id": listing_id, "shop_id": sh.config.shop_id, "state": l.state});
    }
    v
}

async fn get_inventory(
    State(sh): State<Shared>,
    Path(listing): Path<u64>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v3/application/listings/{listing}/inventory");
    let sh2 = sh.clone();
    api(&sh, Method::GET, path, &headers, b"", move |s| {
        if let Some(k) = q.keys().find(|k| !["show_deleted", "includes", "legacy"].contains(&k.as_str())) {
            return error(StatusCode::BAD_REQUEST, &format!("Unknown parameter {k}"));
        }
        let with = q.get("includes").is_some_and(|i| i.split(',').any(|x| x.eq_ignore_ascii_case("listing")));
        match s.listings.get(&listing) {
            Some(l) => axum::Json(inventory_json(listing, &sh2, l, with)).into_response(),
            None => error(StatusCode::NOT_FOUND, &format!("Listing {listing} does not exist")),
        }
    })
}

/// Checks a PUT body field by field against `updateListingInventory`.
fn read_put(body: &Value, old: &Listing, next_id: &mut u64) -> Result<Listing, String> {
    let top = body.as_object().ok_or("The body must be a JSON object")?;
    for k in top.keys() {
        if !["products", "price_on_property", "quantity_on_property", "sku_on_property"].contains(&k.as_str()) {
            return Err(format!("Unexpected field {k}"));
        }
    }
    let products = top.get("products").and_then(Value::as_array).ok_or("products is required")?;
    if products.is_empty() {
        return Err("products must not be empty".into());
    }
    let mut out = Vec::new();
    let mut any_stock = false;
    for (i, p) in products.iter().enumerate() {
        let p = p.as_object().ok_or(format!("products[{i}] must be an object"))?;
        for k in p.keys() {
            if !["sku", "property_values", "offerings"].contains(&k.as_str()) {
                return Err(format!("products[{i}]: unexpected field {k}"));
            }
        }
        let sku = match p.get("sku") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            _ => return Err(format!("products[{i}].sku must be a string")),
        };
        let values = p.get("property_values").cloned().unwrap_or_else(|| json!([]));
        for (j, v) in
            values.as_array().ok_or(format!("products[{i}].property_values must be an array"))?.iter().enumerate()
        {
            let v = v.as_object().ok_or("property_values entries must be objects")?;
            for k in v.keys() {
                if !["property_id", "value_ids", "scale_id", "property_name", "values"].contains(&k.as_str()) {
                    return Err(format!("products[{i}].property_values[{j}]: unexpected field {k}"));
                }
            }
            for k in ["property_id", "value_ids", "values"] {
                if !v.contains_key(k) {
                    return Err(format!("products[{i}].property_values[{j}].{k} is required"));
                }
            }
        }
        let offerings =
            p.get("offerings").and_then(Value::as_array).ok_or(format!("products[{i}].offerings is required"))?;
        let mut offs = Vec::new();
        for (j, o) in offerings.iter().enumerate() {
            let o = o.as_object().ok_or("offerings must be objects")?;
            for k in o.keys() {
                if !["price", "quantity", "is_enabled", "readiness_state_id"].contains(&k.as_str()) {
                    return Err(format!("products[{i}].offerings[{j}]: unexpected field {k}"));
                }
            }
            let price = o
                .get("price")
                .and_then(Value::as_f64)
                .ok_or(format!("products[{i}].offerings[{j}].price must be a number"))?;
            let q = o
                .get("quantity")
                .and_then(Value::as_i64)
                .ok_or(format!("products[{i}].offerings[{j}].quantity must be an integer"))?;
            let enabled = o
                .get("is_enabled")
                .and_then(Value::as_bool)
                .ok_or(format!("products[{i}].offerings[{j}].is_enabled must be a boolean"))?;
            if !(0..=QUANTITY_MAX).contains(&q) {
                return Err(format!("Quantity must be between 0 and {QUANTITY_MAX}"));
            }
            any_stock |= enabled && q > 0;
            offs.push((price, q, enabled));
        }
        let product_id = old
            .products
            .iter()
            .find(|o| variation(&o.property_values) == variation(&values))
            .map(|o| o.product_id)
            .unwrap_or_else(|| {
                *next_id += 1;
                *next_id
            });
        out.push(Product { product_id, sku, property_values: values, offerings: offs });
    }
    if !any_stock {
        return Err("At least one offering must have a quantity greater than 0".into());
    }
    let arr = |k: &str| -> Result<Value, String> {
        match top.get(k) {
            None => Ok(json!([])),
            Some(v) if v.as_array().is_some_and(|a| a.iter().all(|x| x.is_i64())) => Ok(v.clone()),
            _ => Err(format!("{k} must be an array of integers")),
        }
    };
    Ok(Listing {
        state: old.state.clone(),
        products: out,
        on_property: [arr("price_on_property")?, arr("quantity_on_property")?, arr("sku_on_property")?],
    })
}

async fn put_inventory(
    State(sh): State<Shared>,
    Path(listing): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v3/application/listings/{listing}/inventory");
    let sh2 = sh.clone();
    let raw = body.clone();
    let is_json =
        headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/json"));
    api(&sh, Method::PUT, path, &headers, &raw, move |s| {
        if !is_json {
            return error(StatusCode::BAD_REQUEST, "The body must be application/json");
        }
        let Ok(value) = serde_json::from_slice::<Value>(&body) else {
            return error(StatusCode::BAD_REQUEST, "The body is not JSON");
        };
        let Some(old) = s.listings.get(&listing).cloned() else {
            return error(StatusCode::NOT_FOUND, &format!("Listing {listing} does not exist"));
        };
        match read_put(&value, &old, &mut s.next_id) {
            Ok(new) => {
                let answer = inventory_json(listing, &sh2, &new, false);
                s.listings.insert(listing, new);
                axum::Json(answer).into_response()
            }
            Err(e) => error(StatusCode::BAD_REQUEST, &e),
        }
    })
}

async fn patch_listing(
    State(sh): State<Shared>,
    Path((shop, listing)): Path<(u64, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v3/application/shops/{shop}/listings/{listing}");
    let sh2 = sh.clone();
    let raw = body.clone();
    api(&sh, Method::PATCH, path, &headers, &raw, move |s| {
        if shop != sh2.config.shop_id {
            return error(StatusCode::FORBIDDEN, "The listing is not in this shop");
        }
        let form: BTreeMap<String, String> = match serde_json::from_slice::<BTreeMap<String, Value>>(&body) {
            Ok(m) => m.into_iter().map(|(k, v)| (k, v.as_str().map_or(v.to_string(), str::to_string))).collect(),
            Err(_) => parse_form(&body),
        };
        let Some(l) = s.listings.get_mut(&listing) else {
            return error(StatusCode::NOT_FOUND, &format!("Listing {listing} does not exist"));
        };
        match form.get("state").map(String::as_str) {
            Some(st @ ("active" | "inactive")) => {
                if st == "active" && !l.products.iter().any(|p| p.offerings.iter().any(|o| o.2 && o.1 > 0)) {
                    return error(StatusCode::BAD_REQUEST, "A listing without stock cannot be active");
                }
                l.state = st.to_string();
                axum::Json(json!({"listing_id": listing, "shop_id": shop, "state": st})).into_response()
            }
            Some(other) => error(StatusCode::BAD_REQUEST, &format!("state {other} is not active or inactive")),
            None => error(StatusCode::BAD_REQUEST, "Nothing to update"),
        }
    })
}

async fn receipts(
    State(sh): State<Shared>,
    Path(shop): Path<u64>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v3/application/shops/{shop}/receipts");
    let sh2 = sh.clone();
    api(&sh, Method::GET, path, &headers, b"", move |s| {
        if shop != sh2.config.shop_id {
            return error(StatusCode::FORBIDDEN, "Not your shop");
        }
        const KNOWN: [&str; 13] = [
            "min_created",
            "max_created",
            "min_last_modified",
            "max_last_modified",
            "limit",
            "offset",
            "sort_on",
            "sort_order",
            "was_paid",
            "was_shipped",
            "was_delivered",
            "was_canceled",
            "legacy",
        ];
        if let Some(k) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return error(StatusCode::BAD_REQUEST, &format!("Unknown parameter {k}"));
        }
        let num = |k: &str, d: i64| q.get(k).map_or(Ok(d), |v| v.parse::<i64>().map_err(|_| k.to_string()));
        let (Ok(min), Ok(limit), Ok(offset)) = (num("min_last_modified", 0), num("limit", 25), num("offset", 0)) else {
            return error(StatusCode::BAD_REQUEST, "min_last_modified, limit and offset must be integers");
        };
        if !(1..=LIMIT_MAX as i64).contains(&limit) || offset < 0 {
            return error(StatusCode::BAD_REQUEST, "limit must be between 1 and 100, offset at least 0");
        }
        let mut found: Vec<&Value> =
            s.receipts.values().filter(|r| r["update_timestamp"].as_i64().unwrap_or(0) >= min).collect();
        if q.get("sort_on").map(String::as_str) == Some("updated") {
            found.sort_by_key(|r| (r["update_timestamp"].as_i64(), r["receipt_id"].as_u64()));
            if q.get("sort_order").map(String::as_str) == Some("desc") {
                found.reverse();
            }
        }
        let count = found.len();
        let page: Vec<Value> = found.into_iter().skip(offset as usize).take(limit as usize).cloned().collect();
        axum::Json(json!({"count": count, "results": page})).into_response()
    })
}

/// What makes a product the same product on Etsy: its properties and their value ids (a
/// `PUT` may spell the rest of `property_values` differently from the `GET`).
fn variation(property_values: &Value) -> Vec<(Option<i64>, Vec<i64>)> {
    let mut out: Vec<(Option<i64>, Vec<i64>)> = property_values
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let ids = p["value_ids"]
                        .as_array()
                        .map(|v| v.iter().filter_map(Value::as_i64).collect())
                        .unwrap_or_default();
                    (p["property_id"].as_i64(), ids)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
