//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and the fuzz findings
//! (`fuzz/regressions/<target>/`) through the fuzz targets' own checks, on stable.
//!
//! The checks live in `fuzz/checks/` and are compiled here as they are into the fuzz targets,
//! so a file fails here exactly when it would crash the fuzzer. A missing or empty corpus
//! directory fails too: this test never passes on nothing.

#[path = "../fuzz/checks/mod.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every corpus and regression file of `target` through its check; fails naming each file
/// that fails.
fn replay(target: &str) {
    let check = checks::by_name(target).unwrap_or_else(|| panic!("no check named {target}"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = files(&root.join("corpus").join(target));
    assert!(!corpus.is_empty(), "fuzz/corpus/{target}/ is empty");
    let regressions = root.join("regressions").join(target);
    let regressions = if regressions.is_dir() {
        files(&regressions)
    } else {
        Vec::new()
    };

    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {message}", path.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} files failed:\n{}",
        failed.len(),
        corpus.len() + regressions.len(),
        failed.join("\n")
    );
    println!(
        "{target}: {} corpus + {} regression files passed",
        corpus.len(),
        regressions.len()
    );
}

/// Every target in `checks::TARGETS` has a fuzz target, and every fuzz target is replayed on
/// stable: here, or by another test that includes its check (`fuzz/checks/<name>.rs`).
#[test]
fn every_target_is_replayed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let on_disk: Vec<String> = files(&root.join("fuzz/fuzz_targets"))
        .iter()
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned))
        .collect();
    for name in checks::TARGETS {
        assert!(
            on_disk.iter().any(|t| t == name),
            "no fuzz/fuzz_targets/{name}.rs"
        );
    }
    let other_tests: Vec<String> = files(&root.join("tests"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect();
    for name in on_disk
        .iter()
        .filter(|t| !checks::TARGETS.contains(&t.as_str()))
    {
        let include = format!("fuzz/checks/{name}.rs");
        assert!(
            other_tests.iter().any(|text| text.contains(&include)),
            "fuzz target {name} is replayed by no test (add it to checks::TARGETS)"
        );
    }
}

#[test]
fn parse_head() {
    replay("parse_head");
}

#[test]
fn differential() {
    replay("differential");
}

#[test]
fn chunked() {
    replay("chunked");
}

#[test]
fn query() {
    replay("query");
}

#[test]
fn encode_roundtrip() {
    replay("encode_roundtrip");
}

#[test]
fn publish_body() {
    replay("publish_body");
}

#[test]
fn last_event_id() {
    replay("last_event_id");
}

#[test]
fn forwarded() {
    replay("forwarded");
}
