//! Row epilogues of the one-panel kernel (`one_panel.rs`), so that a product's rows
//! leave it as a softmax along them or as softmax's backward (`then_rows.rs`,
//! `exec::rows_epilogue`; a bias or a residual added as they are stored is
//! `one_panel::store_tile`'s, column sums of the stored rows `one_panel::tile_lanes`'s),
//! with the operations of `native::softmax` and
//! `native::softmax_backward` in their order — their bits:
//! - the softmax runs on each tile's rows just stored, in L1 (`native::softmax`'s
//!   own line code, in place). Computed from the registers instead, one row at a time
//!   or the tile's rows side by side, it measured no faster than the separate step:
//!   the exponentials need the registers the accumulators hold;
//! - the backward is computed from the registers ([`softmax_backward_row`]): the
//!   product row is `dy`, and only `y` is loaded.

// SIMD on raw pointers the one-panel kernel checked: every block has a SAFETY comment.
#![allow(unsafe_code)]

use crate::kernel::engine::lanes::Lanes;

/// What each row of a product gets: a bias or another matrix added as it is stored, a
/// softmax once stored, or softmax's backward instead of being stored.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'y> {
    /// `c = a·b + bias`, the bias broadcast along rows (`n` values), added to each
    /// accumulator as it is stored: the product then a bias kernel, in one rounding
    /// each, so the same bits.
    Bias(&'y [f32]),
    /// `c = a·b` stored, and each stored row also added, in row order, to the running
    /// column sums `sums` (`n` values; a bias gradient `Σ_rows c`): the product then a
    /// column sum from zero, row after row, so the same bits.
    ColumnSums(&'y [std::cell::Cell<f32>]),
    /// `c = a·b + r` (a residual connection), `r`'s row `i` at `i·row_stride` (`n`
    /// contiguous values), added to each accumulator as it is stored: the same bits
    /// as the product then the add (NaN payloads aside).
    Add {
        /// The matrix added.
        r: &'y [f32],
        /// Elements between rows of `r`.
        row_stride: usize,
    },
    /// `c = softmax(a·b · scale)` along the row (`native::softmax::softmax_scaled_f32`
    /// of the product, run on the tile's rows just stored, in place).
    Softmax {
        /// The operand's factor.
        scale: f32,
    },
    /// `c = (y ⊙ (a·b − s))·scale`, `s = Σ (a·b) ⊙ y` along the row
    /// (`native::softmax_backward` with `dy` the stored product).
    SoftmaxBackward {
        /// Softmax's output, row `i` at `i·row_stride` (`n` contiguous values).
        y: &'y [f32],
        /// Elements between rows of `y`.
        row_stride: usize,
        /// The result's factor.
        scale: f32,
    },
}

/// Softmax's backward of one row of `n ≤ W·N` values, `dy = acc`, into `c_row`: `y`
/// loaded and the partial last vector of `dy` taken with its lanes past `n` as 0 (as
/// the separate step loads them; the accumulators there hold `a·0`, NaN where `a` is
/// infinite), `s = Σ dy·y` in two partial sums — vectors of even index in the first,
/// odd ones and the partial last vector in the second, as `native::softmax_backward`
/// pairs them — folded across lanes, then `(y·(dy − s))·scale`.
///
/// # Safety
/// `y_row` readable and `c_row` writable for `n` floats; the CPU has `L`'s instruction
/// set.
#[inline(always)]
pub(super) unsafe fn softmax_backward_row<L: Lanes, const W: usize>(
    l: L,
    dy: &[L::V; W],
    y_row: *const f32,
    c_row: *mut f32,
    n: usize,
    scale: f32,
) {
    let full = n / L::N;
    let mut y = [l.zero(); W];
    let (mut s0, mut s1) = (l.zero(), l.zero());
    for (w, (yw, d)) in y.iter_mut().zip(dy).enumerate() {
        let cols = n - w * L::N;
        // SAFETY: columns `w·N ..` of the row below `n` (contract).
        *yw = unsafe {
            if cols >= L::N {
                l.load(y_row.add(w * L::N))
            } else {
                l.load_first(y_row.add(w * L::N), cols)
            }
        };
        if w < full && w % 2 == 0 {
            s0 = l.fmadd(*d, *yw, s0);
        } else if w < full {
            s1 = l.fmadd(*d, *yw, s1);
        } else {
            s1 = l.fmadd(l.blend(l.first(cols), l.zero(), *d), *yw, s1);
        }
    }
    let s = l.splat(l.reduce_add(l.add(s0, s1)));
    let c = l.splat(scale);
    for (w, (yw, d)) in y.iter().zip(dy).enumerate() {
        let v = l.mul(l.mul(*yw, l.sub(*d, s)), c);
        let cols = n - w * L::N;
        // SAFETY: as above, for writing.
        unsafe {
            if cols >= L::N {
                l.store(c_row.add(w * L::N), v);
            } else {
                l.store_first(c_row.add(w * L::N), cols, v);
            }
        }
    }
}
