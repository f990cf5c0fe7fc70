//! `tanh` and `sigmoid`, built on the `exp` kernel.
//!
//! f32 (lean: no compensated arithmetic but one correction step in `sigmoid`):
//! - `tanh`: on `|x|`, the sign or'ed back at the end. `|x| < 0.5493` (where
//!   `tanh = 1/2`): odd minimax `|x| + |x|³·P(x²)`; otherwise `1 - 2/(1 + e^{2|x|})`
//!   with `|x|` clamped to 9.1 (beyond 9.01 `tanh` rounds to 1), `e^{2|x|} = 2^k·E(r)`
//!   from a one-step reduction (`k <= 27`, so `ln2` rounded to f32 is enough) and
//!   `1 + 2^k·E` a single `fma`.
//! - `sigmoid`: `x` clamped to `[-104, 18]`, `e^{-x} = 2^k·(1 + r·Q(r))`; with
//!   `c = 2^-64` and `s = c·2^k` (normal for every `k` in `[-26, 150]`) the quotient
//!   `y = c / fma(r·s, Q, s + c)` has no overflow and lands right in the denormals
//!   (`sigmoid(-100) ≈ 3.7e-44`); one residual correction of `y` (the only
//!   compensated step of the f32 functions) keeps it within 1.67 ulp.
//!
//! f64:
//! - `tanh`: `|x| < 0.5493`: odd minimax `x + x³·P(x²)` (no cancellation, exact sign
//!   of zero); otherwise `1 - 2/(e^{2|x|} + 1)` with the sign of `x` or'ed back, `|x|`
//!   clamped to 19.5 first (beyond which `tanh` rounds to ±1), so `e^{2|x|}` never
//!   overflows.
//! - `sigmoid`: `z = e^{-|x|}` as an unevaluated sum `zh + zl` (full range, so `z` can
//!   be denormal), then `1/(1+z)` for `x >= 0` and `z/(1+z)` for `x < 0` from one
//!   reciprocal and a residual correction that accounts for the rounding of `1 + z`
//!   and for `zl`: no overflow, no `inf/inf`.

use super::common::Ctx;
use super::exp::{exp, exp32_coeffs, exp_neg_parts, reduce32, scale32, Range};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// f32 `P(t)`, `tanh(x) ≈ x + x³·P(x²)` on `|x| <= 0.5494`, relative error 4.8e-9.
pub(crate) const P32: [f64; 5] = [
    -0.33333316445350647,
    0.13332591950893402,
    -0.05385299026966095,
    0.021074684336781502,
    -0.006278763525187969,
];

/// f64 `P(t)`, degree 9, relative error 2.4e-17.
const P64: [f64; 10] = [
    -0.3333333333333233,
    0.13333333333171685,
    -0.05396825387755206,
    0.021869486010295987,
    -0.008863194985455285,
    0.00359172362259858,
    -0.0014532363958746429,
    0.0005791960165549071,
    -0.0002104000365302937,
    5.1089862350130755e-05,
];

/// Where the polynomial branch ends: `atanh(1/2)`, so `2/(e^{2|x|}+1) <= 1/2` on the
/// other branch and the subtraction from 1 loses nothing.
pub(crate) const SMALL: f64 = 0.5493061443340549;

/// Hyperbolic tangent.
pub(crate) fn tanh(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> Value {
    if !cx.wide {
        return tanh32(b, cx, x);
    }
    // Small branch.
    let t = b.ins().fmul(x, x);
    let p = cx.poly(b, t, cx.pick(&P32[..], &P64[..]));
    let x3 = b.ins().fmul(x, t);
    let small = cx.fma(b, x3, p, x);
    // Large branch (NaN propagates through the clamp and exp).
    let ax = cx.abs(b, x);
    let lim = cx.f(b, cx.pick(9.5, 19.5));
    let axc = cx.min_keep_nan(b, ax, lim);
    let two_ax = b.ins().fadd(axc, axc);
    let e = exp(b, cx, two_ax, Range::Small);
    let one = cx.f(b, 1.0);
    let two = cx.f(b, 2.0);
    let d = b.ins().fadd(e, one);
    let q = b.ins().fdiv(two, d);
    let l = b.ins().fsub(one, q);
    let large = cx.or_sign(b, l, x);
    let thr = cx.f(b, SMALL);
    let is_small = cx.fcmp(b, FloatCC::LessThan, ax, thr);
    let r = cx.sel(b, is_small, small, large);
    // tanh(±0) = ±0 (`x + x³·P` turns -0 into +0).
    let zero = cx.f(b, 0.0);
    let is0 = cx.fcmp(b, FloatCC::Equal, x, zero);
    cx.sel(b, is0, x, r)
}

/// f32 `tanh`: both branches on `|x|`, the sign or'ed back at the end (so `±0` and
/// NaN come out right). Large branch `1 - 2/(1 + e^{2|x|})` with `e^{2|x|} = 2^k·P`
/// and `1 + 2^k·P` one `fma` (`|x|` clamped to 9.1, where `tanh` rounds to 1).
fn tanh32(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> Value {
    let ax = cx.abs(b, x);
    // Small branch: |x| + |x|³·P(x²).
    let t2 = b.ins().fmul(ax, ax);
    let p = cx.poly(b, t2, &P32);
    let x3 = b.ins().fmul(ax, t2);
    let small = cx.fma(b, x3, p, ax);
    // Large branch.
    let lim = cx.f(b, 9.1);
    let axc = cx.min_keep_nan(b, ax, lim);
    let (t, r) = reduce32(b, cx, axc, 2.0, 127, false);
    let e = cx.poly(b, r, &exp32_coeffs(2.0));
    let s = scale32(b, cx, t);
    let one = cx.f(b, 1.0);
    let d = cx.fma(b, e, s, one);
    let two = cx.f(b, 2.0);
    let q = b.ins().fdiv(two, d);
    let large = b.ins().fsub(one, q);
    let thr = cx.f(b, SMALL);
    let is_small = cx.fcmp(b, FloatCC::LessThan, ax, thr);
    let m = cx.sel(b, is_small, small, large);
    cx.or_sign(b, m, x)
}

/// f32 `sigmoid`: `x` clamped to `[-104, 18]` (beyond 17.33 the result rounds to 1),
/// `E = e^{-x} = 2^k·(1 + r·Q(r))`, and with `c = 2^-64`, `s = c·2^k` (normal for
/// `k` in `[-26, 150]`) the result is `y = c / d`, `d = s + c + (r·s)·Q` (one `fma`;
/// no overflow, also right into the denormals for `x < -87.3`), then corrected once
/// with its residual: `y + (c - y·d - y·e)·(y·2^64)`, where `e` is what `s + c` lost
/// to rounding (k ≥ 24). Without the correction three roundings line up to 2.41 ulp
/// near `x = -16.6`; with it the sweep of `tests/math_ulp.rs` measures 1.67 ulp (6
/// more operations).
fn sigmoid32(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> Value {
    let x = cx.clamp(b, x, -104.0, 18.0);
    let (t, r) = reduce32(b, cx, x, -1.0, 127 - 64, true);
    let q = cx.poly(b, r, &exp32_coeffs(-1.0)[1..]);
    let s = scale32(b, cx, t);
    let c = cx.f(b, (2f64).powi(-64));
    let rs = b.ins().fmul(r, s);
    let a = b.ins().fadd(s, c);
    // `s + c` rounds when k >= 24; `e` is what it lost (Fast2Sum, s >= c).
    let lost = b.ins().fsub(a, s);
    let e = b.ins().fsub(c, lost);
    let d = cx.fma(b, rs, q, a);
    let y = b.ins().fdiv(c, d);
    // One correction of the quotient: y + (c - y·(d + e))/d, with 1/d = y·2^64.
    let ny = b.ins().fneg(y);
    let res = cx.fma(b, ny, d, c);
    let res = cx.fma(b, ny, e, res);
    let two64 = cx.f(b, (2f64).powi(64));
    let inv = b.ins().fmul(y, two64);
    cx.fma(b, res, inv, y)
}

/// Logistic sigmoid `1/(1 + e^{-x})`.
pub(crate) fn sigmoid(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> Value {
    if !cx.wide {
        return sigmoid32(b, cx, x);
    }
    // z = e^{-|x|} = zh + zl.
    let ax = cx.abs(b, x);
    let nax = b.ins().fneg(ax);
    let (zh, zl) = exp_neg_parts(b, cx, nax);
    // d = 1 + z = dh + dl (Fast2Sum, 1 >= z).
    let one = cx.f(b, 1.0);
    let dh = b.ins().fadd(one, zh);
    let t = b.ins().fsub(dh, one);
    let t = b.ins().fsub(zh, t);
    let dl = b.ins().fadd(t, zl);
    // n = 1 (x >= 0) or z (x < 0); result n/d with one Newton-style correction of
    // the quotient, so the rounding of 1 + z costs nothing.
    let zero = cx.f(b, 0.0);
    let neg = cx.fcmp(b, FloatCC::LessThan, x, zero);
    let nh = cx.sel(b, neg, zh, one);
    let nl = cx.sel(b, neg, zl, zero);
    let inv = b.ins().fdiv(one, dh);
    let q = b.ins().fmul(nh, inv);
    let nq = b.ins().fneg(q);
    let rho = cx.fma(b, nq, dh, nh);
    let rho = b.ins().fadd(rho, nl);
    let rho = cx.fma(b, nq, dl, rho);
    cx.fma(b, rho, inv, q)
}
