//! stockpool-http: the HTTP API of SPEC section 6 on axum.
//!
//! JSON under `/api/v1` with `Authorization: Bearer <token>`; errors as RFC 9457 problem
//! details (`error.rs`); `/healthz`, `/readyz`, `/metrics` (Prometheus text) and the
//! OpenAPI document, generated from the same route table (`ROUTES`) the router is checked
//! against. Handlers parse input, hand writes to the store's writer and read views from
//! the cached workspace: no handler decides anything itself. Only this crate knows JSON
//! on the wire.

pub mod app;
pub mod attempts;
pub mod dashboard;
pub mod error;
mod openapi;
pub mod serve;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use error::ApiError;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;
use stockpool_core::{CardId, ListingId, OrderId, RuleId};
use stockpool_store::exec::Command;
use stockpool_store::model::*;
use stockpool_store::workspace::Ws;
use stockpool_store::Storage;
use stockpool_worker::intake::{Intake, IntakeError};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use app::{shutdown_signal, Application};
pub use openapi::{openapi, ROUTES};

/// Largest request body accepted: a bulk listing import of a few thousand rows fits;
/// anything bigger belongs in `stockpool import`. Webhook deliveries too: the inbox keeps
/// bodies of at most this size (`INBOX_BODY_BYTES_MAX`).
pub const BODY_BYTES_MAX: usize = stockpool_store::inbox::INBOX_BODY_BYTES_MAX;
/// Longest a request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default and largest page of a list.
pub const PAGE_DEFAULT: usize = 100;
pub const PAGE_MAX: usize = 1000;
/// Listings in one bulk create.
pub const BULK_LISTINGS_MAX: usize = 5000;

#[derive(Clone)]
pub struct App {
    pub store: Storage,
    pub intake: Intake,
    /// Failed logins and API tokens, per account and client address.
    pub limits: std::sync::Arc<attempts::Limits>,
}

/// The whole HTTP application.
pub fn router(store: Storage, intake: Intake) -> Router {
    let api = Router::new()
        .route("/warehouses", post(create_warehouse).get(list_warehouses))
        .route("/warehouses/{code}", get(get_warehouse))
        .route("/items", post(create_item).get(list_items))
        .route("/items/{sku}", get(get_item).patch(patch_item))
        .route("/items/{sku}/components", get(get_components).put(put_components))
        .route("/items/{sku}/stock", get(get_stock))
        .route("/stock/adjustments", post(adjust))
        .route("/stores", post(create_store).get(list_stores))
        .route("/stores/{code}", get(get_store).patch(patch_store))
        .route("/listings", post(create_listing).get(list_listings))
        .route("/listings/bulk", post(create_listings_bulk))
        .route("/listings/{id}", get(get_listing))
        .route("/listings/{id}/explain", get(explain_listing))
        .route("/rules", post(create_rule).get(list_rules))
        .route("/rules/{id}", get(get_rule).put(update_rule).delete(delete_rule))
        .route("/orders", post(create_order).get(list_orders))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/{action}", post(order_action))
        .route("/production-cards", post(create_card).get(list_cards))
        .route("/production-cards/{id}", get(get_card))
        .route("/production-cards/{id}/{action}", post(card_action))
        .route("/sync", post(sync_now))
        .route("/sync-records", get(list_sync_records))
        .route("/settings", get(get_settings).put(put_settings))
        .route("/openapi.json", get(|| async { Json(openapi()) }));
    let pages = Router::new()
        .route("/", get(dashboard::home))
        .route("/login", get(dashboard::login_form).post(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .route("/dashboard/orders/{id}/{action}", post(dashboard::order_action))
        .layer(axum::middleware::from_fn(dashboard::page_headers));
    Router::new()
        .nest("/api/v1", api)
        .merge(pages)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/{channel}/{store}", post(webhook))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "there is nothing at this path") })
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(RequestBodyLimitLayer::new(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn(errors_as_problems))
        .with_state(App { store, intake, limits: Default::default() })
}

// ---- extractors ---------------------------------------------------------------------

/// The workspace of the request's bearer token.
pub struct Auth(pub i64);

impl FromRequestParts<App> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        let (scheme, token) = header.trim().split_once(' ').ok_or_else(ApiError::unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthorized());
        }
        let address = client_address(parts);
        let now = app.store.now().0;
        if let Err(wait) = app.limits.addresses.check(&address, now) {
            return Err(ApiError::too_many(
                wait,
                format!("too many wrong credentials from this address; try again in {wait} seconds"),
            ));
        }
        match app.store.workspace_for_token(token.trim()).await? {
            Some(ws) => Ok(Auth(ws)),
            None => {
                app.limits.addresses.fail(&address, now);
                Err(ApiError::unauthorized())
            }
        }
    }
}

/// A filter's value that must be one of `allowed`: 422 naming them otherwise.
fn one_of(name: &str, value: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("{name} must be one of {}, not {value:?}", allowed.join(", ")),
    ))
}

/// The client's IP address as the failure limits count it (the peer of the connection;
/// a reverse proxy's own forwarding headers are not trusted).
pub fn client_address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string())
}

/// The client's address (`client_address`), for handlers that read the body too.
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(parts)))
    }
}

/// A JSON body whose every rejection is a problem details answer.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<App> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, app: &App) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, app).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => {
                let status = rejection.status();
                let detail = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => {
                        format!("the body is larger than the {BODY_BYTES_MAX} bytes allowed")
                    }
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                        "send the body as JSON with 'Content-Type: application/json'".to_string()
                    }
                    _ => format!("the body is not valid: {}", rejection.body_text()),
                };
                let status = if status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { status };
                Err(ApiError::new(status, detail))
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    store: Option<String>,
    sku: Option<String>,
    status: Option<String>,
    result: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
}

// ---- helpers --------------------------------------------------------------------------

async fn exec(app: &App, ws: i64, cmd: Command) -> Result<Response, ApiError> {
    let reply = app.store.execute(ws, cmd).await?;
    let status = if reply.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(reply.body)).into_response())
}

/// `{"data": [...], "next_cursor": ...}` over rows sorted by key.
fn page(mut rows: Vec<(String, Value)>, q: &ListQuery, numeric: bool) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    if limit == 0 || limit > PAGE_MAX {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("limit must be between 1 and {PAGE_MAX}")));
    }
    let key = |k: &str| -> (u64, String) {
        if numeric {
            (k.rsplit('_').next().and_then(|n| n.parse().ok()).unwrap_or(0), String::new())
        } else {
            (0, k.to_string())
        }
    };
    rows.sort_by_key(|a| key(&a.0));
    if let Some(c) = &q.cursor {
        let c = key(c);
        rows.retain(|(k, _)| key(k) > c);
    }
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(|(k, _)| k.clone()) } else { None };
    Ok(Json(json!({"data": rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), "next_cursor": next})))
}

async fn read<T>(app: &App, ws: i64, f: impl FnOnce(&Ws) -> Result<T, ApiError>) -> Result<T, ApiError> {
    app.store.read(ws, f).await?
}

fn id_of(kind: Kind, ws: &Ws, s: &str, what: &str) -> Result<u64, ApiError> {
    parse_public_id(kind, ws.id, s).ok_or_else(|| ApiError::not_found(what, s))
}

// ---- health, metrics, dashboard -------------------------------------------------------

async fn readyz(State(app): State<App>) -> Result<&'static str, ApiError> {
    sqlx_ping(&app).await?;
    Ok("ready")
}

async fn sqlx_ping(app: &App) -> Result<(), ApiError> {
    Ok(app.store.ping().await?)
}

async fn metrics(State(app): State<App>) -> Result<Response, ApiError> {
    let m = app.store.metrics();
    let pending = app.store.outbox_pending().await?;
    let (inbox_pending, inbox_failed) = app.store.inbox_unfinished_counts().await?;
    let mut text = String::new();
    for (name, help, kind, value) in [
        ("stockpool_commands_total", "Write commands decided.", "counter", m.commands.load(Ordering::Relaxed) as i64),
        (
            "stockpool_command_errors_total",
            "Write commands refused or failed.",
            "counter",
            m.command_errors.load(Ordering::Relaxed) as i64,
        ),
        (
            "stockpool_batches_total",
            "Write transactions (group commits).",
            "counter",
            m.batches.load(Ordering::Relaxed) as i64,
        ),
        (
            "stockpool_batch_failures_total",
            "Write transactions rolled back.",
            "counter",
            m.batch_failures.load(Ordering::Relaxed) as i64,
        ),
        (
            "stockpool_orders_created_total",
            "Orders taken in.",
            "counter",
            m.orders_created.load(Ordering::Relaxed) as i64,
        ),
        ("stockpool_outbox_pending", "Listings with a push queued for their channel.", "gauge", pending),
        (
            "stockpool_webhook_rejected_total",
            "Webhook deliveries refused for their signature; nothing of them is kept.",
            "counter",
            m.webhooks_rejected.load(Ordering::Relaxed) as i64,
        ),
        (
            "stockpool_webhook_received_total",
            "Webhook deliveries kept in the inbox.",
            "counter",
            m.webhooks_received.load(Ordering::Relaxed) as i64,
        ),
        ("stockpool_inbox_pending", "Kept webhook deliveries not yet processed.", "gauge", inbox_pending),
        (
            "stockpool_password_checks_total",
            "Dashboard passwords checked (unknown emails against a dummy hash).",
            "counter",
            m.password_checks.load(Ordering::Relaxed) as i64,
        ),
        ("stockpool_inbox_failed", "Kept webhook deliveries that failed to parse or apply.", "gauge", inbox_failed),
    ] {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    }
    store_metrics(&mut text, &app.store.store_gauges().await?, &m.pushes.snapshot(), app.store.now());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Each store's queue and pushes, labelled `workspace` and `store` (its code).
fn store_metrics(
    text: &mut String,
    gauges: &[stockpool_store::metrics::StoreGauge],
    pushes: &std::collections::BTreeMap<(i64, i64), stockpool_store::metrics::StorePushes>,
    now: stockpool_core::Timestamp,
) {
    use std::fmt::Write;
    use stockpool_store::metrics::{RESULTS, STALENESS_BUCKETS_MS};
    let labels: Vec<(String, Option<&stockpool_store::metrics::StorePushes>, &stockpool_store::metrics::StoreGauge)> =
        gauges
            .iter()
            .map(|g| {
                let l = format!("workspace=\"{}\",store=\"{}\"", label(&g.workspace), label(&g.store));
                (l, pushes.get(&(g.workspace_id, g.store_id)), g)
            })
            .collect();
    let _ = writeln!(text, "# HELP stockpool_store_queue_depth Listings of the store with a push queued.");
    let _ = writeln!(text, "# TYPE stockpool_store_queue_depth gauge");
    for (l, _, g) in &labels {
        let _ = writeln!(text, "stockpool_store_queue_depth{{{l}}} {}", g.pending);
    }
    let _ = writeln!(
        text,
        "# HELP stockpool_store_oldest_pending_seconds How long the store's oldest queued push has waited (0: none)."
    );
    let _ = writeln!(text, "# TYPE stockpool_store_oldest_pending_seconds gauge");
    for (l, _, g) in &labels {
        let age = g.oldest_queued_at.map_or(0, |at| (now.0 - at.0).max(0));
        let _ = writeln!(text, "stockpool_store_oldest_pending_seconds{{{l}}} {:.3}", age as f64 / 1000.0);
    }
    let _ = writeln!(text, "# HELP stockpool_store_pushes_total Push attempts to the store, by sync-record result.");
    let _ = writeln!(text, "# TYPE stockpool_store_pushes_total counter");
    for (l, p, _) in &labels {
        for (i, result) in RESULTS.iter().enumerate() {
            let n = p.map_or(0, |p| p.results[i]);
            let _ = writeln!(text, "stockpool_store_pushes_total{{{l},result=\"{result}\"}} {n}");
        }
    }
    let _ = writeln!(
        text,
        "# HELP stockpool_store_staleness_seconds From a listing's figure first moving to the channel taking it."
    );
    let _ = writeln!(text, "# TYPE stockpool_store_staleness_seconds histogram");
    for (l, p, _) in &labels {
        let default = stockpool_store::metrics::StorePushes::default();
        let p = p.unwrap_or(&default);
        let mut cumulative = 0;
        for (i, bound) in STALENESS_BUCKETS_MS.iter().enumerate() {
            cumulative += p.staleness[i];
            let le = *bound as f64 / 1000.0;
            let _ = writeln!(text, "stockpool_store_staleness_seconds_bucket{{{l},le=\"{le}\"}} {cumulative}");
        }
        cumulative += p.staleness[STALENESS_BUCKETS_MS.len()];
        let _ = writeln!(text, "stockpool_store_staleness_seconds_bucket{{{l},le=\"+Inf\"}} {cumulative}");
        let _ =
            writeln!(text, "stockpool_store_staleness_seconds_sum{{{l}}} {:.3}", p.staleness_sum_ms as f64 / 1000.0);
        let _ = writeln!(text, "stockpool_store_staleness_seconds_count{{{l}}} {cumulative}");
    }
    let _ = writeln!(
        text,
        "# HELP stockpool_store_channel_calls_total Calls made to the store's channel: pushes, read-backs and polls."
    );
    let _ = writeln!(text, "# TYPE stockpool_store_channel_calls_total counter");
    for (l, p, _) in &labels {
        let _ = writeln!(text, "stockpool_store_channel_calls_total{{{l}}} {}", p.map_or(0, |p| p.calls));
    }
    let _ = writeln!(
        text,
        "# HELP stockpool_store_rate_limit_calls_per_second The rate the store's calls are paced by (its budget; 0: not pushed by this node)."
    );
    let _ = writeln!(text, "# TYPE stockpool_store_rate_limit_calls_per_second gauge");
    for (l, p, _) in &labels {
        let rate = p.map_or(0, |p| p.rate_milli) as f64 / 1000.0;
        let _ = writeln!(text, "stockpool_store_rate_limit_calls_per_second{{{l}}} {rate:.3}");
    }
    let _ = writeln!(
        text,
        "# HELP stockpool_store_poll_lag_seconds Since the store's last completed order poll started (polled channels)."
    );
    let _ = writeln!(text, "# TYPE stockpool_store_poll_lag_seconds gauge");
    for (l, p, _) in &labels {
        if let Some(at) = p.and_then(|p| p.polled_at) {
            let _ =
                writeln!(text, "stockpool_store_poll_lag_seconds{{{l}}} {:.3}", (now.0 - at.0).max(0) as f64 / 1000.0);
        }
    }
}

/// Longest plain-text error body of a layer read to put its words in a problem's detail.
const LAYER_ERROR_BYTES_MAX: usize = 4096;

/// Every error answer is an RFC 9457 problem with a sentence, whichever layer sent it:
/// the body limit's 413 and axum's query and path rejections come as plain text, a 405
/// and the timeout's 408 with no body at all. Problems and the dashboard's HTML pages
/// pass as they are; the layer's other headers (`Allow`, `Retry-After`) are kept.
async fn errors_as_problems(req: Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let kind = res.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    if kind.starts_with(b"application/problem+json") || kind.starts_with(b"text/html") {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let said = axum::body::to_bytes(body, LAYER_ERROR_BYTES_MAX).await.unwrap_or_default();
    let said = String::from_utf8_lossy(&said).trim().to_string();
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("the body is larger than the {BODY_BYTES_MAX} bytes allowed"),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            if allowed.is_empty() {
                format!("this path does not take {method}")
            } else {
                format!("this path does not take {method}; it takes {allowed}")
            }
        }
        StatusCode::REQUEST_TIMEOUT => {
            format!("the request took longer than the {} seconds allowed and was stopped", REQUEST_TIMEOUT.as_secs())
        }
        _ if !said.is_empty() => format!("the request is not valid: {said}"),
        _ => format!("the request failed: {}", status.canonical_reason().unwrap_or("error").to_lowercase()),
    };
    let problem = ApiError::new(status, detail).into_response();
    let (fresh, body) = problem.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(fresh.headers);
    Response::from_parts(parts, body)
}

// ---- webhooks -----------------------------------------------------------------------------

/// `POST /webhooks/{channel}/{store}`: a channel's delivery. No token: the channel's
/// signature is the credential (`stockpool-worker`'s `intake.rs` does the work). 200 once
/// it is kept and applied (or changes nothing: a redelivery, an event we do not act on);
/// 202 when it is kept but could not be parsed or applied (outcome `failed`, replayed by
/// `stockpool inbox replay`): a channel retries every non-2xx and gives up on an
/// endpoint that keeps failing (WooCommerce disables the webhook after 5 failures in a
/// row), while a body we could not read would only fail again.
async fn webhook(
    State(app): State<App>,
    Path((channel, store)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than the {BODY_BYTES_MAX} bytes a webhook delivery may have"),
        ),
        status => ApiError::new(status, format!("the body could not be read: {}", rejection.body_text())),
    })?;
    match app.intake.receive(&channel, &store, &headers, &body).await {
        Ok(taken) => {
            let status = if taken.outcome == stockpool_store::inbox::Outcome::Failed {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            let body = json!({
                "delivery": taken.delivery,
                "outcome": taken.outcome.as_str(),
                "detail": taken.detail,
                "order": taken.order,
                "seen_before": taken.seen_before,
            });
            Ok((status, Json(body)).into_response())
        }
        Err(e) => {
            let status = match &e {
                IntakeError::UnknownChannel { .. }
                | IntakeError::UnknownStore { .. }
                | IntakeError::NoWebhooks { .. } => StatusCode::NOT_FOUND,
                IntakeError::AmbiguousStore { .. } => StatusCode::CONFLICT,
                IntakeError::NotBuiltYet { .. } => StatusCode::NOT_IMPLEMENTED,
                IntakeError::Unverifiable(_) | IntakeError::Signature(_) => StatusCode::UNAUTHORIZED,
                IntakeError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            if let IntakeError::Store(e) = e {
                return Err(e.into());
            }
            let mut res = ApiError::new(status, e.to_string()).into_response();
            if status == StatusCode::UNAUTHORIZED {
                // The challenge names the channel's signature, not our API tokens.
                res.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Signature"));
            }
            Ok(res)
        }
    }
}

// ---- warehouses -------------------------------------------------------------------------

async fn create_warehouse(
    State(app): State<App>,
    Auth(ws): Auth,
    Body(b): Body<WarehouseInput>,
) -> Result<Response, ApiError> {
    exec(&app, ws, Command::CreateWarehouse(b)).await
}

async fn list_warehouses(
    State(app): State<App>,
    Auth(ws): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let rows =
        read(&app, ws, |w| Ok(w.state.warehouses().iter().map(|x| (x.code.clone(), w.warehouse_view(x))).collect()))
            .await?;
    page(rows, &q, false)
}

async fn get_warehouse(
    State(app): State<App>,
    Auth(ws): Auth,
    Path(code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    read(&app, ws, |w| {
        let x = w
            .state
            .warehouses()
            .iter()
            .find(|x| x.code == code)
            .ok_or_else(|| ApiError::not_found("warehouse", &code))?;
        Ok(Json(w.warehouse_view(x)))
    })
    .await
}

// ---- items -------------------------------------------------------------------------------

async fn create_item(State(app): State<App>, Auth(ws): Auth, Body(b): Body<ItemInput>) -> Result<Response, ApiError> {
    exec(&app, ws, Command::CreateItem(b)).await
}

async fn list_items(
    State(app): State<App>,
    Auth(ws): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let rows = read(&app, ws, |w| {
        Ok(w.state
            .items()
            .filter(|i| q.status.as_deref().is_none_or(|s| json!(i.status) == json!(s)))
            .map(|i| (i.sku.clone(), w.item_view(i)))
            .collect())
    })
    .await?;
    page(rows, &q, false)
}

async fn get_item(State(app): State<App>, Auth(ws): Auth, Path(sku): Path<String>) -> Result<Json<Value>, ApiError> {
    read(&app, ws, |w| {
        Ok(Json(w.item_view(w.state.item_by_sku(&sku).ok_or_else(|| ApiError::not_found("item", &sku))?)))
    })
    .await
}

async fn patch_item(
    State(app): State<App>,
    Auth(ws): Auth,
    Path(sku): Path<String>,
    Body(b): Body<ItemPatch>,
) -> Result<Response, ApiError> {
    exec(&app, ws, Command::PatchItem(sku, b)).await
}

async fn get_components(
    State(app): State<App>,
    Auth(ws): Auth,
    Path(sku): Path<String>,
) -> Result<Json<Value>, ApiError> {
    read(&app, ws, |w| {
        let item = w.state.item_by_sku(&sku).ok_or_else(|| ApiError::not_found("item", &sku))?;
        Ok(Json(json!({"sku": item.sku, "components": w.item_view(item)["components"].clone()})))
    })
    .await
}

async fn put_components(
    State(app): State<App>,
    Auth(ws): Auth,
    Path(sku): Path<String>,
    Body(b): Body<ComponentsInput>,
) -> Result<Response, ApiError> {
    let reply = app.store.execute(ws, Command::PutComponents(sku, b)).await?;
    Ok((StatusCode::OK, Json(json!({"sku": reply.body["sku"], "components": reply.body["components"]})))
        .into_response())
}

async fn get_stock(State(app): State<App>, Auth(ws): Auth, Path(sku): Path<String>) -> Result<Json<Value>, ApiError> {
    read(&app, ws, |w| {
        let item = w.state.item_by_sku(&sku).ok_or_else(|| ApiError::not_found("item", &sku))?;
        Ok(Json(w.stock_view(item.id)))
    })
    .await
}

async fn adjust(State(app): State<App>, Auth(ws): Auth, Body(b): Body<AdjustmentInput>) -> Result<Response, ApiError> {
    exec(&app, ws, Command::Adjust(b)).await
}

// ---- stores --------------------------------------------------------------------------------

async fn create_store(State(app): State<App>, Auth(ws): Auth, Body(b): Body<StoreInput>) -> Result<Response, ApiError> {
    exec(&app, ws, Command::CreateStore(b)).await
}

async fn list_stores(
    State(app): State<App>,
    Auth(ws): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let rows = read(&app, ws, |w| Ok(w.state.stores().map(|s| (s.code.clone(), w.store_view(s))).collect())).await?;
    page(rows, &q, false)
}

async fn get_store(State(app): State<App>, Auth(ws): Auth, Path(code): Path<String>) -> Result<Json<Value>, ApiError> {
    read(&app, ws, |w| {
        let s = w.state.stores().find(|s| s.code == code).ok_or_else(|| ApiError::not_found("store", &code))?;
        Ok(Json(w.store_view(s)))
    })
    .await
}

async fn patch_store(
    State(app): State<App>,
    Auth(ws): Auth,
    Path(code): Path<String>,
    Body(b): Body<StorePatch>,
) -> Result<Response, ApiError> {
    exec(&app, ws, Command::PatchStore(code, b)).await
}

// ---- listings ------------------------------------------------------------------------------

async fn create_listing(
    State(app): State<App>,
    Auth(ws): Auth,
    Body(b): Body<ListingInput>,
) -> Result<Response, ApiError> {
    exec(&app, ws, Command::CreateListings(vec![b])).await
}

async fn create_listings_bulk(
    State(app): State<App>,
    Auth(ws): Auth,
    Body(b): Body<ListingsInput>,
) -> Result<Response, ApiError> {
    if b.listings.is_empty() || b.listings.len() > BULK_LISTINGS_MAX {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("give 1 to {BULK_LISTINGS_MAX} listings")));
    }
    let mut res = exec(&app, ws, Command::CreateListings(b.listings.clone())).await?;
    if b.listings.len() == 1 {
        // One listing in bulk still answers as a list.
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, BODY_BYTES_MAX)
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        res = (parts.status, Json(json!({"data": [v]}))).into_response();
    }
    Ok(res)
}

async fn list_listings(
    State(app): State<App>,
    Auth(ws): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let rows = read(&app, ws, |w| {
        Ok(w.state
            .listings()
            .filter(|l| q.store.as_deref().is_none_or(|s| w.store_code(l.store) == s))
            .filter(|l| q.sku.as_deref().is_none_or(|s| w.sku(l.item) == s))
            .map(|l| (public_id(Kind::Listing, w.id, l.id.0), w.listing_view(l)))
            .collect())
    })
    .await?;
    page(rows, &q, true)
}

async fn get_listing(State(app): State<App>, Auth(ws): Auth, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    read(&app, ws, |w| {
        let l = w
            .state
            .listing(ListingId(id_of(Kind::Listing, w, &id, "listing")?))
            .ok_or_else(|| ApiError::not_found("listing", &id))?;
        Ok(Json(w.listing_view(l)))
    })
    .await
}

async fn explain_listing(
    State(app): State<App>,
    Auth(ws): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    read(&app, ws, |w| {
        let lid = ListingId(id_of(Kind::Listing, w, &id, "listing")?);
        w.explain_view(lid).map(Json).ok_or_else(|| ApiError::not_found("listing", &id))
    })
    .await
}

// ---- rules ----------------------------------------------------------------------------------

async fn create_rule(State(app): State<App>, Auth(ws): Auth, Body(b): Body<RuleInput>) -> Result<Response, ApiError> {
    exec(&app, ws, Command::CreateRule(b)).await
}

async fn list_rules(
    State(app): State<App>,
    Auth(ws): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let rows = read(&app, ws, |w| {
        Ok(w.state.rules().map(|r| (public_id(Kind::Rule, w.id, r.id.0), w.rule_view(r))).collect())
    })
    .await?;
    page(rows, &q, true)
}

async fn get_rule(State(app): State<App>, Auth(ws): Auth, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    read(&app, ws, |w| {
        let r =
            w.state.rule(RuleId(id_of(Kind::Rule, w, &id, "rule")?)).ok_or_else(|| ApiError::not_found("rule", &id))?;
        Ok(Json(w.rule_view(r)))
    })
    .await
}

async fn update_rule(
    State(app): State<App>,
    Auth(ws): Auth,
    Path(id): Path<String>,
    Body(b): Body<RuleInput>,
) -> Result<Response, ApiError> {
    exec(&app, ws, Command::UpdateRule(id, b)).await
}

async fn delete_rule(State(app): State<App>, Auth(ws): Auth, Path(id): Path<String>) -> Result<Response, ApiError> {
    exec(&app, ws, Command::DeleteRule(id)).await
}

// ---- orders ---------------------------------------------------------------------------------

async fn create_order(State(app): State<App>, Auth(ws): Auth, Body(b): Body<OrderInput>) -> Result<Response, ApiError> {
    exec(&app, ws, Command::CreateOrder(b)).await
}

async fn list_orders(
    State(app): State<App>,
    Auth(ws): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(s) = q.status.as_deref() {
        one_of("status", s, &stockpool_core::OrderStatus::ALL.map(|s| s.as_str()))?;
    }
    let rows = read(&app, ws, |w| {
        Ok(w.state
            .orders()
            .filter(|o| q.status.as_deref().is_none_or(|s| o.status.as_str() == s))
            .filter(|o| q.store.as_deref().is_none_or(|s| w.store_code(o.store) == s))
            .map(|o| (public_id(Kind::Order, w.id, o.id.0), w.order_view(o)))
            .collect())
    })
    .await?;
    page(rows, &q, true)
}

async fn get_order(State(app): State<App>, Auth(ws): Auth, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    read(&app, ws, |w| {
        let o = w
            .state
            .order(OrderId(id_of(Kind::Order, w, &id, "order")?))
            .ok_or_else(|| ApiError::not_found("order", &id))?;
        Ok(Json(w.order_view(o)))
    })
    .await
}

async fn order_action(
    State(app): State<App>,
    Auth(ws): Auth,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let action = match action.as_str() {
        "accept" => OrderAction::Accept,
        "decline" => OrderAction::Decline,
        "pay" => OrderAction::Pay,
        "fulfill" => OrderAction::Fulfill,
        "cancel" => OrderAction::Cancel,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("orders have no action {other:?}: use accept, decline, pay, fulfill or cancel"),
            ))
        }
    };
    exec(&app, ws, Command::Order(id, action)).await
}

// ---- production cards ---------------------------------------------------------------------------

async fn create_card(State(app): State<App>, Auth(ws): Auth, Body(b): Body<CardInput>) -> Result<Response, ApiError> {
    exec(&app, ws, Command::CreateCard(b)).await
}

async fn list_cards(
    State(app): State<App>,
    Auth(ws): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let rows = read(&app, ws, |w| {
        Ok(w.state
            .cards()
            .filter(|c| q.status.as_deref().is_none_or(|s| json!(c.status) == json!(s)))
            .map(|c| (public_id(Kind::Card, w.id, c.id.0), w.card_view(c)))
            .collect())
    })
    .await?;
    page(rows, &q, true)
}

async fn get_card(State(app): State<App>, Auth(ws): Auth, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    read(&app, ws, |w| {
        let c = w
            .state
            .card(CardId(id_of(Kind::Card, w, &id, "production card")?))
            .ok_or_else(|| ApiError::not_found("production card", &id))?;
        Ok(Json(w.card_view(c)))
    })
    .await
}

async fn card_action(
    State(app): State<App>,
    Auth(ws): Auth,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let action = match action.as_str() {
        "start" => CardAction::Start,
        "done" => CardAction::Done,
        "cancel" => CardAction::Cancel,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("production cards have no action {other:?}: use start, done or cancel"),
            ))
        }
    };
    exec(&app, ws, Command::Card(id, action)).await
}

// ---- sync ----------------------------------------------------------------------------------------

async fn sync_now(State(app): State<App>, Auth(ws): Auth, body: axum::body::Bytes) -> Result<Response, ApiError> {
    // The body is optional here: an empty one means every store.
    let input: SyncInput = if body.iter().all(u8::is_ascii_whitespace) {
        SyncInput::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the body is not valid: {e}")))?
    };
    // SPEC section 5a: Sync now answers 202 with what it queued; the pushes follow.
    let reply = app.store.execute(ws, Command::SyncNow(input)).await?;
    Ok((StatusCode::ACCEPTED, Json(reply.body)).into_response())
}

async fn list_sync_records(
    State(app): State<App>,
    Auth(ws): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    if limit == 0 || limit > PAGE_MAX {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("limit must be between 1 and {PAGE_MAX}")));
    }
    if let Some(r) = q.result.as_deref() {
        one_of("result", r, &stockpool_store::metrics::RESULTS)?;
    }
    let after = match &q.cursor {
        Some(c) => Some(c.strip_prefix("sr_").and_then(|n| n.parse::<i64>().ok()).ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("cursor {c:?} is not a cursor this list gave"))
        })?),
        None => None,
    };
    let query = read(&app, ws, |w| {
        let store = match &q.store {
            Some(code) => Some(w.store_id(code).map_err(|_| ApiError::not_found("store", code))?.0 as i64),
            None => None,
        };
        let item = match &q.sku {
            Some(sku) => Some(w.item_id(sku).map_err(|_| ApiError::not_found("item", sku))?.0 as i64),
            None => None,
        };
        Ok(stockpool_store::SyncRecordQuery {
            store,
            item,
            result: q.result.clone(),
            since: q.since,
            until: q.until,
            after,
        })
    })
    .await?;
    // One more than the page, to know whether another follows.
    let mut rows = app.store.sync_records(ws, &query, limit as i64 + 1).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(|r| format!("sr_{}", r.id)) } else { None };
    let data = read(&app, ws, |w| {
        Ok(rows
            .into_iter()
            .map(|r| {
                // A poll's record names no listing, SKU or quantity.
                let poll = r.is_poll();
                json!({
                    "id": format!("sr_{}", r.id),
                    "listing": (!poll).then(|| public_id(Kind::Listing, w.id, r.listing as u64)),
                    "store": w.store_code(stockpool_core::StoreId(r.store as u64)),
                    "sku": (!poll).then(|| w.sku(stockpool_core::ItemId(r.item as u64))),
                    "old_quantity": r.old_quantity, "new_quantity": (!poll).then_some(r.new_quantity), "reason": r.reason,
                    "rule": r.rule.map(|(id, v)| json!({"id": public_id(Kind::Rule, w.id, id as u64), "version": v})),
                    "result": r.result, "status_code": r.status_code, "detail": r.detail, "attempt": r.attempt,
                    "created_at": stockpool_store::workspace::millis_to_rfc3339(r.created_at),
                })
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({"data": data, "next_cursor": next})))
}

async fn get_settings(State(app): State<App>, Auth(ws): Auth) -> Result<Json<Value>, ApiError> {
    read(&app, ws, |w| Ok(Json(json!({"sync_enabled": w.state.sync_enabled()})))).await
}

#[derive(Deserialize)]
struct SettingsInput {
    sync_enabled: bool,
}

async fn put_settings(
    State(app): State<App>,
    Auth(ws): Auth,
    Body(b): Body<SettingsInput>,
) -> Result<Response, ApiError> {
    exec(&app, ws, Command::SetSyncEnabled(b.sync_enabled)).await
}
