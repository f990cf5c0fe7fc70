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

#[path = "../../tests/support/suite_guard.rs"]
mod suite_guard;

/// Every `.rs` file beside this one is a module of this binary (or a file that runs
/// alone, as its own `[[test]]`).
#[test]
fn every_test_file_is_in_the_suite() {
    suite_guard::assert_every_file_in_suite(env!("CARGO_MANIFEST_DIR"), &[]);
}
