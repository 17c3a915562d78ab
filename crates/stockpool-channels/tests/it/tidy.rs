//! Tidy checks on the crate's own files: every `.rs` file opens with a `//!` comment
//! saying what lives there, and the crate keeps its boundary (no database: no SQL and no
//! database driver), which ARCHITECTURE.md promises.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_file_opens_with_a_doc_comment() {
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src"), &mut files);
    rust_files(&crate_dir().join("tests"), &mut files);
    assert!(files.len() >= 10, "found only {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("//! "), "{} must open with a //! comment saying what lives there", file.display());
    }
}

#[test]
fn no_database_in_this_crate() {
    // Spelled in pieces so that this file does not match itself.
    let forbidden = [["SELECT", " "].concat(), ["INSERT", " INTO"].concat(), ["sq", "lx"].concat()];
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src"), &mut files);
    rust_files(&crate_dir().join("tests"), &mut files);
    files.push(crate_dir().join("Cargo.toml"));
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for word in &forbidden {
            assert!(
                !text.contains(word.as_str()),
                "{} contains {word:?}: SQL belongs in stockpool-store",
                file.display()
            );
        }
    }
}
