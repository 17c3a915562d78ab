//! What a run counts, and the report: the comparison table (text) and the CSV files.
//!
//! Every figure is a whole number, and the fill rate is whole tenths of a percent, so the
//! same seed prints the same report byte for byte on every machine. Definitions (also in
//! docs/simulation.md):
//! - `orders`: orders the channels took (a shopper who got at least one unit).
//! - `units_sold`: units in those orders.
//! - `oversells`: orders with a line the pool could not fill (the core decided a line
//!   `oversold`); `oversold_units` their units.
//! - `lost_sales`: order lines where the shopper found less than wanted on their channel
//!   while the pool held more than the channel showed; `lost_units` the units it cost.
//! - `units_filled`: `units_sold - oversold_units`, what was actually shipped.
//! - `fill_rate`: `units_filled` against the oracle's (full pool, instant sync).

use crate::strategy::Strategy;
use std::fmt::Write;

/// The counters of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    pub strategy: Strategy,
    /// Shoppers who came, whatever they found.
    pub shoppers: u64,
    /// Units the shoppers wanted.
    pub units_wanted: i64,
    pub orders: u64,
    pub units_sold: i64,
    pub oversells: u64,
    pub oversold_units: i64,
    pub lost_sales: u64,
    pub lost_units: i64,
    pub units_filled: i64,
    /// Batches pushed to channels.
    pub pushes: u64,
    /// Purchase orders received.
    pub restocks: u64,
}

impl Metrics {
    pub fn new(strategy: Strategy) -> Metrics {
        Metrics {
            strategy,
            shoppers: 0,
            units_wanted: 0,
            orders: 0,
            units_sold: 0,
            oversells: 0,
            oversold_units: 0,
            lost_sales: 0,
            lost_units: 0,
            units_filled: 0,
            pushes: 0,
            restocks: 0,
        }
    }

    /// Units filled per thousand of the oracle's; `None` when the oracle filled nothing.
    pub fn fill_rate_permille(&self, oracle: &Metrics) -> Option<i64> {
        (oracle.units_filled > 0).then(|| self.units_filled * 1000 / oracle.units_filled)
    }
}

/// One point of the timeline: the chart SKU at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Milliseconds since the start.
    pub at: i64,
    /// What the whole pool could still sell (stockpool's pool less unreported sales).
    pub pool: i64,
    /// What each channel shows, in scenario order.
    pub shown: Vec<i64>,
}

/// `permille` as `97.3 %`.
pub fn percent(permille: Option<i64>) -> String {
    match permille {
        Some(p) => format!("{}.{} %", p / 10, p % 10),
        None => "-".to_string(),
    }
}

const COLUMNS: [&str; 11] = [
    "strategy",
    "orders",
    "units_sold",
    "oversells",
    "oversold_units",
    "lost_sales",
    "lost_units",
    "units_filled",
    "fill_rate",
    "pushes",
    "restocks",
];

fn row(m: &Metrics, oracle: &Metrics) -> [String; 11] {
    [
        m.strategy.name().to_string(),
        m.orders.to_string(),
        m.units_sold.to_string(),
        m.oversells.to_string(),
        m.oversold_units.to_string(),
        m.lost_sales.to_string(),
        m.lost_units.to_string(),
        m.units_filled.to_string(),
        percent(m.fill_rate_permille(oracle)),
        m.pushes.to_string(),
        m.restocks.to_string(),
    ]
}

/// The comparison table, aligned for a terminal and valid Markdown.
pub fn table(runs: &[&Metrics], oracle: &Metrics) -> String {
    let rows: Vec<[String; 11]> = runs.iter().map(|m| row(m, oracle)).collect();
    let mut width = COLUMNS.map(str::len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        out.push('|');
        for (i, cell) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, " {cell:<w$} |", w = width[i]);
            } else {
                let _ = write!(out, " {cell:>w$} |", w = width[i]);
            }
        }
        out.push('\n');
    };
    line(&mut out, &COLUMNS.map(String::from));
    let rule: Vec<String> = width
        .iter()
        .enumerate()
        .map(|(i, w)| if i == 0 { "-".repeat(*w) } else { format!("{}:", "-".repeat(w - 1)) })
        .collect();
    line(&mut out, &rule);
    for r in &rows {
        line(&mut out, r);
    }
    out
}

/// The same figures as CSV, one row per strategy, with the fill rate in permille.
pub fn summary_csv(runs: &[&Metrics], oracle: &Metrics) -> String {
    let mut out = String::from(
        "strategy,shoppers,units_wanted,orders,units_sold,oversells,oversold_units,lost_sales,lost_units,\
         units_filled,fill_rate_permille,pushes,restocks\n",
    );
    for m in runs {
        let fill = m.fill_rate_permille(oracle).map_or(String::new(), |p| p.to_string());
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            m.strategy.name(),
            m.shoppers,
            m.units_wanted,
            m.orders,
            m.units_sold,
            m.oversells,
            m.oversold_units,
            m.lost_sales,
            m.lost_units,
            m.units_filled,
            fill,
            m.pushes,
            m.restocks
        );
    }
    out
}
