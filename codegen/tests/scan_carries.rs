//! A carry whose new value is also a stacked output (an RNN's `h'` is its `y`) is read
//! by the next step from the output's slot, and a carry that is no output (an LSTM's
//! `c`) is written into its buffer and a spare by turns; only the last is copied to the
//! carry's buffer. Final carries and outputs equal the reference interpreter's,
//! forwards and in reverse, for one step (the last value in the spare) and several.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};
use std::collections::HashMap;

fn graph(len: usize, reverse: bool) -> String {
    format!(
        r#"graph {{
  %0: f32[{len},2,4] = input "x"
  %1: f32[4,4] = input "u"
  %2: f32[2,4] = input "h0"
  %3: f32[2,4] = input "s0"
  %4: f32[2,4], %5: f32[2,4], %6: f32[{len},2,4] = scan %2, %3, %0, %1 carry=2 xs=1 length={len} axis=0 reverse={reverse} {{
    %0: f32[2,4] = input "h"
    %1: f32[2,4] = input "s"
    %2: f32[2,4] = input "xt"
    %3: f32[4,4] = input "u"
    %4: f32[2,4] = matmul %0, %3
    %5: f32[2,4] = add %4, %2
    %6: f32[2,4] = tanh %5
    %7: f32[2,4] = add %1, %6
    outputs %6, %7, %6
  }}
  outputs %4, %5, %6
}}"#
    )
}

#[test]
fn carries_read_from_their_output_slots_end_where_the_interpreter_does() {
    for len in [1, 5] {
        for reverse in [false, true] {
            let g = parse_graph(&graph(len, reverse)).unwrap();
            let v = |n: usize, s: f32| -> Vec<f32> {
                (0..n).map(|i| ((i as f32 + s) * 0.61).sin()).collect()
            };
            let feeds: HashMap<String, Array> = [
                ("x", Array::f32([len, 2, 4], v(len * 8, 1.0)).unwrap()),
                ("u", Array::f32([4, 4], v(16, 2.0)).unwrap()),
                ("h0", Array::f32([2, 4], v(8, 3.0)).unwrap()),
                ("s0", Array::f32([2, 4], v(8, 4.0)).unwrap()),
            ]
            .into_iter()
            .map(|(n, a)| (n.to_string(), a))
            .collect();
            let want = onde_runtime::run(&g, &feeds).unwrap();
            let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
            let refs: Vec<(&str, &Array)> = feeds.iter().map(|(n, a)| (n.as_str(), a)).collect();
            // Twice: the second run starts again from h0, not from the last slot.
            for _ in 0..2 {
                let got = exe.run(&refs).unwrap();
                for (a, w) in got.iter().zip(&want) {
                    assert_eq!(a.shape(), w.shape());
                    for (p, q) in a.to_f64_vec().iter().zip(w.to_f64_vec()) {
                        assert!(
                            (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
                            "len {len} reverse {reverse}: {p} vs {q}"
                        );
                    }
                }
            }
        }
    }
}
