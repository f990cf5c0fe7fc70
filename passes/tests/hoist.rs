//! Hoisting the input projection of an RNN out of its scan: the body keeps only the
//! recurrent matmul, the outer graph gains one batched matmul over the sequence, and
//! the results are unchanged (interpreter before vs after).

use onde_ir::{parse_graph, Array, Op};
use onde_passes::{HoistScan, Pass};
use std::collections::HashMap;

const RNN: &str = r#"graph {
  %0: f32[2,5,3] = input "x"
  %1: f32[3,4] = input "w"
  %2: f32[4,4] = input "u"
  %3: f32[4] = input "b"
  %4: f32[2,4] = input "h0"
  %5: f32[2,4], %6: f32[2,5,4] = scan %4, %0, %1, %2, %3 carry=1 xs=1 length=5 axis=1 reverse=false {
    %0: f32[2,4] = input "c"
    %1: f32[2,3] = input "xt"
    %2: f32[3,4] = input "w"
    %3: f32[4,4] = input "u"
    %4: f32[4] = input "b"
    %5: f32[2,4] = matmul %1, %2
    %6: f32[2,4] = add %5, %4
    %7: f32[2,4] = matmul %0, %3
    %8: f32[2,4] = add %6, %7
    %9: f32[2,4] = tanh %8
    outputs %9, %9
  }
  outputs %5, %6
}"#;

fn count(g: &onde_ir::Graph, f: impl Fn(&Op) -> bool) -> usize {
    g.op_ids().into_iter().filter(|&o| f(&g.op(o).op)).count()
}

fn data(shape: &[usize], seed: usize) -> Array {
    let n: usize = shape.iter().product();
    Array::f32(
        shape.to_vec(),
        (0..n)
            .map(|k| ((k * 7 + seed * 13) as f32 * 0.37).sin())
            .collect(),
    )
    .unwrap()
}

#[test]
fn input_projection_leaves_the_loop() {
    let g0 = parse_graph(RNN).unwrap();
    let mut g = g0.clone();
    assert!(HoistScan.run(&mut g).unwrap());
    onde_ir::verify(&g).unwrap();
    // Outside: one batched matmul [2,5,3] @ [3,4].
    assert_eq!(count(&g, |op| *op == Op::MatMul), 1);
    let scan = g.op_ids().into_iter().find_map(|o| {
        if let Op::Scan(s) = &g.op(o).op {
            Some(s.clone())
        } else {
            None
        }
    });
    let scan = scan.unwrap();
    assert_eq!(scan.num_xs, 2);
    // Inside: only the recurrent matmul remains; the bias added to the projection
    // stays in the step (fused there) instead of a pass over the stacked projection.
    assert_eq!(count(&scan.body, |op| *op == Op::MatMul), 1);
    let add = |op: &Op| *op == Op::Binary(onde_ir::BinaryOp::Add);
    assert_eq!(count(&scan.body, add), 2);
    assert_eq!(count(&g, add), 0);
    let feeds: HashMap<String, Array> = [
        ("x", data(&[2, 5, 3], 1)),
        ("w", data(&[3, 4], 2)),
        ("u", data(&[4, 4], 3)),
        ("b", data(&[4], 4)),
        ("h0", data(&[2, 4], 5)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let before = onde_runtime::run(&g0, &feeds).unwrap();
    let after = onde_runtime::run(&g, &feeds).unwrap();
    for (a, b) in before.iter().zip(&after) {
        for (p, q) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
            assert!((p - q).abs() <= 1e-6, "{p} vs {q}");
        }
    }
    // A second run finds nothing more to hoist.
    assert!(!HoistScan.run(&mut g).unwrap());
}

/// A scan over `d`, a `[B, 1, H]` value broadcast along time (the cotangent of a mean
/// over time) and permuted time-first, plus a genuinely scanned `x`.
const BROADCAST_XS: &str = r#"graph {
  %0: f32[5,2,4] = input "x"
  %1: f32[2,1,4] = input "d"
  %2: f32[2,4] = input "h0"
  %3: f32[4,4] = input "u"
  %4: f32[2,5,4] = expand %1 shape=[2,5,4]
  %5: f32[5,2,4] = permute %4 perm=[1,0,2]
  %6: f32[5,2,4] = neg %5
  %7: f32[2,4], %8: f32[5,2,4] = scan %2, %0, %6, %3 carry=1 xs=2 length=5 axis=0 reverse=true {
    %0: f32[2,4] = input "c"
    %1: f32[2,4] = input "xt"
    %2: f32[2,4] = input "dt"
    %3: f32[4,4] = input "u"
    %4: f32[2,4] = matmul %0, %3
    %5: f32[2,4] = add %4, %1
    %6: f32[2,4] = mul %5, %2
    %7: f32[2,4] = tanh %6
    outputs %7, %7
  }
  outputs %7, %8
}"#;

#[test]
fn a_scanned_input_the_same_at_every_step_becomes_an_invariant() {
    let g0 = parse_graph(BROADCAST_XS).unwrap();
    let mut g = g0.clone();
    assert!(HoistScan.run(&mut g).unwrap());
    onde_ir::verify(&g).unwrap();
    let scan = g
        .op_ids()
        .into_iter()
        .find_map(|o| {
            if let Op::Scan(s) = &g.op(o).op {
                Some(s.clone())
            } else {
                None
            }
        })
        .unwrap();
    // `x` stays scanned; `d` (through the permute and the negation) is read once.
    assert_eq!(scan.num_xs, 1);
    assert_eq!(scan.body.inputs().len(), 4);
    let feeds: HashMap<String, Array> = [
        ("x", data(&[5, 2, 4], 1)),
        ("d", data(&[2, 1, 4], 2)),
        ("h0", data(&[2, 4], 3)),
        ("u", data(&[4, 4], 4)),
    ]
    .into_iter()
    .map(|(n, a)| (n.to_string(), a))
    .collect();
    let before = onde_runtime::run(&g0, &feeds).unwrap();
    let after = onde_runtime::run(&g, &feeds).unwrap();
    assert_eq!(before, after);
    // A genuinely scanned input is left alone.
    let mut again = g.clone();
    assert!(!HoistScan.run(&mut again).unwrap());
}
