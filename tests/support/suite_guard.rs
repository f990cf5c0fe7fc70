//! Why each of the `onde`, `onde-runtime` and `onde-codegen` crates has its
//! integration tests as modules of one `tests/suite.rs` binary: one link of the crate
//! and its dependencies (Cranelift's among them) instead of one per file — ~60 test
//! binaries with full debug info (~130 MB each) filled CI's disk — and one test
//! harness that keeps both cores busy. Files that measure the process (allocation
//! counts, resident memory) stay their own `[[test]]` binaries.
//!
//! The check each suite runs: with `autotests = false`, a test file left out of the
//! suite's `mod` list would never be compiled, so it is named. Included by path
//! (`#[path = …] mod suite_guard;`) from the three suites.

/// Every `.rs` file in `crate_dir/tests` is declared `mod stem;` in its `suite.rs`,
/// but `suite.rs` itself and the files in `alone` (their own `[[test]]` binaries).
pub fn assert_every_file_in_suite(crate_dir: &str, alone: &[&str]) {
    let dir = std::path::Path::new(crate_dir).join("tests");
    let suite = std::fs::read_to_string(dir.join("suite.rs")).expect("read suite.rs");
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
        "test files not in {}: {missing:?}",
        dir.join("suite.rs").display()
    );
}
