//! Typed access to array storage.
//!
//! [`Elem`] is implemented by the four element types (`bool`, `i64`, `f32`, `f64`) and
//! lets kernels be written once, generically; the `with_elem!` / `with_float!` macros
//! turn a runtime [`DType`] into that type parameter. Scalar conversions between dtypes
//! (used by `cast` and by the fill value of `pad`) go through [`Num`]. The element
//! selection helpers ([`take`], [`take_or_fill`]) implement every pure data-movement op
//! from a list of source indices.

use super::error::{InterpError, Result};
use onde_ir::{Array, DType, Data, Shape};

/// A scalar of any dtype, in the widest type of its kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Num {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

/// An element type of [`Array`] storage.
pub(crate) trait Elem: Copy + PartialOrd + 'static {
    /// The matching dtype.
    const DTYPE: DType;
    /// The storage as a slice, if it holds this element type.
    fn slice(d: &Data) -> Option<&[Self]>;
    /// Wraps elements into storage.
    fn wrap(v: Vec<Self>) -> Data;
    /// The element as a [`Num`].
    fn to_num(self) -> Num;
    /// Conversion from any scalar, with `cast`'s rules: to bool is `!= 0` (NaN is
    /// true), bool to number is 0/1, float to i64 truncates toward zero (saturating at
    /// the i64 range, NaN gives 0), i64 to float rounds to nearest.
    fn from_num(n: Num) -> Self;
    /// Whether this is a NaN (always false for bool and i64).
    fn is_nan(self) -> bool;
}

/// A floating-point element type; arithmetic is done in f64.
pub(crate) trait Float: Elem {
    /// Exact widening to f64.
    fn to_f64(self) -> f64;
    /// Rounding (to nearest) from f64.
    fn from_f64(x: f64) -> Self;
}

impl Elem for bool {
    const DTYPE: DType = DType::Bool;
    fn slice(d: &Data) -> Option<&[bool]> {
        match d {
            Data::Bool(v) => Some(v),
            Data::I64(_) | Data::F32(_) | Data::F64(_) => None,
        }
    }
    fn wrap(v: Vec<bool>) -> Data {
        Data::Bool(v)
    }
    fn to_num(self) -> Num {
        Num::Bool(self)
    }
    fn from_num(n: Num) -> bool {
        match n {
            Num::Bool(b) => b,
            Num::Int(i) => i != 0,
            Num::Float(f) => f != 0.0,
        }
    }
    fn is_nan(self) -> bool {
        false
    }
}

impl Elem for i64 {
    const DTYPE: DType = DType::I64;
    fn slice(d: &Data) -> Option<&[i64]> {
        match d {
            Data::I64(v) => Some(v),
            Data::Bool(_) | Data::F32(_) | Data::F64(_) => None,
        }
    }
    fn wrap(v: Vec<i64>) -> Data {
        Data::I64(v)
    }
    fn to_num(self) -> Num {
        Num::Int(self)
    }
    fn from_num(n: Num) -> i64 {
        match n {
            Num::Bool(b) => i64::from(b),
            Num::Int(i) => i,
            // `as` truncates toward zero, saturates, and maps NaN to 0.
            Num::Float(f) => f as i64,
        }
    }
    fn is_nan(self) -> bool {
        false
    }
}

impl Elem for f32 {
    const DTYPE: DType = DType::F32;
    fn slice(d: &Data) -> Option<&[f32]> {
        match d {
            Data::F32(v) => Some(v),
            Data::Bool(_) | Data::I64(_) | Data::F64(_) => None,
        }
    }
    fn wrap(v: Vec<f32>) -> Data {
        Data::F32(v)
    }
    fn to_num(self) -> Num {
        Num::Float(f64::from(self))
    }
    fn from_num(n: Num) -> f32 {
        match n {
            Num::Bool(b) => f32::from(u8::from(b)),
            // Direct rounding i64 → f32 (not through f64, which could round twice).
            Num::Int(i) => i as f32,
            Num::Float(f) => f as f32,
        }
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Elem for f64 {
    const DTYPE: DType = DType::F64;
    fn slice(d: &Data) -> Option<&[f64]> {
        match d {
            Data::F64(v) => Some(v),
            Data::Bool(_) | Data::I64(_) | Data::F32(_) => None,
        }
    }
    fn wrap(v: Vec<f64>) -> Data {
        Data::F64(v)
    }
    fn to_num(self) -> Num {
        Num::Float(self)
    }
    fn from_num(n: Num) -> f64 {
        match n {
            Num::Bool(b) => f64::from(u8::from(b)),
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

impl Float for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
}

impl Float for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(x: f64) -> f64 {
        x
    }
}

/// Runs `$body` with the type alias `$T` bound to the element type of `$dtype`.
macro_rules! with_elem {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            onde_ir::DType::Bool => {
                type $T = bool;
                $body
            }
            onde_ir::DType::I64 => {
                type $T = i64;
                $body
            }
            onde_ir::DType::F32 => {
                type $T = f32;
                $body
            }
            onde_ir::DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}
pub(crate) use with_elem;

/// Runs `$body` with `$T` bound to the float element type of `$dtype`, or evaluates
/// `$other` for bool and i64.
macro_rules! with_float {
    ($dtype:expr, $T:ident => $body:expr, else $other:expr) => {
        match $dtype {
            onde_ir::DType::F32 => {
                type $T = f32;
                $body
            }
            onde_ir::DType::F64 => {
                type $T = f64;
                $body
            }
            onde_ir::DType::Bool | onde_ir::DType::I64 => $other,
        }
    };
}
pub(crate) use with_float;

/// The elements of `a`, which must be of type `T`.
pub(crate) fn typed<T: Elem>(a: &Array) -> Result<&[T]> {
    T::slice(a.data()).ok_or_else(|| {
        InterpError::internal(format!(
            "expected an array of {}, got {}",
            T::DTYPE,
            a.dtype()
        ))
    })
}

/// Builds an array of extents `dims` from its row-major elements.
pub(crate) fn make<T: Elem>(dims: Vec<usize>, v: Vec<T>) -> Result<Array> {
    Array::new(Shape::new(dims), T::wrap(v)).map_err(|e| InterpError::internal(e.to_string()))
}

/// `src[i]`, or an internal error if out of bounds.
pub(crate) fn at<T: Copy>(src: &[T], i: usize) -> Result<T> {
    src.get(i).copied().ok_or_else(|| {
        InterpError::internal(format!(
            "element {i} out of bounds of {} elements",
            src.len()
        ))
    })
}

/// An unsupported-dtype internal error (the typing rules exclude it).
pub(crate) fn bad_dtype(what: &str, dtype: DType) -> InterpError {
    InterpError::internal(format!("{what} is not defined for dtype {dtype}"))
}

/// The array of extents `dims` whose element `j` is `x`'s element `idx[j]`.
pub(crate) fn take(x: &Array, idx: &[usize], dims: Vec<usize>) -> Result<Array> {
    with_elem!(x.dtype(), T => {
        let src = typed::<T>(x)?;
        let v = idx.iter().map(|&i| at(src, i)).collect::<Result<Vec<T>>>()?;
        make(dims, v)
    })
}

/// Like [`take`], with `fill` (converted to `x`'s dtype) where the index is `None`.
pub(crate) fn take_or_fill(
    x: &Array,
    idx: &[Option<usize>],
    fill: Num,
    dims: Vec<usize>,
) -> Result<Array> {
    with_elem!(x.dtype(), T => {
        let src = typed::<T>(x)?;
        let fill = T::from_num(fill);
        let v = idx
            .iter()
            .map(|i| match i {
                Some(i) => at(src, *i),
                None => Ok(fill),
            })
            .collect::<Result<Vec<T>>>()?;
        make(dims, v)
    })
}

/// Elementwise map of `x` into a new array of the same shape.
pub(crate) fn map<T: Elem, U: Elem>(x: &Array, f: impl Fn(T) -> U) -> Result<Array> {
    let v = typed::<T>(x)?.iter().map(|&a| f(a)).collect();
    make(x.shape().dims().to_vec(), v)
}
