//! The `woocommerce` connector without a site: how it is built, the webhooks it takes
//! (signatures, the ping, topics, orders and cancellations), and every sample payload in
//! `fixtures/channels/woocommerce/` read into the connector's wire types. Pushes and reads
//! against the emulated site are `stockpool-http`'s `tests/it/woocommerce.rs`.

use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use stockpool_channels::woocommerce::{self, wire, WooId, WOOCOMMERCE_LIMITS};
use stockpool_channels::{
    connector, http_client, receiver, Connector, HeaderMap, InboundEvent, InboundLine, ParseError, SignatureError,
    StoreSettings,
};
use stockpool_core::Channel;

const SECRET: &str = "wc-s3cret";

fn settings() -> StoreSettings {
    StoreSettings {
        code: "woo".into(),
        base_url: Some("http://127.0.0.1:9/shop/".into()),
        secret: Some(SECRET.into()),
        credentials: Some(json!({"consumer_key": "ck_1", "consumer_secret": "cs_1"})),
        ..StoreSettings::default()
    }
}

fn woo() -> Arc<dyn Connector> {
    connector(Channel::Woocommerce, settings(), http_client().unwrap()).unwrap().unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/channels/woocommerce/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, value.parse().unwrap());
    }
    map
}

fn delivered(topic: &str, body: &[u8]) -> HeaderMap {
    headers(&[
        ("x-wc-webhook-topic", topic),
        ("x-wc-webhook-signature", &sign(SECRET, body)),
        ("x-wc-webhook-delivery-id", "d-1"),
    ])
}

#[test]
fn a_woocommerce_store_gets_a_batching_connector() {
    let c = woo();
    assert_eq!(c.channel(), Channel::Woocommerce);
    assert_eq!(c.limits(), WOOCOMMERCE_LIMITS);
    assert_eq!((c.limits().batch_max, c.limits().read_batch_max), (100, 100));
    assert!(!c.limits().call_per_item, "a batch of up to 100 is one call");
    assert!(stockpool_channels::pushes_to(Channel::Woocommerce));
    let set = StoreSettings { push_rate_per_second: Some(10), ..settings() };
    let fast = connector(Channel::Woocommerce, set, http_client().unwrap()).unwrap().unwrap();
    assert_eq!(fast.limits().requests_per_second_milli, 10_000, "the seller's site takes the seller's rate");
}

#[test]
fn a_woocommerce_store_needs_its_site_and_its_keys() {
    let refused = |s: StoreSettings| match connector(Channel::Woocommerce, s, http_client().unwrap()) {
        Err(e) => e.to_string(),
        Ok(c) => panic!("built {c:?}"),
    };
    assert_eq!(
        refused(StoreSettings { base_url: None, ..settings() }),
        "store woo is a woocommerce store without a base_url; set it to the site's address, e.g. \
         http://shop.example.com"
    );
    assert_eq!(
        refused(StoreSettings { credentials: Some(json!({"consumer_key": "ck_1"})), ..settings() }),
        "store woo's woocommerce credentials lack consumer_secret; set it in the store's credentials"
    );
    assert_eq!(
        refused(StoreSettings { credentials: None, ..settings() }),
        "store woo's woocommerce credentials lack consumer_key; set it in the store's credentials"
    );
    let https = StoreSettings { base_url: Some("https://shop.example.com".into()), ..settings() };
    assert!(connector(Channel::Woocommerce, https, http_client().unwrap()).is_ok_and(|c| c.is_some()));
    assert!(refused(StoreSettings { base_url: Some("shop.example.com".into()), ..settings() })
        .contains("not an absolute http URL"));
    // Taking webhooks needs only the secret.
    let only_secret = StoreSettings { code: "woo".into(), secret: Some(SECRET.into()), ..StoreSettings::default() };
    assert!(receiver(Channel::Woocommerce, only_secret, http_client().unwrap()).unwrap().is_some());
    match receiver(Channel::Woocommerce, StoreSettings { secret: None, ..settings() }, http_client().unwrap()) {
        Err(e) => assert_eq!(
            e.to_string(),
            "store woo is a woocommerce store without a secret; set the secret the channel signs its webhooks with"
        ),
        Ok(c) => panic!("built {c:?}"),
    }
}

#[test]
fn listings_name_a_product_or_a_variation() {
    assert_eq!(WooId::parse("93"), Some(WooId::Product(93)));
    assert_eq!(WooId::parse("22/23"), Some(WooId::Variation { product: 22, variation: 23 }));
    assert_eq!(WooId::parse("MUG-RED"), None);
}

#[test]
fn the_signature_is_base64_hmac_sha256_of_the_raw_body() {
    let body = fixture("order.created.webhook-body.from-create-order-response.json");
    let c = woo();
    assert_eq!(c.verify_webhook(&delivered("order.created", &body), &body), Ok(()));
    let mismatch = Err(SignatureError::Mismatch { header: "X-WC-Webhook-Signature" });
    let wrong_secret = headers(&[("x-wc-webhook-signature", &sign("other", &body))]);
    assert_eq!(c.verify_webhook(&wrong_secret, &body), mismatch);
    let mut changed = body.clone();
    changed.push(b'\n');
    assert_eq!(c.verify_webhook(&delivered("order.created", &body), &changed), mismatch);
    assert_eq!(c.verify_webhook(&headers(&[("x-wc-webhook-signature", "not base64!")]), &body), mismatch);
    let short = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
    assert_eq!(c.verify_webhook(&headers(&[("x-wc-webhook-signature", &short)]), &body), mismatch);
    assert_eq!(
        c.verify_webhook(&HeaderMap::new(), &body),
        Err(SignatureError::Missing { header: "X-WC-Webhook-Signature" })
    );
    let twice = headers(&[("x-wc-webhook-signature", &sign(SECRET, &body)), ("x-wc-webhook-signature", "x")]);
    assert_eq!(c.verify_webhook(&twice, &body), Err(SignatureError::Repeated { header: "X-WC-Webhook-Signature" }));
}

#[test]
fn the_unsigned_ping_passes_and_changes_nothing_but_nothing_else_unsigned_does() {
    let c = woo();
    assert_eq!(c.verify_webhook(&HeaderMap::new(), b"webhook_id=17"), Ok(()));
    assert_eq!(
        c.parse_webhook(&HeaderMap::new(), b"webhook_id=17").unwrap(),
        vec![InboundEvent::Ignored("WooCommerce's ping for webhook 17".into())]
    );
    for forged in [&b"webhook_id=17&status=cancelled"[..], b"webhook_id=", b"{\"id\":1}", b"webhook_id=1\n"] {
        assert!(c.verify_webhook(&HeaderMap::new(), forged).is_err(), "{:?}", String::from_utf8_lossy(forged));
    }
}

#[test]
fn an_order_created_maps_lines_by_product_and_variation_then_sku() {
    let body = fixture("order.created.webhook-body.from-create-order-response.json");
    let events = woo().parse_webhook(&delivered("order.created", &body), &body).unwrap();
    let [InboundEvent::Order(order)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(order.external_id, "727");
    assert_eq!(
        order.lines,
        vec![
            // The fixture's first line has an empty SKU: its product id alone names it.
            InboundLine { store_sku: None, external_id: Some("93".into()), quantity: 2 },
            InboundLine { store_sku: Some("Bar3".into()), external_id: Some("22/23".into()), quantity: 1 },
        ]
    );
    assert_eq!(woo().delivery_id(&delivered("order.created", &body)).as_deref(), Some("d-1"));
}

#[test]
fn an_order_updated_to_cancelled_or_refunded_releases_and_other_updates_are_the_order_again() {
    let body = fixture("order.update-status-completed.response.json");
    let events = woo().parse_webhook(&delivered("order.updated", &body), &body).unwrap();
    assert!(matches!(events.as_slice(), [InboundEvent::Order(o)] if o.external_id == "727"), "{events:?}");
    for status in ["cancelled", "refunded"] {
        let mut order: serde_json::Value = serde_json::from_slice(&body).unwrap();
        order["status"] = json!(status);
        let body = serde_json::to_vec(&order).unwrap();
        let events = woo().parse_webhook(&delivered("order.updated", &body), &body).unwrap();
        assert_eq!(events, vec![InboundEvent::Cancel { external_id: "727".into() }], "{status}");
    }
}

#[test]
fn other_topics_are_ignored_and_broken_orders_are_sentences() {
    let c = woo();
    let product = fixture("product-variation.update.response.json");
    assert_eq!(
        c.parse_webhook(&delivered("product.updated", &product), &product).unwrap(),
        vec![InboundEvent::Ignored("the topic product.updated is not one stockpool acts on".into())]
    );
    let not_json = b"{".to_vec();
    assert!(matches!(
        c.parse_webhook(&delivered("order.created", &not_json), &not_json),
        Err(ParseError::NotJson { .. })
    ));
    let no_lines = serde_json::to_vec(&json!({"id": 5, "status": "processing", "line_items": []})).unwrap();
    assert_eq!(c.parse_webhook(&delivered("order.created", &no_lines), &no_lines), Err(ParseError::NoLines));
    let zero = serde_json::to_vec(&json!({"id": 5, "status": "processing",
        "line_items": [{"product_id": 1, "variation_id": 0, "sku": "A", "quantity": 0}]}))
    .unwrap();
    assert_eq!(
        c.parse_webhook(&delivered("order.created", &zero), &zero),
        Err(ParseError::QuantityNotPositive { line: 1, quantity: 0 })
    );
}

#[test]
fn the_batch_fixtures_read_into_the_wire_types() {
    let products: wire::BatchRequest = serde_json::from_slice(&fixture("products.batch.request.json")).unwrap();
    assert_eq!(products.update[0].id, 799);
    let variations: wire::BatchRequest =
        serde_json::from_slice(&fixture("product-variations.batch.request.json")).unwrap();
    assert_eq!(variations.update[0].id, 733);

    let answer: wire::BatchResponse = serde_json::from_slice(&fixture("products.batch.response.json")).unwrap();
    assert_eq!((answer.create.len(), answer.update.len(), answer.delete.len()), (2, 1, 1));
    assert_eq!(answer.update[0].id, Some(799));
    assert_eq!(answer.update[0].manage_stock, Some(json!(false)));
    assert_eq!(answer.update[0].managed_quantity(), None, "stock not managed: no quantity of ours");
    let answer: wire::BatchResponse =
        serde_json::from_slice(&fixture("product-variations.batch.response.json")).unwrap();
    assert_eq!(answer.update[0].id, Some(733));
    assert_eq!(answer.update[0].stock_status.as_deref(), Some("instock"));

    let one: wire::Stocked = serde_json::from_slice(&fixture("product-variation.update.response.json")).unwrap();
    assert_eq!((one.id, one.backorders.as_deref()), (Some(733), Some("no")));
    let managed: wire::Stocked =
        serde_json::from_value(json!({"id": 733, "manage_stock": true, "stock_quantity": 7})).unwrap();
    assert_eq!(managed.managed_quantity(), Some(7));
    let parent: wire::Stocked =
        serde_json::from_value(json!({"id": 733, "manage_stock": "parent", "stock_quantity": 7})).unwrap();
    assert_eq!(parent.managed_quantity(), None, "a variation whose product manages the stock");

    // The price-only update requests carry no stock fields; they still read as updates.
    for name in ["product.update.request.json", "product-variation.update.request.json"] {
        let v: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
        assert!(v["regular_price"].is_string(), "{name}");
    }
    let status: serde_json::Value =
        serde_json::from_slice(&fixture("order.update-status-completed.request.json")).unwrap();
    assert_eq!(status["status"], "completed");
    let updated: wire::Order = serde_json::from_slice(&fixture("order.update-status-completed.response.json")).unwrap();
    assert_eq!(updated.status, "completed");
}

#[test]
fn an_update_is_the_documented_object() {
    let update = wire::StockUpdate {
        id: 799,
        manage_stock: Some(true),
        stock_quantity: Some(4),
        backorders: Some(woocommerce::backorders(true, true).into()),
    };
    let body = serde_json::to_value(wire::BatchRequest { update: vec![update] }).unwrap();
    assert_eq!(
        body,
        json!({"update": [{"id": 799, "manage_stock": true, "stock_quantity": 4, "backorders": "notify"}]})
    );
}
