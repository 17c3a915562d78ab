//! The shapes the outside world sends and gets (SPEC section 6), and their public ids.
//!
//! Inputs are parsed from JSON by the HTTP layer and from CSV by the importer straight
//! into these types; views are what every endpoint answers. Field names are SPEC's words.
//! Listings, orders, rules and cards are addressed by public ids that carry their
//! workspace (`ord_7_42`), so an id from another workspace is recognised and answers 404.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stockpool_core::{Channel, ItemKind, ItemStatus, ListingStatus, MakeAction, Qty, ZeroPolicy};

/// Kinds of object with a public id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Listing,
    Order,
    Rule,
    Card,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Listing => "lst",
            Kind::Order => "ord",
            Kind::Rule => "rul",
            Kind::Card => "crd",
        }
    }
}

/// `ord_7_42`: the order 42 of workspace 7.
pub fn public_id(kind: Kind, workspace: i64, id: u64) -> String {
    format!("{}_{workspace}_{id}", kind.prefix())
}

/// The local id behind a public id, if it is of this kind and this workspace.
pub fn parse_public_id(kind: Kind, workspace: i64, s: &str) -> Option<u64> {
    let rest = s.strip_prefix(kind.prefix())?.strip_prefix('_')?;
    let (ws, id) = rest.split_once('_')?;
    if ws.parse::<i64>().ok()? != workspace {
        return None;
    }
    id.parse().ok()
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct WarehouseInput {
    pub code: String,
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ItemInput {
    pub sku: String,
    pub name: Option<String>,
    pub kind: Option<ItemKind>,
    pub unit: Option<String>,
    #[serde(flatten)]
    pub settings: ItemPatch,
}

/// Every item setting, each optional: `PATCH /items/{sku}` and the settings of a new item.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ItemPatch {
    pub name: Option<String>,
    pub unit: Option<String>,
    pub kind: Option<ItemKind>,
    pub status: Option<ItemStatus>,
    pub stock_plus_capacity: Option<bool>,
    pub make_action: Option<MakeAction>,
    pub zero_policy: Option<ZeroPolicy>,
    pub continue_quantity: Option<Qty>,
    pub accept_within_seconds: Option<i64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ComponentInput {
    pub sku: String,
    pub quantity: Qty,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ComponentsInput {
    pub components: Vec<ComponentInput>,
}

/// `{sku, warehouse, delta | set, reason}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct AdjustmentInput {
    pub sku: String,
    pub warehouse: String,
    pub delta: Option<Qty>,
    pub set: Option<Qty>,
    pub reason: Option<String>,
}

/// `"realtime"` or `{"every_minutes": N}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ScheduleInput {
    Named(String),
    Every { every_minutes: u32 },
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct StoreInput {
    pub code: String,
    pub name: String,
    pub channel: Channel,
    pub schedule: Option<ScheduleInput>,
    /// The `webhook` channel's push URL.
    pub url: Option<String>,
    /// Signs the channel's webhooks (for `webhook`, our pushes).
    pub secret: Option<String>,
    /// Credentials for the channel's API.
    pub credentials: Option<Value>,
    /// Overrides the channel's API address (emulators, proxies, tests).
    pub base_url: Option<String>,
    pub enabled: Option<bool>,
    /// A paused store gets no pushes (its orders still come in); default `false`.
    pub paused: Option<bool>,
    /// Pushes a second at most, below the channel's own rate (`PUSH_RATE_PER_SECOND_MAX`).
    pub push_rate_per_second: Option<u32>,
    /// Polled channels: seconds between two polls for orders (SPEC 5a; default 60).
    pub poll_every_seconds: Option<u32>,
    /// Minutes between two reconciliations (read back, re-push drift; default 60).
    pub reconcile_every_minutes: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct StorePatch {
    pub name: Option<String>,
    pub schedule: Option<ScheduleInput>,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub credentials: Option<Value>,
    pub base_url: Option<String>,
    pub enabled: Option<bool>,
    /// `true` stops the store's pushes until `false` (SPEC section 5a); the outbox keeps
    /// the newest figure meanwhile.
    pub paused: Option<bool>,
    pub push_rate_per_second: Option<u32>,
    pub poll_every_seconds: Option<u32>,
    pub reconcile_every_minutes: Option<u32>,
}

/// What the store keeps beside the core's `Store`: connection settings, and whether its
/// pushes are paused.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct StoreExtra {
    pub url: Option<String>,
    pub base_url: Option<String>,
    /// Encrypted at rest by the server's key (`secrets.rs`); never shown.
    pub secret: Option<String>,
    /// Encrypted at rest like `secret` (as one sealed string); never shown.
    pub credentials: Option<Value>,
    /// Pushes stopped (`PATCH /stores/{code}` `"paused": true`). Absent in documents
    /// written before it existed: not paused.
    #[serde(default)]
    pub paused: bool,
    /// The seller's cap on pushes a second (calls, for channels that batch); `None`: the
    /// channel's own rate. It can only slow a channel down: the dispatcher takes the
    /// lower of this and the connector's documented rate.
    #[serde(default)]
    pub push_rate_per_second: Option<u32>,
    /// Seconds between two order polls (polled channels); `None`: `POLL_EVERY_SECONDS_DEFAULT`.
    #[serde(default)]
    pub poll_every_seconds: Option<u32>,
    /// Minutes between two reconciliations; `None`: `RECONCILE_EVERY_MINUTES_DEFAULT`.
    #[serde(default)]
    pub reconcile_every_minutes: Option<u32>,
    /// Why stockpool paused the store on its own (the channel refused its credentials),
    /// as a sentence; cleared when the seller unpauses it or gives new credentials.
    #[serde(default)]
    pub pause_reason: Option<String>,
    /// Where the store's next order poll starts: the connector's own cursor text, kept
    /// durably so that a restart or another node goes on from there (polled channels).
    #[serde(default)]
    pub poll_cursor: Option<String>,
    /// When the last poll that completed started (ms since the epoch).
    #[serde(default)]
    pub polled_at: Option<i64>,
}

impl StoreExtra {
    /// Seconds between two order polls, the default applied.
    pub fn poll_every_seconds(&self) -> u32 {
        self.poll_every_seconds.unwrap_or(POLL_EVERY_SECONDS_DEFAULT)
    }

    /// Minutes between two reconciliations, the default applied.
    pub fn reconcile_every_minutes(&self) -> u32 {
        self.reconcile_every_minutes.unwrap_or(RECONCILE_EVERY_MINUTES_DEFAULT)
    }
}

/// Most pushes a second a store may be set to (`push_rate_per_second`).
pub const PUSH_RATE_PER_SECOND_MAX: u32 = 1_000;

/// SPEC 5a's default `poll_every_seconds`.
pub const POLL_EVERY_SECONDS_DEFAULT: u32 = 60;
/// Longest `poll_every_seconds`: a day. SPEC's upward guard waits at most twice it, and
/// never more than 10 minutes, whatever it is.
pub const POLL_EVERY_SECONDS_MAX: u32 = 86_400;
/// SPEC 5a's default `reconcile_every_minutes`.
pub const RECONCILE_EVERY_MINUTES_DEFAULT: u32 = 60;
/// Longest `reconcile_every_minutes`: a week.
pub const RECONCILE_EVERY_MINUTES_MAX: u32 = 10_080;

impl StoreExtra {
    /// The same settings with `secret` and `credentials` sealed, as they are written.
    pub fn sealed(&self, key: &crate::secrets::SecretKey) -> Result<StoreExtra, crate::StoreError> {
        let mut out = self.clone();
        out.secret = self.secret.as_deref().map(|s| key.seal(s)).transpose()?;
        out.credentials = match &self.credentials {
            Some(c) => Some(Value::String(key.seal(&c.to_string())?)),
            None => None,
        };
        Ok(out)
    }

    /// The settings as loaded, opened. Values written before sealing existed are taken as
    /// they are (and sealed on the next save).
    pub fn opened(mut self, key: &crate::secrets::SecretKey) -> Result<StoreExtra, crate::StoreError> {
        use crate::secrets::SecretKey;
        if let Some(s) = self.secret.as_deref().filter(|s| SecretKey::is_sealed(s)) {
            self.secret = Some(key.open(s)?);
        }
        if let Some(Value::String(s)) =
            self.credentials.as_ref().filter(|c| c.as_str().is_some_and(SecretKey::is_sealed))
        {
            let text = key.open(s)?;
            let value = serde_json::from_str(&text)
                .map_err(|e| crate::StoreError::Corrupt(format!("stored credentials are unreadable: {e}")))?;
            self.credentials = Some(value);
        }
        Ok(self)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ListingInput {
    pub store: String,
    pub external_id: String,
    pub store_sku: Option<String>,
    pub sku: String,
    pub status: Option<ListingStatus>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ListingsInput {
    pub listings: Vec<ListingInput>,
}

/// `"all"`, `{"skus": [...]}` or `{"prefix": "MUG-"}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ItemsInput {
    Named(String),
    Skus { skus: Vec<String> },
    Prefix { prefix: String },
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RuleInput {
    pub name: String,
    pub priority: Option<i32>,
    pub enabled: Option<bool>,
    pub items: Option<ItemsInput>,
    pub warehouses: Vec<String>,
    pub stores: Vec<String>,
    pub sync_rate_percent: Option<i64>,
    pub stock_threshold: Option<Qty>,
    pub priority_store: Option<String>,
    pub safety_stock: Option<Qty>,
    /// `"auto"`: size what each store may show from its recent sales velocity and the
    /// channels' latencies (see docs/simulation.md); `"none"` or absent: off.
    pub buffer: Option<stockpool_core::buffer::Buffer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct OrderLineInput {
    pub store_sku: Option<String>,
    /// The listing's `external_id` on the channel, instead of `store_sku`.
    pub external_id: Option<String>,
    pub quantity: Qty,
}

#[derive(Clone, Debug, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentInput {
    #[default]
    Immediate,
    AfterAcceptance,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct OrderInput {
    pub store: String,
    pub external_id: String,
    pub lines: Vec<OrderLineInput>,
    pub payment: Option<PaymentInput>,
    pub pay_within_seconds: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    Accept,
    Decline,
    Pay,
    Fulfill,
    Cancel,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CardInput {
    pub sku: String,
    pub warehouse: String,
    pub quantity: Qty,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardAction {
    Start,
    Done,
    Cancel,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct SyncInput {
    pub store: Option<String>,
}
