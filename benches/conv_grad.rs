//! Convolution gradients: W2's separable block (depthwise k9 'same' → pointwise →
//! ReLU) on `[32, 32, 4000]`, loss `Σ h²`, gradients with respect to the input and both
//! kernels, compiled (`passes::autodiff::conv`: stride-1 input gradients are one
//! convolution each, weight gradients per-tap dot products). PyTorch's time for the
//! same step: `bench/torch_convs.py` ("block fwd+bwd").
//!
//! `cargo bench --bench conv_grad -- --quick`.

use criterion::Criterion;
use onde::{Array, ConvOpts, DType, GraphBuilder, Padding};
use std::time::Duration;

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5 - 1.0) * 0.5)
        .collect()
}

fn block(c: &mut Criterion) {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, vec![32, 32, 4000]);
    let dw = g.input("dw", DType::F32, vec![32, 1, 9]);
    let pw = g.input("pw", DType::F32, vec![32, 32, 1]);
    let depthwise = ConvOpts {
        stride: vec![1],
        padding: Padding::Explicit(vec![4]),
        dilation: vec![1],
        groups: 32,
    };
    let h = x
        .conv1d(&dw, None, &depthwise)
        .conv1d(&pw, None, &ConvOpts::default())
        .relu();
    let loss = (&h * &h).sum(vec![0i64, 1, 2], false);
    let grads = g.grad(&loss, &[&x, &dw, &pw]).expect("differentiable");
    let mut exe = g
        .compile(&[&loss, &grads[0], &grads[1], &grads[2]])
        .expect("compiles");
    let feeds = [
        ("x", Array::f32([32, 32, 4000], values(32 * 32 * 4000, 1))),
        ("dw", Array::f32([32, 1, 9], values(32 * 9, 2))),
        ("pw", Array::f32([32, 32, 1], values(32 * 32, 3))),
    ]
    .map(|(n, a)| (n, a.expect("length matches")));
    let mut group = c.benchmark_group("conv_grad");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("w2_block_fwd_bwd_batch32", |b| {
        b.iter(|| exe.run(&feeds).expect("runs"))
    });
    group.finish();
}

/// W2's first layer (`[32, 1, 16000]` → 32 channels, k11 s4 p5) → ReLU, loss `Σ h²`,
/// gradient of the kernel only (the input is data): per tap, a `[32 × 4000] @ [4000]`
/// matrix-vector product per batch entry.
fn first_layer(c: &mut Criterion) {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, vec![32, 1, 16000]);
    let w = g.input("w", DType::F32, vec![32, 1, 11]);
    let opts = ConvOpts {
        stride: vec![4],
        padding: Padding::Explicit(vec![5]),
        dilation: vec![1],
        groups: 1,
    };
    let h = x.conv1d(&w, None, &opts).relu();
    let loss = (&h * &h).sum(vec![0i64, 1, 2], false);
    let grads = g.grad(&loss, &[&w]).expect("differentiable");
    let mut exe = g.compile(&[&loss, &grads[0]]).expect("compiles");
    let feeds = [
        ("x", Array::f32([32, 1, 16000], values(32 * 16000, 1))),
        ("w", Array::f32([32, 1, 11], values(32 * 11, 2))),
    ]
    .map(|(n, a)| (n, a.expect("length matches")));
    let mut group = c.benchmark_group("conv_grad");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("w2_first_layer_fwd_bwd_batch32", |b| {
        b.iter(|| exe.run(&feeds).expect("runs"))
    });
    group.finish();
}

/// W2's strided layer (32 → 32, k3 s2 p1 on `[32, 32, 4000]`) → ReLU, loss `Σ h²`,
/// gradients of the input and the kernel: the input gradient is a convolution of the
/// spread `dy`.
fn strided_layer(c: &mut Criterion) {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, vec![32, 32, 4000]);
    let w = g.input("w", DType::F32, vec![32, 32, 3]);
    let opts = ConvOpts {
        stride: vec![2],
        padding: Padding::Explicit(vec![1]),
        dilation: vec![1],
        groups: 1,
    };
    let h = x.conv1d(&w, None, &opts).relu();
    let loss = (&h * &h).sum(vec![0i64, 1, 2], false);
    let grads = g.grad(&loss, &[&x, &w]).expect("differentiable");
    let mut exe = g.compile(&[&loss, &grads[0], &grads[1]]).expect("compiles");
    let feeds = [
        ("x", Array::f32([32, 32, 4000], values(32 * 32 * 4000, 1))),
        ("w", Array::f32([32, 32, 3], values(32 * 32 * 3, 2))),
    ]
    .map(|(n, a)| (n, a.expect("length matches")));
    let mut group = c.benchmark_group("conv_grad");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("w2_strided_layer_fwd_bwd_batch32", |b| {
        b.iter(|| exe.run(&feeds).expect("runs"))
    });
    group.finish();
}

criterion::criterion_group!(benches, block, first_layer, strided_layer);
criterion::criterion_main!(benches);
