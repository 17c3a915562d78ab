//! The `etsy` connector without a shop: how it is built, receipts parsed into orders and
//! cancellations, the PUT body built from a GET answer, and every file of
//! `fixtures/channels/etsy/` read (the OpenAPI subset names every path, parameter and field
//! we call). Pushes, reads and polls against the emulated shop are `stockpool-http`'s
//! `tests/it/etsy.rs`.

use serde_json::{json, Value};
use stockpool_channels::etsy::{self, all_zero, inventory_update, parse_receipt, EtsyId};
use stockpool_channels::{connector, http_client, ConfigError, InboundEvent, InboundLine, ParseError, StoreSettings};
use stockpool_core::Channel;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../fixtures/channels/etsy/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn settings(credentials: Value) -> StoreSettings {
    StoreSettings { code: "etsy".into(), credentials: Some(credentials), ..StoreSettings::default() }
}

#[test]
fn a_store_needs_shop_id_api_key_and_refresh_token_given_as_numbers_or_strings() {
    let ok = json!({"shop_id": 123, "api_key": "key:secret", "access_token": "a", "refresh_token": "r"});
    assert!(connector(Channel::Etsy, settings(ok), http_client().unwrap()).unwrap().is_some());
    let ok = json!({"shop_id": "123", "api_key": "key", "refresh_token": "r"});
    assert!(connector(Channel::Etsy, settings(ok), http_client().unwrap()).is_ok());
    for (field, creds) in [
        ("shop_id", json!({"api_key": "k", "refresh_token": "r"})),
        ("api_key", json!({"shop_id": 1, "refresh_token": "r"})),
        ("refresh_token", json!({"shop_id": 1, "api_key": "k"})),
    ] {
        match connector(Channel::Etsy, settings(creds), http_client().unwrap()) {
            Err(ConfigError::MissingCredential { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let bad = json!({"shop_id": "shop-1", "api_key": "k", "refresh_token": "r"});
    assert!(matches!(
        connector(Channel::Etsy, settings(bad), http_client().unwrap()),
        Err(ConfigError::BadCredential { field: "shop_id", .. })
    ));
}

#[test]
fn external_ids_are_a_listing_or_a_listing_and_product() {
    assert_eq!(EtsyId::parse("1234567"), Some(EtsyId { listing: 1234567, product: None }));
    assert_eq!(EtsyId::parse("1234567/89"), Some(EtsyId { listing: 1234567, product: Some(89) }));
    for bad in ["", "abc", "1/", "/2", "1/2/3", "-1"] {
        assert_eq!(EtsyId::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_paid_receipt_is_an_order_whose_lines_name_listing_product_and_sku() {
    let body = json!({"receipt_id": 77, "status": "paid", "update_timestamp": 1_764_590_400,
        "transactions": [{"listing_id": 10, "product_id": 20, "sku": "MUG-RED", "quantity": 2},
                         {"listing_id": 11, "product_id": 0, "sku": "", "quantity": 1}]});
    let events = parse_receipt(body.to_string().as_bytes()).unwrap();
    let InboundEvent::Order(order) = &events[0] else { panic!("{events:?}") };
    assert_eq!(order.external_id, "77");
    assert_eq!(
        order.lines,
        vec![
            InboundLine { store_sku: Some("MUG-RED".into()), external_id: Some("10/20".into()), quantity: 2 },
            InboundLine { store_sku: None, external_id: Some("11".into()), quantity: 1 },
        ]
    );
}

#[test]
fn a_canceled_or_fully_refunded_receipt_releases_and_a_partial_refund_does_not() {
    for status in ["canceled", "fully refunded"] {
        let body = json!({"receipt_id": 5, "status": status, "transactions": []});
        assert_eq!(
            parse_receipt(body.to_string().as_bytes()).unwrap(),
            vec![InboundEvent::Cancel { external_id: "5".into() }]
        );
    }
    let body = json!({"receipt_id": 5, "status": "partially refunded",
        "transactions": [{"listing_id": 1, "quantity": 1}]});
    assert!(matches!(parse_receipt(body.to_string().as_bytes()).unwrap()[0], InboundEvent::Order(_)));
}

#[test]
fn an_unreadable_receipt_is_a_bad_polled_order() {
    for body in [
        &b"not json"[..],
        br#"{"status":"paid"}"#,
        br#"{"receipt_id":1,"transactions":[{"listing_id":1,"quantity":0}]}"#,
    ] {
        assert!(matches!(parse_receipt(body), Err(ParseError::BadPolledOrder { channel: "etsy", .. })), "{body:?}");
    }
}

#[test]
fn the_put_body_keeps_every_product_with_decimal_prices_and_changes_only_the_matching_quantities() {
    let got = json!({"products": [
        {"product_id": 1, "sku": "A", "is_deleted": false, "property_values": [{"property_id": 200, "property_name": "Color", "scale_id": null, "value_ids": [1], "values": ["Red"]}],
         "offerings": [{"offering_id": 9, "quantity": 3, "is_enabled": true, "is_deleted": false, "price": {"amount": 1250, "divisor": 100, "currency_code": "EUR"}}]},
        {"product_id": 2, "sku": "B", "is_deleted": false, "property_values": [{"property_id": 200, "property_name": "Color", "scale_id": null, "value_ids": [2], "values": ["Blue"]}],
         "offerings": [{"offering_id": 8, "quantity": 4, "is_enabled": true, "is_deleted": false, "price": {"amount": 999, "divisor": 100, "currency_code": "EUR"}}]}],
        "price_on_property": [200], "quantity_on_property": [200], "sku_on_property": []});
    let put = inventory_update(&got, &|p| (p == Some(2)).then_some(5000)).unwrap();
    assert_eq!(put["products"].as_array().unwrap().len(), 2);
    assert_eq!(put["products"][0]["offerings"][0], json!({"price": 12.5, "quantity": 3, "is_enabled": true}));
    assert_eq!(put["products"][1]["offerings"][0], json!({"price": 9.99, "quantity": 999, "is_enabled": true}));
    assert_eq!(
        put["products"][1]["property_values"][0],
        json!({"property_id": 200, "property_name": "Color", "value_ids": [2], "values": ["Blue"]})
    );
    assert_eq!(put["quantity_on_property"], json!([200]));
    assert!(!all_zero(&put));
    assert!(all_zero(&inventory_update(&got, &|_| Some(0)).unwrap()));
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

#[test]
fn the_openapi_subset_has_every_path_parameter_and_field_the_connector_uses() {
    let doc = fixture("etsy-openapi-v3.subset-receipts-inventory.json");
    let receipts = &doc["paths"]["/v3/application/shops/{shop_id}/receipts"]["get"];
    let names: Vec<&str> =
        receipts["parameters"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    for p in ["shop_id", "min_last_modified", "limit", "offset", "sort_on", "sort_order"] {
        assert!(names.contains(&p), "receipts lacks {p}");
    }
    let inventory = &doc["paths"]["/v3/application/listings/{listing_id}/inventory"];
    let names: Vec<&str> =
        inventory["get"]["parameters"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"includes"), "{names:?}");
    let put = &inventory["put"]["requestBody"]["content"]["application/json"]["schema"];
    for f in ["products", "price_on_property", "quantity_on_property", "sku_on_property"] {
        assert!(put["properties"].get(f).is_some(), "PUT lacks {f}");
    }
    let product = &put["properties"]["products"]["items"]["properties"];
    assert_eq!(product["offerings"]["items"]["properties"]["price"]["type"], "number");
    for f in ["sku", "property_values", "offerings"] {
        assert!(product.get(f).is_some(), "PUT product lacks {f}");
    }
    let receipt = &schema(&doc, "ShopReceipt")["properties"];
    for f in ["receipt_id", "status", "update_timestamp", "transactions"] {
        assert!(receipt.get(f).is_some(), "ShopReceipt lacks {f}");
    }
    let statuses = receipt["status"]["enum"].as_array().unwrap();
    for s in etsy::RELEASING_STATUSES {
        assert!(statuses.contains(&json!(s)), "{s}");
    }
    let transaction = &schema(&doc, "ShopReceiptTransaction")["properties"];
    for f in ["listing_id", "product_id", "sku", "quantity"] {
        assert!(transaction.get(f).is_some(), "ShopReceiptTransaction lacks {f}");
    }
}

#[test]
fn the_sample_payloads_parse() {
    // The reference samples are placeholders (quantity 0, status absent): read them, then
    // with a real quantity as an order.
    let receipts = fixture("getShopReceipts.response.reference-placeholder-sample.json");
    assert_eq!(receipts["count"], 2);
    for receipt in receipts["results"].as_array().unwrap() {
        let body = receipt.to_string();
        assert!(matches!(parse_receipt(body.as_bytes()), Err(ParseError::BadPolledOrder { .. })));
        let mut fixed = receipt.clone();
        fixed["transactions"][0]["quantity"] = json!(1);
        let events = parse_receipt(fixed.to_string().as_bytes()).unwrap();
        let InboundEvent::Order(order) = &events[0] else { panic!("{events:?}") };
        assert_eq!(order.external_id, "1");
        assert_eq!(order.lines[0].external_id.as_deref(), Some("1/1"));
        assert_eq!(order.lines[0].store_sku, None);
    }
    let transaction = fixture("getShopReceiptTransaction.response.reference-placeholder-sample.json");
    assert_eq!(transaction["transaction_id"], 1);
    assert_eq!(transaction["listing_id"], 0);
    let inventory = fixture("getListingInventory.response.reference-placeholder-sample.json");
    let put = inventory_update(&inventory, &|_| Some(5)).unwrap();
    assert_eq!(put["products"].as_array().unwrap().len(), 0, "the sample's one product is is_deleted");
    let mut live = inventory.clone();
    live["products"][0]["is_deleted"] = json!(false);
    live["products"][0]["offerings"][0]["is_deleted"] = json!(false);
    live["products"][0]["offerings"][0]["price"] = json!({"amount": 1250, "divisor": 100, "currency_code": "USD"});
    let put = inventory_update(&live, &|_| Some(5)).unwrap();
    assert_eq!(put["products"][0]["offerings"][0], json!({"price": 12.5, "quantity": 5, "is_enabled": true}));
    assert_eq!(put["products"][0]["sku"], "string");
    assert_eq!(put["sku_on_property"], json!([0]));
    let webhook = fixture("webhook.order.paid.observed-payload.json");
    assert_eq!(webhook["event_type"], "order.paid", "Etsy's webhook names only a receipt URL; we poll");
}
