//! Transposing copies for packing a matrix product's operand: `b`'s columns (each
//! contiguous along `k`, e.g. `kᵀ` of a row-major `k`, or a `Linear` weight `Wᵀ`)
//! into the rows of a panel, by 4 × 4 blocks transposed in SSE registers.

// SSE loads and stores on raw pointers over checked slices.
#![allow(unsafe_code)]

/// Index of the last element of a `k × n` view with unit row stride and column
/// stride `csb` (`n, k ≥ 1`).
pub(super) fn last_col(k: usize, n: usize, csb: usize) -> usize {
    (n - 1) * csb + k - 1
}

/// `panel[p·np + j] = b[j·csb + p]` for `p < k`, `j < n`: `b`'s columns (contiguous
/// along `p`, e.g. `kᵀ` of a row-major `k`) into the panel's rows, by 4 × 4 blocks
/// transposed in SSE registers (baseline x86-64; scalar copies at the edges): a scalar
/// loop writes a different panel row for every element.
pub(super) fn transpose_into(
    b: &[f32],
    k: usize,
    n: usize,
    csb: usize,
    panel: &mut [f32],
    np: usize,
) {
    use std::arch::x86_64::{
        _mm_loadu_ps, _mm_movehl_ps, _mm_movelh_ps, _mm_storeu_ps, _mm_unpackhi_ps, _mm_unpacklo_ps,
    };
    assert!(
        b.len() > last_col(k, n, csb) && panel.len() >= k * np && n <= np,
        "transpose_into: a view reaches outside its slice"
    );
    let (k4, n4) = (k - k % 4, n - n % 4);
    // By blocks of `P_BLOCK` panel rows, so the rows written stay in L1 while every
    // group of four columns fills its part of them (a long panel swept whole per group
    // leaves L1 between groups).
    const P_BLOCK: usize = 64;
    for p0 in (0..k4).step_by(P_BLOCK) {
        for j in (0..n4).step_by(4) {
            for p in (p0..k4.min(p0 + P_BLOCK)).step_by(4) {
                // SAFETY: SSE is part of x86-64; the four loads read `b[(j + r)·csb + p ..
                // + 4]` with j + r < n and p + 4 <= k, the four stores write `panel[(p +
                // r)·np + j .. + 4]` with p + r < k and j + 4 <= n <= np: inside both
                // slices (asserted above).
                unsafe {
                    let src = b.as_ptr().add(j * csb + p);
                    let r0 = _mm_loadu_ps(src);
                    let r1 = _mm_loadu_ps(src.add(csb));
                    let r2 = _mm_loadu_ps(src.add(2 * csb));
                    let r3 = _mm_loadu_ps(src.add(3 * csb));
                    let t0 = _mm_unpacklo_ps(r0, r1);
                    let t1 = _mm_unpacklo_ps(r2, r3);
                    let t2 = _mm_unpackhi_ps(r0, r1);
                    let t3 = _mm_unpackhi_ps(r2, r3);
                    let dst = panel.as_mut_ptr().add(p * np + j);
                    _mm_storeu_ps(dst, _mm_movelh_ps(t0, t1));
                    _mm_storeu_ps(dst.add(np), _mm_movehl_ps(t1, t0));
                    _mm_storeu_ps(dst.add(2 * np), _mm_movelh_ps(t2, t3));
                    _mm_storeu_ps(dst.add(3 * np), _mm_movehl_ps(t3, t2));
                }
            }
        }
    }
    for j in 0..n {
        let from = if j < n4 { k4 } else { 0 };
        for p in from..k {
            panel[p * np + j] = b[j * csb + p];
        }
    }
}
