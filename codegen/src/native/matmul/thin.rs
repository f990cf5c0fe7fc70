//! Matrix products too thin for the library GEMM.
//!
//! `matrixmultiply` packs its operands into panels of its micro-kernel's width (16
//! columns on AVX-512) and pays a call's set-up per product, so a batch of thin products
//! costs far more than their multiply-adds. The convolution gradient (`passes::autodiff::
//! conv`) is made of exactly such batches: per kernel tap of W2's depthwise layer,
//! `dW_k` is 1024 dot products of length 4000 (`[1, 4000] @ [4000, 1]`: 44 ms through
//! the library, 16× padded) and `dX_k` 1024 scaled rows (`[1, 1] @ [1, 4000]`: 12 ms).
//! (W2's depthwise kernel gradient has since become one product with the input's
//! windows, `[1, P] @ [P, 9]` per row, on `long_dot.rs`; grouped convolutions with several
//! input channels per group still make per-tap products of these shapes.)
//! Two shapes go through plain loops here instead:
//! - **dot products**: `k ≥ 8` and either at most [`DOT_MAX_OUTPUTS`] outputs, one row
//!   of at most [`ROW_MAX_COLS`] outputs, or one output column (a matrix-vector product, e.g. W2's first-layer weight gradient,
//!   `[32, 4000] @ [4000, 1]` per tap and batch entry, its vector strided by 4) with
//!   `a`'s rows contiguous along `k`; each output is a dot product in eight
//!   interleaved partial sums (vectorised by the compiler), over chunks of `k` copied
//!   to the stack when the column is strided (one chunk when contiguous); with `a`
//!   strided along `k`, one sequential sum per output;
//! - **sums of scaled rows**: `k ≤` [`AXPY_MAX_K`]; each output row is `Σ_k a[i,k] ·
//!   b[k,:]`, accumulated in `k` order (vectorised along the row when `b` and `c` rows
//!   are contiguous).
//!
//! The summation order differs from the library's, which is allowed: matrix products
//! promise a result to rounding, not a summation order.
//!
//! The one-row sum of scaled rows runs on the engine's vectors (16 or 8 lanes) for
//! f32 where the ISA level allows, with the scalar loop's operations in its order
//! (same bits): the compiler's own vectorisation of that loop kept to 4 lanes and the
//! partial rows on the stack.

// SIMD on raw pointers over checked views: every block has a SAFETY comment.
#![allow(unsafe_code)]

use super::{check_gemm, f32_mut, f32_ref, long_dot, MatMut, MatRef, Real};
use crate::isa::IsaLevel;
use crate::kernel::engine::lanes::{width_entry, Lanes};
use crate::kernel::engine::Width;
use crate::native::NativeError;

/// Products with at most this many outputs and `k ≥ 8` are computed as dot products.
pub(super) const DOT_MAX_OUTPUTS: usize = 4;

/// A one-row product (`[1, k] @ [k, n]`) with at most this many columns and `k ≥ 8`
/// is computed as dot products too: W2's depthwise kernel gradient at the padded
/// borders is 1024 products `[1, 16] @ [16, 9]` per layer, which the library GEMM
/// paid ~0.6 µs of packing and set-up each for (1.2 ms a layer, for 150 k FMAs).
pub(super) const ROW_MAX_COLS: usize = 64;

/// Elements of `k` per chunk of a dot product (a strided column is copied to the stack
/// chunk by chunk).
const DOT_CHUNK: usize = 256;

/// Interleaved partial rows of a one-row sum of scaled rows (`p mod 4`): four rows of
/// 64 columns are the 16 accumulators a 16-lane pass over whole rows of `b` can keep
/// in registers (eight made it walk `b` in strided column blocks, ~1.7× slower).
const PARTIAL_ROWS: usize = 4;

/// Rows of `b` per block of a one-row sum of scaled rows: each block's partial rows
/// are combined and added to the running total, so no chain of additions is longer
/// than `BLOCK / 4 + k / BLOCK` (four partial rows alone rounded past the tests'
/// bound at `k` = 1500).
const BLOCK: usize = 64;

/// Products with at most this inner length are computed as sums of scaled rows.
pub(super) const AXPY_MAX_K: usize = 4;

/// Element index of `(i, j)` in a view with validated strides (non-negative on every
/// axis longer than 1; an axis of extent 1 only ever sees index 0).
fn at(i: usize, j: usize, rs: isize, cs: isize) -> usize {
    i * rs.unsigned_abs() * usize::from(rs >= 0) + j * cs.unsigned_abs() * usize::from(cs >= 0)
}

/// Whether [`product`] computes `c = a · b` (`whole_rows` as there).
pub(super) fn takes<T>(a: &MatRef<'_, T>, b: &MatRef<'_, T>, whole_rows: usize) -> bool {
    choice(a, b, whole_rows).is_some()
}

/// How [`product`] computes `c = a · b`, if it does: `(dot, rows_of_b)` — dot
/// products, a one-row sum of scaled rows of `b`, or (both false) sums of scaled rows
/// for a short `k`.
fn choice<T>(a: &MatRef<'_, T>, b: &MatRef<'_, T>, whole_rows: usize) -> Option<(bool, bool)> {
    let (k, n) = (a.cols, b.cols);
    let matvec = n == 1 && a.col_stride == 1;
    // One row: dot products when `b`'s columns are contiguous along `k`; a sum of
    // scaled rows of `b` when its rows are contiguous (a bias-like `1 × k · k × n`,
    // e.g. W5's `Linear(64, 1)` weight gradient `[1, 3200] @ [3200, 64]`).
    let one_row = whole_rows == 1 && n <= ROW_MAX_COLS;
    let rows_of_b = one_row && b.col_stride == 1 && b.row_stride != 1 && n > 1;
    let dot = (whole_rows.saturating_mul(n) <= DOT_MAX_OUTPUTS
        || matvec
        || (one_row && b.row_stride == 1 && k < long_dot::MIN_K))
        && k >= 8;
    if k == 0 || (!dot && !rows_of_b && k > AXPY_MAX_K) {
        return None;
    }
    Some((dot, rows_of_b))
}

/// `c = a · b` when the product is thin (see the module doc): `Ok(true)` when it was
/// computed here, `Ok(false)` when the library should do it (nothing written).
/// `whole_rows` is the row count of the whole product `a` belongs to (a caller may
/// split its rows across threads): the choice depends on it, not on the share's
/// rows, so results do not depend on the thread count.
///
/// # Errors
/// As `Real::gemm`: the views are checked first.
pub(super) fn product<T: Real>(
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &mut MatMut<'_, T>,
    whole_rows: usize,
    isa: IsaLevel,
) -> Result<bool, NativeError> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let Some((dot, rows_of_b)) = choice(a, b, whole_rows) else {
        return Ok(false);
    };
    if !check_gemm(a, b, c)? {
        return Ok(true);
    }
    // Strides of extent-1 axes are never multiplied by a non-zero index.
    let (rsa, csa) = (a.row_stride, a.col_stride);
    let (rsb, csb) = (b.row_stride, b.col_stride);
    let (rsc, csc) = (c.row_stride, c.col_stride);
    if dot {
        if csa != 1 {
            for i in 0..m {
                for j in 0..n {
                    let v = (0..k).fold(T::ZERO, |acc, p| {
                        acc + a.data[at(i, p, rsa, csa)] * b.data[at(p, j, rsb, csb)]
                    });
                    c.data[at(i, j, rsc, csc)] = v;
                }
            }
            return Ok(true);
        }
        // Rows of `a` are contiguous along k. Each column of `b` is taken in chunks
        // (copied to the stack when strided, e.g. a stride-4 convolution's taps), and
        // every row's dot product with the chunk is added to its output.
        let mut buf = [T::ZERO; DOT_CHUNK];
        for j in 0..n {
            let mut start = 0;
            while start < k {
                // A contiguous column is one chunk (no copy needed).
                let len = if rsb == 1 {
                    k - start
                } else {
                    (k - start).min(DOT_CHUNK)
                };
                let col: &[T] = if rsb == 1 {
                    let b0 = at(start, j, rsb, csb);
                    &b.data[b0..b0 + len]
                } else {
                    for (p, slot) in buf[..len].iter_mut().enumerate() {
                        *slot = b.data[at(start + p, j, rsb, csb)];
                    }
                    &buf[..len]
                };
                for i in 0..m {
                    let a0 = at(i, start, rsa, csa);
                    let d = dot8(&a.data[a0..a0 + len], col);
                    let ci = at(i, j, rsc, csc);
                    c.data[ci] = if start == 0 { d } else { c.data[ci] + d };
                }
                start += len;
            }
        }
        return Ok(true);
    }
    if rows_of_b && k > AXPY_MAX_K && csc == 1 {
        // One row of outputs, by blocks of `BLOCK` rows of `b`, each in four
        // interleaved partial rows (`p mod 4`, combined pairwise) then added to the
        // total: a long sequential chain per output would round like `k` additions in
        // a row.
        let c0 = at(0, 0, rsc, csc);
        if let (Some(width), Some(a32), Some(b32), Some(c32)) =
            (Width::for_level(isa), f32_ref(a), f32_ref(b), f32_mut(c))
        {
            // `check_gemm` validated the views: `a`'s `k` values at `p·csa`, `b`'s rows
            // of `n` contiguous values at `p·rsb`, `c`'s `n` values from `c0`.
            let (csa, rsb) = (csa.unsigned_abs(), rsb.unsigned_abs());
            assert!(
                (k - 1) * csa < a32.data.len()
                    && (k - 1) * rsb + n <= b32.data.len()
                    && c0 + n <= c32.data.len(),
                "thin::product: a view reaches outside its slice"
            );
            let args = RowsOfB {
                k,
                n,
                a: a32.data.as_ptr(),
                csa,
                b: b32.data.as_ptr(),
                rsb,
                c: c32.data[c0..].as_mut_ptr(),
            };
            // SAFETY: `width` is one this CPU has (`Width::for_level`); the assert
            // keeps every access inside the slices, and `c` is an exclusive borrow.
            unsafe { rows_of_b_f32(width, args) };
            return Ok(true);
        }
        let mut total = [T::ZERO; ROW_MAX_COLS];
        for block in (0..k).step_by(BLOCK) {
            let mut acc = [[T::ZERO; ROW_MAX_COLS]; PARTIAL_ROWS];
            for p in block..(block + BLOCK).min(k) {
                let s = a.data[at(0, p, rsa, csa)];
                let b0 = at(p, 0, rsb, csb);
                for (o, &x) in acc[p % PARTIAL_ROWS][..n]
                    .iter_mut()
                    .zip(&b.data[b0..b0 + n])
                {
                    *o = *o + s * x;
                }
            }
            for (j, t) in total[..n].iter_mut().enumerate() {
                let l = |q: usize| acc[q][j];
                *t = *t + ((l(0) + l(2)) + (l(1) + l(3)));
            }
        }
        c.data[c0..c0 + n].copy_from_slice(&total[..n]);
        return Ok(true);
    }
    for i in 0..m {
        if csb == 1 && csc == 1 {
            let c0 = at(i, 0, rsc, csc);
            let crow = &mut c.data[c0..c0 + n];
            for p in 0..k {
                let s = a.data[at(i, p, rsa, csa)];
                let b0 = at(p, 0, rsb, csb);
                let brow = &b.data[b0..b0 + n];
                if p == 0 {
                    // From +0, as every sum of the library kernels and the
                    // interpreter starts: a -0 product gives +0, not -0.
                    for (o, &x) in crow.iter_mut().zip(brow) {
                        *o = T::ZERO + s * x;
                    }
                } else {
                    for (o, &x) in crow.iter_mut().zip(brow) {
                        *o = *o + s * x;
                    }
                }
            }
        } else {
            for j in 0..n {
                let v = (1..k).fold(
                    T::ZERO + a.data[at(i, 0, rsa, csa)] * b.data[at(0, j, rsb, csb)],
                    |acc, p| acc + a.data[at(i, p, rsa, csa)] * b.data[at(p, j, rsb, csb)],
                );
                c.data[at(i, j, rsc, csc)] = v;
            }
        }
    }
    Ok(true)
}

/// A one-row sum of scaled rows of `b` (f32): `c[j] = Σ_p a[p]·b[p, j]`.
#[derive(Clone, Copy)]
struct RowsOfB {
    k: usize,
    n: usize,
    /// `a[p]` at `p·csa`.
    a: *const f32,
    csa: usize,
    /// Row `p` of `b` (`n` contiguous values) at `p·rsb`.
    b: *const f32,
    rsb: usize,
    /// The `n` outputs.
    c: *mut f32,
}

width_entry! {
    /// [`rows_of_b_lanes`] on `width`.
    unsafe fn rows_of_b_f32(RowsOfB) => rows_of_b_lanes
}

/// The scalar path's sums (per block of [`BLOCK`] rows, four partial rows by `p mod
/// 4`, each `acc + a[p]·b[p, j]` with the product rounded, combined pairwise and added
/// to the total), on `L`'s vectors: the same operations in the same order, so the
/// same bits. Columns go in blocks of 64 on 16
/// lanes (one pass over `b`'s rows when `n ≤ 64`), 16 on 8 lanes (the accumulators of
/// a block must fit the 16 ymm registers).
///
/// # Safety
/// `t` addresses `k` values of `a`, `k` rows of `n` values of `b` and `n` values of
/// `c` (which nothing else accesses); the CPU has `L`'s instruction set.
#[inline(always)]
unsafe fn rows_of_b_lanes<L: Lanes>(l: L, t: RowsOfB) {
    // SAFETY: forwarded.
    unsafe {
        if L::N == 16 {
            column_blocks::<L, 4>(l, t);
        } else {
            column_blocks::<L, 2>(l, t);
        }
    }
}

/// [`rows_of_b_lanes`] over blocks of `W` vectors of columns.
///
/// # Safety
/// As [`rows_of_b_lanes`].
#[inline(always)]
unsafe fn column_blocks<L: Lanes, const W: usize>(l: L, t: RowsOfB) {
    let mut j = 0;
    while j < t.n {
        let cols = (t.n - j).min(W * L::N);
        let mut total = [l.zero(); W];
        for block in (0..t.k).step_by(BLOCK) {
            let mut acc = [[l.zero(); W]; PARTIAL_ROWS];
            for p in block..(block + BLOCK).min(t.k) {
                // SAFETY: `p < k`; every load below reads columns `j .. j + cols`,
                // below `n` (the contract).
                let (s, row) = unsafe { (l.splat(*t.a.add(p * t.csa)), t.b.add(p * t.rsb + j)) };
                let acc_p = &mut acc[p % PARTIAL_ROWS];
                if cols == W * L::N {
                    for (w, o) in acc_p.iter_mut().enumerate() {
                        // SAFETY: as above.
                        let x = unsafe { l.load(row.add(w * L::N)) };
                        *o = l.add(*o, l.mul(s, x));
                    }
                } else {
                    for (w, o) in acc_p.iter_mut().enumerate() {
                        let c0 = w * L::N;
                        if c0 < cols {
                            // SAFETY: as above (the last vector's columns below `cols`).
                            let x = unsafe { l.load_first(row.add(c0), (cols - c0).min(L::N)) };
                            *o = l.add(*o, l.mul(s, x));
                        }
                    }
                }
            }
            let [r0, r1, r2, r3] = acc;
            let parts = r0.iter().zip(&r1).zip(&r2).zip(&r3);
            for (t, (((v0, v1), v2), v3)) in total.iter_mut().zip(parts) {
                *t = l.add(*t, l.add(l.add(*v0, *v2), l.add(*v1, *v3)));
            }
        }
        for (w, v) in total.iter().enumerate() {
            let c0 = w * L::N;
            if c0 >= cols {
                break;
            }
            // SAFETY: `c`'s columns `j + c0 ..` below `j + cols` (the contract).
            unsafe { l.store_first(t.c.add(j + c0), (cols - c0).min(L::N), *v) };
        }
        j += W * L::N;
    }
}

/// `Σ x[i]·y[i]` in eight interleaved partial sums (combined pairwise), then the tail.
fn dot8<T: Real>(x: &[T], y: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xt, yt) = (xc.remainder(), yc.remainder());
    for (u, v) in xc.zip(yc) {
        for l in 0..8 {
            acc[l] = acc[l] + u[l] * v[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (&u, &v) in xt.iter().zip(yt) {
        s = s + u * v;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::native::test_values as values;

    /// Thin products of every kind (dot products, scaled rows; contiguous, transposed,
    /// broadcast and gapped operands) against a plain triple loop, in f64 and f32.
    #[test]
    fn thin_products_match_a_triple_loop() {
        // (m, k, n, a transposed, b transposed, b broadcast along k)
        let cases = [
            (1, 4000, 1, false, true, false), // a per-tap dW (before windows): dot product
            (1, 37, 2, false, false, false),  // b read down columns: sequential sum
            (2, 9, 2, true, true, false),
            (4, 8, 1, false, true, false),
            (32, 400, 1, false, true, false),  // matrix-vector
            (32, 700, 1, false, false, false), // matrix-vector, vector strided (chunks)
            (1, 1, 4000, false, false, false), // W2's dX per tap: one scaled row
            (3, 4, 50, true, false, false),
            (5, 2, 7, false, true, false), // b columns strided: element loop
            (3, 3, 19, false, false, true), // b broadcast (stride 0 along k)
        ];
        for (m, k, n, at, bt, bb) in cases {
            let a = values(m * k + 3, 1);
            let b = values(k * n + 5, 2);
            let (rsa, csa) = if at { (1, m as isize) } else { (k as isize, 1) };
            let (rsb, csb) = if bb {
                (0, 1)
            } else if bt {
                (1, k as isize)
            } else {
                (n as isize, 1)
            };
            let av = MatRef {
                data: &a,
                rows: m,
                cols: k,
                row_stride: rsa,
                col_stride: csa,
            };
            let bv = MatRef {
                data: &b,
                rows: k,
                cols: n,
                row_stride: rsb,
                col_stride: csb,
            };
            // Output with a gap after each row.
            let mut c = vec![f64::NAN; m * (n + 1)];
            let mut cv = MatMut {
                data: &mut c,
                rows: m,
                cols: n,
                row_stride: n as isize + 1,
                col_stride: 1,
            };
            assert!(
                product(&av, &bv, &mut cv, av.rows, IsaLevel::Avx512).unwrap(),
                "{m}x{k}x{n} taken"
            );
            let get = |v: &[f64], i: usize, j: usize, rs: isize, cs: isize| {
                v[(i as isize * rs + j as isize * cs) as usize]
            };
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|p| get(&a, i, p, rsa, csa) * get(&b, p, j, rsb, csb))
                        .sum();
                    let got = c[i * (n + 1) + j];
                    assert!(
                        (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                        "{got} vs {want}"
                    );
                }
                assert!(c[i * (n + 1) + n].is_nan(), "gap untouched");
            }
            // f32: same within rounding.
            let (a32, b32): (Vec<f32>, Vec<f32>) = (
                a.iter().map(|&x| x as f32).collect(),
                b.iter().map(|&x| x as f32).collect(),
            );
            let mut c32 = vec![0f32; m * n];
            let mut cv = MatMut {
                data: &mut c32,
                rows: m,
                cols: n,
                row_stride: n as isize,
                col_stride: 1,
            };
            let av = MatRef {
                data: &a32,
                rows: m,
                cols: k,
                row_stride: rsa,
                col_stride: csa,
            };
            let bv = MatRef {
                data: &b32,
                rows: k,
                cols: n,
                row_stride: rsb,
                col_stride: csb,
            };
            assert!(product(&av, &bv, &mut cv, av.rows, IsaLevel::Avx512).unwrap());
            for i in 0..m {
                for j in 0..n {
                    let want = c[i * (n + 1) + j];
                    let got = f64::from(c32[i * n + j]);
                    assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()) * (k as f64).sqrt());
                }
            }
        }
    }

    #[test]
    fn other_shapes_are_left_to_the_library() {
        let (a, b) = (values(64, 1), values(64, 2));
        let mut c = vec![0.0; 64];
        let av = MatRef {
            data: &a,
            rows: 8,
            cols: 8,
            row_stride: 8,
            col_stride: 1,
        };
        let bv = MatRef {
            data: &b,
            rows: 8,
            cols: 8,
            row_stride: 8,
            col_stride: 1,
        };
        let mut cv = MatMut {
            data: &mut c,
            rows: 8,
            cols: 8,
            row_stride: 8,
            col_stride: 1,
        };
        assert!(!product(&av, &bv, &mut cv, av.rows, IsaLevel::Avx512).unwrap());
        assert!(c.iter().all(|&x| x == 0.0), "nothing written");
    }

    #[test]
    fn bad_views_are_errors() {
        let (a, b) = (values(10, 1), values(10, 2));
        let mut c = vec![0.0; 1];
        let av = MatRef {
            data: &a,
            rows: 1,
            cols: 20,
            row_stride: 20,
            col_stride: 1,
        };
        let bv = MatRef {
            data: &b,
            rows: 20,
            cols: 1,
            row_stride: 1,
            col_stride: 1,
        };
        let mut cv = MatMut {
            data: &mut c,
            rows: 1,
            cols: 1,
            row_stride: 1,
            col_stride: 1,
        };
        assert!(product(&av, &bv, &mut cv, av.rows, IsaLevel::Avx512).is_err());
    }
}
