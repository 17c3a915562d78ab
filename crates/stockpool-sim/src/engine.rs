//! The event engine: one strategy over one traffic, on a fake clock, driving
//! `stockpool_core::State` itself.
//!
//! The engine plays the shell and the channels around the core. Stockpool's side: orders
//! go through `State::take_order` and `State::apply`, restocks through `State::adjust`;
//! after every change the listings the core names
//! (`affected_listings`) are recomputed with `State::published`, and each figure goes to
//! the core's push policy (`stockpool_core::push::PushPolicy::set_target`), the same one
//! the server's dispatcher drives: it coalesces (latest value wins), paces each store by
//! its rate limit and batch size, and holds increases back until slow stores' order intake
//! has caught up (SPEC section 5). The engine wakes each store's push worker at the
//! policy's `next_wakeup`, sends what `poll_batch` claims, and reports it `Ok`. For
//! `buffer: auto` the engine also does the shell's measuring: it sets each store's latency
//! (`set_store_latency`) and keeps each (store, item)'s recent sales velocity current
//! (`set_sales_velocity`) from the core's `SalesWindow`.
//!
//! The channels' side: each channel shows the last quantity pushed to it and lowers it by
//! its own sales at once; its rate limit is one batch of `push_batch_max` per
//! `push_every_seconds` (a token bucket of one call), and a batch shows after
//! `push_latency_seconds` (and, for a feed channel such as Amazon, at the next feed). A shopper buys what the channel shows; stockpool
//! hears of the order at the shopper's `reported_at`. The gap between the two pictures is
//! where oversells and lost sales come from.
//!
//! Shipping is not modelled: `fulfill` lowers on hand and reserved together, so it moves
//! no available quantity and no published quantity, and skipping it keeps a year fast.
//!
//! Time is whole milliseconds since the start, the same unit as the core's `Timestamp`.
//! Events at the same instant run in the order they were scheduled, so a run is a pure
//! function of scenario, traffic and strategy.

use crate::catalog::Catalog;
use crate::metrics::{Metrics, Sample};
use crate::scenario::{Scenario, DAY_MS, HOUR_MS, SECOND_MS};
use crate::strategy::Strategy;
use crate::traffic::Shopper;
use anyhow::{bail, Context};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use stockpool_core::build::Builder;
use stockpool_core::ids::IdMap;
use stockpool_core::push::{Figure, IntakeMode, Outcome, PushConfig, PushPolicy, Rate};
use stockpool_core::velocity::SalesWindow;
use stockpool_core::{
    Adjustment, Buffer, Intake, ItemId, ItemKind, Latency, ListingId, NewLine, NewOrder, OrderSource, Payment,
    Schedule, State, StoreId, Timestamp, Velocity, WarehouseId,
};

/// Most events one run may process: a bound on the loop, far above a ten-year scenario
/// (a loop past it means a scheduling bug, and the run stops with an error).
pub const EVENTS_MAX: u64 = 2_000_000_000;

/// Most points of the timeline kept per run: enough for a readable chart, small enough
/// for an SVG under a few hundred kilobytes.
pub const SAMPLES_MAX: i64 = 1_000;

/// Shortest interval between two timeline points.
const SAMPLE_MS_MIN: i64 = 10 * 60 * SECOND_MS;

/// The store code of the hidden "whole pool" listings the engine reads the truth from.
const POOL_STORE_CODE: &str = "sim-pool";

/// Slowest order delivery still treated as a webhook (`IntakeMode::Immediate`): a channel
/// that is polled, or whose orders arrive later than this, reports its intake instead and
/// holds increases back (SPEC section 5's upward guard).
pub const WEBHOOK_LATENCY_SECONDS_MAX: i64 = 10;

/// The seed of the push policy's retry jitter. Simulated channels never fail, so no
/// retry is ever drawn; a fixed seed keeps the run a function of its inputs anyway.
const PUSH_JITTER_SEED: u64 = 1;

/// What one run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    pub metrics: Metrics,
    /// The chart SKU's pool and each channel's shown quantity over time.
    pub timeline: Vec<Sample>,
}

/// Something that happens at an instant.
#[derive(Debug)]
enum Event {
    /// Stockpool hears of a taken order (index into `taken`).
    Report(usize),
    /// A channel's push worker may send its next batch (the policy's `next_wakeup`).
    Push(usize),
    /// A polled channel's poll completed: its intake has caught up.
    IntakePoll(usize),
    /// A pushed batch shows on its channel: (listing index, quantity).
    Show(Vec<(usize, i64)>),
    /// A purchase order arrives.
    Restock { sku: usize, quantity: i64 },
    /// The shell refreshes sales velocities (`buffer_auto` only).
    VelocityTick,
    /// A timeline point.
    Sample,
}

struct Scheduled {
    at: i64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so that `BinaryHeap` pops the earliest (then the first scheduled).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// An order a channel took, kept until stockpool hears of it.
struct Taken {
    channel: usize,
    /// (SKU index, units).
    lines: Vec<(usize, i64)>,
}

/// One strategy's run.
struct Run<'a> {
    scenario: &'a Scenario,
    catalog: &'a Catalog,
    strategy: Strategy,
    instant: bool,
    state: State,
    end: i64,
    /// Per SKU index.
    items: Vec<ItemId>,
    item_sku: IdMap<ItemId, usize>,
    /// Position of a SKU among the listed ones, per SKU index.
    listed_pos: Vec<Option<usize>>,
    /// Stock goes here: one warehouse, or one per channel for the static split.
    warehouses: Vec<WarehouseId>,
    stores: Vec<StoreId>,
    /// Listing ids, index `channel * listed + position`.
    listings: Vec<ListingId>,
    listing_index: IdMap<ListingId, usize>,
    /// The whole-pool listing of each listed SKU (by position).
    pool_listings: Vec<ListingId>,
    // The channels' side, per listing index.
    shown: Vec<i64>,
    /// What goes to the channels when: the core's push policy, one store per channel.
    policy: PushPolicy,
    /// Per channel: the instant its next `Push` event is due, if one is.
    push_wake: Vec<Option<i64>>,
    store_channel: IdMap<StoreId, usize>,
    // Per SKU index.
    on_order: Vec<i64>,
    unreported: Vec<i64>,
    /// Sales heard per (store, item), for velocity.
    sales: SalesWindow,
    velocity_window_ms: i64,
    events: BinaryHeap<Scheduled>,
    seq: u64,
    taken: Vec<Taken>,
    metrics: Metrics,
    chart_pos: usize,
    sample_ms: i64,
    timeline: Vec<Sample>,
}

/// Runs one strategy over `shoppers` for `days` days.
pub fn run_strategy(
    scenario: &Scenario,
    catalog: &Catalog,
    shoppers: &[Shopper],
    days: u32,
    strategy: Strategy,
) -> anyhow::Result<RunResult> {
    let mut run = Run::new(scenario, catalog, days, strategy)?;
    run.go(shoppers).with_context(|| format!("simulating strategy {strategy}"))?;
    Ok(RunResult { metrics: run.metrics, timeline: run.timeline })
}

/// Splits `quantity` by the channels' `split_percent` (equal shares when none is given),
/// rounding down; the remainder goes to the largest share (the first on ties).
pub fn split(scenario: &Scenario, quantity: i64) -> Vec<i64> {
    let n = scenario.channels.len();
    let mut percents: Vec<i64> = scenario.channels.iter().map(|c| i64::from(c.split_percent)).collect();
    if percents.iter().all(|p| *p == 0) {
        percents = vec![1; n];
    }
    let total: i64 = percents.iter().sum();
    let mut parts: Vec<i64> = percents.iter().map(|p| quantity * p / total).collect();
    let largest = (0..n).fold(0, |best, i| if percents[i] > percents[best] { i } else { best });
    parts[largest] += quantity - parts.iter().sum::<i64>();
    parts
}

impl<'a> Run<'a> {
    fn new(scenario: &'a Scenario, catalog: &'a Catalog, days: u32, strategy: Strategy) -> anyhow::Result<Run<'a>> {
        let mut b = Builder::new();
        // A long run keeps no in-memory ledger: the core's levels are what it decides on.
        b.state.set_keep_ledger(false);
        let static_split = strategy == Strategy::StaticSplit;
        let warehouses: Vec<WarehouseId> = if static_split {
            scenario.channels.iter().map(|c| b.warehouse(&format!("wh-{}", c.code))).collect()
        } else {
            vec![b.warehouse("main")]
        };
        let mut stores = Vec::new();
        for c in &scenario.channels {
            stores.push(b.store(&c.code, c.core_channel()?));
        }
        let pool_store = b.store(POOL_STORE_CODE, stockpool_core::Channel::Manual);
        let mut items = Vec::new();
        let mut item_sku = IdMap::default();
        for (i, s) in catalog.skus.iter().enumerate() {
            let kind = if s.material { ItemKind::Material } else { ItemKind::Product };
            let id = b.item(&s.sku, kind);
            items.push(id);
            item_sku.insert(id, i);
            if !s.components.is_empty() {
                let comps: Vec<(&str, i64)> =
                    s.components.iter().map(|(c, q)| (catalog.skus[*c].sku.as_str(), *q)).collect();
                b.components(&s.sku, &comps);
                b.edit(&s.sku, |it| it.stock_plus_capacity = true);
            }
            if s.stock > 0 {
                let parts = if static_split { split(scenario, s.stock) } else { vec![s.stock] };
                for (w, q) in warehouses.iter().zip(parts) {
                    if q > 0 {
                        b.stock(&s.sku, *w, q);
                    }
                }
            }
        }
        let mut listed_pos = vec![None; catalog.skus.len()];
        for (k, &i) in catalog.listed.iter().enumerate() {
            listed_pos[i] = Some(k);
        }
        let mut listings = Vec::new();
        let mut listing_index = IdMap::default();
        for &store in &stores {
            for &i in &catalog.listed {
                let id = b.listing(store, &catalog.skus[i].sku);
                listing_index.insert(id, listings.len());
                listings.push(id);
            }
        }
        let pool_listings: Vec<ListingId> =
            catalog.listed.iter().map(|&i| b.listing(pool_store, &catalog.skus[i].sku)).collect();
        b.rule("whole pool", &warehouses, &[pool_store], |_| {});
        let p = &scenario.rules;
        let priority_store = match &p.priority_store {
            Some(code) => stores[scenario.channels.iter().position(|c| &c.code == code).context("validated")?],
            None => stores[0],
        };
        match strategy {
            Strategy::StaticSplit => {
                for (c, (&w, &s)) in warehouses.iter().zip(&stores).enumerate() {
                    b.rule(&format!("split {}", scenario.channels[c].code), &[w], &[s], |_| {});
                }
            }
            Strategy::FullPool | Strategy::Oracle => {
                b.rule(strategy.name(), &warehouses, &stores, |_| {});
            }
            Strategy::Sync50 => {
                b.rule(strategy.name(), &warehouses, &stores, |r| r.sync_rate_percent = p.sync_rate_percent);
            }
            Strategy::Threshold => {
                b.rule(strategy.name(), &warehouses, &stores, |r| r.stock_threshold = p.stock_threshold);
            }
            Strategy::PriorityStore => {
                b.rule(strategy.name(), &warehouses, &stores, |r| {
                    r.priority_store = Some(priority_store);
                    r.safety_stock = Some(p.safety_stock);
                });
            }
            Strategy::BufferAuto => {
                b.rule(strategy.name(), &warehouses, &stores, |r| r.buffer = Buffer::Auto);
            }
        }
        let mut state = b.state;
        if strategy == Strategy::BufferAuto {
            // The shell's measure of each store's latency: the worst case of its push
            // schedule and feed, and of its order webhook or polling.
            for (c, &s) in scenario.channels.iter().zip(&stores) {
                state
                    .set_store_latency(s, Latency { sync_seconds: c.sync_seconds(), order_seconds: c.order_seconds() });
            }
        }
        let n = listings.len();
        let channels = scenario.channels.len();
        let mut policy = PushPolicy::new(PUSH_JITTER_SEED);
        for (c, &s) in scenario.channels.iter().zip(&stores) {
            policy.configure_store(s, push_config(c), Timestamp(0));
        }
        let store_channel = stores.iter().enumerate().map(|(c, s)| (*s, c)).collect();
        let end = i64::from(days) * DAY_MS;
        let chart_pos = scenario
            .chart_sku
            .as_deref()
            .and_then(|s| catalog.index(s))
            .and_then(|i| listed_pos[i])
            .unwrap_or_else(|| listed_pos[catalog.most_popular()].unwrap_or(0));
        let sample_ms = (end / SAMPLES_MAX).max(SAMPLE_MS_MIN);
        Ok(Run {
            scenario,
            catalog,
            strategy,
            instant: strategy.is_instant(),
            state,
            end,
            items,
            item_sku,
            listed_pos,
            warehouses,
            stores,
            listings,
            listing_index,
            pool_listings,
            shown: vec![0; n],
            policy,
            push_wake: vec![None; channels],
            store_channel,
            on_order: vec![0; catalog.skus.len()],
            unreported: vec![0; catalog.skus.len()],
            sales: SalesWindow::new(scenario.rules.velocity_window_hours * 3600),
            velocity_window_ms: scenario.rules.velocity_window_hours * HOUR_MS,
            events: BinaryHeap::new(),
            seq: 0,
            taken: Vec::new(),
            metrics: Metrics::new(strategy),
            chart_pos,
            sample_ms,
            timeline: Vec::new(),
        })
    }

    fn schedule(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.events.push(Scheduled { at, seq: self.seq, event });
    }

    fn listed(&self) -> usize {
        self.catalog.listed.len()
    }

    fn go(&mut self, shoppers: &[Shopper]) -> anyhow::Result<()> {
        // Every channel starts in sync with stockpool, as after a full "Sync now".
        for li in 0..self.listings.len() {
            let Some(p) = self.state.published(self.listings[li]) else { continue };
            self.shown[li] = p.quantity;
            let figure = Figure::from(&p);
            let store = self.stores[li / self.listed()];
            self.policy.set_settled(store, self.listings[li], figure);
            self.policy.set_target(store, self.listings[li], figure, Timestamp(0));
        }
        self.schedule(0, Event::Sample);
        if !self.instant {
            for (c, spec) in self.scenario.channels.iter().enumerate() {
                if spec.order_poll_seconds > 0 && matches!(intake(spec), IntakeMode::Reported { .. }) {
                    self.schedule(spec.order_poll_seconds * SECOND_MS + 1, Event::IntakePoll(c));
                }
            }
        }
        if self.strategy == Strategy::BufferAuto {
            self.schedule(HOUR_MS, Event::VelocityTick);
        }
        let mut next = 0;
        let mut steps: u64 = 0;
        loop {
            steps += 1;
            if steps > EVENTS_MAX {
                bail!("more than {EVENTS_MAX} events: the run does not settle");
            }
            let event_at = self.events.peek().map(|e| e.at);
            let shopper = shoppers.get(next).filter(|s| s.at < self.end);
            match (event_at, shopper) {
                (None, None) => break,
                (Some(at), Some(s)) if s.at < at => {
                    next += 1;
                    self.shopper(s)?;
                }
                (None, Some(s)) => {
                    next += 1;
                    self.shopper(s)?;
                }
                _ => {
                    let e = self.events.pop().expect("peeked");
                    self.event(e.at, e.event)?;
                }
            }
        }
        self.metrics.units_filled = self.metrics.units_sold - self.metrics.oversold_units;
        Ok(())
    }

    fn event(&mut self, now: i64, event: Event) -> anyhow::Result<()> {
        // The run ends at `days`: orders taken before the end are still decided when heard
        // (that is where their oversells show), but nothing else happens after it.
        if now > self.end && !matches!(event, Event::Report(_)) {
            return Ok(());
        }
        match event {
            Event::Report(i) => self.report(i, now)?,
            Event::Push(c) => self.push(c, now),
            Event::IntakePoll(c) => {
                // Every order taken on the channel up to its slowest latency before this
                // poll has been reported (at the poll, 1 ms ago, so those reports ran).
                let spec = &self.scenario.channels[c];
                let through = now - 1 - spec.order_latency_seconds[1] * SECOND_MS;
                let every = spec.order_poll_seconds * SECOND_MS;
                self.policy.intake_caught_up(self.stores[c], Timestamp(through));
                for other in 0..self.stores.len() {
                    self.arm(other, now);
                }
                self.schedule(now + every, Event::IntakePoll(c));
            }
            Event::Show(batch) => {
                for (li, q) in batch {
                    self.shown[li] = q;
                }
            }
            Event::Restock { sku, quantity } => self.restock(sku, quantity, now)?,
            Event::VelocityTick => {
                self.velocity_tick(now);
                if now + HOUR_MS < self.end {
                    self.schedule(now + HOUR_MS, Event::VelocityTick);
                }
            }
            Event::Sample => {
                self.sample(now);
                if now + self.sample_ms <= self.end {
                    self.schedule(now + self.sample_ms, Event::Sample);
                }
            }
        }
        Ok(())
    }

    /// The whole pool of a listed SKU as stockpool sees it now (all warehouses, stock plus
    /// capacity), less what channels sold and have not reported yet: what could still be
    /// sold to someone.
    fn sellable(&self, sku: usize) -> i64 {
        let pos = self.listed_pos[sku].expect("a listed SKU");
        let pool = self.state.published(self.pool_listings[pos]).map_or(0, |p| p.quantity);
        (pool - self.unreported[sku]).max(0)
    }

    fn shopper(&mut self, s: &Shopper) -> anyhow::Result<()> {
        self.metrics.shoppers += 1;
        let mut lines = Vec::new();
        for &(sku, want) in &s.lines {
            let pos = self.listed_pos[sku].context("a shopper wants an unlisted SKU")?;
            let li = s.channel * self.listed() + pos;
            let bought = want.min(self.shown[li].max(0));
            self.metrics.units_wanted += want;
            if bought < want {
                // Lost: the channel showed less than the shopper wanted while the pool
                // held more than the channel showed.
                let could = want.min(self.sellable(sku));
                if could > bought {
                    self.metrics.lost_sales += 1;
                    self.metrics.lost_units += could - bought;
                }
            }
            if bought > 0 {
                self.shown[li] -= bought;
                self.unreported[sku] += bought;
                lines.push((sku, bought));
            }
        }
        if lines.is_empty() {
            return Ok(());
        }
        self.metrics.orders += 1;
        self.metrics.units_sold += lines.iter().map(|(_, q)| q).sum::<i64>();
        let i = self.taken.len();
        self.taken.push(Taken { channel: s.channel, lines });
        if self.instant {
            self.report(i, s.at)
        } else {
            self.schedule(s.reported_at.max(s.at), Event::Report(i));
            Ok(())
        }
    }

    /// Stockpool hears of a taken order and decides it.
    fn report(&mut self, i: usize, now: i64) -> anyhow::Result<()> {
        let t = &self.taken[i];
        let c = t.channel;
        let base = c * self.listed();
        let mut new_lines = Vec::with_capacity(t.lines.len());
        for &(sku, q) in &t.lines {
            let pos = self.listed_pos[sku].expect("listed");
            new_lines.push(NewLine {
                store_sku: self.catalog.skus[sku].sku.clone(),
                listing: Some(self.listings[base + pos]),
                quantity: q,
            });
        }
        let new = NewOrder {
            store: self.stores[c],
            external_id: format!("sim-{i}"),
            lines: new_lines,
            payment: Payment::Immediate,
            pay_within_seconds: None,
            source: OrderSource::Channel,
        };
        let (order, change) = match self.state.take_order(&new, Timestamp(now)).context("taking an order")? {
            Intake::Created { order, change } => (order, change),
            Intake::Duplicate { .. } => bail!("order sim-{i} was taken twice"),
        };
        self.state.apply(&change);
        let decided = self.state.order(order).context("the order just taken")?;
        let oversold: i64 = decided.lines.iter().map(|l| l.oversold).sum();
        if oversold > 0 {
            self.metrics.oversells += 1;
            self.metrics.oversold_units += oversold;
        }
        let lines = std::mem::take(&mut self.taken[i].lines);

        let mut touched = change.touched_items();
        for &(sku, q) in &lines {
            self.unreported[sku] -= q;
            if self.strategy == Strategy::BufferAuto {
                let li = base + self.listed_pos[sku].expect("listed");
                self.sales.record(self.stores[c], self.items[sku], q, Timestamp(now));
                self.set_velocity(li, now);
                // The item's listings on every store depend on this store's velocity.
                touched.push(self.items[sku]);
            }
        }
        self.after_change(&touched, now);
        Ok(())
    }

    /// Recomputes what a change may have moved and reorders what ran low.
    fn after_change(&mut self, touched: &[ItemId], now: i64) {
        self.refresh(touched, now);
        self.reorder(touched, now);
    }

    /// Recomputes the listings whose quantity may have moved and queues what changed.
    fn refresh(&mut self, touched: &[ItemId], now: i64) {
        let affected = self.state.affected_listings(touched);
        for l in affected {
            let Some(&li) = self.listing_index.get(&l) else { continue };
            let Some(p) = self.state.published(l) else { continue };
            if self.instant {
                self.shown[li] = p.quantity;
            } else {
                // Most recomputed listings did not move: asking the policy when to wake
                // again is only needed when one did.
                let figure = Figure::from(&p);
                if self.policy.target(l) != Some(figure) {
                    let c = li / self.listed();
                    self.policy.set_target(self.stores[c], l, figure, Timestamp(now));
                    self.arm(c, now);
                }
            }
        }
    }

    /// Places a purchase order for every touched SKU whose available plus on order fell
    /// to its reorder point.
    fn reorder(&mut self, touched: &[ItemId], now: i64) {
        for item in touched {
            let sku = self.item_sku[item];
            let def = &self.catalog.skus[sku];
            if def.reorder_point < 0 || def.reorder_quantity <= 0 {
                continue;
            }
            let available: i64 = self.state.stock_levels(*item).iter().map(|(_, l)| l.available()).sum();
            if available + self.on_order[sku] <= def.reorder_point {
                self.on_order[sku] += def.reorder_quantity;
                let at = now + def.lead_time_ms;
                self.schedule(at, Event::Restock { sku, quantity: def.reorder_quantity });
            }
        }
    }

    /// Makes sure channel `c`'s push worker wakes when the policy says it may send.
    fn arm(&mut self, c: usize, now: i64) {
        if self.push_wake[c].is_some_and(|due| due <= now) {
            return; // Due now already: nothing can be earlier.
        }
        let Some(at) = self.policy.next_wakeup(self.stores[c]) else { return };
        let at = at.0.max(now);
        if self.push_wake[c].is_none_or(|due| at < due) {
            self.push_wake[c] = Some(at);
            self.schedule(at, Event::Push(c));
        }
    }

    /// A channel's push worker sends every batch the policy allows now; each is `Ok` at
    /// once and shows after the channel's latency (and feed).
    fn push(&mut self, c: usize, now: i64) {
        if self.push_wake[c] != Some(now) {
            return; // Superseded by an earlier wakeup.
        }
        self.push_wake[c] = None;
        let store = self.stores[c];
        while let Some(batch) = self.policy.poll_batch(store, Timestamp(now)) {
            let spec = &self.scenario.channels[c];
            self.metrics.pushes += 1;
            let mut show_at = now + spec.push_latency_seconds * SECOND_MS;
            if spec.feed_every_seconds > 0 {
                let feed = spec.feed_every_seconds * SECOND_MS;
                show_at = (show_at + feed - 1) / feed * feed;
            }
            let shows: Vec<(usize, i64)> =
                batch.pushes.iter().map(|p| (self.listing_index[&p.listing], p.figure.quantity)).collect();
            let outcomes: Vec<(ListingId, Outcome)> = batch.pushes.iter().map(|p| (p.listing, Outcome::Ok)).collect();
            self.policy.handle_outcomes(store, batch.id, &outcomes, Timestamp(now));
            self.schedule(show_at, Event::Show(shows));
        }
        self.arm(c, now);
    }

    /// A purchase order arrives: into the one warehouse, or split like the initial stock.
    fn restock(&mut self, sku: usize, quantity: i64, now: i64) -> anyhow::Result<()> {
        self.on_order[sku] -= quantity;
        self.metrics.restocks += 1;
        let item = self.items[sku];
        let parts =
            if self.strategy == Strategy::StaticSplit { split(self.scenario, quantity) } else { vec![quantity] };
        for (i, q) in parts.into_iter().enumerate() {
            if q > 0 {
                let change = self
                    .state
                    .adjust(item, self.warehouses[i], Adjustment::Delta(q), "received", Timestamp(now))
                    .context("receiving a restock")?;
                self.state.apply(&change);
            }
        }
        self.after_change(&[item], now);
        Ok(())
    }

    /// The shell's velocity for one listing: units it sold in the window (or since the
    /// start, while the run is younger than the window).
    fn set_velocity(&mut self, li: usize, now: i64) -> bool {
        let c = li / self.listed();
        let sku = self.catalog.listed[li % self.listed()];
        let (store, item) = (self.stores[c], self.items[sku]);
        let window_ms = self.velocity_window_ms.min(now.max(HOUR_MS));
        let units = self.sales.velocity(store, item, Timestamp(now)).units;
        let v = Velocity { units, window_seconds: window_ms / SECOND_MS };
        if self.state.sales_velocity(store, item) == v {
            return false;
        }
        self.state.set_sales_velocity(store, item, v);
        true
    }

    /// Every hour the shell forgets sales that left the window.
    fn velocity_tick(&mut self, now: i64) {
        // While the run is younger than the window, the window itself grows, so every
        // velocity moves; after that (the tick at the window's length has set every
        // velocity over the whole window) only a key whose oldest sale left it does.
        let aged = self.sales.age(Timestamp(now));
        let keys = if now > self.velocity_window_ms { aged } else { self.sales.keys() };
        let mut touched = Vec::new();
        for (store, item) in keys {
            let (Some(&c), Some(&sku)) = (self.store_channel.get(&store), self.item_sku.get(&item)) else { continue };
            let Some(pos) = self.listed_pos[sku] else { continue };
            if self.set_velocity(c * self.listed() + pos, now) {
                touched.push(item);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        self.refresh(&touched, now);
    }

    fn sample(&mut self, now: i64) {
        let sku = self.catalog.listed[self.chart_pos];
        let pool = self.state.published(self.pool_listings[self.chart_pos]).map_or(0, |p| p.quantity);
        let shown = (0..self.scenario.channels.len()).map(|c| self.shown[c * self.listed() + self.chart_pos]).collect();
        self.timeline.push(Sample { at: now, pool: (pool - self.unreported[sku]).max(0), shown });
    }
}

/// Channel `spec`'s push configuration: realtime, its batch cap, one call per
/// `push_every_seconds` (a bucket of one call), and its intake for the upward guard.
pub fn push_config(spec: &crate::scenario::ChannelSpec) -> PushConfig {
    PushConfig {
        schedule: Schedule::Realtime,
        batch_max: spec.push_batch_max,
        rate: Rate::one_per_ms((spec.push_every_seconds * SECOND_MS).max(1)),
        cost_per_batch: 1,
        cost_per_push: 0,
        intake: intake(spec),
        ..PushConfig::default()
    }
}

/// How stockpool hears of channel `spec`'s orders: a webhook channel (not polled, orders
/// within `WEBHOOK_LATENCY_SECONDS_MAX`) is caught up whenever the engine decides; a
/// polled or slow channel reports its polls, and an increase waits for it at most its
/// worst order latency (`order_seconds`, latency plus polling interval; SPEC caps it at
/// 10 minutes).
pub fn intake(spec: &crate::scenario::ChannelSpec) -> IntakeMode {
    if spec.order_poll_seconds == 0 && spec.order_latency_seconds[1] <= WEBHOOK_LATENCY_SECONDS_MAX {
        IntakeMode::Immediate
    } else {
        IntakeMode::Reported { bound_ms: spec.order_seconds() * SECOND_MS }
    }
}
