//! `stockpool bench` end to end: the real binary, a tiny catalog, one or two seconds of
//! load on a fresh SQLite file. Checks that it runs and reports, not how fast (timed
//! assertions have no place on a shared machine; BENCHMARKS.md holds the figures).

use std::process::Command;

/// Runs `stockpool bench` with `args` in a fresh directory; returns its standard output
/// after checking that it succeeded.
fn bench(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stockpool"))
        .arg("bench")
        .args(args)
        .current_dir(dir.path())
        .env("STOCKPOOL_LOG", "warn")
        .output()
        .expect("running stockpool bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

#[test]
fn bench_runs_on_sqlite_and_reports_throughput() {
    let stdout = bench(&["--clients", "4", "--duration", "1", "--skus", "20"]);
    assert!(stdout.contains("orders/s"), "no orders/s in:\n{stdout}");
    assert!(stdout.contains("check: clean"), "the store check is not clean:\n{stdout}");
}

#[test]
fn warm_up_orders_are_placed_but_not_counted() {
    // Open loop: 2 clients at 100 orders/s, 1 s of warm-up, then 1 s measured. Each client
    // has one order due every 20 ms, so exactly 100 fall in each second.
    let stdout =
        bench(&["--clients", "2", "--rate", "100", "--warmup", "1", "--duration", "1", "--skus", "20", "--json"]);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}):\n{stdout}"));
    assert_eq!(report["warmup_s"], 1);
    assert_eq!(report["orders_failed"], 0, "{report}");
    assert_eq!(report["orders_warmup_ok"], 100, "the warm-up second placed its orders: {report}");
    assert_eq!(report["orders_ok"], 100, "only the measured second's orders count: {report}");
    // The writer's commands are read from /metrics when the measured second begins; the
    // warm-up's 100 orders are not among them (a few at the boundary may fall either way).
    let commands = report["writer_commands"].as_u64().expect("writer_commands");
    assert!((90..=110).contains(&commands), "writer commands in the measured second: {commands}: {report}");
    assert_eq!(report["check_findings"], 0, "{report}");
}

#[test]
fn the_sync_bench_delivers_every_change_in_order_and_runs_a_full_sync_now() {
    let stdout = bench(&[
        "--sync",
        "--listings",
        "40",
        "--changes-per-second",
        "80",
        "--duration",
        "1",
        "--push-rate",
        "200",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}):\n{stdout}"));
    assert_eq!(report["changes"], 80, "{report}");
    assert_eq!(report["out_of_order"], 0, "no figure after a newer one: {report}");
    assert_eq!(report["undelivered"], 0, "every change reached the shop: {report}");
    assert_eq!((report["all_shown"].as_bool(), report["caught_up"].as_bool()), (Some(true), Some(true)), "{report}");
    assert_eq!(report["synced"], true, "Sync now pushed every listing again: {report}");
    assert!(report["pushes_per_change"].as_f64().is_some_and(|p| p > 0.0 && p <= 1.0), "coalesced: {report}");
    assert!(
        report["busiest_second_sync"].as_u64().is_some_and(|n| n <= 200 + 10),
        "no second over the rate and its burst: {report}"
    );
    assert_eq!(report["check_findings"], 0, "{report}");
}

#[test]
fn order_intake_runs_beside_a_store_that_pushes() {
    let stdout = bench(&["--clients", "4", "--duration", "3", "--skus", "20", "--webhook-store", "--json"]);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}):\n{stdout}"));
    assert_eq!(report["orders_failed"], 0, "{report}");
    assert!(report["webhook_pushes"].as_u64().is_some_and(|n| n > 0), "the webhook shop took pushes: {report}");
    assert_eq!(report["check_findings"], 0, "{report}");
}
