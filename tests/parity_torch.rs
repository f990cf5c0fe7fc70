//! PyTorch parity: every case of `tests/fixtures/torch_ops/ops.safetensors` (written by
//! `tests/fixtures/torch_ops/gen_torch_ops.py` with PyTorch) is rebuilt with the onde
//! API, run on the reference interpreter and compared with PyTorch's results.
//!
//! A case `c` stores its inputs as `c.<name>` (fed as graph inputs `<name>`) and its
//! expected results as `c.out` / `c.out_<what>`; each test checks every stored result
//! of its case. Tolerances: f32 `1e-5` relative plus `1e-6` absolute, f64 `1e-12`
//! relative plus `1e-12` absolute, integers exactly; NaN must match NaN and infinities
//! must match exactly.

use onde::{cat, s, stack, where_, Array, ConvOpts, DType, GraphBuilder, Idx, Padding, Tensor};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::sync::OnceLock;

fn fixture_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/torch_ops/ops.safetensors"
        );
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    })
}

/// The fixture's tensors of one case, as onde arrays, by name without the case prefix.
fn case_tensors(case: &str) -> BTreeMap<String, Array> {
    let st =
        SafeTensors::deserialize(fixture_bytes()).expect("fixture is a valid safetensors file");
    let prefix = format!("{case}.");
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let Some(short) = name.strip_prefix(&prefix) else {
            continue;
        };
        let shape = view.shape().to_vec();
        let bytes = view.data();
        let dt = view.dtype();
        let arr = if dt == Dtype::F32 {
            let v = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Array::f32(shape, v)
        } else if dt == Dtype::F64 {
            let v = bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Array::f64(shape, v)
        } else if dt == Dtype::I64 {
            let v = bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Array::i64(shape, v)
        } else {
            panic!("{name}: unsupported fixture dtype {dt:?}");
        };
        out.insert(
            short.to_string(),
            arr.unwrap_or_else(|e| panic!("{name}: {e}")),
        );
    }
    assert!(
        !out.is_empty(),
        "case {case:?} is not in the fixture (regenerate it?)"
    );
    out
}

/// The graph inputs of a case, declared from the fixture's input tensors.
struct Inputs {
    g: GraphBuilder,
    t: BTreeMap<String, Tensor>,
}

impl Inputs {
    fn get(&self, name: &str) -> &Tensor {
        self.t
            .get(name)
            .unwrap_or_else(|| panic!("no input {name:?} in this case"))
    }
}

fn is_output(name: &str) -> bool {
    name == "out" || name.starts_with("out_")
}

/// Multi-index of flat position `i` in `dims` (row-major).
fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for (k, &d) in dims.iter().enumerate().rev() {
        if d > 0 {
            idx[k] = i % d;
            i /= d;
        }
    }
    idx
}

/// `None` if `got` matches `want` within (`rtol`, `atol`), else the worst element's
/// flat index, both values and how many elements are out of tolerance.
fn compare_floats(
    got: &[f64],
    want: &[f64],
    rtol: f64,
    atol: f64,
) -> Option<(usize, f64, f64, usize)> {
    let mut worst: Option<(usize, f64)> = None;
    let mut bad = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let excess = if w.is_nan() || g.is_nan() {
            if w.is_nan() && g.is_nan() {
                0.0
            } else {
                f64::INFINITY
            }
        } else if w.is_infinite() || g.is_infinite() {
            if g == w {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (g - w).abs() / (atol + rtol * w.abs())
        };
        if excess > 1.0 {
            bad += 1;
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
    }
    worst.map(|(i, _)| (i, got[i], want[i], bad))
}

/// A description of how `got` differs from `want`, or `None` if it matches.
fn mismatch(got: &Array, want: &Array) -> Option<String> {
    if got.dtype() != want.dtype() {
        return Some(format!("dtype {} (PyTorch {})", got.dtype(), want.dtype()));
    }
    if got.shape() != want.shape() {
        return Some(format!("shape {} (PyTorch {})", got.shape(), want.shape()));
    }
    let dims = want.shape().dims();
    // Shortest round-tripping text of each value in its own precision.
    let show = |x: f64| match want.dtype() {
        DType::F32 => format!("{:?}", x as f32),
        DType::F64 | DType::I64 | DType::Bool => format!("{x:?}"),
    };
    let floats = |rtol, atol| {
        compare_floats(&got.to_f64_vec(), &want.to_f64_vec(), rtol, atol).map(|(i, g, w, bad)| {
            format!(
                "{bad} of {} elements out of tolerance; worst at {:?}: \
                 got {}, PyTorch {} (|diff| {:e})",
                want.numel(),
                unravel(i, dims),
                show(g),
                show(w),
                (g - w).abs()
            )
        })
    };
    match want.dtype() {
        DType::F32 => floats(1e-5, 1e-6),
        DType::F64 => floats(1e-12, 1e-12),
        DType::I64 => first_difference(got.as_i64(), want.as_i64(), dims),
        DType::Bool => first_difference(got.as_bool(), want.as_bool(), dims),
    }
}

/// Exact comparison of two integer or bool buffers.
fn first_difference<T: PartialEq + std::fmt::Display>(
    got: Option<&[T]>,
    want: Option<&[T]>,
    dims: &[usize],
) -> Option<String> {
    let (Some(g), Some(w)) = (got, want) else {
        return Some("buffer of an unexpected dtype".into());
    };
    g.iter().zip(w).position(|(a, b)| a != b).map(|i| {
        format!(
            "first difference at {:?}: got {}, PyTorch {}",
            unravel(i, dims),
            g[i],
            w[i]
        )
    })
}

/// Builds case `case` with `build` (which returns its results by fixture name), runs
/// it on the interpreter and compares every result with PyTorch's; panics listing all
/// mismatches. Every `out*` tensor of the case must be produced.
fn check(case: &str, build: impl FnOnce(&Inputs) -> Vec<(&'static str, Tensor)>) {
    let fixture = case_tensors(case);
    let g = GraphBuilder::new();
    let mut feeds = Vec::new();
    let mut t = BTreeMap::new();
    for (name, arr) in fixture.iter().filter(|(n, _)| !is_output(n)) {
        t.insert(
            name.clone(),
            g.input(name, arr.dtype(), arr.shape().clone()),
        );
        feeds.push((name.as_str(), arr.clone()));
    }
    let inputs = Inputs { g: g.clone(), t };
    let outs = build(&inputs);
    let produced: Vec<&str> = outs.iter().map(|(n, _)| *n).collect();
    let stored: Vec<&str> = fixture
        .keys()
        .map(String::as_str)
        .filter(|n| is_output(n))
        .collect();
    let mut sorted = produced.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted, stored,
        "case {case}: results built vs results stored in the fixture"
    );
    let refs: Vec<&Tensor> = outs.iter().map(|(_, t)| t).collect();
    let got = inputs
        .g
        .run(&refs, &feeds)
        .unwrap_or_else(|e| panic!("case {case}: onde failed: {e}"));
    let failures: Vec<String> = produced
        .iter()
        .zip(&got)
        .filter_map(|(name, a)| {
            mismatch(a, &fixture[*name]).map(|m| format!("  {case}.{name}: {m}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "case {case} differs from PyTorch:\n{}",
        failures.join("\n")
    );
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
    let st =
        SafeTensors::deserialize(fixture_bytes()).expect("fixture is a valid safetensors file");
    let mut cases: Vec<String> = st
        .names()
        .iter()
        .filter_map(|n| n.split_once('.').map(|(c, _)| c.to_string()))
        .collect();
    cases.sort_unstable();
    cases.dedup();
    let mut tested: Vec<&str> = TESTED.to_vec();
    tested.sort_unstable();
    assert_eq!(cases, tested);
}
