//! One workspace as the server holds it: the core `State` plus what the shell needs
//! around it (its sequence number, the next catalog id, the last published quantities),
//! how it is loaded from the database, and how its objects are shown (views).
//!
//! Every process keeps a cache of the workspaces it serves. The `seq` column of the
//! workspace row moves on every committed batch; a writer that finds it moved (another
//! `serve` process wrote) reloads before it decides, under the row lock.

use crate::db::args;
use crate::model::{public_id, Kind, StoreExtra};
use crate::secrets::SecretKey;
use crate::velocity::{channel_latency, Sales, VELOCITY_WINDOW_SECONDS};
use crate::StoreError;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use stockpool_core::bom::capacity;
use stockpool_core::ids::IdMap;
use stockpool_core::*;

/// What an outbox row says beyond its bookkeeping columns.
#[derive(serde::Deserialize)]
struct QueuedDoc {
    #[serde(default = "stock_change")]
    reason: PushReason,
}

fn stock_change() -> PushReason {
    PushReason::StockChange
}

/// One queued push as a dispatcher sees it: the listing's channel ids, the newest committed
/// figure, what the channel was last told, and the row's bookkeeping.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingPush {
    pub listing: ListingId,
    pub external_id: String,
    pub store_sku: String,
    pub sku: String,
    pub figure: Published,
    pub settled: Option<Published>,
    pub meta: Pending,
}

/// One listing of a store as a read-back sees it: its channel ids, the figure it should
/// show, and what its channel was last told.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelListing {
    pub listing: ListingId,
    pub external_id: String,
    pub store_sku: String,
    pub figure: Option<Published>,
    pub settled: Option<Published>,
}

/// A workspace in memory.
#[derive(Clone)]
pub struct Ws {
    pub id: i64,
    /// The workspace row's `seq` this cache matches.
    pub seq: i64,
    /// Next id for warehouses, items, stores, listings and rules.
    pub next_id: u64,
    pub state: State,
    /// What each listing publishes now: the figure the channel got, or for a pending
    /// listing the newest figure, which its push will carry.
    pub published: IdMap<ListingId, Published>,
    /// What each listing's channel was last told, as settled by a push (the listing row's
    /// `published_doc`). Absent: never pushed.
    pub settled: IdMap<ListingId, Published>,
    /// Listings with a push queued (a row in the outbox), with the row's bookkeeping.
    /// While a listing is pending, a new figure only changes `published`: the push
    /// delivers whatever is newest.
    pub pending: IdMap<ListingId, Pending>,
    /// Connection settings per store, secrets in the clear (sealed in the database).
    pub store_extra: IdMap<StoreId, StoreExtra>,
    /// The key that seals `store_extra`'s secrets when they are written.
    pub key: SecretKey,
    /// Recent sales per (store, item), the input of `buffer: auto` (`velocity.rs`).
    pub sales: Sales,
}

/// A queued push's bookkeeping: its outbox row without the figure (which is `published`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// When the figure first moved away from the settled one.
    pub queued_at: Timestamp,
    /// Why it was queued (`stock_change`, `sync_now`).
    pub reason: PushReason,
    /// Attempts made so far (a retry keeps the row).
    pub attempts: u32,
    /// Not before this time (backoff after a retry); `None`: at once.
    pub next_attempt_at: Option<Timestamp>,
    /// The workspace `seq` of the commit that last wrote the row: a dispatcher that claimed
    /// an older generation knows the row was rewritten since.
    pub generation: i64,
}

impl Pending {
    /// A push queued at `queued_at` for `reason`, not tried yet, written by the commit
    /// that will have `generation` as its `seq`.
    pub fn fresh(queued_at: Timestamp, reason: PushReason, generation: i64) -> Pending {
        Pending { queued_at, reason, attempts: 0, next_attempt_at: None, generation }
    }
}

/// Why a push was queued, as its sync records say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushReason {
    StockChange,
    SyncNow,
    Reconcile,
}

impl PushReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PushReason::StockChange => "stock_change",
            PushReason::SyncNow => "sync_now",
            PushReason::Reconcile => "reconcile",
        }
    }
}

/// The parts of a figure a channel is told (the rule that decided it is not pushed).
pub fn figure(p: &Published) -> (Qty, bool, bool) {
    (p.quantity, p.sell_when_out_of_stock, p.show_backorder)
}

fn get_i64(row: &AnyRow, i: usize) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(i)?)
}
fn get_str(row: &AnyRow, i: usize) -> Result<String, StoreError> {
    Ok(row.try_get::<String, _>(i)?)
}
fn doc<T: serde::de::DeserializeOwned>(row: &AnyRow, i: usize) -> Result<T, StoreError> {
    let text = get_str(row, i)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("unreadable document: {e}")))
}

async fn rows(conn: &mut AnyConnection, sql: &str, ws: i64) -> Result<Vec<AnyRow>, StoreError> {
    Ok(sqlx::query_with(sql, args(&[ws.into()])).fetch_all(&mut *conn).await?)
}

impl Ws {
    /// Loads a whole workspace. Inside the writer this runs under the workspace row lock.
    /// `now` dates the recent sales `buffer: auto` counts.
    pub async fn load(conn: &mut AnyConnection, key: &SecretKey, id: i64, now: Timestamp) -> Result<Ws, StoreError> {
        let head =
            sqlx::query_with("SELECT seq, next_id, sync_enabled FROM workspaces WHERE id = $1", args(&[id.into()]))
                .fetch_optional(&mut *conn)
                .await?
                .ok_or(StoreError::NotFound { what: "workspace", key: id.to_string() })?;
        let mut state = State::default();
        state.set_keep_ledger(false);
        state.set_sync_enabled(get_i64(&head, 2)? != 0);
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
        for r in rows(conn, "SELECT id, code, name FROM warehouses WHERE workspace_id = $1 ORDER BY id", id).await? {
            let w = Warehouse { id: WarehouseId(get_i64(&r, 0)? as u64), code: get_str(&r, 1)?, name: get_str(&r, 2)? };
            state.add_warehouse(w).map_err(|e| corrupt(&e))?;
        }
        let mut store_extra = IdMap::default();
        for r in rows(conn, "SELECT doc FROM stores WHERE workspace_id = $1 ORDER BY id", id).await? {
            let (s, extra): (Store, StoreExtra) = doc(&r, 0)?;
            store_extra.insert(s.id, extra.opened(key)?);
            state.set_store_latency(s.id, channel_latency(&s));
            state.upsert_store(s).map_err(|e| corrupt(&e))?;
        }
        for r in rows(conn, "SELECT doc FROM items WHERE workspace_id = $1 ORDER BY id", id).await? {
            let item: Item = doc(&r, 0)?;
            state.upsert_item(item).map_err(|e| corrupt(&e))?;
        }
        let mut boms: Vec<(ItemId, Vec<Component>)> = Vec::new();
        for r in rows(
            conn,
            "SELECT item_id, component_id, quantity FROM components WHERE workspace_id = $1 ORDER BY item_id, position",
            id,
        )
        .await?
        {
            let item = ItemId(get_i64(&r, 0)? as u64);
            let c = Component { item: ItemId(get_i64(&r, 1)? as u64), quantity: get_i64(&r, 2)? };
            match boms.last_mut() {
                Some((i, list)) if *i == item => list.push(c),
                _ => boms.push((item, vec![c])),
            }
        }
        // Components were validated when saved; load them in an order that keeps depth
        // checks meaningful (leaves first) by retrying until every list is in.
        let mut pending = boms;
        for _ in 0..=state.limits().bom_depth_max + 1 {
            let mut next = Vec::new();
            for (item, list) in pending {
                if state.set_components(item, list.clone()).is_err() {
                    next.push((item, list));
                }
            }
            pending = next;
            if pending.is_empty() {
                break;
            }
        }
        if let Some((item, _)) = pending.first() {
            return Err(StoreError::Corrupt(format!("the bill of materials of item {item} no longer validates")));
        }
        let mut published = IdMap::default();
        let mut settled = IdMap::default();
        for r in rows(
            conn,
            "SELECT id, store_id, external_id, store_sku, item_id, status, published_doc FROM listings WHERE workspace_id = $1 ORDER BY id",
            id,
        )
        .await?
        {
            let listing = Listing {
                id: ListingId(get_i64(&r, 0)? as u64),
                store: StoreId(get_i64(&r, 1)? as u64),
                external_id: get_str(&r, 2)?,
                store_sku: get_str(&r, 3)?,
                item: ItemId(get_i64(&r, 4)? as u64),
                status: if get_str(&r, 5)? == "draft" { ListingStatus::Draft } else { ListingStatus::Active },
            };
            if let Ok(text) = r.try_get::<String, _>(6) {
                if let Ok(p) = serde_json::from_str::<Published>(&text) {
                    published.insert(listing.id, p);
                    settled.insert(listing.id, p);
                }
            }
            state.upsert_listing(listing).map_err(|e| corrupt(&e))?;
        }
        // A pending listing's figure is newer than its row's `published_doc` (the figure
        // last settled): it is recomputed from the loaded state below.
        let mut queued = Vec::new();
        let mut pending = IdMap::default();
        for r in rows(
            conn,
            "SELECT listing_id, queued_at, doc, attempts, next_attempt_at, generation FROM outbox WHERE workspace_id = $1 ORDER BY listing_id",
            id,
        )
        .await?
        {
            let listing = ListingId(get_i64(&r, 0)? as u64);
            if state.listing(listing).is_some() {
                queued.push(listing);
                let queued_doc: QueuedDoc = doc(&r, 2)?;
                pending.insert(
                    listing,
                    Pending {
                        queued_at: Timestamp(get_i64(&r, 1)?),
                        reason: queued_doc.reason,
                        attempts: get_i64(&r, 3)? as u32,
                        next_attempt_at: r.try_get::<Option<i64>, _>(4)?.map(Timestamp),
                        generation: get_i64(&r, 5)?,
                    },
                );
            }
        }
        for r in rows(conn, "SELECT doc FROM rules WHERE workspace_id = $1 ORDER BY id", id).await? {
            let rule: SyncRule = doc(&r, 0)?;
            state.load_rule(rule).map_err(|e| corrupt(&e))?;
        }
        for r in
            rows(conn, "SELECT item_id, warehouse_id, on_hand, reserved FROM stock_levels WHERE workspace_id = $1", id)
                .await?
        {
            let level = StockLevel { on_hand: get_i64(&r, 2)?, reserved: get_i64(&r, 3)? };
            state
                .restore_level(ItemId(get_i64(&r, 0)? as u64), WarehouseId(get_i64(&r, 1)? as u64), level)
                .map_err(|f| StoreError::Corrupt(format!("{f:?}")))?;
        }
        let mut change = Change::default();
        for r in rows(conn, "SELECT doc FROM orders WHERE workspace_id = $1 ORDER BY id", id).await? {
            change.orders.push(doc(&r, 0)?);
        }
        for r in rows(conn, "SELECT doc FROM cards WHERE workspace_id = $1 ORDER BY id", id).await? {
            change.cards.push(doc(&r, 0)?);
        }
        state.apply(&change);
        let mut sales = Sales::default();
        let since = now.0 - VELOCITY_WINDOW_SECONDS * 1000;
        for o in change.orders.iter().filter(|o| o.created_at.0 >= since) {
            sales.record(&mut state, o, now);
        }
        for p in state.recompute(&queued) {
            published.insert(p.listing, p);
        }
        Ok(Ws {
            id,
            seq: get_i64(&head, 0)?,
            next_id: get_i64(&head, 1)? as u64,
            state,
            published,
            settled,
            pending,
            store_extra,
            key: key.clone(),
            sales,
        })
    }

    /// The listings of `store` with a push queued, oldest first: what its dispatcher
    /// hands the push policy.
    pub fn pending_pushes(&self, store: StoreId) -> Vec<PendingPush> {
        let mut out: Vec<PendingPush> = self
            .pending
            .iter()
            .filter_map(|(&listing, meta)| {
                let l = self.state.listing(listing).filter(|l| l.store == store)?;
                let figure = self.published.get(&listing).copied().or_else(|| self.state.published(listing))?;
                Some(PendingPush {
                    listing,
                    external_id: l.external_id.clone(),
                    store_sku: l.store_sku.clone(),
                    sku: self.sku(l.item),
                    figure,
                    settled: self.settled.get(&listing).copied(),
                    meta: *meta,
                })
            })
            .collect();
        out.sort_by_key(|p| (p.meta.queued_at, p.listing));
        out
    }

    /// Up to `n` listings of `store` with ids after `after`, in id order: one page of a
    /// read-back pass.
    pub fn channel_listings(&self, store: StoreId, after: Option<ListingId>, n: usize) -> Vec<ChannelListing> {
        // Ids first (the listings are hashed, not ordered), then the page's rows.
        let mut ids: Vec<ListingId> = self
            .state
            .listings()
            .filter(|l| l.store == store && after.is_none_or(|a| l.id > a))
            .map(|l| l.id)
            .collect();
        ids.sort_unstable();
        ids.truncate(n);
        ids.into_iter()
            .filter_map(|id| {
                let l = self.state.listing(id)?;
                Some(ChannelListing {
                    listing: id,
                    external_id: l.external_id.clone(),
                    store_sku: l.store_sku.clone(),
                    figure: self.published.get(&id).copied().or_else(|| self.state.published(id)),
                    settled: self.settled.get(&id).copied(),
                })
            })
            .collect()
    }

    pub fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ---- lookups by code ---------------------------------------------------------

    pub fn item_id(&self, sku: &str) -> Result<ItemId, StoreError> {
        self.state.item_by_sku(sku).map(|i| i.id).ok_or_else(|| StoreError::unknown("item", sku))
    }

    pub fn warehouse_id(&self, code: &str) -> Result<WarehouseId, StoreError> {
        self.state
            .warehouses()
            .iter()
            .find(|w| w.code == code)
            .map(|w| w.id)
            .ok_or_else(|| StoreError::unknown("warehouse", code))
    }

    pub fn store_id(&self, code: &str) -> Result<StoreId, StoreError> {
        self.state.stores().find(|s| s.code == code).map(|s| s.id).ok_or_else(|| StoreError::unknown("store", code))
    }

    pub fn warehouse_code(&self, id: WarehouseId) -> String {
        self.state.warehouse(id).map(|w| w.code.clone()).unwrap_or_default()
    }

    pub fn store_code(&self, id: StoreId) -> String {
        self.state.store(id).map(|s| s.code.clone()).unwrap_or_default()
    }

    pub fn sku(&self, id: ItemId) -> String {
        self.state.item(id).map(|i| i.sku.clone()).unwrap_or_default()
    }

    // ---- views -----------------------------------------------------------------------

    pub fn warehouse_view(&self, w: &Warehouse) -> Value {
        json!({"code": w.code, "name": w.name})
    }

    pub fn item_view(&self, item: &Item) -> Value {
        let components: Vec<Value> = self
            .state
            .components(item.id)
            .iter()
            .map(|c| json!({"sku": self.sku(c.item), "quantity": c.quantity}))
            .collect();
        json!({
            "sku": item.sku, "name": item.name, "kind": item.kind, "unit": item.unit, "status": item.status,
            "stock_plus_capacity": item.stock_plus_capacity, "make_action": item.make_action,
            "zero_policy": item.zero_policy, "continue_quantity": item.continue_quantity,
            "accept_within_seconds": item.accept_within_seconds, "components": components,
        })
    }

    /// `GET /items/{sku}/stock`: per warehouse, the totals, and capacity.
    pub fn stock_view(&self, item: ItemId) -> Value {
        let mut warehouses = Vec::new();
        let (mut available, mut cap) = (0i64, 0i64);
        let mut scratch = stockpool_core::stock::Scratch::new(&self.state);
        let kind = self.state.item(item).map(|i| i.kind);
        for w in self.state.warehouses() {
            let l = self.state.level(item, w.id);
            let a = if kind == Some(ItemKind::Bundle) {
                stockpool_core::bom::bundle_units(&self.state, &self.state, item, w.id)
            } else {
                l.available()
            };
            available += a;
            if kind != Some(ItemKind::Bundle) {
                cap += capacity(&self.state, &mut scratch, item, w.id);
            }
            if kind != Some(ItemKind::Bundle) && (l.on_hand != 0 || l.reserved != 0)
                || kind == Some(ItemKind::Bundle) && a > 0
            {
                warehouses
                    .push(json!({"warehouse": w.code, "on_hand": l.on_hand, "reserved": l.reserved, "available": a}));
            }
        }
        json!({"sku": self.sku(item), "warehouses": warehouses, "available": available, "capacity": cap})
    }

    pub fn store_view(&self, s: &Store) -> Value {
        let extra = self.store_extra.get(&s.id).cloned().unwrap_or_default();
        let schedule = match s.schedule {
            Schedule::Realtime => json!("realtime"),
            Schedule::EveryMinutes(n) => json!({"every_minutes": n}),
        };
        json!({
            "code": s.code, "name": s.name, "channel": s.channel, "schedule": schedule, "enabled": s.enabled,
            "url": extra.url, "base_url": extra.base_url, "has_secret": extra.secret.is_some(),
            "has_credentials": extra.credentials.is_some(), "paused": extra.paused,
            "paused_reason": extra.pause_reason,
            "push_rate_per_second": extra.push_rate_per_second,
            "poll_every_seconds": extra.poll_every_seconds(),
            "reconcile_every_minutes": extra.reconcile_every_minutes(),
        })
    }

    pub fn listing_view(&self, l: &Listing) -> Value {
        let p = self.published.get(&l.id).copied().or_else(|| self.state.published(l.id));
        json!({
            "id": public_id(Kind::Listing, self.id, l.id.0), "store": self.store_code(l.store),
            "external_id": l.external_id, "store_sku": l.store_sku, "sku": self.sku(l.item), "status": l.status,
            "published_quantity": p.map(|p| p.quantity).unwrap_or(0),
            "sell_when_out_of_stock": p.is_some_and(|p| p.sell_when_out_of_stock),
            "show_backorder": p.is_some_and(|p| p.show_backorder),
            "rule": p.and_then(|p| p.rule).map(|r| json!({"id": public_id(Kind::Rule, self.id, r.id.0), "version": r.version})),
        })
    }

    pub fn rule_view(&self, r: &SyncRule) -> Value {
        let items = match &r.items {
            ItemsSelector::All => json!("all"),
            ItemsSelector::Items(ids) => json!({"skus": ids.iter().map(|i| self.sku(*i)).collect::<Vec<_>>()}),
            ItemsSelector::Prefix(p) => json!({"prefix": p}),
        };
        json!({
            "id": public_id(Kind::Rule, self.id, r.id.0), "version": r.version, "name": r.name, "priority": r.priority,
            "enabled": r.enabled, "items": items,
            "warehouses": r.warehouses.iter().map(|w| self.warehouse_code(*w)).collect::<Vec<_>>(),
            "stores": r.stores.iter().map(|s| self.store_code(*s)).collect::<Vec<_>>(),
            "sync_rate_percent": r.sync_rate_percent, "stock_threshold": r.stock_threshold,
            "priority_store": r.priority_store.map(|s| self.store_code(s)), "safety_stock": r.safety_stock,
            "buffer": r.buffer,
        })
    }

    pub fn order_view(&self, o: &Order) -> Value {
        order_view(self.id, o, |i| self.sku(i), &self.store_code(o.store))
    }

    pub fn card_view(&self, c: &ProductionCard) -> Value {
        json!({
            "id": public_id(Kind::Card, self.id, c.id.0), "sku": self.sku(c.item), "warehouse": self.warehouse_code(c.warehouse),
            "quantity": c.quantity, "status": c.status,
            "order": c.for_line.map(|f| public_id(Kind::Order, self.id, f.order.0)),
            "created_at": millis_to_rfc3339(c.created_at.0),
            "components": c.holds.iter().map(|h| json!({"sku": self.sku(h.item), "quantity": h.quantity})).collect::<Vec<_>>(),
        })
    }

    /// `GET /listings/{id}/explain`: every step with its numbers, ids shown as codes.
    pub fn explain_view(&self, listing: ListingId) -> Option<Value> {
        let e = self.state.explain(listing)?;
        let mut steps = serde_json::to_value(&e.steps).unwrap_or(Value::Null);
        if let Value::Array(list) = &mut steps {
            for s in list.iter_mut() {
                self.codes_in(s);
            }
        }
        let text = self.explain_text(&e);
        Some(json!({
            "listing": public_id(Kind::Listing, self.id, listing.0), "sku": e.sku, "store": e.store,
            "published_quantity": e.published.quantity, "sell_when_out_of_stock": e.published.sell_when_out_of_stock,
            "show_backorder": e.published.show_backorder, "steps": steps, "text": text,
        }))
    }

    /// Replaces ids in one serialized step with the codes a seller knows.
    fn codes_in(&self, v: &mut Value) {
        let Value::Object(map) = v else { return };
        for (k, val) in map.iter_mut() {
            match (k.as_str(), &*val) {
                ("warehouse", Value::Number(n)) => {
                    *val = json!(self.warehouse_code(WarehouseId(n.as_u64().unwrap_or(0))))
                }
                ("priority_store", Value::Number(n)) => *val = json!(self.store_code(StoreId(n.as_u64().unwrap_or(0)))),
                ("warehouses", Value::Array(ws)) => {
                    *val = json!(ws
                        .iter()
                        .map(|w| self.warehouse_code(WarehouseId(w.as_u64().unwrap_or(0))))
                        .collect::<Vec<_>>())
                }
                ("rule", Value::Object(r)) => {
                    let id = r.get("id").and_then(Value::as_u64).unwrap_or(0);
                    let version = r.get("version").cloned().unwrap_or(Value::Null);
                    *val = json!({"id": public_id(Kind::Rule, self.id, id), "version": version});
                }
                (_, Value::Array(_)) | (_, Value::Object(_)) => {
                    if let Value::Array(list) = val {
                        for x in list.iter_mut() {
                            self.codes_in(x);
                        }
                    } else {
                        self.codes_in(val);
                    }
                }
                _ => {}
            }
        }
    }

    fn explain_text(&self, e: &Explain) -> String {
        let mut text = e.to_string();
        for w in self.state.warehouses() {
            text = text
                .replace(&format!("#{}:", w.id), &format!("{}:", w.code))
                .replace(&format!("#{},", w.id), &format!("{},", w.code));
            text = text.replace(&format!("#{}]", w.id), &format!("{}]", w.code));
        }
        for s in self.state.stores() {
            text = text.replace(&format!("store #{}", s.id), &format!("store {}", s.code));
        }
        text
    }
}

/// RFC 3339 in UTC from milliseconds since the epoch, without a date library.
pub fn millis_to_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm, public domain description).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// An order as the API shows it; `sku` names its lines' items. A free function so that the
/// HTTP side can render an order's reply from a copy, outside the writer.
pub fn order_view(ws: i64, o: &Order, sku: impl Fn(ItemId) -> String, store_code: &str) -> Value {
    let lines: Vec<Value> = o
        .lines
        .iter()
        .map(|l| {
            json!({
                "sku": l.item.map(&sku), "store_sku": l.store_sku, "quantity": l.quantity,
                "status": l.status.as_str(), "reserved": l.units_held, "made": l.units_made,
                "in_production": l.units_in_cards, "backordered": l.backordered, "requested": l.requested,
                "oversold": l.oversold,
                "listing": l.listing.map(|id| public_id(Kind::Listing, ws, id.0)),
                "rule": l.rule.map(|r| json!({"id": public_id(Kind::Rule, ws, r.id.0), "version": r.version})),
                "production_cards": l.cards.iter().map(|c| public_id(Kind::Card, ws, c.0)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "id": public_id(Kind::Order, ws, o.id.0), "store": store_code, "external_id": o.external_id,
        "status": o.status.as_str(), "payment": o.payment, "pay_within_seconds": o.pay_within_seconds,
        "created_at": millis_to_rfc3339(o.created_at.0), "accept_by": o.accept_by.map(|t| millis_to_rfc3339(t.0)),
        "pay_by": o.pay_by.map(|t| millis_to_rfc3339(t.0)), "lines": lines,
    })
}
