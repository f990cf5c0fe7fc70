//! PyTorch parity of semantic corners: gradients at edge values, softmax precision,
//! type promotion and the PyTorch API pieces of issue 11. Every case of
//! `tests/fixtures/torch_ops/semantics.safetensors` (written by
//! `tests/fixtures/torch_ops/gen_torch_semantics.py`) is rebuilt here, run on the
//! interpreter and compiled, and compared with PyTorch (`common::torch_fixture`).
//!
//! Gradients are stored as `out_grad_<what>_<input>`: the gradient of `Σ y·dy_<what>`.

use crate::common::torch_fixture::{self, Inputs};
use onde::loss::{
    binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss, NllOpts, Reduction,
};
use onde::{stack, where_, Tensor};
use std::sync::OnceLock;

fn fixture_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| torch_fixture::fixture_bytes("torch_ops/semantics.safetensors"))
}

fn check(case: &str, build: impl FnOnce(&Inputs) -> Vec<(&'static str, Tensor)>) {
    torch_fixture::check(fixture_bytes(), case, build)
}

/// `(out_<what>, y)` and `(out_grad_<what>_<x>, dy·∂y/∂x)` for each `x` of `wrt`.
fn with_grads(
    i: &Inputs,
    what: &'static str,
    y: Tensor,
    wrt: &[&'static str],
) -> Vec<(&'static str, Tensor)> {
    let dy: &'static str = leak(format!("dy_{what}"));
    let gs = i.grads(&y, dy, wrt);
    let mut out = vec![(leak(format!("out_{what}")), y)];
    for (x, g) in wrt.iter().zip(gs) {
        out.push((leak(format!("out_grad_{what}_{x}")), g));
    }
    out
}

/// Result names are `&'static str` in the shared checker; tests build a handful.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

// --- gradients at edge values ---------------------------------------------------------

#[test]
fn std_zero_variance_gradient_is_zero() {
    check("std_zero", |i| {
        let x = i.get("x");
        let mut v = with_grads(i, "std", x.std([1], 1, false), &["x"]);
        v.extend(with_grads(i, "std0", x.std([0], 0, true), &["x"]));
        v
    });
}

#[test]
fn var_std_with_correction_at_least_n() {
    check("var_big_correction", |i| {
        let x = i.get("x");
        let mut v = with_grads(i, "var3", x.var([0], 3, true), &["x"]);
        v.extend(with_grads(i, "var2", x.var([0], 2, false), &["x"]));
        v.extend(with_grads(i, "std3", x.std([0], 3, false), &["x"]));
        v.extend(with_grads(i, "std2", x.std([0], 2, true), &["x"]));
        v.extend(with_grads(i, "var9", x.var([0, 1], 9, false), &["x"]));
        v
    });
}

#[test]
fn clamp_scalar_bounds() {
    check("clamp_scalar", |i| {
        let x = i.get("x");
        let mut v = with_grads(i, "both", x.clamp(-1.0, 2.0), &["x"]);
        v.extend(with_grads(i, "min", x.clamp_min(0.0), &["x"]));
        v.extend(with_grads(i, "max", x.clamp_max(1.0), &["x"]));
        v.extend(with_grads(i, "inverted", x.clamp(1.0, 0.0), &["x"]));
        v
    });
}

#[test]
fn clamp_tensor_bounds() {
    check("clamp_tensor", |i| {
        let (x, lo, hi) = (i.get("x"), i.get("lo"), i.get("hi"));
        let mut v = with_grads(i, "both", x.clamp(lo, hi), &["x", "lo", "hi"]);
        v.extend(with_grads(i, "min", x.clamp_min(lo), &["x", "lo"]));
        v.extend(with_grads(i, "max", x.clamp_max(hi), &["x", "hi"]));
        let (xr, lr, hr) = (i.get("xr"), i.get("lr"), i.get("hr"));
        v.extend(with_grads(
            i,
            "bcast",
            xr.clamp(lr, hr),
            &["xr", "lr", "hr"],
        ));
        v
    });
}

#[test]
fn clamp_dtypes() {
    check("clamp_dtypes", |i| {
        let (k, f) = (i.get("k"), i.get("f"));
        vec![
            ("out_int", k.clamp(0, 2)),
            ("out_int_float", k.clamp(0.5, 2.5)),
            ("out_f32_0d64", f.clamp_min(i.get("b64"))),
        ]
    });
}

#[test]
fn relu_gradient_at_nan_passes() {
    check("relu_nan", |i| {
        with_grads(i, "relu", i.get("x").relu(), &["x"])
    });
}

// --- softmax ----------------------------------------------------------------------------

#[test]
fn softmax_of_large_logits_keeps_precision() {
    check("softmax_precision", |i| {
        let x = i.get("x");
        let mut v = with_grads(i, "softmax", x.softmax(1), &["x"]);
        v.extend(with_grads(i, "log_softmax", x.log_softmax(-1), &["x"]));
        v.extend(with_grads(i, "softmax0", x.softmax(0), &["x"]));
        v
    });
}

#[test]
fn softmax_of_non_finite_rows() {
    check("softmax_nonfinite", |i| {
        let x = i.get("x");
        let mut v = with_grads(i, "softmax", x.softmax(1), &["x"]);
        v.extend(with_grads(i, "log_softmax", x.log_softmax(1), &["x"]));
        v
    });
}

#[test]
fn log_softmax_f64() {
    check("log_softmax_f64", |i| {
        with_grads(i, "lsm", i.get("x").log_softmax(1), &["x"])
    });
}

// --- type promotion ------------------------------------------------------------------

#[test]
fn type_promotion() {
    check("promotion", |i| {
        let (a, b, f32, d0, f0) = (
            i.get("a"),
            i.get("b"),
            i.get("f32"),
            i.get("d0"),
            i.get("f0"),
        );
        let (k, k0, m) = (i.get("i"), i.get("i0"), i.get("m"));
        let ab = stack(&[a, b], 0);
        let (max_v, max_i) = ab.max_dim(1, false);
        vec![
            ("out_bool_add", a + b),
            ("out_bool_mul", a * b),
            ("out_bool_max", a.maximum(b)),
            ("out_bool_min", a.minimum(b)),
            ("out_bool_div", a / b),
            ("out_bool_add_int", a + k0),
            ("out_f32_add_d0", f32 + d0),
            ("out_f32_sub_d0", f32 - d0),
            ("out_d0_sub_f32", d0 - f32),
            ("out_f32_mul_d0", f32 * d0),
            ("out_f32_div_d0", f32 / d0),
            ("out_f32_pow_d0", f32.abs().pow(d0)),
            ("out_f32_max_d0", f32.maximum(d0)),
            ("out_f32_min_d0", f32.minimum(d0)),
            ("out_i64_add_d0", k + d0),
            ("out_i64_mul_f0", k * f0),
            ("out_f0_add_d0", f0 + d0),
            ("out_where_f32_d0", where_(m, f32, d0)),
            ("out_where_i64_d0", where_(m, k, d0)),
            ("out_fill_f32_d0", f32.masked_fill(m, d0)),
            ("out_fill_i64", k.masked_fill(m, 2.5)),
            ("out_fill_i64_neg", k.masked_fill(m, -2.5)),
            ("out_fill_bool", b.masked_fill(m, 3)),
            ("out_fill_bool0", b.masked_fill(m, 0)),
            ("out_floor_i64", k.floor()),
            ("out_amax_bool", ab.max([1], false)),
            ("out_amin_bool", ab.min([0], false)),
            ("out_max_bool_vals", max_v),
            ("out_max_bool_idx", max_i),
            ("out_i64_cmp_d0", k.gt(d0)),
        ]
    });
}

// --- API pieces ----------------------------------------------------------------------

#[test]
fn unbatched_nll_and_cross_entropy() {
    check("unbatched_losses", |i| {
        let (x, y0, p, w) = (i.get("x"), i.get("y0"), i.get("p"), i.get("w"));
        let opts = |weight: Option<&Tensor>, reduction, label_smoothing| NllOpts {
            weight: weight.cloned(),
            reduction,
            label_smoothing,
            ..NllOpts::default()
        };
        let mean = opts(None, Reduction::Mean, 0.0);
        let mut v = with_grads(i, "nll", nll_loss(&x.log_softmax(0), y0, &mean), &["x"]);
        let none = opts(None, Reduction::None, 0.0);
        let nll_none = nll_loss(&x.log_softmax(0), y0, &none);
        v.extend(with_grads(i, "nll_none", nll_none, &["x"]));
        v.extend(with_grads(i, "ce", cross_entropy(x, y0, &mean), &["x"]));
        let w_sum = opts(Some(w), Reduction::Sum, 0.0);
        v.extend(with_grads(
            i,
            "ce_w_sum",
            cross_entropy(x, y0, &w_sum),
            &["x"],
        ));
        v.extend(with_grads(
            i,
            "ce_probs",
            cross_entropy(x, p, &mean),
            &["x"],
        ));
        let ls = opts(None, Reduction::None, 0.2);
        v.extend(with_grads(i, "ce_ls", cross_entropy(x, y0, &ls), &["x"]));
        v
    });
}

#[test]
fn cross_entropy_probabilities_and_label_smoothing() {
    check("cross_entropy_smoothing", |i| {
        let (x, idx, p, w) = (i.get("x"), i.get("idx"), i.get("p"), i.get("w"));
        let (x3, p3, i3) = (i.get("x3"), i.get("p3"), i.get("i3"));
        let opts = |weight: Option<Tensor>, reduction, label_smoothing| NllOpts {
            weight,
            reduction,
            label_smoothing,
            ..NllOpts::default()
        };
        let w3 = w.index(onde::s![..3]);
        let cases: Vec<(&'static str, Tensor, &'static str)> = vec![
            (
                "probs",
                cross_entropy(x, p, &opts(None, Reduction::Mean, 0.0)),
                "x",
            ),
            (
                "probs_w",
                cross_entropy(x, p, &opts(Some(w.clone()), Reduction::Mean, 0.0)),
                "x",
            ),
            (
                "probs_ls_none",
                cross_entropy(x, p, &opts(None, Reduction::None, 0.1)),
                "x",
            ),
            (
                "probs_ls_w_sum",
                cross_entropy(x, p, &opts(Some(w.clone()), Reduction::Sum, 0.3)),
                "x",
            ),
            (
                "idx_ls",
                cross_entropy(x, idx, &opts(None, Reduction::Mean, 0.1)),
                "x",
            ),
            (
                "idx_ls_w",
                cross_entropy(x, idx, &opts(Some(w.clone()), Reduction::Mean, 0.25)),
                "x",
            ),
            (
                "idx_ls_none",
                cross_entropy(x, idx, &opts(Some(w.clone()), Reduction::None, 0.5)),
                "x",
            ),
            (
                "idx_ls_sum",
                cross_entropy(x, idx, &opts(None, Reduction::Sum, 1.0)),
                "x",
            ),
            (
                "probs3",
                cross_entropy(x3, p3, &opts(None, Reduction::Mean, 0.1)),
                "x3",
            ),
            (
                "idx3_ls_w",
                cross_entropy(x3, i3, &opts(Some(w3), Reduction::Mean, 0.2)),
                "x3",
            ),
        ];
        cases
            .into_iter()
            .flat_map(|(what, y, x)| with_grads(i, what, y, &[x]))
            .collect()
    });
}

#[test]
fn mse_loss_broadcasts() {
    check("mse_broadcast", |i| {
        let (a, b) = (i.get("a"), i.get("b"));
        let mut v = with_grads(i, "mean", mse_loss(a, b, Reduction::Mean), &["a", "b"]);
        v.extend(with_grads(
            i,
            "none",
            mse_loss(b, a, Reduction::None),
            &["a", "b"],
        ));
        v
    });
}

#[test]
fn negative_padding_crops() {
    check("pad_negative", |i| {
        let x = i.get("x");
        let mut v = with_grads(i, "crop_lo", x.pad([-1, 1], 0.0), &["x"]);
        v.extend(with_grads(i, "crop_both", x.pad([-2, -1], 3.0), &["x"]));
        v.extend(with_grads(i, "crop_all", x.pad([-2, -3], 0.0), &["x"]));
        v.extend(with_grads(
            i,
            "mixed",
            x.pad([1, -2, -1, 2, 0, -1], -0.5),
            &["x"],
        ));
        v
    });
}

#[test]
fn index_select_with_a_0d_index() {
    check("index_select_0d", |i| {
        let (x, k) = (i.get("x"), i.get("i"));
        vec![
            ("out_dim1", x.index_select(1, k)),
            ("out_dim0", x.index_select(0, k)),
        ]
    });
}

#[test]
fn bce_with_logits_weight() {
    check("bce_logits_weight", |i| {
        let (x, y, w, wr, pw) = (i.get("x"), i.get("y"), i.get("w"), i.get("wr"), i.get("pw"));
        let mut v = with_grads(
            i,
            "w",
            binary_cross_entropy_with_logits(x, y, Some(w), None, Reduction::Mean),
            &["x"],
        );
        v.extend(with_grads(
            i,
            "wrow_none",
            binary_cross_entropy_with_logits(x, y, Some(wr), None, Reduction::None),
            &["x"],
        ));
        v.extend(with_grads(
            i,
            "w_pw_sum",
            binary_cross_entropy_with_logits(x, y, Some(w), Some(pw), Reduction::Sum),
            &["x"],
        ));
        v
    });
}

#[test]
fn max_and_min_with_indices() {
    check("max_dim", |i| {
        let x = i.get("x");
        let (mv, mi) = x.max_dim(1, false);
        let (nv, ni) = x.min_dim(0, true);
        let mut v = vec![("out_max_indices", mi), ("out_min_kd_indices", ni)];
        for (what, y) in [("max", mv), ("min_kd", nv)] {
            for (name, t) in with_grads(i, what, y, &["x"]) {
                let name = if name == leak(format!("out_{what}")) {
                    leak(format!("out_{what}_values"))
                } else {
                    name
                };
                v.push((name, t));
            }
        }
        v
    });
}

#[test]
fn boolean_mask_indexing() {
    check("bool_index", |i| {
        let x = i.get("x");
        let (mask, rows) = (i.constant("mask"), i.constant("rows"));
        let row1 = mask.index(onde::s![1]);
        let mut v = with_grads(i, "mask", x.index_mask(&mask), &["x"]);
        v.extend(with_grads(i, "rows", x.index_mask(&rows), &["x"]));
        v.extend(with_grads(
            i,
            "select_bcast",
            x.masked_select(&row1),
            &["x"],
        ));
        v
    });
}

/// Every case of the fixture has a test above (a new case needs a new test).
#[test]
fn every_fixture_case_is_tested() {
    let mut tested = vec![
        "std_zero",
        "var_big_correction",
        "clamp_scalar",
        "clamp_tensor",
        "clamp_dtypes",
        "relu_nan",
        "softmax_precision",
        "softmax_nonfinite",
        "log_softmax_f64",
        "promotion",
        "unbatched_losses",
        "cross_entropy_smoothing",
        "mse_broadcast",
        "pad_negative",
        "index_select_0d",
        "bce_logits_weight",
        "max_dim",
        "bool_index",
    ];
    tested.sort_unstable();
    assert_eq!(torch_fixture::case_names(fixture_bytes()), tested);
}
