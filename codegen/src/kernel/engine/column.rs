//! Column sums in registers: a kernel that only sums the rows of an f32 matrix (a bias
//! gradient, `Σ_{b,t} dy[b, t, :]`) runs here instead of its Cranelift column loop.
//!
//! # Why
//! The Cranelift column order (`clif::column_nest`) keeps the output row in memory and
//! reloads, adds and stores every vector of it for every input row, 4 lanes at a time
//! (128-bit vectors, at most 16 registers): W5's bias gradients (`[3200, 64]` → `[64]`)
//! took 43–86 µs each, several times what reading 0.8 MB from L2 costs. Here the row
//! is swept in blocks of [`BLOCK`] vectors of the engine's width held in registers
//! (128 columns per sweep with AVX-512, 64 with AVX2), each block reading its columns
//! of every row once.
//!
//! # Numerics
//! Each output is `0 + x₀ + x₁ + …` in row order, as in the Cranelift column kernel
//! (its identity, then the rows in order), so both give the same bits.
//!
//! # What runs here
//! A kernel whose only expression is one f32 load, stored as a sum over every axis
//! but the innermost, which stays (contiguous for the load and the store, at least one
//! vector long); after normalisation, the reduced axes are one (evenly spaced rows).

// SIMD on raw pointers into the executor's buffers: every block has a SAFETY comment.
#![allow(unsafe_code)]

use super::lanes::{width_entry, Lanes};
use super::Width;
use crate::isa::IsaLevel;
use crate::kernel::nest::normalise;
use crate::kernel::{Expr, Kernel};
use crate::plan::BufId;
use onde_ir::{DType, ReduceKind};

/// Vectors summed side by side in registers per sweep over the rows.
const BLOCK: usize = 8;

/// A compiled column sum: `out[c] = Σ_r x[r·row_stride + c]` for `c < cols`, `r < rows`.
#[derive(Clone, Debug)]
pub struct ColumnSum {
    /// The summed buffer and the byte offset of element 0.
    load: (BufId, isize),
    /// The output buffer and the byte offset of element 0.
    store: (BufId, isize),
    rows: usize,
    /// Elements between consecutive rows.
    row_stride: usize,
    cols: usize,
    width: Width,
}

/// `k` as a column sum at the widest width `isa` allows on this CPU, if it is one (see
/// the module doc); otherwise the kernel keeps its other code.
pub fn compile(k: &Kernel, isa: IsaLevel) -> Option<ColumnSum> {
    let width = Width::for_level(isa)?;
    let red = k.reduction.as_ref()?;
    let [load] = k.loads.as_slice() else {
        return None;
    };
    let [store] = k.stores.as_slice() else {
        return None;
    };
    let plain = matches!(k.exprs.as_slice(), [Expr::Load(0)]);
    if !plain
        || red.kind != ReduceKind::Sum
        || !red.also.is_empty()
        || load.dtype != DType::F32
        || k.dtypes[store.expr] != DType::F32
        || store.window.is_some()
    {
        return None;
    }
    // A column-order kernel with no kept axis before the reduced ones: the executor
    // runs it as one share (`clif::outer_extent`), as this code requires.
    if crate::kernel::clif::column_nest(k).is_none_or(|n| n.kept != 0) {
        return None;
    }
    let nest = normalise(k);
    // Normalised, kept axes come first: the one kept axis (contiguous in memory), then
    // the reduced axes merged into one (evenly spaced rows).
    let [kept, rows] = nest.axes.as_slice() else {
        return None;
    };
    if nest.kept != 1 || kept.reduced || !rows.reduced {
        return None;
    }
    // Strides in bytes: (load, store).
    let contiguous = kept.strides[0] == 4 && kept.strides[1] == 4;
    let row_stride = rows.strides[0];
    if !contiguous || rows.strides[1] != 0 || row_stride < 0 || row_stride % 4 != 0 {
        return None;
    }
    if kept.extent < width.lanes() {
        return None;
    }
    Some(ColumnSum {
        load: (load.buffer, load.offset * 4),
        store: (store.buffer, 0),
        rows: rows.extent,
        row_stride: row_stride as usize / 4,
        cols: kept.extent,
        width,
    })
}

impl ColumnSum {
    /// Runs the sum over the buffers of `table` (the whole kernel: a column sum is
    /// never split across threads, its outermost normalised axis being reduced).
    ///
    /// # Safety
    /// `table` is the executor's buffer table, with the load's buffer holding the
    /// `rows × cols` elements the kernel reads (element `(r, c)` at `r·row_stride + c`
    /// after the load's offset) and the store's `cols` floats, not overlapping it;
    /// the CPU has the width's instruction set (checked by [`compile`]).
    pub unsafe fn call(&self, table: *const *mut u8) {
        // SAFETY: the table has an entry per buffer (the caller's contract); the offsets
        // are the kernel's planned ones, inside the buffers.
        let (x, out) = unsafe {
            (
                (*table.add(self.load.0.index()))
                    .offset(self.load.1)
                    .cast::<f32>(),
                (*table.add(self.store.0.index()))
                    .offset(self.store.1)
                    .cast::<f32>(),
            )
        };
        let args = (x.cast_const(), out, self.rows, self.row_stride, self.cols);
        // SAFETY: forwarded; the width is one this CPU has.
        unsafe { sums_on(self.width, args) }
    }

    /// What the dump says about it.
    pub fn describe(&self) -> String {
        format!(
            "native column sum ({} lanes, {} rows × {} columns)",
            self.width.lanes(),
            self.rows,
            self.cols
        )
    }
}

/// `(x, out, rows, row_stride, cols)`.
type Args = (*const f32, *mut f32, usize, usize, usize);

width_entry! {
    /// [`sums`] on `width`'s vectors.
    ///
    /// # Safety
    /// As [`sums`], with `width` one this CPU has.
    unsafe fn sums_on(Args) => sums
}

/// Every block of columns: blocks of `BLOCK`, 4, 2 and 1 whole vectors, then the last
/// partial vector masked. Each block's sums are independent chains (one add per row
/// and vector, in row order), so a block of several vectors is not latency-bound.
///
/// # Safety
/// `x` readable at `r·row_stride + c` for `r < rows`, `c < cols`; `out` writable for
/// `cols` floats, not overlapping `x`.
#[inline(always)]
unsafe fn sums<L: Lanes>(l: L, (x, out, rows, rs, cols): Args) {
    let mut c = 0;
    let mut left = cols / L::N;
    // SAFETY (each call): columns [c, c + B·N) are inside every row and the output
    // (`left` whole vectors remain from `c`).
    unsafe {
        while left >= BLOCK {
            block::<L, BLOCK>(l, x.add(c), out.add(c), rows, rs, L::N);
            (c, left) = (c + BLOCK * L::N, left - BLOCK);
        }
        if left >= 4 {
            block::<L, 4>(l, x.add(c), out.add(c), rows, rs, L::N);
            (c, left) = (c + 4 * L::N, left - 4);
        }
        if left >= 2 {
            block::<L, 2>(l, x.add(c), out.add(c), rows, rs, L::N);
            (c, left) = (c + 2 * L::N, left - 2);
        }
        if left == 1 {
            block::<L, 1>(l, x.add(c), out.add(c), rows, rs, L::N);
            c += L::N;
        }
    }
    if c < cols {
        // SAFETY: the last `cols - c < N` columns of every row and of the output.
        unsafe { block::<L, 1>(l, x.add(c), out.add(c), rows, rs, cols - c) };
    }
}

/// `B` vectors of columns summed over every row in registers; with `B = 1`, the vector
/// may have `lanes < N` columns (masked loads and store).
///
/// # Safety
/// For every `r < rows`, `x + r·rs` readable for `(B - 1)·N + lanes` floats; `out`
/// writable for as many.
#[inline(always)]
unsafe fn block<L: Lanes, const B: usize>(
    l: L,
    x: *const f32,
    out: *mut f32,
    rows: usize,
    rs: usize,
    lanes: usize,
) {
    let mut acc = [l.zero(); B];
    for r in 0..rows {
        let row = x.wrapping_add(r * rs);
        for (v, a) in acc.iter_mut().enumerate() {
            // SAFETY: vector `v` of row `r` (the caller's contract; a partial vector
            // only when B = 1 and lanes < N, loaded masked).
            let t = unsafe {
                if lanes == L::N {
                    l.load(row.add(v * L::N))
                } else {
                    l.load_first(row.add(v * L::N), lanes)
                }
            };
            *a = l.add(*a, t);
        }
    }
    for (v, a) in acc.iter().enumerate() {
        // SAFETY: vector `v` of the output (masked when partial).
        unsafe {
            if lanes == L::N {
                l.store(out.add(v * L::N), *a);
            } else {
                l.store_first(out.add(v * L::N), lanes, *a);
            }
        }
    }
}
