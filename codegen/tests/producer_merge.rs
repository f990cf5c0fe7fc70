//! Elementwise work and reductions over the same space share one loop (`plan::merge`):
//! a kernel reading what the previous one stores element for element runs in its loop,
//! and an elementwise kernel joins a reducing one of any axes. A batch norm
//! backward's `g` is stored and summed twice in one pass, with the results of the
//! reference interpreter, the same bits with one or two threads, at every ISA level.

use crate::common::isa_levels;
use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};
use std::collections::HashMap;

/// `g = where(x > 0, dy·x, dy + x)` over `[8, 16, 300]`, stored (a graph output), and
/// the per-channel sums `Σ g` and `Σ g·x` (axes 0 and 2); nothing in `g` is constant
/// along the sums, so the optimiser leaves them as they are.
const BN_BACKWARD: &str = r#"graph {
  %0: f32[8,16,300] = input "x"
  %1: f32[8,16,300] = input "dy"
  %3: f32[] = constant f32[] [0.0]
  %4: f32[8,16,300] = expand %3 shape=[8,16,300]
  %5: bool[8,16,300] = gt %0, %4
  %6: f32[8,16,300] = mul %1, %0
  %7: f32[8,16,300] = add %1, %0
  %8: f32[8,16,300] = where %5, %6, %7
  %9: f32[16] = reduce_sum %8 axes=[0,2] keepdim=false
  %10: f32[8,16,300] = mul %8, %0
  %11: f32[16] = reduce_sum %10 axes=[0,2] keepdim=false
  outputs %8, %9, %11
}"#;

/// `g` also feeds a matrix product, so it is stored; the sums read it back from that
/// buffer unless they run in the loop that stores it.
const STORED_THEN_SUMMED: &str = r#"graph {
  %0: f32[16,300] = input "x"
  %1: f32[16,300] = input "dy"
  %2: f32[300,8] = input "w"
  %3: f32[] = constant f32[] [0.0]
  %4: f32[16,300] = expand %3 shape=[16,300]
  %5: bool[16,300] = gt %0, %4
  %6: f32[16,300] = mul %1, %0
  %7: f32[16,300] = add %1, %0
  %8: f32[16,300] = where %5, %6, %7
  %9: f32[16,8] = matmul %8, %2
  %10: f32[16] = reduce_sum %8 axes=[1] keepdim=false
  %11: f32[16,300] = mul %8, %0
  %12: f32[16] = reduce_sum %11 axes=[1] keepdim=false
  outputs %9, %10, %12
}"#;

/// The sum reads the stored value shifted by one step: not element for element, so it
/// keeps its own kernel.
const SHIFTED: &str = r#"graph {
  %0: f32[16,301] = input "x"
  %1: f32[16,301] = tanh %0
  %2: f32[16,300] = slice %1 axes=[0:16:1, 1:301:1]
  %3: f32[16] = reduce_sum %2 axes=[1] keepdim=false
  outputs %1, %3
}"#;

fn feeds(g: &onde_ir::Graph) -> HashMap<String, Array> {
    g.inputs()
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let t = g.value_type(v);
            let n = t.shape.numel();
            let data = (0..n)
                .map(|i| (((i * 37 + k * 11) % 101) as f32 / 101.0 - 0.45) * 2.0)
                .collect();
            let name = g.input_name(v).unwrap().to_string();
            (name, Array::f32(t.shape.dims().to_vec(), data).unwrap())
        })
        .collect()
}

fn kernels(dump: &str) -> usize {
    dump.lines().filter(|l| l.contains(": kernel ")).count()
}

/// Compiles `src` at every ISA level (one thread), checks its fused plan with
/// `check(isa, dump)`, and its outputs against the reference interpreter's to `tol`.
fn at_every_level(src: &str, tol: f64, check: impl Fn(onde_codegen::IsaLevel, &str)) {
    let g = parse_graph(src).unwrap();
    let map = feeds(&g);
    let want = onde_runtime::run(&g, &map).unwrap();
    let refs: Vec<(&str, &Array)> = map.iter().map(|(n, a)| (n.as_str(), a)).collect();
    for isa in isa_levels() {
        let opts = CompileOptions {
            isa,
            ..CompileOptions::default()
        };
        let mut exe = Executable::compile(&g, opts).unwrap();
        check(isa, &exe.dump_fused());
        let got = exe.run(&refs).unwrap();
        for (a, w) in got.iter().zip(&want) {
            for (p, q) in a.to_f64_vec().iter().zip(w.to_f64_vec()) {
                assert!(
                    (p - q).abs() <= tol * (1.0 + q.abs()),
                    "{isa:?}: {p} vs {q}"
                );
            }
        }
    }
}

#[test]
fn a_batch_norm_backward_stores_and_sums_g_in_one_pass() {
    let g = parse_graph(BN_BACKWARD).unwrap();
    let map = feeds(&g);
    let want = onde_runtime::run(&g, &map).unwrap();
    let refs: Vec<(&str, &Array)> = map.iter().map(|(n, a)| (n.as_str(), a)).collect();
    for isa in isa_levels() {
        let mut bits: Vec<Vec<Vec<u32>>> = Vec::new();
        for threads in [1, 2] {
            let opts = CompileOptions {
                isa,
                threads,
                ..CompileOptions::default()
            };
            let mut exe = Executable::compile(&g, opts).unwrap();
            let dump = exe.dump_fused();
            assert_eq!(kernels(&dump), 1, "{dump}");
            // Two sums and the stored `g`.
            assert!(
                dump.contains("reduce_sum axes=[0, 2] into store 0, 1"),
                "{dump}"
            );
            assert_eq!(dump.matches("    store buf").count(), 3, "{dump}");
            let got = exe.run(&refs).unwrap();
            for (a, w) in got.iter().zip(&want) {
                for (p, q) in a.to_f64_vec().iter().zip(w.to_f64_vec()) {
                    assert!(
                        (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                        "{isa:?}: {p} vs {q}"
                    );
                }
            }
            bits.push(
                got.iter()
                    .map(|a| {
                        a.to_f64_vec()
                            .iter()
                            .map(|&v| (v as f32).to_bits())
                            .collect()
                    })
                    .collect(),
            );
        }
        // Per-channel sums split over channels: no reassociation between thread counts.
        assert_eq!(bits[0], bits[1], "{isa:?}");
    }
}

#[test]
fn sums_of_a_stored_value_run_in_the_loop_that_stores_it() {
    at_every_level(STORED_THEN_SUMMED, 1e-4, |_, dump| {
        assert_eq!(kernels(dump), 1, "{dump}");
        assert!(dump.contains("step 1: matmul"), "{dump}");
    });
}

#[test]
fn a_shifted_read_keeps_its_own_kernel() {
    at_every_level(SHIFTED, 1e-5, |_, dump| {
        assert_eq!(kernels(dump), 2, "{dump}");
    });
}

/// `exp(x)` is an output and its row sums another: on the tile engine (rows of 256,
/// at least a tile), the exponentials are stored and summed in one loop.
const EXP_AND_ROW_SUMS: &str = r#"graph {
  %0: f32[64,256] = input "x"
  %1: f32[64,256] = exp %0
  %2: f32[64] = reduce_sum %1 axes=[1] keepdim=false
  outputs %1, %2
}"#;

#[test]
fn the_engine_stores_and_sums_in_one_loop() {
    at_every_level(EXP_AND_ROW_SUMS, 1e-5, |isa, dump| {
        assert_eq!(kernels(dump), 1, "{dump}");
        if isa != onde_codegen::IsaLevel::Baseline {
            assert!(dump.contains("runs on the engine"), "{isa:?}: {dump}");
        }
    });
}
