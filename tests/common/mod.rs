//! Shared test helpers: a generator of random, always-valid API programs.

#![allow(dead_code)]

pub mod torch_fixture;

use onde::{cat, s, where_, Array, ConvOpts, DType, GraphBuilder, Idx, Tensor};

/// Deterministic pseudo-random data in [-1.2, 1.2) (+0.05 to avoid exact zeros).
pub fn data(dtype: DType, shape: &[usize], seed: usize) -> Array {
    // Hashed, not an arithmetic progression: a progression makes exactly equal column
    // variances, and at such ties (max/min gradients split between equal elements) a
    // one-ulp difference between two correct evaluation orders changes the gradient
    // by O(1).
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|k| {
            let mut h = (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed as u64;
            h ^= h >> 29;
            h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            h ^= h >> 32;
            ((h % 1_000_003) as f64 / 1_000_003.0 - 0.5) * 2.4 + 0.05
        })
        .collect();
    Array::from_f64(dtype, shape.to_vec(), &v).unwrap()
}

/// Applies API call number `code` to tensors of the pool; arguments are derived from
/// the current shapes so every call is valid. Max-based reductions (max, argmax,
/// logsumexp) only see non-empty tensors: over an empty axis they are run-time errors,
/// as in PyTorch.
pub fn step(g: &GraphBuilder, pool: &[Tensor], code: u8, i: usize, j: usize, p: usize) -> Tensor {
    let x = &pool[i % pool.len()];
    let y = &pool[j % pool.len()];
    let r = x.dim().max(1) as i64;
    let ax = (p as i64 % r) - if p.is_multiple_of(2) { r } else { 0 }; // negative half the time
    let ax = if x.dim() == 0 { 0 } else { ax };
    match code % 34 {
        0 => x.tanh(),
        1 => x.exp().log(),
        2 => x.sigmoid() * x,
        3 => x + x.sum([ax], true),
        4 if x.dim() > 0 => x.mean([ax], p.is_multiple_of(3)),
        5 if x.dim() > 0 && x.numel() > 0 => x.max([ax], true) - x,
        6 if x.dim() > 0 => x.transpose(0, ax),
        7 => x.flatten(0, -1),
        8 if x.dim() > 0 => x.unsqueeze(ax),
        9 if x.dim() > 0 => cat(&[x, x], ax),
        10 if x.dim() > 0 => x.tile([1 + (p % 2) as i64]),
        11 if x.dim() > 0 => x.slice(ax, Some(0), None, 1 + (p % 3) as i64),
        12 if x.dim() > 0 => x.pad([p % 2, 1], 0.5),
        13 if x.dim() >= 2 => x.matmul(&x.transpose(-1, -2)),
        14 => where_(&x.gt(0.0), x, x.neg()),
        15 if x.dim() > 0 && x.numel() > 0 => {
            let idx = x.argmax(ax, true);
            x.gather(ax, &idx)
        }
        16 if x.dim() == 3 && x.size()[2] >= 2 && x.size()[1] > 0 => {
            let c = x.size()[1];
            let w = g.ones([c, 1, 2], x.dtype());
            x.conv1d(&w, None, &ConvOpts::default().groups(c).padding(p % 2))
        }
        17 if x.size() == y.size() => x.maximum(y) / (y.abs() + 1.0),
        18 if x.dim() > 0 => x.var([ax], 1, false),
        19 if x.dim() > 0 && x.numel() > 0 => x.logsumexp([ax], false),
        20 if x.dim() >= 2 && x.size().last() > Some(&0) => {
            x.index(s![Idx::Ellipsis, Idx::from(1..).step(2), 0])
        }
        21 => x.clamp(-0.5, 0.5).square(),
        22 if x.dim() > 0 => x.expand(
            [2].into_iter()
                .chain(x.size().iter().map(|&d| d as i64))
                .collect::<Vec<i64>>(),
        ),
        // Offset so that `x` is never compared with itself or a value equal to it up
        // to rounding (log(exp(x)) vs x): the JIT's and the interpreter's last bits may
        // differ, and a flipped comparison is a step of 1 in the result.
        23 => x.lt(y.mean_all() + 0.0137).to_dtype(x.dtype()) + x,
        24 => (x * 3.0).long().to_dtype(x.dtype()) + x.sin() * x.cos(),
        25 if x.dim() > 0 && x.numel() > 0 => x.min([ax], false) + x.prod([ax], false).abs().sqrt(),
        26 => x
            .permute((0..x.dim() as i64).rev().collect::<Vec<i64>>())
            .relu(),
        27 => (x.abs() + 0.5).pow(y.mean_all()) - x.floor(),
        28 if x.dim() >= 1 => {
            let slice: Vec<usize> = x.size()[1..].to_vec();
            let h0 = g.zeros(slice, x.dtype());
            let out = g.scan(&[&h0], &[x], &[], 0, p.is_multiple_of(2), |c, xs, _| {
                let h = (&c[0] * 0.5 + &xs[0]).tanh();
                (vec![h.clone()], vec![h])
            });
            &out[1] + &out[0]
        }
        30 if x.dim() > 0 && x.size()[ax.rem_euclid(r) as usize] > 0 => {
            let len = x.size()[ax.rem_euclid(r) as usize];
            x.unfold(ax, 1 + p % len.min(3), 1 + (p / 2) % 2) * 2.0
        }
        29 => x.sign() * x.exp() - x.reciprocal().clamp(-3.0, 3.0),
        31 if x.dim() > 0 && x.numel() > 0 => x.softmax(ax) + x.log_softmax(ax) * 0.5,
        // Rows made non-constant first: clamps (33) can make a row constant, whose
        // f32 mean is inexact, so its variance is rounding noise instead of 0 and the
        // std's gradient there (singular: 1/std, NaN in PyTorch, 0 here at exactly
        // zero variance) is noise amplified ~1/ulp, on which no two evaluation
        // orders agree.
        32 if x.dim() > 0 => {
            let axu = ax.rem_euclid(r) as usize;
            let n = x.size()[axu];
            let mut along = vec![1i64; x.dim()];
            along[axu] = n as i64;
            let ramp = g.arange(0.0, n as f64, 1.0, x.dtype()).reshape(along) * 0.37;
            (x + ramp).std([ax], 0, true) * x
        }
        // Tensor bounds offset from the data (see 23): no bound equal to an element.
        33 => x.clamp(&(y.mean_all() - 0.4137), &(y.mean_all() + 0.2913)) + x.clamp_max(0.25),
        _ => x.abs().sqrt(),
    }
}

/// A random program: input `x` of `shape` and `dtype`, then `steps`; returns the
/// builder, the input and the non-input tensors.
pub fn program(
    dtype: DType,
    shape: &[usize],
    steps: &[(u8, usize, usize, usize)],
) -> (GraphBuilder, Tensor, Vec<Tensor>) {
    let g = GraphBuilder::new();
    let x = g.input("x", dtype, shape.to_vec());
    let mut pool = vec![x.clone()];
    for &(code, i, j, p) in steps {
        let t = step(&g, &pool, code, i, j, p);
        assert!(t.check().is_ok(), "call {code} failed: {:?}", t.check());
        if t.numel() <= 4096 {
            pool.push(t);
        }
    }
    let outs = pool[1..].to_vec();
    (g, x, outs)
}

// Small helpers of the training tests (losses, modules).

pub fn a64(shape: &[usize], v: &[f64]) -> Array {
    Array::f64(shape.to_vec(), v.to_vec()).unwrap()
}

pub fn a32(shape: &[usize], v: &[f64]) -> Array {
    Array::from_f64(DType::F32, shape.to_vec(), v).unwrap()
}

pub fn ai64(shape: &[usize], v: &[i64]) -> Array {
    Array::i64(shape.to_vec(), v.to_vec()).unwrap()
}

/// Runs `outs` on the interpreter and returns them as f64 vectors.
pub fn run(g: &GraphBuilder, outs: &[&Tensor], feeds: &[(&str, Array)]) -> Vec<Vec<f64>> {
    g.run(outs, feeds)
        .unwrap()
        .iter()
        .map(Array::to_f64_vec)
        .collect()
}

/// `|got - want| <= tol * max(|want|, 1)` element-wise; a NaN expectation needs a NaN.
pub fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: got {got:?}, want {want:?}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        if b.is_nan() {
            assert!(a.is_nan(), "{what}[{i}]: got {a}, want NaN");
            continue;
        }
        let err = (a - b).abs();
        assert!(
            err <= tol * b.abs().max(1.0),
            "{what}[{i}]: got {a}, want {b} (err {err:e}); all: {got:?} vs {want:?}"
        );
    }
}

/// A file of a `bench.py --dump` fixture: `tests/fixtures/<workload>/<name>.safetensors`
/// (`workload` lower-case: `w1`, `w2`).
pub fn bench_fixture(workload: &str, name: &str) -> Vec<(String, Array)> {
    let p = format!(
        "{}/tests/fixtures/{workload}/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    onde::nn::checkpoint::load(&p).expect("fixture loads")
}

/// The tensor `n` of a loaded fixture.
pub fn fixture_get<'a>(d: &'a [(String, Array)], n: &str) -> &'a Array {
    &d.iter()
        .find(|(k, _)| k == n)
        .unwrap_or_else(|| panic!("{n} in fixture"))
        .1
}
