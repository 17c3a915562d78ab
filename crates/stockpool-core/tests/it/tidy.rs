//! Tidy checks on the crate itself: it stays pure, and every file says what lives there.

use std::path::Path;

#[test]
fn the_core_depends_on_no_io_crate() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
    for banned in ["tokio", "sqlx", "reqwest", "hyper", "axum", "rand", "chrono", "time", "anyhow"] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(&format!("{banned} "))
                || l.trim_start().starts_with(&format!("{banned}="))),
            "stockpool-core must not depend on {banned}"
        );
    }
}

#[test]
fn the_core_reads_no_clock_and_no_environment() {
    for (path, text) in sources() {
        for banned in ["SystemTime", "Instant::now", "std::env", "std::fs", "std::net", "thread_rng"] {
            assert!(!text.contains(banned), "{path} uses {banned}: the core takes time and input as arguments");
        }
    }
}

#[test]
fn every_source_file_opens_with_a_module_doc_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["src", "tests/it", "benches"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    text.starts_with("//!"),
                    "{} must open with a //! comment saying what lives there",
                    path.display()
                );
            }
        }
    }
}

fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}
