//! Exact simplification rules keep every bit: `x / 2ᵏ → x · 2⁻ᵏ` (`div_pow2`) on f32 and
//! f64 values spanning normals, subnormals, zeros, infinities and NaN, interpreted
//! before and after `simplify`.

use onde::ir::{parse_graph, Array};
use onde::passes::{Dce, Pass, Simplify};
use std::collections::HashMap;

#[test]
fn dividing_by_a_power_of_two_is_multiplying_bit_for_bit() {
    for (dt, divisors) in [
        (
            "f32",
            vec![8.0, -0.5, 2f64.powi(126), 2f64.powi(-126), 1024.0],
        ),
        ("f64", vec![8.0, -0.25, 2f64.powi(1022), 2f64.powi(-1022)]),
    ] {
        for c in divisors {
            let src = format!(
                r#"graph {{
  %0: {dt}[12] = input "x"
  %1: {dt}[] = constant {dt}[] [{c:e}]
  %2: {dt}[12] = expand %1 shape=[12]
  %3: {dt}[12] = div %0, %2
  outputs %3
}}"#
            );
            let g = parse_graph(&src).unwrap();
            let mut s = g.clone();
            Simplify::default().run(&mut s).unwrap();
            Dce.run(&mut s).unwrap();
            assert!(
                !onde::ir::print_graph(&s).contains("= div"),
                "{dt} / {c}: not rewritten"
            );
            let vals = [
                1.0,
                -3.75,
                1e-40,
                -1e-45,
                5e-324,
                0.0,
                -0.0,
                3e38,
                1e300,
                f64::INFINITY,
                f64::NAN,
                0.1,
            ];
            let x = Array::from_f64(
                if dt == "f32" {
                    onde::DType::F32
                } else {
                    onde::DType::F64
                },
                vec![12],
                &vals,
            )
            .unwrap();
            let feeds: HashMap<String, Array> = [("x".to_string(), x)].into_iter().collect();
            let a = onde::runtime::run(&g, &feeds).unwrap()[0].to_f64_vec();
            let b = onde::runtime::run(&s, &feeds).unwrap()[0].to_f64_vec();
            for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                assert!(
                    p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()),
                    "{dt} x[{i}] / {c}: {p:e} vs {q:e}"
                );
            }
        }
    }
}
