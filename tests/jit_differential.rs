//! Differential tests of the compiler: random programs over every op (odd lengths,
//! broadcasting, size-1 and size-0 dims, non-contiguous views from slices and
//! permutes, f32 and f64) give the same results compiled (JIT) and interpreted.
//! Tolerances: f64 1e-9 relative; f32 2e-4 relative + 1e-5 absolute (the JIT's
//! polynomial exp/log/tanh are within a few ulp, and its sums are reassociated).
//! Longer sweep: `PROPTEST_CASES=2000 cargo test --release --test jit_differential`.

mod common;

use onde::{Array, DType, Tensor};
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
        steps in prop::collection::vec((0u8..30, 0usize..8, 0usize..8, 0usize..8), 1..10),
    ) {
        let dtype = if f64_ { DType::F64 } else { DType::F32 };
        let (g, _, outs) = common::program(dtype, &shape, &steps);
        let refs: Vec<&Tensor> = outs.iter().collect();
        let feed = common::data(dtype, &shape, 7);
        let want = g.run(&refs, &[("x", feed.clone())]);
        let mut exe = g.compile(&refs).expect("compiles");
        let got = exe.run(&[("x", feed)]);
        match (want, got) {
            (Ok(w), Ok(gv)) => {
                for (k, (a, b)) in gv.iter().zip(&w).enumerate() {
                    if let Err(e) = close(dtype, a, b) {
                        prop_assert!(false, "output {}: {}\n{}", k, e, exe.executable().dump_fused());
                    }
                }
            }
            (Err(_), Err(_)) => {}
            (w, gv) => prop_assert!(false, "interpreter {:?} vs jit {:?}", w.map(|_| ()), gv.map(|_| ())),
        }
    }
}
