//! The rolling sales window behind `buffer: auto`: what counts, when it changes, aging.

use stockpool_core::velocity::{SalesWindow, SALES_PER_KEY_MAX};
use stockpool_core::{ItemId, StoreId, Timestamp, Velocity};

const SHOP: StoreId = StoreId(1);
const ETSY: StoreId = StoreId(2);
const MUG: ItemId = ItemId(10);

/// A one-hour window with `sales` of MUG as (store, units, at ms); checks the velocity
/// on SHOP at each `(now, units)`.
#[track_caller]
fn check(sales: &[(StoreId, i64, i64)], expected: &[(i64, i64)]) {
    let mut w = SalesWindow::new(3600);
    for &(s, units, at) in sales {
        w.record(s, MUG, units, Timestamp(at));
    }
    for &(now, units) in expected {
        assert_eq!(w.velocity(SHOP, MUG, Timestamp(now)), Velocity { units, window_seconds: 3600 }, "at {now}");
    }
}

#[test]
fn a_sale_counts_while_it_is_at_most_the_window_old() {
    check(&[(SHOP, 2, 0), (SHOP, 3, 1000), (ETSY, 5, 0)], &[(0, 2), (1000, 5), (3_600_000, 5), (3_600_001, 3)]);
}

#[test]
fn sales_recorded_out_of_order_count_the_same() {
    check(&[(SHOP, 3, 1000), (SHOP, 2, 0)], &[(3_600_000, 5), (3_600_001, 3), (3_601_001, 0)]);
}

#[test]
fn next_change_is_when_the_oldest_sale_stops_counting_and_age_names_what_moved() {
    let mut w = SalesWindow::new(3600);
    assert_eq!(w.next_change(), None);
    w.record(SHOP, MUG, 2, Timestamp(0));
    w.record(ETSY, MUG, 1, Timestamp(5000));
    assert_eq!(w.next_change(), Some(Timestamp(3_600_001)));
    assert_eq!(w.age(Timestamp(3_600_000)), vec![], "nothing left the window yet");
    assert_eq!(w.age(Timestamp(3_600_001)), vec![(SHOP, MUG)]);
    assert_eq!(w.velocity(SHOP, MUG, Timestamp(3_600_001)).units, 0);
    assert_eq!(w.keys(), vec![(ETSY, MUG)], "an empty key is forgotten");
    assert_eq!(w.next_change(), Some(Timestamp(3_605_001)));
}

#[test]
fn past_the_per_key_bound_old_sales_merge_and_the_count_stays_exact() {
    let mut w = SalesWindow::new(3600);
    for i in 0..SALES_PER_KEY_MAX as i64 + 10 {
        w.record(SHOP, MUG, 1, Timestamp(i));
    }
    assert_eq!(w.velocity(SHOP, MUG, Timestamp(10_000)).units, SALES_PER_KEY_MAX as i64 + 10);
}
