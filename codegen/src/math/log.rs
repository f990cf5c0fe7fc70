//! `log`: `x = 2^e·m` with `m` in `[√½, √2)` (denormals pre-scaled by `2^24`/`2^54`),
//! `f = m - 1` exact, then
//! - f32: `log1p(f) ≈ f + f²·Q(f)`, a degree-8 minimax `Q`;
//! - f64: fdlibm's `s = f/(2+f)`, `log1p(f) = f - (hfsq - s·(hfsq + R(s²)))` with a
//!   degree-7 `R`;
//!
//! and `e·ln2` added as a two-part constant. [`log_dd`] is an f64 variant returning a
//! double-f64 result (~2^-63 relative) for `pow`.

use super::common::{fast_two_sum, Ctx};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// `Q` for f32: `log1p(f) ≈ f + f²·Q(f)` on `[√½-1, √2-1]`, relative error 5.7e-9.
pub(crate) const Q32: [f64; 9] = [
    -0.49999988079071045,
    0.33333325386047363,
    -0.25001585483551025,
    0.20001983642578125,
    -0.1660899966955185,
    0.14181581139564514,
    -0.13243472576141357,
    0.12906323373317719,
    -0.07622934132814407,
];

/// fdlibm's `Lg1..Lg7` (`R(z) = z·(Lg1 + z·Lg2 + …)`).
const LG: [f64; 7] = [
    0.6666666666666735,
    0.3999999999940942,
    0.2857142874366239,
    0.22222198432149784,
    0.1818357216161805,
    0.15313837699209373,
    0.14798198605116586,
];

/// `Q(z) - 2/3` for [`log_dd`]: `log1p(f) = 2s + s³·Q(s²)`, `|s| <= 0.1716`, degree 8
/// minimax (relative error of the fit 5e-23).
const QDD: [f64; 8] = [
    0.39999999999999936,
    0.28571428571458474,
    0.22222222215364687,
    0.18181819070649302,
    0.15384545913865774,
    0.13336669404023727,
    0.116686826817296,
    0.1203380728814096,
];

/// fdlibm's split of ln2: `LN2_HI` has 32 trailing zero bits, so `e·LN2_HI` is exact.
const LN2_HI64: f64 = 0.6931471803691238;
const LN2_LO64: f64 = 1.9082149292705877e-10;
/// Cephes' split for f32: `0.693359375` has 9 significant bits.
pub(crate) const LN2_HI32: f64 = 0.693359375;
pub(crate) const LN2_LO32: f64 = -2.1219444170128554e-4;

/// Splits positive finite `x` into `(e, f)`: `x = 2^e·(1 + f)`, `1 + f` in
/// `[√½, √2)`, `e` as an integer-valued float. Garbage for other inputs (the caller
/// overrides those).
fn reduce(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> (Value, Value) {
    let m = cx.mant_bits();
    let bias = cx.bias();
    // Denormals: scale into the normal range first.
    let (scale_exp, min_normal) =
        cx.pick((24, f64::from(f32::MIN_POSITIVE)), (54, f64::MIN_POSITIVE));
    let minn = cx.f(b, min_normal);
    let den = cx.fcmp(b, FloatCC::LessThan, x, minn);
    let scale = cx.f(b, (2f64).powi(scale_exp));
    let xs = b.ins().fmul(x, scale);
    let x = cx.sel(b, den, xs, x);
    let zero = cx.f(b, 0.0);
    let adj = cx.f(b, -f64::from(scale_exp));
    let eadj = cx.sel(b, den, adj, zero);
    // u = e + bias where e = floor(log2(x/√½)); the arithmetic stays non-negative so
    // a logical shift does.
    let bits = cx.as_int(b, x);
    let sqrt_half_bits = cx.pick(0x3F3504F3_i64, 0x3FE6A09E667F3BCD_i64);
    let c = cx.i(b, (bias << m) - sqrt_half_bits);
    let t = b.ins().iadd(bits, c);
    let u = b.ins().ushr_imm_u(t, m);
    // m = x / 2^e: subtract e from the exponent field.
    let ush = b.ins().ishl_imm_u(u, m);
    let mbits = b.ins().isub(bits, ush);
    let bias_field = cx.i(b, bias << m);
    let mbits = b.ins().iadd(mbits, bias_field);
    let mant = cx.as_float(b, mbits);
    let one = cx.f(b, 1.0);
    let f = b.ins().fsub(mant, one);
    let uf = cx.small_uint_to_float(b, u);
    let biasf = cx.f(b, bias as f64);
    let e = b.ins().fsub(uf, biasf);
    let e = b.ins().fadd(e, eadj);
    (e, f)
}

/// Overrides the results for inputs outside `(0, inf)`: `log(±0) = -inf`,
/// `log(x < 0) = NaN`, `log(inf) = inf`, `log(NaN) = NaN`.
fn specials(b: &mut FunctionBuilder, cx: Ctx, x: Value, r: Value) -> Value {
    let zero = cx.f(b, 0.0);
    let inf = cx.f(b, f64::INFINITY);
    let ninf = cx.f(b, f64::NEG_INFINITY);
    let nan = cx.f(b, f64::NAN);
    let neg = cx.fcmp(b, FloatCC::LessThan, x, zero);
    let v = cx.sel(b, neg, nan, x); // inf stays inf, NaN stays NaN
    let is0 = cx.fcmp(b, FloatCC::Equal, x, zero);
    let v = cx.sel(b, is0, ninf, v);
    let pos = cx.fcmp(b, FloatCC::GreaterThan, x, zero);
    let fin = cx.fcmp(b, FloatCC::LessThan, x, inf);
    let ok = cx.and(b, pos, fin);
    cx.sel(b, ok, r, v)
}

/// Natural logarithm.
pub(crate) fn log(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> Value {
    let (e, f) = reduce(b, cx, x);
    let r = if cx.wide {
        // fdlibm: log(x) = e·ln2_hi - ((hfsq - (s·(hfsq + R) + e·ln2_lo)) - f).
        let two = cx.f(b, 2.0);
        let d = b.ins().fadd(f, two);
        let s = b.ins().fdiv(f, d);
        let z = b.ins().fmul(s, s);
        let p = cx.poly(b, z, &LG);
        let rr = b.ins().fmul(z, p);
        let half = cx.f(b, 0.5);
        let hf = b.ins().fmul(half, f);
        let hfsq = b.ins().fmul(hf, f);
        let t = b.ins().fadd(hfsq, rr);
        let lo = cx.f(b, LN2_LO64);
        let elo = b.ins().fmul(e, lo);
        let t = cx.fma(b, s, t, elo);
        let t = b.ins().fsub(hfsq, t);
        let t = b.ins().fsub(t, f);
        let hi = cx.f(b, LN2_HI64);
        let ehi = b.ins().fmul(e, hi);
        b.ins().fsub(ehi, t)
    } else {
        // log(x) = e·ln2_hi + (f + (f²·Q(f) + e·ln2_lo)).
        let f2 = b.ins().fmul(f, f);
        let q = cx.poly(b, f, &Q32);
        let lo = cx.f(b, LN2_LO32);
        let elo = b.ins().fmul(e, lo);
        let y = cx.fma(b, f2, q, elo);
        let v = b.ins().fadd(f, y);
        let hi = cx.f(b, LN2_HI32);
        cx.fma(b, e, hi, v)
    };
    specials(b, cx, x, r)
}

/// `log(x)` for f64 lanes as a double-f64 `(hi, lo)` with ~2^-63 relative error, for
/// positive finite `x`; for other inputs `hi` is `log(x)` (±inf, NaN) and `lo` is
/// unspecified (possibly NaN): callers must not use it there.
pub(crate) fn log_dd(b: &mut FunctionBuilder, cx: Ctx, x: Value) -> (Value, Value) {
    debug_assert!(cx.wide);
    let (e, f) = reduce(b, cx, x);
    // s = f/(2+f) as s_hi + s_lo.
    let two = cx.f(b, 2.0);
    let d = b.ins().fadd(two, f);
    let dd = b.ins().fsub(d, two);
    let dlo = b.ins().fsub(f, dd); // 2 + f = d + dlo exactly
    let s = b.ins().fdiv(f, d);
    let ns = b.ins().fneg(s);
    let res = cx.fma(b, ns, d, f); // exact remainder f - s·d
    let res = cx.fma(b, ns, dlo, res);
    let slo = b.ins().fdiv(res, d);
    // s² and s³ as double-f64.
    let s2h = b.ins().fmul(s, s);
    let ns2h = b.ins().fneg(s2h);
    let s2e = cx.fma(b, s, s, ns2h);
    let two_s = b.ins().fadd(s, s);
    let s2l = cx.fma(b, two_s, slo, s2e);
    let s3h = b.ins().fmul(s2h, s);
    let ns3h = b.ins().fneg(s3h);
    let s3e = cx.fma(b, s2h, s, ns3h);
    let s3e = cx.fma(b, s2h, slo, s3e);
    let s3l = cx.fma(b, s2l, s, s3e);
    // Q = 2/3 + z·P(z) as double-f64.
    let p = cx.poly(b, s2h, &QDD);
    let zp = b.ins().fmul(s2h, p);
    let q0h = cx.f(b, 0.6666666666666666);
    let q0l = cx.f(b, 3.700743415417188e-17);
    let qh = b.ins().fadd(q0h, zp);
    let t = b.ins().fsub(q0h, qh);
    let t = b.ins().fadd(t, zp);
    let ql = b.ins().fadd(t, q0l);
    // T = s³·Q.
    let th = b.ins().fmul(s3h, qh);
    let nth = b.ins().fneg(th);
    let te = cx.fma(b, s3h, qh, nth);
    let te = cx.fma(b, s3h, ql, te);
    let tl = cx.fma(b, s3l, qh, te);
    // log = e·ln2 + 2s + T, summed hi parts first.
    let (ah, al) = fast_two_sum(b, two_s, th);
    let ln2hi = cx.f(b, LN2_HI64);
    let ehi = b.ins().fmul(e, ln2hi);
    let (bh, bl) = fast_two_sum(b, ehi, ah);
    let ln2lo = cx.f(b, LN2_LO64);
    let two_slo = b.ins().fadd(slo, slo);
    let lo = cx.fma(b, e, ln2lo, tl);
    let lo = b.ins().fadd(lo, two_slo);
    let lo = b.ins().fadd(lo, al);
    let lo = b.ins().fadd(lo, bl);
    let (h, l) = fast_two_sum(b, bh, lo);
    (specials(b, cx, x, h), l)
}
