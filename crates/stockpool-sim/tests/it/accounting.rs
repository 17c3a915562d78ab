//! The counters pinned on tiny replayed scenarios, each figure worked out by hand.
//!
//! Two channels share one SKU: `web` (a webhook store: orders heard after 5 s, pushes
//! shown 1 s after a change at most) and `etsy` (orders heard after 150 s). Order latencies
//! are fixed (min = max) and the shoppers come from a CSV, so nothing is random. Rule
//! parameters: threshold 3, priority store `web` with safety stock 5, sync rate 50 %.

use crate::support::{figures, replay};

const TWO_CHANNELS: &str = r#"
name = "tiny"
days = 1
[[channels]]
code = "web"
channel = "webhook"
shoppers_per_day = 0
order_latency_seconds = [5, 5]
split_percent = 50
[[channels]]
code = "etsy"
channel = "etsy"
shoppers_per_day = 0
order_latency_seconds = [150, 150]
split_percent = 50
[rules]
stock_threshold = 3
safety_stock = 5
sync_rate_percent = 50
[[skus]]
sku = "A"
stock = STOCK
"#;

#[track_caller]
fn check(stock: i64, orders: &str, expected: &str) {
    let scenario = TWO_CHANNELS.replace("STOCK", &stock.to_string());
    let got = figures(&replay(&scenario, orders));
    let expected: String =
        expected.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| format!("{l}\n")).collect();
    assert_eq!(got, expected, "got:\n{got}");
}

/// One unit; Etsy sells it at 10 s (heard at 160 s), the web store at 20 s (heard at 25 s).
///
/// - static_split: 1 unit split 50/50 rounds to 0 + 0, the remainder goes to the first
///   channel: web holds it, Etsy shows 0. The Etsy shopper is a lost sale (the pool has
///   1); the web shopper buys it.
/// - full_pool: both show 1 and both sell. The web order (heard first) takes the unit;
///   the Etsy order, heard at 160 s, is oversold. Filled 1, as many as the oracle.
/// - sync_50: floor(1 x 50 %) = 0 everywhere: both shoppers are lost sales.
/// - threshold: pool 1 < 3, 0 everywhere: both lost.
/// - priority_store: pool 1 < safety 5, only web shows it: Etsy's shopper is lost, web sells.
/// - buffer_auto: no sales yet, so no velocity and nothing held back: as full_pool.
/// - oracle: Etsy sells at 10 s and everyone sees 0 at once; the web shopper finds 0 and
///   the pool is empty, so that is no lost sale.
#[test]
fn the_last_unit_sold_twice() {
    check(
        1,
        "time,channel,sku,quantity\n10,etsy,A,1\n20,web,A,1\n",
        "
        static_split 1 1 0 0 1 1 1 100.0 %
        full_pool 2 2 1 1 0 0 1 100.0 %
        sync_50 0 0 0 0 2 2 0 0.0 %
        threshold 0 0 0 0 2 2 0 0.0 %
        priority_store 1 1 0 0 1 1 1 100.0 %
        buffer_auto 2 2 1 1 0 0 1 100.0 %
        oracle 1 1 0 0 0 0 1 100.0 %
        ",
    );
}

/// Two units; web sells one at 0 s (heard at 5 s) and one at 100 s (heard at 105 s);
/// an Etsy shopper comes at 101 s.
///
/// - static_split: web holds 1, Etsy 1. Web sells its unit at 0 s; the web shopper at
///   100 s finds 0 while Etsy's warehouse holds 1: lost. Etsy sells its unit. Filled 2.
/// - full_pool: at 5 s both show 1. Web sells it at 100 s, Etsy at 101 s: Etsy's order,
///   heard at 251 s, is oversold. 3 orders, filled 2.
/// - sync_50: 1 each at first; after the 5 s report the pool is 1 and 50 % of it is 0:
///   the shoppers at 100 s and 101 s both find 0 with 1 in the pool. 2 lost, filled 1
///   (50.0 % of the oracle's 2).
/// - threshold: pool 2 < 3, 0 everywhere from the start: all 3 shoppers lost.
/// - priority_store: pool 2 < 5, only web shows: it sells both; the Etsy shopper at 101 s
///   finds 0, but the last unit is already sold (heard at 105 s), so it is no lost sale.
/// - buffer_auto: the 5 s report gives web a velocity of 1 unit an hour (the window is
///   at least an hour). Web becomes the favoured store and shows the pool (1); Etsy holds
///   back ceil(L + 2 sqrt(L)) with L = 1/3600 x (5 s + 1 s) = 1 unit, so it shows 0 and
///   the oversell of full_pool does not happen. Filled 2, nothing lost.
/// - oracle: web sells both, Etsy finds an empty pool.
#[test]
fn buffer_auto_holds_back_from_the_slow_channel() {
    check(
        2,
        "time,channel,sku,quantity\n0,web,A,1\n100,web,A,1\n101,etsy,A,1\n",
        "
        static_split 2 2 0 0 1 1 2 100.0 %
        full_pool 3 3 1 1 0 0 2 100.0 %
        sync_50 1 1 0 0 2 2 1 50.0 %
        threshold 0 0 0 0 3 3 0 0.0 %
        priority_store 2 2 0 0 0 0 2 100.0 %
        buffer_auto 2 2 0 0 0 0 2 100.0 %
        oracle 2 2 0 0 0 0 2 100.0 %
        ",
    );
}

/// A shopper wanting 3 where the channel shows 2 buys 2; the missing unit is a lost sale
/// only if the pool held it. One multi-line order counts once in `orders`.
///
/// Stock 2, full pool: the web shopper at 0 s wants 3 of A (shows 2): buys 2, and the
/// pool holds no more, so nothing is lost. Under sync_50 web shows 1: buys 1, and 1 more
/// was in the pool: 1 lost sale of 1 unit.
#[test]
fn partial_lines_and_lost_units() {
    let scenario = TWO_CHANNELS.replace("STOCK", "2");
    let report = replay(&scenario, "time,channel,sku,quantity\n0,web,A,3\n");
    let got = figures(&report);
    assert!(got.contains("full_pool 1 2 0 0 0 0 2 100.0 %\n"), "{got}");
    assert!(got.contains("sync_50 1 1 0 0 1 1 1 50.0 %\n"), "{got}");
}

/// Accounting identities on a generated scenario, for every strategy.
#[test]
fn the_counters_add_up() {
    let report = crate::support::shipped("small-shop", 3);
    for r in &report.runs {
        let m = &r.metrics;
        assert_eq!(m.units_filled, m.units_sold - m.oversold_units, "{m:?}");
        assert!(m.oversold_units >= m.oversells as i64 && m.units_sold >= m.orders as i64, "{m:?}");
        assert!(m.units_sold <= m.units_wanted && m.orders <= m.shoppers, "{m:?}");
        assert!(m.lost_units >= m.lost_sales as i64, "{m:?}");
    }
    let oracle = report.metrics(stockpool_sim::strategy::Strategy::Oracle).unwrap();
    assert_eq!((oracle.lost_sales, oracle.pushes), (0, 0), "the oracle shows the pool at once: {oracle:?}");
}
