//! An emulated Shopify shop: the Admin GraphQL calls SPEC 5a's `shopify` row makes, and
//! the webhooks the shop signs.
//!
//! `POST /admin/api/2026-10/graphql.json` with `X-Shopify-Access-Token` (401 without the
//! right one). The query is parsed and validated for real by `async-graphql` against a
//! schema whose type, field and argument names are Shopify's (the fixture
//! `admin-2026-01.schema.subset-inventory.graphql` has their shape: `QueryRoot.nodes(ids:)`,
//! `ProductVariant.inventoryItem`, `InventoryItem.inventoryLevel(locationId:)`,
//! `InventoryLevel.quantities(names:)`, `Mutation.inventorySetQuantities(input:)`), so
//! a query Shopify would refuse is refused. Beyond the schema, as Shopify from 2026-04:
//! - `inventorySetQuantities` needs `@idempotent(key:)`; the same key with the same input
//!   answers what it answered before and changes nothing; with another input it is
//!   `IDEMPOTENCY_KEY_PARAMETER_MISMATCH`.
//! - every quantity carries `changeFromQuantity` (an explicit `null` opts out); a figure
//!   that is not the current one is `CHANGE_FROM_QUANTITY_STALE`, and a call with any
//!   user error applies none of its quantities.
//! - at most 250 quantities (and 250 ids) a call.
//! - the cost bucket: a leaky bucket of `maximum_available` points restoring
//!   `restore_rate` a second (research/channels.md section 1); an object costs 1, a list
//!   of them its length times its element, a mutation 10. A query costing more than is
//!   available is `THROTTLED` (nothing done); one costing more than 1000 is refused.
//!   Every answer carries `extensions.cost`.
//!
//! Faults (`faults.rs`: 429, 503, slow) are drawn per request; `stale_percent` changes a
//! quantity behind the caller's back just before a mutation compares it.
//!
//! Webhooks: `signed_webhook` / `send_webhook` sign a body as Shopify does (base64
//! HMAC-SHA256 with the app's client secret) with its headers; `order_body` builds an
//! order in the REST webhook shape.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Interface, InterfaceField, Object, Schema, TypeRef,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, Name, Value as GqlValue};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::faults::{Fault, FaultDraws, Faults};

/// The path of the one endpoint.
pub const GRAPHQL_PATH: &str = "/admin/api/2026-10/graphql.json";

/// The API version the webhooks name.
pub const API_VERSION: &str = "2026-10";

/// Most items of an array argument.
pub const ARRAY_MAX: usize = 250;

/// Most a single query may cost.
pub const SINGLE_QUERY_COST_MAX: u64 = 1000;

/// What a mutation costs.
pub const MUTATION_COST: u64 = 10;

/// Most quantity a level takes (`INVALID_QUANTITY_TOO_HIGH` above).
pub const QUANTITY_MAX: i64 = 1_000_000_000;

/// Most mutations remembered in `mutations`, and idempotency keys kept.
pub const LOG_MAX: usize = 100_000;

/// The reasons `inventorySetQuantities` takes.
pub const REASONS: &[&str] = &[
    "correction",
    "cycle_count_available",
    "damaged",
    "movement_created",
    "movement_updated",
    "movement_received",
    "movement_canceled",
    "other",
    "promotion",
    "quality_control",
    "received",
    "reservation_created",
    "reservation_deleted",
    "reservation_updated",
    "restock",
    "safety_stock",
    "shrinkage",
];

/// What a shop is.
#[derive(Clone, Debug)]
pub struct ShopifyConfig {
    pub shop_domain: String,
    pub access_token: String,
    /// The app's client secret: signs the webhooks.
    pub client_secret: String,
    pub location_id: u64,
    pub maximum_available: f64,
    pub restore_rate: f64,
    pub faults: Faults,
    /// Percent of mutations before which a quantity they carry is changed behind the
    /// caller's back (one less, or one more at zero).
    pub stale_percent: u8,
}

impl Default for ShopifyConfig {
    fn default() -> ShopifyConfig {
        ShopifyConfig {
            shop_domain: "stockpool-test.myshopify.com".into(),
            access_token: "shpat_test".into(),
            client_secret: "shpss_test".into(),
            location_id: 655441491,
            maximum_available: 1000.0,
            restore_rate: 100.0,
            faults: Faults::default(),
            stale_percent: 0,
        }
    }
}

/// One variant of the shop, with its inventory item and its level at the location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    pub id: u64,
    pub inventory_item_id: u64,
    pub sku: String,
    /// `available` at the location; `None`: not stocked there.
    pub available: Option<i64>,
}

/// One quantity of a mutation as it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetQuantity {
    pub inventory_item_id: String,
    pub location_id: String,
    pub quantity: i64,
    /// `None`: an explicit `null`.
    pub change_from_quantity: Option<i64>,
}

/// One `inventorySetQuantities` the shop got (past the bucket and validation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mutation {
    pub at: Instant,
    pub idempotency_key: String,
    pub name: String,
    pub reason: String,
    pub quantities: Vec<SetQuantity>,
    /// The user error codes it answered; empty when it applied.
    pub user_errors: Vec<String>,
    /// A replay of a key seen before (answered from memory, nothing applied).
    pub replayed: bool,
    /// Answered after a slow fault: the caller may have given up before the answer came.
    pub late: bool,
}

/// Counters a test reads.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    pub requests: u64,
    pub unauthorized: u64,
    pub throttled: u64,
    pub faults_429: u64,
    pub faults_5xx: u64,
    pub slow: u64,
    pub stale_injected: u64,
    /// Most quantities one mutation carried, and ids one `nodes` read.
    pub max_quantities_per_call: usize,
    pub max_ids_per_call: usize,
    /// Most cost one query requested.
    pub max_query_cost: u64,
    /// The lowest `currentlyAvailable` any answer reported.
    pub min_available: f64,
}

#[derive(Debug)]
struct ShopState {
    variants: BTreeMap<u64, Variant>,
    by_item: HashMap<u64, u64>,
    available: f64,
    at: Instant,
    mutations: VecDeque<Mutation>,
    /// Key -> (input, answer).
    keys: HashMap<String, (Value, Value)>,
    key_order: VecDeque<String>,
    counters: Counters,
    draws: FaultDraws,
    stale_draws: u64,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<ShopState>>,
    config: Arc<ShopifyConfig>,
    schema: Schema,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ShopState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running emulated shop; stops when dropped.
pub struct ShopifyShop {
    addr: SocketAddr,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for ShopifyShop {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A signed webhook: its headers and body, ready to POST.
#[derive(Clone, Debug)]
pub struct SignedWebhook {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ShopifyShop {
    /// Starts a shop on `127.0.0.1:0`.
    pub async fn start(config: ShopifyConfig) -> std::io::Result<ShopifyShop> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(ShopState {
            variants: BTreeMap::new(),
            by_item: HashMap::new(),
            available: config.maximum_available,
            at: Instant::now(),
            mutations: VecDeque::new(),
            keys: HashMap::new(),
            key_order: VecDeque::new(),
            counters: Counters { min_available: config.maximum_available, ..Counters::default() },
            draws: FaultDraws::new(config.faults),
            stale_draws: config.faults.seed ^ 0x5eed,
        }));
        let config = Arc::new(config);
        let schema = schema(state.clone(), config.clone()).map_err(|e| std::io::Error::other(e.to_string()))?;
        let shared = Shared { state, config, schema };
        let app = axum::Router::new().route(GRAPHQL_PATH, axum::routing::post(graphql)).with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                eprintln!("the emulated Shopify shop stopped: {e}");
            }
        });
        Ok(ShopifyShop { addr, shared, stop: Some(stop) })
    }

    /// The store's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn config(&self) -> &ShopifyConfig {
        &self.shared.config
    }

    /// The credentials a stockpool store of this shop takes (SPEC 5a).
    pub fn credentials(&self) -> Value {
        let c = &self.shared.config;
        json!({"shop_domain": c.shop_domain, "access_token": c.access_token, "location_id": c.location_id})
    }

    /// Adds a variant stocked at the location with `available`; its inventory item id is
    /// derived from the variant id.
    pub fn seed_variant(&self, variant_id: u64, sku: &str, available: i64) {
        let v = Variant {
            id: variant_id,
            inventory_item_id: variant_id + 1_000_000,
            sku: sku.into(),
            available: Some(available),
        };
        let mut s = self.shared.lock();
        s.by_item.insert(v.inventory_item_id, v.id);
        s.variants.insert(v.id, v);
    }

    /// The variant's `available` at the location.
    pub fn available(&self, variant_id: u64) -> Option<i64> {
        self.shared.lock().variants.get(&variant_id).and_then(|v| v.available)
    }

    /// Sets a variant's `available` behind the connector's back (a sale in the shop's
    /// admin, a stock count).
    pub fn set_available(&self, variant_id: u64, available: i64) {
        if let Some(v) = self.shared.lock().variants.get_mut(&variant_id) {
            v.available = Some(available);
        }
    }

    pub fn variant(&self, variant_id: u64) -> Option<Variant> {
        self.shared.lock().variants.get(&variant_id).cloned()
    }

    /// The mutations seen, oldest first (at most `LOG_MAX`).
    pub fn mutations(&self) -> Vec<Mutation> {
        self.shared.lock().mutations.iter().cloned().collect()
    }

    pub fn counters(&self) -> Counters {
        self.shared.lock().counters
    }

    /// `body` signed as Shopify signs a webhook of `topic`, with its headers.
    pub fn signed_webhook(&self, topic: &str, event_id: &str, body: &Value) -> SignedWebhook {
        let body = body.to_string().into_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(self.shared.config.client_secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(&body);
        let hmac = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-Shopify-Hmac-Sha256".to_string(), hmac),
            ("X-Shopify-Topic".to_string(), topic.to_string()),
            ("X-Shopify-Event-Id".to_string(), event_id.to_string()),
            ("X-Shopify-Webhook-Id".to_string(), format!("wh-{event_id}")),
            ("X-Shopify-Shop-Domain".to_string(), self.shared.config.shop_domain.clone()),
            ("X-Shopify-API-Version".to_string(), API_VERSION.to_string()),
        ];
        SignedWebhook { headers, body }
    }

    /// POSTs a signed webhook of `topic` to `url` (plain http on loopback) and answers
    /// the status it got.
    pub async fn send_webhook(&self, url: &str, topic: &str, event_id: &str, body: &Value) -> std::io::Result<u16> {
        post(url, &self.signed_webhook(topic, event_id, body)).await
    }
}

/// A POST of `hook` to `url` (`http://host:port/path`) over a fresh connection
/// (`post.rs`); the status answered.
pub async fn post(url: &str, hook: &SignedWebhook) -> std::io::Result<u16> {
    let headers: Vec<(&str, String)> = hook.headers.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    crate::post::post(url, &headers, &hook.body).await
}

/// An order as Shopify's REST webhook body carries it (`orders/create`): `lines` are
/// `(variant_id, sku, quantity)`.
pub fn order_body(order_id: u64, lines: &[(Option<u64>, Option<&str>, i64)]) -> Value {
    let line_items: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (variant, sku, quantity))| {
            json!({
                "id": order_id * 100 + i as u64, "variant_id": variant, "product_id": variant.map(|v| v / 10),
                "sku": sku, "title": format!("Item {}", i + 1), "name": format!("Item {}", i + 1),
                "quantity": quantity, "current_quantity": quantity, "fulfillable_quantity": quantity,
                "price": "10.00", "requires_shipping": true, "taxable": true, "gift_card": false,
                "admin_graphql_api_id": format!("gid://shopify/LineItem/{}", order_id * 100 + i as u64),
            })
        })
        .collect();
    json!({
        "id": order_id, "admin_graphql_api_id": format!("gid://shopify/Order/{order_id}"),
        "name": format!("#{}", 1000 + order_id % 1000), "order_number": 1000 + order_id % 1000,
        "cancelled_at": null, "cancel_reason": null, "financial_status": "paid", "fulfillment_status": null,
        "currency": "USD", "line_items": line_items, "refunds": [],
    })
}

/// The same order cancelled (`orders/cancelled`).
pub fn cancelled_body(order_id: u64, lines: &[(Option<u64>, Option<&str>, i64)]) -> Value {
    let mut body = order_body(order_id, lines);
    body["cancelled_at"] = json!("2026-12-02T10:00:00-05:00");
    body["cancel_reason"] = json!("customer");
    body
}

/// A refund of every line of `order_body(order_id, lines)`, restocked as `restock_type`.
pub fn refund_body(order_id: u64, lines: &[(Option<u64>, Option<&str>, i64)], restock_type: &str) -> Value {
    let refund_line_items: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (variant, sku, quantity))| {
            let line_item_id = order_id * 100 + i as u64;
            json!({"id": line_item_id + 7, "line_item_id": line_item_id, "quantity": quantity,
                   "restock_type": restock_type, "location_id": null,
                   "line_item": {"id": line_item_id, "variant_id": variant, "sku": sku, "quantity": quantity}})
        })
        .collect();
    json!({"id": order_id + 9, "order_id": order_id, "restock": restock_type != "no_restock",
           "refund_line_items": refund_line_items, "transactions": []})
}

// ---- the HTTP endpoint ----

async fn graphql(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = {
        let mut s = shared.lock();
        s.counters.requests += 1;
        let fault = s.draws.draw();
        match fault {
            Fault::Throttle { .. } => s.counters.faults_429 += 1,
            Fault::Error => s.counters.faults_5xx += 1,
            Fault::Slow(_) => s.counters.slow += 1,
            Fault::None => {}
        }
        fault
    };
    match fault {
        Fault::Throttle { retry_after_secs } => {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, "Exceeded 2 calls per second for api client.").into_response();
            if let Some(secs) = retry_after_secs {
                r.headers_mut().insert("retry-after", format!("{secs}.0").parse().expect("a number"));
            }
            return r;
        }
        Fault::Error => return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response(),
        Fault::Slow(d) => tokio::time::sleep(d).await,
        Fault::None => {}
    }
    let token = headers.get("x-shopify-access-token").and_then(|v| v.to_str().ok());
    if token != Some(shared.config.access_token.as_str()) {
        shared.lock().counters.unauthorized += 1;
        let body = json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let answer = answer(&shared, &body, matches!(fault, Fault::Slow(_))).await;
    axum::Json(answer).into_response()
}

fn error(message: &str, code: &str) -> Value {
    json!({"errors": [{"message": message, "extensions": {"code": code}}]})
}

/// The answer to one request body, `extensions.cost` included where a cost was found.
async fn answer(shared: &Shared, body: &[u8], late: bool) -> Value {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error("The request body is not JSON.", "BAD_REQUEST");
    };
    let Some(query) = request.get("query").and_then(Value::as_str) else {
        return error("Parameter Missing or Invalid: query", "BAD_REQUEST");
    };
    let variables = request.get("variables").cloned().filter(|v| !v.is_null()).unwrap_or(json!({}));
    let mut doc = match async_graphql::parser::parse_query(query) {
        Ok(doc) => doc,
        Err(e) => return error(&e.to_string(), "BAD_REQUEST"),
    };
    let (ty, requested, arrays) = match measure(&doc, &variables) {
        Ok(m) => m,
        Err(message) => return error(&message, "BAD_REQUEST"),
    };
    if arrays > ARRAY_MAX {
        return error(
            &format!("The input array size of {arrays} is greater than the maximum allowed of {ARRAY_MAX}."),
            "MAX_INPUT_SIZE_EXCEEDED",
        );
    }
    let key = if ty == OperationType::Mutation {
        match take_idempotency_key(&mut doc, &variables) {
            Ok(key) => Some(key),
            Err(message) => return error(&message, "BAD_REQUEST"),
        }
    } else {
        None
    };
    // The bucket.
    let (available_after, throttled) = {
        let mut s = shared.lock();
        let now = Instant::now();
        let dt = now.duration_since(s.at).as_secs_f64();
        s.available = (s.available + dt * shared.config.restore_rate).min(shared.config.maximum_available);
        s.at = now;
        s.counters.max_query_cost = s.counters.max_query_cost.max(requested);
        if ty == OperationType::Query {
            s.counters.max_ids_per_call = s.counters.max_ids_per_call.max(arrays);
        }
        let throttled = requested <= SINGLE_QUERY_COST_MAX && requested as f64 > s.available;
        if throttled {
            s.counters.throttled += 1;
        } else if requested <= SINGLE_QUERY_COST_MAX {
            s.available -= requested as f64;
        }
        s.counters.min_available = s.counters.min_available.min(s.available);
        (s.available, throttled)
    };
    let cost = json!({
        "requestedQueryCost": requested,
        "actualQueryCost": if throttled || requested > SINGLE_QUERY_COST_MAX { Value::Null } else { json!(requested) },
        "throttleStatus": {
            "maximumAvailable": shared.config.maximum_available,
            "currentlyAvailable": available_after.floor(),
            "restoreRate": shared.config.restore_rate,
        }
    });
    let with_cost = |mut v: Value| {
        v["extensions"] = json!({"cost": cost});
        v
    };
    if requested > SINGLE_QUERY_COST_MAX {
        let message = format!(
            "Query cost is {requested}, which exceeds the single query max cost limit ({SINGLE_QUERY_COST_MAX}). \
             See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the cost of a \
             query is calculated."
        );
        return with_cost(error(&message, "MAX_COST_EXCEEDED"));
    }
    if throttled {
        return with_cost(error("Throttled", "THROTTLED"));
    }
    // Idempotency: a key seen before answers what it answered.
    if let Some(key) = &key {
        let input = variables.clone();
        let seen = shared.lock().keys.get(key).cloned();
        if let Some((was, answered)) = seen {
            if was == input {
                record(shared, key, &input, Vec::new(), true, late);
                return with_cost(answered);
            }
            let mismatch = json!({"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": null, "userErrors": [
                {"code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH", "field": null,
                 "message": "The same idempotency key was used with different parameters."}]}}});
            record(shared, key, &input, vec!["IDEMPOTENCY_KEY_PARAMETER_MISMATCH".into()], false, late);
            return with_cost(mismatch);
        }
    }
    let mut req = async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(variables.clone()));
    req.set_parsed_query(doc);
    let response = shared.schema.execute(req).await;
    let mut answered =
        serde_json::to_value(&response).unwrap_or_else(|_| error("Internal error", "INTERNAL_SERVER_ERROR"));
    if let Some(data) = answered.get_mut("data") {
        null_missing(data);
    }
    if let Some(key) = &key {
        let codes: Vec<String> = answered
            .pointer("/data/inventorySetQuantities/userErrors")
            .and_then(Value::as_array)
            .map(|es| es.iter().filter_map(|e| e.get("code").and_then(Value::as_str).map(str::to_string)).collect())
            .unwrap_or_default();
        if answered.get("data").is_some_and(|d| !d.is_null()) {
            let mut s = shared.lock();
            if s.key_order.len() >= LOG_MAX {
                if let Some(old) = s.key_order.pop_front() {
                    s.keys.remove(&old);
                }
            }
            s.key_order.push_back(key.clone());
            s.keys.insert(key.clone(), (variables.clone(), answered.clone()));
        }
        record(shared, key, &variables, codes, false, late);
    }
    with_cost(answered)
}

fn record(shared: &Shared, key: &str, variables: &Value, user_errors: Vec<String>, replayed: bool, late: bool) {
    let input = variables.get("input").cloned().unwrap_or(Value::Null);
    let quantities: Vec<SetQuantity> = input
        .get("quantities")
        .and_then(Value::as_array)
        .map(|qs| {
            qs.iter()
                .map(|q| SetQuantity {
                    inventory_item_id: q["inventoryItemId"].as_str().unwrap_or_default().to_string(),
                    location_id: q["locationId"].as_str().unwrap_or_default().to_string(),
                    quantity: q["quantity"].as_i64().unwrap_or_default(),
                    change_from_quantity: q["changeFromQuantity"].as_i64(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut s = shared.lock();
    s.counters.max_quantities_per_call = s.counters.max_quantities_per_call.max(quantities.len());
    if s.mutations.len() >= LOG_MAX {
        s.mutations.pop_front();
    }
    s.mutations.push_back(Mutation {
        at: Instant::now(),
        idempotency_key: key.to_string(),
        name: input["name"].as_str().unwrap_or_default().to_string(),
        reason: input["reason"].as_str().unwrap_or_default().to_string(),
        quantities,
        user_errors,
        replayed,
        late,
    });
}

/// A parser value with its variables filled in, as JSON (a macro: the parser's value
/// type is not exported by name).
macro_rules! resolve {
    ($value:expr, $variables:expr) => {{
        let variables: &Value = $variables;
        let v = $value.clone().into_const_with(|name| {
            Ok::<_, std::convert::Infallible>(
                variables
                    .get(name.as_str())
                    .cloned()
                    .map(GqlValue::from_json)
                    .and_then(Result::ok)
                    .unwrap_or(GqlValue::Null),
            )
        });
        v.ok().and_then(|v| v.into_json().ok()).unwrap_or(Value::Null)
    }};
}

/// The operation's type, its requested cost, and its longest array argument.
fn measure(doc: &ExecutableDocument, variables: &Value) -> Result<(OperationType, u64, usize), String> {
    let op = match &doc.operations {
        DocumentOperations::Single(op) => &op.node,
        DocumentOperations::Multiple(ops) if ops.len() == 1 => &ops.values().next().expect("one").node,
        DocumentOperations::Multiple(_) => return Err("Send one operation a request.".into()),
    };
    let mut arrays = 0;
    let cost = if op.ty == OperationType::Mutation {
        // A mutation costs 10 whatever it selects; its input's arrays still count.
        for item in &op.selection_set.node.items {
            if let Selection::Field(f) = &item.node {
                for (_, v) in &f.node.arguments {
                    let v = resolve!(v.node, variables);
                    arrays = arrays.max(v.pointer("/quantities").and_then(Value::as_array).map_or(0, Vec::len));
                }
            }
        }
        MUTATION_COST * op.selection_set.node.items.len() as u64
    } else {
        selection_cost(&op.selection_set.node, doc, variables, &mut arrays, 0)?
    };
    Ok((op.ty, cost, arrays))
}

fn selection_cost(
    set: &SelectionSet,
    doc: &ExecutableDocument,
    variables: &Value,
    arrays: &mut usize,
    depth: usize,
) -> Result<u64, String> {
    if depth > 20 {
        return Err("The query is nested too deeply.".into());
    }
    let mut cost = 0u64;
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                let f = &f.node;
                if f.selection_set.node.items.is_empty() {
                    continue; // a scalar or an enum
                }
                let child = 1 + selection_cost(&f.selection_set.node, doc, variables, arrays, depth + 1)?;
                // A list's length: its ids or names argument.
                let mut times = 1u64;
                for (name, v) in &f.arguments {
                    if matches!(name.node.as_str(), "ids" | "names") {
                        let n = resolve!(v.node, variables).as_array().map_or(1, Vec::len);
                        *arrays = (*arrays).max(n);
                        times = n as u64;
                    }
                }
                cost = cost.saturating_add(times.saturating_mul(child));
            }
            Selection::InlineFragment(frag) => {
                cost = cost.saturating_add(selection_cost(
                    &frag.node.selection_set.node,
                    doc,
                    variables,
                    arrays,
                    depth + 1,
                )?);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(frag) = doc.fragments.get(&spread.node.fragment_name.node) {
                    cost = cost.saturating_add(selection_cost(
                        &frag.node.selection_set.node,
                        doc,
                        variables,
                        arrays,
                        depth + 1,
                    )?);
                }
            }
        }
    }
    Ok(cost)
}

/// Finds `@idempotent(key:)` on the mutation's `inventorySetQuantities`, removes it (the
/// schema does not declare directives of its own), and answers the key. A mutation
/// without it is refused, as 2026-04 and later refuse it.
fn take_idempotency_key(doc: &mut ExecutableDocument, variables: &Value) -> Result<String, String> {
    let op = match &mut doc.operations {
        DocumentOperations::Single(op) => &mut op.node,
        DocumentOperations::Multiple(ops) => &mut ops.values_mut().next().ok_or("Send one operation.")?.node,
    };
    let mut key = None;
    for item in &mut op.selection_set.node.items {
        if let Selection::Field(f) = &mut item.node {
            let f = &mut f.node;
            let mut kept = Vec::new();
            for d in f.directives.drain(..) {
                if d.node.name.node.as_str() == "idempotent" {
                    let k = d
                        .node
                        .arguments
                        .iter()
                        .find(|(n, _)| n.node.as_str() == "key")
                        .map(|(_, v)| resolve!(v.node, variables));
                    match k {
                        Some(Value::String(k)) if !k.is_empty() => key = Some(k),
                        _ => return Err("The @idempotent directive needs a non-empty key: String!.".into()),
                    }
                } else {
                    kept.push(d);
                }
            }
            f.directives = kept;
            if f.name.node.as_str() == "inventorySetQuantities" && key.is_none() {
                return Err("The @idempotent directive is required for this mutation.".into());
            }
        }
    }
    key.ok_or_else(|| "The @idempotent directive is required for this mutation.".into())
}

// ---- the schema ----

/// The stand-in for a node that is not there (see `nodes`); never shown: `answer`
/// replaces it with null, as Shopify answers.
#[derive(Clone, Copy, Debug)]
struct Missing;
const MISSING_TYPE: &str = "_MissingNode";
const MISSING_ID: &str = "gid://stockpool-emulator/Missing";

/// Replaces the stand-ins of missing nodes in the lists of `data` with null.
fn null_missing(data: &mut Value) {
    let Some(fields) = data.as_object_mut() else { return };
    for value in fields.values_mut() {
        if let Some(list) = value.as_array_mut() {
            for element in list {
                let missing = element
                    .as_object()
                    .is_some_and(|o| o.is_empty() || o.get("id").and_then(Value::as_str) == Some(MISSING_ID));
                if missing {
                    *element = Value::Null;
                }
            }
        }
    }
}

/// A variant, its item, its level: what a resolver hands down.
#[derive(Clone, Debug)]
struct Row {
    variant: Variant,
    location: u64,
}

#[derive(Clone, Debug)]
struct Quantity {
    name: String,
    quantity: i64,
    id: String,
}

#[derive(Clone, Debug)]
struct Payload {
    group: Option<Group>,
    user_errors: Vec<(String, Option<Vec<String>>, String)>,
}

#[derive(Clone, Debug)]
struct Group {
    id: String,
    reason: String,
    reference: Option<String>,
    changes: Vec<(String, i64, i64)>,
}

fn gid(kind: &str, id: u64) -> String {
    format!("gid://shopify/{kind}/{id}")
}

fn parse_gid(value: &str, kind: &str) -> Option<u64> {
    value.strip_prefix(&format!("gid://shopify/{kind}/"))?.parse().ok()
}

fn scalar<'a>(v: impl Into<GqlValue>) -> Option<FieldValue<'a>> {
    Some(FieldValue::value(v.into()))
}

fn row_field<F>(name: &str, ty: TypeRef, f: F) -> Field
where
    F: Fn(&Row) -> Option<GqlValue> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    Field::new(name, ty, move |ctx| {
        let f = f.clone();
        FieldFuture::new(async move {
            let row = ctx.parent_value.try_downcast_ref::<Row>()?;
            Ok(f(row).map(FieldValue::value))
        })
    })
}

fn schema(
    state: Arc<Mutex<ShopState>>,
    config: Arc<ShopifyConfig>,
) -> Result<Schema, async_graphql::dynamic::SchemaError> {
    let location = config.location_id;
    let node = Interface::new("Node").field(InterfaceField::new("id", TypeRef::named_nn(TypeRef::ID)));
    let s = state.clone();
    let find_variant = move |id: &str| -> Option<FieldValue<'static>> {
        let st = s.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = parse_gid(id, "ProductVariant").and_then(|v| st.variants.get(&v)) {
            return Some(FieldValue::owned_any(Row { variant: v.clone(), location }).with_type("ProductVariant"));
        }
        if let Some(v) =
            parse_gid(id, "InventoryItem").and_then(|i| st.by_item.get(&i)).and_then(|v| st.variants.get(v))
        {
            return Some(FieldValue::owned_any(Row { variant: v.clone(), location }).with_type("InventoryItem"));
        }
        None
    };
    let find_variant = Arc::new(find_variant);
    let fv = find_variant.clone();
    let nodes = Field::new("nodes", TypeRef::named_list_nn("Node"), move |ctx| {
        let fv = fv.clone();
        FieldFuture::new(async move {
            let ids = ctx.args.try_get("ids")?.list()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids.iter() {
                // async-graphql's dynamic schema cannot put null in a list of an
                // interface: a stand-in goes there, and `answer` turns it into null.
                out.push(fv(id.string()?).unwrap_or_else(|| FieldValue::owned_any(Missing).with_type(MISSING_TYPE)));
            }
            Ok(Some(FieldValue::list(out)))
        })
    })
    .argument(InputValue::new("ids", TypeRef::named_nn_list_nn(TypeRef::ID)));
    let fv = find_variant.clone();
    let node_field = Field::new("node", TypeRef::named("Node"), move |ctx| {
        let fv = fv.clone();
        FieldFuture::new(async move { Ok(fv(ctx.args.try_get("id")?.string()?)) })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)));
    let fv = find_variant.clone();
    let product_variant = Field::new("productVariant", TypeRef::named("ProductVariant"), move |ctx| {
        let fv = fv.clone();
        FieldFuture::new(async move {
            let id = ctx.args.try_get("id")?.string()?;
            Ok(if id.contains("/ProductVariant/") { fv(id) } else { None })
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)));
    let fv = find_variant;
    let inventory_item = Field::new("inventoryItem", TypeRef::named("InventoryItem"), move |ctx| {
        let fv = fv.clone();
        FieldFuture::new(async move {
            let id = ctx.args.try_get("id")?.string()?;
            Ok(if id.contains("/InventoryItem/") { fv(id) } else { None })
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)));
    let missing =
        Object::new(MISSING_TYPE).implement("Node").field(Field::new("id", TypeRef::named_nn(TypeRef::ID), |_| {
            FieldFuture::new(async { Ok(scalar(MISSING_ID)) })
        }));
    let query = Object::new("QueryRoot").field(nodes).field(node_field).field(product_variant).field(inventory_item);

    let variant = Object::new("ProductVariant")
        .implement("Node")
        .field(row_field("id", TypeRef::named_nn(TypeRef::ID), |r| Some(gid("ProductVariant", r.variant.id).into())))
        .field(row_field("legacyResourceId", TypeRef::named_nn("UnsignedInt64"), |r| {
            Some(r.variant.id.to_string().into())
        }))
        .field(row_field("sku", TypeRef::named(TypeRef::STRING), |r| Some(r.variant.sku.clone().into())))
        .field(row_field("title", TypeRef::named_nn(TypeRef::STRING), |r| Some(r.variant.sku.clone().into())))
        .field(row_field("inventoryQuantity", TypeRef::named(TypeRef::INT), |r| r.variant.available.map(Into::into)))
        .field(Field::new("inventoryItem", TypeRef::named_nn("InventoryItem"), |ctx| {
            FieldFuture::new(async move {
                let row = ctx.parent_value.try_downcast_ref::<Row>()?;
                Ok(Some(FieldValue::owned_any(row.clone())))
            })
        }));
    let item = Object::new("InventoryItem")
        .implement("Node")
        .field(row_field("id", TypeRef::named_nn(TypeRef::ID), |r| {
            Some(gid("InventoryItem", r.variant.inventory_item_id).into())
        }))
        .field(row_field("legacyResourceId", TypeRef::named_nn("UnsignedInt64"), |r| {
            Some(r.variant.inventory_item_id.to_string().into())
        }))
        .field(row_field("sku", TypeRef::named(TypeRef::STRING), |r| Some(r.variant.sku.clone().into())))
        .field(row_field("tracked", TypeRef::named_nn(TypeRef::BOOLEAN), |_| Some(true.into())))
        .field(
            Field::new("inventoryLevel", TypeRef::named("InventoryLevel"), |ctx| {
                FieldFuture::new(async move {
                    let row = ctx.parent_value.try_downcast_ref::<Row>()?;
                    let asked = ctx.args.try_get("locationId")?.string()?;
                    let here = parse_gid(asked, "Location") == Some(row.location);
                    Ok((here && row.variant.available.is_some()).then(|| FieldValue::owned_any(row.clone())))
                })
            })
            .argument(InputValue::new("locationId", TypeRef::named_nn(TypeRef::ID))),
        );
    let level = Object::new("InventoryLevel")
        .implement("Node")
        .field(row_field("id", TypeRef::named_nn(TypeRef::ID), |r| {
            Some(
                format!(
                    "gid://shopify/InventoryLevel/{}?inventory_item_id={}",
                    r.location, r.variant.inventory_item_id
                )
                .into(),
            )
        }))
        .field(Field::new("item", TypeRef::named_nn("InventoryItem"), |ctx| {
            FieldFuture::new(async move {
                Ok(Some(FieldValue::owned_any(ctx.parent_value.try_downcast_ref::<Row>()?.clone())))
            })
        }))
        .field(
            Field::new("quantities", TypeRef::named_nn_list_nn("InventoryQuantity"), |ctx| {
                FieldFuture::new(async move {
                    let row = ctx.parent_value.try_downcast_ref::<Row>()?;
                    let names = ctx.args.try_get("names")?.list()?;
                    let mut out = Vec::new();
                    for name in names.iter() {
                        let name = name.string()?;
                        let quantity = match name {
                            "available" | "on_hand" => row.variant.available.unwrap_or(0),
                            "committed" | "reserved" | "damaged" | "safety_stock" | "quality_control" | "incoming" => 0,
                            other => {
                                return Err(async_graphql::Error::new(format!("Invalid quantity name: {other}"))
                                    .extend_with(|_, e| e.set("code", "INVALID_NAME")))
                            }
                        };
                        let id = format!(
                            "gid://shopify/InventoryQuantity/{}?inventory_item_id={}&name={name}",
                            row.location, row.variant.inventory_item_id
                        );
                        out.push(FieldValue::owned_any(Quantity { name: name.to_string(), quantity, id }));
                    }
                    Ok(Some(FieldValue::list(out)))
                })
            })
            .argument(InputValue::new("names", TypeRef::named_nn_list_nn(TypeRef::STRING))),
        );
    let quantity_field = |name: &str, ty: TypeRef, f: fn(&Quantity) -> GqlValue| {
        Field::new(name, ty, move |ctx| {
            FieldFuture::new(
                async move { Ok(Some(FieldValue::value(f(ctx.parent_value.try_downcast_ref::<Quantity>()?)))) },
            )
        })
    };
    let quantity = Object::new("InventoryQuantity")
        .implement("Node")
        .field(quantity_field("id", TypeRef::named_nn(TypeRef::ID), |q| q.id.clone().into()))
        .field(quantity_field("name", TypeRef::named_nn(TypeRef::STRING), |q| q.name.clone().into()))
        .field(quantity_field("quantity", TypeRef::named_nn(TypeRef::INT), |q| q.quantity.into()));

    let quantity_input = InputObject::new("InventoryQuantityInput")
        .field(InputValue::new("changeFromQuantity", TypeRef::named(TypeRef::INT)))
        .field(InputValue::new("inventoryItemId", TypeRef::named_nn(TypeRef::ID)))
        .field(InputValue::new("locationId", TypeRef::named_nn(TypeRef::ID)))
        .field(InputValue::new("quantity", TypeRef::named_nn(TypeRef::INT)));
    let set_input = InputObject::new("InventorySetQuantitiesInput")
        .field(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)))
        .field(InputValue::new("quantities", TypeRef::named_nn_list_nn("InventoryQuantityInput")))
        .field(InputValue::new("reason", TypeRef::named_nn(TypeRef::STRING)))
        .field(InputValue::new("referenceDocumentUri", TypeRef::named(TypeRef::STRING)));
    let mut codes = Enum::new("InventorySetQuantitiesUserErrorCode");
    for code in USER_ERROR_CODES {
        codes = codes.item(*code);
    }
    let user_error = Object::new("InventorySetQuantitiesUserError")
        .field(Field::new("code", TypeRef::named("InventorySetQuantitiesUserErrorCode"), |ctx| {
            FieldFuture::new(async move {
                let (code, ..) = ctx.parent_value.try_downcast_ref::<(String, Option<Vec<String>>, String)>()?;
                Ok(Some(FieldValue::value(GqlValue::Enum(Name::new(code)))))
            })
        }))
        .field(Field::new("field", TypeRef::named_nn_list(TypeRef::STRING), |ctx| {
            FieldFuture::new(async move {
                let (_, field, _) = ctx.parent_value.try_downcast_ref::<(String, Option<Vec<String>>, String)>()?;
                Ok(field.clone().map(|f| FieldValue::list(f.into_iter().map(FieldValue::value))))
            })
        }))
        .field(Field::new("message", TypeRef::named_nn(TypeRef::STRING), |ctx| {
            FieldFuture::new(async move {
                let (_, _, message) = ctx.parent_value.try_downcast_ref::<(String, Option<Vec<String>>, String)>()?;
                Ok(scalar(message.clone()))
            })
        }));
    let change = Object::new("InventoryChange")
        .field(Field::new("name", TypeRef::named_nn(TypeRef::STRING), |ctx| {
            FieldFuture::new(
                async move { Ok(scalar(ctx.parent_value.try_downcast_ref::<(String, i64, i64)>()?.0.clone())) },
            )
        }))
        .field(Field::new("delta", TypeRef::named_nn(TypeRef::INT), |ctx| {
            FieldFuture::new(async move { Ok(scalar(ctx.parent_value.try_downcast_ref::<(String, i64, i64)>()?.1)) })
        }))
        .field(Field::new("quantityAfterChange", TypeRef::named(TypeRef::INT), |ctx| {
            FieldFuture::new(async move { Ok(scalar(ctx.parent_value.try_downcast_ref::<(String, i64, i64)>()?.2)) })
        }));
    let group = Object::new("InventoryAdjustmentGroup")
        .implement("Node")
        .field(Field::new("id", TypeRef::named_nn(TypeRef::ID), |ctx| {
            FieldFuture::new(async move { Ok(scalar(ctx.parent_value.try_downcast_ref::<Group>()?.id.clone())) })
        }))
        .field(Field::new("reason", TypeRef::named_nn(TypeRef::STRING), |ctx| {
            FieldFuture::new(async move { Ok(scalar(ctx.parent_value.try_downcast_ref::<Group>()?.reason.clone())) })
        }))
        .field(Field::new("referenceDocumentUri", TypeRef::named(TypeRef::STRING), |ctx| {
            FieldFuture::new(async move {
                Ok(ctx.parent_value.try_downcast_ref::<Group>()?.reference.clone().map(FieldValue::value))
            })
        }))
        .field(
            Field::new("changes", TypeRef::named_nn_list_nn("InventoryChange"), |ctx| {
                FieldFuture::new(async move {
                    let g = ctx.parent_value.try_downcast_ref::<Group>()?;
                    Ok(Some(FieldValue::list(g.changes.iter().cloned().map(FieldValue::owned_any))))
                })
            })
            // Shopify's filters; one location and one quantity name here, so they change nothing.
            .argument(InputValue::new("inventoryItemIds", TypeRef::named_nn_list(TypeRef::ID)))
            .argument(InputValue::new("locationIds", TypeRef::named_nn_list(TypeRef::ID)))
            .argument(InputValue::new("quantityNames", TypeRef::named_nn_list(TypeRef::STRING))),
        );
    let payload = Object::new("InventorySetQuantitiesPayload")
        .field(Field::new("inventoryAdjustmentGroup", TypeRef::named("InventoryAdjustmentGroup"), |ctx| {
            FieldFuture::new(async move {
                Ok(ctx.parent_value.try_downcast_ref::<Payload>()?.group.clone().map(FieldValue::owned_any))
            })
        }))
        .field(Field::new("userErrors", TypeRef::named_nn_list_nn("InventorySetQuantitiesUserError"), |ctx| {
            FieldFuture::new(async move {
                let p = ctx.parent_value.try_downcast_ref::<Payload>()?;
                Ok(Some(FieldValue::list(p.user_errors.iter().cloned().map(FieldValue::owned_any))))
            })
        }));
    let st = state;
    let cfg = config;
    let set = Field::new("inventorySetQuantities", TypeRef::named("InventorySetQuantitiesPayload"), move |ctx| {
        let st = st.clone();
        let cfg = cfg.clone();
        FieldFuture::new(async move {
            let input = ctx.args.try_get("input")?.object()?;
            let name = input.try_get("name")?.string()?.to_string();
            let reason = input.try_get("reason")?.string()?.to_string();
            let reference = input.get("referenceDocumentUri").and_then(|r| r.string().ok().map(str::to_string));
            let list = input.try_get("quantities")?.list()?;
            let mut asked = Vec::new();
            for q in list.iter() {
                let q = q.object()?;
                let change_from = match q.get("changeFromQuantity") {
                    None => {
                        return Err(async_graphql::Error::new(
                            "changeFromQuantity is required; pass null to skip the compare",
                        )
                        .extend_with(|_, e| e.set("code", "BAD_REQUEST")))
                    }
                    Some(v) if v.is_null() => None,
                    Some(v) => Some(v.i64()?),
                };
                asked.push((
                    q.try_get("inventoryItemId")?.string()?.to_string(),
                    q.try_get("locationId")?.string()?.to_string(),
                    q.try_get("quantity")?.i64()?,
                    change_from,
                ));
            }
            Ok(Some(FieldValue::owned_any(apply_set(&st, &cfg, &name, &reason, reference, &asked))))
        })
    })
    .argument(InputValue::new("input", TypeRef::named_nn("InventorySetQuantitiesInput")));
    let mutation = Object::new("Mutation").field(set);

    Schema::build("QueryRoot", Some("Mutation"), None)
        .register(node)
        .register(missing)
        .register(query)
        .register(mutation)
        .register(variant)
        .register(item)
        .register(level)
        .register(quantity)
        .register(quantity_input)
        .register(set_input)
        .register(codes)
        .register(user_error)
        .register(change)
        .register(group)
        .register(payload)
        .register(async_graphql::dynamic::Scalar::new("UnsignedInt64"))
        .limit_depth(20)
        .finish()
}

/// The user error codes of `InventorySetQuantitiesUserErrorCode` (the fixture's).
pub const USER_ERROR_CODES: &[&str] = &[
    "INVALID_INVENTORY_ITEM",
    "INVALID_LOCATION",
    "INVALID_QUANTITY_NEGATIVE",
    "INVALID_REASON",
    "INVALID_REFERENCE_DOCUMENT",
    "ITEM_NOT_STOCKED_AT_LOCATION",
    "INVALID_QUANTITY_TOO_HIGH",
    "INVALID_QUANTITY_TOO_LOW",
    "COMPARE_QUANTITY_REQUIRED",
    "COMPARE_QUANTITY_STALE",
    "CHANGE_FROM_QUANTITY_STALE",
    "INVALID_NAME",
    "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
    "NON_MUTABLE_INVENTORY_ITEM",
    "IDEMPOTENCY_CONCURRENT_REQUEST",
    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
];

/// Checks every quantity and applies all of them, or none when any has a user error.
fn apply_set(
    state: &Mutex<ShopState>,
    config: &ShopifyConfig,
    name: &str,
    reason: &str,
    reference: Option<String>,
    asked: &[(String, String, i64, Option<i64>)],
) -> Payload {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let mut errors = Vec::new();
    let path =
        |i: usize, f: &str| Some(vec!["input".to_string(), "quantities".to_string(), i.to_string(), f.to_string()]);
    if name != "available" {
        errors.push((
            "INVALID_NAME".to_string(),
            Some(vec!["input".into(), "name".into()]),
            format!("The quantity name {name} cannot be set here."),
        ));
    }
    if !REASONS.contains(&reason) {
        errors.push((
            "INVALID_REASON".to_string(),
            Some(vec!["input".into(), "reason".into()]),
            format!("The reason {reason} is not valid."),
        ));
    }
    // Something changes behind the caller's back, seeded.
    if config.stale_percent > 0 && !asked.is_empty() {
        s.stale_draws = s.stale_draws.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s.stale_draws;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        if (((z ^ (z >> 31)) % 100) as u8) < config.stale_percent {
            let pick = (z as usize) % asked.len();
            if let Some(v) = parse_gid(&asked[pick].0, "InventoryItem").and_then(|i| s.by_item.get(&i).copied()) {
                if let Some(level) = s.variants.get_mut(&v).and_then(|v| v.available.as_mut()) {
                    *level = if *level > 0 { *level - 1 } else { 1 };
                    s.counters.stale_injected += 1;
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut changes = Vec::new();
    for (i, (item, location, quantity, from)) in asked.iter().enumerate() {
        let variant =
            parse_gid(item, "InventoryItem").and_then(|id| s.by_item.get(&id)).and_then(|v| s.variants.get(v));
        let Some(variant) = variant else {
            errors.push((
                "INVALID_INVENTORY_ITEM".into(),
                path(i, "inventoryItemId"),
                "The specified inventory item could not be found.".into(),
            ));
            continue;
        };
        if parse_gid(location, "Location") != Some(config.location_id) {
            errors.push((
                "INVALID_LOCATION".into(),
                path(i, "locationId"),
                "The specified location could not be found.".into(),
            ));
            continue;
        }
        let Some(current) = variant.available else {
            errors.push((
                "ITEM_NOT_STOCKED_AT_LOCATION".into(),
                path(i, "inventoryItemId"),
                "The item is not stocked at the location.".into(),
            ));
            continue;
        };
        if !seen.insert(item.clone()) {
            errors.push((
                "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR".into(),
                path(i, "inventoryItemId"),
                "The item appears twice.".into(),
            ));
            continue;
        }
        if *quantity < 0 {
            errors.push((
                "INVALID_QUANTITY_NEGATIVE".into(),
                path(i, "quantity"),
                "The quantity can't be negative.".into(),
            ));
            continue;
        }
        if *quantity > QUANTITY_MAX {
            errors.push((
                "INVALID_QUANTITY_TOO_HIGH".into(),
                path(i, "quantity"),
                "The quantity can't be higher than 1,000,000,000.".into(),
            ));
            continue;
        }
        if let Some(from) = from {
            if *from != current {
                errors.push((
                    "CHANGE_FROM_QUANTITY_STALE".into(),
                    path(i, "changeFromQuantity"),
                    "The specified compare quantity does not match the current quantity.".into(),
                ));
                continue;
            }
        }
        changes.push((variant.id, *quantity, *quantity - current));
    }
    if !errors.is_empty() {
        return Payload { group: None, user_errors: errors };
    }
    let mut out = Vec::new();
    for (v, quantity, delta) in changes {
        if let Some(level) = s.variants.get_mut(&v).and_then(|v| v.available.as_mut()) {
            *level = quantity;
        }
        out.push(("available".to_string(), delta, quantity));
    }
    let id = gid("InventoryAdjustmentGroup", s.mutations.len() as u64 + 1);
    Payload { group: Some(Group { id, reason: reason.to_string(), reference, changes: out }), user_errors: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::types::{ServiceDocument, TypeKind, TypeSystemDefinition};

    /// Type name -> member name -> its signature (arguments and type), from SDL.
    fn shape(sdl: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        let doc: ServiceDocument = async_graphql::parser::parse_schema(sdl).expect("the SDL parses");
        let mut out = BTreeMap::new();
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else { continue };
            let t = t.node;
            let mut members = BTreeMap::new();
            match t.kind {
                TypeKind::Object(o) => {
                    for f in o.fields {
                        let args: Vec<String> = f
                            .node
                            .arguments
                            .iter()
                            .map(|a| format!("{}: {}", a.node.name.node, a.node.ty.node))
                            .collect();
                        members
                            .insert(f.node.name.node.to_string(), format!("({}) {}", args.join(", "), f.node.ty.node));
                    }
                }
                TypeKind::Interface(o) => {
                    for f in o.fields {
                        members.insert(f.node.name.node.to_string(), f.node.ty.node.to_string());
                    }
                }
                TypeKind::InputObject(o) => {
                    for f in o.fields {
                        members.insert(f.node.name.node.to_string(), f.node.ty.node.to_string());
                    }
                }
                TypeKind::Enum(e) => {
                    for v in e.values {
                        members.insert(v.node.value.node.to_string(), String::new());
                    }
                }
                _ => {}
            }
            out.insert(t.name.node.to_string(), members);
        }
        out
    }

    #[test]
    fn every_name_the_emulator_exposes_is_shopifys() {
        let fixture = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/channels/shopify/admin-2026-01.schema.subset-inventory.graphql"
        ))
        .expect("the fixture schema is in the repository");
        let theirs = shape(&fixture);
        let state = Arc::new(Mutex::new(ShopState {
            variants: BTreeMap::new(),
            by_item: HashMap::new(),
            available: 0.0,
            at: Instant::now(),
            mutations: VecDeque::new(),
            keys: HashMap::new(),
            key_order: VecDeque::new(),
            counters: Counters::default(),
            draws: FaultDraws::new(Faults::default()),
            stale_draws: 0,
        }));
        let ours = shape(&schema(state, Arc::new(ShopifyConfig::default())).expect("the schema builds").sdl());
        let mut compared = 0;
        for (ty, members) in &ours {
            if ty == MISSING_TYPE {
                continue;
            }
            let Some(their_members) = theirs.get(ty) else {
                // Only the scalar UnsignedInt64 is ours alone (the fixture names it, the full schema defines it).
                assert!(members.is_empty() || ty.starts_with("__"), "type {ty} is not in Shopify's schema subset");
                continue;
            };
            for (name, signature) in members {
                assert_eq!(their_members.get(name), Some(signature), "{ty}.{name} differs from Shopify's");
                compared += 1;
            }
        }
        // What the connector uses is there.
        for (ty, name) in [
            ("QueryRoot", "nodes"),
            ("ProductVariant", "inventoryItem"),
            ("InventoryItem", "inventoryLevel"),
            ("InventoryLevel", "quantities"),
            ("Mutation", "inventorySetQuantities"),
            ("InventoryQuantityInput", "changeFromQuantity"),
            ("InventorySetQuantitiesUserErrorCode", "CHANGE_FROM_QUANTITY_STALE"),
        ] {
            assert!(ours[ty].contains_key(name), "{ty}.{name}");
        }
        assert!(compared >= 40, "compared only {compared} names");
        assert!(fixture.contains("directive @idempotent(\n  key: String!\n) on FIELD"));
    }
}
