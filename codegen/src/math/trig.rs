//! `sin` and `cos`: `k = nearest(x·2/π)`, `r = x - k·π/2` with a three-part π/2
//! (each step an `fma`, the first exact), minimax `sin r ≈ r + r³·S(r²)` and
//! `cos r ≈ 1 - r²/2 + r⁴·C(r²)` on `|r| <= π/4`, and the quadrant `k mod 4` (computed
//! in floating point with `floor`, valid for any integer-valued `k`) choosing between
//! them and the sign.

use super::common::Ctx;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// f32 `S(t)` on `|r| <= π/4 + 0.002` (relative error 7.9e-9).
pub(crate) const S32: [f64; 3] = [
    -0.16666653752326965,
    0.008332149125635624,
    -0.00019513623556122184,
];
/// f32 `C(t)` (relative error 2.2e-10).
pub(crate) const C32: [f64; 3] = [
    0.04166664555668831,
    -0.001388730015605688,
    2.4431261408608407e-05,
];
/// f64 `S(t)` (relative error 1.1e-17).
const S64: [f64; 6] = [
    -0.1666666666666663,
    0.008333333333322118,
    -0.0001984126982958954,
    2.755731362138588e-06,
    -2.5050747762883148e-08,
    1.589623015918374e-10,
];
/// f64 `C(t)` (relative error 1.1e-18).
const C64: [f64; 6] = [
    0.041666666666666595,
    -0.0013888888888873056,
    2.4801587288851707e-05,
    -2.755731417929708e-07,
    2.08757008420178e-09,
    -1.1358536523447591e-11,
];

/// `π/2` as three parts (f32 and f64).
pub(crate) const PIO2_32: [f64; 3] = [
    1.5707963705062866,
    -4.371138828673793e-08,
    -1.7151245100058819e-15,
];
const PIO2_64: [f64; 3] = [
    std::f64::consts::FRAC_PI_2,
    6.123233995736766e-17,
    -1.4973849048591698e-33,
];

/// `x - k·π/2`, the π/2 in three parts, one `fma` each.
fn reduce(b: &mut FunctionBuilder, cx: Ctx, x: Value, k: Value, pio2: [f64; 3]) -> Value {
    let nk = b.ins().fneg(k);
    let mut r = x;
    for c in pio2 {
        let c = cx.f(b, c);
        r = cx.fma(b, nk, c, r);
    }
    r
}

/// `sin(x)` (`cosine = false`) or `cos(x)` (`cosine = true`).
pub(crate) fn sincos(b: &mut FunctionBuilder, cx: Ctx, x: Value, cosine: bool) -> Value {
    let two_over_pi = cx.f(b, std::f64::consts::FRAC_2_PI);
    let xk = b.ins().fmul(x, two_over_pi);
    let k = b.ins().nearest(xk);
    let pio2 = cx.pick(PIO2_32, PIO2_64);
    let r = reduce(b, cx, x, k, pio2);
    // x·2/π was rounded: for large |x| (f32 beyond ~1e6) k can be off by one or
    // more. One more step from r itself brings |r| back to <= π/4 (a no-op for
    // smaller |x|).
    let rk = b.ins().fmul(r, two_over_pi);
    let j = b.ins().nearest(rk);
    let r = reduce(b, cx, r, j, pio2);
    let k = b.ins().fadd(k, j);
    let r2 = b.ins().fmul(r, r);
    // sin r
    let sp = cx.poly(b, r2, cx.pick(&S32[..], &S64[..]));
    let r3 = b.ins().fmul(r, r2);
    let s = cx.fma(b, r3, sp, r);
    // cos r
    let cp = cx.poly(b, r2, cx.pick(&C32[..], &C64[..]));
    let r4 = b.ins().fmul(r2, r2);
    let mhalf = cx.f(b, -0.5);
    let one = cx.f(b, 1.0);
    let c0 = cx.fma(b, mhalf, r2, one);
    let c = cx.fma(b, r4, cp, c0);
    // Quadrant n = k (sin) or k + 1 (cos); bit 0 picks cos r, bit 1 negates.
    let n = if cosine { b.ins().fadd(k, one) } else { k };
    let half = cx.f(b, 0.5);
    let quarter = cx.f(b, 0.25);
    let two = cx.f(b, 2.0);
    let n2 = b.ins().fmul(n, half);
    let h = b.ins().floor(n2); // floor(n/2)
    let n4 = b.ins().fmul(n, quarter);
    let h2 = b.ins().floor(n4); // floor(n/4)
    let nh2 = b.ins().fneg(h);
    let bit0 = cx.fma(b, nh2, two, n); // n - 2·floor(n/2)
    let nh4 = b.ins().fneg(h2);
    let bit1 = cx.fma(b, nh4, two, h); // floor(n/2) - 2·floor(n/4)
    let odd = cx.fcmp(b, FloatCC::Equal, bit0, one);
    let v = cx.sel(b, odd, c, s);
    let negate = cx.fcmp(b, FloatCC::Equal, bit1, one);
    let m0 = cx.f(b, -0.0);
    let p0 = cx.f(b, 0.0);
    let sign = cx.sel(b, negate, m0, p0);
    let res = b.ins().bxor(v, sign);
    // Beyond the range where k is exact (|x| > 2^24 / 2^53 roughly) r is not reduced
    // and the polynomials would explode: keep the (meaningless) result in [-1, 1].
    let res = cx.clamp(b, res, -1.0, 1.0);
    if cosine {
        res
    } else {
        // sin(±0) = ±0 (the polynomial's `r + r³·S` turns -0 into +0).
        let is0 = cx.fcmp(b, FloatCC::Equal, x, p0);
        cx.sel(b, is0, x, res)
    }
}
