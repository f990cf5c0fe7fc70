//! `exp`, `log`, `tanh`, `sigmoid`, `sin` and `cos` on the engine's vectors, for every
//! width ([`Lanes`]: 16 lanes on AVX-512, 8 on AVX2).
//!
//! These are the f32 algorithms of [`crate::math`] (same range reductions, same
//! coefficients rounded to f32 the same way, same operation order with `fma` where
//! the CLIF uses `fma`; on 16 lanes `exp`'s final scaling by `2ⁿ` is one SCALEFPS
//! where the CLIF multiplies twice, one rounding of the same exact product either
//! way), so a lane computes bit for bit what the Cranelift kernel's f32x4 lane
//! computes, whatever the width; `tests/engine.rs` checks that over sweeps
//! of the whole f32 range. The algorithms, their error bounds and special values are
//! documented in `crate::math`.

use super::lanes::{Lanes, Pred};

/// Coefficient tables of `crate::math`, shared so the two implementations cannot
/// drift apart.
use crate::math::tables::{
    exp32_coeffs, COS_C32, E32, LN2_HI32_LOG, LN2_HI_32, LN2_LO32_LOG, LN2_LO_32, LOG2E_32,
    PIO2_32, Q32_LOG, SIN_S32, TANH_P32, TANH_SMALL,
};

#[inline(always)]
fn c<L: Lanes>(l: L, v: f64) -> L::V {
    l.splat(v as f32)
}

/// `c[0] + x·(c[1] + x·(c[2] + …))` by Horner's rule with `fma`.
#[inline(always)]
fn poly<L: Lanes>(l: L, x: L::V, cs: &[f64]) -> L::V {
    let (last, rest) = cs.split_last().expect("non-empty polynomial");
    let mut acc = c(l, *last);
    for &ci in rest.iter().rev() {
        acc = l.fmadd(acc, x, c(l, ci));
    }
    acc
}

/// `min(x, hi)` keeping a NaN `x` (`hi < x ? hi : x`).
#[inline(always)]
fn min_keep_nan<L: Lanes>(l: L, x: L::V, hi: f64) -> L::V {
    // MINPS returns its second operand unless the first is smaller.
    l.min_raw(c(l, hi), x)
}

/// `max(x, lo)` keeping a NaN `x` (`x < lo ? lo : x`).
#[inline(always)]
fn max_keep_nan<L: Lanes>(l: L, x: L::V, lo: f64) -> L::V {
    l.max_raw(c(l, lo), x)
}

/// The reduction of `crate::math::exp::reduce32` for `e^{a·v}`.
#[inline(always)]
fn reduce32<L: Lanes>(l: L, v: L::V, a: f64, bias: i64, two_step: bool) -> (L::V, L::V) {
    let shifter = c(l, 1.5 * (2f64).powi(23) + bias as f64);
    let t = l.fmadd(v, c(l, a * LOG2E_32), shifter);
    let k = l.sub(t, shifter);
    let r = l.fmadd(k, c(l, -LN2_HI_32 / a), v);
    if !two_step {
        return (t, r);
    }
    (t, l.fmadd(k, c(l, -LN2_LO_32 / a), r))
}

/// `2^(k + bias - 127)` from the `t` of [`reduce32`].
#[inline(always)]
fn scale32<L: Lanes>(l: L, t: L::V) -> L::V {
    l.shl_23(t)
}

/// `e^x` (`crate::math::exp`, f32).
#[inline(always)]
pub(crate) fn exp<L: Lanes>(l: L, x: L::V) -> L::V {
    let x = max_keep_nan(l, min_keep_nan(l, x, 89.0), -104.0);
    let (t, r) = reduce32(l, x, 1.0, 254, true);
    let p = poly(l, r, &E32);
    // The exponent `n` as a float: the same `t - shifter` as in `reduce32` (computed
    // once after inlining).
    let n = l.sub(t, c(l, 1.5 * (2f64).powi(23) + 254.0));
    l.scale_pow2(p, t, n)
}

/// `tanh(x)` (`crate::math::tanh`, f32).
#[inline(always)]
pub(crate) fn tanh<L: Lanes>(l: L, x: L::V) -> L::V {
    let sign = l.splat_bits(0x8000_0000);
    let ax = l.andnot(sign, x);
    let t2 = l.mul(ax, ax);
    let p = poly(l, t2, &TANH_P32);
    let x3 = l.mul(ax, t2);
    let small = l.fmadd(x3, p, ax);
    let axc = min_keep_nan(l, ax, 9.1);
    let (t, r) = reduce32(l, axc, 2.0, 127, false);
    let e = poly(l, r, &exp32_coeffs(2.0));
    let s = scale32(l, t);
    let one = c(l, 1.0);
    let d = l.fmadd(e, s, one);
    let q = l.div(c(l, 2.0), d);
    let large = l.sub(one, q);
    let is_small = l.cmp(Pred::Lt, ax, c(l, TANH_SMALL));
    let m = l.blend(is_small, large, small);
    l.or(m, l.and(x, sign))
}

/// `1/(1 + e^{-x})` (`crate::math::sigmoid`, f32).
#[inline(always)]
pub(crate) fn sigmoid<L: Lanes>(l: L, x: L::V) -> L::V {
    let x = max_keep_nan(l, min_keep_nan(l, x, 18.0), -104.0);
    let (t, r) = reduce32(l, x, -1.0, 127 - 64, true);
    let q = poly(l, r, &exp32_coeffs(-1.0)[1..]);
    let s = scale32(l, t);
    let cc = c(l, (2f64).powi(-64));
    let rs = l.mul(r, s);
    let a = l.add(s, cc);
    let e = l.sub(cc, l.sub(a, s));
    let d = l.fmadd(rs, q, a);
    let y = l.div(cc, d);
    let res = l.fnmadd(y, d, cc);
    let res = l.fnmadd(y, e, res);
    let inv = l.mul(y, c(l, (2f64).powi(64)));
    l.fmadd(res, inv, y)
}

/// Natural logarithm (`crate::math::log`, f32).
#[inline(always)]
pub(crate) fn log<L: Lanes>(l: L, x: L::V) -> L::V {
    // x = 2^e·(1 + f), denormals pre-scaled by 2^24.
    let den = l.cmp(Pred::Lt, x, c(l, f64::from(f32::MIN_POSITIVE)));
    let xs = l.blend(den, x, l.mul(x, c(l, (2f64).powi(24))));
    let eadj = l.blend(den, c(l, 0.0), c(l, -24.0));
    let t = l.add_i(xs, l.splat_bits(((127 << 23) - 0x3F35_04F3) as u32));
    let u = l.shr_23(t);
    let mbits = l.add_i(l.sub_i(xs, l.shl_23(u)), l.splat_bits(127 << 23));
    let f = l.sub(mbits, c(l, 1.0));
    // `u` is small and non-negative: the conversion is exact, like the CLIF's.
    let e = l.add(l.sub(l.i32_to_f32(u), c(l, 127.0)), eadj);
    // log(x) = e·ln2_hi + (f + (f²·Q(f) + e·ln2_lo)).
    let f2 = l.mul(f, f);
    let q = poly(l, f, &Q32_LOG);
    let elo = l.mul(e, c(l, LN2_LO32_LOG));
    let y = l.fmadd(f2, q, elo);
    let v = l.add(f, y);
    let r = l.fmadd(e, c(l, LN2_HI32_LOG), v);
    // Specials: log(x < 0) = NaN, log(±0) = -inf, log(inf) = inf, NaN stays NaN.
    let zero = c(l, 0.0);
    let neg = l.cmp(Pred::Lt, x, zero);
    let v = l.blend(neg, x, c(l, f64::NAN));
    let is0 = l.cmp(Pred::Eq, x, zero);
    let v = l.blend(is0, v, c(l, f64::NEG_INFINITY));
    let pos = l.cmp(Pred::Gt, x, zero);
    let fin = l.cmp(Pred::Lt, x, c(l, f64::INFINITY));
    l.blend(l.mask_and(pos, fin), v, r)
}

/// `x - k·π/2`, the π/2 in three parts, one `fma` each (`crate::math::trig`).
#[inline(always)]
fn reduce_pio2<L: Lanes>(l: L, x: L::V, k: L::V) -> L::V {
    let nk = l.xor(k, c(l, -0.0));
    let mut r = x;
    for p in PIO2_32 {
        r = l.fmadd(nk, c(l, p), r);
    }
    r
}

/// `sin(x)` (`cosine = false`) or `cos(x)` (`crate::math::sin`/`cos`, f32).
#[inline(always)]
pub(crate) fn sincos<L: Lanes>(l: L, x: L::V, cosine: bool) -> L::V {
    let two_over_pi = c(l, std::f64::consts::FRAC_2_PI);
    let k = l.nearest(l.mul(x, two_over_pi));
    let r = reduce_pio2(l, x, k);
    // A second reduction step from `r` (see `crate::math::trig`).
    let j = l.nearest(l.mul(r, two_over_pi));
    let r = reduce_pio2(l, r, j);
    let k = l.add(k, j);
    let r2 = l.mul(r, r);
    let sp = poly(l, r2, &SIN_S32);
    let r3 = l.mul(r, r2);
    let s = l.fmadd(r3, sp, r);
    let cp = poly(l, r2, &COS_C32);
    let r4 = l.mul(r2, r2);
    let one = c(l, 1.0);
    let c0 = l.fmadd(c(l, -0.5), r2, one);
    let cr = l.fmadd(r4, cp, c0);
    // Quadrant n = k (sin) or k + 1 (cos); bit 0 picks cos r, bit 1 negates.
    let n = if cosine { l.add(k, one) } else { k };
    let two = c(l, 2.0);
    let h = l.floor(l.mul(n, c(l, 0.5)));
    let h2 = l.floor(l.mul(n, c(l, 0.25)));
    let bit0 = l.fmadd(l.xor(h, c(l, -0.0)), two, n);
    let bit1 = l.fmadd(l.xor(h2, c(l, -0.0)), two, h);
    let odd = l.cmp(Pred::Eq, bit0, one);
    let v = l.blend(odd, s, cr);
    let negate = l.cmp(Pred::Eq, bit1, one);
    let sign = l.blend(negate, c(l, 0.0), c(l, -0.0));
    let res = l.xor(v, sign);
    let res = max_keep_nan(l, min_keep_nan(l, res, 1.0), -1.0);
    if cosine {
        res
    } else {
        // sin(±0) = ±0.
        let is0 = l.cmp(Pred::Eq, x, c(l, 0.0));
        l.blend(is0, res, x)
    }
}
