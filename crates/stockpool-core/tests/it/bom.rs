//! Bills of materials: what the core accepts and what it refuses.

use stockpool_core::build::Builder;
use stockpool_core::*;

fn comps(b: &Builder, list: &[(&str, Qty)]) -> Vec<Component> {
    list.iter().map(|(s, q)| Component { item: b.sku(s), quantity: *q }).collect()
}

#[track_caller]
fn check(b: &mut Builder, sku: &str, list: &[(&str, Qty)], expected: &str) {
    let id = b.sku(sku);
    let got = b.state.set_components(id, comps(b, list)).map_err(|e| e.to_string());
    assert_eq!(got.err().unwrap_or_else(|| "ok".into()), expected);
}

#[test]
fn cycles_self_references_and_bad_quantities_are_refused() {
    let mut b = Builder::new();
    b.item("A", ItemKind::Material);
    b.item("B", ItemKind::Material);
    b.item("P", ItemKind::Product);
    b.item("SET", ItemKind::Bundle);
    check(&mut b, "B", &[("A", 2)], "ok");
    check(&mut b, "A", &[("B", 1)], "components of A would form a cycle through B");
    check(&mut b, "A", &[("A", 1)], "A cannot be a component of itself");
    check(&mut b, "P", &[("A", 0)], "component A has quantity 0; it must be between 1 and 1000000");
    check(&mut b, "P", &[("A", 1), ("A", 2)], "component A is listed twice; give it once with the total quantity");
    check(&mut b, "P", &[("SET", 1)], "bundle SET cannot be a component of P: only bundles ship bundles");
    check(&mut b, "SET", &[("P", 1), ("B", 2)], "ok");
}

#[test]
fn depth_is_limited_to_bom_depth_max_levels() {
    let mut b = Builder::new();
    let max = b.state.limits().bom_depth_max;
    for i in 0..=max + 1 {
        b.item(&format!("L{i}"), ItemKind::Material);
    }
    // L1 <- L0, L2 <- L1, ...: each item made of the previous one.
    for i in 1..max {
        check(&mut b, &format!("L{i}"), &[(&format!("L{}", i - 1), 1)], "ok");
    }
    check(&mut b, &format!("L{max}"), &[(&format!("L{}", max - 1), 1)], "ok");
    check(
        &mut b,
        &format!("L{}", max + 1),
        &[(&format!("L{max}"), 1)],
        &format!("the bill of materials would be {} levels deep; at most {max} are allowed", max + 1),
    );
    // Adding a level at the bottom of a full tree is refused too.
    b.item("ROOT", ItemKind::Material);
    check(
        &mut b,
        "L0",
        &[("ROOT", 1)],
        &format!("the bill of materials would be {} levels deep; at most {max} are allowed", max + 1),
    );
}

#[test]
fn dependency_index_reaches_every_level() {
    let mut b = Builder::new();
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("CLAY", ItemKind::Material);
    b.item("BODY", ItemKind::Material);
    b.item("MUG", ItemKind::Product);
    b.item("PLATE", ItemKind::Product);
    b.item("SET", ItemKind::Bundle);
    b.components("BODY", &[("CLAY", 300)]);
    b.components("MUG", &[("BODY", 1)]);
    b.components("SET", &[("MUG", 2), ("PLATE", 1)]);
    let (l_mug, l_set, l_plate) = (b.listing(etsy, "MUG"), b.listing(etsy, "SET"), b.listing(etsy, "PLATE"));
    let clay = b.sku("CLAY");
    assert_eq!(b.state.affected_listings(&[clay]), vec![l_mug, l_set]);
    assert_eq!(b.state.affected_listings(&[b.sku("PLATE")]), vec![l_set, l_plate]);
}
