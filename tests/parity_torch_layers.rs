//! PyTorch parity of the layers' functional ops (pooling so far): every case of
//! `tests/fixtures/torch_ops/layers.safetensors` (written by
//! `tests/fixtures/torch_ops/gen_torch_layers.py`), values and gradients, interpreted
//! and compiled at every ISA level (`common::torch_fixture`).

use crate::common::torch_fixture::{self, Inputs};
use onde::{PoolOpts, Tensor};
use std::sync::OnceLock;

fn fixture_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| torch_fixture::fixture_bytes("torch_ops/layers.safetensors"))
}

fn check(case: &str, build: impl FnOnce(&Inputs) -> Vec<(&'static str, Tensor)>) {
    torch_fixture::check(fixture_bytes(), case, build)
}

/// `(out_<what>, y)` and `(out_grad_<what>_<x>, dy·∂y/∂x)`.
fn with_grads(i: &Inputs, what: &str, y: Tensor, x: &str) -> Vec<(&'static str, Tensor)> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let g = i.grads(&y, leak(format!("dy_{what}")), &[x]).remove(0);
    vec![
        (leak(format!("out_{what}")), y),
        (leak(format!("out_grad_{what}_{x}")), g),
    ]
}

#[test]
fn max_pool1d_routes_ties_to_the_first_maximum() {
    check("max_pool1d", |i| {
        let (x, x1) = (i.get("x"), i.get("x1"));
        [
            ("k3", x.max_pool1d(&PoolOpts::new(3)), "x"),
            (
                "k3s2p1",
                x.max_pool1d(&PoolOpts::new(3).stride(2).padding(1)),
                "x",
            ),
            (
                "k2s2ceil",
                x.max_pool1d(&PoolOpts::new(2).stride(2).ceil_mode(true)),
                "x",
            ),
            (
                "k3d2",
                x.max_pool1d(&PoolOpts::new(3).stride(1).dilation(2).padding(1)),
                "x",
            ),
            (
                "unbatched_ceil",
                x1.max_pool1d(&PoolOpts::new(4).stride(3).padding(2).ceil_mode(true)),
                "x1",
            ),
        ]
        .into_iter()
        .flat_map(|(w, y, x)| with_grads(i, w, y, x))
        .collect()
    });
}

#[test]
fn max_pool2d() {
    check("max_pool2d", |i| {
        let x = i.get("x");
        [
            ("k2", x.max_pool2d(&PoolOpts::new(2))),
            (
                "k3s2p1",
                x.max_pool2d(&PoolOpts::new(3).stride(2).padding(1)),
            ),
            (
                "k23_ceil",
                x.max_pool2d(&PoolOpts::new([2, 3]).stride([2, 2]).ceil_mode(true)),
            ),
            (
                "k3d2",
                x.max_pool2d(&PoolOpts::new(3).stride(2).dilation([2, 1]).padding([1, 1])),
            ),
        ]
        .into_iter()
        .flat_map(|(w, y)| with_grads(i, w, y, "x"))
        .collect()
    });
}

#[test]
fn avg_pool1d_divisors() {
    check("avg_pool1d", |i| {
        let x = i.get("x");
        [
            ("k3", x.avg_pool1d(&PoolOpts::new(3))),
            (
                "k4s3p2",
                x.avg_pool1d(&PoolOpts::new(4).stride(3).padding(2)),
            ),
            (
                "k4s3p2_nopad",
                x.avg_pool1d(
                    &PoolOpts::new(4)
                        .stride(3)
                        .padding(2)
                        .count_include_pad(false),
                ),
            ),
            (
                "k3s2p1_ceil",
                x.avg_pool1d(&PoolOpts::new(3).stride(2).padding(1).ceil_mode(true)),
            ),
            (
                "k3s2p1_ceil_nopad",
                x.avg_pool1d(
                    &PoolOpts::new(3)
                        .stride(2)
                        .padding(1)
                        .ceil_mode(true)
                        .count_include_pad(false),
                ),
            ),
        ]
        .into_iter()
        .flat_map(|(w, y)| with_grads(i, w, y, "x"))
        .collect()
    });
}

#[test]
fn avg_pool2d() {
    check("avg_pool2d", |i| {
        let x = i.get("x");
        [
            ("k2", x.avg_pool2d(&PoolOpts::new(2))),
            (
                "k3s2p1",
                x.avg_pool2d(&PoolOpts::new(3).stride(2).padding(1)),
            ),
            (
                "k3s2p1_nopad_ceil",
                x.avg_pool2d(
                    &PoolOpts::new(3)
                        .stride(2)
                        .padding(1)
                        .ceil_mode(true)
                        .count_include_pad(false),
                ),
            ),
        ]
        .into_iter()
        .flat_map(|(w, y)| with_grads(i, w, y, "x"))
        .collect()
    });
}

#[test]
fn adaptive_avg_pool1d_bins() {
    check("adaptive_avg_pool1d", |i| {
        let x = i.get("x");
        [("o3", 3), ("o4", 4), ("o10", 10), ("o1", 1)]
            .into_iter()
            .flat_map(|(w, n)| with_grads(i, w, x.adaptive_avg_pool1d(n), "x"))
            .collect()
    });
}

/// Every case of the fixture has a test above.
#[test]
fn every_fixture_case_is_tested() {
    let mut tested = vec![
        "max_pool1d",
        "max_pool2d",
        "avg_pool1d",
        "avg_pool2d",
        "adaptive_avg_pool1d",
    ];
    tested.sort_unstable();
    assert_eq!(torch_fixture::case_names(fixture_bytes()), tested);
}
