//! Softmax's backward as one op (`native::softmax_backward`, `Op::SoftmaxBackward`):
//! against the reference interpreter at every ISA level this CPU has (a level it lacks
//! runs the next lower path, which must keep the same promise), lines along the last
//! axis and across columns; and a scalar multiply of its result folded into the step
//! (`plan::scaled_softmax`) only when nothing else reads the unscaled result,
//! bit-identical to the separate multiply.

use onde_codegen::native::softmax_backward::{softmax_backward_f32, softmax_backward_f64};
use onde_codegen::{CompileOptions, Executable, IsaLevel};
use onde_ir::{parse_graph, Array, Op};

use crate::common::{assert_close, compile_with, interpret_op, step_calls, values};
use onde_codegen::plan::{CopyOp, Step};

/// The interpreter's `softmax_backward(dy, y)` along axis 1 of `[outer, n, inner]`.
fn reference(dy: &Array, y: &Array) -> Vec<f64> {
    interpret_op(Op::SoftmaxBackward { axis: 1 }, &[("dy", dy), ("y", y)])
}

#[test]
fn lines_of_every_length_match_the_interpreter_at_every_level() {
    for n in [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 129] {
        for inner in [1, 3, 16, 17] {
            let (outer, numel) = (3, 3 * n * inner);
            let dims = vec![outer, n, inner];
            let dy = values(numel, (n * 31 + inner) as u64, 2.0);
            let y = values(numel, (n * 37 + inner) as u64, 1.0);
            // f64: the interpreter's definition itself, bit for bit.
            let (dy64, y64) = (
                Array::f64(dims.clone(), dy.clone()).unwrap(),
                Array::f64(dims.clone(), y.clone()).unwrap(),
            );
            let want64 = reference(&dy64, &y64);
            let mut got64 = vec![0f64; numel];
            softmax_backward_f64(&dy, &y, &mut got64, (outer, n, inner), 1.0).unwrap();
            for (g, w) in got64.iter().zip(&want64) {
                assert_eq!(g.to_bits(), w.to_bits(), "f64 [{outer}, {n}, {inner}]");
            }
            // f32 at every level: within the rounding of an `n`-term sum.
            let dy32: Vec<f32> = dy.iter().map(|&v| v as f32).collect();
            let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
            let want = reference(
                &Array::f32(dims.clone(), dy32.clone()).unwrap(),
                &Array::f32(dims.clone(), y32.clone()).unwrap(),
            );
            for isa in IsaLevel::ALL {
                let mut got = vec![f32::NAN; numel];
                softmax_backward_f32(isa, &dy32, &y32, &mut got, (outer, n, inner), 1.0).unwrap();
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    let tol = 2.5e-7 * n as f64 + 2e-7 * w.abs();
                    assert!(
                        (f64::from(g) - w).abs() <= tol,
                        "{isa:?} [{outer}, {n}, {inner}] element {i}: got {g}, want {w}"
                    );
                }
            }
        }
    }
}

/// Attention's scaled scores gradient: `softmax_backward(dy, softmax(s)) · c`.
fn scaled_gradient(also_unscaled: bool) -> String {
    let outputs = if also_unscaled { "%5, %4" } else { "%5" };
    format!(
        "graph {{
  %0: f32[4,10,33] = input \"s\"
  %1: f32[4,10,33] = input \"dy\"
  %2: f32[4,10,33] = softmax %0 axis=2
  %3: f32[] = constant f32[] [0.125]
  %4: f32[4,10,33] = softmax_backward %1, %2 axis=2
  %5: f32[4,10,33] = mul %4, %3
  outputs {outputs}
}}"
    )
}

fn compile_and_run(src: &str) -> (Vec<Array>, String, Vec<Array>) {
    let g = parse_graph(src).unwrap();
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let numel = 4 * 10 * 33;
    let s = Array::from_f64(onde_ir::DType::F32, vec![4, 10, 33], &values(numel, 1, 3.0)).unwrap();
    let dy = Array::from_f64(onde_ir::DType::F32, vec![4, 10, 33], &values(numel, 2, 1.0)).unwrap();
    let got = exe.run(&[("s", &s), ("dy", &dy)]).unwrap();
    let feeds = [("s".to_string(), s), ("dy".to_string(), dy)]
        .into_iter()
        .collect();
    let want = onde_runtime::run(&g, &feeds).unwrap();
    (got, exe.dump_fused(), want)
}

#[test]
fn a_scalar_multiply_of_the_result_is_folded_bit_identically() {
    let (folded, dump, want) = compile_and_run(&scaled_gradient(false));
    assert!(dump.contains("scale: 0.125"), "{dump}");
    assert!(
        !dump.contains("kernel"),
        "the multiply still runs as a kernel:\n{dump}"
    );
    // With the unscaled result also an output, the multiply stays a kernel.
    let (both, dump, _) = compile_and_run(&scaled_gradient(true));
    assert!(
        dump.contains("scale: 1.0") && dump.contains("kernel"),
        "{dump}"
    );
    let bits = |a: &Array| {
        a.as_f32()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&folded[0]), bits(&both[0]));
    for (g, w) in folded[0].to_f64_vec().iter().zip(want[0].to_f64_vec()) {
        assert!((g - w).abs() <= 1e-6 + 1e-6 * w.abs(), "{g} vs {w}");
    }
}

/// `dS = softmax_backward(dO·vᵀ, P) · c` as attention's backward has it (`[2, 100, 64]
/// · [2, 64, 100]`), then `dS·v` (the gradient itself is no output: a caller could bind
/// an output to any memory), the product also an output when `also_product`.
fn product_then_backward(also_product: bool) -> String {
    let outputs = if also_product { "%9, %4" } else { "%9" };
    "graph {
  %0: f32[2,100,64] = input \"do\"
  %1: f32[2,100,64] = input \"v\"
  %2: f32[2,100,100] = input \"s\"
  %3: f32[2,64,100] = permute %1 perm=[0,2,1]
  %4: f32[2,100,100] = matmul %0, %3
  %5: f32[2,100,100] = softmax %2 axis=2
  %6: f32[] = constant f32[] [0.125]
  %8: f32[2,100,100] = softmax_backward %4, %5 axis=2
  %7: f32[2,100,100] = mul %8, %6
  %9: f32[2,100,64] = matmul %7, %1
  outputs OUTS
}"
    .replace("OUTS", outputs)
}

/// The backward step as the product's epilogue (`exec::rows_epilogue`): shown in
/// the plan, never run as a step of its own where the one-panel kernel takes the
/// product (16 lanes, one thread), and bit for bit the two steps run apart (a compile
/// without epilogues, at every level) — the product never stored; refused when the
/// product is read elsewhere.
#[test]
fn softmax_backward_runs_as_the_products_epilogue_bit_identically() {
    let g = parse_graph(&product_then_backward(false)).unwrap();
    let feeds: Vec<(&str, Array)> = [
        ("do", 1u64, 100 * 64),
        ("v", 2, 100 * 64),
        ("s", 3, 100 * 100),
    ]
    .into_iter()
    .map(|(name, seed, per)| {
        let dims = if per == 100 * 64 {
            vec![2, 100, 64]
        } else {
            vec![2, 100, 100]
        };
        let data = values(2 * per, seed, 2.0);
        (
            name,
            Array::from_f64(onde_ir::DType::F32, dims, &data).unwrap(),
        )
    })
    .collect();
    let refs: Vec<(&str, &Array)> = feeds.iter().map(|(n, a)| (*n, a)).collect();
    let named = feeds
        .iter()
        .map(|(n, a)| (n.to_string(), a.clone()))
        .collect();
    let oracle = onde_runtime::run(&g, &named).unwrap().remove(0);
    let backward = |s: &Step| matches!(s, Step::Copy(CopyOp::SoftmaxBackward { .. }, ..));
    for isa in IsaLevel::ALL {
        let mut fused = compile_with(&g, isa, true, 1);
        let mut apart = compile_with(&g, isa, false, 1);
        fused.set_profiling(true);
        let dump = fused.dump_fused();
        assert!(
            dump.contains("(the softmax of the product, its backward, an add or column sums)"),
            "{dump}"
        );
        let got = fused.run(&refs).unwrap().remove(0);
        assert_eq!(got, apart.run(&refs).unwrap().remove(0), "{isa:?}");
        assert_close(&got, &oracle, 1e-5, &format!("{isa:?}"));
        let taken = isa.capped() == IsaLevel::Avx512;
        assert_eq!(step_calls(&fused, backward), u64::from(!taken), "{isa:?}");
    }
    // On two threads the pair is not fused (the two steps run, the backward split by
    // lines): the same bits as one thread.
    let mut two = compile_with(&g, IsaLevel::detect(), true, 2);
    let mut one = compile_with(&g, IsaLevel::detect(), false, 1);
    two.set_profiling(true);
    let got = two.run(&refs).unwrap().remove(0);
    assert_eq!(got, one.run(&refs).unwrap().remove(0), "two threads");
    assert_eq!(step_calls(&two, backward), 1, "two threads");
    let g = parse_graph(&product_then_backward(true)).unwrap();
    let exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let dump = exe.dump_fused();
    assert!(
        !dump.contains("(the softmax of the product, its backward, an add or column sums)"),
        "{dump}"
    );
}
