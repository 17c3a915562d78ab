//! The inbox: every webhook delivery kept raw before it is parsed (SPEC sections 5a and 8).
//!
//! The intake (`stockpool-worker`'s `intake.rs`) writes a delivery here, committed, as
//! soon as its signature checks out (`Storage::inbox_receive`), and only then parses it
//! and applies its events through the writer (`Command::Deliver`, which marks the row in
//! the same transaction as the order it takes). So a crash between the two leaves a
//! `pending` row that `stockpool inbox replay` applies later, and never an order without
//! its delivery marked. A channel's delivery id is unique per store: a redelivery finds
//! the row it already wrote (`Received::Seen`). Without an id, the order path's own
//! uniqueness on `(store, external_id)` makes a redelivery change nothing.

use crate::db::Arg;
use crate::model::OrderLineInput;
use crate::{db, Storage, StoreError};
use sqlx::Row;
use stockpool_core::{OrderId, Payment, StoreId, Timestamp};

/// Largest webhook body kept (and accepted): Shopify's and WooCommerce's order bodies are
/// tens of kilobytes; the order API's own body limit is the same.
pub const INBOX_BODY_BYTES_MAX: usize = 1024 * 1024;
/// Largest set of headers kept with a delivery, as the JSON it is stored as.
pub const INBOX_HEADERS_BYTES_MAX: usize = 64 * 1024;
/// Longest delivery id kept; a channel's ids are far shorter.
pub const DELIVERY_ID_BYTES_MAX: usize = 255;
/// Longest `detail` kept on a delivery (a parse or order error's sentence).
pub const INBOX_DETAIL_BYTES_MAX: usize = 1024;
/// Most deliveries one `inbox_deliveries` page returns.
pub const INBOX_PAGE_MAX: i64 = 1_000;

/// What became of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Kept, not yet applied: between the write and the apply, or after a crash or a
    /// database failure there (replay applies it).
    Pending,
    /// Its events changed the workspace (an order taken, an order cancelled).
    Applied,
    /// Everything it says had already happened (the order was there, or already cancelled).
    Duplicate,
    /// It carries nothing for us (a ping, a topic we do not act on); `detail` says why.
    Ignored,
    /// It could not be parsed or applied; `detail` has the sentence. Replay tries again.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Outcome, StoreError> {
        Ok(match s {
            "pending" => Outcome::Pending,
            "applied" => Outcome::Applied,
            "duplicate" => Outcome::Duplicate,
            "ignored" => Outcome::Ignored,
            "failed" => Outcome::Failed,
            other => return Err(StoreError::Corrupt(format!("inbox outcome {other:?} is unknown"))),
        })
    }

    /// Whether replay looks at it again: `pending` and `failed` deliveries.
    pub fn unfinished(self) -> bool {
        matches!(self, Outcome::Pending | Outcome::Failed)
    }
}

/// A verified delivery, as it is about to be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    pub ws: i64,
    pub store: StoreId,
    /// The channel's name (`webhook`, `shopify`, ...).
    pub channel: String,
    /// The channel's id of the delivery, when it sends one.
    pub delivery_id: Option<String>,
    /// The request's headers in order, repeated ones repeated, minus our own secrets.
    pub headers: Vec<(String, String)>,
    /// The raw body, byte for byte: what the signature was computed over.
    pub body: Vec<u8>,
}

/// A delivery as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub ws: i64,
    pub store: StoreId,
    /// The store's code now (empty if the store is gone).
    pub store_code: String,
    pub channel: String,
    pub delivery_id: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub received_at: Timestamp,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub order: Option<OrderId>,
    pub processed_at: Option<Timestamp>,
}

/// What keeping a delivery found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A new delivery, kept as `pending` with this id.
    New(i64),
    /// The store already has a delivery with this delivery id: this one.
    Seen(Box<Delivery>),
}

/// One event of a parsed delivery, in the store's words (the intake turns a connector's
/// `InboundEvent` into this).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboxEvent {
    /// An order, taken like the order API's (`Command::CreateOrder`), as a channel's:
    /// a draft item's line is kept rather than refused (nothing a channel sends is dropped).
    Order(InboxOrder),
    /// The channel cancelled the store's order with this `external_id`.
    Cancel { external_id: String },
    /// Nothing to do, and why.
    Ignored(String),
}

/// An inbound order: the order API's body without `store` (the delivery names it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxOrder {
    pub external_id: String,
    pub lines: Vec<OrderLineInput>,
    pub payment: Payment,
    pub pay_within_seconds: Option<i64>,
}

/// Applies a kept delivery's events and marks it, in one transaction (`Command::Deliver`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Apply {
    /// The inbox row.
    pub delivery: i64,
    pub store: StoreId,
    pub events: Vec<InboxEvent>,
}

const DELIVERY_COLUMNS: &str = "i.id, i.workspace_id, i.store_id, COALESCE(s.code, ''), i.channel, i.delivery_id, \
     i.headers, i.body, i.received_at, i.outcome, i.detail, i.order_id, i.processed_at \
     FROM inbox i LEFT JOIN stores s ON s.workspace_id = i.workspace_id AND s.id = i.store_id";

fn delivery_of(r: &sqlx::any::AnyRow) -> Result<Delivery, StoreError> {
    let headers: String = r.try_get(6)?;
    let headers: Vec<(String, String)> = serde_json::from_str(&headers)
        .map_err(|e| StoreError::Corrupt(format!("the headers of a kept delivery are not JSON pairs: {e}")))?;
    let store: i64 = r.try_get(2)?;
    let order: Option<i64> = r.try_get(11)?;
    let processed_at: Option<i64> = r.try_get(12)?;
    Ok(Delivery {
        id: r.try_get(0)?,
        ws: r.try_get(1)?,
        store: StoreId(store as u64),
        store_code: r.try_get(3)?,
        channel: r.try_get(4)?,
        delivery_id: r.try_get(5)?,
        headers,
        body: r.try_get(7)?,
        received_at: Timestamp(r.try_get(8)?),
        outcome: Outcome::parse(&r.try_get::<String, _>(9)?)?,
        detail: r.try_get(10)?,
        order: order.map(|o| OrderId(o as u64)),
        processed_at: processed_at.map(Timestamp),
    })
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncated(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The statement that records a delivery's outcome, unless it was already applied (a
/// delivery applied once stays applied, whatever a later replay or redelivery finds).
pub(crate) fn outcome_stmt(
    ws: i64,
    delivery: i64,
    outcome: Outcome,
    detail: Option<&str>,
    order: Option<OrderId>,
    now: Timestamp,
) -> (&'static str, Vec<Arg>) {
    (
        "UPDATE inbox SET outcome = $3, detail = NULLIF($4, ''), order_id = $5, processed_at = $6 \
         WHERE workspace_id = $1 AND id = $2 AND outcome <> 'applied'",
        vec![
            ws.into(),
            delivery.into(),
            outcome.as_str().into(),
            // Text is bound as text even when absent (PostgreSQL prepares once).
            truncated(detail.unwrap_or_default(), INBOX_DETAIL_BYTES_MAX).into(),
            order.map(|o| o.0).into(),
            now.0.into(),
        ],
    )
}

impl Storage {
    /// Every `(workspace, store)` whose store has this code. Store codes are unique within
    /// a workspace only; the webhook route needs exactly one.
    pub async fn stores_by_code(&self, code: &str) -> Result<Vec<(i64, StoreId)>, StoreError> {
        let rows = self
            .inner
            .db
            .fetch_all("SELECT workspace_id, id FROM stores WHERE code = $1 ORDER BY workspace_id", &[code.into()])
            .await?;
        rows.iter().map(|r| Ok((r.try_get::<i64, _>(0)?, StoreId(r.try_get::<i64, _>(1)? as u64)))).collect()
    }

    /// Keeps a verified delivery as `pending`, committed before this returns, or finds the
    /// store's delivery with the same delivery id.
    pub async fn inbox_receive(&self, d: &NewDelivery) -> Result<Received, StoreError> {
        if d.body.len() > INBOX_BODY_BYTES_MAX {
            return Err(StoreError::Invalid(format!("the body is larger than the {INBOX_BODY_BYTES_MAX} bytes kept")));
        }
        let headers = serde_json::to_string(&d.headers).expect("pairs of strings serialize");
        if headers.len() > INBOX_HEADERS_BYTES_MAX {
            return Err(StoreError::Invalid(format!(
                "the headers take more than the {INBOX_HEADERS_BYTES_MAX} bytes kept with a delivery"
            )));
        }
        let delivery_id = d.delivery_id.clone().filter(|id| !id.is_empty());
        if delivery_id.as_ref().is_some_and(|id| id.len() > DELIVERY_ID_BYTES_MAX) {
            return Err(StoreError::Invalid(format!("a delivery id may have at most {DELIVERY_ID_BYTES_MAX} bytes")));
        }
        let now = self.now();
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO inbox (workspace_id, store_id, channel, delivery_id, headers, body, received_at, outcome) \
             VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, 'pending') \
             ON CONFLICT (workspace_id, store_id, delivery_id) DO NOTHING RETURNING id",
        )
        .bind(d.ws)
        .bind(d.store.0 as i64)
        .bind(d.channel.clone())
        .bind(delivery_id.clone().unwrap_or_default())
        .bind(headers)
        .bind(d.body.clone())
        .bind(now.0)
        .fetch_optional(&self.inner.db.pool)
        .await?;
        if let Some(id) = inserted {
            return Ok(Received::New(id));
        }
        let sql =
            format!("SELECT {DELIVERY_COLUMNS} WHERE i.workspace_id = $1 AND i.store_id = $2 AND i.delivery_id = $3");
        let rows = self
            .inner
            .db
            .fetch_all(&sql, &[d.ws.into(), d.store.0.into(), delivery_id.unwrap_or_default().into()])
            .await?;
        let seen = rows.first().ok_or_else(|| {
            StoreError::Corrupt("a delivery id collided with no kept delivery (was it removed meanwhile?)".into())
        })?;
        Ok(Received::Seen(Box::new(delivery_of(seen)?)))
    }

    /// One kept delivery.
    pub async fn inbox_delivery(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} WHERE i.id = $1");
        let rows = self.inner.db.fetch_all(&sql, &[id.into()]).await?;
        rows.first().map(delivery_of).transpose()
    }

    /// Kept deliveries in id order after id `after`, at most `limit` (capped at
    /// `INBOX_PAGE_MAX`); only `pending` and `failed` ones when `unfinished`.
    pub async fn inbox_deliveries(
        &self,
        unfinished: bool,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} WHERE i.id > $1 AND ($2 = 0 OR i.outcome IN ('pending', 'failed')) \
             ORDER BY i.id LIMIT $3"
        );
        let rows = self
            .inner
            .db
            .fetch_all(&sql, &[after.into(), unfinished.into(), limit.clamp(1, INBOX_PAGE_MAX).into()])
            .await?;
        rows.iter().map(delivery_of).collect()
    }

    /// Marks a delivery `failed` with `detail` when it could not be parsed (nothing of the
    /// workspace changes, so this skips the writer). An applied delivery stays applied.
    pub async fn inbox_fail(&self, ws: i64, delivery: i64, detail: &str) -> Result<(), StoreError> {
        let (sql, args) = outcome_stmt(ws, delivery, Outcome::Failed, Some(detail), None, self.now());
        sqlx::query_with(sql, db::args(&args)).execute(&self.inner.db.pool).await?;
        Ok(())
    }

    /// Per store of workspace `ws`, deliveries received and not yet processed (`pending`):
    /// the webhook side of the intake watermark (SPEC section 5: an increase waits until
    /// every store's intake has caught up). Stores with none are left out.
    pub async fn inbox_unprocessed(&self, ws: i64) -> Result<Vec<(StoreId, i64)>, StoreError> {
        let rows = self
            .inner
            .db
            .fetch_all(
                "SELECT store_id, count(*) FROM inbox WHERE outcome = 'pending' AND workspace_id = $1 \
                 GROUP BY store_id ORDER BY store_id",
                &[ws.into()],
            )
            .await?;
        rows.iter().map(|r| Ok((StoreId(r.try_get::<i64, _>(0)? as u64), r.try_get::<i64, _>(1)?))).collect()
    }

    /// Ids of workspace `ws`'s deliveries still `pending` that were received before
    /// `received_before`, oldest first, at most `limit` (capped at `INBOX_PAGE_MAX`): what
    /// a crash or a database failure between keeping a delivery and applying it left
    /// behind, for the push lease holder to replay (`stockpool-worker`'s dispatcher).
    pub async fn inbox_stuck(&self, ws: i64, received_before: Timestamp, limit: i64) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .inner
            .db
            .fetch_all(
                "SELECT id FROM inbox WHERE outcome = 'pending' AND workspace_id = $1 AND received_at < $2 \
                 ORDER BY id LIMIT $3",
                &[ws.into(), received_before.0.into(), limit.clamp(1, INBOX_PAGE_MAX).into()],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get::<i64, _>(0)?)).collect()
    }

    /// Deliveries `pending` and `failed` across every workspace, for `/metrics`.
    pub async fn inbox_unfinished_counts(&self) -> Result<(i64, i64), StoreError> {
        let rows = self
            .inner
            .db
            .fetch_all(
                "SELECT outcome, count(*) FROM inbox WHERE outcome IN ('pending', 'failed') GROUP BY outcome",
                &[],
            )
            .await?;
        let (mut pending, mut failed) = (0, 0);
        for r in rows {
            match r.try_get::<String, _>(0)?.as_str() {
                "pending" => pending = r.try_get(1)?,
                _ => failed = r.try_get(1)?,
            }
        }
        Ok((pending, failed))
    }
}
