//! The `stockpool` command: parses the CLI and runs one subcommand. Kept thin: the
//! server lives in `app.rs`, the demo seed in `demo.rs`, CSV in `csvio.rs`, the load
//! generator in `bench.rs` (and `bench_sync.rs` for `--sync`).

mod app;
mod bench;
mod bench_sync;
mod csvio;
mod demo;
mod wire;

use anyhow::Context;

/// mimalloc instead of the system allocator: under load glibc's malloc and free took 12 %
/// of the writer's CPU and 17 % of the HTTP threads' (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};
use stockpool_store::{system_clock, Storage};

/// stockpool: one shared stock pool for every channel you sell on.
#[derive(Parser)]
#[command(name = "stockpool", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Where the database is. SQLite is the embedded default; PostgreSQL when one machine is
/// not enough.
#[derive(clap::Args, Clone)]
struct DbArg {
    /// Database URL: sqlite://FILE or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "STOCKPOOL_DATABASE_URL", default_value = "sqlite://stockpool.db")]
    database: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server: HTTP API, dashboard, deadline sweeper. Migrates the database on start.
    Serve {
        #[command(flatten)]
        db: DbArg,
        /// Address to listen on (port 0 picks a free one).
        #[arg(long, env = "STOCKPOOL_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Seed a demo workspace and run the server on it; prints the dashboard URL and a login.
    Demo {
        /// Database URL (a separate file by default, so the demo never touches real data).
        #[arg(long, env = "STOCKPOOL_DATABASE_URL", default_value = "sqlite://stockpool-demo.db")]
        database: String,
        #[arg(long, env = "STOCKPOOL_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCmd,
    },
    /// Dashboard users.
    User {
        #[command(subcommand)]
        command: UserCmd,
    },
    /// Import items, stock, listings or components from CSV. A file with any bad row imports nothing.
    Import {
        kind: csvio::Kind,
        file: std::path::PathBuf,
        #[command(flatten)]
        db: DbArg,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Export items, stock, listings or components as CSV (to stdout, or --output FILE).
    Export {
        kind: csvio::Kind,
        #[arg(long)]
        output: Option<std::path::PathBuf>,
        #[command(flatten)]
        db: DbArg,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Queue pushes to channels.
    Sync {
        #[command(subcommand)]
        command: SyncCmd,
    },
    /// Webhook deliveries kept in the inbox (raw, before they were parsed).
    Inbox {
        #[command(subcommand)]
        command: InboxCmd,
    },
    /// Prove the database keeps its promises: ledger sums, 0 <= reserved <= on_hand, holds.
    /// Exits non-zero on any finding.
    Check {
        #[command(flatten)]
        db: DbArg,
    },
    /// Drive the HTTP API with concurrent clients and report orders/s and latency.
    Bench(bench::BenchArgs),
    /// Compare sync rules on simulated (or replayed) shoppers: oversells, lost sales and
    /// fill rate per strategy; prints the table, writes CSV and SVG charts (docs/simulation.md).
    Simulate(stockpool_sim::cli::SimulateArgs),
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Print one new API token, alone, on stdout (creates the workspace if missing).
    Create {
        #[command(flatten)]
        db: DbArg,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a dashboard user (prompts for the password when --password is not given).
    Create {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: Option<String>,
    },
}

#[derive(Subcommand)]
enum InboxCmd {
    /// Parse kept webhook deliveries again and apply each once (after a fix, or after a
    /// crash between keeping and applying one): every delivery still pending or failed,
    /// oldest first, or only --id N. An applied delivery is never applied again, and an
    /// order already in changes nothing. Prints one line per delivery.
    Replay {
        #[command(flatten)]
        db: DbArg,
        /// Only this delivery (the `delivery` a webhook answered, or `inbox list`'s id).
        #[arg(long)]
        id: Option<i64>,
    },
    /// List kept webhook deliveries, oldest first, one line each: id, store, channel,
    /// delivery id, outcome, order and detail.
    List {
        #[command(flatten)]
        db: DbArg,
        /// Only deliveries still pending or failed.
        #[arg(long)]
        unfinished: bool,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum SyncCmd {
    /// Queue a full push for one store or all.
    Now {
        #[command(flatten)]
        db: DbArg,
        #[arg(long, default_value = "default")]
        workspace: String,
        #[arg(long)]
        store: Option<String>,
    },
}

async fn open(db: &str) -> anyhow::Result<(Storage, tokio::task::JoinHandle<()>)> {
    Storage::open(db, system_clock()).await.with_context(|| format!("opening the database {db}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("STOCKPOOL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve { db, listen } => {
            let (store, writer) = open(&db.database).await?;
            let app = app::Application::build(store, &listen).await?;
            eprintln!("stockpool listening on http://{}", app.address());
            app.run_until_stopped(app::shutdown_signal()).await?;
            let _ = writer.await;
        }
        Cmd::Demo { database, listen } => {
            let (store, writer) = open(&database).await?;
            let shops = demo::start_shops().await.context("starting the demo's emulated shops")?;
            let login = demo::seed(&store, &shops).await.context("seeding the demo workspace")?;
            let app = app::Application::build(store.clone(), &listen).await?;
            let shoppers = tokio::spawn(demo::shoppers(store, app.address(), shops));
            println!("stockpool demo is running.");
            println!("  dashboard: http://{}/", app.address());
            println!("  login:     {} / {}", login.email, login.password);
            println!("  API token: {}", login.token);
            println!(
                "  try:       curl -H 'Authorization: Bearer {}' http://{}/api/v1/listings",
                login.token,
                app.address()
            );
            app.run_until_stopped(app::shutdown_signal()).await?;
            shoppers.abort();
            let _ = shoppers.await;
            let _ = writer.await;
        }
        Cmd::Token { command: TokenCmd::Create { db, workspace } } => {
            let (store, _) = open(&db.database).await?;
            println!("{}", store.create_token(&workspace).await?);
        }
        Cmd::User { command: UserCmd::Create { db, workspace, email, password } } => {
            let password = match password {
                Some(p) => p,
                None => prompt_password()?,
            };
            let (store, _) = open(&db.database).await?;
            store.create_user(&workspace, &email, &password).await?;
            eprintln!("user {email} can now log in to workspace {workspace}");
        }
        Cmd::Import { kind, file, db, workspace } => {
            let (store, _) = open(&db.database).await?;
            csvio::import(&store, &workspace, kind, &file).await?;
        }
        Cmd::Export { kind, output, db, workspace } => {
            let (store, _) = open(&db.database).await?;
            csvio::export(&store, &workspace, kind, output.as_deref()).await?;
        }
        Cmd::Sync { command: SyncCmd::Now { db, workspace, store: code } } => {
            let (store, _) = open(&db.database).await?;
            let ws = store.ensure_workspace(&workspace).await?;
            let reply = store
                .execute(ws, stockpool_store::Command::SyncNow(stockpool_store::model::SyncInput { store: code }))
                .await?;
            println!("{}", reply.body);
        }
        Cmd::Inbox { command: InboxCmd::Replay { db, id } } => {
            let (store, _) = open(&db.database).await?;
            let intake = stockpool_worker::intake::Intake::new(store).context("starting the webhook intake")?;
            let replayed = intake.replay(id).await?;
            if replayed.is_empty() {
                println!("inbox replay: nothing to replay");
            }
            for r in &replayed {
                let t = &r.taken;
                let mut line = format!(
                    "delivery {} ({} store {}): {} -> {}",
                    r.delivery,
                    r.channel,
                    r.store,
                    r.before.as_str(),
                    t.outcome.as_str()
                );
                if let Some(order) = &t.order {
                    line.push_str(&format!(", order {order}"));
                }
                if let Some(detail) = &t.detail {
                    line.push_str(&format!(": {detail}"));
                }
                println!("{line}");
            }
        }
        Cmd::Inbox { command: InboxCmd::List { db, unfinished, limit } } => {
            let (store, _) = open(&db.database).await?;
            for d in store.inbox_deliveries(unfinished, 0, limit).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    d.id,
                    d.store_code,
                    d.channel,
                    d.delivery_id.as_deref().unwrap_or("-"),
                    d.outcome.as_str(),
                    d.order
                        .map(|o| stockpool_store::model::public_id(stockpool_store::model::Kind::Order, d.ws, o.0))
                        .unwrap_or_else(|| "-".into()),
                    d.detail.as_deref().unwrap_or("")
                );
            }
        }
        Cmd::Check { db } => {
            let (store, _) = open(&db.database).await?;
            let findings = store.check().await?;
            if findings.is_empty() {
                println!("check: clean");
            } else {
                for f in &findings {
                    println!("{f}");
                }
                anyhow::bail!("check: {} finding(s)", findings.len());
            }
        }
        Cmd::Bench(args) => bench::run(args).await?,
        Cmd::Simulate(args) => stockpool_sim::cli::run(&args)?,
    }
    Ok(())
}

fn prompt_password() -> anyhow::Result<String> {
    use std::io::{BufRead, Write};
    eprint!("password: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
