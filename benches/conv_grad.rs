//! Convolution gradients on W2's layers (1 thread; each step: forward, loss `Σ h²`,
//! backward through `passes::autodiff::conv`), PyTorch's time for the same steps:
//! `bench/torch_convs.py`.
//!
//! - `w2_block`: depthwise k9 'same' → pointwise → ReLU on `[32, 32, 4000]`, gradients
//!   of the input and both kernels (stride-1 input gradients are one convolution each;
//!   the depthwise kernel's gradient is one product with the input's windows);
//! - `w2_first_layer`: `[32, 1, 16000]` → 32 channels, k11 s4 p5 → ReLU, kernel
//!   gradient only (the input is data; gathered columns, one product);
//! - `w2_strided_layer`: 32 → 32, k3 s2 p1 on `[32, 32, 4000]` → ReLU, input and kernel
//!   gradients (the input gradient by two phases, stride-1 convolutions of `dy`).
//!
//! `cargo bench --bench conv_grad -- --quick`.

use criterion::Criterion;
use onde::{Array, ConvOpts, DType, GraphBuilder, Padding, Tensor};
use std::time::Duration;

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5 - 1.0) * 0.5)
        .collect()
}

fn conv(stride: usize, pad: usize, groups: usize) -> ConvOpts {
    ConvOpts {
        stride: vec![stride],
        padding: Padding::Explicit(vec![pad]),
        dilation: vec![1],
        groups,
    }
}

/// Benchmarks forward + backward of `h = layer(inputs)`, loss `Σ h²`, gradients with
/// respect to the inputs flagged `true`.
fn bench_step(
    c: &mut Criterion,
    name: &str,
    inputs: &[(&str, Vec<usize>, bool)],
    layer: impl Fn(&[Tensor]) -> Tensor,
) {
    let g = GraphBuilder::new();
    let ts: Vec<Tensor> = inputs
        .iter()
        .map(|(n, s, _)| g.input(n, DType::F32, s.clone()))
        .collect();
    let h = layer(&ts);
    let loss = (&h * &h).sum(vec![0i64, 1, 2], false);
    let wrt: Vec<&Tensor> = ts
        .iter()
        .zip(inputs)
        .filter(|(_, (_, _, want))| *want)
        .map(|(t, _)| t)
        .collect();
    let grads = g.grad(&loss, &wrt).expect("differentiable");
    let mut outs = vec![&loss];
    outs.extend(grads.iter());
    let mut exe = g.compile(&outs).expect("compiles");
    let feeds: Vec<(&str, Array)> = inputs
        .iter()
        .enumerate()
        .map(|(i, (n, s, _))| {
            let a = Array::f32(s.clone(), values(s.iter().product(), i + 1));
            (*n, a.expect("length matches"))
        })
        .collect();
    let mut group = c.benchmark_group("conv_grad");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(name, |b| b.iter(|| exe.run(&feeds).expect("runs")));
    group.finish();
}

fn w2_layers(c: &mut Criterion) {
    bench_step(
        c,
        "w2_block_fwd_bwd_batch32",
        &[
            ("x", vec![32, 32, 4000], true),
            ("dw", vec![32, 1, 9], true),
            ("pw", vec![32, 32, 1], true),
        ],
        |t| {
            t[0].conv1d(&t[1], None, &conv(1, 4, 32))
                .conv1d(&t[2], None, &ConvOpts::default())
                .relu()
        },
    );
    bench_step(
        c,
        "w2_first_layer_fwd_bwd_batch32",
        &[
            ("x", vec![32, 1, 16000], false),
            ("w", vec![32, 1, 11], true),
        ],
        |t| t[0].conv1d(&t[1], None, &conv(4, 5, 1)).relu(),
    );
    bench_step(
        c,
        "w2_strided_layer_fwd_bwd_batch32",
        &[
            ("x", vec![32, 32, 4000], true),
            ("w", vec![32, 32, 3], true),
        ],
        |t| t[0].conv1d(&t[1], None, &conv(2, 1, 1)).relu(),
    );
}

criterion::criterion_group!(benches, w2_layers);
criterion::criterion_main!(benches);
