//! Replaying a seller's order history: rows become shoppers, rows of one order become
//! one multi-line order, and a bad file is refused with a sentence naming the line.

use crate::support::{figures, replay};
use stockpool_sim::catalog::Catalog;
use stockpool_sim::scenario::Scenario;
use stockpool_sim::Traffic;

const SHOP: &str = r#"
name = "replay"
days = 1
[[channels]]
code = "web"
channel = "webhook"
shoppers_per_day = 0
order_latency_seconds = [5, 5]
[[skus]]
sku = "A"
stock = 5
[[skus]]
sku = "B"
stock = 5
"#;

#[track_caller]
fn refused(orders: &str, expected: &str) {
    let s = Scenario::parse(SHOP).unwrap();
    let catalog = Catalog::new(&s).unwrap();
    let err = Traffic::replayed(&s, &catalog, orders, 1).expect_err("a bad history");
    let text = format!("{err:#}");
    assert!(text.contains(expected), "{text}");
}

/// Rows with the same `order` on one channel are one shopper with two lines: one order of
/// 3 units. Dates count from midnight of the first row's day, so the history spans 2 days.
#[test]
fn rows_of_one_order_are_one_multi_line_order() {
    let orders = "time,channel,sku,quantity,order\n\
                  2025-03-01 09:00,web,A,1,1001\n\
                  2025-03-01 09:00,web,B,2,1001\n\
                  2025-03-02T10:30:00Z,web,A,1,1002\n";
    let s = Scenario::parse(SHOP).unwrap();
    let catalog = Catalog::new(&s).unwrap();
    let t = Traffic::replayed(&s, &catalog, orders, 1).unwrap();
    assert_eq!(t.days, 2);
    assert_eq!(t.shoppers.len(), 2);
    assert_eq!(t.shoppers[0].lines, vec![(0, 1), (1, 2)]);
    assert_eq!((t.shoppers[0].at, t.shoppers[0].reported_at), (9 * 3_600_000, 9 * 3_600_000 + 5_000));
    let got = figures(&replay(SHOP, orders));
    assert!(got.contains("full_pool 2 4 0 0 0 0 4 100.0 %\n"), "{got}");
}

#[test]
fn a_bad_history_is_refused_with_its_line() {
    refused("", "the order history is empty");
    refused("when,channel,sku,quantity\n", "needs a header with time, channel, sku and quantity");
    refused("time,channel,sku,quantity\n0,amazon,A,1\n", "line 2: unknown channel \"amazon\"");
    refused("time,channel,sku,quantity\n0,web,Z,1\n", "line 2: unknown or unlisted SKU \"Z\"");
    refused("time,channel,sku,quantity\n0,web,A,0\n", "line 2: quantity must be 1 or more");
    refused("time,channel,sku,quantity\n0,web,A,1\nyesterday,web,A,1\n", "line 3: time \"yesterday\"");
}
