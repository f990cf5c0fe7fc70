//! Differential tests of the compiler: random programs over every op (odd lengths,
//! broadcasting, size-1 and size-0 dims, non-contiguous views from slices and
//! permutes, f32 and f64) give the same results compiled (JIT) and interpreted, at every
//! instruction-set level the CPU has (`IsaLevel::available`: baseline, AVX2, AVX-512).
//! Tolerances: f64 1e-9 relative; f32 2e-4 relative + 1e-5 absolute (the JIT's
//! polynomial exp/log/tanh are within a few ulp, and its sums are reassociated).
//! Longer sweep: `PROPTEST_CASES=2000 cargo test --release --test suite jit_differential::`.

use crate::common;

use onde::codegen::{CompileOptions, IsaLevel};
use onde::{Array, DType, GraphBuilder, Tensor};

/// `outs` compiled with the kernels capped at `isa`.
fn compile_at(g: &GraphBuilder, outs: &[&Tensor], isa: IsaLevel) -> onde::nn::Compiled {
    let opts = CompileOptions {
        isa,
        ..CompileOptions::default()
    };
    g.compile_with(outs, opts).expect("compiles")
}
use proptest::prelude::*;

fn close(dtype: DType, a: &Array, b: &Array) -> Result<(), String> {
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return Err(format!(
            "type {}{} vs {}{}",
            a.dtype(),
            a.shape(),
            b.dtype(),
            b.shape()
        ));
    }
    let (rtol, atol) = if dtype == DType::F64 {
        (1e-9, 1e-12)
    } else {
        (2e-4, 1e-5)
    };
    for (i, (x, y)) in a.to_f64_vec().iter().zip(b.to_f64_vec()).enumerate() {
        let same = (x.is_nan() && y.is_nan()) || x == &y || (x - y).abs() <= atol + rtol * y.abs();
        if !same {
            return Err(format!("element {i}: jit {x} vs interpreter {y}"));
        }
    }
    Ok(())
}

fn shapes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![Just(0usize), Just(1), 2usize..8], 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn jit_equals_interpreter(
        f64_: bool,
        shape in shapes(),
        steps in prop::collection::vec((0u8..34, 0usize..8, 0usize..8, 0usize..8), 1..10),
    ) {
        let dtype = if f64_ { DType::F64 } else { DType::F32 };
        let (g, _, outs) = common::program(dtype, &shape, &steps);
        let refs: Vec<&Tensor> = outs.iter().collect();
        let feed = common::data(dtype, &shape, 7);
        let want = g.run(&refs, &[("x", feed.clone())]);
        for isa in IsaLevel::available() {
            let mut exe = compile_at(&g, &refs, isa);
            let got = exe.run(&[("x", feed.clone())]);
            match (&want, got) {
                (Ok(w), Ok(gv)) => {
                    for (k, (a, b)) in gv.iter().zip(w).enumerate() {
                        if let Err(e) = close(dtype, a, b) {
                            prop_assert!(false, "{}: output {}: {}\n{}", isa, k, e, exe.executable().dump_fused());
                        }
                    }
                }
                (Err(_), Err(_)) => {}
                (w, gv) => prop_assert!(false, "{}: interpreter {:?} vs jit {:?}", isa, w.as_ref().map(|_| ()), gv.map(|_| ())),
            }
        }
    }
}

/// The program of `steps` on an input of `shape` and `dtype`, its loss `Σ t·cos t`
/// over every tensor, and the loss's gradient with respect to the input.
fn loss_and_gradient(
    dtype: DType,
    shape: &[usize],
    steps: &[(u8, usize, usize, usize)],
) -> (GraphBuilder, Vec<Tensor>, Tensor, Tensor) {
    let (g, x, outs) = common::program(dtype, shape, steps);
    let mut loss: Option<Tensor> = None;
    for t in &outs {
        let term = (t * t.cos()).sum_all().to_dtype(dtype);
        loss = Some(match loss {
            Some(l) => l + term,
            None => term,
        });
    }
    let loss = loss.unwrap();
    let grad = g.grad(&loss, &[&x]).unwrap().remove(0);
    (g, outs, loss, grad)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// The gradient graphs of the autodiff property tests, compiled, match the
    /// interpreter; and the optimised graph matches the unoptimised one.
    #[test]
    fn compiled_gradients_and_optimised_graphs_equal_interpreter(
        f64_: bool,
        shape in prop::collection::vec(1usize..6, 1..4),
        steps in prop::collection::vec((0u8..34, 0usize..8, 0usize..8, 0usize..8), 1..8),
    ) {
        let dtype = if f64_ { DType::F64 } else { DType::F32 };
        let (g, outs, loss, grad) = loss_and_gradient(dtype, &shape, &steps);
        let feed = common::data(dtype, &shape, 3);
        let want = g.run(&[&loss, &grad], &[("x", feed.clone())]);
        let Ok(want) = want else { return Ok(()); };
        let levels = IsaLevel::available();
        let mut runs = Vec::with_capacity(levels.len());
        for &isa in &levels {
            let mut exe = compile_at(&g, &[&loss, &grad], isa);
            runs.push((isa, exe.run(&[("x", feed.clone())]).expect("runs")));
        }
        // Conditioning of the loss Σ t·cos t: a relative error δ in an output t moves
        // its term by |t·(cos t − t·sin t)|·δ. Chains like exp(exp(x)) make t large, so a
        // one-ulp difference between two correct exp implementations grows: the loss
        // gets that much extra room (δ ≈ 1e-5 in f32, 1e-13 in f64).
        let refs: Vec<&Tensor> = outs.iter().collect();
        let cond: f64 = g
            .run(&refs, &[("x", feed.clone())])
            .map(|vs| {
                vs.iter()
                    .flat_map(|v| v.to_f64_vec())
                    .filter(|t| t.is_finite())
                    .map(|t| (t * (t.cos() - t * t.sin())).abs())
                    .sum()
            })
            .unwrap_or(0.0);
        for (isa, got) in &runs {
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            // Gradients sum many terms: allow f32 reassociation a little more room.
            let scale = b.to_f64_vec().iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let (rtol, mut atol) = if f64_ { (1e-8, 1e-10 * scale) } else { (1e-3, 1e-4 * scale) };
            if k == 0 {
                atol += cond * if f64_ { 1e-13 } else { 1e-5 };
            } else if cond > if f64_ { 1e11 } else { 1e3 } {
                // The gradient of so ill-conditioned a loss is noise at this precision
                // (its terms' second derivatives scale with t², t ≈ 1e2+): the loss
                // comparison above is the meaningful check.
                continue;
            }
            for (i, (p, q)) in a.to_f64_vec().iter().zip(b.to_f64_vec()).enumerate() {
                let ok = (p.is_nan() && q.is_nan()) || (p - q).abs() <= atol + rtol * q.abs();
                prop_assert!(ok, "{}: output {} element {}: jit {} vs interpreter {}", isa, k, i, p, q);
            }
        }
        }
        // Optimised vs unoptimised, both interpreted: the exact passes keep every bit;
        // the whole optimiser (with sum factoring, which reassociates sums) stays
        // within the tolerance of the compiled code above.
        let graph = g.build(&[&loss, &grad]).unwrap();
        let mut exact = graph.clone();
        onde::passes::exact_optimizer().run(&mut exact).unwrap();
        let mut opt = graph.clone();
        onde::passes_optimize(&mut opt).unwrap();
        let feeds: std::collections::HashMap<String, Array> = [("x".to_string(), feed)].into_iter().collect();
        let a = onde::runtime::run(&graph, &feeds).unwrap();
        let b = onde::runtime::run(&exact, &feeds).unwrap();
        for (p, q) in a.iter().zip(&b) {
            for (u, v) in p.to_f64_vec().iter().zip(q.to_f64_vec()) {
                prop_assert!((u.is_nan() && v.is_nan()) || u.to_bits() == v.to_bits(), "optimised {} vs unoptimised {}", v, u);
            }
        }
        let c = onde::runtime::run(&opt, &feeds).unwrap();
        for (k, (p, q)) in a.iter().zip(&c).enumerate() {
            let scale = p.to_f64_vec().iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let (rtol, mut atol) = if f64_ { (1e-8, 1e-10 * scale) } else { (1e-3, 1e-4 * scale) };
            if k == 0 {
                atol += cond * if f64_ { 1e-13 } else { 1e-5 };
            } else if cond > if f64_ { 1e11 } else { 1e3 } {
                continue;
            }
            for (u, v) in p.to_f64_vec().iter().zip(q.to_f64_vec()) {
                let ok = (u.is_nan() && v.is_nan()) || (u - v).abs() <= atol + rtol * u.abs();
                prop_assert!(ok, "factored {} vs unoptimised {}", v, u);
            }
        }
    }
}
