//! The code generator's integration tests, one binary (see
//! `../../tests/support/suite_guard.rs`); `no_alloc.rs` and `compile_drop.rs` measure
//! the process (allocation counts, resident memory) and are their own `[[test]]`s.

mod column_reduction;
mod column_sum_native;
mod common;
mod concat_in_place;
mod concurrent_scans;
mod conv_epilogue;
mod elementwise_unroll;
mod engine;
mod epilogue;
mod fed_outputs;
mod golden_fusion;
mod kernel_identities;
mod math_ulp;
mod memory_plan;
mod native_kernels;
mod native_softmax;
mod operand_layout;
mod packed_gemm;
mod producer_merge;
mod profile;
mod row_reduction;
mod rows_epilogue;
mod scaled_softmax;
mod scan_carries;
mod sibling_reduction;
mod softmax_backward;
mod threads;

#[path = "../../tests/support/suite_guard.rs"]
mod suite_guard;

/// Every `.rs` file beside this one is a module of this binary (or a file that runs
/// alone, as its own `[[test]]`).
#[test]
fn every_test_file_is_in_the_suite() {
    suite_guard::assert_every_file_in_suite(
        env!("CARGO_MANIFEST_DIR"),
        &["no_alloc.rs", "compile_drop.rs"],
    );
}
