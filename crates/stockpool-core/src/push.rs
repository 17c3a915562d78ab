//! The push policy: when each listing's figure goes to its channel (SPEC section 5).
//!
//! One `PushPolicy` per workspace holds every store's pending pushes and decides which
//! batch may leave when. It is sans-IO in the shape of quinn-proto's `Connection`: the
//! shell feeds it inputs (`set_target` after a commit, `intake_caught_up` after a poll,
//! `handle_outcomes` after a call, `throttle` on a 429), each with `now`, and asks it for
//! decisions as data (`poll_batch`: the next batch allowed now; `next_wakeup`: when to
//! ask again). It reads no clock, does no I/O and draws its jitter from a seeded PRNG, so
//! the server's dispatcher, the simulator and the tests drive the same code.
//!
//! What it promises, in SPEC's words:
//! - **Latest value wins**: one pending entry per listing, carrying the newest target. A
//!   target that returns to the settled figure (what the channel was last told) drops the
//!   entry; while the listing is in flight the comparison waits for the outcome.
//! - **Order**: at most one batch in flight per store, never a listing in two batches, so
//!   a channel is never sent an older figure after a newer one. Oldest queued first.
//! - **Rate limits and batch sizes**: a token bucket per store (declared `Rate`, replaced
//!   by what the channel reports, `report_rate`); a batch is claimed only when the bucket
//!   covers it, and has at most `batch_max` pushes. `throttle` (429, `THROTTLED`) holds
//!   the whole store until its `Retry-After`.
//! - **Retries**: 5xx, timeouts and connection errors retry per listing with capped
//!   exponential backoff and *equal jitter* (half the capped delay fixed, half drawn), so
//!   every retry waits at least as long as the previous one could have; `Retry-After` is
//!   used when given. A listing in backoff never blocks the others. A refused 4xx is not
//!   retried until the target moves again or "Sync now".
//! - **Compare-and-set**: `Stale` (the channel had another quantity) and `Drift` (a
//!   read-back found another quantity) make that quantity the settled figure and push
//!   again when the target differs.
//! - **Schedules**: `Realtime` pushes whenever the budget allows; `EveryMinutes(n)` sends
//!   at most one round per n minutes: every listing pending when the round opens, in as
//!   many batches as it takes within the budget.
//! - **Upward guard**: a figure that does not raise what the channel shows goes at once.
//!   An increase waits until every store with `IntakeMode::Reported` has reported a
//!   completed poll that started at or after the increase's target was set, or until that
//!   store's bound has passed since the increase was first queued; so it never waits
//!   longer than the largest bound, however often the target moves. A store with
//!   `IntakeMode::Webhooks` holds increases back only while the shell reports a received
//!   delivery still unprocessed (`intake_backlog`), at most its bound the same way.
//!   Stores with `IntakeMode::Immediate` (the order API, processed before `set_target` is
//!   called) never hold anything back, so a workspace of stores whose intake is caught up
//!   pushes increases at once.
//!   A listing with no settled figure yet (never pushed) is not an increase: what its
//!   channel shows is unknown, and holding the push would leave that unknown figure on
//!   sale, which may well be higher.
//! - **Read-back** (reconciliation, and the read that opens "Sync now"): `poll_read`
//!   claims one read call from the same bucket, after any `throttle`, and only while no
//!   batch is out; no batch leaves until `read_done`. So a read never races a push: it
//!   sees what the settled pushes left, and what it finds comes back through `drift`.
//! - **Pause**: a paused store claims nothing; its targets still coalesce.

use crate::catalog::{Qty, Schedule};
use crate::ids::{IdMap, ListingId, StoreId, Timestamp};
use crate::limits::Limits;
use crate::publish::Published;
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a listing should show on its channel: the parts a push carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Figure {
    pub quantity: Qty,
    /// The channel's "sell when out of stock" switch.
    pub sell_when_out_of_stock: bool,
    /// Back-order status shown to the shopper.
    pub show_backorder: bool,
}

impl Figure {
    /// A plain quantity, both switches off.
    pub fn quantity(quantity: Qty) -> Figure {
        Figure { quantity, sell_when_out_of_stock: false, show_backorder: false }
    }

    /// Whether showing `self` instead of `settled` lets shoppers buy more: a higher
    /// quantity, or the "sell when out of stock" switch turned on. Unknown `settled` (the
    /// listing was never pushed) is not an increase (see the module comment).
    pub fn raises(&self, settled: Option<Figure>) -> bool {
        match settled {
            None => false,
            Some(s) => self.quantity > s.quantity || (self.sell_when_out_of_stock && !s.sell_when_out_of_stock),
        }
    }
}

impl From<&Published> for Figure {
    fn from(p: &Published) -> Figure {
        Figure {
            quantity: p.quantity,
            sell_when_out_of_stock: p.sell_when_out_of_stock,
            show_backorder: p.show_backorder,
        }
    }
}

/// A token bucket: at most `burst` tokens, refilled by `refill` tokens every `per_ms`
/// milliseconds (continuously, pro rata). Whole tokens over a whole-millisecond period
/// state every channel's limit exactly: Shopify's 50 points a second is `(1000, 50,
/// 1000)`, one Amazon feed per 2 minutes `(1, 1, 120_000)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub burst: i64,
    pub refill: i64,
    pub per_ms: i64,
}

impl Rate {
    /// `n` calls a second, with a burst of `n`.
    pub fn per_second(n: i64) -> Rate {
        Rate { burst: n, refill: n, per_ms: 1000 }
    }

    /// One call every `ms` milliseconds, no burst.
    pub fn one_per_ms(ms: i64) -> Rate {
        Rate { burst: 1, refill: 1, per_ms: ms }
    }
}

/// What the channel reported about its budget on its last answer. Each part given
/// replaces the declared one: the channel knows its own state better than the docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RateReport {
    /// Tokens left now (Shopify `currentlyAvailable`, Etsy `x-remaining-this-second`).
    pub available: Option<i64>,
    /// The limit itself (Shopify `maximumAvailable` and `restoreRate`, Etsy
    /// `x-limit-per-second`).
    pub rate: Option<Rate>,
}

/// How a store's orders come in, for the upward guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntakeMode {
    /// The order API, processed before its change commits: always caught up.
    Immediate,
    /// Webhooks, kept in the inbox and then processed: caught up while no received
    /// delivery is still unprocessed, which the shell reports (`PushPolicy::intake_backlog`).
    /// An increase waits for that at most `bound_ms` (capped like `Reported`'s).
    Webhooks { bound_ms: i64 },
    /// Polled: the shell reports each completed poll (`PushPolicy::intake_caught_up`). An
    /// increase waits for it at most `bound_ms` (capped at `Limits::intake_bound_ms_max`).
    Reported { bound_ms: i64 },
}

impl IntakeMode {
    /// SPEC's default for a polled store: twice its polling interval, at most 10 minutes.
    pub fn polled(poll_every_seconds: i64) -> IntakeMode {
        let bound_ms = poll_every_seconds.saturating_mul(2000).min(Limits::DEFAULT.intake_bound_ms_max);
        IntakeMode::Reported { bound_ms: bound_ms.max(0) }
    }

    /// SPEC's default for a store that takes webhooks: the same bound as a polled
    /// store's (twice `poll_every_seconds`, at most 10 minutes), waited only while a
    /// delivery of it is unprocessed.
    pub fn webhooks(poll_every_seconds: i64) -> IntakeMode {
        match IntakeMode::polled(poll_every_seconds) {
            IntakeMode::Reported { bound_ms } => IntakeMode::Webhooks { bound_ms },
            other => other,
        }
    }
}

/// Per-store configuration, from the connector's declared limits and the store's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushConfig {
    /// `Realtime`, or `EveryMinutes(n)`: at most one round of batches per n minutes.
    pub schedule: Schedule,
    /// The channel's batch cap (250 Shopify, 100 WooCommerce, 25 eBay, 1 webhook).
    pub batch_max: usize,
    /// The declared rate limit.
    pub rate: Rate,
    /// Tokens one call costs whatever its size (1 request).
    pub cost_per_batch: i64,
    /// Tokens each push in a call adds (Shopify cost points per quantity set).
    pub cost_per_push: i64,
    /// First retry delay before jitter.
    pub backoff_base_ms: i64,
    /// Longest retry delay before jitter (capped at `Limits::backoff_ms_max`).
    pub backoff_max_ms: i64,
    pub intake: IntakeMode,
    /// A paused store claims nothing (its orders still come in).
    pub paused: bool,
}

impl Default for PushConfig {
    /// Realtime, one push a call, one call a second, backoff from 1 s to 5 minutes,
    /// immediate intake.
    fn default() -> Self {
        PushConfig {
            schedule: Schedule::Realtime,
            batch_max: 1,
            rate: Rate::per_second(1),
            cost_per_batch: 1,
            cost_per_push: 0,
            backoff_base_ms: 1000,
            backoff_max_ms: 300_000,
            intake: IntakeMode::Immediate,
            paused: false,
        }
    }
}

impl PushConfig {
    /// The same configuration with every value inside the core's limits: a batch of 1 to
    /// `push_batch_max`, a period of at least 1 ms, no negative cost, capped bounds.
    fn clamped(mut self, limits: &Limits) -> PushConfig {
        self.batch_max = self.batch_max.clamp(1, limits.push_batch_max);
        self.rate.burst = self.rate.burst.max(0);
        self.rate.refill = self.rate.refill.max(0);
        self.rate.per_ms = self.rate.per_ms.max(1);
        self.cost_per_batch = self.cost_per_batch.max(0);
        self.cost_per_push = self.cost_per_push.max(0);
        self.backoff_max_ms = self.backoff_max_ms.clamp(0, limits.backoff_ms_max);
        self.backoff_base_ms = self.backoff_base_ms.clamp(0, self.backoff_max_ms);
        if let IntakeMode::Reported { bound_ms } | IntakeMode::Webhooks { bound_ms } = &mut self.intake {
            *bound_ms = (*bound_ms).clamp(0, limits.intake_bound_ms_max);
        }
        if let Schedule::EveryMinutes(n) = &mut self.schedule {
            *n = (*n).max(1);
        }
        self
    }

    /// Tokens a call of `n` pushes costs.
    pub fn cost(&self, n: usize) -> i64 {
        self.cost_per_batch.saturating_add(self.cost_per_push.saturating_mul(n as i64))
    }
}

/// Identifies one claimed batch, for its outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(pub u64);

/// Why a push is made (for its sync record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushReason {
    /// The target moved away from the settled figure.
    Changed,
    /// "Sync now": pushed even if the channel was told this figure already.
    SyncNow,
    /// The previous attempt failed with a retryable error.
    Retry,
    /// Compare-and-set found another quantity on the channel.
    Stale,
    /// A read-back found another quantity on the channel.
    Drift,
}

/// One listing's push in a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    pub listing: ListingId,
    /// What to show: the newest target.
    pub figure: Figure,
    /// What the channel was last told: compare-and-set's expected value.
    pub settled: Option<Figure>,
    /// 1 for the first attempt at this listing since its last success.
    pub attempt: u32,
    pub reason: PushReason,
}

/// A batch the shell must send now, in one call, and report with `handle_outcomes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub id: BatchId,
    pub store: StoreId,
    pub pushes: Vec<Push>,
}

/// What became of one push.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The channel shows the figure now.
    Ok,
    /// 5xx, a timeout, a connection error or a per-item 429: try again after backoff, or
    /// after `retry_after_ms` when the channel said. Since a timed-out call may have been
    /// applied, the listing is pushed again even if its target returns to the settled
    /// figure meanwhile.
    Retry { retry_after_ms: Option<i64> },
    /// Refused (4xx): not retried until the target changes again or "Sync now".
    Failed,
    /// Compare-and-set found `channel_quantity`: it is the settled quantity, push again.
    Stale { channel_quantity: Qty },
    /// A read-back found `channel_quantity` instead of what was last pushed: it is the
    /// settled quantity, push again if the target differs.
    Drift { channel_quantity: Qty },
}

/// The bucket's level, exact: tokens times `per_ms`, so refilling one millisecond adds
/// `refill` and nothing is lost to rounding.
#[derive(Clone, Debug)]
struct Bucket {
    rate: Rate,
    /// Tokens x `rate.per_ms`.
    level: i128,
    updated: Timestamp,
}

impl Bucket {
    fn full(rate: Rate, now: Timestamp) -> Bucket {
        Bucket { rate, level: i128::from(rate.burst) * i128::from(rate.per_ms), updated: now }
    }

    fn capacity(&self) -> i128 {
        i128::from(self.rate.burst) * i128::from(self.rate.per_ms)
    }

    fn refill(&mut self, now: Timestamp) {
        if now > self.updated {
            let gained = (i128::from(now.0) - i128::from(self.updated.0)) * i128::from(self.rate.refill);
            self.level = (self.level + gained).min(self.capacity());
            self.updated = now;
        }
    }

    fn set_rate(&mut self, rate: Rate, now: Timestamp) {
        self.refill(now);
        let tokens = self.level / i128::from(self.rate.per_ms);
        self.rate = rate;
        self.level = (tokens * i128::from(rate.per_ms)).min(self.capacity());
    }

    fn set_available(&mut self, tokens: i64, now: Timestamp) {
        self.refill(now);
        self.level = (i128::from(tokens.max(0)) * i128::from(self.rate.per_ms)).min(self.capacity());
    }

    fn covers(&self, cost: i64) -> bool {
        self.level >= i128::from(cost) * i128::from(self.rate.per_ms)
    }

    fn spend(&mut self, cost: i64) {
        self.level -= i128::from(cost) * i128::from(self.rate.per_ms);
    }

    /// When the bucket will hold `cost` tokens; `None` if it never will.
    fn covered_at(&self, cost: i64) -> Option<Timestamp> {
        let need = i128::from(cost) * i128::from(self.rate.per_ms) - self.level;
        if need <= 0 {
            return Some(self.updated);
        }
        if i128::from(cost) * i128::from(self.rate.per_ms) > self.capacity() || self.rate.refill == 0 {
            return None;
        }
        // Whole milliseconds, rounded up; in i64 when it fits (a 128-bit division is a
        // library call, and this runs on every `next_wakeup`).
        let ms = match i64::try_from(need) {
            Ok(need) => need.saturating_add(self.rate.refill - 1) / self.rate.refill,
            Err(_) => ((need + i128::from(self.rate.refill) - 1) / i128::from(self.rate.refill))
                .min(i128::from(i64::MAX)) as i64,
        };
        Some(Timestamp(self.updated.0.saturating_add(ms)))
    }
}

/// A listing's place in its store's queue.
#[derive(Clone, Copy, Debug)]
struct Queued {
    seq: u64,
    /// When the entry first became an increase; `None` while it is not one.
    increase_since: Option<Timestamp>,
}

#[derive(Clone, Debug)]
struct ListingState {
    store: StoreId,
    settled: Option<Figure>,
    target: Option<Figure>,
    /// When the current target was set (the upward guard waits for intake past it).
    target_at: Timestamp,
    queued: Option<Queued>,
    in_flight: bool,
    /// Failed attempts since the last success.
    failures: u32,
    /// Backoff: not claimed before this.
    not_before: Timestamp,
    /// The figure a channel refused (4xx): not pushed again until the target moves.
    failed: Option<Figure>,
    /// "Sync now": push even if the target equals the settled figure.
    forced: bool,
    /// The last attempt's outcome is unknown (a timeout may have applied it): push even if
    /// the target returned to the settled figure, since the channel may show another.
    uncertain: bool,
    /// Member of the store's open `EveryMinutes` round.
    in_round: bool,
    reason: PushReason,
}

impl ListingState {
    fn needs_push(&self) -> bool {
        match self.target {
            None => false,
            Some(t) => self.forced || self.uncertain || (Some(t) != self.settled && Some(t) != self.failed),
        }
    }
}

#[derive(Clone, Debug)]
struct InFlight {
    id: BatchId,
    /// (listing, figure sent, was it forced).
    pushes: Vec<(ListingId, Figure, bool)>,
}

#[derive(Clone, Debug)]
struct StoreState {
    config: PushConfig,
    bucket: Bucket,
    /// `throttle`: nothing is claimed before this.
    hold_until: Timestamp,
    /// The latest `through` of `intake_caught_up`.
    caught_up: Option<Timestamp>,
    /// `intake_backlog`: a received delivery of this store is still unprocessed.
    backlog: bool,
    /// Pending listings by queue order (oldest first).
    queue: BTreeMap<u64, ListingId>,
    in_flight: Option<InFlight>,
    /// A read-back call is out (`poll_read`): no batch leaves until `read_done`.
    reading: bool,
    /// `EveryMinutes`: the next round opens no earlier than this.
    next_round_at: Timestamp,
}

const NEVER: Timestamp = Timestamp(i64::MAX);
const ALWAYS: Timestamp = Timestamp(i64::MIN);

/// The push policy of one workspace: every store's pending pushes (module comment).
#[derive(Clone, Debug)]
pub struct PushPolicy {
    limits: Limits,
    rng: SplitMix64,
    stores: IdMap<StoreId, StoreState>,
    /// Stores in the order they were configured: iteration never depends on hashing.
    store_order: Vec<StoreId>,
    listings: IdMap<ListingId, ListingState>,
    next_seq: u64,
    next_batch: u64,
}

impl PushPolicy {
    /// An empty policy whose jitter comes from `jitter_seed` (the shell's seed; the same
    /// seed and inputs give the same decisions).
    pub fn new(jitter_seed: u64) -> PushPolicy {
        PushPolicy {
            limits: Limits::DEFAULT,
            rng: SplitMix64(jitter_seed),
            stores: IdMap::default(),
            store_order: Vec::new(),
            listings: IdMap::default(),
            next_seq: 0,
            next_batch: 0,
        }
    }

    /// Sets (or replaces) a store's configuration. A new store starts with a full bucket;
    /// a replaced one keeps its queue, bucket level and holds.
    pub fn configure_store(&mut self, store: StoreId, config: PushConfig, now: Timestamp) {
        let config = config.clamped(&self.limits);
        match self.stores.get_mut(&store) {
            Some(s) => {
                if s.config.rate != config.rate {
                    s.bucket.set_rate(config.rate, now);
                }
                s.config = config;
            }
            None => {
                self.store_order.push(store);
                self.stores.insert(
                    store,
                    StoreState {
                        config,
                        bucket: Bucket::full(config.rate, now),
                        hold_until: ALWAYS,
                        caught_up: None,
                        backlog: false,
                        queue: BTreeMap::new(),
                        in_flight: None,
                        reading: false,
                        next_round_at: ALWAYS,
                    },
                );
            }
        }
    }

    /// A store's configuration as clamped to the limits, if it is configured.
    pub fn config(&self, store: StoreId) -> Option<&PushConfig> {
        self.stores.get(&store).map(|s| &s.config)
    }

    /// Pauses or resumes a store's pushes (`PATCH /stores/{code}` `paused`).
    pub fn set_paused(&mut self, store: StoreId, paused: bool) {
        if let Some(s) = self.stores.get_mut(&store) {
            s.config.paused = paused;
        }
    }

    fn listing_mut(&mut self, store: StoreId, listing: ListingId, now: Timestamp) -> &mut ListingState {
        if !self.stores.contains_key(&store) {
            self.configure_store(store, PushConfig::default(), now);
        }
        self.listings.entry(listing).or_insert(ListingState {
            store,
            settled: None,
            target: None,
            target_at: now,
            queued: None,
            in_flight: false,
            failures: 0,
            not_before: ALWAYS,
            failed: None,
            forced: false,
            uncertain: false,
            in_round: false,
            reason: PushReason::Changed,
        })
    }

    /// What the channel was last told (on load, from the listing's stored figure).
    pub fn set_settled(&mut self, store: StoreId, listing: ListingId, figure: Figure) {
        let l = self.listing_mut(store, listing, ALWAYS);
        l.settled = Some(figure);
        let at = l.target_at;
        self.requeue(listing, at);
    }

    /// A committed figure for a listing. Call only after the change that caused it
    /// commits: the push may leave at once.
    pub fn set_target(&mut self, store: StoreId, listing: ListingId, figure: Figure, now: Timestamp) {
        let l = self.listing_mut(store, listing, now);
        if l.target == Some(figure) {
            return;
        }
        l.target = Some(figure);
        l.target_at = now;
        l.failed = None;
        if !l.in_flight {
            l.reason = if l.failures > 0 { PushReason::Retry } else { PushReason::Changed };
        }
        self.requeue(listing, now);
    }

    /// "Sync now": every listing of `store` with a target is pushed again, even if the
    /// channel was told that figure already, and refused figures are tried again.
    pub fn queue_all(&mut self, store: StoreId, now: Timestamp) {
        let ids: Vec<ListingId> = {
            let mut v: Vec<ListingId> = self
                .listings
                .iter()
                .filter(|(_, l)| l.store == store && l.target.is_some())
                .map(|(id, _)| *id)
                .collect();
            v.sort_unstable();
            v
        };
        for id in ids {
            let l = self.listings.get_mut(&id).expect("listed above");
            l.forced = true;
            l.failed = None;
            self.requeue(id, now);
        }
    }

    /// A poll of `store` that started at `through` completed: every order taken on the
    /// channel before `through` has been taken in. Increases waiting for it may go.
    pub fn intake_caught_up(&mut self, store: StoreId, through: Timestamp) {
        if let Some(s) = self.stores.get_mut(&store) {
            s.caught_up = Some(s.caught_up.map_or(through, |c| c.max(through)));
        }
    }

    /// Whether a delivery `store`'s webhooks brought is received and still unprocessed
    /// (SPEC section 5: a webhook store's intake has caught up when none is). While one
    /// is, an increase waits, at most its `IntakeMode::Webhooks` bound.
    pub fn intake_backlog(&mut self, store: StoreId, unprocessed: bool) {
        if let Some(s) = self.stores.get_mut(&store) {
            s.backlog = unprocessed;
        }
    }

    /// The channel answered 429 or `THROTTLED`: the whole store waits `retry_after_ms`.
    pub fn throttle(&mut self, store: StoreId, retry_after_ms: i64, now: Timestamp) {
        let wait = retry_after_ms.clamp(0, self.limits.retry_after_ms_max);
        if let Some(s) = self.stores.get_mut(&store) {
            s.hold_until = s.hold_until.max(Timestamp(now.0.saturating_add(wait)));
        }
    }

    /// What the channel reported about its budget replaces the declared figures.
    pub fn report_rate(&mut self, store: StoreId, report: RateReport, now: Timestamp) {
        let Some(s) = self.stores.get_mut(&store) else { return };
        if let Some(mut rate) = report.rate {
            rate.burst = rate.burst.max(0);
            rate.refill = rate.refill.max(0);
            rate.per_ms = rate.per_ms.max(1);
            s.config.rate = rate;
            s.bucket.set_rate(rate, now);
        }
        if let Some(available) = report.available {
            s.bucket.set_available(available, now);
        }
    }

    /// A reconciliation read found `channel_quantity` on a listing's channel: it is the
    /// settled quantity now, and the target is pushed again if it differs. Ignored while
    /// the listing is in flight: the outcome of that push decides.
    pub fn drift(&mut self, store: StoreId, listing: ListingId, channel_quantity: Qty, now: Timestamp) {
        let l = self.listing_mut(store, listing, now);
        if l.in_flight {
            return;
        }
        let base = l.settled.or(l.target).unwrap_or_default();
        l.settled = Some(Figure { quantity: channel_quantity, ..base });
        l.reason = PushReason::Drift;
        self.requeue(listing, now);
    }

    /// Puts a listing in its store's queue, or takes it out, after anything changed.
    fn requeue(&mut self, listing: ListingId, now: Timestamp) {
        let l = self.listings.get_mut(&listing).expect("known listing");
        let store = self.stores.get_mut(&l.store).expect("configured store");
        if l.needs_push() {
            let increase = l.target.is_some_and(|t| t.raises(l.settled));
            match &mut l.queued {
                Some(q) => {
                    q.increase_since = if increase { Some(q.increase_since.unwrap_or(now)) } else { None };
                }
                None => {
                    self.next_seq += 1;
                    l.queued = Some(Queued { seq: self.next_seq, increase_since: increase.then_some(now) });
                    store.queue.insert(self.next_seq, listing);
                }
            }
        } else if let Some(q) = l.queued.take() {
            store.queue.remove(&q.seq);
            l.in_round = false;
        }
    }

    /// When the upward guard lets an increase first queued at `since`, whose target was
    /// set at `set_at`, go: every `Reported` store caught up past `set_at` and every
    /// `Webhooks` store without a backlog, or the bound of each that is not passed since
    /// `since`.
    fn guard_release(&self, since: Timestamp, set_at: Timestamp) -> Timestamp {
        let mut at = ALWAYS;
        for id in &self.store_order {
            let s = &self.stores[id];
            let bound_ms = match s.config.intake {
                IntakeMode::Immediate => continue,
                IntakeMode::Reported { bound_ms } if s.caught_up.is_none_or(|c| c < set_at) => bound_ms,
                IntakeMode::Webhooks { bound_ms } if s.backlog => bound_ms,
                IntakeMode::Reported { .. } | IntakeMode::Webhooks { .. } => continue,
            };
            at = at.max(Timestamp(since.0.saturating_add(bound_ms)));
        }
        at
    }

    /// The earliest instant a queued listing may be claimed, leaving out its store's
    /// budget, hold, round and in-flight batch.
    fn ready_at(&self, l: &ListingState) -> Timestamp {
        if l.in_flight {
            return NEVER;
        }
        let mut at = l.not_before;
        if let Some(since) = l.queued.and_then(|q| q.increase_since) {
            at = at.max(self.guard_release(since, l.target_at));
        }
        at
    }

    /// Claims the next batch `store` may send now: marks its listings in flight and
    /// spends its budget. `None` when nothing may go now (ask `next_wakeup`).
    pub fn poll_batch(&mut self, store: StoreId, now: Timestamp) -> Option<Batch> {
        let s = self.stores.get(&store)?;
        if s.config.paused || s.in_flight.is_some() || s.reading || now < s.hold_until || s.queue.is_empty() {
            return None;
        }
        let config = s.config;
        let mut bucket = s.bucket.clone();
        bucket.refill(now);
        if !bucket.covers(config.cost(1).min(bucket.rate.burst)) {
            return None; // Not even one push is in the budget: no need to look further.
        }
        let batch_max = config.batch_max;
        let rounds = matches!(config.schedule, Schedule::EveryMinutes(_));
        // Opening a round takes every ready listing; otherwise a batch's worth is enough.
        let wanted = if rounds { usize::MAX } else { batch_max };
        let ready: Vec<ListingId> =
            s.queue.values().copied().filter(|id| self.ready_at(&self.listings[id]) <= now).take(wanted).collect();
        let mut members: Vec<ListingId>;
        if rounds {
            let open = s.queue.values().any(|id| self.listings[id].in_round);
            if open {
                members = ready.into_iter().filter(|id| self.listings[id].in_round).collect();
            } else {
                if now < s.next_round_at || ready.is_empty() {
                    return None;
                }
                let Schedule::EveryMinutes(n) = config.schedule else { unreachable!("rounds") };
                for id in &ready {
                    self.listings.get_mut(id).expect("queued").in_round = true;
                }
                let s = self.stores.get_mut(&store).expect("checked");
                s.next_round_at = Timestamp(now.0.saturating_add(i64::from(n) * 60_000));
                members = ready;
            }
        } else {
            members = ready;
        }
        members.truncate(batch_max);
        // A batch the bucket could never hold is cut to what a full bucket covers (at
        // least one push, so a misdeclared limit cannot stop a store for good).
        let s = self.stores.get_mut(&store).expect("checked");
        s.bucket.refill(now);
        while members.len() > 1
            && i128::from(config.cost(members.len())) * i128::from(s.bucket.rate.per_ms) > s.bucket.capacity()
        {
            members.pop();
        }
        // More listings may be ready than `next_wakeup` counted when it chose this instant:
        // send what the budget covers now rather than nothing.
        while members.len() > 1 && !s.bucket.covers(config.cost(members.len())) {
            members.pop();
        }
        if members.is_empty() {
            return None;
        }
        let cost = config.cost(members.len()).min(s.bucket.rate.burst);
        if !s.bucket.covers(cost) {
            return None;
        }
        s.bucket.spend(cost);
        self.next_batch += 1;
        let id = BatchId(self.next_batch);
        let mut pushes = Vec::with_capacity(members.len());
        let mut flight = Vec::with_capacity(members.len());
        for lid in members {
            let l = self.listings.get_mut(&lid).expect("queued");
            let q = l.queued.take().expect("queued");
            s.queue.remove(&q.seq);
            let figure = l.target.expect("a queued listing has a target");
            let reason = if l.forced { PushReason::SyncNow } else { l.reason };
            pushes.push(Push {
                listing: lid,
                figure,
                settled: l.settled,
                attempt: l.failures.saturating_add(1),
                reason,
            });
            flight.push((lid, figure, l.forced));
            l.forced = false;
            l.uncertain = false;
            l.in_flight = true;
        }
        s.in_flight = Some(InFlight { id, pushes: flight });
        Some(Batch { id, store, pushes })
    }

    /// When `poll_batch` for `store` may next give a batch: `None` while nothing is
    /// pending, while a batch is in flight (ask again after its outcomes) or while the
    /// store is paused. The answer may be in the past: poll now. Ask again after every
    /// input, for every store (an `intake_caught_up` on one store may release increases
    /// on all).
    pub fn next_wakeup(&self, store: StoreId) -> Option<Timestamp> {
        let s = self.stores.get(&store)?;
        if s.config.paused || s.in_flight.is_some() || s.reading || s.queue.is_empty() {
            return None;
        }
        let rounds = matches!(s.config.schedule, Schedule::EveryMinutes(_));
        let open = rounds && s.queue.values().any(|id| self.listings[id].in_round);
        // Two passes rather than a list: this runs after every input.
        let entry_at = |id: &ListingId| {
            let l = &self.listings[id];
            let at = self.ready_at(l);
            if rounds && !(open && l.in_round) {
                at.max(s.next_round_at)
            } else {
                at
            }
        };
        if s.config.cost_per_push == 0 {
            // The cost does not depend on the batch's size: the answer is the earliest
            // ready entry, but never before the hold and the budget, so the scan stops at
            // the first entry ready by then (the common case: one step).
            let covered = s.bucket.covered_at(s.config.cost(1).min(s.bucket.rate.burst))?;
            let floor = covered.max(s.hold_until);
            let mut first = NEVER;
            for id in s.queue.values() {
                first = first.min(entry_at(id));
                if first <= floor {
                    break;
                }
            }
            return (first != NEVER).then(|| first.max(floor));
        }
        let first = s.queue.values().map(entry_at).min()?;
        if first == NEVER {
            return None;
        }
        let at = first.max(s.hold_until);
        let n = s.queue.values().map(entry_at).filter(|t| *t <= at).take(s.config.batch_max).count();
        let mut n = n.max(1);
        while n > 1 && i128::from(s.config.cost(n)) * i128::from(s.bucket.rate.per_ms) > s.bucket.capacity() {
            n -= 1;
        }
        let cost = s.config.cost(n).min(s.bucket.rate.burst);
        let covered = s.bucket.covered_at(cost)?;
        Some(at.max(covered))
    }

    /// Claims one read-back call for `store` now (reconciliation, or the read that opens
    /// "Sync now"): it is a call like a batch, so it spends one call from the store's
    /// bucket, waits out a `throttle`, and never overlaps a batch: while it is out no
    /// batch leaves, and it is not claimed while one is out. So what it reads is what the
    /// settled pushes left, never a figure a push in flight is about to change. `false`
    /// when it may not go now (ask `next_read_at`).
    pub fn poll_read(&mut self, store: StoreId, now: Timestamp) -> bool {
        let Some(s) = self.stores.get_mut(&store) else { return false };
        if s.config.paused || s.in_flight.is_some() || s.reading || now < s.hold_until {
            return false;
        }
        let cost = s.config.cost_per_batch.max(1).min(s.bucket.rate.burst);
        s.bucket.refill(now);
        if !s.bucket.covers(cost) {
            return false;
        }
        s.bucket.spend(cost);
        s.reading = true;
        true
    }

    /// The read-back call `poll_read` claimed has returned (whatever its answer).
    pub fn read_done(&mut self, store: StoreId) {
        if let Some(s) = self.stores.get_mut(&store) {
            s.reading = false;
        }
    }

    /// When `poll_read` for `store` may next succeed: `None` while a batch or a read is
    /// out, or while the store is paused.
    pub fn next_read_at(&self, store: StoreId) -> Option<Timestamp> {
        let s = self.stores.get(&store)?;
        if s.config.paused || s.in_flight.is_some() || s.reading {
            return None;
        }
        let cost = s.config.cost_per_batch.max(1).min(s.bucket.rate.burst);
        Some(s.bucket.covered_at(cost)?.max(s.hold_until))
    }

    /// The outcomes of batch `batch` of `store`. A push with no outcome counts as
    /// `Retry` (the call's answer was lost); an unknown or repeated batch is ignored.
    pub fn handle_outcomes(
        &mut self,
        store: StoreId,
        batch: BatchId,
        outcomes: &[(ListingId, Outcome)],
        now: Timestamp,
    ) {
        let Some(s) = self.stores.get_mut(&store) else { return };
        if s.in_flight.as_ref().is_none_or(|f| f.id != batch) {
            return;
        }
        let config = s.config;
        let flight = s.in_flight.take().expect("checked");
        for (lid, figure, forced) in flight.pushes {
            let outcome =
                outcomes.iter().find(|(l, _)| *l == lid).map_or(Outcome::Retry { retry_after_ms: None }, |(_, o)| *o);
            let delay = match outcome {
                Outcome::Retry { retry_after_ms } => {
                    let failures = self.listings[&lid].failures.saturating_add(1);
                    Some(match retry_after_ms {
                        Some(ms) => ms.clamp(0, self.limits.retry_after_ms_max),
                        None => backoff_ms(&config, failures, &mut self.rng),
                    })
                }
                _ => None,
            };
            let l = self.listings.get_mut(&lid).expect("in flight");
            l.in_flight = false;
            match outcome {
                Outcome::Ok => {
                    l.settled = Some(figure);
                    l.failures = 0;
                    l.not_before = ALWAYS;
                    l.in_round = false;
                    l.reason = PushReason::Changed;
                }
                Outcome::Retry { .. } => {
                    l.failures = l.failures.saturating_add(1);
                    l.not_before = Timestamp(now.0.saturating_add(delay.unwrap_or(0)));
                    l.forced |= forced;
                    l.uncertain = true;
                    l.in_round = false;
                    l.reason = PushReason::Retry;
                }
                Outcome::Failed => {
                    l.failed = Some(figure);
                    l.failures = 0;
                    l.not_before = ALWAYS;
                    l.in_round = false;
                    l.reason = PushReason::Changed;
                }
                Outcome::Stale { channel_quantity } => {
                    let base = l.settled.unwrap_or(figure);
                    l.settled = Some(Figure { quantity: channel_quantity, ..base });
                    l.forced |= forced;
                    l.reason = PushReason::Stale;
                }
                Outcome::Drift { channel_quantity } => {
                    let base = l.settled.unwrap_or(figure);
                    l.settled = Some(Figure { quantity: channel_quantity, ..base });
                    l.in_round = false;
                    l.reason = PushReason::Drift;
                }
            }
            self.requeue(lid, now);
        }
    }

    /// Listings of `store` waiting to be pushed (a listing in flight counts only if its
    /// target moved since it was sent).
    pub fn pending(&self, store: StoreId) -> usize {
        self.stores.get(&store).map_or(0, |s| s.queue.len())
    }

    /// The batch of `store` in flight, if any.
    pub fn in_flight(&self, store: StoreId) -> Option<BatchId> {
        self.stores.get(&store)?.in_flight.as_ref().map(|f| f.id)
    }

    /// What the listing's channel was last told (as far as the policy knows).
    pub fn settled(&self, listing: ListingId) -> Option<Figure> {
        self.listings.get(&listing)?.settled
    }

    /// The listing's newest committed figure.
    pub fn target(&self, listing: ListingId) -> Option<Figure> {
        self.listings.get(&listing)?.target
    }

    /// Failed attempts of the listing since its last success.
    pub fn failures(&self, listing: ListingId) -> u32 {
        self.listings.get(&listing).map_or(0, |l| l.failures)
    }

    /// When the listing's backoff ends, if it is in backoff at `now`.
    pub fn retry_at(&self, listing: ListingId, now: Timestamp) -> Option<Timestamp> {
        self.listings.get(&listing).map(|l| l.not_before).filter(|t| *t > now)
    }
}

/// The delay before retry number `failures` (1 for the first retry): the capped
/// exponential `min(max, base x 2^(failures-1))`, with equal jitter: half of it fixed and
/// half drawn uniformly, so retries of a store's listings spread out while each retry still
/// waits at least as long as the previous one's longest draw.
fn backoff_ms(config: &PushConfig, failures: u32, rng: &mut SplitMix64) -> i64 {
    let shift = failures.saturating_sub(1).min(62);
    let exp = config.backoff_base_ms.saturating_mul(1i64 << shift).min(config.backoff_max_ms);
    let half = exp / 2;
    exp - half + rng.up_to(half)
}
