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
//! Every spawned call is tracked in a `JoinSet` and awaited or aborted on stop.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use stockpool_channels::{Attempt, AttemptResult, Connector, HttpClient, PushItem, StoreSettings};
use stockpool_core::push::{Batch, Figure, Outcome, PushConfig, PushPolicy, PushReason, Rate};
use stockpool_core::{Channel, ListingId, Published, Schedule, StoreId, Timestamp};
use stockpool_store::lease::{LEASE_EXPIRY, LEASE_RENEW_INTERVAL, LEASE_USE_MAX};
use stockpool_store::model::{public_id, Kind};
use stockpool_store::workspace::{PendingPush, PushReason as Queued, Ws};
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

/// Wait after a 429 that named no `Retry-After`.
pub const THROTTLE_DEFAULT_MS: i64 = 1000;

/// What every dispatcher of a process shares.
#[derive(Clone)]
pub struct Shared {
    pub store: Storage,
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
    settings: StoreSettings,
    pending: Vec<PendingPush>,
}

/// What one look at the committed workspace gives.
struct Snapshot {
    stores: Vec<StoreView>,
    /// Listings the policy tracked that are no longer pending: their figure now.
    current: Vec<(StoreId, ListingId, Published)>,
}

fn snapshot(w: &Ws, tracked: &BTreeSet<(StoreId, ListingId)>) -> Snapshot {
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
                settings: StoreSettings {
                    code: s.code.clone(),
                    url: extra.url,
                    base_url: extra.base_url,
                    secret: extra.secret,
                    credentials: extra.credentials,
                    push_rate_per_second: extra.push_rate_per_second,
                },
                pending: if stockpool_channels::pushes_to(s.channel) { w.pending_pushes(s.id) } else { Vec::new() },
            }
        })
        .collect();
    let current = tracked
        .iter()
        .filter(|(_, l)| !w.pending.contains_key(l))
        .filter_map(|&(s, l)| w.published.get(&l).map(|p| (s, l, *p)))
        .collect();
    Snapshot { stores, current }
}

/// What a store's connector is built from: when it changes, the connector is rebuilt.
type ConnectorKey = (Channel, Schedule, Option<u32>, Option<String>, Option<String>, Option<String>, Option<String>);

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
        }
    }
}

/// Delivers workspace `ws`'s pushes until `stop`, while this node holds its lease.
async fn dispatch_workspace(shared: Shared, ws: i64, mut stop: watch::Receiver<bool>) -> i64 {
    let seed = shared.jitter_seed ^ (ws as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut known = Known::new(seed);
    let mut lease: Option<Held> = None;
    // When the lease was last tried or renewed (confirmed or not).
    let mut lease_tried: Option<Timestamp> = None;
    let mut calls: JoinSet<(StoreId, Claimed, Vec<Attempt>)> = JoinSet::new();
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
        let look = shared.store.read(ws, |w| snapshot(w, &known.tracked)).await;
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
        // 3. Claim and send what the policy allows now, while the lease is usable.
        if held.usable(now) {
            claim(ws, &mut known, &snap, held, &mut calls, now);
        }

        // 4. Wait for a call to return, a commit, the policy's next moment, or stop.
        let wake = snap.stores.iter().filter_map(|s| known.policy.next_wakeup(s.id)).min();
        let sleep = match wake {
            Some(at) => {
                Duration::from_millis((at.0 - (shared.clock)().0).clamp(0, IDLE_WAKE_MAX.as_millis() as i64) as u64)
            }
            None => IDLE_WAKE_MAX,
        };
        // Awake for the next renewal, so the lease never goes unrenewed for want of a look.
        let renew_in = lease_tried.map_or(0, |t| (t.0 + ms(LEASE_RENEW_INTERVAL) - (shared.clock)().0).max(0));
        let sleep = sleep.min(Duration::from_millis(renew_in as u64));
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
                    Ok((store, claimed, attempts)) => {
                        // A call sent under a lease since lost settles nothing: the new
                        // holder starts from the outbox.
                        if lease.is_some_and(|h| h.generation == claimed.generation) {
                            match settle(&shared, ws, &mut known.policy, store, claimed, attempts).await {
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
async fn lose(
    known: &mut Known,
    lease: &mut Option<Held>,
    calls: &mut JoinSet<(StoreId, Claimed, Vec<Attempt>)>,
    seed: u64,
) {
    calls.abort_all();
    while calls.join_next().await.is_some() {}
    *lease = None;
    *known = Known::new(seed);
}

/// Feeds the committed workspace into the policy: connectors for the stores that push,
/// their configuration and pause, and every pending push's newest figure.
fn look_at(shared: &Shared, ws: i64, known: &mut Known, snap: &Snapshot, held: Held, now: Timestamp) {
    let Known { policy, connected, tracked, sync_now_seen, details, refused } = known;
    for s in &snap.stores {
        let key: ConnectorKey = (
            s.channel,
            s.schedule,
            s.push_rate,
            s.settings.url.clone(),
            s.settings.base_url.clone(),
            s.settings.secret.clone(),
            s.settings.credentials.as_ref().map(|c| c.to_string()),
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
                    policy.configure_store(s.id, push_config(connector.as_ref(), s.schedule, s.push_rate), now);
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
            policy.queue_all(s.id, now);
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
    ws: i64,
    known: &mut Known,
    snap: &Snapshot,
    held: Held,
    calls: &mut JoinSet<(StoreId, Claimed, Vec<Attempt>)>,
    now: Timestamp,
) {
    for s in &snap.stores {
        let Some(c) = known.connected.get(&s.id) else { continue };
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
            let span = tracing::debug_span!("push", workspace = ws, store = store.0, batch = claimed.items.len());
            calls.spawn(tracing::Instrument::instrument(
                async move {
                    let attempts = connector.push(&claimed.items, now).await;
                    (store, claimed, attempts)
                },
                span,
            ));
        }
    }
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
