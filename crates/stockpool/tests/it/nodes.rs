//! Two `stockpool serve` processes on one PostgreSQL database, pushing one webhook store
//! to a receiver on loopback: one node pushes at a time, and when it is killed with
//! SIGKILL the other takes the store over and the receiver ends with the committed
//! figure, never told a figure out of order.
//!
//! The receiver tells the nodes apart by the `X-Stockpool-Node` header every push carries
//! (`<host>-<pid>-<random>`).

use serde_json::{json, Value};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stockpool_store::lease::{LEASE_EXPIRY, LEASE_RENEW_INTERVAL};
use stockpool_testkit::{PgCluster, ServerProcess};

const BIN: &str = env!("CARGO_BIN_EXE_stockpool");

/// One push as the receiver got it.
#[derive(Clone, Debug)]
struct Got {
    node: String,
    quantity: i64,
}

/// Records every push to `/push` and answers 200.
async fn receiver() -> (String, Arc<Mutex<Vec<Got>>>, tokio::sync::oneshot::Sender<()>) {
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/push",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let g = g.clone();
            async move {
                let node = headers.get("x-stockpool-node").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                g.lock().unwrap().push(Got { node, quantity: body["quantity"].as_i64().unwrap_or(-1) });
                "ok"
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
    (url, got, stop)
}

/// The pid inside a node id `<host>-<pid>-<random>`.
fn pid_of(node: &str) -> Option<u32> {
    let mut parts = node.rsplit('-');
    parts.next()?;
    parts.next()?.parse().ok()
}

struct Api {
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request is sent");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, base: &str, path: &str, body: Value) -> Value {
        let (status, body) = self.call(reqwest::Method::POST, format!("{base}{path}"), Some(body)).await;
        assert!(status == 200 || status == 201, "POST {path}: {status} {body}");
        body
    }

    async fn published(&self, base: &str) -> i64 {
        let (_, body) = self.call(reqwest::Method::GET, format!("{base}/api/v1/listings?store=site"), None).await;
        body["data"][0]["published_quantity"].as_i64().unwrap()
    }

    async fn order(&self, base: &str, n: usize) {
        let body =
            json!({"store":"site","external_id": format!("N-{n}"),"lines":[{"store_sku":"MUG-RED","quantity":1}]});
        self.post(base, "/api/v1/orders", body).await;
    }
}

fn stockpool(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).env("STOCKPOOL_LOG", "warn").output().expect("running stockpool");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn two_nodes_push_a_store_one_at_a_time_and_the_survivor_takes_over_after_kill9() {
    let database = PgCluster::shared().fresh_database_url("nodes").expect("a fresh PostgreSQL database");
    let (ok, token) = stockpool(&["token", "create", "--database", &database, "--workspace", "nodes"]);
    assert!(ok, "token create failed: {token}");
    let api = Api { http: reqwest::Client::new(), token: token.trim().to_string() };
    let mut servers = [
        ServerProcess::start(BIN, database.clone()).expect("node 1"),
        ServerProcess::start(BIN, database.clone()).expect("node 2"),
    ];
    let bases: Vec<String> = servers.iter().map(|s| s.base_url()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (url, got, _stop) = rt.block_on(receiver());
    let pushes = || got.lock().unwrap().clone();

    rt.block_on(async {
        let b = &bases[0];
        api.post(b, "/api/v1/warehouses", json!({"code":"main","name":"Main"})).await;
        api.post(b, "/api/v1/items", json!({"sku":"MUG-RED","name":"Red mug"})).await;
        api.post(
            b,
            "/api/v1/stock/adjustments",
            json!({"sku":"MUG-RED","warehouse":"main","delta":100,"reason":"received"}),
        )
        .await;
        let store = json!({"code":"site","name":"My site","channel":"webhook","url":url,"secret":"s3cret"});
        api.post(b, "/api/v1/stores", store).await;
        api.post(b, "/api/v1/listings", json!({"store":"site","external_id":"mug","sku":"MUG-RED"})).await;
        // Orders through both nodes, so each commits and each reads the other's commits.
        for n in 0..30 {
            api.order(&bases[n % 2], n).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    // Every push so far came from one node: find it.
    let converged = |want: i64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let g = pushes();
            if g.last().is_some_and(|p| p.quantity == want) {
                return g;
            }
            assert!(Instant::now() < deadline, "the receiver did not reach {want}: {g:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let before = converged(70);
    let holder = before[0].node.clone();
    assert!(before.iter().all(|p| p.node == holder), "one node pushed the store: {before:?}");
    let killed = servers
        .iter()
        .position(|s| s.pid().is_some_and(|pid| pid_of(&holder) == Some(pid)))
        .unwrap_or_else(|| panic!("the pushing node {holder} is one of the two servers"));
    let survivor = 1 - killed;

    // Kill the holder in the middle of more orders; the survivor goes on taking them.
    servers[killed].kill9().expect("kill -9");
    let after_kill = pushes().len();
    let committed = rt.block_on(async {
        for n in 30..40 {
            api.order(&bases[survivor], n).await;
        }
        api.published(&bases[survivor]).await
    });
    assert_eq!(committed, 60);
    // The survivor takes the store within the lease's expiry and a renewal, plus its
    // search for workspaces with pushes; the wait is bounded well above that.
    let bound = LEASE_EXPIRY + LEASE_RENEW_INTERVAL * 2 + Duration::from_secs(10);
    let deadline = Instant::now() + bound;
    let all = loop {
        let g = pushes();
        if g.last().is_some_and(|p| p.quantity == committed) {
            break g;
        }
        assert!(Instant::now() < deadline, "the survivor did not take the store over within {bound:?}: {g:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let taken: Vec<&Got> = all[after_kill..].iter().collect();
    assert!(taken.iter().all(|p| p.node != holder), "the killed node pushed nothing after it died");
    let new_holder = &taken.last().unwrap().node;
    assert_eq!(pid_of(new_holder), servers[survivor].pid(), "the survivor pushes now");
    // One node at a time: the holder's pushes, then the survivor's, never interleaved.
    let switches = all.windows(2).filter(|w| w[0].node != w[1].node).count();
    assert_eq!(switches, 1, "{all:?}");
    // Only orders came in, so every figure is a decrease (or the same one again, pushed by
    // the survivor when the dead node's last push was never settled): never back up.
    let quantities: Vec<i64> = all.iter().map(|p| p.quantity).collect();
    assert!(quantities.windows(2).all(|w| w[1] <= w[0]), "a figure went out of order: {quantities:?}");

    // The survivor's settle is what the database says the channel has.
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, records) = api
                .call(
                    reqwest::Method::GET,
                    format!("{}/api/v1/sync-records?store=site&limit=1000", bases[survivor]),
                    None,
                )
                .await;
            let last = records["data"].as_array().and_then(|d| d.last().cloned()).unwrap_or(Value::Null);
            if last["new_quantity"] == committed && last["result"] == "ok" {
                break;
            }
            assert!(Instant::now() < deadline, "the survivor's push was not settled: {records}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    drop(servers);
    let (ok, out) = stockpool(&["check", "--database", &database]);
    assert!(ok && out.contains("check: clean"), "check is not clean:\n{out}");
}
