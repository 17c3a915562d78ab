//! Tidy checks on the crate: every Rust file opens with a `//!` comment saying what lives
//! there, as in stockpool-core.

use std::path::Path;

#[test]
fn every_source_file_opens_with_a_module_doc_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for dir in ["src", "tests/it", "benches", "examples"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    text.starts_with("//!"),
                    "{} must open with a //! comment saying what lives there",
                    path.display()
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 10, "only {seen} files found: did the layout change?");
}
