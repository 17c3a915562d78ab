//! `buffer: auto` on a sync rule: what each store holds back because the rule's other
//! stores may sell the same units before it hears (core `buffer.rs`, publish step 6b).

use expect_test::expect;
use stockpool_core::build::Builder;
use stockpool_core::*;

/// Two stores under one `buffer: auto` rule over `pool` mugs: `shop` (a webhook, 30 s to
/// show a push, 5 s to report an order, 2 sales an hour) and `etsy` (60 s to show a push,
/// 150 s to report an order, 10 sales an hour).
fn world(pool: Qty, edit: impl FnOnce(&mut SyncRule, StoreId)) -> (Builder, ListingId, ListingId) {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let (shop, etsy) = (b.store("shop", Channel::Shopify), b.store("etsy", Channel::Etsy));
    let mug = b.item("MUG", ItemKind::Product);
    if pool > 0 {
        b.stock("MUG", main, pool);
    }
    let (ls, le) = (b.listing(shop, "MUG"), b.listing(etsy, "MUG"));
    b.rule("auto", &[main], &[shop, etsy], |r| {
        r.buffer = Buffer::Auto;
        edit(r, shop);
    });
    b.state.set_store_latency(shop, Latency { sync_seconds: 30, order_seconds: 5 });
    b.state.set_store_latency(etsy, Latency { sync_seconds: 60, order_seconds: 150 });
    b.state.set_sales_velocity(shop, mug, Velocity { units: 2, window_seconds: 3600 });
    b.state.set_sales_velocity(etsy, mug, Velocity { units: 10, window_seconds: 3600 });
    (b, ls, le)
}

/// Publishes both listings and compares `(shop, etsy)` with `expected`.
#[track_caller]
fn check(b: &Builder, (shop, etsy): (ListingId, ListingId), expected: (Qty, Qty)) {
    let got = (b.state.published(shop).unwrap().quantity, b.state.published(etsy).unwrap().quantity);
    assert_eq!(got, expected, "\n{}\n{}", b.state.explain(shop).unwrap(), b.state.explain(etsy).unwrap());
}

#[test]
fn the_slower_store_holds_back_what_the_faster_one_may_sell_in_its_blind_window() {
    // Shop's blind window: etsy's 150 s order latency + shop's 30 s sync = 180 s, in which
    // etsy sells 10/h x 180 s = 0.5 units; 0.5 + 2 sqrt(0.5) = 1.91, rounded up: 2.
    // Etsy sells fastest, so it is favoured and shows the whole pool.
    let (b, ls, le) = world(10, |_, _| {});
    check(&b, (ls, le), (8, 10));
}

#[test]
fn the_last_unit_stays_on_sale_on_the_favoured_store_only() {
    let (b, ls, le) = world(1, |_, _| {});
    check(&b, (ls, le), (0, 1));
}

#[test]
fn nothing_in_the_pool_publishes_0_everywhere() {
    let (b, ls, le) = world(0, |_, _| {});
    check(&b, (ls, le), (0, 0));
}

#[test]
fn the_rules_priority_store_is_the_favoured_store() {
    // Etsy is held back now: shop sells 2/h x (5 s + 60 s) = 0.036 units; ceil(0.036 + 2 x 0.19) = 1.
    let (b, ls, le) = world(10, |r, shop| {
        r.priority_store = Some(shop);
        r.safety_stock = Some(3);
    });
    check(&b, (ls, le), (10, 9));
}

#[test]
fn the_buffer_only_lowers_what_the_rate_gives() {
    // Rate 50 %: floor(10 x 50 %) = 5 for both; shop's buffer allows 10 - 2 = 8, so 5 stays.
    let (b, ls, le) = world(10, |r, _| r.sync_rate_percent = 50);
    check(&b, (ls, le), (5, 5));
}

#[test]
fn without_recent_sales_nothing_is_held_back() {
    let (mut b, ls, le) = world(10, |_, _| {});
    let mug = b.sku("MUG");
    for s in [b.state.listing(ls).unwrap().store, b.state.listing(le).unwrap().store] {
        b.state.set_sales_velocity(s, mug, Velocity::default());
    }
    check(&b, (ls, le), (10, 10));
}

#[test]
fn a_burst_on_one_store_grows_the_others_buffer() {
    // A flash sale: etsy sells 200 an hour. Shop's window of 180 s sees 10 units;
    // 10 + 2 sqrt(10) = 16.3, rounded up: 17.
    let (mut b, ls, le) = world(40, |_, _| {});
    let (etsy, mug) = (b.state.listing(le).unwrap().store, b.sku("MUG"));
    b.state.set_sales_velocity(etsy, mug, Velocity { units: 200, window_seconds: 3600 });
    check(&b, (ls, le), (23, 40));
}

#[test]
fn buffer_none_is_the_default_and_changes_nothing() {
    let (b, ls, le) = world(10, |r, _| r.buffer = Buffer::None);
    check(&b, (ls, le), (10, 10));
}

#[test]
fn a_rule_reads_and_writes_buffer_auto_as_json() {
    let (b, _, _) = world(10, |_, _| {});
    let rule = b.state.rules().next().unwrap().clone();
    let json = serde_json::to_value(&rule).unwrap();
    assert_eq!(json["buffer"], "auto");
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("buffer");
    let back: SyncRule = serde_json::from_value(old).unwrap();
    assert_eq!(back.buffer, Buffer::None, "a rule saved before `buffer` existed loads as none");
    let none = serde_json::to_value(&back).unwrap();
    assert!(none.get("buffer").is_none(), "buffer none is left out, so stored rules do not change");
}

#[test]
fn explain_shows_what_the_buffer_held_back() {
    let (b, ls, le) = world(10, |_, _| {});
    expect![[r#"
        listing #5 (MUG on shop)
        1. rule #7 v1 "auto", warehouses [#1], rate 100%, threshold 0
        2. pool of available = 10 (#1: 10)
        3. floor(10 x 100% ) = 10
        4. buffer auto: other stores may sell 0.500 before this one hears, hold back 2 (favoured store #3): min(10, 10 - 2) = 8
        5. zero policy Stop: 8 -> 8
        published 8
        listing #6 (MUG on etsy)
        1. rule #7 v1 "auto", warehouses [#1], rate 100%, threshold 0
        2. pool of available = 10 (#1: 10)
        3. floor(10 x 100% ) = 10
        4. buffer auto: this is the favoured store, it shows the whole pool: 10 -> 10
        5. zero policy Stop: 10 -> 10
        published 10"#]].assert_eq(&format!("{}\n{}", b.state.explain(ls).unwrap(), b.state.explain(le).unwrap()));
}
