//! Channel sync across a crash (issue 11): `stockpool serve` pushes to a webhook receiver
//! in the test while stock changes stream in, is killed with SIGKILL mid-stream, and is
//! started again on the same database.
//!
//! What the crash cannot break, and what is asserted (stock only goes down here, one unit a
//! change, so every figure between the first and the last was committed at some moment):
//! - the receiver is never sent a figure that was not committed: every figure it got lies
//!   between the listing's first figure and its final committed one;
//! - it is never sent an older figure after a newer one, not even across the restart: a
//!   restarted server sends the newest committed figure, which is at most anything sent
//!   before (the same figure may come twice: a push whose settle the kill cut off);
//! - every listing converges to its final committed figure, and every acknowledged change
//!   is in it.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stockpool_testkit::{Answer, PgCluster, ServerProcess, WebhookReceiver};

const BIN: &str = env!("CARGO_BIN_EXE_stockpool");

/// Listings (one per item), each starting at `STOCK`.
const LISTINGS: usize = 20;
const STOCK: i64 = 1_000_000;

/// The run is killed once this many changes are acknowledged and this many pushes arrived,
/// while the receiver holds the next push's answer back (`IN_FLIGHT_ANSWER`): the kill
/// cuts a push off after the receiver took it and before the server heard so.
const ACKED_BEFORE_KILL: usize = 300;
const PUSHES_BEFORE_KILL: usize = 40;
const IN_FLIGHT_ANSWER: Duration = Duration::from_millis(1500);

/// Far beyond what convergence takes.
const DEADLINE: Duration = Duration::from_secs(90);

fn stockpool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).env("STOCKPOOL_LOG", "warn").output().expect("running stockpool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn token(database: &str) -> String {
    let (ok, stdout, stderr) = stockpool(&["token", "create", "--database", database, "--workspace", "crash"]);
    assert!(ok, "token create failed: {stderr}");
    stdout.trim().to_string()
}

#[track_caller]
fn assert_check_clean(database: &str) {
    let (ok, stdout, stderr) = stockpool(&["check", "--database", database]);
    assert!(ok && stdout.contains("check: clean"), "check is not clean:\n{stdout}\n{stderr}");
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Result<(u16, Value), reqwest::Error> {
        let res = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await?;
        let status = res.status().as_u16();
        let text = res.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    async fn created(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.post(path, body).await.expect("request is sent");
        assert_eq!(status, 201, "POST {path}: {body}");
        body
    }

    async fn get(&self, path: &str) -> Value {
        let res = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        res.json().await.unwrap()
    }
}

fn sku(i: usize) -> String {
    format!("K-{i:02}")
}

/// One push the receiver got: (sku, quantity, answered 2xx).
fn pushes(r: &WebhookReceiver) -> Vec<(String, i64, bool)> {
    r.received()
        .iter()
        .map(|g| {
            let b: Value = serde_json::from_slice(&g.body).unwrap();
            (b["sku"].as_str().unwrap().to_string(), b["quantity"].as_i64().unwrap(), g.answer.heard_ok())
        })
        .collect()
}

/// Decreases from four clients until `stop`; each sku's acknowledged and sent counts.
async fn stream(api: Api, acked: Arc<Mutex<BTreeMap<String, (i64, i64)>>>, stop: Arc<AtomicBool>) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (api, acked, stop, next) = (api.clone(), acked.clone(), stop.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let s = sku(next.fetch_add(1, Ordering::SeqCst) % LISTINGS);
                acked.lock().unwrap().entry(s.clone()).or_default().1 += 1;
                let body = json!({"sku": s, "warehouse": "main", "delta": -1, "reason": "counted"});
                match api.post("/api/v1/stock/adjustments", body).await {
                    Ok((201, _)) => acked.lock().unwrap().entry(s).or_default().0 += 1,
                    Ok((status, body)) => panic!("adjustment answered {status}: {body}"),
                    // The server is gone: this change may or may not have committed.
                    Err(_) => return,
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn kill9_while_pushing(database: String) {
    let token = token(&database);
    let acked: Arc<Mutex<BTreeMap<String, (i64, i64)>>> = Arc::default();
    let acked_total = {
        let acked = acked.clone();
        move || acked.lock().unwrap().values().map(|(a, _)| *a as usize).sum::<usize>()
    };
    let ready_to_kill = acked_total.clone();
    let mut held_once = false;
    let receiver = WebhookReceiver::start(Box::new(move |_, n| {
        if !held_once && n >= PUSHES_BEFORE_KILL && ready_to_kill() >= ACKED_BEFORE_KILL {
            held_once = true;
            Answer::Slow(IN_FLIGHT_ANSWER)
        } else {
            Answer::OK
        }
    }))
    .unwrap();
    let held = |r: &WebhookReceiver| r.received().iter().any(|g| matches!(g.answer, Answer::Slow(_)));
    let mut server = ServerProcess::start(BIN, database.clone()).expect("server starts");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let api = Api { http, base: server.base_url(), token };
    rt.block_on(async {
        api.created("/api/v1/warehouses", json!({"code":"main","name":"Main"})).await;
        let store = json!({"code":"hook","name":"My site","channel":"webhook","url": receiver.url(),
                           "secret":"s3cret","schedule":"realtime"});
        api.created("/api/v1/stores", store).await;
        for i in 0..LISTINGS {
            api.created("/api/v1/items", json!({"sku": sku(i), "name": sku(i)})).await;
            let stock = json!({"sku": sku(i), "warehouse":"main","delta": STOCK,"reason":"received"});
            api.created("/api/v1/stock/adjustments", stock).await;
        }
        let listings: Vec<Value> = (0..LISTINGS)
            .map(|i| json!({"store":"hook","external_id": format!("x-{i}"),"store_sku": sku(i),"sku": sku(i)}))
            .collect();
        api.created("/api/v1/listings/bulk", json!({ "listings": listings })).await;
    });
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = rt.spawn(stream(api.clone(), acked.clone(), stop.clone()));
    let deadline = Instant::now() + DEADLINE;
    while !held(&receiver) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9().expect("kill -9");
    stop.store(true, Ordering::SeqCst);
    rt.block_on(streaming).unwrap();
    let before_kill = receiver.count();
    assert!(
        held(&receiver),
        "the run was to be killed with a push in flight, but only {} changes were acknowledged and {before_kill} \
         pushes arrived in {DEADLINE:?}",
        acked_total()
    );
    assert_check_clean(&database);

    server.restart().expect("the server starts again after kill -9");
    let acked = acked.lock().unwrap().clone();
    let committed: BTreeMap<String, i64> = rt.block_on(async {
        let page = api.get("/api/v1/listings?limit=1000").await;
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["sku"].as_str().unwrap().to_string(), l["published_quantity"].as_i64().unwrap()))
            .collect()
    });
    assert_eq!(committed.len(), LISTINGS);
    for (s, final_figure) in &committed {
        let (acked, sent) = acked.get(s).copied().unwrap_or_default();
        assert!(
            (STOCK - sent..=STOCK - acked).contains(final_figure),
            "{s}: {acked} acknowledged and {sent} sent decreases, yet it publishes {final_figure}"
        );
    }
    // Converges: each listing's last push was answered 2xx and carried its final figure.
    loop {
        let mut last: BTreeMap<String, (i64, bool)> = BTreeMap::new();
        for (s, q, ok) in pushes(&receiver) {
            last.insert(s, (q, ok));
        }
        let behind: Vec<_> = committed.iter().filter(|(s, q)| last.get(*s) != Some(&(**q, true))).collect();
        if behind.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "not converged after the restart: {behind:?}, last pushes {last:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = pushes(&receiver);
    let mut per: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (s, q, _) in &got {
        per.entry(s.clone()).or_default().push(*q);
    }
    for (s, figures) in &per {
        let final_figure = committed[s];
        assert!(
            figures.iter().all(|q| (final_figure..=STOCK).contains(q)),
            "{s} was sent a figure never committed: {figures:?} (final {final_figure})"
        );
        assert!(
            figures.windows(2).all(|w| w[1] <= w[0]),
            "{s} was sent an older figure after a newer one: {figures:?}"
        );
    }
    eprintln!(
        "kill -9 while pushing: {} changes acknowledged, {before_kill} pushes before the kill, {} after",
        acked.values().map(|(a, _)| a).sum::<i64>(),
        got.len() - before_kill
    );
    drop(server);
    assert_check_clean(&database);
}

#[test]
fn kill9_while_pushing_sends_only_committed_figures_in_order_and_converges_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    kill9_while_pushing(format!("sqlite://{}", dir.path().join("push.db").display()));
}

#[test]
fn kill9_while_pushing_sends_only_committed_figures_in_order_and_converges_on_postgres() {
    kill9_while_pushing(PgCluster::shared().fresh_database_url("pushkill").expect("a fresh PostgreSQL database"));
}
