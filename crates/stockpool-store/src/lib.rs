//! stockpool-store: everything that touches the database.
//!
//! `Storage` is a cheap handle shared by the HTTP layer, the CLI and the workers. Writes go
//! through one writer task per process (`writer.rs`), which commits a batch of commands
//! per transaction (group commit) and replies only after commit, so an acknowledged write
//! is durable. Each command is decided by the core on the cached workspace (`workspace.rs`,
//! `exec.rs`). On PostgreSQL the workspace rows a batch touches are locked in id order
//! (`SELECT ... FOR UPDATE`) before anything is decided, and every stock update carries its
//! guard in the statement, so several `serve` processes on one database stay correct.
//!
//! Only this crate knows SQL.

pub mod auth;
mod checkpoint;
pub mod db;
pub mod exec;
pub mod inbox;
pub mod lease;
pub mod metrics;
pub mod model;
pub mod secrets;
pub mod velocity;
pub mod workspace;
mod writer;
pub mod yardstick;

pub use db::{Backend, Db};
pub use exec::{Command, Connection, PollEnded, Reply, Settle, SettledAttempt, SyncResult, POLL_RECORD_NO_ID};
pub use lease::{Fence, Lease, NodeId};
pub use writer::BATCH_COMMANDS_MAX;

use sqlx::Row;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use stockpool_core::{BomError, CatalogError, OrderError, RuleError, StockError, Timestamp};
use tokio::sync::{mpsc, oneshot};
use workspace::Ws;

/// Everything a store operation can fail with; the message is a sentence for a person.
/// The HTTP crate maps each to a status and a problem body (this crate knows no HTTP).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {key} was not found")]
    NotFound { what: &'static str, key: String },
    #[error("unknown {what} {key}")]
    Unknown { what: &'static str, key: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    #[error("{0}")]
    Bom(#[from] BomError),
    #[error("{0}")]
    Rule(#[from] RuleError),
    #[error("{0}")]
    Order(#[from] OrderError),
    #[error("{0}")]
    Stock(#[from] StockError),
    #[error("item {index}: {source}")]
    At { index: usize, source: Box<StoreError> },
    #[error("the database failed")]
    Db(#[from] sqlx::Error),
    #[error("the database failed")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("the server is shutting down or overloaded; try again")]
    Unavailable,
    /// A settle fenced by a lease this node no longer holds (`lease.rs`): another node
    /// pushes the workspace now, and nothing was recorded.
    #[error("this node no longer holds the push lease of workspace {workspace}; another node pushes it now")]
    LeaseLost { workspace: i64 },
}

impl StoreError {
    pub fn not_found(what: &'static str, key: &str) -> Self {
        StoreError::NotFound { what, key: key.to_string() }
    }
    pub fn unknown(what: &'static str, key: &str) -> Self {
        StoreError::Unknown { what, key: key.to_string() }
    }
    /// The same error, for element `index` of a bulk request.
    pub fn at(self, index: usize) -> Self {
        StoreError::At { index, source: Box::new(self) }
    }
}

/// Counters for `/metrics`.
#[derive(Default, Debug)]
pub struct Metrics {
    pub commands: AtomicU64,
    pub command_errors: AtomicU64,
    pub batches: AtomicU64,
    pub batch_failures: AtomicU64,
    pub orders_created: AtomicU64,
    /// Webhook deliveries refused for their signature (or a store that cannot check
    /// one): nothing of them is kept, so this counter is their only trace.
    pub webhooks_rejected: AtomicU64,
    /// Webhook deliveries kept in the inbox.
    pub webhooks_received: AtomicU64,
    /// Dashboard passwords checked (an unknown email is checked against a dummy hash,
    /// so it counts too and takes as long).
    pub password_checks: AtomicU64,
    /// Workspaces read whole from the database (first use, another process's change, a
    /// failed batch). Settling pushes must not move it (`tests/it/seam.rs`).
    pub workspace_loads: AtomicU64,
    /// Each store's settled attempts and staleness (`metrics.rs`).
    pub pushes: metrics::PushMetrics,
}

/// Where the server reads time: the one clock seam. Tests pass a settable clock.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    })
}

/// What the writer is asked to do.
pub(crate) enum Job {
    /// A command for a workspace, committed in the writer's next batch.
    Command { ws: i64, cmd: Command, reply: oneshot::Sender<Result<Reply, StoreError>> },
    /// A lease row change, run on the writer's connection before its next batch.
    Lease { change: lease::LeaseChange, reply: oneshot::Sender<Result<Option<Lease>, StoreError>> },
}

/// A cached workspace. A tokio lock, so a reader waiting for the writer's commit parks its
/// task instead of blocking one of the server's threads.
pub(crate) type WsHandle = Arc<tokio::sync::RwLock<Ws>>;

/// How many times a read retries when the workspace it found was replaced under it (a
/// failed batch poisoned it, or another process committed): each retry loads afresh.
pub const READ_ATTEMPTS_MAX: usize = 3;

pub(crate) struct Inner {
    pub db: Db,
    /// Seals channel credentials and webhook secrets at rest (`secrets.rs`).
    pub key: secrets::SecretKey,
    /// The workspaces this process holds, each as last committed. The writer holds a
    /// workspace's write lock from before it decides a batch until the batch has committed
    /// (or failed and been poisoned), so a reader never sees a decision that is not durable:
    /// releasing that lock is what publishes a batch (`writer.rs`).
    pub cache: Mutex<HashMap<i64, WsHandle>>,
    pub clock: Clock,
    /// Counts committed batches; moved after every commit, once the batch's workspaces are
    /// published. Dispatchers wait on it instead of polling.
    pub committed: tokio::sync::watch::Sender<u64>,
    pub metrics: Metrics,
    pub tokens: RwLock<HashMap<String, i64>>,
}

/// Connections of the writer's own pool: it runs one transaction at a time.
pub const WRITER_CONNECTIONS: u32 = 1;

/// Commands waiting for the writer. Beyond this, callers wait (backpressure) rather than
/// queue without bound.
pub const WRITER_QUEUE_MAX: usize = 4096;

/// The handle to the database, the cache and the writer.
#[derive(Clone)]
pub struct Storage {
    pub(crate) inner: Arc<Inner>,
    tx: mpsc::Sender<Job>,
}

impl Storage {
    /// Opens the database (migrating it) and starts the writer task. The writer stops
    /// when every `Storage` handle is dropped; await the returned handle to see it finish.
    pub async fn open(url: &str, clock: Clock) -> Result<(Storage, tokio::task::JoinHandle<()>), db::ConnectError> {
        let key = secrets::SecretKey::for_database(url)?;
        let db = Db::connect(url).await?;
        let inner = Arc::new(Inner {
            db,
            key,
            cache: Mutex::new(HashMap::new()),
            clock,
            metrics: Metrics::default(),
            tokens: RwLock::new(HashMap::new()),
            committed: tokio::sync::watch::channel(0).0,
        });
        let (tx, rx) = mpsc::channel(WRITER_QUEUE_MAX);
        // The writer runs on a thread of its own with its own runtime and connection, so
        // its awaits never queue behind the HTTP tasks: its latency is every order's.
        let (ready_tx, ready_rx) = oneshot::channel();
        let (writer_inner, url) = (inner.clone(), url.to_string());
        let handle = tokio::task::spawn_blocking(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(db::ConnectError::Runtime(e.to_string())));
                    return;
                }
            };
            rt.block_on(async move {
                match Db::connect_with(&url, WRITER_CONNECTIONS).await.and_then(|db| writer::Conn::open(&url, db)) {
                    Ok(db) => {
                        let _ = ready_tx.send(Ok(()));
                        writer::run(writer_inner, db, rx).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        });
        match ready_rx.await {
            Ok(Ok(())) => Ok((Storage { inner, tx }, handle)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(db::ConnectError::Runtime("the writer thread stopped before it started".into())),
        }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn now(&self) -> Timestamp {
        (self.inner.clock)()
    }

    /// Runs one write command for a workspace; returns after it is durably committed.
    pub async fn execute(&self, ws: i64, cmd: Command) -> Result<Reply, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job::Command { ws, cmd, reply }).await.map_err(|_| StoreError::Unavailable)?;
        // Rendered here, on the caller's task, not on the writer's thread.
        rx.await.map_err(|_| StoreError::Unavailable)?.map(Reply::rendered)
    }

    /// Reads from the workspace as last committed (reloaded first if another process
    /// changed it: a second `serve` on PostgreSQL, or the CLI beside a running server).
    /// A batch the writer is committing is not seen until it has committed: the read waits
    /// for it. A batch that failed is never seen.
    pub async fn read<T>(&self, ws: i64, f: impl FnOnce(&Ws) -> T) -> Result<T, StoreError> {
        let seq: i64 = sqlx::query_scalar("SELECT seq FROM workspaces WHERE id = $1")
            .bind(ws)
            .fetch_optional(&self.inner.db.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("workspace", &ws.to_string()))?;
        let mut handle = self.inner.cache.lock().unwrap().get(&ws).cloned();
        for _ in 0..READ_ATTEMPTS_MAX {
            if let Some(h) = handle.take() {
                let guard = h.read().await;
                // A poisoned workspace has a negative `seq`, so it never passes.
                if guard.seq >= seq {
                    return Ok(f(&guard));
                }
            }
            handle = Some(self.load(ws).await?);
        }
        Err(StoreError::Unavailable)
    }

    /// Loads workspace `ws` as last committed and caches it unless the cache already holds
    /// it at that point or later. Returns what the caller should read.
    async fn load(&self, ws: i64) -> Result<WsHandle, StoreError> {
        let mut conn = self.inner.db.pool.acquire().await?;
        let loaded = Ws::load(&mut conn, &self.inner.key, ws, self.now()).await?;
        self.inner.metrics.workspace_loads.fetch_add(1, Ordering::Relaxed);
        let mut cache = self.inner.cache.lock().unwrap();
        /// What to do with a freshly loaded copy.
        enum Keep {
            Cached,
            Loaded,
            Uncached,
        }
        let keep = match cache.get(&ws).map(|c| c.try_read().map(|w| w.seq >= loaded.seq)) {
            Some(Ok(true)) => Keep::Cached,
            // The writer holds it (it is committing a batch on it): its copy is at least as
            // new once published; read the loaded one without caching it.
            Some(Err(_)) => Keep::Uncached,
            Some(Ok(false)) | None => Keep::Loaded,
        };
        let loaded = Arc::new(tokio::sync::RwLock::new(loaded));
        Ok(match keep {
            Keep::Cached => cache[&ws].clone(),
            Keep::Uncached => loaded,
            Keep::Loaded => {
                cache.insert(ws, loaded.clone());
                loaded
            }
        })
    }

    /// A receiver that changes after every committed batch, once its workspaces are
    /// published: what dispatchers wait on.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.committed.subscribe()
    }

    /// Expires every due order request and unpaid acceptance, in every workspace that has
    /// one, and forgets sales that left the `buffer: auto` window in the workspaces this
    /// process holds. The server calls this at least once a second.
    pub async fn sweep_due(&self) -> Result<usize, StoreError> {
        let rows =
            sqlx::query("SELECT DISTINCT workspace_id FROM orders WHERE status IN ('requested', 'awaiting_payment')")
                .fetch_all(&self.inner.db.pool)
                .await?;
        let now = self.now();
        let mut swept = 0;
        for r in rows {
            let ws: i64 = r.try_get(0)?;
            let due = self.read(ws, |w| w.state.next_deadline().is_some_and(|d| d <= now)).await?;
            if due {
                let reply = self.execute(ws, Command::Sweep).await?;
                swept += reply.body["expired"].as_u64().unwrap_or(0) as usize;
            }
        }
        // The cached copies suffice to tell whether sales are due to age: the writer reloads
        // a workspace another process changed before it ages it.
        let due: Vec<i64> = self
            .inner
            .cache
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, w)| w.try_read().is_ok_and(|w| w.sales.next_change().is_some_and(|t| t <= now)))
            .map(|(id, _)| *id)
            .collect();
        for ws in due {
            self.execute(ws, Command::AgeSales).await?;
        }
        Ok(swept)
    }

    /// Answers once the database does (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner.db.fetch_all("SELECT 1", &[]).await?;
        Ok(())
    }

    /// The workspaces whose outbox holds a push, or that have a store of a polled channel:
    /// where dispatchers are needed.
    pub async fn workspaces_with_pushes(&self) -> Result<Vec<i64>, StoreError> {
        // A store's channel lives in its `doc` (`[store, extra]` as serde writes it, no
        // spaces); a polled store needs its dispatcher even with nothing to push.
        let rows = self
            .inner
            .db
            .fetch_all(
                "SELECT workspace_id FROM outbox UNION SELECT workspace_id FROM stores \
                 WHERE doc LIKE '%\"channel\":\"etsy\"%' OR doc LIKE '%\"channel\":\"amazon\"%' \
                 OR doc LIKE '%\"channel\":\"ebay\"%' ORDER BY workspace_id",
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get::<i64, _>(0)?)).collect()
    }

    /// Pending pushes in the outbox, for `/metrics`.
    /// Every store with its names and its outbox (listings queued, the oldest `queued_at`),
    /// for `/metrics`; at most `METRICS_STORES_MAX`, in id order.
    pub async fn store_gauges(&self) -> Result<Vec<metrics::StoreGauge>, StoreError> {
        let rows = sqlx::query(
            "SELECT w.id, w.name, s.id, s.code, COUNT(o.listing_id), MIN(o.queued_at) \
             FROM stores s JOIN workspaces w ON w.id = s.workspace_id \
             LEFT JOIN outbox o ON o.workspace_id = s.workspace_id AND o.store_id = s.id \
             GROUP BY w.id, w.name, s.id, s.code ORDER BY w.id, s.id LIMIT $1",
        )
        .bind(metrics::METRICS_STORES_MAX)
        .fetch_all(&self.inner.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(metrics::StoreGauge {
                    workspace_id: r.try_get(0)?,
                    workspace: r.try_get(1)?,
                    store_id: r.try_get(2)?,
                    store: r.try_get(3)?,
                    pending: r.try_get(4)?,
                    oldest_queued_at: r.try_get::<Option<i64>, _>(5)?.map(Timestamp),
                })
            })
            .collect()
    }

    pub async fn outbox_pending(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&self.inner.db.pool).await?)
    }

    /// Proves the stored data keeps its promises: every stock level is the sum of its
    /// movements and `0 <= reserved <= on_hand`, and reserved stock is exactly what open
    /// orders and cards hold. Returns one sentence per finding.
    pub async fn check(&self) -> Result<Vec<String>, StoreError> {
        let pool = &self.inner.db.pool;
        let mut findings = Vec::new();
        let levels = sqlx::query(
            "SELECT s.workspace_id, s.item_id, s.warehouse_id, s.on_hand, s.reserved, \
                    COALESCE(m.on_hand, 0), COALESCE(m.reserved, 0) \
             FROM stock_levels s LEFT JOIN ( \
                 SELECT workspace_id, item_id, warehouse_id, CAST(SUM(on_hand_delta) AS BIGINT) AS on_hand, CAST(SUM(reserved_delta) AS BIGINT) AS reserved \
                 FROM movements GROUP BY workspace_id, item_id, warehouse_id) m \
             ON m.workspace_id = s.workspace_id AND m.item_id = s.item_id AND m.warehouse_id = s.warehouse_id",
        )
        .fetch_all(pool)
        .await?;
        for r in &levels {
            let v: Vec<i64> = (0..7).map(|i| r.try_get::<i64, _>(i).unwrap_or(i64::MIN)).collect();
            if v[3] != v[5] || v[4] != v[6] {
                findings.push(format!(
                    "workspace {} item {} warehouse {}: stock level on_hand {} reserved {} but movements sum to {} and {}",
                    v[0], v[1], v[2], v[3], v[4], v[5], v[6]
                ));
            }
            if !(0 <= v[4] && v[4] <= v[3]) {
                findings.push(format!(
                    "workspace {} item {} warehouse {}: reserved {} is outside 0..=on_hand {}",
                    v[0], v[1], v[2], v[4], v[3]
                ));
            }
        }
        let orphans = sqlx::query(
            "SELECT m.workspace_id, m.item_id, m.warehouse_id FROM movements m LEFT JOIN stock_levels s \
             ON m.workspace_id = s.workspace_id AND m.item_id = s.item_id AND m.warehouse_id = s.warehouse_id \
             WHERE s.item_id IS NULL GROUP BY m.workspace_id, m.item_id, m.warehouse_id",
        )
        .fetch_all(pool)
        .await?;
        for r in orphans {
            findings.push(format!(
                "workspace {} item {} warehouse {}: movements without a stock level",
                r.try_get::<i64, _>(0)?,
                r.try_get::<i64, _>(1)?,
                r.try_get::<i64, _>(2)?
            ));
        }
        let workspaces = sqlx::query("SELECT id FROM workspaces ORDER BY id").fetch_all(pool).await?;
        for r in workspaces {
            let id: i64 = r.try_get(0)?;
            let mut conn = pool.acquire().await?;
            match Ws::load(&mut conn, &self.inner.key, id, self.now()).await {
                Ok(ws) => {
                    for f in ws.state.check() {
                        findings.push(format!("workspace {id}: {f:?}"));
                    }
                }
                Err(e) => findings.push(format!("workspace {id}: cannot be loaded: {e}")),
            }
        }
        Ok(findings)
    }
}

/// One push attempt to one listing, as recorded (SPEC section 6).
#[derive(Clone, Debug, PartialEq)]
pub struct SyncRecord {
    pub id: i64,
    pub listing: i64,
    pub store: i64,
    pub item: i64,
    pub old_quantity: Option<i64>,
    pub new_quantity: i64,
    pub reason: String,
    pub rule: Option<(i64, i64)>,
    pub result: String,
    pub status_code: Option<i64>,
    pub detail: Option<String>,
    pub attempt: i64,
    pub created_at: i64,
}

impl SyncRecord {
    /// Whether this records an order poll (reason `poll`): it names no listing, SKU or
    /// quantity.
    pub fn is_poll(&self) -> bool {
        self.reason == "poll" && self.listing == POLL_RECORD_NO_ID
    }
}

/// Which sync records to list: every filter is optional; `after` is the id the previous
/// page ended on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncRecordQuery {
    pub store: Option<i64>,
    pub item: Option<i64>,
    pub result: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    pub since: Option<i64>,
    /// Milliseconds since the epoch, exclusive.
    pub until: Option<i64>,
    pub after: Option<i64>,
}

/// Sync records one page returns at most (SPEC section 6: `limit` at most 1,000).
pub const SYNC_RECORDS_PAGE_MAX: i64 = 1_000;

impl Storage {
    /// One page of a workspace's sync records in id order (oldest first), at most `limit`
    /// (capped at one more than `SYNC_RECORDS_PAGE_MAX`, so that a caller serving a full
    /// page can ask for one more row to learn whether another page follows), after the id
    /// `q.after`. Paged in SQL on the `(workspace_id, id)` index, so a page costs the same
    /// however many records exist.
    pub async fn sync_records(&self, ws: i64, q: &SyncRecordQuery, limit: i64) -> Result<Vec<SyncRecord>, StoreError> {
        let limit = limit.clamp(1, SYNC_RECORDS_PAGE_MAX + 1);
        let rows = sqlx::query_with(
            "SELECT id, listing_id, store_id, item_id, old_quantity, new_quantity, reason, rule_id, rule_version, result, \
                    status_code, detail, attempt, created_at \
             FROM sync_records WHERE workspace_id = $1 AND id > $2 AND ($3 IS NULL OR store_id = $3) \
             AND ($4 IS NULL OR item_id = $4) AND ($5 = '' OR result = $5) AND ($6 IS NULL OR created_at >= $6) \
             AND ($7 IS NULL OR created_at < $7) ORDER BY id LIMIT $8",
            db::args(&[
                ws.into(),
                q.after.unwrap_or(0).into(),
                q.store.into(),
                q.item.into(),
                q.result.clone().unwrap_or_default().into(),
                q.since.into(),
                q.until.into(),
                limit.into(),
            ]),
        )
        .fetch_all(&self.inner.db.pool)
        .await?;
        rows.iter().map(sync_record).collect()
    }

    /// The newest `n` sync records of `store` (at most `LAST_SYNC_RECORDS_MAX`), newest
    /// first: what the dashboard shows of each store's last pushes.
    pub async fn last_sync_records(&self, ws: i64, store: i64, n: i64) -> Result<Vec<SyncRecord>, StoreError> {
        let rows = sqlx::query_with(
            "SELECT id, listing_id, store_id, item_id, old_quantity, new_quantity, reason, rule_id, rule_version, result, \
                    status_code, detail, attempt, created_at \
             FROM sync_records WHERE workspace_id = $1 AND store_id = $2 ORDER BY id DESC LIMIT $3",
            db::args(&[ws.into(), store.into(), n.clamp(1, LAST_SYNC_RECORDS_MAX).into()]),
        )
        .fetch_all(&self.inner.db.pool)
        .await?;
        rows.iter().map(sync_record).collect()
    }
}

/// Most records `Storage::last_sync_records` returns.
pub const LAST_SYNC_RECORDS_MAX: i64 = 100;

/// A sync record from a row of `sync_records` selected in `SyncRecord`'s field order.
fn sync_record(r: &sqlx::any::AnyRow) -> Result<SyncRecord, StoreError> {
    let rule_id: Option<i64> = r.try_get(7)?;
    let rule_version: Option<i64> = r.try_get(8)?;
    Ok(SyncRecord {
        id: r.try_get(0)?,
        listing: r.try_get(1)?,
        store: r.try_get(2)?,
        item: r.try_get(3)?,
        old_quantity: r.try_get(4)?,
        new_quantity: r.try_get(5)?,
        reason: r.try_get(6)?,
        rule: rule_id.zip(rule_version),
        result: r.try_get(9)?,
        status_code: r.try_get(10)?,
        detail: r.try_get(11)?,
        attempt: r.try_get(12)?,
        created_at: r.try_get(13)?,
    })
}
