//! The in-memory state of one workspace, and the only place decisions are applied.
//!
//! `State` holds the catalog (items, components, warehouses, stores, listings, rules), the
//! stock levels with their movement ledger, orders and production cards. Catalog edits are
//! validated here and applied at once. Stock and order decisions (in `decide.rs`) never
//! mutate it: they return a `Change`, which the shell persists and then hands to
//! `State::apply`. The tests and the simulator drive exactly this path.
//!
//! It also keeps the reverse dependency index: from an item to the items that use it
//! (bundles that contain it, products made from it, through every level) and to their
//! listings, so that a change marks exactly the listings whose quantity may move.

use crate::bom::{validate_components, Bom, BomError};
use crate::buffer::{Buffer, Latency, Velocity};
use crate::catalog::{CatalogError, Component, Item, ItemKind, Listing, Store, Warehouse};
use crate::ids::{CardId, IdMap, IdSet, ItemId, ListingId, OrderId, RuleId, StoreId, Timestamp, WarehouseId};
use crate::limits::Limits;
use crate::order::{Order, ProductionCard};
use crate::publish::{compute, Explain, Published};
use crate::rules::{validate_rule, RuleError, RuleRef, SyncRule};
use crate::stock::{Movement, Scratch, StockLevel, StockView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// Everything one decision changes: ledger rows to append, orders and cards to upsert.
/// The shell writes it in one transaction; `State::apply` replays it in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub movements: Vec<Movement>,
    /// New or changed orders, whole.
    pub orders: Vec<Order>,
    /// New or changed production cards, whole.
    pub cards: Vec<ProductionCard>,
}

impl Change {
    /// Items whose stock this change moves, each once.
    pub fn touched_items(&self) -> Vec<ItemId> {
        let mut seen = IdSet::default();
        self.movements.iter().filter(|m| seen.insert(m.item)).map(|m| m.item).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.movements.is_empty() && self.orders.is_empty() && self.cards.is_empty()
    }
}

/// A broken promise found by `State::check`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finding {
    /// `0 <= reserved <= on_hand` does not hold.
    InvalidLevel { item: ItemId, warehouse: WarehouseId, level: StockLevel },
    /// The stock level is not the sum of its movements.
    LedgerMismatch { item: ItemId, warehouse: WarehouseId, level: StockLevel, ledger: StockLevel },
    /// `reserved` is not what open orders and cards hold.
    HoldsMismatch { item: ItemId, warehouse: WarehouseId, reserved: i64, held: i64 },
    /// A mapped line of an open order does not account for its quantity.
    LineUnaccounted { order: OrderId, line: usize },
}

/// One workspace, in memory.
#[derive(Clone, Debug)]
pub struct State {
    limits: Limits,
    sync_enabled: bool,
    items: IdMap<ItemId, Item>,
    sku_index: HashMap<String, ItemId>,
    components: IdMap<ItemId, Vec<Component>>,
    parents: IdMap<ItemId, Vec<ItemId>>,
    warehouses: Vec<Warehouse>,
    stores: IdMap<StoreId, Store>,
    listings: IdMap<ListingId, Listing>,
    listings_by_item: IdMap<ItemId, Vec<ListingId>>,
    listing_by_store_sku: HashMap<(StoreId, String), ListingId>,
    listing_by_external_id: HashMap<(StoreId, String), ListingId>,
    rules: IdMap<RuleId, SyncRule>,
    /// Enabled rules per store, in precedence order.
    rules_by_store: IdMap<StoreId, Vec<RuleId>>,
    rule_seq: u64,
    stock: IdMap<ItemId, Vec<(WarehouseId, StockLevel)>>,
    keep_ledger: bool,
    ledger: Vec<Movement>,
    ledger_len: u64,
    /// Boxed, so growing the map moves pointers, not orders: at 57,000 orders a resize
    /// that moved the orders themselves held one decision for 20-30 ms.
    pub(crate) orders: IdMap<OrderId, Box<Order>>,
    order_index: HashMap<(StoreId, String), OrderId>,
    pub(crate) cards: IdMap<CardId, ProductionCard>,
    /// Open orders with a deadline, soonest first.
    deadlines: BTreeSet<(Timestamp, OrderId)>,
    /// Backordered lines of open orders, oldest order first.
    pub(crate) backorders: BTreeSet<(OrderId, u32)>,
    pub(crate) next_order_id: u64,
    pub(crate) next_card_id: u64,
    /// Inputs of `buffer: auto`, kept current by the shell: each store's latency.
    latencies: IdMap<StoreId, Latency>,
    /// Inputs of `buffer: auto`: recent sales per (store, item); absent means none.
    velocities: IdMap<(StoreId, ItemId), Velocity>,
}

const NO_COMPONENTS: &[Component] = &[];
const NO_IDS: &[ItemId] = &[];

impl Default for State {
    fn default() -> Self {
        State::new(Limits::DEFAULT)
    }
}

impl State {
    pub fn new(limits: Limits) -> State {
        State {
            limits,
            sync_enabled: true,
            items: IdMap::default(),
            sku_index: HashMap::new(),
            components: IdMap::default(),
            parents: IdMap::default(),
            warehouses: Vec::new(),
            stores: IdMap::default(),
            listings: IdMap::default(),
            listings_by_item: IdMap::default(),
            listing_by_store_sku: HashMap::new(),
            listing_by_external_id: HashMap::new(),
            rules: IdMap::default(),
            rules_by_store: IdMap::default(),
            rule_seq: 0,
            stock: IdMap::default(),
            keep_ledger: true,
            ledger: Vec::new(),
            ledger_len: 0,
            orders: IdMap::default(),
            order_index: HashMap::new(),
            cards: IdMap::default(),
            deadlines: BTreeSet::new(),
            backorders: BTreeSet::new(),
            next_order_id: 1,
            next_card_id: 1,
            latencies: IdMap::default(),
            velocities: IdMap::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the in-memory ledger keeps every movement (for `check`); a long simulation
    /// turns it off to bound memory, the shell keeps the ledger in its database.
    pub fn set_keep_ledger(&mut self, keep: bool) {
        self.keep_ledger = keep;
        if !keep {
            self.ledger = Vec::new();
        }
    }

    /// Ids the next order and card will get. The shell sets them from its database.
    pub fn set_next_ids(&mut self, order: u64, card: u64) {
        self.next_order_id = order;
        self.next_card_id = card;
    }

    // ---- catalog ------------------------------------------------------------------

    pub fn sync_enabled(&self) -> bool {
        self.sync_enabled
    }

    /// Switches sync for the whole workspace; off publishes 0 everywhere.
    pub fn set_sync_enabled(&mut self, on: bool) {
        self.sync_enabled = on;
    }

    pub fn add_warehouse(&mut self, w: Warehouse) -> Result<(), CatalogError> {
        crate::catalog::check_code("code", &w.code, &self.limits)?;
        crate::catalog::check_text("name", &w.name, &self.limits)?;
        if self.warehouses.iter().any(|o| o.code == w.code || o.id == w.id) {
            return Err(CatalogError::Duplicate { what: "warehouse", code: w.code });
        }
        let at = self.warehouses.partition_point(|o| o.id < w.id);
        self.warehouses.insert(at, w);
        Ok(())
    }

    pub fn warehouse(&self, id: WarehouseId) -> Option<&Warehouse> {
        self.warehouses.iter().find(|w| w.id == id)
    }

    pub fn warehouses(&self) -> &[Warehouse] {
        &self.warehouses
    }

    pub fn warehouse_ids(&self) -> Vec<WarehouseId> {
        self.warehouses.iter().map(|w| w.id).collect()
    }

    /// Adds an item or replaces its settings. The SKU is its identity and stays unique;
    /// the kind may not change to or from `bundle` once it has stock or components.
    pub fn upsert_item(&mut self, item: Item) -> Result<(), CatalogError> {
        item.validate(&self.limits)?;
        if let Some(&other) = self.sku_index.get(&item.sku) {
            if other != item.id {
                return Err(CatalogError::Duplicate { what: "item", code: item.sku });
            }
        }
        if let Some(old) = self.items.get(&item.id) {
            let bundle_changed = (old.kind == ItemKind::Bundle) != (item.kind == ItemKind::Bundle);
            let has_stock = self.stock.get(&item.id).is_some_and(|ls| ls.iter().any(|(_, l)| l.on_hand != 0));
            if bundle_changed
                && (has_stock || !self.components(item.id).is_empty() || !self.parents(item.id).is_empty())
            {
                return Err(CatalogError::WrongKind {
                    sku: old.sku.clone(),
                    kind: old.kind,
                    reason:
                        "its kind cannot change to or from bundle while it has stock or components or is a component",
                });
            }
            if old.sku != item.sku {
                self.sku_index.remove(&old.sku);
            }
        }
        self.sku_index.insert(item.sku.clone(), item.id);
        self.items.insert(item.id, item);
        Ok(())
    }

    pub fn item(&self, id: ItemId) -> Option<&Item> {
        self.items.get(&id)
    }

    pub fn item_by_sku(&self, sku: &str) -> Option<&Item> {
        self.sku_index.get(sku).and_then(|id| self.items.get(id))
    }

    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.items.values()
    }

    /// Replaces an item's bill of materials after checking it (known items, quantities,
    /// no cycle, bounded depth). An empty list removes it.
    pub fn set_components(&mut self, item: ItemId, components: Vec<Component>) -> Result<(), BomError> {
        let it = self.items.get(&item).ok_or(BomError::UnknownComponent { component: item })?.clone();
        validate_components(self, &it, &components, &self.limits)?;
        for old in self.components.remove(&item).unwrap_or_default() {
            if let Some(ps) = self.parents.get_mut(&old.item) {
                ps.retain(|p| *p != item);
            }
        }
        for c in &components {
            self.parents.entry(c.item).or_default().push(item);
        }
        if !components.is_empty() {
            self.components.insert(item, components);
        }
        Ok(())
    }

    pub fn upsert_store(&mut self, store: Store) -> Result<(), CatalogError> {
        crate::catalog::check_code("code", &store.code, &self.limits)?;
        crate::catalog::check_text("name", &store.name, &self.limits)?;
        if self.stores.values().any(|o| o.code == store.code && o.id != store.id) {
            return Err(CatalogError::Duplicate { what: "store", code: store.code });
        }
        self.stores.insert(store.id, store);
        Ok(())
    }

    pub fn store(&self, id: StoreId) -> Option<&Store> {
        self.stores.get(&id)
    }

    pub fn stores(&self) -> impl Iterator<Item = &Store> {
        self.stores.values()
    }

    /// Adds or replaces a listing. `(store, external_id)` and `(store, store_sku)` are unique.
    pub fn upsert_listing(&mut self, listing: Listing) -> Result<(), CatalogError> {
        crate::catalog::check_code("external_id", &listing.external_id, &self.limits)?;
        crate::catalog::check_code("store_sku", &listing.store_sku, &self.limits)?;
        if !self.stores.contains_key(&listing.store) {
            return Err(CatalogError::Unknown { what: "store", code: listing.store.to_string() });
        }
        if !self.items.contains_key(&listing.item) {
            return Err(CatalogError::Unknown { what: "item", code: listing.item.to_string() });
        }
        if let Some(&other) = self.listing_by_store_sku.get(&(listing.store, listing.store_sku.clone())) {
            if other != listing.id {
                return Err(CatalogError::Duplicate { what: "listing with store_sku", code: listing.store_sku });
            }
        }
        if let Some(&other) = self.listing_by_external_id.get(&(listing.store, listing.external_id.clone())) {
            if other != listing.id {
                return Err(CatalogError::Duplicate { what: "listing with external_id", code: listing.external_id });
            }
        }
        if let Some(old) = self.listings.remove(&listing.id) {
            self.listing_by_store_sku.remove(&(old.store, old.store_sku));
            self.listing_by_external_id.remove(&(old.store, old.external_id));
            if let Some(ls) = self.listings_by_item.get_mut(&old.item) {
                ls.retain(|l| *l != old.id);
            }
        }
        self.listing_by_store_sku.insert((listing.store, listing.store_sku.clone()), listing.id);
        self.listing_by_external_id.insert((listing.store, listing.external_id.clone()), listing.id);
        self.listings_by_item.entry(listing.item).or_default().push(listing.id);
        self.listings.insert(listing.id, listing);
        Ok(())
    }

    pub fn listing(&self, id: ListingId) -> Option<&Listing> {
        self.listings.get(&id)
    }

    pub fn listing_by_external_id(&self, store: StoreId, external_id: &str) -> Option<&Listing> {
        self.listing_by_external_id.get(&(store, external_id.to_string())).and_then(|id| self.listings.get(id))
    }

    pub fn listing_by_store_sku(&self, store: StoreId, store_sku: &str) -> Option<&Listing> {
        self.listing_by_store_sku.get(&(store, store_sku.to_string())).and_then(|id| self.listings.get(id))
    }

    pub fn listings(&self) -> impl Iterator<Item = &Listing> {
        self.listings.values()
    }

    pub fn listings_of_item(&self, item: ItemId) -> &[ListingId] {
        self.listings_by_item.get(&item).map(|v| &v[..]).unwrap_or(&[])
    }

    /// Saves a rule: a new one (version 1) or a new version of an existing one. Refused
    /// with a typed error when it breaks SPEC section 3; nothing changes then.
    pub fn save_rule(&mut self, mut rule: SyncRule) -> Result<RuleRef, RuleError> {
        validate_rule(&rule, &self.limits).map_err(|e| self.name_ids(e))?;
        let existing = self.rules.get(&rule.id);
        if existing.is_none() && self.rules.len() >= self.limits.rules_per_workspace_max {
            return Err(RuleError::TooManyRules { max: self.limits.rules_per_workspace_max });
        }
        for w in &rule.warehouses {
            if self.warehouse(*w).is_none() {
                return Err(RuleError::Unknown { what: "warehouse", code: w.to_string() });
            }
        }
        for s in &rule.stores {
            if !self.stores.contains_key(s) {
                return Err(RuleError::Unknown { what: "store", code: s.to_string() });
            }
        }
        if let crate::rules::ItemsSelector::Items(ids) = &rule.items {
            if let Some(i) = ids.iter().find(|i| !self.items.contains_key(i)) {
                return Err(RuleError::Unknown { what: "SKU", code: i.to_string() });
            }
        }
        match existing {
            Some(old) => {
                rule.version = old.version + 1;
                rule.created_seq = old.created_seq;
            }
            None => {
                rule.version = 1;
                self.rule_seq += 1;
                rule.created_seq = self.rule_seq;
            }
        }
        let r = RuleRef { id: rule.id, version: rule.version };
        self.rules.insert(rule.id, rule);
        self.reindex_rules();
        Ok(r)
    }

    /// Restores a rule exactly as stored (version and age kept), for a shell loading its
    /// database. Validation still applies.
    pub fn load_rule(&mut self, rule: SyncRule) -> Result<(), RuleError> {
        validate_rule(&rule, &self.limits)?;
        self.rule_seq = self.rule_seq.max(rule.created_seq);
        self.rules.insert(rule.id, rule);
        self.reindex_rules();
        Ok(())
    }

    pub fn delete_rule(&mut self, id: RuleId) -> Option<SyncRule> {
        let r = self.rules.remove(&id);
        self.reindex_rules();
        r
    }

    pub fn rule(&self, id: RuleId) -> Option<&SyncRule> {
        self.rules.get(&id)
    }

    pub fn rules(&self) -> impl Iterator<Item = &SyncRule> {
        self.rules.values()
    }

    fn name_ids(&self, e: RuleError) -> RuleError {
        match e {
            RuleError::PriorityStoreNotInRule { store } => {
                let code = store
                    .parse()
                    .ok()
                    .and_then(|id| self.stores.get(&StoreId(id)))
                    .map(|s| s.code.clone())
                    .unwrap_or(store);
                RuleError::PriorityStoreNotInRule { store: code }
            }
            other => other,
        }
    }

    fn reindex_rules(&mut self) {
        self.rules_by_store.clear();
        let mut enabled: Vec<&SyncRule> = self.rules.values().filter(|r| r.enabled).collect();
        enabled.sort_by_key(|r| r.precedence());
        for r in enabled {
            for s in &r.stores {
                self.rules_by_store.entry(*s).or_default().push(r.id);
            }
        }
    }

    /// Step 2 of SPEC section 3: the enabled rule covering the store and item with the
    /// smallest priority (ties: the older rule), or `None` for the workspace default.
    pub fn rule_for(&self, store: StoreId, item: ItemId) -> Option<&SyncRule> {
        let sku = &self.items.get(&item)?.sku;
        self.rules_by_store.get(&store)?.iter().map(|id| &self.rules[id]).find(|r| r.items.covers(item, sku))
    }

    // ---- inputs of buffer: auto -------------------------------------------------------

    /// Sets how stale a store's picture of the pool can be (`buffer: auto`). The shell
    /// measures it (push queue, channel processing, webhook or polling delay); changing it
    /// may move every listing of the store under a `buffer: auto` rule.
    pub fn set_store_latency(&mut self, store: StoreId, latency: Latency) {
        self.latencies.insert(store, latency);
    }

    /// A store's latency; zero until the shell sets it.
    pub fn store_latency(&self, store: StoreId) -> Latency {
        self.latencies.get(&store).copied().unwrap_or_default()
    }

    /// Sets an item's recent sales on a store (`buffer: auto`); no units forgets it. The
    /// listings of the item under a `buffer: auto` rule may move, and those of products
    /// sharing a component with it (`affected_listings` of the item names them all).
    pub fn set_sales_velocity(&mut self, store: StoreId, item: ItemId, velocity: Velocity) {
        if velocity.is_known() {
            self.velocities.insert((store, item), velocity);
        } else {
            self.velocities.remove(&(store, item));
        }
    }

    /// An item's recent sales on a store; none until the shell sets it.
    pub fn sales_velocity(&self, store: StoreId, item: ItemId) -> Velocity {
        self.velocities.get(&(store, item)).copied().unwrap_or_default()
    }

    // ---- stock, orders, cards ------------------------------------------------------

    pub fn stock_levels(&self, item: ItemId) -> &[(WarehouseId, StockLevel)] {
        self.stock.get(&item).map(|v| &v[..]).unwrap_or(&[])
    }

    /// Every stock level, for `check` and export.
    pub fn all_stock_levels(&self) -> impl Iterator<Item = (ItemId, WarehouseId, StockLevel)> + '_ {
        self.stock.iter().flat_map(|(i, ls)| ls.iter().map(move |(w, l)| (*i, *w, *l)))
    }

    pub fn ledger(&self) -> &[Movement] {
        &self.ledger
    }

    /// Movements applied so far, kept or not.
    pub fn ledger_len(&self) -> u64 {
        self.ledger_len
    }

    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.orders.get(&id).map(Box::as_ref)
    }

    pub fn orders(&self) -> impl Iterator<Item = &Order> {
        self.orders.values().map(Box::as_ref)
    }

    pub fn order_by_external_id(&self, store: StoreId, external_id: &str) -> Option<&Order> {
        self.order_index.get(&(store, external_id.to_string())).and_then(|id| self.orders.get(id)).map(Box::as_ref)
    }

    pub fn card(&self, id: CardId) -> Option<&ProductionCard> {
        self.cards.get(&id)
    }

    pub fn cards(&self) -> impl Iterator<Item = &ProductionCard> {
        self.cards.values()
    }

    /// The soonest deadline of any open order, for the sweeper's sleep.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    pub(crate) fn due_orders(&self, now: Timestamp) -> Vec<OrderId> {
        self.deadlines.iter().take_while(|(t, _)| *t <= now).map(|(_, o)| *o).collect()
    }

    /// Restores a stock level as the shell's database holds it (the database keeps the
    /// ledger; a state loaded this way does not). Refuses a level that breaks the
    /// invariant, so a corrupt row is reported instead of decided on.
    pub fn restore_level(&mut self, item: ItemId, warehouse: WarehouseId, level: StockLevel) -> Result<(), Finding> {
        if !level.is_valid() {
            return Err(Finding::InvalidLevel { item, warehouse, level });
        }
        self.keep_ledger = false;
        self.ledger.clear();
        let levels = self.stock.entry(item).or_default();
        match levels.iter_mut().find(|(w, _)| *w == warehouse) {
            Some((_, l)) => *l = level,
            None => levels.push((warehouse, level)),
        }
        Ok(())
    }

    /// Applies a decision. Panics if a movement breaks `0 <= reserved <= on_hand`: the
    /// decision was made on this state, so that would be a bug in the core.
    pub fn apply(&mut self, change: &Change) {
        for m in &change.movements {
            let levels = self.stock.entry(m.item).or_default();
            let at = match levels.iter().position(|(w, _)| *w == m.warehouse) {
                Some(at) => at,
                None => {
                    levels.push((m.warehouse, StockLevel::default()));
                    levels.len() - 1
                }
            };
            let level = &mut levels[at].1;
            level.on_hand += m.on_hand_delta;
            level.reserved += m.reserved_delta;
            assert!(level.is_valid(), "core bug: applying {m:?} leaves {level:?}");
            self.ledger_len += 1;
            if self.keep_ledger {
                self.ledger.push(m.clone());
            }
        }
        for o in &change.orders {
            if let Some(old) = self.orders.get(&o.id) {
                if let Some(d) = old.deadline() {
                    self.deadlines.remove(&(d, old.id));
                }
                for (i, _) in old.lines.iter().enumerate() {
                    self.backorders.remove(&(old.id, i as u32));
                }
            }
            if let Some(d) = o.deadline() {
                self.deadlines.insert((d, o.id));
            }
            if o.status.is_open() {
                for (i, l) in o.lines.iter().enumerate() {
                    if l.backordered > 0 {
                        self.backorders.insert((o.id, i as u32));
                    }
                }
            }
            self.order_index.insert((o.store, o.external_id.clone()), o.id);
            self.next_order_id = self.next_order_id.max(o.id.0 + 1);
            self.orders.insert(o.id, Box::new(o.clone()));
        }
        for c in &change.cards {
            self.next_card_id = self.next_card_id.max(c.id.0 + 1);
            self.cards.insert(c.id, c.clone());
        }
    }

    // ---- dependency index -----------------------------------------------------------

    /// The touched items and every item that uses them, through every level: bundles
    /// that contain them and products whose capacity uses them.
    pub fn dependents(&self, touched: &[ItemId]) -> IdSet<ItemId> {
        let mut seen: IdSet<ItemId> = IdSet::default();
        let mut stack: Vec<ItemId> = touched.to_vec();
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                stack.extend(self.parents(i).iter().copied());
            }
        }
        seen
    }

    /// Listings whose published quantity may change when the touched items' stock (or
    /// sales velocity) moves. Under a `buffer: auto` rule a made-to-order product's buffer
    /// also counts the sales of the other products made from its components, so while any
    /// rule has `buffer: auto` the products sharing a component with a dependent are
    /// included too.
    pub fn affected_listings(&self, touched: &[ItemId]) -> Vec<ListingId> {
        let mut items = self.dependents(touched);
        if self.rules.values().any(|r| r.buffer == Buffer::Auto) {
            let components: Vec<ItemId> =
                items.iter().flat_map(|i| self.components(*i).iter().map(|c| c.item)).collect();
            if !components.is_empty() {
                items.extend(self.dependents(&components));
            }
        }
        let mut out: Vec<ListingId> = items.iter().flat_map(|i| self.listings_of_item(*i).iter().copied()).collect();
        out.sort_unstable();
        out
    }

    // ---- published quantity -----------------------------------------------------------

    /// What a listing shows now (SPEC section 3).
    pub fn published(&self, listing: ListingId) -> Option<Published> {
        let mut scratch = Scratch::new(self);
        compute(self, &mut scratch, listing, &mut Vec::new(), None)
    }

    /// What a listing shows now, with every step and its numbers.
    pub fn explain(&self, listing: ListingId) -> Option<Explain> {
        let mut scratch = Scratch::new(self);
        let mut steps = Vec::new();
        let published = compute(self, &mut scratch, listing, &mut Vec::new(), Some(&mut steps))?;
        let l = self.listing(listing)?;
        Some(Explain {
            listing,
            sku: self.item(l.item).map(|i| i.sku.clone()).unwrap_or_default(),
            store: self.store(l.store).map(|s| s.code.clone()).unwrap_or_default(),
            steps,
            published,
        })
    }

    /// Recomputes every listing, item by item so each item's pool is computed once.
    pub fn recompute_all(&self) -> Vec<Published> {
        let mut out = Vec::with_capacity(self.listings.len());
        let mut scratch = Scratch::new(self);
        let mut cache = Vec::new();
        for listings in self.listings_by_item.values() {
            cache.clear();
            for l in listings {
                if let Some(p) = compute(self, &mut scratch, *l, &mut cache, None) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Recomputes the given listings (for instance `affected_listings` of a change).
    pub fn recompute(&self, listings: &[ListingId]) -> Vec<Published> {
        let mut scratch = Scratch::new(self);
        listings.iter().filter_map(|l| compute(self, &mut scratch, *l, &mut Vec::new(), None)).collect()
    }

    // ---- check ------------------------------------------------------------------------

    /// Proves the state keeps its promises: every level valid, equal to the sum of its
    /// movements (when the ledger is kept), `reserved` equal to what open orders and
    /// cards hold, every open line accounting for its quantity.
    pub fn check(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        let mut held: IdMap<(ItemId, WarehouseId), i64> = IdMap::default();
        for o in self.orders.values().filter(|o| o.status.is_open()) {
            for (i, l) in o.lines.iter().enumerate() {
                if l.item.is_some() && l.accounted() != l.quantity {
                    findings.push(Finding::LineUnaccounted { order: o.id, line: i });
                }
                for h in &l.holds {
                    *held.entry((h.item, h.warehouse)).or_default() += h.quantity;
                }
            }
        }
        for c in self.cards.values().filter(|c| c.status.is_open()) {
            for h in &c.holds {
                *held.entry((h.item, h.warehouse)).or_default() += h.quantity;
            }
        }
        let mut ledger: IdMap<(ItemId, WarehouseId), StockLevel> = IdMap::default();
        for m in &self.ledger {
            let l = ledger.entry((m.item, m.warehouse)).or_default();
            l.on_hand += m.on_hand_delta;
            l.reserved += m.reserved_delta;
        }
        let mut keys: Vec<(ItemId, WarehouseId)> = self.all_stock_levels().map(|(i, w, _)| (i, w)).collect();
        keys.extend(held.keys().copied());
        keys.sort_unstable();
        keys.dedup();
        for (item, warehouse) in keys {
            let level = self.level(item, warehouse);
            if !level.is_valid() {
                findings.push(Finding::InvalidLevel { item, warehouse, level });
            }
            if self.keep_ledger {
                let sum = ledger.get(&(item, warehouse)).copied().unwrap_or_default();
                if sum != level {
                    findings.push(Finding::LedgerMismatch { item, warehouse, level, ledger: sum });
                }
            }
            let h = held.get(&(item, warehouse)).copied().unwrap_or(0);
            if h != level.reserved {
                findings.push(Finding::HoldsMismatch { item, warehouse, reserved: level.reserved, held: h });
            }
        }
        findings
    }
}

impl StockView for State {
    fn level(&self, item: ItemId, warehouse: WarehouseId) -> StockLevel {
        self.stock
            .get(&item)
            .and_then(|ls| ls.iter().find(|(w, _)| *w == warehouse))
            .map(|(_, l)| *l)
            .unwrap_or_default()
    }
}

impl Bom for State {
    fn item(&self, id: ItemId) -> Option<&Item> {
        self.items.get(&id)
    }
    fn components(&self, id: ItemId) -> &[Component] {
        self.components.get(&id).map(|v| &v[..]).unwrap_or(NO_COMPONENTS)
    }
    fn parents(&self, id: ItemId) -> &[ItemId] {
        self.parents.get(&id).map(|v| &v[..]).unwrap_or(NO_IDS)
    }
}

impl State {
    pub fn components(&self, id: ItemId) -> &[Component] {
        Bom::components(self, id)
    }
    pub fn parents(&self, id: ItemId) -> &[ItemId] {
        Bom::parents(self, id)
    }
    pub fn level(&self, item: ItemId, warehouse: WarehouseId) -> StockLevel {
        StockView::level(self, item, warehouse)
    }
}
