//! Pollers: the orders of polled channels (SPEC sections 5 and 5a: Etsy receipts, Amazon
//! and eBay orders), fetched by the dispatcher that holds the workspace's lease, so one
//! node polls a store at a time.
//!
//! A store is polled when its connector is built (at once), then every
//! `poll_every_seconds`, never faster than the channel allows (`poll_interval_min`), and
//! again at once when the channel said it has more. A poll starts from the store's
//! durable cursor (`StoreExtra::poll_cursor`); every order it found is kept raw in the
//! inbox and applied once (`Intake::take_polled`: the same order in the same state seen
//! again changes nothing); only then is the page's `next_cursor` committed, with the
//! poll's sync record (reason `poll`), through the writer and fenced by the lease
//! (`Command::Connection`). A crash between the two polls the page again, which changes
//! nothing. Then the push policy hears that the store's intake caught up to when the poll
//! started (the upward guard, SPEC section 5).
//!
//! A store paused because the channel refused its credentials is not polled until the
//! seller connects it again. Tokens a call rotated are kept the same way after any call
//! (`keep_connection`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use stockpool_channels::{ChannelError, Connector, PollPage};
use stockpool_core::{StoreId, Timestamp};
use stockpool_store::{Command, Connection, Fence, PollEnded, StoreError, SyncResult};
use tokio::task::JoinSet;

use super::{Done, Known, Shared, Snapshot, THROTTLE_DEFAULT_MS};

/// Wait before polling again after a poll that failed without saying how long to wait.
pub const POLL_RETRY_MS: i64 = 5_000;

/// When each store is polled next, and which polls are out.
#[derive(Default)]
pub(super) struct Polls {
    at: HashMap<StoreId, Timestamp>,
    out: HashSet<StoreId>,
    /// Each polled store's `poll_every_seconds`, as last seen.
    every: HashMap<StoreId, u32>,
    /// Stores paused because the channel refused their credentials, as last seen.
    refused: HashSet<StoreId>,
}

impl Polls {
    /// The next moment a poll is due, for the dispatcher's sleep.
    pub(super) fn next_at(&self) -> Option<Timestamp> {
        self.at.iter().filter(|(s, _)| !self.out.contains(s)).map(|(_, at)| *at).min()
    }
}

/// A poll sent: when it started, under which lease, and through which connector.
pub(super) struct PollCall {
    started_at: Timestamp,
    pub(super) generation: i64,
    pub(super) connector: Arc<dyn Connector>,
}

/// Starts every poll that is due: connected stores of polled channels whose time came and
/// that were not paused for refused credentials.
pub(super) fn start(
    shared: &Shared,
    ws: i64,
    known: &mut Known,
    snap: &Snapshot,
    generation: i64,
    calls: &mut JoinSet<Done>,
    now: Timestamp,
) {
    let polls = &mut known.polls;
    for s in &snap.stores {
        let connector = match known.connected.get(&s.id) {
            Some(c) if stockpool_channels::polls(s.channel) => c.connector.clone(),
            _ => {
                polls.at.remove(&s.id);
                continue;
            }
        };
        polls.every.insert(s.id, s.poll_every_seconds);
        if s.pause_reason {
            polls.refused.insert(s.id);
            continue;
        }
        polls.refused.remove(&s.id);
        if polls.out.contains(&s.id) {
            continue;
        }
        let at = *polls.at.entry(s.id).or_insert(now);
        if at > now {
            continue;
        }
        polls.out.insert(s.id);
        shared.store.metrics().pushes.record(ws, s.id.0 as i64, |m| m.calls += 1);
        let cursor = s.poll_cursor.clone();
        let store = s.id;
        let call = PollCall { started_at: now, generation, connector };
        let span = tracing::debug_span!("poll", workspace = ws, store = store.0);
        calls.spawn(tracing::Instrument::instrument(
            async move {
                let found = call.connector.poll_orders(cursor.as_deref(), now).await;
                Done::Poll(store, call, found)
            },
            span,
        ));
    }
}

/// A poll returned: its orders taken in, its cursor and record committed, the upward
/// guard told, the next poll scheduled.
pub(super) async fn returned(
    shared: &Shared,
    ws: i64,
    known: &mut Known,
    store: StoreId,
    call: PollCall,
    found: Result<PollPage, ChannelError>,
) -> Result<(), StoreError> {
    known.polls.out.remove(&store);
    let now = (shared.clock)();
    let every_seconds =
        known.polls.every.get(&store).copied().unwrap_or(stockpool_store::model::POLL_EVERY_SECONDS_DEFAULT);
    let every_ms = i64::from(every_seconds.max(1)) * 1000;
    let floor_ms = call.connector.poll_interval_min().map_or(0, |d: Duration| d.as_millis() as i64);
    let regular = Timestamp(now.0 + every_ms.max(floor_ms));
    let (ended, next) = match found {
        Ok(page) => {
            let (mut new, mut seen, mut failed) = (0usize, 0usize, 0usize);
            for order in &page.orders {
                match shared.intake.take_polled(ws, store, call.connector.clone(), order).await {
                    Ok(t) if t.seen_before => seen += 1,
                    Ok(t) if t.outcome == stockpool_store::inbox::Outcome::Failed => failed += 1,
                    Ok(_) => new += 1,
                    // The database is away: nothing of this page moves the cursor; the
                    // next poll finds the same orders (and the inbox those it kept).
                    Err(crate::intake::IntakeError::Store(e)) => {
                        known.polls.at.insert(store, Timestamp(now.0 + POLL_RETRY_MS));
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::warn!(workspace = ws, store = store.0, error = %e, "a polled order was not taken");
                        failed += 1;
                    }
                }
            }
            let detail = format!(
                "{} order{} found: {new} new, {seen} seen before{}",
                page.orders.len(),
                if page.orders.len() == 1 { "" } else { "s" },
                if failed > 0 {
                    format!(", {failed} kept but not taken (see stockpool inbox list)")
                } else {
                    String::new()
                }
            );
            let next = if page.more { now } else { regular };
            let ended = PollEnded {
                result: SyncResult::Ok,
                status_code: None,
                detail: Some(detail),
                cursor: page.next_cursor,
                started_at: call.started_at,
            };
            (ended, next)
        }
        Err(e) => {
            let (result, wait) = match &e {
                ChannelError::Throttled { retry_after_ms, .. } => {
                    (SyncResult::Retry, retry_after_ms.unwrap_or(THROTTLE_DEFAULT_MS).max(floor_ms))
                }
                ChannelError::Unavailable { .. } | ChannelError::Call { .. } => (SyncResult::Retry, POLL_RETRY_MS),
                _ => (SyncResult::Failed, every_ms.max(floor_ms)),
            };
            tracing::info!(workspace = ws, store = store.0, error = %e, "a poll failed");
            let status_code = match &e {
                ChannelError::Refused { status, .. } => *status,
                ChannelError::Throttled { .. } => Some(429),
                _ => None,
            };
            let ended = PollEnded {
                result,
                status_code,
                detail: Some(e.to_string()),
                cursor: None,
                started_at: call.started_at,
            };
            (ended, Timestamp(now.0 + wait))
        }
    };
    let ok = ended.result == SyncResult::Ok;
    known.polls.at.insert(store, next);
    keep_connection(shared, ws, known, store, &call.connector, Some(ended), call.generation).await?;
    if ok {
        known.policy.intake_caught_up(store, call.started_at);
        shared.store.metrics().pushes.record(ws, store.0 as i64, |m| m.polled_at = Some(call.started_at));
    }
    Ok(())
}

/// Commits what a store's connection learned: a poll's end (when given), tokens the
/// channel rotated since the store's credentials were committed, a refusal that pauses
/// the store. Writes nothing when there is nothing to keep.
pub(super) async fn keep_connection(
    shared: &Shared,
    ws: i64,
    known: &Known,
    store: StoreId,
    connector: &Arc<dyn Connector>,
    poll: Option<PollEnded>,
    generation: i64,
) -> Result<(), StoreError> {
    let committed = known.connected.get(&store).and_then(|c| c.key.6.clone());
    let credentials = connector.rotated_credentials().filter(|c| Some(c.to_string()) != committed);
    let pause = connector.auth_refused().filter(|_| !known.polls.refused.contains(&store));
    if poll.is_none() && credentials.is_none() && pause.is_none() {
        return Ok(());
    }
    if let Some(reason) = &pause {
        tracing::warn!(workspace = ws, store = store.0, reason = %reason, "the channel refused the store's credentials; the store is paused");
    }
    let fence = Some(Fence { node: shared.node.clone(), generation });
    shared.store.execute(ws, Command::Connection(Connection { store, poll, credentials, pause, fence })).await?;
    Ok(())
}
