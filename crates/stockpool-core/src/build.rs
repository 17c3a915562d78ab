//! A terse way to build a workspace by name, for tests, benchmarks and the simulator.
//!
//! `Builder` assigns ids in creation order and addresses everything by SKU or code, the
//! way the spec's worked examples do. It goes through the same validated `State` methods
//! as the shell; an invalid build is a bug in the caller, so it panics with the error.

use crate::buffer::Buffer;
use crate::catalog::{Channel, Component, Item, ItemKind, Listing, ListingStatus, Qty, Schedule, Store, Warehouse};
use crate::decide::Adjustment;
use crate::ids::{ItemId, ListingId, RuleId, StoreId, Timestamp, WarehouseId};
use crate::rules::{ItemsSelector, SyncRule, SYNC_RATE_PERCENT_DEFAULT};
use crate::state::State;

/// Builds a `State` by name.
#[derive(Default)]
pub struct Builder {
    pub state: State,
    next: u64,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub fn warehouse(&mut self, code: &str) -> WarehouseId {
        let id = WarehouseId(self.id());
        self.state.add_warehouse(Warehouse { id, code: code.into(), name: code.into() }).expect("valid warehouse");
        id
    }

    pub fn store(&mut self, code: &str, channel: Channel) -> StoreId {
        let id = StoreId(self.id());
        let store =
            Store { id, code: code.into(), name: code.into(), channel, schedule: Schedule::Realtime, enabled: true };
        self.state.upsert_store(store).expect("valid store");
        id
    }

    /// An item with default settings; change them with `edit`.
    pub fn item(&mut self, sku: &str, kind: ItemKind) -> ItemId {
        let id = ItemId(self.id());
        self.state.upsert_item(Item::new(id, sku, kind)).expect("valid item");
        id
    }

    pub fn edit(&mut self, sku: &str, f: impl FnOnce(&mut Item)) {
        let mut item = self.state.item_by_sku(sku).expect("known sku").clone();
        f(&mut item);
        self.state.upsert_item(item).expect("valid item");
    }

    pub fn sku(&self, sku: &str) -> ItemId {
        self.state.item_by_sku(sku).unwrap_or_else(|| panic!("unknown sku {sku}")).id
    }

    pub fn components(&mut self, sku: &str, components: &[(&str, Qty)]) {
        let comps = components.iter().map(|(s, q)| Component { item: self.sku(s), quantity: *q }).collect();
        let id = self.sku(sku);
        self.state.set_components(id, comps).expect("valid components");
    }

    pub fn listing(&mut self, store: StoreId, sku: &str) -> ListingId {
        let id = ListingId(self.id());
        let listing = Listing {
            id,
            store,
            external_id: format!("L{}", id.0),
            store_sku: sku.into(),
            item: self.sku(sku),
            status: ListingStatus::Active,
        };
        self.state.upsert_listing(listing).expect("valid listing");
        id
    }

    /// Receives `quantity` (positive) of `sku` into warehouse `w`.
    pub fn stock(&mut self, sku: &str, w: WarehouseId, quantity: Qty) {
        let item = self.sku(sku);
        let change = self
            .state
            .adjust(item, w, Adjustment::Delta(quantity), "received", Timestamp(0))
            .expect("valid adjustment");
        self.state.apply(&change);
    }

    /// A rule over `warehouses` and `stores` with defaults; adjust it in `f`.
    pub fn rule(
        &mut self,
        name: &str,
        warehouses: &[WarehouseId],
        stores: &[StoreId],
        f: impl FnOnce(&mut SyncRule),
    ) -> RuleId {
        let id = RuleId(self.id());
        let mut rule = SyncRule {
            id,
            version: 0,
            name: name.into(),
            priority: 100,
            enabled: true,
            items: ItemsSelector::All,
            warehouses: warehouses.to_vec(),
            stores: stores.to_vec(),
            sync_rate_percent: SYNC_RATE_PERCENT_DEFAULT,
            stock_threshold: 0,
            priority_store: None,
            safety_stock: None,
            buffer: Buffer::None,
            created_seq: 0,
        };
        f(&mut rule);
        self.state.save_rule(rule).expect("valid rule");
        id
    }
}
