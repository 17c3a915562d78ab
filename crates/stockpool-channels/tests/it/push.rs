//! Pushes of the generic webhook against loopback receivers: what goes on the wire, and
//! what each kind of answer (or no answer) becomes.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use stockpool_channels::http::{DETAIL_CHARS_MAX, REDIRECTS_MAX};
use stockpool_channels::{Attempt, AttemptResult, Connector};

use crate::receiver::{item, refused_url, webhook, webhook_with_timeout, Receiver, Reply, Silent, NOW, SECRET};

/// The signature an independent receiver computes: HMAC-SHA256 of the raw body, in hex.
fn expected_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Pushes one listing to a receiver answering `reply`, and returns the attempt.
async fn push_against(reply: Reply) -> Attempt {
    let receiver = Receiver::start(vec![reply]).await;
    let mut attempts = webhook(&receiver.url()).push(&[item(7, 12)], NOW).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(receiver.requests().len(), 1, "one listing is one request");
    attempts.remove(0)
}

#[tokio::test]
async fn a_push_is_signed_json_with_the_spec_fields() {
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let attempts = webhook(&receiver.url()).push(&[item(7, 12)], NOW).await;

    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].result, AttemptResult::Ok);
    assert_eq!(attempts[0].status_code, Some(200));
    assert_eq!(attempts[0].detail, None);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/push");
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("user-agent"), format!("stockpool/{}", env!("CARGO_PKG_VERSION")));
    // The fields, their values and their order are SPEC section 5's.
    assert_eq!(
        String::from_utf8(request.body.clone()).unwrap(),
        r#"{"store":"hook","listing":"lst_1_7","store_sku":"MUG-7-S","sku":"MUG-7","quantity":12,"sent_at":"2024-05-01T12:00:00.000Z"}"#
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"store": "hook", "listing": "lst_1_7", "store_sku": "MUG-7-S", "sku": "MUG-7", "quantity": 12,
               "sent_at": "2024-05-01T12:00:00.000Z"})
    );
    assert_eq!(request.header("x-stockpool-signature"), expected_signature(&request.body));
}

#[tokio::test]
async fn each_listing_is_its_own_request_in_order() {
    let receiver = Receiver::start(vec![Reply::status(204)]).await;
    let attempts = webhook(&receiver.url()).push(&[item(1, 5), item(2, 0)], NOW).await;
    let results: Vec<_> = attempts.iter().map(|a| a.result).collect();
    assert_eq!(results, [AttemptResult::Ok, AttemptResult::Ok]);
    let bodies: Vec<serde_json::Value> =
        receiver.requests().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!((bodies[0]["listing"].as_str(), bodies[0]["quantity"].as_i64()), (Some("lst_1_1"), Some(5)));
    assert_eq!((bodies[1]["listing"].as_str(), bodies[1]["quantity"].as_i64()), (Some("lst_1_2"), Some(0)));
    for request in receiver.requests() {
        assert_eq!(request.header("x-stockpool-signature"), expected_signature(&request.body));
    }
}

#[tokio::test]
async fn a_429_throttles_with_its_retry_after_in_seconds() {
    let attempt = push_against(Reply::status(429).header("retry-after", "3")).await;
    assert_eq!(attempt.result, AttemptResult::Throttled { retry_after_ms: Some(3000) });
    assert_eq!(attempt.status_code, Some(429));
    assert_eq!(attempt.result.as_str(), "retry");
}

#[tokio::test]
async fn a_429_throttles_until_its_retry_after_date() {
    // NOW is 2024-05-01T12:00:00Z; the receiver asks for 12:00:30.
    let attempt = push_against(Reply::status(429).header("retry-after", "Wed, 01 May 2024 12:00:30 GMT")).await;
    assert_eq!(attempt.result, AttemptResult::Throttled { retry_after_ms: Some(30_000) });
}

#[tokio::test]
async fn a_429_with_an_unreadable_retry_after_throttles_without_a_delay() {
    let attempt = push_against(Reply::status(429).header("retry-after", "in a while")).await;
    assert_eq!(attempt.result, AttemptResult::Throttled { retry_after_ms: None });
    let attempt = push_against(Reply::status(429)).await;
    assert_eq!(attempt.result, AttemptResult::Throttled { retry_after_ms: None });
}

#[tokio::test]
async fn after_a_429_the_rest_of_the_batch_is_not_sent() {
    let receiver = Receiver::start(vec![Reply::status(429).header("retry-after", "3")]).await;
    let attempts = webhook(&receiver.url()).push(&[item(1, 5), item(2, 6), item(3, 7)], NOW).await;
    assert_eq!(receiver.requests().len(), 1, "the store waits after a 429");
    assert_eq!(attempts.len(), 3);
    for attempt in &attempts {
        assert_eq!(attempt.result, AttemptResult::Throttled { retry_after_ms: Some(3000) });
    }
    assert_eq!(attempts[0].status_code, Some(429));
    assert_eq!((attempts[1].status_code, attempts[2].status_code), (None, None));
    assert!(attempts[1].detail.as_deref().unwrap().starts_with("not sent:"), "{:?}", attempts[1].detail);
}

#[tokio::test]
async fn a_503_is_retried() {
    let attempt = push_against(Reply::status(503).body("down for maintenance")).await;
    assert_eq!(attempt.result, AttemptResult::Retry { retry_after_ms: None });
    assert_eq!(attempt.status_code, Some(503));
    assert_eq!(attempt.detail.as_deref(), Some("down for maintenance"));

    let attempt = push_against(Reply::status(503).header("retry-after", "7")).await;
    assert_eq!(attempt.result, AttemptResult::Retry { retry_after_ms: Some(7000) });
}

#[tokio::test]
async fn a_400_fails_with_the_receivers_message() {
    let attempt = push_against(Reply::status(400).body("unknown sku MUG-7\n")).await;
    assert_eq!(attempt.result, AttemptResult::Failed);
    assert_eq!(attempt.status_code, Some(400));
    assert_eq!(attempt.detail.as_deref(), Some("unknown sku MUG-7"));
}

#[tokio::test]
async fn a_4xx_without_a_message_says_so() {
    let attempt = push_against(Reply::status(404)).await;
    assert_eq!(attempt.result, AttemptResult::Failed);
    assert_eq!(attempt.detail.as_deref(), Some("the receiver answered 404 Not Found without a message"));
}

#[tokio::test]
async fn a_long_message_is_truncated() {
    let attempt = push_against(Reply::status(422).body("x".repeat(100_000))).await;
    assert_eq!(attempt.result, AttemptResult::Failed);
    let detail = attempt.detail.unwrap();
    assert_eq!(detail.chars().count(), DETAIL_CHARS_MAX + 1);
    assert!(detail.ends_with('…'));
}

#[tokio::test]
async fn one_failing_listing_does_not_block_the_next() {
    let receiver =
        Receiver::start(vec![Reply::status(400).body("no such listing"), Reply::status(503), Reply::status(200)]).await;
    let attempts = webhook(&receiver.url()).push(&[item(1, 1), item(2, 2), item(3, 3)], NOW).await;
    let results: Vec<_> = attempts.iter().map(|a| a.result).collect();
    assert_eq!(results, [AttemptResult::Failed, AttemptResult::Retry { retry_after_ms: None }, AttemptResult::Ok]);
    assert_eq!(receiver.requests().len(), 3);
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_retried_after_the_timeout() {
    let silent = Silent::start().await;
    let connector = webhook_with_timeout(&silent.url, Duration::from_millis(300));
    let attempts = connector.push(&[item(1, 4)], NOW).await;
    assert_eq!(attempts[0].result, AttemptResult::Retry { retry_after_ms: None });
    assert_eq!(attempts[0].status_code, None);
    assert_eq!(attempts[0].detail.as_deref(), Some("the channel did not answer within 300 ms"));
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    let attempts = webhook(&refused_url()).push(&[item(1, 4)], NOW).await;
    assert_eq!(attempts[0].result, AttemptResult::Retry { retry_after_ms: None });
    assert_eq!(attempts[0].status_code, None);
    let detail = attempts[0].detail.as_deref().unwrap();
    assert!(detail.starts_with("could not connect to the channel"), "{detail}");
    assert!(!detail.contains("127.0.0.1"), "the URL stays out of the detail: {detail}");
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    let elsewhere = Receiver::start(vec![Reply::status(200)]).await;
    let target = elsewhere.url();
    let attempt = push_against(Reply::status(307).header("location", target.clone())).await;
    assert!(elsewhere.requests().is_empty(), "the signed body must not reach another origin");
    assert_eq!(attempt.result, AttemptResult::Failed);
    assert_eq!(attempt.status_code, Some(307));
    assert!(attempt.detail.as_deref().unwrap().contains(&target), "{:?}", attempt.detail);
}

#[tokio::test]
async fn a_redirect_that_would_drop_the_body_is_not_followed() {
    let receiver = Receiver::start(vec![Reply::status(302).header("location", "/moved"), Reply::status(200)]).await;
    let attempts = webhook(&receiver.url()).push(&[item(1, 4)], NOW).await;
    assert_eq!(attempts[0].result, AttemptResult::Failed);
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn a_redirect_loop_ends() {
    let receiver = Receiver::start(vec![Reply::status(307).header("location", "/push")]).await;
    let attempts = webhook(&receiver.url()).push(&[item(1, 4)], NOW).await;
    assert_eq!(attempts[0].result, AttemptResult::Failed);
    assert_eq!(attempts[0].status_code, Some(307));
    assert_eq!(receiver.requests().len(), 1 + REDIRECTS_MAX, "the call and its redirects");
}

#[tokio::test]
async fn a_same_origin_307_is_followed_with_the_body() {
    let receiver = Receiver::start(vec![Reply::status(307).header("location", "/moved"), Reply::status(200)]).await;
    let attempts = webhook(&receiver.url()).push(&[item(1, 4)], NOW).await;
    assert_eq!(attempts[0].result, AttemptResult::Ok);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!((requests[1].method.as_str(), requests[1].path.as_str()), ("POST", "/moved"));
    assert_eq!(requests[1].body, requests[0].body);
    assert_eq!(requests[1].header("x-stockpool-signature"), expected_signature(&requests[1].body));
}
