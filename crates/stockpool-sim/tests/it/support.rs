//! Helpers shared by the tests: run a scenario from text, project a report's figures.

use stockpool_sim::catalog::Catalog;
use stockpool_sim::scenario::Scenario;
use stockpool_sim::{simulate, Report, Traffic};

/// Runs every strategy on `scenario` (TOML) with the shoppers of `orders` (CSV).
#[track_caller]
pub fn replay(scenario: &str, orders: &str) -> Report {
    let s = Scenario::parse(scenario).expect("a valid scenario");
    let catalog = Catalog::new(&s).expect("a valid catalog");
    let traffic = Traffic::replayed(&s, &catalog, orders, 1).expect("a valid order history");
    simulate(&s, &traffic, &[], 1).expect("the run")
}

/// Runs every strategy on a shipped scenario with generated shoppers.
#[track_caller]
pub fn shipped(name: &str, seed: u64) -> Report {
    let s = load(name);
    let catalog = Catalog::new(&s).expect("a valid catalog");
    let traffic = Traffic::generated(&s, &catalog, seed);
    simulate(&s, &traffic, &[], seed).expect("the run")
}

/// A shipped scenario, parsed.
#[track_caller]
pub fn load(name: &str) -> Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios").join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

/// The accounting columns of every strategy, one line each:
/// `strategy orders units_sold oversells oversold_units lost_sales lost_units units_filled fill_rate`.
pub fn figures(report: &Report) -> String {
    let oracle = report.metrics(stockpool_sim::strategy::Strategy::Oracle).expect("the oracle always runs");
    let mut out = String::new();
    for r in &report.runs {
        let m = &r.metrics;
        out.push_str(&format!(
            "{} {} {} {} {} {} {} {} {}\n",
            m.strategy,
            m.orders,
            m.units_sold,
            m.oversells,
            m.oversold_units,
            m.lost_sales,
            m.lost_units,
            m.units_filled,
            stockpool_sim::metrics::percent(m.fill_rate_permille(oracle)),
        ));
    }
    out
}
