//! A batched product followed by softmax's backward along its rows, fused: `out =
//! softmax_backward(a·b, y) · scale` with the product never stored (attention's `dP =
//! dO·vᵀ`, then `dS`). Each row of the product leaves the one-panel kernel's registers
//! as its gradient (`one_panel::SoftmaxRows`), bit for bit what the product then
//! `native::softmax_backward` give; W5 saves the write and the re-read of the
//! `[32, 100, 100]` product. Taken only where the one-panel kernel takes the product.

use super::one_panel::{self, SoftmaxRows};
use super::{batch_strides, check_view, split_matrix, MatMut, MatRef};
use crate::isa::IsaLevel;
use crate::native::{checked_numel, NativeError};

/// `out = (y ⊙ (a·b − Σ_row (a·b) ⊙ y)) · scale`, softmax's backward along the last axis
/// of the product `a·b` with `dy = a·b` (f32, one thread): `a` is `[..batch, m, k]`, `b`
/// `[..batch, k, n]` with the same batch shape (shapes and element strides into their
/// slices, as [`super::matmul`]), `y` and `out` contiguous `[..batch, m, n]`. Returns
/// `Ok(false)`, with nothing written, where the one-panel kernel does not take the
/// products (their shape or layout, the ISA level, broadcast batches); the caller then
/// runs the product and the backward step apart, with the same bits.
///
/// # Errors
/// [`NativeError`] if the shapes disagree, a view reaches outside its slice, or `y` or
/// `out` does not hold the result's elements.
#[allow(clippy::too_many_arguments)] // The executor's calling convention.
pub fn matmul_softmax_backward_capped(
    isa: IsaLevel,
    a: &[f32],
    a_shape: &[usize],
    a_strides: &[isize],
    b: &[f32],
    b_shape: &[usize],
    b_strides: &[isize],
    y: &[f32],
    scale: f32,
    out: &mut [f32],
) -> Result<bool, NativeError> {
    const OP: &str = "matmul_softmax_backward";
    let (ba, bas, [m, k], [rsa, csa]) = split_matrix("a", a_shape, a_strides)?;
    let (bb, bbs, [k2, n], [rsb, csb]) = split_matrix("b", b_shape, b_strides)?;
    if k != k2 {
        return Err(NativeError::shape(
            OP,
            format!("inner dimensions differ: {a_shape:?} @ {b_shape:?} ({k} vs {k2})"),
        ));
    }
    if ba != bb {
        return Ok(false);
    }
    let overflow = || NativeError::shape(OP, "element count overflows usize");
    let nb = checked_numel(ba).ok_or_else(overflow)?;
    let mn = m.checked_mul(n).ok_or_else(overflow)?;
    let expected = nb.checked_mul(mn).ok_or_else(overflow)?;
    for (operand, len) in [("y", y.len()), ("out", out.len())] {
        if len != expected {
            return Err(NativeError::Length {
                op: OP,
                operand,
                expected,
                actual: len,
            });
        }
    }
    check_view(OP, "a", a.len(), a_shape, a_strides)?;
    check_view(OP, "b", b.len(), b_shape, b_strides)?;
    if expected == 0 || k == 0 {
        return Ok(false);
    }
    let (sa, sb) = (batch_strides(ba, ba, bas), batch_strides(ba, bb, bbs));
    // Element offset of batch entry `e` (row-major over the batch axes); strides of
    // axes longer than 1 are non-negative (`check_view`).
    let offset = |mut e: usize, st: &[isize]| -> usize {
        let mut off = 0usize;
        for (&d, &s) in ba.iter().zip(st).rev() {
            off += (e % d) * s.unsigned_abs();
            e /= d;
        }
        off
    };
    let view = |data, rows, cols, row_stride, col_stride| MatRef {
        data,
        rows,
        cols,
        row_stride,
        col_stride,
    };
    for (e, (oc, yc)) in out.chunks_exact_mut(mn).zip(y.chunks_exact(mn)).enumerate() {
        let av = view(&a[offset(e, &sa)..], m, k, rsa, csa);
        let bv = view(&b[offset(e, &sb)..], k, n, rsb, csb);
        let mut cv = MatMut {
            data: oc,
            rows: m,
            cols: n,
            row_stride: n as isize,
            col_stride: 1,
        };
        let rows = SoftmaxRows {
            y: yc,
            row_stride: n,
            scale,
        };
        // The choice depends on shapes, layouts and the level only, the same for every
        // entry: the first decides, and nothing has been written when it declines.
        // (Were a later entry declined, the caller's product and backward step would
        // rewrite all of `out`: still the same values.)
        if !one_panel::try_product_softmax_backward(&av, &bv, &mut cv, rows, isa)? {
            return Ok(false);
        }
    }
    Ok(true)
}
