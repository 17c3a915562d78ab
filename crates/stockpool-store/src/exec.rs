//! Every write, decided on the cached workspace and turned into the statements of its
//! transaction.
//!
//! `execute` parses a command's input into core types (codes to ids), asks the core,
//! applies the result to the cache, and returns the reply plus the statements that make it
//! durable: ledger rows, guarded stock-level updates, order and card documents, and for
//! every listing whose published quantity moved, the new figure and one pending push in the
//! outbox (latest value wins). The writer runs those statements in the batch's
//! transaction and replies only after commit.

use crate::db::Arg;
use crate::inbox::{Apply, InboxEvent, Outcome};
use crate::model::*;
use crate::workspace::{figure, Pending, PushReason, Ws};
use crate::StoreError;
use serde_json::{json, Value};
use stockpool_core::*;

/// One write to perform.
#[derive(Clone, Debug)]
pub enum Command {
    CreateWarehouse(WarehouseInput),
    CreateItem(ItemInput),
    PatchItem(String, ItemPatch),
    PutComponents(String, ComponentsInput),
    Adjust(AdjustmentInput),
    CreateStore(StoreInput),
    PatchStore(String, StorePatch),
    CreateListings(Vec<ListingInput>),
    CreateRule(RuleInput),
    UpdateRule(String, RuleInput),
    DeleteRule(String),
    CreateOrder(OrderInput),
    Order(String, OrderAction),
    CreateCard(CardInput),
    Card(String, CardAction),
    SyncNow(SyncInput),
    SetSyncEnabled(bool),
    /// Records the outcome of a dispatched batch of pushes (`Settle`).
    Settle(Settle),
    /// Applies a kept webhook delivery's events and records its outcome in the inbox, in
    /// one transaction (`inbox.rs`). Never refused: an event that fails is the delivery's
    /// `failed` outcome, written while nothing else of it is.
    Deliver(Apply),
    /// What a store's connection learned outside a push: a completed poll (its cursor and
    /// its sync record), tokens the channel rotated, or a refusal that pauses the store
    /// (`Connection`). Fenced like a settle.
    Connection(Connection),
    Sweep,
    /// Forgets sales that left the `buffer: auto` window (`velocity.rs`).
    AgeSales,
    /// Several commands, all or nothing: the first refused one refuses the whole batch,
    /// its error naming the command's index (CSV import, demo seed).
    Batch(Vec<Command>),
}

/// The outcome of one dispatched batch: one attempt per listing pushed.
#[derive(Clone, Debug, PartialEq)]
pub struct Settle {
    pub store: StoreId,
    pub attempts: Vec<SettledAttempt>,
    /// The push lease the attempts were made under: the writer records nothing unless the
    /// workspace's lease still has this holder and generation (`lease.rs`). `None`
    /// settles unfenced (tests, and tools that push no channel).
    pub fence: Option<crate::lease::Fence>,
}

/// What a store's connection learned outside a push (`Command::Connection`).
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    pub store: StoreId,
    /// A poll ended: its sync record, and where the next one starts.
    pub poll: Option<PollEnded>,
    /// The store's credentials after the channel rotated its tokens, to seal and keep.
    pub credentials: Option<serde_json::Value>,
    /// The channel refused the store's credentials: pause it with this sentence.
    pub pause: Option<String>,
    /// As `Settle::fence`.
    pub fence: Option<crate::lease::Fence>,
}

/// How one order poll of a store ended: recorded as a sync record of reason `poll`
/// (SPEC section 5a: every poll is one), with no listing, SKU or quantity.
#[derive(Clone, Debug, PartialEq)]
pub struct PollEnded {
    /// `ok`, `retry` or `failed`.
    pub result: SyncResult,
    pub status_code: Option<u16>,
    /// What it found (`"3 orders; 1 new"`) or what went wrong, as a sentence.
    pub detail: Option<String>,
    /// The connector's cursor for the next poll; `None` keeps the one the store has.
    pub cursor: Option<String>,
    /// When the poll started: orders the channel took before then are in.
    pub started_at: Timestamp,
}

/// The `listing_id` and `item_id` a poll's sync record is stored with: no listing or
/// item has id 0, so the record reads back with neither (`SyncRecord::is_poll`).
pub const POLL_RECORD_NO_ID: i64 = 0;

/// One push attempt to one listing and how it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct SettledAttempt {
    pub listing: ListingId,
    /// The figure the push carried (with the rule version that decided it).
    pub pushed: Published,
    /// What the channel was told before, as the dispatcher knew it.
    pub old_quantity: Option<Qty>,
    /// Why the push was made, as the sync record says (`stock_change`, `sync_now`,
    /// `retry`, `stale`, `reconcile`).
    pub reason: &'static str,
    pub result: SyncResult,
    /// The channel's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// The channel's message (failed), or what happened (retry).
    pub detail: Option<String>,
    /// 1 for the first attempt at this figure.
    pub attempt: u32,
    /// Retry: not before this time.
    pub next_attempt_at: Option<Timestamp>,
    /// The `generation` of the outbox row the push was claimed from (0: unknown). A row
    /// that Sync now rewrote after the claim asks for a push of its own, so settling the
    /// older push must not drop it even when the figures match.
    pub claimed_generation: i64,
}

/// SPEC section 6's sync-record results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncResult {
    /// The channel has the figure.
    Ok,
    /// 429, 5xx, a timeout or a lost connection: tried again later.
    Retry,
    /// Refused by the channel; not tried again until the figure moves (or Sync now).
    Failed,
    /// Compare-and-set found `channel_quantity` instead of what we last pushed.
    Stale { channel_quantity: Qty },
    /// Reconciliation read `channel_quantity` instead of what we last pushed.
    Drift { channel_quantity: Qty },
}

impl SyncResult {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncResult::Ok => "ok",
            SyncResult::Retry => "retry",
            SyncResult::Failed => "failed",
            SyncResult::Stale { .. } => "stale",
            SyncResult::Drift { .. } => "drift",
        }
    }
}

/// Longest channel message kept in a sync record's `detail`.
pub const SYNC_DETAIL_BYTES_MAX: usize = 1024;

/// What a command answers: the object, and whether it was created.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub created: bool,
    pub body: Value,
    /// An order's answer, rendered into `body` by `Reply::rendered` outside the writer
    /// (the writer is every order's bottleneck; the JSON is not its work).
    pub(crate) order: Option<Box<OrderSnapshot>>,
}

impl Reply {
    pub fn new(created: bool, body: Value) -> Reply {
        Reply { created, body, order: None }
    }

    fn order(created: bool, ws: &Ws, order: OrderId) -> Reply {
        let o = ws.state.order(order).expect("the order was just taken or found");
        Reply { created, body: Value::Null, order: Some(Box::new(OrderSnapshot::of(ws, o))) }
    }

    /// The reply with its body rendered.
    pub fn rendered(mut self) -> Reply {
        if let Some(o) = self.order.take() {
            self.body = o.view();
        }
        self
    }
}

/// What an order's JSON view needs, copied out of the workspace: the order and the names
/// it shows.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OrderSnapshot {
    ws: i64,
    order: Order,
    store_code: String,
    skus: Vec<(ItemId, String)>,
}

impl OrderSnapshot {
    fn of(ws: &Ws, o: &Order) -> OrderSnapshot {
        let skus = o.lines.iter().filter_map(|l| l.item).map(|i| (i, ws.sku(i))).collect();
        OrderSnapshot { ws: ws.id, order: o.clone(), store_code: ws.store_code(o.store), skus }
    }

    fn view(&self) -> Value {
        let sku = |i: ItemId| self.skus.iter().find(|(id, _)| *id == i).map(|(_, s)| s.clone()).unwrap_or_default();
        crate::workspace::order_view(self.ws, &self.order, sku, &self.store_code)
    }
}

/// One write of a batch: SQL run at once, in order, or a row of a hot table that the
/// writer coalesces with the batch's other rows of that table and writes at the batch's
/// end in a few multi-row statements (`writer.rs`).
#[derive(Clone, Debug)]
pub enum Stmt {
    /// Catalog SQL, run at once in order.
    Sql {
        sql: &'static str,
        args: Vec<Arg>,
    },
    Row(Row),
}

/// A row of a hot table: what every order writes. Rows refer to catalog rows that the
/// batch's in-order SQL wrote before them, so writing them last keeps every reference.
#[derive(Clone, Debug, PartialEq)]
pub enum Row {
    /// One ledger row (append-only).
    Movement {
        ws: i64,
        item: u64,
        warehouse: u64,
        on_hand_delta: i64,
        reserved_delta: i64,
        reason: String,
        reference: String,
        at: i64,
    },
    /// A change of one stock level; the batch's changes of one level are summed and
    /// written with the guard `0 <= reserved <= on_hand` in the statement.
    Level { ws: i64, item: u64, warehouse: u64, on_hand_delta: i64, reserved_delta: i64 },
    /// An order document (the batch's last version of it wins).
    Order { ws: i64, id: u64, store: u64, external_id: String, status: String, doc: String, created_at: i64, at: i64 },
    /// A production card document (last wins).
    Card { ws: i64, id: u64, status: String, doc: String },
    /// One pending push per listing, written when the listing's figure first moves away
    /// from the figure last settled (the listing row's `published_doc`): the figure and
    /// reason of that moment and the settled figure (`old_quantity`). Later moves while
    /// it is pending write nothing: the push carries the newest figure (latest value
    /// wins), which `Ws::load` recomputes from the stored state for every pending listing.
    Outbox {
        ws: i64,
        listing: u64,
        store: u64,
        quantity: i64,
        doc: String,
        at: i64,
        attempts: i64,
        next_attempt_at: Option<i64>,
        generation: i64,
    },
    /// The listing's push is settled (or no longer needed): its outbox row goes.
    OutboxDone { ws: i64, listing: u64 },
}

fn stmt(sql: &'static str, args: Vec<Arg>) -> Stmt {
    Stmt::Sql { sql, args }
}

/// Decides one command on `ws` and returns its reply and statements. On `Err` nothing
/// in `ws` has changed.
pub fn execute(ws: &mut Ws, cmd: &Command, now: Timestamp) -> Result<(Reply, Vec<Stmt>), StoreError> {
    let mut out = Vec::new();
    let reply = match cmd {
        Command::CreateWarehouse(input) => {
            if ws.state.warehouses().iter().any(|w| w.code == input.code) {
                return Err(StoreError::Conflict(format!("warehouse {} already exists", input.code)));
            }
            let w = Warehouse { id: WarehouseId(ws.next_id), code: input.code.clone(), name: input.name.clone() };
            ws.state.add_warehouse(w.clone())?;
            ws.new_id();
            out.push(stmt(
                "INSERT INTO warehouses (workspace_id, id, code, name) VALUES ($1, $2, $3, $4)",
                vec![ws.id.into(), w.id.0.into(), w.code.clone().into(), w.name.clone().into()],
            ));
            refresh_all(ws, now, &mut out);
            Reply::new(true, ws.warehouse_view(&w))
        }
        Command::CreateItem(input) => {
            if ws.state.item_by_sku(&input.sku).is_some() {
                return Err(StoreError::Conflict(format!("item {} already exists", input.sku)));
            }
            let mut item = Item::new(ItemId(ws.next_id), input.sku.clone(), input.kind.unwrap_or(ItemKind::Product));
            if let Some(n) = &input.name {
                item.name = n.clone();
            }
            if let Some(u) = &input.unit {
                item.unit = u.clone();
            }
            patch_item(&mut item, &input.settings);
            ws.state.upsert_item(item.clone())?;
            ws.new_id();
            out.push(item_stmt(ws, &item));
            Reply::new(true, ws.item_view(&item))
        }
        Command::PatchItem(sku, patch) => {
            let mut item = ws.state.item_by_sku(sku).cloned().ok_or_else(|| StoreError::not_found("item", sku))?;
            patch_item(&mut item, patch);
            ws.state.upsert_item(item.clone())?;
            out.push(item_stmt(ws, &item));
            let touched = ws.state.dependents(&[item.id]).into_iter().collect::<Vec<_>>();
            refresh(ws, &ws.state.affected_listings(&touched), now, &mut out);
            Reply::new(false, ws.item_view(&item))
        }
        Command::PutComponents(sku, input) => {
            let item = ws.state.item_by_sku(sku).cloned().ok_or_else(|| StoreError::not_found("item", sku))?;
            let mut comps = Vec::with_capacity(input.components.len());
            for c in &input.components {
                comps.push(Component { item: ws.item_id(&c.sku)?, quantity: c.quantity });
            }
            let old = ws.state.components(item.id).to_vec();
            ws.state.set_components(item.id, comps.clone())?;
            out.push(stmt(
                "DELETE FROM components WHERE workspace_id = $1 AND item_id = $2",
                vec![ws.id.into(), item.id.0.into()],
            ));
            for (i, c) in comps.iter().enumerate() {
                out.push(stmt(
                    "INSERT INTO components (workspace_id, item_id, position, component_id, quantity) VALUES ($1, $2, $3, $4, $5)",
                    vec![ws.id.into(), item.id.0.into(), (i as i64).into(), c.item.0.into(), c.quantity.into()],
                ));
            }
            let mut touched: Vec<ItemId> = vec![item.id];
            touched.extend(old.iter().chain(comps.iter()).map(|c| c.item));
            let listings = ws.state.affected_listings(&[item.id]);
            refresh(ws, &listings, now, &mut out);
            Reply::new(false, ws.item_view(&item))
        }
        Command::Adjust(input) => {
            let item = ws.item_id(&input.sku)?;
            let w = ws.warehouse_id(&input.warehouse)?;
            let adjustment = match (input.delta, input.set) {
                (Some(d), None) => Adjustment::Delta(d),
                (None, Some(s)) => Adjustment::Set(s),
                _ => return Err(StoreError::Invalid("give exactly one of delta or set".into())),
            };
            let reason = input.reason.clone().unwrap_or_else(|| "adjustment".into());
            let change = ws.state.adjust(item, w, adjustment, &reason, now)?;
            apply_change(ws, &change, now, &mut out);
            Reply::new(true, ws.stock_view(item))
        }
        Command::CreateStore(input) => {
            if ws.state.stores().any(|s| s.code == input.code) {
                return Err(StoreError::Conflict(format!("store {} already exists", input.code)));
            }
            if input.channel == Channel::Webhook && input.url.is_none() {
                return Err(StoreError::Invalid("a webhook store needs a url to push to".into()));
            }
            let store = Store {
                id: StoreId(ws.next_id),
                code: input.code.clone(),
                name: input.name.clone(),
                channel: input.channel,
                schedule: schedule(input.schedule.as_ref())?,
                enabled: input.enabled.unwrap_or(true),
            };
            let extra = StoreExtra {
                url: check_url(input.url.clone())?,
                base_url: check_url(input.base_url.clone())?,
                secret: check_secret(input.secret.clone())?,
                credentials: check_credentials(input.credentials.clone())?,
                paused: input.paused.unwrap_or(false),
                push_rate_per_second: check_push_rate(input.push_rate_per_second)?,
                poll_every_seconds: check_every("poll_every_seconds", input.poll_every_seconds, POLL_MAX, "seconds")?,
                reconcile_every_minutes: check_every(
                    "reconcile_every_minutes",
                    input.reconcile_every_minutes,
                    RECONCILE_MAX,
                    "minutes",
                )?,
                ..StoreExtra::default()
            };
            // Everything that can fail comes before the first change to `ws`.
            let row = store_stmt(ws, &store, &extra)?;
            ws.state.upsert_store(store.clone())?;
            ws.state.set_store_latency(store.id, crate::velocity::channel_latency(&store));
            ws.new_id();
            ws.store_extra.insert(store.id, extra);
            out.push(row);
            Reply::new(true, ws.store_view(&store))
        }
        Command::PatchStore(code, patch) => {
            let mut store =
                ws.state.store(ws.store_id(code).map_err(|_| StoreError::not_found("store", code))?).cloned().unwrap();
            let mut extra = ws.store_extra.get(&store.id).cloned().unwrap_or_default();
            if let Some(n) = &patch.name {
                store.name = n.clone();
            }
            if let Some(s) = &patch.schedule {
                store.schedule = schedule(Some(s))?;
            }
            if let Some(e) = patch.enabled {
                store.enabled = e;
            }
            if patch.url.is_some() {
                extra.url = check_url(patch.url.clone())?;
            }
            if patch.base_url.is_some() {
                extra.base_url = check_url(patch.base_url.clone())?;
            }
            if patch.secret.is_some() {
                extra.secret = check_secret(patch.secret.clone())?;
            }
            if patch.credentials.is_some() {
                extra.credentials = check_credentials(patch.credentials.clone())?;
                // New credentials answer a refusal of the old ones.
                extra.pause_reason = None;
            }
            if let Some(p) = patch.paused {
                extra.paused = p;
                if !p {
                    extra.pause_reason = None;
                }
            }
            if patch.push_rate_per_second.is_some() {
                extra.push_rate_per_second = check_push_rate(patch.push_rate_per_second)?;
            }
            if patch.poll_every_seconds.is_some() {
                extra.poll_every_seconds =
                    check_every("poll_every_seconds", patch.poll_every_seconds, POLL_MAX, "seconds")?;
            }
            if patch.reconcile_every_minutes.is_some() {
                extra.reconcile_every_minutes =
                    check_every("reconcile_every_minutes", patch.reconcile_every_minutes, RECONCILE_MAX, "minutes")?;
            }
            // Everything that can fail comes before the first change to `ws`.
            let row = store_stmt(ws, &store, &extra)?;
            ws.state.upsert_store(store.clone())?;
            ws.state.set_store_latency(store.id, crate::velocity::channel_latency(&store));
            ws.store_extra.insert(store.id, extra);
            out.push(row);
            refresh_all(ws, now, &mut out);
            Reply::new(false, ws.store_view(&store))
        }
        Command::CreateListings(inputs) => {
            // All or nothing: validate every listing on a copy first.
            let mut trial = ws.state.clone();
            let mut created = Vec::with_capacity(inputs.len());
            let mut next = ws.next_id;
            for (i, input) in inputs.iter().enumerate() {
                let at = |e: StoreError| if inputs.len() > 1 { e.at(i) } else { e };
                let store = ws.store_id(&input.store).map_err(at)?;
                let item = ws.item_id(&input.sku).map_err(at)?;
                let listing = Listing {
                    id: ListingId(next),
                    store,
                    external_id: input.external_id.clone(),
                    store_sku: input.store_sku.clone().unwrap_or_else(|| input.sku.clone()),
                    item,
                    status: input.status.unwrap_or_default(),
                };
                trial.upsert_listing(listing.clone()).map_err(|e| at(e.into()))?;
                next += 1;
                created.push(listing);
            }
            ws.state = trial;
            ws.next_id = next;
            for l in &created {
                out.push(stmt(
                    "INSERT INTO listings (workspace_id, id, store_id, external_id, store_sku, item_id, status) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    vec![
                        ws.id.into(),
                        l.id.0.into(),
                        l.store.0.into(),
                        l.external_id.clone().into(),
                        l.store_sku.clone().into(),
                        l.item.0.into(),
                        listing_status(l.status).into(),
                    ],
                ));
            }
            let ids: Vec<ListingId> = created.iter().map(|l| l.id).collect();
            refresh(ws, &ids, now, &mut out);
            let views: Vec<Value> = created.iter().map(|l| ws.listing_view(l)).collect();
            let body = if views.len() == 1 && matches!(cmd, Command::CreateListings(v) if v.len() == 1) {
                views.into_iter().next().unwrap()
            } else {
                json!({ "data": views })
            };
            Reply::new(true, body)
        }
        Command::CreateRule(input) => {
            let rule = rule_from(ws, RuleId(ws.next_id), input)?;
            let r = ws.state.save_rule(rule)?;
            ws.new_id();
            rule_stmts(ws, r, now, &mut out);
            refresh_all(ws, now, &mut out);
            Reply::new(true, ws.rule_view(ws.state.rule(r.id).unwrap()))
        }
        Command::UpdateRule(id, input) => {
            let rid = RuleId(parse_public_id(Kind::Rule, ws.id, id).ok_or_else(|| StoreError::not_found("rule", id))?);
            if ws.state.rule(rid).is_none() {
                return Err(StoreError::not_found("rule", id));
            }
            let rule = rule_from(ws, rid, input)?;
            let r = ws.state.save_rule(rule)?;
            rule_stmts(ws, r, now, &mut out);
            refresh_all(ws, now, &mut out);
            Reply::new(false, ws.rule_view(ws.state.rule(r.id).unwrap()))
        }
        Command::DeleteRule(id) => {
            let rid = RuleId(parse_public_id(Kind::Rule, ws.id, id).ok_or_else(|| StoreError::not_found("rule", id))?);
            let rule = ws.state.delete_rule(rid).ok_or_else(|| StoreError::not_found("rule", id))?;
            out.push(stmt("DELETE FROM rules WHERE workspace_id = $1 AND id = $2", vec![ws.id.into(), rid.0.into()]));
            refresh_all(ws, now, &mut out);
            Reply::new(false, ws.rule_view(&rule))
        }
        Command::CreateOrder(input) => {
            let store = ws.store_id(&input.store)?;
            let payment = match input.payment.clone().unwrap_or_default() {
                PaymentInput::Immediate => Payment::Immediate,
                PaymentInput::AfterAcceptance => Payment::AfterAcceptance,
            };
            let order = OrderArgs {
                store,
                external_id: &input.external_id,
                lines: &input.lines,
                payment,
                pay_within_seconds: input.pay_within_seconds,
                source: OrderSource::Api,
            };
            let (order, created) = take_order(ws, &order, now, &mut out)?;
            Reply::order(created, ws, order)
        }
        Command::Order(id, action) => {
            let oid =
                OrderId(parse_public_id(Kind::Order, ws.id, id).ok_or_else(|| StoreError::not_found("order", id))?);
            if ws.state.order(oid).is_none() {
                return Err(StoreError::not_found("order", id));
            }
            let change = match action {
                OrderAction::Accept => ws.state.accept(oid, now),
                OrderAction::Decline => ws.state.decline(oid, now),
                OrderAction::Pay => ws.state.pay(oid, now),
                OrderAction::Fulfill => ws.state.fulfill(oid, now),
                OrderAction::Cancel => ws.state.cancel(oid, now),
            }?;
            apply_change(ws, &change, now, &mut out);
            Reply::order(false, ws, oid)
        }
        Command::CreateCard(input) => {
            let item = ws.item_id(&input.sku)?;
            let w = ws.warehouse_id(&input.warehouse)?;
            let (card, change) = ws.state.create_card(item, w, input.quantity, now)?;
            apply_change(ws, &change, now, &mut out);
            Reply::new(true, ws.card_view(ws.state.card(card).unwrap()))
        }
        Command::Card(id, action) => {
            let cid = CardId(
                parse_public_id(Kind::Card, ws.id, id).ok_or_else(|| StoreError::not_found("production card", id))?,
            );
            if ws.state.card(cid).is_none() {
                return Err(StoreError::not_found("production card", id));
            }
            let change = match action {
                CardAction::Start => ws.state.start_card(cid, now),
                CardAction::Done => ws.state.finish_card(cid, now),
                CardAction::Cancel => ws.state.cancel_card(cid, now),
            }?;
            apply_change(ws, &change, now, &mut out);
            Reply::new(false, ws.card_view(ws.state.card(cid).unwrap()))
        }
        Command::SyncNow(input) => {
            let stores: Vec<StoreId> = match &input.store {
                Some(code) => vec![ws.store_id(code)?],
                None => ws.state.stores().map(|s| s.id).collect(),
            };
            let listings: Vec<ListingId> =
                ws.state.listings().filter(|l| stores.contains(&l.store)).map(|l| l.id).collect();
            let published = ws.state.recompute(&listings);
            for p in &published {
                ws.published.insert(p.listing, *p);
                // Sync now pushes every listing, also one whose figure the channel has.
                let meta = Pending::fresh(now, PushReason::SyncNow, ws.seq + 1);
                write_pending(ws, p.listing, meta, &mut out);
            }
            Reply::new(false, json!({"queued": published.len()}))
        }
        Command::SetSyncEnabled(on) => {
            ws.state.set_sync_enabled(*on);
            out.push(stmt("UPDATE workspaces SET sync_enabled = $1 WHERE id = $2", vec![(*on).into(), ws.id.into()]));
            refresh_all(ws, now, &mut out);
            Reply::new(false, json!({"sync_enabled": on}))
        }
        Command::Batch(cmds) => {
            let saved = ws.clone();
            let mut bodies = Vec::with_capacity(cmds.len());
            for (i, c) in cmds.iter().enumerate() {
                match execute(ws, c, now) {
                    Ok((r, stmts)) => {
                        out.extend(stmts);
                        bodies.push(r.rendered().body);
                    }
                    Err(e) => {
                        *ws = saved;
                        return Err(e.at(i));
                    }
                }
            }
            Reply::new(true, json!({"data": bodies}))
        }
        Command::Deliver(apply) => deliver(ws, apply, now, &mut out),
        Command::Settle(settle) => {
            for a in &settle.attempts {
                settle_attempt(ws, settle.store, a, now, &mut out);
            }
            Reply::new(false, json!({"settled": settle.attempts.len()}))
        }
        Command::Connection(c) => {
            let Some(store) = ws.state.store(c.store).cloned() else {
                return Err(StoreError::not_found("store", &c.store.0.to_string()));
            };
            let mut extra = ws.store_extra.get(&store.id).cloned().unwrap_or_default();
            if let Some(p) = &c.poll {
                if p.cursor.is_some() {
                    extra.poll_cursor = p.cursor.clone();
                }
                if p.result == SyncResult::Ok {
                    extra.polled_at = Some(p.started_at.0);
                }
            }
            if let Some(credentials) = &c.credentials {
                extra.credentials = Some(credentials.clone());
            }
            if let Some(reason) = &c.pause {
                extra.paused = true;
                extra.pause_reason = Some(reason.clone());
            }
            // Everything that can fail comes before the first change to `ws`.
            let row = store_stmt(ws, &store, &extra)?;
            ws.store_extra.insert(store.id, extra);
            out.push(row);
            if let Some(p) = &c.poll {
                poll_record(ws, store.id, p, now, &mut out);
            }
            Reply::new(false, ws.store_view(&store))
        }
        Command::AgeSales => {
            let items = ws.sales.age(&mut ws.state, now);
            let listings = ws.state.affected_listings(&items);
            refresh(ws, &listings, now, &mut out);
            Reply::new(false, json!({"items": items.len()}))
        }
        Command::Sweep => {
            let change = ws.state.sweep(now);
            let n = change.orders.len();
            if !change.is_empty() {
                apply_change(ws, &change, now, &mut out);
            }
            Reply::new(false, json!({"expired": n}))
        }
    };
    Ok((reply, out))
}

/// An order to take, from the order API or a channel.
struct OrderArgs<'a> {
    store: StoreId,
    external_id: &'a str,
    lines: &'a [OrderLineInput],
    payment: Payment,
    pay_within_seconds: Option<i64>,
    source: OrderSource,
}

/// Takes an order (SPEC section 4): resolves each line's listing by `external_id`, then
/// by `store_sku` (a line that names none stays `unmapped`), asks the core, and applies the
/// change. Returns the order and whether it is new: the store's order with the same
/// `external_id` is answered as it is, changing nothing. On `Err` nothing changed.
fn take_order(
    ws: &mut Ws,
    o: &OrderArgs<'_>,
    now: Timestamp,
    out: &mut Vec<Stmt>,
) -> Result<(OrderId, bool), StoreError> {
    let mut lines = Vec::with_capacity(o.lines.len());
    for (i, l) in o.lines.iter().enumerate() {
        // A channel's line may name both (WooCommerce: the product or variation id, and the
        // SKU when it has one): the id is tried first, then the SKU; a line neither finds
        // stays `unmapped`.
        let listing = match (&l.store_sku, &l.external_id) {
            (Some(sku), None) => ws.state.listing_by_store_sku(o.store, sku),
            (sku, Some(ext)) => ws
                .state
                .listing_by_external_id(o.store, ext)
                .or_else(|| sku.as_ref().and_then(|s| ws.state.listing_by_store_sku(o.store, s))),
            (None, None) => return Err(StoreError::Invalid(format!("line {i}: give store_sku or external_id"))),
        };
        let store_sku =
            l.store_sku.clone().or_else(|| listing.map(|x| x.store_sku.clone())).or_else(|| l.external_id.clone());
        lines.push(NewLine {
            store_sku: store_sku.unwrap_or_default(),
            listing: listing.map(|x| x.id),
            quantity: l.quantity,
        });
    }
    let new = NewOrder {
        store: o.store,
        external_id: o.external_id.to_string(),
        lines,
        payment: o.payment,
        pay_within_seconds: o.pay_within_seconds,
        source: o.source,
    };
    match ws.state.take_order(&new, now)? {
        Intake::Created { order, change } => {
            // Demand for `buffer: auto` first, so this change's recompute sees it.
            let mut sold = Vec::new();
            for o in &change.orders {
                sold.extend(ws.sales.record(&mut ws.state, o, now));
            }
            apply_change(ws, &change, now, out);
            // Only items whose stock did not move are left to recompute.
            let touched = change.touched_items();
            sold.retain(|i| !touched.contains(i));
            if !sold.is_empty() {
                let listings = ws.state.affected_listings(&sold);
                refresh(ws, &listings, now, out);
            }
            Ok((order, true))
        }
        Intake::Duplicate { order } => Ok((order, false)),
    }
}

/// What one inbound event did.
enum Applied {
    /// It changed the workspace (through this order; `true`: it took the order in).
    Changed(OrderId, bool),
    /// It had already happened.
    Duplicate(OrderId),
    /// It asks nothing of us.
    Ignored(String),
}

/// One event of a delivery. On `Err` nothing changed.
fn apply_event(
    ws: &mut Ws,
    store: StoreId,
    event: &InboxEvent,
    now: Timestamp,
    out: &mut Vec<Stmt>,
) -> Result<Applied, StoreError> {
    match event {
        InboxEvent::Order(o) => {
            let args = OrderArgs {
                store,
                external_id: &o.external_id,
                lines: &o.lines,
                payment: o.payment,
                pay_within_seconds: o.pay_within_seconds,
                source: OrderSource::Channel,
            };
            let (order, created) = take_order(ws, &args, now, out)?;
            Ok(if created { Applied::Changed(order, true) } else { Applied::Duplicate(order) })
        }
        InboxEvent::Cancel { external_id } => {
            let order = ws.state.order_by_external_id(store, external_id).map(|o| (o.id, o.status));
            let Some((order, status)) = order else {
                return Err(StoreError::Invalid(format!(
                    "store {} has no order {external_id:?} to cancel yet; replay this delivery once the order is in",
                    ws.store_code(store)
                )));
            };
            if status == OrderStatus::Cancelled {
                return Ok(Applied::Duplicate(order));
            }
            let change = ws.state.cancel(order, now)?;
            apply_change(ws, &change, now, out);
            Ok(Applied::Changed(order, false))
        }
        InboxEvent::Ignored(reason) => Ok(Applied::Ignored(reason.clone())),
    }
}

/// `Command::Deliver`: every event of the delivery or none (a failing event rolls back
/// the ones before it), then the inbox row's outcome in the same transaction.
fn deliver(ws: &mut Ws, apply: &Apply, now: Timestamp, out: &mut Vec<Stmt>) -> Reply {
    // A single event changes nothing when it fails; only several need a copy to go back to.
    let saved = (apply.events.len() > 1).then(|| ws.clone());
    let mut stmts = Vec::new();
    let (mut outcome, mut detail, mut order, mut taken) = (Outcome::Ignored, None, None, false);
    if apply.events.is_empty() {
        detail = Some("the delivery carries no event".to_string());
    }
    for event in &apply.events {
        match apply_event(ws, apply.store, event, now, &mut stmts) {
            Ok(Applied::Changed(o, took)) => {
                outcome = Outcome::Applied;
                order = Some(o);
                taken |= took;
            }
            Ok(Applied::Duplicate(o)) => {
                if outcome != Outcome::Applied {
                    outcome = Outcome::Duplicate;
                }
                order = order.or(Some(o));
            }
            Ok(Applied::Ignored(reason)) => {
                if outcome == Outcome::Ignored {
                    detail = Some(reason);
                }
            }
            Err(e) => {
                if let Some(saved) = saved {
                    *ws = saved;
                }
                stmts.clear();
                (outcome, detail, order, taken) = (Outcome::Failed, Some(e.to_string()), None, false);
                break;
            }
        }
    }
    if outcome != Outcome::Ignored && outcome != Outcome::Failed {
        detail = None;
    }
    out.extend(stmts);
    let (sql, args) = crate::inbox::outcome_stmt(ws.id, apply.delivery, outcome, detail.as_deref(), order, now);
    out.push(stmt(sql, args));
    let body = json!({
        "delivery": apply.delivery,
        "outcome": outcome.as_str(),
        "detail": detail,
        "order": order.map(|o| public_id(Kind::Order, ws.id, o.0)),
    });
    // `created`: the delivery took a new order in (the writer counts it).
    Reply::new(taken, body)
}

fn patch_item(item: &mut Item, p: &ItemPatch) {
    if let Some(v) = &p.name {
        item.name = v.clone();
    }
    if let Some(v) = &p.unit {
        item.unit = v.clone();
    }
    if let Some(v) = p.kind {
        item.kind = v;
    }
    if let Some(v) = p.status {
        item.status = v;
    }
    if let Some(v) = p.stock_plus_capacity {
        item.stock_plus_capacity = v;
    }
    if let Some(v) = p.make_action {
        item.make_action = v;
    }
    if let Some(v) = p.zero_policy {
        item.zero_policy = v;
    }
    if let Some(v) = p.continue_quantity {
        item.continue_quantity = v;
    }
    if let Some(v) = p.accept_within_seconds {
        item.accept_within_seconds = v;
    }
}

fn item_stmt(ws: &Ws, item: &Item) -> Stmt {
    stmt(
        "INSERT INTO items (workspace_id, id, sku, doc) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace_id, id) DO UPDATE SET sku = excluded.sku, doc = excluded.doc",
        vec![ws.id.into(), item.id.0.into(), item.sku.clone().into(), to_json(item).into()],
    )
}

fn store_stmt(ws: &Ws, store: &Store, extra: &StoreExtra) -> Result<Stmt, StoreError> {
    let extra = extra.sealed(&ws.key)?;
    Ok(stmt(
        "INSERT INTO stores (workspace_id, id, code, doc) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace_id, id) DO UPDATE SET code = excluded.code, doc = excluded.doc",
        vec![ws.id.into(), store.id.0.into(), store.code.clone().into(), to_json(&(store, extra)).into()],
    ))
}

fn schedule(s: Option<&ScheduleInput>) -> Result<Schedule, StoreError> {
    match s {
        None => Ok(Schedule::Realtime),
        Some(ScheduleInput::Named(n)) if n == "realtime" => Ok(Schedule::Realtime),
        Some(ScheduleInput::Named(n)) => {
            Err(StoreError::Invalid(format!("schedule {n:?} is unknown: use \"realtime\" or {{\"every_minutes\": N}}")))
        }
        Some(ScheduleInput::Every { every_minutes }) if (1..=1440).contains(every_minutes) => {
            Ok(Schedule::EveryMinutes(*every_minutes))
        }
        Some(ScheduleInput::Every { every_minutes }) => {
            Err(StoreError::Invalid(format!("every_minutes must be between 1 and 1440, got {every_minutes}")))
        }
    }
}

fn check_push_rate(rate: Option<u32>) -> Result<Option<u32>, StoreError> {
    match rate {
        Some(r) if !(1..=crate::model::PUSH_RATE_PER_SECOND_MAX).contains(&r) => Err(StoreError::Invalid(format!(
            "push_rate_per_second must be 1 to {} pushes a second, not {r}",
            crate::model::PUSH_RATE_PER_SECOND_MAX
        ))),
        r => Ok(r),
    }
}

const POLL_MAX: u32 = crate::model::POLL_EVERY_SECONDS_MAX;
const RECONCILE_MAX: u32 = crate::model::RECONCILE_EVERY_MINUTES_MAX;

/// A store's `poll_every_seconds` or `reconcile_every_minutes`: 1 to `max` `unit`.
fn check_every(field: &str, value: Option<u32>, max: u32, unit: &str) -> Result<Option<u32>, StoreError> {
    match value {
        Some(v) if !(1..=max).contains(&v) => {
            Err(StoreError::Invalid(format!("{field} must be 1 to {max} {unit}, not {v}")))
        }
        v => Ok(v),
    }
}

fn check_url(url: Option<String>) -> Result<Option<String>, StoreError> {
    match url {
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 2048 => {
            Err(StoreError::Invalid(format!("{u:?} is not an http(s) URL of at most 2048 characters")))
        }
        other => Ok(other),
    }
}

fn check_secret(secret: Option<String>) -> Result<Option<String>, StoreError> {
    use crate::secrets::SECRET_BYTES_MAX;
    match secret {
        Some(s) if s.is_empty() || s.len() > SECRET_BYTES_MAX => {
            Err(StoreError::Invalid(format!("secret must have 1 to {SECRET_BYTES_MAX} bytes")))
        }
        other => Ok(other),
    }
}

fn check_credentials(credentials: Option<Value>) -> Result<Option<Value>, StoreError> {
    use crate::secrets::SECRET_BYTES_MAX;
    match credentials {
        Some(c) if !c.is_object() || c.to_string().len() > SECRET_BYTES_MAX => {
            Err(StoreError::Invalid(format!("credentials must be a JSON object of at most {SECRET_BYTES_MAX} bytes")))
        }
        other => Ok(other),
    }
}

fn listing_status(s: ListingStatus) -> &'static str {
    match s {
        ListingStatus::Active => "active",
        ListingStatus::Draft => "draft",
    }
}

fn rule_from(ws: &Ws, id: RuleId, input: &RuleInput) -> Result<SyncRule, StoreError> {
    let items = match &input.items {
        None => ItemsSelector::All,
        Some(ItemsInput::Named(n)) if n == "all" => ItemsSelector::All,
        Some(ItemsInput::Named(n)) => {
            return Err(StoreError::Invalid(format!(
                "items {n:?} is unknown: use \"all\", {{\"skus\": [...]}} or {{\"prefix\": \"...\"}}"
            )))
        }
        Some(ItemsInput::Skus { skus }) => {
            ItemsSelector::Items(skus.iter().map(|s| ws.item_id(s)).collect::<Result<_, _>>()?)
        }
        Some(ItemsInput::Prefix { prefix }) => ItemsSelector::Prefix(prefix.clone()),
    };
    let rate = input.sync_rate_percent.unwrap_or(100);
    if !(1..=100).contains(&rate) {
        return Err(RuleError::RateOutOfRange { got: rate }.into());
    }
    let priority_store = match &input.priority_store {
        Some(code) => {
            if !input.stores.contains(code) {
                return Err(RuleError::PriorityStoreNotInRule { store: code.clone() }.into());
            }
            Some(ws.store_id(code)?)
        }
        None => None,
    };
    Ok(SyncRule {
        id,
        version: 0,
        name: input.name.clone(),
        priority: input.priority.unwrap_or(100),
        enabled: input.enabled.unwrap_or(true),
        items,
        warehouses: input.warehouses.iter().map(|w| ws.warehouse_id(w)).collect::<Result<_, _>>()?,
        stores: input.stores.iter().map(|s| ws.store_id(s)).collect::<Result<_, _>>()?,
        sync_rate_percent: rate as u8,
        stock_threshold: input.stock_threshold.unwrap_or(0),
        priority_store,
        safety_stock: input.safety_stock,
        buffer: input.buffer.unwrap_or_default(),
        created_seq: 0,
    })
}

fn rule_stmts(ws: &Ws, r: RuleRef, now: Timestamp, out: &mut Vec<Stmt>) {
    let rule = ws.state.rule(r.id).expect("saved rule");
    let doc = to_json(rule);
    out.push(stmt(
        "INSERT INTO rules (workspace_id, id, version, doc) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace_id, id) DO UPDATE SET version = excluded.version, doc = excluded.doc",
        vec![ws.id.into(), r.id.0.into(), i64::from(r.version).into(), doc.clone().into()],
    ));
    out.push(stmt(
        "INSERT INTO rule_versions (workspace_id, id, version, doc, created_at) VALUES ($1, $2, $3, $4, $5)",
        vec![ws.id.into(), r.id.0.into(), i64::from(r.version).into(), doc.into(), now.0.into()],
    ));
}

/// Persists a core decision and applies it to the cache: ledger rows, guarded stock
/// levels, orders, cards, and the pushes it causes.
fn apply_change(ws: &mut Ws, change: &Change, now: Timestamp, out: &mut Vec<Stmt>) {
    // Stock levels: the net of the change's movements per level (the writer sums the
    // batch's changes again and writes each level once, guarded).
    let mut net: Vec<(ItemId, WarehouseId, Qty, Qty)> = Vec::new();
    for m in &change.movements {
        out.push(Stmt::Row(Row::Movement {
            ws: ws.id,
            item: m.item.0,
            warehouse: m.warehouse.0,
            on_hand_delta: m.on_hand_delta,
            reserved_delta: m.reserved_delta,
            reason: to_json(&m.reason).trim_matches('"').to_string(),
            reference: to_json(&m.reference),
            at: now.0,
        }));
        match net.iter_mut().find(|(i, w, _, _)| *i == m.item && *w == m.warehouse) {
            Some(n) => {
                n.2 += m.on_hand_delta;
                n.3 += m.reserved_delta;
            }
            None => net.push((m.item, m.warehouse, m.on_hand_delta, m.reserved_delta)),
        }
    }
    for (item, w, on_hand_delta, reserved_delta) in net {
        out.push(Stmt::Row(Row::Level { ws: ws.id, item: item.0, warehouse: w.0, on_hand_delta, reserved_delta }));
    }
    for o in &change.orders {
        out.push(Stmt::Row(Row::Order {
            ws: ws.id,
            id: o.id.0,
            store: o.store.0,
            external_id: o.external_id.clone(),
            status: o.status.as_str().to_string(),
            doc: to_json(o),
            created_at: o.created_at.0,
            at: now.0,
        }));
    }
    for c in &change.cards {
        out.push(Stmt::Row(Row::Card {
            ws: ws.id,
            id: c.id.0,
            status: to_json(&c.status).trim_matches('"').to_string(),
            doc: to_json(c),
        }));
    }
    ws.state.apply(change);
    let listings = ws.state.affected_listings(&change.touched_items());
    refresh(ws, &listings, now, out);
}

fn refresh_all(ws: &mut Ws, now: Timestamp, out: &mut Vec<Stmt>) {
    let all: Vec<ListingId> = ws.state.listings().map(|l| l.id).collect();
    refresh(ws, &all, now, out);
}

/// Recomputes `listings`; each whose figure moved away from what its channel was last
/// told gets one pending push (latest value wins); one whose figure came back to it
/// needs none.
fn refresh(ws: &mut Ws, listings: &[ListingId], now: Timestamp, out: &mut Vec<Stmt>) {
    for p in ws.state.recompute(listings) {
        let old = ws.published.insert(p.listing, p);
        if old.map(|o| figure(&o)) == Some(figure(&p)) {
            continue;
        }
        let at_settled = ws.settled.get(&p.listing).map(figure) == Some(figure(&p));
        match (ws.pending.contains_key(&p.listing), at_settled) {
            // A round trip to what the channel has: no push.
            (true, true) => {
                ws.pending.remove(&p.listing);
                out.push(Stmt::Row(Row::OutboxDone { ws: ws.id, listing: p.listing.0 }));
            }
            // Already queued: the push will carry this newer figure.
            (true, false) | (false, true) => {}
            (false, false) => {
                let meta = Pending::fresh(now, PushReason::StockChange, ws.seq + 1);
                write_pending(ws, p.listing, meta, out);
            }
        }
    }
}

/// Marks `listing` pending with `meta` and writes its outbox row: the figure it has now
/// (`Ws::published`), the reason, and the settled figure it replaces.
fn write_pending(ws: &mut Ws, listing: ListingId, meta: Pending, out: &mut Vec<Stmt>) {
    /// What a pending push says (serialized straight from borrowed parts: this runs for
    /// every listing an order first moves).
    #[derive(serde::Serialize)]
    struct PushDoc<'a> {
        old_quantity: Option<Qty>,
        published: &'a Published,
        reason: PushReason,
    }
    let Some(p) = ws.published.get(&listing).copied() else { return };
    let Some(store) = ws.state.listing(listing).map(|l| l.store) else { return };
    ws.pending.insert(listing, meta);
    let old_quantity = ws.settled.get(&listing).map(|s| s.quantity);
    let doc = to_json(&PushDoc { old_quantity, published: &p, reason: meta.reason });
    out.push(Stmt::Row(Row::Outbox {
        ws: ws.id,
        listing: listing.0,
        store: store.0,
        quantity: p.quantity,
        doc,
        at: meta.queued_at.0,
        attempts: i64::from(meta.attempts),
        next_attempt_at: meta.next_attempt_at.map(|t| t.0),
        generation: meta.generation,
    }));
}

/// Records one push attempt and what it settles: the sync record; for `ok`, `stale` and
/// `drift` the figure the channel now has, written into the listing row; and the outbox
/// row, which goes once the channel has the newest figure and stays (or comes back)
/// while the figure moved again since the push was claimed.
/// The sync record of one order poll (`PollEnded`).
fn poll_record(ws: &Ws, store: StoreId, p: &PollEnded, now: Timestamp, out: &mut Vec<Stmt>) {
    let detail = p.detail.as_deref().map(|d| truncate(d, SYNC_DETAIL_BYTES_MAX).to_string());
    out.push(stmt(
        "INSERT INTO sync_records (workspace_id, listing_id, store_id, item_id, old_quantity, new_quantity, reason, \
         rule_id, rule_version, result, detail, created_at, status_code, attempt) \
         VALUES ($1, $2, $3, $4, NULL, 0, 'poll', NULL, NULL, $5, NULLIF($6, ''), $7, $8, 1)",
        vec![
            ws.id.into(),
            POLL_RECORD_NO_ID.into(),
            store.0.into(),
            POLL_RECORD_NO_ID.into(),
            p.result.as_str().into(),
            detail.unwrap_or_default().into(),
            now.0.into(),
            p.status_code.map(i64::from).into(),
        ],
    ));
}

fn settle_attempt(ws: &mut Ws, store: StoreId, a: &SettledAttempt, now: Timestamp, out: &mut Vec<Stmt>) {
    let Some(listing) = ws.state.listing(a.listing).filter(|l| l.store == store).cloned() else { return };
    let detail = a.detail.as_deref().map(|d| truncate(d, SYNC_DETAIL_BYTES_MAX).to_string());
    out.push(stmt(
        "INSERT INTO sync_records (workspace_id, listing_id, store_id, item_id, old_quantity, new_quantity, reason, \
         rule_id, rule_version, result, detail, created_at, status_code, attempt) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($11, ''), $12, $13, $14)",
        vec![
            ws.id.into(),
            a.listing.0.into(),
            store.0.into(),
            listing.item.0.into(),
            a.old_quantity.into(),
            a.pushed.quantity.into(),
            a.reason.into(),
            a.pushed.rule.map(|r| r.id.0 as i64).into(),
            a.pushed.rule.map(|r| i64::from(r.version)).into(),
            a.result.as_str().into(),
            // Text is always bound as text (an empty one stored as NULL): PostgreSQL
            // prepares the statement once, with the first call's parameter types.
            detail.unwrap_or_default().into(),
            now.0.into(),
            a.status_code.map(i64::from).into(),
            i64::from(a.attempt).into(),
        ],
    ));
    let channel_has = match a.result {
        SyncResult::Ok => Some(a.pushed),
        SyncResult::Stale { channel_quantity } | SyncResult::Drift { channel_quantity } => {
            Some(Published { quantity: channel_quantity, ..a.pushed })
        }
        SyncResult::Retry | SyncResult::Failed => None,
    };
    let current = ws.published.get(&a.listing).copied();
    if let Some(told) = channel_has {
        ws.settled.insert(a.listing, told);
        out.push(stmt(
            "UPDATE listings SET published_quantity = $3, published_doc = $4 WHERE workspace_id = $1 AND id = $2",
            vec![ws.id.into(), a.listing.0.into(), told.quantity.into(), to_json(&told).into()],
        ));
        let sync_now_since_claim = ws
            .pending
            .get(&a.listing)
            .is_some_and(|m| m.reason == PushReason::SyncNow && m.generation > a.claimed_generation);
        if sync_now_since_claim {
            // Sync now came after this push was claimed: its row stays as it is, for the
            // push Sync now asked for.
        } else if current.map(|c| figure(&c)) == Some(figure(&told)) {
            if ws.pending.remove(&a.listing).is_some() {
                out.push(Stmt::Row(Row::OutboxDone { ws: ws.id, listing: a.listing.0 }));
            }
        } else {
            // The figure moved since the push was claimed (or the channel had another):
            // a push of the newest figure stays queued, at once.
            let meta = match ws.pending.get(&a.listing) {
                Some(m) => Pending::fresh(m.queued_at, m.reason, ws.seq + 1),
                // A read-back found the channel showing something else: re-pushed as
                // reconciliation.
                None if matches!(a.result, SyncResult::Drift { .. }) => {
                    Pending::fresh(now, PushReason::Reconcile, ws.seq + 1)
                }
                None => Pending::fresh(now, PushReason::StockChange, ws.seq + 1),
            };
            write_pending(ws, a.listing, meta, out);
        }
        return;
    }
    let Some(meta) = ws.pending.get(&a.listing).copied() else { return };
    let moved = current.map(|c| figure(&c)) != Some(figure(&a.pushed));
    match a.result {
        // Refused: not tried again until the figure moves, unless it already has.
        SyncResult::Failed if !moved => {
            ws.pending.remove(&a.listing);
            out.push(Stmt::Row(Row::OutboxDone { ws: ws.id, listing: a.listing.0 }));
        }
        SyncResult::Failed => {
            let meta = Pending { attempts: 0, next_attempt_at: None, generation: ws.seq + 1, ..meta };
            write_pending(ws, a.listing, meta, out);
        }
        _ => {
            let meta =
                Pending { attempts: a.attempt, next_attempt_at: a.next_attempt_at, generation: ws.seq + 1, ..meta };
            write_pending(ws, a.listing, meta, out);
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("core types serialize")
}
