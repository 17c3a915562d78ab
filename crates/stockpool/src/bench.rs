//! `stockpool bench`: the load generator for the HTTP order intake.
//!
//! It starts the real server in-process on `127.0.0.1:0` (or targets a running one with
//! `--url`), seeds a catalog of its own through the public API (warehouses, items with
//! plenty of stock, three stores, listings in bulk), then lets N clients place 1-3 line
//! orders for a fixed time and reports orders/s and latency percentiles. Closed loop by
//! default (each client sends its next order as soon as the last one is answered: the peak
//! rate); `--rate` switches to an open loop at a fixed arrival rate, timing each order from
//! when it was due, so a stalled server shows up in the latency instead of hiding it.
//!
//! `--raw` also measures what the database itself does with one durable commit per
//! single-row write on the same machine in the same run (and `pgbench` TPC-B on
//! PostgreSQL), which is the yardstick the group-committing writer is judged against.
//! Afterwards the in-process store is checked (`stockpool check`), so speed is never
//! bought with a broken invariant.

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stockpool_store::{system_clock, Storage};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Most concurrent clients: more than enough to saturate a server, few enough that every
/// client's keep-alive connection fits the default file-descriptor limit.
pub const CLIENTS_MAX: usize = 1024;
/// Longest load phase. Latency samples are kept in memory (4 bytes each), so this also
/// bounds the memory a run can use.
pub const DURATION_SECS_MAX: u64 = 3600;
/// Largest catalog the bench seeds.
pub const SKUS_MAX: usize = 100_000;
/// Highest open-loop arrival rate accepted (orders/s).
pub const RATE_MAX: f64 = 1_000_000.0;
/// Lines per order are drawn from 1..=this (the issue asks for 1-3 line orders).
pub const LINES_PER_ORDER_MAX: u64 = 3;
/// Units per line are drawn from 1..=this.
pub const UNITS_PER_LINE_MAX: u64 = 3;
/// Stock given to every SKU in every warehouse it is kept in: far more than any bounded
/// run can take (at 50,000 orders/s for an hour, about 30,000 units per SKU at 1,000
/// SKUs), so every order confirms and the bench measures intake, not backorders.
pub const STOCK_PER_SKU: i64 = 100_000_000;
/// Requests in flight while seeding the catalog.
pub const SEED_CONCURRENCY: usize = 16;
/// Listings per bulk request while seeding: well under the server's `BULK_LISTINGS_MAX`
/// (5,000) and its 1 MiB body limit.
pub const LISTINGS_PER_REQUEST: usize = 1000;
/// Longest any one request may take before the bench counts it failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the raw single-row durable INSERT loop runs.
pub const RAW_DURATION: Duration = Duration::from_secs(3);
/// pgbench scale factor for the TPC-B comparison (10 branches, 1,000,000 accounts).
pub const PGBENCH_SCALE: u32 = 10;
/// Longest `pgbench -i` may take before it is killed.
pub const PGBENCH_INIT_TIMEOUT: Duration = Duration::from_secs(300);
/// Slack past `--duration` before a `pgbench` run is killed.
pub const PGBENCH_RUN_SLACK: Duration = Duration::from_secs(60);
/// Longest the in-process server may take to drain and stop.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Distinct error kinds remembered for the report; more are counted but not named.
pub const ERROR_KINDS_MAX: usize = 16;
/// The database pgbench initialises and drops: separate from the one under test.
const PGBENCH_DATABASE: &str = "stockpool_bench_pgbench";

/// Drive the HTTP API with concurrent clients placing orders; report orders/s and latency.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Database to bench: sqlite://FILE or postgres://USER@HOST:PORT/DB. Default: a fresh
    /// SQLite file in a temporary directory, removed afterwards. The bench seeds its own
    /// workspace, so an existing database is fine. With --url it is only used for --raw.
    #[arg(long)]
    database: Option<String>,
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of the same load before the measured --duration, not counted: the server's
    /// log file and database reach their running size and its caches fill. Without it a
    /// fresh database spends its first seconds growing its files (BENCHMARKS.md).
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// SKUs in the seeded catalog.
    #[arg(long, default_value_t = 1000)]
    skus: usize,
    /// Open loop: orders per second in total, spread evenly over the clients. Latency is
    /// timed from when each order was due. Without it: closed loop, the peak rate.
    #[arg(long)]
    rate: Option<f64>,
    /// Bench an already running server (http://HOST:PORT) instead of one in-process.
    #[arg(long, requires = "token")]
    url: Option<String>,
    /// API token for --url.
    #[arg(long, env = "STOCKPOOL_TOKEN")]
    token: Option<String>,
    /// Also measure the raw database: single-row durable INSERTs, one commit each, on one
    /// connection; on PostgreSQL also pgbench TPC-B with the same client count and duration.
    #[arg(long)]
    raw: bool,
    /// Seed of the order generator (same seed, same orders).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON line instead of the human report.
    #[arg(long)]
    json: bool,
    /// Bench channel sync instead of order intake: an emulated webhook shop on loopback,
    /// staleness of stock changes and a full Sync now against the store's push budget
    /// (`bench_sync.rs`). Uses --database, --duration, --seed and --json.
    #[arg(long, conflicts_with_all = ["url", "raw", "rate"])]
    sync: bool,
    /// --sync: listings (one item each) on the webhook store.
    #[arg(long, default_value_t = 1000)]
    listings: usize,
    /// --sync: stock changes a second during the change phase.
    #[arg(long, default_value_t = 1000)]
    changes_per_second: u64,
    /// --sync: the webhook store's push_rate_per_second; with --webhook-store, that store's.
    #[arg(long, default_value_t = 1000)]
    push_rate: u32,
    /// Order intake with a store that pushes: also list every SKU on a realtime webhook
    /// store whose emulated shop (on loopback, in this process) takes pushes at
    /// --push-rate, so the dispatchers deliver while the orders come in.
    #[arg(long, conflicts_with = "url")]
    webhook_store: bool,
}

/// The bench must be repeatable: one seeded generator, the core's.
use stockpool_core::rng::SplitMix64;

/// The seeded catalog's codes. A per-run prefix keeps reruns on one database apart.
struct Catalog {
    prefix: String,
    skus: Vec<String>,
    warehouses: Vec<String>,
    stores: Vec<String>,
}

impl Catalog {
    fn new(prefix: &str, skus: usize) -> Catalog {
        Catalog {
            prefix: prefix.to_string(),
            skus: (0..skus).map(|i| format!("{prefix}-sku{i:06}")).collect(),
            warehouses: ["main", "east"].iter().map(|w| format!("{prefix}-{w}")).collect(),
            stores: ["etsy", "shop", "amzn"].iter().map(|s| format!("{prefix}-{s}")).collect(),
        }
    }
}

/// The HTTP side: one shared keep-alive pool, the base URL and the token.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: Arc<str>,
    auth: Arc<str>,
    /// The load phase's target: `POST /api/v1/orders` through the lean client.
    orders: Arc<crate::wire::Target>,
    /// The next order number (`order_body`).
    numbers: Arc<AtomicU64>,
}

impl Api {
    fn new(base: &str, token: &str, clients: usize) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(clients.max(SEED_CONCURRENCY))
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        let auth = format!("Bearer {token}");
        let orders = Arc::new(crate::wire::Target::post(base, "/api/v1/orders", &auth)?);
        Ok(Api { http, base: base.trim_end_matches('/').into(), auth: auth.into(), orders, numbers: Arc::default() })
    }

    /// POSTs JSON during seeding; anything but 2xx stops the bench with the server's answer.
    async fn post(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<()> {
        let res = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, &*self.auth)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path} while seeding"))?;
        let status = res.status();
        if !status.is_success() {
            let text = res.text().await.unwrap_or_default();
            bail!("POST {path} while seeding answered {status}: {text}");
        }
        Ok(())
    }

    /// The writer's counters from `/metrics` (commands and batches), if the server answers.
    async fn metrics(&self) -> Option<(u64, u64)> {
        let res = self
            .http
            .get(format!("{}/metrics", self.base))
            .header(reqwest::header::AUTHORIZATION, &*self.auth)
            .send()
            .await
            .ok()?;
        let text = res.text().await.ok()?;
        let value = |name: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse::<u64>().ok())
            })
        };
        Some((value("stockpool_commands_total")?, value("stockpool_batches_total")?))
    }
}

/// Seeds warehouses, items with stock, stores and listings through the API.
async fn seed(api: &Api, cat: &Arc<Catalog>) -> anyhow::Result<()> {
    for w in &cat.warehouses {
        api.post("/warehouses", &serde_json::json!({"code": w, "name": format!("Bench warehouse {w}")})).await?;
    }
    let channels = [
        ("etsy", serde_json::json!("realtime")),
        ("shopify", serde_json::json!("realtime")),
        ("amazon", serde_json::json!({"every_minutes": 15})),
    ];
    for (code, (channel, schedule)) in cat.stores.iter().zip(channels) {
        api.post("/stores", &serde_json::json!({"code": code, "name": format!("Bench store {code}"), "channel": channel, "schedule": schedule}))
            .await?;
    }
    // Items and their stock, SEED_CONCURRENCY requests at a time. Every SKU is stocked in
    // the main warehouse and every other one in the second too, so some orders draw on two.
    let mut tasks = JoinSet::new();
    for t in 0..SEED_CONCURRENCY {
        let (api, cat) = (api.clone(), cat.clone());
        tasks.spawn(async move {
            for (i, sku) in cat.skus.iter().enumerate().skip(t).step_by(SEED_CONCURRENCY) {
                api.post("/items", &serde_json::json!({"sku": sku, "name": format!("Bench item {i}"), "kind": "product", "unit": "pcs"}))
                    .await?;
                for w in cat.warehouses.iter().take(if i % 2 == 0 { 2 } else { 1 }) {
                    api.post("/stock/adjustments", &serde_json::json!({"sku": sku, "warehouse": w, "delta": STOCK_PER_SKU, "reason": "received"}))
                        .await?;
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a seeding task panicked")??;
    }
    for store in &cat.stores {
        for chunk in cat.skus.chunks(LISTINGS_PER_REQUEST) {
            let listings: Vec<_> = chunk
                .iter()
                .map(|sku| serde_json::json!({"store": store, "external_id": format!("{store}-{sku}"), "store_sku": sku, "sku": sku}))
                .collect();
            api.post("/listings/bulk", &serde_json::json!({ "listings": listings })).await?;
        }
    }
    Ok(())
}

/// A realtime webhook store listing every SKU, pushing to an emulated shop.
async fn seed_webhook_store(
    api: &Api,
    cat: &Catalog,
    push_rate: u32,
) -> anyhow::Result<stockpool_emulators::WebhookShop> {
    let code = format!("{}-hook", cat.prefix);
    let config = stockpool_emulators::ShopConfig {
        store: code.clone(),
        secret: "bench-secret".into(),
        faults: stockpool_emulators::Faults::default(),
    };
    let shop = stockpool_emulators::WebhookShop::start(config).await?;
    api.post(
        "/stores",
        &serde_json::json!({"code": code, "name": "Bench webhook shop", "channel": "webhook",
        "url": shop.url(), "secret": "bench-secret", "schedule": "realtime", "push_rate_per_second": push_rate}),
    )
    .await?;
    for chunk in cat.skus.chunks(LISTINGS_PER_REQUEST) {
        let listings: Vec<_> = chunk
            .iter()
            .map(|sku| serde_json::json!({"store": code, "external_id": format!("{code}-{sku}"), "sku": sku}))
            .collect();
        api.post("/listings/bulk", &serde_json::json!({ "listings": listings })).await?;
    }
    Ok(shop)
}

/// What one client saw.
#[derive(Default)]
struct ClientResult {
    ok: u64,
    /// Orders confirmed during the warm-up (not in `ok`).
    warmup_ok: u64,
    not_confirmed: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
    finished: Option<Instant>,
}

impl ClientResult {
    fn error(&mut self, kind: String) {
        self.failed += 1;
        if self.errors.len() < ERROR_KINDS_MAX || self.errors.contains_key(&kind) {
            *self.errors.entry(kind).or_default() += 1;
        }
    }
}

/// One order's body: 1-3 lines of distinct random SKUs, 1-3 units each. `number` is the
/// run's order number, shared by all clients: like a shop's own order numbers, each
/// store's external ids arrive in increasing order.
fn order_body(rng: &mut SplitMix64, cat: &Catalog, number: u64, buf: &mut String) {
    buf.clear();
    let store = &cat.stores[rng.below(cat.stores.len() as u64) as usize];
    let lines = (1 + rng.below(LINES_PER_ORDER_MAX)).min(cat.skus.len() as u64) as usize;
    let mut picked = [usize::MAX; LINES_PER_ORDER_MAX as usize];
    let _ = write!(buf, r#"{{"store":"{store}","external_id":"{}-{number:010}","lines":["#, cat.prefix);
    for l in 0..lines {
        // Distinct SKUs per order; with at least `lines` SKUs a free one always exists,
        // so walking forward from a random start is bounded by the catalog size.
        let mut i = rng.below(cat.skus.len() as u64) as usize;
        while picked[..l].contains(&i) {
            i = (i + 1) % cat.skus.len();
        }
        picked[l] = i;
        let sep = if l == 0 { "" } else { "," };
        let _ =
            write!(buf, r#"{sep}{{"store_sku":"{}","quantity":{}}}"#, cat.skus[i], 1 + rng.below(UNITS_PER_LINE_MAX));
    }
    buf.push_str("]}");
}

/// When one client places its orders.
#[derive(Clone, Copy)]
struct Schedule {
    /// Its first order (open loop: the clients are staggered).
    first: Instant,
    /// Orders due before this are the warm-up: placed, not counted.
    measured: Instant,
    /// No order is placed from here on.
    end: Instant,
    /// Open loop: one order per interval; closed loop: `None`.
    interval: Option<Duration>,
}

/// One client: places orders until `end`. Closed loop when `interval` is `None`, else one
/// order every `interval` starting at `first`, latency timed from when it was due.
async fn client(
    api: Api,
    mut conn: crate::wire::Conn,
    cat: Arc<Catalog>,
    mut rng: SplitMix64,
    when: Schedule,
) -> ClientResult {
    let Schedule { first, measured, end, interval } = when;
    let mut out = ClientResult::default();
    let mut body = String::new();
    let mut n: u64 = 0;
    loop {
        let due = match interval {
            Some(iv) => {
                let due = first + iv.mul_f64(n as f64);
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                now
            }
        };
        order_body(&mut rng, &cat, api.numbers.fetch_add(1, Ordering::Relaxed), &mut body);
        n += 1;
        let sent = tokio::time::timeout(REQUEST_TIMEOUT, conn.post(body.as_bytes())).await;
        let elapsed = due.elapsed();
        match sent {
            // Warming up: only a failure counts.
            Ok(Ok(answer)) if answer.status == 201 && due < measured => out.warmup_ok += 1,
            Ok(Ok(answer)) if answer.status == 201 => {
                out.ok += 1;
                out.latencies_us.push(elapsed.as_micros().min(u32::MAX as u128) as u32);
                if !contains(answer.body, br#""status":"confirmed""#) {
                    out.not_confirmed += 1;
                }
            }
            Ok(Ok(answer)) => out.error(format!("HTTP {}", answer.status)),
            Ok(Err(e)) => out.error(e.kind().to_string()),
            Err(_) => {
                conn.reset();
                out.error("timeout".to_string());
            }
        }
    }
    out.finished = Some(Instant::now());
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The load phase's totals.
struct Load {
    ok: u64,
    warmup_ok: u64,
    not_confirmed: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    /// The writer's (commands, batches) when the measured time began.
    writer_at_start: Option<(u64, u64)>,
}

async fn load(api: &Api, cat: &Arc<Catalog>, args: &BenchArgs) -> anyhow::Result<Load> {
    // Every client connects before the clock starts: hundreds of connections opened at
    // once can overflow the listen queue, and a dropped SYN is retried only after a
    // second, which timed the handshake, not the server. A client that cannot connect
    // here tries again at its first order, and a failure then is counted.
    let mut conns = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let mut conn = crate::wire::Conn::new(api.orders.clone());
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, conn.connect()).await;
        conns.push(conn);
    }
    let start = Instant::now();
    let measured = start + Duration::from_secs(args.warmup);
    let end = measured + Duration::from_secs(args.duration);
    let writer_at_start = {
        let api = api.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(measured.into()).await;
            api.metrics().await
        })
    };
    // Open loop: each client sends every `clients / rate` seconds, the clients staggered
    // evenly inside that period so the arrivals are spread out.
    let interval = args.rate.map(|r| Duration::from_secs_f64(args.clients as f64 / r));
    let mut tasks = JoinSet::new();
    for (id, conn) in conns.into_iter().enumerate() {
        let first = match interval {
            Some(iv) => start + iv.mul_f64(id as f64 / args.clients as f64),
            None => start,
        };
        let rng = SplitMix64(args.seed ^ (id as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        tasks.spawn(client(api.clone(), conn, cat.clone(), rng, Schedule { first, measured, end, interval }));
    }
    let mut total = Load {
        ok: 0,
        warmup_ok: 0,
        not_confirmed: 0,
        failed: 0,
        errors: BTreeMap::new(),
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        writer_at_start: None,
    };
    while let Some(done) = tasks.join_next().await {
        let r = done.context("a bench client panicked")?;
        total.ok += r.ok;
        total.warmup_ok += r.warmup_ok;
        total.not_confirmed += r.not_confirmed;
        total.failed += r.failed;
        for (k, v) in r.errors {
            *total.errors.entry(k).or_default() += v;
        }
        total.latencies_us.extend(r.latencies_us);
        if let Some(f) = r.finished {
            total.elapsed = total.elapsed.max(f.saturating_duration_since(measured));
        }
    }
    total.latencies_us.sort_unstable();
    total.writer_at_start = writer_at_start.await.context("reading the metrics at the measured start")?;
    Ok(total)
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil().max(1.0) as usize;
    f64::from(sorted_us[rank.min(sorted_us.len()) - 1]) / 1000.0
}

/// The in-process server and how to stop it (the sync bench's too).
pub(crate) struct Server {
    pub(crate) store: Storage,
    writer: tokio::task::JoinHandle<()>,
    stop: oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub(crate) async fn start(database: &str, workspace: &str) -> anyhow::Result<(Server, String, String)> {
        let (store, writer) = Storage::open(database, system_clock())
            .await
            .with_context(|| format!("opening the database {database}"))?;
        let token = store.create_token(workspace).await.context("creating the bench workspace's token")?;
        let app = crate::app::Application::build(store.clone(), "127.0.0.1:0").await?;
        let base = format!("http://{}", app.address());
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Ok((Server { store, writer, stop, serving }, base, token))
    }

    /// Stops serving, lets the writer finish, and waits for both (bounded).
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let Server { store, writer, stop, serving } = self;
        let _ = stop.send(());
        let stopped = async move {
            serving.await.context("the server task panicked")?.context("serving")?;
            drop(store);
            writer.await.context("the writer task panicked")?;
            anyhow::Ok(())
        };
        tokio::time::timeout(SHUTDOWN_TIMEOUT, stopped).await.context("the in-process server did not stop in time")?
    }
}

/// The raw database figures.
#[derive(Default)]
struct Raw {
    single_row_tx_per_s: Option<f64>,
    pgbench_tps: Option<f64>,
    notes: Vec<String>,
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// `pgbench` on PATH, if any.
fn find_pgbench() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("pgbench")).find(|p| p.is_file())
}

/// The same URL pointing at database `db`.
fn with_database(url: &str, db: &str) -> anyhow::Result<String> {
    let (before_query, query) = match url.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (url, None),
    };
    let scheme_end = before_query.find("://").context("a postgres URL needs ://")? + 3;
    let authority_end = before_query[scheme_end..].find('/').map_or(before_query.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &before_query[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// Runs `cmd` with its output in a temporary file, killing it after `limit`. Returns
/// stdout and stderr together.
async fn run_bounded(mut cmd: std::process::Command, limit: Duration) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let mut out = tempfile::tempfile().context("a temporary file for pgbench's output")?;
        cmd.stdout(out.try_clone()?).stderr(out.try_clone()?).stdin(std::process::Stdio::null());
        let mut child = cmd.spawn().context("starting pgbench")?;
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("pgbench did not finish within {} s and was stopped", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        use std::io::{Read, Seek};
        let mut text = String::new();
        out.rewind()?;
        out.read_to_string(&mut text)?;
        if !status.success() {
            bail!("pgbench failed ({status}): {}", text.trim());
        }
        Ok(text)
    })
    .await
    .context("the pgbench runner panicked")?
}

/// pgbench TPC-B on a database of its own in the same cluster: `-i -s PGBENCH_SCALE`,
/// then the bench's client count and duration. Returns tps.
async fn pgbench(pgbench: &Path, url: &str, clients: usize, duration: u64) -> anyhow::Result<f64> {
    stockpool_store::yardstick::create_scratch_database(url, PGBENCH_DATABASE)
        .await
        .context("creating a database for pgbench (needs CREATEDB)")?;
    let target = with_database(url, PGBENCH_DATABASE)?;
    let threads = clients.min(std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let result = async {
        let mut init = std::process::Command::new(pgbench);
        init.args(["-i", "-q", "-s", &PGBENCH_SCALE.to_string(), &target]);
        run_bounded(init, PGBENCH_INIT_TIMEOUT).await?;
        let mut run = std::process::Command::new(pgbench);
        run.args(["-c", &clients.to_string(), "-j", &threads.to_string(), "-T", &duration.to_string(), &target]);
        let text = run_bounded(run, Duration::from_secs(duration) + PGBENCH_RUN_SLACK).await?;
        text.lines()
            .find_map(|l| {
                l.strip_prefix("tps = ").and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse::<f64>().ok())
            })
            .with_context(|| format!("no tps in pgbench's output: {}", text.trim()))
    }
    .await;
    let dropped = stockpool_store::yardstick::drop_scratch_database(url, PGBENCH_DATABASE).await;
    let tps = result?;
    dropped?;
    Ok(tps)
}

async fn raw(url: &str, run_id: &str, args: &BenchArgs) -> Raw {
    let mut out = Raw::default();
    if is_postgres(url) {
        match stockpool_store::yardstick::raw_postgres(url, run_id, RAW_DURATION).await {
            Ok(r) => out.single_row_tx_per_s = Some(r),
            Err(e) => out.notes.push(format!("raw single-row measurement failed: {e:#}")),
        }
        match find_pgbench() {
            Some(bin) => match pgbench(&bin, url, args.clients, args.duration).await {
                Ok(tps) => out.pgbench_tps = Some(tps),
                Err(e) => out.notes.push(format!("pgbench failed: {e:#}")),
            },
            None => out.notes.push("pgbench is not on PATH; no TPC-B figure".into()),
        }
    } else {
        match stockpool_store::db::sqlite_file(url) {
            Some(path) => match stockpool_store::yardstick::raw_sqlite(&path, RAW_DURATION).await {
                Ok(r) => out.single_row_tx_per_s = Some(r),
                Err(e) => out.notes.push(format!("raw single-row measurement failed: {e:#}")),
            },
            None => out.notes.push(format!("--raw needs a SQLite file, not {url}")),
        }
    }
    out
}

fn backend_name(database: Option<&str>) -> &'static str {
    match database {
        Some(u) if is_postgres(u) => "postgresql",
        Some(_) => "sqlite",
        None => "remote",
    }
}

/// Runs the bench and prints the report. Fails on bad arguments, a failed seed, or a
/// store check with findings (after printing the figures).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.sync {
        return crate::bench_sync::run(crate::bench_sync::SyncArgs {
            database: args.database,
            listings: args.listings,
            changes_per_second: args.changes_per_second,
            duration: args.duration,
            push_rate: args.push_rate,
            seed: args.seed,
            json: args.json,
        })
        .await;
    }
    if args.clients == 0 || args.clients > CLIENTS_MAX {
        bail!("--clients must be 1 to {CLIENTS_MAX}, not {}", args.clients);
    }
    if args.duration == 0 || args.duration > DURATION_SECS_MAX {
        bail!("--duration must be 1 to {DURATION_SECS_MAX} seconds, not {}", args.duration);
    }
    if args.warmup > DURATION_SECS_MAX {
        bail!("--warmup must be at most {DURATION_SECS_MAX} seconds, not {}", args.warmup);
    }
    if args.skus == 0 || args.skus > SKUS_MAX {
        bail!("--skus must be 1 to {SKUS_MAX}, not {}", args.skus);
    }
    if let Some(r) = args.rate {
        if !(r > 0.0 && r <= RATE_MAX) {
            bail!("--rate must be above 0 and at most {RATE_MAX} orders/s, not {r}");
        }
    }
    let started_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let run_id = format!("b{started_ms:x}");
    let cat = Arc::new(Catalog::new(&run_id, args.skus));

    // Keeps the default database's directory alive until the end of the run.
    let mut tempdir = None;
    let (server, base, token, database) = match &args.url {
        Some(url) => (None, url.clone(), args.token.clone().context("--url needs --token")?, args.database.clone()),
        None => {
            let database = match &args.database {
                Some(d) => d.clone(),
                None => {
                    let dir = tempfile::tempdir().context("creating a temporary directory for the bench database")?;
                    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                    tempdir = Some(dir);
                    url
                }
            };
            let (server, base, token) = Server::start(&database, &format!("bench-{run_id}")).await?;
            (Some(server), base, token, Some(database))
        }
    };
    let backend = backend_name(database.as_deref());

    let api = Api::new(&base, &token, args.clients)?;
    let seeded = Instant::now();
    seed(&api, &cat).await.context("seeding the bench catalog")?;
    let shop = match args.webhook_store {
        true => Some(seed_webhook_store(&api, &cat, args.push_rate).await.context("seeding the webhook store")?),
        false => None,
    };
    let seed_secs = seeded.elapsed().as_secs_f64();
    let load_from = Instant::now();
    let load = load(&api, &cat, &args).await?;
    let webhook_pushes = shop.as_ref().map(|s| s.taken_since(load_from));
    let before = load.writer_at_start;
    let after = api.metrics().await;
    drop(api);

    let check = match server {
        Some(server) => {
            let findings = server.store.check().await.context("checking the store after the run")?;
            server.stop().await?;
            Some(findings)
        }
        None => None,
    };
    let raw = match (&database, args.raw) {
        (Some(url), true) => Some(raw(url, &run_id, &args).await),
        (None, true) => Some(Raw { notes: vec!["--raw with --url needs --database too".into()], ..Raw::default() }),
        _ => None,
    };
    drop(tempdir);

    let secs = load.elapsed.as_secs_f64().max(f64::EPSILON);
    let orders_per_s = load.ok as f64 / secs;
    let lat = &load.latencies_us;
    let (p50, p90, p99, max) =
        (percentile_ms(lat, 50.0), percentile_ms(lat, 90.0), percentile_ms(lat, 99.0), percentile_ms(lat, 100.0));
    let batching = match (before, after) {
        (Some((c0, b0)), Some((c1, b1))) if b1 > b0 => Some((c1 - c0, b1 - b0)),
        _ => None,
    };
    let single = raw.as_ref().and_then(|r| r.single_row_tx_per_s);
    let tps = raw.as_ref().and_then(|r| r.pgbench_tps);
    let mode = match args.rate {
        Some(r) => format!("open loop at {r} orders/s"),
        None => "closed loop".to_string(),
    };

    if args.json {
        let v = serde_json::json!({
            "backend": backend,
            "clients": args.clients,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "orders_warmup_ok": load.warmup_ok,
            "elapsed_s": secs,
            "skus": args.skus,
            "seed": args.seed,
            "rate_target": args.rate,
            "orders_ok": load.ok,
            "orders_not_confirmed": load.not_confirmed,
            "orders_failed": load.failed,
            "errors": load.errors,
            "orders_per_s": orders_per_s,
            "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max},
            "writer_commands": batching.map(|b| b.0),
            "writer_batches": batching.map(|b| b.1),
            "raw_single_row_tx_per_s": single,
            "ratio_to_raw": single.map(|r| orders_per_s / r),
            "pgbench_tps": tps,
            "ratio_to_pgbench": tps.map(|t| orders_per_s / t),
            "raw_notes": raw.as_ref().map(|r| r.notes.clone()).unwrap_or_default(),
            "check_findings": check.as_ref().map(|f| f.len()),
            "webhook_pushes": webhook_pushes,
        });
        println!("{v}");
    } else {
        println!(
            "stockpool bench: {backend}, {} clients, {} s {mode}{}, {} SKUs, seed {}",
            args.clients,
            args.duration,
            if args.warmup > 0 { format!(" after {} s of warm-up", args.warmup) } else { String::new() },
            args.skus,
            args.seed
        );
        println!("catalog seeded in {seed_secs:.1} s");
        if args.warmup > 0 {
            println!("warm-up: {} orders placed and not counted", load.warmup_ok);
        }
        println!("orders: {} ok ({} not confirmed), {} failed", load.ok, load.not_confirmed, load.failed);
        for (kind, n) in &load.errors {
            println!("  failed: {n} x {kind}");
        }
        println!("throughput: {orders_per_s:.0} orders/s over {secs:.2} s");
        println!("latency ms: p50 {p50:.2}  p90 {p90:.2}  p99 {p99:.2}  max {max:.2}");
        if let Some(n) = webhook_pushes {
            println!("webhook store: {n} pushes taken by its shop during the load (warm-up included)");
        }
        if let Some((commands, batches)) = batching {
            println!(
                "group commit: {commands} commands in {batches} transactions ({:.1} per commit)",
                commands as f64 / batches as f64
            );
        }
        if let Some(r) = &raw {
            if let Some(s) = r.single_row_tx_per_s {
                println!(
                    "raw {backend}: {s:.0} single-row durable tx/s (1 connection, {} s); bench / raw = {:.2}x",
                    RAW_DURATION.as_secs(),
                    orders_per_s / s
                );
            }
            if let Some(t) = r.pgbench_tps {
                println!(
                    "pgbench TPC-B: {t:.0} tps ({} clients, {} s, scale {PGBENCH_SCALE}); bench / pgbench = {:.2}x",
                    args.clients,
                    args.duration,
                    orders_per_s / t
                );
            }
            for note in &r.notes {
                println!("raw: {note}");
            }
        }
        match &check {
            Some(f) if f.is_empty() => println!("check: clean"),
            Some(f) => {
                for finding in f {
                    println!("check: {finding}");
                }
            }
            None => println!("check: skipped (remote server; run `stockpool check` on its database)"),
        }
    }
    if let Some(f) = &check {
        if !f.is_empty() {
            bail!("check: {} finding(s) after the bench", f.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&samples, 50.0), 50.0);
        assert_eq!(percentile_ms(&samples, 99.0), 99.0);
        assert_eq!(percentile_ms(&samples, 100.0), 100.0);
        assert_eq!(percentile_ms(&[], 99.0), 0.0);
    }

    #[test]
    fn orders_have_distinct_skus_and_parse() {
        let cat = Catalog::new("t", 2);
        let mut rng = SplitMix64(7);
        let mut buf = String::new();
        for n in 0..200 {
            order_body(&mut rng, &cat, n, &mut buf);
            let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
            let lines = v["lines"].as_array().unwrap();
            assert!((1..=2).contains(&lines.len()));
            assert!(lines.len() < 2 || lines[0]["store_sku"] != lines[1]["store_sku"]);
        }
    }

    #[test]
    fn database_is_swapped_in_postgres_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/db?sslmode=disable", "x").unwrap(),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5432", "x").unwrap(), "postgres://u@h:5432/x");
    }
}
