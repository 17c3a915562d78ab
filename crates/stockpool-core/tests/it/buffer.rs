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

/// A potter's two mugs made to order from one clay under a `buffer: auto` rule on `shop`
/// and `etsy` (latencies as in `world`): each mug needs 400 g of clay, and `clay` grams
/// are in stock. Red mugs sell 10 an hour on etsy and need a red glaze (`glaze` ml, 1 a
/// mug); blue mugs sell 2 an hour on shop. Returns the listings
/// `[red on shop, red on etsy, blue on shop, blue on etsy]`.
fn pottery(clay: Qty, glaze: Qty) -> (Builder, [ListingId; 4]) {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let (shop, etsy) = (b.store("shop", Channel::Shopify), b.store("etsy", Channel::Etsy));
    b.item("CLAY", ItemKind::Material);
    b.item("GLAZE-RED", ItemKind::Material);
    let red = b.item("MUG-RED", ItemKind::Product);
    let blue = b.item("MUG-BLUE", ItemKind::Product);
    b.components("MUG-RED", &[("CLAY", 400), ("GLAZE-RED", 1)]);
    b.components("MUG-BLUE", &[("CLAY", 400)]);
    for mug in ["MUG-RED", "MUG-BLUE"] {
        b.edit(mug, |it| it.stock_plus_capacity = true);
    }
    b.stock("CLAY", main, clay);
    if glaze > 0 {
        b.stock("GLAZE-RED", main, glaze);
    }
    let ls = [
        b.listing(shop, "MUG-RED"),
        b.listing(etsy, "MUG-RED"),
        b.listing(shop, "MUG-BLUE"),
        b.listing(etsy, "MUG-BLUE"),
    ];
    b.rule("auto", &[main], &[shop, etsy], |r| r.buffer = Buffer::Auto);
    b.state.set_store_latency(shop, Latency { sync_seconds: 30, order_seconds: 5 });
    b.state.set_store_latency(etsy, Latency { sync_seconds: 60, order_seconds: 150 });
    b.state.set_sales_velocity(etsy, red, Velocity { units: 10, window_seconds: 3600 });
    b.state.set_sales_velocity(shop, blue, Velocity { units: 2, window_seconds: 3600 });
    (b, ls)
}

#[track_caller]
fn check_pottery(b: &Builder, ls: [ListingId; 4], expected: [Qty; 4]) {
    let got = ls.map(|l| b.state.published(l).unwrap().quantity);
    let why: Vec<String> = ls.iter().map(|l| b.state.explain(*l).unwrap().to_string()).collect();
    assert_eq!(got, expected, "\n{}", why.join("\n"));
}

#[test]
fn a_made_to_order_product_holds_back_the_clay_other_products_may_take() {
    // 2000 g of clay make 5 of either mug. Red takes the clay fastest (10 x 400 g an hour
    // against 2 x 400 g), so red is the clay's favoured product: no store of red holds
    // anything back for blue, and red behaves as in `world`: etsy, its fastest store,
    // shows 5; shop holds back ceil(0.5 + 2 sqrt(0.5)) = 2 for etsy's red sales, 3.
    // Blue holds back what red's sales take from the clay before blue's store hears, even
    // on shop, blue's favoured store: etsy sells 10/h x (150 s + shop's 30 s) = 0.5 red
    // mugs, 200 g, 0.5 of a blue mug; ceil(0.5 + 2 sqrt(0.5)) = 2, so 5 - 2 = 3.
    // Blue on etsy adds both: shop's blue 2/h x (5 s + 60 s) = 0.036 and etsy's own red
    // sales, which etsy's blue listing does not see either, 10/h x (150 s + 60 s) = 0.583;
    // ceil(0.619 + 2 sqrt(0.619)) = ceil(2.19) = 3, so 5 - 3 = 2.
    let (b, ls) = pottery(2000, 100);
    check_pottery(&b, ls, [3, 5, 3, 2]);
}

#[test]
fn the_last_clay_stays_on_sale_once() {
    // 500 g: one mug of either colour, not both. Only red on etsy shows it, so no shopper
    // can buy two mugs from one mug's clay (two lines of one order, or two stores).
    let (b, ls) = pottery(500, 100);
    check_pottery(&b, ls, [0, 1, 0, 0]);
}

#[test]
fn a_product_that_cannot_be_made_passes_the_clay_on() {
    // No red glaze: red cannot be made, so blue becomes the clay's favoured product, and
    // shop, blue's favoured store, shows all the clay makes: 5. Etsy's blue holds back
    // only shop's blue sales: ceil(0.036 + 2 sqrt(0.036)) = 1.
    let (b, ls) = pottery(2000, 0);
    check_pottery(&b, ls, [0, 0, 5, 4]);
}

#[test]
fn explain_shows_what_other_products_may_take() {
    let (b, ls) = pottery(2000, 100);
    expect![[r#"
        listing #10 (MUG-BLUE on shop)
        1. rule #12 v1 "auto", warehouses [#1], rate 100%, threshold 0
        2. pool of available = 5 (#1: 0 + capacity 5)
        3. floor(5 x 100% ) = 5
        4. buffer auto: this is the favoured store, it holds back nothing for its own item, other products may take 0.500 of its materials, hold back 2: min(5, 5 - 2) = 3
        5. zero policy Stop: 3 -> 3
        published 3
        listing #9 (MUG-RED on etsy)
        1. rule #12 v1 "auto", warehouses [#1], rate 100%, threshold 0
        2. pool of available = 5 (#1: 0 + capacity 5)
        3. floor(5 x 100% ) = 5
        4. buffer auto: this is the favoured store, it holds back nothing for its own item, it is the favoured product of a material it is made from, hold back 0: min(5, 5 - 0) = 5
        5. zero policy Stop: 5 -> 5
        published 5"#]]
    .assert_eq(&format!("{}\n{}", b.state.explain(ls[2]).unwrap(), b.state.explain(ls[1]).unwrap()));
}
