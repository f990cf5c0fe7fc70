//! f32 products on the `gemm` crate, where the CPU and the compile's ISA level allow
//! them.
//!
//! `matrixmultiply` is the library GEMM everywhere else. `gemm` 0.19 picks its kernels
//! from the CPU at run time (AVX-512 with its `x86-v4` feature, else AVX2 + FMA), and it
//! measured faster than matrixmultiply on the matrix shapes of W1, W5 and W7 at both
//! levels: on the AVX-512 Xeon 1.2–1.5× with its AVX-512 kernels, and with its AVX2
//! kernels (a build without `x86-v4`, `bench/gemm_avx2`) 99 against 84 GFLOP/s on
//! 1024³, 97 vs 85 on `64×256×256`, 101 vs 82 on `3200×64×64` — within 3% of MKL's
//! AVX2 kernels there (per-shape timings in `docs/performance.md`). It has no run-time
//! switch to cap its level, so it runs only where its own choice is the compile's
//! level: at `Avx512` in a build with its AVX-512 kernels (this crate's default
//! feature `gemm-avx512`), and at `Avx2` where it would pick its AVX2 kernels — on a
//! CPU without AVX-512F (an AVX2 machine, or one emulated), or in a build without
//! `gemm-avx512` (`bench/compare.sh --isa avx2` builds so, to measure on an AVX-512
//! machine what an AVX2 one runs). Elsewhere matrixmultiply, which `MMTEST_FEATURE`
//! can cap (`crate::isa`). The convolutions' GEMMs (im2col, pointwise)
//! keep matrixmultiply too, as W2 measured slower with `gemm`.
//!
//! Numerics: each output is a sum of `k` products in a blocked order (the same class of
//! reassociation as matrixmultiply's); results differ from it in the last bits only.

use super::{check_gemm, MatMut, MatRef};
use crate::isa::IsaLevel;
use crate::native::NativeError;

/// Whether f32 products at ISA level `isa` run here: where `gemm`'s own kernel choice
/// (AVX-512F if it was built with those kernels and the CPU has it, else AVX2 + FMA)
/// is that level.
pub(super) fn enabled(isa: IsaLevel) -> bool {
    gemm_level() == Some(isa.capped())
}

/// The level of the kernels `gemm` picks in this build on this CPU (`None` without
/// FMA, where it has scalar code only): it tests `avx512f` (when built with those
/// kernels), then `fma`, as here.
fn gemm_level() -> Option<IsaLevel> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if cfg!(feature = "gemm-avx512") && has!("avx512f") {
            return Some(IsaLevel::Avx512);
        }
        if has!("fma") {
            return Some(IsaLevel::Avx2);
        }
    }
    None
}

/// Whether a `rows × cols` product goes to `gemm`: matrix-shaped outputs only. For a
/// single row or column (matrix-vector products) `gemm` is less accurate than
/// matrixmultiply (its long sums are not blocked; bound checked in
/// `tests/native_kernels.rs`, errors in `docs/performance.md`), so those keep
/// matrixmultiply (they are memory-bound anyway).
pub(super) fn suits(rows: usize, cols: usize) -> bool {
    rows >= MIN_SIDE && cols >= MIN_SIDE
}

/// Smallest output side sent to `gemm`.
const MIN_SIDE: usize = 8;

/// `c ← a · b` (overwriting `c`) with `gemm`, one thread, any strides the views
/// describe.
///
/// # Errors
/// As [`super::Real::gemm`]: shapes that disagree, views outside their slices, an
/// aliasing output.
pub(super) fn sgemm(
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    c: MatMut<'_, f32>,
) -> Result<(), NativeError> {
    run(a, b, c, false)
}

/// `c ← c + a · b` with `gemm`, one thread: each output is `c + Σ`, one rounding of the
/// sum `gemm` accumulates onto what `c` held, where its sum over `k` is one block — the
/// same sum [`sgemm`] stores, so `c` preset to a bias gives the bits of `sgemm` then a
/// separate add (NaN payloads aside). Past one block, `gemm` adds each block's sum to
/// `c` in turn, a different rounding; callers keep to `k ≤` [`MAX_K_ONTO`].
///
/// # Errors
/// As [`sgemm`].
pub(super) fn sgemm_onto(
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    c: MatMut<'_, f32>,
) -> Result<(), NativeError> {
    run(a, b, c, true)
}

/// Longest `k` for which [`sgemm_onto`] is relied on to sum in one block. `gemm` 0.19
/// blocks an f32 `k` only above 512 (its `kernel_params`, and 1024 on its horizontal
/// path); 64 covers the products that use it (W5's projections) with a wide margin
/// should a later version block shorter sums.
pub(super) const MAX_K_ONTO: usize = 64;

/// `c ← a·b`, or `c ← c + a·b` with `read_dst`.
fn run(
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    c: MatMut<'_, f32>,
    read_dst: bool,
) -> Result<(), NativeError> {
    if !check_gemm(&a, &b, &c)? {
        return Ok(());
    }
    let s = |extent: usize, stride: isize| if extent <= 1 { 0 } else { stride };
    // SAFETY: `check_gemm` verified that every element (i, j) of each view (i < rows,
    // j < cols; strides of extent-1 axes zeroed) lies inside its slice, that no stride
    // is negative on an axis longer than 1, and that `c`'s elements are pairwise
    // distinct; `c` is an exclusive borrow, so it aliases neither `a` nor `b`. With
    // `read_dst = false` the destination is only written (`c ← 1·a·b`), and with k = 0
    // it is set to zeros; with `read_dst` it is read then written (`c ← 1·c + 1·a·b`),
    // the same elements.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            c.rows,
            c.cols,
            a.cols,
            c.data.as_mut_ptr(),
            s(c.cols, c.col_stride),
            s(c.rows, c.row_stride),
            read_dst,
            a.data.as_ptr(),
            s(a.cols, a.col_stride),
            s(a.rows, a.row_stride),
            b.data.as_ptr(),
            s(b.cols, b.col_stride),
            s(b.rows, b.row_stride),
            if read_dst { 1.0f32 } else { 0.0 },
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}
