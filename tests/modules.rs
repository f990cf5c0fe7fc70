//! Modules against PyTorch's conventions: `Linear` names, shapes, initialisation and
//! forward; `Sequential` child names and train/eval propagation; PReLU forward and
//! gradients (by hand and by finite differences); softmax / log-softmax values;
//! LeakyReLU; buffers (not learnable, not updated, saved in the state dict).

use crate::common;
use common::{a32, a64, assert_close, run};

use onde::module::{
    LeakyRelu, Linear, LogSoftmax, PRelu, Relu, Sequential, Sigmoid, Softmax, Tanh,
};
use onde::optim::Sgd;
use onde::{Array, DType, Error, GraphBuilder, Module, Tensor, TrainStep};
use std::cell::Cell;
use std::rc::Rc;

fn names(v: &[(String, Tensor)]) -> Vec<String> {
    v.iter().map(|(n, _)| n.clone()).collect()
}

// ---------------------------------------------------------------------------------
// Linear
// ---------------------------------------------------------------------------------

#[test]
fn linear_parameter_names_and_shapes() {
    let g = GraphBuilder::new();
    let fc = Linear::new(&g, "fc", 3, 5);
    assert_eq!(names(&fc.named_parameters()), vec!["fc.weight", "fc.bias"]);
    assert_eq!(names(&g.named_parameters()), vec!["fc.weight", "fc.bias"]);
    assert_eq!(fc.weight.size(), vec![5, 3], "weight is [out, in]");
    assert_eq!(fc.bias.as_ref().unwrap().size(), vec![5], "bias is [out]");
    assert_eq!(fc.parameters().len(), 2);
    let vals = g.parameter_values();
    assert_eq!(vals[0].1.shape().dims(), &[5, 3]);
    assert_eq!(vals[1].1.shape().dims(), &[5]);
    assert_eq!(vals[0].1.dtype(), DType::F32);
    // Without bias: only the weight.
    let g = GraphBuilder::new();
    let fc = Linear::with_bias(&g, "enc.proj", 4, 2, false);
    assert!(fc.bias.is_none());
    assert_eq!(names(&fc.named_parameters()), vec!["enc.proj.weight"]);
    assert_eq!(names(&g.named_parameters()), vec!["enc.proj.weight"]);
}

#[test]
fn linear_init_bounds_256() {
    // PyTorch: weight and bias ~ U(-1/√in, 1/√in); for in = 256 the bound is 1/16.
    let g = GraphBuilder::new();
    let _fc = Linear::new(&g, "fc", 256, 256);
    let vals = g.parameter_values();
    let bound = 1.0 / 16.0;
    for (name, a) in &vals {
        let v = a.to_f64_vec();
        assert!(
            v.iter().all(|x| x.abs() <= bound),
            "{name}: max |x| = {}",
            v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
        );
        let first = v[0];
        assert!(v.iter().any(|&x| x != first), "{name}: all equal");
    }
    let w = vals[0].1.to_f64_vec();
    assert_eq!(w.len(), 65536);
    let n = w.len() as f64;
    let mean = w.iter().sum::<f64>() / n;
    let var = w.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    // U(-b, b): mean 0 (std of the sample mean: b/√3/256 ≈ 1.4e-4), variance b²/3.
    assert!(mean.abs() < 2e-3, "mean {mean}");
    let want_var = bound * bound / 3.0;
    assert!(
        (var - want_var).abs() < 0.05 * want_var,
        "variance {var} vs {want_var}"
    );
    // Both halves of the interval are used.
    assert!(w.iter().any(|&x| x > 0.9 * bound) && w.iter().any(|&x| x < -0.9 * bound));
    // The bias is a different draw from the first row of the weight.
    let b = vals[1].1.to_f64_vec();
    assert_ne!(&b[..], &w[..256]);
}

#[test]
fn linear_init_is_reproducible_and_layers_differ() {
    let make = |seed: i64| {
        let g = GraphBuilder::new();
        g.manual_seed(seed);
        let _a = Linear::new(&g, "a", 8, 8);
        let _b = Linear::new(&g, "b", 8, 8);
        g.parameter_values()
    };
    let (p1, p2, p3) = (make(7), make(7), make(8));
    assert_eq!(p1, p2, "same seed, same initial values");
    assert_ne!(p1[0].1, p3[0].1, "another seed, other values");
    assert_ne!(p1[0].1, p1[2].1, "two layers are initialised differently");
}

#[test]
fn linear_forward_is_x_wt_plus_b() {
    // W = [[1, 2, 3], [-1, 0, 0.5]] ([out=2, in=3]), b = [0.1, -0.2];
    // x = [[1, 1, 1], [2, 0, -1]]:
    // y[0] = [1+2+3+0.1, -1+0+0.5-0.2] = [6.1, -0.7];
    // y[1] = [2-3+0.1, -2-0.5-0.2] = [-0.9, -2.7].
    let g = GraphBuilder::new();
    let fc = Linear::new(&g, "fc", 3, 2);
    g.set_parameter("fc.weight", a32(&[2, 3], &[1.0, 2.0, 3.0, -1.0, 0.0, 0.5]))
        .unwrap();
    g.set_parameter("fc.bias", a32(&[2], &[0.1, -0.2])).unwrap();
    let x = g.input("x", DType::F32, [2, 3]);
    let y = fc.forward(&x);
    assert_eq!(y.size(), vec![2, 2]);
    let out = run(
        &g,
        &[&y],
        &[("x", a32(&[2, 3], &[1.0, 1.0, 1.0, 2.0, 0.0, -1.0]))],
    );
    assert_close(&out[0], &[6.1, -0.7, -0.9, -2.7], 1e-6, "linear forward");
    // Over the last axis of a 3-D input too.
    let x3 = g.input("x3", DType::F32, [2, 1, 3]);
    assert_eq!(fc.forward(&x3).size(), vec![2, 1, 2]);
}

// ---------------------------------------------------------------------------------
// Sequential, train/eval
// ---------------------------------------------------------------------------------

/// A parameter-free module that records its mode in a shared cell.
#[derive(Debug, Clone)]
struct Probe(Rc<Cell<bool>>);

impl Module for Probe {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.clone()
    }
    fn set_training(&self, training: bool) {
        self.0.set(training);
    }
    fn is_training(&self) -> bool {
        self.0.get()
    }
}

#[test]
fn sequential_names_children_by_index() {
    let g = GraphBuilder::new();
    let mut seq = Sequential::new("seq");
    assert!(seq.is_empty());
    assert_eq!(seq.next_name(), "seq.0");
    seq.push_with(|n| Linear::new(&g, n, 4, 8));
    seq.push(Relu);
    seq.push_with(|n| Linear::new(&g, n, 8, 2));
    assert_eq!(seq.len(), 3);
    let want = vec!["seq.0.weight", "seq.0.bias", "seq.2.weight", "seq.2.bias"];
    assert_eq!(names(&seq.named_parameters()), want);
    assert_eq!(names(&g.named_parameters()), want);
    let vals = g.parameter_values();
    assert_eq!(vals[0].1.shape().dims(), &[8, 4]);
    assert_eq!(vals[2].1.shape().dims(), &[2, 8]);
    // At top level ("" prefix) the names are PyTorch's "0.weight", …
    let g = GraphBuilder::new();
    let mut top = Sequential::new("");
    top.push_with(|n| Linear::new(&g, n, 2, 2));
    assert_eq!(names(&top.named_parameters()), vec!["0.weight", "0.bias"]);
}

#[test]
fn sequential_forward_composes_children() {
    // seq = [Linear(2→2), ReLU, Linear(2→1)] with hand weights:
    // W0 = [[1, -1], [2, 1]], b0 = [0, -1]; W2 = [[1, 3]], b2 = [0.5].
    // x = [1, 2]: h = relu([1-2, 2+2-1]) = relu([-1, 3]) = [0, 3]; y = 0 + 9 + 0.5 = 9.5.
    let g = GraphBuilder::new();
    let mut seq = Sequential::new("seq");
    seq.push_with(|n| Linear::new(&g, n, 2, 2));
    seq.push(Relu);
    seq.push_with(|n| Linear::new(&g, n, 2, 1));
    for (n, s, v) in [
        ("seq.0.weight", vec![2, 2], vec![1.0, -1.0, 2.0, 1.0]),
        ("seq.0.bias", vec![2], vec![0.0, -1.0]),
        ("seq.2.weight", vec![1, 2], vec![1.0, 3.0]),
        ("seq.2.bias", vec![1], vec![0.5]),
    ] {
        g.set_parameter(n, a32(&s, &v)).unwrap();
    }
    let x = g.input("x", DType::F32, [1, 2]);
    let y = seq.forward(&x);
    let out = run(&g, &[&y], &[("x", a32(&[1, 2], &[1.0, 2.0]))]);
    assert_close(&out[0], &[9.5], 1e-6, "sequential forward");
}

#[test]
fn set_training_and_eval_propagate() {
    let outer_probe = Rc::new(Cell::new(true));
    let inner_probe = Rc::new(Cell::new(true));
    let mut inner = Sequential::new("seq.1");
    inner.push(Probe(inner_probe.clone()));
    let mut seq = Sequential::new("seq");
    seq.push(Probe(outer_probe.clone()));
    seq.push(inner);
    seq.push(Tanh);
    // Modules start in train mode, as in PyTorch.
    assert!(seq.is_training());
    seq.eval();
    assert!(!seq.is_training());
    assert!(
        !outer_probe.get() && !inner_probe.get(),
        "eval reaches every child"
    );
    seq.train();
    assert!(seq.is_training());
    assert!(
        outer_probe.get() && inner_probe.get(),
        "train reaches every child"
    );
    seq.set_training(false);
    assert!(!outer_probe.get() && !inner_probe.get());
    seq.set_training(true);
    assert!(outer_probe.get() && inner_probe.get());
}

// ---------------------------------------------------------------------------------
// PReLU
// ---------------------------------------------------------------------------------

/// x: [N=2, C=3, L=2], including exact zeros.
const XP: [f64; 12] = [
    -1.0, 2.0, // n0 c0
    0.5, -3.0, // n0 c1
    0.0, -0.25, // n0 c2
    -2.0, -0.5, // n1 c0
    1.5, 0.0, // n1 c1
    4.0, -1.0, // n1 c2
];
const SLOPES: [f64; 3] = [0.1, 0.25, -0.5];

/// prelu by definition: x if x > 0 else a[c]·x.
fn prelu_ref(x: &[f64], a: &[f64]) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / 2) % 3;
            if v > 0.0 {
                v
            } else {
                a[c] * v
            }
        })
        .collect()
}

#[test]
fn prelu_module_per_channel_forward_and_slope_gradient() {
    let g = GraphBuilder::new();
    let act = PRelu::new(&g, "act", 3, 0.25);
    assert_eq!(names(&act.named_parameters()), vec!["act.weight"]);
    assert_eq!(g.parameter_values()[0].1.to_f64_vec(), vec![0.25; 3]);
    g.set_parameter("act.weight", a32(&[3], &SLOPES)).unwrap();
    let x = g.input("x", DType::F32, [2, 3, 2]);
    let y = act.forward(&x);
    let loss = y.sum_all();
    let gw = g.grad(&loss, &[&act.weight]).unwrap();
    let out = run(&g, &[&y, &gw[0]], &[("x", a32(&[2, 3, 2], &XP))]);
    // Hand forward: c0 slopes 0.1: [-0.1, 2, -0.2, -0.05]; c1 0.25: [0.5, -0.75, 1.5, 0];
    // c2 -0.5: [0, 0.125, 4, 0.5].
    let want = prelu_ref(&XP, &SLOPES);
    assert_close(
        &want,
        &[
            -0.1, 2.0, 0.5, -0.75, 0.0, 0.125, -0.2, -0.05, 1.5, 0.0, 4.0, 0.5,
        ],
        1e-15,
        "hand",
    );
    assert_close(&out[0], &want, 1e-6, "prelu forward");
    // ∂Σy/∂a[c] = Σ of x over channel c where x < 0 (x = 0 contributes 0):
    // c0: -1 - 2 - 0.5 = -3.5; c1: -3; c2: -0.25 - 1 = -1.25.
    let dw: Vec<f64> = (0..3)
        .map(|c| {
            XP.iter()
                .enumerate()
                .filter(|(i, v)| (i / 2) % 3 == c && **v < 0.0)
                .map(|(_, v)| v)
                .sum()
        })
        .collect();
    assert_close(&dw, &[-3.5, -3.0, -1.25], 1e-15, "hand slope gradient");
    assert_close(&out[1], &dw, 1e-6, "prelu slope gradient");
}

#[test]
fn prelu_gradients_match_finite_differences() {
    // In f64, with a weighted loss Σ r·prelu(x) so every element matters differently.
    let r: Vec<f64> = (0..12).map(|i| 0.3 + 0.1 * i as f64).collect();
    let g = GraphBuilder::new();
    let a = g.parameter("a", a64(&[3], &SLOPES));
    let x = g.input("x", DType::F64, [2, 3, 2]);
    let rr = g.input("r", DType::F64, [2, 3, 2]);
    let loss = (x.prelu(&a) * &rr).sum_all();
    let grads = g.grad(&loss, &[&a, &x]).unwrap();
    let feeds = |xv: &[f64]| vec![("x", a64(&[2, 3, 2], xv)), ("r", a64(&[2, 3, 2], &r))];
    let out = run(&g, &[&grads[0], &grads[1]], &feeds(&XP));
    // Hand: ∂/∂a[c] = Σ_{x<0 in c} r·x; ∂/∂x = r if x > 0 else r·a[c] (PyTorch at x = 0: a).
    let mut da = [0.0; 3];
    let mut dx = vec![0.0; 12];
    for i in 0..12 {
        let c = (i / 2) % 3;
        if XP[i] > 0.0 {
            dx[i] = r[i];
        } else {
            dx[i] = r[i] * SLOPES[c];
            da[c] += r[i] * XP[i];
        }
    }
    assert_close(&out[0], &da, 1e-12, "d/da by hand");
    assert_close(&out[1], &dx, 1e-12, "d/dx by hand");
    // Central differences w.r.t. the slopes (set_parameter) and x (away from the kink).
    let h = 1e-6;
    let loss_at = |av: &[f64], xv: &[f64]| {
        g.set_parameter("a", a64(&[3], av)).unwrap();
        run(&g, &[&loss], &feeds(xv))[0][0]
    };
    for c in 0..3 {
        let (mut p, mut m) = (SLOPES.to_vec(), SLOPES.to_vec());
        p[c] += h;
        m[c] -= h;
        let fd = (loss_at(&p, &XP) - loss_at(&m, &XP)) / (2.0 * h);
        assert!((fd - da[c]).abs() < 1e-6, "slope {c}: fd {fd} vs {}", da[c]);
    }
    for i in (0..12).filter(|&i| XP[i] != 0.0) {
        let (mut p, mut m) = (XP.to_vec(), XP.to_vec());
        p[i] += h;
        m[i] -= h;
        let fd = (loss_at(&SLOPES, &p) - loss_at(&SLOPES, &m)) / (2.0 * h);
        assert!((fd - dx[i]).abs() < 1e-6, "x[{i}]: fd {fd} vs {}", dx[i]);
    }
}

#[test]
fn prelu_shared_slope_and_channel_mismatch() {
    // One shared slope 0.25 (PyTorch's default num_parameters=1).
    let g = GraphBuilder::new();
    let act = PRelu::new(&g, "act", 1, 0.25);
    let x = g.input("x", DType::F32, [2, 3, 2]);
    let y = act.forward(&x);
    let out = run(&g, &[&y], &[("x", a32(&[2, 3, 2], &XP))]);
    assert_close(&out[0], &prelu_ref(&XP, &[0.25; 3]), 1e-6, "shared slope");
    // 2 slopes for 3 channels: a typed error naming prelu.
    let g = GraphBuilder::new();
    let act = PRelu::new(&g, "act", 2, 0.25);
    let x = g.input("x", DType::F32, [2, 3, 2]);
    let e = act.forward(&x).check().unwrap_err();
    assert!(matches!(e, Error::Op { op: "prelu", .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------
// Softmax, log-softmax, LeakyReLU
// ---------------------------------------------------------------------------------

/// Stable softmax of each row (f64): exp(x - max) / Σ exp(x - max).
fn softmax_rows(x: &[f64], c: usize) -> Vec<f64> {
    x.chunks(c)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
            row.iter()
                .map(move |v| (v - m).exp() / z)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn softmax_and_log_softmax_values() {
    // Row 0 [1, 2, 3]: softmax = [0.0900306, 0.2447285, 0.6652410];
    // row 1 [-1000, 0, 1000]: [0, 0, 1], log-softmax [-2000, -1000, 0] (no overflow);
    // row 2 [0.5, 0.5, 0.5]: [1/3; 3].
    let xv = [1.0, 2.0, 3.0, -1000.0, 0.0, 1000.0, 0.5, 0.5, 0.5];
    let sm = softmax_rows(&xv, 3);
    assert_close(
        &sm[..3],
        &[0.09003057317038046, 0.24472847105479767, 0.6652409557748219],
        1e-12,
        "hand",
    );
    let lsm: Vec<f64> = xv
        .chunks(3)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            row.iter().map(move |v| v - lse).collect::<Vec<_>>()
        })
        .collect();
    assert_close(
        &lsm[3..6],
        &[-2000.0, -1000.0, 0.0],
        1e-15,
        "hand log-softmax",
    );
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-6)] {
        let g = GraphBuilder::new();
        let x = g.input("x", dtype, [3, 3]);
        let s1 = x.softmax(1);
        let s_neg = x.softmax(-1);
        let l1 = x.log_softmax(1);
        let sm_mod = Softmax { dim: 1 }.forward(&x);
        let lsm_mod = LogSoftmax { dim: -1 }.forward(&x);
        let row_sums = s1.sum([1], false);
        let out = run(
            &g,
            &[&s1, &s_neg, &l1, &sm_mod, &lsm_mod, &row_sums],
            &[("x", Array::from_f64(dtype, vec![3, 3], &xv).unwrap())],
        );
        assert!(out.iter().flatten().all(|v| v.is_finite()), "{out:?}");
        assert_close(&out[0], &sm, tol, "softmax(1)");
        assert_close(&out[1], &sm, tol, "softmax(-1)");
        assert_close(&out[2], &lsm, tol, "log_softmax(1)");
        assert_close(&out[3], &sm, tol, "Softmax module");
        assert_close(&out[4], &lsm, tol, "LogSoftmax module");
        assert_close(&out[5], &[1.0; 3], tol, "rows sum to 1");
    }
    // Along axis 0: each column sums to 1.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [3, 3]);
    let s0 = x.softmax(0);
    let col_sums = s0.sum([0], false);
    let out = run(&g, &[&s0, &col_sums], &[("x", a64(&[3, 3], &xv))]);
    let xt: Vec<f64> = (0..9).map(|k| xv[(k % 3) * 3 + k / 3]).collect();
    let st = softmax_rows(&xt, 3);
    let s0_want: Vec<f64> = (0..9).map(|k| st[(k % 3) * 3 + k / 3]).collect();
    assert_close(&out[0], &s0_want, 1e-12, "softmax(0)");
    assert_close(&out[1], &[1.0; 3], 1e-12, "columns sum to 1");
}

#[test]
fn leaky_relu_values_and_gradient() {
    // Default slope 0.01: [-2, -0.5, 0, 1.5] → [-0.02, -0.005, 0, 1.5];
    // slope 0.2 → [-0.4, -0.1, 0, 1.5].
    // Gradient (PyTorch: x > 0 ? 1 : slope, so slope at x = 0): [s, s, s, 1].
    let xv = [-2.0, -0.5, 0.0, 1.5];
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [4]);
    let d = LeakyRelu::default();
    assert_eq!(d.negative_slope, 0.01);
    let y1 = d.forward(&x);
    let y2 = LeakyRelu {
        negative_slope: 0.2,
    }
    .forward(&x);
    let y3 = x.leaky_relu(0.2);
    let g1 = g.grad(&y1.sum_all(), &[&x]).unwrap();
    let g2 = g.grad(&y2.sum_all(), &[&x]).unwrap();
    let out = run(
        &g,
        &[&y1, &y2, &y3, &g1[0], &g2[0]],
        &[("x", a64(&[4], &xv))],
    );
    assert_close(&out[0], &[-0.02, -0.005, 0.0, 1.5], 1e-15, "leaky 0.01");
    assert_close(&out[1], &[-0.4, -0.1, 0.0, 1.5], 1e-15, "leaky 0.2");
    assert_close(&out[2], &out[1].clone(), 0.0, "method = module");
    assert_close(&out[3], &[0.01, 0.01, 0.01, 1.0], 1e-15, "grad 0.01");
    assert_close(&out[4], &[0.2, 0.2, 0.2, 1.0], 1e-15, "grad 0.2");
}

#[test]
fn parameter_free_activations() {
    // sigmoid(0) = 0.5, sigmoid(2) = 1/(1+e^-2); tanh(1) = 0.7615941559557649; relu.
    let xv = [0.0, 2.0, -1.0, 1.0];
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [4]);
    let out = run(
        &g,
        &[&Sigmoid.forward(&x), &Tanh.forward(&x), &Relu.forward(&x)],
        &[("x", a64(&[4], &xv))],
    );
    let sig: Vec<f64> = xv.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    let th: Vec<f64> = xv.iter().map(|v: &f64| v.tanh()).collect();
    assert_close(&out[0], &sig, 1e-12, "sigmoid");
    assert_close(&out[1], &th, 1e-12, "tanh");
    assert_close(&out[2], &[0.0, 2.0, 0.0, 1.0], 0.0, "relu");
    assert!(Relu.named_parameters().is_empty());
}

// ---------------------------------------------------------------------------------
// Buffers
// ---------------------------------------------------------------------------------

#[test]
fn buffers_are_not_learnable_but_are_saved() {
    // loss = Σ (w - shift)², shift a buffer: ∂/∂w = 2(w - shift), nothing for shift.
    let g = GraphBuilder::new();
    let w = g.parameter("m.weight", a32(&[3], &[1.0, 2.0, 3.0]));
    let shift = g.buffer("m.running_mean", a32(&[3], &[0.5, 0.5, -1.0]));
    assert!(g.is_buffer("m.running_mean"));
    assert!(!g.is_buffer("m.weight"));
    assert_eq!(names(&g.named_parameters()), vec!["m.weight"]);
    assert_eq!(g.parameters().len(), 1);
    assert_eq!(names(&g.named_buffers()), vec!["m.running_mean"]);
    // In the builder's state dict.
    let sd: Vec<String> = g.state_dict().into_iter().map(|(n, _)| n).collect();
    assert!(sd.contains(&"m.running_mean".to_string()), "{sd:?}");

    let loss = (&w - &shift).square().sum_all();
    let mut step = TrainStep::new(&g, &loss, &Sgd::new(0.1)).unwrap();
    assert_eq!(step.parameter_names().collect::<Vec<_>>(), ["m.weight"]);
    for _ in 0..2 {
        step.step(&[]).unwrap();
    }
    // w ← w - 0.2 (w - shift) twice: w - shift = [0.5, 1.5, 4] → ×0.8² = [0.32, 0.96, 2.56]
    // → w = [0.82, 1.46, 1.56].
    assert_close(
        &step.value("m.weight").unwrap().to_f64_vec(),
        &[0.82, 1.46, 1.56],
        1e-6,
        "weight after two steps",
    );
    assert_eq!(
        step.value("m.running_mean").unwrap().to_f64_vec(),
        vec![0.5, 0.5, -1.0],
        "the buffer is not updated"
    );
    let sd = step.state_dict();
    let buf = sd
        .iter()
        .find(|(n, _)| n == "m.running_mean")
        .expect("buffer in the step's state dict");
    assert_eq!(buf.1.to_f64_vec(), vec![0.5, 0.5, -1.0]);
    // No optimiser state for a buffer.
    assert!(
        sd.iter()
            .all(|(n, _)| !n.starts_with("optim.m.running_mean")),
        "{:?}",
        sd.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
}

#[test]
fn module_parameters_follow_declaration_order() {
    let g = GraphBuilder::new();
    let mut seq = Sequential::new("net");
    seq.push_with(|n| Linear::new(&g, n, 2, 3));
    seq.push_with(|n| PRelu::new(&g, n, 3, 0.25));
    seq.push_with(|n| Linear::with_bias(&g, n, 3, 1, false));
    assert_eq!(
        names(&seq.named_parameters()),
        vec!["net.0.weight", "net.0.bias", "net.1.weight", "net.2.weight"]
    );
    assert_eq!(seq.parameters().len(), 4);
}

#[test]
fn parameter_counts_and_summary() {
    // 4·3 + 3 (Linear 4→3) + 3 (PReLU per channel) + 3·2 + 2 (Linear 3→2) = 26.
    let g = GraphBuilder::new();
    let mut m = Sequential::new("net");
    m.push_with(|n| Linear::new(&g, n, 4, 3))
        .push_with(|n| onde::module::PRelu::new(&g, n, 3, 0.25))
        .push_with(|n| Linear::new(&g, n, 3, 2));
    assert_eq!(m.num_parameters(), 26);
    let s = onde::module::summary(&m);
    assert!(
        s.contains("net.0.weight") && s.contains("[3, 4]") && s.contains("12"),
        "{s}"
    );
    assert!(
        s.contains("net.1.weight") && s.contains("learnable parameters: 26"),
        "{s}"
    );
}

#[test]
fn batches_cover_each_row_once_and_gather_checks_its_inputs() {
    use onde::nn::data::Batches;
    let seen: Vec<usize> = Batches::new(10, 3, 7).flatten().collect();
    assert_eq!(seen.len(), 9, "drop_last: 3 batches of 3");
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 9, "no row twice: {seen:?}");
    let x = Array::f32([3, 2], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let y = Array::i64([3], vec![7, 8, 9]).unwrap();
    let (bx, by) = Batches::gather(&x, &y, &[2, 0]).unwrap();
    assert_eq!(bx.as_f32().unwrap(), &[4.0, 5.0, 0.0, 1.0]);
    assert_eq!(by.as_i64().unwrap(), &[9, 7]);
    assert!(Batches::gather(&x, &y, &[3]).is_err(), "row out of range");
    assert!(Batches::gather(&y, &y, &[0]).is_err(), "x must be 2-D f32");
    let short = Array::i64([2], vec![1, 2]).unwrap();
    assert!(
        Batches::gather(&x, &short, &[0]).is_err(),
        "one label per row"
    );
}

#[test]
fn pooling_modules_compose_in_sequential() {
    use onde::module::{AdaptiveAvgPool1d, MaxPool1d};
    use onde::PoolOpts;
    let g = GraphBuilder::new();
    let mut m = onde::module::Sequential::new("");
    m.push(MaxPool1d::new(PoolOpts::new(2)))
        .push(AdaptiveAvgPool1d::new(1));
    let x = g.input("x", DType::F32, [1, 1, 6]);
    let y = m.forward(&x);
    assert_eq!(y.size(), [1, 1, 1]);
    assert_eq!(m.num_parameters(), 0);
    let v = Array::f32([1, 1, 6], vec![1.0, 5.0, -2.0, 0.0, 3.0, 3.0]).unwrap();
    let out = g.run(&[&y], &[("x", v)]).unwrap();
    // max of pairs: [5, 0, 3], mean: 8/3.
    assert!((out[0].to_f64_vec()[0] - 8.0 / 3.0).abs() < 1e-6);
}

#[test]
fn conv_and_norm_modules_have_pytorch_names_shapes_and_init() {
    use onde::module::{GroupNorm, LayerNorm, SeparableConv1d};
    use onde::ConvOpts;
    let g = GraphBuilder::new();
    let sep = SeparableConv1d::new(&g, "block", 8, 16, 9, ConvOpts::default().padding(4));
    let names: Vec<(String, Vec<usize>)> = sep
        .named_parameters()
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("block.depthwise.weight".to_string(), vec![8, 1, 9]),
            ("block.depthwise.bias".to_string(), vec![8]),
            ("block.pointwise.weight".to_string(), vec![16, 8, 1]),
            ("block.pointwise.bias".to_string(), vec![16]),
        ]
    );
    // U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups * k = 9 for the depthwise.
    let values = g.parameter_values();
    let dw = &values
        .iter()
        .find(|(n, _)| n == "block.depthwise.weight")
        .unwrap()
        .1;
    let bound = 1.0 / 9f64.sqrt();
    assert!(dw.to_f64_vec().iter().all(|v| v.abs() <= bound));
    assert!(dw.to_f64_vec().iter().any(|v| v.abs() > bound / 2.0));
    let x = g.input("x", DType::F32, [2, 8, 50]);
    assert_eq!(sep.forward(&x).size(), [2, 16, 50]);
    let ln = LayerNorm::new(&g, "ln", &[50]);
    let gn = GroupNorm::new(&g, "gn", 4, 8);
    assert_eq!(ln.forward(&x).size(), [2, 8, 50]);
    assert_eq!(gn.forward(&x).size(), [2, 8, 50]);
    let values = g.parameter_values();
    let get = |n: &str| values.iter().find(|(k, _)| k == n).unwrap().1.to_f64_vec();
    assert!(get("ln.weight").iter().all(|&v| v == 1.0));
    assert!(get("gn.bias").iter().all(|&v| v == 0.0));
    assert_eq!(get("gn.weight").len(), 8);
}

#[test]
fn temporal_pooling_rejects_bad_arguments_by_name() {
    use onde::TemporalStat;
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 3, 5]);
    let cases = [
        (
            g.input("a", DType::F32, [2, 3]).temporal_mean(None),
            "temporal_pool",
            "expects a float input [B, C, T], got [2, 3]",
        ),
        (
            x.temporal_mean(Some(&g.input("l", DType::I64, [3]))),
            "temporal_pool",
            "lengths i64 [2] or a mask bool [2, 5], got i64 [3]",
        ),
        (
            x.statistics_pool(Some(&g.input("m", DType::F32, [2, 5])), 1e-5),
            "temporal_pool",
            "got f32 [2, 5]",
        ),
        (
            x.temporal_pool(&[], None, 1e-5),
            "temporal_pool",
            "no statistic",
        ),
        (
            x.attention_pool(&g.input("s", DType::F32, [2, 2, 5]), None, false, 1e-5),
            "attention_pool",
            "scores [2, 2, 5] must be [B, 1, T] or [B, C, T]",
        ),
    ];
    for (t, op, msg) in cases {
        match t.check() {
            Err(Error::Op {
                op: o, reason, loc, ..
            }) => {
                assert_eq!(o, op);
                assert!(reason.contains(msg), "{reason}");
                assert!(loc.file.ends_with("modules.rs"), "{loc:?}");
            }
            other => panic!("{msg}: expected an Op error, got {other:?}"),
        }
    }
    // Shapes: [B, C·k].
    let y = x.temporal_pool(
        &[
            TemporalStat::Mean,
            TemporalStat::Max,
            TemporalStat::Kurtosis,
        ],
        None,
        1e-5,
    );
    assert_eq!(y.size(), vec![2, 9]);
}

#[test]
fn multihead_attention_names_init_and_errors() {
    use onde::module::{MhaInputs, MultiheadAttention};
    let g = GraphBuilder::new();
    let m = MultiheadAttention::new(&g, "att", 8, 2);
    assert_eq!(
        names(&m.named_parameters()),
        [
            "att.in_proj_weight",
            "att.in_proj_bias",
            "att.out_proj.weight",
            "att.out_proj.bias"
        ]
    );
    let vals = g.parameter_values();
    let get = |n: &str| vals.iter().find(|(k, _)| k == n).unwrap().1.to_f64_vec();
    // Xavier-uniform in_proj: bound √(6 / (E + 3E)).
    let w = get("att.in_proj_weight");
    let bound = (6.0f64 / 32.0).sqrt();
    assert_eq!(w.len(), 3 * 8 * 8);
    assert!(w.iter().all(|x| x.abs() <= bound));
    assert!(
        w.iter().any(|x| x.abs() > 0.8 * bound),
        "not spread over the bound"
    );
    assert!(get("att.in_proj_bias").iter().all(|&b| b == 0.0));
    assert!(get("att.out_proj.bias").iter().all(|&b| b == 0.0));
    let ow = get("att.out_proj.weight");
    assert!(ow.iter().all(|x| x.abs() <= 1.0 / 8f64.sqrt()));
    let sep = MultiheadAttention::build(&g, "sep", 6, 3, false, Some(5), Some(3), true);
    assert_eq!(
        names(&sep.named_parameters()),
        [
            "sep.q_proj_weight",
            "sep.k_proj_weight",
            "sep.v_proj_weight",
            "sep.out_proj.weight"
        ]
    );

    let x = g.input("x", DType::F32, [5, 2, 8]);
    let bad_heads = MultiheadAttention::new(&g, "odd", 8, 3);
    let kpm = g.input("kpm", DType::Bool, [2, 4]);
    let am = g.input("am", DType::Bool, [5, 6]);
    let with = |kpm, attn_mask| MhaInputs {
        key_padding_mask: kpm,
        attn_mask,
        ..MhaInputs::default()
    };
    let cases = [
        (
            bad_heads.forward(&x),
            "`odd`: embed_dim 8 must be divisible by num_heads 3",
        ),
        (
            m.forward(&g.input("y", DType::F32, [5, 2, 7])),
            "expected query [.., 8]",
        ),
        (
            m.attend(&x, &x, &x, &with(Some(&kpm), None)).0,
            "key_padding_mask [2, 4] must be [2, 5]",
        ),
        (
            m.attend(&x, &x, &x, &with(None, Some(&am))).0,
            "attn_mask [5, 6] must be [5, 5] or [4, 5, 5]",
        ),
        (
            m.attend(
                &x,
                &g.input("k2", DType::F32, [5, 8]),
                &x,
                &MhaInputs::default(),
            )
            .0,
            "must all be 3-D (batched) or 2-D (unbatched)",
        ),
    ];
    for (t, msg) in cases {
        match t.check() {
            Err(Error::Op {
                op, reason, loc, ..
            }) => {
                assert_eq!(op, "multihead_attention");
                assert!(reason.contains(msg), "{reason}");
                assert!(loc.file.ends_with("modules.rs"), "{loc:?}");
            }
            other => panic!("{msg}: expected an Op error, got {other:?}"),
        }
    }
}

#[test]
fn sinc_conv1d_forward_parameters_and_errors() {
    use onde::module::SincConv1d;
    let g = GraphBuilder::new();
    let m = SincConv1d::new(&g, "front.sinc", 8, 101, 16000.0);
    assert_eq!(
        names(&m.named_parameters()),
        ["front.sinc.low_hz_", "front.sinc.band_hz_"]
    );
    assert_eq!(m.low_hz_.size(), vec![8, 1]);
    let x = g.input("x", DType::F32, [2, 1, 400]);
    let y = m.forward(&x);
    assert_eq!(y.size(), vec![2, 8, 300]);
    // The low cut-offs grow on the mel scale from 30 Hz; bands tile up to
    // 8000 - 100 Hz.
    let vals = g.parameter_values();
    let get = |n: &str| vals.iter().find(|(k, _)| k == n).unwrap().1.to_f64_vec();
    let (low, band) = (get("front.sinc.low_hz_"), get("front.sinc.band_hz_"));
    assert!((low[0] - 30.0).abs() < 1e-3);
    assert!(low.windows(2).all(|w| w[1] > w[0]));
    assert!(
        band.windows(2).all(|w| w[1] > w[0]),
        "mel spacing widens bands"
    );
    assert!((low[7] + band[7] - 7900.0).abs() < 0.05);
    // Every filter is symmetric and its centre tap is 1 (2·band / 2·band).
    let f = g.run(&[&m.filters()], &[]).unwrap().remove(0);
    let f = f.to_f64_vec();
    for c in 0..8 {
        let row = &f[c * 101..(c + 1) * 101];
        assert!((row[50] - 1.0).abs() < 1e-6);
        for k in 0..50 {
            assert_eq!(row[k], row[100 - k]);
        }
    }
    let stereo = g.input("s", DType::F32, [2, 2, 400]);
    match m.forward(&stereo).check() {
        Err(Error::Op { op, reason, .. }) => {
            assert_eq!(op, "sinc_conv1d");
            assert!(
                reason.contains("`front.sinc` filters one channel"),
                "{reason}"
            );
        }
        other => panic!("expected an Op error, got {other:?}"),
    }
    // An even kernel is refused at construction (the reference silently adds one).
    let g2 = GraphBuilder::new();
    let even = SincConv1d::new(&g2, "front.sinc", 8, 250, 16000.0);
    match g2.first_error() {
        Some(Error::Op {
            op, reason, loc, ..
        }) => {
            assert_eq!(op, "SincConv1d");
            assert!(
                reason.contains("`front.sinc`: kernel_size must be odd") && reason.contains("251"),
                "{reason}"
            );
            assert!(loc.file.ends_with("modules.rs"), "{loc:?}");
        }
        other => panic!("expected an Op error, got {other:?}"),
    }
    let x2 = g2.input("x", DType::F32, [1, 1, 400]);
    assert!(even.forward(&x2).check().is_err());
    let lo = g.input("lo", DType::F32, [3, 1]);
    match lo.sinc_band_pass(&lo, 8, 16000.0, 50.0, 50.0).check() {
        Err(Error::Op { reason, .. }) => assert!(reason.contains("must be odd"), "{reason}"),
        other => panic!("expected an Op error, got {other:?}"),
    }
    match lo
        .sinc_band_pass(&g.input("b", DType::F32, [3]), 9, 16000.0, 50.0, 50.0)
        .check()
    {
        Err(Error::Op { reason, .. }) => assert!(reason.contains("[C, 1]"), "{reason}"),
        other => panic!("expected an Op error, got {other:?}"),
    }
}

#[test]
fn an_error_inside_a_sequential_names_the_layer() {
    use onde::module::Conv;
    use onde::ConvOpts;
    let g = GraphBuilder::new();
    let mut inner = Sequential::new("enc.1");
    inner
        .push_with(|n| Conv::conv1d(&g, n, 4, 4, 3, ConvOpts::default()))
        .push_with(|n| Conv::conv1d(&g, n, 5, 4, 3, ConvOpts::default()));
    let mut m = Sequential::new("enc");
    m.push_with(|n| Conv::conv1d(&g, n, 1, 4, 3, ConvOpts::default()))
        .push(inner);
    let x = g.input("x", DType::F32, [2, 1, 30]);
    let y = m.forward(&x);
    let check = |e: Error| {
        let Error::Layer {
            path,
            kind,
            input,
            source,
        } = e
        else {
            panic!("expected a Layer error, got {e:?}");
        };
        assert_eq!(
            (path.as_str(), kind, input),
            ("enc.1.1", "Conv", vec![2, 4, 26])
        );
        assert!(source.to_string().contains("input channels"), "{source}");
    };
    check(y.check().unwrap_err());
    // The builder reports the same, attributed error.
    check(g.build(&[&y]).unwrap_err());
    let msg = y.check().unwrap_err().to_string();
    assert!(
        msg.starts_with("layer `enc.1.1` (Conv) on input [2, 4, 26]: "),
        "{msg}"
    );
    // Errors from before the container are left as they are.
    let bad = g
        .input("b", DType::F32, [3])
        .matmul(&g.input("c", DType::F32, [4]));
    assert!(matches!(
        m.forward(&bad).check(),
        Err(Error::Op { op: "matmul", .. })
    ));
}

/// A user module with two inputs and two outputs, written with no special attribute:
/// `y = tanh(a·x + b·h)`, returning `(y, y·h)`.
struct Gate {
    a: Linear,
    b: Linear,
}

impl onde::module::Forward<(&Tensor, &Tensor)> for Gate {
    type Output = (Tensor, Tensor);
    fn call(&self, (x, h): (&Tensor, &Tensor)) -> (Tensor, Tensor) {
        let y = (self.a.forward(x) + self.b.forward(h)).tanh();
        let yh = &y * h;
        (y, yh)
    }
}

impl Module for Gate {
    /// One input: `h = x`.
    fn forward(&self, x: &Tensor) -> Tensor {
        onde::module::Forward::call(self, (x, x)).0
    }
    fn named_children(&self) -> Vec<(String, &dyn Module)> {
        vec![("a".into(), &self.a), ("b".into(), &self.b)]
    }
}

#[test]
fn modules_with_several_inputs_and_outputs() {
    use onde::module::{Forward, MhaInputs, MultiheadAttention, StatisticsPooling};
    let g = GraphBuilder::new();
    let gate = Gate {
        a: Linear::new(&g, "gate.a", 3, 2),
        b: Linear::new(&g, "gate.b", 2, 2),
    };
    let x = g.input("x", DType::F64, [4, 3]);
    let h = g.input("h", DType::F64, [4, 2]);
    let (y, yh) = gate.call((&x, &h));
    assert_eq!(
        names(&gate.named_parameters()).len(),
        4,
        "from named_children"
    );
    let xs: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin()).collect();
    let hs: Vec<f64> = (0..8).map(|i| (i as f64 * 0.51).cos()).collect();
    let got = run(
        &g,
        &[&y, &yh],
        &[("x", a64(&[4, 3], &xs)), ("h", a64(&[4, 2], &hs))],
    );
    // Reference from the parameter values.
    let v = |n: &str| {
        g.parameter_values()
            .into_iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .to_f64_vec()
    };
    let (wa, ba, wb, bb) = (
        v("gate.a.weight"),
        v("gate.a.bias"),
        v("gate.b.weight"),
        v("gate.b.bias"),
    );
    let mut want_y = vec![0.0; 8];
    for r in 0..4 {
        for o in 0..2 {
            let mut s = ba[o] + bb[o];
            s += (0..3).map(|i| wa[o * 3 + i] * xs[r * 3 + i]).sum::<f64>();
            s += (0..2).map(|i| wb[o * 2 + i] * hs[r * 2 + i]).sum::<f64>();
            want_y[r * 2 + o] = s.tanh();
        }
    }
    let want_yh: Vec<f64> = want_y.iter().zip(&hs).map(|(y, h)| y * h).collect();
    assert_close(&got[0], &want_y, 1e-12, "y");
    assert_close(&got[1], &want_yh, 1e-12, "y·h");
    // Every module is Forward<&Tensor>: `call` is `forward`.
    let lin = Linear::new(&g, "lin", 3, 2);
    let same = run(
        &g,
        &[&lin.call(&x), &lin.forward(&x)],
        &[("x", a64(&[4, 3], &xs))],
    );
    assert_eq!(same[0], same[1]);
    // Attention: (q, k, v) → (output, weights), as attend with need_weights.
    let mha = MultiheadAttention::build(&g, "mha", 4, 2, true, None, None, true);
    let q = g.input("q", DType::F32, [2, 5, 4]);
    let (out, w) = mha.call((&q, &q, &q));
    let (out2, w2) = mha.attend(
        &q,
        &q,
        &q,
        &MhaInputs {
            need_weights: true,
            ..MhaInputs::default()
        },
    );
    let (w, w2) = (w.unwrap(), w2.unwrap());
    assert_eq!(w.size(), [2, 5, 5]);
    let qs: Vec<f64> = (0..40).map(|i| (i as f64 * 0.3).sin()).collect();
    let r = run(&g, &[&out, &out2, &w, &w2], &[("q", a32(&[2, 5, 4], &qs))]);
    assert_eq!((&r[0], &r[2]), (&r[1], &r[3]));
    // Pooling with lengths: (x, Some(lengths)).
    let seq = g.input("seq", DType::F64, [2, 3, 4]);
    let lens = g.input("lens", DType::I64, [2]);
    let pooled = StatisticsPooling::new().call((&seq, Some(&lens)));
    assert_eq!(pooled.size(), [2, 6]);
}

/// A user module whose `forward` has no `#[track_caller]`: its errors point at the line
/// inside `forward`, and inside a Sequential also name the layer.
struct Widen(usize);

impl Module for Widen {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.reshape([self.0 as i64, -1])
    }
}

#[test]
fn a_user_module_error_points_into_its_forward_and_names_its_path() {
    let g = GraphBuilder::new();
    let mut m = Sequential::new("net");
    m.push(Relu).push(Widen(7));
    let x = g.input("x", DType::F32, [2, 5]);
    let e = m.forward(&x).check().unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("layer `net.1` (Widen) on input [2, 5]: tests/modules.rs:"),
        "{msg}"
    );
    let forward_line = 1 + include_str!("modules.rs")
        .lines()
        .position(|l| l.trim() == "x.reshape([self.0 as i64, -1])")
        .unwrap();
    assert!(
        msg.contains(&format!("tests/modules.rs:{forward_line}:")),
        "{msg}"
    );
    assert!(msg.contains("reshape"), "{msg}");
}
