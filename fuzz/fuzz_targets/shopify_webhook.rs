//! Fuzzes the Shopify webhook parser: any body under any of the topics we take (and one
//! we do not) must parse or be refused with a `ParseError`, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const TOPICS: [&str; 5] = ["orders/create", "orders/updated", "orders/cancelled", "refunds/create", "products/update"];

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else { return };
    let topic = TOPICS[usize::from(*first) % TOPICS.len()];
    let _ = stockpool_channels::shopify::parse_topic(topic, body);
});
