//! Scan compiles to a loop calling the compiled body: the RNN example and its
//! gradient (a reverse-time scan) give the interpreter's results, for scans along
//! axis 0 and along axis 1 (batch first), forward and reverse.

use crate::common;

use onde::{Array, DType, GraphBuilder, Tensor};

fn check(g: &GraphBuilder, outs: &[&Tensor], feeds: &[(&str, Array)]) {
    let want = g.run(outs, feeds).unwrap();
    let mut exe = g.compile(outs).unwrap();
    let plan = exe.executable().dump_fused();
    assert!(plan.contains(": scan "), "{plan}");
    assert!(!plan.contains("host scan"), "{plan}");
    let got = exe.run(feeds).unwrap();
    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
        for (i, (p, q)) in a.to_f64_vec().iter().zip(b.to_f64_vec()).enumerate() {
            assert!(
                (p - q).abs() <= 1e-4 + 1e-3 * q.abs(),
                "output {k} element {i}: jit {p} vs interpreter {q}"
            );
        }
    }
}

#[test]
fn rnn_forward_and_gradient_compiled() {
    for (axis, reverse) in [(1i64, false), (1, true), (0, false), (0, true)] {
        let g = GraphBuilder::new();
        let (b, t, f, h) = (3, 7, 5, 4);
        let xshape = if axis == 1 {
            vec![b, t, f]
        } else {
            vec![t, b, f]
        };
        let x = g.input("x", DType::F32, xshape.clone());
        let w = g.input("w", DType::F32, [f, h]);
        let u = g.input("u", DType::F32, [h, h]);
        let h0 = g.zeros([b, h], DType::F32);
        let out = g.scan(&[&h0], &[&x], &[&w, &u], axis, reverse, |c, xs, k| {
            let hn = (xs[0].matmul(&k[0]) + c[0].matmul(&k[1])).tanh();
            (vec![hn.clone()], vec![&hn * 2.0])
        });
        let loss = out[1].square().mean_all() + out[0].sum_all();
        let grads = g.grad(&loss, &[&x, &w, &u]).unwrap();
        let feeds = [
            ("x", common::data(DType::F32, &xshape, 1)),
            ("w", common::data(DType::F32, &[f, h], 2)),
            ("u", common::data(DType::F32, &[h, h], 3)),
        ];
        check(
            &g,
            &[&out[0], &out[1], &loss, &grads[0], &grads[1], &grads[2]],
            &feeds,
        );
    }
}

#[test]
fn wide_rnn_body_on_the_avx512_engine_matches_the_interpreter() {
    // Hidden size 96 (≥ 64): the body's tanh kernel qualifies for the AVX-512 engine
    // (when the CPU has it), called once per time step from the scan loop.
    let g = GraphBuilder::new();
    let (b, t, f, h) = (2, 9, 7, 96);
    let x = g.input("x", DType::F32, [b, t, f]);
    let w = g.input("w", DType::F32, [f, h]);
    let u = g.input("u", DType::F32, [h, h]);
    let h0 = g.zeros([b, h], DType::F32);
    let out = g.scan(&[&h0], &[&x], &[&w, &u], 1, false, |c, xs, k| {
        let hn = (xs[0].matmul(&k[0]) + c[0].matmul(&k[1]) * 0.1).tanh();
        (vec![hn.clone()], vec![hn.sigmoid()])
    });
    let loss = out[1].square().mean_all() + out[0].sum_all();
    let grads = g.grad(&loss, &[&w, &u]).unwrap();
    let feeds = [
        ("x", common::data(DType::F32, &[b, t, f], 4)),
        ("w", common::data(DType::F32, &[f, h], 5)),
        ("u", common::data(DType::F32, &[h, h], 6)),
    ];
    check(&g, &[&out[0], &out[1], &loss, &grads[0], &grads[1]], &feeds);
}
