//! Channel sync end to end on the generic `webhook` channel: the real server with its
//! dispatchers, and a receiver on loopback that checks what SPEC section 5 says a push is.
//!
//! The dispatchers run in real time here, so the tests wait for what the receiver gets,
//! each wait bounded (`wait_for`).

use crate::both;
use crate::helpers::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One push as the receiver got it.
#[derive(Clone, Debug)]
struct Got {
    at: Instant,
    signature: String,
    body: Vec<u8>,
}

/// A webhook receiver on 127.0.0.1:0 that records every request and answers the next
/// scripted status (200 once the script is used up).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn receiver(script: Vec<(u16, Option<&'static str>)>) -> Receiver {
    use axum::http::{HeaderMap, StatusCode};
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
    let (g, s) = (got.clone(), script.clone());
    let app = axum::Router::new().route(
        "/push",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                let signature =
                    headers.get("x-stockpool-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                g.lock().unwrap().push(Got { at: Instant::now(), signature, body: body.to_vec() });
                let (status, retry_after) = s.lock().unwrap().pop_front().unwrap_or((200, None));
                let mut h = HeaderMap::new();
                if let Some(r) = retry_after {
                    h.insert("retry-after", r.parse().unwrap());
                }
                (StatusCode::from_u16(status).unwrap(), h, "answer")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Receiver { url, got, _stop: stop }
}

impl Receiver {
    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// Waits until `f` holds, at most ten seconds.
async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "waited ten seconds for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn body(g: &Got) -> Value {
    serde_json::from_slice(&g.body).unwrap()
}

fn signed(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The store's sync records once there are `n`, waiting at most ten seconds.
async fn records(app: &TestApp, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = app.get("/api/v1/sync-records?store=hook").await.body;
        if seen["data"].as_array().is_some_and(|d| d.len() >= n) || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn seed(app: &TestApp, url: &str) {
    expect(&app.post("/api/v1/warehouses", json!({"code":"main","name":"Main"})).await, 201);
    expect(&app.post("/api/v1/items", json!({"sku":"MUG-RED","name":"Red mug"})).await, 201);
    let stock = json!({"sku":"MUG-RED","warehouse":"main","delta":12,"reason":"received"});
    expect(&app.post("/api/v1/stock/adjustments", stock).await, 201);
    let store =
        json!({"code":"hook","name":"My site","channel":"webhook","url":url,"secret":"s3cret","schedule":"realtime"});
    expect(&app.post("/api/v1/stores", store).await, 201);
    let listing = json!({"store":"hook","external_id":"mug-1","store_sku":"MUG-R","sku":"MUG-RED"});
    expect(&app.post("/api/v1/listings", listing).await, 201);
}

both!(a_stock_change_reaches_the_webhook_signed_with_the_right_quantity, |app: TestApp| async move {
    let r = receiver(vec![]).await;
    seed(&app, &r.url).await;
    let first = wait_for("the first push", || r.got().first().cloned()).await;
    let b = body(&first);
    assert_eq!(
        (b["store"].as_str(), b["store_sku"].as_str(), b["sku"].as_str()),
        (Some("hook"), Some("MUG-R"), Some("MUG-RED"))
    );
    assert_eq!(b["quantity"], 12);
    assert!(b["listing"].as_str().is_some_and(|l| !l.is_empty()) && b["sent_at"].is_string(), "{b}");
    assert_eq!(first.signature, signed("s3cret", &first.body), "signed with the store secret");

    let order = json!({"store":"hook","external_id":"A-1","lines":[{"store_sku":"MUG-R","quantity":5}]});
    expect(&app.post("/api/v1/orders", order).await, 201);
    let second = wait_for("the push after the order", || r.got().get(1).cloned()).await;
    assert_eq!(body(&second)["quantity"], 7);
    assert_eq!(second.signature, signed("s3cret", &second.body));

    // Every attempt has its sync record, and the outbox is empty once both settled.
    let seen = records(&app, 2).await;
    let got: Vec<(&str, i64, Option<i64>, Option<i64>)> = seen["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["result"].as_str().unwrap(),
                r["new_quantity"].as_i64().unwrap(),
                r["old_quantity"].as_i64(),
                r["status_code"].as_i64(),
            )
        })
        .collect();
    assert_eq!(got, vec![("ok", 12, None, Some(200)), ("ok", 7, Some(12), Some(200))]);
    assert_eq!(app.get("/api/v1/listings?store=hook").await.body["data"][0]["published_quantity"], 7);
    assert_eq!(r.got().len(), 2, "one push per change, nothing sent twice");

    // Sync now pushes again what the channel already has.
    expect(&app.post("/api/v1/sync", json!({"store":"hook"})).await, 202);
    let third = wait_for("the push Sync now queued", || r.got().get(2).cloned()).await;
    assert_eq!(body(&third)["quantity"], 7);
});

both!(a_429_with_retry_after_is_honoured_and_recorded, |app: TestApp| async move {
    let r = receiver(vec![(429, Some("1")), (503, None)]).await;
    seed(&app, &r.url).await;
    let got = wait_for("three attempts", || Some(r.got()).filter(|g| g.len() >= 3)).await;
    assert!(got[1].at - got[0].at >= Duration::from_millis(950), "Retry-After: 1 waited {:?}", got[1].at - got[0].at);
    assert!(got.iter().all(|g| body(g)["quantity"] == 12));
    let seen = records(&app, 3).await;
    let results: Vec<(&str, Option<i64>, i64)> = seen["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["result"].as_str().unwrap(), r["status_code"].as_i64(), r["attempt"].as_i64().unwrap()))
        .collect();
    assert_eq!(results, vec![("retry", Some(429), 1), ("retry", Some(503), 2), ("ok", Some(200), 3)]);

    // /metrics counts the store's attempts by result, its one delivered figure (in the
    // staleness histogram), and an empty queue.
    let metrics = reqwest::get(format!("{}/metrics", app.base)).await.unwrap().text().await.unwrap();
    let ws = "workspace=\"test\",store=\"hook\"";
    for line in [
        format!("stockpool_store_pushes_total{{{ws},result=\"ok\"}} 1\n"),
        format!("stockpool_store_pushes_total{{{ws},result=\"retry\"}} 2\n"),
        format!("stockpool_store_pushes_total{{{ws},result=\"failed\"}} 0\n"),
        format!("stockpool_store_queue_depth{{{ws}}} 0\n"),
        format!("stockpool_store_oldest_pending_seconds{{{ws}}} 0.000\n"),
        format!("stockpool_store_staleness_seconds_count{{{ws}}} 1\n"),
        format!("stockpool_store_staleness_seconds_bucket{{{ws},le=\"+Inf\"}} 1\n"),
        // Its use of the rate budget: three calls against the webhook's 10 a second.
        format!("stockpool_store_channel_calls_total{{{ws}}} 3\n"),
        format!("stockpool_store_rate_limit_calls_per_second{{{ws}}} 10.000\n"),
    ] {
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
});
