//! Vectorised transcendental functions emitted as Cranelift IR.
//!
//! Each function takes a value of type `F32`, `F64`, `F32X4` or `F64X2` and returns
//! one of the same type. The code is branch-free (comparisons feed `select` /
//! `bitselect`, which x64 lowers to blends) and calls nothing, so it can sit in the
//! body of a vectorised loop. Cranelift has no exp/log/tanh, so these are range
//! reduction plus minimax polynomials evaluated with `fma` (build the ISA with
//! `cranelift_native` so `fma` is `vfmadd`, not a libcall). The polynomials were
//! fitted by a Remez exchange for relative error at 60 digits, coefficients rounded
//! to the lane type; f64 uses longer polynomials than f32.
//!
//! # Algorithms
//! - [`exp()`]: `k = nearest(x·log2e)` via the `1.5·2^m` shifter, `r = x - k·ln2` with a
//!   two-part ln2 (`fma`, the first step exact). f64: `e^r = 1 + r + r²·P(r)`
//!   (degree 9), `x` clamped to `[-746, 710]`, the scaling split in two halves
//!   computed in floating point. f32 (lean): `e^r = 1 + c1·r + … + c6·r⁶` by Horner,
//!   `x` clamped to `[-104, 89]`, and `2^k` split into two normal powers of two by
//!   integer shifts of the shifter's bits (`v = k + 254`: `2^(v>>1 - 127)` and
//!   `2^(v - v>>1 - 127)`), so the last multiply rounds once, into the denormals or
//!   to infinity as needed.
//! - [`log()`]: `x = 2^e·m`, `m ∈ [√½, √2)` from the bits (denormals pre-scaled),
//!   `f = m - 1` exact; f32 `log1p(f) = f + f²·Q(f)` (degree 8), f64 fdlibm's
//!   `s = f/(2+f)` form; `e·ln2` added as a two-part constant.
//! - [`tanh()`]: `x + x³·P(x²)` for `|x| < atanh(½)` (degree 4 / 9 in `x²`), else
//!   `±(1 - 2/(e^{2|x|}+1))` with `|x|` clamped to 9.1 / 19.5. f32 works on `|x|`
//!   and ors the sign back once, reduces `2|x|` in one `fma` step and forms
//!   `1 + e^{2|x|}` as one `fma` of the unscaled polynomial and `2^k`.
//! - [`sigmoid()`]: f64: `z = e^{-|x|}` kept as an unevaluated `hi + lo`, then
//!   `1/(1+z)` for `x >= 0` and `z/(1+z)` for `x < 0` from one reciprocal plus a
//!   residual correction. f32: `x` clamped to `[-104, 18]`,
//!   `e^{-x} = 2^k·(1 + r·Q(r))`, `y = c / fma(r·s, Q, s + c)` with `c = 2^-64`,
//!   `s = c·2^k` (normal for all `k` that occur): one division, no overflow, correct
//!   denormal results; then `y` corrected once with its residual.
//! - [`sin()`], [`cos()`]: `k = nearest(x·2/π)`, `r = x - k·π/2` with a three-part π/2
//!   (`fma` steps), `sin r = r + r³·S(r²)`, `cos r = 1 - r²/2 + r⁴·C(r²)` (degree 2 / 5
//!   in `r²`), quadrant `k mod 4` computed with `floor` in floating point.
//! - [`pow()`]: `e^{y·log|x|}`; f64 with a double-f64 `log` and product (see
//!   `pow.rs`), f32 by widening to f64. Sign and special cases by selects.
//! - [`sqrt()`]: the native instruction (correctly rounded).
//!
//! # Measured accuracy
//! Max error in ulp against a reference computed in Rust (f32: the f64 libm
//! functions, ≤ 1 f64 ulp; f64: double-f64 implementations, ~2^-100), from the dense
//! sweeps of `codegen/tests/math_ulp.rs` in release mode (every 2^10-th f32 bit
//! pattern of the range; ~10^6 f64 values per function). Scalar and vector types give
//! the same results (same instructions, lane by lane).
//!
//! | function  | f32 / f32x4 | f64 / f64x2 | inputs swept                                  |
//! |-----------|-------------|-------------|-----------------------------------------------|
//! | `exp`     | 1.16        | 1.00        | all finite (denormal results: ≤ 0.79 / 0.66)  |
//! | `log`     | 0.88        | 0.79        | all positive, denormals included              |
//! | `tanh`    | 1.60        | 1.42        | all finite                                    |
//! | `sigmoid` | 1.67        | 1.00        | all finite                                    |
//! | `sin`     | 1.56        | 1.52        | `|x| <= 1e4`                                  |
//! | `cos`     | 1.55        | 1.55        | `|x| <= 1e4`                                  |
//! | `pow`     | 0.50        | 1.13        | see below                                     |
//! | `sqrt`    | 0 (exact)   | 0 (exact)   | every 2^16-th / 2^50-th bit pattern           |
//!
//! f32 `sigmoid` measured 2.41 ulp in its lean form (three roundings — the `fma`,
//! `s + c` where `k >= 24`, the division — line up near `x ≈ -16.6`); one residual
//! correction of the quotient (6 more operations, see `tanh.rs`) brought it to 1.67, so
//! every f32 function is within the 2-ulp aim. It cost ~6% on W6's forward (p10 of
//! `onde bench W6`, alternating binaries: 1.26–1.29 ms → 1.37 ms). The speed table
//! below predates it.
//!
//! # Measured speed
//! f32x4, ns/element over 2^20 elements (`cargo bench -p onde-codegen --bench math`,
//! `opt_level = none`, one core of the shared 2-vCPU Xeon; best of 5 interleaved
//! runs at load ~2, run-to-run noise ±30%; a plain copy is 0.52):
//!
//! | function  | before (compensated f32) | now (lean f32) |
//! |-----------|--------------------------|----------------|
//! | `exp`     | 1.46                     | 1.18           |
//! | `tanh`    | 2.57                     | 1.65           |
//! | `sigmoid` | 3.18                     | 1.10           |
//!
//! `pow` was swept with `|x|` log-uniform in `2^±126` / `2^±1000` (a quarter of them
//! negative with an integer `y`) and `y` uniform with `|y·ln x| <= 87` / `700`, and
//! again with `x` within 1% of 1 (large `|y|`). The f32 result is the f64 one rounded,
//! hence 0.5 ulp.
//!
//! `sin`/`cos` beyond `|x| = 1e4`: the reduction `x - k·π/2` is exact in its first
//! step and keeps ~72 / ~160 bits of π/2, so the error stays small while `k` is an
//! exactly representable integer and the second reduction step's rounding is small
//! next to the result. Measured: f32 ≤ 1.6 ulp up to `|x| = 1e6`; on `[1e6, 1e7]` sin
//! 1.9 ulp but cos up to ~360 ulp near its zeros (absolute error ~2^-26); above
//! `2^24 ≈ 1.7e7` (f32 numbers there are even integers, `k mod 4` is lost) the
//! result is meaningless but always in `[-1, 1]` (clamped). f64: ≤ 1.7 ulp up to
//! `1e15`; on `[1e15, 1e16]` sin 4.4 ulp, cos up to ~470 ulp near zeros; above
//! `2^53` meaningless but in `[-1, 1]`.
//!
//! # Special values
//! All functions propagate NaN. `exp(-inf) = 0`, `exp(inf) = inf`, overflow gives
//! `inf`, underflow goes through the correctly scaled denormals to `+0` (no flush).
//! `log(±0) = -inf`, `log(x < 0) = NaN`, `log(inf) = inf`; denormals are pre-scaled by
//! `2^24` / `2^54`, so they are as accurate as normal numbers. `tanh(±0) = ±0`, `tanh(±inf) = ±1` (and ±1 from |x| > 9.01 / 19.06).
//! `sigmoid(-inf) = 0`, `sigmoid(inf) = 1`, `sigmoid(-100) ≈ 3.7e-44` (a denormal in
//! f32, no `inf/inf`). `sin(±0) = ±0`, `cos(±0) = 1`, `sin/cos(±inf) = NaN`. `pow`
//! follows C99 / PyTorch: `pow(x, ±0) = 1` and `pow(1, y) = 1` even for NaN,
//! `pow(-1, ±inf) = 1`, a negative base with an integer exponent gives the signed
//! result, with a non-integer exponent NaN, `pow(±0, y < 0) = inf` (`-inf` for `-0`
//! and odd `y`), `pow(±0, y > 0) = +0` (`-0` for `-0` and odd `y`), `pow(±inf, y)` and `y = ±inf` as in C99.
//!
//! # Panics
//! Every function panics when given a value of another type than the four above.

mod common;
mod exp;
mod log;
mod pow;
mod tanh;
mod trig;

/// The f32 coefficient tables, shared with the AVX-512 engine
/// (`crate::kernel::engine`), which evaluates the same algorithms on 8 or 16 lanes.
pub(crate) mod tables {
    pub(crate) use super::exp::{exp32_coeffs, E32, LN2_HI_32, LN2_LO_32, LOG2E_32};
    pub(crate) use super::log::{
        LN2_HI32 as LN2_HI32_LOG, LN2_LO32 as LN2_LO32_LOG, Q32 as Q32_LOG,
    };
    pub(crate) use super::tanh::{P32 as TANH_P32, SMALL as TANH_SMALL};
    pub(crate) use super::trig::{C32 as COS_C32, PIO2_32, S32 as SIN_S32};
}

use common::Ctx;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// `e^x`. Error ≤ 1.2 ulp (see the module doc for measured values).
pub fn exp(b: &mut FunctionBuilder, x: Value) -> Value {
    let cx = Ctx::of(b, x);
    exp::exp(b, cx, x, exp::Range::Full)
}

/// Natural logarithm; `log(0) = -inf`, `log(x < 0) = NaN`.
pub fn log(b: &mut FunctionBuilder, x: Value) -> Value {
    let cx = Ctx::of(b, x);
    log::log(b, cx, x)
}

/// Hyperbolic tangent; accurate near 0 (no cancellation), ±1 for large `|x|`.
pub fn tanh(b: &mut FunctionBuilder, x: Value) -> Value {
    let cx = Ctx::of(b, x);
    tanh::tanh(b, cx, x)
}

/// Logistic sigmoid `1/(1 + e^{-x})`, without overflow for any `x`.
pub fn sigmoid(b: &mut FunctionBuilder, x: Value) -> Value {
    let cx = Ctx::of(b, x);
    tanh::sigmoid(b, cx, x)
}

/// Sine; accurate for `|x| <= 1e4`, degrading beyond (see the module doc).
pub fn sin(b: &mut FunctionBuilder, x: Value) -> Value {
    let cx = Ctx::of(b, x);
    trig::sincos(b, cx, x, false)
}

/// Cosine; accurate for `|x| <= 1e4`, degrading beyond (see the module doc).
pub fn cos(b: &mut FunctionBuilder, x: Value) -> Value {
    let cx = Ctx::of(b, x);
    trig::sincos(b, cx, x, true)
}

/// Square root: the native, correctly rounded instruction.
pub fn sqrt(b: &mut FunctionBuilder, x: Value) -> Value {
    let _ = Ctx::of(b, x);
    b.ins().sqrt(x)
}

/// `x^y` with C99 / PyTorch special cases (see the module doc). `x` and `y` must have
/// the same type.
pub fn pow(b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
    let cx = Ctx::of(b, x);
    assert_eq!(
        b.func.dfg.value_type(y),
        cx.ft,
        "onde math: pow operands must have the same type"
    );
    pow::pow(b, cx, x, y)
}
