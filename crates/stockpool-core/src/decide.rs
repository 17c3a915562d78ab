//! Every stock and order decision (SPEC section 4), as functions of state, input and `now`.
//!
//! Each public function here checks its input completely first (an error changes
//! nothing), then works on a `Tx`: a scratch overlay of stock plus copies of the orders
//! and cards it touches. It returns the `Change` to persist and apply. Because the whole
//! order is decided on one overlay, two lines or two orders that need the same stock or
//! the same materials can never both get it: the second sees what the first took.
//!
//! Per line, in order: reserve from stock (the rule's warehouses, in the rule's order),
//! then make from capacity (`make_action`), then the zero policy decides the rest:
//! `backordered` (continue, backorder), `requested` (request) or `oversold` (stop).

use crate::bom::{bundle_leaves, bundle_units, capacity, capacity_estimate, is_makeable, try_make, Hold, MakeMode};
use crate::catalog::{ItemKind, ItemStatus, MakeAction, Qty, ZeroPolicy, PAY_WITHIN_SECONDS_DEFAULT};
use crate::ids::{CardId, IdSet, ItemId, OrderId, Timestamp, WarehouseId};
use crate::order::{
    CardFor, CardStatus, Line, LineStatus, NewOrder, Order, OrderError, OrderSource, OrderStatus, Payment,
    ProductionCard,
};
use crate::rules::RuleRef;
use crate::state::{Change, State};
use crate::stock::{Movement, MovementReason, Reference, Scratch};
use serde::{Deserialize, Serialize};

/// What taking in an order did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intake {
    /// A new order, decided.
    Created { order: OrderId, change: Change },
    /// `(store, external_id)` was seen before: nothing changes.
    Duplicate { order: OrderId },
}

/// A stock adjustment: by a delta, or to a counted figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Adjustment {
    Delta(Qty),
    Set(Qty),
}

/// A stock adjustment the core refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    #[error("unknown item {item}")]
    UnknownItem { item: ItemId },
    #[error("unknown warehouse {warehouse}")]
    UnknownWarehouse { warehouse: WarehouseId },
    #[error("{sku} is a bundle: it holds no stock of its own; adjust its components")]
    BundleHoldsNoStock { sku: String },
    #[error("a delta of 0 changes nothing")]
    ZeroDelta,
    #[error("on hand would become {on_hand}; it must stay between 0 and {max}")]
    OutOfRange { on_hand: Qty, max: Qty },
    #[error("on hand would become {on_hand}, below the {reserved} reserved for orders and cards")]
    BelowReserved { on_hand: Qty, reserved: Qty },
    #[error("reason is invalid: {reason}")]
    Reason { reason: String },
}

/// A decision in progress: stock overlay plus the orders and cards it changed.
struct Tx<'a> {
    state: &'a State,
    scratch: Scratch<'a, State>,
    orders: Vec<Order>,
    cards: Vec<ProductionCard>,
    next_card_id: u64,
}

impl<'a> Tx<'a> {
    fn new(state: &'a State) -> Self {
        Tx {
            state,
            scratch: Scratch::new(state),
            orders: Vec::new(),
            cards: Vec::new(),
            next_card_id: state.next_card_id,
        }
    }

    fn order(&self, id: OrderId) -> Option<Order> {
        self.orders.iter().find(|o| o.id == id).or_else(|| self.state.orders.get(&id).map(Box::as_ref)).cloned()
    }

    fn put_order(&mut self, order: Order) {
        match self.orders.iter_mut().find(|o| o.id == order.id) {
            Some(slot) => *slot = order,
            None => self.orders.push(order),
        }
    }

    fn card(&self, id: CardId) -> Option<ProductionCard> {
        self.cards.iter().find(|c| c.id == id).or_else(|| self.state.cards.get(&id)).cloned()
    }

    fn put_card(&mut self, card: ProductionCard) {
        match self.cards.iter_mut().find(|c| c.id == card.id) {
            Some(slot) => *slot = card,
            None => self.cards.push(card),
        }
    }

    fn record(
        &mut self,
        item: ItemId,
        warehouse: WarehouseId,
        on_hand_delta: Qty,
        reserved_delta: Qty,
        reason: MovementReason,
        reference: Reference,
    ) {
        self.scratch.record(Movement { item, warehouse, on_hand_delta, reserved_delta, reason, reference });
    }

    fn finish(self) -> Change {
        Change { movements: self.scratch.into_movements(), orders: self.orders, cards: self.cards }
    }

    /// Takes up to `need` units for a line: stock first, then capacity. Returns what it
    /// could not take.
    fn allocate(&mut self, order: OrderId, index: u32, line: &mut Line, mut need: Qty, now: Timestamp) -> Qty {
        let Some(item) = line.item.and_then(|i| self.state.item(i)) else { return need };
        let reference = Reference::OrderLine { order, line: index };
        let warehouses = line.warehouses.clone();
        // Stock, in the rule's warehouse order.
        for &w in &warehouses {
            if need == 0 {
                break;
            }
            if item.kind == ItemKind::Bundle {
                let k = need.min(bundle_units(self.state, &self.scratch, item.id, w));
                if k > 0 {
                    for (c, q) in bundle_leaves(self.state, item.id) {
                        self.record(c, w, 0, k * q, MovementReason::Reserve, reference.clone());
                        add_hold(&mut line.holds, c, w, k * q);
                    }
                    line.units_held += k;
                    need -= k;
                }
            } else {
                let k = need.min(self.scratch.available(item.id, w).max(0));
                if k > 0 {
                    self.record(item.id, w, 0, k, MovementReason::Reserve, reference.clone());
                    add_hold(&mut line.holds, item.id, w, k);
                    line.units_held += k;
                    need -= k;
                }
            }
        }
        // Capacity, in the same order.
        if need > 0 && is_makeable(self.state, item.id) {
            for &w in &warehouses {
                if need == 0 {
                    break;
                }
                // The independent estimate is exact unless a material feeds two branches;
                // try it first and fall back to the exact capacity only when it fails.
                let mut k = need.min(capacity_estimate(self.state, &self.scratch, item.id, w));
                if k == 0 {
                    continue;
                }
                match item.make_action {
                    MakeAction::Deduct => {
                        let mark = self.scratch.mark();
                        if !try_make(
                            self.state,
                            &mut self.scratch,
                            item.id,
                            w,
                            k,
                            MakeMode::Deduct,
                            &reference,
                            &mut Vec::new(),
                        ) {
                            self.scratch.rollback(mark);
                            k = need.min(capacity(self.state, &mut self.scratch, item.id, w));
                            if k == 0
                                || !try_make(
                                    self.state,
                                    &mut self.scratch,
                                    item.id,
                                    w,
                                    k,
                                    MakeMode::Deduct,
                                    &reference,
                                    &mut Vec::new(),
                                )
                            {
                                self.scratch.rollback(mark);
                                continue;
                            }
                        }
                        self.record(item.id, w, k, 0, MovementReason::MakeProduce, reference.clone());
                        self.record(item.id, w, 0, k, MovementReason::Reserve, reference.clone());
                        add_hold(&mut line.holds, item.id, w, k);
                        line.units_held += k;
                        line.units_made += k;
                    }
                    MakeAction::ProductionCard => {
                        let id = CardId(self.next_card_id);
                        let card_ref = Reference::Card { card: id };
                        let mark = self.scratch.mark();
                        let mut holds = Vec::new();
                        if !try_make(
                            self.state,
                            &mut self.scratch,
                            item.id,
                            w,
                            k,
                            MakeMode::Hold,
                            &card_ref,
                            &mut holds,
                        ) {
                            self.scratch.rollback(mark);
                            holds.clear();
                            k = need.min(capacity(self.state, &mut self.scratch, item.id, w));
                            if k == 0
                                || !try_make(
                                    self.state,
                                    &mut self.scratch,
                                    item.id,
                                    w,
                                    k,
                                    MakeMode::Hold,
                                    &card_ref,
                                    &mut holds,
                                )
                            {
                                self.scratch.rollback(mark);
                                continue;
                            }
                        }
                        self.next_card_id += 1;
                        self.put_card(ProductionCard {
                            id,
                            item: item.id,
                            warehouse: w,
                            quantity: k,
                            status: CardStatus::Pending,
                            holds,
                            for_line: Some(CardFor { order, line: index }),
                            created_at: now,
                        });
                        line.cards.push(id);
                        line.units_in_cards += k;
                    }
                }
                need -= k;
            }
        }
        need
    }

    /// Gives back everything an order holds: its reservations and its open cards.
    fn release_all(&mut self, order: &mut Order) {
        for (i, line) in order.lines.iter_mut().enumerate() {
            let reference = Reference::OrderLine { order: order.id, line: i as u32 };
            for h in std::mem::take(&mut line.holds) {
                self.record(h.item, h.warehouse, 0, -h.quantity, MovementReason::Release, reference.clone());
            }
            for id in std::mem::take(&mut line.cards) {
                if let Some(mut card) = self.card(id) {
                    if card.status.is_open() {
                        self.release_card(&mut card);
                        self.put_card(card);
                    }
                }
            }
            line.units_held = 0;
            line.units_made = 0;
            line.units_in_cards = 0;
            line.backordered = 0;
            line.requested = 0;
            line.oversold = 0;
            if line.item.is_some() {
                line.status = LineStatus::Cancelled;
            }
        }
        order.accept_by = None;
        order.pay_by = None;
    }

    fn release_card(&mut self, card: &mut ProductionCard) {
        let reference = Reference::Card { card: card.id };
        for h in std::mem::take(&mut card.holds) {
            self.record(h.item, h.warehouse, 0, -h.quantity, MovementReason::CardRelease, reference.clone());
        }
        card.status = CardStatus::Cancelled;
    }

    /// Incoming or released stock fills backorders first, oldest order first.
    fn fill_backorders(&mut self, touched: &[ItemId], now: Timestamp) {
        if self.state.backorders.is_empty() || touched.is_empty() {
            return;
        }
        let affected: IdSet<ItemId> = self.state.dependents(touched);
        let queue: Vec<(OrderId, u32)> = self.state.backorders.iter().copied().collect();
        for (order_id, index) in queue {
            let Some(mut order) = self.order(order_id) else { continue };
            if !order.status.is_open() {
                continue;
            }
            let Some(line) = order.lines.get(index as usize) else { continue };
            if line.backordered == 0 || !line.item.is_some_and(|i| affected.contains(&i)) {
                continue;
            }
            let mut line = line.clone();
            let need = line.backordered;
            let rest = self.allocate(order_id, index, &mut line, need, now);
            if rest == need {
                continue;
            }
            line.backordered = rest;
            line.status = line.derived_status();
            order.lines[index as usize] = line;
            if order.status != OrderStatus::AwaitingPayment {
                order.status = order.derived_status();
            }
            self.put_order(order);
        }
    }
}

fn add_hold(holds: &mut Vec<Hold>, item: ItemId, warehouse: WarehouseId, quantity: Qty) {
    match holds.iter_mut().find(|h| h.item == item && h.warehouse == warehouse) {
        Some(h) => h.quantity += quantity,
        None => holds.push(Hold { item, warehouse, quantity }),
    }
}

fn released_items(change: &Change) -> Vec<ItemId> {
    let mut seen = IdSet::default();
    change
        .movements
        .iter()
        .filter(|m| m.on_hand_delta - m.reserved_delta > 0 || m.reserved_delta < 0)
        .filter(|m| seen.insert(m.item))
        .map(|m| m.item)
        .collect()
}

impl State {
    /// Takes in an order and decides it whole (SPEC section 4). The same
    /// `(store, external_id)` a second time changes nothing.
    pub fn take_order(&self, new: &NewOrder, now: Timestamp) -> Result<Intake, OrderError> {
        let limits = self.limits();
        if self.store(new.store).is_none() {
            return Err(OrderError::UnknownStore { store: new.store });
        }
        crate::catalog::check_code("external_id", &new.external_id, limits)
            .map_err(|e| OrderError::Field { field: "external_id", reason: e.to_string() })?;
        if let Some(existing) = self.order_by_external_id(new.store, &new.external_id) {
            return Ok(Intake::Duplicate { order: existing.id });
        }
        if new.lines.is_empty() {
            return Err(OrderError::NoLines);
        }
        if new.lines.len() > limits.lines_per_order_max {
            return Err(OrderError::TooManyLines { got: new.lines.len(), max: limits.lines_per_order_max });
        }
        let pay_within_seconds = new.pay_within_seconds.unwrap_or(PAY_WITHIN_SECONDS_DEFAULT);
        if !(1..=limits.deadline_seconds_max).contains(&pay_within_seconds) {
            return Err(OrderError::Field {
                field: "pay_within_seconds",
                reason: format!("must be between 1 and {}, got {pay_within_seconds}", limits.deadline_seconds_max),
            });
        }
        for (i, l) in new.lines.iter().enumerate() {
            if l.quantity < 1 || l.quantity > limits.quantity_max {
                return Err(OrderError::QuantityOutOfRange { line: i, got: l.quantity, max: limits.quantity_max });
            }
            crate::catalog::check_code("store_sku", &l.store_sku, limits)
                .map_err(|e| OrderError::Field { field: "store_sku", reason: format!("line {i}: {e}") })?;
            if let Some(id) = l.listing {
                let listing = self.listing(id).ok_or(OrderError::UnknownListing { line: i, listing: id })?;
                if listing.store != new.store {
                    return Err(OrderError::ListingOfAnotherStore { line: i, listing: id });
                }
                let item = self.item(listing.item).ok_or(OrderError::UnknownItem { item: listing.item })?;
                if new.source == OrderSource::Api && item.status == ItemStatus::Draft {
                    return Err(OrderError::ItemIsDraft { line: i, sku: item.sku.clone() });
                }
            }
        }

        let id = OrderId(self.next_order_id);
        let mut tx = Tx::new(self);
        let mut order = Order {
            id,
            store: new.store,
            external_id: new.external_id.clone(),
            status: OrderStatus::Confirmed,
            lines: Vec::with_capacity(new.lines.len()),
            payment: new.payment,
            pay_within_seconds,
            created_at: now,
            accept_by: None,
            pay_by: None,
        };
        let mut accept_within: Option<i64> = None;
        for (i, nl) in new.lines.iter().enumerate() {
            let item = nl.listing.and_then(|l| self.listing(l)).and_then(|l| self.item(l.item));
            let rule = item.and_then(|it| self.rule_for(new.store, it.id));
            let mut line = Line {
                store_sku: nl.store_sku.clone(),
                listing: nl.listing,
                item: item.map(|i| i.id),
                quantity: nl.quantity,
                status: LineStatus::Unmapped,
                rule: rule.map(|r| RuleRef { id: r.id, version: r.version }),
                warehouses: rule.map(|r| r.warehouses.clone()).unwrap_or_else(|| self.warehouse_ids()),
                holds: Vec::new(),
                units_held: 0,
                units_made: 0,
                cards: Vec::new(),
                units_in_cards: 0,
                backordered: 0,
                requested: 0,
                oversold: 0,
            };
            if let Some(item) = item {
                let rest = tx.allocate(id, i as u32, &mut line, nl.quantity, now);
                match item.zero_policy {
                    ZeroPolicy::Stop => line.oversold = rest,
                    ZeroPolicy::Continue | ZeroPolicy::Backorder => line.backordered = rest,
                    ZeroPolicy::Request => line.requested = rest,
                }
                if line.requested > 0 {
                    let s = item.accept_within_seconds;
                    accept_within = Some(accept_within.map_or(s, |a: i64| a.min(s)));
                }
            }
            line.status = line.derived_status();
            order.lines.push(line);
        }
        order.status = order.derived_status();
        if let Some(s) = accept_within {
            order.accept_by = Some(now.plus_seconds(s));
        }
        tx.put_order(order);
        Ok(Intake::Created { order: id, change: tx.finish() })
    }

    fn open_order(
        &self,
        id: OrderId,
        action: &'static str,
        needs: &'static str,
        ok: &[OrderStatus],
    ) -> Result<Order, OrderError> {
        let order = self.order(id).ok_or(OrderError::UnknownOrder { order: id })?;
        if !ok.contains(&order.status) {
            return Err(OrderError::WrongStatus { order: id, status: order.status.as_str(), action, needs });
        }
        Ok(order.clone())
    }

    /// The seller accepts an order request: requested units are taken from stock or
    /// capacity if they are there now, else backordered. The order becomes `confirmed`,
    /// or `awaiting_payment` when it pays after acceptance.
    pub fn accept(&self, id: OrderId, now: Timestamp) -> Result<Change, OrderError> {
        let mut order = self.open_order(id, "accept", "requested", &[OrderStatus::Requested])?;
        let mut tx = Tx::new(self);
        for i in 0..order.lines.len() {
            let mut line = order.lines[i].clone();
            if line.requested > 0 {
                let need = std::mem::take(&mut line.requested);
                line.backordered += tx.allocate(id, i as u32, &mut line, need, now);
                line.status = line.derived_status();
                order.lines[i] = line;
            }
        }
        order.accept_by = None;
        if order.payment == Payment::AfterAcceptance {
            order.status = OrderStatus::AwaitingPayment;
            order.pay_by = Some(now.plus_seconds(order.pay_within_seconds));
        } else {
            order.status = order.derived_status();
        }
        tx.put_order(order);
        Ok(tx.finish())
    }

    /// The seller declines an order request: everything it holds is released.
    pub fn decline(&self, id: OrderId, now: Timestamp) -> Result<Change, OrderError> {
        let order = self.open_order(id, "decline", "requested", &[OrderStatus::Requested])?;
        Ok(self.close(order, OrderStatus::Declined, now))
    }

    /// The shopper paid an accepted order request.
    pub fn pay(&self, id: OrderId, _now: Timestamp) -> Result<Change, OrderError> {
        let mut order = self.open_order(id, "pay", "awaiting_payment", &[OrderStatus::AwaitingPayment])?;
        order.pay_by = None;
        order.status = order.derived_status();
        let mut tx = Tx::new(self);
        tx.put_order(order);
        Ok(tx.finish())
    }

    /// Cancels an open order: everything it holds is released, its cards cancelled.
    pub fn cancel(&self, id: OrderId, now: Timestamp) -> Result<Change, OrderError> {
        let order = self.open_order(
            id,
            "cancel",
            "open (confirmed, requested, awaiting_payment or needs_attention)",
            &[
                OrderStatus::Confirmed,
                OrderStatus::Requested,
                OrderStatus::AwaitingPayment,
                OrderStatus::NeedsAttention,
            ],
        )?;
        Ok(self.close(order, OrderStatus::Cancelled, now))
    }

    fn close(&self, mut order: Order, status: OrderStatus, now: Timestamp) -> Change {
        let mut tx = Tx::new(self);
        tx.release_all(&mut order);
        order.status = status;
        tx.put_order(order);
        let released = released_items(&Change { movements: tx.scratch.movements().to_vec(), ..Change::default() });
        tx.fill_backorders(&released, now);
        tx.finish()
    }

    /// Ships an order: what each line holds leaves on hand and reserved together. Refused
    /// while a line still waits for backordered units or a production card.
    pub fn fulfill(&self, id: OrderId, _now: Timestamp) -> Result<Change, OrderError> {
        let mut order = self.open_order(
            id,
            "fulfill",
            "confirmed or needs_attention",
            &[OrderStatus::Confirmed, OrderStatus::NeedsAttention],
        )?;
        for (i, l) in order.lines.iter().enumerate() {
            let waiting = l.backordered + l.units_in_cards;
            if waiting > 0 {
                return Err(OrderError::NotReadyToFulfill { order: id, line: i, waiting });
            }
        }
        let mut tx = Tx::new(self);
        for (i, line) in order.lines.iter_mut().enumerate() {
            let reference = Reference::OrderLine { order: id, line: i as u32 };
            for h in std::mem::take(&mut line.holds) {
                tx.record(h.item, h.warehouse, -h.quantity, -h.quantity, MovementReason::Fulfill, reference.clone());
            }
            if line.units_held > 0 {
                line.status = LineStatus::Fulfilled;
            }
        }
        order.status = OrderStatus::Fulfilled;
        tx.put_order(order);
        Ok(tx.finish())
    }

    /// Expires every order whose deadline (accept or pay) is at or before `now`, releasing
    /// what they hold. An empty change when nothing is due.
    pub fn sweep(&self, now: Timestamp) -> Change {
        let due = self.due_orders(now);
        if due.is_empty() {
            return Change::default();
        }
        let mut tx = Tx::new(self);
        for id in due {
            if let Some(mut order) = tx.order(id) {
                tx.release_all(&mut order);
                order.status = OrderStatus::Expired;
                tx.put_order(order);
            }
        }
        let released = released_items(&Change { movements: tx.scratch.movements().to_vec(), ..Change::default() });
        tx.fill_backorders(&released, now);
        tx.finish()
    }

    /// Changes on hand by a delta or to a counted figure. Never below what is reserved.
    /// Incoming stock fills backorders first, oldest first.
    pub fn adjust(
        &self,
        item: ItemId,
        warehouse: WarehouseId,
        adjustment: Adjustment,
        note: &str,
        now: Timestamp,
    ) -> Result<Change, StockError> {
        let it = self.item(item).ok_or(StockError::UnknownItem { item })?;
        if self.warehouse(warehouse).is_none() {
            return Err(StockError::UnknownWarehouse { warehouse });
        }
        if it.kind == ItemKind::Bundle {
            return Err(StockError::BundleHoldsNoStock { sku: it.sku.clone() });
        }
        crate::catalog::check_text("reason", note, self.limits())
            .map_err(|e| StockError::Reason { reason: e.to_string() })?;
        let level = self.level(item, warehouse);
        let max = self.limits().on_hand_max;
        let on_hand = match adjustment {
            Adjustment::Delta(0) => return Err(StockError::ZeroDelta),
            Adjustment::Delta(d) => {
                level.on_hand.checked_add(d).ok_or(StockError::OutOfRange { on_hand: i64::MAX, max })?
            }
            Adjustment::Set(v) => v,
        };
        if !(0..=max).contains(&on_hand) {
            return Err(StockError::OutOfRange { on_hand, max });
        }
        if on_hand < level.reserved {
            return Err(StockError::BelowReserved { on_hand, reserved: level.reserved });
        }
        let mut tx = Tx::new(self);
        let delta = on_hand - level.on_hand;
        if delta != 0 {
            tx.record(
                item,
                warehouse,
                delta,
                0,
                MovementReason::Adjustment,
                Reference::Adjustment { note: note.to_string() },
            );
        }
        if delta > 0 {
            tx.fill_backorders(&[item], now);
        }
        Ok(tx.finish())
    }

    /// A production card to make `quantity` of `item` to stock; it reserves the components now.
    pub fn create_card(
        &self,
        item: ItemId,
        warehouse: WarehouseId,
        quantity: Qty,
        now: Timestamp,
    ) -> Result<(CardId, Change), OrderError> {
        let it = self.item(item).ok_or(OrderError::UnknownItem { item })?;
        if self.warehouse(warehouse).is_none() {
            return Err(OrderError::UnknownWarehouse { warehouse });
        }
        if !is_makeable(self, item) {
            return Err(OrderError::NotMakeable { sku: it.sku.clone() });
        }
        let max = self.limits().quantity_max;
        if quantity < 1 || quantity > max {
            return Err(OrderError::QuantityOutOfRange { line: 0, got: quantity, max });
        }
        let mut tx = Tx::new(self);
        let cap = capacity(self, &mut tx.scratch, item, warehouse);
        let id = CardId(tx.next_card_id);
        let mut holds = Vec::new();
        if cap < quantity
            || !try_make(
                self,
                &mut tx.scratch,
                item,
                warehouse,
                quantity,
                MakeMode::Hold,
                &Reference::Card { card: id },
                &mut holds,
            )
        {
            return Err(OrderError::NotEnoughComponents { sku: it.sku.clone(), quantity, capacity: cap });
        }
        tx.put_card(ProductionCard {
            id,
            item,
            warehouse,
            quantity,
            status: CardStatus::Pending,
            holds,
            for_line: None,
            created_at: now,
        });
        Ok((id, tx.finish()))
    }

    /// `pending` -> `in_progress`.
    pub fn start_card(&self, id: CardId, _now: Timestamp) -> Result<Change, OrderError> {
        let mut card = self.card(id).cloned().ok_or(OrderError::UnknownCard { card: id })?;
        if card.status != CardStatus::Pending {
            return Err(OrderError::CardWrongStatus {
                card: id,
                status: card.status,
                action: "start",
                needs: "pending",
            });
        }
        card.status = CardStatus::InProgress;
        let mut tx = Tx::new(self);
        tx.put_card(card);
        Ok(tx.finish())
    }

    /// A card is done: its components are consumed and the product added to stock; a
    /// card made for an order line reserves the product for that line at once.
    pub fn finish_card(&self, id: CardId, now: Timestamp) -> Result<Change, OrderError> {
        let mut card = self.card(id).cloned().ok_or(OrderError::UnknownCard { card: id })?;
        if !card.status.is_open() {
            return Err(OrderError::CardWrongStatus {
                card: id,
                status: card.status,
                action: "finish",
                needs: "pending or in_progress",
            });
        }
        let mut tx = Tx::new(self);
        let reference = Reference::Card { card: id };
        for h in std::mem::take(&mut card.holds) {
            tx.record(h.item, h.warehouse, -h.quantity, -h.quantity, MovementReason::CardConsume, reference.clone());
        }
        tx.record(card.item, card.warehouse, card.quantity, 0, MovementReason::MakeProduce, reference);
        card.status = CardStatus::Done;
        match card.for_line {
            Some(CardFor { order, line }) => {
                let mut o = tx.order(order).ok_or(OrderError::UnknownOrder { order })?;
                let l = &mut o.lines[line as usize];
                tx.scratch.record(Movement {
                    item: card.item,
                    warehouse: card.warehouse,
                    on_hand_delta: 0,
                    reserved_delta: card.quantity,
                    reason: MovementReason::Reserve,
                    reference: Reference::OrderLine { order, line },
                });
                add_hold(&mut l.holds, card.item, card.warehouse, card.quantity);
                l.units_held += card.quantity;
                l.units_made += card.quantity;
                l.units_in_cards -= card.quantity;
                l.cards.retain(|c| *c != id);
                l.status = l.derived_status();
                if o.status != OrderStatus::AwaitingPayment {
                    o.status = o.derived_status();
                }
                tx.put_order(o);
            }
            None => tx.fill_backorders(&[card.item], now),
        }
        tx.put_card(card);
        Ok(tx.finish())
    }

    /// Cancels a card made to stock, releasing its components. A card making units for an
    /// order is cancelled with its order.
    pub fn cancel_card(&self, id: CardId, now: Timestamp) -> Result<Change, OrderError> {
        let mut card = self.card(id).cloned().ok_or(OrderError::UnknownCard { card: id })?;
        if !card.status.is_open() {
            return Err(OrderError::CardWrongStatus {
                card: id,
                status: card.status,
                action: "cancel",
                needs: "pending or in_progress",
            });
        }
        if let Some(f) = card.for_line {
            return Err(OrderError::CardBelongsToOrder { card: id, order: f.order });
        }
        let mut tx = Tx::new(self);
        let items: Vec<ItemId> = card.holds.iter().map(|h| h.item).collect();
        tx.release_card(&mut card);
        tx.put_card(card);
        tx.fill_backorders(&items, now);
        Ok(tx.finish())
    }
}
