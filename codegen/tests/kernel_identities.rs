//! Exact identities (`x·1`, `1·x`, `x/1`, `x - 0`) with broadcast constants, as
//! autodiff's seed produces them: the optimiser's simplifier removes them (it sees
//! through `expand` of a uniform constant), so no kernel multiplies, divides or
//! subtracts; with and without the optimiser the result is `x` bit for bit, `-0`,
//! infinities, denormals and NaN included, f32 and f64.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};

#[test]
fn identities_keep_every_bit() {
    let specials = [
        0.0,
        -0.0,
        1.5,
        -2.25,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1e-310,
        -7e300,
    ];
    for dtype in ["f32", "f64"] {
        let n = 5000; // above constant folding's limit: the broadcasts stay kernel constants
        let src = format!(
            r#"graph {{
  %0: {dtype}[{n}] = input "x"
  %1: {dtype}[1] = constant {dtype}[1] [1.0]
  %2: {dtype}[{n}] = expand %1 shape=[{n}]
  %3: {dtype}[{n}] = mul %2, %0
  %4: {dtype}[{n}] = mul %3, %2
  %5: {dtype}[{n}] = div %4, %2
  %6: {dtype}[1] = constant {dtype}[1] [0.0]
  %7: {dtype}[{n}] = expand %6 shape=[{n}]
  %8: {dtype}[{n}] = sub %5, %7
  outputs %8
}}"#
        );
        let g = parse_graph(&src).unwrap();
        let xs: Vec<f64> = (0..n).map(|i| specials[i % specials.len()]).collect();
        let x = Array::from_f64(
            if dtype == "f32" {
                onde_ir::DType::F32
            } else {
                onde_ir::DType::F64
            },
            vec![n],
            &xs,
        )
        .unwrap();
        for optimize in [false, true] {
            let mut exe = Executable::compile(
                &g,
                CompileOptions {
                    optimize,
                    ..CompileOptions::default()
                },
            )
            .unwrap();
            let dump = exe.dump_fused();
            if optimize {
                for op in ["mul", "div", "sub"] {
                    let e = format!("{dtype} = {op}");
                    assert!(!dump.contains(&e), "{dump}");
                }
            }
            let got = exe.run(&[("x", &x)]).unwrap()[0].clone();
            assert_eq!(got.dtype(), x.dtype());
            for (i, (a, b)) in got.to_f64_vec().iter().zip(x.to_f64_vec()).enumerate() {
                let same = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                assert!(
                    same,
                    "{dtype} optimize={optimize} element {i}: {a:e} vs {b:e}"
                );
            }
        }
    }
}
