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

use super::{check_gemm, long_dot, MatMut, MatRef, Real};
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
        // One row of outputs, in eight interleaved partial rows (`p mod 8`, combined
        // pairwise as `dot8` does): a long sequential chain per output would round
        // like `k` additions in a row.
        let c0 = at(0, 0, rsc, csc);
        let mut acc = [[T::ZERO; ROW_MAX_COLS]; 8];
        for p in 0..k {
            let s = a.data[at(0, p, rsa, csa)];
            let b0 = at(p, 0, rsb, csb);
            for (o, &x) in acc[p % 8][..n].iter_mut().zip(&b.data[b0..b0 + n]) {
                *o = *o + s * x;
            }
        }
        for (j, out) in c.data[c0..c0 + n].iter_mut().enumerate() {
            let l = |q: usize| acc[q][j];
            *out = ((l(0) + l(4)) + (l(1) + l(5))) + ((l(2) + l(6)) + (l(3) + l(7)));
        }
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
                product(&av, &bv, &mut cv, av.rows).unwrap(),
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
            assert!(product(&av, &bv, &mut cv, av.rows).unwrap());
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
        assert!(!product(&av, &bv, &mut cv, av.rows).unwrap());
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
        assert!(product(&av, &bv, &mut cv, av.rows).is_err());
    }
}
