//! Conv epilogues (`exec::epilogue`): W2's first layers (conv1d 1→32, k=11, s=4 +
//! bias + batch norm (eval) + ReLU; depthwise k=9 + bias + ReLU; pointwise + bias +
//! ReLU + residual) with each consumer kernel run on the convolution's finished rows
//! (`epilogues: true`) or as its own pass (`false`), for 32 and 128 batch entries
//! (16 and 64 MiB per activation).
//!
//! `cargo bench -p onde-codegen --bench conv_epilogue -- --quick`.

use criterion::{BenchmarkId, Criterion, Throughput};
use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};

fn graph(b: usize) -> String {
    format!(
        r#"graph {{
  %0: f32[{b},1,16000] = input "x"
  %1: f32[32,1,11] = input "w"
  %2: f32[32] = input "b"
  %3: f32[32] = input "scale"
  %4: f32[32] = input "shift"
  %5: f32[{b},32,4000] = conv %0, %1 stride=[4] padding=[(5,5)] dilation=[1] groups=1
  %6: f32[32,1] = reshape %2 shape=[32,1]
  %7: f32[{b},32,4000] = expand %6 shape=[{b},32,4000]
  %8: f32[{b},32,4000] = add %5, %7
  %9: f32[32,1] = reshape %3 shape=[32,1]
  %10: f32[{b},32,4000] = expand %9 shape=[{b},32,4000]
  %11: f32[{b},32,4000] = mul %8, %10
  %12: f32[32,1] = reshape %4 shape=[32,1]
  %13: f32[{b},32,4000] = expand %12 shape=[{b},32,4000]
  %14: f32[{b},32,4000] = add %11, %13
  %15: f32[{b},32,4000] = relu %14
  %16: f32[32,1,9] = input "dw"
  %17: f32[{b},32,4000] = conv %15, %16 stride=[1] padding=[(4,4)] dilation=[1] groups=32
  %18: f32[{b},32,4000] = add %17, %7
  %19: f32[{b},32,4000] = relu %18
  %20: f32[32,32,1] = input "pw"
  %21: f32[{b},32,4000] = conv %19, %20 stride=[1] padding=[(0,0)] dilation=[1] groups=1
  %22: f32[{b},32,4000] = add %21, %10
  %23: f32[{b},32,4000] = relu %22
  %24: f32[{b},32,4000] = add %23, %15
  outputs %24
}}"#
    )
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5 - 1.0) * 0.5)
        .collect()
}

fn conv_epilogues(c: &mut Criterion) {
    for b in [32usize, 128] {
        let mut group = c.benchmark_group(format!("w2_layers_batch{b}"));
        group.throughput(Throughput::Elements((b * 32 * 4000) as u64));
        group.sample_size(10);
        let g = parse_graph(&graph(b)).expect("bench graph parses");
        let feeds = [
            ("x", Array::f32([b, 1, 16000], values(b * 16000, 1))),
            ("w", Array::f32([32, 1, 11], values(32 * 11, 2))),
            ("b", Array::f32([32], values(32, 3))),
            ("scale", Array::f32([32], values(32, 4))),
            ("shift", Array::f32([32], values(32, 5))),
            ("dw", Array::f32([32, 1, 9], values(32 * 9, 6))),
            ("pw", Array::f32([32, 32, 1], values(32 * 32, 7))),
        ]
        .map(|(n, a)| (n, a.expect("length matches")));
        let refs: Vec<(&str, &Array)> = feeds.iter().map(|(n, a)| (*n, a)).collect();
        for epilogues in [false, true] {
            let mut e = Executable::compile(
                &g,
                CompileOptions {
                    epilogues,
                    ..CompileOptions::default()
                },
            )
            .expect("bench graph compiles");
            let label = if epilogues { "fused" } else { "separate" };
            group.bench_function(BenchmarkId::from_parameter(label), |bch| {
                bch.iter(|| e.run_in_place(&refs).expect("runs"))
            });
        }
        group.finish();
    }
}

criterion::criterion_group!(benches, conv_epilogues);
criterion::criterion_main!(benches);
