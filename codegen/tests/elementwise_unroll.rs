//! Elementwise kernels' vector loop runs four vectors per iteration
//! (`clif::ELEMENTWISE_UNROLL`), then single vectors, then a scalar tail. Checked bit
//! for bit against the reference interpreter at every row length around those
//! boundaries, for f32 and f64, with a contiguous operand, one broadcast along the
//! row and one across rows, at every ISA level this CPU has.

use crate::common;
use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};

#[test]
fn every_row_length_matches_the_interpreter_bit_for_bit() {
    for dtype in ["f32", "f64"] {
        for n in [
            1usize, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100,
        ] {
            // `x[3, n] · b[3, 1] + z[1, n]`: `b` broadcast along the row (stride 0),
            // `z` across rows (the same row read for each).
            let src = format!(
                r#"graph {{
  %0: {dtype}[3,{n}] = input "x"
  %1: {dtype}[3,1] = input "b"
  %2: {dtype}[1,{n}] = input "z"
  %3: {dtype}[3,{n}] = expand %1 shape=[3,{n}]
  %4: {dtype}[3,{n}] = mul %0, %3
  %5: {dtype}[3,{n}] = expand %2 shape=[3,{n}]
  %6: {dtype}[3,{n}] = add %4, %5
  %7: {dtype}[3,{n}] = sub %0, %4
  outputs %6, %7
}}"#
            );
            let g = parse_graph(&src).unwrap();
            let arr = |shape: [usize; 2], seed: u64| {
                let v = common::values(shape[0] * shape[1], seed, 3.0);
                if dtype == "f32" {
                    Array::f32(shape, v.iter().map(|&x| x as f32).collect()).unwrap()
                } else {
                    Array::f64(shape, v).unwrap()
                }
            };
            let (x, b, z) = (arr([3, n], 1), arr([3, 1], 2), arr([1, n], 3));
            let feeds = [("x", &x), ("b", &b), ("z", &z)];
            let owned = feeds
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).clone()))
                .collect();
            let want = onde_runtime::run(&g, &owned).unwrap();
            for isa in common::isa_levels() {
                let options = CompileOptions {
                    isa,
                    ..CompileOptions::default()
                };
                let mut exe = Executable::compile(&g, options).unwrap();
                let plan = exe.dump_fused();
                assert!(
                    plan.matches("step ").count() == 1 && plan.contains("strides=[0, 1]"),
                    "{plan}"
                );
                let got = exe.run(&feeds).unwrap();
                for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                    let (g, w) = (g.to_f64_vec(), w.to_f64_vec());
                    for (i, (a, e)) in g.iter().zip(&w).enumerate() {
                        assert!(
                            a.to_bits() == e.to_bits(),
                            "{dtype} n={n} {isa:?} output {o} element {i}: {a:e} vs {e:e}"
                        );
                    }
                }
            }
        }
    }
}
