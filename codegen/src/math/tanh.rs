//! `tanh` and `sigmoid`, built on the `exp` kernel.
//!
//! - `tanh`: `|x| < 0.5493` (where `tanh = 1/2`): odd minimax `x + x³·P(x²)` (no
//!   cancellation, exact sign of zero); otherwise `1 - 2/(e^{2|x|} + 1)` with the sign
//!   of `x` or'ed back, `|x|` clamped to 9.5 / 19.5 first (beyond which `tanh` rounds
//!   to ±1), so `e^{2|x|}` never overflows.
//! - `sigmoid`: `z = e^{-|x|}` as an unevaluated sum `zh + zl` (full range, so `z` can
//!   be denormal), then `1/(1+z)` for `x >= 0` and `z/(1+z)` for `x < 0` from one
//!   reciprocal and a residual correction that accounts for the rounding of `1 + z`
//!   and for `zl`: no overflow, no `inf/inf`.

use super::common::Ctx;
use super::exp::{exp, exp_neg_parts, Range};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// f32 `P(t)`, `tanh(x) ≈ x + x³·P(x²)` on `|x| <= 0.5494`, relative error 4.8e-9.
const P32: [f64; 5] = [
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
const SMALL: f64 = 0.5493061443340549;

/// Hyperbolic tangent.
pub(crate) fn tanh(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> Value {
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

/// Logistic sigmoid `1/(1 + e^{-x})`.
pub(crate) fn sigmoid(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> Value {
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
