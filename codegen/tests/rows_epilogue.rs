//! A residual add `x + P·v`, or column sums of a product, as the product's epilogue
//! (`exec::rows_epilogue`; the softmax and its backward have their own files): shown
//! in the plan, never run as a step of its own where the one-panel kernel takes the
//! product (16 lanes, one thread), bit for bit the two steps run apart (a compile
//! without epilogues, at every level); the add in either operand order, refused when
//! the product is read elsewhere or the add broadcasts.

use crate::common::{assert_close, compile_with, step_calls, values};
use onde_codegen::plan::Step;
use onde_codegen::{CompileOptions, Executable, IsaLevel};
use onde_ir::{parse_graph, Array};

const FUSED: &str = "(the softmax of the product, its backward, an add or column sums)";

/// `h = x + p·v` (or `p·v + x`), then `h·w` (the residual's result is no graph output,
/// which a caller could bind anywhere), with `p·v` also an output when `expose`.
fn residual(swap: bool, expose: bool) -> String {
    let add = if swap { "%3, %2" } else { "%2, %3" };
    let outs = if expose { "%6, %3" } else { "%6" };
    format!(
        "graph {{
  %0: f32[2,100,100] = input \"p\"
  %1: f32[2,100,64] = input \"v\"
  %2: f32[2,100,64] = input \"x\"
  %5: f32[64,8] = input \"w\"
  %3: f32[2,100,64] = matmul %0, %1
  %4: f32[2,100,64] = add {add}
  %6: f32[2,100,8] = matmul %4, %5
  outputs {outs}
}}"
    )
}

fn feeds() -> Vec<(&'static str, Array)> {
    [
        ("p", 1u64, vec![2, 100, 100]),
        ("v", 2, vec![2, 100, 64]),
        ("x", 3, vec![2, 100, 64]),
        ("w", 4, vec![64, 8]),
    ]
    .into_iter()
    .map(|(name, seed, dims)| {
        let n = dims.iter().product();
        let data = values(n, seed, 2.0);
        let a = Array::from_f64(onde_ir::DType::F32, dims, &data).unwrap();
        (name, a)
    })
    .collect()
}

#[test]
fn a_residual_add_runs_as_the_products_epilogue_bit_identically() {
    let feeds = feeds();
    let refs: Vec<(&str, &Array)> = feeds.iter().map(|(n, a)| (*n, a)).collect();
    let named = feeds
        .iter()
        .map(|(n, a)| (n.to_string(), a.clone()))
        .collect();
    let add = |s: &Step| matches!(s, Step::Kernel(k) if k.loads.len() == 2);
    for swap in [false, true] {
        let g = parse_graph(&residual(swap, false)).unwrap();
        let oracle = onde_runtime::run(&g, &named).unwrap().remove(0);
        for isa in IsaLevel::ALL {
            let mut fused = compile_with(&g, isa, true, 1);
            let mut apart = compile_with(&g, isa, false, 1);
            fused.set_profiling(true);
            let dump = fused.dump_fused();
            assert!(dump.contains(FUSED), "{dump}");
            let got = fused.run(&refs).unwrap().remove(0);
            let what = format!("{isa:?} swap {swap}");
            assert_eq!(got, apart.run(&refs).unwrap().remove(0), "{what}");
            assert_close(&got, &oracle, 1e-4, &what);
            let taken = isa.capped() == IsaLevel::Avx512;
            assert_eq!(step_calls(&fused, add), u64::from(!taken), "{what}");
        }
    }
    // The product also an output: it must be stored, so no epilogue.
    let g = parse_graph(&residual(false, true)).unwrap();
    let exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    assert!(!exe.dump_fused().contains(FUSED), "{}", exe.dump_fused());
    // An add that broadcasts its other operand is not this epilogue.
    let src = "graph {
  %0: f32[2,100,100] = input \"p\"
  %1: f32[2,100,64] = input \"v\"
  %2: f32[1,100,64] = input \"x\"
  %5: f32[64,8] = input \"w\"
  %3: f32[2,100,64] = matmul %0, %1
  %7: f32[2,100,64] = expand %2 shape=[2,100,64]
  %4: f32[2,100,64] = add %3, %7
  %6: f32[2,100,8] = matmul %4, %5
  outputs %6
}";
    let g = parse_graph(src).unwrap();
    let exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    assert!(!exe.dump_fused().contains(FUSED), "{}", exe.dump_fused());
}

/// Column sums of a product (a bias gradient `Σ_{b,t} dV`, read by a later kernel as
/// an optimiser would) as its epilogue: the product is stored for its other reader (a
/// weight gradient) and is itself a graph output; where the one-panel kernel takes it, the sum never runs as a step of its
/// own; bits equal the two steps run apart at every level.
#[test]
fn column_sums_run_as_the_products_epilogue_bit_identically() {
    let src = "graph {
  %0: f32[2,100,100] = input \"p\"
  %1: f32[2,100,64] = input \"v\"
  %2: f32[2,100,64] = input \"x\"
  %3: f32[2,100,100] = permute %0 perm=[0,2,1]
  %4: f32[2,100,64] = matmul %3, %1
  %5: f32[64] = reduce_sum %4 axes=[0,1] keepdim=false
  %6: f32[200,64] = reshape %2 shape=[200,64]
  %7: f32[64,200] = permute %6 perm=[1,0]
  %8: f32[200,64] = reshape %4 shape=[200,64]
  %9: f32[64,64] = matmul %7, %8
  %10: f32[64] = mul %5, %5
  outputs %10, %9, %4
}";
    let g = parse_graph(src).unwrap();
    let feeds: Vec<_> = feeds().into_iter().filter(|(n, _)| *n != "w").collect();
    let refs: Vec<(&str, &Array)> = feeds.iter().map(|(n, a)| (*n, a)).collect();
    let named = feeds
        .iter()
        .map(|(n, a)| (n.to_string(), a.clone()))
        .collect();
    let oracle = onde_runtime::run(&g, &named).unwrap();
    let sum = |s: &Step| matches!(s, Step::Kernel(k) if k.reduction.is_some());
    for isa in IsaLevel::ALL {
        let mut fused = compile_with(&g, isa, true, 1);
        let mut apart = compile_with(&g, isa, false, 1);
        fused.set_profiling(true);
        let dump = fused.dump_fused();
        assert!(dump.contains(FUSED), "{dump}");
        let got = fused.run(&refs).unwrap();
        assert_eq!(got, apart.run(&refs).unwrap(), "{isa:?}");
        for (o, (g, w)) in got.iter().zip(&oracle).enumerate() {
            assert_close(g, w, 1e-4, &format!("{isa:?} output {o}"));
        }
        let taken = isa.capped() == IsaLevel::Avx512;
        assert_eq!(step_calls(&fused, sum), u64::from(!taken), "{isa:?}");
    }
}
