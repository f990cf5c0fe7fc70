//! Matmul epilogue fusion (`exec::epilogue`): a kernel consuming the product row by
//! row runs on each block of rows after the prepacked GEMM writes them. Fused and
//! unfused runs must be bit-identical (the same GEMM and kernel arithmetic per
//! element), shown in the plan dump, and refused where the blocks would race.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};

const M: usize = 50; // not a multiple of the 24-row block
const K: usize = 33;
const N: usize = 70;

fn graph(extra_output: bool) -> String {
    let outs = if extra_output { "%7, %6" } else { "%7" };
    format!(
        r#"graph {{
  %0: f32[{M},{K}] = input "x"
  %1: f32[{K},{N}] = input "w"
  %2: f32[{N}] = input "b"
  %3: f32[{M},{N}] = matmul %0, %1
  %4: f32[{M},{N}] = expand %2 shape=[{M},{N}]
  %5: f32[{M},{N}] = add %3, %4
  %6: f32[{M},{N}] = sigmoid %5
  %8: f32[{N},{N}] = input "w2"
  %9: f32[{M},{N}] = matmul %6, %8
  %10: f32[{M},{N}] = tanh %9
  %7: f32[{M}] = reduce_sum %10 axes=[1] keepdim=false
  outputs {outs}
}}"#
    )
}

fn feeds() -> Vec<(&'static str, Array)> {
    let v = |n: usize, s: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * s % 97) as f32 - 48.0) * 0.01)
            .collect()
    };
    vec![
        ("x", Array::f32([M, K], v(M * K, 7)).unwrap()),
        ("w", Array::f32([K, N], v(K * N, 11)).unwrap()),
        ("b", Array::f32([N], v(N, 5)).unwrap()),
        ("w2", Array::f32([N, N], v(N * N, 3)).unwrap()),
    ]
}

/// Calls of step `i` in a profile table.
fn calls(profile: &str, step: usize) -> u64 {
    profile
        .lines()
        .skip(1)
        .find_map(|l| {
            let mut w = l.split_whitespace();
            if w.next()? != step.to_string() {
                return None;
            }
            w.next()?.parse().ok()
        })
        .expect("step in profile")
}

fn run(src: &str, epilogues: bool) -> (Vec<Array>, String) {
    let g = parse_graph(src).unwrap();
    let mut exe = Executable::compile(
        &g,
        CompileOptions {
            epilogues,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    let f = feeds();
    let refs: Vec<(&str, &Array)> = f.iter().map(|(n, a)| (*n, a)).collect();
    let mut out = Vec::new();
    exe.set_profiling(true);
    // Two versions: the packed operands are rebuilt once in between.
    for version in [1, 1, 2] {
        exe.run_in_place_versioned(&refs, version, &["w", "w2"])
            .unwrap();
        out = (0..g.outputs().len())
            .map(|i| exe.output_array(i))
            .collect();
    }
    let profile = exe.profile().unwrap();
    let dump = exe.dump_fused();
    // A kernel fused as an epilogue never runs as a step of its own (it ran inside
    // the product, on the prepacked path); every other kernel ran once per run.
    let fused = fused_steps(&dump);
    for (i, st) in exe.plan().steps.iter().enumerate() {
        if matches!(st, onde_codegen::plan::Step::Kernel(_)) {
            let epilogue =
                i > 0 && fused.contains(&(i - 1)) && onde_codegen::native::packed::available();
            let want = if epilogue { 0 } else { 3 };
            assert_eq!(calls(&profile, i), want, "step {i}\n{profile}\n{dump}");
        }
    }
    (out, dump)
}

/// The matmul steps whose next step runs as their epilogue, from the plan dump.
fn fused_steps(dump: &str) -> Vec<usize> {
    let lines: Vec<&str> = dump.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[1].contains("// epilogue: step"))
        .filter_map(|w| w[0].strip_prefix("step ")?.split(':').next()?.parse().ok())
        .collect()
}

#[test]
fn fused_epilogues_equal_unfused_bit_for_bit() {
    let src = graph(false);
    let (fused, dump) = run(&src, true);
    let (plain, plain_dump) = run(&src, false);
    assert_eq!(fused, plain);
    assert!(!plain_dump.contains("epilogue:"));
    if onde_codegen::native::packed::available() {
        // The bias + sigmoid (written in place over the product) is fused; the tanh +
        // row sum after the second product is not: its sum is a graph output.
        assert_eq!(fused_steps(&dump), [0], "{dump}");
    }
    // And both agree with the reference interpreter (the packed GEMM reorders nothing
    // but may round differently from the interpreter's f64 accumulation).
    let g = parse_graph(&src).unwrap();
    let f: std::collections::HashMap<String, Array> = feeds()
        .into_iter()
        .map(|(n, a)| (n.to_string(), a))
        .collect();
    let want = onde_runtime::run(&g, &f).unwrap();
    for (p, q) in fused[0].to_f64_vec().iter().zip(want[0].to_f64_vec()) {
        assert!((p - q).abs() <= 1e-4 * q.abs().max(1.0), "{p} vs {q}");
    }
}

#[test]
fn a_kernel_writing_a_graph_output_is_not_fused() {
    // The sigmoid is also an output (a bound state could point it anywhere), and so is
    // the row sum: both products keep their separate kernel pass.
    let (fused, dump) = run(&graph(true), true);
    let (plain, _) = run(&graph(true), false);
    assert_eq!(fused, plain);
    assert!(fused_steps(&dump).is_empty(), "{dump}");
}
