//! Fuzzes what we read of a Shopify Admin GraphQL answer: `extensions.cost`, the levels of
//! a `nodes(ids:)` read and the user errors of `inventorySetQuantities`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stockpool_channels::shopify::{query_cost, read_levels, user_errors};

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = query_cost(&answer);
    let levels = read_levels(&answer, &["1", "2", "3"]);
    assert!(levels.len() <= 3, "a read finds at most the variants it asked for");
    let (named, _) = user_errors(&answer, 4);
    assert!(named.keys().all(|i| *i < 4), "a user error names only a quantity that was sent");
});
