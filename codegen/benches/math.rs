//! The CLIF math emitters in a loop: ns/element of f32x4 `exp`, `tanh`, `sigmoid`
//! (and, for reference, `log`, `sin`, `pow` and a plain copy) over 1M elements, with
//! Cranelift `opt_level` `none` (what `onde` uses) and `speed`.
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID` on Linux,
//! wall time elsewhere), so other processes competing for the (shared, 2-core)
//! machine do not inflate them; ns/element = time / 2^20.
//!
//! `cargo bench -p onde-codegen --bench math -- --quick` (set `ONDE_MATH_DISASM=1` to
//! print the compiled loops).
#![allow(unsafe_code)]

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32X4, I64};
use cranelift_codegen::ir::{AbiParam, InstBuilder, MemFlagsData, Value};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use criterion::{BenchmarkId, Criterion, Throughput};
use onde_codegen::math;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
mod cpu_time {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

    /// CPU time consumed by the calling thread, in ns.
    pub fn now_ns() -> Option<u64> {
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `clock_gettime` (from the C library std links) writes one
        // `struct timespec`, which `Timespec` matches on 64-bit Linux, into `ts`.
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }
}

#[cfg(not(target_os = "linux"))]
mod cpu_time {
    pub fn now_ns() -> Option<u64> {
        None
    }
}

/// Runs `f` `iters` times and returns the thread CPU time (wall time if unavailable).
fn timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let (c0, w0) = (cpu_time::now_ns(), Instant::now());
    for _ in 0..iters {
        f();
    }
    match (c0, cpu_time::now_ns()) {
        (Some(a), Some(b)) => Duration::from_nanos(b - a),
        _ => w0.elapsed(),
    }
}

type Kernel = unsafe extern "C" fn(*const f32, *const f32, *mut f32, usize);
type Emit = fn(&mut FunctionBuilder, Value, Value) -> Value;

/// Compiles `dst[i..i+4] = emit(src[i..i+4], src2[i..i+4])` over `n` (a multiple of 4).
fn compile(module: &mut JITModule, name: &str, emit: Emit) -> Kernel {
    let mut ctx = module.make_context();
    for _ in 0..4 {
        ctx.func.signature.params.push(AbiParam::new(I64));
    }
    let id = module
        .declare_function(name, Linkage::Local, &ctx.func.signature)
        .unwrap();
    let config = module.isa().frontend_config();
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let (entry, header, body, exit) = (
            b.create_block(),
            b.create_block(),
            b.create_block(),
            b.create_block(),
        );
        b.append_block_params_for_function_params(entry);
        b.append_block_param(header, I64);
        b.switch_to_block(entry);
        let p = b.block_params(entry).to_vec();
        let zero = b.ins().iconst(I64, 0);
        b.ins().jump(header, &[zero.into()]);
        b.switch_to_block(header);
        let i = b.block_params(header)[0];
        let more = b.ins().icmp(IntCC::UnsignedLessThan, i, p[3]);
        b.ins().brif(more, body, &[], exit, &[]);
        b.switch_to_block(body);
        let off = b.ins().imul_imm_u(i, 4);
        let flags = MemFlagsData::trusted();
        let xa = b.ins().iadd(p[0], off);
        let x = b.ins().load(F32X4, flags, xa, 0);
        let ya = b.ins().iadd(p[1], off);
        let y = b.ins().load(F32X4, flags, ya, 0);
        let r = emit(&mut b, x, y);
        let da = b.ins().iadd(p[2], off);
        b.ins().store(flags, r, da, 0);
        let next = b.ins().iadd_imm_u(i, 4);
        b.ins().jump(header, &[next.into()]);
        b.switch_to_block(exit);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(config);
    }
    let disasm = std::env::var_os("ONDE_MATH_DISASM").is_some();
    ctx.set_disasm(disasm);
    module.define_function(id, &mut ctx).unwrap();
    if disasm {
        if let Some(vcode) = ctx.compiled_code().and_then(|c| c.vcode.as_ref()) {
            eprintln!("== {name}\n{vcode}");
        }
    }
    module.finalize_definitions().unwrap();
    let code = module.get_finalized_function(id);
    // SAFETY: `code` is the finalised function just built with four pointer-sized
    // integer parameters and no return value in the host's default (C) calling
    // convention; the module owning it lives until the end of `bench`.
    unsafe { std::mem::transmute::<*const u8, Kernel>(code) }
}

fn module(opt: &str) -> JITModule {
    let mut flags = settings::builder();
    flags.set("opt_level", opt).unwrap();
    flags.set("is_pic", "false").unwrap();
    flags.set("use_colocated_libcalls", "false").unwrap();
    let isa = cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap();
    JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()))
}

fn bench(c: &mut Criterion) {
    const N: usize = 1 << 20;
    let mut s = 0x2545_f491_u32;
    let mut next = move || {
        s = s.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
        (s >> 8) as f32 / (1u32 << 24) as f32
    };
    // Inputs in [-10, 10) (exp, tanh, sigmoid, sin), bases in (0, 4), exponents [-4, 4).
    let x: Vec<f32> = (0..N).map(|_| next() * 20.0 - 10.0).collect();
    let xp: Vec<f32> = (0..N).map(|_| next() * 4.0 + 1e-3).collect();
    let y: Vec<f32> = (0..N).map(|_| next() * 8.0 - 4.0).collect();
    let mut out = vec![0.0f32; N];
    let ops: [(&str, Emit, bool); 7] = [
        ("copy", |_, x, _| x, false),
        ("exp", |b, x, _| math::exp(b, x), false),
        ("tanh", |b, x, _| math::tanh(b, x), false),
        ("sigmoid", |b, x, _| math::sigmoid(b, x), false),
        ("log", |b, x, _| math::log(b, x), true),
        ("sin", |b, x, _| math::sin(b, x), false),
        ("pow", math::pow, true),
    ];
    let mut group = c.benchmark_group("f32x4_1M");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(2));
    let mut modules = Vec::new();
    for opt in ["none", "speed"] {
        let mut m = module(opt);
        for (name, emit, positive) in ops {
            let k = compile(&mut m, &format!("{name}_{opt}"), emit);
            let src = if positive { &xp } else { &x };
            group.bench_function(BenchmarkId::new(name, opt), |bch| {
                bch.iter_custom(|iters| {
                    timed(iters, || {
                        // SAFETY: all three buffers hold N elements, N is a multiple
                        // of the 4 lanes the kernel processes per iteration.
                        unsafe { k(src.as_ptr(), y.as_ptr(), out.as_mut_ptr(), black_box(N)) };
                        black_box(&out);
                    })
                });
            });
        }
        // Compiled code lives as long as its module: keep it to the end.
        modules.push(m);
    }
    group.finish();
    drop(modules);
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
