//! A seed fixes the whole report: the same seed gives the same bytes (table, CSV files
//! and chart), another seed gives other shoppers.

use crate::support::shipped;
use stockpool_sim::chart;
use stockpool_sim::strategy::Strategy;

fn everything(seed: u64) -> String {
    let report = shipped("flash-sale", seed);
    let mut out = report.text();
    out.push_str(&report.summary_csv());
    out.push_str(&report.timeline_csv());
    out.push_str(&chart::svg(&report, Strategy::BufferAuto).expect("the chart"));
    out
}

#[test]
fn the_same_seed_gives_a_byte_identical_report() {
    let (a, b) = (everything(7), everything(7));
    assert!(a == b, "two runs with seed 7 differ");
}

#[test]
fn another_seed_gives_other_shoppers() {
    assert_ne!(shipped("small-shop", 1).summary_csv(), shipped("small-shop", 2).summary_csv());
}
