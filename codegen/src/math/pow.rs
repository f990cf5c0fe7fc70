//! `pow(x, y) = e^{y·log|x|}` with C99/PyTorch special cases.
//!
//! - f64: `log|x|` as a double-f64 ([`log_dd`], ~2^-63 relative), `y·log|x|` as a
//!   double-f64 product (via `fma`), and `exp` of the pair ([`exp_dd`]) so that a
//!   product as large as ±745 still leaves only a couple of ulp.
//! - f32: lanes are widened to f64 (`f32x4` as two `f64x2` halves) and the plain f64
//!   `log`/`exp` are used; the f64 error is ~2^-44 relative, far below an f32 ulp, so
//!   the result is the f64 value rounded once more.
//!
//! Special cases (in this order of precedence): `pow(x, ±0) = 1` and `pow(1, y) = 1`
//! even for NaN; `pow(-1, ±inf) = 1`; otherwise NaN in → NaN out; `x < 0` finite with
//! non-integer `y` → NaN; a negative base (or `-0`, `-inf`) with an odd integer `y`
//! gives the negated `|x|^y`; `pow(±0, y < 0) = inf` (signed for odd `y`),
//! `pow(±0, y > 0) = 0`; `|x| < 1` / `> 1` with `y = ±inf` give 0 or inf.

use super::common::Ctx;
use super::exp::{exp, exp_dd, Range};
use super::log::{log, log_dd};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, F32X4, F64, I8X16};
use cranelift_codegen::ir::{ConstantData, Endianness, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

/// `x^y`.
pub(crate) fn pow(b: &mut FunctionBuilder, cx: Ctx, x: Value, y: Value) -> Value {
    if cx.wide {
        pow64(b, cx, x, y, true)
    } else if cx.vector {
        let c64 = cx.as_f64();
        let xh = high_half(b, x);
        let yh = high_half(b, y);
        let xl = b.ins().fvpromote_low(x);
        let yl = b.ins().fvpromote_low(y);
        let xh = b.ins().fvpromote_low(xh);
        let yh = b.ins().fvpromote_low(yh);
        let rl = pow64(b, c64, xl, yl, false);
        let rh = pow64(b, c64, xh, yh, false);
        let rl = b.ins().fvdemote(rl);
        let rh = b.ins().fvdemote(rh);
        // Lanes 0,1 of each: punpcklqdq.
        concat_low(b, rl, rh)
    } else {
        let c64 = cx.as_f64();
        let xw = b.ins().fpromote(F64, x);
        let yw = b.ins().fpromote(F64, y);
        let r = pow64(b, c64, xw, yw, false);
        b.ins().fdemote(F32, r)
    }
}

fn le() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

fn shuffle_f32x4(b: &mut FunctionBuilder, p: Value, q: Value, bytes: [u8; 16]) -> Value {
    let p = b.ins().bitcast(I8X16, le(), p);
    let q = b.ins().bitcast(I8X16, le(), q);
    let imm = b.func.dfg.immediates.push(ConstantData::from(&bytes[..]));
    let s = b.ins().shuffle(p, q, imm);
    b.ins().bitcast(F32X4, le(), s)
}

/// Lanes 2,3 of an f32x4 moved to lanes 0,1 (`pshufd`).
fn high_half(b: &mut FunctionBuilder, x: Value) -> Value {
    let mut m = [0u8; 16];
    for (i, v) in m.iter_mut().enumerate() {
        *v = 8 + (i % 8) as u8;
    }
    shuffle_f32x4(b, x, x, m)
}

/// Lanes 0,1 of `p` followed by lanes 0,1 of `q`.
fn concat_low(b: &mut FunctionBuilder, p: Value, q: Value) -> Value {
    let mut m = [0u8; 16];
    for (i, v) in m.iter_mut().enumerate() {
        *v = if i < 8 { i as u8 } else { 8 + i as u8 };
    }
    shuffle_f32x4(b, p, q, m)
}

/// `x^y` on f64 lanes; `precise` selects the double-f64 log/exp (for f64 results).
fn pow64(b: &mut FunctionBuilder, cx: Ctx, x: Value, y: Value, precise: bool) -> Value {
    let ax = cx.abs(b, x);
    let mag = if precise {
        let (lh, ll) = log_dd(b, cx, ax);
        let ph = b.ins().fmul(y, lh);
        let nph = b.ins().fneg(ph);
        let pe = cx.fma(b, y, lh, nph);
        let pl = cx.fma(b, y, ll, pe);
        // The low part only matters where the result is finite and nonzero; keep it
        // away from inf/NaN arithmetic elsewhere.
        let aph = cx.abs(b, ph);
        let big = cx.f(b, 800.0);
        let ok = cx.fcmp(b, FloatCC::LessThan, aph, big);
        let zero = cx.f(b, 0.0);
        let pl = cx.sel(b, ok, pl, zero);
        exp_dd(b, cx, ph, Some(pl), Range::Full)
    } else {
        let l = log(b, cx, ax);
        let p = b.ins().fmul(y, l);
        exp(b, cx, p, Range::Full)
    };
    // Parity of y: integer iff nearest(y) == y (±inf count as even integers).
    let ry = b.ins().nearest(y);
    let is_int = cx.fcmp(b, FloatCC::Equal, ry, y);
    let half = cx.f(b, 0.5);
    let hy = b.ins().fmul(y, half);
    let rhy = b.ins().nearest(hy);
    let half_not_int = cx.fcmp(b, FloatCC::NotEqual, rhy, hy);
    let odd = cx.and(b, is_int, half_not_int);
    // Negative base: odd y negates (x's sign bit, so -0 and -inf too); non-integer y
    // with finite x < 0 is NaN.
    let neg = cx.or_sign(b, mag, x);
    let r = cx.sel(b, odd, neg, mag);
    let zero = cx.f(b, 0.0);
    let ninf = cx.f(b, f64::NEG_INFINITY);
    let xneg = cx.fcmp(b, FloatCC::LessThan, x, zero);
    let xfin = cx.fcmp(b, FloatCC::GreaterThan, x, ninf);
    let bad = cx.and(b, xneg, xfin);
    // `y` not an integer (or NaN, which gives NaN anyway).
    let not_int = cx.fcmp(b, FloatCC::NotEqual, ry, y);
    let bad = cx.and(b, bad, not_int);
    let nan = cx.f(b, f64::NAN);
    let r = cx.sel(b, bad, nan, r);
    // Results that are 1 whatever else: y = ±0, x = 1, (x = -1 and y = ±inf).
    let one = cx.f(b, 1.0);
    let y0 = cx.fcmp(b, FloatCC::Equal, y, zero);
    let x1 = cx.fcmp(b, FloatCC::Equal, x, one);
    let mone = cx.f(b, -1.0);
    let xm1 = cx.fcmp(b, FloatCC::Equal, x, mone);
    let ay = cx.abs(b, y);
    let inf = cx.f(b, f64::INFINITY);
    let yinf = cx.fcmp(b, FloatCC::Equal, ay, inf);
    let m1inf = cx.and(b, xm1, yinf);
    let unit = cx.or(b, y0, x1);
    let unit = cx.or(b, unit, m1inf);
    cx.sel(b, unit, one, r)
}
