//! Property: the interpreter's Scan equals the same recurrence unrolled by hand, and
//! the scanned graph's size does not depend on the number of steps.

use onde::{stack, Array, DType, GraphBuilder, Tensor};
use proptest::prelude::*;

fn data(shape: &[usize], seed: usize) -> Array {
    let n: usize = shape.iter().product();
    Array::f32(
        shape.to_vec(),
        (0..n)
            .map(|k| ((k * 7 + seed) as f32 * 0.173).sin())
            .collect(),
    )
    .unwrap()
}

/// One step of an Elman RNN: `h' = tanh(x W^T + h U^T + b)`; also emits `2h'`.
fn cell(h: &Tensor, x: &Tensor, w: &Tensor, u: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
    let h2 = (x.matmul(&w.t()) + h.matmul(&u.t()) + b).tanh();
    let y = &h2 * 2.0;
    (h2, y)
}

fn run_both(
    batch: usize,
    steps: usize,
    feat: usize,
    hid: usize,
    reverse: bool,
) -> (Vec<Array>, Vec<Array>, usize) {
    let feeds = vec![
        ("x", data(&[batch, steps, feat], 1)),
        ("w", data(&[hid, feat], 2)),
        ("u", data(&[hid, hid], 3)),
        ("b", data(&[hid], 4)),
        ("h0", data(&[batch, hid], 5)),
    ];
    // Scanned.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [batch, steps, feat]);
    let w = g.input("w", DType::F32, [hid, feat]);
    let u = g.input("u", DType::F32, [hid, hid]);
    let b = g.input("b", DType::F32, [hid]);
    let h0 = g.input("h0", DType::F32, [batch, hid]);
    let out = g.scan(&[&h0], &[&x], &[&w, &u, &b], 1, reverse, |c, xs, k| {
        let (h, y) = cell(&c[0], &xs[0], &k[0], &k[1], &k[2]);
        (vec![h], vec![y])
    });
    let scanned = g.run(&[&out[0], &out[1]], &feeds).unwrap();
    let size = g.build(&[&out[0], &out[1]]).unwrap().num_ops();
    // Unrolled by hand.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [batch, steps, feat]);
    let w = g.input("w", DType::F32, [hid, feat]);
    let u = g.input("u", DType::F32, [hid, hid]);
    let b = g.input("b", DType::F32, [hid]);
    let mut h = g.input("h0", DType::F32, [batch, hid]);
    let mut ys = vec![None; steps];
    let order: Vec<usize> = if reverse {
        (0..steps).rev().collect()
    } else {
        (0..steps).collect()
    };
    for t in order {
        let xt = x.select_step(t);
        let (h2, y) = cell(&h, &xt, &w, &u, &b);
        h = h2;
        ys[t] = Some(y);
    }
    let ys: Vec<Tensor> = ys.into_iter().map(|y| y.unwrap()).collect();
    let refs: Vec<&Tensor> = ys.iter().collect();
    let stacked = if steps == 0 {
        x.slice(1, Some(0), Some(0), 1)
            .sum([2], false)
            .unsqueeze(2)
            .expand([batch as i64, 0, hid as i64])
    } else {
        stack(&refs, 1)
    };
    let unrolled = g.run(&[&h, &stacked], &feeds).unwrap();
    (scanned, unrolled, size)
}

trait SelectStep {
    fn select_step(&self, t: usize) -> Tensor;
}

impl SelectStep for Tensor {
    fn select_step(&self, t: usize) -> Tensor {
        self.index(onde::s![.., t as i64, ..])
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn scan_equals_unrolled(batch in 1usize..4, steps in 0usize..7, feat in 1usize..4, hid in 1usize..4, reverse: bool) {
        let (s, u, _) = run_both(batch, steps, feat, hid, reverse);
        prop_assert_eq!(s, u);
    }
}

#[test]
fn scan_graph_size_is_independent_of_length() {
    let (_, _, n10) = run_both(2, 10, 3, 4, false);
    let (s, u, n100) = run_both(2, 100, 3, 4, false);
    assert_eq!(n10, n100);
    assert_eq!(s, u);
}
