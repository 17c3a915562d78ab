//! `stockpool bench` end to end: the real binary, a tiny catalog, one second of load on a
//! fresh SQLite file. Checks that it runs and reports, not how fast (timed assertions have
//! no place on a shared machine; BENCHMARKS.md holds the figures).

use std::process::Command;

#[test]
fn bench_runs_on_sqlite_and_reports_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stockpool"))
        .args(["bench", "--clients", "4", "--duration", "1", "--skus", "20"])
        .current_dir(dir.path())
        .env("STOCKPOOL_LOG", "warn")
        .output()
        .expect("running stockpool bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("orders/s"), "no orders/s in:\n{stdout}");
    assert!(stdout.contains("check: clean"), "the store check is not clean:\n{stdout}");
}
