//! Matrix products: the batched, broadcast, strided [`matmul`] entry point and the
//! kernels it picks per product (the choice depends on the shape and strides only):
//! - `thin.rs`: thin products (a few outputs, or a tiny `k`), plain loops;
//! - `long_dot.rs`: f32 long dot products (`k ≥ 1024`, both operands contiguous
//!   along `k`), SIMD on the engine's widths;
//! - `one_panel.rs`: f32 products whose right operand is one register panel (`n ≤
//!   112`, short `k`: attention's products over short sequences);
//! - [`prepacked`]: f32 products against weights packed once (versioned runs of an
//!   executable), with the bias + activation epilogue in registers;
//! - otherwise a library GEMM: `gemm`'s AVX-512 kernels for f32 where the CPU and the
//!   ISA level allow (`wide.rs`, measured faster there), else `matrixmultiply`.
//!
//! Fused entry points beside it: a product then a softmax along its rows, softmax's
//! backward, the addition of another tensor or the sums of its columns, on the
//! one-panel kernel (`then_rows.rs`, its row epilogues in `rows.rs`), and a product plus a bias broadcast along rows ([`matmul_bias_capped`]:
//! added as the one-panel kernel stores, or the product added onto the preset bias
//! by the library GEMM).
//!
//! [`Real::gemm`] is the one place that calls the library's raw-pointer interface; it
//! checks that every element the views address lies inside their slices and that the
//! output view does not alias itself, so the `unsafe` call is sound for any input.

use super::{checked_numel, for_each_split, NativeError, PARALLEL_MIN_FMAS};

mod long_dot;
pub mod one_panel;
pub mod prepacked;
mod rows;
mod then_rows;
mod thin;
mod transpose;
mod wide;
pub use then_rows::{matmul_rows_capped, RowsAfter};

use crate::isa::IsaLevel;
use std::fmt::Debug;
use std::ops::{Add, Mul};

mod sealed {
    /// Only `f32` and `f64` implement [`super::Real`].
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A read-only strided matrix view: element `(i, j)` is
/// `data[i · row_stride + j · col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    /// The elements; the view starts at `data[0]`.
    pub data: &'a [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Elements between consecutive rows (0 broadcasts a row).
    pub row_stride: isize,
    /// Elements between consecutive columns (0 broadcasts a column).
    pub col_stride: isize,
}

/// A mutable strided matrix view (strides must not make two elements alias).
#[derive(Debug)]
pub struct MatMut<'a, T> {
    /// The elements; the view starts at `data[0]`.
    pub data: &'a mut [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Elements between consecutive rows.
    pub row_stride: isize,
    /// Elements between consecutive columns.
    pub col_stride: isize,
}

/// The float types the native kernels support: `f32` and `f64` (sealed).
pub trait Real:
    Copy
    + Send
    + Sync
    + Default
    + PartialEq
    + PartialOrd
    + Debug
    + Add<Output = Self>
    + Mul<Output = Self>
    + 'static
    + sealed::Sealed
{
    /// Zero.
    const ZERO: Self;

    /// `self · a + b` with one rounding (only fast where the CPU has FMA and the caller
    /// was compiled with it enabled; otherwise a library call).
    fn mul_add(self, a: Self, b: Self) -> Self;

    /// The slice as `f32` when `Self` is `f32` (for kernels written for f32 only).
    fn as_f32(s: &[Self]) -> Option<&[f32]>;

    /// The slice as `f32` when `Self` is `f32`, mutably.
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;

    /// `c ← a · b` (overwriting `c`, which need not be initialised) with the library
    /// GEMM (`sgemm` / `dgemm`), for any strides the views describe.
    ///
    /// # Errors
    /// [`NativeError::Shape`] if the dimensions disagree or `c`'s strides alias two of
    /// its elements; [`NativeError::OutOfBounds`] if a view reaches outside its slice
    /// or has a negative stride on an axis longer than 1.
    fn gemm(
        a: MatRef<'_, Self>,
        b: MatRef<'_, Self>,
        c: MatMut<'_, Self>,
    ) -> Result<(), NativeError>;
}

/// The highest element index a `rows × cols` view reaches, checked against `len`.
/// Strides of axes of extent ≤ 1 are never multiplied by a non-zero index and are
/// ignored; a negative stride elsewhere would reach before `data[0]`.
pub(super) fn check_view(
    op: &'static str,
    operand: &'static str,
    len: usize,
    dims: &[usize],
    strides: &[isize],
) -> Result<(), NativeError> {
    if dims.contains(&0) {
        return Ok(());
    }
    let mut reach: i128 = 0;
    for (&d, &s) in dims.iter().zip(strides) {
        if d <= 1 {
            continue;
        }
        if s < 0 {
            return Err(NativeError::OutOfBounds {
                op,
                operand,
                reach: -1,
                len,
            });
        }
        reach += (d as i128 - 1) * s as i128;
    }
    if reach >= len as i128 {
        return Err(NativeError::OutOfBounds {
            op,
            operand,
            reach,
            len,
        });
    }
    Ok(())
}

/// Checks `c = a · b` views; returns `false` if there is nothing to compute.
pub(super) fn check_gemm<T>(
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &MatMut<'_, T>,
) -> Result<bool, NativeError> {
    const OP: &str = "gemm";
    if a.cols != b.rows || c.rows != a.rows || c.cols != b.cols {
        return Err(NativeError::shape(
            OP,
            format!(
                "[{}, {}] @ [{}, {}] cannot be written to [{}, {}]",
                a.rows, a.cols, b.rows, b.cols, c.rows, c.cols
            ),
        ));
    }
    check_view(
        OP,
        "a",
        a.data.len(),
        &[a.rows, a.cols],
        &[a.row_stride, a.col_stride],
    )?;
    check_view(
        OP,
        "b",
        b.data.len(),
        &[b.rows, b.cols],
        &[b.row_stride, b.col_stride],
    )?;
    check_view(
        OP,
        "c",
        c.data.len(),
        &[c.rows, c.cols],
        &[c.row_stride, c.col_stride],
    )?;
    if c.rows == 0 || c.cols == 0 {
        return Ok(false);
    }
    // Sufficient condition for distinct elements: one axis is "inner" (stride ≥ 1) and
    // the other steps over a whole inner line.
    let (m, n) = (c.rows as i128, c.cols as i128);
    let (rs, cs) = (c.row_stride as i128, c.col_stride as i128);
    let distinct = match (m > 1, n > 1) {
        (false, false) => true,
        (true, false) => rs >= 1,
        (false, true) => cs >= 1,
        (true, true) => (cs >= 1 && rs >= cs * n) || (rs >= 1 && cs >= rs * m),
    };
    if !distinct {
        return Err(NativeError::shape(
            OP,
            format!("output strides ({rs}, {cs}) alias elements of a [{m}, {n}] matrix"),
        ));
    }
    Ok(true)
}

/// Strides of extent-1 axes replaced by 0 (harmless, and keeps the library from ever
/// forming an out-of-range pointer from a meaningless stride).
fn norm_stride(extent: usize, stride: isize) -> isize {
    if extent <= 1 {
        0
    } else {
        stride
    }
}

macro_rules! impl_real {
    (@f32 true, $s:ident) => {
        Some($s)
    };
    (@f32 false, $s:ident) => {{
        let _ = $s;
        None
    }};
    ($t:ty, $gemm:path, $is_f32:tt) => {
        impl Real for $t {
            const ZERO: $t = 0.0;

            #[inline(always)]
            fn mul_add(self, a: $t, b: $t) -> $t {
                <$t>::mul_add(self, a, b)
            }

            #[inline(always)]
            fn as_f32(s: &[$t]) -> Option<&[f32]> {
                impl_real!(@f32 $is_f32, s)
            }

            #[inline(always)]
            fn as_f32_mut(s: &mut [$t]) -> Option<&mut [f32]> {
                impl_real!(@f32 $is_f32, s)
            }

            #[allow(unsafe_code)]
            fn gemm(
                a: MatRef<'_, $t>,
                b: MatRef<'_, $t>,
                c: MatMut<'_, $t>,
            ) -> Result<(), NativeError> {
                if !check_gemm(&a, &b, &c)? {
                    return Ok(());
                }
                // SAFETY: `check_gemm` verified that every element (i, j) of each view
                // (i < rows, j < cols, strides of extent-1 axes zeroed below) lies in
                // its slice, that no stride is negative on an axis longer than 1, and
                // that `c`'s elements are pairwise distinct; `c` is an exclusive borrow,
                // so it aliases neither `a` nor `b`. With k = 0 the library only writes
                // zeros to `c` (β = 0: `c` is never read).
                unsafe {
                    $gemm(
                        a.rows,
                        a.cols,
                        b.cols,
                        1.0,
                        a.data.as_ptr(),
                        norm_stride(a.rows, a.row_stride),
                        norm_stride(a.cols, a.col_stride),
                        b.data.as_ptr(),
                        norm_stride(b.rows, b.row_stride),
                        norm_stride(b.cols, b.col_stride),
                        0.0,
                        c.data.as_mut_ptr(),
                        norm_stride(c.rows, c.row_stride),
                        norm_stride(c.cols, c.col_stride),
                    );
                }
                Ok(())
            }
        }
    };
}

impl_real!(f32, matrixmultiply::sgemm, true);
impl_real!(f64, matrixmultiply::dgemm, false);

/// `v` as an `f32` view when `T` is `f32` (the f32-only kernels' entry), else `None`.
fn f32_ref<'a, T: Real>(v: &MatRef<'a, T>) -> Option<MatRef<'a, f32>> {
    Some(MatRef {
        data: T::as_f32(v.data)?,
        rows: v.rows,
        cols: v.cols,
        row_stride: v.row_stride,
        col_stride: v.col_stride,
    })
}

/// `v` as a mutable `f32` view when `T` is `f32`, else `None`.
fn f32_mut<'s, T: Real>(v: &'s mut MatMut<'_, T>) -> Option<MatMut<'s, f32>> {
    let (rows, cols, row_stride, col_stride) = (v.rows, v.cols, v.row_stride, v.col_stride);
    Some(MatMut {
        data: T::as_f32_mut(&mut *v.data)?,
        rows,
        cols,
        row_stride,
        col_stride,
    })
}

/// `c ← a · b` on the library GEMM for ISA level `isa`: `gemm`'s kernels for f32 where
/// its own choice is that level (`wide.rs`), else [`Real::gemm`] (`matrixmultiply`).
pub(crate) fn gemm_at<T: Real>(
    isa: IsaLevel,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    mut c: MatMut<'_, T>,
) -> Result<(), NativeError> {
    if wide::enabled(isa) && wide::suits(c.rows, c.cols) {
        if let (Some(av), Some(bv), Some(cv)) = (f32_ref(&a), f32_ref(&b), f32_mut(&mut c)) {
            return wide::sgemm(av, bv, cv);
        }
    }
    T::gemm(a, b, c)
}

/// Whether f32 products at ISA level `isa` that no kernel of ours takes run on the
/// `gemm` crate (its own kernel choice is that level in this build on this CPU; see
/// `wide.rs`), rather than on `matrixmultiply`.
pub fn gemm_crate_at(isa: IsaLevel) -> bool {
    wide::enabled(isa)
}

/// `out = a · b + bias` (bias broadcast along rows) for a 2-D f32 product, one
/// thread, where [`matmul_capped`] would send it to the one-panel kernel or the
/// library GEMM: the one-panel kernel adds the bias to each accumulator as it stores
/// it; for the library, the bias is written to `out`'s rows first and `gemm` adds the
/// product onto them. Either way the product is never stored on its own and no second
/// pass adds the bias, and each output is bit for bit `matmul_capped`'s product plus
/// the bias in one rounding (for the library: `k` within one `gemm` block, see
/// `wide::sgemm_onto`; NaN payloads aside). Returns `Ok(false)`, with nothing written,
/// where it does not apply: another kernel would take the product (`k` above
/// `wide::MAX_K_ONTO`, a thin or short product, an ISA level `gemm` does not run at).
///
/// `a` is `[m, k]`, `b` `[k, n]` (shapes and element strides into their slices, as
/// [`matmul`]), `bias` holds `n` values, `out` is contiguous `[m, n]`.
///
/// # Errors
/// [`NativeError`] if the shapes disagree, a view reaches outside its slice, or `bias`
/// or `out` is too short.
#[allow(clippy::too_many_arguments)] // The executor's calling convention.
pub fn matmul_bias_capped(
    isa: IsaLevel,
    a: &[f32],
    a_shape: [usize; 2],
    a_strides: [isize; 2],
    b: &[f32],
    b_shape: [usize; 2],
    b_strides: [isize; 2],
    bias: &[f32],
    out: &mut [f32],
) -> Result<bool, NativeError> {
    const OP: &str = "matmul";
    let ([m, k], [k2, n]) = (a_shape, b_shape);
    if k != k2 {
        return Err(NativeError::shape(
            OP,
            format!("inner dimensions differ: {a_shape:?} @ {b_shape:?} ({k} vs {k2})"),
        ));
    }
    if bias.len() < n || m.checked_mul(n) != Some(out.len()) {
        return Err(NativeError::shape(
            OP,
            format!(
                "bias of {} and output of {} values for a [{m}, {n}] product",
                bias.len(),
                out.len()
            ),
        ));
    }
    let av = MatRef {
        data: a,
        rows: m,
        cols: k,
        row_stride: a_strides[0],
        col_stride: a_strides[1],
    };
    let bv = MatRef {
        data: b,
        rows: k,
        cols: n,
        row_stride: b_strides[0],
        col_stride: b_strides[1],
    };
    // Where `matmul_capped` sends a product: the same tests in the same order. The
    // long-dot and thin kernels take no bias; the one-panel kernel adds it as it
    // stores; the library (what is left) adds the product onto the preset bias.
    if long_dot::takes(&av, &bv, m, isa) || thin::takes(&av, &bv, m) {
        return Ok(false);
    }
    let mut cv = MatMut {
        data: &mut *out,
        rows: m,
        cols: n,
        row_stride: n as isize,
        col_stride: 1,
    };
    if one_panel::try_product_rows(&av, &bv, &mut cv, one_panel::Rows::Bias(bias), isa)? {
        return Ok(true);
    }
    if !(wide::enabled(isa) && wide::suits(m, n) && (1..=wide::MAX_K_ONTO).contains(&k)) {
        return Ok(false);
    }
    // The views are checked before `out` is touched: an error leaves it as it was.
    if !check_gemm(&av, &bv, &cv)? {
        return Ok(true);
    }
    for row in cv.data.chunks_exact_mut(n) {
        row.copy_from_slice(&bias[..n]);
    }
    wide::sgemm_onto(av, bv, cv)?;
    Ok(true)
}

/// An operand split into batch extents, batch strides, `[rows, cols]` and their
/// strides.
type Split<'s> = (&'s [usize], &'s [isize], [usize; 2], [isize; 2]);

/// Splits a `[..batch, r, c]` operand into its batch part and `(r, c)`.
fn split_matrix<'s>(
    operand: &'static str,
    shape: &'s [usize],
    strides: &'s [isize],
) -> Result<Split<'s>, NativeError> {
    if strides.len() != shape.len() {
        return Err(NativeError::shape(
            "matmul",
            format!(
                "{operand} has {} strides for {} axes",
                strides.len(),
                shape.len()
            ),
        ));
    }
    match (shape, strides) {
        ([batch @ .., r, c], [bs @ .., rs, cs]) => Ok((batch, bs, [*r, *c], [*rs, *cs])),
        ([] | [_], _) | (_, [] | [_]) => Err(NativeError::shape(
            "matmul",
            format!("{operand} has shape {shape:?}, rank >= 2 needed"),
        )),
    }
}

/// Element offset of batch entry `e` (row-major over `batch`) in an operand whose
/// batch strides are `strides` (as [`batch_strides`] gives them; those of axes longer
/// than 1 non-negative, as `check_view` ensures).
fn batch_offset(batch: &[usize], mut e: usize, strides: &[isize]) -> usize {
    let mut off = 0usize;
    for (&d, &s) in batch.iter().zip(strides).rev() {
        off += (e % d) * s.unsigned_abs();
        e /= d;
    }
    off
}

/// For each result batch axis, the stride of an operand's batch axis aligned to it on
/// the right (0 where the operand has no such axis or broadcasts it from extent 1).
fn batch_strides(batch: &[usize], own: &[usize], own_strides: &[isize]) -> Vec<isize> {
    let lead = batch.len() - own.len();
    (0..batch.len())
        .map(|i| {
            if i < lead || own[i - lead] == 1 {
                0
            } else {
                own_strides[i - lead]
            }
        })
        .collect()
}

/// Batched matrix product with NumPy batch broadcasting, like
/// [`onde_ir::Op::MatMul`]: `a` is `[..batch_a, m, k]`, `b` is `[..batch_b, k, n]`,
/// each given by its shape and *element* strides into its slice (so transposed,
/// broadcast (stride 0) and sliced views need no copy; pass a sub-slice starting at the
/// view's first element). `out` is contiguous `[..broadcast(batch_a, batch_b), m, n]`.
///
/// `threads` (0 counts as 1) threads are used when the product has at least about
/// 2²⁰ multiply-adds: batch entries are split across them, or the rows of each product
/// when there are fewer batch entries than threads. The result does not depend on
/// `threads` (see the [module doc](super) for the library's own pool).
///
/// # Errors
/// [`NativeError`] if ranks are below 2, stride counts differ from ranks, inner
/// dimensions differ, batch shapes do not broadcast, a view reaches outside its slice
/// (or uses a negative stride), or `out` does not have the result's element count.
#[allow(clippy::too_many_arguments)] // The executor's calling convention.
pub fn matmul<T: Real>(
    a: &[T],
    a_shape: &[usize],
    a_strides: &[isize],
    b: &[T],
    b_shape: &[usize],
    b_strides: &[isize],
    out: &mut [T],
    threads: usize,
) -> Result<(), NativeError> {
    matmul_capped(
        IsaLevel::Avx512,
        a,
        a_shape,
        a_strides,
        b,
        b_shape,
        b_strides,
        out,
        threads,
    )
}

/// [`matmul`] with its kernels' instruction set capped at `isa` (the executor's
/// [`crate::CompileOptions::isa`]): below AVX-512 the long-dot kernel is not used.
///
/// # Errors
/// As [`matmul`].
#[allow(clippy::too_many_arguments)] // The executor's calling convention.
pub fn matmul_capped<T: Real>(
    isa: IsaLevel,
    a: &[T],
    a_shape: &[usize],
    a_strides: &[isize],
    b: &[T],
    b_shape: &[usize],
    b_strides: &[isize],
    out: &mut [T],
    threads: usize,
) -> Result<(), NativeError> {
    const OP: &str = "matmul";
    let (ba, bas, [m, k], [rsa, csa]) = split_matrix("a", a_shape, a_strides)?;
    let (bb, bbs, [k2, n], [rsb, csb]) = split_matrix("b", b_shape, b_strides)?;
    if k != k2 {
        return Err(NativeError::shape(
            OP,
            format!("inner dimensions differ: {a_shape:?} @ {b_shape:?} ({k} vs {k2})"),
        ));
    }
    let rank = ba.len().max(bb.len());
    let mut batch = vec![1usize; rank];
    for (i, d) in batch.iter_mut().enumerate() {
        let da = (i + ba.len()).checked_sub(rank).map_or(1, |j| ba[j]);
        let db = (i + bb.len()).checked_sub(rank).map_or(1, |j| bb[j]);
        *d = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(NativeError::shape(
                OP,
                format!("batch shapes {ba:?} and {bb:?} cannot be broadcast"),
            ));
        };
    }
    let overflow = || NativeError::shape(OP, "element count overflows usize");
    let nb = checked_numel(&batch).ok_or_else(overflow)?;
    let mn = m.checked_mul(n).ok_or_else(overflow)?;
    let expected = nb.checked_mul(mn).ok_or_else(overflow)?;
    if out.len() != expected {
        return Err(NativeError::Length {
            op: OP,
            operand: "out",
            expected,
            actual: out.len(),
        });
    }
    check_view(OP, "a", a.len(), a_shape, a_strides)?;
    check_view(OP, "b", b.len(), b_shape, b_strides)?;
    if expected == 0 {
        return Ok(());
    }
    if k == 0 {
        out.fill(T::ZERO);
        return Ok(());
    }
    let sa = batch_strides(&batch, ba, bas);
    let sb = batch_strides(&batch, bb, bbs);
    // `[..batch, m, k] @ [k, n]` with `a`'s rows evenly spaced across the batch (a
    // contiguous activation times a weight): one `[batch·m, k] @ [k, n]` product,
    // whose GEMM packs the weight once and runs full-height tiles, instead of one small
    // product per batch entry (an RNN's input projection over 100 steps of 32 rows).
    if !batch.is_empty() && sb.iter().all(|&s| s == 0) && m >= 2 && rsa > 0 {
        let mut expect = m as isize * rsa;
        let mut rows_evenly = true;
        for (&d, &st) in batch.iter().zip(&sa).rev() {
            if d > 1 && st != expect {
                rows_evenly = false;
                break;
            }
            expect *= d as isize;
        }
        if rows_evenly {
            return matmul_capped(
                isa,
                a,
                &[nb * m, k],
                &[rsa, csa],
                b,
                &[k, n],
                &[rsb, csb],
                out,
                threads,
            );
        }
    }
    // Strides of axes longer than 1 are non-negative (checked above).
    let offset = |bi: usize, st: &[isize]| batch_offset(&batch, bi, st);

    let threads = threads.max(1);
    let fmas = expected.saturating_mul(k);
    let parallel = threads > 1 && fmas >= PARALLEL_MIN_FMAS;
    // Rows per work item: whole products, or a split of `m` when batch entries are few.
    let parts = if parallel && nb < threads {
        threads.div_ceil(nb)
    } else {
        1
    };
    let rows_per = m.div_ceil(parts).max(1);
    let items = out.chunks_mut(mn).enumerate().flat_map(|(bi, ob)| {
        ob.chunks_mut(rows_per * n)
            .enumerate()
            .map(move |(part, oc)| (bi, part * rows_per, oc))
    });
    let mut states = vec![(); if parallel { threads } else { 1 }];
    for_each_split(OP, items, &mut states, parallel, |_, (bi, row0, oc)| {
        let rows = oc.len() / n;
        let a_off = offset(bi, &sa) + row0 * norm_stride(m, rsa).unsigned_abs();
        let b_off = offset(bi, &sb);
        let av = MatRef {
            data: &a[a_off..],
            rows,
            cols: k,
            row_stride: rsa,
            col_stride: csa,
        };
        let bv = MatRef {
            data: &b[b_off..],
            rows: k,
            cols: n,
            row_stride: rsb,
            col_stride: csb,
        };
        let mut cv = MatMut {
            data: oc,
            rows,
            cols: n,
            row_stride: n as isize,
            col_stride: 1,
        };
        if long_dot::try_product(&av, &bv, &mut cv, m, isa)?
            || thin::product(&av, &bv, &mut cv, m, isa)?
            || one_panel::try_product(&av, &bv, &mut cv, m, isa)?
        {
            return Ok(());
        }
        gemm_at(isa, av, bv, cv)
    })
}
