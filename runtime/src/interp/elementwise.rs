//! Elementwise ops: unary, binary, comparisons, `where` and `cast`.
//!
//! Float math is computed in f64 and rounded once to the array's dtype (exact for
//! `+ - * /` and comparisons, at most one rounding step away from a native f32
//! computation otherwise). i64 arithmetic wraps on overflow, like PyTorch. Binary ops,
//! comparisons and `where` broadcast their operands (NumPy rules).

use super::elem::{at, bad_dtype, make, map, typed, with_elem, Elem, Float};
use super::error::{InterpError, Result};
use super::index::{broadcast_all, broadcast_indices};
use onde_ir::{Array, BinaryOp, CmpOp, DType, UnaryOp};

/// `sign(x)`: -1, 0 or 1; NaN and both zeros give +0.
fn sign_f64(x: f64) -> f64 {
    // PyTorch: sign(NaN) = 0 (it computes (0 < x) - (x < 0)).
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The f64 function of a unary op on floats (`None` if not defined for floats).
fn float_unary(op: UnaryOp) -> Option<fn(f64) -> f64> {
    Some(match op {
        UnaryOp::Neg => |x: f64| -x,
        UnaryOp::Abs => f64::abs,
        UnaryOp::Sign => sign_f64,
        UnaryOp::Exp => f64::exp,
        UnaryOp::Log => f64::ln,
        UnaryOp::Sqrt => f64::sqrt,
        UnaryOp::Sin => f64::sin,
        UnaryOp::Cos => f64::cos,
        UnaryOp::Tanh => f64::tanh,
        UnaryOp::Sigmoid => |x: f64| 1.0 / (1.0 + (-x).exp()),
        // NaN propagates, as in PyTorch.
        UnaryOp::Relu => |x: f64| if x.is_nan() || x > 0.0 { x } else { 0.0 },
        UnaryOp::Floor => f64::floor,
        UnaryOp::Not => return None,
    })
}

/// The function of a unary op on i64 (`None` if not defined for i64).
fn int_unary(op: UnaryOp) -> Option<fn(i64) -> i64> {
    Some(match op {
        UnaryOp::Neg => i64::wrapping_neg,
        UnaryOp::Abs => i64::wrapping_abs,
        UnaryOp::Sign => i64::signum,
        UnaryOp::Relu => |x: i64| x.max(0),
        UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Sqrt
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Tanh
        | UnaryOp::Sigmoid
        | UnaryOp::Floor
        | UnaryOp::Not => return None,
    })
}

/// The function of a unary op on bool (`None` if not defined for bool).
fn bool_unary(op: UnaryOp) -> Option<fn(bool) -> bool> {
    match op {
        UnaryOp::Not => Some(|x: bool| !x),
        UnaryOp::Neg
        | UnaryOp::Abs
        | UnaryOp::Sign
        | UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Sqrt
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Tanh
        | UnaryOp::Sigmoid
        | UnaryOp::Relu
        | UnaryOp::Floor => None,
    }
}

fn float_map<T: Float>(x: &Array, f: fn(f64) -> f64) -> Result<Array> {
    map::<T, T>(x, |a| T::from_f64(f(a.to_f64())))
}

/// Elementwise unary op.
pub(crate) fn unary(op: UnaryOp, x: &Array) -> Result<Array> {
    let undefined = || bad_dtype(op.name(), x.dtype());
    match x.dtype() {
        DType::F32 => float_map::<f32>(x, float_unary(op).ok_or_else(undefined)?),
        DType::F64 => float_map::<f64>(x, float_unary(op).ok_or_else(undefined)?),
        DType::I64 => map::<i64, i64>(x, int_unary(op).ok_or_else(undefined)?),
        DType::Bool => map::<bool, bool>(x, bool_unary(op).ok_or_else(undefined)?),
    }
}

/// NaN-propagating maximum (`torch.maximum`).
fn max_f64(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// NaN-propagating minimum (`torch.minimum`).
fn min_f64(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// The f64 function of a binary op on floats (`None` if not defined for floats).
fn float_binary(op: BinaryOp) -> Option<fn(f64, f64) -> f64> {
    Some(match op {
        BinaryOp::Add => |a, b| a + b,
        BinaryOp::Sub => |a, b| a - b,
        BinaryOp::Mul => |a, b| a * b,
        BinaryOp::Div => |a, b| a / b,
        BinaryOp::Pow => f64::powf,
        BinaryOp::Max => max_f64,
        BinaryOp::Min => min_f64,
        BinaryOp::And | BinaryOp::Or => return None,
    })
}

/// The function of a binary op on i64, wrapping (`None` if not defined for i64).
fn int_binary(op: BinaryOp) -> Option<fn(i64, i64) -> i64> {
    Some(match op {
        BinaryOp::Add => i64::wrapping_add,
        BinaryOp::Sub => i64::wrapping_sub,
        BinaryOp::Mul => i64::wrapping_mul,
        BinaryOp::Max => std::cmp::max,
        BinaryOp::Min => std::cmp::min,
        BinaryOp::Pow => int_pow,
        BinaryOp::Div | BinaryOp::And | BinaryOp::Or => return None,
    })
}

/// Integer power with wrapping; a negative exponent truncates `1/aⁿ` toward zero
/// (so `1`, `±1` for `a = -1`, else `0`; `0` to a negative power is `0`).
fn int_pow(a: i64, b: i64) -> i64 {
    if b < 0 {
        return match a {
            1 => 1,
            -1 if b % 2 == 0 => 1,
            -1 => -1,
            _ => 0,
        };
    }
    let (mut base, mut e, mut acc) = (a, b as u64, 1i64);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    acc
}

/// The function of a binary op on bool (`None` if not defined for bool).
fn bool_binary(op: BinaryOp) -> Option<fn(bool, bool) -> bool> {
    Some(match op {
        BinaryOp::And => |a, b| a && b,
        BinaryOp::Or => |a, b| a || b,
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Pow
        | BinaryOp::Max
        | BinaryOp::Min => return None,
    })
}

/// The broadcast result extents of `xs` and, per operand, the source index of each
/// result element.
fn broadcast(xs: &[&Array]) -> Result<(Vec<usize>, Vec<Vec<usize>>)> {
    let shapes: Vec<&[usize]> = xs.iter().map(|x| x.shape().dims()).collect();
    let out = broadcast_all(&shapes)
        .ok_or_else(|| InterpError::internal(format!("shapes {shapes:?} do not broadcast")))?;
    let idx = broadcast_indices(&shapes, &out)
        .ok_or_else(|| InterpError::internal(format!("shapes {shapes:?} do not broadcast")))?;
    Ok((out, idx))
}

/// Applies `f` to broadcast pairs of elements of `a` and `b`.
fn zip_with<T: Elem, U: Elem>(a: &Array, b: &Array, f: impl Fn(T, T) -> U) -> Result<Array> {
    let (out, idx) = broadcast(&[a, b])?;
    let [ia, ib] = &idx[..] else {
        return Err(InterpError::internal("expected two index lists"));
    };
    let (x, y) = (typed::<T>(a)?, typed::<T>(b)?);
    let v = ia
        .iter()
        .zip(ib)
        .map(|(&i, &j)| Ok(f(at(x, i)?, at(y, j)?)))
        .collect::<Result<Vec<U>>>()?;
    make(out, v)
}

fn float_zip<T: Float>(a: &Array, b: &Array, f: fn(f64, f64) -> f64) -> Result<Array> {
    zip_with::<T, T>(a, b, |x, y| T::from_f64(f(x.to_f64(), y.to_f64())))
}

/// Elementwise binary op with broadcasting.
pub(crate) fn binary(op: BinaryOp, a: &Array, b: &Array) -> Result<Array> {
    if a.dtype() != b.dtype() {
        return Err(InterpError::internal(format!(
            "{}: operand dtypes {} and {} differ",
            op.name(),
            a.dtype(),
            b.dtype()
        )));
    }
    let undefined = || bad_dtype(op.name(), a.dtype());
    match a.dtype() {
        DType::F32 => float_zip::<f32>(a, b, float_binary(op).ok_or_else(undefined)?),
        DType::F64 => float_zip::<f64>(a, b, float_binary(op).ok_or_else(undefined)?),
        DType::I64 => zip_with::<i64, i64>(a, b, int_binary(op).ok_or_else(undefined)?),
        DType::Bool => zip_with::<bool, bool>(a, b, bool_binary(op).ok_or_else(undefined)?),
    }
}

/// The predicate of a comparison (IEEE semantics: any comparison with NaN is false,
/// except `!=` which is true).
fn predicate<T: PartialOrd>(op: CmpOp) -> fn(&T, &T) -> bool {
    match op {
        CmpOp::Eq => T::eq,
        CmpOp::Ne => T::ne,
        CmpOp::Lt => T::lt,
        CmpOp::Le => T::le,
        CmpOp::Gt => T::gt,
        CmpOp::Ge => T::ge,
    }
}

/// Elementwise comparison with broadcasting; the result is bool.
pub(crate) fn compare(op: CmpOp, a: &Array, b: &Array) -> Result<Array> {
    with_elem!(a.dtype(), T => {
        let p = predicate::<T>(op);
        zip_with::<T, bool>(a, b, |x, y| p(&x, &y))
    })
}

/// `where(cond, a, b)` with broadcasting of all three.
pub(crate) fn select(cond: &Array, a: &Array, b: &Array) -> Result<Array> {
    let (out, idx) = broadcast(&[cond, a, b])?;
    let [ic, ia, ib] = &idx[..] else {
        return Err(InterpError::internal("expected three index lists"));
    };
    let c = typed::<bool>(cond)?;
    with_elem!(a.dtype(), T => {
        let (x, y) = (typed::<T>(a)?, typed::<T>(b)?);
        let v = ic
            .iter()
            .zip(ia.iter().zip(ib))
            .map(|(&k, (&i, &j))| if at(c, k)? { at(x, i) } else { at(y, j) })
            .collect::<Result<Vec<T>>>()?;
        make(out, v)
    })
}

/// Conversion to `to` (see [`Elem::from_num`] for the rules).
pub(crate) fn cast(x: &Array, to: DType) -> Result<Array> {
    with_elem!(x.dtype(), S => with_elem!(to, D => map::<S, D>(x, |s| D::from_num(s.to_num()))))
}
