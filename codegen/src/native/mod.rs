//! Native (Rust) kernels for the heavy ops: batched matrix product and convolution,
//! on raw slices with explicit shapes.
//!
//! DESIGN.md ("Code generation") measured a Cranelift-generated SGEMM at 52 GFLOP/s
//! against 162 for `matrixmultiply` 0.3 on 512³, so matrix products and the heavy part
//! of convolutions are not JIT-compiled: they run here, on `matrixmultiply`'s
//! `sgemm`/`dgemm` (packed, cache-blocked, runtime-dispatched AVX2/FMA/AVX-512
//! micro-kernels), and the executor calls these functions on its buffers.
//!
//! # Entry points
//! - [`matmul()`]: `[..batch_a, m, k] @ [..batch_b, k, n]` with NumPy batch
//!   broadcasting, exactly [`onde_ir::Op::MatMul`]. Operands are *strided views*
//!   (non-negative element strides): a transposed, broadcast (stride 0) or sliced
//!   operand costs no copy, the strides go straight to the GEMM's packing. Thin
//!   products (at most 4 outputs with `k ≥ 8`, or `k ≤ 4`) skip the library: see
//!   `matmul/thin.rs` (the convolution gradient is made of batches of them); so do f32
//!   products of long dot products (`k ≥ 1024`, both operands contiguous along `k`,
//!   ≤ 4096 outputs): see `matmul/long_dot.rs` (convolution kernel gradients).
//! - [`conv`]: N-d cross-correlation for N = 1, 2, exactly [`onde_ir::Op::Conv`]
//!   (stride, `(lo, hi)` padding, dilation, groups). [`conv_with`] forces an algorithm,
//!   [`choose_conv_algorithm`] tells which one [`conv`] picks:
//!   - [`ConvAlgorithm::Im2colGemm`] (dense or wide groups): per (batch, group), the
//!     receptive fields of a tile of output positions are copied into `scratch`
//!     (`[C_in/groups · ∏K, tile]`, the tile sized so the panel stays in L2) and one
//!     GEMM `W_g [C_out/groups, C_in/groups·∏K] @ cols` writes the output tile in
//!     place. A 1×1 convolution with stride 1 and no padding skips the copy: the input
//!     itself is the column matrix.
//!   - [`ConvAlgorithm::Direct`] (`C_in/groups ≤ 2` and either grouped, i.e.
//!     depthwise or narrow groups, or at most 4 output channels per group): each
//!     output row is `Σ_taps w · shifted input row`. The interior, where no tap reads
//!     padding, runs a register-blocked kernel (a block of outputs accumulates every
//!     tap before it is stored); the padded edges take a checked scalar loop. Its cost
//!     is `C_in/groups · ∏K` multiply-adds per output, so a depthwise convolution never
//!     pays for a dense one. The kernel is compiled three times, for the baseline
//!     x86-64 target (SSE2), with `avx2,fma` and with `avx512f`, and the best one the
//!     CPU supports (and [`crate::CompileOptions::isa`] allows) is picked at run time
//!     (blocks of 16, 32, 64 outputs). On AVX2 and AVX-512, the f32 stride-1 interior
//!     is written once over the tile engine's vector widths (8 accumulators of 8 or 16
//!     lanes, masked tail; bit-identical to the generic FMA kernel), which the
//!     compiler had left at ~12 GFMA/s.
//! - [`conv_then`]: [`conv`] that hands each block of finished output rows to a
//!   [`RowEpilogue`] (the executor's fused consumer kernel) on the thread that wrote
//!   it, while the block is still in cache.
//! - [`softmax`]: softmax along one axis in one pass per line ([`onde_ir::Op::Softmax`]),
//!   and [`softmax_backward`] its gradient, likewise ([`onde_ir::Op::SoftmaxBackward`]).
//! - [`Real`]: `f32` / `f64`, with [`Real::gemm`], a bounds-checked safe wrapper of the
//!   library GEMM on [`MatRef`]/[`MatMut`] strided views.
//!
//! Every function validates shapes, strides and slice lengths first and returns a
//! [`NativeError`] on a mismatch: bad input never panics and never reaches the
//! library's raw-pointer interface out of bounds.
//!
//! # Threads
//! `matrixmultiply` (feature `threading`) has one process-wide pool whose size is read
//! **once**, at the first GEMM, from the environment variable `MATMUL_NUM_THREADS`
//! (default: the number of physical cores, capped to 4); it cannot be set per call.
//! So the `threads` argument is honoured by splitting the work ourselves across
//! the workers of onde's pool (`crate::pool`; the calling thread takes the first share):
//! - [`matmul()`]: batch entries are dealt out in contiguous runs; with fewer batch
//!   entries than threads, the `m` rows of each product are split (a `m = 1` product
//!   stays on one thread).
//! - [`conv`]: `(batch, group)` output blocks are dealt out; with fewer blocks than
//!   threads, the output channels of a group are split (each share copies its own
//!   columns).
//! - Problems under about 2²⁰ multiply-adds run on the calling thread only: handing
//!   work to another thread costs microseconds even with the pool.
//!
//! For `threads` to be the *only* knob, the process must run with
//! `MATMUL_NUM_THREADS=1` (set it in the environment, or at the very start of `main`
//! before any thread is spawned); otherwise a big single GEMM inside a `threads = 1`
//! call still uses the library's pool, and `threads = 2` oversubscribes the cores.
//! [`library_threads`] reports what the library will use (or used).
//!
//! Results do not depend on the thread count, not even in the last bit: splitting
//! rows, batch entries or channels never changes the order in which one output
//! element's products are summed (the library's own `k` blocking depends only on `k`).
//! They can differ between machines, as the library and the direct kernel use FMA
//! only where the CPU has it.
//!
//! Measurements of these kernels (and what was tried) are in `docs/performance.md`.
#![deny(unsafe_code)]

mod conv;
pub mod matmul;
pub mod softmax;
pub mod softmax_backward;

pub use conv::{
    choose_conv_algorithm, conv, conv_capped, conv_then, conv_with, ConvAlgorithm, RowEpilogue,
};
pub use matmul::{matmul, matmul_capped, prepacked, MatMut, MatRef, Real};

/// Below this many multiply-adds, a call runs on the calling thread only.
pub(crate) const PARALLEL_MIN_FMAS: usize = 1 << 20;

/// Bad input to a native kernel (or a worker thread that panicked).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NativeError {
    /// Shapes, strides or parameters are inconsistent with each other.
    #[error("{op}: {reason}")]
    Shape {
        /// The kernel (`matmul`, `conv`, `gemm`).
        op: &'static str,
        /// What is wrong, in words.
        reason: String,
    },
    /// A slice does not hold as many elements as its shape says.
    #[error("{op}: {operand} has {actual} elements, its shape needs {expected}")]
    Length {
        /// The kernel.
        op: &'static str,
        /// Which operand (`a`, `b`, `out`, `x`, `w`).
        operand: &'static str,
        /// Elements required by the shape.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// A strided view reaches outside its slice (or uses a negative stride).
    #[error("{op}: the strided view of {operand} reaches element {reach}, the slice has {len}")]
    OutOfBounds {
        /// The kernel.
        op: &'static str,
        /// Which operand.
        operand: &'static str,
        /// Highest element index the view reaches (or `-1` for a negative reach).
        reach: i128,
        /// Slice length.
        len: usize,
    },
    /// A case this module does not implement (e.g. 3-d convolution).
    #[error("{op}: unsupported: {what}")]
    Unsupported {
        /// The kernel.
        op: &'static str,
        /// What is not supported.
        what: String,
    },
}

impl From<onde_runtime::LinesError> for NativeError {
    fn from(e: onde_runtime::LinesError) -> NativeError {
        if e.expected == usize::MAX {
            return NativeError::shape(e.op, "element count overflows usize");
        }
        NativeError::Length {
            op: e.op,
            operand: e.operand,
            expected: e.expected,
            actual: e.actual,
        }
    }
}

impl NativeError {
    pub(crate) fn shape(op: &'static str, reason: impl Into<String>) -> NativeError {
        NativeError::Shape {
            op,
            reason: reason.into(),
        }
    }
}

/// The number of threads `matrixmultiply`'s internal pool uses (or will use, if no
/// GEMM ran yet): `MATMUL_NUM_THREADS` if set and parseable (an unparseable value
/// means 1), else the number of CPUs [`std::thread::available_parallelism`] reports
/// (the library counts physical cores, which can be fewer), clamped to `1..=4`.
///
/// The library reads the variable once, at its first GEMM; changing it afterwards has
/// no effect, and this function would then report the new value.
pub fn library_threads() -> usize {
    let n = match std::env::var("MATMUL_NUM_THREADS") {
        Ok(s) if !s.is_empty() => s.trim().parse::<usize>().unwrap_or(1),
        Ok(_) | Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    n.clamp(1, 4)
}

/// Product of extents, `None` on overflow.
pub(crate) fn checked_numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Runs `f(state, item)` for every item, on `states.len()` threads when `parallel`:
/// items are dealt out in contiguous runs of nearly equal length, thread `t` using
/// `states[t]`; the calling thread takes the first run. Returns the first error.
pub(crate) fn for_each_split<I, S, F>(
    op: &'static str,
    items: impl Iterator<Item = I>,
    states: &mut [S],
    parallel: bool,
    f: F,
) -> Result<(), NativeError>
where
    I: Send,
    S: Send,
    F: Fn(&mut S, I) -> Result<(), NativeError> + Sync,
{
    let single = states.len() <= 1;
    let Some((first_state, _)) = states.split_first_mut() else {
        return Err(NativeError::shape(op, "no thread state (internal)"));
    };
    if !parallel || single {
        for item in items {
            f(first_state, item)?;
        }
        return Ok(());
    }
    let items: Vec<I> = items.collect();
    let workers = states.len().min(items.len()).max(1);
    let (base, extra) = (items.len() / workers, items.len() % workers);
    let mut runs: Vec<Vec<I>> = Vec::with_capacity(workers);
    let mut it = items.into_iter();
    for t in 0..workers {
        let len = base + usize::from(t < extra);
        runs.push(it.by_ref().take(len).collect());
    }
    let f = &f;
    let run_share = |run: Vec<I>, state: &mut S| -> Result<(), NativeError> {
        for item in run {
            f(state, item)?;
        }
        Ok(())
    };
    let mut results: Vec<Result<(), NativeError>> = (0..runs.len()).map(|_| Ok(())).collect();
    let mut shares = runs
        .into_iter()
        .zip(states.iter_mut())
        .zip(results.iter_mut());
    let Some(((mine, my_state), my_result)) = shares.next() else {
        return Ok(());
    };
    let run_share = &run_share;
    match crate::pool::pool() {
        Some(pool) => pool.in_place_scope(|scope| {
            for ((run, state), result) in shares {
                scope.spawn(move |_| *result = run_share(run, state));
            }
            *my_result = run_share(mine, my_state);
        }),
        None => std::thread::scope(|scope| {
            for ((run, state), result) in shares {
                scope.spawn(move || *result = run_share(run, state));
            }
            *my_result = run_share(mine, my_state);
        }),
    }
    results.into_iter().collect()
}

/// Deterministic test data in `[-1, 1)` shared by the native kernels' unit tests.
#[cfg(test)]
pub(super) fn test_values(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f64 / 1001.5) - 1.0)
        .collect()
}
