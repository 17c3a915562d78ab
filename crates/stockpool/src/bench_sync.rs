//! `stockpool bench --sync`: how stale a channel's figures get, and how much of a store's
//! push budget a full Sync now uses.
//!
//! It starts the real server in-process (dispatchers included) with an emulated webhook
//! shop on loopback (`stockpool_emulators::WebhookShop`), seeds `--listings` items, each
//! with plenty of stock and one listing on a `webhook` store pushing at `--push-rate`,
//! and runs three phases, each measured from the shop's own log of what it received:
//!
//! 1. **Initial push**: creating the listings queues every one; the time until the shop
//!    shows them all gives the achieved push rate.
//! 2. **Changes**: `--changes-per-second` stock changes for `--duration` seconds, open
//!    loop over the API, each taking one unit off a random item. Each item's changes come
//!    from one client, one after another, so the figure after an item's k-th change is
//!    known (its stock less k). A change's staleness is from its acknowledgement (the
//!    server answers after commit) to the moment the shop first took a figure at or below
//!    it; the report gives p50, p99 and max, pushes per change, and counts any figure that
//!    arrived after a lower one (an older figure after a newer: there must be none).
//! 3. **Sync now**: `POST /api/v1/sync` for the store; the time until the shop got every
//!    listing again gives the achieved rate against the configured one, and the busiest
//!    second of the shop's log shows that no second exceeded it.

use anyhow::{bail, Context};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use stockpool_core::rng::SplitMix64;
use stockpool_emulators::{Faults, Received, ShopConfig, WebhookShop};
use stockpool_store::exec::Command;
use tokio::task::JoinSet;

/// Most listings `--sync` seeds.
pub const LISTINGS_MAX: usize = 200_000;
/// Highest change rate accepted (changes/s).
pub const CHANGES_PER_SECOND_MAX: u64 = 20_000;
/// Stock every item starts with: more than any bounded run takes off it.
pub const STOCK: i64 = 1_000_000_000;
/// Clients placing changes; each owns the items `i` with `i % CLIENTS == n`.
pub const CLIENTS: usize = 16;
/// Commands per seeding batch (items and their stock; listings).
pub const SEED_BATCH: usize = 2_000;
/// Longest a phase waits for the shop to catch up before it reports what it has.
pub const CATCH_UP_MAX: Duration = Duration::from_secs(300);
/// The store's code and secret.
const STORE: &str = "hook";
const SECRET: &str = "bench-secret";

/// What `--sync` takes from `BenchArgs`.
pub struct SyncArgs {
    pub database: Option<String>,
    pub listings: usize,
    pub changes_per_second: u64,
    pub duration: u64,
    pub push_rate: u32,
    pub seed: u64,
    pub json: bool,
}

/// A store command from its JSON input.
fn cmd<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(v).context("building a seed command")
}

/// One acknowledged change: the item, the figure it leads to, when the server answered.
struct Change {
    item: usize,
    figure: i64,
    acked: Instant,
}

fn sku(i: usize) -> String {
    format!("SYNC-{i:06}")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Waits until `done` holds of the shop, or `CATCH_UP_MAX`; true if it did.
async fn wait_until(shop: &WebhookShop, mut done: impl FnMut(&WebhookShop) -> bool) -> bool {
    let deadline = Instant::now() + CATCH_UP_MAX;
    while Instant::now() < deadline {
        if done(shop) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The most requests the log shows in any one-second window starting at a request.
fn busiest_second(log: &[Received]) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..log.len() {
        while log[end].at.duration_since(log[start].at) >= Duration::from_secs(1) {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// The time from `from` to the `n`-th request the shop took (status 200) after it.
fn time_to_nth_ok(log: &[Received], from: Instant, n: usize) -> Option<Duration> {
    log.iter().filter(|r| r.at >= from && r.status == 200).nth(n.checked_sub(1)?).map(|r| r.at - from)
}

pub async fn run(args: SyncArgs) -> anyhow::Result<()> {
    if args.listings == 0 || args.listings > LISTINGS_MAX {
        bail!("--listings must be 1 to {LISTINGS_MAX}, not {}", args.listings);
    }
    if args.changes_per_second == 0 || args.changes_per_second > CHANGES_PER_SECOND_MAX {
        bail!("--changes-per-second must be 1 to {CHANGES_PER_SECOND_MAX}, not {}", args.changes_per_second);
    }
    let max_rate = stockpool_store::model::PUSH_RATE_PER_SECOND_MAX;
    if args.push_rate == 0 || args.push_rate > max_rate {
        bail!("--push-rate must be 1 to {max_rate} pushes a second, not {}", args.push_rate);
    }
    let mut tempdir = None;
    let database = match &args.database {
        Some(d) => d.clone(),
        None => {
            let dir = tempfile::tempdir().context("creating a temporary directory for the bench database")?;
            let url = format!("sqlite://{}", dir.path().join("bench-sync.db").display());
            tempdir = Some(dir);
            url
        }
    };
    let started_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let workspace = format!("bench-sync-{started_ms:x}");
    let shop = WebhookShop::start(ShopConfig { store: STORE.into(), secret: SECRET.into(), faults: Faults::default() })
        .await
        .context("starting the emulated webhook shop")?;
    let (server, base, token) = crate::bench::Server::start(&database, &workspace).await?;
    let store = server.store.clone();
    let ws = store.ensure_workspace(&workspace).await?;

    // Items and stock, then the store, then the listings (which queue the initial push).
    let seeding = Instant::now();
    store.execute(ws, Command::CreateWarehouse(cmd(json!({"code": "main", "name": "Main"}))?)).await?;
    for chunk in (0..args.listings).collect::<Vec<_>>().chunks(SEED_BATCH / 2) {
        let mut c = Vec::with_capacity(chunk.len() * 2);
        for &i in chunk {
            c.push(Command::CreateItem(cmd(json!({"sku": sku(i), "name": format!("Sync bench item {i}")}))?));
            c.push(Command::Adjust(cmd(json!({"sku": sku(i), "warehouse": "main", "delta": STOCK}))?));
        }
        store.execute(ws, Command::Batch(c)).await?;
    }
    store
        .execute(
            ws,
            Command::CreateStore(cmd(json!({"code": STORE, "name": "Bench webhook shop", "channel": "webhook",
                "url": shop.url(), "secret": SECRET, "schedule": "realtime", "push_rate_per_second": args.push_rate}))?),
        )
        .await?;
    let seed_secs = seeding.elapsed().as_secs_f64();
    let listing_start = Instant::now();
    for chunk in (0..args.listings).collect::<Vec<_>>().chunks(SEED_BATCH) {
        let listings: Vec<serde_json::Value> =
            chunk.iter().map(|&i| json!({"store": STORE, "external_id": format!("x-{i}"), "sku": sku(i)})).collect();
        store.execute(ws, Command::CreateListings(cmd(json!(listings))?)).await?;
    }

    // 1. The initial push of every listing.
    let all_shown = wait_until(&shop, |s| s.shown_count() >= args.listings).await;
    let log = shop.log();
    let initial = time_to_nth_ok(&log, listing_start, args.listings);

    // 2. Changes at a fixed rate, open loop.
    let http = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(CLIENTS).build()?;
    let changes_from = Instant::now();
    let per_client = Duration::from_secs_f64(CLIENTS as f64 / args.changes_per_second as f64);
    let total = args.changes_per_second * args.duration;
    let mut clients: JoinSet<anyhow::Result<Vec<Change>>> = JoinSet::new();
    for n in 0..CLIENTS {
        let (http, base, token, listings) = (http.clone(), base.clone(), token.clone(), args.listings);
        let mut rng = SplitMix64(args.seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let owned: Vec<usize> = (n..listings).step_by(CLIENTS).collect();
        let count = total / CLIENTS as u64 + u64::from((n as u64) < total % CLIENTS as u64);
        clients.spawn(async move {
            let mut done = Vec::with_capacity(count as usize);
            if owned.is_empty() {
                return Ok(done);
            }
            let mut taken: HashMap<usize, i64> = HashMap::new();
            let start = tokio::time::Instant::now() + per_client.mul_f64(n as f64 / CLIENTS as f64);
            for k in 0..count {
                tokio::time::sleep_until(start + per_client.mul_f64(k as f64)).await;
                let item = owned[rng.below(owned.len() as u64) as usize];
                let res = http
                    .post(format!("{base}/api/v1/stock/adjustments"))
                    .bearer_auth(&token)
                    .json(&json!({"sku": sku(item), "warehouse": "main", "delta": -1, "reason": "bench"}))
                    .send()
                    .await?;
                if !res.status().is_success() {
                    bail!("a stock change answered {}: {}", res.status(), res.text().await.unwrap_or_default());
                }
                let n = taken.entry(item).or_insert(0);
                *n += 1;
                done.push(Change { item, figure: STOCK - *n, acked: Instant::now() });
            }
            Ok(done)
        });
    }
    let mut changes = Vec::new();
    while let Some(c) = clients.join_next().await {
        changes.extend(c.context("a change client panicked")??);
    }
    let changes_secs = changes_from.elapsed().as_secs_f64();
    let mut last: HashMap<usize, i64> = HashMap::new();
    for c in &changes {
        let e = last.entry(c.item).or_insert(c.figure);
        *e = (*e).min(c.figure);
    }
    let caught_up = wait_until(&shop, |s| last.iter().all(|(i, f)| s.shown(&sku(*i)) == Some(*f))).await;
    let changes_to = Instant::now();
    let log = shop.log();

    // Staleness of each change, from the shop's log per listing.
    let mut arrivals: HashMap<&str, Vec<(Instant, i64)>> = HashMap::new();
    let mut out_of_order = 0u64;
    for r in log.iter().filter(|r| r.status == 200) {
        if let (Some(s), Some(q)) = (&r.store_sku, r.quantity) {
            let seen = arrivals.entry(s.as_str()).or_default();
            if seen.last().is_some_and(|(_, prev)| q > *prev) {
                out_of_order += 1;
            }
            seen.push((r.at, q));
        }
    }
    let skus: Vec<String> = (0..args.listings).map(sku).collect();
    let mut staleness_ms: Vec<f64> = Vec::with_capacity(changes.len());
    let mut undelivered = 0u64;
    for c in &changes {
        let first = arrivals.get(skus[c.item].as_str()).and_then(|a| a.iter().find(|(_, q)| *q <= c.figure));
        match first {
            Some((at, _)) => staleness_ms.push(at.saturating_duration_since(c.acked).as_secs_f64() * 1000.0),
            None => undelivered += 1,
        }
    }
    staleness_ms.sort_by(f64::total_cmp);
    let pushes_in_changes = log.iter().filter(|r| r.at >= changes_from && r.at <= changes_to).count();
    let busiest_changes =
        busiest_second(&log.iter().filter(|r| r.at >= changes_from && r.at <= changes_to).cloned().collect::<Vec<_>>());

    // 3. Sync now.
    let sync_from = Instant::now();
    let res = http
        .post(format!("{base}/api/v1/sync"))
        .bearer_auth(&token)
        .json(&json!({"store": STORE}))
        .send()
        .await
        .context("POST /api/v1/sync")?;
    if res.status() != 202 {
        bail!("Sync now answered {}: {}", res.status(), res.text().await.unwrap_or_default());
    }
    let n = args.listings;
    let synced = wait_until(&shop, |s| s.taken_since(sync_from) >= n).await;
    let log = shop.log();
    let sync = time_to_nth_ok(&log, sync_from, n);
    let sync_log: Vec<Received> = log.iter().filter(|r| r.at >= sync_from).cloned().collect();
    let busiest_sync = busiest_second(&sync_log);
    let check = store.check().await.context("checking the store after the run")?;
    drop(store);
    server.stop().await?;
    shop.stop().await;
    drop(tempdir);

    let rate = f64::from(args.push_rate);
    let rate_of = |d: Option<Duration>| d.map(|d| n as f64 / d.as_secs_f64().max(f64::EPSILON));
    let (initial_rate, sync_rate) = (rate_of(initial), rate_of(sync));
    let (p50, p99, max) =
        (percentile(&staleness_ms, 50.0), percentile(&staleness_ms, 99.0), percentile(&staleness_ms, 100.0));
    let pushes_per_change = pushes_in_changes as f64 / changes.len().max(1) as f64;
    let backend = if database.starts_with("postgres") { "postgres" } else { "sqlite" };
    if args.json {
        println!(
            "{}",
            json!({
                "backend": backend, "listings": n, "push_rate": args.push_rate,
                "changes_per_second_target": args.changes_per_second, "duration_s": args.duration,
                "changes": changes.len(), "changes_per_second": changes.len() as f64 / changes_secs,
                "staleness_ms": {"p50": p50, "p99": p99, "max": max}, "undelivered": undelivered,
                "out_of_order": out_of_order, "pushes_per_change": pushes_per_change,
                "busiest_second_changes": busiest_changes, "caught_up": caught_up,
                "initial_push_s": initial.map(|d| d.as_secs_f64()), "initial_rate": initial_rate, "all_shown": all_shown,
                "sync_now_s": sync.map(|d| d.as_secs_f64()), "sync_now_rate": sync_rate,
                "sync_now_percent_of_budget": sync_rate.map(|r| 100.0 * r / rate), "busiest_second_sync": busiest_sync,
                "synced": synced, "seed_s": seed_secs, "check_findings": check.len(),
            })
        );
    } else {
        println!(
            "stockpool bench --sync: {backend}, {n} listings on one webhook store at {} pushes/s, seed {}",
            args.push_rate, args.seed
        );
        println!("catalog seeded in {seed_secs:.1} s");
        match (initial, initial_rate) {
            (Some(d), Some(r)) => println!(
                "initial push: {n} listings in {:.2} s = {r:.0} pushes/s ({:.0} % of the budget)",
                d.as_secs_f64(),
                100.0 * r / rate
            ),
            _ => println!("initial push: not every listing arrived within {} s", CATCH_UP_MAX.as_secs()),
        }
        println!(
            "changes: {} in {changes_secs:.1} s ({:.0}/s, target {}/s), {} pushes = {pushes_per_change:.2} pushes per change{}",
            changes.len(),
            changes.len() as f64 / changes_secs,
            args.changes_per_second,
            pushes_in_changes,
            if caught_up { "" } else { "; the shop did NOT catch up" }
        );
        println!("staleness ms (acknowledged -> shop has the figure): p50 {p50:.1}  p99 {p99:.1}  max {max:.1}");
        println!(
            "order: {out_of_order} figures arrived after a lower one; {undelivered} changes never arrived; busiest second {busiest_changes} pushes"
        );
        match (sync, sync_rate) {
            (Some(d), Some(r)) => println!(
                "Sync now: {n} listings in {:.2} s = {r:.0} pushes/s ({:.1} % of the configured {} /s); busiest second {busiest_sync} pushes",
                d.as_secs_f64(),
                100.0 * r / rate,
                args.push_rate
            ),
            _ => println!("Sync now: not every listing arrived within {} s", CATCH_UP_MAX.as_secs()),
        }
        if check.is_empty() {
            println!("check: clean");
        }
        for f in &check {
            println!("check: {f}");
        }
    }
    if !check.is_empty() {
        bail!("check: {} finding(s) after the bench", check.len());
    }
    if out_of_order > 0 {
        bail!("{out_of_order} figures arrived after a newer one");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64, status: u16) -> Received {
        Received { at: base + Duration::from_millis(ms), store_sku: None, quantity: None, status }
    }

    #[test]
    fn the_busiest_second_counts_requests_within_one_second_of_each_other() {
        let t = Instant::now();
        let log: Vec<Received> = [0, 100, 900, 999, 1000, 1500, 2600].iter().map(|ms| at(t, *ms, 200)).collect();
        assert_eq!(busiest_second(&log), 4, "0, 100, 900 and 999 ms");
        assert_eq!(busiest_second(&[]), 0);
    }

    #[test]
    fn the_nth_ok_after_a_moment_skips_earlier_and_refused_requests() {
        let t = Instant::now();
        let log = vec![at(t, 0, 200), at(t, 10, 429), at(t, 20, 200), at(t, 30, 200)];
        assert_eq!(time_to_nth_ok(&log, t + Duration::from_millis(5), 2), Some(Duration::from_millis(25)));
        assert_eq!(time_to_nth_ok(&log, t + Duration::from_millis(5), 3), None);
    }
}
