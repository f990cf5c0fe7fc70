//! Batched products followed by a softmax along their rows, by softmax's backward, or
//! by the addition of another tensor, fused on the one-panel kernel
//! (`one_panel::Rows`): attention's scores `q·kᵀ` are softmaxed tile by tile on the
//! rows just stored (still in L1), `dP = dO·vᵀ` leaves the registers as the scores'
//! gradient `softmax_backward(dP, P)·c`, never stored, a residual connection `x +
//! P·v` is added as the tile is stored, and a bias gradient `Σ_rows dV` is summed from
//! the rows as they are stored — bit for bit what the product then
//! `native::softmax`, `native::softmax_backward`, the add or the column sum give. W5
//! no longer reads two `[32, 100, 100]` tensors back from L2, nor `P·v` for the
//! residual, nor its three `[32, 100, 64]` gradients for their bias gradients. Taken
//! only where the one-panel kernel takes the products.

use super::one_panel::{self, Rows};
use super::{batch_offset, batch_strides, check_view, split_matrix, MatMut, MatRef};
use crate::isa::IsaLevel;
use crate::native::{checked_numel, NativeError};
use std::cell::Cell;

/// What [`matmul_rows_capped`] applies along the rows of the product `s = a·b`.
#[derive(Debug)]
pub enum RowsAfter<'y> {
    /// `out = s + r`, `r` contiguous `[..batch, m, n]` like `out`.
    Add {
        /// The tensor added.
        r: &'y [f32],
    },
    /// `out = s`, and `sums[j] = Σ_rows s[.., j]` (every row of every batch entry, from
    /// zero, in row order: a bias gradient).
    ColumnSums {
        /// The `n` column sums (overwritten).
        sums: &'y mut [f32],
    },
    /// `out = softmax(s · scale)`.
    Softmax {
        /// The operand's factor.
        scale: f32,
    },
    /// `out = (y ⊙ (s − Σ_row s ⊙ y)) · scale`: softmax's backward with `dy = s`, `y`
    /// contiguous `[..batch, m, n]` like `out`.
    SoftmaxBackward {
        /// Softmax's output.
        y: &'y [f32],
        /// The result's factor.
        scale: f32,
    },
}

/// [`RowsAfter`] as each batch entry's [`Rows`] are made from it.
#[derive(Clone, Copy)]
enum Each<'y> {
    Add(&'y [f32]),
    Sums(&'y [Cell<f32>]),
    Softmax(f32),
    Backward(&'y [f32], f32),
}

/// `out = after(a·b)` along the last axis of the product (f32, one thread; for
/// [`RowsAfter::ColumnSums`], `out = a·b` and the sums beside it): `a` is
/// `[..batch, m, k]`, `b` `[..batch, k, n]` with the same batch shape (shapes and
/// element strides into their slices, as [`super::matmul`]), `out` contiguous
/// `[..batch, m, n]`. Returns `Ok(false)`, with nothing written, where the one-panel
/// kernel does not take the products (their shape or layout, the ISA level, broadcast
/// batches); the caller then runs the product and the next step apart, with the
/// same bits.
///
/// # Errors
/// [`NativeError`] if the shapes disagree, a view reaches outside its slice, or `y`,
/// `r` or `out` does not hold the result's elements.
#[allow(clippy::too_many_arguments)] // The executor's calling convention.
pub fn matmul_rows_capped(
    isa: IsaLevel,
    a: &[f32],
    a_shape: &[usize],
    a_strides: &[isize],
    b: &[f32],
    b_shape: &[usize],
    b_strides: &[isize],
    after: RowsAfter<'_>,
    out: &mut [f32],
) -> Result<bool, NativeError> {
    let op = match after {
        RowsAfter::Add { .. } => "matmul_add",
        RowsAfter::ColumnSums { .. } => "matmul_column_sums",
        RowsAfter::Softmax { .. } => "matmul_softmax",
        RowsAfter::SoftmaxBackward { .. } => "matmul_softmax_backward",
    };
    let (ba, bas, [m, k], [rsa, csa]) = split_matrix("a", a_shape, a_strides)?;
    let (bb, bbs, [k2, n], [rsb, csb]) = split_matrix("b", b_shape, b_strides)?;
    if k != k2 {
        return Err(NativeError::shape(
            op,
            format!("inner dimensions differ: {a_shape:?} @ {b_shape:?} ({k} vs {k2})"),
        ));
    }
    if ba != bb {
        return Ok(false);
    }
    let overflow = || NativeError::shape(op, "element count overflows usize");
    let nb = checked_numel(ba).ok_or_else(overflow)?;
    let mn = m.checked_mul(n).ok_or_else(overflow)?;
    let expected = nb.checked_mul(mn).ok_or_else(overflow)?;
    let (name, y) = match &after {
        RowsAfter::SoftmaxBackward { y, .. } => ("y", Some(*y)),
        RowsAfter::Add { r } => ("r", Some(*r)),
        RowsAfter::Softmax { .. } | RowsAfter::ColumnSums { .. } => ("y", None),
    };
    if let RowsAfter::ColumnSums { sums } = &after {
        if sums.len() != n {
            return Err(NativeError::Length {
                op,
                operand: "sums",
                expected: n,
                actual: sums.len(),
            });
        }
    }
    let lengths = [(name, y.map(<[f32]>::len)), ("out", Some(out.len()))];
    for (operand, len) in lengths {
        if let Some(actual) = len.filter(|&l| l != expected) {
            return Err(NativeError::Length {
                op,
                operand,
                expected,
                actual,
            });
        }
    }
    check_view(op, "a", a.len(), a_shape, a_strides)?;
    check_view(op, "b", b.len(), b_shape, b_strides)?;
    if expected == 0 || k == 0 {
        return Ok(false);
    }
    let (sa, sb) = (batch_strides(ba, ba, bas), batch_strides(ba, bb, bbs));
    // One `b` for every entry: `matmul_capped` runs that as one tall product, perhaps on
    // another kernel (other bits); leave it to the two steps.
    if nb > 1 && sb.iter().all(|&s| s == 0) {
        return Ok(false);
    }
    let offset = |e: usize, st: &[isize]| batch_offset(ba, e, st);
    let view = |data, rows, cols, row_stride, col_stride| MatRef {
        data,
        rows,
        cols,
        row_stride,
        col_stride,
    };
    // The column sums start from zero, once the kernel is known to take the products
    // (nothing may be written otherwise).
    let first = (
        view(&a[offset(0, &sa)..], m, k, rsa, csa),
        view(&b[offset(0, &sb)..], k, n, rsb, csb),
    );
    // `matmul_capped` would try its long-dot and thin kernels before the one-panel
    // kernel: the shapes the one-panel kernel takes are none of theirs (`k ≥ 16`,
    // `n > 32`, at least 8 rows), so the fused path runs the kernel the two steps would.
    debug_assert!(
        !one_panel::takes(&first.0, &first.1, m, isa)
            || !(super::long_dot::takes(&first.0, &first.1, m, isa)
                || super::thin::takes(&first.0, &first.1, m)),
        "a product both the one-panel kernel and an earlier kernel take"
    );
    let each = match after {
        RowsAfter::ColumnSums { sums } => {
            if !one_panel::takes(&first.0, &first.1, m, isa) {
                return Ok(false);
            }
            sums.fill(0.0);
            Each::Sums(Cell::from_mut(sums).as_slice_of_cells())
        }
        RowsAfter::Add { r } => Each::Add(r),
        RowsAfter::Softmax { scale } => Each::Softmax(scale),
        RowsAfter::SoftmaxBackward { y, scale } => Each::Backward(y, scale),
    };
    for (e, oc) in out.chunks_exact_mut(mn).enumerate() {
        let av = view(&a[offset(e, &sa)..], m, k, rsa, csa);
        let bv = view(&b[offset(e, &sb)..], k, n, rsb, csb);
        let mut cv = MatMut {
            data: oc,
            rows: m,
            cols: n,
            row_stride: n as isize,
            col_stride: 1,
        };
        let rows = match each {
            Each::Sums(cells) => Rows::ColumnSums(cells),
            Each::Add(r) => Rows::Add {
                r: &r[e * mn..(e + 1) * mn],
                row_stride: n,
            },
            Each::Softmax(scale) => Rows::Softmax { scale },
            Each::Backward(y, scale) => Rows::SoftmaxBackward {
                y: &y[e * mn..(e + 1) * mn],
                row_stride: n,
                scale,
            },
        };
        // The choice depends on shapes, layouts and the level only, the same for every
        // entry: the first decides, and nothing has been written when it declines.
        // (Were a later entry declined, the caller's two steps would rewrite all of
        // `out`: still the same values.)
        if !one_panel::try_product_rows(&av, &bv, &mut cv, rows, isa)? {
            return Ok(false);
        }
    }
    Ok(true)
}
