//! `onde bench WORKLOAD`: the reference workloads of `../shared/bench/bench.py`, timed
//! on the JIT, one JSON object per line:
//! `{"workload":"W6","phase":"train","threads":1,"isa":"avx512","median_ms":…,"p10_ms":…,"p90_ms":…}`
//! (`isa`: the instruction-set level the kernels used, `--isa` capped by the CPU;
//! `library_gemm_isa`: the level `matrixmultiply`'s products may reach, which `--isa`
//! does not cap — see `onde_codegen::isa` — so a note on stderr says when it is above
//! `isa`;
//! `peak_rss_mb`: the process's peak resident memory so far, on Linux — run one
//! workload per process to attribute it).
//!
//! The workloads are defined once, in `docs/workloads.md`; here W1 (`train` = one
//! compiled step: forward, loss, backward, Adam update in place; `infer` = the eval
//! forward sharing the step's parameters), W6 (`train` = forward and gradients with
//! respect to a and b) and W7 (`infer`, with `gflops`).
//!
//! For profiling, `ONDE_BENCH_PHASE=infer` makes W1 skip its training phase; the
//! kernels W1 compiles to are printed by `onde dump --example mlp --train --stage fused`
//! (training step) and `onde dump --example mlp --stage fused` (inference).
//!
//! Timing follows bench.py: warm-up runs, then at least `min_iters` runs and at least
//! `target_s` seconds; median, 10th and 90th percentiles. Inputs are fixed seeded
//! pseudo-random data; compile time is reported separately (`compile_ms`).

use onde_codegen::{CompileOptions, Executable};
use onde_nn::{Array, DType, GraphBuilder, Tensor};
use std::time::Instant;

fn data(n: usize, seed: u64) -> Array {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Array::f32([n], v).unwrap_or_else(|_| Array::full(DType::F32, [n], 0.0))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

/// Times `f`: returns (median, p10, p90) in ms.
fn time(
    mut f: impl FnMut() -> Result<(), String>,
    min_iters: usize,
    target_s: f64,
) -> Result<(f64, f64, f64), String> {
    for _ in 0..3 {
        f()?;
    }
    let mut ts = Vec::new();
    let start = Instant::now();
    while ts.len() < min_iters || start.elapsed().as_secs_f64() < target_s {
        let t0 = Instant::now();
        f()?;
        ts.push(t0.elapsed().as_secs_f64() * 1e3);
        if ts.len() >= 2000 {
            break;
        }
    }
    ts.sort_by(f64::total_cmp);
    Ok((
        percentile(&ts, 50.0),
        percentile(&ts, 10.0),
        percentile(&ts, 90.0),
    ))
}

/// `onde bench --profile`: time every compiled step and print the table on stderr
/// after each phase (one clock read per step: the medians include it).
static PROFILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns per-step profiling on for the phases that follow.
pub fn set_profile(on: bool) {
    PROFILE.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn profiling() -> bool {
    PROFILE.load(std::sync::atomic::Ordering::Relaxed)
}

fn print_profile(what: &str, table: Option<String>) {
    if let Some(t) = table {
        eprintln!("profile of {what}:\n{t}");
    }
}

fn compile(g: &GraphBuilder, outs: &[&Tensor], opts: CompileOptions) -> Result<Executable, String> {
    let graph = g.build(outs).map_err(|e| e.to_string())?;
    Executable::compile(&graph, opts).map_err(|e| e.to_string())
}

/// Compiles `outs`, times runs on `feeds`, prints the phase's JSON line and, when
/// profiling, its per-step table.
fn timed_phase(
    g: &GraphBuilder,
    outs: &[&Tensor],
    feeds: &[(&str, &Array)],
    (workload, phase): (&str, &str),
    opts: CompileOptions,
    (min_iters, target_s): (usize, f64),
) -> Result<(), String> {
    let mut exe = compile(g, outs, opts)?;
    let ct = exe.compile_time().as_secs_f64() * 1e3;
    exe.set_profiling(profiling());
    let t = time(
        || exe.run_in_place(feeds).map_err(|e| e.to_string()),
        min_iters,
        target_s,
    )?;
    line(workload, phase, &opts, t, ct, "");
    print_profile(&format!("{workload} {phase}"), exe.profile());
    Ok(())
}

fn line(
    workload: &str,
    phase: &str,
    opts: &CompileOptions,
    t: (f64, f64, f64),
    compile_ms: f64,
    extra: &str,
) {
    use std::io::Write;
    let (threads, isa) = (opts.threads, opts.isa.capped());
    let library = onde_codegen::isa::library_gemm_level();
    // The process's peak resident memory so far (Linux `VmHWM`), as bench.py reports
    // PyTorch's; absent elsewhere.
    let rss = peak_rss_mb().map_or_else(String::new, |mb| format!(",\"peak_rss_mb\":{mb:.1}"));
    // A closed pipe (`onde bench W1 | head -1`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout(),
        "{{\"workload\":\"{workload}\",\"phase\":\"{phase}\",\"threads\":{threads},\"isa\":\"{isa}\",\"library_gemm_isa\":\"{library}\",\"median_ms\":{:.4},\"p10_ms\":{:.4},\"p90_ms\":{:.4},\"compile_ms\":{compile_ms:.3}{extra}{rss}}}",
        t.0, t.1, t.2
    );
}

/// Peak resident set size of this process in MB (`VmHWM` of `/proc/self/status`).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A classifier workload of bench.py (W1-W5, W5s): its compiled training step and eval
/// forward, built by `build`, timed on seeded inputs `x` of `x_shape` and labels
/// `y` in `0..classes`. Also reports `build_ms`: building the graph, differentiating,
/// optimising and compiling both (cold).
fn classifier(
    name: &str,
    build: fn(CompileOptions) -> onde_nn::Result<(onde_nn::TrainStep, onde_nn::Evaluator)>,
    x_shape: &[usize],
    classes: i64,
    opts: CompileOptions,
    (min_iters, target_s): (usize, f64),
) -> Result<(), String> {
    let e = |e: onde_nn::Error| e.to_string();
    let t0 = Instant::now();
    let (mut step, mut eval) = build(opts).map_err(e)?;
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    let ct = step.executable().compile_time().as_secs_f64() * 1e3;
    let n: usize = x_shape.iter().product();
    let xs = Array::f32(
        x_shape.to_vec(),
        data(n, 11).as_f32().unwrap_or(&[]).to_vec(),
    )
    .map_err(|e| e.to_string())?;
    let b = x_shape[0];
    let ys = Array::i64([b], (0..b as i64).map(|i| i * 7 % classes).collect())
        .map_err(|e| e.to_string())?;
    let feeds = [("x", &xs), ("y", &ys)];
    step.set_profiling(profiling());
    eval.set_profiling(profiling());
    let extra = format!(",\"build_ms\":{build_ms:.1}");
    if std::env::var("ONDE_BENCH_PHASE").as_deref() != Ok("infer") {
        let t = time(
            || step.step(&feeds).map(|_| ()).map_err(e),
            min_iters,
            target_s,
        )?;
        line(name, "train", &opts, t, ct, &extra);
        print_profile(&format!("{name} train"), step.profile());
    }
    let ct = eval.executable().compile_time().as_secs_f64() * 1e3;
    let xf = [("x", &xs)];
    let t = time(
        || eval.run_in_place(&step, &xf).map_err(e),
        min_iters,
        target_s,
    )?;
    line(name, "infer", &opts, t, ct, "");
    print_profile(&format!("{name} infer"), eval.profile());
    Ok(())
}

/// W4's LSTM streaming one frame at a time (batch 1): phase `stream`, the median time
/// per frame (the latency a live keyword spotter or VAD sees).
fn stream_latency(opts: CompileOptions, min_iters: usize, target_s: f64) -> Result<(), String> {
    let t0 = Instant::now();
    let mut s = onde_apps::examples::w4_stream().map_err(|e| e.to_string())?;
    let ct = t0.elapsed().as_secs_f64() * 1e3;
    let frame = Array::f32([1, 1, 40], data(40, 7).as_f32().unwrap_or(&[]).to_vec())
        .map_err(|e| e.to_string())?;
    let t = time(
        || s.push(&frame).map(|_| ()).map_err(|e| e.to_string()),
        min_iters,
        target_s,
    )?;
    line("W4", "stream", &opts, t, ct, "");
    Ok(())
}

fn w6(opts: CompileOptions, min_iters: usize, target_s: f64) -> Result<(), String> {
    let n = 1 << 20;
    let (g, y, grads) = w6_builder()?;
    let (xs, as_, bs) = (data(n, 1), data(n, 2), data(n, 3));
    let feeds = [("x", &xs), ("a", &as_), ("b", &bs)];
    let budget = (min_iters, target_s);
    let outs = [&y, &grads[0], &grads[1]];
    timed_phase(&g, &outs, &feeds, ("W6", "train"), opts, budget)?;
    timed_phase(&g, &[&y], &feeds, ("W6", "infer"), opts, budget)
}

fn w7(opts: CompileOptions, min_iters: usize, target_s: f64) -> Result<(), String> {
    let n = 1024;
    let g = GraphBuilder::new();
    let a = g.input("a", DType::F32, [n, n]);
    let b = g.input("b", DType::F32, [n, n]);
    let c = a.matmul(&b);
    let mut exe = compile(&g, &[&c], opts)?;
    let ct = exe.compile_time().as_secs_f64() * 1e3;
    let reshape = |arr: Array| {
        Array::f32([n, n], arr.as_f32().unwrap_or(&[]).to_vec()).map_err(|e| e.to_string())
    };
    let (av, bv) = (reshape(data(n * n, 4))?, reshape(data(n * n, 5))?);
    let feeds = [("a", &av), ("b", &bv)];
    let t = time(
        || exe.run_in_place(&feeds).map_err(|e| e.to_string()),
        min_iters,
        target_s,
    )?;
    let gflops = 2.0 * (n as f64).powi(3) / (t.0 / 1e3) / 1e9;
    line(
        "W7",
        "infer",
        &opts,
        t,
        ct,
        &format!(",\"gflops\":{gflops:.1}"),
    );
    Ok(())
}

/// Times a text IR file: every input gets seeded pseudo-random data (floats in
/// [-1, 1), integers 0, bools false).
fn file(path: &str, opts: CompileOptions, min_iters: usize, target_s: f64) -> Result<(), String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut g = onde_ir::parse_graph(&src).map_err(|e| format!("{path}: {e}"))?;
    onde_passes::optimize(&mut g).map_err(|e| e.to_string())?;
    let mut exe = Executable::compile(&g, opts).map_err(|e| e.to_string())?;
    let mut arrays = Vec::new();
    for (k, &v) in g.inputs().iter().enumerate() {
        let ty = g.value_type(v);
        let n = ty.shape.numel();
        let vals = data(n, k as u64 + 1).to_f64_vec();
        let a = if ty.dtype.is_float() {
            Array::from_f64(ty.dtype, ty.shape.clone(), &vals)
        } else {
            Ok(Array::full(ty.dtype, ty.shape.clone(), 0.0))
        }
        .map_err(|e| e.to_string())?;
        arrays.push((g.input_name(v).unwrap_or_default().to_string(), a));
    }
    let feeds: Vec<(&str, &Array)> = arrays.iter().map(|(n, a)| (n.as_str(), a)).collect();
    let ct = exe.compile_time().as_secs_f64() * 1e3;
    let t = time(
        || exe.run_in_place(&feeds).map_err(|e| e.to_string()),
        min_iters,
        target_s,
    )?;
    line(path, "run", &opts, t, ct, "");
    Ok(())
}

/// The `MMTEST_FEATURE` list that limits matrixmultiply to `isa`.
fn mmtest_features(isa: onde_codegen::IsaLevel) -> &'static str {
    match isa {
        onde_codegen::IsaLevel::Baseline => "sse2",
        onde_codegen::IsaLevel::Avx2 => "fma,avx2,avx,sse2",
        onde_codegen::IsaLevel::Avx512 => "avx512f,fma,avx2,avx,sse2",
    }
}

/// Runs workload `name` (or times a `.onde` text IR file).
pub fn run(
    name: &str,
    opts: CompileOptions,
    min_iters: usize,
    target_s: f64,
) -> Result<(), String> {
    let (isa, library) = (opts.isa.capped(), onde_codegen::isa::library_gemm_level());
    if library > isa {
        eprintln!(
            "note: --isa {isa} caps onde's kernels, but this build's matrixmultiply (the \
             library GEMM below avx512) may still use {library}; build with \
             MMTEST_FEATURE={} for a full cap (bench/compare.sh --isa does)",
            mmtest_features(isa)
        );
    }
    if name.ends_with(".onde") {
        return file(name, opts, min_iters, target_s);
    }
    match name {
        "W1" => classifier(
            "W1",
            onde_apps::examples::w1,
            &[64, 256],
            10,
            opts,
            (min_iters, target_s),
        ),
        "W2" => classifier(
            "W2",
            onde_apps::examples::w2,
            &[32, 1, 16000],
            12,
            opts,
            (min_iters, target_s),
        ),
        "W3" | "W4" => {
            classifier(
                name,
                if name == "W3" {
                    |o| onde_apps::examples::w34(o, false)
                } else {
                    |o| onde_apps::examples::w34(o, true)
                },
                &[32, 100, 40],
                12,
                opts,
                (min_iters, target_s),
            )?;
            if name == "W4" {
                stream_latency(opts, min_iters, target_s)?;
            }
            Ok(())
        }
        "W5" | "W5s" => classifier(
            name,
            if name == "W5" {
                |o| onde_apps::examples::w5(o, false)
            } else {
                |o| onde_apps::examples::w5(o, true)
            },
            &[32, 100, 64],
            12,
            opts,
            (min_iters, target_s),
        ),
        "W6" => w6(opts, min_iters, target_s),
        "W7" => w7(opts, min_iters, target_s),
        "F1" => f1(opts, min_iters, target_s),
        other => Err(format!(
            "unknown or not yet implemented workload {other:?}; available: W1, W2, W3, W4, W5, W5s, W6, W7, F1"
        )),
    }
}

/// F1, the front-end: the log-mel spectrogram (torchaudio's MelSpectrogram defaults:
/// n_fft 400, hop 200, 128 bands, then `ln(mel + 1e-6)`) of 32 one-second 16 kHz
/// clips; `infer` the forward, `train` forward and the gradient with respect to the
/// waveforms of `(logmel · r).sum()` (what a front-end inside a training step costs).
/// Its PyTorch counterpart is `bench/torchaudio_f1.py`.
fn f1(opts: CompileOptions, min_iters: usize, target_s: f64) -> Result<(), String> {
    use onde_signal::{log_mel_spectrogram, MelOpts};
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [32, 16000]);
    let lm = log_mel_spectrogram(&x, &MelOpts::new(16000), 1e-6);
    let r = g.input("r", DType::F32, lm.shape());
    let loss = (&lm * &r).sum_all();
    let gx = g.grad(&loss, &[&x]).map_err(|e| e.to_string())?.remove(0);
    let f32s = |shape: Vec<usize>, seed| {
        let n = shape.iter().product();
        let v = data(n, seed).as_f32().unwrap_or(&[]).to_vec();
        Array::f32(shape, v).map_err(|e| e.to_string())
    };
    let xs = f32s(vec![32, 16000], 1)?;
    let rs = f32s(lm.size(), 2)?;
    let feeds = [("x", &xs), ("r", &rs)];
    let budget = (min_iters, target_s);
    timed_phase(&g, &[&lm], &feeds, ("F1", "infer"), opts, budget)?;
    timed_phase(&g, &[&loss, &gx], &feeds, ("F1", "train"), opts, budget)
}

/// W6's builder, its output `y` and `[dy/da, dy/db]`.
fn w6_builder() -> Result<(GraphBuilder, Tensor, Vec<Tensor>), String> {
    let n = 1 << 20;
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [n]);
    let a = g.input("a", DType::F32, [n]);
    let b = g.input("b", DType::F32, [n]);
    let y = ((&x * &a + &b).tanh() * x.sigmoid() + &x * &x).sum_all();
    let grads = g.grad(&y, &[&a, &b]).map_err(|e| e.to_string())?;
    Ok((g, y, grads))
}

/// The W6 training graph (forward and gradients wrt a, b), for dumps.
pub fn w6_graph() -> Result<onde_ir::Graph, String> {
    let (g, y, grads) = w6_builder()?;
    g.build(&[&y, &grads[0], &grads[1]])
        .map_err(|e| e.to_string())
}
