//! `exp`, `log`, `tanh`, `sigmoid`, `sin` and `cos` on 16 f32 lanes (AVX-512F/DQ).
//!
//! These are the f32 algorithms of [`crate::math`] (same range reductions, same
//! coefficients rounded to f32 the same way, same operation order with `fma` where
//! the CLIF uses `fma`), so a lane computes bit for bit what the Cranelift kernel's
//! f32x4 lane computes; `tests/avx512_engine.rs` checks that over sweeps of the
//! whole f32 range. The algorithms, their error bounds and special values are
//! documented in `crate::math`.

use std::arch::x86_64::*;

/// Coefficient tables of `crate::math`, shared so the two implementations cannot
/// drift apart.
use crate::math::tables::{
    exp32_coeffs, COS_C32, E32, LN2_HI32_LOG, LN2_HI_32, LN2_LO32_LOG, LN2_LO_32, LOG2E_32,
    PIO2_32, Q32_LOG, SIN_S32, TANH_P32, TANH_SMALL,
};

#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn c(v: f64) -> __m512 {
    _mm512_set1_ps(v as f32)
}

/// `c[0] + x·(c[1] + x·(c[2] + …))` by Horner's rule with `fma`.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn poly(x: __m512, cs: &[f64]) -> __m512 {
    let (last, rest) = cs.split_last().expect("non-empty polynomial");
    let mut acc = c(*last);
    for &ci in rest.iter().rev() {
        acc = _mm512_fmadd_ps(acc, x, c(ci));
    }
    acc
}

/// `min(x, hi)` keeping a NaN `x` (`hi < x ? hi : x`).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn min_keep_nan(x: __m512, hi: f64) -> __m512 {
    // MINPS returns its second operand unless the first is smaller.
    _mm512_min_ps(c(hi), x)
}

/// `max(x, lo)` keeping a NaN `x` (`x < lo ? lo : x`).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn max_keep_nan(x: __m512, lo: f64) -> __m512 {
    _mm512_max_ps(c(lo), x)
}

/// The reduction of `crate::math::exp::reduce32` for `e^{a·v}`.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn reduce32(v: __m512, a: f64, bias: i64, two_step: bool) -> (__m512, __m512) {
    let shifter = c(1.5 * (2f64).powi(23) + bias as f64);
    let t = _mm512_fmadd_ps(v, c(a * LOG2E_32), shifter);
    let k = _mm512_sub_ps(t, shifter);
    let r = _mm512_fmadd_ps(k, c(-LN2_HI_32 / a), v);
    if !two_step {
        return (t, r);
    }
    (t, _mm512_fmadd_ps(k, c(-LN2_LO_32 / a), r))
}

/// `2^(k + bias - 127)` from the `t` of [`reduce32`].
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn scale32(t: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_castps_si512(t)))
}

/// `e^x` (`crate::math::exp`, f32).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
pub fn exp(x: __m512) -> __m512 {
    let x = max_keep_nan(min_keep_nan(x, 89.0), -104.0);
    let (t, r) = reduce32(x, 1.0, 254, true);
    let p = poly(r, &E32);
    let bits = _mm512_castps_si512(t);
    let s1 = _mm512_and_si512(
        _mm512_slli_epi32::<22>(bits),
        _mm512_set1_epi32(0x7f80_0000),
    );
    let s2 = _mm512_sub_epi32(_mm512_slli_epi32::<23>(bits), s1);
    let y = _mm512_mul_ps(p, _mm512_castsi512_ps(s1));
    _mm512_mul_ps(y, _mm512_castsi512_ps(s2))
}

/// `tanh(x)` (`crate::math::tanh`, f32).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
pub fn tanh(x: __m512) -> __m512 {
    let sign = _mm512_set1_epi32(i32::MIN);
    let xi = _mm512_castps_si512(x);
    let ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
    let t2 = _mm512_mul_ps(ax, ax);
    let p = poly(t2, &TANH_P32);
    let x3 = _mm512_mul_ps(ax, t2);
    let small = _mm512_fmadd_ps(x3, p, ax);
    let axc = min_keep_nan(ax, 9.1);
    let (t, r) = reduce32(axc, 2.0, 127, false);
    let e = poly(r, &exp32_coeffs(2.0));
    let s = scale32(t);
    let one = c(1.0);
    let d = _mm512_fmadd_ps(e, s, one);
    let q = _mm512_div_ps(c(2.0), d);
    let large = _mm512_sub_ps(one, q);
    let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(ax, c(TANH_SMALL));
    let m = _mm512_mask_blend_ps(is_small, large, small);
    _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(m),
        _mm512_and_si512(xi, sign),
    ))
}

/// `1/(1 + e^{-x})` (`crate::math::sigmoid`, f32).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
pub fn sigmoid(x: __m512) -> __m512 {
    let x = max_keep_nan(min_keep_nan(x, 18.0), -104.0);
    let (t, r) = reduce32(x, -1.0, 127 - 64, true);
    let q = poly(r, &exp32_coeffs(-1.0)[1..]);
    let s = scale32(t);
    let cc = c((2f64).powi(-64));
    let rs = _mm512_mul_ps(r, s);
    let a = _mm512_add_ps(s, cc);
    let e = _mm512_sub_ps(cc, _mm512_sub_ps(a, s));
    let d = _mm512_fmadd_ps(rs, q, a);
    let y = _mm512_div_ps(cc, d);
    let res = _mm512_fnmadd_ps(y, d, cc);
    let res = _mm512_fnmadd_ps(y, e, res);
    let inv = _mm512_mul_ps(y, c((2f64).powi(64)));
    _mm512_fmadd_ps(res, inv, y)
}

/// Natural logarithm (`crate::math::log`, f32).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
pub fn log(x: __m512) -> __m512 {
    // x = 2^e·(1 + f), denormals pre-scaled by 2^24.
    let den = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, c(f64::from(f32::MIN_POSITIVE)));
    let xs = _mm512_mask_blend_ps(den, x, _mm512_mul_ps(x, c((2f64).powi(24))));
    let eadj = _mm512_mask_blend_ps(den, c(0.0), c(-24.0));
    let bits = _mm512_castps_si512(xs);
    let t = _mm512_add_epi32(bits, _mm512_set1_epi32((127 << 23) - 0x3F35_04F3));
    let u = _mm512_srli_epi32::<23>(t);
    let mbits = _mm512_add_epi32(
        _mm512_sub_epi32(bits, _mm512_slli_epi32::<23>(u)),
        _mm512_set1_epi32(127 << 23),
    );
    let f = _mm512_sub_ps(_mm512_castsi512_ps(mbits), c(1.0));
    // `u` is small and non-negative: the conversion is exact, like the CLIF's.
    let e = _mm512_add_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(u), c(127.0)), eadj);
    // log(x) = e·ln2_hi + (f + (f²·Q(f) + e·ln2_lo)).
    let f2 = _mm512_mul_ps(f, f);
    let q = poly(f, &Q32_LOG);
    let elo = _mm512_mul_ps(e, c(LN2_LO32_LOG));
    let y = _mm512_fmadd_ps(f2, q, elo);
    let v = _mm512_add_ps(f, y);
    let r = _mm512_fmadd_ps(e, c(LN2_HI32_LOG), v);
    // Specials: log(x < 0) = NaN, log(±0) = -inf, log(inf) = inf, NaN stays NaN.
    let zero = c(0.0);
    let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, zero);
    let v = _mm512_mask_blend_ps(neg, x, c(f64::NAN));
    let is0 = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, zero);
    let v = _mm512_mask_blend_ps(is0, v, c(f64::NEG_INFINITY));
    let pos = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, zero);
    let fin = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, c(f64::INFINITY));
    _mm512_mask_blend_ps(pos & fin, v, r)
}

/// `x - k·π/2`, the π/2 in three parts, one `fma` each (`crate::math::trig`).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn reduce_pio2(x: __m512, k: __m512) -> __m512 {
    let nk = _mm512_xor_ps(k, c(-0.0));
    let mut r = x;
    for p in PIO2_32 {
        r = _mm512_fmadd_ps(nk, c(p), r);
    }
    r
}

#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn nearest(x: __m512) -> __m512 {
    _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x)
}

#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn floor(x: __m512) -> __m512 {
    _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(x)
}

/// `sin(x)` (`cosine = false`) or `cos(x)` (`crate::math::sin`/`cos`, f32).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
pub fn sincos(x: __m512, cosine: bool) -> __m512 {
    let two_over_pi = c(std::f64::consts::FRAC_2_PI);
    let k = nearest(_mm512_mul_ps(x, two_over_pi));
    let r = reduce_pio2(x, k);
    // A second reduction step from `r` (see `crate::math::trig`).
    let j = nearest(_mm512_mul_ps(r, two_over_pi));
    let r = reduce_pio2(r, j);
    let k = _mm512_add_ps(k, j);
    let r2 = _mm512_mul_ps(r, r);
    let sp = poly(r2, &SIN_S32);
    let r3 = _mm512_mul_ps(r, r2);
    let s = _mm512_fmadd_ps(r3, sp, r);
    let cp = poly(r2, &COS_C32);
    let r4 = _mm512_mul_ps(r2, r2);
    let one = c(1.0);
    let c0 = _mm512_fmadd_ps(c(-0.5), r2, one);
    let cr = _mm512_fmadd_ps(r4, cp, c0);
    // Quadrant n = k (sin) or k + 1 (cos); bit 0 picks cos r, bit 1 negates.
    let n = if cosine { _mm512_add_ps(k, one) } else { k };
    let two = c(2.0);
    let h = floor(_mm512_mul_ps(n, c(0.5)));
    let h2 = floor(_mm512_mul_ps(n, c(0.25)));
    let bit0 = _mm512_fmadd_ps(_mm512_xor_ps(h, c(-0.0)), two, n);
    let bit1 = _mm512_fmadd_ps(_mm512_xor_ps(h2, c(-0.0)), two, h);
    let odd = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(bit0, one);
    let v = _mm512_mask_blend_ps(odd, s, cr);
    let negate = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(bit1, one);
    let sign = _mm512_mask_blend_ps(negate, c(0.0), c(-0.0));
    let res = _mm512_xor_ps(v, sign);
    let res = max_keep_nan(min_keep_nan(res, 1.0), -1.0);
    if cosine {
        res
    } else {
        // sin(±0) = ±0.
        let is0 = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, c(0.0));
        _mm512_mask_blend_ps(is0, res, x)
    }
}
