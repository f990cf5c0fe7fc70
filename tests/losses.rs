//! Loss functions against hand-computed PyTorch semantics (`torch.nn.functional`):
//! values for every reduction, class weights, `ignore_index`, K-dimensional NLL,
//! cross-entropy from logits, MSE, BCE (with its -100 log clamp) and BCE with logits
//! (with `pos_weight`, stable at |x| = 100); typed errors (never a panic); gradients
//! against central finite differences in f64.
//!
//! Every expected value is computed here in f64 from the definition, independently of
//! the library.

use crate::common;
use common::{a32, a64, ai64, assert_close, run};

use onde::loss::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss,
    NllOpts, Reduction,
};
use onde::optim::Sgd;
use onde::runtime::InterpError;
use onde::{Array, DType, Error, GraphBuilder, Tensor, TrainStep};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// Central finite differences (f64) of the scalar `loss` with respect to feed `name`
/// (whose value is `x0`), the other feeds fixed.
fn fd_grad(
    g: &GraphBuilder,
    loss: &Tensor,
    name: &str,
    x0: &Array,
    others: &[(&str, Array)],
) -> Vec<f64> {
    let h = 1e-6;
    let base = x0.to_f64_vec();
    let shape: Vec<usize> = x0.shape().dims().to_vec();
    let eval = |v: &[f64]| {
        let mut feeds: Vec<(&str, Array)> = others.to_vec();
        feeds.push((name, a64(&shape, v)));
        run(g, &[loss], &feeds)[0][0]
    };
    (0..base.len())
        .map(|i| {
            let mut p = base.clone();
            p[i] += h;
            let mut m = base.clone();
            m[i] -= h;
            (eval(&p) - eval(&m)) / (2.0 * h)
        })
        .collect()
}

/// The gradient of `loss` w.r.t. input `x` from autodiff (interpreter), compared with
/// central finite differences and (if given) a hand-derived formula.
fn check_grad(
    g: &GraphBuilder,
    loss: &Tensor,
    (x, name): (&Tensor, &str),
    x0: &Array,
    others: &[(&str, Array)],
    analytic: Option<&[f64]>,
    what: &str,
) {
    let gx = g.grad(loss, &[x]).unwrap();
    let mut feeds: Vec<(&str, Array)> = others.to_vec();
    feeds.push((name, x0.clone()));
    let got = run(g, &[&gx[0]], &feeds).remove(0);
    let fd = fd_grad(g, loss, name, x0, others);
    assert_close(
        &got,
        &fd,
        1e-6,
        &format!("{what}: autodiff vs finite differences"),
    );
    if let Some(want) = analytic {
        assert_close(&got, want, 1e-12, &format!("{what}: autodiff vs formula"));
    }
}

fn opts(weight: Option<&Tensor>, ignore_index: i64, reduction: Reduction) -> NllOpts {
    NllOpts {
        weight: weight.cloned(),
        ignore_index,
        reduction,
        ..NllOpts::default()
    }
}

/// Log-softmax of each row of a row-major `[n, c]` matrix, computed stably in f64:
/// `x - max - ln Σ exp(x - max)`.
fn log_softmax_rows(x: &[f64], c: usize) -> Vec<f64> {
    x.chunks(c)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            row.iter().map(move |v| v - lse).collect::<Vec<_>>()
        })
        .collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

// ---------------------------------------------------------------------------------
// nll_loss values
// ---------------------------------------------------------------------------------

/// A `[3, 4]` matrix of log-probabilities (rows need not be normalised for NLL).
const X34: [f64; 12] = [
    -1.2, -0.5, -2.0, -3.1, //
    -0.3, -1.7, -2.2, -0.9, //
    -1.0, -1.1, -1.3, -0.4,
];

fn nll_graph(dtype: DType) -> (GraphBuilder, Tensor, Tensor) {
    let g = GraphBuilder::new();
    let x = g.input("x", dtype, [3, 4]);
    let y = g.input("y", DType::I64, [3]);
    (g, x, y)
}

#[test]
fn nll_mean_sum_none() {
    let (g, x, y) = nll_graph(DType::F64);
    let mean = nll_loss(&x, &y, &opts(None, -100, Reduction::Mean));
    let sum = nll_loss(&x, &y, &opts(None, -100, Reduction::Sum));
    let none = nll_loss(&x, &y, &opts(None, -100, Reduction::None));
    assert_eq!(none.size(), vec![3]);
    assert_eq!(mean.size(), Vec::<usize>::new());
    // y = [1, 3, 0]: picked x[0][1] = -0.5, x[1][3] = -0.9, x[2][0] = -1.0.
    // none = [0.5, 0.9, 1.0]; sum = 2.4; mean = 2.4 / 3 = 0.8.
    let yv = [1i64, 3, 0];
    let per: Vec<f64> = (0..3).map(|i| -X34[i * 4 + yv[i] as usize]).collect();
    assert_close(&per, &[0.5, 0.9, 1.0], 1e-15, "hand values");
    let s: f64 = per.iter().sum();
    let out = run(
        &g,
        &[&mean, &sum, &none],
        &[("x", a64(&[3, 4], &X34)), ("y", ai64(&[3], &yv))],
    );
    assert_close(&out[0], &[s / 3.0], 1e-12, "mean");
    assert_close(&out[1], &[s], 1e-12, "sum");
    assert_close(&out[2], &per, 1e-12, "none");
    // Default options are Mean with ignore_index -100.
    let d = nll_loss(&x, &y, &NllOpts::default());
    let out = run(
        &g,
        &[&d],
        &[("x", a64(&[3, 4], &X34)), ("y", ai64(&[3], &yv))],
    );
    assert_close(&out[0], &[0.8], 1e-12, "default");
}

#[test]
fn nll_class_weights() {
    let (g, x, y) = nll_graph(DType::F64);
    let w = g.input("w", DType::F64, [4]);
    let wv = [0.5, 2.0, 1.0, 3.0];
    let yv = [1i64, 3, 0];
    let mean = nll_loss(&x, &y, &opts(Some(&w), -100, Reduction::Mean));
    let sum = nll_loss(&x, &y, &opts(Some(&w), -100, Reduction::Sum));
    let none = nll_loss(&x, &y, &opts(Some(&w), -100, Reduction::None));
    // w[y] = [2.0, 3.0, 0.5]; w[y]·(-x[y]) = [1.0, 2.7, 0.5]; Σ = 4.2; Σ w[y] = 5.5;
    // mean = 4.2 / 5.5 = 0.763636...
    let per: Vec<f64> = (0..3)
        .map(|i| wv[yv[i] as usize] * -X34[i * 4 + yv[i] as usize])
        .collect();
    let wsum: f64 = (0..3).map(|i| wv[yv[i] as usize]).sum();
    let s: f64 = per.iter().sum();
    assert_close(&per, &[1.0, 2.7, 0.5], 1e-15, "hand values");
    assert_close(&[s / wsum], &[4.2 / 5.5], 1e-15, "hand mean");
    let out = run(
        &g,
        &[&mean, &sum, &none],
        &[
            ("x", a64(&[3, 4], &X34)),
            ("y", ai64(&[3], &yv)),
            ("w", a64(&[4], &wv)),
        ],
    );
    assert_close(&out[0], &[s / wsum], 1e-12, "weighted mean");
    assert_close(&out[1], &[s], 1e-12, "weighted sum");
    assert_close(&out[2], &per, 1e-12, "weighted none");
}

#[test]
fn nll_ignore_index_default_and_custom() {
    // Default ignore_index = -100: y = [1, -100, 0] → terms 0.5 and 1.0 only;
    // sum = 1.5, mean = 1.5 / 2 (the ignored row leaves the denominator), none = [0.5, 0, 1].
    let (g, x, y) = nll_graph(DType::F64);
    let mean = nll_loss(&x, &y, &NllOpts::default());
    let sum = nll_loss(&x, &y, &opts(None, -100, Reduction::Sum));
    let none = nll_loss(&x, &y, &opts(None, -100, Reduction::None));
    let feeds = [("x", a64(&[3, 4], &X34)), ("y", ai64(&[3], &[1, -100, 0]))];
    let out = run(&g, &[&mean, &sum, &none], &feeds);
    assert_close(&out[0], &[(0.5 + 1.0) / 2.0], 1e-12, "mean, -100 ignored");
    assert_close(&out[1], &[1.5], 1e-12, "sum, -100 ignored");
    assert_close(&out[2], &[0.5, 0.0, 1.0], 1e-12, "none, -100 ignored");

    // Custom ignore_index = 3: y = [1, 3, 0] → the same 0.75, and -100 is now an
    // ordinary (out-of-range) label, not ignored.
    let (g, x, y) = nll_graph(DType::F64);
    let mean = nll_loss(&x, &y, &opts(None, 3, Reduction::Mean));
    let none = nll_loss(&x, &y, &opts(None, 3, Reduction::None));
    let feeds = [("x", a64(&[3, 4], &X34)), ("y", ai64(&[3], &[1, 3, 0]))];
    let out = run(&g, &[&mean, &none], &feeds);
    assert_close(&out[0], &[0.75], 1e-12, "mean, custom ignore 3");
    assert_close(&out[1], &[0.5, 0.0, 1.0], 1e-12, "none, custom ignore 3");

    // With class weights, an ignored label contributes neither to the numerator nor
    // to Σ w[y]: w = [0.5, 2, 1, 3], y = [1, 3(ignored), 0] → (2·0.5 + 0.5·1.0) / (2 + 0.5)
    // = 1.5 / 2.5 = 0.6.
    let (g, x, y) = nll_graph(DType::F64);
    let w = g.input("w", DType::F64, [4]);
    let mean = nll_loss(&x, &y, &opts(Some(&w), 3, Reduction::Mean));
    let sum = nll_loss(&x, &y, &opts(Some(&w), 3, Reduction::Sum));
    let feeds = [
        ("x", a64(&[3, 4], &X34)),
        ("y", ai64(&[3], &[1, 3, 0])),
        ("w", a64(&[4], &[0.5, 2.0, 1.0, 3.0])),
    ];
    let out = run(&g, &[&mean, &sum], &feeds);
    assert_close(&out[0], &[1.5 / 2.5], 1e-12, "weighted mean, ignore 3");
    assert_close(&out[1], &[1.5], 1e-12, "weighted sum, ignore 3");
}

#[test]
fn nll_all_targets_ignored_mean_is_nan_sum_is_zero() {
    // PyTorch: mean over zero non-ignored elements is 0/0 = nan; the sum is 0.
    let (g, x, y) = nll_graph(DType::F64);
    let mean = nll_loss(&x, &y, &NllOpts::default());
    let sum = nll_loss(&x, &y, &opts(None, -100, Reduction::Sum));
    let feeds = [
        ("x", a64(&[3, 4], &X34)),
        ("y", ai64(&[3], &[-100, -100, -100])),
    ];
    let out = run(&g, &[&mean, &sum], &feeds);
    assert!(out[0][0].is_nan(), "mean of nothing: {}", out[0][0]);
    assert_eq!(out[1][0], 0.0);
}

#[test]
fn nll_k_dimensional_input() {
    // input [N=2, C=3, d=2], target [N=2, d=2]: loss[n, k] = -x[n, y[n,k], k].
    let (n, c, d) = (2usize, 3usize, 2usize);
    // x[n][c][k] = -(0.1 + 0.2·c + 0.05·k + 0.7·n)
    let xv: Vec<f64> = (0..n * c * d)
        .map(|i| {
            let (ni, ci, ki) = (i / (c * d), (i / d) % c, i % d);
            -(0.1 + 0.2 * ci as f64 + 0.05 * ki as f64 + 0.7 * ni as f64)
        })
        .collect();
    let yv = [2i64, 0, 1, -100];
    // Hand values: (n=0,k=0,y=2) 0.5; (0,1,y=0) 0.15; (1,0,y=1) 1.0; (1,1) ignored.
    let per: Vec<f64> = (0..n * d)
        .map(|j| {
            let (ni, ki) = (j / d, j % d);
            if yv[j] == -100 {
                0.0
            } else {
                -xv[ni * c * d + yv[j] as usize * d + ki]
            }
        })
        .collect();
    assert_close(&per, &[0.5, 0.15, 1.0, 0.0], 1e-12, "hand values");
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [n, c, d]);
    let y = g.input("y", DType::I64, [n, d]);
    let w = g.input("w", DType::F64, [c]);
    let mean = nll_loss(&x, &y, &NllOpts::default());
    let sum = nll_loss(&x, &y, &opts(None, -100, Reduction::Sum));
    let none = nll_loss(&x, &y, &opts(None, -100, Reduction::None));
    let wmean = nll_loss(&x, &y, &opts(Some(&w), -100, Reduction::Mean));
    assert_eq!(none.size(), vec![n, d]);
    let wv = [1.0, 2.0, 4.0];
    let feeds = [
        ("x", a64(&[n, c, d], &xv)),
        ("y", ai64(&[n, d], &yv)),
        ("w", a64(&[c], &wv)),
    ];
    let out = run(&g, &[&mean, &sum, &none, &wmean], &feeds);
    // mean over 3 non-ignored: 1.65 / 3 = 0.55.
    assert_close(&out[0], &[1.65 / 3.0], 1e-12, "kd mean");
    assert_close(&out[1], &[1.65], 1e-12, "kd sum");
    assert_close(&out[2], &per, 1e-12, "kd none");
    // weighted: w[y] = [4, 1, 2] → (4·0.5 + 1·0.15 + 2·1.0) / 7 = 4.15 / 7.
    assert_close(&out[3], &[4.15 / 7.0], 1e-12, "kd weighted mean");
}

// ---------------------------------------------------------------------------------
// cross_entropy, mse, bce, bce with logits: values
// ---------------------------------------------------------------------------------

#[test]
fn cross_entropy_from_logits() {
    // logits [[1,2,3],[1,1,1],[0.5,-1,2]], y = [2, 0, 1].
    // row 0: lse = ln(e + e² + e³) = 3.4076059644; loss = lse - 3 = 0.4076059644.
    // row 1: lse = 1 + ln 3; loss = ln 3 = 1.0986122887.
    // row 2: lse = ln(e^0.5 + e^-1 + e^2); loss = lse + 1.
    let lv = [1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 0.5, -1.0, 2.0];
    let yv = [2i64, 0, 1];
    let lsm = log_softmax_rows(&lv, 3);
    let per: Vec<f64> = (0..3).map(|i| -lsm[i * 3 + yv[i] as usize]).collect();
    let r0 = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 3.0;
    assert_close(&per[..2], &[r0, 3f64.ln()], 1e-14, "hand values");
    assert!((r0 - 0.4076059644).abs() < 1e-9);
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [3, 3]);
    let y = g.input("y", DType::I64, [3]);
    let w = g.input("w", DType::F64, [3]);
    let mean = cross_entropy(&x, &y, &NllOpts::default());
    let sum = cross_entropy(&x, &y, &opts(None, -100, Reduction::Sum));
    let none = cross_entropy(&x, &y, &opts(None, -100, Reduction::None));
    let wmean = cross_entropy(&x, &y, &opts(Some(&w), -100, Reduction::Mean));
    let wv = [0.2, 1.5, 3.0];
    let feeds = [
        ("x", a64(&[3, 3], &lv)),
        ("y", ai64(&[3], &yv)),
        ("w", a64(&[3], &wv)),
    ];
    let out = run(&g, &[&mean, &sum, &none, &wmean], &feeds);
    let s: f64 = per.iter().sum();
    assert_close(&out[0], &[s / 3.0], 1e-12, "ce mean");
    assert_close(&out[1], &[s], 1e-12, "ce sum");
    assert_close(&out[2], &per, 1e-12, "ce none");
    // w[y] = [3.0, 0.2, 1.5]
    let wy = [3.0, 0.2, 1.5];
    let wnum: f64 = (0..3).map(|i| wy[i] * per[i]).sum();
    assert_close(&out[3], &[wnum / 4.7], 1e-12, "ce weighted mean");
}

#[test]
fn cross_entropy_large_logits_are_stable() {
    // logits [1000, 0, -1000] with y = 0 → loss ≈ e^-1000 ≈ 0; y = 1 → 1000; y = 2 → 2000.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 3]);
    let y = g.input("y", DType::I64, [3]);
    let none = cross_entropy(&x, &y, &opts(None, -100, Reduction::None));
    let row = [1000.0, 0.0, -1000.0];
    let lv: Vec<f64> = row.iter().cycle().take(9).cloned().collect();
    let out = run(
        &g,
        &[&none],
        &[("x", a32(&[3, 3], &lv)), ("y", ai64(&[3], &[0, 1, 2]))],
    );
    assert_close(&out[0], &[0.0, 1000.0, 2000.0], 1e-6, "ce large logits");
}

#[test]
fn k_dimensional_cross_entropy() {
    // logits [N=1, C=3, d=2]: column k is a softmax over C; y = [[0, 2]].
    // column 0: logits (0.2, 0.4, 0.6); column 1: (1.0, -1.0, 0.0).
    let xv = [0.2, 1.0, 0.4, -1.0, 0.6, 0.0]; // [c][k] layout, n = 0
    let col0 = log_softmax_rows(&[0.2, 0.4, 0.6], 3);
    let col1 = log_softmax_rows(&[1.0, -1.0, 0.0], 3);
    let per = [-col0[0], -col1[2]];
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [1, 3, 2]);
    let y = g.input("y", DType::I64, [1, 2]);
    let none = cross_entropy(&x, &y, &opts(None, -100, Reduction::None));
    let mean = cross_entropy(&x, &y, &NllOpts::default());
    let out = run(
        &g,
        &[&none, &mean],
        &[("x", a64(&[1, 3, 2], &xv)), ("y", ai64(&[1, 2], &[0, 2]))],
    );
    assert_close(&out[0], &per, 1e-12, "kd ce none");
    assert_close(&out[1], &[(per[0] + per[1]) / 2.0], 1e-12, "kd ce mean");
}

#[test]
fn mse_values() {
    // input [1,2,3,4], target [1.5,2,2,5]: diffs [-0.5,0,1,-1], squares [.25,0,1,1];
    // sum 2.25, mean 0.5625.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2, 2]);
    let t = g.input("t", DType::F64, [2, 2]);
    let mean = mse_loss(&x, &t, Reduction::Mean);
    let sum = mse_loss(&x, &t, Reduction::Sum);
    let none = mse_loss(&x, &t, Reduction::None);
    let out = run(
        &g,
        &[&mean, &sum, &none],
        &[
            ("x", a64(&[2, 2], &[1.0, 2.0, 3.0, 4.0])),
            ("t", a64(&[2, 2], &[1.5, 2.0, 2.0, 5.0])),
        ],
    );
    assert_close(&out[0], &[0.5625], 1e-14, "mse mean");
    assert_close(&out[1], &[2.25], 1e-14, "mse sum");
    assert_close(&out[2], &[0.25, 0.0, 1.0, 1.0], 1e-14, "mse none");
}

/// `-(y·max(ln p, -100) + (1-y)·max(ln(1-p), -100))`, PyTorch's clamped BCE.
fn bce_ref(p: f64, y: f64) -> f64 {
    let lp = p.ln().max(-100.0);
    let l1p = (1.0 - p).ln().max(-100.0);
    -(y * lp + (1.0 - y) * l1p)
}

#[test]
fn bce_values_with_log_clamp() {
    // p = [0.2, 0.9, 0.5, 0, 1, 0, 1], y = [0, 1, 0.3, 1, 0, 0, 1]:
    // -ln 0.8 = 0.2231435513, -ln 0.9 = 0.1053605157, -ln 0.5 = 0.6931471806,
    // p=0,y=1 → 100 (ln 0 clamped to -100); p=1,y=0 → 100; p=0,y=0 → 0; p=1,y=1 → 0.
    let pv = [0.2, 0.9, 0.5, 0.0, 1.0, 0.0, 1.0];
    let yv = [0.0, 1.0, 0.3, 1.0, 0.0, 0.0, 1.0];
    let per: Vec<f64> = pv.iter().zip(&yv).map(|(&p, &y)| bce_ref(p, y)).collect();
    assert_close(
        &per,
        &[
            0.2231435513142097,
            0.10536051565782628,
            std::f64::consts::LN_2,
            100.0,
            100.0,
            0.0,
            0.0,
        ],
        1e-12,
        "hand values",
    );
    for dtype in [DType::F64, DType::F32] {
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-6 };
        let g = GraphBuilder::new();
        let p = g.input("p", dtype, [7]);
        let y = g.input("y", dtype, [7]);
        let wt = g.input("wt", dtype, [7]);
        let mean = binary_cross_entropy(&p, &y, None, Reduction::Mean);
        let sum = binary_cross_entropy(&p, &y, None, Reduction::Sum);
        let none = binary_cross_entropy(&p, &y, None, Reduction::None);
        let weighted = binary_cross_entropy(&p, &y, Some(&wt), Reduction::Sum);
        let wv = [1.0, 2.0, 0.5, 0.25, 0.1, 3.0, 4.0];
        let out = run(
            &g,
            &[&mean, &sum, &none, &weighted],
            &[
                ("p", Array::from_f64(dtype, vec![7], &pv).unwrap()),
                ("y", Array::from_f64(dtype, vec![7], &yv).unwrap()),
                ("wt", Array::from_f64(dtype, vec![7], &wv).unwrap()),
            ],
        );
        let s: f64 = per.iter().sum();
        let ws: f64 = per.iter().zip(&wv).map(|(l, w)| l * w).sum();
        assert!(out.iter().flatten().all(|v| v.is_finite()), "{out:?}");
        assert_close(&out[0], &[s / 7.0], tol, "bce mean");
        assert_close(&out[1], &[s], tol, "bce sum");
        assert_close(&out[2], &per, tol, "bce none");
        assert_close(&out[3], &[ws], tol, "bce weighted sum");
    }
}

/// BCE with logits from its definition: `-(pw·y·ln σ(x) + (1-y)·ln(1-σ(x)))`, with
/// `ln σ(x) = -ln(1+e^{-x})` and `ln(1-σ(x)) = -ln(1+e^{x})` (exact in f64 for |x| ≤ 700).
fn bce_logits_ref(x: f64, y: f64, pw: f64) -> f64 {
    let log_sig = -(-x).exp().ln_1p();
    let log_one_minus_sig = -x.exp().ln_1p();
    -(pw * y * log_sig + (1.0 - y) * log_one_minus_sig)
}

const XL: [f64; 6] = [-2.0, 0.5, 3.0, 100.0, -100.0, 0.0];
const YL: [f64; 6] = [0.0, 1.0, 1.0, 0.0, 1.0, 0.3];
const PW: [f64; 3] = [2.0, 0.5, 3.0];

#[test]
fn bce_with_logits_values_and_large_logits() {
    // Hand values: x=-2,y=0 → ln(1+e^-2) = 0.1269280110; x=100,y=0 → 100 (+e^-100);
    // x=-100,y=1 → 100; x=0,y=0.3 → ln 2.
    let per: Vec<f64> = XL
        .iter()
        .zip(&YL)
        .map(|(&x, &y)| bce_logits_ref(x, y, 1.0))
        .collect();
    assert_close(
        &[per[0], per[3], per[4], per[5]],
        &[0.12692801104297263, 100.0, 100.0, std::f64::consts::LN_2],
        1e-12,
        "hand values",
    );
    // pos_weight broadcast over the last axis of [2, 3]: element i has pw[i % 3].
    let per_pw: Vec<f64> = (0..6)
        .map(|i| bce_logits_ref(XL[i], YL[i], PW[i % 3]))
        .collect();
    // x=100, y=0 (pw[0] = 2): the positive term vanishes → still 100;
    // x=-100, y=1 (pw[1] = 0.5): 0.5·ln(1+e^100) = 0.5·100 = 50.
    assert_close(&[per_pw[3], per_pw[4]], &[100.0, 50.0], 1e-12, "hand pw");
    for dtype in [DType::F64, DType::F32] {
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-6 };
        let g = GraphBuilder::new();
        let x = g.input("x", dtype, [2, 3]);
        let y = g.input("y", dtype, [2, 3]);
        let pw = g.input("pw", dtype, [3]);
        let none = binary_cross_entropy_with_logits(&x, &y, None, None, Reduction::None);
        let mean = binary_cross_entropy_with_logits(&x, &y, None, None, Reduction::Mean);
        let none_pw = binary_cross_entropy_with_logits(&x, &y, None, Some(&pw), Reduction::None);
        let sum_pw = binary_cross_entropy_with_logits(&x, &y, None, Some(&pw), Reduction::Sum);
        let out = run(
            &g,
            &[&none, &mean, &none_pw, &sum_pw],
            &[
                ("x", Array::from_f64(dtype, vec![2, 3], &XL).unwrap()),
                ("y", Array::from_f64(dtype, vec![2, 3], &YL).unwrap()),
                ("pw", Array::from_f64(dtype, vec![3], &PW).unwrap()),
            ],
        );
        assert!(out.iter().flatten().all(|v| v.is_finite()), "{out:?}");
        assert_close(&out[0], &per, tol, "bce logits none");
        assert_close(
            &out[1],
            &[per.iter().sum::<f64>() / 6.0],
            tol,
            "bce logits mean",
        );
        assert_close(&out[2], &per_pw, tol, "bce logits pw none");
        assert_close(
            &out[3],
            &[per_pw.iter().sum::<f64>()],
            tol,
            "bce logits pw sum",
        );
    }
}

#[test]
fn compiled_losses_match_reference() {
    // The same losses through the JIT (f32) instead of the interpreter.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let y = g.input("y", DType::I64, [3]);
    let w = g.input("w", DType::F32, [4]);
    let t = g.input("t", DType::F32, [3, 4]);
    let ce = cross_entropy(&x, &y, &opts(Some(&w), -100, Reduction::Mean));
    let nll = nll_loss(&x, &y, &opts(None, 3, Reduction::Sum));
    let mse = mse_loss(&x, &t, Reduction::Mean);
    let bcel = binary_cross_entropy_with_logits(&x, &t, None, None, Reduction::Sum);
    let mut c = g.compile(&[&ce, &nll, &mse, &bcel]).unwrap();
    let yv = [1i64, 3, 0];
    let wv = [0.5, 2.0, 1.0, 3.0];
    let tv: Vec<f64> = (0..12).map(|i| (i % 5) as f64 / 4.0).collect();
    let out = c
        .run(&[
            ("x", a32(&[3, 4], &X34)),
            ("y", ai64(&[3], &yv)),
            ("w", a32(&[4], &wv)),
            ("t", a32(&[3, 4], &tv)),
        ])
        .unwrap();
    let lsm = log_softmax_rows(&X34, 4);
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..3 {
        let k = yv[i] as usize;
        num += wv[k] * -lsm[i * 4 + k];
        den += wv[k];
    }
    // nll with ignore_index 3: rows 0 and 2 → 0.5 + 1.0.
    let mse_ref = X34
        .iter()
        .zip(&tv)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        / 12.0;
    let bcel_ref: f64 = X34
        .iter()
        .zip(&tv)
        .map(|(&a, &b)| bce_logits_ref(a, b, 1.0))
        .sum();
    assert_close(&out[0].to_f64_vec(), &[num / den], 1e-6, "jit ce");
    assert_close(&out[1].to_f64_vec(), &[1.5], 1e-6, "jit nll");
    assert_close(&out[2].to_f64_vec(), &[mse_ref], 1e-6, "jit mse");
    assert_close(&out[3].to_f64_vec(), &[bcel_ref], 1e-6, "jit bce logits");
}

// ---------------------------------------------------------------------------------
// Typed errors
// ---------------------------------------------------------------------------------

#[test]
fn nll_target_of_dtype_f32_is_a_typed_error() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let y = g.input("y", DType::F32, [3]);
    let loss = nll_loss(&x, &y, &NllOpts::default());
    let e = loss.check().unwrap_err();
    assert!(matches!(e, Error::Op { op: "nll_loss", .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("nll_loss") && msg.contains("i64"), "{msg}");
    assert!(
        msg.contains("losses.rs"),
        "error points at the caller: {msg}"
    );
    assert_eq!(g.build(&[&loss]).unwrap_err(), e);
    // cross_entropy takes a float target as class probabilities: of the wrong shape, it
    // says both what a probability target and what class indices must be.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let y = g.input("y", DType::F32, [3]);
    let e = cross_entropy(&x, &y, &NllOpts::default())
        .check()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Op {
                op: "cross_entropy",
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("probabilities") && msg.contains("i64"),
        "{msg}"
    );
}

#[test]
fn nll_shape_mismatches_are_typed_errors() {
    // target [4] for input [3, 4]; class weight [3] for C = 4.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let y = g.input("y", DType::I64, [4]);
    let e = nll_loss(&x, &y, &NllOpts::default()).check().unwrap_err();
    assert!(matches!(e, Error::Op { op: "nll_loss", .. }), "{e:?}");
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let y = g.input("y", DType::I64, [3]);
    let w = g.input("w", DType::F32, [3]);
    let e = nll_loss(&x, &y, &opts(Some(&w), -100, Reduction::Mean))
        .check()
        .unwrap_err();
    assert!(matches!(e, Error::Op { op: "nll_loss", .. }), "{e:?}");
    assert!(e.to_string().contains("weight"), "{e}");
}

#[test]
fn elementwise_loss_shape_mismatches_are_typed_errors() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let t = g.input("t", DType::F32, [4, 3]);
    let e = mse_loss(&x, &t, Reduction::Mean).check().unwrap_err();
    assert!(matches!(e, Error::Op { op: "mse_loss", .. }), "{e:?}");
    assert!(e.to_string().contains("mse_loss"), "{e}");
    assert!(g.build(&[&x]).is_err(), "the builder remembers the failure");

    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let t = g.input("t", DType::F32, [3]);
    let e = binary_cross_entropy(&x, &t, None, Reduction::Mean)
        .check()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Op {
                op: "binary_cross_entropy",
                ..
            }
        ),
        "{e:?}"
    );
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let t = g.input("t", DType::F32, [3]);
    let e = binary_cross_entropy_with_logits(&x, &t, None, None, Reduction::Mean)
        .check()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Op {
                op: "binary_cross_entropy_with_logits",
                ..
            }
        ),
        "{e:?}"
    );
}

/// Whether `e` reports class index `index` out of range for `extent` classes: the
/// check of fed labels, or the run-time report of the gather (interpreter or compiled
/// executable) for targets computed in the graph.
fn is_index_error(e: &Error, index: i64, extent: usize) -> bool {
    match e {
        Error::TargetOutOfRange { value, classes, .. } => *value == index && *classes == extent,
        Error::Run(InterpError::GatherIndexOutOfRange {
            index: i,
            extent: x,
            ..
        }) => *i == index && *x == extent,
        Error::Exec(r) => match r.as_ref() {
            onde::codegen::RunError::IndexOutOfRange {
                index: i,
                extent: x,
                ..
            }
            | onde::codegen::RunError::Host(InterpError::GatherIndexOutOfRange {
                index: i,
                extent: x,
                ..
            }) => *i == index && *x == extent,
            onde::codegen::RunError::MissingFeed { .. }
            | onde::codegen::RunError::UnknownFeed { .. }
            | onde::codegen::RunError::FeedType { .. }
            | onde::codegen::RunError::Host(..)
            | onde::codegen::RunError::Native(..)
            | onde::codegen::RunError::State { .. } => false,
        },
        Error::Op { .. }
        | Error::MixedBuilders { .. }
        | Error::DuplicateName { .. }
        | Error::Grad { .. }
        | Error::Compile(..)
        | Error::Gradcheck { .. }
        | Error::UnknownParameter { .. }
        | Error::ParameterType { .. }
        | Error::Train { .. }
        | Error::StateDict { .. }
        | Error::Checkpoint { .. }
        | Error::Layer { .. }
        | Error::LengthOutOfRange { .. }
        | Error::Verify(..)
        | Error::Run(..) => false,
    }
}

#[test]
fn label_out_of_range_is_a_run_error_on_the_interpreter() {
    for (label, weighted) in [(7i64, false), (7, true), (-1, false), (4, false)] {
        let g = GraphBuilder::new();
        let x = g.input("x", DType::F32, [3, 4]);
        let y = g.input("y", DType::I64, [3]);
        let w = g.input("w", DType::F32, [4]);
        let o = opts(weighted.then_some(&w), -100, Reduction::Mean);
        let loss = nll_loss(&x, &y, &o);
        let ce = cross_entropy(&x, &y, &o);
        let feeds = [
            ("x", a32(&[3, 4], &X34)),
            ("y", ai64(&[3], &[0, label, 1])),
            ("w", a32(&[4], &[1.0; 4])),
        ];
        for t in [&loss, &ce] {
            let e = g.run(&[t], &feeds).unwrap_err();
            assert!(is_index_error(&e, label, 4), "label {label}: {e:?}");
        }
    }
}

#[test]
fn label_out_of_range_is_a_run_error_when_compiled() {
    for label in [7i64, -1] {
        let g = GraphBuilder::new();
        let x = g.input("x", DType::F32, [3, 4]);
        let y = g.input("y", DType::I64, [3]);
        let loss = cross_entropy(&x, &y, &NllOpts::default());
        let mut c = g.compile(&[&loss]).unwrap();
        let e = c
            .run(&[("x", a32(&[3, 4], &X34)), ("y", ai64(&[3], &[0, label, 1]))])
            .unwrap_err();
        assert!(is_index_error(&e, label, 4), "label {label}: {e:?}");
        // A valid batch afterwards still runs and gives the right value.
        let out = c
            .run(&[("x", a32(&[3, 4], &X34)), ("y", ai64(&[3], &[1, 3, 0]))])
            .unwrap();
        let lsm = log_softmax_rows(&X34, 4);
        let want = -(lsm[1] + lsm[4 + 3] + lsm[8]) / 3.0;
        assert_close(&out[0].to_f64_vec(), &[want], 1e-6, "after the error");
    }
}

#[test]
fn label_out_of_range_is_a_run_error_in_a_train_step() {
    // logits = x @ W (W: [4, 4] parameter), loss = cross_entropy(logits, y).
    let g = GraphBuilder::new();
    let wv: Vec<f64> = (0..16)
        .map(|i| ((i * 7) % 11) as f64 / 10.0 - 0.5)
        .collect();
    let w = g.parameter("w", a32(&[4, 4], &wv));
    let x = g.input("x", DType::F32, [3, 4]);
    let y = g.input("y", DType::I64, [3]);
    let loss = cross_entropy(&x.matmul(&w), &y, &NllOpts::default());
    let mut step = TrainStep::new(&g, &loss, &Sgd::new(0.1)).unwrap();
    let xa = a32(&[3, 4], &X34);
    let bad = ai64(&[3], &[0, 7, 1]);
    let e = step.step(&[("x", &xa), ("y", &bad)]).unwrap_err();
    assert!(is_index_error(&e, 7, 4), "{e:?}");
    // The failed step must not have changed the weights.
    assert_close(
        &step.value("w").unwrap().to_f64_vec(),
        &a32(&[4, 4], &wv).to_f64_vec(),
        0.0,
        "weights after a failed step",
    );
    // A valid step afterwards works: loss at the initial weights.
    let good = ai64(&[3], &[1, 3, 0]);
    let l = step.step(&[("x", &xa), ("y", &good)]).unwrap();
    let wf = a32(&[4, 4], &wv).to_f64_vec();
    let xf = a32(&[3, 4], &X34).to_f64_vec();
    let logits: Vec<f64> = (0..12)
        .map(|k| {
            let (i, j) = (k / 4, k % 4);
            (0..4).map(|m| xf[i * 4 + m] * wf[m * 4 + j]).sum()
        })
        .collect();
    let lsm = log_softmax_rows(&logits, 4);
    let want = -(lsm[1] + lsm[4 + 3] + lsm[8]) / 3.0;
    assert_close(&[l], &[want], 1e-6, "loss of the valid step");
}

// ---------------------------------------------------------------------------------
// Gradients (f64, central finite differences and hand-derived formulas)
// ---------------------------------------------------------------------------------

#[test]
fn nll_gradients() {
    // d mean / d x[i][k] = -w[y_i] / Σ w[y_j] if k = y_i (and y_i not ignored), else 0.
    let yv = [1i64, 3, 0];
    let wv = [0.5, 2.0, 1.0, 3.0];
    for (weighted, ignore, red) in [
        (false, -100, Reduction::Mean),
        (false, -100, Reduction::Sum),
        (true, -100, Reduction::Mean),
        (true, 3, Reduction::Mean),
        (false, 3, Reduction::Mean),
        (true, -100, Reduction::Sum),
    ] {
        let (g, x, y) = nll_graph(DType::F64);
        let w = g.input("w", DType::F64, [4]);
        let loss = nll_loss(&x, &y, &opts(weighted.then_some(&w), ignore, red));
        let wt = |k: usize| if weighted { wv[k] } else { 1.0 };
        let kept: Vec<usize> = (0..3).filter(|&i| yv[i] != ignore).collect();
        let den: f64 = match red {
            Reduction::Mean => kept.iter().map(|&i| wt(yv[i] as usize)).sum(),
            Reduction::Sum | Reduction::None => 1.0,
        };
        let mut want = vec![0.0; 12];
        for &i in &kept {
            let k = yv[i] as usize;
            want[i * 4 + k] = -wt(k) / den;
        }
        check_grad(
            &g,
            &loss,
            (&x, "x"),
            &a64(&[3, 4], &X34),
            &[("y", ai64(&[3], &yv)), ("w", a64(&[4], &wv))],
            Some(&want),
            &format!("nll weighted={weighted} ignore={ignore} {red:?}"),
        );
    }
}

#[test]
fn cross_entropy_gradient() {
    // d mean CE / d logits = (softmax(logits) - onehot(y)) / N.
    let lv = [1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 0.5, -1.0, 2.0];
    let yv = [2i64, 0, 1];
    let lsm = log_softmax_rows(&lv, 3);
    let want: Vec<f64> = (0..9)
        .map(|k| {
            let (i, j) = (k / 3, k % 3);
            let onehot = if yv[i] as usize == j { 1.0 } else { 0.0 };
            (lsm[k].exp() - onehot) / 3.0
        })
        .collect();
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [3, 3]);
    let y = g.input("y", DType::I64, [3]);
    let loss = cross_entropy(&x, &y, &NllOpts::default());
    check_grad(
        &g,
        &loss,
        (&x, "x"),
        &a64(&[3, 3], &lv),
        &[("y", ai64(&[3], &yv))],
        Some(&want),
        "cross_entropy",
    );
    // Weighted, with an ignored row, K-dimensional: finite differences only.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2, 3, 2]);
    let y = g.input("y", DType::I64, [2, 2]);
    let w = g.input("w", DType::F64, [3]);
    let loss = cross_entropy(&x, &y, &opts(Some(&w), -100, Reduction::Mean));
    let xv: Vec<f64> = (0..12).map(|i| ((i * 5) % 7) as f64 / 3.0 - 1.0).collect();
    check_grad(
        &g,
        &loss,
        (&x, "x"),
        &a64(&[2, 3, 2], &xv),
        &[
            ("y", ai64(&[2, 2], &[2, 0, -100, 1])),
            ("w", a64(&[3], &[0.3, 1.0, 2.5])),
        ],
        None,
        "kd weighted cross_entropy",
    );
}

#[test]
fn mse_gradient() {
    // d mean (x-t)² / dx = 2(x - t) / n.
    let xv = [1.0, 2.0, 3.0, 4.0];
    let tv = [1.5, 2.0, 2.0, 5.0];
    let want: Vec<f64> = xv
        .iter()
        .zip(&tv)
        .map(|(x, t)| 2.0 * (x - t) / 4.0)
        .collect();
    assert_close(&want, &[-0.25, 0.0, 0.5, -0.5], 1e-15, "hand values");
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2, 2]);
    let t = g.input("t", DType::F64, [2, 2]);
    let loss = mse_loss(&x, &t, Reduction::Mean);
    check_grad(
        &g,
        &loss,
        (&x, "x"),
        &a64(&[2, 2], &xv),
        &[("t", a64(&[2, 2], &tv))],
        Some(&want),
        "mse",
    );
}

#[test]
fn bce_gradient_interior() {
    // d mean BCE / dp = (p - y) / (p (1 - p)) / n, for 0 < p < 1.
    let pv = [0.2, 0.9, 0.5, 0.35];
    let yv = [0.0, 1.0, 0.3, 1.0];
    let want: Vec<f64> = pv
        .iter()
        .zip(&yv)
        .map(|(p, y)| (p - y) / (p * (1.0 - p)) / 4.0)
        .collect();
    let g = GraphBuilder::new();
    let p = g.input("p", DType::F64, [4]);
    let y = g.input("y", DType::F64, [4]);
    let loss = binary_cross_entropy(&p, &y, None, Reduction::Mean);
    check_grad(
        &g,
        &loss,
        (&p, "p"),
        &a64(&[4], &pv),
        &[("y", a64(&[4], &yv))],
        Some(&want),
        "bce",
    );
}

#[test]
fn bce_gradient_is_finite_at_p_zero_and_one() {
    // The gradient must be finite at p ∈ {0, 1}: a NaN here poisons every parameter of
    // a network whose sigmoid saturates.
    let pv = [0.0, 1.0, 0.0, 1.0];
    let yv = [0.0, 1.0, 1.0, 0.0];
    let g = GraphBuilder::new();
    let p = g.input("p", DType::F64, [4]);
    let y = g.input("y", DType::F64, [4]);
    let loss = binary_cross_entropy(&p, &y, None, Reduction::Sum);
    let gp = g.grad(&loss, &[&p]).unwrap();
    let out = run(
        &g,
        &[&gp[0]],
        &[("p", a64(&[4], &pv)), ("y", a64(&[4], &yv))],
    );
    assert!(
        out[0].iter().all(|v| v.is_finite()),
        "gradient {:?}",
        out[0]
    );
    // onde differentiates the loss as computed, clamp included:
    // p = 0, y = 0: -log(1 - p) has derivative 1/(1 - p) = 1;
    // p = 1, y = 1: -log(p) has derivative -1/p = -1;
    // p = 0, y = 1 and p = 1, y = 0: the clamped log is the constant -100: 0.
    // (PyTorch's closed form (p - y)/max(p(1 - p), 1e-12) gives 0, 0, -1e12, 1e12 there:
    // an artefact of its eps, not the derivative.)
    assert_eq!(out[0], vec![1.0, -1.0, 0.0, 0.0], "gradient {:?}", out[0]);
}

#[test]
fn bce_with_logits_gradient() {
    // Without pos_weight: d per / dx = σ(x) - y.
    // With pos_weight: per = -(pw·y·ln σ(x) + (1-y)·ln(1-σ(x))), so
    // d per / dx = -(pw·y·(1-σ) - (1-y)·σ) = σ(x)·(1 - y + pw·y) - pw·y.
    // Points away from x = 0 (finite differences of the max/abs pieces); x = ±100 too.
    let xv = [-2.0, 0.5, 3.0, 100.0, -100.0, -0.7];
    let yv = [0.0, 1.0, 1.0, 0.0, 1.0, 0.3];
    let want: Vec<f64> = xv
        .iter()
        .zip(&yv)
        .map(|(&x, &y)| (sigmoid(x) - y) / 6.0)
        .collect();
    let want_pw: Vec<f64> = (0..6)
        .map(|i| {
            let (x, y, pw) = (xv[i], yv[i], PW[i % 3]);
            sigmoid(x) * (1.0 - y + pw * y) - pw * y
        })
        .collect();
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2, 3]);
    let y = g.input("y", DType::F64, [2, 3]);
    let pw = g.input("pw", DType::F64, [3]);
    let mean = binary_cross_entropy_with_logits(&x, &y, None, None, Reduction::Mean);
    let sum_pw = binary_cross_entropy_with_logits(&x, &y, None, Some(&pw), Reduction::Sum);
    let others = [("y", a64(&[2, 3], &yv)), ("pw", a64(&[3], &PW))];
    let x0 = a64(&[2, 3], &xv);
    check_grad(
        &g,
        &mean,
        (&x, "x"),
        &x0,
        &others,
        Some(&want),
        "bce logits",
    );
    check_grad(
        &g,
        &sum_pw,
        (&x, "x"),
        &x0,
        &others,
        Some(&want_pw),
        "bce logits pw",
    );
}

#[test]
fn bce_with_logits_gradient_at_zero_logit() {
    // The loss is smooth in x: at x = 0 its derivative is σ(0) - y = 0.5 - y (PyTorch's
    // backward computes exactly that), whatever subgradients the stable formula's
    // max(x, 0) and |x| pieces take at 0. Zero logits are common (zero-initialised
    // output layer).
    let xv = [0.0, 0.0, 0.0];
    let yv = [0.0, 1.0, 0.3];
    let want: Vec<f64> = yv.iter().map(|y| 0.5 - y).collect();
    let want_pw: Vec<f64> = (0..3)
        .map(|i| 0.5 * (1.0 - yv[i] + PW[i] * yv[i]) - PW[i] * yv[i])
        .collect();
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [3]);
    let y = g.input("y", DType::F64, [3]);
    let pw = g.input("pw", DType::F64, [3]);
    let sum = binary_cross_entropy_with_logits(&x, &y, None, None, Reduction::Sum);
    let sum_pw = binary_cross_entropy_with_logits(&x, &y, None, Some(&pw), Reduction::Sum);
    let others = [("y", a64(&[3], &yv)), ("pw", a64(&[3], &PW))];
    let x0 = a64(&[3], &xv);
    check_grad(
        &g,
        &sum,
        (&x, "x"),
        &x0,
        &others,
        Some(&want),
        "bce logits at 0",
    );
    check_grad(
        &g,
        &sum_pw,
        (&x, "x"),
        &x0,
        &others,
        Some(&want_pw),
        "bce logits pw at 0",
    );
}

#[test]
fn compiled_train_step_gradient_of_weighted_cross_entropy() {
    // logits are the parameter z ([3, 4], f64) itself; weighted mean CE with row 1
    // ignored. d loss / d z[i][j] = w[yᵢ]/W · (softmax(z)[i][j] - 1[j = yᵢ]) for kept rows
    // (W = Σ_kept w[yᵢ]), 0 for the ignored row.
    let zv: Vec<f64> = X34.iter().map(|v| v * 1.5 + 0.25).collect();
    let yv = [2i64, -100, 1];
    let wv = [0.5, 2.0, 1.0, 3.0];
    let g = GraphBuilder::new();
    let z = g.parameter("z", a64(&[3, 4], &zv));
    let y = g.input("y", DType::I64, [3]);
    let w = g.input("w", DType::F64, [4]);
    let loss = cross_entropy(&z, &y, &opts(Some(&w), -100, Reduction::Mean));
    let o = onde::TrainOptions {
        grads: true,
        ..onde::TrainOptions::default()
    };
    let mut step = TrainStep::with_options(&g, &loss, &Sgd::new(0.0), o).unwrap();
    let (ya, wa) = (ai64(&[3], &yv), a64(&[4], &wv));
    let l = step.step(&[("y", &ya), ("w", &wa)]).unwrap();
    let lsm = log_softmax_rows(&zv, 4);
    // W = w[2] + w[1] = 1 + 2 = 3.
    let big_w = wv[2] + wv[1];
    let want_loss = (wv[2] * -lsm[2] + wv[1] * -lsm[8 + 1]) / big_w;
    assert_close(&[l], &[want_loss], 1e-12, "loss");
    let mut want = vec![0.0; 12];
    for i in [0usize, 2] {
        let k = yv[i] as usize;
        for j in 0..4 {
            let onehot = if j == k { 1.0 } else { 0.0 };
            want[i * 4 + j] = wv[k] / big_w * (lsm[i * 4 + j].exp() - onehot);
        }
    }
    assert_close(
        &step.grad("z").unwrap().to_f64_vec(),
        &want,
        1e-12,
        "compiled gradient",
    );
}

#[test]
fn nll_ignored_rows_contribute_exactly_zero_even_at_minus_infinity() {
    // Row 1 is ignored and its log-prob at the placeholder class 0 is -inf: the loss
    // must stay finite (PyTorch skips ignored elements).
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2, 2]);
    let y = g.input("y", DType::I64, [2]);
    let none = nll_loss(
        &x,
        &y,
        &NllOpts {
            reduction: Reduction::None,
            ..NllOpts::default()
        },
    );
    let mean = nll_loss(&x, &y, &NllOpts::default());
    let out = g
        .run(
            &[&none, &mean],
            &[
                (
                    "x",
                    Array::f64([2, 2], vec![-0.5, -1.0, f64::NEG_INFINITY, -0.1]).unwrap(),
                ),
                ("y", Array::i64([2], vec![1, -100]).unwrap()),
            ],
        )
        .unwrap();
    assert_eq!(out[0].to_f64_vec(), vec![1.0, 0.0]);
    assert_eq!(out[1].to_f64_vec(), vec![1.0]);
}

#[test]
fn label_out_of_range_names_the_loss_the_element_and_the_line() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let y = g.input("labels", DType::I64, [3]);
    let line = line!() + 1;
    let loss = cross_entropy(&x.relu(), &y, &NllOpts::default());
    let feeds = [
        ("x", a32(&[3, 4], &X34)),
        ("labels", ai64(&[3], &[0, 1, 7])),
    ];
    let want = format!(
        "tests/losses.rs:{line}:16: cross_entropy: target `labels`[2] = 7 is out of range \
         for 4 classes (expected 0..=3 or ignore_index -100)"
    );
    let e = g.run(&[&loss], &feeds).unwrap_err();
    assert_eq!(e.to_string(), want);
    assert_eq!(format!("{e:?}"), want, "Debug prints the message");
    let mut c = g.compile(&[&loss]).unwrap();
    assert_eq!(c.run(&feeds).unwrap_err().to_string(), want);
    // ignore_index itself is fine; 2-D targets name the element by its index.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 3, 5]);
    let y = g.input("y", DType::I64, [2, 5]);
    let loss = nll_loss(&x, &y, &opts(None, 9, Reduction::Sum));
    let mut ys = vec![0i64; 10];
    ys[3] = 9;
    let xs = a32(&[2, 3, 5], &[0.5; 30]);
    g.run(&[&loss], &[("x", xs.clone()), ("y", ai64(&[2, 5], &ys))])
        .unwrap();
    ys[6] = -3;
    let e = g
        .run(&[&loss], &[("x", xs), ("y", ai64(&[2, 5], &ys))])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("nll_loss: target `y`[1, 1] = -3 is out of range for 3 classes (expected 0..=2 or ignore_index 9)"),
        "{e}"
    );
}

#[test]
fn a_computed_target_out_of_range_is_still_caught_at_run_time() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let y = g.input("y", DType::I64, [3]);
    let shifted = &y + 5i64;
    let loss = cross_entropy(&x, &shifted, &NllOpts::default());
    let feeds = [("x", a32(&[3, 4], &X34)), ("y", ai64(&[3], &[0, 1, 2]))];
    let e = g.run(&[&loss], &feeds).unwrap_err();
    assert!(matches!(e, Error::Run(_)), "{e:?}");
    assert!(is_index_error(&e, 5, 4), "{e:?}");
    let mut c = g.compile(&[&loss]).unwrap();
    let e = c.run(&feeds).unwrap_err();
    assert!(matches!(e, Error::Exec(_)), "{e:?}");
    assert!(is_index_error(&e, 5, 4), "{e:?}");
}
