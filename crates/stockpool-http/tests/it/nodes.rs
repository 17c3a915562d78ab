//! Several nodes and a store's own pacing: the push lease in the store (acquired, renewed,
//! expired, taken over, fencing a settle), `paused` over HTTP, and an `every_minutes`
//! schedule end to end, on both backends.
//!
//! The lease tests drive `Storage` with named nodes and times of their own, all at or after
//! the real clock, so the server's own dispatcher (on the real clock) never takes their
//! leases. The HTTP tests use a loopback receiver and wait for the sync records of what
//! it got (`settled`, bounded); where a push must *not* happen, a second, realtime store
//! on the same item is the yardstick: once its push of the same change has settled, the
//! dispatcher has looked.

use crate::both;
use crate::helpers::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stockpool_core::Timestamp;
use stockpool_store::lease::{LEASE_EXPIRY, LEASE_RENEW_INTERVAL};
use stockpool_store::workspace::PendingPush;
use stockpool_store::{Command, Fence, Lease, NodeId, Settle, SettledAttempt, StoreError, SyncResult};

fn wall() -> Timestamp {
    Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp(t.0 + d.as_millis() as i64)
}

both!(a_free_lease_goes_to_the_first_node_and_only_its_holder_renews_it, |app: TestApp| async move {
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let (a, b) = (NodeId::named("node-a"), NodeId::named("node-b"));
    let t = wall();
    let got = app.store.acquire_lease(ws, &a, t).await.unwrap();
    assert_eq!(got, Some(Lease { generation: 1, expires_at: after(t, LEASE_EXPIRY) }));
    assert_eq!(app.store.acquire_lease(ws, &b, after(t, LEASE_RENEW_INTERVAL)).await.unwrap(), None, "held");
    assert_eq!(app.store.renew_lease(ws, &b, after(t, LEASE_RENEW_INTERVAL)).await.unwrap(), None, "not b's");
    let renewed_at = after(t, LEASE_RENEW_INTERVAL);
    let renewed = app.store.renew_lease(ws, &a, renewed_at).await.unwrap();
    assert_eq!(renewed, Some(Lease { generation: 1, expires_at: after(renewed_at, LEASE_EXPIRY) }));
    // Renewed, it outlasts the first expiry.
    assert_eq!(app.store.acquire_lease(ws, &b, after(t, LEASE_EXPIRY)).await.unwrap(), None);
    let row = app.store.lease(ws).await.unwrap().unwrap();
    assert_eq!((row.holder.as_str(), row.generation), ("node-a", 1));
    assert!(app.check().await.is_empty());
});

both!(an_expired_lease_is_taken_by_another_node_under_a_new_generation, |app: TestApp| async move {
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let (a, b) = (NodeId::named("node-a"), NodeId::named("node-b"));
    let t = wall();
    app.store.acquire_lease(ws, &a, t).await.unwrap().unwrap();
    let expired = after(t, LEASE_EXPIRY);
    // Not renewed in time, it is gone: even its holder cannot renew it.
    assert_eq!(app.store.renew_lease(ws, &a, expired).await.unwrap(), None);
    let taken = app.store.acquire_lease(ws, &b, expired).await.unwrap();
    assert_eq!(taken, Some(Lease { generation: 2, expires_at: after(expired, LEASE_EXPIRY) }));
    assert_eq!(app.store.renew_lease(ws, &a, expired).await.unwrap(), None, "a lost it");
    assert_eq!(app.store.acquire_lease(ws, &a, expired).await.unwrap(), None, "b holds it now");
    let row = app.store.lease(ws).await.unwrap().unwrap();
    assert_eq!((row.holder.as_str(), row.generation), ("node-b", 2));
    assert!(app.check().await.is_empty());
});

both!(a_released_lease_is_taken_at_once, |app: TestApp| async move {
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let (a, b) = (NodeId::named("node-a"), NodeId::named("node-b"));
    let t = wall();
    app.store.acquire_lease(ws, &a, t).await.unwrap().unwrap();
    let later = after(t, Duration::from_millis(500));
    app.store.release_lease(ws, &a, later).await.unwrap();
    assert_eq!(app.store.acquire_lease(ws, &b, later).await.unwrap().map(|l| l.generation), Some(2));
    // Releasing what it no longer holds changes nothing.
    app.store.release_lease(ws, &a, later).await.unwrap();
    assert_eq!(app.store.lease(ws).await.unwrap().unwrap().expires_at, after(later, LEASE_EXPIRY));
    assert!(app.check().await.is_empty());
});

/// A manual store (no dispatcher pushes it) with the mug listed: one pending push.
async fn manual_listing(app: &TestApp) -> (i64, PendingPush) {
    seed_mug(app).await;
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let store = app.store.read(ws, |w| w.store_id("etsy").unwrap()).await.unwrap();
    let pending = app.store.read(ws, move |w| w.pending_pushes(store)).await.unwrap();
    assert_eq!(pending.len(), 1, "the listing waits for its first push");
    (ws, pending[0].clone())
}

fn ok_attempt(p: &PendingPush) -> SettledAttempt {
    SettledAttempt {
        listing: p.listing,
        pushed: p.figure,
        old_quantity: None,
        reason: "stock_change",
        result: SyncResult::Ok,
        status_code: Some(200),
        detail: None,
        attempt: 1,
        next_attempt_at: None,
        claimed_generation: p.meta.generation,
    }
}

async fn sync_record_count(app: &TestApp) -> usize {
    app.get("/api/v1/sync-records").await.body["data"].as_array().unwrap().len()
}

both!(a_settle_fenced_by_a_lease_that_changed_hands_records_nothing, |app: TestApp| async move {
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let (a, b) = (NodeId::named("node-a"), NodeId::named("node-b"));
    // Far enough ahead that the server's own dispatcher never takes it.
    let t = after(wall(), Duration::from_secs(3600));
    let first = app.store.acquire_lease(ws, &a, t).await.unwrap().unwrap();
    let (ws, p) = manual_listing(&app).await;
    let store = app
        .store
        .read(ws, {
            let l = p.listing;
            move |w| w.state.listing(l).unwrap().store
        })
        .await
        .unwrap();
    // A's call is out when its lease expires and B takes the workspace.
    let second = app.store.acquire_lease(ws, &b, after(t, LEASE_EXPIRY)).await.unwrap().unwrap();
    let stale = Settle {
        store,
        attempts: vec![ok_attempt(&p)],
        fence: Some(Fence { node: a.clone(), generation: first.generation }),
    };
    let refused = app.store.execute(ws, Command::Settle(stale)).await;
    assert!(matches!(refused, Err(StoreError::LeaseLost { .. })), "{refused:?}");
    assert_eq!(sync_record_count(&app).await, 0, "a fenced settle records nothing");
    let still = app.store.read(ws, move |w| w.pending_pushes(store)).await.unwrap();
    assert_eq!(still.len(), 1, "the push is still pending for the new holder");

    // The same node under an older generation is fenced off too.
    let own_old = Settle {
        store,
        attempts: vec![ok_attempt(&p)],
        fence: Some(Fence { node: b.clone(), generation: first.generation }),
    };
    assert!(matches!(app.store.execute(ws, Command::Settle(own_old)).await, Err(StoreError::LeaseLost { .. })));

    // The holder's settle goes through.
    let current =
        Settle { store, attempts: vec![ok_attempt(&p)], fence: Some(Fence { node: b, generation: second.generation }) };
    app.store.execute(ws, Command::Settle(current)).await.unwrap();
    assert_eq!(sync_record_count(&app).await, 1);
    let left = app.store.read(ws, move |w| w.pending_pushes(store)).await.unwrap();
    assert!(left.is_empty(), "settled: {left:?}");
    assert!(app.check().await.is_empty());
});

/// One request as a receiver got it.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    node: String,
    body: Value,
}

/// A webhook receiver on 127.0.0.1:0 that answers 200 to every POST and records it.
struct Receiver {
    base: String,
    got: Arc<Mutex<Vec<Got>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn receiver() -> Receiver {
    use axum::http::{HeaderMap, Uri};
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
        let g = g.clone();
        async move {
            let node = headers.get("x-stockpool-node").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            g.lock().unwrap().push(Got { path: uri.path().to_string(), node, body });
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Receiver { base, got, _stop: stop }
}

impl Receiver {
    /// The quantities pushed to `path`, in arrival order.
    fn quantities(&self, path: &str) -> Vec<i64> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path)
            .map(|g| g.body["quantity"].as_i64().unwrap())
            .collect()
    }
}

/// Waits until store `store` has `n` sync records; returns their new quantities.
async fn settled(app: &TestApp, store: &str, n: usize) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = app.get(&format!("/api/v1/sync-records?store={store}")).await.body;
        let data = seen["data"].as_array().unwrap();
        if data.len() >= n {
            return data.iter().map(|r| r["new_quantity"].as_i64().unwrap()).collect();
        }
        assert!(Instant::now() < deadline, "waited ten seconds for {n} sync records of {store}: {seen}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The mug with 12 in stock, listed on webhook stores `(code, schedule)` pushing to
/// `{base}/{code}`.
async fn seed_hooks(app: &TestApp, base: &str, stores: &[(&str, Value)]) {
    expect(&app.post("/api/v1/warehouses", json!({"code":"main","name":"Main"})).await, 201);
    expect(&app.post("/api/v1/items", json!({"sku":"MUG-RED","name":"Red mug"})).await, 201);
    let stock = json!({"sku":"MUG-RED","warehouse":"main","delta":12,"reason":"received"});
    expect(&app.post("/api/v1/stock/adjustments", stock).await, 201);
    for (code, schedule) in stores {
        let store = json!({"code": code, "name": code, "channel": "webhook", "url": format!("{base}/{code}"),
                           "secret": "s3cret", "schedule": schedule});
        expect(&app.post("/api/v1/stores", store).await, 201);
        let listing = json!({"store": code, "external_id": format!("mug-{code}"), "sku": "MUG-RED"});
        expect(&app.post("/api/v1/listings", listing).await, 201);
    }
}

async fn order(app: &TestApp, id: &str, quantity: i64) {
    let body = json!({"store":"yardstick","external_id": id,"lines":[{"store_sku":"MUG-RED","quantity": quantity}]});
    expect(&app.post("/api/v1/orders", body).await, 201);
}

both!(a_paused_store_gets_nothing_and_unpaused_gets_the_latest_figure_once, |app: TestApp| async move {
    let r = receiver().await;
    seed_hooks(&app, &r.base, &[("yardstick", json!("realtime")), ("shop", json!("realtime"))]).await;
    assert_eq!(settled(&app, "shop", 1).await, vec![12]);
    assert_eq!(settled(&app, "yardstick", 1).await, vec![12]);
    let node = r.got.lock().unwrap()[0].node.clone();
    assert!(!node.is_empty(), "every push names the node that sent it");

    let paused = app.send("PATCH", "/api/v1/stores/shop", Some(json!({"paused": true}))).await;
    assert_eq!(expect(&paused, 200)["paused"], true);
    assert_eq!(app.get("/api/v1/stores/shop").await.body["paused"], true);
    assert_eq!(app.get("/api/v1/stores/yardstick").await.body["paused"], false);

    // Orders still come in; the paused store is told nothing.
    order(&app, "A-1", 5).await;
    assert_eq!(settled(&app, "yardstick", 2).await, vec![12, 7]);
    order(&app, "A-2", 2).await;
    assert_eq!(settled(&app, "yardstick", 3).await, vec![12, 7, 5]);
    assert_eq!(r.quantities("/shop"), vec![12], "a paused store gets no push");
    assert_eq!(settled(&app, "shop", 1).await, vec![12]);

    let resumed = app.send("PATCH", "/api/v1/stores/shop", Some(json!({"paused": false}))).await;
    assert_eq!(expect(&resumed, 200)["paused"], false);
    assert_eq!(settled(&app, "shop", 2).await, vec![12, 5], "the newest figure, not the one in between");
    // One more change: the yardstick's push of it settles after anything the unpause sent.
    order(&app, "A-3", 1).await;
    assert_eq!(settled(&app, "yardstick", 4).await, vec![12, 7, 5, 4]);
    assert_eq!(settled(&app, "shop", 3).await, vec![12, 5, 4]);
    assert_eq!(r.quantities("/shop"), vec![12, 5, 4], "unpausing sent the latest figure once");
});

both!(an_every_minutes_store_waits_for_its_next_round, |app: TestApp| async move {
    let r = receiver().await;
    seed_hooks(&app, &r.base, &[("yardstick", json!("realtime")), ("hourly", json!({"every_minutes": 60}))]).await;
    assert_eq!(app.get("/api/v1/stores/hourly").await.body["schedule"], json!({"every_minutes": 60}));
    // The first round opens at once.
    assert_eq!(settled(&app, "hourly", 1).await, vec![12]);
    assert_eq!(settled(&app, "yardstick", 1).await, vec![12]);
    order(&app, "A-1", 5).await;
    assert_eq!(settled(&app, "yardstick", 2).await, vec![12, 7]);
    order(&app, "A-2", 1).await;
    assert_eq!(settled(&app, "yardstick", 3).await, vec![12, 7, 6]);
    assert_eq!(r.quantities("/hourly"), vec![12], "the next round is an hour after the first");
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let pending = app
        .store
        .read(ws, |w| {
            w.pending_pushes(w.store_id("hourly").unwrap()).iter().map(|p| p.figure.quantity).collect::<Vec<_>>()
        })
        .await
        .unwrap();
    assert_eq!(pending, vec![6], "the newest figure waits in the outbox for the next round");
});
