//! All of this crate's integration tests in one binary: one link of the JIT and its
//! dependencies instead of one per file (each binary is ~25 MB; ~60 of them made CI's
//! disk run out), and one test harness that keeps both cores busy. Files that measure
//! the process (allocation counts, resident memory) stay their own binaries; see
//! `[[test]]` in Cargo.toml.

mod common;
mod elementwise;
mod errors;
mod linalg;
mod movement;
mod random;
mod reduce;
mod robustness;
mod scan;
mod scatter_detach;

/// Every `.rs` file beside this one is a module of this binary (or one of the files
/// that must run alone: []); with `autotests = false` a file left out of
/// the list above would never be compiled, so this test names it.
#[test]
fn every_test_file_is_in_the_suite() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let suite = std::fs::read_to_string(dir.join("suite.rs")).expect("read suite.rs");
    let alone: &[&str] = &[];
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read tests/") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        let Some(stem) = name.strip_suffix(".rs") else {
            continue;
        };
        if name == "suite.rs" || alone.contains(&name.as_str()) {
            continue;
        }
        if !suite.lines().any(|l| l.trim() == format!("mod {stem};")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "test files not in tests/suite.rs: {missing:?}"
    );
}
