//! Push leases: which node pushes a workspace's stores (several `serve` processes on one
//! database).
//!
//! One row per workspace in `leases`: the holder's node id, a generation that moves every
//! time the lease changes hands, and when it expires (milliseconds, by the holder's
//! clock). A node acquires a lease that is free or expired (the generation moves), renews
//! what it holds every `LEASE_RENEW_INTERVAL`, and loses a lease it did not renew within
//! `LEASE_EXPIRY`: another node then takes it. Each acquire and renew is one statement, so
//! two nodes racing for a lease never both win.
//!
//! A lease is per workspace, not per store: the push policy's upward guard spans a
//! workspace's stores (an increase on one waits for every store's intake), so one node
//! decides for all of them.
//!
//! The lease also fences settling: a `Settle` names the generation its pushes were sent
//! under (`Fence`), and the writer checks it against the row inside the settle's
//! transaction (`writer.rs`), so a node whose lease was taken while its call was out never
//! records a figure after the new holder's newer one.

use crate::{Storage, StoreError};
use sqlx::Row;
use std::time::Duration;
use stockpool_core::Timestamp;

/// How often a holder renews its leases. A dispatcher looks at its workspace at least this
/// often (`stockpool_worker::dispatch::IDLE_WAKE_MAX`), and renews then.
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(2);

/// How long a lease lasts after its last renewal. A node that died loses its workspaces to
/// another within this (plus one renew interval for the other to try). It is longer than a
/// holder may go on sending (`LEASE_USE_MAX`) plus the longest call to a channel
/// (`stockpool_channels::REQUEST_TIMEOUT`, 10 s), so a call a holder started has ended
/// before anyone else can take the lease; the one second left over is the clock skew
/// between nodes this tolerates.
pub const LEASE_EXPIRY: Duration = Duration::from_secs(15);

/// How long after its last confirmed renewal a holder still starts calls. Two missed
/// renewals (the database is slow or away) and it stops sending until a renewal goes
/// through.
pub const LEASE_USE_MAX: Duration = Duration::from_secs(4);

/// Longest node id kept (hostname, pid and a random part).
pub const NODE_ID_CHARS_MAX: usize = 100;

/// One `serve` process, as leases name it: random per start, with the host and pid in
/// front for people reading `leases` or the `X-Stockpool-Node` header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// A new id for this process: `<host>-<pid>-<16 hex digits>`.
    pub fn generate() -> Result<NodeId, StoreError> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| StoreError::Invalid(format!("no randomness available: {e}")))?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "node".into());
        // Header-safe and bounded, whatever the host is called.
        let host: String = host
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .take(NODE_ID_CHARS_MAX - 40)
            .collect();
        Ok(NodeId(format!("{host}-{}-{}", std::process::id(), hex::encode(random))))
    }

    /// A node named `name` (tests name their nodes).
    pub fn named(name: &str) -> NodeId {
        NodeId(name.chars().take(NODE_ID_CHARS_MAX).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lease this node holds: its generation, and until when it holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub generation: i64,
    pub expires_at: Timestamp,
}

/// What a settle is fenced by: the node and the lease generation its pushes went out
/// under. The writer refuses the settle unless the lease row still says exactly this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub node: NodeId,
    pub generation: i64,
}

/// The holder of a workspace's lease as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: String,
    pub generation: i64,
    pub expires_at: Timestamp,
}

fn expiry(now: Timestamp) -> Timestamp {
    Timestamp(now.0.saturating_add(LEASE_EXPIRY.as_millis() as i64))
}

/// A change to a lease row, run by the writer (`writer::run`) between its batches, on its
/// own connection. On SQLite that is the point: a statement from another connection of
/// this process waits for the write lock behind a busy writer's back-to-back
/// transactions, and under a steady order stream it waited seconds (long enough for the
/// holder to stop pushing, `LEASE_USE_MAX`). Queued with the writer's commands instead,
/// it waits one batch at most. A lease change touches no workspace: it bumps no `seq`.
#[derive(Clone, Debug)]
pub(crate) struct LeaseChange {
    pub kind: LeaseChangeKind,
    pub ws: i64,
    pub node: NodeId,
    pub now: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeaseChangeKind {
    Acquire,
    Renew,
    Release,
}

impl LeaseChange {
    /// The statement, for both backends (`$n` parameters); `Acquire` and `Renew` return
    /// the generation held after it, or no row.
    pub(crate) fn sql(&self) -> &'static str {
        match self.kind {
            LeaseChangeKind::Acquire => {
                "INSERT INTO leases (workspace_id, holder, generation, expires_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (workspace_id) DO UPDATE SET holder = excluded.holder, \
                 generation = leases.generation + 1, expires_at = excluded.expires_at \
                 WHERE leases.expires_at <= $4 RETURNING generation"
            }
            LeaseChangeKind::Renew => {
                "UPDATE leases SET expires_at = $3 WHERE workspace_id = $1 AND holder = $2 AND expires_at > $4 \
                 RETURNING generation"
            }
            LeaseChangeKind::Release => {
                "UPDATE leases SET expires_at = $3 WHERE workspace_id = $1 AND holder = $2 AND expires_at > $3"
            }
        }
    }

    /// The statement's parameters: workspace, holder, then the new expiry and now
    /// (`Release`: now, its new expiry).
    pub(crate) fn args(&self) -> Vec<crate::db::Arg> {
        use crate::db::Arg;
        let mut args = vec![Arg::I64(self.ws), Arg::Text(self.node.as_str().to_owned())];
        if self.kind != LeaseChangeKind::Release {
            args.push(Arg::I64(expiry(self.now).0));
        }
        args.push(Arg::I64(self.now.0));
        args
    }

    /// What the statement's returned generation means.
    pub(crate) fn outcome(&self, generation: Option<i64>) -> Option<Lease> {
        match self.kind {
            LeaseChangeKind::Release => None,
            _ => generation.map(|generation| Lease { generation, expires_at: expiry(self.now) }),
        }
    }
}

impl Storage {
    async fn change_lease(
        &self,
        kind: LeaseChangeKind,
        ws: i64,
        node: &NodeId,
        now: Timestamp,
    ) -> Result<Option<Lease>, StoreError> {
        let change = LeaseChange { kind, ws, node: node.clone(), now };
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(crate::Job::Lease { change, reply }).await.map_err(|_| StoreError::Unavailable)?;
        rx.await.map_err(|_| StoreError::Unavailable)?
    }

    /// Takes workspace `ws`'s lease for `node` if nobody holds it or its lease expired by
    /// `now`; the generation moves. `None`: another node holds it (or `node` itself, from
    /// an earlier claim it no longer knows of; that one expires too).
    pub async fn acquire_lease(&self, ws: i64, node: &NodeId, now: Timestamp) -> Result<Option<Lease>, StoreError> {
        self.change_lease(LeaseChangeKind::Acquire, ws, node, now).await
    }

    /// Extends `node`'s lease on `ws` to `now + LEASE_EXPIRY` if it still holds it
    /// unexpired; `None` if it lost it (expired, or taken by another node).
    pub async fn renew_lease(&self, ws: i64, node: &NodeId, now: Timestamp) -> Result<Option<Lease>, StoreError> {
        self.change_lease(LeaseChangeKind::Renew, ws, node, now).await
    }

    /// Gives up `node`'s lease on `ws` (a graceful stop): it expires at `now`, so another
    /// node takes it at its next try instead of after `LEASE_EXPIRY`.
    pub async fn release_lease(&self, ws: i64, node: &NodeId, now: Timestamp) -> Result<(), StoreError> {
        self.change_lease(LeaseChangeKind::Release, ws, node, now).await.map(|_| ())
    }

    /// Who holds workspace `ws`'s lease, as stored (expired or not).
    pub async fn lease(&self, ws: i64) -> Result<Option<LeaseRow>, StoreError> {
        let row = sqlx::query("SELECT holder, generation, expires_at FROM leases WHERE workspace_id = $1")
            .bind(ws)
            .fetch_optional(&self.inner.db.pool)
            .await?;
        row.map(|r| {
            Ok(LeaseRow { holder: r.try_get(0)?, generation: r.try_get(1)?, expires_at: Timestamp(r.try_get(2)?) })
        })
        .transpose()
    }
}
