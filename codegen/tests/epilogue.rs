//! Matmul epilogue fusion (`exec::epilogue`): a Linear layer's bias + activation
//! kernel is applied by the prepacked GEMM to its output tiles in registers. Fused and
//! unfused runs must be bit-identical (the same GEMM and kernel arithmetic per
//! element), shown in the plan dump, and refused where the product is needed or the
//! output could alias what the GEMM still reads.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};

use crate::common;
use common::calls;

const M: usize = 50; // not a multiple of the 12-row tile
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
                i > 0 && fused.contains(&(i - 1)) && onde_codegen::native::prepacked::available();
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
    if onde_codegen::native::prepacked::available() {
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

/// `act(x @ w + b)` (or without the bias) for one activation, `n` columns.
fn layer(act: &str, bias: bool, n: usize) -> String {
    let (m, k) = (29, 40);
    let mut lines = vec![
        format!("  %0: f32[{m},{k}] = input \"x\""),
        format!("  %1: f32[{k},{n}] = input \"w\""),
        format!("  %2: f32[{m},{n}] = matmul %0, %1"),
    ];
    let mut last = 2;
    if bias {
        lines.push(format!("  %3: f32[{n}] = input \"b\""));
        lines.push(format!("  %4: f32[{m},{n}] = expand %3 shape=[{m},{n}]"));
        lines.push(format!("  %5: f32[{m},{n}] = add %2, %4"));
        last = 5;
    }
    if !act.is_empty() {
        lines.push(format!("  %6: f32[{m},{n}] = {act} %{last}"));
        last = 6;
    }
    // A second product keeps the layer's output internal (not a graph output).
    lines.push(format!("  %7: f32[{n},3] = input \"w2\""));
    lines.push(format!("  %8: f32[{m},3] = matmul %{last}, %7"));
    format!("graph {{\n{}\n  outputs %8\n}}", lines.join("\n"))
}

#[test]
fn register_epilogues_equal_the_separate_kernel_bit_for_bit() {
    let (m, k) = (29usize, 40usize);
    let v = |n: usize, s: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * s % 89) as f32 - 44.0) * 0.05)
            .collect()
    };
    for n in [10usize, 16, 33, 70] {
        for act in ["sigmoid", "tanh", "relu", ""] {
            for bias in [true, false] {
                if act.is_empty() && !bias {
                    continue; // a bare product has no epilogue kernel
                }
                let src = layer(act, bias, n);
                let g = parse_graph(&src).unwrap();
                let feeds = [
                    ("x", Array::f32([m, k], v(m * k, 7)).unwrap()),
                    ("w", Array::f32([k, n], v(k * n, 11)).unwrap()),
                    ("b", Array::f32([n], v(n, 5)).unwrap()),
                    ("w2", Array::f32([n, 3], v(n * 3, 3)).unwrap()),
                ];
                let refs: Vec<(&str, &Array)> = feeds
                    .iter()
                    .filter(|(name, _)| bias || *name != "b")
                    .map(|(nm, a)| (*nm, a))
                    .collect();
                let mut outs = Vec::new();
                let mut dumps = Vec::new();
                for epilogues in [true, false] {
                    let mut exe = Executable::compile(
                        &g,
                        CompileOptions {
                            epilogues,
                            ..CompileOptions::default()
                        },
                    )
                    .unwrap();
                    for version in [1, 1] {
                        exe.run_in_place_versioned(&refs, version, &["w", "w2"])
                            .unwrap();
                    }
                    outs.push(exe.output_array(0));
                    dumps.push(exe.dump_fused());
                }
                let what = format!("act {act:?} bias {bias} n {n}");
                assert_eq!(outs[0], outs[1], "{what}");
                if onde_codegen::native::prepacked::available() {
                    assert!(dumps[0].contains("in registers"), "{what}\n{}", dumps[0]);
                }
            }
        }
    }
}

#[test]
fn a_product_read_elsewhere_is_not_folded_into_registers() {
    // The raw product is also read by the last kernel: it must be stored, so the
    // sigmoid runs as its own step, not in the GEMM's registers.
    let src = r#"graph {
  %0: f32[20,30] = input "x"
  %1: f32[30,40] = input "w"
  %2: f32[20,40] = matmul %0, %1
  %3: f32[20,40] = sigmoid %2
  %4: f32[40,5] = input "w2"
  %5: f32[20,5] = matmul %3, %4
  %6: f32[20] = reduce_sum %2 axes=[1] keepdim=false
  outputs %5, %6
}"#;
    let g = parse_graph(src).unwrap();
    let exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let dump = exe.dump_fused();
    assert!(!dump.contains("in registers"), "{dump}");
}

/// Two products of one input (the two directions of a bidirectional layer): each
/// one's bias, added over a `[T, B, n]` reshape of the `[T·B, n]` product, is its
/// register epilogue — the planner moves the second product down next to its bias
/// kernel (`plan::merge::sink_products`), where topological order had put both
/// products first (the second bias depends on the first layer's result, as the second
/// direction's scan comes after the first's). Bit-identical to the unfused plan, close to the interpreter.
#[test]
fn each_product_is_moved_next_to_its_bias_kernel() {
    let (t, b, k, n) = (6usize, 5usize, 8usize, 12usize);
    let m = t * b;
    let src = format!(
        r#"graph {{
  %0: f32[{t},{b},{k}] = input "x"
  %1: f32[{m},{k}] = reshape %0 shape=[{m},{k}]
  %2: f32[{k},{n}] = input "w1"
  %3: f32[{k},{n}] = input "w2"
  %4: f32[{m},{n}] = matmul %1, %2
  %5: f32[{m},{n}] = matmul %1, %3
  %6: f32[{t},{b},{n}] = reshape %4 shape=[{t},{b},{n}]
  %7: f32[{t},{b},{n}] = reshape %5 shape=[{t},{b},{n}]
  %8: f32[{n}] = input "b1"
  %9: f32[{n}] = input "b2"
  %10: f32[{t},{b},{n}] = add %6, %8
  %12: f32[{m},{n}] = reshape %10 shape=[{m},{n}]
  %14: f32[{n},3] = input "w3"
  %15: f32[{m},3] = matmul %12, %14
  %17: f32[] = reduce_sum %15 axes=[0,1] keepdim=false
  %18: f32[{n}] = add %9, %17
  %19: f32[{n}] = tanh %18
  %11: f32[{t},{b},{n}] = add %7, %19
  %13: f32[{m},{n}] = reshape %11 shape=[{m},{n}]
  %16: f32[{m},3] = matmul %13, %14
  outputs %15, %16
}}"#
    );
    let g = parse_graph(&src).unwrap();
    let v = |len: usize, s: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * s % 89) as f32 - 44.0) * 0.05)
            .collect()
    };
    let feeds = [
        ("x", Array::f32([t, b, k], v(m * k, 7)).unwrap()),
        ("w1", Array::f32([k, n], v(k * n, 11)).unwrap()),
        ("w2", Array::f32([k, n], v(k * n, 13)).unwrap()),
        ("b1", Array::f32([n], v(n, 5)).unwrap()),
        ("b2", Array::f32([n], v(n, 3)).unwrap()),
        ("w3", Array::f32([n, 3], v(n * 3, 17)).unwrap()),
    ];
    let refs: Vec<(&str, &Array)> = feeds.iter().map(|(nm, a)| (*nm, a)).collect();
    let mut outs = Vec::new();
    for epilogues in [true, false] {
        let mut exe = Executable::compile(
            &g,
            CompileOptions {
                epilogues,
                ..CompileOptions::default()
            },
        )
        .unwrap();
        let dump = exe.dump_fused();
        if epilogues && onde_codegen::native::prepacked::available() {
            assert_eq!(fused_steps(&dump).len(), 2, "{dump}");
        }
        exe.run_in_place_versioned(&refs, 1, &["w1", "w2", "w3"])
            .unwrap();
        outs.push((0..2).map(|i| exe.output_array(i)).collect::<Vec<_>>());
    }
    assert_eq!(outs[0], outs[1]);
    let f: std::collections::HashMap<String, Array> = feeds
        .iter()
        .map(|(nm, a)| (nm.to_string(), a.clone()))
        .collect();
    let want = onde_runtime::run(&g, &f).unwrap();
    for (got, want) in outs[0].iter().zip(&want) {
        for (p, q) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
            assert!((p - q).abs() <= 1e-4 * q.abs().max(1.0), "{p} vs {q}");
        }
    }
}

/// `sigmoid(x·Wᵀ + b)` with `W` in PyTorch's `[out, in]` layout (a transposed view
/// `transposed`) or already `[in, out]`, kept internal by a second product.
fn torch_layer(transposed: bool) -> String {
    let (m, k, n) = (64, 40, 70);
    let (w_ty, w_use) = if transposed {
        (
            format!("f32[{n},{k}]"),
            format!(
                "  %9: f32[{k},{n}] = permute %1 perm=[1,0]\n  %2: f32[{m},{n}] = matmul %0, %9"
            ),
        )
    } else {
        (
            format!("f32[{k},{n}]"),
            format!("  %2: f32[{m},{n}] = matmul %0, %1"),
        )
    };
    format!(
        "graph {{
  %0: f32[{m},{k}] = input \"x\"
  %1: {w_ty} = input \"w\"
{w_use}
  %3: f32[{n}] = input \"b\"
  %4: f32[{m},{n}] = expand %3 shape=[{m},{n}]
  %5: f32[{m},{n}] = add %2, %4
  %6: f32[{m},{n}] = sigmoid %5
  %7: f32[{n},3] = input \"w2\"
  %8: f32[{m},3] = matmul %6, %7
  outputs %8
}}"
    )
}

/// A training step's plain runs (weights change every run): a transposed weight is
/// packed at every run and the bias + sigmoid kernel runs as the product's epilogue —
/// on 16 lanes only (where it measured faster than the library). New weights are
/// always used (nothing stale is reused), the values equal a versioned run's bit for
/// bit and the interpreter's within rounding; elsewhere the kernel runs as a step.
#[test]
fn plain_runs_pack_transposed_weights_at_every_run() {
    use onde_codegen::IsaLevel;
    let (m, k, n) = (64usize, 40usize, 70usize);
    let v = |len: usize, s: usize, scale: f32| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * s % 89) as f32 - 44.0) * scale)
            .collect()
    };
    let sixteen = onde_codegen::IsaLevel::detect() >= IsaLevel::Avx512
        && onde_codegen::native::prepacked::available();
    for transposed in [true, false] {
        let src = torch_layer(transposed);
        let g = parse_graph(&src).unwrap();
        let w_shape = if transposed { [n, k] } else { [k, n] };
        for isa in [IsaLevel::Avx512, IsaLevel::Avx2] {
            let options = CompileOptions {
                isa,
                ..CompileOptions::default()
            };
            let mut exe = Executable::compile(&g, options).unwrap();
            let mut versioned = Executable::compile(&g, options).unwrap();
            exe.set_profiling(true);
            let x = Array::f32([m, k], v(m * k, 7, 0.05)).unwrap();
            let b = Array::f32([n], v(n, 5, 0.05)).unwrap();
            let w2 = Array::f32([n, 3], v(n * 3, 3, 0.05)).unwrap();
            for (run, scale) in [0.05f32, -0.03, 0.02].into_iter().enumerate() {
                let w = Array::f32(w_shape, v(k * n, 11 + run, scale)).unwrap();
                let feeds = [("x", &x), ("w", &w), ("b", &b), ("w2", &w2)];
                let got = exe.run(&feeds).unwrap().remove(0);
                versioned
                    .run_in_place_versioned(&feeds, run as u64, &["w", "w2"])
                    .unwrap();
                let what = format!("transposed {transposed}, {isa:?}, run {run}");
                let taken = transposed && isa == IsaLevel::Avx512 && sixteen;
                if taken {
                    assert_eq!(got, versioned.output_array(0), "{what}");
                }
                let named: std::collections::HashMap<String, Array> = feeds
                    .iter()
                    .map(|(nm, a)| (nm.to_string(), (*a).clone()))
                    .collect();
                let want = onde_runtime::run(&g, &named).unwrap().remove(0);
                for (p, q) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
                    assert!(
                        (p - q).abs() <= 1e-5 * q.abs().max(1.0),
                        "{what}: {p} vs {q}"
                    );
                }
            }
            // The bias + sigmoid kernel: folded into every plain run's product where
            // taken, else a step of its own at every run.
            let profile = exe.profile().unwrap();
            let kernel = exe
                .plan()
                .steps
                .iter()
                .position(|s| matches!(s, onde_codegen::plan::Step::Kernel(_)))
                .unwrap();
            let taken = transposed && isa == IsaLevel::Avx512 && sixteen;
            let want = if taken { 0 } else { 3 };
            assert_eq!(
                calls(&profile, kernel),
                want,
                "transposed {transposed}, {isa:?}\n{profile}"
            );
        }
    }
}

/// A bias-only Linear layer over many rows (`x·Wᵀ + b`, 600 rows: above what the
/// one-panel kernel and per-run packing take) in plain runs: where the product goes to the `gemm` crate (the kernel's level
/// is its own, one thread), the bias is written to the destination and the GEMM adds
/// the product onto it, so the bias kernel never runs as a step; elsewhere it does.
/// Either way the bits equal a compile without epilogues, for new weights every run.
#[test]
fn library_products_add_onto_a_preset_bias_bit_for_bit() {
    use onde_codegen::IsaLevel;
    let (m, k, n) = (600usize, 64usize, 48usize);
    let src = format!(
        "graph {{
  %0: f32[{m},{k}] = input \"x\"
  %1: f32[{n},{k}] = input \"w\"
  %2: f32[{k},{n}] = permute %1 perm=[1,0]
  %3: f32[{m},{n}] = matmul %0, %2
  %4: f32[{n}] = input \"b\"
  %5: f32[{m},{n}] = expand %4 shape=[{m},{n}]
  %6: f32[{m},{n}] = add %3, %5
  %7: f32[{n},3] = input \"w2\"
  %8: f32[{m},3] = matmul %6, %7
  outputs %8
}}"
    );
    let g = parse_graph(&src).unwrap();
    let v = |len: usize, s: usize, scale: f32| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * s % 89) as f32 - 44.0) * scale)
            .collect()
    };
    for isa in IsaLevel::ALL {
        let mut exe = common::compile_with(&g, isa, true, 1);
        let mut plain = common::compile_with(&g, isa, false, 1);
        exe.set_profiling(true);
        let x = Array::f32([m, k], v(m * k, 7, 0.05)).unwrap();
        let b = Array::f32([n], v(n, 5, 0.5)).unwrap();
        let w2 = Array::f32([n, 3], v(n * 3, 3, 0.05)).unwrap();
        for (run, scale) in [0.05f32, -0.03].into_iter().enumerate() {
            let w = Array::f32([n, k], v(k * n, 11 + run, scale)).unwrap();
            let feeds = [("x", &x), ("w", &w), ("b", &b), ("w2", &w2)];
            let got = exe.run(&feeds).unwrap().remove(0);
            let want = plain.run(&feeds).unwrap().remove(0);
            assert_eq!(got, want, "{isa:?}, run {run}");
            let named: std::collections::HashMap<String, Array> = feeds
                .iter()
                .map(|(nm, a)| (nm.to_string(), (*a).clone()))
                .collect();
            let oracle = onde_runtime::run(&g, &named).unwrap().remove(0);
            common::assert_close(&got, &oracle, 1e-4, &format!("{isa:?}"));
        }
        let kernel =
            |s: &onde_codegen::plan::Step| matches!(s, onde_codegen::plan::Step::Kernel(_));
        let taken = onde_codegen::native::matmul::gemm_crate_at(isa);
        let want = if taken { 0 } else { 2 };
        assert_eq!(common::step_calls(&exe, kernel), want, "{isa:?}");
    }
}

/// Three projections of one input, each with its own bias, in the order a model
/// writes them (the three products first, then the three bias adds — W5's `q`, `k`,
/// `v`): each product is moved next to its bias kernel before kernels are merged
/// (`plan::merge::sink_products_to_bias_kernels`), so the three adds stay three
/// epilogues instead of one merged kernel that no product can take. Bit-identical to
/// the unfused plan, close to the interpreter.
#[test]
fn sibling_bias_kernels_stay_the_epilogues_of_their_products() {
    let (m, k, n) = (40usize, 16usize, 24usize);
    let src = format!(
        r#"graph {{
  %0: f32[{m},{k}] = input "x"
  %1: f32[{k},{n}] = input "wq"
  %2: f32[{k},{n}] = input "wk"
  %3: f32[{k},{n}] = input "wv"
  %4: f32[{n}] = input "bq"
  %5: f32[{n}] = input "bk"
  %6: f32[{n}] = input "bv"
  %7: f32[{m},{n}] = matmul %0, %1
  %8: f32[{m},{n}] = matmul %0, %2
  %9: f32[{m},{n}] = matmul %0, %3
  %10: f32[{m},{n}] = add %7, %4
  %11: f32[{m},{n}] = add %8, %5
  %12: f32[{m},{n}] = add %9, %6
  %13: f32[{n},{m}] = permute %11 perm=[1,0]
  %14: f32[{m},{m}] = matmul %10, %13
  %15: f32[{m},{n}] = matmul %14, %12
  outputs %15
}}"#
    );
    let g = parse_graph(&src).unwrap();
    let v = |len: usize, s: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * s % 89) as f32 - 44.0) * 0.02)
            .collect()
    };
    let feeds = [
        ("x", Array::f32([m, k], v(m * k, 7)).unwrap()),
        ("wq", Array::f32([k, n], v(k * n, 11)).unwrap()),
        ("wk", Array::f32([k, n], v(k * n, 13)).unwrap()),
        ("wv", Array::f32([k, n], v(k * n, 19)).unwrap()),
        ("bq", Array::f32([n], v(n, 5)).unwrap()),
        ("bk", Array::f32([n], v(n, 3)).unwrap()),
        ("bv", Array::f32([n], v(n, 23)).unwrap()),
    ];
    let refs: Vec<(&str, &Array)> = feeds.iter().map(|(nm, a)| (*nm, a)).collect();
    let mut outs = Vec::new();
    for epilogues in [true, false] {
        let mut exe = Executable::compile(
            &g,
            CompileOptions {
                epilogues,
                ..CompileOptions::default()
            },
        )
        .unwrap();
        let dump = exe.dump_fused();
        if epilogues {
            let bias = dump.matches("(bias added, activation None)").count();
            assert_eq!(bias, 3, "{dump}");
        }
        outs.push(exe.run(&refs).unwrap().remove(0));
    }
    assert_eq!(outs[0], outs[1]);
    let f: std::collections::HashMap<String, Array> = feeds
        .iter()
        .map(|(nm, a)| (nm.to_string(), a.clone()))
        .collect();
    let want = onde_runtime::run(&g, &f).unwrap().remove(0);
    for (p, q) in outs[0].to_f64_vec().iter().zip(want.to_f64_vec()) {
        assert!((p - q).abs() <= 1e-4 * q.abs().max(1.0), "{p} vs {q}");
    }
}
