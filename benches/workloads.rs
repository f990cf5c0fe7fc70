//! The reference workloads of `../shared/bench/bench.py` on the JIT, through the public
//! API (the same graphs as `onde bench`, see `cli/src/bench.rs`):
//!
//! - `W6/train`: `y = sum(tanh(x·a + b)·sigmoid(x) + x·x)` over 2^20 f32, forward and
//!   gradients with respect to `a` and `b`; `W6/infer`: the forward alone;
//! - `W7/gemm_1024`: `[1024,1024] @ [1024,1024]` f32 (throughput in FLOP/s);
//! - `W1/train`: the MLP's whole training step (forward, NLL, backward, Adam in place,
//!   one `TrainStep`); `W1/infer`: the eval forward through an `Evaluator` sharing the
//!   step's weights;
//! - `compile/W6_train`: cold compile (`Executable::compile`: plan, Cranelift, buffer
//!   allocation) and drop of the optimised W6 forward + backward graph, i.e. `onde
//!   bench`'s `compile_ms` plus allocating and freeing the executable's buffers;
//!   `compile/W6_train_build_grad_optimize_compile`: the whole path from
//!   `GraphBuilder` through `grad` and the optimiser to code.
//!
//! Runs use `Executable::run_in_place` (outputs stay in the executable's buffers, no
//! copy). Library kernels use `ONDE_BENCH_THREADS` threads (default 1).
//!
//! `cargo bench --bench workloads -- --quick`; PyTorch side by side: `bench/compare.sh`.

use criterion::{BenchmarkId, Criterion, Throughput};
use onde::codegen::{CompileOptions, Executable};
use onde::{Array, DType, GraphBuilder, Tensor};
use std::hint::black_box;
use std::time::Duration;

const W6_N: usize = 1 << 20;
const W7_N: usize = 1024;

/// Seeded pseudo-random f32 in [-1, 1) (the generator of `onde bench`).
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn threads() -> usize {
    std::env::var("ONDE_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1usize)
        .max(1)
}

fn options() -> CompileOptions {
    CompileOptions {
        threads: threads(),
        ..CompileOptions::default()
    }
}

/// W6's builder and its outputs: `[y]` for inference, `[y, dy/da, dy/db]` for training.
fn w6_graph(train: bool) -> onde::ir::Graph {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [W6_N]);
    let a = g.input("a", DType::F32, [W6_N]);
    let b = g.input("b", DType::F32, [W6_N]);
    let y = ((&x * &a + &b).tanh() * x.sigmoid() + &x * &x).sum_all();
    let grads = if train {
        g.grad(&y, &[&a, &b]).expect("W6 gradients")
    } else {
        Vec::new()
    };
    let outs: Vec<&Tensor> = std::iter::once(&y).chain(&grads).collect();
    let mut graph = g.build(&outs).expect("W6 graph");
    onde::passes_optimize(&mut graph).expect("W6 optimize");
    graph
}

fn w6(c: &mut Criterion) {
    let xs = Array::f32([W6_N], data(W6_N, 1)).expect("x");
    let as_ = Array::f32([W6_N], data(W6_N, 2)).expect("a");
    let bs = Array::f32([W6_N], data(W6_N, 3)).expect("b");
    let feeds = [("x", &xs), ("a", &as_), ("b", &bs)];
    let train_graph = w6_graph(true);

    let mut group = c.benchmark_group("W6");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(W6_N as u64));
    for (phase, graph) in [("train", &train_graph), ("infer", &w6_graph(false))] {
        let mut exe = Executable::compile(graph, options()).expect("W6 compile");
        exe.run_in_place(&feeds).expect("W6 run");
        let y = exe.output_f32(0).expect("f32 output")[0];
        assert!(y.is_finite(), "W6 {phase}: y = {y}");
        group.bench_function(
            BenchmarkId::new(phase, format!("threads={}", threads())),
            |b| b.iter(|| exe.run_in_place(black_box(&feeds)).expect("W6 run")),
        );
    }
    group.finish();

    // Cold compiles: a new JIT module each time (not `compile_cached`); each iteration
    // compiles and drops the executable, so its buffers and code memory are recycled
    // rather than piling up over a sample.
    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("W6_train", |b| {
        b.iter(|| Executable::compile(black_box(&train_graph), options()).expect("compile"))
    });
    group.bench_function("W6_train_build_grad_optimize_compile", |b| {
        b.iter(|| Executable::compile(&w6_graph(black_box(true)), options()).expect("compile"))
    });
    group.finish();
}

fn w7(c: &mut Criterion) {
    let g = GraphBuilder::new();
    let a = g.input("a", DType::F32, [W7_N, W7_N]);
    let b = g.input("b", DType::F32, [W7_N, W7_N]);
    let graph = g.build(&[&a.matmul(&b)]).expect("W7 graph");
    let mut exe = Executable::compile(&graph, options()).expect("W7 compile");
    let av = Array::f32([W7_N, W7_N], data(W7_N * W7_N, 4)).expect("a");
    let bv = Array::f32([W7_N, W7_N], data(W7_N * W7_N, 5)).expect("b");
    let feeds = [("a", &av), ("b", &bv)];

    let mut group = c.benchmark_group("W7");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(2 * (W7_N as u64).pow(3)));
    group.bench_function(
        BenchmarkId::new("gemm_1024", format!("threads={}", threads())),
        |bch| bch.iter(|| exe.run_in_place(black_box(&feeds)).expect("W7 run")),
    );
    group.finish();
}

fn w1(c: &mut Criterion) {
    let (mut step, mut eval) = onde::apps::examples::w1(options()).expect("W1");
    let xs = Array::f32([64, 256], data(64 * 256, 11)).expect("x");
    let ys = Array::i64([64], (0..64).map(|i| i * 7 % 10).collect()).expect("y");
    let mut group = c.benchmark_group("W1");
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let t = format!("threads={}", threads());
    group.bench_function(BenchmarkId::new("train", &t), |b| {
        b.iter(|| {
            step.step(black_box(&[("x", &xs), ("y", &ys)]))
                .expect("W1 step")
        })
    });
    group.bench_function(BenchmarkId::new("infer", &t), |b| {
        b.iter(|| {
            eval.run_in_place(&step, black_box(&[("x", &xs)]))
                .expect("W1 infer")
        })
    });
    group.finish();
}

criterion::criterion_group!(benches, w1, w6, w7);
criterion::criterion_main!(benches);
