//! SPEC section 4: every path an order can take, decided in one step each.

use crate::support::*;
use stockpool_core::build::Builder;
use stockpool_core::*;

/// One warehouse, an Etsy store and a mug with `stock` on hand and `policy` at zero.
fn shop(stock: Qty, policy: ZeroPolicy) -> (Builder, WarehouseId, StoreId) {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("MUG", ItemKind::Product);
    b.edit("MUG", |i| i.zero_policy = policy);
    b.listing(etsy, "MUG");
    if stock > 0 {
        b.stock("MUG", main, stock);
    }
    (b, main, etsy)
}

#[test]
fn an_order_within_stock_is_confirmed_and_reserves_it() {
    let (mut b, main, etsy) = shop(12, ZeroPolicy::Stop);
    let o = place_order(&mut b, etsy, "A-1001", &[("MUG", 2)]);
    assert_eq!(o.status, OrderStatus::Confirmed);
    assert_eq!(line_statuses(&o), ["confirmed"]);
    assert_eq!(level(&b, "MUG", main), (12, 2));
    assert_eq!(b.state.check(), vec![]);
}

#[test]
fn the_same_order_delivered_twice_changes_nothing_the_second_time() {
    let (mut b, main, etsy) = shop(12, ZeroPolicy::Stop);
    let new = order(&b, etsy, "A-1001", &[("MUG", 2)]);
    let first = place(&mut b, &new, NOW);
    assert_eq!(b.state.take_order(&new, NOW), Ok(Intake::Duplicate { order: first.id }));
    assert_eq!(level(&b, "MUG", main), (12, 2));
}

#[test]
fn stock_is_taken_from_the_rules_warehouses_in_the_rules_order() {
    let mut b = Builder::new();
    let (wa, wb, wc) = (b.warehouse("A"), b.warehouse("B"), b.warehouse("C"));
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("MUG", ItemKind::Product);
    b.listing(etsy, "MUG");
    b.stock("MUG", wa, 3);
    b.stock("MUG", wb, 10);
    b.stock("MUG", wc, 10);
    b.rule("B then A", &[wb, wa], &[etsy], |_| {});
    let o = place_order(&mut b, etsy, "1", &[("MUG", 12)]);
    assert_eq!(o.status, OrderStatus::Confirmed);
    assert_eq!((level(&b, "MUG", wb), level(&b, "MUG", wa), level(&b, "MUG", wc)), ((10, 10), (3, 2), (10, 0)));
    assert_eq!(o.lines[0].rule.map(|r| r.version), Some(1));
}

#[test]
fn two_lines_that_need_the_same_stock_cannot_both_get_it() {
    let (mut b, main, etsy) = shop(3, ZeroPolicy::Stop);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 2), ("MUG", 2)]);
    assert_eq!(line_statuses(&o), ["confirmed", "oversold"]);
    assert_eq!((o.lines[1].units_held, o.lines[1].oversold), (1, 1));
    assert_eq!(level(&b, "MUG", main), (3, 3));
}

#[test]
fn stop_beyond_stock_is_an_oversell_incident_that_needs_attention() {
    let (mut b, main, etsy) = shop(1, ZeroPolicy::Stop);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 3)]);
    assert_eq!(o.status, OrderStatus::NeedsAttention);
    assert_eq!(line_statuses(&o), ["oversold"]);
    assert_eq!(o.lines[0].oversold, 2);
    assert_eq!(level(&b, "MUG", main), (1, 1));
}

#[test]
fn an_unmapped_line_is_kept_and_needs_attention() {
    let (mut b, _, etsy) = shop(5, ZeroPolicy::Stop);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 1), ("UNKNOWN-SKU", 4)]);
    assert_eq!(o.status, OrderStatus::NeedsAttention);
    assert_eq!(line_statuses(&o), ["confirmed", "unmapped"]);
    assert_eq!(o.lines[1].store_sku, "UNKNOWN-SKU");
}

#[test]
fn continue_backorders_and_incoming_stock_fills_backorders_oldest_first() {
    let (mut b, main, etsy) = shop(1, ZeroPolicy::Continue);
    let first = place_order(&mut b, etsy, "1", &[("MUG", 3)]);
    let second = place_order(&mut b, etsy, "2", &[("MUG", 2)]);
    assert_eq!((first.status, line_statuses(&first)), (OrderStatus::Confirmed, vec!["backordered"]));
    assert_eq!((first.lines[0].units_held, first.lines[0].backordered), (1, 2));
    assert_eq!(second.lines[0].backordered, 2);
    assert_eq!(level(&b, "MUG", main), (1, 1));

    b.stock("MUG", main, 3);
    let first = b.state.order(first.id).unwrap();
    let second = b.state.order(second.id).unwrap();
    assert_eq!(line_statuses(first), ["confirmed"]);
    assert_eq!((second.lines[0].units_held, second.lines[0].backordered), (1, 1));
    assert_eq!(level(&b, "MUG", main), (4, 4));
    assert_eq!(b.state.check(), vec![]);
}

#[test]
fn backorder_policy_backorders_like_continue() {
    let (mut b, _, etsy) = shop(0, ZeroPolicy::Backorder);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 2)]);
    assert_eq!((o.status, line_statuses(&o)), (OrderStatus::Confirmed, vec!["backordered"]));
}

#[test]
fn request_holds_what_stock_there_is_and_waits_for_the_seller() {
    let (mut b, main, etsy) = shop(1, ZeroPolicy::Request);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 3)]);
    assert_eq!((o.status, line_statuses(&o)), (OrderStatus::Requested, vec!["requested"]));
    assert_eq!(o.accept_by, Some(NOW.plus_seconds(172_800)));
    assert_eq!(level(&b, "MUG", main), (1, 1));

    let o = step(&mut b, o.id, |s| s.accept(o.id, NOW));
    assert_eq!((o.status, line_statuses(&o)), (OrderStatus::Confirmed, vec!["backordered"]));
    assert_eq!(o.lines[0].backordered, 2);
}

#[test]
fn accepting_takes_stock_that_arrived_while_the_request_waited() {
    let (mut b, main, etsy) = shop(1, ZeroPolicy::Request);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 3)]);
    b.stock("MUG", main, 5);
    let o = step(&mut b, o.id, |s| s.accept(o.id, NOW));
    assert_eq!((o.status, line_statuses(&o)), (OrderStatus::Confirmed, vec!["confirmed"]));
    assert_eq!(level(&b, "MUG", main), (6, 3));
}

#[test]
fn declining_a_request_releases_what_it_held() {
    let (mut b, main, etsy) = shop(1, ZeroPolicy::Request);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 3)]);
    let o = step(&mut b, o.id, |s| s.decline(o.id, NOW));
    assert_eq!((o.status, line_statuses(&o)), (OrderStatus::Declined, vec!["cancelled"]));
    assert_eq!(level(&b, "MUG", main), (1, 0));
}

#[test]
fn an_unanswered_request_expires_after_accept_within_seconds() {
    let (mut b, main, etsy) = shop(1, ZeroPolicy::Request);
    b.edit("MUG", |i| i.accept_within_seconds = 60);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 3)]);
    assert!(b.state.sweep(NOW.plus_seconds(59)).is_empty());
    let o = step(&mut b, o.id, |s| Ok(s.sweep(NOW.plus_seconds(60))));
    assert_eq!(o.status, OrderStatus::Expired);
    assert_eq!(level(&b, "MUG", main), (1, 0));
    assert_eq!(b.state.next_deadline(), None);
}

#[test]
fn payment_after_acceptance_waits_for_payment_then_confirms() {
    let (mut b, _, etsy) = shop(5, ZeroPolicy::Request);
    let mut new = order(&b, etsy, "1", &[("MUG", 7)]);
    new.payment = Payment::AfterAcceptance;
    let o = place(&mut b, &new, NOW);
    let o = step(&mut b, o.id, |s| s.accept(o.id, NOW));
    assert_eq!(o.status, OrderStatus::AwaitingPayment);
    assert_eq!(o.pay_by, Some(NOW.plus_seconds(86_400)));
    let o = step(&mut b, o.id, |s| s.pay(o.id, NOW));
    assert_eq!(o.status, OrderStatus::Confirmed);
}

#[test]
fn an_unpaid_accepted_request_expires_after_pay_within_seconds() {
    let (mut b, main, etsy) = shop(5, ZeroPolicy::Request);
    let mut new = order(&b, etsy, "1", &[("MUG", 7)]);
    new.payment = Payment::AfterAcceptance;
    new.pay_within_seconds = Some(600);
    let o = place(&mut b, &new, NOW);
    let o = step(&mut b, o.id, |s| s.accept(o.id, NOW));
    let o = step(&mut b, o.id, |s| Ok(s.sweep(NOW.plus_seconds(600))));
    assert_eq!(o.status, OrderStatus::Expired);
    assert_eq!(level(&b, "MUG", main), (5, 0));
}

#[test]
fn cancel_releases_everything_and_the_released_stock_fills_backorders() {
    let (mut b, main, etsy) = shop(2, ZeroPolicy::Continue);
    let first = place_order(&mut b, etsy, "1", &[("MUG", 2)]);
    let waiting = place_order(&mut b, etsy, "2", &[("MUG", 1)]);
    assert_eq!(line_statuses(&waiting), ["backordered"]);
    let first = step(&mut b, first.id, |s| s.cancel(first.id, NOW));
    assert_eq!((first.status, line_statuses(&first)), (OrderStatus::Cancelled, vec!["cancelled"]));
    assert_eq!(line_statuses(b.state.order(waiting.id).unwrap()), ["confirmed"]);
    assert_eq!(level(&b, "MUG", main), (2, 1));
}

#[test]
fn fulfill_ships_on_hand_and_reserved_down_together() {
    let (mut b, main, etsy) = shop(5, ZeroPolicy::Stop);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 2)]);
    let o = step(&mut b, o.id, |s| s.fulfill(o.id, NOW));
    assert_eq!((o.status, line_statuses(&o)), (OrderStatus::Fulfilled, vec!["fulfilled"]));
    assert_eq!(level(&b, "MUG", main), (3, 0));
    assert!(matches!(b.state.cancel(o.id, NOW), Err(OrderError::WrongStatus { .. })));
}

#[test]
fn fulfill_waits_for_backordered_units() {
    let (mut b, _, etsy) = shop(1, ZeroPolicy::Continue);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 2)]);
    assert_eq!(b.state.fulfill(o.id, NOW), Err(OrderError::NotReadyToFulfill { order: o.id, line: 0, waiting: 1 }));
}

/// A made-to-order mug: 400 g of clay and 20 g of glaze per mug.
fn pottery(action: MakeAction) -> (Builder, WarehouseId, StoreId) {
    let mut b = Builder::new();
    let main = b.warehouse("main");
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("CLAY", ItemKind::Material);
    b.item("GLAZE", ItemKind::Material);
    b.item("MUG", ItemKind::Product);
    b.components("MUG", &[("CLAY", 400), ("GLAZE", 20)]);
    b.edit("MUG", |i| {
        i.make_action = action;
        i.stock_plus_capacity = true;
    });
    b.listing(etsy, "MUG");
    b.stock("MUG", main, 1);
    b.stock("CLAY", main, 1000);
    b.stock("GLAZE", main, 100);
    (b, main, etsy)
}

#[test]
fn beyond_stock_deduct_makes_the_product_now_from_its_components() {
    let (mut b, main, etsy) = pottery(MakeAction::Deduct);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 3)]);
    assert_eq!((o.status, line_statuses(&o)), (OrderStatus::Confirmed, vec!["made"]));
    assert_eq!((o.lines[0].units_held, o.lines[0].units_made), (3, 2));
    assert_eq!(level(&b, "CLAY", main), (200, 0));
    assert_eq!(level(&b, "GLAZE", main), (60, 0));
    assert_eq!(level(&b, "MUG", main), (3, 3));
    let o = place_order(&mut b, etsy, "2", &[("MUG", 1)]);
    assert_eq!(line_statuses(&o), ["oversold"]);
}

#[test]
fn beyond_stock_a_production_card_holds_the_components_until_done() {
    let (mut b, main, etsy) = pottery(MakeAction::ProductionCard);
    let l = b.state.listing_by_store_sku(etsy, "MUG").unwrap().id;
    assert_eq!(b.state.published(l).unwrap().quantity, 3);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 3)]);
    assert_eq!(line_statuses(&o), ["made"]);
    assert_eq!((o.lines[0].units_held, o.lines[0].units_in_cards), (1, 2));
    let card = o.lines[0].cards[0];
    assert_eq!(b.state.card(card).unwrap().status, CardStatus::Pending);
    assert_eq!(level(&b, "CLAY", main), (1000, 800));
    // A pending card reduces capacity: nothing is left to make or show.
    assert_eq!(b.state.published(l).unwrap().quantity, 0);
    assert_eq!(b.state.fulfill(o.id, NOW), Err(OrderError::NotReadyToFulfill { order: o.id, line: 0, waiting: 2 }));
    assert!(matches!(b.state.cancel_card(card, NOW), Err(OrderError::CardBelongsToOrder { .. })));

    let change = b.state.start_card(card, NOW).unwrap();
    b.state.apply(&change);
    let o = step(&mut b, o.id, |s| s.finish_card(card, NOW));
    assert_eq!(b.state.card(card).unwrap().status, CardStatus::Done);
    assert_eq!((o.lines[0].units_held, o.lines[0].units_in_cards, o.lines[0].units_made), (3, 0, 2));
    assert_eq!(level(&b, "CLAY", main), (200, 0));
    assert_eq!(level(&b, "MUG", main), (3, 3));
    let o = step(&mut b, o.id, |s| s.fulfill(o.id, NOW));
    assert_eq!(o.status, OrderStatus::Fulfilled);
    assert_eq!(level(&b, "MUG", main), (0, 0));
}

#[test]
fn cancelling_an_order_cancels_its_cards_and_releases_their_components() {
    let (mut b, main, etsy) = pottery(MakeAction::ProductionCard);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 3)]);
    let card = o.lines[0].cards[0];
    step(&mut b, o.id, |s| s.cancel(o.id, NOW));
    assert_eq!(b.state.card(card).unwrap().status, CardStatus::Cancelled);
    assert_eq!((level(&b, "CLAY", main), level(&b, "MUG", main)), ((1000, 0), (1, 0)));
}

#[test]
fn a_card_made_to_stock_reserves_components_and_adds_the_product_when_done() {
    let (mut b, main, _) = pottery(MakeAction::ProductionCard);
    let mug = b.sku("MUG");
    assert_eq!(
        b.state.create_card(mug, main, 3, NOW).map(|_| ()),
        Err(OrderError::NotEnoughComponents { sku: "MUG".into(), quantity: 3, capacity: 2 })
    );
    let (card, change) = b.state.create_card(mug, main, 2, NOW).unwrap();
    b.state.apply(&change);
    assert_eq!(level(&b, "CLAY", main), (1000, 800));
    let change = b.state.finish_card(card, NOW).unwrap();
    b.state.apply(&change);
    assert_eq!((level(&b, "CLAY", main), level(&b, "MUG", main)), ((200, 0), (3, 0)));
    assert!(matches!(b.state.finish_card(card, NOW), Err(OrderError::CardWrongStatus { .. })));
    assert_eq!(b.state.check(), vec![]);
}

#[test]
fn a_bundle_order_reserves_its_components_in_one_warehouse() {
    let mut b = Builder::new();
    let (wa, wb) = (b.warehouse("A"), b.warehouse("B"));
    let etsy = b.store("etsy", Channel::Etsy);
    b.item("CUP", ItemKind::Product);
    b.item("SAUCER", ItemKind::Product);
    b.item("SET", ItemKind::Bundle);
    b.components("SET", &[("CUP", 2), ("SAUCER", 1)]);
    b.listing(etsy, "SET");
    b.stock("CUP", wa, 5);
    b.stock("SAUCER", wa, 1);
    b.stock("CUP", wb, 2);
    b.stock("SAUCER", wb, 2);
    let o = place_order(&mut b, etsy, "1", &[("SET", 3)]);
    assert_eq!(line_statuses(&o), ["oversold"]);
    assert_eq!((o.lines[0].units_held, o.lines[0].oversold), (2, 1));
    assert_eq!((level(&b, "CUP", wa), level(&b, "SAUCER", wa)), ((5, 2), (1, 1)));
    assert_eq!((level(&b, "CUP", wb), level(&b, "SAUCER", wb)), ((2, 2), (2, 1)));
}

#[test]
fn the_order_api_refuses_a_draft_item_but_a_channels_order_is_kept() {
    let (mut b, _, etsy) = shop(5, ZeroPolicy::Stop);
    b.edit("MUG", |i| i.status = ItemStatus::Draft);
    let mut new = order(&b, etsy, "1", &[("MUG", 1)]);
    assert_eq!(b.state.take_order(&new, NOW), Err(OrderError::ItemIsDraft { line: 0, sku: "MUG".into() }));
    new.source = OrderSource::Channel;
    assert_eq!(place(&mut b, &new, NOW).status, OrderStatus::Confirmed);
}

#[test]
fn bad_orders_are_refused_and_change_nothing() {
    let (b, _, etsy) = shop(5, ZeroPolicy::Stop);
    let before = b.state.ledger_len();
    let cases: Vec<(NewOrder, &str)> = vec![
        (order(&b, etsy, "1", &[]), "an order needs at least one line"),
        (order(&b, etsy, "1", &[("MUG", 0)]), "line 0: quantity must be between 1 and 1000000, got 0"),
        (order(&b, etsy, "1", &[("MUG", -2)]), "line 0: quantity must be between 1 and 1000000, got -2"),
        (order(&b, etsy, "", &[("MUG", 1)]), "external_id is invalid: external_id must not be empty"),
        (order(&b, StoreId(999), "1", &[("MUG", 1)]), "unknown store 999"),
        (order(&b, etsy, "1", &vec![("MUG", 1); 101]), "an order may have at most 100 lines, got 101"),
    ];
    for (new, message) in cases {
        let err = b.state.take_order(&new, NOW).unwrap_err();
        assert_eq!(err.to_string(), message);
    }
    assert_eq!(b.state.ledger_len(), before);
    assert_eq!(b.state.orders().count(), 0);
}

#[test]
fn a_transition_from_the_wrong_status_is_refused() {
    let (mut b, _, etsy) = shop(5, ZeroPolicy::Stop);
    let o = place_order(&mut b, etsy, "1", &[("MUG", 1)]);
    assert_eq!(
        b.state.accept(o.id, NOW).unwrap_err().to_string(),
        format!("order {} is confirmed; accept needs it to be requested", o.id)
    );
    assert!(matches!(b.state.pay(o.id, NOW), Err(OrderError::WrongStatus { .. })));
    assert!(matches!(b.state.decline(OrderId(999), NOW), Err(OrderError::UnknownOrder { .. })));
}

#[test]
fn adjustments_never_take_on_hand_below_reserved() {
    let (mut b, main, etsy) = shop(5, ZeroPolicy::Stop);
    place_order(&mut b, etsy, "1", &[("MUG", 3)]);
    let mug = b.sku("MUG");
    let adjust = |a| b.state.adjust(mug, main, a, "counted", NOW).map(|_| ());
    assert_eq!(adjust(Adjustment::Delta(-3)), Err(StockError::BelowReserved { on_hand: 2, reserved: 3 }));
    assert_eq!(adjust(Adjustment::Set(-1)), Err(StockError::OutOfRange { on_hand: -1, max: 1_000_000_000_000 }));
    assert_eq!(adjust(Adjustment::Delta(0)), Err(StockError::ZeroDelta));
    assert_eq!(adjust(Adjustment::Set(3)), Ok(()));
    assert!(matches!(
        b.state.adjust(mug, WarehouseId(999), Adjustment::Delta(1), "", NOW),
        Err(StockError::UnknownWarehouse { .. })
    ));
}
