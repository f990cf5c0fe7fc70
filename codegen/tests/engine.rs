//! The tile engine (`onde_codegen::kernel::engine`) against the Cranelift kernels it
//! replaces: the same graph compiled at each engine width this CPU has (AVX2: 8 lanes,
//! AVX-512: 16 lanes, chosen by `CompileOptions::isa`) and at the baseline level
//! (Cranelift f32x4 code only).
//!
//! Elementwise results must be bit-identical (NaN compared as NaN: payloads may
//! differ), including the math functions over a sweep of the whole f32 range, the
//! special values and partial tiles; reductions agree to rounding (8- or 16-lane
//! instead of 4-lane reassociation). On a CPU without AVX2 the engine must decline
//! every kernel, which is checked instead (no engine level, and the baseline compile
//! never uses it).

use onde_codegen::{CompileOptions, Executable, IsaLevel};
use onde_ir::{parse_graph, Array, Graph};
use proptest::prelude::*;

/// The levels at which this CPU runs the engine, lowest first.
fn engine_levels() -> Vec<IsaLevel> {
    IsaLevel::available()
        .into_iter()
        .filter(|&l| l >= IsaLevel::Avx2)
        .collect()
}

fn compile(g: &Graph, isa: IsaLevel, threads: usize) -> Executable {
    compile_with(g, isa, threads, true)
}

fn compile_with(g: &Graph, isa: IsaLevel, threads: usize, optimize: bool) -> Executable {
    Executable::compile(
        g,
        CompileOptions {
            isa,
            threads,
            optimize,
            ..CompileOptions::default()
        },
    )
    .unwrap()
}

/// Whether a plan dump shows a kernel on the engine.
fn on_engine(dump: &str) -> bool {
    dump.contains("runs on the engine")
}

/// Kernel steps in a plan dump, and how many of them run on the engine.
fn kernels_on_engine(dump: &str) -> (usize, usize) {
    (
        dump.lines()
            .filter(|l| l.starts_with("step ") && l.contains(": kernel "))
            .count(),
        dump.matches("runs on the engine").count(),
    )
}

/// Runs `src` at every engine level and at the baseline; returns the engine runs
/// (level, outputs, whether the engine ran a kernel) and the Cranelift outputs.
#[allow(clippy::type_complexity)]
fn both(
    src: &str,
    feeds: &[(&str, &Array)],
    threads: usize,
) -> (Vec<(IsaLevel, Vec<Array>, bool)>, Vec<Array>) {
    let g = parse_graph(src).unwrap();
    let mut off = compile(&g, IsaLevel::Baseline, threads);
    assert!(
        !on_engine(&off.dump_fused()),
        "engine used at the baseline level"
    );
    let runs = engine_levels()
        .into_iter()
        .map(|isa| {
            let mut on = compile(&g, isa, threads);
            let used = on_engine(&on.dump_fused());
            (isa, on.run(feeds).unwrap(), used)
        })
        .collect();
    (runs, off.run(feeds).unwrap())
}

fn same_bits(a: &[f32], b: &[f32], what: &str, inputs: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let ok = x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
        assert!(
            ok,
            "{what}: element {i} (input {:e}): engine {x:e} ({:#x}) vs cranelift {y:e} ({:#x})",
            inputs.get(i).copied().unwrap_or(f32::NAN),
            x.to_bits(),
            y.to_bits()
        );
    }
}

fn f32s(a: &Array) -> Vec<f32> {
    a.to_f64_vec().iter().map(|&v| v as f32).collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn math_functions_match_cranelift_bit_for_bit_over_the_f32_range() {
    // Every 2^12-th bit pattern: all signs, exponents (denormals, inf, NaN included).
    let n = 1usize << 20;
    let xs: Vec<f32> = (0..n)
        .map(|i| f32::from_bits((i as u32) << 12 | 0x5a5))
        .collect();
    let x = Array::f32([n], xs.clone()).unwrap();
    let src = format!(
        r#"graph {{
  %0: f32[{n}] = input "x"
  %1: f32[{n}] = exp %0
  %2: f32[{n}] = log %0
  %3: f32[{n}] = tanh %0
  %4: f32[{n}] = sigmoid %0
  %5: f32[{n}] = sqrt %0
  %6: f32[{n}] = sin %0
  %7: f32[{n}] = cos %0
  outputs %1, %2, %3, %4, %5, %6, %7
}}"#
    );
    let (runs, off) = both(&src, &[("x", &x)], 1);
    for (isa, on, used) in runs {
        assert!(used, "{isa}");
        // Every kernel of the sweep, not just one, runs on the engine.
        let exe = compile(&parse_graph(&src).unwrap(), isa, 1);
        let (kernels, engine) = kernels_on_engine(&exe.dump_fused());
        assert!(kernels > 0 && engine == kernels, "{}", exe.dump_fused());
        for (i, name) in ["exp", "log", "tanh", "sigmoid", "sqrt", "sin", "cos"]
            .iter()
            .enumerate()
        {
            same_bits(
                &f32s(&on[i]),
                &f32s(&off[i]),
                &format!("{name} ({isa})"),
                &xs,
            );
        }
    }
}

/// `exp` at the ends of its range, every f32 there: results rounded to subnormals
/// (`x` from -104.5 to -86) and overflowing to infinity (88 to 89.5), where the
/// engine's final scaling by `2ⁿ` rounds (on AVX-512 one SCALEFPS, elsewhere two
/// multiplies) — the same bits as the Cranelift kernel's.
#[test]
fn exp_at_the_ends_of_its_range_matches_cranelift_bit_for_bit() {
    let span = |lo: f32, hi: f32| {
        let (a, b) = (lo.to_bits(), hi.to_bits());
        (a.min(b)..=a.max(b))
            .map(f32::from_bits)
            .collect::<Vec<_>>()
    };
    let mut xs = span(-86.0, -104.5);
    xs.extend(span(88.0, 89.5));
    let n = xs.len();
    let x = Array::f32([n], xs.clone()).unwrap();
    let src = format!(
        r#"graph {{
  %0: f32[{n}] = input "x"
  %1: f32[{n}] = exp %0
  outputs %1
}}"#
    );
    let (runs, off) = both(&src, &[("x", &x)], 1);
    for (isa, on, used) in runs {
        assert!(used, "{isa}");
        same_bits(&f32s(&on[0]), &f32s(&off[0]), &format!("exp ({isa})"), &xs);
    }
}

#[test]
fn elementwise_ops_and_special_values_match() {
    let specials = [
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -2.5,
        3.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-40,
        -1e-40,
        f32::MAX,
        f32::MIN_POSITIVE,
        88.7,
        -103.9,
        17.4,
        9.05,
    ];
    let n = 1000; // not a multiple of 16 or of the tile
    let xs: Vec<f32> = (0..n).map(|i| specials[i % specials.len()]).collect();
    let ys: Vec<f32> = (0..n)
        .map(|i| specials[(i / specials.len() + 3 * i) % specials.len()])
        .collect();
    let (x, y) = (
        Array::f32([n], xs.clone()).unwrap(),
        Array::f32([n], ys).unwrap(),
    );
    let src = format!(
        r#"graph {{
  %0: f32[{n}] = input "x"
  %1: f32[{n}] = input "y"
  %2: f32[{n}] = div %0, %1
  %3: f32[{n}] = maximum %0, %1
  %4: f32[{n}] = minimum %0, %1
  %5: f32[{n}] = sign %0
  %6: f32[{n}] = relu %0
  %7: f32[{n}] = floor %0
  %8: f32[{n}] = abs %0
  %9: f32[{n}] = neg %0
  %10: bool[{n}] = lt %0, %1
  %11: bool[{n}] = ne %0, %1
  %12: bool[{n}] = and %10, %11
  %13: bool[{n}] = not %12
  %14: f32[{n}] = where %13, %2, %0
  %15: f32[{n}] = cast %10 to=f32
  %16: f32[{n}] = add %14, %15
  %17: f32[{n}] = sub %16, %3
  %18: f32[{n}] = mul %17, %4
  %19: f32[{n}] = sqrt %18
  %20: f32[{n}] = exp %19
  outputs %2, %3, %4, %5, %6, %7, %8, %9, %14, %15, %18, %19, %20
}}"#
    );
    let (runs, off) = both(&src, &[("x", &x), ("y", &y)], 1);
    for (isa, on, used) in runs {
        assert!(used, "{isa}");
        for (i, (a, b)) in on.iter().zip(&off).enumerate() {
            same_bits(&f32s(a), &f32s(b), &format!("output {i} ({isa})"), &xs);
        }
    }
}

#[test]
fn broadcast_rows_and_row_reductions_match() {
    // A bias broadcast along rows (the Linear + sigmoid epilogue), a log-softmax's row
    // sums and maxima, rows longer than a tile and not a multiple of 16; big enough
    // (> 2^16 elements) for two threads to split the rows.
    let (r, c) = (301usize, 300usize);
    let xs: Vec<f32> = (0..r * c)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.01)
        .collect();
    let bs: Vec<f32> = (0..c).map(|i| (i as f32 - 150.0) * 0.02).collect();
    let x = Array::f32([r, c], xs).unwrap();
    let b = Array::f32([c], bs).unwrap();
    let src = format!(
        r#"graph {{
  %0: f32[{r},{c}] = input "x"
  %1: f32[{c}] = input "b"
  %2: f32[{r},{c}] = expand %1 shape=[{r},{c}]
  %3: f32[{r},{c}] = add %0, %2
  %4: f32[{r},{c}] = sigmoid %3
  %5: f32[{r},{c}] = exp %3
  %6: f32[{r}] = reduce_sum %5 axes=[1] keepdim=false
  %7: f32[{r}] = reduce_max %5 axes=[1] keepdim=false
  %8: f32[] = reduce_sum %4 axes=[0,1] keepdim=false
  outputs %4, %6, %7, %8
}}"#
    );
    for threads in [1, 2] {
        let (runs, off) = both(&src, &[("x", &x), ("b", &b)], threads);
        for (isa, on, used) in runs {
            assert!(used, "{isa}");
            same_bits(&f32s(&on[0]), &f32s(&off[0]), "sigmoid(x + b)", &[]);
            same_bits(&f32s(&on[2]), &f32s(&off[2]), "row max", &[]);
            for i in [1, 3] {
                for (p, q) in on[i].to_f64_vec().iter().zip(off[i].to_f64_vec()) {
                    assert!(
                        close(*p, q, 1e-5),
                        "output {i}: {p} vs {q} ({threads} threads, {isa})"
                    );
                }
            }
        }
    }
}

#[test]
fn w6_kernel_runs_on_the_engine_and_agrees() {
    let n = 100_003;
    let v = |s: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (((i * s) % 2003) as f32 - 1001.0) * 0.004)
            .collect()
    };
    let (x, a, b) = (
        Array::f32([n], v(13)).unwrap(),
        Array::f32([n], v(29)).unwrap(),
        Array::f32([n], v(7)).unwrap(),
    );
    let src = format!(
        r#"graph {{
  %0: f32[{n}] = input "x"
  %1: f32[{n}] = input "a"
  %2: f32[{n}] = input "b"
  %3: f32[{n}] = mul %0, %1
  %4: f32[{n}] = add %3, %2
  %5: f32[{n}] = tanh %4
  %6: f32[{n}] = sigmoid %0
  %7: f32[{n}] = mul %5, %6
  %8: f32[{n}] = mul %0, %0
  %9: f32[{n}] = add %7, %8
  %10: f32[] = reduce_sum %9 axes=[0] keepdim=false
  outputs %10, %7
}}"#
    );
    for threads in [1, 2] {
        let (runs, off) = both(&src, &[("x", &x), ("a", &a), ("b", &b)], threads);
        for (isa, on, used) in runs {
            assert!(used, "{isa}");
            same_bits(&f32s(&on[1]), &f32s(&off[1]), "tanh·sigmoid", &[]);
            let (p, q) = (on[0].to_f64_vec()[0], off[0].to_f64_vec()[0]);
            // 10^5 f32 additions in different orders (8 or 16 lanes vs 4).
            assert!(close(p, q, 1e-4), "sum {p} vs {q} ({isa})");
        }
    }
}

#[test]
fn short_rows_and_cheap_kernels_stay_on_cranelift() {
    let g = parse_graph(
        r#"graph {
  %0: f32[64,10] = input "x"
  %1: f32[10] = input "b"
  %2: f32[64,10] = expand %1 shape=[64,10]
  %3: f32[64,10] = add %0, %2
  %4: f32[64,10] = tanh %3
  %5: f32[4096] = input "y"
  %6: f32[4096] = mul %5, %5
  outputs %4, %6
}"#,
    )
    .unwrap();
    for isa in IsaLevel::ALL {
        let exe = compile(&g, isa, 1);
        assert!(!on_engine(&exe.dump_fused()), "{}", exe.dump_fused());
    }
}

/// A random expression over two `[rows, cols]` inputs and a row-broadcast `[cols]`
/// one, with at least one expensive op.
fn expr_graph(rows: usize, cols: usize, ops: &[u8]) -> String {
    let mut lines = vec![
        format!("  %0: f32[{rows},{cols}] = input \"x\""),
        format!("  %1: f32[{rows},{cols}] = input \"y\""),
        format!("  %2: f32[{cols}] = input \"b\""),
        format!("  %3: f32[{rows},{cols}] = expand %2 shape=[{rows},{cols}]"),
        format!("  %4: f32[{rows},{cols}] = sigmoid %0"),
    ];
    let t = format!("f32[{rows},{cols}]");
    let mut next = 5;
    for (i, &op) in ops.iter().enumerate() {
        let a = next - 1;
        let b = [0, 1, 3, next - 2][i % 4].min(next - 1);
        let line = match op % 14 {
            0 => format!("add %{a}, %{b}"),
            1 => format!("mul %{a}, %{b}"),
            2 => format!("sub %{a}, %{b}"),
            3 => format!("div %{a}, %{b}"),
            4 => format!("tanh %{a}"),
            5 => format!("exp %{a}"),
            6 => format!("log %{a}"),
            7 => format!("maximum %{a}, %{b}"),
            8 => format!("minimum %{a}, %{b}"),
            9 => format!("relu %{a}"),
            10 => format!("sqrt %{a}"),
            11 => format!("sin %{a}"),
            12 => format!("cos %{a}"),
            _ => format!("sigmoid %{a}"),
        };
        lines.push(format!("  %{next}: {t} = {line}"));
        next += 1;
    }
    let last = next - 1;
    lines.push(format!(
        "  %{next}: f32[{rows}] = reduce_sum %{last} axes=[1] keepdim=false"
    ));
    format!(
        "graph {{\n{}\n  outputs %{last}, %{next}\n}}",
        lines.join("\n")
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_kernels_match_cranelift(
        rows in 1usize..5,
        cols in 64usize..700,
        ops in proptest::collection::vec(0u8..14, 1..10),
        seed in 0u32..1000,
    ) {
        let src = expr_graph(rows, cols, &ops);
        let h = |i: usize, s: u32| {
            let v = (i as u32).wrapping_mul(2654435761).wrapping_add(s.wrapping_mul(40503));
            ((v >> 8) % 4001) as f32 / 1000.0 - 2.0
        };
        let x = Array::f32([rows, cols], (0..rows * cols).map(|i| h(i, seed)).collect()).unwrap();
        let y = Array::f32([rows, cols], (0..rows * cols).map(|i| h(i, seed + 1)).collect()).unwrap();
        let b = Array::f32([cols], (0..cols).map(|i| h(i, seed + 2)).collect()).unwrap();
        let (runs, off) = both(&src, &[("x", &x), ("y", &y), ("b", &b)], 1);
        for (isa, on, used) in runs {
            prop_assert!(used, "{}", isa);
            same_bits(&f32s(&on[0]), &f32s(&off[0]), &src, &[]);
            for (p, q) in on[1].to_f64_vec().iter().zip(off[1].to_f64_vec()) {
                // Row sums of possibly huge or cancelling values: compare to the scale
                // of the summed magnitudes.
                prop_assert!(
                    close(*p, q, 1e-4) || (p.is_infinite() && q.is_infinite()),
                    "{p} vs {q} ({isa})\n{src}"
                );
            }
        }
    }
}

#[test]
fn same_type_casts_share_rows_without_clobbering_them() {
    // Unoptimised graphs keep same-type casts, which the engine compiles to a shared
    // row: the row must live as long as any alias is read or stored.
    let n = 300;
    let xs: Vec<f32> = (0..n).map(|i| (i as f32 - 150.0) * 0.37).collect();
    let x = Array::f32([n], xs.clone()).unwrap();
    let src = format!(
        r#"graph {{
  %0: f32[{n}] = input "x"
  %1: f32[{n}] = exp %0
  %2: f32[{n}] = cast %1 to=f32
  %3: f32[{n}] = neg %2
  %4: f32[{n}] = add %1, %3
  %5: f32[{n}] = cast %4 to=f32
  %6: f32[{n}] = cast %5 to=f32
  %7: f32[{n}] = sigmoid %6
  %8: f32[{n}] = mul %7, %4
  %9: f32[{n}] = cast %8 to=f32
  outputs %9, %5
}}"#
    );
    let g = parse_graph(&src).unwrap();
    let mut off = compile_with(&g, IsaLevel::Baseline, 1, false);
    let b = off.run(&[("x", &x)]).unwrap();
    for isa in engine_levels() {
        let mut on = compile_with(&g, isa, 1, false);
        let dump = on.dump_fused();
        assert!(
            dump.contains("cast"),
            "the casts must reach the kernel:\n{dump}"
        );
        assert_eq!(
            kernels_on_engine(&dump).1,
            kernels_on_engine(&dump).0,
            "{dump}"
        );
        let a = on.run(&[("x", &x)]).unwrap();
        for (i, (p, q)) in a.iter().zip(&b).enumerate() {
            same_bits(&f32s(p), &f32s(q), &format!("output {i} ({isa})"), &xs);
        }
    }
}

#[test]
fn rows_of_whole_vectors_read_in_place_and_match() {
    // A recurrent step's gate kernel: rows of 64 or 80 (whole vectors on 16 and 8
    // lanes, shorter than a tile) cut from wider rows, so the rows do not merge into
    // one axis: each row is a partial tile whose loads are read where they are.
    for (r, c) in [(33usize, 64usize), (7, 80), (5, 96)] {
        let w = 3 * c;
        let xs: Vec<f32> = (0..r * w)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.01)
            .collect();
        let hs: Vec<f32> = (0..r * c)
            .map(|i| ((i * 31 % 200) as f32 - 100.0) * 0.02)
            .collect();
        let x = Array::f32([r, w], xs).unwrap();
        let h = Array::f32([r, c], hs).unwrap();
        let src = format!(
            r#"graph {{
  %0: f32[{r},{w}] = input "x"
  %1: f32[{r},{c}] = input "h"
  %2: f32[{r},{c}] = slice %0 axes=[0:{r}:1, 0:{c}:1]
  %3: f32[{r},{c}] = slice %0 axes=[0:{r}:1, {c}:{c2}:1]
  %4: f32[{r},{c}] = slice %0 axes=[0:{r}:1, {c2}:{w}:1]
  %5: f32[{r},{c}] = sigmoid %2
  %6: f32[{r},{c}] = mul %5, %4
  %7: f32[{r},{c}] = add %3, %6
  %8: f32[{r},{c}] = tanh %7
  %9: f32[{r},{c}] = mul %8, %1
  outputs %9
}}"#,
            c2 = 2 * c
        );
        let (runs, off) = both(&src, &[("x", &x), ("h", &h)], 1);
        for (isa, on, used) in runs {
            assert!(used, "{isa} [{r}, {c}]");
            same_bits(&f32s(&on[0]), &f32s(&off[0]), &src, &[]);
        }
    }
}
