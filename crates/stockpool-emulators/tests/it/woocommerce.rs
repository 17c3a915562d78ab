//! The emulated WooCommerce site refuses what WooCommerce refuses (no keys, a batch over
//! its limit, `per_page` over 100), fails only the unknown objects of a batch, reads by
//! `include=`, and sends webhooks in the documented order shape, signed.

use serde_json::{json, Value};
use stockpool_emulators::woocommerce::{order_body, signature, Stock};
use stockpool_emulators::{WooConfig, WooSite};

async fn site() -> WooSite {
    let site = WooSite::start(WooConfig::new("ck", "cs", "whsec")).await.unwrap();
    site.seed_product(93, "MUG", Stock::managed(5));
    site.seed_variation(22, 23, "Bar3", Stock::managed(2));
    site
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../fixtures/channels/woocommerce/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

async fn call(site: &WooSite, method: &str, path: &str, body: Option<Value>, keys: bool) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", site.base_url()));
    if keys {
        req = req.basic_auth("ck", Some("cs"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn without_the_keys_nothing_is_read_or_changed() {
    let site = site().await;
    let (status, body) = call(&site, "GET", "/wp-json/wc/v3/products?include=93", None, false).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("woocommerce_rest_cannot_view")));
    let update = json!({"update": [{"id": 93, "manage_stock": true, "stock_quantity": 0}]});
    let (status, _) = call(&site, "POST", "/wp-json/wc/v3/products/batch", Some(update), false).await;
    assert_eq!(status, 401);
    assert_eq!(site.quantity("93"), Some(5));
}

#[tokio::test]
async fn a_batch_sets_stock_and_fails_only_unknown_objects() {
    let site = site().await;
    let update = json!({"update": [
        {"id": 93, "manage_stock": true, "stock_quantity": 4, "backorders": "notify"},
        {"id": 999, "manage_stock": true, "stock_quantity": 1, "backorders": "no"}
    ]});
    let (status, body) = call(&site, "POST", "/wp-json/wc/v3/products/batch", Some(update), true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["update"][0]["stock_quantity"], 4);
    assert_eq!(body["update"][1]["id"], 999);
    assert_eq!(body["update"][1]["error"]["code"], "woocommerce_rest_product_invalid_id");
    assert_eq!(
        site.stock("93"),
        Some(Stock { manage_stock: true, stock_quantity: Some(4), backorders: "notify".into() })
    );

    let variation = json!({"update": [{"id": 23, "manage_stock": true, "stock_quantity": 9, "backorders": "no"}]});
    let (status, _) = call(&site, "POST", "/wp-json/wc/v3/products/22/variations/batch", Some(variation), true).await;
    assert_eq!((status, site.quantity("22/23")), (200, Some(9)));
    // The documented request creates and deletes too, which stockpool never sends.
    let (status, _) =
        call(&site, "POST", "/wp-json/wc/v3/products/batch", Some(fixture("products.batch.request.json")), true).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_batch_over_the_limit_is_refused_whole() {
    let site = site().await;
    let update: Vec<Value> = (0..101).map(|_| json!({"id": 93, "stock_quantity": 0})).collect();
    let (status, body) =
        call(&site, "POST", "/wp-json/wc/v3/products/batch", Some(json!({ "update": update })), true).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("woocommerce_rest_request_entity_too_large")));
    assert_eq!(site.quantity("93"), Some(5));
    assert_eq!(site.max_items_per_call(), 101, "the log counts what was sent");
}

#[tokio::test]
async fn reads_take_include_and_at_most_100_a_page() {
    let site = site().await;
    site.seed_product(94, "BOWL", Stock::unmanaged());
    let (status, body) =
        call(&site, "GET", "/wp-json/wc/v3/products?include=93,94&per_page=100&_fields=id,stock_quantity", None, true)
            .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!([{"id": 93, "stock_quantity": 5}, {"id": 94, "stock_quantity": null}]));
    let (status, body) = call(&site, "GET", "/wp-json/wc/v3/products/22/variations?include=23", None, true).await;
    assert_eq!((status, body[0]["stock_quantity"].as_i64()), (200, Some(2)));
    let (status, _) = call(&site, "GET", "/wp-json/wc/v3/products?include=93&per_page=101", None, true).await;
    assert_eq!(status, 400);
    assert!(site.set_quantity("93", 1));
    assert_eq!(site.quantity("93"), Some(1));
}

#[tokio::test]
async fn webhooks_carry_the_documented_order_signed_with_the_webhook_secret() {
    let site = site().await;
    let order = order_body(727, "processing", &[(93, 0, "MUG", 2), (22, 23, "Bar3", 1)]);
    let sample = fixture("order.created.webhook-body.from-create-order-response.json");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&order), keys(&sample), "the sample's fields");
    assert_eq!(keys(&order["line_items"][0]), keys(&sample["line_items"][0]));
    assert_eq!(order["line_items"][1]["variation_id"], 23);
    let delivery = site.webhook("order.created", &order);
    assert_eq!(delivery.signature, signature("whsec", &delivery.body));
    assert_ne!(site.webhook("order.created", &order).delivery_id, delivery.delivery_id);
}
