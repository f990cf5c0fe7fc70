//! One-panel products: `c[m, n] = a[m, k] · b[k, n]` (f32) whose right operand is a
//! single register panel — `n` at most [`MAX_VECTORS`] vectors wide and `k` short —
//! the products of attention over short sequences (W5, per batch entry: `q·kᵀ` and
//! `dO·vᵀ`, `[100, 64]·[64, 100]`; `P·v`, `Pᵀ·dO`, `dS·k` and `dSᵀ·q`,
//! `[100, 100]·[100, 64]`).
//!
//! # Why
//! The library GEMM cuts `n` into micro-tiles of a fixed width and packs both operands
//! on every call; on these shapes it stays far from the FMA peak, because `k` is too
//! short to amortise the packing and the tiles' edges. Here an output tile is `R` rows × the *whole* width of `c` (`W =
//! ⌈n/N⌉` vectors), so per `p` the tile loads `b`'s row once (`W` vectors), broadcasts
//! `R` values of `a` and runs `R·W` FMAs into accumulators that stay in registers (16
//! lanes: `R·W ≤ 24` of the 32 zmm; 8 lanes: `R·W ≤ 12` of the 16 ymm). `a` is read in
//! place through its strides. `b` is first copied into a zero-padded panel of `W·N`
//! columns per row (`kᵀ`: 4 × 4 blocks transposed in registers), which stays in L1 with
//! `a`'s rows (`k ≤` [`MAX_K`]).
//!
//! What is taken ([`fits`]) is what measured faster than the library on the Intel Xeon
//! (AVX-512) this was written on: `a·bᵀ` products (`b` column-major), `k ≤ 80`,
//! 33–112 columns — W5's `q·kᵀ` and `dO·vᵀ`, and its projections `x·Wᵀ` (3200 rows:
//! level with the library alone, faster with their bias added as they are stored);
//! and products with a row-major `b` of 48 or 64 columns (`P·v`, `dS·k`; with `a`
//! column-major, `Pᵀ·dO` and `dSᵀ·q`), `k ≤ 128`: `b` is then read in place (its
//! rows are already whole vectors), and where `a` is stored by columns each step
//! prefetches the next line of `a`'s column (see `sums`). Longer `k` ran much slower
//! (the panel leaves L1); numbers in `docs/performance.md` (2026-12-07, fifth and
//! seventh sessions). The kernel is written over both widths and tested on both; the
//! 8-lane width is not taken (not measured faster on an AVX2-only CPU).
//!
//! # A bias, a residual, softmax and its backward on the rows
//! A tile holds whole rows of `c`, so a softmax along them, or its backward, can run
//! as soon as the tile is done ([`Rows`], `then_rows.rs`): attention's scores
//! `q·kᵀ` are softmaxed in place on the rows just stored (still in L1), and `dP =
//! dO·vᵀ` leaves the registers as the scores' gradient without being stored — with
//! the operations of `native::softmax` and `native::softmax_backward`, in their order.
//! A bias broadcast along rows, or another matrix, is added to each accumulator as it
//! is stored (a linear layer's `x·W + b`, `matmul_bias_capped`; a residual connection
//! `x + P·v`).
//!
//! # Numerics
//! Each output is `Σ_p a[i,p]·b[p,j]` accumulated from zero in `p` order with one FMA
//! per term, whatever the tile, the row split or the thread count; the library's kernel
//! does the same sum in its own blocking, so the two may differ in the last bits.

// SIMD on raw pointers over checked views: every block has a SAFETY comment.
#![allow(unsafe_code)]

use super::rows;
pub(super) use super::rows::Rows;
use super::transpose::{last_col, transpose_into};
use super::{check_gemm, f32_mut, f32_ref, MatMut, MatRef, Real};
use crate::isa::IsaLevel;
use crate::kernel::engine::lanes::{Lanes, X16, X8};
use crate::kernel::engine::Width;
use crate::native::NativeError;
use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
use std::cell::RefCell;

/// Widest `c` taken, in vectors (7 × 16 = 112 columns on AVX-512).
pub(super) const MAX_VECTORS: usize = 7;
/// Longest `k` taken: a packed panel (`k × 112` f32) stays within L1.
pub(super) const MAX_K: usize = 80;
/// Longest `k` taken for a row-major `b` read in place (`k × 64` f32: 32 KiB, within
/// L1 beside the tile's rows of `a`).
pub(super) const MAX_K_ROWS: usize = 128;
/// Shortest `k` taken (below it the tile's setup is not amortised).
pub(super) const MIN_K: usize = 16;

thread_local! {
    /// Each thread's packed panel, grown once and reused.
    static PANEL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `c = a · b` here when it fits (see the module doc): `Ok(true)` when computed,
/// `Ok(false)` when another kernel should do it (nothing written). `whole_rows` is the
/// row count of the whole product `a` belongs to (a caller may split its rows across
/// threads): the choice depends on it, not on the share's rows, so results do not
/// depend on the thread count.
///
/// # Errors
/// As `Real::gemm`: the views are checked first.
pub(super) fn try_product<T: Real>(
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &mut MatMut<'_, T>,
    whole_rows: usize,
    isa: IsaLevel,
) -> Result<bool, NativeError> {
    let Some(width) = Width::for_level(isa) else {
        return Ok(false);
    };
    let (Some(a32), Some(b32)) = (f32_ref(a), f32_ref(b)) else {
        return Ok(false);
    };
    if !fits(width, whole_rows, &a32, &b32) || c.col_stride != 1 {
        return Ok(false);
    }
    let Some(mut c32) = f32_mut(c) else {
        return Ok(false);
    };
    if !check_gemm(&a32, &b32, &c32)? {
        return Ok(true);
    }
    product(width, &a32, &b32, &mut c32, None);
    Ok(true)
}

/// [`try_product`] with a row epilogue ([`Rows`]): a bias or a matrix added as each
/// tile is stored, the stored rows added to running column sums, or a softmax or its
/// backward applied to each row as each tile is done (`c` then holds their result):
/// `Ok(false)`, nothing written, where this kernel does not take the product.
///
/// # Errors
/// As [`try_product`], and if the bias holds fewer than `n` values or the backward's
/// `y` (the added `r`) does not hold `c`'s rows.
pub(super) fn try_product_rows(
    a: &MatRef<'_, f32>,
    b: &MatRef<'_, f32>,
    c: &mut MatMut<'_, f32>,
    rows: Rows<'_>,
    isa: IsaLevel,
) -> Result<bool, NativeError> {
    let Some(width) = Width::for_level(isa) else {
        return Ok(false);
    };
    if !fits(width, a.rows, a, b) || c.col_stride != 1 {
        return Ok(false);
    }
    // The row epilogue's own operand: one row of `n` values (the bias, the sums) or a
    // row of `n` per row of `c`, `row_stride` apart.
    let operand = match rows {
        Rows::Bias(x) => Some(("matmul", "bias", x.len(), 0)),
        Rows::ColumnSums(x) => Some(("matmul_column_sums", "sums", x.len(), 0)),
        Rows::Add { r, row_stride } => Some(("matmul_add", "r", r.len(), row_stride)),
        Rows::SoftmaxBackward { y, row_stride, .. } => {
            Some(("matmul_softmax_backward", "y", y.len(), row_stride))
        }
        Rows::Softmax { .. } => None,
    };
    if let Some((op, name, len, row_stride)) = operand {
        let end = a
            .rows
            .saturating_sub(1)
            .checked_mul(row_stride)
            .and_then(|o| o.checked_add(b.cols));
        if end.is_none_or(|end| end > len) {
            return Err(NativeError::shape(
                op,
                format!(
                    "{name} of {len} values for {} rows of {} (row stride {row_stride})",
                    a.rows, b.cols,
                ),
            ));
        }
    }
    if !check_gemm(a, b, c)? {
        return Ok(true);
    }
    product(width, a, b, c, Some(rows));
    Ok(true)
}

/// Whether [`try_product`] computes `c = a · b` (f32, `m` rows in the whole product)
/// at level `isa` (given a `c` with unit column stride).
pub(super) fn takes(a: &MatRef<'_, f32>, b: &MatRef<'_, f32>, m: usize, isa: IsaLevel) -> bool {
    Width::for_level(isa).is_some_and(|w| fits(w, m, a, b))
}

/// Whether `c = a · b` (f32, `[m, k] · [k, n]`) is taken on `width`: the shapes and
/// layouts measured faster than the library (module doc), at least 8 rows and `k` at
/// least [`MIN_K`]:
/// - `a` with contiguous rows, `b` with contiguous columns (`q·kᵀ`, a linear layer's
///   `x·Wᵀ`): `k` short enough for the packed panel and `a`'s rows to share L1, 3–7
///   vectors of columns;
/// - `a` with contiguous rows or columns, `b` row-major of exactly 3 or 4 whole vectors
///   (`P·v`, `Pᵀ·dO`): `b` read in place, up to [`MAX_K_ROWS`] rows.
///
/// Any number of rows: on many (a projection's 3200) the kernel alone is level with
/// the library, and a bias then rides its stores (`matmul_bias_capped`).
fn fits(width: Width, m: usize, a: &MatRef<'_, f32>, b: &MatRef<'_, f32>) -> bool {
    let (k, n) = (a.cols, b.cols);
    match width {
        Width::X16 => {
            if m < 8 || k < MIN_K {
                return false;
            }
            let b_cols = b.row_stride == 1 && b.col_stride != 1;
            let q_kt = a.col_stride == 1 && b_cols && k <= MAX_K && n > 32 && n <= 112;
            let p_v = (a.col_stride == 1 || a.row_stride == 1)
                && b.col_stride == 1
                && b.row_stride != 1
                && k <= MAX_K_ROWS
                && (n == 48 || n == 64);
            q_kt || p_v
        }
        Width::X8 => false,
    }
}

/// `c = a · b` for views `check_gemm` validated (`c` with unit column stride, `n` at
/// most [`MAX_VECTORS`] vectors of `width`).
fn product(
    width: Width,
    a: &MatRef<'_, f32>,
    b: &MatRef<'_, f32>,
    c: &mut MatMut<'_, f32>,
    rows: Option<Rows<'_>>,
) {
    let lanes = width.lanes();
    let (k, n) = (a.cols, b.cols);
    let vectors = n.div_ceil(lanes);
    assert!(
        vectors <= MAX_VECTORS && c.col_stride == 1 && c.cols == n,
        "one_panel::product called on a view it does not take"
    );
    // Strides of extent-1 axes are never multiplied by a non-zero index: zero them so
    // every offset below is a plain product of in-range indices.
    let st = |extent: usize, s: isize| if extent <= 1 { 0 } else { s.unsigned_abs() };
    let (rsa, csa) = (st(a.rows, a.row_stride), st(k, a.col_stride));
    let rsc = st(c.rows, c.row_stride);
    PANEL.with(|cell| {
        let mut panel = cell.borrow_mut();
        let np = vectors * lanes;
        let (rsb, csb) = (st(k, b.row_stride), st(n, b.col_stride));
        // A row-major `b` of whole vectors is its own panel; otherwise its rows are
        // copied (zero-padded to whole vectors) or its columns transposed into one.
        let in_place = csb == 1 && n == np;
        if !in_place {
            panel.clear();
            panel.resize(k * np, 0.0);
        }
        if in_place {
            // Read where it is.
        } else if csb == 1 {
            for (p, dst) in panel.chunks_exact_mut(np).enumerate() {
                dst[..n].copy_from_slice(&b.data[p * rsb..][..n]);
            }
        } else if rsb == 1 {
            transpose_into(&b.data[..=last_col(k, n, csb)], k, n, csb, &mut panel, np);
        } else {
            for j in 0..n {
                let col = &b.data[j * csb..];
                for p in 0..k {
                    panel[p * np + j] = col[p * rsb];
                }
            }
        }
        let (bp, rsb) = if in_place {
            (b.data, rsb)
        } else {
            (&panel[..], np)
        };
        // Every read of `a` is `(i + r)·rsa + p·csa` with i + r < m, p < k; of the
        // panel, `p·W·N + w·N + lane` with w·N + lane < W·N (its padded row); every
        // write of `c`, `(i + r)·rsc + j` with j < n. Checked here once at the largest
        // indices.
        let last = |extent: usize, s: usize| extent.saturating_sub(1) * s;
        let sums = match rows {
            Some(Rows::ColumnSums(sums)) => sums,
            _ => &[],
        };
        let (kind, y, rsy, scale) = match rows {
            None => (STORE, &[][..], 0, 1.0),
            Some(Rows::Bias(bias)) => (BIAS, bias, 0, 1.0),
            Some(Rows::Add { r, row_stride }) => (ADD, r, row_stride, 1.0),
            Some(Rows::ColumnSums(_)) => (SUMS, &[][..], 0, 1.0),
            Some(Rows::Softmax { scale }) => (SOFTMAX, &[][..], 0, scale),
            Some(Rows::SoftmaxBackward {
                y,
                row_stride,
                scale,
            }) => (SOFTMAX_BACKWARD, y, row_stride, scale),
        };
        assert!(
            last(a.rows, rsa) + last(k, csa) < a.data.len()
                && last(k, rsb) + vectors * lanes <= bp.len()
                && last(c.rows, rsc) + n <= c.data.len()
                && (!matches!(kind, SOFTMAX_BACKWARD | ADD) || last(c.rows, rsy) + n <= y.len())
                && (kind != BIAS || n <= y.len())
                && (kind != SUMS || n <= sums.len())
                && (kind != SOFTMAX || rsc == n || c.rows <= 1),
            "one_panel::product: a view reaches outside its slice"
        );
        // Writes through a shared slice of cells: `Cell` allows them, and the pointer
        // comes from the whole slice, so it may address all of it.
        let sums = sums.as_ptr().cast::<f32>().cast_mut();
        let args = Args {
            sums,
            m: a.rows,
            k,
            n,
            a: a.data.as_ptr(),
            rsa,
            csa,
            b: bp.as_ptr(),
            rsb,
            c: c.data.as_mut_ptr(),
            rsc,
            y: y.as_ptr(),
            rsy,
            scale,
            kind,
        };
        // SAFETY: `width` is one this CPU has (`try_product` and `try_product_rows`
        // take it from `Width::for_level`); the assert above keeps every access inside
        // the slices (`y` only read: the backward's `y`, the bias, the matrix added;
        // the column sums written only by this call, through their cells), and `c` is
        // an exclusive borrow, so the writes alias no read.
        unsafe {
            match width {
                Width::X16 => product_x16(args),
                Width::X8 => product_x8(args),
            }
        }
    });
}

/// A product's raw operands (see [`product`] for what each pointer may address).
#[derive(Clone, Copy)]
struct Args {
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    rsb: usize,
    c: *mut f32,
    rsc: usize,
    /// For the backward: softmax's output, row `r` at `r·rsy`; for [`ADD`], the
    /// matrix added, likewise; for [`BIAS`], the bias (`n` values, `rsy` = 0).
    y: *const f32,
    /// Elements between rows of `y`.
    rsy: usize,
    /// The row epilogue's factor ([`Rows`]).
    scale: f32,
    /// What each row gets: [`STORE`] (nothing more), [`BIAS`], [`ADD`], [`SUMS`],
    /// [`SOFTMAX`] or [`SOFTMAX_BACKWARD`].
    kind: u8,
    /// For [`SUMS`]: the running column sums (`n` values, written only through this
    /// pointer during the product; null otherwise).
    sums: *mut f32,
}

/// [`Args::kind`]: rows stored as computed.
const STORE: u8 = 0;
/// [`Args::kind`]: [`Rows::Bias`].
const BIAS: u8 = 3;
/// [`Args::kind`]: [`Rows::Add`].
const ADD: u8 = 4;
/// [`Args::kind`]: [`Rows::ColumnSums`].
const SUMS: u8 = 5;
/// [`Args::kind`]: [`Rows::Softmax`].
const SOFTMAX: u8 = 1;
/// [`Args::kind`]: [`Rows::SoftmaxBackward`].
const SOFTMAX_BACKWARD: u8 = 2;

/// The product on width `L`: row tiles of `full` rows, then the remaining rows by
/// tiles of half that height and single rows. `tile(rows, w, i)` runs one.
///
/// # Safety
/// As [`product`]'s SAFETY comment, on a CPU with `L`'s instruction set.
#[inline(always)]
unsafe fn product_lanes<L: Lanes>(
    args: Args,
    full: impl Fn(usize) -> usize,
    tile: impl Fn(usize, usize, Args),
) {
    let w = args.n.div_ceil(L::N);
    let full = full(w);
    let half = (full / 2).max(1);
    let mut i = 0;
    while i < args.m {
        let left = args.m - i;
        let rows = if left >= full {
            full
        } else if left >= half {
            half
        } else {
            1
        };
        let t = Args {
            a: args.a.wrapping_add(i * args.rsa),
            c: args.c.wrapping_add(i * args.rsc),
            y: args.y.wrapping_add(i * args.rsy),
            m: rows,
            ..args
        };
        tile(rows, w, t);
        i += rows;
    }
}

/// One tile: `R` rows × `W` vectors of `c`, each output `Σ_p a[r,p]·b[p,j]` by FMAs in
/// `p` order; the last vector stores only the columns below `n`. Then, by `KIND`
/// ([`Args::kind`]): nothing more (or a bias or a matrix added as it is stored, or
/// the stored rows added to running column sums); a softmax of
/// the stored rows, in place while in L1; or, instead of storing the product,
/// softmax's backward from the registers.
///
/// # Safety
/// `t` addresses the tile's rows as [`product`] checked; the CPU has `L`'s
/// instruction set.
#[inline(always)]
unsafe fn tile_lanes<L: Lanes, const R: usize, const W: usize, const KIND: u8>(l: L, t: Args) {
    // SAFETY: forwarded (the function's contract).
    let acc = unsafe {
        if t.rsa == 1 && t.csa > 1 {
            sums::<L, R, W, true>(l, t)
        } else {
            sums::<L, R, W, false>(l, t)
        }
    };
    if KIND == SOFTMAX_BACKWARD {
        for (r, acc_r) in acc.iter().enumerate() {
            let c_row = t.c.wrapping_add(r * t.rsc);
            let y_row = t.y.wrapping_add(r * t.rsy);
            // SAFETY: row `r` of the tile, `n` columns of `c` and of `y`, as the
            // function's contract has them.
            unsafe { rows::softmax_backward_row(l, acc_r, y_row, c_row, t.n, t.scale) };
        }
        return;
    }
    // SAFETY: the tile's rows of `c`, and for `BIAS` the bias's `n` values (the
    // function's contract).
    unsafe { store_tile::<L, R, W, KIND>(l, &acc, t) };
    if KIND == SUMS {
        for w in 0..W {
            let cols = t.n - w * L::N;
            let at = t.sums.wrapping_add(w * L::N);
            // SAFETY: the sums' columns `w·N ..` below `n` (the contract: `n` values
            // only this product writes).
            unsafe {
                let mut s = if cols >= L::N {
                    l.load(at)
                } else {
                    l.load_first(at, cols)
                };
                for acc_r in &acc {
                    s = l.add(s, acc_r[w]);
                }
                if cols >= L::N {
                    l.store(at, s);
                } else {
                    l.store_first(at, cols, s);
                }
            }
        }
    }
    if KIND == SOFTMAX {
        // SAFETY: the tile's `R` rows of `c`, `n` floats each and `rsc = n` apart
        // (`product` asserts it for this kind), just written: the softmax runs on them
        // in place while they are in L1.
        unsafe {
            crate::native::softmax::contiguous_lines::<L, R>(l, t.c, t.c, t.n, l.splat(t.scale))
        };
    }
}

/// The tile's `R × W` sums `Σ_p a[r,p]·b[p,j]`, by FMAs in `p` order. With
/// `PREFETCH` (`a` stored by columns, `Pᵀ`): each step also prefetches the cache line
/// after the one it reads `a` from, in the same column of `a`'s storage — the line
/// the tiles 16 rows on will read; without it, those lines come back from L2 at each
/// step of the later tiles (the hardware prefetcher does not follow a stride of a
/// whole row).
///
/// # Safety
/// As [`tile_lanes`].
#[inline(always)]
unsafe fn sums<L: Lanes, const R: usize, const W: usize, const PREFETCH: bool>(
    l: L,
    t: Args,
) -> [[L::V; W]; R] {
    let mut acc = [[l.zero(); W]; R];
    for p in 0..t.k {
        if PREFETCH {
            let line = t.a.wrapping_add(p * t.csa + 16);
            // SAFETY: a prefetch is a hint: it neither faults nor changes memory, so
            // any address is sound (the pointer is only formed, by wrapping_add).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.cast::<i8>()) };
        }
        // SAFETY (loads): `p < k`, `w < W`: inside `b`'s (padded) row and `a`'s rows
        // (the function's contract).
        let bv: [L::V; W] =
            std::array::from_fn(|w| unsafe { l.load(t.b.add(p * t.rsb + w * L::N)) });
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row `r < R` of the tile, `p < k` (the function's contract).
            let ar = l.splat(unsafe { *t.a.add(r * t.rsa + p * t.csa) });
            for (acc_rw, b) in acc_r.iter_mut().zip(&bv) {
                *acc_rw = l.fmadd(ar, *b, *acc_rw);
            }
        }
    }
    acc
}

/// The tile's accumulators to `c` (plus the bias `t.y` when `KIND` is [`BIAS`], or
/// the rows of `t.y` for [`ADD`]), the last vector's columns below `n` only.
///
/// # Safety
/// As [`tile_lanes`]; for [`BIAS`], `t.y` holds `n` values; for [`ADD`], the tile's
/// rows of `n` values `t.rsy` apart.
#[inline(always)]
unsafe fn store_tile<L: Lanes, const R: usize, const W: usize, const KIND: u8>(
    l: L,
    acc: &[[L::V; W]; R],
    t: Args,
) {
    let bias_kind = KIND == BIAS;
    let bias: [L::V; W] = std::array::from_fn(|w| {
        let cols = t.n.saturating_sub(w * L::N);
        // SAFETY: the bias's values below `n` (the function's contract).
        match (bias_kind, cols >= L::N) {
            (false, _) => l.zero(),
            (true, true) => unsafe { l.load(t.y.add(w * L::N)) },
            (true, false) => unsafe { l.load_first(t.y.add(w * L::N), cols) },
        }
    });
    for (r, acc_r) in acc.iter().enumerate() {
        for (w, v) in acc_r.iter().enumerate() {
            let dst = t.c.wrapping_add(r * t.rsc + w * L::N);
            let cols = t.n - w * L::N;
            let v = if bias_kind {
                l.add(*v, bias[w])
            } else if KIND == ADD {
                let src = t.y.wrapping_add(r * t.rsy + w * L::N);
                // SAFETY: row `r` of `r`, columns `w·N ..` below `n` (contract).
                let x = unsafe {
                    if cols >= L::N {
                        l.load(src)
                    } else {
                        l.load_first(src, cols)
                    }
                };
                l.add(*v, x)
            } else {
                *v
            };
            // SAFETY: row `r` of the tile, columns `w·N ..` below `n` (contract).
            unsafe {
                if cols >= L::N {
                    l.store(dst, v);
                } else {
                    l.store_first(dst, cols, v);
                }
            }
        }
    }
}

/// The per-width entry points: the generic kernels above instantiated under each
/// width's `#[target_feature]`, one tile function per (rows, vectors) that
/// [`product_lanes`] asks for.
macro_rules! width_kernels {
    ($product:ident, $tile:ident, $feat:literal, $L:ident,
     [$(($w:literal: $full:literal $($r:literal)*))*]) => {
        /// The product on this width (see [`product_lanes`]).
        ///
        /// # Safety
        /// As [`product_lanes`].
        #[target_feature(enable = $feat)]
        unsafe fn $product(args: Args) {
            let full = |w: usize| match w {
                $($w => $full,)*
                _ => unreachable!("no tile of {w} vectors"),
            };
            let tile = |rows: usize, w: usize, t: Args| match (w, rows) {
                $(
                    // SAFETY: forwarded (`product_lanes` passes this tile's rows).
                    ($w, $full) => unsafe {
                        match t.kind {
                            BIAS => $tile::<$full, $w, BIAS>(t),
                            ADD => $tile::<$full, $w, ADD>(t),
                            SUMS => $tile::<$full, $w, SUMS>(t),
                            SOFTMAX => $tile::<$full, $w, SOFTMAX>(t),
                            SOFTMAX_BACKWARD => $tile::<$full, $w, SOFTMAX_BACKWARD>(t),
                            _ => $tile::<$full, $w, STORE>(t),
                        }
                    },
                )*
                $($(
                    // SAFETY: forwarded (`product_lanes` passes this tile's rows).
                    ($w, $r) => unsafe {
                        match t.kind {
                            BIAS => $tile::<$r, $w, BIAS>(t),
                            ADD => $tile::<$r, $w, ADD>(t),
                            SUMS => $tile::<$r, $w, SUMS>(t),
                            SOFTMAX => $tile::<$r, $w, SOFTMAX>(t),
                            SOFTMAX_BACKWARD => $tile::<$r, $w, SOFTMAX_BACKWARD>(t),
                            _ => $tile::<$r, $w, STORE>(t),
                        }
                    },
                )*)*
                _ => unreachable!("no {rows}-row tile of {w} vectors"),
            };
            // SAFETY: forwarded; `tile` covers every (w, rows) `product_lanes` asks.
            unsafe { product_lanes::<$L>(args, full, tile) }
        }

        /// One tile on this width.
        ///
        /// # Safety
        /// As [`tile_lanes`].
        #[target_feature(enable = $feat)]
        unsafe fn $tile<const R: usize, const W: usize, const KIND: u8>(t: Args) {
            // SAFETY: this function runs with the width's instruction set (its caller's
            // contract); the rest is forwarded.
            unsafe { tile_lanes::<$L, R, W, KIND>($L::assume(), t) }
        }
    };
}

// Tile heights per vector count: the full tile, half of it, and 1. The full tile is
// as tall as the accumulators allow (24 of the 32 zmm, 12 of the 16 ymm; at most 12
// rows), except 5 rows of 4 vectors on 16 lanes: 20 accumulators measured faster
// than 24 (`P·v`, 100 × 100 × 64: ~5%).
width_kernels!(product_x16, tile_x16, "avx512f,avx512dq", X16,
    [(1: 12 6 1) (2: 12 6 1) (3: 8 4 1) (4: 5 2 1) (5: 4 2 1) (6: 4 2 1) (7: 3 1)]);
width_kernels!(product_x8, tile_x8, "avx2,fma", X8,
    [(1: 12 6 1) (2: 6 3 1) (3: 4 2 1) (4: 3 1) (5: 2 1) (6: 2 1) (7: 1)]);

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 37 + seed * 101) % 97) as f32 - 48.0) / 32.0)
            .collect()
    }

    /// `c = a · b` in f64 through the views' strides.
    fn reference(a: &MatRef<'_, f32>, b: &MatRef<'_, f32>) -> Vec<f64> {
        let at = |v: &MatRef<'_, f32>, i: usize, j: usize| {
            f64::from(v.data[(i as isize * v.row_stride + j as isize * v.col_stride) as usize])
        };
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols).map(|p| at(a, i, p) * at(b, p, j)).sum();
            }
        }
        out
    }

    /// Every (m, n) edge, both layouts of each operand, on every width this CPU has.
    #[test]
    fn products_match_f64_on_every_width_and_layout() {
        for width in [Width::X16, Width::X8] {
            let level = match width {
                Width::X16 => IsaLevel::Avx512,
                Width::X8 => IsaLevel::Avx2,
            };
            if Width::for_level(level) != Some(width) {
                // Not on this CPU: `try_product` must decline, never compute.
                continue;
            }
            let lanes = width.lanes();
            for &(m, k, n) in &[
                (1, 16, 8),
                (13, 64, 100),
                (100, 64, 100),
                (7, 17, 64),
                (25, 128, 112),
                (3, 20, 33),
                // Row-major `b` of whole vectors (read in place), every tile height.
                (100, 100, 64),
                (13, 100, 64),
                (9, 128, 48),
            ] {
                if n > MAX_VECTORS * lanes {
                    continue;
                }
                for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
                    let ad = values(m * k, 1);
                    let bd = values(k * n, 2);
                    let a = MatRef {
                        data: &ad,
                        rows: m,
                        cols: k,
                        row_stride: if a_t { 1 } else { k as isize },
                        col_stride: if a_t { m as isize } else { 1 },
                    };
                    let b = MatRef {
                        data: &bd,
                        rows: k,
                        cols: n,
                        row_stride: if b_t { 1 } else { n as isize },
                        col_stride: if b_t { k as isize } else { 1 },
                    };
                    let want = reference(&a, &b);
                    // Rows padded past `n` to see that nothing is written there.
                    let rsc = n + 3;
                    let mut cd = vec![f32::NAN; m * rsc];
                    let mut c = MatMut {
                        data: &mut cd,
                        rows: m,
                        cols: n,
                        row_stride: rsc as isize,
                        col_stride: 1,
                    };
                    product(width, &a, &b, &mut c, None);
                    for i in 0..m {
                        for j in 0..rsc {
                            let got = cd[i * rsc + j];
                            if j >= n {
                                assert!(got.is_nan(), "{width:?} wrote past n at ({i}, {j})");
                                continue;
                            }
                            let w = want[i * n + j];
                            let tol = 1e-5 * (1.0 + k as f64);
                            assert!(
                                (f64::from(got) - w).abs() <= tol,
                                "{width:?} {m}x{k}x{n} a_t={a_t} b_t={b_t} ({i},{j}): {got} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Only the measured layouts within their bounds are taken, only on AVX-512; what
    /// is declined writes nothing.
    #[test]
    fn takes_only_the_measured_shapes() {
        let ad = values(100 * 64, 1);
        let bd = values(64 * 200, 2);
        let a = MatRef {
            data: &ad,
            rows: 100,
            cols: 64,
            row_stride: 64,
            col_stride: 1,
        };
        let bt = |n: usize| MatRef {
            data: &bd,
            rows: 64,
            cols: n,
            row_stride: 1,
            col_stride: 64,
        };
        let mut cd = vec![7f32; 100 * 200];
        // Too wide for one panel.
        let mut c = MatMut {
            data: &mut cd,
            rows: 100,
            cols: 200,
            row_stride: 200,
            col_stride: 1,
        };
        assert!(!try_product(&a, &bt(200), &mut c, 100, IsaLevel::Avx512).unwrap());
        // `b` row-major: the library's.
        let b_rows = MatRef {
            data: &bd,
            rows: 64,
            cols: 100,
            row_stride: 100,
            col_stride: 1,
        };
        let mut c = MatMut {
            data: &mut cd,
            rows: 100,
            cols: 100,
            row_stride: 100,
            col_stride: 1,
        };
        assert!(!try_product(&a, &b_rows, &mut c, 100, IsaLevel::Avx512).unwrap());
        // Below AVX-512 (the AVX2 width is not taken: not measured faster).
        assert!(!try_product(&a, &bt(100), &mut c, 100, IsaLevel::Avx2).unwrap());
        assert!(!try_product(&a, &bt(100), &mut c, 100, IsaLevel::Baseline).unwrap());
        assert!(
            cd.iter().all(|&v| v == 7.0),
            "a declined product wrote to c"
        );
        // `q·kᵀ` of W5: taken exactly where this CPU has AVX-512.
        let mut c = MatMut {
            data: &mut cd,
            rows: 100,
            cols: 100,
            row_stride: 100,
            col_stride: 1,
        };
        let taken = try_product(&a, &bt(100), &mut c, 100, IsaLevel::Avx512).unwrap();
        assert_eq!(
            taken,
            Width::for_level(IsaLevel::Avx512) == Some(Width::X16)
        );
        // `P·v` and `Pᵀ·dO` of W5 (`[100, 100] · [100, 64]`, `b` row-major): taken with
        // either layout of `a` where this CPU has AVX-512; not past `MAX_K_ROWS`.
        let pd = values(100 * (MAX_K_ROWS + 1), 3);
        let p = |k: usize, by_cols: bool| MatRef {
            data: &pd,
            rows: 100,
            cols: k,
            row_stride: if by_cols { 1 } else { k as isize },
            col_stride: if by_cols { 100 } else { 1 },
        };
        let v = |k: usize| MatRef {
            data: &bd,
            rows: k,
            cols: 64,
            row_stride: 64,
            col_stride: 1,
        };
        let mut c = MatMut {
            data: &mut cd,
            rows: 100,
            cols: 64,
            row_stride: 64,
            col_stride: 1,
        };
        for by_cols in [false, true] {
            let taken = try_product(&p(100, by_cols), &v(100), &mut c, 100, IsaLevel::Avx512);
            assert_eq!(
                taken.unwrap(),
                Width::for_level(IsaLevel::Avx512) == Some(Width::X16)
            );
            let long = p(MAX_K_ROWS + 1, by_cols);
            let taken = try_product(&long, &v(MAX_K_ROWS + 1), &mut c, 100, IsaLevel::Avx512);
            assert!(!taken.unwrap(), "k past MAX_K_ROWS taken");
        }
    }

    /// Through the batched entry point at every ISA level: W5's `q·kᵀ` (kᵀ a
    /// transposed view) matches f64 whichever kernel the level picks.
    #[test]
    fn batched_q_kt_matches_f64_at_every_level() {
        let (bn, t, d) = (3, 100, 64);
        let q = values(bn * t * d, 3);
        let k = values(bn * t * d, 4);
        for isa in [IsaLevel::Baseline, IsaLevel::Avx2, IsaLevel::Avx512] {
            let mut out = vec![0f32; bn * t * t];
            let td = (t * d) as isize;
            super::super::matmul_capped(
                isa,
                &q,
                &[bn, t, d],
                &[td, d as isize, 1],
                &k,
                &[bn, d, t],
                &[td, 1, d as isize],
                &mut out,
                1,
            )
            .unwrap();
            for e in 0..bn {
                for i in 0..t {
                    for j in 0..t {
                        let want: f64 = (0..d)
                            .map(|p| {
                                f64::from(q[e * t * d + i * d + p])
                                    * f64::from(k[e * t * d + j * d + p])
                            })
                            .sum();
                        let got = f64::from(out[e * t * t + i * t + j]);
                        assert!(
                            (got - want).abs() <= 1e-4,
                            "{isa:?} ({e},{i},{j}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// A product's bits do not depend on the thread count, its rows split in two
    /// shares or not: 600 rows (above this kernel's bound: the library), 100 rows
    /// (this kernel). (The kernel is chosen on the whole product's rows; for these `k`
    /// the library's FMA order happens to match this kernel's, so a choice made per
    /// share would not show here — the rows argument is what guarantees it.)
    #[test]
    fn bits_do_not_depend_on_threads() {
        for m in [600usize, 100] {
            let (k, n) = (64usize, 100usize);
            let a = values(m * k, 5);
            let b = values(n * k, 6);
            let run = |threads: usize| {
                let mut out = vec![0f32; m * n];
                super::super::matmul_capped(
                    IsaLevel::Avx512,
                    &a,
                    &[1, m, k],
                    &[0, k as isize, 1],
                    &b,
                    &[1, k, n],
                    &[0, 1, k as isize],
                    &mut out,
                    threads,
                )
                .unwrap();
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(run(1), run(2), "{m} rows");
        }
    }
}
