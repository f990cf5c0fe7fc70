//! A scalar factor of softmax's operand folded into the softmax step
//! (`plan::scaled_softmax`): `softmax(mul(x, c))` reads `x` and multiplies as it loads,
//! bit-identical to the multiply as a kernel of its own (kept where the scaled value is
//! read elsewhere), for an input or a computed `x`, `c` on either side, f32 and f64, the
//! last axis or another; and through the optimiser, attention's `softmax(q·kᵀ·c)`
//! keeps its scale on the scores (`passes::scale_matmul` leaves it) so that it folds.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array, DType};

use crate::common::{assert_close, compile_with, step_calls, values};
use onde_codegen::plan::{CopyOp, Step};

/// `softmax(x · c)` over `[4, 10, 33]` along `axis`, with `x` the input `s` or
/// `tanh(s)`, `c` on the `left` or right, and the scaled value also an output when
/// `also_scaled`.
fn scaled(dt: &str, axis: usize, computed: bool, left: bool, also_scaled: bool) -> String {
    let x = if computed {
        format!("  %5: {dt}[4,10,33] = tanh %0\n")
    } else {
        String::new()
    };
    let xv = if computed { "%5" } else { "%0" };
    let (p, q) = if left { ("%1", xv) } else { (xv, "%1") };
    let outputs = if also_scaled { "%3, %2" } else { "%3" };
    format!(
        "graph {{
  %0: {dt}[4,10,33] = input \"s\"
{x}  %1: {dt}[] = constant {dt}[] [0.3]
  %2: {dt}[4,10,33] = mul {p}, {q}
  %3: {dt}[4,10,33] = softmax %2 axis={axis}
  outputs {outputs}
}}"
    )
}

/// The compiled outputs, the plan dump and the interpreter's outputs.
fn compile_and_run(src: &str, dtype: DType) -> (Vec<Array>, String, Vec<Array>) {
    let g = parse_graph(src).unwrap();
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let s = Array::from_f64(dtype, vec![4, 10, 33], &values(4 * 10 * 33, 1, 3.0)).unwrap();
    let got = exe.run(&[("s", &s)]).unwrap();
    let feeds = [("s".to_string(), s)].into_iter().collect();
    let want = onde_runtime::run(&g, &feeds).unwrap();
    (got, exe.dump_fused(), want)
}

/// Whether some kernel of the dump multiplies (the scale not folded).
fn multiplies(dump: &str) -> bool {
    dump.lines().any(|l| l.contains("= mul "))
}

#[test]
fn the_operand_scale_folds_into_the_softmax_bit_identically() {
    for (dt, dtype) in [("f32", DType::F32), ("f64", DType::F64)] {
        for axis in [2, 1] {
            for computed in [false, true] {
                for left in [false, true] {
                    let what = format!("{dt} axis {axis} computed {computed} left {left}");
                    let (folded, dump, want) =
                        compile_and_run(&scaled(dt, axis, computed, left, false), dtype);
                    let step = format!("Softmax {{ axis: {axis}, scale: 0.3");
                    assert!(dump.contains(&step), "{what}:\n{dump}");
                    assert!(!multiplies(&dump), "{what}: the multiply runs:\n{dump}");
                    // Read elsewhere, the scaled value is stored by a kernel and the
                    // softmax reads it unscaled.
                    let (both, dump, _) =
                        compile_and_run(&scaled(dt, axis, computed, left, true), dtype);
                    assert!(
                        dump.contains(&format!("Softmax {{ axis: {axis}, scale: 1.0 }}"))
                            && multiplies(&dump),
                        "{what}:\n{dump}"
                    );
                    assert_eq!(folded[0], both[0], "{what}");
                    for (g, w) in folded[0].to_f64_vec().iter().zip(want[0].to_f64_vec()) {
                        assert!((g - w).abs() <= 1e-6 + 1e-6 * w.abs(), "{what}: {g} vs {w}");
                    }
                }
            }
        }
    }
}

/// Attention's scores through the optimiser: the scale stays on the scores and folds
/// into the softmax; `q` is not scaled by any kernel.
#[test]
fn attention_scores_keep_their_scale_for_the_softmax() {
    let src = "graph {
  %0: f32[2,9,8] = input \"q\"
  %1: f32[2,9,8] = input \"k\"
  %2: f32[2,9,8] = tanh %0
  %3: f32[2,8,9] = permute %1 perm=[0,2,1]
  %4: f32[2,9,9] = matmul %2, %3
  %5: f32[] = constant f32[] [0.125]
  %6: f32[2,9,9] = mul %4, %5
  %7: f32[2,9,9] = softmax %6 axis=2
  outputs %7
}";
    let g = parse_graph(src).unwrap();
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let dump = exe.dump_fused();
    assert!(dump.contains("Softmax { axis: 2, scale: 0.125 }"), "{dump}");
    assert!(
        !multiplies(&dump),
        "a kernel scales q or the scores:\n{dump}"
    );
    let q = Array::from_f64(DType::F32, vec![2, 9, 8], &values(144, 2, 2.0)).unwrap();
    let k = Array::from_f64(DType::F32, vec![2, 9, 8], &values(144, 3, 2.0)).unwrap();
    let got = exe.run(&[("q", &q), ("k", &k)]).unwrap();
    let feeds = [("q".to_string(), q), ("k".to_string(), k)]
        .into_iter()
        .collect();
    let want = onde_runtime::run(&g, &feeds).unwrap();
    for (g, w) in got[0].to_f64_vec().iter().zip(want[0].to_f64_vec()) {
        assert!((g - w).abs() <= 1e-6 + 1e-6 * w.abs(), "{g} vs {w}");
    }
}

/// Attention's forward `softmax(q·kᵀ·c)·v` (`[2, 100, 64]`): the softmax runs as the
/// scores product's epilogue (`exec::rows_epilogue`) — never as a step of its own
/// where the one-panel kernel takes the product (16 lanes, one thread) — bit for bit
/// the two steps apart (a compile without epilogues), at every level.
#[test]
fn the_softmax_runs_as_the_scores_products_epilogue_bit_identically() {
    let src = "graph {
  %0: f32[2,100,64] = input \"q\"
  %1: f32[2,100,64] = input \"k\"
  %2: f32[2,100,64] = input \"v\"
  %3: f32[2,64,100] = permute %1 perm=[0,2,1]
  %4: f32[2,100,100] = matmul %0, %3
  %5: f32[] = constant f32[] [0.125]
  %6: f32[2,100,100] = mul %4, %5
  %7: f32[2,100,100] = softmax %6 axis=2
  %8: f32[2,100,64] = matmul %7, %2
  outputs %8
}";
    let g = parse_graph(src).unwrap();
    let feeds: Vec<(&str, Array)> = [("q", 1u64), ("k", 2), ("v", 3)]
        .into_iter()
        .map(|(name, seed)| {
            let data = values(2 * 100 * 64, seed, 2.0);
            (
                name,
                Array::from_f64(DType::F32, vec![2, 100, 64], &data).unwrap(),
            )
        })
        .collect();
    let refs: Vec<(&str, &Array)> = feeds.iter().map(|(n, a)| (*n, a)).collect();
    let named = feeds
        .iter()
        .map(|(n, a)| (n.to_string(), a.clone()))
        .collect();
    let oracle = onde_runtime::run(&g, &named).unwrap().remove(0);
    for isa in onde_codegen::IsaLevel::ALL {
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
        let softmax = |s: &Step| matches!(s, Step::Copy(CopyOp::Softmax { .. }, ..));
        let taken = isa.capped() == onde_codegen::IsaLevel::Avx512;
        assert_eq!(step_calls(&fused, softmax), u64::from(!taken), "{isa:?}");
    }
}
