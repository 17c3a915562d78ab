//! The `woocommerce` channel end to end (issue 12): the real server and its dispatchers
//! push to an emulated WooCommerce site on loopback (`stockpool_emulators::WooSite`), and
//! the site's signed webhooks come in at `POST /webhooks/woocommerce/{store}`. Also the
//! connector's pushes and read-backs against the site directly.
//!
//! The dispatchers run in real time, so the tests wait for what the site holds, each wait
//! bounded; nothing asserts on speed.

use crate::both;
use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stockpool_channels::woocommerce::IN_FLIGHT_MAX;
use stockpool_channels::{AttemptResult, Connector, PushItem, ReadItem, StoreSettings};
use stockpool_core::{Channel, ListingId};
use stockpool_emulators::woocommerce::{order_body, Delivery, Stock};
use stockpool_emulators::{Faults, WooConfig, WooSite};
use stockpool_store::model::{AdjustmentInput, ItemInput, WarehouseInput};
use stockpool_store::Command;

const KEY: &str = "ck_test";
const KEY_SECRET: &str = "cs_test";
const WEBHOOK_SECRET: &str = "wc-whsec";

/// How long a run may take to converge: far beyond what it needs.
const DEADLINE: Duration = Duration::from_secs(60);

async fn site(faults: Faults) -> WooSite {
    let config = WooConfig { faults, ..WooConfig::new(KEY, KEY_SECRET, WEBHOOK_SECRET) };
    WooSite::start(config).await.unwrap()
}

fn store_body(code: &str, site: &WooSite) -> Value {
    json!({"code": code, "name": "My WooCommerce shop", "channel": "woocommerce", "schedule": "realtime",
           "base_url": site.base_url(), "secret": WEBHOOK_SECRET,
           "credentials": {"consumer_key": KEY, "consumer_secret": KEY_SECRET}})
}

/// Waits until `f` holds, at most `DEADLINE`.
async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {DEADLINE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn adjust(app: &TestApp, sku: &str, delta: i64) {
    let body = json!({"sku": sku, "warehouse": "main", "delta": delta, "reason": "counted"});
    expect(&app.post("/api/v1/stock/adjustments", body).await, 201);
}

/// `MUG-RED` (12, listed as product 93), `TEE-M` (5, variation 22/23, zero policy
/// `backorder`) and `CUP` (3, product 94, zero policy `continue`) on `woo`; `MUG-RED` also
/// on an Etsy store, whose figure shows what every other store is told.
async fn seed(app: &TestApp, site: &WooSite) {
    site.seed_product(93, "MUG", Stock::unmanaged());
    site.seed_product(94, "CUP", Stock::unmanaged());
    site.seed_variation(22, 23, "TEE-M", Stock::unmanaged());
    expect(&app.post("/api/v1/warehouses", json!({"code":"main","name":"Main"})).await, 201);
    for (sku, stock, zero_policy) in [("MUG-RED", 12, "stop"), ("TEE-M", 5, "backorder"), ("CUP", 3, "continue")] {
        let item = json!({"sku": sku, "name": sku, "zero_policy": zero_policy});
        expect(&app.post("/api/v1/items", item).await, 201);
        adjust(app, sku, stock).await;
    }
    expect(&app.post("/api/v1/stores", store_body("woo", site)).await, 201);
    expect(&app.post("/api/v1/stores", json!({"code":"etsy","name":"Etsy","channel":"etsy"})).await, 201);
    for (store, external_id, store_sku, sku) in [
        ("woo", "93", "MUG", "MUG-RED"),
        ("woo", "22/23", "TEE-M", "TEE-M"),
        ("woo", "94", "CUP", "CUP"),
        ("etsy", "1234567", "MUG-RED", "MUG-RED"),
    ] {
        let listing = json!({"store": store, "external_id": external_id, "store_sku": store_sku, "sku": sku});
        expect(&app.post("/api/v1/listings", listing).await, 201);
    }
}

async fn published(app: &TestApp, store: &str, sku: &str) -> i64 {
    let page = app.get(&format!("/api/v1/listings?store={store}")).await;
    let data = expect(&page, 200)["data"].as_array().unwrap().clone();
    data.iter().find(|l| l["sku"] == sku).unwrap()["published_quantity"].as_i64().unwrap()
}

async fn available(app: &TestApp, sku: &str) -> i64 {
    expect(&app.get(&format!("/api/v1/items/{sku}/stock")).await, 200)["available"].as_i64().unwrap()
}

async fn orders(app: &TestApp) -> Vec<Value> {
    expect(&app.get("/api/v1/orders").await, 200)["data"].as_array().unwrap().clone()
}

fn stock(q: i64, backorders: &str) -> Option<Stock> {
    Some(Stock { manage_stock: true, stock_quantity: Some(q), backorders: backorders.into() })
}

both!(a_stock_change_reaches_the_site_with_the_right_quantity_and_backorders, |app: TestApp| async move {
    let site = site(Faults::default()).await;
    seed(&app, &site).await;
    wait_for("the first figures", || {
        (site.stock("93") == stock(12, "no")
            && site.stock("22/23") == stock(5, "notify")
            && site.stock("94") == stock(3, "yes"))
        .then_some(())
    })
    .await;
    adjust(&app, "MUG-RED", -4).await;
    adjust(&app, "TEE-M", -2).await;
    wait_for("the figures after the change", || {
        (site.stock("93") == stock(8, "no") && site.stock("22/23") == stock(3, "notify")).then_some(())
    })
    .await;
    // Products and variations go to their own batch endpoints, never more than 100 a call.
    let calls = site.calls();
    assert!(calls.iter().any(|c| c.path == "/wp-json/wc/v3/products/batch"));
    assert!(calls.iter().any(|c| c.path == "/wp-json/wc/v3/products/22/variations/batch"));
    assert!(calls.iter().all(|c| c.status == 200 && c.items <= 100), "{calls:?}");
    let records = wait_for_records(&app, 5).await;
    assert!(records.iter().all(|r| r["result"] == "ok" && r["status_code"] == 200), "{records:?}");
});

/// The workspace's sync records once there are at least `n`.
async fn wait_for_records(app: &TestApp, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let records = app.sync_records(None).await;
        if records.len() >= n {
            return records;
        }
        assert!(Instant::now() < deadline, "{} sync records after {DEADLINE:?}, waited for {n}", records.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` items `W-0000`... with `stock` each, listed on store `woo`: every tenth a variation
/// of product 5000 or 5001, the rest products 1000.... Returns (sku, external_id).
async fn seed_many(app: &TestApp, site: &WooSite, n: usize, stock: i64) -> Vec<(String, String)> {
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let mut listed = Vec::new();
    let mut cmds = vec![Command::CreateWarehouse(WarehouseInput { code: "main".into(), name: "Main".into() })];
    for i in 0..n {
        let sku = format!("W-{i:04}");
        let external_id = if i % 10 == 0 {
            let (product, variation) = (5000 + (i / 10 % 2) as u64, 9000 + i as u64);
            site.seed_variation(product, variation, &sku, Stock::unmanaged());
            format!("{product}/{variation}")
        } else {
            site.seed_product(1000 + i as u64, &sku, Stock::unmanaged());
            (1000 + i).to_string()
        };
        cmds.push(Command::CreateItem(ItemInput { sku: sku.clone(), name: Some(sku.clone()), ..ItemInput::default() }));
        cmds.push(Command::Adjust(AdjustmentInput {
            sku: sku.clone(),
            warehouse: "main".into(),
            delta: Some(stock),
            set: None,
            reason: Some("received".into()),
        }));
        listed.push((sku, external_id));
    }
    app.store.execute(ws, Command::Batch(cmds)).await.expect("the catalogue is created");
    expect(&app.post("/api/v1/stores", store_body("woo", site)).await, 201);
    let listings: Vec<Value> = listed
        .iter()
        .map(|(sku, external_id)| json!({"store": "woo", "external_id": external_id, "store_sku": sku, "sku": sku}))
        .collect();
    expect(&app.post("/api/v1/listings/bulk", json!({ "listings": listings })).await, 201);
    listed
}

/// Waits until the site shows every listing's published figure.
async fn converged(app: &TestApp, site: &WooSite, listed: &[(String, String)]) {
    let deadline = Instant::now() + DEADLINE * 2;
    loop {
        let want: BTreeMap<String, i64> = listings(app).await;
        let behind: Vec<&(String, String)> =
            listed.iter().filter(|(sku, ext)| site.quantity(ext) != want.get(sku).copied()).collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} listings are not at their figure on the site, e.g. {:?}: site {:?}, published {:?}",
            behind.len(),
            behind[0],
            site.quantity(&behind[0].1),
            want.get(&behind[0].0)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every listing: sku -> published quantity.
async fn listings(app: &TestApp) -> BTreeMap<String, i64> {
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

both!(a_burst_over_320_listings_stays_within_the_batch_cap_and_the_in_flight_bound, |app: TestApp| async move {
    let site = site(Faults::default()).await;
    let listed = seed_many(&app, &site, 320, 20).await;
    converged(&app, &site, &listed).await;
    // Two rounds of decreases over every listing, from four clients.
    let mut tasks = Vec::new();
    for chunk in listed.chunks(80) {
        let skus: Vec<String> = chunk.iter().map(|(s, _)| s.clone()).collect();
        let (base, token, http) = (app.base.clone(), app.token.clone(), app.client.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..2 {
                for sku in &skus {
                    let body = json!({"sku": sku, "warehouse": "main", "delta": -1, "reason": "counted"});
                    let res = http
                        .post(format!("{base}/api/v1/stock/adjustments"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status().as_u16(), 201);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let want = listings(&app).await;
    assert!(want.values().all(|q| *q == 18), "every listing publishes 18");
    converged(&app, &site, &listed).await;
    let calls = site.calls();
    assert!(site.max_items_per_call() <= 100, "a call carried {} objects", site.max_items_per_call());
    assert!(site.max_in_flight() <= IN_FLIGHT_MAX, "{} calls were out at once", site.max_in_flight());
    assert!(calls.iter().all(|c| c.status == 200), "every call was taken");
    // The first full push needs at least four calls (300 products in three, 20 variations
    // under two parents), and the site was never sent a figure it had not been committed.
    assert!(calls.len() >= 5, "{} calls", calls.len());
    eprintln!(
        "woocommerce burst: {} listings, {} calls, at most {} in flight",
        listed.len(),
        calls.len(),
        site.max_in_flight()
    );
});

/// Posts a delivery to the store's webhook URL: the status.
async fn post(app: &TestApp, site: &WooSite, delivery: &Delivery) -> u16 {
    site.post(&format!("{}/webhooks/woocommerce/woo", app.base), delivery).await.unwrap()
}

async fn kept(app: &TestApp) -> usize {
    app.store.inbox_deliveries(false, 0, 1000).await.unwrap().len()
}

both!(an_order_webhook_reserves_replays_change_nothing_and_cancellations_release, |app: TestApp| async move {
    let site = site(Faults::default()).await;
    seed(&app, &site).await;
    wait_for("the first figure", || (site.quantity("93") == Some(12)).then_some(())).await;

    // The ping a new webhook sends: 200, nothing changes.
    let url = format!("{}/webhooks/woocommerce/woo", app.base);
    assert_eq!(site.send_ping(&url).await.unwrap(), 200);
    assert!(orders(&app).await.is_empty());

    // An order for two mugs (by product id) and one unknown line (kept as unmapped).
    let order = order_body(727, "processing", &[(93, 0, "", 2), (555, 0, "NOPE", 1)]);
    let created = site.webhook("order.created", &order);
    assert_eq!(post(&app, &site, &created).await, 200);
    assert_eq!(available(&app, "MUG-RED").await, 10);
    assert_eq!(published(&app, "etsy", "MUG-RED").await, 10, "every other store's figure drops");
    let taken = orders(&app).await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0]["external_id"], "727");
    let statuses: Vec<&str> =
        taken[0]["lines"].as_array().unwrap().iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["confirmed", "unmapped"], "{}", taken[0]);
    wait_for("the site's figure after the order", || (site.quantity("93") == Some(10)).then_some(())).await;

    // The same delivery again changes nothing.
    let before = kept(&app).await;
    assert_eq!(post(&app, &site, &created).await, 200);
    assert_eq!((available(&app, "MUG-RED").await, orders(&app).await.len(), kept(&app).await), (10, 1, before));

    // A forged signature: 401, nothing kept, nothing changed.
    let mut forged = site.webhook("order.created", &order_body(728, "processing", &[(93, 0, "MUG", 5)]));
    forged.signature = stockpool_emulators::woocommerce::signature("not-the-secret", &forged.body);
    assert_eq!(post(&app, &site, &forged).await, 401);
    assert_eq!((available(&app, "MUG-RED").await, orders(&app).await.len(), kept(&app).await), (10, 1, before));

    // Cancelled: released everywhere.
    let cancelled = site.webhook("order.updated", &order_body(727, "cancelled", &[(93, 0, "", 2)]));
    assert_eq!(post(&app, &site, &cancelled).await, 200);
    assert_eq!(available(&app, "MUG-RED").await, 12);
    assert_eq!(published(&app, "etsy", "MUG-RED").await, 12);
    assert_eq!(orders(&app).await[0]["status"], "cancelled");

    // A variation bought by id, then refunded: released.
    let tee = order_body(729, "processing", &[(22, 23, "TEE-M", 1)]);
    assert_eq!(site.send_webhook(&url, "order.created", &tee).await.unwrap(), 200);
    assert_eq!(available(&app, "TEE-M").await, 4);
    let refunded = order_body(729, "refunded", &[(22, 23, "TEE-M", 1)]);
    assert_eq!(site.send_webhook(&url, "order.updated", &refunded).await.unwrap(), 200);
    assert_eq!(available(&app, "TEE-M").await, 5);
    // An order found by its SKU when its id is not the listing's.
    let by_sku = order_body(730, "processing", &[(777, 0, "CUP", 1)]);
    assert_eq!(site.send_webhook(&url, "order.created", &by_sku).await.unwrap(), 200);
    assert_eq!(available(&app, "CUP").await, 2);
});

/// A connector for a store on `site`, built as the dispatcher builds it.
fn connector(site: &WooSite, key_secret: &str) -> Arc<dyn Connector> {
    let settings = StoreSettings {
        code: "woo".into(),
        base_url: Some(site.base_url()),
        secret: Some(WEBHOOK_SECRET.into()),
        credentials: Some(json!({"consumer_key": KEY, "consumer_secret": key_secret})),
        ..StoreSettings::default()
    };
    stockpool_channels::connector(Channel::Woocommerce, settings, stockpool_channels::http_client().unwrap())
        .unwrap()
        .unwrap()
}

fn push_item(n: u64, external_id: &str, quantity: i64) -> PushItem {
    PushItem {
        listing: ListingId(n),
        public_id: format!("lst_{n}"),
        external_id: external_id.into(),
        store_sku: format!("S{n}"),
        sku: format!("S{n}"),
        quantity,
        sell_when_out_of_stock: false,
        show_backorder: false,
        settled: None,
    }
}

#[tokio::test]
async fn a_mixed_push_splits_by_parent_and_fails_only_the_unknown_objects() {
    let site = site(Faults::default()).await;
    let mut batch = Vec::new();
    for n in 0..90u64 {
        site.seed_product(100 + n, "", Stock::unmanaged());
        batch.push(push_item(n, &(100 + n).to_string(), n as i64));
    }
    for n in 0..8u64 {
        site.seed_variation(7 + n % 2, 500 + n, "", Stock::unmanaged());
        batch.push(push_item(90 + n, &format!("{}/{}", 7 + n % 2, 500 + n), 3));
    }
    batch.push(push_item(98, "4242", 1));
    batch.push(push_item(99, "not-an-id", 1));
    let attempts = connector(&site, KEY_SECRET).push(&batch, stockpool_core::Timestamp(0)).await;
    assert_eq!(attempts.len(), 100);
    assert!(attempts[..98].iter().all(|a| a.result == AttemptResult::Ok), "{:?}", &attempts[..98]);
    assert_eq!((attempts[98].result, attempts[98].status_code), (AttemptResult::Failed, Some(400)));
    assert!(attempts[98].detail.as_deref().is_some_and(|d| d.contains("woocommerce_rest_product_invalid_id")));
    assert_eq!((attempts[99].result, attempts[99].status_code), (AttemptResult::Failed, None));
    assert_eq!(site.quantity("150"), Some(50));
    assert_eq!(site.quantity("8/501"), Some(3));
    let calls = site.calls();
    assert_eq!(calls.len(), 3, "products, and one call per parent: {calls:?}");
    assert!(calls.iter().all(|c| c.items <= 100));
}

#[tokio::test]
async fn wrong_keys_fail_with_a_sentence_and_a_throttle_waits() {
    let site = site(Faults::default()).await;
    site.seed_product(93, "MUG", Stock::managed(1));
    let attempts = connector(&site, "wrong").push(&[push_item(1, "93", 5)], stockpool_core::Timestamp(0)).await;
    assert_eq!((attempts[0].result, attempts[0].status_code), (AttemptResult::Failed, Some(401)));
    assert!(attempts[0].detail.as_deref().is_some_and(|d| d.contains("check the store's credentials")), "{attempts:?}");
    assert_eq!(site.quantity("93"), Some(1));
    let throttled =
        site_with(Faults { seed: 1, throttle_percent: 100, retry_after_secs: Some(7), ..Faults::default() }).await;
    throttled.seed_product(93, "MUG", Stock::managed(1));
    let attempts = connector(&throttled, KEY_SECRET).push(&[push_item(1, "93", 5)], stockpool_core::Timestamp(0)).await;
    assert_eq!(attempts[0].result, AttemptResult::Throttled { retry_after_ms: Some(7000) });
    let failing = site_with(Faults { seed: 1, error_percent: 100, ..Faults::default() }).await;
    failing.seed_product(93, "MUG", Stock::managed(1));
    let attempts = connector(&failing, KEY_SECRET).push(&[push_item(1, "93", 5)], stockpool_core::Timestamp(0)).await;
    assert_eq!(
        (attempts[0].result, attempts[0].status_code),
        (AttemptResult::Retry { retry_after_ms: None }, Some(503))
    );
}

async fn site_with(faults: Faults) -> WooSite {
    site(faults).await
}

#[tokio::test]
async fn read_back_finds_each_listing_s_quantity_page_by_page() {
    let site = site(Faults::default()).await;
    let mut items = Vec::new();
    for n in 0..150u64 {
        site.seed_product(1000 + n, "", Stock::managed(n as i64));
        items.push(ReadItem { listing: ListingId(n), external_id: (1000 + n).to_string(), store_sku: String::new() });
    }
    site.seed_variation(22, 23, "", Stock::managed(-2));
    site.seed_product(94, "", Stock::unmanaged());
    for (n, external_id) in [(200, "22/23"), (201, "94"), (202, "4242"), (203, "x")] {
        items.push(ReadItem { listing: ListingId(n), external_id: external_id.into(), store_sku: String::new() });
    }
    assert!(site.set_quantity("1007", 70), "drift behind our back");
    let read = connector(&site, KEY_SECRET).read_back(&items).await.unwrap();
    let read: BTreeMap<u64, Option<i64>> = read.into_iter().map(|(l, q)| (l.0, q)).collect();
    assert_eq!(read.len(), 154);
    assert_eq!((read[&0], read[&149], read[&7]), (Some(0), Some(149), Some(70)));
    assert_eq!(read[&200], Some(-2), "a variation, oversold on the site");
    assert_eq!((read[&201], read[&202], read[&203]), (None, None, None), "unmanaged, unknown, not an id");
    let calls = site.calls();
    assert!(calls.iter().all(|c| c.method == "GET" && c.items <= 100 && c.status == 200), "{calls:?}");
    assert_eq!(calls.len(), 3, "two pages of products and one of variations");
    let refused = connector(&site, "wrong").read_back(&items).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
}

/// A fault run: the site answers about one call in seven 429 (with `Retry-After: 1`), one
/// in eight of the rest 503 and a tenth of the rest slower than the dispatcher waits,
/// while stock goes down. The draws go by the calls' order, and this seed's first six
/// calls already get a 429, a 503 and a slow answer, so every run has each kind.
async fn fault_run(app: TestApp) {
    let faults = Faults {
        seed: 32,
        throttle_percent: 15,
        retry_after_secs: Some(1),
        error_percent: 15,
        slow_percent: 10,
        slow: Duration::from_millis(1500),
    };
    let site = site(faults).await;
    let listed = seed_many(&app, &site, 60, 30).await;
    for round in 0..3 {
        for (sku, _) in listed.iter().skip(round).step_by(3) {
            adjust(&app, sku, -1).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    converged(&app, &site, &listed).await;
    // Wait until every push is settled.
    let deadline = Instant::now() + DEADLINE;
    while app.store.outbox_pending().await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "pushes still pending after {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = site.calls();
    let items_answered = |status: u16| calls.iter().filter(|c| c.status == status).map(|c| c.items).sum::<usize>();
    let records = app.sync_records(None).await;
    let recorded = |result: &str, status: Option<u16>| {
        records
            .iter()
            .filter(|r| r["result"] == result && r["status_code"].as_u64().map(|s| s as u16) == status)
            .count()
    };
    eprintln!(
        "woocommerce fault run: {} calls ({} objects 200, {} 429, {} 503), {} sync records",
        calls.len(),
        items_answered(200),
        items_answered(429),
        items_answered(503),
        records.len()
    );
    assert!(items_answered(429) > 0 && items_answered(503) > 0, "the seed gave both faults");
    // Every listing of every throttled or failed call is a `retry` record with that status.
    assert_eq!(recorded("retry", Some(429)), items_answered(429));
    assert_eq!(recorded("retry", Some(503)), items_answered(503));
    // Every `ok` is an object the site took (a slow call the dispatcher gave up on may
    // still have been taken: then its record is a timeout).
    assert!(recorded("ok", Some(200)) <= items_answered(200));
    assert!(records.iter().all(|r| r["result"] != "failed"), "nothing failed for good");
    for r in &records {
        for f in ["store", "listing", "sku", "new_quantity", "reason", "result", "status_code", "detail", "attempt"] {
            assert!(r.get(f).is_some(), "a sync record lacks {f}: {r}");
        }
    }
    assert!(site.max_in_flight() <= IN_FLIGHT_MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_run_ends_with_every_listing_correct_and_every_attempt_recorded_on_sqlite() {
    let options =
        stockpool_worker::WorkerOptions { request_timeout: Duration::from_millis(1000), ..Default::default() };
    fault_run(spawn_app_with(Backend::Sqlite, options).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_run_ends_with_every_listing_correct_and_every_attempt_recorded_on_postgres() {
    let options =
        stockpool_worker::WorkerOptions { request_timeout: Duration::from_millis(1000), ..Default::default() };
    fault_run(spawn_app_with(Backend::Postgres, options).await).await;
}

/// The `drift` records of the workspace.
async fn drift_records(app: &TestApp) -> Vec<Value> {
    app.sync_records(None).await.into_iter().filter(|r| r["result"] == "drift").collect()
}

both!(sync_now_reads_back_records_drift_and_pushes_the_figure_again, |app: TestApp| async move {
    let site = site(Faults::default()).await;
    seed(&app, &site).await;
    wait_for("the first figures", || (site.quantity("93") == Some(12)).then_some(())).await;
    assert!(drift_records(&app).await.is_empty());
    // Someone edits the product in WooCommerce's admin.
    assert!(site.set_quantity("93", 50));
    expect(&app.post("/api/v1/sync", json!({"store": "woo"})).await, 202);
    wait_for("the figure put back", || (site.quantity("93") == Some(12)).then_some(())).await;
    let drift = wait_for_drift(&app, 1).await;
    assert_eq!(drift.len(), 1, "only the edited listing drifted: {drift:?}");
    let r = &drift[0];
    assert_eq!(
        (r["sku"].as_str(), r["old_quantity"].as_i64(), r["new_quantity"].as_i64()),
        (Some("MUG-RED"), Some(12), Some(50)),
        "{r}"
    );
    assert_eq!(r["reason"], "sync_now", "{r}");
    // Sync now still pushes every listing of the store, after the read.
    wait_until_records(&app, "every listing pushed again", |records| {
        records.iter().filter(|x| x["reason"] == "sync_now" && x["result"] == "ok").count() >= 3
    })
    .await;
    // The read went through the documented read-back calls.
    assert!(
        site.calls().iter().any(|c| c.method == "GET" && c.path == "/wp-json/wc/v3/products"),
        "{:?}",
        site.calls()
    );
});

both!(scheduled_reconciliation_finds_drift_and_corrects_it, |app: TestApp| async move {
    let site = site(Faults::default()).await;
    seed(&app, &site).await;
    expect(&app.send("PATCH", "/api/v1/stores/woo", Some(json!({"reconcile_every_minutes": 1}))).await, 200);
    // A change after the patch: the dispatcher has looked at the store since.
    adjust(&app, "CUP", 1).await;
    wait_for("the figures", || {
        (site.quantity("93") == Some(12) && site.quantity("22/23") == Some(5) && site.quantity("94") == Some(4))
            .then_some(())
    })
    .await;
    // Every push settled: none is out to overwrite what comes next.
    wait_until_records(&app, "the pushes settled", |records| {
        [("MUG-RED", 12), ("TEE-M", 5), ("CUP", 4)]
            .iter()
            .all(|(sku, q)| records.iter().any(|r| r["sku"] == *sku && r["new_quantity"] == *q && r["result"] == "ok"))
    })
    .await;
    assert!(site.set_quantity("22/23", 0));
    // Nothing reads the site back before the period is over.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(site.quantity("22/23"), Some(0));
    app.advance_seconds(61);
    wait_for("the variation put back", || (site.quantity("22/23") == Some(5)).then_some(())).await;
    let drift = wait_for_drift(&app, 1).await;
    let r = &drift[0];
    assert_eq!(
        (r["sku"].as_str(), r["old_quantity"].as_i64(), r["new_quantity"].as_i64()),
        (Some("TEE-M"), Some(5), Some(0)),
        "{r}"
    );
    assert_eq!(r["reason"], "reconcile", "{r}");
    wait_until_records(&app, "the correction pushed as reconciliation", |records| {
        records.iter().any(|x| x["sku"] == "TEE-M" && x["reason"] == "reconcile" && x["result"] == "ok")
    })
    .await;
});

/// Waits until the workspace's sync records satisfy `f` (a push's record is committed
/// just after the site took it).
async fn wait_until_records(app: &TestApp, what: &str, f: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let records = app.sync_records(None).await;
        if f(&records) {
            return;
        }
        assert!(Instant::now() < deadline, "waited {DEADLINE:?} for {what}: {records:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The drift records once there are at least `n`.
async fn wait_for_drift(app: &TestApp, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let drift = drift_records(app).await;
        if drift.len() >= n {
            return drift;
        }
        assert!(Instant::now() < deadline, "{} drift records after {DEADLINE:?}, waited for {n}", drift.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
