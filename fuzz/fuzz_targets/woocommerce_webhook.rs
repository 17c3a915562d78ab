//! Fuzzes the WooCommerce webhook parser through the connector's `parse_webhook`: the ping,
//! `order.created` and `order.updated` bodies, and topics we do not act on.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stockpool_channels::woocommerce::WoocommerceConnector;
use stockpool_channels::{Connector, HeaderMap, HeaderValue, StoreSettings};

const TOPICS: [&str; 4] = ["order.created", "order.updated", "product.updated", ""];

fn connector() -> &'static WoocommerceConnector {
    static CONNECTOR: OnceLock<WoocommerceConnector> = OnceLock::new();
    CONNECTOR.get_or_init(|| {
        let settings = StoreSettings { code: "woo".into(), secret: Some("s3cret".into()), ..StoreSettings::default() };
        let client = stockpool_channels::http_client().expect("an HTTP client");
        WoocommerceConnector::receiving(&settings, client).expect("a receiving connector")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else { return };
    let mut headers = HeaderMap::new();
    let topic = TOPICS[usize::from(*first) % TOPICS.len()];
    if !topic.is_empty() {
        headers.insert("x-wc-webhook-topic", HeaderValue::from_static(topic));
    }
    let _ = connector().parse_webhook(&headers, body);
});
