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
//! Every spawned call is tracked in a `JoinSet` and awaited or aborted on stop.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use stockpool_channels::{Attempt, AttemptResult, Connector, HttpClient, PushItem, StoreSettings};
use stockpool_core::push::{Batch, Figure, Outcome, PushConfig, PushPolicy, PushReason, Rate};
use stockpool_core::{Channel, ListingId, Published, Schedule, StoreId};
use stockpool_store::model::{public_id, Kind};
use stockpool_store::workspace::{PendingPush, PushReason as Queued, Ws};
use stockpool_store::{Clock, Command, Settle, SettledAttempt, Storage, SyncResult};
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
/// records (the figure with its rule, the reason word, the attempt number).
struct Claimed {
    batch: Batch,
    items: Vec<PushItem>,
    records: Vec<(Published, &'static str, u32)>,
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

fn reason_word(reason: PushReason, queued: Queued) -> &'static str {
    match (reason, queued) {
        (PushReason::SyncNow, _) | (_, Queued::SyncNow) => "sync_now",
        (PushReason::Retry, _) => "retry",
        (PushReason::Stale, _) => "stale",
        (PushReason::Drift, _) | (_, Queued::Reconcile) => "reconcile",
        (PushReason::Changed, Queued::StockChange) => "stock_change",
    }
}

/// Delivers workspace `ws`'s pushes until `stop`.
async fn dispatch_workspace(shared: Shared, ws: i64, mut stop: watch::Receiver<bool>) -> i64 {
    let mut policy = PushPolicy::new(shared.jitter_seed ^ (ws as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut connected: HashMap<StoreId, Connected> = HashMap::new();
    let mut tracked: BTreeSet<(StoreId, ListingId)> = BTreeSet::new();
    let mut sync_now_seen: BTreeMap<ListingId, i64> = BTreeMap::new();
    let mut details: HashMap<ListingId, (PushItem, Published, Queued)> = HashMap::new();
    let mut calls: JoinSet<(StoreId, Claimed, Vec<Attempt>)> = JoinSet::new();
    let mut commits = shared.store.commits();
    // Stores whose connector could not be built, with the settings that failed: reported
    // once, tried again when the settings change.
    let mut refused: HashMap<StoreId, ConnectorKey> = HashMap::new();
    loop {
        let now = (shared.clock)();
        // 1. What the committed workspace says.
        let look = shared.store.read(ws, |w| snapshot(w, &tracked)).await;
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
                details.insert(p.listing, (item, p.figure, p.meta.reason));
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

        // 2. Claim and send what the policy allows now.
        for s in &snap.stores {
            let Some(c) = connected.get(&s.id) else { continue };
            while let Some(batch) = policy.poll_batch(s.id, now) {
                let mut claimed = Claimed { batch, items: Vec::new(), records: Vec::new() };
                for p in &claimed.batch.pushes {
                    // Every listing the policy knows was pending once, so its details are
                    // here; one that is not is left out of the call, which the policy takes
                    // as a retry.
                    let Some((item, figure, queued)) = details.get(&p.listing) else { continue };
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
                    claimed.records.push((pushed, reason_word(p.reason, *queued), p.attempt));
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

        // 3. Wait for a call to return, a commit, the policy's next moment, or stop.
        let wake = snap.stores.iter().filter_map(|s| policy.next_wakeup(s.id)).min();
        let sleep = match wake {
            Some(at) => {
                Duration::from_millis((at.0 - (shared.clock)().0).clamp(0, IDLE_WAKE_MAX.as_millis() as i64) as u64)
            }
            None => IDLE_WAKE_MAX,
        };
        // A workspace with nothing to push to does not wake on every commit.
        let pushing = !connected.is_empty();
        let looked = tokio::time::Instant::now();
        tokio::select! {
            Some(done) = calls.join_next(), if !calls.is_empty() => {
                match done {
                    Ok((store, claimed, attempts)) => {
                        if let Err(e) = settle(&shared, ws, &mut policy, store, claimed, attempts).await {
                            tracing::warn!(workspace = ws, error = %e, "cannot settle a push; it will be sent again");
                            if pause(&mut stop, ERROR_PAUSE).await { break; }
                        }
                    }
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
        if since < LOOK_INTERVAL_MIN && pause(&mut stop, LOOK_INTERVAL_MIN - since).await {
            break;
        }
    }
    // Calls still out are abandoned: their pushes stay in the outbox and go again.
    calls.abort_all();
    while calls.join_next().await.is_some() {}
    ws
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
        })
        .collect();
    shared.store.execute(ws, Command::Settle(Settle { store, attempts: settled })).await?;
    Ok(())
}
