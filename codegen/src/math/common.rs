//! Shared helpers for the math emitters: the type context (scalar or vector, f32 or
//! f64), constants, branch-free selects on comparison masks, and Horner evaluation
//! with `fma`.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I32, I32X4, I64, I64X2};
use cranelift_codegen::ir::{ConstantData, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// The float type an emitter works on, with its integer twin (same lane count and
/// width) used for bit manipulation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx {
    /// The float type (`F32`, `F64`, `F32X4` or `F64X2`).
    pub ft: Type,
    /// The integer type of the same shape (`I32`, `I64`, `I32X4`, `I64X2`).
    pub it: Type,
    /// Whether the lanes are f64.
    pub wide: bool,
    /// Whether the type is a vector.
    pub vector: bool,
}

/// The result of a comparison: an `i8` boolean for scalars, a lane mask (all ones or
/// all zeros per lane, integer typed) for vectors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cond(Value);

impl Ctx {
    /// The context for a value of type `F32`, `F64`, `F32X4` or `F64X2`.
    ///
    /// # Panics
    /// On any other type: the emitters only exist for these four.
    pub fn of(b: &FunctionBuilder, x: Value) -> Ctx {
        Ctx::for_type(b.func.dfg.value_type(x))
    }

    /// The context for a float type (see [`Ctx::of`]).
    pub fn for_type(t: Type) -> Ctx {
        if t == F32 {
            Ctx {
                ft: F32,
                it: I32,
                wide: false,
                vector: false,
            }
        } else if t == F64 {
            Ctx {
                ft: F64,
                it: I64,
                wide: true,
                vector: false,
            }
        } else if t == F32X4 {
            Ctx {
                ft: F32X4,
                it: I32X4,
                wide: false,
                vector: true,
            }
        } else if t == F64X2 {
            Ctx {
                ft: F64X2,
                it: I64X2,
                wide: true,
                vector: true,
            }
        } else {
            panic!("onde math: unsupported type {t} (expected f32, f64, f32x4 or f64x2)")
        }
    }

    /// The same shape with f64 lanes (`F32` → `F64`, `F32X4` → `F64X2`).
    pub fn as_f64(self) -> Ctx {
        Ctx::for_type(if self.vector { F64X2 } else { F64 })
    }

    /// Mantissa bits of the lane type (23 or 52).
    pub fn mant_bits(self) -> i64 {
        if self.wide {
            52
        } else {
            23
        }
    }

    /// Exponent bias of the lane type (127 or 1023).
    pub fn bias(self) -> i64 {
        if self.wide {
            1023
        } else {
            127
        }
    }

    /// Picks the f32 or the f64 variant of a constant.
    pub fn pick<T>(self, single: T, double: T) -> T {
        if self.wide {
            double
        } else {
            single
        }
    }

    fn lane_bytes(self, bits: u64) -> Vec<u8> {
        if self.wide {
            let mut v = Vec::with_capacity(16);
            for _ in 0..2 {
                v.extend_from_slice(&bits.to_le_bytes());
            }
            v
        } else {
            let mut v = Vec::with_capacity(16);
            for _ in 0..4 {
                v.extend_from_slice(&(bits as u32).to_le_bytes());
            }
            v
        }
    }

    /// A float constant of this type (rounded to f32 for f32 lanes), splatted over
    /// the lanes of a vector (a constant-pool load, not a broadcast sequence).
    pub fn f(self, b: &mut FunctionBuilder, v: f64) -> Value {
        let bits = if self.wide {
            v.to_bits()
        } else {
            u64::from((v as f32).to_bits())
        };
        self.fbits(b, bits)
    }

    /// A float constant given by its bit pattern (low 32 bits for f32 lanes).
    pub fn fbits(self, b: &mut FunctionBuilder, bits: u64) -> Value {
        if self.vector {
            let c = b
                .func
                .dfg
                .constants
                .insert(ConstantData::from(self.lane_bytes(bits)));
            b.ins().vconst(self.ft, c)
        } else if self.wide {
            b.ins().f64const(f64::from_bits(bits))
        } else {
            b.ins().f32const(f32::from_bits(bits as u32))
        }
    }

    /// An integer constant of the integer twin type.
    pub fn i(self, b: &mut FunctionBuilder, v: i64) -> Value {
        if self.vector {
            let c = b
                .func
                .dfg
                .constants
                .insert(ConstantData::from(self.lane_bytes(v as u64)));
            b.ins().vconst(self.it, c)
        } else {
            b.ins().iconst(self.it, v)
        }
    }

    /// The sign bit of each lane, as a float constant (`-0.0`).
    pub fn sign_mask(self, b: &mut FunctionBuilder) -> Value {
        self.f(b, -0.0)
    }

    /// Reinterprets floats as integers of the same width.
    pub fn as_int(self, b: &mut FunctionBuilder, x: Value) -> Value {
        b.ins().bitcast(self.it, MemFlagsData::new(), x)
    }

    /// Reinterprets integers as floats of the same width.
    pub fn as_float(self, b: &mut FunctionBuilder, x: Value) -> Value {
        b.ins().bitcast(self.ft, MemFlagsData::new(), x)
    }

    /// A float comparison.
    pub fn fcmp(self, b: &mut FunctionBuilder, cc: FloatCC, x: Value, y: Value) -> Cond {
        Cond(b.ins().fcmp(cc, x, y))
    }

    /// Both conditions.
    pub fn and(self, b: &mut FunctionBuilder, p: Cond, q: Cond) -> Cond {
        Cond(b.ins().band(p.0, q.0))
    }

    /// Either condition.
    pub fn or(self, b: &mut FunctionBuilder, p: Cond, q: Cond) -> Cond {
        Cond(b.ins().bor(p.0, q.0))
    }

    /// `c ? t : f`, lane-wise for vectors (`bitselect` on the comparison mask, which
    /// x64 lowers to a blend), `select` for scalars. Both `t` and `f` are floats of
    /// this context's type.
    pub fn sel(self, b: &mut FunctionBuilder, c: Cond, t: Value, f: Value) -> Value {
        if self.vector {
            let m = b.ins().bitcast(self.ft, MemFlagsData::new(), c.0);
            b.ins().bitselect(m, t, f)
        } else {
            b.ins().select(c.0, t, f)
        }
    }

    /// `min(x, hi)` that keeps a NaN `x` (x64: `minps hi, x`).
    pub fn min_keep_nan(self, b: &mut FunctionBuilder, x: Value, hi: Value) -> Value {
        let c = self.fcmp(b, FloatCC::LessThan, hi, x);
        self.sel(b, c, hi, x)
    }

    /// `max(x, lo)` that keeps a NaN `x` (x64: `maxps lo, x`).
    pub fn max_keep_nan(self, b: &mut FunctionBuilder, x: Value, lo: Value) -> Value {
        let c = self.fcmp(b, FloatCC::LessThan, x, lo);
        self.sel(b, c, lo, x)
    }

    /// Clamps `x` to `[lo, hi]`, keeping NaN.
    pub fn clamp(self, b: &mut FunctionBuilder, x: Value, lo: f64, hi: f64) -> Value {
        let hi = self.f(b, hi);
        let x = self.min_keep_nan(b, x, hi);
        let lo = self.f(b, lo);
        self.max_keep_nan(b, x, lo)
    }

    /// `c[0] + x*(c[1] + x*(c[2] + …))` by Horner's rule with `fma`; coefficients in
    /// ascending order of degree.
    pub fn poly(self, b: &mut FunctionBuilder, x: Value, c: &[f64]) -> Value {
        let (last, rest) = c.split_last().expect("non-empty polynomial");
        let mut acc = self.f(b, *last);
        for &ci in rest.iter().rev() {
            let k = self.f(b, ci);
            acc = b.ins().fma(acc, x, k);
        }
        acc
    }

    /// `a*b + c` (single rounding).
    pub fn fma(self, b: &mut FunctionBuilder, x: Value, y: Value, z: Value) -> Value {
        b.ins().fma(x, y, z)
    }

    /// `2^n` for an integer-valued float `n` whose biased exponent `n + bias` lies in
    /// `[1, 2*bias]` (a normal power of two): `n + (1.5*2^m + bias)` puts `n + bias`
    /// in the low mantissa bits, and shifting left by `m` moves it into the exponent
    /// field (the shifter's own exponent bits fall off the top).
    pub fn pow2(self, b: &mut FunctionBuilder, n: Value) -> Value {
        let m = self.mant_bits();
        let shifter = 1.5 * (2f64).powi(m as i32) + self.bias() as f64;
        let s = self.f(b, shifter);
        let t = b.ins().fadd(n, s);
        let bits = self.as_int(b, t);
        let e = b.ins().ishl_imm_u(bits, m);
        self.as_float(b, e)
    }

    /// Converts a small non-negative integer (`< 2^22` / `2^51`) to float exactly:
    /// adding it to the bits of `2^m` and subtracting `2^m` as a float.
    pub fn small_uint_to_float(self, b: &mut FunctionBuilder, n: Value) -> Value {
        let m = self.mant_bits();
        let two_m = (2f64).powi(m as i32);
        let c = self.i(b, (self.bias() + m) << m);
        let bits = b.ins().iadd(n, c);
        let f = self.as_float(b, bits);
        let k = self.f(b, two_m);
        b.ins().fsub(f, k)
    }

    /// `|x|`.
    pub fn abs(self, b: &mut FunctionBuilder, x: Value) -> Value {
        b.ins().fabs(x)
    }

    /// `mag` with the sign bit of `sign` or'ed in (`mag` must be non-negative, so
    /// this is `copysign(mag, sign)`).
    pub fn or_sign(self, b: &mut FunctionBuilder, mag: Value, sign: Value) -> Value {
        let sm = self.sign_mask(b);
        let s = b.ins().band(sign, sm);
        b.ins().bor(mag, s)
    }
}

/// `(s, e)` with `s = fl(a + b)` and `s + e = a + b` exactly, given `|a| >= |b|` or
/// `a == 0` (Fast2Sum).
pub(crate) fn fast_two_sum(b: &mut FunctionBuilder, x: Value, y: Value) -> (Value, Value) {
    let s = b.ins().fadd(x, y);
    let z = b.ins().fsub(s, x);
    let e = b.ins().fsub(y, z);
    (s, e)
}
