//! The generic `webhook` channel's far end: a seller's own site.
//!
//! SPEC section 5 fixes what stockpool sends: a `POST` of
//! `{"store","listing","store_sku","sku","quantity","sent_at"}` as JSON, signed with
//! `X-Stockpool-Signature: sha256=<hex HMAC-SHA256 of the body with the store secret>`.
//! `WebhookShop` takes exactly that and refuses anything else: a missing, repeated or
//! wrong signature is 401; a body that is not that object (a field missing, of the wrong
//! type, an unknown one, a negative quantity, another store's name) is 400. What it took
//! is what its shoppers see (`shown`), and every request is in its `log` with the answer
//! it got, so tests can check order, rate and coverage from the receiving end.
//!
//! Orders go the other way: the shop signs them the same way (`signed_order`,
//! `signed_cancel`) for whoever posts them to `POST /webhooks/webhook/{store}`. The shop
//! does not post them itself: it has no HTTP client, and the caller decides when a
//! shopper buys.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::faults::{Fault, FaultDraws, Faults};

/// The path the shop takes pushes at; its `url` ends with it.
pub const PUSH_PATH: &str = "/push";

/// Most requests one shop remembers in its `log`; older ones are forgotten first
/// (`dropped_from_log` counts them), so a long demo stays bounded.
pub const LOG_MAX: usize = 1_000_000;

/// What a shop is: whose pushes it takes and how it misbehaves.
#[derive(Clone, Debug)]
pub struct ShopConfig {
    /// The stockpool store's `code`: pushes must name it as `store`.
    pub store: String,
    /// The store's secret: signs pushes and orders both ways.
    pub secret: String,
    pub faults: Faults,
}

/// A listing as the shop's shoppers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    /// stockpool's listing id (`listing` in the push).
    pub listing: String,
    pub sku: String,
    pub quantity: i64,
    /// The push's `sent_at`.
    pub sent_at: String,
    /// When the push that set it arrived.
    pub at: Instant,
}

/// One request the shop got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub at: Instant,
    /// The push's `store_sku` and `quantity`, when the body was one.
    pub store_sku: Option<String>,
    pub quantity: Option<i64>,
    /// What the shop answered.
    pub status: u16,
}

#[derive(Debug)]
struct ShopState {
    shown: BTreeMap<String, Shown>,
    log: std::collections::VecDeque<Received>,
    dropped_from_log: u64,
    draws: FaultDraws,
}

#[derive(Clone)]
struct Shared {
    config: Arc<ShopConfig>,
    state: Arc<Mutex<ShopState>>,
}

/// A running shop; stops when dropped or at `stop`.
pub struct WebhookShop {
    addr: SocketAddr,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for WebhookShop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookShop").field("addr", &self.addr).field("store", &self.shared.config.store).finish()
    }
}

/// The push body SPEC section 5 fixes; nothing more is accepted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Push {
    store: String,
    listing: String,
    store_sku: String,
    sku: String,
    quantity: i64,
    sent_at: String,
}

impl WebhookShop {
    /// Starts a shop on `127.0.0.1:0`.
    pub async fn start(config: ShopConfig) -> std::io::Result<WebhookShop> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            state: Arc::new(Mutex::new(ShopState {
                shown: BTreeMap::new(),
                log: std::collections::VecDeque::new(),
                dropped_from_log: 0,
                draws: FaultDraws::new(config.faults),
            })),
            config: Arc::new(config),
        };
        let app = axum::Router::new().route(PUSH_PATH, axum::routing::post(take_push)).with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                eprintln!("the emulated webhook shop stopped: {e}");
            }
        });
        Ok(WebhookShop { addr, shared, stop: Some(stop), task: Some(task) })
    }

    /// The URL to give the store (`url`).
    pub fn url(&self) -> String {
        format!("http://{}{PUSH_PATH}", self.addr)
    }

    pub fn store(&self) -> &str {
        &self.shared.config.store
    }

    fn state(&self) -> MutexGuard<'_, ShopState> {
        lock(&self.shared.state)
    }

    /// What the shop shows for `store_sku`, `None` before any push named it.
    pub fn shown(&self, store_sku: &str) -> Option<i64> {
        self.state().shown.get(store_sku).map(|s| s.quantity)
    }

    /// Every listing the shop shows, by `store_sku`.
    pub fn shown_all(&self) -> BTreeMap<String, Shown> {
        self.state().shown.clone()
    }

    /// How many listings the shop shows.
    pub fn shown_count(&self) -> usize {
        self.state().shown.len()
    }

    /// How many pushes the shop took (answered 200) at or after `from`, of those still in
    /// the log.
    pub fn taken_since(&self, from: Instant) -> usize {
        self.state().log.iter().rev().take_while(|r| r.at >= from).filter(|r| r.status == 200).count()
    }

    /// Every request still remembered, oldest first.
    pub fn log(&self) -> Vec<Received> {
        self.state().log.iter().cloned().collect()
    }

    /// How many requests fell out of the log (over `LOG_MAX`).
    pub fn dropped_from_log(&self) -> u64 {
        self.state().dropped_from_log
    }

    /// An order placed on this shop, as the body and `X-Stockpool-Signature` value to post
    /// to `POST /webhooks/webhook/{store}`.
    pub fn signed_order(&self, external_id: &str, lines: &[(&str, i64)]) -> (Vec<u8>, String) {
        let lines: Vec<serde_json::Value> =
            lines.iter().map(|(sku, q)| serde_json::json!({"store_sku": sku, "quantity": q})).collect();
        let body = serde_json::to_vec(&serde_json::json!({"external_id": external_id, "lines": lines}))
            .expect("a JSON value serialises");
        let signature = signature(&self.shared.config.secret, &body);
        (body, signature)
    }

    /// The shop cancelling order `external_id`, signed like `signed_order`.
    pub fn signed_cancel(&self, external_id: &str) -> (Vec<u8>, String) {
        let body = serde_json::to_vec(&serde_json::json!({"external_id": external_id, "cancel": true}))
            .expect("a JSON value serialises");
        let signature = signature(&self.shared.config.secret, &body);
        (body, signature)
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

impl Drop for WebhookShop {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A poisoned lock only means a test thread panicked while holding it; the state is
/// still the last one written.
fn lock(state: &Mutex<ShopState>) -> MutexGuard<'_, ShopState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// `sha256=<hex HMAC-SHA256 of body with secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `value` is the body's signature, compared in constant time.
fn signed_by(secret: &str, body: &[u8], value: &str) -> bool {
    let Some(digits) = value.strip_prefix("sha256=") else { return false };
    let Ok(tag) = hex::decode(digits) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// Whether `sent_at` looks like RFC 3339 in UTC as SPEC's examples write it
/// (`2026-12-02T10:00:00Z`, fractions allowed).
fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (s.ends_with('Z') || s.ends_with("+00:00"))
}

async fn take_push(State(shop): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let at = Instant::now();
    let (status, push, fault) = check(&shop, &headers, &body);
    if let Fault::Slow(d) = fault {
        tokio::time::sleep(d).await;
    }
    let mut state = lock(&shop.state);
    if let (StatusCode::OK, Some(p)) = (status, &push) {
        // A push that arrives after a newer one was taken still overwrites it: that is
        // what a real site does, and what the tests that look for it must see.
        state.shown.insert(
            p.store_sku.clone(),
            Shown {
                listing: p.listing.clone(),
                sku: p.sku.clone(),
                quantity: p.quantity,
                sent_at: p.sent_at.clone(),
                at,
            },
        );
    }
    if state.log.len() >= LOG_MAX {
        state.log.pop_front();
        state.dropped_from_log += 1;
    }
    state.log.push_back(Received {
        at,
        store_sku: push.as_ref().map(|p| p.store_sku.clone()),
        quantity: push.as_ref().map(|p| p.quantity),
        status: status.as_u16(),
    });
    drop(state);
    let mut response = (status, status.canonical_reason().unwrap_or("")).into_response();
    if let Fault::Throttle { retry_after_secs: Some(s) } = fault {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            response.headers_mut().insert("retry-after", v);
        }
    }
    response
}

/// The answer to one request, the push it carried (when it was a well-formed, signed
/// push, whatever the answer), and the fault drawn for it.
fn check(shop: &Shared, headers: &HeaderMap, body: &[u8]) -> (StatusCode, Option<Push>, Fault) {
    let mut signatures = headers.get_all("x-stockpool-signature").iter();
    let signed = match (signatures.next(), signatures.next()) {
        (Some(v), None) => v.to_str().is_ok_and(|v| signed_by(&shop.config.secret, body, v)),
        _ => false,
    };
    if !signed {
        return (StatusCode::UNAUTHORIZED, None, Fault::None);
    }
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, None, Fault::None);
    }
    let push = match serde_json::from_slice::<Push>(body) {
        Ok(p) if p.store == shop.config.store && p.quantity >= 0 && is_rfc3339_utc(&p.sent_at) => p,
        _ => return (StatusCode::BAD_REQUEST, None, Fault::None),
    };
    let fault = lock(&shop.state).draws.draw();
    let status = match fault {
        Fault::Throttle { .. } => StatusCode::TOO_MANY_REQUESTS,
        Fault::Error => StatusCode::SERVICE_UNAVAILABLE,
        Fault::None | Fault::Slow(_) => StatusCode::OK,
    };
    (status, Some(push), fault)
}
