//! Long dot-product products: `c[i, j] = Σ_p a[i, p] · b[p, j]` where both `a`'s rows
//! and `b`'s columns are contiguous along a long `k` — the shape of a convolution's
//! kernel gradient (`dy · xᵀ` over thousands of time steps, e.g. W2's pointwise layer:
//! `[32 × 4000] · [4000 × 32]` per batch entry). matrixmultiply packs the `k`-strided
//! operand column by column there; here blocks of outputs accumulate in registers over
//! a vector of `k` at a time, then each is reduced across lanes. Written once over the
//! engine's vector widths (`kernel::engine::lanes`): AVX-512, 4 × 4 outputs in 16 zmm
//! (8 loads, 16 FMAs per 16 `k`); AVX2, 3 × 3 outputs in 9 ymm (6 loads, 9 FMAs per 8
//! `k`). Measured on AVX-512 on 32 such products (`[32, 32, 4000] @ [32, 4000, 32]ᵀ`, 1
//! thread, same minutes): 7.1–7.6 ms against 9.4–9.6 ms through the library — ~1.3×,
//! well short of the FMA peak: it is bound by reading the rows (chunking `k` so a chunk
//! of `b` stays in L1 measured slower: 8.3–12 ms for chunks of 128–512).
//!
//! `b`'s columns may also read every other element (a stride-2 convolution's per-tap
//! input): two loads de-interleaved in registers (`Lanes::load_every_other`), same
//! results; on
//! W2's k3 s2 layer its three kernel-gradient products went ~7–8.9 → ~4.3 ms each
//! (per-step profile, same minutes; ~2.5–2.9 ms in a faster phase).
//!
//! Taken only for f32, `k ≥` [`MIN_K`] (or [`MIN_K_MATVEC`] for one output column)
//! and at most [`MAX_OUTPUTS`] outputs per product
//! (of the whole product, not of a thread's share), at the AVX2 and AVX-512 levels.
//! Every output's summation order (lane sums over `k`, masked tail, lane reduction) is
//! the same in every block shape of a width, so results do not depend on the row split
//! or threads (they differ between widths in the last bits: 8 or 16 partial sums).

use super::{check_gemm, f32_mut, f32_ref, MatMut, MatRef, Real};
use crate::isa::IsaLevel;
use crate::kernel::engine::lanes::{Lanes, X16, X8};
use crate::kernel::engine::Width;
use crate::native::NativeError;

/// Shortest `k` taken here: below it the library's packing is amortised.
pub(super) const MIN_K: usize = 1024;

/// Shortest `k` taken for a matrix-vector product (`n = 1`, one vector of 16 lanes):
/// there is no packing to amortise, and the thin kernel's dot products run at the
/// baseline's 4 lanes (W5's `Linear(64, 1)`; `docs/performance.md`).
pub(super) const MIN_K_MATVEC: usize = 16;

/// Most outputs of one product taken here (weight gradients are small matrices).
pub(super) const MAX_OUTPUTS: usize = 4096;

/// `c = a · b` here when it fits (see the module doc): `Ok(true)` when computed,
/// `Ok(false)` when another kernel should do it (nothing written). `whole_rows` is the
/// row count of the whole product `a` belongs to.
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
    if !fits(&a32, &b32, whole_rows) {
        return Ok(false);
    }
    if !check_gemm(a, b, c)? {
        return Ok(true);
    }
    let Some(mut c32) = f32_mut(c) else {
        return Ok(false);
    };
    product(width, &a32, &b32, &mut c32);
    Ok(true)
}

/// Whether [`try_product`] computes `c = a · b` (f32) at level `isa`.
pub(super) fn takes(
    a: &MatRef<'_, f32>,
    b: &MatRef<'_, f32>,
    whole_rows: usize,
    isa: IsaLevel,
) -> bool {
    Width::for_level(isa).is_some() && fits(a, b, whole_rows)
}

/// Whether `c = a · b` (f32) fits this kernel.
fn fits(a: &MatRef<'_, f32>, b: &MatRef<'_, f32>, whole_rows: usize) -> bool {
    let (k, n) = (a.cols, b.cols);
    (k >= MIN_K || (n == 1 && k >= MIN_K_MATVEC))
        && whole_rows.saturating_mul(n) <= MAX_OUTPUTS
        && a.col_stride == 1
        && (b.row_stride == 1 || b.row_stride == 2)
}

/// `c = a · b` for views that [`fits`] accepted and `check_gemm` validated, on the
/// widest vectors `width` allows.
#[allow(unsafe_code)]
fn product(width: Width, a: &MatRef<'_, f32>, b: &MatRef<'_, f32>, c: &mut MatMut<'_, f32>) {
    let (k, n) = (a.cols, b.cols);
    // Row starts (an extent-1 axis may carry any stride: index 0 only).
    let row = |i: usize, rs: isize| if i == 0 { 0 } else { i * rs.unsigned_abs() };
    // `b`'s columns: contiguous or every other element (`fits`).
    let sb = b.row_stride.unsigned_abs();
    // Every row read has `k` elements inside its slice, every column `k` elements `sb`
    // apart: checked once for the last row and column (starts grow with the index).
    let last_a = row(a.rows.saturating_sub(1), a.row_stride);
    let last_b = row(n.saturating_sub(1), b.col_stride);
    let fits_a = a.rows == 0 || last_a + k <= a.data.len();
    let fits_b = n == 0 || last_b + (k - 1) * sb < b.data.len();
    assert!(fits_a && fits_b, "nt::product called on unchecked views");
    // SAFETY: `width` is one this CPU has (`try_product` takes it from
    // `Width::for_level`); the assert above keeps every read (`row(i) + p`,
    // `col(j) + p·sb` for p < k) inside `a.data` / `b.data`.
    unsafe {
        match width {
            Width::X16 => product_x16(a, b, c),
            Width::X8 => product_x8(a, b, c),
        }
    }
}

/// [`product`] on width `L`: blocks of `MR × NR` outputs (16 lanes: 4 × 4, 16 zmm
/// accumulators; 8 lanes: 3 × 3, 9 of the 16 ymm registers, 6 left for the loads),
/// single rows and columns at the edges.
///
/// # Safety
/// As [`product`]'s SAFETY comment, on a CPU with `L`'s instruction set.
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn product_lanes<L: Lanes, const B: usize>(
    l: L,
    a: &MatRef<'_, f32>,
    b: &MatRef<'_, f32>,
    c: &mut MatMut<'_, f32>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let row = |i: usize, rs: isize| if i == 0 { 0 } else { i * rs.unsigned_abs() };
    let (rsa, csb) = (a.row_stride, b.col_stride);
    let sb = b.row_stride.unsigned_abs();
    let (rsc, csc) = (c.row_stride, c.col_stride);
    let (ad, bd) = (a.data, b.data);
    let mut i = 0;
    while i < m {
        let mr = if m - i >= B { B } else { 1 };
        let mut j = 0;
        while j < n {
            let nr = if n - j >= B { B } else { 1 };
            let mut out = [[0f32; 4]; 4];
            let ar: [usize; 4] = std::array::from_fn(|r| row(i + r.min(mr - 1), rsa));
            let bc: [usize; 4] = std::array::from_fn(|s| row(j + s.min(nr - 1), csb));
            // SAFETY: rows and columns inside the slices (caller); `L`'s instruction set.
            unsafe {
                match (mr == B, nr == B, sb) {
                    (true, true, 1) => block::<L, B, B, 1>(l, ad, bd, &ar, &bc, k, &mut out),
                    (true, false, 1) => block::<L, B, 1, 1>(l, ad, bd, &ar, &bc, k, &mut out),
                    (false, true, 1) => block::<L, 1, B, 1>(l, ad, bd, &ar, &bc, k, &mut out),
                    (false, false, 1) => block::<L, 1, 1, 1>(l, ad, bd, &ar, &bc, k, &mut out),
                    (true, true, 2) => block::<L, B, B, 2>(l, ad, bd, &ar, &bc, k, &mut out),
                    (true, false, 2) => block::<L, B, 1, 2>(l, ad, bd, &ar, &bc, k, &mut out),
                    (false, true, 2) => block::<L, 1, B, 2>(l, ad, bd, &ar, &bc, k, &mut out),
                    (false, false, 2) => block::<L, 1, 1, 2>(l, ad, bd, &ar, &bc, k, &mut out),
                    _ => unreachable!("`fits` takes column strides 1 and 2 only"),
                }
            }
            for (r, line) in out.iter().enumerate().take(mr) {
                for (s, &v) in line.iter().enumerate().take(nr) {
                    c.data[row(i + r, rsc) + row(j + s, csc)] = v;
                }
            }
            j += nr;
        }
        i += mr;
    }
}

/// [`product_lanes`] on 16 lanes.
///
/// # Safety
/// As [`product`]'s SAFETY comment, on a CPU with AVX-512F/DQ.
#[target_feature(enable = "avx512f,avx512dq")]
#[allow(unsafe_code)]
unsafe fn product_x16(a: &MatRef<'_, f32>, b: &MatRef<'_, f32>, c: &mut MatMut<'_, f32>) {
    // SAFETY: this function runs with AVX-512F/DQ; the rest is forwarded.
    unsafe { product_lanes::<X16, 4>(X16::assume(), a, b, c) }
}

/// [`product_lanes`] on 8 lanes.
///
/// # Safety
/// As [`product`]'s SAFETY comment, on a CPU with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(unsafe_code)]
unsafe fn product_x8(a: &MatRef<'_, f32>, b: &MatRef<'_, f32>, c: &mut MatMut<'_, f32>) {
    // SAFETY: this function runs with AVX2 and FMA; the rest is forwarded.
    unsafe { product_lanes::<X8, 3>(X8::assume(), a, b, c) }
}

/// `out[r][s] = Σ_p a[ar[r] + p] · b[bc[s] + p·SB]` for `r < MR`, `s < NR`: `N` lane
/// sums over `k` (the last step masked to the lanes left), then each reduced across
/// its lanes — the same order for every output in every block shape.
///
/// # Safety
/// `L`'s instruction set is available; `ar[r] + k <= a.len()` and
/// `bc[s] + (k-1)·SB + 1 <= b.len()`.
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn block<L: Lanes, const MR: usize, const NR: usize, const SB: usize>(
    l: L,
    a: &[f32],
    b: &[f32],
    ar: &[usize; 4],
    bc: &[usize; 4],
    k: usize,
    out: &mut [[f32; 4]; 4],
) {
    const { assert!(SB == 1 || SB == 2, "column stride 1 or 2") };
    let mut acc = [[l.zero(); NR]; MR];
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut p = 0;
    // SAFETY (every load): rows hold `k` elements from their start and columns `k`
    // elements `SB` apart (caller: `bc[s] + (k-1)·SB < b.len()`); each row load is
    // masked to the lanes below `k`, each column load reads what `load_every_other`'s
    // contract allows for `left = k - p` (or is masked like a row when `SB = 1`).
    unsafe {
        while p < k {
            let left = k - p;
            let av: [L::V; MR] = std::array::from_fn(|r| l.load_first(pa.add(ar[r] + p), left));
            let bv: [L::V; NR] = std::array::from_fn(|s| {
                if SB == 1 {
                    l.load_first(pb.add(bc[s] + p), left)
                } else {
                    l.load_every_other(pb.add(bc[s] + p * SB), left)
                }
            });
            for r in 0..MR {
                for s in 0..NR {
                    acc[r][s] = l.fmadd(av[r], bv[s], acc[r][s]);
                }
            }
            p += L::N;
        }
    }
    for r in 0..MR {
        for s in 0..NR {
            out[r][s] = l.reduce_add(acc[r][s]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        crate::native::test_values(n, seed)
            .into_iter()
            .map(|v| v as f32)
            .collect()
    }

    /// `a` is `[m, k]` row-major, `b` the transpose of a row-major `[n, k]` (a kernel
    /// gradient's `xᵀ`), `c` row-major with a gap after each row; against f64 sums, and
    /// the same bits when the rows are computed in two shares (as two threads would).
    #[test]
    fn long_dot_products_match_f64_and_any_row_split() {
        // Every width this CPU has (none on a CPU without AVX2: `try_product` declines).
        for isa in crate::IsaLevel::available() {
            if let Some(width) = Width::for_level(isa) {
                long_dot_products_at(width);
            }
        }
        let none = MatRef {
            data: &[0f32; 4],
            rows: 2,
            cols: 2,
            row_stride: 2,
            col_stride: 1,
        };
        let mut c = [0f32; 4];
        let mut cv = MatMut {
            data: &mut c,
            rows: 2,
            cols: 2,
            row_stride: 2,
            col_stride: 1,
        };
        let took = try_product(&none, &none, &mut cv, 2, crate::IsaLevel::Baseline).unwrap();
        assert!(!took, "the baseline level has no long-dot kernel");
    }

    fn long_dot_products_at(width: Width) {
        for (m, n, k) in [
            (4, 4, 1024),
            (6, 5, 1037),
            (1, 1, 2048),
            (32, 11, 1500),
            (9, 32, 4000),
            // Matrix-vector products with a short `k` (W5's `Linear(64, 1)`).
            (37, 1, 16),
            (100, 1, 17),
            (3200, 1, 64),
            (5, 1, 100),
        ] {
            let (a, bt) = (values(m * k, 1), values(n * k, 2));
            let av = MatRef {
                data: &a,
                rows: m,
                cols: k,
                row_stride: k as isize,
                col_stride: 1,
            };
            let bv = MatRef {
                data: &bt,
                rows: k,
                cols: n,
                row_stride: 1,
                col_stride: k as isize,
            };
            assert!(fits(&av, &bv, m));
            let ldc = n + 1;
            let mut c = vec![f32::NAN; m * ldc];
            let mut cv = MatMut {
                data: &mut c,
                rows: m,
                cols: n,
                row_stride: ldc as isize,
                col_stride: 1,
            };
            product(width, &av, &bv, &mut cv);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|p| f64::from(a[i * k + p]) * f64::from(bt[j * k + p]))
                        .sum();
                    let got = f64::from(c[i * ldc + j]);
                    assert!(
                        (got - want).abs() <= 1e-5 * (k as f64).sqrt(),
                        "{width:?} {m}x{n}x{k} ({i},{j}): {got} vs {want}"
                    );
                }
                assert!(c[i * ldc + n].is_nan(), "gap untouched");
            }
            // Rows split in two shares: bit-identical.
            let top = m / 2;
            let mut split = vec![f32::NAN; m * ldc];
            for (r0, r1) in [(0, top), (top, m)] {
                if r0 == r1 {
                    continue;
                }
                let av = MatRef {
                    data: &a[r0 * k..],
                    rows: r1 - r0,
                    cols: k,
                    row_stride: k as isize,
                    col_stride: 1,
                };
                let mut cv = MatMut {
                    data: &mut split[r0 * ldc..],
                    rows: r1 - r0,
                    cols: n,
                    row_stride: ldc as isize,
                    col_stride: 1,
                };
                product(width, &av, &bv, &mut cv);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&split), bits(&c), "{m}x{n}x{k}");
            // `b`'s columns every other element (a stride-2 convolution's taps), with
            // junk between: the same bits as the contiguous columns.
            let mut wide = vec![f32::NAN; n * 2 * k];
            for j in 0..n {
                for p in 0..k {
                    wide[j * 2 * k + 2 * p] = bt[j * k + p];
                }
            }
            let bw = MatRef {
                data: &wide[..(n - 1) * 2 * k + 2 * (k - 1) + 1],
                rows: k,
                cols: n,
                row_stride: 2,
                col_stride: 2 * k as isize,
            };
            assert!(fits(&av, &bw, m));
            let mut strided = vec![f32::NAN; m * ldc];
            let mut cv = MatMut {
                data: &mut strided,
                rows: m,
                cols: n,
                row_stride: ldc as isize,
                col_stride: 1,
            };
            product(width, &av, &bw, &mut cv);
            assert_eq!(bits(&strided), bits(&c), "{m}x{n}x{k} stride 2");
        }
    }

    #[test]
    fn short_or_strided_products_do_not_fit() {
        let a = values(64 * 2048, 1);
        let av = MatRef {
            data: &a,
            rows: 64,
            cols: 2048,
            row_stride: 2048,
            col_stride: 1,
        };
        let short = MatRef {
            data: &a,
            rows: 512,
            cols: 4,
            row_stride: 1,
            col_stride: 512,
        };
        let bv = MatRef {
            data: &a,
            rows: 2048,
            cols: 4,
            row_stride: 1,
            col_stride: 2048,
        };
        let strided = MatRef {
            data: &a,
            rows: 2048,
            cols: 4,
            row_stride: 4,
            col_stride: 1,
        };
        assert!(
            !fits(&av, &strided, 64),
            "b neither contiguous nor every other along k"
        );
        assert!(
            !fits(&MatRef { cols: 512, ..av }, &short, 64),
            "k too short"
        );
        assert!(
            !fits(&av, &bv, 2048),
            "too many outputs in the whole product"
        );
    }
}
