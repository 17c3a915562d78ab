//! The `ebay` channel (issue 13): the connector against an emulated eBay seller account on
//! loopback (`stockpool_emulators::EbaySeller`) directly (pushes and their 207 answers,
//! read-backs, token refresh, 429, polled orders and the cursor), and the real server's
//! dispatchers pushing to it end to end on SQLite and PostgreSQL.
//!
//! The dispatchers run in real time, so the end-to-end tests wait for what the account
//! holds, each wait bounded; nothing asserts on speed.

use crate::both;
use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use stockpool_channels::ebay::{self, Cursor, EbayConnector, BATCH_MAX, CALLS_PER_SECOND, PAGE_LIMIT};
use stockpool_channels::StoreSettings;
use stockpool_channels::{AttemptResult, ChannelError, Connector, InboundEvent, InboundLine, PushItem, ReadItem};
use stockpool_core::{ListingId, Timestamp};
use stockpool_emulators::{EbayConfig, EbaySeller, Faults};
use stockpool_store::model::{AdjustmentInput, ItemInput, WarehouseInput};
use stockpool_store::Command;

/// How long a run may take to converge: far beyond what it needs.
const DEADLINE: Duration = Duration::from_secs(90);

async fn account(faults: Faults) -> EbaySeller {
    EbaySeller::start(EbayConfig { faults, ..EbayConfig::default() }).await.unwrap()
}

fn settings(seller: &EbaySeller) -> StoreSettings {
    StoreSettings {
        code: "ebay".into(),
        base_url: Some(seller.base_url()),
        credentials: Some(seller.credentials()),
        ..StoreSettings::default()
    }
}

fn connector(seller: &EbaySeller) -> EbayConnector {
    EbayConnector::new(&settings(seller), stockpool_channels::http_client().unwrap(), Duration::from_secs(5)).unwrap()
}

/// Offer `5005000000 + n` of SKU `E-{n}`.
fn offer(n: u64) -> String {
    (5_005_000_000 + n).to_string()
}

fn push_item(n: u64, external_id: &str, quantity: i64) -> PushItem {
    PushItem {
        listing: ListingId(n),
        public_id: format!("lst_{n}"),
        external_id: external_id.into(),
        store_sku: format!("E-{n}"),
        sku: format!("E-{n}"),
        quantity,
        sell_when_out_of_stock: false,
        show_backorder: false,
        settled: None,
    }
}

fn now() -> Timestamp {
    Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
}

#[tokio::test]
async fn a_push_sends_the_documented_shape_and_a_207_fails_only_the_listings_it_names() {
    let seller = account(Faults::default()).await;
    let mut batch = Vec::new();
    for n in 0..26u64 {
        seller.seed_offer(&offer(n), &format!("E-{n}"), 1);
        batch.push(push_item(n, &offer(n), n as i64 + 2));
    }
    // Two offers eBay does not have, and an id that cannot be an offer's.
    batch.push(push_item(26, "5009999991", 4));
    batch.push(push_item(27, "5009999992", 4));
    batch.push(push_item(28, "../offer", 4));
    let attempts = connector(&seller).push(&batch, now()).await;
    assert_eq!(attempts.len(), 29);
    assert!(attempts[..26].iter().all(|a| a.result == AttemptResult::Ok), "{:?}", &attempts[..26]);
    for a in &attempts[26..28] {
        assert_eq!((a.result, a.status_code), (AttemptResult::Failed, Some(404)), "{a:?}");
        let detail = a.detail.as_deref().unwrap();
        assert!(detail.contains("25713") && detail.contains("This Offer is not available"), "{detail}");
    }
    assert_eq!((attempts[28].result, attempts[28].status_code), (AttemptResult::Failed, None));
    for n in 0..26u64 {
        assert_eq!(seller.offer_quantity(&offer(n)), Some(n as i64 + 2));
        assert_eq!(seller.item_quantity(&format!("E-{n}")), Some(n as i64 + 2));
    }
    // 28 offers: 25 in the first call, 3 in the second, and the second answered 207.
    let calls: Vec<_> = seller.calls().into_iter().filter(|c| c.path.ends_with("bulk_update_price_quantity")).collect();
    assert_eq!(calls.iter().map(|c| (c.items, c.status)).collect::<Vec<_>>(), [(25, 200), (3, 207)]);
    let first = &seller.bulk_updates()[0];
    assert_eq!(
        first["requests"][3],
        json!({"sku": "E-3", "shipToLocationAvailability": {"quantity": 5},
               "offers": [{"offerId": offer(3), "availableQuantity": 5}]})
    );
}

#[tokio::test]
async fn listings_of_one_sku_share_a_request_and_a_repeated_offer_goes_in_a_call_of_its_own() {
    let seller = account(Faults::default()).await;
    seller.seed_offer("7001", "MUG", 0);
    seller.seed_offer("7002", "MUG", 0);
    let mut a = push_item(1, "7001", 3);
    let mut b = push_item(2, "7002", 5);
    let mut again = push_item(3, "7001", 2);
    for item in [&mut a, &mut b, &mut again] {
        item.store_sku = "MUG".into();
    }
    let attempts = connector(&seller).push(&[a, b, again], now()).await;
    assert!(attempts.iter().all(|a| a.result == AttemptResult::Ok), "{attempts:?}");
    let bodies = seller.bulk_updates();
    assert_eq!(
        bodies[0],
        json!({"requests": [{"sku": "MUG", "shipToLocationAvailability": {"quantity": 5},
               "offers": [{"offerId": "7001", "availableQuantity": 3}, {"offerId": "7002", "availableQuantity": 5}]}]})
    );
    assert_eq!(bodies.len(), 2);
    assert_eq!(seller.offer_quantity("7001"), Some(2), "the later figure went last");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_push_still_lands() {
    let seller = account(Faults::default()).await;
    seller.seed_offer("7001", "E-1", 0);
    let c = connector(&seller);
    assert!(c.rotated_credentials().is_none());
    assert_eq!(c.push(&[push_item(1, "7001", 3)], now()).await[0].result, AttemptResult::Ok);
    seller.expire_tokens();
    let attempts = c.push(&[push_item(1, "7001", 4)], now()).await;
    assert_eq!(attempts[0].result, AttemptResult::Ok, "{attempts:?}");
    assert_eq!(seller.offer_quantity("7001"), Some(4));
    let counters = seller.counters();
    assert_eq!((counters.tokens_issued, counters.unauthorized), (2, 1));
    let rotated = c.rotated_credentials().expect("the new access token is handed back");
    assert!(rotated["access_token"].as_str().unwrap().contains("emulated-access-2"), "{rotated}");
    assert_eq!(rotated["refresh_token"], seller.credentials()["refresh_token"], "eBay's refresh tokens do not rotate");
    assert!(c.auth_refused().is_none());
}

#[tokio::test]
async fn a_revoked_refresh_token_fails_the_push_with_a_sentence_and_reports_auth_refused() {
    let seller = account(Faults::default()).await;
    seller.seed_offer("7001", "E-1", 0);
    seller.revoke_refresh_token();
    let c = connector(&seller);
    let attempts = c.push(&[push_item(1, "7001", 3)], now()).await;
    assert_eq!(attempts[0].result, AttemptResult::Failed);
    let detail = attempts[0].detail.as_deref().unwrap();
    assert!(detail.contains("invalid_grant") && detail.contains("connect the store again"), "{detail}");
    assert!(c.auth_refused().is_some_and(|s| s.contains("refused")));
    // Refused once, not again and again.
    assert!(matches!(c.poll_orders(None, now()).await, Err(ChannelError::AuthRefused { .. })));
    assert_eq!(seller.counters().tokens_refused, 1);
    // Wrong application keys are refused the same way.
    let wrong = StoreSettings {
        credentials: Some(json!({"client_id": "x", "client_secret": "y", "refresh_token": "z"})),
        ..settings(&seller)
    };
    let c = EbayConnector::new(&wrong, stockpool_channels::http_client().unwrap(), Duration::from_secs(5)).unwrap();
    let attempts = c.push(&[push_item(1, "7001", 3)], now()).await;
    assert!(attempts[0].detail.as_deref().unwrap().contains("invalid_client"), "{attempts:?}");
}

#[tokio::test]
async fn a_429_with_retry_after_throttles_pushes_reads_and_polls() {
    let seller =
        account(Faults { seed: 3, throttle_percent: 100, retry_after_secs: Some(7), ..Faults::default() }).await;
    seller.seed_offer("7001", "E-1", 0);
    let c = connector(&seller);
    let attempts = c.push(&[push_item(1, "7001", 3)], now()).await;
    assert_eq!(
        (attempts[0].result, attempts[0].status_code),
        (AttemptResult::Throttled { retry_after_ms: Some(7000) }, Some(429))
    );
    assert!(attempts[0].detail.as_deref().unwrap().contains("2001"), "{attempts:?}");
    assert_eq!(seller.offer_quantity("7001"), Some(0));
    // The pacer now holds the store for 7 s: the next call waits; the dispatcher would too.
    let failing = account(Faults { seed: 3, error_percent: 100, ..Faults::default() }).await;
    failing.seed_offer("7001", "E-1", 0);
    let c = connector(&failing);
    let attempts = c.push(&[push_item(1, "7001", 3)], now()).await;
    assert_eq!(
        (attempts[0].result, attempts[0].status_code),
        (AttemptResult::Retry { retry_after_ms: None }, Some(503))
    );
    assert!(matches!(c.poll_orders(None, now()).await, Err(ChannelError::Unavailable { .. })));
    let item = ReadItem { listing: ListingId(1), external_id: "7001".into(), store_sku: "E-1".into() };
    assert!(matches!(c.read_back(&[item]).await, Err(ChannelError::Unavailable { .. })));
}

#[tokio::test]
async fn a_throttled_poll_says_how_long_to_wait() {
    let seller =
        account(Faults { seed: 3, throttle_percent: 100, retry_after_secs: Some(2), ..Faults::default() }).await;
    match connector(&seller).poll_orders(None, now()).await {
        Err(ChannelError::Throttled { retry_after_ms, .. }) => assert_eq!(retry_after_ms, Some(2000)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn read_back_answers_each_offer_s_available_quantity() {
    let seller = account(Faults::default()).await;
    for n in 0..7u64 {
        seller.seed_offer(&offer(n), &format!("E-{n}"), n as i64);
    }
    let item = |n: u64, external_id: &str| ReadItem {
        listing: ListingId(n),
        external_id: external_id.into(),
        store_sku: format!("E-{n}"),
    };
    let mut items: Vec<ReadItem> = (0..7).map(|n| item(n, &offer(n))).collect();
    items.push(item(7, "5009999999"));
    items.push(item(8, "not/an/offer"));
    let c = connector(&seller);
    let got = c.read_back(&items).await.unwrap();
    let mut want: Vec<(ListingId, Option<i64>)> = (0..7).map(|n| (ListingId(n), Some(n as i64))).collect();
    want.extend([(ListingId(7), None), (ListingId(8), None)]);
    assert_eq!(got, want);
    seller.set_quantity(&offer(2), 40);
    assert_eq!(c.read_back(&items[2..3]).await.unwrap(), vec![(ListingId(2), Some(40))]);
    let gets = seller.calls().iter().filter(|c| c.method == "GET" && c.path.contains("/offer/")).count();
    assert_eq!(gets, 9, "one getOffer per offer id, none for the id that cannot be one");
}

/// Every order the connector finds from `cursor` on, polling until it says there are no more.
async fn poll_all(c: &EbayConnector, mut cursor: Option<String>) -> (Vec<stockpool_channels::PolledOrder>, String) {
    let mut found = Vec::new();
    for _ in 0..20 {
        let page = c.poll_orders(cursor.as_deref(), now()).await.unwrap();
        found.extend(page.orders);
        cursor = page.next_cursor;
        if !page.more {
            return (found, cursor.unwrap());
        }
    }
    panic!("the poll never ended");
}

#[tokio::test]
async fn polls_page_through_orders_oldest_first_and_cancellations_are_new_deliveries() {
    let seller = account(Faults::default()).await;
    seller.seed_offer("7001", "MUG", 10);
    let mut stamps = BTreeMap::new();
    for n in 0..450 {
        let id = format!("27-{n:05}-00001");
        stamps.insert(id.clone(), seller.add_order(&id, &[("MUG", 1), ("", 2)]));
    }
    let c = connector(&seller);
    let first = c.poll_orders(None, now()).await.unwrap();
    assert!(!first.more);
    assert_eq!(first.orders.len(), 450);
    let ids: Vec<String> = first.orders.iter().map(|o| o.delivery_id.clone()).collect();
    let want: Vec<String> = stamps.iter().map(|(id, at)| format!("{id}@{at}")).collect();
    assert_eq!(ids, want, "every order once, oldest first, as {{orderId}}@{{lastModifiedDate}}");
    let gets: Vec<_> = seller.calls().into_iter().filter(|c| c.path == "/sell/fulfillment/v1/order").collect();
    assert_eq!(gets.len(), 3, "450 orders are three pages of {PAGE_LIMIT}");
    assert!(gets[0].query.starts_with("filter=lastmodifieddate%3A%5B"), "{}", gets[0].query);
    assert!(gets[0].query.ends_with("..%5D&limit=200&offset=0"), "{}", gets[0].query);
    // Each polled body is the order as eBay holds it; its lines map by SKU, a line without
    // one keeps its title (an unmapped line).
    let events = c.parse_polled(&first.orders[0].body).unwrap();
    let InboundEvent::Order(order) = &events[0] else { panic!("{events:?}") };
    assert_eq!(order.external_id, "27-00000-00001");
    assert_eq!(
        order.lines,
        [
            InboundLine { store_sku: Some("MUG".into()), external_id: None, quantity: 1 },
            InboundLine { store_sku: Some("Listing 110000000000".into()), external_id: None, quantity: 2 },
        ]
    );
    // A cancellation is a new delivery of the same order, and releases.
    let cursor = first.next_cursor.unwrap();
    let cancelled = seller.cancel_order("27-00007-00001").unwrap();
    let again = c.poll_orders(Some(&cursor), now()).await.unwrap();
    let delivery = format!("27-00007-00001@{cancelled}");
    let o = again.orders.iter().find(|o| o.delivery_id == delivery).expect("the cancellation is polled");
    assert_eq!(again.orders.last().unwrap().delivery_id, delivery, "the newest change comes last");
    assert_eq!(c.parse_polled(&o.body).unwrap(), [InboundEvent::Cancel { external_id: "27-00007-00001".into() }]);
}

#[tokio::test]
async fn a_poll_stops_after_five_pages_and_the_next_goes_on_without_skipping_an_order() {
    let seller = account(Faults::default()).await;
    for n in 0..1100 {
        seller.add_order(&format!("O-{n:05}"), &[("MUG", 1)]);
    }
    let c = connector(&seller);
    let first = c.poll_orders(None, now()).await.unwrap();
    assert!(first.more, "1,100 orders are more than five pages");
    assert_eq!(first.orders.len(), 1000);
    let cursor = first.next_cursor.unwrap();
    assert_eq!(Cursor::parse(&cursor).unwrap().offset, 1000, "{cursor}");
    // Orders that come in between shift the pages (eBay lists newest first here): some are
    // read twice, none is lost.
    for n in 1100..1110 {
        seller.add_order(&format!("O-{n:05}"), &[("MUG", 1)]);
    }
    let (rest, last) = poll_all(&c, Some(cursor)).await;
    let seen: BTreeSet<String> =
        first.orders.iter().chain(&rest).map(|o| o.delivery_id.split('@').next().unwrap().to_string()).collect();
    let (later, _) = poll_all(&c, Some(last)).await;
    let seen: BTreeSet<String> =
        seen.into_iter().chain(later.iter().map(|o| o.delivery_id.split('@').next().unwrap().to_string())).collect();
    assert_eq!(seen.len(), 1110, "every order was found");
}

#[tokio::test]
async fn a_cursor_starts_a_little_before_the_last_change_seen() {
    let seller = account(Faults::default()).await;
    let c = connector(&seller);
    let at = now();
    // Nothing yet: the first poll looks back a day and keeps that start.
    let empty = c.poll_orders(None, at).await.unwrap();
    let start = Cursor::parse(empty.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(start.from, Timestamp(at.0 - 24 * 3600 * 1000));
    let stamp = seller.add_order("O-1", &[("MUG", 1)]);
    let page = c.poll_orders(empty.next_cursor.as_deref(), at).await.unwrap();
    assert_eq!(page.orders.len(), 1);
    let next = Cursor::parse(page.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(next.from.0, ebay::parse_time(&stamp).unwrap().0 - ebay::CURSOR_OVERLAP_MS);
    // Read again within the overlap: the same delivery, which changes nothing.
    let again = c.poll_orders(page.next_cursor.as_deref(), at).await.unwrap();
    assert_eq!(again.orders, page.orders);
}

// ---- end to end ----

fn store_body(seller: &EbaySeller) -> Value {
    json!({"code": "ebay", "name": "eBay", "channel": "ebay", "schedule": "realtime",
           "base_url": seller.base_url(), "credentials": seller.credentials()})
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

/// `n` items `E-0000`... with `stock` each, each listed on store `ebay` as offer
/// `5005000000 + i` of inventory item `E-i`. Returns (sku, offer id).
async fn seed_many(app: &TestApp, seller: &EbaySeller, n: usize, stock: i64) -> Vec<(String, String)> {
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let mut listed = Vec::new();
    let mut cmds = vec![Command::CreateWarehouse(WarehouseInput { code: "main".into(), name: "Main".into() })];
    for i in 0..n {
        let sku = format!("E-{i:04}");
        let offer_id = offer(i as u64);
        seller.seed_offer(&offer_id, &sku, 0);
        cmds.push(Command::CreateItem(ItemInput { sku: sku.clone(), name: Some(sku.clone()), ..ItemInput::default() }));
        cmds.push(Command::Adjust(AdjustmentInput {
            sku: sku.clone(),
            warehouse: "main".into(),
            delta: Some(stock),
            set: None,
            reason: Some("received".into()),
        }));
        listed.push((sku, offer_id));
    }
    app.store.execute(ws, Command::Batch(cmds)).await.expect("the catalogue is created");
    expect(&app.post("/api/v1/stores", store_body(seller)).await, 201);
    let listings: Vec<Value> = listed
        .iter()
        .map(|(sku, offer_id)| json!({"store": "ebay", "external_id": offer_id, "store_sku": sku, "sku": sku}))
        .collect();
    expect(&app.post("/api/v1/listings/bulk", json!({ "listings": listings })).await, 201);
    listed
}

/// Every listing of store `ebay`: sku -> published quantity.
async fn published(app: &TestApp) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/api/v1/listings?store=ebay&limit=1000".to_string(),
            Some(c) => format!("/api/v1/listings?store=ebay&limit=1000&cursor={c}"),
        };
        let res = app.get(&path).await;
        let page = expect(&res, 200);
        for l in page["data"].as_array().unwrap() {
            out.insert(l["sku"].as_str().unwrap().to_string(), l["published_quantity"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Waits until the account shows every listing's published figure.
async fn converged(app: &TestApp, seller: &EbaySeller, listed: &[(String, String)]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let want = published(app).await;
        let behind: Vec<&(String, String)> =
            listed.iter().filter(|(sku, offer)| seller.offer_quantity(offer) != want.get(sku).copied()).collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} listings are not at their figure on eBay, e.g. {:?}: eBay {:?}, published {:?}",
            behind.len(),
            behind[0],
            seller.offer_quantity(&behind[0].1),
            want.get(&behind[0].0)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The most calls the account got in any one second.
fn busiest_second(seller: &EbaySeller) -> usize {
    let at: Vec<Instant> = seller.calls().iter().filter(|c| !c.path.contains("oauth2")).map(|c| c.at).collect();
    (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| t.duration_since(at[i]) < Duration::from_secs(1)).count())
        .max()
        .unwrap_or(0)
}

both!(a_stock_change_reaches_ebay_in_the_documented_call_shape, |app: TestApp| async move {
    let seller = account(Faults::default()).await;
    let listed = seed_many(&app, &seller, 3, 12).await;
    converged(&app, &seller, &listed).await;
    adjust(&app, "E-0001", -5).await;
    wait_for("the figure after the change", || (seller.offer_quantity(&offer(1)) == Some(7)).then_some(())).await;
    assert_eq!(seller.item_quantity("E-0001"), Some(7), "the inventory item's ship-to-home quantity too");
    let bodies = seller.bulk_updates();
    let last = bodies.last().unwrap();
    assert_eq!(
        last["requests"],
        json!([{"sku": "E-0001", "shipToLocationAvailability": {"quantity": 7},
                "offers": [{"offerId": offer(1), "availableQuantity": 7}]}])
    );
    // The pushes' records (the store's polls have records of their own, reason `poll`).
    let records: Vec<Value> =
        app.sync_records(Some("ebay")).await.into_iter().filter(|r| r["reason"] != "poll").collect();
    assert!(
        records.len() >= 4 && records.iter().all(|r| r["result"] == "ok" && r["status_code"] == 200),
        "{records:?}"
    );
});

both!(a_burst_over_100_listings_stays_within_25_a_call_and_the_pacing_and_converges, |app: TestApp| async move {
    let seller = account(Faults::default()).await;
    let listed = seed_many(&app, &seller, 130, 20).await;
    converged(&app, &seller, &listed).await;
    for (sku, _) in &listed {
        adjust(&app, sku, -1).await;
    }
    assert!(published(&app).await.values().all(|q| *q == 19), "every listing publishes 19");
    converged(&app, &seller, &listed).await;
    let counters = seller.counters();
    assert_eq!(counters.rate_limited, 0, "no call went over the account's limit");
    assert!(seller.max_items_per_call() <= BATCH_MAX, "a call carried {} offers", seller.max_items_per_call());
    let busiest = busiest_second(&seller);
    assert!(busiest <= 2 * CALLS_PER_SECOND as usize + 2, "{busiest} calls in one second");
    assert!(seller.calls().iter().all(|c| c.status == 200), "every call was taken");
    eprintln!("ebay burst: {} listings, {} calls, at most {busiest} in a second", listed.len(), seller.calls().len());
});

both!(a_listing_ebay_refuses_fails_with_its_message_and_the_others_land, |app: TestApp| async move {
    let seller = account(Faults::default()).await;
    let listed = seed_many(&app, &seller, 4, 6).await;
    converged(&app, &seller, &listed).await;
    // A listing whose offer eBay no longer has.
    expect(&app.post("/api/v1/items", json!({"sku": "GONE", "name": "Gone"})).await, 201);
    adjust(&app, "GONE", 3).await;
    let listing = json!({"store": "ebay", "external_id": "5009999999", "store_sku": "GONE", "sku": "GONE"});
    expect(&app.post("/api/v1/listings", listing).await, 201);
    adjust(&app, "E-0002", -1).await;
    wait_for("E-0002's new figure", || (seller.offer_quantity(&offer(2)) == Some(5)).then_some(())).await;
    let deadline = Instant::now() + DEADLINE;
    let failed = loop {
        let records = app.sync_records(Some("ebay")).await;
        if let Some(r) = records.iter().find(|r| r["sku"] == "GONE" && r["result"] == "failed") {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no failed record for GONE: {records:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["status_code"], 404);
    assert!(failed["detail"].as_str().unwrap().contains("This Offer is not available : 5009999999"), "{failed}");
});
