//! The `ebay` connector without an emulated account: how it is built, the calls it makes
//! on the wire (against a scripted loopback receiver), how it reads a 207 and a polled
//! order, and every file of `fixtures/channels/ebay/` read against what the connector
//! sends and reads. Pushes, reads and polls against the emulated account are
//! `stockpool-http`'s `tests/it/ebay.rs`.

use std::sync::Arc;

use serde_json::{json, Value};
use stockpool_channels::ebay::{self, wire, EBAY_LIMITS, POLL_INTERVAL_MIN, SCOPES};
use stockpool_channels::{
    connector, http_client, AttemptResult, Connector, HeaderMap, InboundEvent, InboundLine, InboundOrder, ParseError,
    SignatureError, StoreSettings,
};
use stockpool_core::{Channel, ListingId, Payment};

use crate::receiver::{Receiver, Reply, NOW};

fn settings(base: &str) -> StoreSettings {
    StoreSettings {
        code: "bay".into(),
        base_url: Some(base.into()),
        credentials: Some(json!({"client_id": "App-PRD-1", "client_secret": "PRD-s3cret", "refresh_token": "v^1.1#r"})),
        ..StoreSettings::default()
    }
}

fn build(s: StoreSettings) -> Arc<dyn Connector> {
    connector(Channel::Ebay, s, http_client().unwrap()).unwrap().unwrap()
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../fixtures/channels/ebay/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const INVENTORY: &str = "sell_inventory_v1_oas3.subset-bulkUpdatePriceQuantity-getOffers.json";
const FULFILLMENT: &str = "sell_fulfillment_v1_oas3.json";

/// The schema `name` of an OpenAPI document.
fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = &doc["components"]["schemas"][name];
    assert!(s.is_object(), "the document has no schema {name}");
    s
}

fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, schema(doc, r.rsplit('/').next().unwrap())),
        None => s,
    }
}

/// Every field of `value`, at every depth, is a property of `s` with a matching type.
fn conforms(doc: &Value, s: &Value, value: &Value, at: &str) {
    let s = resolve(doc, s);
    let kind = s.get("type").and_then(Value::as_str);
    match value {
        Value::Object(map) => {
            assert!(kind.is_none_or(|k| k == "object"), "{at} is an object, the schema says {kind:?}");
            for (k, v) in map {
                let p = s["properties"].get(k).unwrap_or_else(|| panic!("{at}.{k} is not in the schema"));
                conforms(doc, p, v, &format!("{at}.{k}"));
            }
        }
        Value::Array(items) => {
            assert_eq!(kind, Some("array"), "{at} is an array");
            for (n, v) in items.iter().enumerate() {
                conforms(doc, &s["items"], v, &format!("{at}[{n}]"));
            }
        }
        Value::String(_) => assert_eq!(kind, Some("string"), "{at} is a string"),
        Value::Number(n) => {
            let want = if n.is_f64() { "number" } else { "integer" };
            assert!(kind == Some(want) || kind == Some("number"), "{at} is a {want}, the schema says {kind:?}");
        }
        Value::Bool(_) => assert_eq!(kind, Some("boolean"), "{at} is a boolean"),
        Value::Null => panic!("{at} is null; eBay's documents have no nulls"),
    }
}

/// `fields` are all properties of schema `name`.
fn has_fields(doc: &Value, name: &str, fields: &[&str]) {
    let props = &schema(doc, name)["properties"];
    for f in fields {
        assert!(props.get(*f).is_some(), "{name} has no {f}");
    }
}

#[test]
fn an_ebay_store_gets_a_paced_batching_polled_connector() {
    let c = build(settings("https://api.ebay.com"));
    assert_eq!(c.channel(), Channel::Ebay);
    assert_eq!(c.limits(), EBAY_LIMITS);
    assert_eq!((c.limits().batch_max, c.limits().read_batch_max), (25, 5));
    assert_eq!((c.limits().requests_per_second_milli, c.limits().burst), (5000, 5));
    assert!(!c.limits().call_per_item);
    assert_eq!(c.poll_interval_min(), Some(POLL_INTERVAL_MIN));
    assert!(stockpool_channels::pushes_to(Channel::Ebay) && stockpool_channels::polls(Channel::Ebay));
    // Without a base_url the store speaks to eBay itself; ids may be numbers.
    let numeric = StoreSettings {
        base_url: None,
        credentials: Some(json!({"client_id": 12345, "client_secret": "s", "refresh_token": "r"})),
        ..settings("")
    };
    assert!(connector(Channel::Ebay, numeric, http_client().unwrap()).is_ok_and(|c| c.is_some()));
}

#[test]
fn an_ebay_store_needs_its_application_keys_and_a_refresh_token() {
    let refused = |credentials: Value| match connector(
        Channel::Ebay,
        StoreSettings { credentials: Some(credentials), ..settings("http://127.0.0.1:9") },
        http_client().unwrap(),
    ) {
        Err(e) => e.to_string(),
        Ok(c) => panic!("built {c:?}"),
    };
    assert_eq!(
        refused(json!({"client_secret": "s", "refresh_token": "r"})),
        "store bay's ebay credentials lack client_id; set it from the application's keys on developer.ebay.com"
    );
    assert_eq!(
        refused(json!({"client_id": "a", "refresh_token": "r"})),
        "store bay's ebay credentials lack client_secret; set it from the application's keys on developer.ebay.com"
    );
    assert_eq!(
        refused(json!({"client_id": "a", "client_secret": "s"})),
        "store bay's ebay credentials lack refresh_token; connect the store again to get one"
    );
    let bad = StoreSettings { base_url: Some("ftp://api.ebay.com".into()), ..settings("") };
    match connector(Channel::Ebay, bad, http_client().unwrap()) {
        Err(e) => assert!(e.to_string().contains("only http and https"), "{e}"),
        Ok(c) => panic!("built {c:?}"),
    }
}

fn token_reply() -> Reply {
    let body = json!({"access_token": "v^1.1#i^1#access", "expires_in": 7200, "token_type": "User Access Token"});
    Reply::status(200).header("content-type", "application/json").body(body.to_string())
}

fn push_item(n: u64, offer: &str, sku: &str, quantity: i64) -> stockpool_channels::PushItem {
    stockpool_channels::PushItem {
        listing: ListingId(n),
        public_id: format!("lst_{n}"),
        external_id: offer.into(),
        store_sku: sku.into(),
        sku: sku.into(),
        quantity,
        sell_when_out_of_stock: false,
        show_backorder: false,
        settled: None,
    }
}

#[tokio::test]
async fn the_push_is_a_documented_bulk_update_after_a_basic_auth_refresh_and_a_207_fails_only_what_it_names() {
    // eBay's 207: offer 2 refused, offer 1 and the inventory items taken, offer 3 taken with a warning.
    let answer = json!({"responses": [
        {"statusCode": 200, "sku": "MUG", "offerId": "1"},
        {"statusCode": 400, "sku": "CUP", "offerId": "2", "errors": [
            {"errorId": 25759, "domain": "API_INVENTORY", "category": "REQUEST",
             "message": "shipToLocationAvailability quantity value should be greater than or equal to auction allocation."}]},
        {"statusCode": 200, "sku": "TEE", "offerId": "3", "warnings": [
            {"errorId": 25401, "domain": "API_INVENTORY", "category": "BUSINESS", "message": "Listing revised."}]},
    ]});
    conforms(&fixture(INVENTORY), schema(&fixture(INVENTORY), "BulkPriceQuantityResponse"), &answer, "answer");
    let receiver = Receiver::start(vec![
        token_reply(),
        Reply::status(207).header("content-type", "application/json").body(answer.to_string()),
    ])
    .await;
    let c = build(settings(&receiver.base));
    let batch = [push_item(1, "1", "MUG", 4), push_item(2, "2", "CUP", 0), push_item(3, "3", "TEE", 7)];
    let attempts = c.push(&batch, NOW).await;
    assert_eq!(
        attempts.iter().map(|a| a.result).collect::<Vec<_>>(),
        [AttemptResult::Ok, AttemptResult::Failed, AttemptResult::Ok]
    );
    assert_eq!(attempts[1].status_code, Some(400));
    assert_eq!(
        attempts[1].detail.as_deref(),
        Some(
            "eBay refused offer 2 (400): 25759 shipToLocationAvailability quantity value should be greater than or \
             equal to auction allocation."
        )
    );
    assert_eq!(attempts[2].detail.as_deref(), Some("eBay warned: 25401 Listing revised."));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    // The token: HTTP Basic client id and secret, the refresh token and both scopes.
    let token = &requests[0];
    assert_eq!(token.path, ebay::TOKEN_PATH);
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "App-PRD-1:PRD-s3cret");
    assert_eq!(token.header("authorization"), format!("Basic {basic}"));
    let form = String::from_utf8(token.body.clone()).unwrap();
    assert!(form.contains("grant_type=refresh_token") && form.contains("refresh_token=v%5E1.1%23r"), "{form}");
    assert!(form.contains("scope=https%3A%2F%2Fapi.ebay.com%2Foauth%2Fapi_scope%2Fsell.inventory+https"), "{form}");
    // The push: the documented body, bearer token, JSON.
    let push = &requests[1];
    assert_eq!(push.path, ebay::BULK_PATH);
    assert_eq!(push.header("authorization"), "Bearer v^1.1#i^1#access");
    assert_eq!(push.header("content-type"), "application/json");
    let body: Value = serde_json::from_slice(&push.body).unwrap();
    assert_eq!(
        body["requests"][0],
        json!({"sku": "MUG", "shipToLocationAvailability": {"quantity": 4},
               "offers": [{"offerId": "1", "availableQuantity": 4}]})
    );
    let doc = fixture(INVENTORY);
    conforms(&doc, schema(&doc, "BulkPriceQuantity"), &body, "body");
}

#[tokio::test]
async fn a_refused_call_fails_every_listing_with_ebay_s_message() {
    let refusal = json!({"errors": [{"errorId": 25709, "domain": "API_INVENTORY", "category": "REQUEST",
                                     "message": "Invalid value for requests."}]});
    let receiver = Receiver::start(vec![token_reply(), Reply::status(400).body(refusal.to_string())]).await;
    let attempts = build(settings(&receiver.base)).push(&[push_item(1, "1", "MUG", 4)], NOW).await;
    assert_eq!((attempts[0].result, attempts[0].status_code), (AttemptResult::Failed, Some(400)));
    assert_eq!(attempts[0].detail.as_deref(), Some("eBay answered 400 Bad Request: 25709 Invalid value for requests."));
}

#[test]
fn a_207_names_offers_and_inventory_items() {
    let answer: wire::BulkPriceQuantityResponse = serde_json::from_value(json!({"responses": [
        {"statusCode": 404, "sku": "CUP", "errors": [{"errorId": 25702, "message": "SKU CUP is not available in the system."}]},
        {"statusCode": 500, "sku": "TEE", "offerId": "9", "errors": [{"errorId": 25001, "message": "A system error has occurred."}]},
        {"statusCode": 200, "sku": "BOWL", "offerId": "8"},
    ]}))
    .unwrap();
    // The inventory item's failure fails its listing when no response names the offer.
    let (result, status, detail) = ebay::bulk_outcome(207, Some(&answer), "7", "CUP");
    assert_eq!((result, status), (AttemptResult::Failed, Some(404)));
    assert_eq!(
        detail.as_deref(),
        Some("eBay refused inventory item CUP (404): 25702 SKU CUP is not available in the system.")
    );
    assert_eq!(ebay::bulk_outcome(207, Some(&answer), "9", "TEE").0, AttemptResult::Retry { retry_after_ms: None });
    assert_eq!(ebay::bulk_outcome(207, Some(&answer), "8", "BOWL").0, AttemptResult::Ok);
    // A 207 that does not mention a listing fails it; a 200 does not need to.
    let (result, _, detail) = ebay::bulk_outcome(207, Some(&answer), "6", "JUG");
    assert_eq!(result, AttemptResult::Failed);
    assert_eq!(detail.as_deref(), Some("eBay's 207 answer does not mention offer 6"));
    assert_eq!(ebay::bulk_outcome(200, None, "6", "JUG").0, AttemptResult::Ok);
}

/// An order with the fields the Fulfillment API documents (checked against its `Order`).
fn order(cancel_state: &str, lines: Value) -> Value {
    json!({
        "orderId": "12-34567-89012",
        "creationDate": "2026-12-02T10:00:00.000Z",
        "lastModifiedDate": "2026-12-02T10:05:00.000Z",
        "orderFulfillmentStatus": "NOT_STARTED",
        "orderPaymentStatus": "PAID",
        "cancelStatus": {"cancelState": cancel_state, "cancelRequests": []},
        "lineItems": lines,
    })
}

#[test]
fn polled_orders_become_orders_by_sku_and_cancellations() {
    let c = build(settings("https://api.ebay.com"));
    let lines = json!([
        {"lineItemId": "1", "legacyItemId": "110000000001", "sku": "MUG-RED", "title": "Red mug", "quantity": 2},
        {"lineItemId": "2", "legacyItemId": "110000000002", "title": "Old listing", "quantity": 1},
        {"lineItemId": "3", "legacyItemId": "110000000003", "quantity": 1},
    ]);
    let doc = fixture(FULFILLMENT);
    let open = order("NONE_REQUESTED", lines.clone());
    conforms(&doc, schema(&doc, "Order"), &open, "order");
    let events = c.parse_polled(&serde_json::to_vec(&open).unwrap()).unwrap();
    assert_eq!(
        events,
        [InboundEvent::Order(InboundOrder {
            external_id: "12-34567-89012".into(),
            lines: vec![
                InboundLine { store_sku: Some("MUG-RED".into()), external_id: None, quantity: 2 },
                InboundLine { store_sku: Some("Old listing".into()), external_id: None, quantity: 1 },
                InboundLine { store_sku: Some("eBay item 110000000003".into()), external_id: None, quantity: 1 },
            ],
            payment: Payment::Immediate,
            pay_within_seconds: None,
        })]
    );
    // A cancellation still being decided holds the stock; CANCELED releases it.
    let pending = order("IN_PROGRESS", lines.clone());
    assert!(matches!(c.parse_polled(&serde_json::to_vec(&pending).unwrap()).unwrap()[..], [InboundEvent::Order(_)]));
    let cancelled = order("CANCELED", lines);
    assert_eq!(
        c.parse_polled(&serde_json::to_vec(&cancelled).unwrap()).unwrap(),
        [InboundEvent::Cancel { external_id: "12-34567-89012".into() }]
    );
    // Bodies eBay would not send are refused with a sentence, and kept for a replay.
    for bad in [&b"[1]"[..], b"nope", br#"{"lineItems": []}"#, br#"{"orderId": "", "lineItems": []}"#] {
        match c.parse_polled(bad) {
            Err(ParseError::BadPolledOrder { channel: "ebay", .. }) => {}
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bad)),
        }
    }
    let negative = order("NONE_REQUESTED", json!([{"sku": "X", "quantity": -1}]));
    assert!(c.parse_polled(&serde_json::to_vec(&negative).unwrap()).is_err());
}

#[test]
fn an_order_page_keeps_each_order_with_its_delivery_id() {
    let page = json!({"total": 3, "limit": 200, "offset": 0, "orders": [
        order("NONE_REQUESTED", json!([])),
        {"lastModifiedDate": "2026-12-02T10:05:00.000Z"},
        {"orderId": "9", "creationDate": "2026-12-02T09:00:00.000Z"},
    ]});
    let (parsed, orders) = ebay::parse_order_page(&serde_json::to_vec(&page).unwrap()).unwrap();
    assert_eq!(parsed.total, Some(3));
    let ids: Vec<&str> = orders.iter().map(|o| o.polled.delivery_id.as_str()).collect();
    assert_eq!(ids, ["12-34567-89012@2026-12-02T10:05:00.000Z", "9@2026-12-02T09:00:00.000Z"]);
    assert_eq!(orders[0].modified, ebay::parse_time("2026-12-02T10:05:00.000Z"));
    assert_eq!(orders[1].modified, None, "no lastModifiedDate: sorted first, never the cursor");
    assert!(ebay::parse_order_page(b"{\"orders\": 3}").is_err());
}

#[test]
fn the_fixtures_document_every_call_and_field_the_connector_uses() {
    let inventory = fixture(INVENTORY);
    assert!(inventory["paths"]["/bulk_update_price_quantity"]["post"].is_object());
    assert_eq!(inventory["servers"][0]["variables"]["basePath"]["default"], "/sell/inventory/v1");
    let scopes = &inventory["paths"]["/bulk_update_price_quantity"]["post"]["security"][0]["api_auth"];
    assert_eq!(scopes[0], SCOPES[0]);
    let token_url = inventory["components"]["securitySchemes"]["api_auth"]["flows"]["authorizationCode"]["tokenUrl"]
        .as_str()
        .unwrap();
    assert_eq!(token_url, format!("{}{}", ebay::DEFAULT_BASE_URL, ebay::TOKEN_PATH));
    let cap = schema(&inventory, "BulkPriceQuantity")["properties"]["requests"]["description"].as_str().unwrap();
    assert!(cap.contains("(up to 25)"), "{cap}");
    has_fields(&inventory, "PriceQuantityResponse", &["statusCode", "sku", "offerId", "errors", "warnings"]);
    has_fields(&inventory, "Error", &["errorId", "domain", "category", "message", "longMessage"]);
    // getOffer answers the type getOffers lists.
    has_fields(&inventory, "EbayOfferDetailsWithAll", &["offerId", "sku", "availableQuantity", "status"]);

    let fulfillment = fixture(FULFILLMENT);
    assert_eq!(fulfillment["servers"][0]["variables"]["basePath"]["default"], "/sell/fulfillment/v1");
    let get_orders = &fulfillment["paths"]["/order"]["get"];
    assert_eq!(get_orders["operationId"], "getOrders");
    let params: Vec<&str> =
        get_orders["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for p in ["filter", "limit", "offset"] {
        assert!(params.contains(&p), "getOrders takes no {p}");
    }
    let limit = get_orders["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "limit").unwrap();
    assert!(limit["description"].as_str().unwrap().contains("<b>Maximum:</b> <code>200</code>"));
    assert!(get_orders["security"][0]["api_auth"].as_array().unwrap().iter().any(|s| s == SCOPES[1]));
    has_fields(&fulfillment, "OrderSearchPagedCollection", &["total", "limit", "offset", "next", "orders"]);
    has_fields(
        &fulfillment,
        "Order",
        &["orderId", "lastModifiedDate", "creationDate", "orderPaymentStatus", "cancelStatus", "lineItems"],
    );
    has_fields(&fulfillment, "CancelStatus", &["cancelState", "cancelledDate"]);
    has_fields(
        &fulfillment,
        "LineItem",
        &["lineItemId", "legacyItemId", "legacyVariationId", "sku", "title", "quantity"],
    );
    let state = schema(&fulfillment, "CancelStatus")["properties"]["cancelState"]["description"].as_str().unwrap();
    assert!(state.contains("NONE_REQUESTED"), "{state}");

    // Where eBay reports the daily limits the pacing stays within (not called: the figures
    // are chosen in docs/channels.md).
    let analytics = fixture("developer_analytics_v1_beta_oas3.json");
    assert!(analytics["paths"]["/rate_limit/"]["get"].is_object());
    has_fields(&analytics, "Rate", &["limit", "remaining", "reset", "timeWindow"]);
}

#[test]
fn ebay_s_push_notifications_are_not_taken_its_orders_are_polled() {
    let notification = fixture("commerce_notification_v1_oas3.json");
    assert!(notification["paths"]["/public_key/{public_key_id}"]["get"].is_object());
    let c = build(settings("https://api.ebay.com"));
    let vectors = fixture("event-notification-sdk.test-vectors.json");
    let cases = vectors.as_object().unwrap();
    assert!(cases.len() >= 3, "VALID, INVALID and SIGNATURE_MISMATCH");
    for (name, case) in cases {
        let message = &case["message"];
        assert_eq!(message["metadata"]["topic"], "MARKETPLACE_ACCOUNT_DELETION", "{name}");
        assert!(message["notification"]["notificationId"].is_string(), "{name}");
        let body = serde_json::to_vec(message).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-ebay-signature", case["signature"].as_str().unwrap().parse().unwrap());
        assert_eq!(c.verify_webhook(&headers, &body), Err(SignatureError::NoWebhooks { channel: "ebay" }), "{name}");
        assert!(c.parse_webhook(&headers, &body).is_err(), "{name}");
    }
}
