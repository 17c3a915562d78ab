//! Webhooks a `webhook` store sends us: signatures, bodies, delivery ids.
//!
//! The connector is built through `connector`, as the intake builds it, and used as a
//! `dyn Connector`.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use stockpool_channels::{
    connector, http_client, Connector, HeaderMap, InboundEvent, InboundLine, InboundOrder, ParseError, SignatureError,
};
use stockpool_core::{Channel, Payment};

use crate::receiver::{settings, SECRET};

fn hook() -> Arc<dyn Connector> {
    connector(Channel::Webhook, settings("http://127.0.0.1:9/push"), http_client().unwrap()).unwrap().unwrap()
}

fn hex_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, value.parse().unwrap());
    }
    map
}

const BODY: &[u8] = br#"{"external_id":"A-1001","lines":[{"store_sku":"MUG-RED","quantity":2}]}"#;

#[track_caller]
fn check_signature(header_values: &[&str], body: &[u8], expected: Result<(), SignatureError>) {
    let pairs: Vec<_> = header_values.iter().map(|v| ("x-stockpool-signature", *v)).collect();
    assert_eq!(hook().verify_webhook(&headers(&pairs), body), expected);
}

#[test]
fn a_good_signature_is_accepted_in_either_case() {
    let digest = hex_signature(SECRET, BODY);
    check_signature(&[&format!("sha256={digest}")], BODY, Ok(()));
    check_signature(&[&format!("sha256={}", digest.to_uppercase())], BODY, Ok(()));
}

#[test]
fn a_bad_signature_is_refused() {
    let mismatch = Err(SignatureError::Mismatch { header: "X-Stockpool-Signature" });
    // Signed with another secret.
    check_signature(&[&format!("sha256={}", hex_signature("other", BODY))], BODY, mismatch.clone());
    // Signed over another body.
    let other = br#"{"external_id":"A-1001","lines":[{"store_sku":"MUG-RED","quantity":20}]}"#;
    check_signature(&[&format!("sha256={}", hex_signature(SECRET, other))], BODY, mismatch);
}

#[test]
fn a_missing_signature_is_refused() {
    check_signature(&[], BODY, Err(SignatureError::Missing { header: "X-Stockpool-Signature" }));
}

#[test]
fn only_the_sha256_prefix_is_accepted() {
    let digest = hex_signature(SECRET, BODY);
    let wrong = Err(SignatureError::WrongPrefix { header: "X-Stockpool-Signature", prefix: "sha256=" });
    for value in [digest.clone(), format!("sha1={digest}"), format!("SHA256={digest}"), format!("sha256 {digest}")] {
        check_signature(&[&value], BODY, wrong.clone());
    }
}

#[test]
fn a_malformed_digest_is_refused() {
    let digest = hex_signature(SECRET, BODY);
    let malformed = Err(SignatureError::Malformed { header: "X-Stockpool-Signature", digits: 64 });
    check_signature(&[&format!("sha256={}", &digest[..62])], BODY, malformed.clone());
    check_signature(&[&format!("sha256={digest}00")], BODY, malformed.clone());
    check_signature(&[&format!("sha256={}zz", &digest[..62])], BODY, malformed);
}

#[test]
fn two_signatures_are_refused() {
    let good = format!("sha256={}", hex_signature(SECRET, BODY));
    check_signature(&[&good, &good], BODY, Err(SignatureError::Repeated { header: "X-Stockpool-Signature" }));
}

#[test]
fn signature_errors_are_sentences() {
    assert_eq!(
        SignatureError::Missing { header: "X-Stockpool-Signature" }.to_string(),
        "the delivery has no X-Stockpool-Signature header, so it cannot be shown to come from the store"
    );
    assert_eq!(
        SignatureError::Mismatch { header: "X-Stockpool-Signature" }.to_string(),
        "the X-Stockpool-Signature signature does not match the body; check that both sides use the store's secret"
    );
}

#[track_caller]
fn check(body: &str, expected: Result<Vec<InboundEvent>, &str>) {
    let got = hook().parse_webhook(&HeaderMap::new(), body.as_bytes()).map_err(|e| e.to_string());
    assert_eq!(got, expected.map_err(str::to_string));
}

fn order(external_id: &str, lines: Vec<InboundLine>) -> InboundEvent {
    InboundEvent::Order(InboundOrder {
        external_id: external_id.to_string(),
        lines,
        payment: Payment::Immediate,
        pay_within_seconds: None,
    })
}

fn by_sku(store_sku: &str, quantity: i64) -> InboundLine {
    InboundLine { store_sku: Some(store_sku.to_string()), external_id: None, quantity }
}

fn by_external_id(external_id: &str, quantity: i64) -> InboundLine {
    InboundLine { store_sku: None, external_id: Some(external_id.to_string()), quantity }
}

#[test]
fn an_order_parses_like_the_order_api() {
    check(
        r#"{"external_id":"A-1001","lines":[{"store_sku":"MUG-RED","quantity":2}]}"#,
        Ok(vec![order("A-1001", vec![by_sku("MUG-RED", 2)])]),
    );
    check(
        r#"{"external_id":"A-1002","lines":[{"external_id":"1234567","quantity":1},{"store_sku":"CUP","quantity":3}],
            "note":"unknown fields are ignored"}"#,
        Ok(vec![order("A-1002", vec![by_external_id("1234567", 1), by_sku("CUP", 3)])]),
    );
    // Ids may come as whole numbers.
    check(
        r#"{"external_id":1003,"lines":[{"external_id":1234567,"quantity":1}]}"#,
        Ok(vec![order("1003", vec![by_external_id("1234567", 1)])]),
    );
    // The store the body names, if any, must be the one it was delivered to.
    check(
        r#"{"store":"hook","external_id":"A-1004","lines":[{"store_sku":"MUG-RED","quantity":1}]}"#,
        Ok(vec![order("A-1004", vec![by_sku("MUG-RED", 1)])]),
    );
}

#[test]
fn payment_after_acceptance_is_kept() {
    check(
        r#"{"external_id":"A-9","lines":[{"store_sku":"MUG","quantity":1}],"payment":"after_acceptance",
            "pay_within_seconds":3600}"#,
        Ok(vec![InboundEvent::Order(InboundOrder {
            external_id: "A-9".to_string(),
            lines: vec![by_sku("MUG", 1)],
            payment: Payment::AfterAcceptance,
            pay_within_seconds: Some(3600),
        })]),
    );
}

#[test]
fn cancel_true_cancels() {
    let cancel = |id: &str| Ok(vec![InboundEvent::Cancel { external_id: id.to_string() }]);
    check(r#"{"external_id":"A-1001","cancel":true}"#, cancel("A-1001"));
    check(r#"{"external_id":77,"cancel":true,"lines":[{"store_sku":"MUG","quantity":1}]}"#, cancel("77"));
    // `cancel: false` is an ordinary order, which needs lines.
    check(
        r#"{"external_id":"A-1001","cancel":false}"#,
        Err("the order has no lines; send lines, or \"cancel\": true to cancel it"),
    );
}

#[test]
fn bad_json_is_a_sentence() {
    let got = hook().parse_webhook(&HeaderMap::new(), br#"{"external_id": "A-1", "lines": ["#).unwrap_err();
    assert!(matches!(got, ParseError::NotJson { .. }), "{got:?}");
    assert!(got.to_string().starts_with("the body is not valid JSON: "), "{got}");
    let got = hook().parse_webhook(&HeaderMap::new(), b"webhook_id=3").unwrap_err();
    assert!(matches!(got, ParseError::NotJson { .. }), "{got:?}");
}

#[test]
fn json_that_is_not_an_order_says_what_is_wrong() {
    let not_an_order = "the body is not an order as POST /api/v1/orders takes it: ";
    for (body, reason) in [
        (r#"{"lines":[{"store_sku":"MUG","quantity":1}]}"#, "missing field `external_id`"),
        (r#"{"external_id":"A","lines":[{"store_sku":"MUG"}]}"#, "missing field `quantity`"),
        (r#"{"external_id":"A","lines":[{"store_sku":"MUG","quantity":1.5}]}"#, "invalid type: floating point"),
        (
            r#"{"external_id":"A","lines":[{"store_sku":"MUG","quantity":1}],"payment":"later"}"#,
            "unknown variant `later`",
        ),
    ] {
        let got = hook().parse_webhook(&HeaderMap::new(), body.as_bytes()).unwrap_err().to_string();
        assert!(got.starts_with(not_an_order) && got.contains(reason), "{body}: {got}");
    }
}

#[test]
fn the_body_must_be_an_object() {
    check("[1, 2]", Err("the body is an array, but an order is a JSON object as POST /api/v1/orders takes it"));
    check("null", Err("the body is null, but an order is a JSON object as POST /api/v1/orders takes it"));
}

#[test]
fn lines_must_name_one_listing_and_a_positive_quantity() {
    check(
        r#"{"external_id":"A","lines":[{"quantity":1}]}"#,
        Err("line 1 names no listing; give its store_sku or its external_id"),
    );
    check(
        r#"{"external_id":"A","lines":[{"store_sku":"MUG","quantity":1},{"store_sku":" ","external_id":"","quantity":1}]}"#,
        Err("line 2 names no listing; give its store_sku or its external_id"),
    );
    check(
        r#"{"external_id":"A","lines":[{"store_sku":"MUG","external_id":"1","quantity":1}]}"#,
        Err("line 1 gives both store_sku and external_id; give one of them"),
    );
    check(
        r#"{"external_id":"A","lines":[{"store_sku":"MUG","quantity":0}]}"#,
        Err("line 1 has quantity 0; a quantity must be at least 1"),
    );
    check(
        r#"{"external_id":"A","lines":[{"external_id":true,"quantity":1}]}"#,
        Err("line 1's external_id must be a non-empty string or a whole number"),
    );
}

#[test]
fn the_order_needs_an_id_and_lines() {
    check(r#"{"external_id":"","lines":[]}"#, Err("external_id must be a non-empty string or a whole number"));
    check(r#"{"external_id":-4,"cancel":true}"#, Err("external_id must be a non-empty string or a whole number"));
    check(
        r#"{"external_id":"A","lines":[]}"#,
        Err("the order has no lines; send lines, or \"cancel\": true to cancel it"),
    );
}

#[test]
fn a_body_naming_another_store_is_refused() {
    check(
        r#"{"store":"etsy","external_id":"A","lines":[{"store_sku":"MUG","quantity":1}]}"#,
        Err("the body names store etsy, but it was delivered to store hook; leave store out"),
    );
}

#[test]
fn the_delivery_id_is_the_header_when_present() {
    let hook = hook();
    assert_eq!(hook.delivery_id(&headers(&[("x-stockpool-delivery", "d-42")])), Some("d-42".to_string()));
    assert_eq!(hook.delivery_id(&headers(&[("x-stockpool-delivery", " d-43 ")])), Some("d-43".to_string()));
    assert_eq!(hook.delivery_id(&HeaderMap::new()), None);
    assert_eq!(hook.delivery_id(&headers(&[("x-stockpool-delivery", "")])), None);
    assert_eq!(hook.delivery_id(&headers(&[("x-stockpool-delivery", &"d".repeat(201))])), None);
}

/// The intake builds its connector with `receiver`: a `webhook` store needs only its
/// secret to take orders (its `url` may be one we cannot push to), and that connector
/// refuses to push rather than send anywhere.
#[test]
fn a_receiving_connector_needs_only_the_secret_and_never_pushes() {
    use stockpool_channels::{receiver, AttemptResult, ConfigError, StoreSettings};
    let https = StoreSettings { url: Some("https://shop.example/push".into()), ..settings("http://127.0.0.1:9/push") };
    let no_url = StoreSettings { url: None, ..settings("http://127.0.0.1:9/push") };
    for s in [https, no_url] {
        let r = receiver(Channel::Webhook, s, http_client().unwrap()).unwrap().unwrap();
        let signed = headers(&[("x-stockpool-signature", &format!("sha256={}", hex_signature(SECRET, BODY)))]);
        assert_eq!(r.verify_webhook(&signed, BODY), Ok(()));
        assert!(matches!(r.parse_webhook(&signed, BODY).unwrap()[..], [InboundEvent::Order(_)]));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let attempts = rt.block_on(r.push(&[crate::receiver::item(1, 3)], stockpool_core::Timestamp(0)));
        assert_eq!(attempts[0].result, AttemptResult::Failed);
        assert!(attempts[0].detail.as_deref().unwrap().contains("take webhooks only"), "{:?}", attempts[0].detail);
    }
    let no_secret = StoreSettings { secret: None, ..settings("http://127.0.0.1:9/push") };
    let refused = receiver(Channel::Webhook, no_secret, http_client().unwrap());
    assert!(matches!(refused, Err(ConfigError::MissingSecret { .. })));
    assert!(receiver(Channel::Manual, StoreSettings::default(), http_client().unwrap()).unwrap().is_none());
}
