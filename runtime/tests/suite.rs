//! The interpreter's integration tests, one binary (see
//! `../../tests/support/suite_guard.rs`).

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
