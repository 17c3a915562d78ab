//! The shipped scenarios (`scenarios/*.toml` at the repository root): they parse, and
//! each keeps the claim docs/simulation.md makes for it with seed 1.
//!
//! The claim (issue 4): `buffer: auto` has fewer oversells than the full pool and fewer
//! lost sales than sync rate 50 %. `year-1000-skus` is too slow for the test profile at
//! full length and too quiet when cut short; `benches/sim.rs` checks it in release before
//! measuring (docs/simulation.md says so).

use crate::support::{load, shipped};
use stockpool_sim::strategy::Strategy;

/// Every scenario file shipped, by name.
fn shipped_names() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Scenarios the suite runs in full.
const RUN_IN_TESTS: [&str; 3] = ["flash-sale", "made-to-order", "small-shop"];
/// Checked by `benches/sim.rs` instead.
const RUN_IN_BENCH: [&str; 1] = ["year-1000-skus"];

#[test]
fn every_shipped_scenario_parses_and_is_checked_somewhere() {
    let names = shipped_names();
    for n in &names {
        load(n);
        assert!(
            RUN_IN_TESTS.contains(&n.as_str()) || RUN_IN_BENCH.contains(&n.as_str()),
            "scenario {n} is checked neither here nor in the bench"
        );
    }
    assert_eq!(names.len(), RUN_IN_TESTS.len() + RUN_IN_BENCH.len(), "{names:?}");
}

#[track_caller]
fn figures(name: &str) -> (u64, u64, u64, u64) {
    let report = shipped(name, 1);
    let m = |s| report.metrics(s).unwrap().clone();
    let (full, sync, auto) = (m(Strategy::FullPool), m(Strategy::Sync50), m(Strategy::BufferAuto));
    (auto.oversells, full.oversells, auto.lost_sales, sync.lost_sales)
}

#[test]
fn small_shop_buffer_auto_beats_full_pool_and_sync_50() {
    let (auto_oversells, full_oversells, auto_lost, sync_lost) = figures("small-shop");
    assert!(auto_oversells < full_oversells, "oversells: buffer_auto {auto_oversells}, full_pool {full_oversells}");
    assert!(auto_lost < sync_lost, "lost sales: buffer_auto {auto_lost}, sync_50 {sync_lost}");
}

#[test]
fn flash_sale_buffer_auto_beats_full_pool_and_sync_50() {
    let (auto_oversells, full_oversells, auto_lost, sync_lost) = figures("flash-sale");
    assert!(auto_oversells < full_oversells, "oversells: buffer_auto {auto_oversells}, full_pool {full_oversells}");
    assert!(auto_lost < sync_lost, "lost sales: buffer_auto {auto_lost}, sync_50 {sync_lost}");
}

/// FIXME: on made-to-order, `buffer: auto` does not have fewer oversells than the full
/// pool. Most oversells there are multi-line orders whose lines share a material (each
/// listing shows its own capacity; together they need more: the oracle has them too), and
/// the rest come from the favoured store selling the last capacity that eBay (polled every
/// 15 minutes) already sold: the favoured store holds nothing back by design (`buffer.rs`).
/// Pinned so that a fix shows up here; docs/simulation.md discusses it.
#[test]
fn made_to_order_buffer_auto_beats_sync_50_but_not_full_pool() {
    let (auto_oversells, full_oversells, auto_lost, sync_lost) = figures("made-to-order");
    assert!(
        auto_oversells >= full_oversells,
        "fixed? oversells: buffer_auto {auto_oversells}, full_pool {full_oversells}"
    );
    assert!(auto_lost < sync_lost, "lost sales: buffer_auto {auto_lost}, sync_50 {sync_lost}");
}
