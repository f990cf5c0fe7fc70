//! Dropout (`F.dropout`/`dropout1d`/`dropout2d` and the modules): inverted scaling, the
//! zeroed fraction, whole-channel masks, a fresh mask every run from the step seed (no
//! recompilation), replay with a fed seed, compiled = interpreted for one seed, the
//! gradient `dy · mask / (1 − p)`, eval = identity, PyTorch's `p = 0` and `p = 1`
//! cases and typed errors.

use onde::module::{Dropout, Dropout1d, Dropout2d, Linear};
use onde::optim::Sgd;
use onde::{Array, DType, Error, GraphBuilder, Module, TrainStep, STEP_SEED};

fn ones(shape: &[usize]) -> Array {
    Array::full(DType::F32, shape.to_vec(), 1.0)
}

fn seed(s: i64) -> Array {
    Array::scalar_i64(s)
}

/// The zeroed fraction and the set of kept values.
fn zeros_and_kept(v: &[f32]) -> (f64, Vec<f32>) {
    let z = v.iter().filter(|&&x| x == 0.0).count();
    let mut kept: Vec<f32> = v.iter().copied().filter(|&x| x != 0.0).collect();
    kept.dedup();
    kept.sort_by(f32::total_cmp);
    kept.dedup();
    (z as f64 / v.len() as f64, kept)
}

#[test]
fn dropout_zeroes_a_fraction_p_and_scales_the_rest() {
    for p in [0.1, 0.3, 0.5, 0.8] {
        let g = GraphBuilder::new();
        let x = g.input("x", DType::F32, [64, 256]);
        let y = x.dropout(p, true);
        let mut c = g.compile(&[&y]).unwrap();
        let out = c.run(&[("x", ones(&[64, 256]))]).unwrap();
        let (frac, kept) = zeros_and_kept(out[0].as_f32().unwrap());
        // 16384 Bernoulli draws: 5 standard deviations is < 0.02.
        let sd = (p * (1.0 - p) / 16384.0).sqrt();
        assert!((frac - p).abs() < 5.0 * sd, "p = {p}: zeroed {frac}");
        assert_eq!(kept, vec![(1.0 / (1.0 - p)) as f32], "p = {p}");
    }
}

#[test]
fn each_run_draws_a_new_mask_and_a_fed_seed_replays_it() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [8, 32]);
    let y = x.dropout(0.5, true);
    let mut c = g.compile(&[&y]).unwrap();
    let feeds = [("x", ones(&[8, 32]))];
    let a = c.run(&feeds).unwrap()[0].clone();
    let b = c.run(&feeds).unwrap()[0].clone();
    assert_ne!(a, b, "two runs drew the same mask");
    let mut fed = |s: i64| {
        c.run(&[("x", ones(&[8, 32])), (STEP_SEED, seed(s))])
            .unwrap()
            .remove(0)
    };
    let r1 = fed(7);
    let r2 = fed(7);
    let r3 = fed(8);
    assert_eq!(r1, r2, "the same seed gives the same mask");
    assert_ne!(r1, r3, "another seed gives another mask");
    // The interpreter (the reference) agrees with the compiled code for one seed.
    let interp = g
        .run(&[&y], &[("x", ones(&[8, 32])), (STEP_SEED, seed(7))])
        .unwrap();
    assert_eq!(interp[0], r1);
}

#[test]
fn two_dropouts_draw_independent_masks() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [16, 64]);
    let a = x.dropout(0.5, true);
    let b = x.dropout(0.5, true);
    let out = g
        .run(&[&a, &b], &[("x", ones(&[16, 64])), (STEP_SEED, seed(3))])
        .unwrap();
    let (a, b) = (out[0].as_f32().unwrap(), out[1].as_f32().unwrap());
    let same = a.iter().zip(b).filter(|(u, v)| u == v).count();
    // Independent masks agree on about half the elements (1024 draws).
    assert!((400..=624).contains(&same), "{same} of 1024 agree");
}

#[test]
fn gradient_is_the_scaled_mask() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [4, 50]);
    let w = g.input("w", DType::F32, [4, 50]);
    let y = x.dropout(0.4, true);
    let loss = (&y * &w).sum_all();
    let dx = g.grad(&loss, &[&x]).unwrap().remove(0);
    let xv = Array::f32([4, 50], (0..200).map(|i| i as f32 * 0.1 - 7.0).collect()).unwrap();
    let wv = Array::f32([4, 50], (0..200).map(|i| (i % 7) as f32 - 3.0).collect()).unwrap();
    let mut c = g.compile(&[&y, &dx]).unwrap();
    let out = c
        .run(&[("x", xv.clone()), ("w", wv.clone()), (STEP_SEED, seed(11))])
        .unwrap();
    let (yv, dxv) = (out[0].as_f32().unwrap(), out[1].as_f32().unwrap());
    let (xs, ws) = (xv.as_f32().unwrap(), wv.as_f32().unwrap());
    let mut zeroed = 0;
    for i in 0..200 {
        // The mask at i, read from y = x · mask / (1 − p) (x is never 0 here).
        let m = yv[i] / xs[i];
        let expect = if yv[i] == 0.0 {
            zeroed += 1;
            0.0
        } else {
            assert!((m - 1.0 / 0.6).abs() < 1e-5, "scale at {i}: {m}");
            ws[i] / 0.6
        };
        assert!(
            (dxv[i] - expect).abs() < 1e-5,
            "dx at {i}: {} vs {expect}",
            dxv[i]
        );
    }
    assert!(zeroed > 40 && zeroed < 120, "{zeroed} of 200 zeroed");
}

#[test]
fn channel_dropout_zeroes_whole_channels() {
    let g = GraphBuilder::new();
    let x1 = g.input("x1", DType::F32, [8, 32, 20]);
    let x2 = g.input("x2", DType::F32, [8, 32, 5, 4]);
    let y1 = Dropout1d::new(0.5).forward(&x1);
    let y2 = Dropout2d::new(0.5).forward(&x2);
    let out = g
        .run(
            &[&y1, &y2],
            &[
                ("x1", ones(&[8, 32, 20])),
                ("x2", ones(&[8, 32, 5, 4])),
                (STEP_SEED, seed(5)),
            ],
        )
        .unwrap();
    for o in &out {
        let v = o.as_f32().unwrap();
        let mut dropped = 0;
        for ch in v.chunks(20) {
            assert!(ch.iter().all(|&e| e == ch[0]), "a channel is not uniform");
            assert!(ch[0] == 0.0 || ch[0] == 2.0);
            dropped += usize::from(ch[0] == 0.0);
        }
        // 256 channels, p = 0.5: 5 standard deviations is 40.
        assert!(
            (88..=168).contains(&dropped),
            "{dropped} of 256 channels dropped"
        );
    }
    // Unbatched [C, L] input.
    let x = g.input("x", DType::F32, [6, 10]);
    assert_eq!(x.dropout1d(0.5, true).size(), vec![6, 10]);
}

#[test]
fn eval_mode_p_zero_and_p_one() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let d = Dropout::default();
    assert_eq!(d.p, 0.5);
    d.eval();
    assert!(!d.is_training());
    let y = d.forward(&x);
    assert_eq!(
        y.value().unwrap(),
        x.value().unwrap(),
        "eval dropout is the identity"
    );
    let same = x.dropout(0.0, true);
    assert_eq!(
        same.value().unwrap(),
        x.value().unwrap(),
        "p = 0 is the identity"
    );
    // p = 1: x · 0, so inf gives NaN, as PyTorch.
    let all = x.dropout(1.0, true);
    let xv = Array::f32(
        [3, 4],
        vec![
            1.0,
            -2.0,
            f32::INFINITY,
            0.5,
            3.0,
            4.0,
            5.0,
            6.0,
            7.0,
            8.0,
            9.0,
            1.0,
        ],
    )
    .unwrap();
    let out = g.run(&[&all], &[("x", xv)]).unwrap();
    let v = out[0].as_f32().unwrap();
    assert!(v[2].is_nan());
    assert!(v.iter().enumerate().all(|(i, &e)| i == 2 || e == 0.0));
    // The seed input exists only when a mask is drawn.
    assert!(!g.input_names().iter().any(|n| n == STEP_SEED));
}

#[test]
fn bad_arguments_are_typed_errors() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let i = g.input("i", DType::I64, [3, 4]);
    let cases = [
        (
            x.dropout(1.5, true),
            "dropout",
            "between 0 and 1, but got 1.5",
        ),
        (x.dropout(-0.1, false), "dropout", "between 0 and 1"),
        (i.dropout(0.5, true), "dropout", "floating point"),
        (
            x.dropout2d(0.5, true),
            "dropout2d",
            "3-D (unbatched) or 4-D",
        ),
        (
            g.input("y", DType::F32, [2]).dropout1d(0.5, true),
            "dropout1d",
            "2-D (unbatched) or 3-D",
        ),
    ];
    for (t, op, msg) in cases {
        match t.check() {
            Err(Error::Op {
                op: o, reason, loc, ..
            }) => {
                assert_eq!(o, op);
                assert!(reason.contains(msg), "{reason}");
                assert!(
                    loc.file.ends_with("dropout.rs") && loc.file.starts_with("tests"),
                    "{loc:?}"
                );
            }
            other => panic!("{op}: expected an Op error, got {other:?}"),
        }
    }
}

#[test]
fn a_training_step_draws_a_new_mask_every_step() {
    // lr = 0: the weights never change, so different losses come from different masks.
    let g = GraphBuilder::new();
    g.manual_seed(0);
    let fc = Linear::new(&g, "fc", 16, 1);
    let x = g.input("x", DType::F32, [32, 16]);
    let loss = fc
        .forward(&Dropout::new(0.5).forward(&x))
        .square()
        .mean_all();
    let mut step = TrainStep::new(&g, &loss, &Sgd::new(0.0)).unwrap();
    let xv = Array::f32([32, 16], (0..512).map(|i| (i % 13) as f32 * 0.3).collect()).unwrap();
    let losses: Vec<f64> = (0..4).map(|_| step.step(&[("x", &xv)]).unwrap()).collect();
    for w in losses.windows(2) {
        assert_ne!(w[0], w[1], "{losses:?}");
    }
    // A fed seed replays a step exactly.
    let s = seed(42);
    let a = step.step(&[("x", &xv), (STEP_SEED, &s)]).unwrap();
    let b = step.step(&[("x", &xv), (STEP_SEED, &s)]).unwrap();
    assert_eq!(a, b);
    // Eval mode: no mask, no seed input, the same loss every time.
    let g = GraphBuilder::new();
    let d = Dropout::new(0.5);
    d.eval();
    let x = g.input("x", DType::F32, [32, 16]);
    let fc = Linear::new(&g, "fc", 16, 1);
    let loss = fc.forward(&d.forward(&x)).square().mean_all();
    let mut step = TrainStep::new(&g, &loss, &Sgd::new(0.0)).unwrap();
    let l1 = step.step(&[("x", &xv)]).unwrap();
    let l2 = step.step(&[("x", &xv)]).unwrap();
    assert_eq!(l1, l2);
}

#[test]
fn attention_dropout_drops_weights_and_scales_the_rest() {
    use onde::module::{MhaInputs, MultiheadAttention};
    let g = GraphBuilder::new();
    let (l, s) = (64, 16);
    let q = g.input("q", DType::F32, [l, 8]);
    let k = g.input("k", DType::F32, [s, 8]);
    // v = identity: the output rows are the (dropped) attention weights.
    let eye: Vec<f32> = (0..s * s)
        .map(|i| if i % (s + 1) == 0 { 1.0 } else { 0.0 })
        .collect();
    let v = g.constant(Array::f32([s, s], eye).unwrap());
    let plain = q.scaled_dot_product_attention(&k, &v, None, 0.0, false, None);
    let dropped = q.scaled_dot_product_attention(&k, &v, None, 0.25, false, None);
    let qa = Array::f32(
        [l, 8],
        (0..l * 8).map(|i| ((i * 7) % 11) as f32 * 0.1).collect(),
    )
    .unwrap();
    let ka = Array::f32(
        [s, 8],
        (0..s * 8).map(|i| ((i * 5) % 13) as f32 * 0.1).collect(),
    )
    .unwrap();
    let out = g
        .run(
            &[&plain, &dropped],
            &[("q", qa), ("k", ka), (STEP_SEED, seed(9))],
        )
        .unwrap();
    let (p, d) = (out[0].as_f32().unwrap(), out[1].as_f32().unwrap());
    let mut zeros = 0;
    for (a, b) in p.iter().zip(d) {
        if *b == 0.0 {
            zeros += 1;
        } else {
            assert!(
                (b - a / 0.75).abs() <= 1e-6 * b.abs().max(1.0),
                "{b} vs {a}/0.75"
            );
        }
    }
    // 1024 weights, p = 0.25: 5 standard deviations is 69.
    assert!((187..=325).contains(&zeros), "{zeros} of 1024 dropped");
    match q
        .scaled_dot_product_attention(&k, &v, None, 1.5, false, None)
        .check()
    {
        Err(Error::Op { op, reason, .. }) => {
            assert_eq!(op, "scaled_dot_product_attention");
            assert!(
                reason.contains("dropout_p must be between 0 and 1, got 1.5"),
                "{reason}"
            );
        }
        other => panic!("expected an Op error, got {other:?}"),
    }
    // MultiheadAttention: dropout in train mode only.
    let g = GraphBuilder::new();
    let mut m = MultiheadAttention::new(&g, "att", 8, 2);
    m.dropout = 0.5;
    let x = g.input("x", DType::F32, [5, 2, 8]);
    let o = MhaInputs {
        need_weights: true,
        ..MhaInputs::default()
    };
    let (_, w_train) = m.attend(&x, &x, &x, &o);
    m.eval();
    let (_, w_eval) = m.attend(&x, &x, &x, &o);
    let xa = Array::f32(
        [5, 2, 8],
        (0..80).map(|i| ((i * 3) % 7) as f32 * 0.2).collect(),
    )
    .unwrap();
    let out = g
        .run(
            &[&w_train.unwrap(), &w_eval.unwrap()],
            &[("x", xa), (STEP_SEED, seed(2))],
        )
        .unwrap();
    assert_ne!(out[0], out[1], "train-mode weights are dropped");
    // Eval-mode weights are softmax rows: each sums to 1.
    for row in out[1].as_f32().unwrap().chunks(5) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
