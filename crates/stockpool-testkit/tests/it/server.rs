//! `ServerProcess` against `fake-stockpool`: readiness, kill -9 and restart, and clear,
//! prompt errors when the binary is missing, exits at once, or never becomes ready.

use std::time::{Duration, Instant};

use stockpool_testkit::{http_get, ServerProcess};

use crate::port_is_open;

const FAKE: &str = env!("CARGO_BIN_EXE_fake-stockpool");

#[test]
fn server_starts_is_ready_survives_kill9_and_restarts_on_the_same_address() {
    let mut server = ServerProcess::start(FAKE, "postgres://nowhere/db").expect("start the fake server");
    let addr = server.addr();
    assert_eq!(server.base_url(), format!("http://{addr}"));
    assert_eq!(http_get(addr, "/readyz", Duration::from_secs(1)).expect("probe").status, 200);
    assert_eq!(http_get(addr, "/nope", Duration::from_secs(1)).expect("probe").status, 404);
    assert!(server.log_tail(10).contains("with database postgres://nowhere/db"), "{}", server.log_tail(10));

    server.kill9().expect("kill -9");
    assert_eq!(server.pid(), None);
    assert!(!port_is_open(addr.port()));

    server.restart().expect("restart");
    assert_eq!(server.addr(), addr);
    assert_eq!(http_get(addr, "/readyz", Duration::from_secs(1)).expect("probe").status, 200);
    assert_eq!(server.log_tail(100).matches("listening on").count(), 2);

    let log_path = server.log_path().to_owned();
    drop(server);
    assert!(!port_is_open(addr.port()));
    assert!(!log_path.exists());
}

#[test]
fn extra_args_and_env_reach_the_server() {
    let error = ServerProcess::builder(FAKE, "sqlite://x.db")
        .env("FAKE_STOCKPOOL_NEVER_READY", "1")
        .arg("--extra")
        .ready_timeout(Duration::from_millis(500))
        .start()
        .expect_err("never ready");
    let message = format!("{error:#}");
    assert!(message.contains("GET /readyz answered 503"), "{message}");
}

#[test]
fn a_missing_binary_is_reported_at_once() {
    let started = Instant::now();
    let error = ServerProcess::start("/nonexistent/stockpool", "sqlite://x.db").expect_err("no such binary");
    let message = format!("{error:#}");
    assert!(message.contains("spawning the server binary /nonexistent/stockpool"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_server_that_exits_at_once_is_reported_with_its_status_and_log() {
    let started = Instant::now();
    let error = ServerProcess::start("/bin/false", "sqlite://x.db").expect_err("false exits");
    let message = format!("{error:#}");
    assert!(message.contains("exited with exit status: 1 before it was ready"), "{message}");
    assert!(message.contains("last lines of"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn a_server_that_never_gets_ready_times_out_with_its_log() {
    let started = Instant::now();
    let error = ServerProcess::builder(FAKE, "sqlite://x.db")
        .env("FAKE_STOCKPOOL_NEVER_READY", "1")
        .ready_timeout(Duration::from_secs(1))
        .start()
        .expect_err("never ready");
    let message = format!("{error:#}");
    assert!(message.contains("not ready within 1s"), "{message}");
    assert!(message.contains("fake-stockpool: listening on"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}
