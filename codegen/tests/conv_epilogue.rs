//! Conv epilogues (`exec::epilogue`, `native::conv_then`): a convolution's elementwise
//! consumer kernel, or one summing rows (`plan::row_sums`), runs on each block of
//! output rows as soon as the convolution wrote it. The kernel is the same compiled code called on sub-ranges, so fused and unfused
//! runs must be bit-identical, with 1 and 2 threads, for both convolution algorithms,
//! conv1d and conv2d, f32 and f64, kernels on Cranelift and on the AVX-512 engine;
//! both agree with the reference interpreter. It must be refused (or skipped at run
//! time) where interleaving would read or overwrite data too early.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};
use std::collections::HashMap;

use crate::common;
use common::calls;

/// Deterministic values in about [-1, 1).
fn values(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f64 / 1001.5) - 1.0)
        .collect()
}

/// Feeds for every input of `src`, from its declared types (`%i: f32[2,3] = input "x"`).
fn feeds(src: &str) -> Vec<(String, Array)> {
    src.lines()
        .filter(|l| l.contains("= input \""))
        .enumerate()
        .map(|(i, l)| {
            let ty = l
                .split(':')
                .nth(1)
                .unwrap()
                .split('=')
                .next()
                .unwrap()
                .trim();
            let (dt, dims) = ty.split_once('[').unwrap();
            let dims: Vec<usize> = dims
                .trim_end_matches(']')
                .split(',')
                .map(|d| d.trim().parse().unwrap())
                .collect();
            let dtype = match dt {
                "f32" => onde_ir::DType::F32,
                "f64" => onde_ir::DType::F64,
                other => panic!("dtype {other}"),
            };
            let name = l.split('"').nth(1).unwrap().to_string();
            let n: usize = dims.iter().product();
            (
                name,
                Array::from_f64(dtype, dims, &values(n, i + 1)).unwrap(),
            )
        })
        .collect()
}

struct Run {
    outputs: Vec<Array>,
    dump: String,
    profile: String,
}

fn run(src: &str, epilogues: bool, threads: usize) -> Run {
    let g = parse_graph(src).unwrap();
    let mut exe = Executable::compile(
        &g,
        CompileOptions {
            epilogues,
            threads,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    let f = feeds(src);
    let refs: Vec<(&str, &Array)> = f.iter().map(|(n, a)| (n.as_str(), a)).collect();
    exe.set_profiling(true);
    // Twice: the second run reuses every buffer (in-place outputs included).
    exe.run(&refs).unwrap();
    let outputs = exe.run(&refs).unwrap();
    Run {
        outputs,
        dump: exe.dump_fused(),
        profile: exe.profile().unwrap(),
    }
}

/// Steps whose consumer ran as their epilogue, from the dump.
fn fused_steps(dump: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut step: Option<usize> = None;
    for l in dump.lines() {
        if let Some(rest) = l.strip_prefix("step ") {
            step = rest.split(':').next().and_then(|s| s.parse().ok());
        }
        if l.contains("// epilogue: step") && l.contains("block of output rows") {
            out.extend(step);
        }
    }
    out
}

fn bits(a: &Array) -> Vec<u64> {
    match (a.as_f32(), a.as_f64()) {
        (Some(s), _) => s.iter().map(|x| u64::from(x.to_bits())).collect(),
        (_, Some(s)) => s.iter().map(|x| x.to_bits()).collect(),
        _ => panic!("float output expected"),
    }
}

/// Fused (1 and 2 threads) equals unfused bit for bit, the expected steps are fused
/// and their kernels never ran on their own, and the interpreter agrees.
fn check(src: &str, expect_fused: &[usize], tol: f64) {
    let plain = run(src, false, 1);
    assert!(fused_steps(&plain.dump).is_empty(), "{}", plain.dump);
    for threads in [1, 2] {
        let fused = run(src, true, threads);
        assert_eq!(
            fused_steps(&fused.dump),
            expect_fused,
            "threads {threads}:\n{}",
            fused.dump
        );
        for &s in expect_fused {
            assert_eq!(calls(&fused.profile, s + 1), 0, "{}", fused.profile);
        }
        for (i, (a, b)) in fused.outputs.iter().zip(&plain.outputs).enumerate() {
            assert_eq!(bits(a), bits(b), "output {i}, threads {threads}");
        }
    }
    let g = parse_graph(src).unwrap();
    let f: HashMap<String, Array> = feeds(src).into_iter().collect();
    let want = onde_runtime::run(&g, &f).unwrap();
    for (got, want) in plain.outputs.iter().zip(&want) {
        for (p, q) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
            assert!((p - q).abs() <= tol * q.abs().max(1.0), "{p} vs {q}");
        }
    }
}

/// W2's first layer: dense conv1d (im2col + GEMM), bias, batch norm in eval form
/// (per-channel scale and shift), ReLU, written in place over the convolution's output.
/// `b` batch entries of 32 channels × `o` positions.
fn conv_bn_relu(b: usize, o: usize) -> String {
    let l = 4 * o;
    format!(
        r#"graph {{
  %0: f32[{b},1,{l}] = input "x"
  %1: f32[32,1,11] = input "w"
  %2: f32[32] = input "bias"
  %3: f32[32] = input "scale"
  %4: f32[32] = input "shift"
  %5: f32[{b},32,{o}] = conv %0, %1 stride=[4] padding=[(5,5)] dilation=[1] groups=1
  %6: f32[32,1] = reshape %2 shape=[32,1]
  %7: f32[{b},32,{o}] = expand %6 shape=[{b},32,{o}]
  %8: f32[{b},32,{o}] = add %5, %7
  %9: f32[32,1] = reshape %3 shape=[32,1]
  %10: f32[{b},32,{o}] = expand %9 shape=[{b},32,{o}]
  %11: f32[{b},32,{o}] = mul %8, %10
  %12: f32[32,1] = reshape %4 shape=[32,1]
  %13: f32[{b},32,{o}] = expand %12 shape=[{b},32,{o}]
  %14: f32[{b},32,{o}] = add %11, %13
  %15: f32[{b},32,{o}] = relu %14
  outputs %15
}}"#
    )
}

#[test]
fn dense_conv1d_with_bias_batch_norm_and_relu() {
    // 4 × 32 × 2000 outputs of 11 taps: enough work for two threads.
    check(&conv_bn_relu(4, 2000), &[0], 1e-4);
}

#[test]
fn one_batch_entry_fuses_on_one_thread_and_not_on_two() {
    // A single (batch, group) block: with two threads there is one unit for two
    // threads, so the convolution splits its channels and the kernel runs on its own
    // (still bit-identical); with one thread it is fused. 32 × 8000 outputs of 11
    // taps: enough work for two threads.
    let src = conv_bn_relu(1, 8000);
    let plain = run(&src, false, 1);
    for threads in [1, 2] {
        let fused = run(&src, true, threads);
        assert_eq!(bits(&fused.outputs[0]), bits(&plain.outputs[0]));
        let kernel_calls = calls(&fused.profile, 1);
        assert_eq!(kernel_calls, if threads == 1 { 0 } else { 2 }, "{threads}");
    }
}

#[test]
fn depthwise_dilated_conv_with_bias_and_residual() {
    // W2's block: depthwise (direct kernel) with dilation 2, its bias, then 1×1
    // pointwise (GEMM on the input itself) with bias + ReLU + the residual; every
    // kernel is elementwise over its convolution's output and reads the residual
    // (another buffer) at the same element. 4 × 16 × 2000 outputs: 1.15 M and 2 M
    // multiply-adds, enough for both convolutions to split over two threads.
    let src = r#"graph {
  %0: f32[4,16,2000] = input "x"
  %1: f32[16,1,9] = input "dw"
  %2: f32[16] = input "b1"
  %3: f32[16,16,1] = input "pw"
  %4: f32[16] = input "b2"
  %5: f32[4,16,2000] = conv %0, %1 stride=[1] padding=[(8,8)] dilation=[2] groups=16
  %6: f32[16,1] = reshape %2 shape=[16,1]
  %7: f32[4,16,2000] = expand %6 shape=[4,16,2000]
  %8: f32[4,16,2000] = add %5, %7
  %9: f32[4,16,2000] = conv %8, %3 stride=[1] padding=[(0,0)] dilation=[1] groups=1
  %10: f32[16,1] = reshape %4 shape=[16,1]
  %11: f32[4,16,2000] = expand %10 shape=[4,16,2000]
  %12: f32[4,16,2000] = add %9, %11
  %13: f32[4,16,2000] = relu %12
  %14: f32[4,16,2000] = add %13, %0
  outputs %14
}"#;
    check(src, &[0, 2], 1e-4);
}

#[test]
fn conv2d_grouped_with_tanh_on_the_engine_and_f64() {
    // conv2d with groups, stride and asymmetric padding; the consumer computes tanh
    // (an engine kernel on AVX-512 CPUs) and is the graph output; the same in f64.
    // 4 × 6 × 33 × 140 outputs of 18 taps: 2 M multiply-adds, split over two threads.
    for dt in ["f32", "f64"] {
        let src = format!(
            r#"graph {{
  %0: {dt}[4,4,65,140] = input "x"
  %1: {dt}[6,2,3,3] = input "w"
  %2: {dt}[6] = input "b"
  %3: {dt}[4,6,33,140] = conv %0, %1 stride=[2,1] padding=[(1,1),(2,0)] dilation=[1,1] groups=2
  %4: {dt}[6,1,1] = reshape %2 shape=[6,1,1]
  %5: {dt}[4,6,33,140] = expand %4 shape=[4,6,33,140]
  %6: {dt}[4,6,33,140] = add %3, %5
  %7: {dt}[4,6,33,140] = tanh %6
  outputs %7
}}"#
        );
        check(&src, &[0], 1e-5);
        if dt == "f32" && onde_codegen::IsaLevel::detect() >= onde_codegen::IsaLevel::Avx2 {
            // The fused consumer is an engine program, not Cranelift code.
            let dump = run(&src, true, 1).dump;
            assert!(dump.contains("runs on the engine"), "{dump}");
        }
    }
}

#[test]
fn a_consumer_reading_other_elements_of_the_output_is_not_fused() {
    // The kernel reads the convolution's output shifted by one position (a slice):
    // a row's values would come from a block that may not be written yet.
    let src = r#"graph {
  %0: f32[2,4,300] = input "x"
  %1: f32[4,4,3] = input "w"
  %2: f32[2,4,300] = conv %0, %1 stride=[1] padding=[(1,1)] dilation=[1] groups=1
  %3: f32[2,4,299] = slice %2 axes=[0:2:1, 0:4:1, 1:300:1]
  %4: f32[2,4,299] = slice %2 axes=[0:2:1, 0:4:1, 0:299:1]
  %5: f32[2,4,299] = sub %3, %4
  outputs %5
}"#;
    check(src, &[], 1e-4);
}

/// W2-sized convolutions of `a` `[4, 32, 2000]` into `%3`: pointwise (im2col) and
/// depthwise (direct, 5 taps).
const POINTWISE: &str = "%2: f32[32,32,1] = input \"w\"\n  %3: f32[4,32,2000] = conv %0, %2 stride=[1] padding=[(0,0)] dilation=[1] groups=1";
const DEPTHWISE: &str = "%2: f32[32,1,5] = input \"w\"\n  %3: f32[4,32,2000] = conv %0, %2 stride=[1] padding=[(2,2)] dilation=[1] groups=32";

/// A graph: input `a` `[4, 32, 2000]`, `conv` (one of the above), then `rest`.
fn after_conv(conv: &str, rest: &str) -> String {
    format!("graph {{\n  %0: f32[4,32,2000] = input \"a\"\n  {conv}\n{rest}\n}}")
}

#[test]
fn batch_norm_sums_run_on_the_finished_rows() {
    // A batch norm's statistics after a convolution: `Σ y`, `Σ y²` over the batch and
    // time, and an elementwise value stored in the same loop. The plan splits the
    // sums into sums of rows (`plan::row_sums`) and a kernel combining them, so the
    // row kernel runs on each block of the convolution's finished rows; the combined
    // sums are those of the interpreter. Pointwise (im2col) and depthwise (direct).
    for conv in [POINTWISE, DEPTHWISE] {
        let src = after_conv(
            conv,
            "  %4: f32[32] = reduce_sum %3 axes=[0,2] keepdim=false
  %5: f32[4,32,2000] = mul %3, %3
  %6: f32[32] = reduce_sum %5 axes=[0,2] keepdim=false
  %7: f32[4,32,2000] = tanh %3
  outputs %4, %6, %7",
        );
        let plain = run(&src, false, 1);
        assert!(
            plain.dump.contains("reduce_sum axes=[2] into store")
                && plain.dump.contains("reduce_sum axes=[0] into store"),
            "{}",
            plain.dump
        );
        check(&src, &[0], 1e-4);
    }
}

#[test]
fn row_sums_of_tanh_on_the_engine_run_on_the_finished_rows() {
    // A sum over time of `tanh(y)` (a row reduction with a transcendental: an engine
    // program where the CPU has AVX2) and the stored `tanh(y)`: the convolution runs
    // it on its finished rows; same bits as unfused, interpreter's values.
    let src = &after_conv(
        DEPTHWISE,
        "  %4: f32[4,32,2000] = tanh %3
  %5: f32[4,32] = reduce_sum %4 axes=[2] keepdim=false
  outputs %4, %5",
    );
    check(src, &[0], 1e-4);
    if onde_codegen::IsaLevel::detect() >= onde_codegen::IsaLevel::Avx2 {
        let dump = run(src, true, 1).dump;
        assert!(dump.contains("runs on the engine"), "{dump}");
    }
}

#[test]
fn sums_over_the_batch_only_or_without_stores_are_not_split() {
    // A sum over the batch alone (time kept) has no row to sum; a kernel of sums and
    // nothing stored elementwise (a batch norm's forward mean) keeps its unsplit order
    // (`plan::row_sums`: accuracy). Both run as before, on their own after the
    // convolution.
    for (sum, ty) in [("axes=[0]", "f32[32,2000]"), ("axes=[0,2]", "f32[32]")] {
        let src = after_conv(
            POINTWISE,
            &format!("  %4: {ty} = reduce_sum %3 {sum} keepdim=false\n  outputs %4"),
        );
        let plain = run(&src, false, 1);
        assert!(!plain.dump.contains("_rows"), "{}", plain.dump);
        check(&src, &[], 1e-4);
    }
}

#[test]
fn a_consumer_writing_over_the_convolution_input_is_not_fused() {
    // `relu(a)` is a temporary read by the first convolution and, element for element,
    // by the add after it, where it dies: the add writes in place over it (the
    // convolution's output is read again by the last convolution), i.e. over memory
    // that later blocks of the first convolution still read. So that step is not fused
    // (the results are the unfused ones); the last convolution's consumer is. (A
    // consumer that does not read the convolution's input never gets its storage: the
    // memory plan keeps the input alive through the consumer.) 4 × 32 × 2000 outputs
    // of 5 taps: enough to split over two threads.
    let src = r#"graph {
  %0: f32[4,32,2000] = input "a"
  %1: f32[4,32,2000] = relu %0
  %2: f32[32,1,5] = input "w"
  %3: f32[4,32,2000] = conv %1, %2 stride=[1] padding=[(2,2)] dilation=[1] groups=32
  %4: f32[4,32,2000] = add %3, %1
  %5: f32[4,32,2000] = conv %4, %2 stride=[1] padding=[(2,2)] dilation=[1] groups=32
  %6: f32[4,32,2000] = conv %3, %2 stride=[1] padding=[(2,2)] dilation=[1] groups=32
  %7: f32[4,32,2000] = sub %5, %6
  outputs %7
}"#;
    let fused = run(src, true, 1);
    let dump = &fused.dump;
    // Steps: 0 relu, 1 conv, 2 add, 3 conv, 4 conv, 5 sub.
    let slots: Vec<String> = dump
        .lines()
        .find_map(|l| l.split("slots [").nth(1))
        .expect("memory line")
        .trim_end_matches(']')
        .split(", ")
        .map(str::to_string)
        .collect();
    let buf_after = |prefix: &str, marker: &str| -> usize {
        let l = dump
            .lines()
            .skip_while(|l| !l.starts_with(prefix))
            .find(|l| l.contains(marker))
            .expect("line in dump");
        let rest = l.split(marker).nth(1).unwrap();
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    };
    let conv_input = buf_after("step 1: conv", "conv f32 buf");
    let add_out = buf_after("step 2: kernel", "store buf");
    // The plan does put the add over the convolution's input (the case under test;
    // if the planner changes, this test must find another graph) ...
    assert_eq!(slots[conv_input], slots[add_out], "{dump}");
    // ... so only the last convolution's consumer is fused.
    check(src, &[4], 1e-5);
}

#[test]
fn a_state_bound_over_the_convolution_input_falls_back_at_run_time() {
    // The consumer's output is bound as the state that is also the convolution's
    // input and is updated in place: statically fusable (an output may live anywhere),
    // but at run time it points at memory the convolution still reads, so the step
    // runs unfused. Three steps of the recurrence, fused executable against unfused.
    let src = r#"graph {
  %0: f32[4,6,600] = input "s"
  %1: f32[6,1,5] = input "w"
  %2: f32[4,6,600] = conv %0, %1 stride=[1] padding=[(2,2)] dilation=[1] groups=6
  %3: f32[4,6,600] = tanh %2
  outputs %3
}"#;
    let g = parse_graph(src).unwrap();
    let f = feeds(src);
    let w = f.iter().find(|(n, _)| n == "w").unwrap().1.clone();
    let s0 = f.iter().find(|(n, _)| n == "s").unwrap().1.clone();
    let mut results = Vec::new();
    for epilogues in [true, false] {
        let mut exe = Executable::compile(
            &g,
            CompileOptions {
                epilogues,
                ..CompileOptions::default()
            },
        )
        .unwrap();
        exe.bind_state("s", 0, s0.clone()).unwrap();
        exe.set_profiling(true);
        for _ in 0..3 {
            exe.run_in_place(&[("w", &w)]).unwrap();
        }
        if epilogues {
            // Fusable by the plan, skipped at run time: the tanh ran as its own step.
            assert_eq!(fused_steps(&exe.dump_fused()), [0]);
            assert_eq!(calls(&exe.profile().unwrap(), 1), 3);
        }
        results.push(bits(exe.state("s").unwrap()));
    }
    assert_eq!(results[0], results[1]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Sums, maxima and products over any axes of a convolution's output, two sibling
    /// reductions sharing the loop: fused (rows split by `plan::row_sums` where they
    /// qualify, 1 and 2 threads) equals unfused bit for bit, and the interpreter.
    #[test]
    fn reductions_after_a_convolution_equal_the_interpreter(
        b in 1usize..4,
        c in proptest::sample::select(vec![1usize, 3, 8]),
        t in 60usize..400,
        k in proptest::sample::select(vec![1usize, 3]),
        depthwise in proptest::bool::ANY,
        kind in proptest::sample::select(vec!["sum", "max", "min"]),
        axes in proptest::sample::select(vec![
            vec![0usize, 2], vec![2], vec![0, 1, 2], vec![1, 2], vec![0], vec![0, 1],
        ]),
    ) {
        let groups = if depthwise { c } else { 1 };
        let kept: Vec<String> = (0..3)
            .filter(|a| !axes.contains(a))
            .map(|a| [b, c, t][a].to_string())
            .collect();
        let axes_s: Vec<String> = axes.iter().map(usize::to_string).collect();
        let (kept, axes_s) = (kept.join(","), axes_s.join(","));
        let pad = (k - 1) / 2;
        let src = format!(
            r#"graph {{
  %0: f32[{b},{c},{t}] = input "a"
  %1: f32[{c},{cg},{k}] = input "w"
  %2: f32[{b},{c},{t}] = conv %0, %1 stride=[1] padding=[({pad},{pad})] dilation=[1] groups={groups}
  %3: f32[{kept}] = reduce_{kind} %2 axes=[{axes_s}] keepdim=false
  %4: f32[{b},{c},{t}] = mul %2, %2
  %5: f32[{kept}] = reduce_{kind} %4 axes=[{axes_s}] keepdim=false
  outputs %3, %5
}}"#,
            cg = c / groups,
        );
        let plain = run(&src, false, 1);
        for threads in [1, 2] {
            let fused = run(&src, true, threads);
            for (i, (a, p)) in fused.outputs.iter().zip(&plain.outputs).enumerate() {
                proptest::prop_assert_eq!(bits(a), bits(p), "output {}, threads {}", i, threads);
            }
        }
        let g = parse_graph(&src).unwrap();
        let f: HashMap<String, Array> = feeds(&src).into_iter().collect();
        let want = onde_runtime::run(&g, &f).unwrap();
        // Inputs and weights lie in [-1, 1): |y| <= m = k·c/groups, |y²| <= m², and the
        // convolution's own sums (m terms, reassociated) leave each y within ~m²·ε. A
        // maximum or minimum takes one element; a sum of n f32 terms adds at most
        // n·ε·max|term| (a margin of ~30 over that here; a missing row is far beyond).
        let n: usize = axes.iter().map(|&a| [b, c, t][a]).product();
        let m = (k * (c / groups)) as f64;
        let ey = 1e-6 * m * m;
        for (i, (got, want)) in plain.outputs.iter().zip(&want).enumerate() {
            let (top, err) = if i == 0 { (m, ey) } else { (m * m, 2.0 * m * ey) };
            let bound = if kind == "sum" {
                n as f64 * (2e-6 * top + err)
            } else {
                err
            };
            for (p, q) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
                proptest::prop_assert!((p - q).abs() <= bound, "output {}: {} vs {}\n{}", i, p, q, src);
            }
        }
    }
}
