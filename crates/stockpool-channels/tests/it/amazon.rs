//! The `amazon` connector without an account: how it is built, how it reads an order, and
//! every file in `fixtures/channels/amazon/` (the OpenAPI documents hold the paths and
//! fields we call; the payloads parse). Calls against the emulated account are
//! `stockpool-http`'s `tests/it/amazon.rs`.

use std::sync::Arc;

use serde_json::{json, Value};
use stockpool_channels::amazon::{self, parse_order, wire, FEED_LIMITS, FEED_MESSAGES_MAX, REALTIME_LIMITS};
use stockpool_channels::{connector, http_client, Connector, InboundEvent, InboundLine, ParseError, StoreSettings};
use stockpool_core::Channel;

fn settings(every_minutes: Option<u32>) -> StoreSettings {
    StoreSettings {
        code: "amz".into(),
        credentials: Some(json!({"seller_id": "A1SELLER", "marketplace_id": "ATVPDKIKX0DER", "client_id": 77,
            "client_secret": "s", "refresh_token": "Atzr|r"})),
        every_minutes,
        ..StoreSettings::default()
    }
}

fn amazon(every_minutes: Option<u32>) -> Arc<dyn Connector> {
    connector(Channel::Amazon, settings(every_minutes), http_client().unwrap()).unwrap().unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/channels/amazon/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn line(sku: &str, quantity: i64) -> InboundLine {
    InboundLine { store_sku: Some(sku.into()), external_id: None, quantity }
}

#[test]
fn a_store_needs_every_credential_spec_names() {
    for field in ["seller_id", "marketplace_id", "client_id", "client_secret", "refresh_token"] {
        let mut s = settings(None);
        s.credentials.as_mut().unwrap().as_object_mut().unwrap().remove(field);
        let e = connector(Channel::Amazon, s, http_client().unwrap()).unwrap_err();
        assert!(e.to_string().contains(field), "{e}");
    }
    let mut s = settings(None);
    s.base_url = Some("ftp://x".into());
    assert!(connector(Channel::Amazon, s, http_client().unwrap()).is_err());
}

#[test]
fn realtime_stores_patch_one_listing_a_call_at_five_a_second_and_interval_stores_send_feeds() {
    assert_eq!(amazon(None).limits(), REALTIME_LIMITS);
    let realtime = amazon(None).limits();
    assert!(realtime.call_per_item && realtime.requests_per_second_milli == 5_000);
    assert_eq!(amazon(Some(15)).limits(), FEED_LIMITS);
    assert_eq!(FEED_LIMITS.batch_max, 25_000);
    assert!(stockpool_channels::pushes_to(Channel::Amazon) && stockpool_channels::polls(Channel::Amazon));
    // searchOrders' documented 0.0056 requests a second: one poll every 179 s at most.
    assert_eq!(amazon(None).poll_interval_min().unwrap().as_secs(), 178);
}

#[test]
fn search_orders_example_parses_into_an_order_by_seller_sku() {
    let doc = json_fixture("searchOrders_2026-01-01.response.doc-example.json");
    let page: wire::SearchOrders = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(page.pagination.unwrap().next_token.as_deref(), Some("2YgYW55IGNhcm5hbCBwbGVhc3VyZS4"));
    let order = serde_json::to_vec(&page.orders[0]).unwrap();
    let events = amazon(None).parse_polled(&order).unwrap();
    let InboundEvent::Order(o) = &events[0] else { panic!("{events:?}") };
    assert_eq!(o.external_id, "123-4567890-1234567");
    assert_eq!(o.lines, vec![line("ECHO-DOT-4-CHARCOAL", 2), line("FIRE-TV-4K-2021", 1)]);
}

#[test]
fn a_cancelled_order_releases() {
    let mut order = json_fixture("getOrder_2026-01-01.response.doc-example.json")["order"].clone();
    let events = parse_order(&serde_json::to_vec(&order).unwrap()).unwrap();
    let InboundEvent::Order(o) = &events[0] else { panic!("{events:?}") };
    assert_eq!(
        (o.external_id.as_str(), o.lines.clone()),
        ("202-1234567-8901234", vec![line("ECHO-DOT-4-UK-CHARCOAL-3PACK", 3)])
    );
    order["fulfillment"]["fulfillmentStatus"] = json!("CANCELLED");
    let events = parse_order(&serde_json::to_vec(&order).unwrap()).unwrap();
    assert_eq!(events, vec![InboundEvent::Cancel { external_id: "202-1234567-8901234".into() }]);
}

#[test]
fn an_item_without_a_seller_sku_is_named_by_its_asin_and_bad_bodies_are_refused() {
    let order = json!({"orderId": "1", "orderItems": [{"quantityOrdered": 1, "product": {"asin": "B0X"}}]});
    let events = parse_order(&serde_json::to_vec(&order).unwrap()).unwrap();
    let InboundEvent::Order(o) = &events[0] else { panic!("{events:?}") };
    assert_eq!(o.lines, vec![InboundLine { store_sku: None, external_id: Some("B0X".into()), quantity: 1 }]);
    for bad in
        [&b"[]"[..], b"{}", b"{\"orderId\": \"\"}", b"{\"orderId\":\"1\",\"orderItems\":[{\"quantityOrdered\":1}]}"]
    {
        assert!(matches!(parse_order(bad), Err(ParseError::BadPolledOrder { .. })), "{}", String::from_utf8_lossy(bad));
    }
}

/// The operations and fields we call exist in the OpenAPI documents.
#[test]
fn the_calls_we_make_are_in_the_openapi_documents() {
    let listings = json_fixture("listingsItems_2021-08-01.openapi.json");
    let patch = &listings["paths"]["/listings/2021-08-01/items/{sellerId}/{sku}"]["patch"];
    assert_eq!(patch["operationId"], "patchListingsItem");
    let names: Vec<&str> = patch["parameters"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"marketplaceIds"), "{names:?}");
    let request = &listings["definitions"]["ListingsItemPatchRequest"];
    assert_eq!(request["required"], json!(["productType", "patches"]));
    let ops = &listings["definitions"]["PatchOperation"]["properties"]["op"]["enum"];
    assert!(ops.as_array().unwrap().contains(&json!("merge")));
    let sent = wire::PatchRequest { product_type: "PRODUCT".into(), patches: wire::quantity_patch(4) };
    let sent = serde_json::to_value(sent).unwrap();
    for key in sent.as_object().unwrap().keys() {
        assert!(request["properties"].get(key).is_some(), "{key}");
    }
    let response: wire::SubmissionResponse =
        serde_json::from_slice(&fixture("patchListingsItem.response.doc-example.json")).unwrap();
    assert_eq!((response.status.as_str(), response.sku.as_str()), ("ACCEPTED", "GM-ZDPI-9B4E"));

    let feeds = json_fixture("feeds_2021-06-30.openapi.json");
    assert_eq!(feeds["paths"]["/feeds/2021-06-30/documents"]["post"]["operationId"], "createFeedDocument");
    assert_eq!(feeds["paths"]["/feeds/2021-06-30/feeds"]["post"]["operationId"], "createFeed");
    let spec = &feeds["definitions"]["CreateFeedSpecification"];
    for field in ["feedType", "marketplaceIds", "inputFeedDocumentId"] {
        assert!(spec["required"].as_array().unwrap().contains(&json!(field)), "{field}");
    }
    assert_eq!(feeds["definitions"]["CreateFeedDocumentSpecification"]["required"], json!(["contentType"]));
    assert_eq!(feeds["definitions"]["CreateFeedDocumentResponse"]["required"], json!(["feedDocumentId", "url"]));

    let orders = json_fixture("orders_2026-01-01.openapi.json");
    let search = &orders["paths"]["/orders/2026-01-01/orders"]["get"];
    assert_eq!(search["operationId"], "searchOrders");
    let names: Vec<&str> = search["parameters"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    for name in ["marketplaceIds", "lastUpdatedAfter", "includedData", "maxResultsPerPage", "paginationToken"] {
        assert!(names.contains(&name), "{name}");
    }
    assert!(search["responses"]["200"]["headers"].get(amazon::RATE_LIMIT_HEADER).is_some());
    let defs = &orders["definitions"];
    assert!(defs["FulfillmentStatus"]["enum"].as_array().unwrap().contains(&json!("CANCELLED")));
    assert!(defs["Pagination"]["properties"].get("nextToken").is_some());
    for field in ["orderId", "lastUpdatedTime", "fulfillment", "orderItems"] {
        assert!(defs["Order"]["properties"].get(field).is_some(), "{field}");
    }
    assert!(defs["ItemProduct"]["properties"].get("sellerSku").is_some());
    assert!(defs["OrderItem"]["properties"].get("quantityOrdered").is_some());
}

/// Our feed document matches the listings feed schema (header, messages within
/// `maxItems`, message fields) and its last example message.
#[test]
fn the_feed_we_send_follows_the_listings_feed_schema() {
    let schema = json_fixture("listings-feed-schema-v2.json");
    assert_eq!(schema["properties"]["messages"]["maxItems"], json!(FEED_MESSAGES_MAX));
    let message_schema = json_fixture("listings-feed-message-schema-v2.json");
    let example = json_fixture("listings-feed-schema-v2.example.json");
    let connector =
        amazon::AmazonConnector::new(&settings(Some(5)), http_client().unwrap(), std::time::Duration::from_secs(1))
            .unwrap();
    let item = stockpool_channels::PushItem {
        listing: stockpool_core::ListingId(1),
        public_id: "l".into(),
        external_id: "B0X".into(),
        store_sku: "My-SKU-E".into(),
        sku: "s".into(),
        quantity: 10,
        sell_when_out_of_stock: false,
        show_backorder: false,
        settled: None,
    };
    let doc = connector.feed_document(&[item]);
    for field in schema["properties"]["header"]["required"].as_array().unwrap() {
        assert!(doc["header"].get(field.as_str().unwrap()).is_some(), "{field}");
    }
    let message = &doc["messages"][0];
    for field in message_schema["required"].as_array().unwrap() {
        assert!(message.get(field.as_str().unwrap()).is_some(), "{field}");
    }
    for key in message.as_object().unwrap().keys() {
        assert!(message_schema["properties"].get(key).is_some(), "{key}");
    }
    assert_eq!(message["patches"], example["messages"][4]["patches"]);
}

/// The other files of the folder: the v0 orders API and notifications we do not call
/// (SPEC 5a polls 2026-01-01 searchOrders), read for what they say.
#[test]
fn every_other_fixture_parses() {
    let v0 = json_fixture("ordersV0.openapi.json");
    assert!(v0["paths"].get("/orders/v0/orders").is_some());
    let notifications = json_fixture("notifications.openapi.json");
    assert!(notifications["paths"].as_object().unwrap().keys().any(|p| p.contains("destinations")));
    for name in [
        "getOrders.response.doc-example.json",
        "getOrders.response.sandbox-TEST_CASE_200.json",
        "getOrders.response.sandbox-TEST_CASE_200_NEXT_TOKEN.json",
        "getOrders.response.sandbox-TEST_CASE_200_NEXT_TOKEN_page2.json",
    ] {
        let orders = json_fixture(name)["payload"]["Orders"].clone();
        assert!(orders[0]["AmazonOrderId"].as_str().is_some_and(|id| id.starts_with("902-")), "{name}");
    }
    for (name, sku) in [
        ("getOrderItems.response.doc-example.json", "CBA_OTF_1"),
        ("getOrderItems.response.sandbox-TEST_CASE_200.json", "NABetaASINB00551Q3CS"),
    ] {
        assert_eq!(json_fixture(name)["payload"]["OrderItems"][0]["SellerSKU"], sku);
    }
    let change = json_fixture("ORDER_CHANGE.notification.example.json");
    assert_eq!(change["Payload"]["OrderChangeNotification"]["AmazonOrderId"], "903-8868176-2219830");
    let schema = json_fixture("OrderChangeNotification.schema.json");
    assert!(schema.is_object());
    let quantity = json_fixture("LISTINGS_ITEM_MFN_QUANTITY_CHANGE.notification.example.json");
    assert_eq!(quantity["Payload"]["Quantity"], 99);
    assert!(json_fixture("ListingsItemMfnQuantityChange.schema.json").is_object());
    let files = std::fs::read_dir(format!("{}/../../fixtures/channels/amazon", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let named = [
        "SOURCES.md",
        "ordersV0.openapi.json",
        "notifications.openapi.json",
        "orders_2026-01-01.openapi.json",
        "listingsItems_2021-08-01.openapi.json",
        "feeds_2021-06-30.openapi.json",
        "listings-feed-schema-v2.json",
        "listings-feed-message-schema-v2.json",
        "listings-feed-schema-v2.example.json",
        "searchOrders_2026-01-01.response.doc-example.json",
        "getOrder_2026-01-01.response.doc-example.json",
        "patchListingsItem.response.doc-example.json",
        "getOrders.response.doc-example.json",
        "getOrders.response.sandbox-TEST_CASE_200.json",
        "getOrders.response.sandbox-TEST_CASE_200_NEXT_TOKEN.json",
        "getOrders.response.sandbox-TEST_CASE_200_NEXT_TOKEN_page2.json",
        "getOrderItems.response.doc-example.json",
        "getOrderItems.response.sandbox-TEST_CASE_200.json",
        "ORDER_CHANGE.notification.example.json",
        "OrderChangeNotification.schema.json",
        "LISTINGS_ITEM_MFN_QUANTITY_CHANGE.notification.example.json",
        "ListingsItemMfnQuantityChange.schema.json",
    ];
    for f in files {
        let name = f.unwrap().file_name().into_string().unwrap();
        assert!(named.contains(&name.as_str()), "{name} is not read by a test");
    }
}
