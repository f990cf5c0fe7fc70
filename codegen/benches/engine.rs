//! The AVX-512 tile engine against the Cranelift f32x4 kernels it replaces, on the
//! same graphs (`CompileOptions::avx512` on / off): one transcendental over 2^20
//! elements, W6's forward (`sum(tanh(x·a+b)·sigmoid(x) + x·x)`), and W1's bias +
//! sigmoid layer (`[64, 256]`, bias broadcast along rows).
//!
//! `cargo bench -p onde-codegen --bench engine -- --quick`. On a CPU without
//! AVX-512F/DQ both variants run the Cranelift code.

use criterion::{BenchmarkId, Criterion, Throughput};
use onde_codegen::{CompileOptions, Executable, IsaLevel};
use onde_ir::{parse_graph, Array};

fn exe(src: &str, isa: IsaLevel) -> Executable {
    let g = parse_graph(src).expect("bench graph parses");
    Executable::compile(
        &g,
        CompileOptions {
            isa,
            ..CompileOptions::default()
        },
    )
    .expect("bench graph compiles")
}

fn values(n: usize, seed: usize) -> Array {
    let v = (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 20_011) as f32 / 20_011.0 - 0.5) * 8.0)
        .collect();
    Array::f32([n], v).expect("length matches")
}

fn bench_case(c: &mut Criterion, name: &str, src: &str, feeds: &[(&str, Array)], n: usize) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(n as u64));
    // Baseline: Cranelift f32x4 code; AVX2 / AVX-512: the engine at 8 / 16 lanes.
    for isa in IsaLevel::available() {
        let mut e = exe(src, isa);
        let refs: Vec<(&str, &Array)> = feeds.iter().map(|(k, a)| (*k, a)).collect();
        let label = match isa {
            IsaLevel::Baseline => "cranelift f32x4",
            IsaLevel::Avx2 => "engine x8",
            IsaLevel::Avx512 => "engine x16",
        };
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| e.run_in_place(&refs).expect("runs"))
        });
    }
    group.finish();
}

fn functions(c: &mut Criterion) {
    let n = 1 << 20;
    for f in ["exp", "tanh", "sigmoid", "log", "sin"] {
        let src = format!(
            "graph {{\n  %0: f32[{n}] = input \"x\"\n  %1: f32[{n}] = {f} %0\n  outputs %1\n}}"
        );
        bench_case(c, f, &src, &[("x", values(n, 1))], n);
    }
}

fn workloads(c: &mut Criterion) {
    let n = 1 << 20;
    let w6 = format!(
        r#"graph {{
  %0: f32[{n}] = input "x"
  %1: f32[{n}] = input "a"
  %2: f32[{n}] = input "b"
  %3: f32[{n}] = mul %0, %1
  %4: f32[{n}] = add %3, %2
  %5: f32[{n}] = tanh %4
  %6: f32[{n}] = sigmoid %0
  %7: f32[{n}] = mul %5, %6
  %8: f32[{n}] = mul %0, %0
  %9: f32[{n}] = add %7, %8
  %10: f32[] = reduce_sum %9 axes=[0] keepdim=false
  outputs %10
}}"#
    );
    let feeds = [
        ("x", values(n, 1)),
        ("a", values(n, 2)),
        ("b", values(n, 3)),
    ];
    bench_case(c, "w6_forward", &w6, &feeds, n);
    let w1 = r#"graph {
  %0: f32[64,256] = input "z"
  %1: f32[256] = input "b"
  %2: f32[64,256] = expand %1 shape=[64,256]
  %3: f32[64,256] = add %0, %2
  %4: f32[64,256] = sigmoid %3
  outputs %4
}"#;
    let z = Array::f32(
        [64, 256],
        values(64 * 256, 4)
            .to_f64_vec()
            .iter()
            .map(|&v| v as f32)
            .collect(),
    )
    .expect("length matches");
    bench_case(
        c,
        "w1_bias_sigmoid",
        w1,
        &[("z", z), ("b", values(256, 5))],
        64 * 256,
    );
}

criterion::criterion_group!(benches, functions, workloads);
criterion::criterion_main!(benches);
