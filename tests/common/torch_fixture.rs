//! PyTorch parity fixtures: loading a safetensors file written by a committed
//! generator script, rebuilding each case with the onde API, running it on the
//! reference interpreter **and** compiled at every instruction-set level the CPU has,
//! and comparing with PyTorch's results.
//!
//! A case `c` stores its inputs as `c.<name>` (fed as graph inputs `<name>`) and its
//! expected results as `c.out` / `c.out_<what>` (gradients: `c.out_grad_<what>`); each
//! test checks every stored result of its case. Tolerances: f32 `1e-5` relative plus
//! `1e-6` absolute, f64 `1e-12` relative plus `1e-12` absolute, integers and bools
//! exactly; NaN must match NaN and infinities must match exactly.

#![allow(dead_code)]

use onde::codegen::{CompileOptions, IsaLevel};
use onde::{Array, DType, GraphBuilder, Tensor};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;

/// A fixture file of the repository (`tests/fixtures/...`), read once per test.
pub fn fixture_bytes(rel: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The case names of a fixture file (the part of each tensor name before the dot).
pub fn case_names(bytes: &[u8]) -> Vec<String> {
    let st = SafeTensors::deserialize(bytes).expect("fixture is a valid safetensors file");
    let mut cases: Vec<String> = st
        .names()
        .iter()
        .filter_map(|n| n.split_once('.').map(|(c, _)| c.to_string()))
        .collect();
    cases.sort_unstable();
    cases.dedup();
    cases
}

/// The fixture's tensors of one case, as onde arrays, by name without the case prefix.
pub fn case_tensors(bytes: &[u8], case: &str) -> BTreeMap<String, Array> {
    let st = SafeTensors::deserialize(bytes).expect("fixture is a valid safetensors file");
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
        } else if dt == Dtype::BOOL {
            Array::bool(shape, bytes.iter().map(|&b| b != 0).collect())
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
pub struct Inputs {
    /// The builder of the case's graph.
    pub g: GraphBuilder,
    t: BTreeMap<String, Tensor>,
    arrays: BTreeMap<String, Array>,
}

impl Inputs {
    /// The graph input declared for fixture tensor `name`.
    pub fn get(&self, name: &str) -> &Tensor {
        self.t
            .get(name)
            .unwrap_or_else(|| panic!("no input {name:?} in this case"))
    }

    /// Fixture tensor `name` as an array (e.g. weights to load into a module).
    pub fn array(&self, name: &str) -> Array {
        self.arrays
            .get(name)
            .unwrap_or_else(|| panic!("no input {name:?} in this case"))
            .clone()
    }

    /// Fixture tensor `name` as a constant of the graph (for values that must be known
    /// while building, such as a boolean index mask).
    pub fn constant(&self, name: &str) -> Tensor {
        let a = self
            .arrays
            .get(name)
            .unwrap_or_else(|| panic!("no input {name:?} in this case"));
        self.g.constant(a.clone())
    }

    /// The gradients of `Σ y·dy` with respect to `wrt` (fixture inputs), with the
    /// fixture input `dy` as the output's cotangent, as PyTorch's `autograd.grad(y, x,
    /// dy)`.
    pub fn grads(&self, y: &Tensor, dy: &str, wrt: &[&str]) -> Vec<Tensor> {
        let loss = (y * self.get(dy)).sum_all();
        let xs: Vec<&Tensor> = wrt.iter().map(|n| self.get(n)).collect();
        self.g
            .grad(&loss, &xs)
            .unwrap_or_else(|e| panic!("gradient of {wrt:?}: {e}"))
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

/// Builds case `case` of fixture file `bytes` with `build` (which returns its results
/// by fixture name), runs it on the interpreter and compiled, and compares every result
/// of both with PyTorch's; panics listing all mismatches. Every `out*` tensor of the
/// case must be produced.
pub fn check(bytes: &[u8], case: &str, build: impl FnOnce(&Inputs) -> Vec<(&'static str, Tensor)>) {
    let fixture = case_tensors(bytes, case);
    let g = GraphBuilder::new();
    let mut feeds = Vec::new();
    let mut t = BTreeMap::new();
    let mut arrays = BTreeMap::new();
    for (name, arr) in fixture.iter().filter(|(n, _)| !is_output(n)) {
        t.insert(
            name.clone(),
            g.input(name, arr.dtype(), arr.shape().clone()),
        );
        arrays.insert(name.clone(), arr.clone());
        feeds.push((name.as_str(), arr.clone()));
    }
    let inputs = Inputs {
        g: g.clone(),
        t,
        arrays,
    };
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
    let interpreted = inputs
        .g
        .run(&refs, &feeds)
        .unwrap_or_else(|e| panic!("case {case}: onde failed: {e}"));
    let mut runs = vec![("interpreted".to_string(), interpreted)];
    for isa in IsaLevel::available() {
        let opts = CompileOptions {
            isa,
            ..CompileOptions::default()
        };
        let got = inputs
            .g
            .compile_with(&refs, opts)
            .and_then(|mut c| c.run(&feeds))
            .unwrap_or_else(|e| panic!("case {case}: compiled ({isa}) failed: {e}"));
        runs.push((format!("compiled, {isa}"), got));
    }
    let mut failures = Vec::new();
    for (how, got) in &runs {
        for (name, a) in produced.iter().zip(got) {
            if let Some(m) = mismatch(a, &fixture[*name]) {
                failures.push(format!("  {case}.{name} ({how}): {m}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "case {case} differs from PyTorch:\n{}",
        failures.join("\n")
    );
}
