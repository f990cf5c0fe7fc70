//! One instruction over a tile: a loop of 16-lane vectors per operation.
//!
//! Each lane computes what `kernel::clif` emits for an f32x4 lane (see the
//! `unary`/`binary`/`compare`/`cast` functions there): `max`/`min` propagate NaN and
//! order `-0 < +0` like Cranelift's `fmax`/`fmin`, `sign(NaN) = 0`, `relu` keeps
//! `x` where `x > 0` or NaN (bits unchanged) and is `+0` elsewhere, bool masks are
//! all-ones lanes.

use super::math;
use super::{Instr, Op};
use onde_ir::{BinaryOp, CmpOp, UnaryOp};
use std::arch::x86_64::*;

/// Cranelift's `fmax`: NaN if either is NaN, `max(-0, +0) = +0`.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
pub(crate) fn fmax(a: __m512, b: __m512) -> __m512 {
    let m = _mm512_max_ps(a, b);
    let eq = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b);
    let m = _mm512_mask_and_ps(m, eq, a, b);
    let un = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b);
    _mm512_mask_add_ps(m, un, a, b)
}

/// `x` where `x > 0` or NaN (bits unchanged), else `+0`: the Cranelift lane's relu
/// (a compare and a zeroing move; also the matmul epilogue's).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
pub(crate) fn relu(x: __m512) -> __m512 {
    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_NLE_UQ>(x, _mm512_setzero_ps()), x)
}

/// Cranelift's `fmin`: NaN if either is NaN, `min(-0, +0) = -0`.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) fn fmin(a: __m512, b: __m512) -> __m512 {
    let m = _mm512_min_ps(a, b);
    let eq = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b);
    let m = _mm512_mask_or_ps(m, eq, a, b);
    let un = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b);
    _mm512_mask_add_ps(m, un, a, b)
}

#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn mask_of(k: __mmask16) -> __m512 {
    _mm512_castsi512_ps(_mm512_movm_epi32(k))
}

#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn cmp_f(c: CmpOp, x: __m512, y: __m512) -> __mmask16 {
    match c {
        CmpOp::Eq => _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, y),
        // Cranelift's `NotEqual` is "unordered or not equal".
        CmpOp::Ne => _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(x, y),
        CmpOp::Lt => _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, y),
        CmpOp::Le => _mm512_cmp_ps_mask::<_CMP_LE_OQ>(x, y),
        CmpOp::Gt => _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, y),
        CmpOp::Ge => _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, y),
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn cmp_m(c: CmpOp, x: __m512, y: __m512) -> __mmask16 {
    let (x, y) = (_mm512_castps_si512(x), _mm512_castps_si512(y));
    // Masks are 0 or all ones: unsigned order puts false before true.
    match c {
        CmpOp::Eq => _mm512_cmp_epu32_mask::<_MM_CMPINT_EQ>(x, y),
        CmpOp::Ne => _mm512_cmp_epu32_mask::<_MM_CMPINT_NE>(x, y),
        CmpOp::Lt => _mm512_cmp_epu32_mask::<_MM_CMPINT_LT>(x, y),
        CmpOp::Le => _mm512_cmp_epu32_mask::<_MM_CMPINT_LE>(x, y),
        CmpOp::Gt => _mm512_cmp_epu32_mask::<_MM_CMPINT_NLE>(x, y),
        CmpOp::Ge => _mm512_cmp_epu32_mask::<_MM_CMPINT_NLT>(x, y),
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn unary(u: UnaryOp, x: __m512) -> __m512 {
    let sign = _mm512_set1_ps(-0.0);
    match u {
        UnaryOp::Neg => _mm512_xor_ps(x, sign),
        UnaryOp::Abs => _mm512_andnot_ps(sign, x),
        UnaryOp::Sign => {
            let z = _mm512_setzero_ps();
            let pos = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, z);
            let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, z);
            let inner = _mm512_mask_blend_ps(neg, z, _mm512_set1_ps(-1.0));
            _mm512_mask_blend_ps(pos, inner, _mm512_set1_ps(1.0))
        }
        UnaryOp::Exp => math::exp(x),
        UnaryOp::Log => math::log(x),
        UnaryOp::Sqrt => _mm512_sqrt_ps(x),
        UnaryOp::Tanh => math::tanh(x),
        UnaryOp::Sigmoid => math::sigmoid(x),
        UnaryOp::Sin => math::sincos(x, false),
        UnaryOp::Cos => math::sincos(x, true),
        UnaryOp::Relu => relu(x),
        UnaryOp::Floor => _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(x),
        // `Not` is `Op::Not` (see `build`).
        UnaryOp::Not => x,
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn binary(op: BinaryOp, x: __m512, y: __m512) -> __m512 {
    match op {
        BinaryOp::Add => _mm512_add_ps(x, y),
        BinaryOp::Sub => _mm512_sub_ps(x, y),
        BinaryOp::Mul => _mm512_mul_ps(x, y),
        BinaryOp::Div => _mm512_div_ps(x, y),
        BinaryOp::Max => fmax(x, y),
        BinaryOp::Min => fmin(x, y),
        BinaryOp::And => _mm512_and_ps(x, y),
        BinaryOp::Or => _mm512_or_ps(x, y),
        // Not compiled for the engine (see `supported_binary`).
        BinaryOp::Pow => x,
    }
}

/// Runs `ins` over `nvec` vectors of its registers.
///
/// # Safety
/// Every register `ins` names must point to at least `16·nvec` readable floats, and
/// `regs[ins.out]` to as many writable ones (a scratch row; it may be one of the
/// operands: each vector is read before it is written).
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn run(ins: &Instr, regs: &[*mut f32], nvec: usize) {
    let (a, b, c, o) = (
        regs[ins.a].cast_const(),
        regs[ins.b].cast_const(),
        regs[ins.c].cast_const(),
        regs[ins.out],
    );
    // Each arm is its own loop, so the `match` on the operation runs once per tile.
    macro_rules! each {
        (|$i:ident| $body:expr) => {
            for $i in (0..nvec).map(|v| v * 16) {
                let y = $body;
                // SAFETY: `o` has `16·nvec` writable floats (caller).
                unsafe { _mm512_storeu_ps(o.add($i), y) };
            }
        };
    }
    // SAFETY (each `ld`): the operands have `16·nvec` readable floats (caller).
    macro_rules! ld {
        ($p:expr, $i:expr) => {
            unsafe { _mm512_loadu_ps($p.add($i)) }
        };
    }
    match ins.op {
        Op::Unary(u) => match u {
            // The expensive functions get loops of their own (inlined math).
            UnaryOp::Exp => each!(|i| math::exp(ld!(a, i))),
            UnaryOp::Log => each!(|i| math::log(ld!(a, i))),
            UnaryOp::Tanh => each!(|i| math::tanh(ld!(a, i))),
            UnaryOp::Sigmoid => each!(|i| math::sigmoid(ld!(a, i))),
            UnaryOp::Sin => each!(|i| math::sincos(ld!(a, i), false)),
            UnaryOp::Cos => each!(|i| math::sincos(ld!(a, i), true)),
            UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Sign
            | UnaryOp::Sqrt
            | UnaryOp::Relu
            | UnaryOp::Floor
            | UnaryOp::Not => each!(|i| unary(u, ld!(a, i))),
        },
        Op::Binary(op) => match op {
            BinaryOp::Add => each!(|i| _mm512_add_ps(ld!(a, i), ld!(b, i))),
            BinaryOp::Sub => each!(|i| _mm512_sub_ps(ld!(a, i), ld!(b, i))),
            BinaryOp::Mul => each!(|i| _mm512_mul_ps(ld!(a, i), ld!(b, i))),
            BinaryOp::Div => each!(|i| _mm512_div_ps(ld!(a, i), ld!(b, i))),
            BinaryOp::Max | BinaryOp::Min | BinaryOp::And | BinaryOp::Or | BinaryOp::Pow => {
                each!(|i| binary(op, ld!(a, i), ld!(b, i)))
            }
        },
        Op::CmpF(cc) => each!(|i| mask_of(cmp_f(cc, ld!(a, i), ld!(b, i)))),
        Op::CmpM(cc) => each!(|i| mask_of(cmp_m(cc, ld!(a, i), ld!(b, i)))),
        Op::Where => each!(|i| {
            let k = _mm512_movepi32_mask(_mm512_castps_si512(ld!(a, i)));
            _mm512_mask_blend_ps(k, ld!(c, i), ld!(b, i))
        }),
        Op::MaskToF32 => each!(|i| _mm512_and_ps(ld!(a, i), _mm512_set1_ps(1.0))),
        Op::F32ToMask => each!(|i| mask_of(cmp_f(CmpOp::Ne, ld!(a, i), _mm512_setzero_ps()))),
        Op::Not => each!(|i| _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(ld!(a, i)),
            _mm512_set1_epi32(-1)
        ))),
    }
}
