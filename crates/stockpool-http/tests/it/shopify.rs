//! The `shopify` channel end to end (issue 12) against the emulated shop
//! (`stockpool_emulators::shopify`) over real HTTP, on both backends: pushes reach the
//! shop with `changeFromQuantity` and an idempotency key; a burst stays within 250 a
//! call and the cost bucket; signed webhooks reserve, cancel, release on a restocking
//! refund, are deduplicated, and a bad signature changes nothing; a quantity changed
//! behind our back is `stale`, then corrected; a seeded fault run converges. And every
//! fixture of `fixtures/channels/shopify/` is parsed.
//!
//! Runs converge by polling with a generous deadline; nothing asserts on speed.

use crate::both;
use crate::helpers::*;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use stockpool_channels::shopify::{parse_topic, ShopifyConnector};
use stockpool_channels::{Connector, InboundEvent, PushItem, ReadItem, StoreSettings};
use stockpool_core::ListingId;
use stockpool_emulators::shopify::{cancelled_body, order_body, refund_body, ShopifyConfig, ShopifyShop};
use stockpool_emulators::Faults;
use stockpool_store::model::{AdjustmentInput, ItemInput, WarehouseInput};
use stockpool_store::Command;

const DEADLINE: Duration = Duration::from_secs(60);

/// How long the fault run may take to converge: every fault fails a whole call of up to
/// 250 listings, so consecutive faults back every listing off together (up to the
/// policy's cap), and a loaded machine runs many such tests at once.
const FAULT_RUN_DEADLINE: Duration = Duration::from_secs(240);

async fn until<T>(what: &str, f: impl AsyncFnMut() -> Option<T>) -> T {
    until_within(DEADLINE, what, f).await
}

async fn until_within<T>(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A Shopify store `shop` on `emulator` (realtime).
async fn create_store(app: &TestApp, emulator: &ShopifyShop) {
    let store = json!({"code":"shop","name":"My Shopify","channel":"shopify","schedule":"realtime",
                       "base_url": emulator.base_url(), "credentials": emulator.credentials(),
                       "secret": emulator.config().client_secret});
    expect(&app.post("/api/v1/stores", store).await, 201);
}

/// `MUG-RED` with 12 in `main`; store `shop` on `emulator` lists it as variant 1001
/// (`MUG-R`), which the shop holds at 5; `etsy` lists it too.
async fn seed(app: &TestApp, emulator: &ShopifyShop) {
    emulator.seed_variant(1001, "MUG-R", 5);
    expect(&app.post("/api/v1/warehouses", json!({"code":"main","name":"Main"})).await, 201);
    expect(&app.post("/api/v1/items", json!({"sku":"MUG-RED","name":"Red mug"})).await, 201);
    let stock = json!({"sku":"MUG-RED","warehouse":"main","delta":12,"reason":"received"});
    expect(&app.post("/api/v1/stock/adjustments", stock).await, 201);
    create_store(app, emulator).await;
    expect(&app.post("/api/v1/stores", json!({"code":"etsy","name":"Etsy","channel":"etsy"})).await, 201);
    for (store, external_id, store_sku) in [("shop", "1001", "MUG-R"), ("etsy", "1234567", "MUG-RED")] {
        let listing = json!({"store":store,"external_id":external_id,"store_sku":store_sku,"sku":"MUG-RED"});
        expect(&app.post("/api/v1/listings", listing).await, 201);
    }
}

async fn adjust(app: &TestApp, sku: &str, delta: i64) {
    let stock = json!({"sku":sku,"warehouse":"main","delta":delta,"reason":"count"});
    expect(&app.post("/api/v1/stock/adjustments", stock).await, 201);
}

async fn published(app: &TestApp, store: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/listings?store={store}&limit=1000&cursor={c}"),
            None => format!("/api/v1/listings?store={store}&limit=1000"),
        };
        let page = app.get(&path).await;
        for l in page.body["data"].as_array().unwrap() {
            out.insert(l["external_id"].as_str().unwrap().to_string(), l["published_quantity"].as_i64().unwrap());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

async fn available(app: &TestApp) -> i64 {
    expect(&app.get("/api/v1/items/MUG-RED/stock").await, 200)["available"].as_i64().unwrap()
}

/// Posts a signed webhook to `shop`'s intake, answering the intake's reply.
async fn deliver(app: &TestApp, hook: &stockpool_emulators::shopify::SignedWebhook) -> Res {
    let mut req = app.client.post(format!("{}/webhooks/shopify/shop", app.base)).body(hook.body.clone());
    for (name, value) in &hook.headers {
        req = req.header(name, value);
    }
    to_res(req.send().await.unwrap()).await
}

both!(a_stock_change_reaches_the_shop_with_change_from_quantity_and_an_idempotency_key, |app: TestApp| async move {
    let shop = ShopifyShop::start(ShopifyConfig::default()).await.unwrap();
    seed(&app, &shop).await;
    until("the first push", async || (shop.available(1001) == Some(12)).then_some(())).await;
    adjust(&app, "MUG-RED", -3).await;
    until("the push after the change", async || (shop.available(1001) == Some(9)).then_some(())).await;

    let sets: Vec<_> = shop.mutations().into_iter().filter(|m| !m.replayed).collect();
    assert_eq!(sets.len(), 2, "{sets:?}");
    let item = "gid://shopify/InventoryItem/1001001";
    for (m, quantity, from) in [(&sets[0], 12, 5), (&sets[1], 9, 12)] {
        assert_eq!((m.name.as_str(), m.reason.as_str()), ("available", "correction"));
        assert_eq!(m.quantities.len(), 1);
        let q = &m.quantities[0];
        assert_eq!((q.inventory_item_id.as_str(), q.location_id.as_str()), (item, "gid://shopify/Location/655441491"));
        // The first knows no settled figure, so it compares with what it read (5).
        assert_eq!((q.quantity, q.change_from_quantity), (quantity, Some(from)));
        assert!(m.idempotency_key.starts_with("stockpool-") && m.user_errors.is_empty(), "{m:?}");
    }
    assert_ne!(sets[0].idempotency_key, sets[1].idempotency_key, "another change, another key");

    let got = until("both sync records", async || {
        let r = app.sync_records(Some("shop")).await;
        (r.len() >= 2).then_some(r)
    })
    .await;
    let results: Vec<(&str, i64, Option<i64>)> = got
        .iter()
        .map(|r| (r["result"].as_str().unwrap(), r["new_quantity"].as_i64().unwrap(), r["status_code"].as_i64()))
        .collect();
    assert_eq!(results, vec![("ok", 12, Some(200)), ("ok", 9, Some(200))]);
    assert_eq!(shop.counters().throttled, 0);
});

both!(a_burst_over_300_listings_stays_within_250_a_call_and_the_cost_bucket, |app: TestApp| async move {
    // A small bucket restoring fast: the reads of 330 variants cost 1,320 points, more
    // than the bucket holds, so pacing has to wait rather than be THROTTLED.
    let config = ShopifyConfig { maximum_available: 1000.0, restore_rate: 400.0, ..ShopifyConfig::default() };
    let shop = ShopifyShop::start(config).await.unwrap();
    const N: usize = 330;
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let mut cmds = vec![Command::CreateWarehouse(WarehouseInput { code: "main".into(), name: "Main".into() })];
    for i in 0..N {
        let sku = format!("SKU-{i:04}");
        shop.seed_variant(5000 + i as u64, &sku, 0);
        cmds.push(Command::CreateItem(ItemInput { sku: sku.clone(), name: Some(sku.clone()), ..ItemInput::default() }));
        cmds.push(Command::Adjust(AdjustmentInput {
            sku,
            warehouse: "main".into(),
            delta: Some(20 + i as i64 % 7),
            set: None,
            reason: Some("received".into()),
        }));
    }
    app.store.execute(ws, Command::Batch(cmds)).await.expect("the catalogue is created");
    create_store(&app, &shop).await;
    let listings: Vec<Value> = (0..N)
        .map(|i| {
            json!({"store":"shop","external_id": (5000 + i).to_string(), "store_sku": format!("SKU-{i:04}"),
                        "sku": format!("SKU-{i:04}")})
        })
        .collect();
    expect(&app.post("/api/v1/listings/bulk", json!({ "listings": listings })).await, 201);
    let converged = async |shop: &ShopifyShop, app: &TestApp| {
        let want = published(app, "shop").await;
        want.len() == N && want.iter().all(|(id, q)| shop.available(id.parse().unwrap()) == Some(*q))
    };
    until("every listing in the shop", async || converged(&shop, &app).await.then_some(())).await;

    // A second burst: every item down by one at once.
    let mut cmds = Vec::new();
    for i in 0..N {
        cmds.push(Command::Adjust(AdjustmentInput {
            sku: format!("SKU-{i:04}"),
            warehouse: "main".into(),
            delta: Some(-1),
            set: None,
            reason: Some("count".into()),
        }));
    }
    app.store.execute(ws, Command::Batch(cmds)).await.unwrap();
    until("the second burst in the shop", async || {
        let p = published(&app, "shop").await;
        (p.values().all(|q| (19..27).contains(q)) && converged(&shop, &app).await).then_some(())
    })
    .await;
    let c = shop.counters();
    assert!(c.max_quantities_per_call <= 250 && c.max_quantities_per_call > 0, "{c:?}");
    assert!(c.max_ids_per_call <= 250, "{c:?}");
    assert!(c.max_query_cost <= 1000, "{c:?}");
    assert_eq!(c.throttled, 0, "pacing kept THROTTLED away: {c:?}");
    // At most two calls a burst of 330 (250 + 80), a few more if a dispatch split it.
    let sets = shop.mutations().len();
    assert!(sets <= 8, "{sets} mutations for two bursts of {N}");
});

both!(orders_from_shopify_webhooks_reserve_cancel_release_and_are_taken_once, |app: TestApp| async move {
    let shop = ShopifyShop::start(ShopifyConfig::default()).await.unwrap();
    seed(&app, &shop).await;
    let etsy = async |app: &TestApp| published(app, "etsy").await["1234567"];
    assert_eq!(etsy(&app).await, 12);

    // orders/create: variant 1001 (and an unknown line, kept unmapped).
    let lines = [(Some(1001), Some("MUG-R"), 2), (Some(999), Some("NOT-LISTED"), 1)];
    let hook = shop.signed_webhook("orders/create", "ev-1", &order_body(7001, &lines));
    let res = deliver(&app, &hook).await;
    assert_eq!(expect(&res, 200)["outcome"], "applied", "{}", res.body);
    let order = res.body["order"].as_str().unwrap().to_string();
    assert_eq!(available(&app).await, 10);
    assert_eq!(etsy(&app).await, 10, "every other store's figure is lower");
    let o = expect(&app.get(&format!("/api/v1/orders/{order}")).await, 200).clone();
    assert_eq!(o["external_id"], "7001");
    let statuses: Vec<&str> = o["lines"].as_array().unwrap().iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.len(), 2, "{o}");
    assert!(statuses.contains(&"unmapped"), "the unknown line is kept, unmapped: {o}");

    // The same event again changes nothing.
    let again = expect(&deliver(&app, &hook).await, 200).clone();
    assert_eq!(again["seen_before"], true);
    assert_eq!(available(&app).await, 10);

    // A bad signature: 401, nothing kept.
    let mut forged = shop.signed_webhook("orders/create", "ev-2", &order_body(7002, &lines[..1]));
    forged.body = order_body(7002, &[(Some(1001), Some("MUG-R"), 9)]).to_string().into_bytes();
    assert_eq!(deliver(&app, &forged).await.status, 401);
    assert_eq!(available(&app).await, 10);
    assert_eq!(app.store.inbox_deliveries(false, 0, 100).await.unwrap().len(), 1);

    // orders/cancelled releases.
    let status = shop
        .send_webhook(
            &format!("{}/webhooks/shopify/shop", app.base),
            "orders/cancelled",
            "ev-3",
            &cancelled_body(7001, &lines),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(available(&app).await, 12);
    assert_eq!(etsy(&app).await, 12);

    // A refund that restocks the whole order releases it; one that restocks nothing does not.
    let lines = [(Some(1001), Some("MUG-R"), 3)];
    assert_eq!(
        deliver(&app, &shop.signed_webhook("orders/create", "ev-4", &order_body(7003, &lines))).await.status,
        200
    );
    assert_eq!(available(&app).await, 9);
    let kept =
        deliver(&app, &shop.signed_webhook("refunds/create", "ev-5", &refund_body(7003, &lines, "no_restock"))).await;
    assert_eq!((kept.status, kept.body["outcome"].as_str()), (200, Some("ignored")), "{}", kept.body);
    assert_eq!(available(&app).await, 9);
    let back =
        deliver(&app, &shop.signed_webhook("refunds/create", "ev-6", &refund_body(7003, &lines, "return"))).await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(available(&app).await, 12);

    // Other topics are kept and ignored.
    let other = deliver(&app, &shop.signed_webhook("products/update", "ev-7", &json!({"id": 1}))).await;
    assert_eq!(other.body["outcome"], "ignored", "{}", other.body);
    // The shop is told the figures as they move; it ends at 12.
    until("the shop at 12", async || (shop.available(1001) == Some(12)).then_some(())).await;
});

both!(a_quantity_changed_behind_our_back_is_stale_then_corrected, |app: TestApp| async move {
    let shop = ShopifyShop::start(ShopifyConfig::default()).await.unwrap();
    seed(&app, &shop).await;
    until("the first push", async || (shop.available(1001) == Some(12)).then_some(())).await;
    shop.set_available(1001, 20);
    adjust(&app, "MUG-RED", -2).await;
    let got = until("the stale push and its correction", async || {
        let r = app.sync_records(Some("shop")).await;
        (r.len() >= 3 && shop.available(1001) == Some(10)).then_some(r)
    })
    .await;
    let results: Vec<(&str, i64)> =
        got.iter().map(|r| (r["result"].as_str().unwrap(), r["new_quantity"].as_i64().unwrap())).collect();
    assert_eq!(results, vec![("ok", 12), ("stale", 10), ("ok", 10)]);
    let sets = shop.mutations();
    let last = sets.last().unwrap();
    assert_eq!(last.quantities[0].change_from_quantity, Some(20), "pushed again from what the shop had");
    assert!(sets.iter().any(|m| m.user_errors == ["CHANGE_FROM_QUANTITY_STALE"]));
});

fn fault_options() -> stockpool_worker::WorkerOptions {
    stockpool_worker::WorkerOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_millis(800),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_run_ends_with_every_listing_right_on_sqlite() {
    fault_run(spawn_app_with(Backend::Sqlite, fault_options()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_run_ends_with_every_listing_right_on_postgres() {
    fault_run(spawn_app_with(Backend::Postgres, fault_options()).await).await;
}

/// 40 listings, rounds of changes while the shop answers 429, 503, slowly (past the
/// call timeout) and changes quantities behind our back, all seeded.
async fn fault_run(app: TestApp) {
    let faults = Faults {
        seed: 12,
        throttle_percent: 10,
        retry_after_secs: Some(1),
        error_percent: 10,
        slow_percent: 10,
        slow: Duration::from_millis(1200),
    };
    let shop =
        ShopifyShop::start(ShopifyConfig { faults, stale_percent: 25, ..ShopifyConfig::default() }).await.unwrap();
    const N: usize = 40;
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let mut cmds = vec![Command::CreateWarehouse(WarehouseInput { code: "main".into(), name: "Main".into() })];
    for i in 0..N {
        let sku = format!("F-{i:02}");
        shop.seed_variant(7000 + i as u64, &sku, 3);
        cmds.push(Command::CreateItem(ItemInput { sku: sku.clone(), name: Some(sku.clone()), ..ItemInput::default() }));
        cmds.push(Command::Adjust(AdjustmentInput {
            sku,
            warehouse: "main".into(),
            delta: Some(50),
            set: None,
            reason: Some("received".into()),
        }));
    }
    app.store.execute(ws, Command::Batch(cmds)).await.unwrap();
    create_store(&app, &shop).await;
    let listings: Vec<Value> = (0..N)
        .map(|i| {
            json!({"store":"shop","external_id": (7000 + i).to_string(), "store_sku": format!("F-{i:02}"),
                        "sku": format!("F-{i:02}")})
        })
        .collect();
    expect(&app.post("/api/v1/listings/bulk", json!({ "listings": listings })).await, 201);
    for round in 0..5 {
        for i in (round..N).step_by(3) {
            adjust(&app, &format!("F-{i:02}"), -1).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until_within(FAULT_RUN_DEADLINE, "every listing right in the shop", async || {
        let want = published(&app, "shop").await;
        (want.len() == N && want.iter().all(|(id, q)| shop.available(id.parse().unwrap()) == Some(*q))).then_some(())
    })
    .await;
    let c = shop.counters();
    assert!(c.faults_429 + c.faults_5xx + c.slow + c.stale_injected > 0, "faults were injected: {c:?}");
    let got = app.sync_records(Some("shop")).await;
    let count = |result: &str| got.iter().filter(|r| r["result"] == result).count();
    // Every listing's last record is ok; every failure was tried again, not dropped.
    assert!(count("ok") >= N, "{} ok of {}", count("ok"), got.len());
    assert_eq!(count("failed"), 0, "{got:?}");
    // A stale answer we waited for is recorded as stale (one sent after our timeout is a retry).
    let stale_answered =
        shop.mutations().iter().any(|m| !m.late && m.user_errors.iter().any(|e| e == "CHANGE_FROM_QUANTITY_STALE"));
    if stale_answered {
        assert!(count("stale") > 0, "a stale compare is recorded as stale");
    }
    if c.faults_429 + c.faults_5xx + c.slow > 0 {
        assert!(count("retry") > 0, "429, 5xx and timeouts are recorded as retry");
    }
    // Every call the shop applied is in the records: each applied quantity is an ok one.
    let applied: usize =
        shop.mutations().iter().filter(|m| m.user_errors.is_empty() && !m.replayed).map(|m| m.quantities.len()).sum();
    assert!(count("ok") >= applied.saturating_sub(c.slow as usize * 250), "{} ok, {applied} applied", count("ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_back_answers_available_at_the_location() {
    let shop = ShopifyShop::start(ShopifyConfig::default()).await.unwrap();
    shop.seed_variant(1001, "MUG-R", 7);
    shop.seed_variant(1002, "MUG-B", 0);
    let settings = StoreSettings {
        code: "shop".into(),
        base_url: Some(shop.base_url()),
        credentials: Some(shop.credentials()),
        ..StoreSettings::default()
    };
    let client = stockpool_channels::http_client().unwrap();
    let connector = ShopifyConnector::new(&settings, client.clone(), Duration::from_secs(5)).unwrap();
    let item = |n: u64, external_id: &str| ReadItem {
        listing: ListingId(n),
        external_id: external_id.into(),
        store_sku: String::new(),
    };
    let items = [item(1, "1001"), item(2, "1002"), item(3, "9999")];
    let got = connector.read_back(&items).await.unwrap();
    assert_eq!(got, vec![(ListingId(1), Some(7)), (ListingId(2), Some(0)), (ListingId(3), None)]);
    shop.set_available(1001, 4);
    assert_eq!(connector.read_back(&items[..1]).await.unwrap(), vec![(ListingId(1), Some(4))]);
    assert!(shop.counters().max_query_cost <= 1000);

    // A push to a variant the shop does not know fails with a sentence; a wrong token is 401.
    let push = PushItem {
        listing: ListingId(3),
        public_id: "l-3".into(),
        external_id: "9999".into(),
        store_sku: "X".into(),
        sku: "X".into(),
        quantity: 1,
        sell_when_out_of_stock: false,
        show_backorder: false,
        settled: None,
    };
    let a = connector.push(std::slice::from_ref(&push), stockpool_core::Timestamp(1)).await;
    assert_eq!(a[0].result, stockpool_channels::AttemptResult::Failed);
    assert!(a[0].detail.as_deref().unwrap().contains("knows no variant 9999"), "{a:?}");
    let wrong = StoreSettings {
        credentials: Some(json!({"access_token":"nope","location_id":"655441491","shop_domain":"x"})),
        ..settings
    };
    let connector = ShopifyConnector::new(&wrong, client, Duration::from_secs(5)).unwrap();
    let a = connector.push(&[PushItem { external_id: "1001".into(), ..push }], stockpool_core::Timestamp(1)).await;
    assert_eq!((a[0].result, a[0].status_code), (stockpool_channels::AttemptResult::Failed, Some(401)));
    assert!(a[0].detail.as_deref().unwrap().contains("access token"), "{a:?}");
    assert_eq!(shop.counters().unauthorized, 1);
}

// ---- the fixtures ----

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../fixtures/channels/shopify/{name}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

#[derive(Deserialize)]
struct InventoryLevel {
    inventory_item_id: u64,
    location_id: u64,
    available: i64,
    updated_at: String,
    admin_graphql_api_id: String,
}

#[derive(Deserialize)]
struct OneLevel {
    inventory_level: InventoryLevel,
}

#[derive(Deserialize)]
struct Levels {
    inventory_levels: Vec<InventoryLevel>,
}

#[derive(Deserialize)]
struct LevelChange {
    location_id: u64,
    inventory_item_id: u64,
    #[serde(default)]
    available: Option<i64>,
    #[serde(default)]
    available_adjustment: Option<i64>,
}

#[derive(Deserialize)]
struct RefundRequest {
    refund: RefundRequestBody,
}

#[derive(Deserialize)]
struct RefundRequestBody {
    refund_line_items: Vec<RefundRequestLine>,
}

#[derive(Deserialize)]
struct RefundRequestLine {
    line_item_id: u64,
    quantity: i64,
    restock_type: String,
}

#[test]
fn every_shopify_fixture_is_parsed() {
    let dir = format!("{}/../../fixtures/channels/shopify", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    // A fixture added without a test below fails here.
    assert_eq!(
        names,
        [
            "SOURCES.md",
            "admin-2026-01.schema.subset-inventory.graphql",
            "rest-2026-07.inventory_levels.adjust.request.json",
            "rest-2026-07.inventory_levels.adjust.response.json",
            "rest-2026-07.inventory_levels.list.response.json",
            "rest-2026-07.inventory_levels.set.request.json",
            "rest-2026-07.inventory_levels.set.response.json",
            "rest-2026-07.order.cancel-450789469.response.json",
            "rest-2026-07.order.get-450789469.response.json",
            "rest-2026-07.refund.create.request.json",
            "rest-2026-07.refund.create.response.json",
        ]
    );

    // The order, unwrapped as a webhook sends it: only the line still to fulfil
    // (current_quantity 1) is taken, by variant id with its SKU.
    let order = json_fixture("rest-2026-07.order.get-450789469.response.json")["order"].to_string();
    for topic in ["orders/create", "orders/updated"] {
        let events = parse_topic(topic, order.as_bytes()).unwrap();
        let [InboundEvent::Order(o)] = &events[..] else { panic!("{events:?}") };
        assert_eq!(o.external_id, "450789469");
        assert_eq!(o.lines.len(), 1);
        assert_eq!(
            (o.lines[0].external_id.as_deref(), o.lines[0].store_sku.as_deref(), o.lines[0].quantity),
            (Some("49148385"), Some("IPOD2008RED"), 1)
        );
    }
    // The cancelled order, as orders/cancelled and as orders/updated.
    let cancelled = json_fixture("rest-2026-07.order.cancel-450789469.response.json")["order"].to_string();
    for topic in ["orders/cancelled", "orders/updated"] {
        let events = parse_topic(topic, cancelled.as_bytes()).unwrap();
        assert_eq!(events, vec![InboundEvent::Cancel { external_id: "450789469".into() }], "{topic}");
    }
    // The refund restocks nothing (no_restock): kept, ignored.
    let refund = json_fixture("rest-2026-07.refund.create.response.json")["refund"].to_string();
    let events = parse_topic("refunds/create", refund.as_bytes()).unwrap();
    assert!(matches!(&events[..], [InboundEvent::Ignored(r)] if r.contains("restocks nothing")), "{events:?}");
    // The same refund restocked as a return releases the order.
    let mut returned: Value = serde_json::from_str(&refund).unwrap();
    returned["refund_line_items"][0]["restock_type"] = json!("return");
    let events = parse_topic("refunds/create", returned.to_string().as_bytes()).unwrap();
    assert_eq!(events, vec![InboundEvent::Cancel { external_id: "450789469".into() }]);

    let request: RefundRequest = serde_json::from_slice(&fixture("rest-2026-07.refund.create.request.json")).unwrap();
    let line = &request.refund.refund_line_items[0];
    assert_eq!((line.line_item_id, line.quantity, line.restock_type.as_str()), (518995019, 1, "return"));

    let levels: Levels = serde_json::from_slice(&fixture("rest-2026-07.inventory_levels.list.response.json")).unwrap();
    assert_eq!(levels.inventory_levels.len(), 4);
    assert!(levels.inventory_levels.iter().all(|l| l.location_id == 655441491));
    assert_eq!(levels.inventory_levels[1].available, 1);
    for (name, available) in [
        ("rest-2026-07.inventory_levels.set.response.json", 42),
        ("rest-2026-07.inventory_levels.adjust.response.json", 6),
    ] {
        let one: OneLevel = serde_json::from_slice(&fixture(name)).unwrap();
        assert_eq!((one.inventory_level.inventory_item_id, one.inventory_level.available), (808950810, available));
        assert!(one.inventory_level.admin_graphql_api_id.starts_with("gid://shopify/InventoryLevel/655441491"));
        assert!(!one.inventory_level.updated_at.is_empty());
    }
    let set: LevelChange = serde_json::from_slice(&fixture("rest-2026-07.inventory_levels.set.request.json")).unwrap();
    assert_eq!((set.location_id, set.inventory_item_id, set.available), (655441491, 808950810, Some(42)));
    let adj: LevelChange =
        serde_json::from_slice(&fixture("rest-2026-07.inventory_levels.adjust.request.json")).unwrap();
    assert_eq!(adj.available_adjustment, Some(5));

    // The schema subset: checked name by name against the emulator's schema in
    // stockpool-emulators (shopify::tests::every_name_the_emulator_exposes_is_shopifys);
    // here, that it names what the connector's queries use.
    let schema = String::from_utf8(fixture("admin-2026-01.schema.subset-inventory.graphql")).unwrap();
    for name in [
        "nodes(\n    ids: [ID!]!\n  ): [Node]!",
        "inventorySetQuantities(",
        "changeFromQuantity: Int",
        "CHANGE_FROM_QUANTITY_STALE",
    ] {
        assert!(schema.contains(name), "{name}");
    }
    assert!(String::from_utf8(fixture("SOURCES.md")).unwrap().contains("shopify-app-js"));
}

both!(
    sync_now_reads_the_shop_back_records_drift_and_sets_the_figure_with_the_channels_quantity_as_base,
    |app: TestApp| async move {
        let shop = ShopifyShop::start(ShopifyConfig::default()).await.unwrap();
        seed(&app, &shop).await;
        until("the first push", async || (shop.available(1001) == Some(12)).then_some(())).await;
        until("its record", async || {
            app.sync_records(Some("shop")).await.iter().any(|r| r["result"] == "ok").then_some(())
        })
        .await;
        // Someone counts the shelf in Shopify's admin.
        shop.set_available(1001, 40);
        expect(&app.post("/api/v1/sync", json!({"store": "shop"})).await, 202);
        until("the figure put back", async || (shop.available(1001) == Some(12)).then_some(())).await;
        let all = until("the drift record and the push after it", async || {
            let all = app.sync_records(Some("shop")).await;
            let drift = all.iter().any(|r| r["result"] == "drift");
            let pushed = all.iter().any(|r| r["reason"] == "sync_now" && r["result"] == "ok");
            (drift && pushed).then_some(all)
        })
        .await;
        let drift: Vec<&Value> = all.iter().filter(|r| r["result"] == "drift").collect();
        assert_eq!(drift.len(), 1, "{all:?}");
        assert_eq!(
            (drift[0]["old_quantity"].as_i64(), drift[0]["new_quantity"].as_i64()),
            (Some(12), Some(40)),
            "{all:?}"
        );
        assert_eq!(drift[0]["reason"], "sync_now");
        // The read-back settled 40 as what the shop has: the push compared against it, so
        // it was taken at once, not refused as stale.
        assert!(all.iter().all(|r| r["result"] != "stale"), "{all:?}");
        let last = shop.mutations().last().cloned().expect("a mutation");
        assert!(last.user_errors.is_empty(), "{last:?}");
        let q = &last.quantities[0];
        assert_eq!((q.quantity, q.change_from_quantity), (12, Some(40)), "{last:?}");
    }
);

both!(scheduled_reconciliation_finds_drift_in_the_shop_and_corrects_it, |app: TestApp| async move {
    let shop = ShopifyShop::start(ShopifyConfig::default()).await.unwrap();
    seed(&app, &shop).await;
    expect(&app.send("PATCH", "/api/v1/stores/shop", Some(json!({"reconcile_every_minutes": 1}))).await, 200);
    until("the first push", async || (shop.available(1001) == Some(12)).then_some(())).await;
    until("its record", async || {
        app.sync_records(Some("shop")).await.iter().any(|r| r["result"] == "ok").then_some(())
    })
    .await;
    // A shelf count in Shopify's admin, behind our back.
    shop.set_available(1001, 3);
    // Within the period nothing reads the shop back.
    assert!(app.sync_records(Some("shop")).await.iter().all(|r| r["result"] != "drift"));
    app.advance_seconds(61);
    until("the figure put back", async || (shop.available(1001) == Some(12)).then_some(())).await;
    let all = until("the drift record and the correction", async || {
        let all = app.sync_records(Some("shop")).await;
        let drift = all.iter().any(|r| r["result"] == "drift");
        let corrected = all.iter().any(|r| r["reason"] == "reconcile" && r["result"] == "ok");
        (drift && corrected).then_some(all)
    })
    .await;
    let drift: Vec<&Value> = all.iter().filter(|r| r["result"] == "drift").collect();
    assert_eq!(drift.len(), 1, "{all:?}");
    assert_eq!((drift[0]["old_quantity"].as_i64(), drift[0]["new_quantity"].as_i64()), (Some(12), Some(3)), "{all:?}");
    assert_eq!(drift[0]["reason"], "reconcile");
    // The correction compared against what the read found.
    let last = shop.mutations().last().cloned().expect("a mutation");
    let q = &last.quantities[0];
    assert_eq!((q.quantity, q.change_from_quantity), (12, Some(3)), "{last:?}");
});
