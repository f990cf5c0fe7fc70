//! `exp`: Cody–Waite reduction `x = k·ln2 + r`, `|r| <= ln2/2`, a minimax polynomial
//! `e^r ≈ 1 + r + r²·P(r)` (f64) or `1 + c1·r + … + c6·r⁶` (f32, plain Horner), and
//! scaling by `2^k` built from exponent bits. The f32 pieces ([`reduce32`],
//! [`exp32_coeffs`], [`scale32`]) are shared with f32 `tanh` and `sigmoid`.

use super::common::{fast_two_sum, Ctx};
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// `P` for f32, degree 4 on `|r| <= 0.35` (relative error of `1 + r + r²P` 4.8e-9
/// with the coefficients rounded to f32).
const P32: [f64; 5] = [
    0.4999999403953552,
    0.16666515171527863,
    0.04166845604777336,
    0.008369410410523415,
    0.0013813161058351398,
];

/// `P` for f64, degree 9 on `|r| <= 0.347` (relative error 8.9e-18).
const P64: [f64; 10] = [
    0.5000000000000011,
    0.1666666666666641,
    0.04166666666652894,
    0.008333333333495925,
    0.0013888888943997739,
    0.00019841269504291834,
    2.4801492676595923e-05,
    2.755758759811139e-06,
    2.7630411986512495e-07,
    2.4999938168631252e-08,
];

/// How much of the range an `exp` call must handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Range {
    /// Every input: clamps to the overflow/underflow thresholds and scales in two
    /// steps, so results overflow to `inf` and underflow through the denormals to 0.
    Full,
    /// The caller guarantees `|x| <= 60` (or NaN): one scaling step.
    Small,
}

/// `e^x`; for the full range see [`Range::Full`].
pub(crate) fn exp(b: &mut FunctionBuilder, cx: Ctx, x: Value, range: Range) -> Value {
    if cx.wide {
        exp_dd(b, cx, x, None, range)
    } else {
        exp32(b, cx, x)
    }
}

/// f32 `e^r ≈ 1 + c1·r + … + c6·r⁶` on `|r| <= ln2/2` (Remez for relative error,
/// `c0 = 1` fixed so that `e^0 = 1`; relative error 2.6e-9 before rounding the
/// coefficients to f32).
pub(crate) const E32: [f64; 7] = [
    1.0,
    1.0000000496403256,
    0.5000000434370826,
    0.16666365441472305,
    0.04166477731044279,
    0.008379011147659494,
    0.0014061239504546833,
];

/// f32 `log2(e)`, and `ln2 = LN2_HI + LN2_LO` with `LN2_HI` the f32 nearest `ln2`.
pub(crate) const LOG2E_32: f64 = 1.4426950216293335;
pub(crate) const LN2_HI_32: f64 = 0.6931471824645996;
pub(crate) const LN2_LO_32: f64 = -1.9046542121259336e-09;

/// The coefficients of `e^{a·r}` in powers of `r` (`a` = 1, -1 or 2: exact scalings).
pub(crate) fn exp32_coeffs(a: f64) -> [f64; 7] {
    let mut c = E32;
    let mut m = 1.0;
    for ci in &mut c {
        *ci *= m;
        m *= a;
    }
    c
}

/// f32 range reduction for `e^{a·v}` (`a` = 1, -1 or 2, `|a·v| <= 150`): returns
/// `(t, r)` with `t = fl(a·v·log2e + 1.5·2^23 + bias)`, whose low mantissa bits hold
/// `k + bias` for `k = nearest(a·v·log2e)`, and `r = v - k·ln2/a` (`|r| <= ln2/2/|a|`,
/// the first `fma` exact), so that `e^{a·v} = 2^k·e^{a·r}`.
pub(crate) fn reduce32(
    b: &mut FunctionBuilder,
    cx: Ctx,
    v: Value,
    a: f64,
    bias: i64,
    two_step: bool,
) -> (Value, Value) {
    let shifter = cx.f(b, 1.5 * (2f64).powi(23) + bias as f64);
    let l = cx.f(b, a * LOG2E_32);
    let t = cx.fma(b, v, l, shifter);
    let k = b.ins().fsub(t, shifter);
    let hi = cx.f(b, -LN2_HI_32 / a);
    let r = cx.fma(b, k, hi, v);
    if !two_step {
        return (t, r);
    }
    let lo = cx.f(b, -LN2_LO_32 / a);
    let r = cx.fma(b, k, lo, r);
    (t, r)
}

/// `2^(k + bias - 127)` from the `t` of [`reduce32`] (valid while `k + bias` is in
/// `[1, 254]`): the low bits of `t` shifted into the exponent field (the shifter's own
/// bits fall off the top).
pub(crate) fn scale32(b: &mut FunctionBuilder, cx: Ctx, t: Value) -> Value {
    let bits = cx.as_int(b, t);
    let e = b.ins().ishl_imm_u(bits, 23);
    cx.as_float(b, e)
}

/// f32 `e^x` over the whole range. `x` is clamped to `[-104, 89]`, then
/// `e^x = 2^k·P(r)` with `2^k` split into two normal powers of two by integer
/// arithmetic on the bits of `t` (`v = k + 254` in `[104, 382]`: `2^(v>>1 - 127)` and
/// `2^(v - v>>1 - 127)`), so multiplying by the first is exact and by the second
/// rounds once, into the denormals or to infinity as needed.
fn exp32(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> Value {
    let x = cx.clamp(b, x, -104.0, 89.0);
    let (t, r) = reduce32(b, cx, x, 1.0, 254, true);
    let p = cx.poly(b, r, &E32);
    let bits = cx.as_int(b, t);
    // (bits << 22) & exponent mask = (v >> 1) << 23; bits << 23 = v << 23 (mod 2^32).
    let h = b.ins().ishl_imm_u(bits, 22);
    let mask = cx.i(b, 0x7f80_0000);
    let s1 = b.ins().band(h, mask);
    let all = b.ins().ishl_imm_u(bits, 23);
    let s2 = b.ins().isub(all, s1);
    let s1 = cx.as_float(b, s1);
    let s2 = cx.as_float(b, s2);
    let y = b.ins().fmul(p, s1);
    b.ins().fmul(y, s2)
}

/// `e^(x + lo)` where `lo` is a small correction (`|lo| <= ulp(x)`), used by `pow` to
/// carry the low part of `y·log(x)`. `lo` must be finite.
pub(crate) fn exp_dd(
    b: &mut FunctionBuilder,
    cx: Ctx,
    x: Value,
    lo: Option<Value>,
    range: Range,
) -> Value {
    let x = match range {
        // e^89 > f32::MAX and e^-104 < 2^-150 (rounds to 0); likewise for f64.
        Range::Full => cx.clamp(b, x, cx.pick(-104.0, -746.0), cx.pick(89.0, 710.0)),
        Range::Small => x,
    };
    let (k, mut r) = reduce_ln2(b, cx, x);
    if let Some(lo) = lo {
        r = b.ins().fadd(r, lo);
    }
    // e^r = 1 + (r + r²·P(r)).
    let r2 = b.ins().fmul(r, r);
    let p = cx.poly(b, r, cx.pick(&P32[..], &P64[..]));
    let q = cx.fma(b, r2, p, r);
    let one = cx.f(b, 1.0);
    let er = b.ins().fadd(q, one);
    match range {
        Range::Full => {
            let (s1, s2) = split_pow2(b, cx, k);
            let y = b.ins().fmul(er, s1);
            b.ins().fmul(y, s2)
        }
        Range::Small => {
            let s = cx.pow2(b, k);
            b.ins().fmul(er, s)
        }
    }
}

/// Argument reduction of `e^x`: `k = nearest(x·log2e)` (adding `1.5·2^m` rounds to an
/// integer, ties to even) and `r = x - k·ln2` in two `fma`s with `ln2` split in a high
/// and a low part (the first is exact: `|r| < 0.35` fits the mantissa).
fn reduce_ln2(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> (Value, Value) {
    let log2e = cx.f(b, cx.pick(1.4426950216293335, std::f64::consts::LOG2_E));
    let shifter = cx.f(b, 1.5 * (2f64).powi(cx.mant_bits() as i32));
    let t = cx.fma(b, x, log2e, shifter);
    let k = b.ins().fsub(t, shifter);
    let nk = b.ins().fneg(k);
    let ln2_hi = cx.f(b, cx.pick(0.6931471824645996, std::f64::consts::LN_2));
    let ln2_lo = cx.f(b, cx.pick(-1.9046542121259336e-09, 2.3190468138462996e-17));
    let r = cx.fma(b, nk, ln2_hi, x);
    (k, cx.fma(b, nk, ln2_lo, r))
}

/// `2^k` as a product of two normal powers of two, for `k` in `[-150, 128]` (f32) /
/// `[-1076, 1024]` (f64): multiplying by the first is exact and by the second rounds
/// once, into the denormals or to infinity as needed.
fn split_pow2(b: &mut FunctionBuilder, cx: Ctx, k: Value) -> (Value, Value) {
    let half = cx.f(b, 0.5);
    let kh = b.ins().fmul(k, half);
    let k1 = b.ins().nearest(kh);
    let k2 = b.ins().fsub(k, k1);
    (cx.pow2(b, k1), cx.pow2(b, k2))
}

/// `e^x` for `x <= 0` as an unevaluated sum `hi + lo` (`|lo| <= ulp(hi)/2`), more
/// accurate than [`exp`]'s rounded result (error ~0.3 ulp of `hi`). `-inf` gives 0,
/// NaN gives NaN; results below the smallest normal are on the denormal grid.
pub(crate) fn exp_neg_parts(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> (Value, Value) {
    let lo = cx.f(b, cx.pick(-104.0, -746.0));
    let x = cx.max_keep_nan(b, x, lo);
    let (k, r) = reduce_ln2(b, cx, x);
    let r2 = b.ins().fmul(r, r);
    let p = cx.poly(b, r, cx.pick(&P32[..], &P64[..]));
    let q = cx.fma(b, r2, p, r);
    // e^x = s·(1 + q) with s = 2^k (exact, or on the denormal grid).
    let (s1, s2) = split_pow2(b, cx, k);
    let s = b.ins().fmul(s1, s2);
    let sq = b.ins().fmul(s, q);
    fast_two_sum(b, s, sq)
}
