//! SPEC section 3: the published quantity, step by step, with its worked examples.

use crate::support::*;
use expect_test::expect;
use stockpool_core::build::Builder;
use stockpool_core::*;

/// Publishes for `listing` and compares with `expected`.
#[track_caller]
fn check(b: &Builder, listing: ListingId, expected: Qty) {
    let p = b.state.published(listing).expect("listing exists");
    assert_eq!(p.quantity, expected, "\n{}", b.state.explain(listing).unwrap());
}

#[test]
fn worked_example_1000_available_at_rate_50_publishes_500() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("MUG", ItemKind::Product);
    b.stock("MUG", main, 1000);
    let l = b.listing(etsy, "MUG");
    b.rule("half", &[main], &[etsy], |r| r.sync_rate_percent = 50);
    check(&b, l, 500);
}

#[test]
fn worked_example_pool_sums_only_the_rules_warehouses() {
    let mut b = Builder::new();
    let (wa, wb, wc) = (b.warehouse("A"), b.warehouse("B"), b.warehouse("C"));
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("MUG", ItemKind::Product);
    b.stock("MUG", wa, 7);
    b.stock("MUG", wb, 5);
    b.stock("MUG", wc, 100);
    let l = b.listing(etsy, "MUG");
    b.rule("A and B", &[wa, wb], &[etsy], |_| {});
    check(&b, l, 12);
}

#[test]
fn worked_example_pool_below_threshold_publishes_0_everywhere() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let (etsy, shop) = (b.store("etsy", Channel::Etsy), b.store("shop", Channel::Shopify));
    b.item("MUG", ItemKind::Product);
    b.stock("MUG", main, 9);
    let (l1, l2) = (b.listing(etsy, "MUG"), b.listing(shop, "MUG"));
    b.rule("threshold", &[main], &[etsy, shop], |r| r.stock_threshold = 10);
    check(&b, l1, 0);
    check(&b, l2, 0);
}

#[test]
fn worked_example_below_safety_stock_only_the_priority_store_sells() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let (shop, etsy, ebay) =
        (b.store("shop", Channel::Shopify), b.store("etsy", Channel::Etsy), b.store("ebay", Channel::Ebay));
    b.item("MUG", ItemKind::Product);
    b.stock("MUG", main, 15);
    let (ls, le, lb) = (b.listing(shop, "MUG"), b.listing(etsy, "MUG"), b.listing(ebay, "MUG"));
    b.rule("protect shop", &[main], &[shop, etsy, ebay], |r| {
        r.stock_threshold = 5;
        r.priority_store = Some(shop);
        r.safety_stock = Some(20);
    });
    check(&b, ls, 15);
    check(&b, le, 0);
    check(&b, lb, 0);
}

#[test]
fn worked_example_capacity_from_components_and_stock_plus_capacity() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("A", ItemKind::Material);
    b.item("B", ItemKind::Material);
    b.item("P", ItemKind::Product);
    b.components("P", &[("A", 2), ("B", 3)]);
    b.stock("A", main, 10);
    b.stock("B", main, 9);
    let l = b.listing(etsy, "P");
    // Without stock_plus_capacity only stock is published.
    check(&b, l, 0);
    b.edit("P", |i| i.stock_plus_capacity = true);
    check(&b, l, 3);
    b.stock("P", main, 2);
    check(&b, l, 5);
}

#[test]
fn above_threshold_and_safety_stock_every_store_gets_the_rate() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let (shop, etsy) = (b.store("shop", Channel::Shopify), b.store("etsy", Channel::Etsy));
    b.item("MUG", ItemKind::Product);
    b.stock("MUG", main, 25);
    let (ls, le) = (b.listing(shop, "MUG"), b.listing(etsy, "MUG"));
    b.rule("protect shop", &[main], &[shop, etsy], |r| {
        r.sync_rate_percent = 50;
        r.stock_threshold = 5;
        r.priority_store = Some(shop);
        r.safety_stock = Some(20);
    });
    check(&b, ls, 12);
    check(&b, le, 12);
}

#[test]
fn rate_rounds_down() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("MUG", ItemKind::Product);
    b.stock("MUG", main, 7);
    let l = b.listing(etsy, "MUG");
    b.rule("third", &[main], &[etsy], |r| r.sync_rate_percent = 33);
    check(&b, l, 2);
}

#[test]
fn without_a_rule_the_default_is_all_warehouses_at_100_percent() {
    let mut b = Builder::new();
    let (wa, wb) = (b.warehouse("A"), b.warehouse("B"));
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("MUG", ItemKind::Product);
    b.stock("MUG", wa, 4);
    b.stock("MUG", wb, 6);
    let l = b.listing(etsy, "MUG");
    check(&b, l, 10);
}

#[test]
fn smallest_priority_wins_and_ties_go_to_the_older_rule() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("MUG-RED", ItemKind::Product);
    b.stock("MUG-RED", main, 100);
    let l = b.listing(etsy, "MUG-RED");
    b.rule("older 30%", &[main], &[etsy], |r| {
        r.priority = 5;
        r.sync_rate_percent = 30;
    });
    b.rule("newer 20%, same priority", &[main], &[etsy], |r| {
        r.priority = 5;
        r.sync_rate_percent = 20;
    });
    check(&b, l, 30);
    b.rule("prefix 10%", &[main], &[etsy], |r| {
        r.priority = 1;
        r.sync_rate_percent = 10;
        r.items = ItemsSelector::Prefix("MUG-".into());
    });
    check(&b, l, 10);
    let other = b.item("PLATE", ItemKind::Product);
    b.rule("another SKU at 90%", &[main], &[etsy], |r| {
        r.priority = 0;
        r.sync_rate_percent = 90;
        r.items = ItemsSelector::Items(vec![other]);
    });
    check(&b, l, 10);
}

#[test]
fn a_disabled_rule_does_not_decide() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("MUG", ItemKind::Product);
    b.stock("MUG", main, 100);
    let l = b.listing(etsy, "MUG");
    b.rule("off", &[main], &[etsy], |r| {
        r.enabled = false;
        r.sync_rate_percent = 1;
    });
    check(&b, l, 100);
}

#[test]
fn draft_item_draft_listing_disabled_store_and_sync_off_publish_0() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("MUG", ItemKind::Product);
    b.edit("MUG", |i| i.zero_policy = ZeroPolicy::Continue);
    b.stock("MUG", main, 10);
    let l = b.listing(etsy, "MUG");
    check(&b, l, 10);
    b.edit("MUG", |i| i.status = ItemStatus::Draft);
    check(&b, l, 0);
    b.edit("MUG", |i| i.status = ItemStatus::Active);
    let mut listing = b.state.listing(l).unwrap().clone();
    listing.status = ListingStatus::Draft;
    b.state.upsert_listing(listing.clone()).unwrap();
    check(&b, l, 0);
    listing.status = ListingStatus::Active;
    b.state.upsert_listing(listing).unwrap();
    let mut store = b.state.store(etsy).unwrap().clone();
    store.enabled = false;
    b.state.upsert_store(store.clone()).unwrap();
    check(&b, l, 0);
    store.enabled = true;
    b.state.upsert_store(store).unwrap();
    b.state.set_sync_enabled(false);
    check(&b, l, 0);
    b.state.set_sync_enabled(true);
    check(&b, l, 10);
}

#[test]
fn reserved_stock_is_not_available() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("MUG", ItemKind::Product);
    b.stock("MUG", main, 12);
    let l = b.listing(etsy, "MUG");
    place_order(&mut b, etsy, "A-1", &[("MUG", 5)]);
    check(&b, l, 7);
}

#[test]
fn a_bundle_ships_from_one_warehouse_so_its_pool_is_summed_per_warehouse() {
    let mut b = Builder::new();
    let (wa, wb) = (b.warehouse("A"), b.warehouse("B"));
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("CUP", ItemKind::Product);
    b.item("SAUCER", ItemKind::Product);
    b.item("SET", ItemKind::Bundle);
    b.components("SET", &[("CUP", 2), ("SAUCER", 1)]);
    // A: 5 cups, 1 saucer -> 1 set; B: 1 cup, 9 saucers -> 0 sets. Pooled, 6 cups and 10
    // saucers would suggest 3: wrong, no warehouse can ship that.
    b.stock("CUP", wa, 5);
    b.stock("SAUCER", wa, 1);
    b.stock("CUP", wb, 1);
    b.stock("SAUCER", wb, 9);
    let l = b.listing(etsy, "SET");
    check(&b, l, 1);
}

#[test]
fn capacity_goes_through_sub_assemblies_and_counts_shared_materials_once() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("CLAY", ItemKind::Material);
    b.item("BODY", ItemKind::Material);
    b.item("HANDLE", ItemKind::Material);
    b.item("MUG", ItemKind::Product);
    b.components("BODY", &[("CLAY", 300)]);
    b.components("HANDLE", &[("CLAY", 100)]);
    b.components("MUG", &[("BODY", 1), ("HANDLE", 1)]);
    b.edit("MUG", |i| i.stock_plus_capacity = true);
    b.stock("CLAY", main, 1000);
    let l = b.listing(etsy, "MUG");
    // Independently 1000/300 = 3 bodies and 10 handles, but both need clay: 2 mugs.
    check(&b, l, 2);
    b.stock("HANDLE", main, 5);
    // With handles in stock, clay only makes bodies: 3.
    check(&b, l, 3);
}

#[test]
fn zero_policy_continue_turns_the_switch_on_where_the_channel_has_one() {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let (shop, etsy) = (b.store("shop", Channel::Shopify), b.store("etsy", Channel::Etsy));
    b.item("MUG", ItemKind::Product);
    b.edit("MUG", |i| {
        i.zero_policy = ZeroPolicy::Continue;
        i.continue_quantity = 3;
    });
    let (ls, le) = (b.listing(shop, "MUG"), b.listing(etsy, "MUG"));
    let on_shop = b.state.published(ls).unwrap();
    assert_eq!((on_shop.quantity, on_shop.sell_when_out_of_stock), (0, true));
    check(&b, le, 3);
    b.stock("MUG", main, 10);
    check(&b, le, 10);
}

#[test]
fn zero_policy_backorder_shows_back_order_status_where_the_channel_can() {
    let mut b = Builder::new();
    b.warehouse("main");
    let (woo, etsy) = (b.store("woo", Channel::Woocommerce), b.store("etsy", Channel::Etsy));
    b.item("MUG", ItemKind::Product);
    b.edit("MUG", |i| i.zero_policy = ZeroPolicy::Backorder);
    let (lw, le) = (b.listing(woo, "MUG"), b.listing(etsy, "MUG"));
    let w = b.state.published(lw).unwrap();
    assert_eq!((w.quantity, w.sell_when_out_of_stock, w.show_backorder), (0, true, true));
    let e = b.state.published(le).unwrap();
    assert_eq!((e.quantity, e.sell_when_out_of_stock, e.show_backorder), (1, false, false));
}

#[test]
fn explain_lists_every_step_with_its_numbers() {
    let mut b = Builder::new();
    let (wa, wb) = (b.warehouse("A"), b.warehouse("B"));
    let (shop, etsy) = (b.store("shop", Channel::Shopify), b.store("etsy", Channel::Etsy));
    b.item("MUG", ItemKind::Product);
    b.stock("MUG", wa, 10);
    b.stock("MUG", wb, 5);
    let le = b.listing(etsy, "MUG");
    b.rule("protect shop", &[wa, wb], &[shop, etsy], |r| {
        r.sync_rate_percent = 50;
        r.stock_threshold = 5;
        r.priority_store = Some(shop);
        r.safety_stock = Some(20);
    });
    expect![[r#"
        listing #6 (MUG on etsy)
        1. rule #7 v1 "protect shop", warehouses [#1, #2], rate 50%, threshold 5, priority store #3 safety 20
        2. pool of available = 15 (#1: 10, #2: 5)
        3. pool 15 >= threshold 5: go on
        4. pool 15 < safety stock 20: only priority store #3 sells, publish 0
        5. zero policy Stop: 0 -> 0
        published 0"#]]
    .assert_eq(&b.state.explain(le).unwrap().to_string());
}
