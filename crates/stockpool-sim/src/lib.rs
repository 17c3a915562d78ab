//! stockpool-sim: a deterministic oversell simulator that drives stockpool-core itself.
//!
//! A scenario (`scenario.rs`, a TOML file a seller edits) describes channels, SKUs and
//! shoppers. `catalog.rs` resolves its SKUs; `traffic.rs` makes the shoppers once from a
//! seed (or replays a seller's order history), so every strategy (`strategy.rs`) faces the
//! same traffic; `engine.rs` runs one strategy on a fake clock through the core's own
//! `State`, `take_order`, `apply`, `adjust` and `published`; `metrics.rs` counts orders,
//! oversells and lost sales and formats the table and CSV; `chart.rs` draws the SVG;
//! `cli.rs` is `stockpool simulate`. All randomness comes from `rng.rs`, seeded.
//!
//! The same scenario, traffic and seed give a byte-identical report.

pub mod catalog;
pub mod chart;
pub mod cli;
pub mod engine;
pub mod metrics;
pub mod rng;
pub mod scenario;
pub mod strategy;
pub mod traffic;

use catalog::Catalog;
use engine::RunResult;
use metrics::Metrics;
use scenario::Scenario;
use std::fmt::Write;
use strategy::Strategy;
use traffic::Shopper;

/// The shoppers every strategy of a run faces.
#[derive(Clone, Debug)]
pub struct Traffic {
    pub shoppers: Vec<Shopper>,
    /// Days simulated: the scenario's, or those a replayed history spans.
    pub days: u32,
    /// Where the shoppers come from, for the report's heading.
    pub source: String,
}

impl Traffic {
    /// Shoppers generated from the scenario and `seed`.
    pub fn generated(scenario: &Scenario, catalog: &Catalog, seed: u64) -> Traffic {
        Traffic {
            shoppers: traffic::generate(scenario, catalog, seed),
            days: scenario.days,
            source: "generated shoppers".to_string(),
        }
    }

    /// A seller's order history (CSV text) replayed; `seed` draws the order latencies.
    pub fn replayed(scenario: &Scenario, catalog: &Catalog, csv: &str, seed: u64) -> anyhow::Result<Traffic> {
        let (shoppers, days) = traffic::replay(scenario, catalog, csv, seed)?;
        Ok(Traffic { shoppers, days, source: "replayed order history".to_string() })
    }
}

/// Every strategy's result on one traffic.
#[derive(Clone, Debug)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub days: u32,
    pub source: String,
    pub channels: Vec<String>,
    pub chart_sku: String,
    pub shoppers: usize,
    /// The strategies asked for, in the report's order; the oracle last, always.
    pub runs: Vec<RunResult>,
}

/// Runs `strategies` (and always the oracle, the yardstick of fill rate) on `traffic`.
pub fn simulate(scenario: &Scenario, traffic: &Traffic, strategies: &[Strategy], seed: u64) -> anyhow::Result<Report> {
    let catalog = Catalog::new(scenario)?;
    let mut chosen: Vec<Strategy> =
        Strategy::ALL.iter().copied().filter(|s| strategies.is_empty() || strategies.contains(s)).collect();
    if !chosen.contains(&Strategy::Oracle) {
        chosen.push(Strategy::Oracle);
    }
    let mut runs = Vec::with_capacity(chosen.len());
    for s in chosen {
        runs.push(engine::run_strategy(scenario, &catalog, &traffic.shoppers, traffic.days, s)?);
    }
    let chart_sku = scenario
        .chart_sku
        .clone()
        .filter(|s| catalog.index(s).is_some())
        .unwrap_or_else(|| catalog.skus[catalog.most_popular()].sku.clone());
    Ok(Report {
        scenario: scenario.name.clone(),
        seed,
        days: traffic.days,
        source: traffic.source.clone(),
        channels: scenario.channels.iter().map(|c| c.code.clone()).collect(),
        chart_sku,
        shoppers: traffic.shoppers.len(),
        runs,
    })
}

impl Report {
    pub fn run(&self, strategy: Strategy) -> Option<&RunResult> {
        self.runs.iter().find(|r| r.metrics.strategy == strategy)
    }

    pub fn metrics(&self, strategy: Strategy) -> Option<&Metrics> {
        self.run(strategy).map(|r| &r.metrics)
    }

    fn oracle(&self) -> &Metrics {
        self.metrics(Strategy::Oracle).expect("simulate always runs the oracle")
    }

    fn all_metrics(&self) -> Vec<&Metrics> {
        self.runs.iter().map(|r| &r.metrics).collect()
    }

    /// The heading and the comparison table.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario {} (seed {}, {} days, {} shoppers: {}, channels {})\n",
            self.scenario,
            self.seed,
            self.days,
            self.shoppers,
            self.source,
            self.channels.join(", ")
        );
        out.push_str(&metrics::table(&self.all_metrics(), self.oracle()));
        out
    }

    /// `summary.csv`: one row per strategy.
    pub fn summary_csv(&self) -> String {
        metrics::summary_csv(&self.all_metrics(), self.oracle())
    }

    /// `timeline.csv`: the chart SKU's pool and each channel's shown quantity over time.
    pub fn timeline_csv(&self) -> String {
        let mut out = String::from("strategy,sku,minute,pool");
        for c in &self.channels {
            let _ = write!(out, ",{c}");
        }
        out.push('\n');
        for r in &self.runs {
            for s in &r.timeline {
                let _ = write!(out, "{},{},{},{}", r.metrics.strategy, self.chart_sku, s.at / 60_000, s.pool);
                for q in &s.shown {
                    let _ = write!(out, ",{q}");
                }
                out.push('\n');
            }
        }
        out
    }
}
