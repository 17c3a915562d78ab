//! The simulator's benchmark: one simulated year of 1,000 SKUs on 4 channels
//! (`scenarios/year-1000-skus.toml`), every strategy and the oracle, as
//! `stockpool simulate` runs it. The goal (issue 4) is under 30 s.
//!
//! Before measuring, it runs the scenario once with seed 1, prints the comparison table
//! and checks the claim the test suite cannot afford to check at this size: `buffer: auto`
//! has fewer oversells than the full pool and fewer lost sales than sync rate 50 %.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use stockpool_sim::catalog::Catalog;
use stockpool_sim::scenario::Scenario;
use stockpool_sim::strategy::Strategy;
use stockpool_sim::{simulate, Report, Traffic};

fn year(seed: u64) -> Report {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/year-1000-skus.toml");
    let scenario = Scenario::load(&path).expect("the shipped scenario");
    let catalog = Catalog::new(&scenario).expect("its catalog");
    let traffic = Traffic::generated(&scenario, &catalog, seed);
    simulate(&scenario, &traffic, &[], seed).expect("the run")
}

fn bench(c: &mut Criterion) {
    let report = year(1);
    print!("{}", report.text());
    let m = |s| report.metrics(s).expect("every strategy ran");
    let (auto, full, sync) = (m(Strategy::BufferAuto), m(Strategy::FullPool), m(Strategy::Sync50));
    assert!(auto.oversells < full.oversells, "oversells: buffer_auto {}, full_pool {}", auto.oversells, full.oversells);
    assert!(
        auto.lost_sales < sync.lost_sales,
        "lost sales: buffer_auto {}, sync_50 {}",
        auto.lost_sales,
        sync.lost_sales
    );

    let mut group = c.benchmark_group("simulate");
    // A run takes seconds: ten samples of one run each is the least criterion allows.
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(240));
    group.bench_function("year_1000_skus_4_channels_all_strategies", |b| b.iter(|| year(1)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
