//! Gradient through a 50-step tanh recurrence: the reverse-time Scan equals the gradient
//! of the same recurrence unrolled by hand, and the differentiated graph's size does
//! not depend on the number of steps.

use onde::{stack, Array, DType, GraphBuilder, Tensor};

fn data(shape: &[usize], seed: usize) -> Array {
    let n: usize = shape.iter().product();
    Array::f64(
        shape.to_vec(),
        (0..n)
            .map(|k| ((k * 13 + seed * 7) as f64 * 0.137).sin() * 0.8)
            .collect(),
    )
    .unwrap()
}

/// Loss and gradients wrt (x, h0, W, U) of `Σ_t Σ h_t·c_t` with `h_t = tanh(x_t W + h_{t-1} U)`.
fn run(steps: usize, unrolled: bool) -> (Vec<Vec<f64>>, usize) {
    let (b, f, h) = (2, 3, 4);
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [b, steps, f]);
    let h0 = g.input("h0", DType::F64, [b, h]);
    let w = g.input("w", DType::F64, [f, h]);
    let u = g.input("u", DType::F64, [h, h]);
    let c = g.constant(data(&[b, steps, h], 9));
    let hs = if unrolled {
        let mut hp = h0.clone();
        let mut outs = Vec::new();
        for t in 0..steps {
            let xt = x.index(onde::s![.., t as i64, ..]);
            hp = (xt.matmul(&w) + hp.matmul(&u)).tanh();
            outs.push(hp.clone());
        }
        let refs: Vec<&Tensor> = outs.iter().collect();
        stack(&refs, 1)
    } else {
        g.scan(&[&h0], &[&x], &[&w, &u], 1, false, |c, xs, k| {
            let hn = (xs[0].matmul(&k[0]) + c[0].matmul(&k[1])).tanh();
            (vec![hn.clone()], vec![hn])
        })
        .remove(1)
    };
    let loss = (&hs * &c).sum_all();
    let grads = g.grad(&loss, &[&x, &h0, &w, &u]).unwrap();
    let mut outs = vec![&loss];
    outs.extend(grads.iter());
    let feeds = [
        ("x", data(&[b, steps, f], 1)),
        ("h0", data(&[b, h], 2)),
        ("w", data(&[f, h], 3)),
        ("u", data(&[h, h], 4)),
    ];
    let r = g.run(&outs, &feeds).unwrap();
    let size = g.build(&outs).unwrap().num_ops();
    (r.iter().map(|a| a.to_f64_vec()).collect(), size)
}

#[test]
fn fifty_step_scan_gradient_equals_unrolled() {
    let (scanned, _) = run(50, false);
    let (unrolled, _) = run(50, true);
    for (k, (s, u)) in scanned.iter().zip(&unrolled).enumerate() {
        assert_eq!(s.len(), u.len());
        for (i, (a, b)) in s.iter().zip(u).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "output {k} element {i}: scan {a} vs unrolled {b}"
            );
        }
    }
}

#[test]
fn differentiated_scan_graph_size_does_not_grow_with_steps() {
    let (_, n10) = run(10, false);
    let (_, n500) = run(500, false);
    assert_eq!(n10, n500);
    let (_, u10) = run(10, true);
    let (_, u20) = run(20, true);
    assert!(u20 > u10, "the unrolled graph does grow: {u10} vs {u20}");
}
