//! Native kernels: SGEMM (W7: 1024³) and the convolutions of W2 (keyword spotter on
//! `[32, 1, 16000]` waveforms), at 1 and 2 threads.
//!
//! Throughput is reported in FLOP/s (2 per multiply-add of the *algorithm's* work for
//! GEMM; for convolutions, of the dense-equivalent count `2·B·C_out·∏O·C_in/groups·∏K`,
//! so a depthwise and a dense convolution are compared on the work they must do).
//!
//! `matrixmultiply`'s own pool is set to 1 thread unless `MATMUL_NUM_THREADS` is
//! already set, so `threads` is the only knob (see `onde_codegen::native`). Run with
//! `MATMUL_NUM_THREADS=2` to measure the library's internal threading instead (then
//! `threads=1` means the library's 2 threads).
//!
//! `cargo bench -p onde-codegen --bench native -- --quick`; with `NATIVE_BENCH_SUMMARY=1`
//! it prints a best-of-15 table instead (steadier on a shared machine).

use criterion::{BenchmarkId, Criterion, Throughput};
use onde_codegen::native::{conv_with, library_threads, matmul, ConvAlgorithm};
use onde_ir::ConvParams;
use std::hint::black_box;
use std::time::Duration;

fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(747796405).wrapping_add(2891336453);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(747796405).wrapping_add(2891336453);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for n in [512usize, 1024] {
        let a = values(n * n, 1);
        let b = values(n * n, 2);
        let mut out = vec![0.0f32; n * n];
        group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        for threads in [1usize, 2] {
            group.bench_with_input(
                BenchmarkId::new(format!("{n}^3"), format!("threads={threads}")),
                &threads,
                |bch, &t| {
                    bch.iter(|| {
                        matmul(
                            black_box(&a),
                            &[n, n],
                            &[n as isize, 1],
                            black_box(&b),
                            &[n, n],
                            &[n as isize, 1],
                            &mut out,
                            t,
                        )
                        .expect("matmul")
                    })
                },
            );
        }
    }
    group.finish();
}

struct ConvCase {
    name: &'static str,
    x: [usize; 3],
    w: [usize; 3],
    p: ConvParams,
    algos: &'static [ConvAlgorithm],
}

fn params(s: usize, pad: usize, d: usize, groups: usize) -> ConvParams {
    ConvParams {
        stride: vec![s],
        padding: vec![(pad, pad)],
        dilation: vec![d],
        groups,
    }
}

fn conv_cases() -> Vec<ConvCase> {
    use ConvAlgorithm::{Direct, Im2colGemm};
    vec![
        ConvCase {
            name: "depthwise_k9_d1",
            x: [32, 32, 4000],
            w: [32, 1, 9],
            p: params(1, 4, 1, 32),
            algos: &[Direct, Im2colGemm],
        },
        ConvCase {
            name: "depthwise_k9_d4",
            x: [32, 32, 4000],
            w: [32, 1, 9],
            p: params(1, 16, 4, 32),
            algos: &[Direct],
        },
        ConvCase {
            name: "dense_32x32_k9",
            x: [32, 32, 4000],
            w: [32, 32, 9],
            p: params(1, 4, 1, 1),
            algos: &[Im2colGemm],
        },
        ConvCase {
            name: "pointwise_32x32",
            x: [32, 32, 4000],
            w: [32, 32, 1],
            p: params(1, 0, 1, 1),
            algos: &[Im2colGemm],
        },
        ConvCase {
            name: "first_1to32_k11_s4",
            x: [32, 1, 16000],
            w: [32, 1, 11],
            p: params(4, 5, 1, 1),
            algos: &[Im2colGemm, Direct],
        },
        ConvCase {
            name: "s2_32x32_k3",
            x: [32, 32, 4000],
            w: [32, 32, 3],
            p: params(2, 1, 1, 1),
            algos: &[Im2colGemm],
        },
    ]
}

/// A prepared convolution: inputs, output and scratch buffers.
struct ConvRun {
    x: Vec<f32>,
    w: Vec<f32>,
    out: Vec<f32>,
    out_shape: [usize; 3],
    scratch: Vec<f32>,
    fmas: usize,
}

impl ConvRun {
    fn new(case: &ConvCase) -> ConvRun {
        let o = onde_ir::typing::conv_out_len(
            case.x[2],
            case.w[2],
            case.p.stride[0],
            case.p.padding[0],
            case.p.dilation[0],
        )
        .expect("valid case");
        let out_shape = [case.x[0], case.w[0], o];
        let out = vec![0.0f32; out_shape.iter().product()];
        ConvRun {
            x: values(case.x.iter().product(), 3),
            w: values(case.w.iter().product(), 4),
            fmas: out.len() * case.w[1] * case.w[2],
            out,
            out_shape,
            scratch: Vec::new(),
        }
    }

    fn run(&mut self, case: &ConvCase, algo: ConvAlgorithm, threads: usize) {
        conv_with(
            algo,
            black_box(&self.x),
            &case.x,
            black_box(&self.w),
            &case.w,
            &case.p,
            &mut self.out,
            &self.out_shape,
            &mut self.scratch,
            threads,
        )
        .expect("conv");
    }
}

fn convs(c: &mut Criterion) {
    let cases = conv_cases();
    let mut group = c.benchmark_group("conv1d");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    for case in &cases {
        let mut run = ConvRun::new(case);
        group.throughput(Throughput::Elements(2 * run.fmas as u64));
        for &algo in case.algos {
            for threads in [1usize, 2] {
                group.bench_function(
                    BenchmarkId::new(case.name, format!("{algo:?}/threads={threads}")),
                    |bch| bch.iter(|| run.run(case, algo, threads)),
                );
            }
        }
    }
    group.finish();
}

/// Best (minimum) wall time of `reps` calls after one warm-up call, in seconds. On a
/// shared machine the minimum is the steadiest estimate of the uncontended time.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// With `NATIVE_BENCH_SUMMARY=1`: a best-of-N table (ms and GFLOP/s) of every case.
fn summary() {
    println!("\nbest of 15 runs (ms, GFLOP/s of dense-equivalent work):");
    for n in [512usize, 1024] {
        let a = values(n * n, 1);
        let b = values(n * n, 2);
        let mut out = vec![0.0f32; n * n];
        for threads in [1usize, 2] {
            let t = best_of(15, || {
                let st = [n as isize, 1];
                matmul(
                    black_box(&a),
                    &[n, n],
                    &st,
                    black_box(&b),
                    &[n, n],
                    &st,
                    &mut out,
                    threads,
                )
                .expect("matmul");
            });
            let gf = 2.0 * (n * n * n) as f64 / t / 1e9;
            println!(
                "sgemm {n}^3 threads={threads}: {:.3} ms, {gf:.1} GFLOP/s",
                t * 1e3
            );
        }
    }
    for case in &conv_cases() {
        let mut run = ConvRun::new(case);
        for &algo in case.algos {
            for threads in [1usize, 2] {
                let t = best_of(15, || run.run(case, algo, threads));
                let gf = 2.0 * run.fmas as f64 / t / 1e9;
                println!(
                    "conv1d {} {algo:?} threads={threads}: {:.3} ms, {gf:.1} GFLOP/s",
                    case.name,
                    t * 1e3
                );
            }
        }
    }
}

fn main() {
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        // Single-threaded here: no other thread can read the environment concurrently.
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    eprintln!("matrixmultiply pool: {} thread(s)", library_threads());
    if std::env::var_os("NATIVE_BENCH_SUMMARY").is_some() {
        summary();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    gemm(&mut c);
    convs(&mut c);
    c.final_summary();
}
