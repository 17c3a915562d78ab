//! The webhook intake (SPEC sections 5 and 5a): `POST /webhooks/{channel}/{store}` and
//! `stockpool inbox replay`, for every channel alike through its `Connector`.
//!
//! A delivery goes: find the store by its code (one across all workspaces), build the
//! store's receiving connector, check the signature (`verify_webhook`; refused: nothing
//! is kept, only `Metrics::webhooks_rejected` moves), keep the raw delivery in the inbox,
//! committed (`Storage::inbox_receive`), then parse it (`parse_webhook`) and apply its
//! events through the writer (`Command::Deliver`), which takes orders by the same path as
//! `POST /api/v1/orders` and marks the delivery in the same transaction. A delivery id
//! seen before answers what the first one became; a kept delivery that never got applied
//! (a crash, a database failure, a body the parser could not read then) is applied by a
//! redelivery or by `replay`, once: a delivery marked `applied` is never applied again.
//!
//! No SQL and no HTTP here: the store's calls and the channels' connectors only. The HTTP
//! crate maps `IntakeError` to statuses.

use std::sync::Arc;

use stockpool_channels::{
    channel_name, ConfigError, Connector, HeaderMap, HttpClient, InboundEvent, PolledOrder, SignatureError,
};
use stockpool_core::{Channel, StoreId};
use stockpool_store::inbox::{Apply, Delivery, InboxEvent, InboxOrder, NewDelivery, Outcome, Received};
use stockpool_store::model::{public_id, Kind, OrderLineInput};
use stockpool_store::{Command, Storage, StoreError};

/// Request headers never kept with a delivery: our own credentials, should a caller send
/// them. A channel's signature headers are kept (they prove nothing without the secret).
pub const HEADERS_NOT_KEPT: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Deliveries `replay` reads from the inbox at a time.
pub const REPLAY_PAGE: i64 = 100;

/// Why a delivery was not taken. Nothing of it is kept.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("there is no channel {channel:?}: use shopify, woocommerce, etsy, amazon, ebay or webhook")]
    UnknownChannel { channel: String },
    /// Also when the store exists on another channel, so that the answer says no more
    /// than the path does.
    #[error("there is no {channel} store {store} to take webhooks")]
    UnknownStore { channel: &'static str, store: String },
    #[error(
        "store code {store} is used in {workspaces} workspaces, so a webhook cannot tell which is meant; give \
         the store a code no other workspace uses"
    )]
    AmbiguousStore { store: String, workspaces: usize },
    #[error("store {store} is a {channel} store, and {channel} sends no webhooks")]
    NoWebhooks { channel: &'static str, store: String },
    #[error("{channel} webhooks are not built yet: store {store} cannot take them")]
    NotBuiltYet { channel: &'static str, store: String },
    /// The store lacks what checking a signature needs (its secret).
    #[error("{0}")]
    Unverifiable(ConfigError),
    #[error("{0}")]
    Signature(#[from] SignatureError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl IntakeError {
    /// Whether the delivery was refused as unauthenticated (counted in
    /// `Metrics::webhooks_rejected`).
    pub fn is_rejected(&self) -> bool {
        matches!(self, IntakeError::Signature(_) | IntakeError::Unverifiable(_))
    }
}

/// What became of a delivery that was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// The inbox row.
    pub delivery: i64,
    pub outcome: Outcome,
    pub detail: Option<String>,
    /// The order it took or names, as the API shows its id.
    pub order: Option<String>,
    /// A redelivery of a delivery id already kept and processed: nothing was done.
    pub seen_before: bool,
}

/// One delivery replay looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    pub delivery: i64,
    pub store: String,
    pub channel: String,
    /// Its outcome before the replay.
    pub before: Outcome,
    pub taken: Taken,
}

/// A store resolved for intake: where it lives and its receiving connector.
struct Receiver {
    ws: i64,
    store: StoreId,
    connector: Arc<dyn Connector>,
}

/// The intake: the store's handle and the HTTP client connectors are built with.
#[derive(Clone)]
pub struct Intake {
    store: Storage,
    http: HttpClient,
}

impl Intake {
    pub fn new(store: Storage) -> Result<Intake, ConfigError> {
        Ok(Intake { store, http: stockpool_channels::http_client()? })
    }

    /// An intake whose connectors call out through `http` (the dispatchers' client).
    pub fn with_client(store: Storage, http: HttpClient) -> Intake {
        Intake { store, http }
    }

    /// Takes one delivery of `channel` for the store with code `store`: verified, kept,
    /// parsed and applied (module docs). `Ok` means the delivery is kept (or was before);
    /// its outcome may still be `failed` (kept for replay).
    pub async fn receive(
        &self,
        channel: &str,
        store: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Taken, IntakeError> {
        let channel = channel_named(channel).ok_or_else(|| IntakeError::UnknownChannel { channel: channel.into() })?;
        let result = self.receive_verified(channel, store, headers, body).await;
        let metrics = self.store.metrics();
        match &result {
            Err(e) if e.is_rejected() => {
                metrics.webhooks_rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(channel = channel_name(channel), store, error = %e, "webhook refused");
            }
            _ => {}
        }
        result
    }

    async fn receive_verified(
        &self,
        channel: Channel,
        code: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Taken, IntakeError> {
        let stores = self.store.stores_by_code(code).await?;
        let unknown = || IntakeError::UnknownStore { channel: channel_name(channel), store: code.to_string() };
        let (ws, store) = match stores.as_slice() {
            [] => return Err(unknown()),
            [one] => *one,
            many => return Err(IntakeError::AmbiguousStore { store: code.to_string(), workspaces: many.len() }),
        };
        let receiver = self.receiver(ws, store, Some(channel)).await?.ok_or_else(unknown)?;
        receiver.connector.verify_webhook(headers, body)?;
        let kept = NewDelivery {
            ws,
            store,
            channel: channel_name(channel).to_string(),
            delivery_id: receiver.connector.delivery_id(headers),
            headers: header_pairs(headers),
            body: body.to_vec(),
        };
        self.store.metrics().webhooks_received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.keep_and_apply(&receiver, &kept, headers).await
    }

    /// Takes one order a poll of store `store` (workspace `ws`) found, as a webhook
    /// delivery is taken: kept raw in the inbox under its delivery id, then parsed
    /// (`parse_polled`) and applied once. The same order in the same state found again
    /// changes nothing.
    pub async fn take_polled(
        &self,
        ws: i64,
        store: StoreId,
        connector: Arc<dyn Connector>,
        order: &PolledOrder,
    ) -> Result<Taken, IntakeError> {
        let receiver = Receiver { ws, store, connector };
        let kept = NewDelivery {
            ws,
            store,
            channel: channel_name(receiver.connector.channel()).to_string(),
            delivery_id: Some(order.delivery_id.clone()),
            headers: Vec::new(),
            body: order.body.clone(),
        };
        self.keep_and_apply(&receiver, &kept, &HeaderMap::new()).await
    }

    /// Keeps `kept` in the inbox (committed) and applies it, unless a delivery with its id
    /// was kept and processed before.
    async fn keep_and_apply(
        &self,
        receiver: &Receiver,
        kept: &NewDelivery,
        headers: &HeaderMap,
    ) -> Result<Taken, IntakeError> {
        match self.store.inbox_receive(kept).await? {
            Received::New(id) => self.apply(receiver, id, headers, &kept.body).await,
            // Kept before and never applied: this is the time to (the stored bytes are
            // the ones that were verified then).
            Received::Seen(d) if d.outcome.unfinished() => {
                self.apply(receiver, d.id, &header_map(&d.headers), &d.body).await
            }
            Received::Seen(d) => Ok(Taken {
                delivery: d.id,
                outcome: d.outcome,
                detail: d.detail,
                order: d.order.map(|o| public_id(Kind::Order, d.ws, o.0)),
                seen_before: true,
            }),
        }
    }

    /// Resolves store `store` of workspace `ws` and builds its receiving connector;
    /// `None` if the store is gone or is not on `channel` (when given).
    async fn receiver(
        &self,
        ws: i64,
        store: StoreId,
        channel: Option<Channel>,
    ) -> Result<Option<Receiver>, IntakeError> {
        let found = self
            .store
            .read(ws, |w| {
                let s = w.state.store(store)?;
                let extra = w.store_extra.get(&store).cloned().unwrap_or_default();
                let settings = crate::store_settings(s, extra);
                Some((s.channel, settings))
            })
            .await?;
        let Some((has, settings)) = found else { return Ok(None) };
        if channel.is_some_and(|c| c != has) {
            return Ok(None);
        }
        let code = settings.code.clone();
        // A polled channel's orders come by its poller; the webhook route refuses them,
        // while replay (no channel named) still parses the polled orders kept.
        if channel.is_some() && stockpool_channels::polls(has) {
            return Err(IntakeError::NoWebhooks { channel: channel_name(has), store: code });
        }
        match stockpool_channels::receiver(has, settings, self.http.clone()) {
            Ok(Some(connector)) => Ok(Some(Receiver { ws, store, connector })),
            Ok(None) => Err(IntakeError::NoWebhooks { channel: channel_name(has), store: code }),
            Err(ConfigError::NotBuiltYet { channel, store }) => Err(IntakeError::NotBuiltYet { channel, store }),
            Err(e) => Err(IntakeError::Unverifiable(e)),
        }
    }

    /// Parses kept delivery `id` and applies it: a body the connector cannot read is
    /// marked `failed` with the parser's sentence; otherwise the writer applies its events
    /// and marks it in one transaction.
    async fn apply(&self, r: &Receiver, id: i64, headers: &HeaderMap, body: &[u8]) -> Result<Taken, IntakeError> {
        // A polled channel's inbox rows are the orders its polls found (`poll.rs`).
        let parsed = if stockpool_channels::polls(r.connector.channel()) {
            r.connector.parse_polled(body)
        } else {
            r.connector.parse_webhook(headers, body)
        };
        let events = match parsed {
            Ok(events) => events,
            Err(e) => {
                let detail = e.to_string();
                self.store.inbox_fail(r.ws, id, &detail).await?;
                tracing::info!(delivery = id, error = %detail, "webhook kept but not parsed");
                return Ok(Taken {
                    delivery: id,
                    outcome: Outcome::Failed,
                    detail: Some(detail),
                    order: None,
                    seen_before: false,
                });
            }
        };
        let apply = Apply { delivery: id, store: r.store, events: events.into_iter().map(inbox_event).collect() };
        let reply = self.store.execute(r.ws, Command::Deliver(apply)).await?;
        let b = &reply.body;
        let outcome = match b["outcome"].as_str() {
            Some("applied") => Outcome::Applied,
            Some("duplicate") => Outcome::Duplicate,
            Some("ignored") => Outcome::Ignored,
            _ => Outcome::Failed,
        };
        Ok(Taken {
            delivery: id,
            outcome,
            detail: b["detail"].as_str().map(str::to_string),
            order: b["order"].as_str().map(str::to_string),
            seen_before: false,
        })
    }

    /// Parses kept deliveries again and applies each once: delivery `id`, or every one
    /// still `pending` or `failed`, oldest first. A delivery already `applied` changes
    /// nothing. One that fails again stays `failed` with the new sentence.
    pub async fn replay(&self, id: Option<i64>) -> Result<Vec<Replayed>, IntakeError> {
        let mut done = Vec::new();
        if let Some(id) = id {
            let d = self
                .store
                .inbox_delivery(id)
                .await?
                .ok_or_else(|| StoreError::not_found("delivery", &id.to_string()))?;
            done.push(self.replay_one(d).await?);
            return Ok(done);
        }
        let mut after = 0;
        loop {
            let page = self.store.inbox_deliveries(true, after, REPLAY_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for d in page {
                done.push(self.replay_one(d).await?);
            }
        }
        Ok(done)
    }

    async fn replay_one(&self, d: Delivery) -> Result<Replayed, IntakeError> {
        let replayed = |taken| Replayed {
            delivery: d.id,
            store: d.store_code.clone(),
            channel: d.channel.clone(),
            before: d.outcome,
            taken,
        };
        if d.outcome == Outcome::Applied {
            return Ok(replayed(Taken {
                delivery: d.id,
                outcome: Outcome::Applied,
                detail: Some("applied before; nothing to do".into()),
                order: d.order.map(|o| public_id(Kind::Order, d.ws, o.0)),
                seen_before: true,
            }));
        }
        let receiver = match self.receiver(d.ws, d.store, None).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                let detail = "its store no longer exists".to_string();
                self.store.inbox_fail(d.ws, d.id, &detail).await?;
                let taken = Taken {
                    delivery: d.id,
                    outcome: Outcome::Failed,
                    detail: Some(detail),
                    order: None,
                    seen_before: false,
                };
                return Ok(replayed(taken));
            }
            Err(IntakeError::Store(e)) => return Err(IntakeError::Store(e)),
            // The store cannot take webhooks any more (its channel or secret changed):
            // the delivery stays as it is, with the reason shown.
            Err(e) => {
                let taken = Taken {
                    delivery: d.id,
                    outcome: d.outcome,
                    detail: Some(e.to_string()),
                    order: None,
                    seen_before: false,
                };
                return Ok(replayed(taken));
            }
        };
        let taken = self.apply(&receiver, d.id, &header_map(&d.headers), &d.body).await?;
        Ok(replayed(taken))
    }
}

/// The channel a path names, spelled as SPEC spells it.
fn channel_named(name: &str) -> Option<Channel> {
    [
        Channel::Shopify,
        Channel::Woocommerce,
        Channel::Etsy,
        Channel::Amazon,
        Channel::Ebay,
        Channel::Webhook,
        Channel::Manual,
    ]
    .into_iter()
    .find(|c| channel_name(*c) == name)
}

/// The headers to keep, in order, minus `HEADERS_NOT_KEPT`; a value that is not text is
/// kept with its invalid bytes replaced.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !HEADERS_NOT_KEPT.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect()
}

/// Kept headers back as a `HeaderMap` for the parser (a pair that is no longer a valid
/// header is left out: it could not have come in as one).
fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            stockpool_channels::HeaderName::from_bytes(name.as_bytes()),
            stockpool_channels::HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// A connector's event in the store's words.
fn inbox_event(e: InboundEvent) -> InboxEvent {
    match e {
        InboundEvent::Order(o) => InboxEvent::Order(InboxOrder {
            external_id: o.external_id,
            lines: o
                .lines
                .into_iter()
                .map(|l| OrderLineInput { store_sku: l.store_sku, external_id: l.external_id, quantity: l.quantity })
                .collect(),
            payment: o.payment,
            pay_within_seconds: o.pay_within_seconds,
        }),
        InboundEvent::Cancel { external_id } => InboxEvent::Cancel { external_id },
        InboundEvent::Ignored(reason) => InboxEvent::Ignored(reason),
    }
}
