//! The webhook side of the intake watermark (SPEC section 5), and the replay of what a
//! crash left pending.
//!
//! An increase waits while a delivery some webhook store received is still unprocessed
//! (`pending` in the inbox): the order it carries may not be counted yet, and showing the
//! increase elsewhere would offer that unit again. The intake keeps a delivery, commits
//! it, and then applies it through the writer, so the window is a few milliseconds unless
//! the process died in between. The dispatcher asks the inbox before it claims, while the
//! policy holds pushes: always after reading a newer committed workspace (so a delivery
//! kept before the change that raised a figure is seen before that figure can go), and
//! otherwise at most every `BACKLOG_LOOK_MIN`. It tells the policy per store
//! (`PushPolicy::intake_backlog`); the policy's bound caps the wait.
//!
//! A delivery still `pending` `STUCK_AFTER` after it arrived was left by a crash or a
//! database failure between the two steps. The push lease holder replays those (at most
//! `STUCK_REPLAY_MAX` a look, every `STUCK_LOOK_INTERVAL`) instead of leaving them to an
//! operator's `stockpool inbox replay`: applying a delivery twice changes nothing, so a
//! delivery the HTTP route is still applying is safe to replay too. `failed` deliveries
//! are not replayed on their own (they need a fix first) and do not hold increases back.

use super::{ms, Known, Shared};
use std::collections::HashSet;
use std::time::Duration;
use stockpool_core::{StoreId, Timestamp};
use stockpool_store::StoreError;

/// Least time between two looks at the inbox's unprocessed deliveries with no commit
/// between them.
pub const BACKLOG_LOOK_MIN: Duration = Duration::from_millis(10);
/// Longest a dispatcher sleeps while a delivery is unprocessed: applying it commits and
/// wakes the dispatcher, but a delivery that fails to parse commits nothing.
pub const BACKLOG_WAKE_MAX: Duration = Duration::from_millis(100);
/// Age past which a `pending` delivery is taken as left behind, and replayed.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);
/// How often the lease holder looks for deliveries left behind.
pub const STUCK_LOOK_INTERVAL: Duration = Duration::from_secs(10);
/// Most deliveries left behind replayed in one look; the next look takes the rest.
pub const STUCK_REPLAY_MAX: i64 = 20;

/// What the dispatcher last learned from the inbox.
#[derive(Default)]
pub(super) struct Backlog {
    looked: Option<Timestamp>,
    /// The committed `seq` of the last look.
    looked_seq: Option<i64>,
    stuck_looked: Option<Timestamp>,
    /// Stores with a delivery unprocessed at the last look.
    stores: HashSet<StoreId>,
}

impl Backlog {
    /// Whether some store had a delivery unprocessed at the last look.
    pub(super) fn any(&self) -> bool {
        !self.stores.is_empty()
    }

    /// Asks the inbox, when it is time to, and tells the policy for every connected store.
    /// A workspace with no connected webhook store, or nothing held, asks nothing.
    pub(super) async fn look(&mut self, shared: &Shared, ws: i64, known: &mut Known, seq: i64, now: Timestamp) {
        let takes_webhooks = known.connected.keys().any(|s| {
            matches!(known.policy.config(*s).map(|c| c.intake), Some(stockpool_core::push::IntakeMode::Webhooks { .. }))
        });
        let holding = known.connected.keys().any(|s| known.policy.pending(*s) > 0);
        if !takes_webhooks || !(holding || self.any()) {
            return;
        }
        if self.looked_seq == Some(seq) && self.looked.is_some_and(|t| now.0 - t.0 < ms(BACKLOG_LOOK_MIN)) {
            return;
        }
        self.looked = Some(now);
        self.looked_seq = Some(seq);
        match shared.store.inbox_unprocessed(ws).await {
            Ok(list) => self.stores = list.into_iter().filter(|(_, n)| *n > 0).map(|(s, _)| s).collect(),
            // Unknown: keep what was last learned; the policy's bound caps any wait.
            Err(e) => tracing::warn!(workspace = ws, error = %e, "cannot read the inbox's unprocessed deliveries"),
        }
        for s in known.connected.keys() {
            known.policy.intake_backlog(*s, self.stores.contains(s));
        }
    }

    /// Replays deliveries left `pending`, when it is time to (the caller holds the lease).
    pub(super) async fn replay_stuck(&mut self, shared: &Shared, ws: i64, now: Timestamp) -> Result<usize, StoreError> {
        if self.stuck_looked.is_some_and(|t| now.0 - t.0 < ms(STUCK_LOOK_INTERVAL)) {
            return Ok(0);
        }
        self.stuck_looked = Some(now);
        let before = Timestamp(now.0 - ms(STUCK_AFTER));
        let stuck = shared.store.inbox_stuck(ws, before, STUCK_REPLAY_MAX).await?;
        let mut replayed = 0;
        for id in stuck {
            match shared.intake.replay(Some(id)).await {
                Ok(done) => {
                    replayed += 1;
                    for r in done {
                        tracing::info!(workspace = ws, delivery = id, store = %r.store, outcome = r.taken.outcome.as_str(), "replayed a delivery left pending");
                    }
                }
                Err(e) => {
                    tracing::warn!(workspace = ws, delivery = id, error = %e, "cannot replay a delivery left pending")
                }
            }
        }
        Ok(replayed)
    }
}
