//! Sync rule validation: each invalid rule of SPEC section 3 is refused with a clear error.

use stockpool_core::build::Builder;
use stockpool_core::*;

fn world() -> (Builder, SyncRule) {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let (etsy, shop) = (b.store("etsy", Channel::Etsy), b.store("shop", Channel::Shopify));
    let rule = SyncRule {
        id: RuleId(1000),
        version: 0,
        name: "rule".into(),
        priority: 10,
        enabled: true,
        items: ItemsSelector::All,
        warehouses: vec![main],
        stores: vec![etsy, shop],
        sync_rate_percent: 100,
        stock_threshold: 0,
        priority_store: None,
        safety_stock: None,
        buffer: Buffer::None,
        created_seq: 0,
    };
    (b, rule)
}

#[track_caller]
fn check(edit: impl FnOnce(&mut SyncRule), expected: &str) {
    let (mut b, mut rule) = world();
    edit(&mut rule);
    let got = b.state.save_rule(rule).map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string());
    assert_eq!(got, expected);
    if expected != "ok" {
        assert_eq!(b.state.rules().count(), 0, "a refused rule changes nothing");
    }
}

#[test]
fn valid_rules_are_saved() {
    check(|_| {}, "ok");
    check(
        |r| {
            r.stock_threshold = 5;
            r.priority_store = Some(r.stores[1]);
            r.safety_stock = Some(6);
        },
        "ok",
    );
}

#[test]
fn each_invalid_rule_is_refused_with_a_sentence() {
    check(|r| r.sync_rate_percent = 0, "sync_rate_percent must be between 1 and 100, got 0");
    check(|r| r.sync_rate_percent = 101, "sync_rate_percent must be between 1 and 100, got 101");
    check(|r| r.stock_threshold = -1, "stock_threshold must be 0 or more, got -1");
    check(|r| r.warehouses.clear(), "a rule needs at least one warehouse");
    check(|r| r.stores.clear(), "a rule needs at least one store");
    check(|r| r.warehouses.push(WarehouseId(999)), "unknown warehouse 999");
    check(
        |r| {
            r.priority_store = Some(StoreId(999));
            r.safety_stock = Some(5);
        },
        "priority_store 999 must be one of the rule's stores",
    );
    check(
        |r| {
            r.stores.truncate(1);
            r.priority_store = Some(StoreId(3));
            r.safety_stock = Some(5);
        },
        "priority_store shop must be one of the rule's stores",
    );
    check(
        |r| {
            r.stock_threshold = 5;
            r.priority_store = Some(r.stores[0]);
            r.safety_stock = Some(5);
        },
        "safety_stock (5) must be greater than stock_threshold (5)",
    );
    check(|r| r.safety_stock = Some(5), "priority_store and safety_stock go together: give both or neither");
    check(|r| r.items = ItemsSelector::Items(vec![ItemId(999)]), "unknown SKU 999");
    check(|r| r.name = String::new(), "the rule's name is invalid: name must not be empty");
}

#[test]
fn the_201st_rule_is_refused_and_every_save_is_a_new_version() {
    let (mut b, rule) = world();
    for i in 0..200 {
        let mut r = rule.clone();
        r.id = RuleId(5000 + i);
        assert_eq!(b.state.save_rule(r).unwrap().version, 1);
    }
    let mut extra = rule.clone();
    extra.id = RuleId(9999);
    assert_eq!(b.state.save_rule(extra).unwrap_err().to_string(), "a workspace may have at most 200 sync rules");
    let mut again = rule;
    again.id = RuleId(5000);
    again.sync_rate_percent = 50;
    assert_eq!(b.state.save_rule(again).unwrap(), RuleRef { id: RuleId(5000), version: 2 });
}
