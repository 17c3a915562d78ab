//! Stock levels, the movement ledger, and the scratch overlay decisions are made on.
//!
//! Every change of `on_hand` or `reserved` is one `Movement`; a stock level is the sum of
//! its movements. Decisions never write to the state directly: they run on a `Scratch`,
//! an overlay of deltas over a read-only `StockView`, which records each movement and can
//! roll back to a mark. The finished movement list is what the shell persists and what
//! `State::apply` replays.

use crate::catalog::Qty;
use crate::ids::{CardId, IdMap, ItemId, OrderId, WarehouseId};
use serde::{Deserialize, Serialize};

/// Stock of one item in one warehouse. Invariant: `0 <= reserved <= on_hand`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// Physically there.
    pub on_hand: Qty,
    /// Held for confirmed orders not yet shipped and for production cards.
    pub reserved: Qty,
}

impl StockLevel {
    /// `on_hand - reserved`.
    pub fn available(&self) -> Qty {
        self.on_hand - self.reserved
    }

    /// The invariant every committed stock level keeps.
    pub fn is_valid(&self) -> bool {
        0 <= self.reserved && self.reserved <= self.on_hand
    }
}

/// Why a movement happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementReason {
    /// A stock adjustment (received, counted, damaged, ...).
    Adjustment,
    /// Stock held for an order line.
    Reserve,
    /// A hold given back (cancel, decline, expiry).
    Release,
    /// Shipped: on hand and reserved go down together.
    Fulfill,
    /// Components consumed to make a product now (`make_action: deduct`).
    MakeConsume,
    /// A product made now (`make_action: deduct`) or by a finished card.
    MakeProduce,
    /// Components held by a production card.
    CardReserve,
    /// Components a cancelled card gives back.
    CardRelease,
    /// Components a finished card consumes.
    CardConsume,
}

/// What a movement belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Reference {
    /// A stock adjustment, with the seller's reason.
    Adjustment { note: String },
    /// One line of one order.
    OrderLine { order: OrderId, line: u32 },
    /// A production card.
    Card { card: CardId },
}

/// One append-only ledger row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    pub item: ItemId,
    pub warehouse: WarehouseId,
    pub on_hand_delta: Qty,
    pub reserved_delta: Qty,
    pub reason: MovementReason,
    pub reference: Reference,
}

/// Read access to stock levels. A missing level is zero.
pub trait StockView {
    fn level(&self, item: ItemId, warehouse: WarehouseId) -> StockLevel;
}

/// An overlay of movements over a `StockView`.
pub struct Scratch<'a, V: StockView + ?Sized> {
    base: &'a V,
    deltas: IdMap<(ItemId, WarehouseId), (Qty, Qty)>,
    log: Vec<Movement>,
}

impl<'a, V: StockView + ?Sized> Scratch<'a, V> {
    pub fn new(base: &'a V) -> Self {
        Scratch { base, deltas: IdMap::default(), log: Vec::new() }
    }

    /// The level as the base has it plus every movement recorded here.
    pub fn level(&self, item: ItemId, warehouse: WarehouseId) -> StockLevel {
        let mut level = self.base.level(item, warehouse);
        if let Some((on_hand, reserved)) = self.deltas.get(&(item, warehouse)) {
            level.on_hand += on_hand;
            level.reserved += reserved;
        }
        level
    }

    pub fn available(&self, item: ItemId, warehouse: WarehouseId) -> Qty {
        self.level(item, warehouse).available()
    }

    /// Records a movement. Panics if it would break `0 <= reserved <= on_hand`: every
    /// caller checks availability first, so a break here is a bug in the core, never input.
    pub fn record(&mut self, movement: Movement) {
        let key = (movement.item, movement.warehouse);
        let entry = self.deltas.entry(key).or_insert((0, 0));
        entry.0 += movement.on_hand_delta;
        entry.1 += movement.reserved_delta;
        let after = self.level(key.0, key.1);
        assert!(
            after.is_valid(),
            "core bug: movement {movement:?} leaves {after:?} for item {} in warehouse {}",
            key.0,
            key.1
        );
        self.log.push(movement);
    }

    /// A point to roll back to.
    pub fn mark(&self) -> usize {
        self.log.len()
    }

    /// Undoes every movement recorded after `mark`.
    pub fn rollback(&mut self, mark: usize) {
        while self.log.len() > mark {
            let m = self.log.pop().expect("log is longer than mark");
            let entry = self.deltas.get_mut(&(m.item, m.warehouse)).expect("delta of a logged movement");
            entry.0 -= m.on_hand_delta;
            entry.1 -= m.reserved_delta;
        }
    }

    /// The movements recorded, in order.
    pub fn into_movements(self) -> Vec<Movement> {
        self.log
    }

    pub fn movements(&self) -> &[Movement] {
        &self.log
    }
}

impl<V: StockView + ?Sized> StockView for Scratch<'_, V> {
    fn level(&self, item: ItemId, warehouse: WarehouseId) -> StockLevel {
        Scratch::level(self, item, warehouse)
    }
}
