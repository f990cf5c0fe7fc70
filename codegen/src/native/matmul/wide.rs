//! f32 products on the `gemm` crate's AVX-512 kernels, where the CPU and the compile's
//! ISA level allow them.
//!
//! `matrixmultiply` (the library GEMM everywhere else) has a 16×16 AVX-512 f32 kernel;
//! `gemm` 0.19 with its `x86-v4` feature (AVX-512 micro-kernels picked at run time, so
//! no `target-cpu` flag) measured faster on the matrix shapes of W1, W5 and W7
//! (per-shape timings in `docs/performance.md`). Without AVX-512 `gemm` falls back to
//! AVX2 kernels that measured slower than matrixmultiply's, so below that level the
//! executor keeps matrixmultiply; the convolutions' GEMMs (im2col, pointwise) keep it
//! too, as W2 measured slower with `gemm`.
//!
//! Numerics: each output is a sum of `k` products in a blocked order (the same class of
//! reassociation as matrixmultiply's); results differ from it in the last bits only.

use super::{check_gemm, MatMut, MatRef};
use crate::isa::IsaLevel;
use crate::native::NativeError;

/// Whether f32 products at ISA level `isa` run here.
pub(super) fn enabled(isa: IsaLevel) -> bool {
    isa.capped() == IsaLevel::Avx512
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
    if !check_gemm(&a, &b, &c)? {
        return Ok(());
    }
    let s = |extent: usize, stride: isize| if extent <= 1 { 0 } else { stride };
    // SAFETY: `check_gemm` verified that every element (i, j) of each view (i < rows,
    // j < cols; strides of extent-1 axes zeroed) lies inside its slice, that no stride
    // is negative on an axis longer than 1, and that `c`'s elements are pairwise
    // distinct; `c` is an exclusive borrow, so it aliases neither `a` nor `b`. With
    // `read_dst = false` the destination is only written (`c ← 1·a·b`), and with k = 0
    // it is set to zeros.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            c.rows,
            c.cols,
            a.cols,
            c.data.as_mut_ptr(),
            s(c.cols, c.col_stride),
            s(c.rows, c.row_stride),
            false,
            a.data.as_ptr(),
            s(a.cols, a.col_stride),
            s(a.rows, a.row_stride),
            b.data.as_ptr(),
            s(b.cols, b.col_stride),
            s(b.rows, b.row_stride),
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}
