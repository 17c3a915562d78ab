//! The sync engine under load and under a misbehaving receiver (issue 11), on both
//! backends: a burst of 10,000 stock changes over 1,000 webhook listings, a run in which a
//! seeded receiver answers 429, 5xx, slowly or not at all, and the same faults while stock
//! goes up as well as down.
//!
//! What is checked is what SPEC section 5 promises, read off the receiver's own record
//! (`stockpool_testkit::WebhookReceiver`): every listing ends at its committed figure; a
//! listing is never sent an older figure after a newer one (stock only goes down here, so
//! each listing's figures never go up); no store is sent more than its rate; a 429 holds
//! the store for its `Retry-After`; and every attempt is a sync record. `Retry-After` on
//! its own is `sync.rs`'s
//! `a_429_with_retry_after_is_honoured_and_recorded`. Runs converge by polling with a
//! generous deadline; nothing asserts on speed (what was measured is printed).

use crate::both;
use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stockpool_channels::webhook::WEBHOOK_LIMITS;
use stockpool_core::Published;
use stockpool_store::model::{AdjustmentInput, ItemInput, WarehouseInput};
use stockpool_store::{Command, Settle, SettledAttempt, SyncResult};
use stockpool_testkit::receiver::{rate_excess, Responder, Seeded};
use stockpool_testkit::{Answer, Received, WebhookReceiver};
use stockpool_worker::dispatch::THROTTLE_DEFAULT_MS;
use stockpool_worker::WorkerOptions;

/// How long a run may take to converge before the test gives up: far beyond what it needs.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(120);

/// One push as the receiver read it, decoded.
#[derive(Clone, Debug)]
struct Push {
    at: Instant,
    store: String,
    sku: String,
    quantity: i64,
    answer: Answer,
}

fn decode(r: &Received) -> Push {
    let b: Value = serde_json::from_slice(&r.body).expect("a push's body is JSON");
    Push {
        at: r.at,
        store: b["store"].as_str().unwrap().to_string(),
        sku: b["sku"].as_str().unwrap().to_string(),
        quantity: b["quantity"].as_i64().unwrap(),
        answer: r.answer,
    }
}

fn pushes(r: &WebhookReceiver) -> Vec<Push> {
    r.received().iter().map(decode).collect()
}

/// Each sku's pushes, in the order the receiver read them.
fn by_sku(pushes: &[Push]) -> BTreeMap<String, Vec<Push>> {
    let mut out: BTreeMap<String, Vec<Push>> = BTreeMap::new();
    for p in pushes {
        out.entry(p.sku.clone()).or_default().push(p.clone());
    }
    out
}

/// Every listing of the workspace: sku -> published quantity.
async fn published(app: &TestApp) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/listings?limit=1000&cursor={c}"),
            None => "/api/v1/listings?limit=1000".to_string(),
        };
        let page = app.get(&path).await;
        for l in page.body["data"].as_array().unwrap() {
            out.insert(l["sku"].as_str().unwrap().to_string(), l["published_quantity"].as_i64().unwrap());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Warehouse `main` and `n` items `{prefix}-0000`... with `stock` each, in one command,
/// then `stores` webhook stores `s0`... on `url` and one listing per item, listing `i` on
/// store `i % stores`, in one bulk create.
async fn seed(app: &TestApp, url: &str, prefix: &str, n: usize, stock: i64, stores: usize) -> Vec<String> {
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let skus: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:04}")).collect();
    let mut cmds = vec![Command::CreateWarehouse(WarehouseInput { code: "main".into(), name: "Main".into() })];
    for sku in &skus {
        cmds.push(Command::CreateItem(ItemInput { sku: sku.clone(), name: Some(sku.clone()), ..ItemInput::default() }));
        cmds.push(Command::Adjust(AdjustmentInput {
            sku: sku.clone(),
            warehouse: "main".into(),
            delta: Some(stock),
            set: None,
            reason: Some("received".into()),
        }));
    }
    app.store.execute(ws, Command::Batch(cmds)).await.expect("the catalogue is created");
    for s in 0..stores {
        let store = json!({"code": format!("s{s}"), "name": format!("Site {s}"), "channel": "webhook",
                           "url": url, "secret": "s3cret", "schedule": "realtime"});
        expect(&app.post("/api/v1/stores", store).await, 201);
    }
    let listings: Vec<Value> = skus
        .iter()
        .enumerate()
        .map(|(i, sku)| {
            json!({"store": format!("s{}", i % stores), "external_id": format!("e-{sku}"),
                               "store_sku": sku, "sku": sku})
        })
        .collect();
    expect(&app.post("/api/v1/listings/bulk", json!({ "listings": listings })).await, 201);
    skus
}

/// Sends `changes` stock decreases of one unit from `clients` concurrent clients, change
/// `k` to `skus[k % skus.len()]`, each client pausing `pause` after each; every one must
/// be acknowledged.
async fn decrease(app: &TestApp, skus: &[String], changes: usize, clients: usize, pause: Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let skus = Arc::new(skus.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, skus) = (next.clone(), skus.clone());
        let (base, token, http) = (app.base.clone(), app.token.clone(), app.client.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= changes {
                    return;
                }
                let body = json!({"sku": skus[k % skus.len()], "warehouse": "main", "delta": -1, "reason": "counted"});
                let res = http
                    .post(format!("{base}/api/v1/stock/adjustments"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("the adjustment is sent");
                assert_eq!(res.status().as_u16(), 201, "{}", res.text().await.unwrap_or_default());
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Waits until every sku's last push was answered 2xx and carried `want[sku]`; returns
/// the pushes then.
async fn converged(r: &WebhookReceiver, want: &BTreeMap<String, i64>) -> Vec<Push> {
    let deadline = Instant::now() + CONVERGE_DEADLINE;
    loop {
        let got = pushes(r);
        let per = by_sku(&got);
        let behind: Vec<&String> = want
            .iter()
            .filter(|(sku, q)| {
                per.get(*sku).and_then(|p| p.last()).is_none_or(|last| !last.answer.heard_ok() || last.quantity != **q)
            })
            .map(|(sku, _)| sku)
            .collect();
        if behind.is_empty() {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} listings had not reached their committed figure after {CONVERGE_DEADLINE:?}, e.g. {:?}: {:?}",
            behind.len(),
            behind[0],
            per.get(behind[0])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every push the receiver got is settled (one sync record each) and the
/// outbox is empty; returns the records.
async fn settled(app: &TestApp, r: &WebhookReceiver) -> Vec<Value> {
    let deadline = Instant::now() + CONVERGE_DEADLINE;
    loop {
        let records = app.sync_records(None).await;
        let pending = app.store.outbox_pending().await.unwrap();
        if records.len() >= r.count() && pending == 0 {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{} sync records for {} requests and {pending} pushes pending after {CONVERGE_DEADLINE:?}",
            records.len(),
            r.count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each listing's figures never go up, and no store was sent more than its rate.
fn assert_ordered_and_paced(got: &[Push]) {
    for (sku, ps) in by_sku(got) {
        let q: Vec<i64> = ps.iter().map(|p| p.quantity).collect();
        assert!(q.windows(2).all(|w| w[1] <= w[0]), "{sku} was sent an older figure after a newer one: {q:?}");
    }
    let mut per_store: BTreeMap<&str, Vec<Instant>> = BTreeMap::new();
    for p in got {
        per_store.entry(&p.store).or_default().push(p.at);
    }
    let rate = (WEBHOOK_LIMITS.requests_per_second_milli / 1000) as u32;
    for (store, at) in per_store {
        // One request of slack: a request is read a moment after the bucket let it go.
        assert_eq!(
            rate_excess(&at, WEBHOOK_LIMITS.burst, rate, 1),
            None,
            "store {store} got more than {rate} requests a second (burst {})",
            WEBHOOK_LIMITS.burst
        );
    }
}

/// 1,000 listings on ten webhook stores (each paced at `WEBHOOK_LIMITS`, the limit every
/// webhook store gets: ten stores give the run ten times one store's rate without a
/// test-only knob), then 10,000 one-unit decreases over them, ten per listing, from eight
/// clients as fast as the server takes them.
async fn burst(app: TestApp) {
    const LISTINGS: usize = 1000;
    const CHANGES: usize = 10_000;
    const STOCK: i64 = 100;
    let r = WebhookReceiver::start_ok().unwrap();
    let started = Instant::now();
    let skus = seed(&app, r.url(), "B", LISTINGS, STOCK, 10).await;
    let seeded = started.elapsed();
    decrease(&app, &skus, CHANGES, 8, Duration::ZERO).await;
    let changed = started.elapsed();
    let after = STOCK - (CHANGES / LISTINGS) as i64;
    let committed = published(&app).await;
    assert_eq!(committed.len(), LISTINGS);
    assert!(committed.values().all(|q| *q == after), "every listing publishes {after}");
    let got = converged(&r, &committed).await;
    let done = started.elapsed();
    assert_ordered_and_paced(&got);
    // Every figure sent was committed: between the first and the last.
    assert!(got.iter().all(|p| (after..=STOCK).contains(&p.quantity)));
    // Latest value wins: at least one push per listing (its first), and the changes that
    // came while a listing's push was out or paced coalesced into the next one.
    let total = got.len();
    eprintln!(
        "burst: {LISTINGS} listings, {CHANGES} changes: {total} pushes ({:.3} a change, {:.2} a listing); seeded in \
         {seeded:?}, changes sent by {changed:?}, converged by {done:?}",
        total as f64 / CHANGES as f64,
        total as f64 / LISTINGS as f64
    );
    // How many changes coalesce depends on how fast the dispatchers keep up (the faster,
    // the more figures go out on their own); at most half as many pushes as changes shows
    // that waiting changes were folded into one push, and the exact property follows.
    assert!(total <= CHANGES / 2, "{total} pushes for {CHANGES} changes: the changes did not coalesce");
    // Every answer was 200, so no listing was told the same figure twice.
    for (sku, ps) in by_sku(&got) {
        let q: Vec<i64> = ps.iter().map(|p| p.quantity).collect();
        assert!(q.windows(2).all(|w| w[1] < w[0]), "{sku} was sent a figure it already had: {q:?}");
    }
    // One record per push, and nothing more goes out once the channel has every figure.
    let records = settled(&app, &r).await;
    assert_eq!((records.len(), r.count()), (total, total), "one sync record per push, and no push after");
    assert!(records.iter().all(|r| r["result"] == "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_thousand_changes_converges_in_order_within_the_rate_on_sqlite() {
    burst(spawn_app(Backend::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_thousand_changes_converges_in_order_within_the_rate_on_postgres() {
    burst(spawn_app(Backend::Postgres).await).await;
}

/// How long a channel call may take in the fault run, and how long a slow answer takes.
const CALL_TIMEOUT: Duration = Duration::from_millis(1000);
const SLOW_ANSWER: Duration = Duration::from_millis(1500);

/// A receiver that, drawing from a fixed seed, answers about a third of the requests with
/// a fault: 429 with and without `Retry-After`, 500, 503, an answer slower than the
/// client waits, or a closed connection (requests 2, 4, ... 12 get one of each, so every
/// kind is in every run). No listing gets more than two faults in a row, so that backoff
/// (1 s, then 2 s, with jitter) keeps the run short.
fn faulty(seed: u64) -> Responder {
    let mut rng = Seeded::new(seed);
    let mut in_a_row: BTreeMap<String, u32> = BTreeMap::new();
    Box::new(move |req: &Received, n: usize| {
        let sku = decode(req).sku;
        let row = in_a_row.entry(sku).or_default();
        let scripted = [1, 3, 5, 7, 9, 11].iter().position(|k| *k == n).map(|i| [0, 1, 2, 5, 8, 11][i]);
        let answer = if *row >= 2 || (scripted.is_none() && rng.below(3) != 0) {
            Answer::OK
        } else {
            match scripted.unwrap_or_else(|| rng.below(14)) {
                0 => Answer::Status { status: 429, retry_after_seconds: Some(1) },
                1 => Answer::status(429),
                2..=4 => Answer::status(500),
                5..=7 => Answer::status(503),
                8..=10 => Answer::Slow(SLOW_ANSWER),
                _ => Answer::Drop,
            }
        };
        *row = if answer.heard_ok() { 0 } else { *row + 1 };
        answer
    })
}

/// 40 listings on one webhook store whose receiver misbehaves (`faulty`), while 400
/// one-unit decreases come in from four clients.
async fn fault_run(app: TestApp) {
    const LISTINGS: usize = 40;
    const CHANGES: usize = 400;
    const STOCK: i64 = 50;
    let r = WebhookReceiver::start(faulty(0x5EED_F417)).unwrap();
    let skus = seed(&app, r.url(), "F", LISTINGS, STOCK, 1).await;
    decrease(&app, &skus, CHANGES, 4, Duration::from_millis(80)).await;
    let after = STOCK - (CHANGES / LISTINGS) as i64;
    let committed = published(&app).await;
    assert!(committed.values().all(|q| *q == after), "every listing publishes {after}");
    let got = converged(&r, &committed).await;
    assert_ordered_and_paced(&got);
    let kinds = |f: fn(&Answer) -> bool| got.iter().filter(|p| f(&p.answer)).count();
    eprintln!(
        "fault run: {} requests: {} answered 2xx, {} 429, {} 5xx, {} slow, {} dropped",
        got.len(),
        kinds(Answer::heard_ok),
        kinds(|a| matches!(a, Answer::Status { status: 429, .. })),
        kinds(|a| matches!(a, Answer::Status { status: 500..=599, .. })),
        kinds(|a| matches!(a, Answer::Slow(_))),
        kinds(|a| matches!(a, Answer::Drop)),
    );
    // The seed gave every kind of fault.
    assert!(kinds(|a| matches!(a, Answer::Status { status: 429, retry_after_seconds: Some(_) })) > 0);
    assert!(kinds(|a| matches!(a, Answer::Status { status: 429, retry_after_seconds: None })) > 0);
    assert!(kinds(|a| matches!(a, Answer::Status { status: 500..=599, .. })) > 0);
    assert!(kinds(|a| matches!(a, Answer::Slow(_))) > 0 && kinds(|a| matches!(a, Answer::Drop)) > 0);

    // Every request the receiver saw is a sync record, in the same order per listing, with
    // what it carried and how it ended.
    let records = settled(&app, &r).await;
    let fields = [
        "id",
        "store",
        "listing",
        "sku",
        "old_quantity",
        "new_quantity",
        "reason",
        "rule",
        "result",
        "status_code",
        "detail",
        "attempt",
        "created_at",
    ];
    for rec in &records {
        for f in fields {
            assert!(rec.get(f).is_some(), "a sync record lacks {f}: {rec}");
        }
    }
    let mut records_by_sku: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for rec in &records {
        records_by_sku.entry(rec["sku"].as_str().unwrap().to_string()).or_default().push(rec);
    }
    // Each request's instant and the answer the dispatcher heard (`None`: it timed out).
    let mut heard: Vec<(Instant, Option<Answer>)> = Vec::new();
    for (sku, ps) in by_sku(&got) {
        let recs = records_by_sku.remove(&sku).unwrap_or_default();
        let seen: Vec<(i64, Answer)> = ps.iter().map(|p| (p.quantity, p.answer)).collect();
        assert_eq!(recs.len(), ps.len(), "{sku}: the receiver saw {seen:?}, the records are {recs:?}");
        let mut attempt = 1;
        for (p, rec) in ps.iter().zip(&recs) {
            assert_eq!(rec["new_quantity"], p.quantity, "{sku}: {rec}");
            assert_eq!(rec["attempt"], attempt, "{sku}: attempts count since the last success: {rec}");
            // On a machine loaded enough, even a prompt answer may come after the client
            // gave up: that is a timeout, recorded as one, whatever the receiver answered.
            let timed_out = rec["result"] == "retry"
                && rec["status_code"].is_null()
                && rec["detail"].as_str().is_some_and(|d| d.contains("did not answer within"));
            heard.push((p.at, if timed_out { None } else { Some(p.answer) }));
            match p.answer {
                _ if timed_out => attempt += 1,
                Answer::Status { status: 200, .. } => {
                    assert_eq!((&rec["result"], &rec["status_code"]), (&json!("ok"), &json!(200)), "{rec}");
                    attempt = 1;
                }
                Answer::Status { status, .. } => {
                    assert_eq!((&rec["result"], &rec["status_code"]), (&json!("retry"), &json!(status)), "{rec}");
                    attempt += 1;
                }
                Answer::Slow(_) | Answer::Drop => {
                    assert_eq!((&rec["result"], &rec["status_code"]), (&json!("retry"), &Value::Null), "{rec}");
                    assert!(rec["detail"].as_str().is_some_and(|d| !d.is_empty()), "{rec}");
                    attempt += 1;
                }
            }
        }
    }
    assert!(records_by_sku.is_empty(), "records of pushes the receiver never saw: {records_by_sku:?}");

    // A 429 holds the whole store: its next request comes no earlier than `Retry-After`
    // (the dispatcher's default wait without one) after the 429 was answered.
    heard.sort_by_key(|(at, _)| *at);
    for w in heard.windows(2) {
        if let (_, Some(Answer::Status { status: 429, retry_after_seconds })) = w[0] {
            let wait = retry_after_seconds.map_or(THROTTLE_DEFAULT_MS as u64, |s| u64::from(s) * 1000);
            let waited = w[1].0 - w[0].0;
            assert!(
                waited >= Duration::from_millis(wait),
                "a 429 asked for {wait} ms, the next request came {waited:?} later"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_seeded_faults_every_listing_converges_within_the_rate_and_every_attempt_is_recorded_on_sqlite() {
    let options = WorkerOptions { connect_timeout: CALL_TIMEOUT, request_timeout: CALL_TIMEOUT };
    fault_run(spawn_app_with(Backend::Sqlite, options).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_seeded_faults_every_listing_converges_within_the_rate_and_every_attempt_is_recorded_on_postgres() {
    let options = WorkerOptions { connect_timeout: CALL_TIMEOUT, request_timeout: CALL_TIMEOUT };
    fault_run(spawn_app_with(Backend::Postgres, options).await).await;
}

both!(a_full_page_of_sync_records_still_names_the_next_page, |app: TestApp| async move {
    seed_mug(&app).await;
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let (store, listing) =
        app.store.read(ws, |w| w.state.listings().next().map(|l| (l.store, l.id))).await.unwrap().expect("the listing");
    let pushed = Published { listing, quantity: 12, sell_when_out_of_stock: false, show_backorder: false, rule: None };
    let attempts: Vec<SettledAttempt> = (1..=1001)
        .map(|attempt| SettledAttempt {
            listing,
            pushed,
            old_quantity: None,
            reason: "stock_change",
            result: SyncResult::Retry,
            status_code: Some(503),
            detail: Some("busy".into()),
            attempt,
            next_attempt_at: None,
            claimed_generation: 0,
        })
        .collect();
    app.store.execute(ws, Command::Settle(Settle { store, attempts, fence: None })).await.unwrap();
    let first = app.get("/api/v1/sync-records?limit=1000").await.body;
    assert_eq!(first["data"].as_array().unwrap().len(), 1000);
    let cursor = first["next_cursor"].as_str().expect("a full page of 1,000 names the next page");
    let second = app.get(&format!("/api/v1/sync-records?limit=1000&cursor={cursor}")).await.body;
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(second["data"][0]["attempt"], 1001);
    assert_eq!(second["next_cursor"], Value::Null);
});

/// Sets each of `skus`'s stock to its figures in turn, one client per sku (each change
/// acknowledged before the next), pausing `pause` between changes.
async fn set_in_turn(app: &TestApp, figures: &BTreeMap<String, Vec<i64>>, pause: Duration) {
    let mut tasks = Vec::new();
    for (sku, figures) in figures {
        let (sku, figures) = (sku.clone(), figures.clone());
        let (base, token, http) = (app.base.clone(), app.token.clone(), app.client.clone());
        tasks.push(tokio::spawn(async move {
            for q in figures {
                let body = json!({"sku": sku, "warehouse": "main", "set": q, "reason": "counted"});
                let res = http
                    .post(format!("{base}/api/v1/stock/adjustments"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("the adjustment is sent");
                assert_eq!(res.status().as_u16(), 201, "{}", res.text().await.unwrap_or_default());
                tokio::time::sleep(pause).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Stock that goes up as well as down, under the same faults: each listing's figures are
/// distinct, so what the receiver got must be the committed figures in commit order with
/// some left out (repeats allowed: a push the client timed out on may go again).
async fn up_and_down_under_faults(app: TestApp) {
    const LISTINGS: usize = 10;
    const CHANGES_PER_LISTING: usize = 12;
    const STOCK: i64 = 500;
    let r = WebhookReceiver::start(faulty(0x0DD_BA11)).unwrap();
    let skus = seed(&app, r.url(), "U", LISTINGS, STOCK, 1).await;
    let mut rng = Seeded::new(42);
    let mut committed: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for sku in &skus {
        let mut figures = vec![STOCK];
        while figures.len() < CHANGES_PER_LISTING + 1 {
            let q = rng.below(1000) as i64;
            if !figures.contains(&q) {
                figures.push(q);
            }
        }
        committed.insert(sku.clone(), figures);
    }
    let changes: BTreeMap<String, Vec<i64>> = committed.iter().map(|(s, f)| (s.clone(), f[1..].to_vec())).collect();
    set_in_turn(&app, &changes, Duration::from_millis(600)).await;
    let last: BTreeMap<String, i64> = committed.iter().map(|(s, f)| (s.clone(), *f.last().unwrap())).collect();
    assert_eq!(published(&app).await, last, "every listing publishes its last figure");
    let got = converged(&r, &last).await;
    for (sku, ps) in by_sku(&got) {
        let mut sent: Vec<i64> = ps.iter().map(|p| p.quantity).collect();
        sent.dedup();
        let order = &committed[&sku];
        let mut rest = order.iter();
        assert!(
            sent.iter().all(|q| rest.any(|c| c == q)),
            "{sku} was sent {sent:?}: not the committed figures {order:?} in their order"
        );
    }
    let rate = (WEBHOOK_LIMITS.requests_per_second_milli / 1000) as u32;
    let at: Vec<Instant> = got.iter().map(|p| p.at).collect();
    assert_eq!(rate_excess(&at, WEBHOOK_LIMITS.burst, rate, 1), None, "within the store's rate");
    let faults = got.iter().filter(|p| !p.answer.heard_ok()).count();
    eprintln!(
        "up and down under faults: {} requests ({faults} faulted) for {} changes",
        got.len(),
        LISTINGS * CHANGES_PER_LISTING
    );
    settled(&app, &r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_going_up_and_down_under_faults_reaches_the_channel_in_commit_order_on_sqlite() {
    let options = WorkerOptions { connect_timeout: CALL_TIMEOUT, request_timeout: CALL_TIMEOUT };
    up_and_down_under_faults(spawn_app_with(Backend::Sqlite, options).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_going_up_and_down_under_faults_reaches_the_channel_in_commit_order_on_postgres() {
    let options = WorkerOptions { connect_timeout: CALL_TIMEOUT, request_timeout: CALL_TIMEOUT };
    up_and_down_under_faults(spawn_app_with(Backend::Postgres, options).await).await;
}
