//! Building connectors from store settings: what each channel gets, and the sentences a
//! misconfigured store is refused with.

use stockpool_channels::{
    connector, http_client, http_client_with, ChannelError, ClientTimeouts, ConfigError, Connector, StoreSettings,
};
use stockpool_core::Channel;

use crate::receiver::{settings, NOW};

fn build(channel: Channel, settings: StoreSettings) -> Result<Option<std::sync::Arc<dyn Connector>>, ConfigError> {
    connector(channel, settings, http_client().unwrap())
}

#[track_caller]
fn check_refused(channel: Channel, settings: StoreSettings, expected: &str) {
    match build(channel, settings) {
        Err(error) => assert_eq!(error.to_string(), expected),
        Ok(built) => panic!("expected {expected:?}, got a connector: {built:?}"),
    }
}

#[test]
fn a_webhook_store_gets_a_webhook_connector() {
    let hook = build(Channel::Webhook, settings("http://127.0.0.1:9/push")).unwrap().unwrap();
    assert_eq!(hook.channel(), Channel::Webhook);
    let limits = hook.limits();
    assert!(limits.call_per_item, "SPEC section 5: one listing a request, so each listing is a call of the rate");
    assert!(limits.batch_max as u32 <= limits.burst, "a batch's requests fit one burst");
    assert_eq!(limits.read_batch_max, 0);
    assert!(limits.requests_per_second_milli > 0 && limits.burst > 0);
}

#[test]
fn a_webhook_store_pushes_at_the_rate_its_seller_sets() {
    let default = build(Channel::Webhook, settings("http://127.0.0.1:9/push")).unwrap().unwrap();
    assert_eq!(default.limits(), stockpool_channels::webhook::WEBHOOK_LIMITS);
    let set = StoreSettings { push_rate_per_second: Some(250), ..settings("http://127.0.0.1:9/push") };
    let fast = build(Channel::Webhook, set).unwrap().unwrap();
    assert_eq!(fast.limits().requests_per_second_milli, 250_000);
    assert_eq!((fast.limits().burst, fast.limits().batch_max), (12, 12), "a twentieth of a second's worth");
    let fastest = stockpool_channels::webhook::limits_at(Some(1000));
    assert_eq!((fastest.burst, fastest.batch_max), (50, 50));
    let slow = stockpool_channels::webhook::limits_at(Some(2));
    assert_eq!((slow.requests_per_second_milli, slow.burst, slow.batch_max), (2000, 10, 1));
    assert_eq!(default.limits().batch_max, 1, "at the default rate one listing a batch");
    assert!(fast.limits().call_per_item, "still one listing a request");
}

#[test]
fn a_manual_store_has_no_connector() {
    assert!(build(Channel::Manual, StoreSettings { code: "stall".into(), ..StoreSettings::default() })
        .unwrap()
        .is_none());
    // Leftovers from another channel do not matter.
    assert!(build(Channel::Manual, settings("http://127.0.0.1:9/push")).unwrap().is_none());
}

#[test]
fn a_webhook_store_needs_a_usable_url_and_a_secret() {
    check_refused(
        Channel::Webhook,
        StoreSettings { url: None, ..settings("") },
        "store hook is a webhook store without a url; set the url stockpool should POST quantities to",
    );
    check_refused(
        Channel::Webhook,
        settings("  "),
        "store hook is a webhook store without a url; set the url stockpool should POST quantities to",
    );
    check_refused(
        Channel::Webhook,
        settings("/push"),
        "store hook has the url \"/push\", which is not an absolute http URL: relative URL without a base",
    );
    check_refused(
        Channel::Webhook,
        settings("ftp://example.com/push"),
        "store hook has the url \"ftp://example.com/push\", which is not an absolute http URL: the scheme is ftp, \
         and only http and https are supported",
    );
    let https = build(Channel::Webhook, settings("https://example.com/push"));
    assert!(https.is_ok_and(|c| c.is_some()), "https URLs are pushed to over TLS (rustls)");
    for secret in [None, Some(String::new())] {
        check_refused(
            Channel::Webhook,
            StoreSettings { secret, ..settings("http://127.0.0.1:9/push") },
            "store hook is a webhook store without a secret; set the secret that signs our pushes and its orders",
        );
    }
}

#[tokio::test]
async fn the_webhook_cannot_read_back_or_poll() {
    let hook = build(Channel::Webhook, settings("http://127.0.0.1:9/push")).unwrap().unwrap();
    let error = hook.read_back(&[]).await.unwrap_err();
    assert!(matches!(error, ChannelError::Unsupported { .. }));
    assert_eq!(error.to_string(), "the webhook channel offers no read back");
    let error = hook.poll_orders(None, NOW).await.unwrap_err();
    assert_eq!(error.to_string(), "the webhook channel offers no order polling");
    // An empty batch makes no call and gives no attempt.
    assert!(hook.push(&[], NOW).await.is_empty());
}

#[test]
fn clients_build_with_custom_timeouts() {
    let timeouts = ClientTimeouts { connect: std::time::Duration::from_millis(50), ..ClientTimeouts::default() };
    assert!(http_client_with(timeouts).is_ok());
    assert_eq!(ClientTimeouts::default().request, stockpool_channels::REQUEST_TIMEOUT);
}
