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
    let feeds = [
        ("x", data(&[b, steps, f], 1)),
        ("h0", data(&[b, h], 2)),
        ("w", data(&[f, h], 3)),
        ("u", data(&[h, h], 4)),
    ];
    let (r, graph) = loss_and_grads(&g, &loss, &[&x, &h0, &w, &u], &feeds);
    (r, graph.num_ops())
}

/// The loss and its gradients with respect to `wrt` on `feeds` (interpreted), and the
/// graph computing them.
fn loss_and_grads(
    g: &GraphBuilder,
    loss: &Tensor,
    wrt: &[&Tensor],
    feeds: &[(&str, Array)],
) -> (Vec<Vec<f64>>, onde::ir::Graph) {
    let grads = g.grad(loss, wrt).unwrap();
    let mut outs = vec![loss];
    outs.extend(grads.iter());
    let r = g.run(&outs, feeds).unwrap();
    let graph = g.build(&outs).unwrap();
    (r.iter().map(|a| a.to_f64_vec()).collect(), graph)
}

/// Every output of the scanned and the unrolled graph agree to 1e-12 (f64).
fn assert_same(scanned: &[Vec<f64>], unrolled: &[Vec<f64>]) {
    for (k, (s, u)) in scanned.iter().zip(unrolled).enumerate() {
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
fn fifty_step_scan_gradient_equals_unrolled() {
    let (scanned, _) = run(50, false);
    let (unrolled, _) = run(50, true);
    assert_same(&scanned, &unrolled);
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

/// An LSTM step's gates cut by `narrow` from one product `[x_t, h] → 4·H`.
fn lstm_step(xs: &Tensor, h: &Tensor, c: &Tensor, w: &Tensor, u: &Tensor) -> (Tensor, Tensor) {
    let hs = h.shape().dims()[1];
    let pre = xs.matmul(w) + h.matmul(u);
    let gate = |i: usize| pre.narrow(-1, (i * hs) as i64, hs);
    let (i, f, gg, o) = (
        gate(0).sigmoid(),
        gate(1).sigmoid(),
        gate(2).tanh(),
        gate(3).sigmoid(),
    );
    let c2 = &f * c + &i * &gg;
    let h2 = &o * &c2.tanh();
    (h2, c2)
}

/// Loss and gradients wrt (x, h0, c0, W, U) of an LSTM recurrence as a scan or unrolled;
/// the graph of the gradients too.
fn run_lstm(steps: usize, unrolled: bool) -> (Vec<Vec<f64>>, onde::ir::Graph) {
    let (b, f, h) = (2, 3, 4);
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [b, steps, f]);
    let h0 = g.input("h0", DType::F64, [b, h]);
    let c0 = g.input("c0", DType::F64, [b, h]);
    let w = g.input("w", DType::F64, [f, 4 * h]);
    let u = g.input("u", DType::F64, [h, 4 * h]);
    let k = g.constant(data(&[b, steps, h], 9));
    let hs = if unrolled {
        let (mut hp, mut cp) = (h0.clone(), c0.clone());
        let mut outs = Vec::new();
        for t in 0..steps {
            let xt = x.index(onde::s![.., t as i64, ..]);
            (hp, cp) = lstm_step(&xt, &hp, &cp, &w, &u);
            outs.push(hp.clone());
        }
        let refs: Vec<&Tensor> = outs.iter().collect();
        stack(&refs, 1)
    } else {
        g.scan(&[&h0, &c0], &[&x], &[&w, &u], 1, false, |c, xs, k| {
            let (h2, c2) = lstm_step(&xs[0], &c[0], &c[1], &k[0], &k[1]);
            (vec![h2.clone(), c2], vec![h2])
        })
        .remove(2)
    };
    let loss = (&hs * &k).sum_all();
    let feeds = [
        ("x", data(&[b, steps, f], 1)),
        ("h0", data(&[b, h], 2)),
        ("c0", data(&[b, h], 5)),
        ("w", data(&[f, 4 * h], 3)),
        ("u", data(&[h, 4 * h], 4)),
    ];
    loss_and_grads(&g, &loss, &[&x, &h0, &c0, &w, &u], &feeds)
}

#[test]
fn lstm_scan_gradient_equals_unrolled() {
    let (scanned, _) = run_lstm(30, false);
    let (unrolled, _) = run_lstm(30, true);
    assert_same(&scanned, &unrolled);
}

/// The backward scan reads what the forward computed: the gates' `sigmoid`/`tanh` and
/// `tanh(c)` are stacked by the forward scan, so the backward body evaluates no
/// transcendental, and its matrix products are the cotangents' `dG · Uᵀ` and `dG · Wᵀ`
/// (`Uᵀ·dG` is summed over the steps after the loop); the four
/// gates' cotangents are joined by one concatenation, not padded and summed.
#[test]
fn lstm_backward_scan_reads_saved_gates() {
    use onde::ir::{Op, UnaryOp};
    let (_, graph) = run_lstm(7, false);
    let scans: Vec<_> = graph
        .op_ids()
        .into_iter()
        .filter_map(|o| {
            if let Op::Scan(s) = &graph.op(o).op {
                Some((s.clone(), graph.results(o).len()))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(scans.len(), 2, "a forward and a backward scan");
    let count = |body: &onde::ir::Graph, f: &dyn Fn(&Op) -> bool| {
        body.op_ids()
            .into_iter()
            .filter(|&o| f(&body.op(o).op))
            .count()
    };
    let (fwd, n_fwd) = scans.iter().find(|(s, _)| !s.reverse).unwrap();
    let (bwd, _) = scans.iter().find(|(s, _)| s.reverse).unwrap();
    let transcendental = |op: &Op| matches!(op, Op::Unary(u) if u.is_transcendental());
    assert_eq!(count(&bwd.body, &transcendental), 0, "{:?}", bwd.body);
    assert_eq!(count(&bwd.body, &|op| *op == Op::MatMul), 2);
    assert_eq!(count(&bwd.body, &|op| matches!(op, Op::Pad { .. })), 0);
    assert_eq!(count(&bwd.body, &|op| matches!(op, Op::Concat { .. })), 1);
    // Carries h, c; output h; saved h, c; saved i, f, g, o and tanh(c').
    assert_eq!(*n_fwd, 2 + 1 + 2 + 5);
    assert_eq!(
        count(&fwd.body, &|op| matches!(op, Op::Unary(UnaryOp::Sigmoid))),
        3
    );
}

/// Gradients of slices: adjacent ranges (in any order) are joined by one
/// concatenation; an overlapping slice is added; the values are exact.
#[test]
fn gradient_of_adjacent_slices_is_one_concatenation() {
    use onde::ir::Op;
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2, 8]);
    // Columns 6..8, 0..2, 2..6 (adjacent, out of order) and 1..3 (overlapping).
    let parts: [(i64, usize, f64); 4] = [(6, 2, 5.0), (0, 2, 2.0), (2, 4, 3.0), (1, 2, 7.0)];
    let term = |&(start, len, wgt): &(i64, usize, f64)| x.narrow(1, start, len).sum_all() * wgt;
    let mut loss = term(&parts[0]);
    for p in &parts[1..] {
        loss = loss + term(p);
    }
    let dx = g.grad(&loss, &[&x]).unwrap().remove(0);
    let feeds = [("x", data(&[2, 8], 1))];
    let got = g.run(&[&dx], &feeds).unwrap()[0].to_f64_vec();
    let mut col = [0.0f64; 8];
    for &(start, len, wgt) in &parts {
        for c in col.iter_mut().skip(start as usize).take(len) {
            *c += wgt;
        }
    }
    let want: Vec<f64> = (0..16).map(|i| col[i % 8]).collect();
    assert_eq!(got, want);
    let graph = g.build(&[&dx]).unwrap();
    let concats = graph
        .op_ids()
        .into_iter()
        .filter(|&o| matches!(graph.op(o).op, Op::Concat { .. }))
        .count();
    assert_eq!(concats, 1, "{graph:?}");
}

/// A step `y = tanh(x_t + h·U) ⊙ m(h·U)`: with `m` the identity the product `h·U` is
/// also multiplied (not an offset), so the forward scan stacks it whole; with
/// `m = sigmoid(h·U + b)` every use is an offset, so the product is never stacked (the
/// gradient reads the gates' outputs). Gradients equal the unrolled recurrence's in
/// both.
fn offset_case(multiplied: bool, steps: usize, unrolled: bool) -> (Vec<Vec<f64>>, onde::ir::Graph) {
    let (b, h) = (2, 4);
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [steps, b, h]);
    let h0 = g.input("h0", DType::F64, [b, h]);
    let u = g.input("u", DType::F64, [h, h]);
    let bias = g.input("bias", DType::F64, [h]);
    let k = g.constant(data(&[steps, b, h], 9));
    let step = |xt: &Tensor, hp: &Tensor, u: &Tensor, bias: &Tensor| {
        let p = hp.matmul(u);
        let gate = (xt + &p).tanh();
        if multiplied {
            &gate * &p
        } else {
            &gate * &(&p + bias).sigmoid()
        }
    };
    let hs = if unrolled {
        let mut hp = h0.clone();
        let mut outs = Vec::new();
        for t in 0..steps {
            hp = step(&x.index(onde::s![t as i64, .., ..]), &hp, &u, &bias);
            outs.push(hp.clone());
        }
        let refs: Vec<&Tensor> = outs.iter().collect();
        stack(&refs, 0)
    } else {
        g.scan(&[&h0], &[&x], &[&u, &bias], 0, false, |c, xs, kk| {
            let hn = step(&xs[0], &c[0], &kk[0], &kk[1]);
            (vec![hn.clone()], vec![hn])
        })
        .remove(1)
    };
    let loss = (&hs * &k).sum_all();
    let feeds = [
        ("x", data(&[steps, b, h], 1)),
        ("h0", data(&[b, h], 2)),
        ("u", data(&[h, h], 4)),
        ("bias", data(&[h], 5)),
    ];
    loss_and_grads(&g, &loss, &[&x, &h0, &u, &bias], &feeds)
}

#[test]
fn the_forward_stacks_a_products_offsets_only_when_they_replace_it() {
    use onde::ir::Op;
    for multiplied in [true, false] {
        let (scanned, graph) = offset_case(multiplied, 6, false);
        let (unrolled, _) = offset_case(multiplied, 6, true);
        assert_same(&scanned, &unrolled);
        // The forward scan: what its body stacks beyond h, y and the carry-in.
        let fwd = graph
            .op_ids()
            .into_iter()
            .find_map(|o| {
                if let Op::Scan(s) = &graph.op(o).op {
                    (!s.reverse).then(|| s.clone())
                } else {
                    None
                }
            })
            .expect("a forward scan");
        let body = &fwd.body;
        let stacked: Vec<String> = body.outputs()[3..]
            .iter()
            .map(|&v| {
                body.producer(v)
                    .map_or("input".to_string(), |o| body.op(o).op.name().to_string())
            })
            .collect();
        let products = stacked.iter().filter(|n| *n == "matmul").count();
        if multiplied {
            assert_eq!(products, 1, "{stacked:?}");
        } else {
            // The gates' outputs are all the gradient reads: neither the product nor its
            // sums are stacked.
            assert_eq!(products, 0, "{stacked:?}");
        }
    }
}
