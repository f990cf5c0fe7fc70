//! "No allocation per run after the first" (the compile issue's memory-planning
//! requirement): a counting global allocator watches `run_in_place` once an
//! executable has run, with Cranelift kernels, AVX-512 engine kernels (one and two
//! axes, row and full reductions), a matrix product, the native softmax and a column
//! sum. onde's own code allocates
//! nothing; the one exception is `matrixmultiply`, which allocates its packing buffer
//! inside every `sgemm` call (`make_packing_buffer`, a library property): one
//! allocation per library product per run, none when the product runs on the
//! prepacked kernel (versioned runs, AVX2 and AVX-512: at the baseline level the
//! library product allocates in versioned runs too). Checked at every ISA level the CPU has. One
//! thread: handing shares to the worker pool allocates the pool's job records.
#![allow(unsafe_code)]

use onde_codegen::{CompileOptions, Executable, IsaLevel};
use onde_ir::{parse_graph, Array};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Allocations made by this thread: the test harness allocates on its own threads
    /// (reporting finished tests) while a test counts.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

/// Allocations made so far by the calling thread.
fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

fn count() {
    // `try_with`: a thread being torn down may still allocate.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by 5 runs of `exe`, after a first run.
fn steady_allocs(exe: &mut Executable, feeds: &[(&str, &Array)]) -> usize {
    exe.run_in_place(feeds).unwrap();
    let before = allocs();
    for _ in 0..5 {
        exe.run_in_place(feeds).unwrap();
    }
    allocs() - before
}

fn data(n: usize, s: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * s % 101) as f32 - 50.0) * 0.02)
        .collect()
}

#[test]
fn runs_after_the_first_allocate_nothing() {
    let src = r#"graph {
  %0: f32[64,256] = input "x"
  %1: f32[256,256] = input "w"
  %2: f32[256] = input "b"
  %3: f32[64,256] = matmul %0, %1
  %4: f32[64,256] = expand %2 shape=[64,256]
  %5: f32[64,256] = add %3, %4
  %6: f32[64,256] = sigmoid %5
  %7: f32[64,256] = mul %6, %6
  %8: f32[64] = reduce_sum %7 axes=[1] keepdim=false
  %9: f32[16384] = reshape %6 shape=[16384]
  %10: f32[16384] = tanh %9
  %11: f32[] = reduce_sum %10 axes=[0] keepdim=false
  %12: f32[64,256] = mul %3, %3
  outputs %8, %11, %12
}"#;
    let g = parse_graph(src).unwrap();
    let x = Array::f32([64, 256], data(64 * 256, 7)).unwrap();
    let w = Array::f32([256, 256], data(256 * 256, 3)).unwrap();
    let b = Array::f32([256], data(256, 5)).unwrap();
    let feeds = [("x", &x), ("w", &w), ("b", &b)];
    // Every level this CPU has: at the baseline there is no prepacked kernel, and the
    // library product allocates in versioned runs too.
    for isa in IsaLevel::available() {
        let opts = CompileOptions {
            isa,
            ..CompileOptions::default()
        };
        let mut exe = Executable::compile(&g, opts).unwrap();
        let plain = steady_allocs(&mut exe, &feeds);
        exe.run_in_place_versioned(&feeds, 1, &["w"]).unwrap();
        let before = allocs();
        for _ in 0..5 {
            exe.run_in_place_versioned(&feeds, 1, &["w"]).unwrap();
        }
        let versioned = allocs() - before;
        let library_products = exe.dump_fused().matches(": matmul ").count();
        assert_eq!(library_products, 1);
        let prepacked = isa >= IsaLevel::Avx2 && onde_codegen::native::prepacked::available();
        let expected_versioned = if prepacked { 0 } else { 5 * library_products };
        assert_eq!(
            (plain, versioned),
            (5 * library_products, expected_versioned),
            "allocations in 5 runs at ISA level {isa}\n{}",
            exe.dump_fused()
        );
    }
}

#[test]
fn convolution_runs_after_the_first_allocate_nothing() {
    // A depthwise convolution (the direct kernel) with its bias + ReLU consumer run as
    // its epilogue, one thread: no library GEMM, so nothing may allocate.
    let src = r#"graph {
  %0: f32[4,8,600] = input "x"
  %1: f32[8,1,9] = input "w"
  %2: f32[8] = input "b"
  %3: f32[4,8,600] = conv %0, %1 stride=[1] padding=[(4,4)] dilation=[1] groups=8
  %4: f32[8,1] = reshape %2 shape=[8,1]
  %5: f32[4,8,600] = expand %4 shape=[4,8,600]
  %6: f32[4,8,600] = add %3, %5
  %7: f32[4,8,600] = relu %6
  outputs %7
}"#;
    let g = parse_graph(src).unwrap();
    let x = Array::f32([4, 8, 600], data(4 * 8 * 600, 7)).unwrap();
    let w = Array::f32([8, 1, 9], data(72, 3)).unwrap();
    let b = Array::f32([8], data(8, 5)).unwrap();
    let feeds = [("x", &x), ("w", &w), ("b", &b)];
    for isa in IsaLevel::available() {
        let opts = CompileOptions {
            isa,
            ..CompileOptions::default()
        };
        let mut exe = Executable::compile(&g, opts).unwrap();
        assert!(
            exe.dump_fused().contains("// epilogue: step"),
            "{}",
            exe.dump_fused()
        );
        assert_eq!(steady_allocs(&mut exe, &feeds), 0, "at ISA level {isa}");
    }
}

#[test]
fn softmax_and_column_sums_allocate_nothing_after_the_first_run() {
    // The native softmax (vectors, or the f64 definition at the baseline and for f64)
    // and a plain column sum, one thread.
    let src = r#"graph {
  %0: f32[6,40,70] = input "x"
  %1: f32[6,40,70] = softmax %0 axis=2
  %2: f32[6,40,70] = softmax %0 axis=1
  %3: f32[70] = reduce_sum %1 axes=[0,1] keepdim=false
  %4: f64[6,40] = input "y"
  %5: f64[6,40] = softmax %4 axis=1
  outputs %2, %3, %5
}"#;
    let g = parse_graph(src).unwrap();
    let x = Array::f32([6, 40, 70], data(6 * 40 * 70, 7)).unwrap();
    let y = Array::f64(
        [6, 40],
        data(240, 3).iter().map(|&v| f64::from(v)).collect(),
    )
    .unwrap();
    let feeds = [("x", &x), ("y", &y)];
    for isa in IsaLevel::available() {
        let opts = CompileOptions {
            isa,
            ..CompileOptions::default()
        };
        let mut exe = Executable::compile(&g, opts).unwrap();
        let n = steady_allocs(&mut exe, &feeds);
        assert_eq!(n, 0, "at ISA level {isa}\n{}", exe.dump_fused());
    }
}
