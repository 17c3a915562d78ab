//! The `etsy` connector against the emulated Etsy shop over real HTTP: pushes as one GET
//! and one PUT a listing with the whole inventory sent back, a listing at 0 everywhere set
//! inactive and active again, read back, receipts polled with a cursor, an expired token
//! refreshed with the rotated refresh token kept (and the old one refused), 429.
//! (The end-to-end runs through the poller and the dispatcher are still to come.)

use std::time::Duration;

use serde_json::json;
use stockpool_channels::etsy::EtsyConnector;
use stockpool_channels::{AttemptResult, Connector, InboundEvent, PushItem, ReadItem, StoreSettings};
use stockpool_core::{ListingId, Timestamp};
use stockpool_emulators::etsy::{EtsyConfig, EtsyShop};

const SHOP: u64 = 42;
const NOW: i64 = 1_764_590_400;

async fn shop(configure: impl FnOnce(&mut EtsyConfig)) -> EtsyShop {
    let mut config = EtsyConfig::new("keystring", SHOP, "refresh-0");
    config.access_token = Some("access-0".into());
    configure(&mut config);
    EtsyShop::start(config).await.unwrap()
}

fn connector(shop: &EtsyShop, refresh: &str) -> EtsyConnector {
    let settings = StoreSettings {
        code: "etsy".into(),
        base_url: Some(shop.base_url()),
        credentials: Some(json!({"shop_id": SHOP, "api_key": "keystring:shared-secret",
            "access_token": "access-0", "refresh_token": refresh})),
        ..StoreSettings::default()
    };
    EtsyConnector::new(&settings, stockpool_channels::http_client().unwrap(), Duration::from_secs(5)).unwrap()
}

fn push(n: u64, external_id: &str, quantity: i64) -> PushItem {
    PushItem {
        listing: ListingId(n),
        public_id: format!("l{n}"),
        external_id: external_id.into(),
        store_sku: String::new(),
        sku: String::new(),
        quantity,
        sell_when_out_of_stock: false,
        show_backorder: false,
        settled: None,
    }
}

fn read(n: u64, external_id: &str) -> ReadItem {
    ReadItem { listing: ListingId(n), external_id: external_id.into(), store_sku: String::new() }
}

fn results(attempts: &[stockpool_channels::Attempt]) -> Vec<AttemptResult> {
    attempts.iter().map(|a| a.result).collect()
}

#[tokio::test]
async fn a_push_sends_the_whole_inventory_back_and_changes_only_the_matching_product() {
    let shop = shop(|_| {}).await;
    shop.add_listing(10, &[(1, "MUG-RED", 3), (2, "MUG-BLUE", 4)]);
    let etsy = connector(&shop, "refresh-0");
    let got = etsy.push(&[push(1, "10/2", 5000)], Timestamp(NOW * 1000)).await;
    assert_eq!(results(&got), vec![AttemptResult::Ok], "{got:?}");
    assert_eq!(shop.quantity(10, 1), Some(3), "the other product is kept as it was");
    assert_eq!(shop.quantity(10, 2), Some(999), "capped at Etsy's 999");
    let products = shop.products(10);
    assert_eq!(products.iter().map(|p| p.product_id).collect::<Vec<_>>(), vec![1, 2], "every product kept");
    assert_eq!(products[0].offerings[0].0, 12.5, "the price went back as a decimal number");

    // Two products of one listing in one batch: one GET and one PUT.
    let before = shop.calls().len();
    let got = etsy.push(&[push(1, "10/1", 7), push(2, "10/2", 8)], Timestamp(NOW * 1000)).await;
    assert_eq!(results(&got), vec![AttemptResult::Ok, AttemptResult::Ok]);
    let calls: Vec<String> = shop.calls()[before..].iter().map(|c| c.method.clone()).collect();
    assert_eq!(calls, vec!["GET", "PUT"]);
    assert_eq!((shop.quantity(10, 1), shop.quantity(10, 2)), (Some(7), Some(8)));
    let back = etsy.read_back(&[read(1, "10/1"), read(2, "10/2"), read(3, "99")]).await.unwrap();
    assert_eq!(back, vec![(ListingId(1), Some(7)), (ListingId(2), Some(8)), (ListingId(3), None)]);

    // A listing the shop does not know fails with Etsy's sentence; a bad id fails too.
    let got = etsy.push(&[push(3, "99", 1), push(4, "not-an-id", 1)], Timestamp(NOW * 1000)).await;
    assert_eq!(results(&got), vec![AttemptResult::Failed, AttemptResult::Failed]);
    assert!(got[0].detail.as_deref().unwrap().contains("does not exist"), "{got:?}");
}

#[tokio::test]
async fn a_listing_at_zero_everywhere_goes_inactive_and_comes_back_on_restock() {
    let shop = shop(|_| {}).await;
    shop.add_listing(20, &[(5, "PLATE", 2)]);
    let etsy = connector(&shop, "refresh-0");
    let got = etsy.push(&[push(1, "20", 0)], Timestamp(NOW * 1000)).await;
    assert_eq!(results(&got), vec![AttemptResult::Ok], "{got:?}");
    assert_eq!(shop.listing_state(20).as_deref(), Some("inactive"));
    assert!(shop.calls().iter().all(|c| c.method != "PUT"), "no all-zero inventory is sent");
    assert_eq!(etsy.read_back(&[read(1, "20")]).await.unwrap(), vec![(ListingId(1), Some(0))]);
    let got = etsy.push(&[push(1, "20", 6)], Timestamp(NOW * 1000)).await;
    assert_eq!(results(&got), vec![AttemptResult::Ok], "{got:?}");
    assert_eq!(shop.listing_state(20).as_deref(), Some("active"));
    assert_eq!(shop.quantity(20, 5), Some(6));
    assert_eq!(etsy.read_back(&[read(1, "20")]).await.unwrap(), vec![(ListingId(1), Some(6))]);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_the_rotated_refresh_token_kept() {
    let shop = shop(|_| {}).await;
    shop.add_listing(30, &[(7, "CUP", 1)]);
    shop.expire_tokens();
    let etsy = connector(&shop, "refresh-0");
    let got = etsy.push(&[push(1, "30", 4)], Timestamp(NOW * 1000)).await;
    assert_eq!(results(&got), vec![AttemptResult::Ok], "{got:?}");
    let rotated = etsy.rotated_credentials().expect("new tokens are handed back");
    assert_eq!(rotated["refresh_token"], json!(shop.refresh_token()));
    assert_ne!(rotated["refresh_token"], "refresh-0");
    assert_eq!(rotated["shop_id"], SHOP);
    assert!(etsy.auth_refused().is_none());

    // The old refresh token no longer works: a store still holding it is refused.
    shop.expire_tokens();
    let stale = connector(&shop, "refresh-0");
    let got = stale.push(&[push(1, "30", 5)], Timestamp(NOW * 1000)).await;
    assert_eq!(results(&got), vec![AttemptResult::Failed], "{got:?}");
    assert!(stale.auth_refused().is_some());
    assert_eq!(shop.quantity(30, 7), Some(4));
}

#[tokio::test]
async fn receipts_are_polled_from_a_cursor_and_a_cancellation_is_a_new_delivery() {
    let shop = shop(|_| {}).await;
    let etsy = connector(&shop, "refresh-0");
    shop.set_time(NOW - 10);
    let first = shop.add_receipt(&[(10, 2, "MUG-BLUE", 2)]);
    shop.set_time(NOW - 5);
    let second = shop.add_receipt(&[(20, 5, "PLATE", 1)]);
    let page = etsy.poll_orders(None, Timestamp(NOW * 1000)).await.unwrap();
    let ids: Vec<&str> = page.orders.iter().map(|o| o.delivery_id.as_str()).collect();
    assert_eq!(ids, vec![format!("{first}@{}", NOW - 10), format!("{second}@{}", NOW - 5)]);
    assert_eq!(page.next_cursor.as_deref(), Some(&*(NOW - 5).to_string()));
    assert!(!page.more);
    let events = etsy.parse_polled(&page.orders[0].body).unwrap();
    let InboundEvent::Order(order) = &events[0] else { panic!("{events:?}") };
    assert_eq!(order.external_id, first.to_string());
    assert_eq!(order.lines[0].external_id.as_deref(), Some("10/2"));
    assert_eq!(order.lines[0].store_sku.as_deref(), Some("MUG-BLUE"));

    shop.set_time(NOW);
    shop.set_receipt_status(first, "canceled");
    let page = etsy.poll_orders(page.next_cursor.as_deref(), Timestamp(NOW * 1000)).await.unwrap();
    let ids: Vec<&str> = page.orders.iter().map(|o| o.delivery_id.as_str()).collect();
    assert_eq!(
        ids,
        vec![format!("{second}@{}", NOW - 5), format!("{first}@{NOW}")],
        "re-reading the cursor's second is fine"
    );
    assert_eq!(
        etsy.parse_polled(&page.orders[1].body).unwrap(),
        vec![InboundEvent::Cancel { external_id: first.to_string() }]
    );
}

#[tokio::test]
async fn many_receipts_in_one_second_are_paged_and_the_cursor_moves_past_them() {
    let shop = shop(|c| c.limit_per_second = 1000).await;
    let etsy = connector(&shop, "refresh-0");
    shop.set_time(NOW);
    for _ in 0..620 {
        shop.add_receipt(&[(10, 2, "MUG-BLUE", 1)]);
    }
    let page = etsy.poll_orders(Some(&(NOW - 1).to_string()), Timestamp(NOW * 1000)).await.unwrap();
    assert_eq!(page.orders.len(), 500, "five pages of 100");
    assert!(page.more);
    let next = page.next_cursor.clone().unwrap();
    let page = etsy.poll_orders(Some(&next), Timestamp(NOW * 1000)).await.unwrap();
    assert!(page.orders.len() >= 120 && !page.more, "{} more", page.orders.len());
}

#[tokio::test]
async fn over_the_second_s_limit_etsy_answers_429_and_the_store_waits() {
    let shop = shop(|c| c.limit_per_second = 1).await;
    shop.add_listing(40, &[(8, "BOWL", 1)]);
    let etsy = connector(&shop, "refresh-0");
    let got = etsy.push(&[push(1, "40", 3)], Timestamp(NOW * 1000)).await;
    assert!(matches!(got[0].result, AttemptResult::Throttled { retry_after_ms: Some(1000) }), "{got:?}");
    assert_eq!(etsy.limits().requests_per_second_milli, 500, "half the reported limit: two calls a listing");
    let throttled = shop.calls().into_iter().filter(|c| c.status == 429).count();
    assert_eq!(throttled, 1);
}
