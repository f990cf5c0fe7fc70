//! Row reductions (the reduced axis innermost and contiguous: a log-softmax's row
//! maximum and sum) at every width the vector loop handles: unrolled over four accumulators,
//! then whole vectors, then a scalar tail. Max/min are exact (NaN propagates, `-0 <
//! +0`), products and sums within f32 rounding of the f64 result; at every ISA level
//! this CPU has.

use onde_codegen::{CompileOptions, Executable, IsaLevel};
use onde_ir::{parse_graph, Array};

fn vals(n: usize, s: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + s * 104_729) % 2003) as f32 - 1001.0) * 0.0137)
        .collect()
}

/// `g` compiled with its kernels capped at `isa`.
fn compile_at(g: &onde_ir::Graph, isa: IsaLevel) -> Executable {
    Executable::compile(
        g,
        CompileOptions {
            isa,
            ..CompileOptions::default()
        },
    )
    .unwrap()
}

fn levels() -> Vec<IsaLevel> {
    crate::common::isa_levels()
}

#[test]
fn row_reductions_at_every_length() {
    for n in [1usize, 3, 4, 5, 15, 16, 17, 31, 33, 64, 65, 100, 257] {
        let r = 7;
        let mut x = vals(r * n, n);
        // Row 1 has a NaN at its end (in the tail or the last unrolled step); row 2
        // mixes signed zeros only.
        x[r.min(2) * n - 1] = f32::NAN;
        for v in &mut x[2 * n..3 * n] {
            *v = if v.is_sign_negative() { -0.0 } else { 0.0 };
        }
        let y: Vec<f32> = vals(r * n, n + 1).iter().map(|v| 1.0 + v * 1e-3).collect();
        let src = format!(
            r#"graph {{
  %0: f32[{r},{n}] = input "x"
  %1: f32[{r},{n}] = input "y"
  %2: f32[{r}] = reduce_sum %0 axes=[1] keepdim=false
  %3: f32[{r}] = reduce_max %0 axes=[1] keepdim=false
  %4: f32[{r}] = reduce_min %0 axes=[1] keepdim=false
  %5: f32[{r}] = reduce_prod %1 axes=[1] keepdim=false
  outputs %2, %3, %4, %5
}}"#
        );
        let g = parse_graph(&src).unwrap();
        let xa = Array::f32([r, n], x.clone()).unwrap();
        let ya = Array::f32([r, n], y.clone()).unwrap();
        for isa in levels() {
            let mut exe = compile_at(&g, isa);
            let out = exe.run(&[("x", &xa), ("y", &ya)]).unwrap();
            let what = |k: &str, i: usize| format!("{k} of row {i}, n = {n}, {isa:?}");
            for i in 0..r {
                let row = &x[i * n..(i + 1) * n];
                let yrow = &y[i * n..(i + 1) * n];
                let (sum, max, min, prod) = (
                    out[0].to_f64_vec()[i],
                    out[1].to_f64_vec()[i] as f32,
                    out[2].to_f64_vec()[i] as f32,
                    out[3].to_f64_vec()[i],
                );
                if row.iter().any(|v| v.is_nan()) {
                    assert!(
                        sum.is_nan() && max.is_nan() && min.is_nan(),
                        "{}",
                        what("NaN", i)
                    );
                    continue;
                }
                let exact: f64 = row.iter().map(|&v| v as f64).sum();
                let mag: f64 = row.iter().map(|&v| (v as f64).abs()).sum();
                assert!(
                    (sum - exact).abs() <= 1e-6 * mag.max(1e-30),
                    "{}: {sum} vs {exact}",
                    what("sum", i)
                );
                let want_max = row.iter().copied().fold(f32::NEG_INFINITY, |a, v| {
                    if v > a || (v == 0.0 && a == 0.0 && v.is_sign_positive()) {
                        v
                    } else {
                        a
                    }
                });
                let want_min = row.iter().copied().fold(f32::INFINITY, |a, v| {
                    if v < a || (v == 0.0 && a == 0.0 && v.is_sign_negative()) {
                        v
                    } else {
                        a
                    }
                });
                assert_eq!(max.to_bits(), want_max.to_bits(), "{}", what("max", i));
                assert_eq!(min.to_bits(), want_min.to_bits(), "{}", what("min", i));
                let exact_prod: f64 = yrow.iter().map(|&v| v as f64).product();
                assert!(
                    (prod - exact_prod).abs() <= 1e-5 * exact_prod.abs(),
                    "{}",
                    what("prod", i)
                );
            }
        }
    }
}

#[test]
fn long_row_sums_round_less_than_one_chain_per_lane() {
    // 2^16 terms of 0.1 + small noise, summed by the Cranelift loop (no transcendental:
    // not the engine): four accumulators per lane keep the f32 sum within 1e-5 of the
    // exact value, which one chain per lane does not.
    let n = 1 << 16;
    let x: Vec<f32> = (0..n).map(|i| 0.1 + ((i % 7) as f32) * 1e-4).collect();
    let src = format!(
        r#"graph {{
  %0: f32[1,{n}] = input "x"
  %1: f32[1] = reduce_sum %0 axes=[1] keepdim=false
  outputs %1
}}"#
    );
    let g = parse_graph(&src).unwrap();
    let xa = Array::f32([1, n], x.clone()).unwrap();
    let exact: f64 = x.iter().map(|&v| v as f64).sum();
    for isa in levels() {
        let mut exe = compile_at(&g, isa);
        let got = exe.run(&[("x", &xa)]).unwrap()[0].to_f64_vec()[0];
        let rel = (got - exact).abs() / exact;
        assert!(rel < 1e-5, "{isa:?}: {got} vs {exact} (rel {rel:e})");
    }
}

#[test]
fn sums_over_several_axes_are_cascaded_per_row() {
    // Batch norm's statistics: Σ over axes (0, 2) of [32, 8, 4000], values in [1, 2).
    // Each row of 4000 is summed into fresh accumulators, then added to the total:
    // 1e-6 relative at most, which one accumulator chain over all 128 000 terms per lane
    // does not reach.
    let (n, c, t) = (32usize, 8usize, 4000usize);
    let x: Vec<f32> = (0..n * c * t)
        .map(|i| 1.0 + ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let src = format!(
        r#"graph {{
  %0: f32[{n},{c},{t}] = input "x"
  %1: f32[{c}] = reduce_sum %0 axes=[0,2] keepdim=false
  outputs %1
}}"#
    );
    let g = parse_graph(&src).unwrap();
    let xa = Array::f32([n, c, t], x.clone()).unwrap();
    for isa in levels() {
        let mut exe = compile_at(&g, isa);
        let got = exe.run(&[("x", &xa)]).unwrap()[0].to_f64_vec();
        for (ch, &sum) in got.iter().enumerate() {
            let exact: f64 = (0..n)
                .flat_map(|b| (0..t).map(move |i| (b * c + ch) * t + i))
                .map(|i| x[i] as f64)
                .sum();
            let rel = (sum - exact).abs() / exact;
            assert!(
                rel < 1e-6,
                "{isa:?} channel {ch}: {sum} vs {exact} ({rel:e})"
            );
        }
    }
}
