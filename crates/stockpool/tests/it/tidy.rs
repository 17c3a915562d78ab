//! Workspace-wide tidy checks: the boundaries ARCHITECTURE.md draws between the crates.
//!
//! Every Rust file opens with a `//!` comment saying what lives there; the core depends on
//! no I/O crate; only `stockpool-store` writes SQL; only `stockpool-channels` (the
//! channels' APIs) and this binary (its load generator and the demo's shoppers, clients of
//! stockpool's own API) depend on an HTTP client.

use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crates of the workspace, by folder name.
fn crates() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(crates_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    out
}

/// The `[dependencies]` section of a manifest (not dev-dependencies).
fn dependencies(krate: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
    let Some(section) = manifest.split("\n[dependencies]\n").nth(1) else { return Vec::new() };
    section
        .split("\n[")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split(['=', ' ', '.']).next())
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_rust_file_opens_with_a_module_doc_comment() {
    let mut files = Vec::new();
    rust_files(&crates_dir(), &mut files);
    assert!(files.len() > 50, "found the workspace's sources");
    let missing: Vec<String> = files
        .iter()
        .filter(|p| !std::fs::read_to_string(p).unwrap().starts_with("//!"))
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(missing, Vec::<String>::new(), "each must open with a //! comment saying what lives there");
}

#[test]
fn the_core_depends_on_no_io_crate() {
    let deps = dependencies(&crates_dir().join("stockpool-core"));
    assert!(deps.contains(&"serde".to_string()), "read the core's dependencies: {deps:?}");
    for d in &deps {
        assert!(["serde", "thiserror"].contains(&d.as_str()), "stockpool-core must not depend on {d}");
    }
}

#[test]
fn only_the_store_writes_sql() {
    let words = ["SELECT ", "INSERT INTO", "UPDATE stock_levels", "DELETE FROM", "CREATE TABLE"];
    for (name, dir) in crates() {
        if name == "stockpool-store" || name == "stockpool-testkit" {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for w in words {
                assert!(!text.contains(w), "{} has SQL ({w:?}): only stockpool-store knows SQL", f.display());
            }
        }
        assert!(!dependencies(&dir).contains(&"sqlx".to_string()), "{name} depends on sqlx: only the store may");
    }
}

#[test]
fn only_the_channels_crate_and_the_binary_have_an_http_client() {
    for (name, dir) in crates() {
        if name == "stockpool-channels" || name == "stockpool" {
            continue;
        }
        for client in ["reqwest", "ureq"] {
            assert!(
                !dependencies(&dir).contains(&client.to_string()),
                "{name} depends on {client}: calls to channels belong in stockpool-channels"
            );
        }
    }
    // hyper-util serves the API's connections (`stockpool-http`'s `serve.rs`); its client
    // half stays out of the workspace's own declaration.
    let root = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml")).unwrap();
    let line = root.lines().find(|l| l.starts_with("hyper-util")).unwrap_or("");
    assert!(
        !line.contains("client"),
        "hyper-util with its client features: calls to channels belong in stockpool-channels"
    );
}
