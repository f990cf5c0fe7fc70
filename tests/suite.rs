//! The `onde` crate's integration tests, one binary (see `support/suite_guard.rs`).

mod any_batch;
mod api_graphs_verify;
mod api_semantics;
mod attention_blocked;
mod batch_norm;
mod bench_parity;
mod checkpoints;
mod common;
mod conv_grad_compiled;
mod course_examples;
mod course_tensor_slide;
mod dropout;
mod errors;
mod functional;
mod grad_rules;
mod gradcheck_props;
mod jit_differential;
mod jit_native_ops;
mod jit_scan;
mod jit_scatter;
mod jit_state;
mod losses;
mod modules;
mod newton;
mod optimizers;
mod param_groups;
mod parity_torch;
mod parity_torch_layers;
mod parity_torch_semantics;
mod recurrent;
mod recurrent_parity;
mod scan_grad;
mod scan_unrolled;
mod semantics_corners;
mod semantics_errors;
mod signal_example;
mod simplify_exact;
mod summary;
mod train_step_props;
mod w1_parity;

#[path = "support/suite_guard.rs"]
mod suite_guard;

/// Every `.rs` file beside this one is a module of this binary (or a file that runs
/// alone, as its own `[[test]]`).
#[test]
fn every_test_file_is_in_the_suite() {
    suite_guard::assert_every_file_in_suite(env!("CARGO_MANIFEST_DIR"), &["attention_memory.rs"]);
}
