//! The emulated webhook shop takes exactly SPEC section 5's signed push and refuses the
//! rest: what it refuses leaves what its shoppers see unchanged.

use std::time::Duration;

use stockpool_emulators::webhook::signature;
use stockpool_emulators::{Faults, ShopConfig, WebhookShop};

const SECRET: &str = "s3cret";

async fn shop(faults: Faults) -> WebhookShop {
    WebhookShop::start(ShopConfig { store: "site".into(), secret: SECRET.into(), faults }).await.unwrap()
}

fn push_body(store: &str, quantity: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "store": store, "listing": "lst_1", "store_sku": "MUG-RED", "sku": "MUG-RED",
        "quantity": quantity, "sent_at": "2026-12-02T10:00:00.123Z"
    }))
    .unwrap()
}

async fn post(shop: &WebhookShop, body: Vec<u8>, signature: Option<String>) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(shop.url()).header("content-type", "application/json");
    if let Some(s) = signature {
        req = req.header("x-stockpool-signature", s);
    }
    req.body(body).send().await.unwrap()
}

#[tokio::test]
async fn a_signed_push_is_shown_to_shoppers() {
    let shop = shop(Faults::default()).await;
    let body = push_body("site", 7);
    let sig = signature(SECRET, &body);
    assert_eq!(post(&shop, body, Some(sig)).await.status(), 200);
    assert_eq!(shop.shown("MUG-RED"), Some(7));
    let log = shop.log();
    assert_eq!((log.len(), log[0].status, log[0].quantity), (1, 200, Some(7)));
}

#[tokio::test]
async fn a_missing_or_wrong_signature_is_401_and_shows_nothing() {
    let shop = shop(Faults::default()).await;
    assert_eq!(post(&shop, push_body("site", 7), None).await.status(), 401);
    let wrong = signature("other", &push_body("site", 7));
    assert_eq!(post(&shop, push_body("site", 7), Some(wrong)).await.status(), 401);
    // Signed, but over another body.
    let other = signature(SECRET, &push_body("site", 8));
    assert_eq!(post(&shop, push_body("site", 7), Some(other)).await.status(), 401);
    assert_eq!(shop.shown("MUG-RED"), None);
}

#[tokio::test]
async fn a_body_that_is_not_the_push_is_400() {
    let shop = shop(Faults::default()).await;
    let bodies = [
        push_body("another-store", 3),
        push_body("site", -1),
        br#"{"store":"site","listing":"l","store_sku":"A","sku":"A","quantity":1}"#.to_vec(),
        br#"{"store":"site","listing":"l","store_sku":"A","sku":"A","quantity":1,"sent_at":"yesterday"}"#.to_vec(),
        br#"{"store":"site","listing":"l","store_sku":"A","sku":"A","quantity":"1","sent_at":"2026-12-02T10:00:00Z"}"#
            .to_vec(),
        br#"{"store":"site","listing":"l","store_sku":"A","sku":"A","quantity":1,"sent_at":"2026-12-02T10:00:00Z","x":1}"#
            .to_vec(),
    ];
    for body in bodies {
        let sig = signature(SECRET, &body);
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(post(&shop, body, Some(sig)).await.status(), 400, "{text}");
    }
    assert!(shop.shown_all().is_empty());
}

#[tokio::test]
async fn seeded_faults_answer_429_with_retry_after_and_503_and_change_nothing() {
    let faults =
        Faults { seed: 11, throttle_percent: 30, retry_after_secs: Some(2), error_percent: 30, ..Faults::default() };
    let shop = shop(faults).await;
    let mut statuses = Vec::new();
    for q in 0..40 {
        let body = push_body("site", q);
        let sig = signature(SECRET, &body);
        let res = post(&shop, body, Some(sig)).await;
        if res.status() == 429 {
            assert_eq!(res.headers().get("retry-after").unwrap(), "2");
        }
        statuses.push(res.status().as_u16());
    }
    assert!(statuses.contains(&429) && statuses.contains(&503) && statuses.contains(&200), "{statuses:?}");
    // What shoppers see is the last push the shop took.
    let last_ok = statuses.iter().rposition(|s| *s == 200).unwrap() as i64;
    assert_eq!(shop.shown("MUG-RED"), Some(last_ok));
}

#[tokio::test]
async fn a_slow_answer_comes_after_the_delay() {
    let faults = Faults { seed: 1, slow_percent: 100, slow: Duration::from_millis(300), ..Faults::default() };
    let shop = shop(faults).await;
    let body = push_body("site", 2);
    let sig = signature(SECRET, &body);
    let client = reqwest::Client::builder().timeout(Duration::from_millis(50)).build().unwrap();
    let sent = client
        .post(shop.url())
        .header("content-type", "application/json")
        .header("x-stockpool-signature", sig)
        .body(body)
        .send()
        .await;
    assert!(sent.is_err_and(|e| e.is_timeout()), "the answer is slower than the client waits");
}

#[tokio::test]
async fn orders_are_signed_like_pushes() {
    let shop = shop(Faults::default()).await;
    let (body, sig) = shop.signed_order("W-1", &[("MUG-RED", 2)]);
    assert_eq!(sig, signature(SECRET, &body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v, serde_json::json!({"external_id": "W-1", "lines": [{"store_sku": "MUG-RED", "quantity": 2}]}));
    let (body, _) = shop.signed_cancel("W-1");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v, serde_json::json!({"external_id": "W-1", "cancel": true}));
}
