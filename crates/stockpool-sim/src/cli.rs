//! `stockpool simulate`: the arguments and the run, for the binary to call.
//!
//! It loads the scenario, makes or replays the traffic, runs the strategies, prints the
//! comparison table and writes `summary.csv`, `timeline.csv` and one SVG chart per
//! strategy into `--out`.

use crate::catalog::Catalog;
use crate::scenario::Scenario;
use crate::strategy::Strategy;
use crate::{chart, simulate, Traffic};
use anyhow::Context;
use std::path::PathBuf;

/// Compare sync strategies on simulated (or replayed) shoppers: oversells, lost sales, fill rate.
#[derive(clap::Args, Clone, Debug)]
pub struct SimulateArgs {
    /// Scenario file (TOML; see docs/simulation.md and scenarios/).
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// Seed of every random draw: the same seed gives a byte-identical report.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// A strategy to run (repeat for several; all when absent). The oracle always runs.
    #[arg(long = "strategy", value_enum, value_name = "STRATEGY")]
    pub strategies: Vec<Strategy>,
    /// Replay this order history (CSV: time,channel,sku,quantity[,order]) instead of
    /// generated shoppers.
    #[arg(long, value_name = "FILE.csv")]
    pub orders: Option<PathBuf>,
    /// Directory for summary.csv, timeline.csv and the SVG charts (created if missing).
    #[arg(long, value_name = "DIR", default_value = "sim-out")]
    pub out: PathBuf,
}

/// Runs `stockpool simulate`.
pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    let catalog = Catalog::new(&scenario)?;
    let traffic = match &args.orders {
        Some(path) => {
            let csv = std::fs::read_to_string(path)
                .with_context(|| format!("reading the order history {}", path.display()))?;
            Traffic::replayed(&scenario, &catalog, &csv, args.seed)
                .with_context(|| format!("in the order history {}", path.display()))?
        }
        None => Traffic::generated(&scenario, &catalog, args.seed),
    };
    let report = simulate(&scenario, &traffic, &args.strategies, args.seed)?;
    print!("{}", report.text());
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let write = |name: &str, text: &str| {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("summary.csv", &report.summary_csv())?;
    write("timeline.csv", &report.timeline_csv())?;
    for r in &report.runs {
        let s = r.metrics.strategy;
        write(&format!("chart-{s}.svg"), &chart::svg(&report, s)?)?;
    }
    println!("\nwrote summary.csv, timeline.csv and chart-*.svg to {}", args.out.display());
    Ok(())
}
