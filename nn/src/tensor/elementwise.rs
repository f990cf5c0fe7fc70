//! Elementwise ops: arithmetic with broadcasting and PyTorch's type promotion, math
//! functions, comparisons, logical ops and `where`.
//!
//! Promotion follows PyTorch's `result_type`: the categories are bool < integer <
//! float, and within a category i64 < f64 / f32 < f64. Between tensors of the same
//! kind (both 0-d or both with axes) the higher dtype wins. A **0-d tensor** facing a
//! tensor with axes only counts when its category is higher: `f32[3] + f64[]` is f32,
//! `i64[3] + f64[]` is f64, `bool[3] + i64[]` is i64. A Rust scalar acts like a 0-d
//! tensor of the default dtype of its kind: a float scalar takes the tensor's float
//! dtype (f32 for an integer or bool tensor), an integer scalar the tensor's dtype (i64
//! for bool). True division of integers or bools produces f32, float-only math
//! (`exp`, `sqrt`…) on integers computes in f32, and an integer to an integer power
//! stays an integer (a negative integer scalar exponent is an error).
//!
//! Arithmetic on two bools stays bool, as in PyTorch: `+` and `maximum` are logical
//! or, `*` and `minimum` logical and; `-` and `pow` of bools are errors (PyTorch's too).

use super::Tensor;
use crate::args::Arg;
use onde_ir::{Array, BinaryOp, CmpOp, DType, Op, SourceLoc, UnaryOp};

impl Tensor {
    /// Turns a binary op's right-hand side into a tensor of this builder.
    pub(crate) fn arg_tensor(&self, arg: Arg, loc: &SourceLoc) -> Tensor {
        let dt = self.dtype();
        let a = match arg {
            Arg::Tensor(t) => return t,
            Arg::Float(x) => Array::scalar(if dt.is_float() { dt } else { DType::F32 }, x),
            Arg::Int(i) if matches!(dt, DType::Bool | DType::I64) => Array::scalar_i64(i),
            Arg::Int(i) => Array::scalar(dt, i as f64),
            Arg::Bool(v) => Array::scalar(DType::Bool, f64::from(u8::from(v))),
        };
        self.const_at(a, loc.clone())
    }

    /// A constant in this tensor's builder (poison propagates).
    pub(crate) fn const_at(&self, a: Array, loc: SourceLoc) -> Tensor {
        if let Err(e) = &self.v {
            return Tensor::from_parts(self.b.clone(), Err(e.clone()));
        }
        self.b.push("constant", Op::Constant(a), &[], loc)
    }

    /// Casts to `dtype` (PyTorch's `.to(dtype)`); a no-op if already `dtype`.
    #[track_caller]
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        self.cast_at(dtype, SourceLoc::caller())
    }

    pub(crate) fn cast_at(&self, dtype: DType, loc: SourceLoc) -> Tensor {
        if self.ty().is_some_and(|t| t.dtype == dtype) {
            return self.clone();
        }
        Tensor::apply_at("to", Op::Cast { to: dtype }, &[self], loc)
    }

    /// Casts to f32 (`.float()`).
    #[track_caller]
    pub fn float(&self) -> Tensor {
        self.cast_at(DType::F32, SourceLoc::caller())
    }

    /// Casts to f64 (`.double()`).
    #[track_caller]
    pub fn double(&self) -> Tensor {
        self.cast_at(DType::F64, SourceLoc::caller())
    }

    /// Casts to i64 (`.long()`), truncating toward zero.
    #[track_caller]
    pub fn long(&self) -> Tensor {
        self.cast_at(DType::I64, SourceLoc::caller())
    }

    /// Casts to bool (`.bool()`): non-zero is `true`.
    #[track_caller]
    pub fn to_bool(&self) -> Tensor {
        self.cast_at(DType::Bool, SourceLoc::caller())
    }

    /// PyTorch's result dtype of two operands (see the module doc): a 0-d operand
    /// facing one with axes raises the dtype only if its category is higher.
    pub(crate) fn result_type(a: &Tensor, b: &Tensor) -> DType {
        Tensor::result_type_of(&[a.clone(), b.clone()])
    }

    /// Promotes two tensors to their result dtype (at least `floor` if given).
    fn promote2(a: &Tensor, b: &Tensor, floor: Option<DType>, loc: &SourceLoc) -> (Tensor, Tensor) {
        let mut d = Tensor::result_type(a, b);
        if let Some(f) = floor {
            d = d.promote(f);
        }
        (a.cast_at(d, loc.clone()), b.cast_at(d, loc.clone()))
    }

    pub(crate) fn binary_at(
        &self,
        api: &'static str,
        op: BinaryOp,
        other: Arg,
        loc: SourceLoc,
    ) -> Tensor {
        if op == BinaryOp::Pow && !self.dtype().is_float() {
            if let Arg::Int(n) = other {
                if n < 0 {
                    return self.fail(
                        api,
                        format!(
                            "integers to negative integer powers are not allowed (exponent {n})"
                        ),
                        loc,
                    );
                }
            }
        }
        let o = self.arg_tensor(other, &loc);
        let floor = match op {
            BinaryOp::Div => Some(DType::F32),
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Max
            | BinaryOp::Min
            | BinaryOp::Pow
            | BinaryOp::And
            | BinaryOp::Or => None,
        };
        let (a, b) = Tensor::promote2(self, &o, floor, &loc);
        let op = if a.ty().is_some_and(|t| t.dtype == DType::Bool) {
            // Bool arithmetic stays bool (PyTorch): + and maximum are or, * and minimum and.
            match op {
                BinaryOp::Add | BinaryOp::Max | BinaryOp::Or => BinaryOp::Or,
                BinaryOp::Mul | BinaryOp::Min | BinaryOp::And => BinaryOp::And,
                BinaryOp::Sub => {
                    return a.fail(
                        api,
                        "subtraction of two bool tensors is not supported \
                         (use logical_xor or logical_not)"
                            .into(),
                        loc,
                    )
                }
                BinaryOp::Pow | BinaryOp::Div => {
                    return a.fail(api, "not defined for two bool operands".into(), loc)
                }
            }
        } else {
            op
        };
        Tensor::apply_at(api, Op::Binary(op), &[&a, &b], loc)
    }

    /// `self + other` with broadcasting (`torch.add`).
    #[track_caller]
    pub fn add(&self, other: impl Into<Arg>) -> Tensor {
        self.binary_at("add", BinaryOp::Add, other.into(), SourceLoc::caller())
    }

    /// `self - other` with broadcasting (`torch.sub`).
    #[track_caller]
    pub fn sub(&self, other: impl Into<Arg>) -> Tensor {
        self.binary_at("sub", BinaryOp::Sub, other.into(), SourceLoc::caller())
    }

    /// `self * other` with broadcasting (`torch.mul`).
    #[track_caller]
    pub fn mul(&self, other: impl Into<Arg>) -> Tensor {
        self.binary_at("mul", BinaryOp::Mul, other.into(), SourceLoc::caller())
    }

    /// `self / other`, true division, with broadcasting (`torch.div`).
    #[track_caller]
    pub fn div(&self, other: impl Into<Arg>) -> Tensor {
        self.binary_at("div", BinaryOp::Div, other.into(), SourceLoc::caller())
    }

    /// `self ** exponent` (`torch.pow`).
    #[track_caller]
    pub fn pow(&self, exponent: impl Into<Arg>) -> Tensor {
        self.binary_at("pow", BinaryOp::Pow, exponent.into(), SourceLoc::caller())
    }

    /// Elementwise maximum, NaN-propagating (`torch.maximum`).
    #[track_caller]
    pub fn maximum(&self, other: impl Into<Arg>) -> Tensor {
        self.binary_at("maximum", BinaryOp::Max, other.into(), SourceLoc::caller())
    }

    /// Elementwise minimum, NaN-propagating (`torch.minimum`).
    #[track_caller]
    pub fn minimum(&self, other: impl Into<Arg>) -> Tensor {
        self.binary_at("minimum", BinaryOp::Min, other.into(), SourceLoc::caller())
    }

    /// The same values with no gradient flowing back (`Tensor.detach`, the effect of
    /// `torch.no_grad`).
    #[track_caller]
    pub fn detach(&self) -> Tensor {
        Tensor::apply_at("detach", Op::Detach, &[self], SourceLoc::caller())
    }

    /// `x * x`.
    #[track_caller]
    pub fn square(&self) -> Tensor {
        let loc = SourceLoc::caller();
        // PyTorch squares bools as i64 (`x * x` of bools is their logical and).
        let x = if self.ty().is_some_and(|t| t.dtype == DType::Bool) {
            self.cast_at(DType::I64, loc.clone())
        } else {
            self.clone()
        };
        x.binary_at("square", BinaryOp::Mul, Arg::Tensor(x.clone()), loc)
    }

    pub(crate) fn unary_at(&self, api: &'static str, op: UnaryOp, loc: SourceLoc) -> Tensor {
        let x = match op {
            // Float-only math computes in f32 for integers (PyTorch).
            UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid => {
                debug_assert!(op.float_only());
                if self.dtype().is_float() {
                    self.clone()
                } else {
                    self.cast_at(DType::F32, loc.clone())
                }
            }
            // PyTorch: floor of an integer is the integer itself; bool has no floor.
            UnaryOp::Floor => match self.ty().map(|t| t.dtype) {
                Some(DType::I64) => return self.clone(),
                Some(DType::Bool) => {
                    return self.fail(api, "not defined for dtype bool".into(), loc)
                }
                Some(DType::F32 | DType::F64) | None => self.clone(),
            },
            UnaryOp::Not => self.cast_at(DType::Bool, loc.clone()),
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Relu => self.clone(),
        };
        Tensor::apply_at(api, Op::Unary(op), &[&x], loc)
    }

    /// `-x` (`torch.neg`).
    #[track_caller]
    pub fn neg(&self) -> Tensor {
        self.unary_at("neg", UnaryOp::Neg, SourceLoc::caller())
    }

    /// `|x|` (`torch.abs`).
    #[track_caller]
    pub fn abs(&self) -> Tensor {
        self.unary_at("abs", UnaryOp::Abs, SourceLoc::caller())
    }

    /// Sign in {-1, 0, 1} (`torch.sign`).
    #[track_caller]
    pub fn sign(&self) -> Tensor {
        self.unary_at("sign", UnaryOp::Sign, SourceLoc::caller())
    }

    /// `e^x` (`torch.exp`).
    #[track_caller]
    pub fn exp(&self) -> Tensor {
        self.unary_at("exp", UnaryOp::Exp, SourceLoc::caller())
    }

    /// Natural logarithm (`torch.log`).
    #[track_caller]
    pub fn log(&self) -> Tensor {
        self.unary_at("log", UnaryOp::Log, SourceLoc::caller())
    }

    /// Square root (`torch.sqrt`).
    #[track_caller]
    pub fn sqrt(&self) -> Tensor {
        self.unary_at("sqrt", UnaryOp::Sqrt, SourceLoc::caller())
    }

    /// Sine (`torch.sin`).
    #[track_caller]
    pub fn sin(&self) -> Tensor {
        self.unary_at("sin", UnaryOp::Sin, SourceLoc::caller())
    }

    /// Cosine (`torch.cos`).
    #[track_caller]
    pub fn cos(&self) -> Tensor {
        self.unary_at("cos", UnaryOp::Cos, SourceLoc::caller())
    }

    /// Hyperbolic tangent (`torch.tanh`).
    #[track_caller]
    pub fn tanh(&self) -> Tensor {
        self.unary_at("tanh", UnaryOp::Tanh, SourceLoc::caller())
    }

    /// Logistic sigmoid (`torch.sigmoid`).
    #[track_caller]
    pub fn sigmoid(&self) -> Tensor {
        self.unary_at("sigmoid", UnaryOp::Sigmoid, SourceLoc::caller())
    }

    /// `max(x, 0)` (`torch.relu`).
    #[track_caller]
    pub fn relu(&self) -> Tensor {
        self.unary_at("relu", UnaryOp::Relu, SourceLoc::caller())
    }

    /// Floor (`torch.floor`); an integer tensor is returned unchanged, as in PyTorch.
    #[track_caller]
    pub fn floor(&self) -> Tensor {
        self.unary_at("floor", UnaryOp::Floor, SourceLoc::caller())
    }

    /// `1 / x` (`torch.reciprocal`).
    #[track_caller]
    pub fn reciprocal(&self) -> Tensor {
        let loc = SourceLoc::caller();
        let x = if self.dtype().is_float() {
            self.clone()
        } else {
            self.cast_at(DType::F32, loc.clone())
        };
        let one = x.arg_tensor(Arg::Float(1.0), &loc);
        one.binary_at("reciprocal", BinaryOp::Div, Arg::Tensor(x), loc)
    }

    /// Logical not (`torch.logical_not`); non-zero is `true`.
    #[track_caller]
    pub fn logical_not(&self) -> Tensor {
        self.unary_at("logical_not", UnaryOp::Not, SourceLoc::caller())
    }

    fn logical_at(&self, api: &'static str, op: BinaryOp, other: Arg, loc: SourceLoc) -> Tensor {
        let o = self
            .arg_tensor(other, &loc)
            .cast_at(DType::Bool, loc.clone());
        let s = self.cast_at(DType::Bool, loc.clone());
        Tensor::apply_at(api, Op::Binary(op), &[&s, &o], loc)
    }

    /// Logical and (`torch.logical_and`).
    #[track_caller]
    pub fn logical_and(&self, other: impl Into<Arg>) -> Tensor {
        self.logical_at(
            "logical_and",
            BinaryOp::And,
            other.into(),
            SourceLoc::caller(),
        )
    }

    /// Logical or (`torch.logical_or`).
    #[track_caller]
    pub fn logical_or(&self, other: impl Into<Arg>) -> Tensor {
        self.logical_at(
            "logical_or",
            BinaryOp::Or,
            other.into(),
            SourceLoc::caller(),
        )
    }

    pub(crate) fn compare_at(
        &self,
        api: &'static str,
        op: CmpOp,
        other: Arg,
        loc: SourceLoc,
    ) -> Tensor {
        let o = self.arg_tensor(other, &loc);
        let (a, b) = Tensor::promote2(self, &o, None, &loc);
        Tensor::apply_at(api, Op::Compare(op), &[&a, &b], loc)
    }

    /// `self == other` elementwise (`torch.eq`).
    #[track_caller]
    pub fn eq(&self, other: impl Into<Arg>) -> Tensor {
        self.compare_at("eq", CmpOp::Eq, other.into(), SourceLoc::caller())
    }

    /// `self != other` elementwise (`torch.ne`).
    #[track_caller]
    pub fn ne(&self, other: impl Into<Arg>) -> Tensor {
        self.compare_at("ne", CmpOp::Ne, other.into(), SourceLoc::caller())
    }

    /// `self < other` elementwise (`torch.lt`).
    #[track_caller]
    pub fn lt(&self, other: impl Into<Arg>) -> Tensor {
        self.compare_at("lt", CmpOp::Lt, other.into(), SourceLoc::caller())
    }

    /// `self <= other` elementwise (`torch.le`).
    #[track_caller]
    pub fn le(&self, other: impl Into<Arg>) -> Tensor {
        self.compare_at("le", CmpOp::Le, other.into(), SourceLoc::caller())
    }

    /// `self > other` elementwise (`torch.gt`).
    #[track_caller]
    pub fn gt(&self, other: impl Into<Arg>) -> Tensor {
        self.compare_at("gt", CmpOp::Gt, other.into(), SourceLoc::caller())
    }

    /// `self >= other` elementwise (`torch.ge`).
    #[track_caller]
    pub fn ge(&self, other: impl Into<Arg>) -> Tensor {
        self.compare_at("ge", CmpOp::Ge, other.into(), SourceLoc::caller())
    }

    /// Replaces elements where `mask` is true by `value` (`Tensor.masked_fill`). The
    /// result keeps this tensor's dtype, as in PyTorch: the value is converted to it
    /// (`i64.masked_fill(m, 2.5)` fills 2, `bool.masked_fill(m, 3)` fills `true`).
    /// `value` is a scalar or a 0-d tensor; a value that does not fit the dtype (a
    /// non-finite float into an integer, a float beyond f32's range into f32) is an
    /// error.
    #[track_caller]
    pub fn masked_fill(&self, mask: &Tensor, value: impl Into<Arg>) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "masked_fill";
        let dt = self.dtype();
        let value = value.into();
        if let Arg::Float(x) = value {
            let fits = match dt {
                DType::F64 => true,
                DType::F32 => !x.is_finite() || x.abs() <= f64::from(f32::MAX),
                // [-2⁶³, 2⁶³): i64's range.
                DType::I64 => {
                    x.is_finite()
                        && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18)
                            .contains(&x.trunc())
                }
                DType::Bool => true,
            };
            if !fits {
                return self.fail(
                    api,
                    format!("value {x} cannot be converted to dtype {dt} without overflow"),
                    loc,
                );
            }
        }
        if let Arg::Tensor(t) = &value {
            if t.ty().is_some_and(|ty| ty.shape.rank() != 0) {
                return self.fail(
                    api,
                    format!(
                        "the value must be a scalar or a 0-d tensor, got shape {}",
                        t.shape()
                    ),
                    loc,
                );
            }
        }
        if mask.ty().is_some_and(|t| t.dtype != DType::Bool) {
            return self.fail(
                api,
                format!("the mask must be bool, got {}", mask.dtype()),
                loc,
            );
        }
        let v = match value {
            Arg::Tensor(t) => t,
            Arg::Float(x) => self.const_at(Array::scalar(DType::F64, x), loc.clone()),
            Arg::Int(i) => self.const_at(Array::scalar_i64(i), loc.clone()),
            Arg::Bool(b) => self.const_at(
                Array::scalar(DType::Bool, f64::from(u8::from(b))),
                loc.clone(),
            ),
        }
        .cast_at(dt, loc.clone());
        where_at(mask, &v, &Arg::Tensor(self.clone()), loc)
    }
}

/// PyTorch's `combine_categories(higher, lower)`: the dtype of a tensor with axes
/// (`dim`) against a 0-d one (`zero`). A float `dim` wins; a bool `dim`, or a float
/// `zero`, promotes; otherwise (integer `dim`) `dim` wins.
pub(crate) fn combine_categories(dim: DType, zero: DType) -> DType {
    if dim.is_float() {
        dim
    } else if dim == DType::Bool || zero.is_float() {
        dim.promote(zero)
    } else {
        dim
    }
}

/// `torch.where(cond, a, b)`: elements of `a` where `cond` is true, else of `b`, with
/// broadcasting of all three. `cond` is cast to bool; `a` and `b` are promoted, and a
/// scalar branch takes the other branch's dtype.
#[track_caller]
pub fn where_(cond: &Tensor, a: impl Into<Arg>, b: impl Into<Arg>) -> Tensor {
    let loc = SourceLoc::caller();
    let (a, b) = (a.into(), b.into());
    let a = match (&a, &b) {
        (Arg::Tensor(t), _) => t.clone(),
        (_, Arg::Tensor(t)) => t.arg_tensor(a, &loc),
        _ => cond.arg_tensor(a, &loc),
    };
    where_at(cond, &a, &b, loc)
}

fn where_at(cond: &Tensor, a: &Tensor, b: &Arg, loc: SourceLoc) -> Tensor {
    let b = a.arg_tensor(b.clone(), &loc);
    let c = cond.cast_at(DType::Bool, loc.clone());
    let (a, b) = Tensor::promote2(a, &b, None, &loc);
    Tensor::apply_at("where", Op::Where, &[&c, &a, &b], loc)
}
