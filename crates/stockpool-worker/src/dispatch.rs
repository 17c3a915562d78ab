//! Dispatchers: the shell around the core's push policy (`stockpool_core::push`) that
//! delivers what the outbox holds.
//!
//! One task per workspace with pushes (`run` supervises them). Each keeps one
//! `PushPolicy` for all the workspace's stores, because the upward guard spans stores. It
//! wakes on the store's committed-batch watch (never before a commit: what it reads is
//! committed and durable), on the policy's own `next_wakeup`, or when a push call returns.
//! On waking it feeds the policy every pending push of the committed workspace
//! (`Ws::pending_pushes`, latest value wins), claims every batch the policy allows, sends
//! each through its store's connector (`stockpool-channels`), and settles each outcome
//! through the writer (`Command::Settle`: sync records, the settled figure, the outbox
//! row) before telling the policy. Nothing here knows SQL or a channel's HTTP.
//!
//! Several nodes on one database: a dispatcher pushes only while its node holds the
//! workspace's push lease (`stockpool_store::lease`). It tries to acquire it, and renews
//! it, at most every `LEASE_RENEW_INTERVAL`; it starts no call once its last confirmed
//! renewal is `LEASE_USE_MAX` old; and when the lease is lost (not renewed, taken, or a
//! settle refused by the fence) it drops everything it knew: the calls out are aborted,
//! and the policy, the connectors and the tracked listings start again from the committed
//! outbox when it holds the lease again. A node that takes over from another waits for
//! one full bucket's refill before its first push, so the store's rate holds across the
//! change of node. Every settle names the lease generation its pushes went out under.
//!
//! Polled channels' orders are fetched by the same task under the same lease (`poll.rs`).
//! Webhook stores' intake feeds the upward guard from the inbox, and deliveries a crash
//! left pending are replayed by the lease holder (`backlog.rs`).
//!
//! Every spawned call is tracked in a `JoinSet` and awaited or aborted on stop.

mod backlog;
mod poll;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use stockpool_channels::{
    Attempt, AttemptResult, ChannelError, Connector, HttpClient, PushItem, ReadBack, ReadItem, StoreSettings,
};
use stockpool_core::push::{Batch, Figure, IntakeMode, Outcome, PushConfig, PushPolicy, PushReason, Rate};
use stockpool_core::{Channel, ListingId, Published, Schedule, StoreId, Timestamp};
use stockpool_store::lease::{LEASE_EXPIRY, LEASE_RENEW_INTERVAL, LEASE_USE_MAX};
use stockpool_store::model::{public_id, Kind};
use stockpool_store::workspace::{ChannelListing, PendingPush, PushReason as Queued, Ws};
use stockpool_store::{Clock, Command, Fence, NodeId, Settle, SettledAttempt, Storage, StoreError, SyncResult};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How often the supervisor looks for workspaces whose outbox has rows but no dispatcher
/// (one started by another process's write, or after a restart). Commits in this process
/// start one at once.
pub const DISCOVER_INTERVAL: Duration = Duration::from_secs(5);

/// Longest a dispatcher sleeps with nothing due: it looks at its workspace again after
/// this even if no commit woke it (another process's commit moves no watch here).
pub const IDLE_WAKE_MAX: Duration = Duration::from_secs(2);

/// Shortest time between two looks of one dispatcher at its workspace. Commits come
/// hundreds a second under load; a look per commit would take the workspace's read lock
/// as often as the writer takes its write lock. Pushes coalesce meanwhile (latest value
/// wins), so this bounds the work, not the figures, and adds at most this to staleness.
pub const LOOK_INTERVAL_MIN: Duration = Duration::from_millis(5);

/// Shortest time between two looks of the supervisor for new workspaces with pushes,
/// when commits wake it.
pub const DISCOVER_AFTER_COMMIT_MIN: Duration = Duration::from_millis(250);

/// Backoff when reading or settling fails (the database is away): the dispatcher tries
/// again after this, and never spins.
pub const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Most listings one read-back page asks for, whatever the connector allows.
pub const READ_PAGE_MAX: usize = 1000;

/// Wait after a 429 that named no `Retry-After`.
pub const THROTTLE_DEFAULT_MS: i64 = 1000;

/// What every dispatcher of a process shares.
#[derive(Clone)]
pub struct Shared {
    pub store: Storage,
    /// Takes the orders polls find, as webhook deliveries are taken.
    pub intake: crate::intake::Intake,
    pub http: HttpClient,
    /// The dispatchers' clock: it paces pushes (the policy's `now`).
    pub clock: Clock,
    /// Seeds each workspace's jitter (with its id), so a run can be replayed.
    pub jitter_seed: u64,
    /// This process, as push leases name it.
    pub node: NodeId,
    /// How long one call to a channel may take (`stockpool_channels::REQUEST_TIMEOUT`
    /// unless a test shortens it).
    pub request_timeout: Duration,
}

/// Supervises one dispatcher per workspace with pushes, until `stop`.
pub async fn run(shared: Shared, mut stop: watch::Receiver<bool>) {
    let mut tasks: JoinSet<i64> = JoinSet::new();
    let mut running: BTreeSet<i64> = BTreeSet::new();
    let mut commits = shared.store.commits();
    let mut discover = tokio::time::interval(DISCOVER_INTERVAL);
    discover.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        match shared.store.workspaces_with_pushes().await {
            Ok(list) => {
                for ws in list {
                    if running.insert(ws) {
                        tasks.spawn(dispatch_workspace(shared.clone(), ws, stop.clone()));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the workspaces with pushes; trying again"),
        }
        tokio::select! {
            _ = discover.tick() => {}
            changed = commits.changed() => {
                if changed.is_err() { break; }
                if pause(&mut stop, DISCOVER_AFTER_COMMIT_MIN).await { break; }
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Ok(ws) => { running.remove(&ws); }
                    Err(e) => tracing::error!(error = %e, "a dispatcher panicked"),
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() { break; }
            }
        }
    }
    // Each dispatcher hears `stop` too and finishes its settle in progress.
    while tasks.join_next().await.is_some() {}
}

/// A store as its dispatcher sees it.
struct StoreView {
    id: StoreId,
    channel: Channel,
    schedule: Schedule,
    paused: bool,
    /// The seller's cap on pushes a second, below the connector's rate.
    push_rate: Option<u32>,
    reconcile_every_minutes: u32,
    poll_every_seconds: u32,
    poll_cursor: Option<String>,
    /// Paused because the channel refused its credentials.
    pause_reason: bool,
    settings: StoreSettings,
    pending: Vec<PendingPush>,
    /// The next page of the store's read-back pass, when one was asked for.
    read_page: Option<Vec<ChannelListing>>,
}

/// What one look at the committed workspace gives.
struct Snapshot {
    stores: Vec<StoreView>,
    /// Listings the policy tracked that are no longer pending: their figure now.
    current: Vec<(StoreId, ListingId, Published)>,
    /// The committed workspace `seq` this was read at.
    seq: i64,
}

/// The read-back pages a look asks for: per store, the listing to read after and how many.
type PageWants = BTreeMap<StoreId, (Option<ListingId>, usize)>;

fn snapshot(w: &Ws, tracked: &BTreeSet<(StoreId, ListingId)>, wants: &PageWants) -> Snapshot {
    let stores = w
        .state
        .stores()
        .map(|s| {
            let extra = w.store_extra.get(&s.id).cloned().unwrap_or_default();
            StoreView {
                id: s.id,
                channel: s.channel,
                schedule: s.schedule,
                paused: extra.paused,
                push_rate: extra.push_rate_per_second,
                reconcile_every_minutes: extra.reconcile_every_minutes(),
                poll_every_seconds: extra.poll_every_seconds(),
                poll_cursor: extra.poll_cursor.clone(),
                pause_reason: extra.pause_reason.is_some(),
                settings: crate::store_settings(s, extra.clone()),
                pending: if stockpool_channels::pushes_to(s.channel) { w.pending_pushes(s.id) } else { Vec::new() },
                read_page: wants.get(&s.id).map(|&(after, n)| w.channel_listings(s.id, after, n)),
            }
        })
        .collect();
    let current = tracked
        .iter()
        .filter(|(_, l)| !w.pending.contains_key(l))
        .filter_map(|&(s, l)| w.published.get(&l).map(|p| (s, l, *p)))
        .collect();
    Snapshot { stores, current, seq: w.seq }
}

/// What a store's connector is built from: when it changes, the connector is rebuilt.
type ConnectorKey =
    (Channel, Schedule, Option<u32>, Option<String>, Option<String>, Option<String>, Option<String>, u32);

/// A store's connector and what it was built from.
struct Connected {
    connector: Arc<dyn Connector>,
    key: ConnectorKey,
}

/// A claimed batch: the items sent, in the batch's order, each with what its settle
/// records (the figure with its rule, the reason word, the attempt number), and the lease
/// generation it was sent under.
struct Claimed {
    batch: Batch,
    generation: i64,
    items: Vec<PushItem>,
    records: Vec<(Published, &'static str, u32, i64)>,
}

/// Why a store's listings are being read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadOrigin {
    /// `reconcile_every_minutes` came round.
    Reconcile,
    /// "Sync now": read back first, then push every listing (`queue_all`).
    SyncNow,
}

impl ReadOrigin {
    /// The sync record's reason for what the read found.
    fn reason(self) -> &'static str {
        match self {
            ReadOrigin::Reconcile => "reconcile",
            ReadOrigin::SyncNow => "sync_now",
        }
    }
}

/// A store's read-back pass: page after page of its listings, in id order, each page one
/// call claimed from the policy (`poll_read`) between its batches.
#[derive(Clone, Copy, Debug)]
struct ReadPass {
    origin: ReadOrigin,
    /// The last listing of the last page read (`None`: start from the first).
    after: Option<ListingId>,
    /// A page is out.
    out: bool,
}

/// A read-back call sent: the page, where the pass stood when it went, and the lease
/// generation it went out under.
struct ReadCall {
    origin: ReadOrigin,
    from: Option<ListingId>,
    generation: i64,
    page: Vec<ChannelListing>,
}

/// What a tracked call returns.
enum Done {
    Push(StoreId, Claimed, Vec<Attempt>),
    Read(StoreId, ReadCall, Result<ReadBack, ChannelError>),
    Poll(StoreId, poll::PollCall, Result<stockpool_channels::PollPage, ChannelError>),
}

/// The push policy's configuration for a store from its connector's limits, slowed to the
/// store's `push_rate_per_second` when that is lower (a store can never go faster than its
/// channel allows).
fn push_config(connector: &dyn Connector, schedule: Schedule, push_rate: Option<u32>) -> PushConfig {
    let limits = connector.limits();
    let capped = push_rate.map_or(u64::MAX, |r| u64::from(r) * 1000);
    let per_second_milli = limits.requests_per_second_milli.min(capped).max(1) as i64;
    PushConfig {
        schedule,
        batch_max: limits.batch_max.max(1),
        // `refill` calls every `per_ms`: in thousandths of a call per second, one call
        // every 1,000,000 / milli ms.
        rate: Rate { burst: i64::from(limits.burst.max(1)), refill: per_second_milli, per_ms: 1_000_000 },
        // A channel that takes one listing a request spends a token per listing.
        cost_per_batch: if limits.call_per_item { 0 } else { 1 },
        cost_per_push: i64::from(limits.call_per_item),
        ..PushConfig::default()
    }
}

/// How long a full bucket of `connector`'s takes to refill: a node that takes a store
/// over waits this before its first push, as the previous holder's bucket would have.
fn refill_ms(connector: &dyn Connector) -> i64 {
    let limits = connector.limits();
    i64::from(limits.burst.max(1)) * 1_000_000 / (limits.requests_per_second_milli.max(1) as i64)
}

/// The push lease as this dispatcher holds it.
#[derive(Clone, Copy, Debug)]
struct Held {
    generation: i64,
    /// The `now` of the last renewal (or the acquisition) the database confirmed.
    renewed_at: Timestamp,
    /// When it was acquired, if another node (or an earlier life of this one) held it
    /// before: the first pushes wait for one bucket's refill from then.
    taken_over_at: Option<Timestamp>,
}

impl Held {
    /// Whether calls may start at `now`: the last renewal is recent enough that any call
    /// ends before the lease could expire.
    fn usable(&self, now: Timestamp) -> bool {
        now.0 - self.renewed_at.0 < LEASE_USE_MAX.as_millis() as i64
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

fn reason_word(reason: PushReason, queued: Queued) -> &'static str {
    match (reason, queued) {
        (PushReason::SyncNow, _) | (_, Queued::SyncNow) => "sync_now",
        (PushReason::Retry, _) => "retry",
        (PushReason::Stale, _) => "stale",
        (PushReason::Drift, _) | (_, Queued::Reconcile) => "reconcile",
        (PushReason::Changed, Queued::StockChange) => "stock_change",
    }
}

/// What a dispatcher knows about its workspace's pushes; all of it is dropped when the
/// lease is lost, and rebuilt from the committed outbox once it is held again.
struct Known {
    policy: PushPolicy,
    connected: HashMap<StoreId, Connected>,
    tracked: BTreeSet<(StoreId, ListingId)>,
    sync_now_seen: BTreeMap<ListingId, i64>,
    details: HashMap<ListingId, (PushItem, Published, Queued, i64)>,
    /// Stores whose connector could not be built, with the settings that failed: reported
    /// once, tried again when the settings change.
    refused: HashMap<StoreId, ConnectorKey>,
    /// Read-back passes under way.
    reads: HashMap<StoreId, ReadPass>,
    /// Order polls of polled stores.
    polls: poll::Polls,
    /// Webhook stores' unprocessed deliveries.
    backlog: backlog::Backlog,
}

impl Known {
    fn new(seed: u64) -> Known {
        Known {
            policy: PushPolicy::new(seed),
            connected: HashMap::new(),
            tracked: BTreeSet::new(),
            sync_now_seen: BTreeMap::new(),
            details: HashMap::new(),
            refused: HashMap::new(),
            reads: HashMap::new(),
            polls: poll::Polls::default(),
            backlog: backlog::Backlog::default(),
        }
    }
}

/// Delivers workspace `ws`'s pushes until `stop`, while this node holds its lease.
async fn dispatch_workspace(shared: Shared, ws: i64, mut stop: watch::Receiver<bool>) -> i64 {
    let seed = shared.jitter_seed ^ (ws as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut known = Known::new(seed);
    // When each store that can read back reconciles next. Kept across a lost lease: the
    // period runs from when this node first pushed the store.
    let mut reconcile_at: HashMap<StoreId, Timestamp> = HashMap::new();
    let mut lease: Option<Held> = None;
    // When the lease was last tried or renewed (confirmed or not).
    let mut lease_tried: Option<Timestamp> = None;
    let mut calls: JoinSet<Done> = JoinSet::new();
    let mut commits = shared.store.commits();
    loop {
        let now = (shared.clock)();
        // 1. The lease: renew it, or try to take it, at most every renew interval.
        if lease_tried.is_none_or(|t| now.0 - t.0 >= ms(LEASE_RENEW_INTERVAL)) {
            lease_tried = Some(now);
            match lease {
                Some(held) => match shared.store.renew_lease(ws, &shared.node, now).await {
                    Ok(Some(l)) if l.generation == held.generation => {
                        lease = Some(Held { renewed_at: now, ..held });
                    }
                    Ok(_) => {
                        tracing::warn!(workspace = ws, node = %shared.node, "lost the push lease; another node pushes");
                        lose(&mut known, &mut lease, &mut calls, seed).await;
                    }
                    Err(e) => tracing::warn!(workspace = ws, error = %e, "cannot renew the push lease; trying again"),
                },
                None => match shared.store.acquire_lease(ws, &shared.node, now).await {
                    Ok(Some(l)) => {
                        tracing::info!(workspace = ws, node = %shared.node, generation = l.generation, "holds the push lease");
                        let taken_over_at = (l.generation > 1).then_some(now);
                        lease = Some(Held { generation: l.generation, renewed_at: now, taken_over_at });
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(workspace = ws, error = %e, "cannot take the push lease; trying again"),
                },
            }
        }
        // Not renewed for a whole expiry: another node may hold it by now.
        if lease.is_some_and(|h| now.0 - h.renewed_at.0 >= ms(LEASE_EXPIRY)) {
            tracing::warn!(workspace = ws, node = %shared.node, "the push lease expired unrenewed");
            lose(&mut known, &mut lease, &mut calls, seed).await;
        }
        let Some(held) = lease else {
            // Another node pushes this workspace: try again later, reading nothing.
            if pause(&mut stop, LEASE_RENEW_INTERVAL).await {
                break;
            }
            continue;
        };

        // 2. What the committed workspace says (reloaded if another node committed since).
        let wants = page_wants(&known, now);
        let look = shared.store.read(ws, |w| snapshot(w, &known.tracked, &wants)).await;
        let snap = match look {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(workspace = ws, error = %e, "cannot read the workspace to push; trying again");
                if pause(&mut stop, ERROR_PAUSE).await {
                    break;
                }
                continue;
            }
        };
        look_at(&shared, ws, &mut known, &snap, held, now);
        reconcile(&mut known, &mut reconcile_at, &snap, now);
        let mut backlog = std::mem::take(&mut known.backlog);
        backlog.look(&shared, ws, &mut known, snap.seq, now).await;
        if let Err(e) = backlog.replay_stuck(&shared, ws, now).await {
            tracing::warn!(workspace = ws, error = %e, "cannot look for deliveries left pending");
        }
        known.backlog = backlog;
        // 3. Claim and send what the policy allows now, while the lease is usable.
        if held.usable(now) {
            claim(&shared, ws, &mut known, &snap, held, &mut calls, now);
            poll::start(&shared, ws, &mut known, &snap, held.generation, &mut calls, now);
        }

        // 4. Wait for a call to return, a commit, the policy's next moment, or stop.
        let wake = snap
            .stores
            .iter()
            .filter_map(|s| known.policy.next_wakeup(s.id))
            .chain(known.reads.iter().filter(|(_, r)| !r.out).filter_map(|(s, _)| known.policy.next_read_at(*s)))
            .chain(reconcile_at.values().copied())
            .chain(known.polls.next_at())
            .min();
        let sleep = match wake {
            Some(at) => {
                Duration::from_millis((at.0 - (shared.clock)().0).clamp(0, IDLE_WAKE_MAX.as_millis() as i64) as u64)
            }
            None => IDLE_WAKE_MAX,
        };
        // Awake for the next renewal, so the lease never goes unrenewed for want of a look.
        let renew_in = lease_tried.map_or(0, |t| (t.0 + ms(LEASE_RENEW_INTERVAL) - (shared.clock)().0).max(0));
        let sleep = sleep.min(Duration::from_millis(renew_in as u64));
        // An unprocessed delivery may be applied without a commit (one that fails to parse).
        let sleep = if known.backlog.any() { sleep.min(backlog::BACKLOG_WAKE_MAX) } else { sleep };
        // A workspace with nothing to push to does not wake on every commit.
        let pushing = !known.connected.is_empty();
        let looked = tokio::time::Instant::now();
        // A returned call is settled and the next batch claimed at once; only commits (which
        // come hundreds a second) are coalesced by `LOOK_INTERVAL_MIN`.
        let mut returned = false;
        tokio::select! {
            Some(done) = calls.join_next(), if !calls.is_empty() => {
                returned = true;
                match done {
                    Ok(Done::Read(store, call, found)) => {
                        known.policy.read_done(store);
                        if lease.is_some_and(|h| h.generation == call.generation) {
                            match read_returned(&shared, ws, &mut known, store, call, found).await {
                                Ok(()) => {}
                                Err(StoreError::LeaseLost { .. }) => {
                                    tracing::warn!(workspace = ws, node = %shared.node, "a drift record was fenced off: another node holds the push lease");
                                    lose(&mut known, &mut lease, &mut calls, seed).await;
                                }
                                Err(e) => {
                                    tracing::warn!(workspace = ws, error = %e, "cannot record what a read-back found; the pass goes on");
                                    if pause(&mut stop, ERROR_PAUSE).await { break; }
                                }
                            }
                        }
                    }
                    Ok(Done::Poll(store, call, found)) => {
                        if lease.is_some_and(|h| h.generation == call.generation) {
                            match poll::returned(&shared, ws, &mut known, store, call, found).await {
                                Ok(()) => {}
                                Err(StoreError::LeaseLost { .. }) => {
                                    tracing::warn!(workspace = ws, node = %shared.node, "a poll's cursor was fenced off: another node holds the push lease");
                                    lose(&mut known, &mut lease, &mut calls, seed).await;
                                }
                                Err(e) => {
                                    tracing::warn!(workspace = ws, error = %e, "cannot keep what a poll found; it polls again");
                                    if pause(&mut stop, ERROR_PAUSE).await { break; }
                                }
                            }
                        }
                    }
                    Ok(Done::Push(store, claimed, attempts)) => {
                        // A call sent under a lease since lost settles nothing: the new
                        // holder starts from the outbox.
                        if lease.is_some_and(|h| h.generation == claimed.generation) {
                            let generation = claimed.generation;
                            let kept = match settle(&shared, ws, &mut known.policy, store, claimed, attempts).await {
                                Ok(()) => match known.connected.get(&store).map(|c| c.connector.clone()) {
                                    // Tokens the pushes rotated, a refusal that pauses.
                                    Some(c) => poll::keep_connection(&shared, ws, &known, store, &c, None, generation).await,
                                    None => Ok(()),
                                },
                                Err(e) => Err(e),
                            };
                            match kept {
                                Ok(()) => {}
                                Err(StoreError::LeaseLost { .. }) => {
                                    tracing::warn!(workspace = ws, node = %shared.node, "a settle was fenced off: another node holds the push lease");
                                    lose(&mut known, &mut lease, &mut calls, seed).await;
                                }
                                Err(e) => {
                                    tracing::warn!(workspace = ws, error = %e, "cannot settle a push; it will be sent again");
                                    if pause(&mut stop, ERROR_PAUSE).await { break; }
                                }
                            }
                        }
                    }
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => tracing::error!(workspace = ws, error = %e, "a push call panicked"),
                }
            }
            changed = commits.changed(), if pushing => {
                if changed.is_err() { break; }
            }
            _ = tokio::time::sleep(sleep) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() { break; }
            }
        }
        let since = looked.elapsed();
        if !returned && since < LOOK_INTERVAL_MIN && pause(&mut stop, LOOK_INTERVAL_MIN - since).await {
            break;
        }
    }
    // Calls still out are abandoned: their pushes stay in the outbox and go again.
    calls.abort_all();
    while calls.join_next().await.is_some() {}
    // Another node may take the workspace at once rather than after the lease's expiry.
    if lease.is_some() {
        if let Err(e) = shared.store.release_lease(ws, &shared.node, (shared.clock)()).await {
            tracing::warn!(workspace = ws, error = %e, "cannot release the push lease; it expires on its own");
        }
    }
    ws
}

/// The lease is gone: stop every call at once and forget what this node knew.
async fn lose(known: &mut Known, lease: &mut Option<Held>, calls: &mut JoinSet<Done>, seed: u64) {
    calls.abort_all();
    while calls.join_next().await.is_some() {}
    *lease = None;
    *known = Known::new(seed);
}

/// Feeds the committed workspace into the policy: connectors for the stores that push,
/// their configuration and pause, and every pending push's newest figure.
fn look_at(shared: &Shared, ws: i64, known: &mut Known, snap: &Snapshot, held: Held, now: Timestamp) {
    let Known { policy, connected, tracked, sync_now_seen, details, refused, reads, .. } = known;
    for s in &snap.stores {
        let key: ConnectorKey = (
            s.channel,
            s.schedule,
            s.push_rate,
            s.settings.url.clone(),
            s.settings.base_url.clone(),
            s.settings.secret.clone(),
            s.settings.credentials.as_ref().map(|c| c.to_string()),
            s.poll_every_seconds,
        );
        let stale = connected.get(&s.id).is_none_or(|c| c.key != key);
        let known_refusal = refused.get(&s.id) == Some(&key);
        if stale && stockpool_channels::pushes_to(s.channel) && !known_refusal {
            match stockpool_channels::connector_with(
                s.channel,
                s.settings.clone(),
                shared.http.clone(),
                shared.request_timeout,
            ) {
                Ok(Some(connector)) => {
                    let intake = if stockpool_channels::polls(s.channel) {
                        IntakeMode::polled(i64::from(s.poll_every_seconds))
                    } else {
                        IntakeMode::webhooks(i64::from(s.poll_every_seconds))
                    };
                    let config = PushConfig { intake, ..push_config(connector.as_ref(), s.schedule, s.push_rate) };
                    policy.configure_store(s.id, config, now);
                    let rate_milli = (config.rate.refill * 1000 * 1000 / config.rate.per_ms.max(1)) as u64;
                    shared.store.metrics().pushes.record(ws, s.id.0 as i64, |m| m.rate_milli = rate_milli);
                    // Taken over from another node: its bucket may be spent; wait as long
                    // as it would take to refill.
                    if let Some(at) = held.taken_over_at {
                        let wait = at.0 + refill_ms(connector.as_ref()) - now.0;
                        if wait > 0 {
                            policy.throttle(s.id, wait, now);
                        }
                    }
                    connected.insert(s.id, Connected { connector, key });
                }
                // `manual`: the seller sets it by hand; nothing to push.
                Ok(None) => {
                    connected.remove(&s.id);
                }
                Err(e) => {
                    connected.remove(&s.id);
                    refused.insert(s.id, key);
                    tracing::warn!(workspace = ws, store = %s.settings.code, error = %e, "store cannot push");
                }
            }
        }
        if !connected.contains_key(&s.id) {
            continue;
        }
        policy.set_paused(s.id, s.paused);
        let mut sync_now = false;
        for p in &s.pending {
            if tracked.insert((s.id, p.listing)) {
                if let Some(settled) = &p.settled {
                    policy.set_settled(s.id, p.listing, Figure::from(settled));
                }
            }
            policy.set_target(s.id, p.listing, Figure::from(&p.figure), now);
            if p.meta.reason == Queued::SyncNow && sync_now_seen.get(&p.listing) != Some(&p.meta.generation) {
                sync_now_seen.insert(p.listing, p.meta.generation);
                sync_now = true;
            }
            let item = PushItem {
                listing: p.listing,
                public_id: public_id(Kind::Listing, ws, p.listing.0),
                external_id: p.external_id.clone(),
                store_sku: p.store_sku.clone(),
                sku: p.sku.clone(),
                quantity: p.figure.quantity,
                sell_when_out_of_stock: p.figure.sell_when_out_of_stock,
                show_backorder: p.figure.show_backorder,
                settled: p.settled.map(|x| x.quantity),
            };
            details.insert(p.listing, (item, p.figure, p.meta.reason, p.meta.generation));
        }
        if sync_now {
            let reads_back = connected.get(&s.id).is_some_and(|c| c.connector.limits().read_batch_max > 0);
            if reads_back {
                // Read back first; the pass's end queues every listing (`read_returned`).
                // A pass already under way starts over as this one.
                let out = reads.get(&s.id).is_some_and(|r| r.out);
                reads.insert(s.id, ReadPass { origin: ReadOrigin::SyncNow, after: None, out });
            } else {
                policy.queue_all(s.id, now);
            }
        }
    }
    for (store, listing, figure) in &snap.current {
        policy.set_target(*store, *listing, Figure::from(figure), now);
        if policy.target(*listing) == policy.settled(*listing) && policy.in_flight(*store).is_none() {
            tracked.remove(&(*store, *listing));
            details.remove(listing);
        }
    }
}

/// Claims every batch the policy allows now and sends each through its store's connector.
fn claim(
    shared: &Shared,
    ws: i64,
    known: &mut Known,
    snap: &Snapshot,
    held: Held,
    calls: &mut JoinSet<Done>,
    now: Timestamp,
) {
    let metrics = shared.store.metrics();
    for s in &snap.stores {
        let Some(c) = known.connected.get(&s.id) else { continue };
        if let (Some(pass), Some(page)) = (known.reads.get_mut(&s.id), &s.read_page) {
            if !pass.out {
                if page.is_empty() {
                    // The pass has read every listing: "Sync now" pushes them all now.
                    if pass.origin == ReadOrigin::SyncNow {
                        known.policy.queue_all(s.id, now);
                    }
                    known.reads.remove(&s.id);
                } else if known.policy.poll_read(s.id, now) {
                    pass.out = true;
                    let call = ReadCall {
                        origin: pass.origin,
                        from: pass.after,
                        generation: held.generation,
                        page: page.clone(),
                    };
                    let connector = c.connector.clone();
                    let store = s.id;
                    metrics.pushes.record(ws, store.0 as i64, |m| m.calls += 1);
                    let span = tracing::debug_span!("read_back", workspace = ws, store = store.0, page = page.len());
                    calls.spawn(tracing::Instrument::instrument(
                        async move {
                            let items: Vec<ReadItem> = call
                                .page
                                .iter()
                                .map(|l| ReadItem {
                                    listing: l.listing,
                                    external_id: l.external_id.clone(),
                                    store_sku: l.store_sku.clone(),
                                })
                                .collect();
                            let found = connector.read_back(&items).await;
                            Done::Read(store, call, found)
                        },
                        span,
                    ));
                }
            }
        }
        while let Some(batch) = known.policy.poll_batch(s.id, now) {
            let mut claimed = Claimed { batch, generation: held.generation, items: Vec::new(), records: Vec::new() };
            for p in &claimed.batch.pushes {
                // Every listing the policy knows was pending once, so its details are
                // here; one that is not is left out of the call, which the policy takes
                // as a retry.
                let Some((item, figure, queued, generation)) = known.details.get(&p.listing) else { continue };
                // The push carries the policy's figure: the newest committed one.
                claimed.items.push(PushItem {
                    quantity: p.figure.quantity,
                    sell_when_out_of_stock: p.figure.sell_when_out_of_stock,
                    show_backorder: p.figure.show_backorder,
                    settled: p.settled.map(|x| x.quantity),
                    ..item.clone()
                });
                let pushed = Published {
                    quantity: p.figure.quantity,
                    sell_when_out_of_stock: p.figure.sell_when_out_of_stock,
                    show_backorder: p.figure.show_backorder,
                    ..*figure
                };
                claimed.records.push((pushed, reason_word(p.reason, *queued), p.attempt, *generation));
            }
            let connector = c.connector.clone();
            let store = s.id;
            let made = if connector.limits().call_per_item { claimed.items.len() as u64 } else { 1 };
            metrics.pushes.record(ws, store.0 as i64, |m| m.calls += made);
            let span = tracing::debug_span!("push", workspace = ws, store = store.0, batch = claimed.items.len());
            calls.spawn(tracing::Instrument::instrument(
                async move {
                    let attempts = connector.push(&claimed.items, now).await;
                    Done::Push(store, claimed, attempts)
                },
                span,
            ));
        }
    }
}

/// The read-back pages the next look should fetch: stores with a pass whose next page may
/// be claimed by `now`.
fn page_wants(known: &Known, now: Timestamp) -> PageWants {
    known
        .reads
        .iter()
        .filter(|(store, pass)| !pass.out && known.policy.next_read_at(**store).is_some_and(|at| at <= now))
        .filter_map(|(store, pass)| {
            let n = known.connected.get(store)?.connector.limits().read_batch_max;
            (n > 0).then_some((*store, (pass.after, n.min(READ_PAGE_MAX))))
        })
        .collect()
}

/// Starts a reconciliation pass for every store that reads back and whose
/// `reconcile_every_minutes` came round. A store is first reconciled one period after this
/// node began pushing it (a restart does not read every store back at once).
fn reconcile(known: &mut Known, reconcile_at: &mut HashMap<StoreId, Timestamp>, snap: &Snapshot, now: Timestamp) {
    for s in &snap.stores {
        let reads_back = known.connected.get(&s.id).is_some_and(|c| c.connector.limits().read_batch_max > 0);
        if !reads_back {
            reconcile_at.remove(&s.id);
            continue;
        }
        let period = i64::from(s.reconcile_every_minutes.max(1)) * 60_000;
        let next = Timestamp(now.0.saturating_add(period));
        let at = reconcile_at.entry(s.id).or_insert(next);
        // A shorter period set since takes effect at once.
        if *at > next {
            *at = next;
        }
        if now >= *at {
            *at = next;
            known.reads.entry(s.id).or_insert(ReadPass { origin: ReadOrigin::Reconcile, after: None, out: false });
        }
    }
}

/// A read-back page returned: every listing whose channel shows another quantity than it
/// was last told is recorded as `drift` through the writer (which settles the channel's
/// figure and queues the push that corrects it), and the pass moves on. A throttled read
/// waits and reads the page again; a read that failed otherwise ends the pass (a "Sync
/// now" still pushes everything), and the next period tries again.
async fn read_returned(
    shared: &Shared,
    ws: i64,
    known: &mut Known,
    store: StoreId,
    call: ReadCall,
    found: Result<ReadBack, ChannelError>,
) -> Result<(), StoreError> {
    let now = (shared.clock)();
    let Some(pass) = known.reads.get_mut(&store) else { return Ok(()) };
    pass.out = false;
    let found = match found {
        Ok(found) => found,
        // 429: the store waits (pushes too), and the same page is read again after it.
        Err(ChannelError::Throttled { retry_after_ms, .. }) => {
            known.policy.throttle(store, retry_after_ms.unwrap_or(THROTTLE_DEFAULT_MS), now);
            return Ok(());
        }
        Err(e) => {
            tracing::warn!(workspace = ws, store = store.0, error = %e, "a read-back failed; the pass stops here");
            if pass.origin == ReadOrigin::SyncNow {
                known.policy.queue_all(store, now);
            }
            known.reads.remove(&store);
            return Ok(());
        }
    };
    // A pass restarted meanwhile ("Sync now" during a reconciliation) reads from its own
    // start; this page still tells what the channel shows.
    if pass.after == call.from {
        pass.after = call.page.last().map(|l| l.listing);
    }
    let channel: HashMap<ListingId, Option<stockpool_core::Qty>> = found.into_iter().collect();
    let mut drifted = Vec::new();
    for l in &call.page {
        let Some(Some(quantity)) = channel.get(&l.listing) else { continue };
        // Drift is against the figure last pushed; a listing never pushed has its first
        // push queued already.
        let Some(expected) = l.settled else { continue };
        if *quantity == expected.quantity {
            continue;
        }
        drifted.push(SettledAttempt {
            listing: l.listing,
            pushed: Published { quantity: *quantity, ..expected },
            old_quantity: Some(expected.quantity),
            reason: call.origin.reason(),
            result: SyncResult::Drift { channel_quantity: *quantity },
            status_code: None,
            detail: Some(format!(
                "the channel showed {quantity} where it was last told {}; pushing the figure again",
                expected.quantity
            )),
            attempt: 1,
            next_attempt_at: None,
            claimed_generation: 0,
        });
    }
    if drifted.is_empty() {
        return Ok(());
    }
    let fence = Some(Fence { node: shared.node.clone(), generation: call.generation });
    for a in &drifted {
        if let SyncResult::Drift { channel_quantity } = a.result {
            if known.tracked.contains(&(store, a.listing)) {
                known.policy.drift(store, a.listing, channel_quantity, now);
            }
        }
    }
    shared.store.execute(ws, Command::Settle(Settle { store, attempts: drifted, fence })).await?;
    Ok(())
}

/// Waits `d` unless `stop` comes first; true if it did.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
    }
}

/// Records a returned call: its attempts through the writer, then in the policy.
async fn settle(
    shared: &Shared,
    ws: i64,
    policy: &mut PushPolicy,
    store: StoreId,
    claimed: Claimed,
    attempts: Vec<Attempt>,
) -> Result<(), stockpool_store::StoreError> {
    let now = (shared.clock)();
    let mut outcomes = Vec::with_capacity(claimed.items.len());
    for (i, item) in claimed.items.iter().enumerate() {
        let a = attempts.get(i).cloned().unwrap_or(Attempt {
            result: AttemptResult::Retry { retry_after_ms: None },
            status_code: None,
            detail: Some("the connector gave no answer for this listing".into()),
            duration_ms: 0,
        });
        let outcome = match a.result {
            AttemptResult::Ok => Outcome::Ok,
            AttemptResult::Retry { retry_after_ms } => Outcome::Retry { retry_after_ms },
            AttemptResult::Throttled { retry_after_ms } => {
                policy.throttle(store, retry_after_ms.unwrap_or(THROTTLE_DEFAULT_MS), now);
                Outcome::Retry { retry_after_ms }
            }
            AttemptResult::Failed => Outcome::Failed,
            AttemptResult::Stale { channel_quantity } => Outcome::Stale { channel_quantity },
        };
        outcomes.push((item.listing, outcome, a));
    }
    let pairs: Vec<(ListingId, Outcome)> = outcomes.iter().map(|(l, o, _)| (*l, *o)).collect();
    policy.handle_outcomes(store, claimed.batch.id, &pairs, now);
    let settled: Vec<SettledAttempt> = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, (listing, outcome, a))| SettledAttempt {
            listing,
            pushed: claimed.records[i].0,
            old_quantity: claimed.items[i].settled,
            reason: claimed.records[i].1,
            result: match outcome {
                Outcome::Ok => SyncResult::Ok,
                Outcome::Retry { .. } => SyncResult::Retry,
                Outcome::Failed => SyncResult::Failed,
                Outcome::Stale { channel_quantity } => SyncResult::Stale { channel_quantity },
                Outcome::Drift { channel_quantity } => SyncResult::Drift { channel_quantity },
            },
            status_code: a.status_code,
            detail: a.detail,
            attempt: claimed.records[i].2,
            next_attempt_at: policy.retry_at(listing, now),
            claimed_generation: claimed.records[i].3,
        })
        .collect();
    let fence = Some(Fence { node: shared.node.clone(), generation: claimed.generation });
    shared.store.execute(ws, Command::Settle(Settle { store, attempts: settled, fence })).await?;
    Ok(())
}
