//! `PgCluster`: start, create databases, run SQL, stop; the shared cluster under concurrent
//! use; and cleanup by the watchdog when the test process dies without running destructors.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use stockpool_testkit::PgCluster;

use crate::{eventually, port_is_open};

#[test]
fn owned_cluster_starts_serves_sql_and_stops() {
    let started = Instant::now();
    let cluster = PgCluster::start().expect("start a cluster");
    eprintln!("PgCluster::start took {:?}", started.elapsed());
    let port = cluster.port();
    assert!(port_is_open(port));
    assert_eq!(cluster.url("shop"), format!("postgres://postgres@127.0.0.1:{port}/shop"));

    cluster.create_database("testkit_owned").expect("create a database");
    assert_eq!(cluster.psql("testkit_owned", "SELECT 1").expect("run SELECT 1"), "1");
    assert_eq!(cluster.psql("testkit_owned", "SHOW fsync").expect("show fsync"), "on");
    assert_eq!(cluster.psql("testkit_owned", "SHOW listen_addresses").expect("show listen_addresses"), "127.0.0.1");
    assert_eq!(cluster.psql("postgres", "SHOW server_version_num").expect("version").get(..2), Some("15"));

    let log_dir = cluster.log_path().parent().expect("log dir").to_owned();
    cluster.stop().expect("stop the cluster");
    assert!(!port_is_open(port), "port {port} still open after stop");
    assert!(!log_dir.exists(), "{} still exists after stop", log_dir.display());
}

#[test]
fn dropping_a_cluster_stops_it_and_removes_its_directory() {
    let cluster = PgCluster::start().expect("start a cluster");
    let port = cluster.port();
    let dir = cluster.log_path().parent().expect("log dir").to_owned();
    drop(cluster);
    assert!(!port_is_open(port), "port {port} still open after drop");
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}

#[test]
fn creating_an_existing_database_fails_with_a_clear_error() {
    let cluster = PgCluster::shared();
    cluster.create_database("testkit_twice").expect("create the database once");
    let error = cluster.create_database("testkit_twice").expect_err("a second create must fail");
    let message = format!("{error:#}");
    assert!(message.contains("creating database \"testkit_twice\""), "{message}");
    assert!(message.contains("already exists"), "{message}");
}

#[test]
fn shared_cluster_serves_concurrent_tests() {
    let first = PgCluster::shared();
    let urls: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    let cluster = PgCluster::shared();
                    let url = cluster.fresh_database_url("Concurrent-Test").expect("create a fresh database");
                    let db = url.rsplit('/').next().expect("db name").to_owned();
                    assert_eq!(cluster.psql(&db, "SELECT 1").expect("run SELECT 1"), "1");
                    url
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("thread")).collect()
    });
    let port = first.port();
    for url in &urls {
        assert!(url.starts_with(&format!("postgres://postgres@127.0.0.1:{port}/concurrent_test_")), "{url}");
    }
    let mut unique = urls.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), urls.len());
}

/// The environment variable that turns `crashing_child_process` into the crashing child.
const CRASH_CHILD_ENV: &str = "STOCKPOOL_TESTKIT_CRASH_CHILD";

/// Re-runs this test binary as a child that starts the shared cluster and aborts, then
/// checks that the watchdog stops the orphaned cluster and removes its directory.
#[test]
fn shared_cluster_is_cleaned_up_when_the_process_crashes() {
    let output = Command::new(std::env::current_exe().expect("current exe"))
        .args(["--exact", "pg::crashing_child_process", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, "1")
        .output()
        .expect("run the crashing child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "the child was meant to abort: {stdout}");
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.split_once(name).map(|(_, value)| value.trim()))
            .unwrap_or_else(|| panic!("child printed no {name}: {stdout}"))
            .to_owned()
    };
    let port: u16 = field("CLUSTER_PORT=").parse().expect("port");
    let dir = PathBuf::from(field("CLUSTER_DIR="));
    assert!(eventually(Duration::from_secs(60), || !port_is_open(port) && !dir.exists()), "orphan not cleaned up");
}

/// Only does something as the child of the test above: starts the shared cluster, says
/// where it is, and dies without running any destructor.
#[test]
fn crashing_child_process() {
    if std::env::var_os(CRASH_CHILD_ENV).is_none() {
        return;
    }
    let cluster = PgCluster::shared();
    let dir = cluster.log_path().parent().expect("log dir").display().to_string();
    println!("CLUSTER_PORT={}\nCLUSTER_DIR={dir}", cluster.port());
    std::process::abort();
}
