//! One instruction over a tile: a loop of vectors per operation, for every width.
//!
//! Each lane computes what `kernel::clif` emits for an f32x4 lane (see the
//! `unary`/`binary`/`compare`/`cast` functions there): `max`/`min` propagate NaN and
//! order `-0 < +0` like Cranelift's `fmax`/`fmin`, `sign(NaN) = 0`, `relu` keeps
//! `x` where `x > 0` or NaN (bits unchanged) and is `+0` elsewhere, bool masks are
//! all-ones lanes.

use super::lanes::{Lanes, Pred};
use super::math;
use super::{Instr, Op};
use onde_ir::{BinaryOp, CmpOp, UnaryOp};

/// Cranelift's `fmax`: NaN if either is NaN, `max(-0, +0) = +0`.
#[inline(always)]
pub(crate) fn fmax<L: Lanes>(l: L, a: L::V, b: L::V) -> L::V {
    let m = l.max_raw(a, b);
    let m = l.blend(l.cmp(Pred::Eq, a, b), m, l.and(a, b));
    l.blend(l.cmp(Pred::Unord, a, b), m, l.add(a, b))
}

/// `x` where `x > 0` or NaN (bits unchanged), else `+0`: the Cranelift lane's relu
/// (a compare and a zeroing move; also the matmul epilogue's).
#[inline(always)]
pub(crate) fn relu<L: Lanes>(l: L, x: L::V) -> L::V {
    l.blend(l.cmp(Pred::NleU, x, l.zero()), l.zero(), x)
}

/// Cranelift's `fmin`: NaN if either is NaN, `min(-0, +0) = -0`.
#[inline(always)]
pub(crate) fn fmin<L: Lanes>(l: L, a: L::V, b: L::V) -> L::V {
    let m = l.min_raw(a, b);
    let m = l.blend(l.cmp(Pred::Eq, a, b), m, l.or(a, b));
    l.blend(l.cmp(Pred::Unord, a, b), m, l.add(a, b))
}

#[inline(always)]
fn cmp_f<L: Lanes>(l: L, c: CmpOp, x: L::V, y: L::V) -> L::M {
    let p = match c {
        CmpOp::Eq => Pred::Eq,
        // Cranelift's `NotEqual` is "unordered or not equal".
        CmpOp::Ne => Pred::NeU,
        CmpOp::Lt => Pred::Lt,
        CmpOp::Le => Pred::Le,
        CmpOp::Gt => Pred::Gt,
        CmpOp::Ge => Pred::Ge,
    };
    l.cmp(p, x, y)
}

#[inline(always)]
fn unary<L: Lanes>(l: L, u: UnaryOp, x: L::V) -> L::V {
    let sign = l.splat(-0.0);
    match u {
        UnaryOp::Neg => l.xor(x, sign),
        UnaryOp::Abs => l.andnot(sign, x),
        UnaryOp::Sign => {
            let z = l.zero();
            let pos = l.cmp(Pred::Gt, x, z);
            let neg = l.cmp(Pred::Lt, x, z);
            let inner = l.blend(neg, z, l.splat(-1.0));
            l.blend(pos, inner, l.splat(1.0))
        }
        UnaryOp::Exp => math::exp(l, x),
        UnaryOp::Log => math::log(l, x),
        UnaryOp::Sqrt => l.sqrt(x),
        UnaryOp::Tanh => math::tanh(l, x),
        UnaryOp::Sigmoid => math::sigmoid(l, x),
        UnaryOp::Sin => math::sincos(l, x, false),
        UnaryOp::Cos => math::sincos(l, x, true),
        UnaryOp::Relu => relu(l, x),
        UnaryOp::Floor => l.floor(x),
        // `Not` is `Op::Not` (see `build`).
        UnaryOp::Not => x,
    }
}

#[inline(always)]
fn binary<L: Lanes>(l: L, op: BinaryOp, x: L::V, y: L::V) -> L::V {
    match op {
        BinaryOp::Add => l.add(x, y),
        BinaryOp::Sub => l.sub(x, y),
        BinaryOp::Mul => l.mul(x, y),
        BinaryOp::Div => l.div(x, y),
        BinaryOp::Max => fmax(l, x, y),
        BinaryOp::Min => fmin(l, x, y),
        BinaryOp::And => l.and(x, y),
        BinaryOp::Or => l.or(x, y),
        // Not compiled for the engine (see `supported_binary`).
        BinaryOp::Pow => x,
    }
}

/// Runs `ins` over `nvec` vectors of its registers.
///
/// # Safety
/// Every register `ins` names must point to at least `N·nvec` readable floats, and
/// `regs[ins.out]` to as many writable ones (a scratch row; it may be one of the
/// operands: each vector is read before it is written).
#[inline(always)]
pub(super) unsafe fn run<L: Lanes>(l: L, ins: &Instr, regs: &[*mut f32], nvec: usize) {
    let (a, b, c, o) = (
        regs[ins.a].cast_const(),
        regs[ins.b].cast_const(),
        regs[ins.c].cast_const(),
        regs[ins.out],
    );
    // Each arm is its own loop, so the `match` on the operation runs once per tile.
    macro_rules! each {
        (|$i:ident| $body:expr) => {
            for $i in (0..nvec).map(|v| v * L::N) {
                let y = $body;
                // SAFETY: `o` has `N·nvec` writable floats (caller).
                unsafe { l.store(o.add($i), y) };
            }
        };
    }
    // SAFETY (each `ld`): the operands have `N·nvec` readable floats (caller).
    macro_rules! ld {
        ($p:expr, $i:expr) => {
            unsafe { l.load($p.add($i)) }
        };
    }
    match ins.op {
        Op::Unary(u) => match u {
            // The expensive functions get loops of their own (inlined math).
            UnaryOp::Exp => each!(|i| math::exp(l, ld!(a, i))),
            UnaryOp::Log => each!(|i| math::log(l, ld!(a, i))),
            UnaryOp::Tanh => each!(|i| math::tanh(l, ld!(a, i))),
            UnaryOp::Sigmoid => each!(|i| math::sigmoid(l, ld!(a, i))),
            UnaryOp::Sin => each!(|i| math::sincos(l, ld!(a, i), false)),
            UnaryOp::Cos => each!(|i| math::sincos(l, ld!(a, i), true)),
            UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Sign
            | UnaryOp::Sqrt
            | UnaryOp::Relu
            | UnaryOp::Floor
            | UnaryOp::Not => each!(|i| unary(l, u, ld!(a, i))),
        },
        Op::Binary(op) => match op {
            BinaryOp::Add => each!(|i| l.add(ld!(a, i), ld!(b, i))),
            BinaryOp::Sub => each!(|i| l.sub(ld!(a, i), ld!(b, i))),
            BinaryOp::Mul => each!(|i| l.mul(ld!(a, i), ld!(b, i))),
            BinaryOp::Div => each!(|i| l.div(ld!(a, i), ld!(b, i))),
            BinaryOp::Max | BinaryOp::Min | BinaryOp::And | BinaryOp::Or | BinaryOp::Pow => {
                each!(|i| binary(l, op, ld!(a, i), ld!(b, i)))
            }
        },
        Op::CmpF(cc) => each!(|i| l.mask_to_v(cmp_f(l, cc, ld!(a, i), ld!(b, i)))),
        Op::CmpM(cc) => each!(|i| l.mask_to_v(l.cmp_masks(cc, ld!(a, i), ld!(b, i)))),
        Op::Where => each!(|i| {
            let k = l.sign_to_mask(ld!(a, i));
            l.blend(k, ld!(c, i), ld!(b, i))
        }),
        Op::MaskToF32 => each!(|i| l.and(ld!(a, i), l.splat(1.0))),
        Op::F32ToMask => each!(|i| l.mask_to_v(cmp_f(l, CmpOp::Ne, ld!(a, i), l.zero()))),
        Op::Not => each!(|i| l.xor(ld!(a, i), l.splat_bits(u32::MAX))),
    }
}
