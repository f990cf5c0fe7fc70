//! PyTorch parity: every case of `tests/fixtures/torch_ops/ops.safetensors` (written by
//! `tests/fixtures/torch_ops/gen_torch_ops.py` with PyTorch) is rebuilt with the onde
//! API, run on the reference interpreter and compiled, and compared with PyTorch's
//! results (see `common::torch_fixture` for the naming and the tolerances).

use crate::common::torch_fixture::{self, Inputs};
use onde::{cat, s, stack, where_, ConvOpts, Idx, Padding, Tensor};
use std::sync::OnceLock;

fn fixture_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| torch_fixture::fixture_bytes("torch_ops/ops.safetensors"))
}

fn check(case: &str, build: impl FnOnce(&Inputs) -> Vec<(&'static str, Tensor)>) {
    torch_fixture::check(fixture_bytes(), case, build)
}

// --- elementwise -------------------------------------------------------------------------

#[test]
fn bcast() {
    check("bcast", |i| {
        let (a, b) = (i.get("a"), i.get("b"));
        vec![("out_add", a + b), ("out_mul", a * b), ("out_div", a / b)]
    });
}

#[test]
fn pow_scalar() {
    check("pow_scalar", |i| {
        let x = i.get("x");
        vec![
            ("out_cube", x.pow(3)),
            ("out_half", x.pow(0.5)),
            ("out_zero", x.pow(0.0)),
            ("out_inv", x.pow(-1.0)),
            ("out_tensor", x.pow(i.get("e"))),
        ]
    });
}

#[test]
fn maximum_nan() {
    check("maximum_nan", |i| {
        let (a, b) = (i.get("a"), i.get("b"));
        vec![
            ("out_max", a.maximum(b)),
            ("out_min", a.minimum(b)),
            ("out_amax", a.max([-1], false)),
            ("out_amin", b.min([0], true)),
        ]
    });
}

#[test]
fn unary() {
    check("unary", |i| {
        let x = i.get("x");
        vec![
            ("out_exp", x.exp()),
            ("out_log", x.log()),
            ("out_tanh", x.tanh()),
            ("out_sigmoid", x.sigmoid()),
            ("out_relu", x.relu()),
            ("out_sqrt", x.sqrt()),
            ("out_sin", x.sin()),
            ("out_abs", x.abs()),
            ("out_cos", x.cos()),
            ("out_floor", x.floor()),
            ("out_neg", -x),
            ("out_clamp", x.clamp(-1.0, 2.0)),
            ("out_reciprocal", x.reciprocal()),
            ("out_square", x.square()),
        ]
    });
}

#[test]
fn sign_nan() {
    check("sign_nan", |i| vec![("out", i.get("x").sign())]);
}

// --- reductions --------------------------------------------------------------------------

#[test]
fn reduce() {
    check("reduce", |i| {
        let x = i.get("x");
        vec![
            ("out_sum", x.sum([0, -1], true)),
            ("out_sum_all", x.sum_all()),
            ("out_mean", x.mean([-2], false)),
            ("out_mean_kd", x.mean([-1, 0], true)),
            ("out_amax", x.max([1], true)),
            ("out_amin", x.min([-1], false)),
            ("out_prod", x.prod([-1], true)),
        ]
    });
}

#[test]
fn var_std() {
    check("var_std", |i| {
        let (x, y) = (i.get("x"), i.get("y"));
        vec![
            ("out_var_n1", y.var([1], 1, false)),
            ("out_std_n1", y.std([-1], 0, false)),
            ("out_var", x.var([1], 1, false)),
            ("out_var0", x.var([0], 0, true)),
            ("out_std", x.std([-1], 1, true)),
            ("out_std0", x.std([0, 1], 0, false)),
        ]
    });
}

#[test]
fn logsumexp() {
    check("logsumexp", |i| {
        let x = i.get("x");
        vec![
            ("out", x.logsumexp([-1], false)),
            ("out_kd", x.logsumexp([1], true)),
        ]
    });
}

#[test]
fn softmax_like() {
    check("softmax_like", |i| {
        let x = i.get("x");
        vec![("out", (x - x.logsumexp([-1], true)).exp())]
    });
}

#[test]
fn argmax_ties() {
    check("argmax_ties", |i| {
        let x = i.get("x");
        vec![
            ("out_argmax", x.argmax(1, false)),
            ("out_argmax0", x.argmax(0, true)),
            ("out_argmin", x.argmin(-1, false)),
        ]
    });
}

#[test]
fn argmax_nan() {
    check("argmax_nan", |i| {
        let x = i.get("x");
        vec![
            ("out_argmax", x.argmax(-1, false)),
            ("out_argmin", x.argmin(-1, false)),
        ]
    });
}

// --- movement ----------------------------------------------------------------------------

#[test]
fn movement() {
    check("movement", |i| {
        let x = i.get("x");
        vec![
            ("out_transpose", x.transpose(1, -1)),
            ("out_permute", x.permute([2, 0, -1, 1])),
            ("out_flatten", x.flatten(1, 2)),
            ("out_flatten_all", x.flatten(0, -1)),
            ("out_unsqueeze", x.unsqueeze(-1)),
            // x[:, :1].expand(2, 3, -1, -1)
            ("out_expand", x.index(s![.., ..1]).expand([2, 3, -1, -1])),
            // x[:, 1:2, :, 4:].squeeze(1)
            ("out_squeeze", x.index(s![.., 1..2, .., 4..]).squeeze(1)),
        ]
    });
}

#[test]
fn tile() {
    check("tile", |i| {
        let x = i.get("x");
        vec![
            ("out", x.tile([2, 1, 3])),
            ("out_short", x.tile([2])),
            ("out_long", x.tile([2, 1, 1, 2])),
        ]
    });
}

#[test]
fn cat_last_axis() {
    check("cat", |i| {
        let (a, b) = (i.get("a"), i.get("b"));
        vec![
            ("out", cat(&[a, b, a], -1)),
            ("out_mixed", cat(&[a, i.get("k")], -1)),
            ("out_stack", stack(&[a, i.get("c")], 1)),
        ]
    });
}

#[test]
fn slice() {
    check("slice", |i| {
        let x = i.get("x");
        vec![
            // x[1:, ::2, -3:]
            ("out", x.index(s![1.., Idx::FULL.step(2), -3..])),
            // x[:, -100:2, 4:100]
            ("out_clamp", x.index(s![.., -100..2, 4..100])),
            // x[-1, 1:-1:3, :]
            (
                "out_pos",
                x.index(s![
                    -1,
                    Idx::Range {
                        start: Some(1),
                        stop: Some(-1),
                        step: 3
                    },
                    ..
                ]),
            ),
        ]
    });
}

#[test]
fn pad() {
    check("pad", |i| {
        let x = i.get("x");
        vec![
            ("out", x.pad([1, 2, 0, 1], -1.5)),
            ("out_last", x.pad([3, 0], 2.0)),
        ]
    });
}

#[test]
fn gather() {
    check("gather", |i| {
        let x = i.get("x");
        vec![
            ("out_dim1", x.gather(1, i.get("i1"))),
            ("out_dim0", x.gather(0, i.get("i0"))),
        ]
    });
}

#[test]
fn index_select() {
    check("index_select", |i| {
        let x = i.get("x");
        vec![
            ("out", x.index_select(-1, i.get("idx"))),
            ("out_dim0", x.index_select(0, i.get("idx0"))),
        ]
    });
}

// --- linear algebra ----------------------------------------------------------------------

#[test]
fn matmul_bcast() {
    check("matmul_bcast", |i| {
        vec![("out", i.get("a").matmul(i.get("b")))]
    });
}

#[test]
fn matmul_vec() {
    check("matmul_vec", |i| {
        let v = i.get("v");
        vec![
            ("out_vm", v.matmul(i.get("m"))),
            ("out_mv", i.get("m3").matmul(v)),
            ("out_dot", v.matmul(v)),
            ("out_vb", v.matmul(i.get("b3"))),
        ]
    });
}

#[test]
fn conv1d_grouped() {
    check("conv1d_grouped", |i| {
        let opts = ConvOpts::default()
            .stride(2)
            .padding(3)
            .dilation(2)
            .groups(2);
        vec![(
            "out",
            i.get("x").conv1d(i.get("w"), Some(i.get("bias")), &opts),
        )]
    });
}

#[test]
fn conv1d_depthwise() {
    check("conv1d_depthwise", |i| {
        let opts = ConvOpts::default().stride(3).groups(4);
        vec![("out", i.get("x").conv1d(i.get("w"), None, &opts))]
    });
}

#[test]
fn conv1d_same_even() {
    check("conv1d_same_even", |i| {
        let (x, w) = (i.get("x"), i.get("w"));
        vec![
            ("out", x.conv1d(w, None, &ConvOpts::default().same())),
            (
                "out_dil",
                x.conv1d(w, None, &ConvOpts::default().same().dilation(3)),
            ),
        ]
    });
}

#[test]
fn conv2d() {
    check("conv2d", |i| {
        let opts = ConvOpts {
            stride: vec![2, 1],
            padding: Padding::Explicit(vec![1]),
            ..ConvOpts::default()
        };
        vec![(
            "out",
            i.get("x").conv2d(i.get("w"), Some(i.get("bias")), &opts),
        )]
    });
}

// --- where / comparisons -----------------------------------------------------------------

#[test]
fn where_bcast() {
    check("where_bcast", |i| {
        let (c, a, b) = (i.get("c"), i.get("a"), i.get("b"));
        vec![
            ("out", where_(&c.gt(0.0), a, b)),
            ("out_scalar", where_(&a.gt(0.0), a, -1.0)),
            ("out_int", where_(&c.gt(0.0), i.get("k"), 2)),
            ("out_int_float", where_(&c.gt(0.0), i.get("k"), 0.5)),
        ]
    });
}

#[test]
fn compare() {
    check("compare", |i| {
        let (a, b) = (i.get("a"), i.get("b"));
        vec![
            ("out_gt", a.gt(b).float()),
            ("out_ge", a.ge(1.0).float()),
            ("out_eq", a.eq(b).float()),
            ("out_ne", a.ne(b).float()),
            ("out_count", a.gt(b).sum([-1], false)),
        ]
    });
}

// --- other dtypes ------------------------------------------------------------------------

#[test]
fn f64_logsumexp() {
    check("f64_logsumexp", |i| {
        let x = i.get("x");
        vec![
            ("out", x.logsumexp([1], false)),
            ("out_var", x.var([0], 0, false)),
            ("out_exp", (x / 7.0).exp()),
        ]
    });
}

#[test]
fn i64_exact() {
    check("i64", |i| {
        let x = i.get("x");
        vec![
            ("out_sum", x.sum([1], false)),
            ("out_sum0", x.sum([0], true)),
            ("out_amax", x.max([-1], false)),
            ("out_amin", x.min([0], false)),
            ("out_argmax", x.argmax(1, false)),
            ("out_add", x + 3),
            ("out_mul", x * x.index(s![0])),
            ("out_neg", -x),
            ("out_div", x / 4),
            ("out_half", x.abs().pow(0.5)),
        ]
    });
}

#[test]
fn i64_pow() {
    check("i64_pow", |i| {
        let x = i.get("x");
        vec![("out_sq", x.pow(2)), ("out_cube", x.pow(3))]
    });
}

/// Every case of the fixture has a test above (a new case needs a new test).
#[test]
fn every_fixture_case_is_tested() {
    const TESTED: &[&str] = &[
        "bcast",
        "pow_scalar",
        "maximum_nan",
        "unary",
        "sign_nan",
        "reduce",
        "var_std",
        "logsumexp",
        "softmax_like",
        "argmax_ties",
        "argmax_nan",
        "movement",
        "tile",
        "cat",
        "slice",
        "pad",
        "gather",
        "index_select",
        "matmul_bcast",
        "matmul_vec",
        "conv1d_grouped",
        "conv1d_depthwise",
        "conv1d_same_even",
        "conv2d",
        "where_bcast",
        "compare",
        "f64_logsumexp",
        "i64",
        "i64_pow",
    ];
    let cases = torch_fixture::case_names(fixture_bytes());
    let mut tested: Vec<&str> = TESTED.to_vec();
    tested.sort_unstable();
    assert_eq!(cases, tested);
}
