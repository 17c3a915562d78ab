//! The real `stockpool serve` binary as child processes, tested the way an operator would
//! meet it: two servers on one PostgreSQL database raced by 200 concurrent orders, and a
//! server killed with SIGKILL in the middle of a stream of orders and started again.
//! Every test ends with `stockpool check` on the database.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stockpool_testkit::{PgCluster, ServerProcess};

const BIN: &str = env!("CARGO_BIN_EXE_stockpool");

/// Runs the binary with `args` and returns (success, stdout, stderr).
fn stockpool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).env("STOCKPOOL_LOG", "warn").output().expect("running stockpool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `stockpool token create`: one token, alone on stdout.
fn token(database: &str) -> String {
    let (ok, stdout, stderr) = stockpool(&["token", "create", "--database", database, "--workspace", "e2e"]);
    assert!(ok, "token create failed: {stderr}");
    let token = stdout.trim().to_string();
    assert_eq!(stdout.lines().count(), 1, "the token is alone on stdout: {stdout:?}");
    token
}

/// `stockpool check` is clean.
#[track_caller]
fn assert_check_clean(database: &str) {
    let (ok, stdout, stderr) = stockpool(&["check", "--database", database]);
    assert!(ok && stdout.contains("check: clean"), "check is not clean:\n{stdout}\n{stderr}");
}

fn pg_database(prefix: &str) -> String {
    PgCluster::shared().fresh_database_url(prefix).expect("a fresh PostgreSQL database")
}

struct Client {
    http: reqwest::Client,
    token: String,
}

impl Client {
    fn new(token: String) -> Client {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Client { http, token }
    }

    async fn send(&self, base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{base}{path}")).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request is sent");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn post_ok(&self, base: &str, path: &str, body: Value) -> Value {
        let (status, body) = self.send(base, reqwest::Method::POST, path, Some(body)).await;
        assert!(status == 200 || status == 201, "POST {path}: {status} {body}");
        body
    }

    async fn get(&self, base: &str, path: &str) -> Value {
        let (status, body) = self.send(base, reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Every order of the workspace, following the cursor.
    async fn all_orders(&self, base: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/orders?limit=1000&cursor={c}"),
                None => "/api/v1/orders?limit=1000".to_string(),
            };
            let page = self.get(base, &path).await;
            out.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }
}

/// Warehouse `main`, `MUG-RED` with `units`, store `etsy` with its listing.
async fn seed(client: &Client, base: &str, units: i64) {
    client.post_ok(base, "/api/v1/warehouses", json!({"code":"main","name":"Main warehouse"})).await;
    client
        .post_ok(base, "/api/v1/items", json!({"sku":"MUG-RED","name":"Red mug","kind":"product","unit":"pcs"}))
        .await;
    client
        .post_ok(
            base,
            "/api/v1/stock/adjustments",
            json!({"sku":"MUG-RED","warehouse":"main","delta":units,"reason":"received"}),
        )
        .await;
    client.post_ok(base, "/api/v1/stores", json!({"code":"etsy","name":"Etsy shop","channel":"etsy"})).await;
    client
        .post_ok(
            base,
            "/api/v1/listings",
            json!({"store":"etsy","external_id":"1234567","store_sku":"MUG-RED","sku":"MUG-RED"}),
        )
        .await;
}

#[test]
fn two_serve_processes_on_one_postgres_confirm_exactly_fifty_of_two_hundred() {
    let database = pg_database("twonodes");
    let token = token(&database);
    let a = ServerProcess::start(BIN, database.clone()).expect("server A starts");
    let b = ServerProcess::start(BIN, database.clone()).expect("server B starts");
    let (base_a, base_b) = (a.base_url(), b.base_url());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let client = Arc::new(Client::new(token));
        seed(&client, &base_a, 50).await;
        // B reads what A wrote.
        assert_eq!(client.get(&base_b, "/api/v1/items/MUG-RED/stock").await["available"], 50);
        let mut tasks = Vec::new();
        for i in 0..200 {
            let client = client.clone();
            let base = if i % 2 == 0 { base_a.clone() } else { base_b.clone() };
            tasks.push(tokio::spawn(async move {
                let body = json!({"store":"etsy","external_id": format!("RACE-{i}"),
                                  "lines":[{"store_sku":"MUG-RED","quantity":1}]});
                client.post_ok(&base, "/api/v1/orders", body).await
            }));
        }
        let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
        for t in tasks {
            let order = t.await.unwrap();
            *statuses.entry(order["lines"][0]["status"].as_str().unwrap().to_string()).or_default() += 1;
        }
        assert_eq!(statuses, BTreeMap::from([("confirmed".to_string(), 50), ("oversold".to_string(), 150)]));
        for base in [&base_a, &base_b] {
            let stock = client.get(base, "/api/v1/items/MUG-RED/stock").await;
            assert_eq!(stock["warehouses"][0], json!({"warehouse":"main","on_hand":50,"reserved":50,"available":0}));
        }
        assert_eq!(client.all_orders(&base_b).await.len(), 200);
    });
    drop((a, b));
    assert_check_clean(&database);
}

/// Streams single-unit orders from four clients until the server dies; returns the external
/// ids the server acknowledged (201) before it did.
async fn stream_until_killed(
    client: Arc<Client>,
    base: String,
    acked: Arc<Mutex<Vec<(String, i64)>>>,
    stop: Arc<AtomicBool>,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, base, acked, stop, next) =
            (client.clone(), base.clone(), acked.clone(), stop.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let quantity = 1 + (n % 3) as i64;
                let external_id = format!("K-{n}");
                let body = json!({"store":"etsy","external_id": external_id,
                                  "lines":[{"store_sku":"MUG-RED","quantity": quantity}]});
                let sent = client
                    .http
                    .post(format!("{base}/api/v1/orders"))
                    .bearer_auth(&client.token)
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(res) if res.status().as_u16() == 201 => acked.lock().unwrap().push((external_id, quantity)),
                    Ok(res) => panic!("order {external_id} answered {}", res.status()),
                    // The server is gone: this order may or may not have been committed.
                    Err(_) => return,
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn kill9_during_a_stream_of_orders(database: String) {
    let token = token(&database);
    let mut server = ServerProcess::start(BIN, database.clone()).expect("server starts");
    let base = server.base_url();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = Arc::new(Client::new(token));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(seed(&client, &base, 100_000));
    let stream = rt.spawn(stream_until_killed(client.clone(), base.clone(), acked.clone(), stop.clone()));
    // Kill once a good number of orders are acknowledged, while requests are in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 150 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9().expect("kill -9");
    stop.store(true, Ordering::SeqCst);
    rt.block_on(stream).unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 150, "only {} orders were acknowledged in 60 s", acked.len());

    assert_check_clean(&database);
    server.restart().expect("the server starts again after kill -9");
    rt.block_on(async {
        let orders = client.all_orders(&base).await;
        let by_id: BTreeMap<String, &Value> =
            orders.iter().map(|o| (o["external_id"].as_str().unwrap().to_string(), o)).collect();
        for (external_id, quantity) in &acked {
            let o = by_id.get(external_id).unwrap_or_else(|| panic!("acknowledged order {external_id} was lost"));
            assert_eq!(o["status"], "confirmed", "{o}");
            assert_eq!(o["lines"][0]["quantity"], *quantity, "{o}");
        }
        // No half-applied order: what is reserved is exactly what the stored orders hold.
        let held: i64 = orders.iter().map(|o| o["lines"][0]["quantity"].as_i64().unwrap()).sum();
        let stock = client.get(&base, "/api/v1/items/MUG-RED/stock").await;
        assert_eq!(stock["warehouses"][0]["reserved"], held);
        assert_eq!(stock["warehouses"][0]["on_hand"], 100_000);
        // And the restarted server takes orders again.
        let o = client
            .post_ok(
                &base,
                "/api/v1/orders",
                json!({"store":"etsy","external_id":"AFTER","lines":[{"store_sku":"MUG-RED","quantity":1}]}),
            )
            .await;
        assert_eq!(o["status"], "confirmed");
    });
    drop(server);
    assert_check_clean(&database);
}

#[test]
fn kill9_during_a_stream_of_orders_loses_nothing_acknowledged_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    kill9_during_a_stream_of_orders(format!("sqlite://{}", dir.path().join("kill.db").display()));
}

#[test]
fn kill9_during_a_stream_of_orders_loses_nothing_acknowledged_on_postgres() {
    kill9_during_a_stream_of_orders(pg_database("kill9"));
}
