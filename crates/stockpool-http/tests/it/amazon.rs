//! The `amazon` channel (issue 13) against the emulated seller account
//! (`stockpool_emulators::amazon`) over real HTTP: a realtime store's stock change lands as
//! a `merge` patch; an interval store sends a listings feed and never patches; the poller
//! finds an order, which reserves, is taken once, and its cancellation releases (both
//! backends). The connector alone: an expired token is refreshed and the push still lands,
//! a 429 with `Retry-After` holds the store that long, a refused refresh is final, and a
//! search of many pages is read a bounded number of pages a poll without losing an order.
//!
//! Runs converge by polling with a generous deadline; nothing asserts on speed.

use crate::both;
use crate::helpers::*;
use serde_json::json;
use std::time::{Duration, Instant};
use stockpool_channels::amazon::AmazonConnector;
use stockpool_channels::{AttemptResult, Connector, InboundEvent, PushItem, StoreSettings};
use stockpool_core::{ListingId, Timestamp};
use stockpool_emulators::amazon::{AmazonAccount, AmazonConfig, Plan};
use stockpool_emulators::Faults;

const DEADLINE: Duration = Duration::from_secs(60);

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {DEADLINE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An account whose searchOrders plan lets tests poll often (it reports the rate, so
/// the poller's floor follows it).
fn config() -> AmazonConfig {
    let mut c = AmazonConfig::new("A1SELLER", "ATVPDKIKX0DER", "amzn1.application-oa2-client.1", "cs", "Atzr|r1");
    c.search_plan = Plan { rate: 50.0, burst: 50.0 };
    c
}

fn credentials(c: &AmazonConfig) -> serde_json::Value {
    json!({"seller_id": c.seller_id, "marketplace_id": c.marketplace_id, "client_id": c.client_id,
           "client_secret": c.client_secret, "refresh_token": c.refresh_token})
}

/// `MUG-RED` with 12 in `main`; store `amz` on `account` lists it as `MUG-R` (ASIN B0MUG).
async fn seed(app: &TestApp, account: &AmazonAccount, schedule: serde_json::Value) {
    account.seed_listing("MUG-R", Some(3));
    expect(&app.post("/api/v1/warehouses", json!({"code":"main","name":"Main"})).await, 201);
    expect(&app.post("/api/v1/items", json!({"sku":"MUG-RED","name":"Red mug"})).await, 201);
    let stock = json!({"sku":"MUG-RED","warehouse":"main","delta":12,"reason":"received"});
    expect(&app.post("/api/v1/stock/adjustments", stock).await, 201);
    let store = json!({"code":"amz","name":"Amazon US","channel":"amazon","schedule": schedule,
                       "base_url": account.base_url(), "credentials": credentials(&config()),
                       "poll_every_seconds": 1});
    expect(&app.post("/api/v1/stores", store).await, 201);
    let listing = json!({"store":"amz","external_id":"B0MUG","store_sku":"MUG-R","sku":"MUG-RED"});
    expect(&app.post("/api/v1/listings", listing).await, 201);
}

async fn quantity_becomes(account: &AmazonAccount, app: &TestApp, want: i64) {
    until(&format!("MUG-R at {want} on Amazon"), async || {
        app.advance_seconds(2);
        (account.quantity("MUG-R") == Some(want)).then_some(())
    })
    .await;
}

both!(a_stock_change_reaches_amazon_as_a_merge_patch, |app: TestApp| async move {
    let account = AmazonAccount::start(config()).await.unwrap();
    seed(&app, &account, json!("realtime")).await;
    quantity_becomes(&account, &app, 12).await;
    let patches: Vec<_> = account.calls().into_iter().filter(|c| c.method == "PATCH" && c.status == 200).collect();
    let last = patches.last().expect("a patch");
    assert_eq!(last.path, "/listings/2021-08-01/items/A1SELLER/MUG-R");
    assert_eq!(last.query, "marketplaceIds=ATVPDKIKX0DER");
    assert_eq!(
        last.body.clone().unwrap(),
        json!({"productType": "PRODUCT", "patches": [{"op": "merge", "path": "/attributes/fulfillment_availability",
               "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 12}]}]})
    );
    assert!(account.calls().iter().all(|c| !c.path.starts_with("/feeds")));
});

both!(an_order_found_by_the_poller_reserves_is_taken_once_and_its_cancellation_releases, |app: TestApp| async move {
    let account = AmazonAccount::start(config()).await.unwrap();
    seed(&app, &account, json!("realtime")).await;
    quantity_becomes(&account, &app, 12).await;
    let now = app.clock.load(std::sync::atomic::Ordering::SeqCst) / 1000;
    account.put_order("111-0000001-0000001", now - 60, "UNSHIPPED", &[("MUG-R", "B0MUG", 2)]);
    quantity_becomes(&account, &app, 10).await;
    // Polled again (the overlap re-reads it): nothing changes.
    let searches = account.calls().iter().filter(|c| c.path.starts_with("/orders")).count();
    until("another poll", async || {
        app.advance_seconds(2);
        (account.calls().iter().filter(|c| c.path.starts_with("/orders")).count() > searches + 1).then_some(())
    })
    .await;
    assert_eq!(account.quantity("MUG-R"), Some(10));
    let orders = expect(&app.get("/api/v1/orders").await, 200).clone();
    assert_eq!(orders["data"].as_array().map(Vec::len), Some(1), "{orders}");
    account.cancel_order("111-0000001-0000001", now);
    quantity_becomes(&account, &app, 12).await;
    let search = account.calls().into_iter().find(|c| c.path.starts_with("/orders")).unwrap();
    assert!(search.query.contains("includedData=FULFILLMENT") && search.query.contains("lastUpdatedAfter="));
});

both!(an_interval_store_sends_one_listings_feed_and_no_patch, |app: TestApp| async move {
    let account = AmazonAccount::start(config()).await.unwrap();
    seed(&app, &account, json!({"every_minutes": 5})).await;
    until("a feed", async || {
        app.advance_seconds(60);
        (account.quantity("MUG-R") == Some(12)).then_some(())
    })
    .await;
    let feeds = account.feeds();
    assert!(feeds.iter().all(|f| f.processing_status == "DONE" && f.errors.is_empty()), "{feeds:?}");
    assert!(account.calls().iter().all(|c| c.method != "PATCH"));
    let paths: Vec<String> = account.calls().into_iter().map(|c| c.path).collect();
    let document = paths.iter().position(|p| p == "/feeds/2021-06-30/documents").unwrap();
    let upload = paths.iter().position(|p| p.starts_with("/upload/")).unwrap();
    let feed = paths.iter().position(|p| p == "/feeds/2021-06-30/feeds").unwrap();
    assert!(document < upload && upload < feed, "{paths:?}");
});

fn settings(account: &AmazonAccount, c: &AmazonConfig) -> StoreSettings {
    StoreSettings {
        code: "amz".into(),
        base_url: Some(account.base_url()),
        credentials: Some(credentials(c)),
        ..StoreSettings::default()
    }
}

fn item(n: u64, sku: &str, quantity: i64) -> PushItem {
    PushItem {
        listing: ListingId(n),
        public_id: format!("l-{n}"),
        external_id: format!("B0{n}"),
        store_sku: sku.into(),
        sku: sku.into(),
        quantity,
        sell_when_out_of_stock: false,
        show_backorder: false,
        settled: None,
    }
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_the_push_still_lands() {
    let c = config();
    let account = AmazonAccount::start(c.clone()).await.unwrap();
    account.seed_listing("A", None);
    let connector =
        AmazonConnector::new(&settings(&account, &c), stockpool_channels::http_client().unwrap(), DEADLINE).unwrap();
    let first = connector.push(&[item(1, "A", 4)], Timestamp(0)).await;
    assert_eq!(first[0].result, AttemptResult::Ok, "{first:?}");
    account.expire_tokens();
    let second = connector.push(&[item(1, "A", 5)], Timestamp(0)).await;
    assert_eq!(second[0].result, AttemptResult::Ok, "{second:?}");
    assert_eq!(account.quantity("A"), Some(5));
    assert_eq!(account.refusals().0, 1);
    let tokens = account.calls().iter().filter(|c| c.path == "/auth/o2/token").count();
    assert_eq!(tokens, 2);
    assert!(connector.rotated_credentials().unwrap()["access_token"].as_str().unwrap().starts_with("Atza|"));
    // An unknown SKU fails with Amazon's issue.
    let unknown = connector.push(&[item(2, "NOPE", 1)], Timestamp(0)).await;
    assert_eq!(unknown[0].result, AttemptResult::Failed);
    assert!(unknown[0].detail.as_deref().unwrap().contains("does not exist"), "{unknown:?}");
}

#[tokio::test]
async fn a_refused_refresh_is_final() {
    let c = config();
    let account = AmazonAccount::start(c.clone()).await.unwrap();
    let mut wrong = c.clone();
    wrong.refresh_token = "Atzr|revoked".into();
    let connector =
        AmazonConnector::new(&settings(&account, &wrong), stockpool_channels::http_client().unwrap(), DEADLINE)
            .unwrap();
    let got = connector.push(&[item(1, "A", 4)], Timestamp(0)).await;
    assert_eq!(got[0].result, AttemptResult::Failed, "{got:?}");
    assert!(connector.auth_refused().unwrap().contains("invalid_grant"), "{:?}", connector.auth_refused());
}

#[tokio::test]
async fn a_429_with_retry_after_holds_the_store() {
    let mut c = config();
    c.faults = Faults { seed: 1, throttle_percent: 100, retry_after_secs: Some(7), ..Faults::default() };
    let account = AmazonAccount::start(c.clone()).await.unwrap();
    account.seed_listing("A", None);
    let connector =
        AmazonConnector::new(&settings(&account, &c), stockpool_channels::http_client().unwrap(), DEADLINE).unwrap();
    let got = connector.push(&[item(1, "A", 4), item(2, "A", 4)], Timestamp(0)).await;
    assert!(got.iter().all(|a| a.result == AttemptResult::Throttled { retry_after_ms: Some(7000) }), "{got:?}");
    // Only the first was sent: the store waits.
    assert_eq!(account.calls().iter().filter(|c| c.method == "PATCH").count(), 1);
}

#[tokio::test]
async fn the_patch_rate_is_the_usage_plan_and_429s_carry_it() {
    let c = config();
    let account = AmazonAccount::start(c.clone()).await.unwrap();
    account.seed_listing("A", None);
    let connector =
        AmazonConnector::new(&settings(&account, &c), stockpool_channels::http_client().unwrap(), DEADLINE).unwrap();
    // Six patches at once: the burst is five, the sixth is throttled with the rate's wait.
    let batch: Vec<PushItem> = (1..=6).map(|n| item(n, "A", n as i64)).collect();
    let mut results = Vec::new();
    for chunk in batch.chunks(1) {
        results.extend(connector.push(chunk, Timestamp(0)).await);
    }
    let throttled = results.iter().filter(|a| matches!(a.result, AttemptResult::Throttled { .. })).count();
    assert!(throttled <= 1, "{results:?}");
    if let Some(a) = results.iter().find(|a| matches!(a.result, AttemptResult::Throttled { .. })) {
        assert_eq!(a.result, AttemptResult::Throttled { retry_after_ms: Some(200) });
    }
}

#[tokio::test]
async fn a_long_search_is_read_five_pages_a_poll_and_no_order_is_lost() {
    let mut c = config();
    c.page_max = 2;
    let account = AmazonAccount::start(c.clone()).await.unwrap();
    let now = 1_800_000_000;
    for n in 0..13 {
        account.put_order(&format!("111-{n:07}-0000001"), now - 3600 + n, "UNSHIPPED", &[("A", "B0A", 1)]);
    }
    let connector =
        AmazonConnector::new(&settings(&account, &c), stockpool_channels::http_client().unwrap(), DEADLINE).unwrap();
    let first = connector.poll_orders(None, Timestamp(now * 1000)).await.unwrap();
    assert_eq!(first.orders.len(), 10);
    assert!(first.more);
    let second = connector.poll_orders(first.next_cursor.as_deref(), Timestamp(now * 1000)).await.unwrap();
    assert_eq!(second.orders.len(), 3);
    assert!(!second.more);
    let mut ids: Vec<String> = first.orders.iter().chain(&second.orders).map(|o| o.delivery_id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 13);
    assert!(ids[0].starts_with("111-0000000-0000001@"));
    let cursor = second.next_cursor.unwrap();
    assert_eq!(cursor, stockpool_emulators::amazon::time_stamp(now - 3600 + 12));
    let events = connector.parse_polled(&second.orders[2].body).unwrap();
    assert!(matches!(&events[0], InboundEvent::Order(o) if o.lines[0].store_sku.as_deref() == Some("A")));
    // The next poll asks from the overlap before the cursor and finds the last ones again.
    let again = connector.poll_orders(Some(&cursor), Timestamp(now * 1000)).await.unwrap();
    assert!(!again.orders.is_empty() && again.orders.len() <= 13);
    // searchOrders reported its rate: the poll floor follows it (50 a second here).
    assert_eq!(connector.poll_interval_min(), Some(Duration::from_millis(20)));
}
