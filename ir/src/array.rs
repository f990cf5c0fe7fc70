//! Concrete host arrays: constant payloads in the IR and values in the runtime.
//!
//! Equality and hashing compare floats by bit pattern, so an `Array` can sit in an
//! `Op` that derives `Eq + Hash` (for CSE) and `NaN` constants compare equal to
//! themselves.

use crate::dtype::{DType, Shape};
use std::hash::{Hash, Hasher};

/// The element storage of an [`Array`], one variant per [`DType`].
#[derive(Clone, Debug)]
pub enum Data {
    /// Booleans.
    Bool(Vec<bool>),
    /// 64-bit integers.
    I64(Vec<i64>),
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
}

impl Data {
    /// The dtype of the storage.
    pub fn dtype(&self) -> DType {
        match self {
            Data::Bool(_) => DType::Bool,
            Data::I64(_) => DType::I64,
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
        }
    }

    /// Number of elements stored.
    pub fn len(&self) -> usize {
        match self {
            Data::Bool(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
        }
    }

    /// Whether no element is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` converted to f64 (bools as 0/1).
    pub fn get_f64(&self, i: usize) -> f64 {
        match self {
            Data::Bool(v) => f64::from(u8::from(v[i])),
            Data::I64(v) => v[i] as f64,
            Data::F32(v) => f64::from(v[i]),
            Data::F64(v) => v[i],
        }
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Data) -> bool {
        match (self, other) {
            (Data::Bool(a), Data::Bool(b)) => a == b,
            (Data::I64(a), Data::I64(b)) => a == b,
            (Data::F32(a), Data::F32(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (Data::F64(a), Data::F64(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            _ => false,
        }
    }
}

impl Eq for Data {}

impl Hash for Data {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.dtype().hash(h);
        match self {
            Data::Bool(v) => v.hash(h),
            Data::I64(v) => v.hash(h),
            Data::F32(v) => v.iter().for_each(|x| x.to_bits().hash(h)),
            Data::F64(v) => v.iter().for_each(|x| x.to_bits().hash(h)),
        }
    }
}

/// A dense, row-major array with a dtype and a shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Array {
    shape: Shape,
    data: Data,
}

/// Error building an [`Array`] whose data length does not match its shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("array of shape {shape} needs {expected} elements, got {got}")]
pub struct ArrayLenError {
    /// The requested shape.
    pub shape: Shape,
    /// Elements the shape needs.
    pub expected: usize,
    /// Elements given.
    pub got: usize,
}

impl Array {
    /// Builds an array, checking that `data` has exactly `shape.numel()` elements.
    pub fn new(shape: impl Into<Shape>, data: Data) -> Result<Array, ArrayLenError> {
        let shape = shape.into();
        if shape.numel() != data.len() {
            return Err(ArrayLenError {
                expected: shape.numel(),
                got: data.len(),
                shape,
            });
        }
        Ok(Array { shape, data })
    }

    /// An f32 array.
    pub fn f32(shape: impl Into<Shape>, v: Vec<f32>) -> Result<Array, ArrayLenError> {
        Array::new(shape, Data::F32(v))
    }

    /// An f64 array.
    pub fn f64(shape: impl Into<Shape>, v: Vec<f64>) -> Result<Array, ArrayLenError> {
        Array::new(shape, Data::F64(v))
    }

    /// An i64 array.
    pub fn i64(shape: impl Into<Shape>, v: Vec<i64>) -> Result<Array, ArrayLenError> {
        Array::new(shape, Data::I64(v))
    }

    /// A bool array.
    pub fn bool(shape: impl Into<Shape>, v: Vec<bool>) -> Result<Array, ArrayLenError> {
        Array::new(shape, Data::Bool(v))
    }

    /// A rank-0 array holding `x` converted to `dtype` (non-zero is `true` for bool).
    pub fn scalar(dtype: DType, x: f64) -> Array {
        Array::full(dtype, Shape::scalar(), x)
    }

    /// A rank-0 i64 array (exact for every i64, unlike [`Array::scalar`]).
    pub fn scalar_i64(x: i64) -> Array {
        Array {
            shape: Shape::scalar(),
            data: Data::I64(vec![x]),
        }
    }

    /// An array of `shape` filled with `x` converted to `dtype`.
    pub fn full(dtype: DType, shape: impl Into<Shape>, x: f64) -> Array {
        let shape = shape.into();
        let n = shape.numel();
        let data = match dtype {
            DType::Bool => Data::Bool(vec![x != 0.0; n]),
            DType::I64 => Data::I64(vec![x as i64; n]),
            DType::F32 => Data::F32(vec![x as f32; n]),
            DType::F64 => Data::F64(vec![x; n]),
        };
        Array { shape, data }
    }

    /// Builds an array of `dtype` from f64 values (truncating for i64, `!= 0` for bool).
    pub fn from_f64(
        dtype: DType,
        shape: impl Into<Shape>,
        v: &[f64],
    ) -> Result<Array, ArrayLenError> {
        let data = match dtype {
            DType::Bool => Data::Bool(v.iter().map(|&x| x != 0.0).collect()),
            DType::I64 => Data::I64(v.iter().map(|&x| x as i64).collect()),
            DType::F32 => Data::F32(v.iter().map(|&x| x as f32).collect()),
            DType::F64 => Data::F64(v.to_vec()),
        };
        Array::new(shape, data)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The storage.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// All elements converted to f64, row-major.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        (0..self.numel()).map(|i| self.data.get_f64(i)).collect()
    }

    /// The f32 elements, if this is an f32 array.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            Data::Bool(_) | Data::I64(_) | Data::F64(_) => None,
        }
    }

    /// The f64 elements, if this is an f64 array.
    pub fn as_f64(&self) -> Option<&[f64]> {
        match &self.data {
            Data::F64(v) => Some(v),
            Data::Bool(_) | Data::I64(_) | Data::F32(_) => None,
        }
    }

    /// The i64 elements, if this is an i64 array.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            Data::Bool(_) | Data::F32(_) | Data::F64(_) => None,
        }
    }

    /// The bool elements, if this is a bool array.
    pub fn as_bool(&self) -> Option<&[bool]> {
        match &self.data {
            Data::Bool(v) => Some(v),
            Data::I64(_) | Data::F32(_) | Data::F64(_) => None,
        }
    }

    /// The f32 elements, mutable (the shape is fixed), if this is an f32 array.
    pub fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.data {
            Data::F32(v) => Some(v),
            Data::Bool(_) | Data::I64(_) | Data::F64(_) => None,
        }
    }

    /// The f64 elements, mutable, if this is an f64 array.
    pub fn as_f64_mut(&mut self) -> Option<&mut [f64]> {
        match &mut self.data {
            Data::F64(v) => Some(v),
            Data::Bool(_) | Data::I64(_) | Data::F32(_) => None,
        }
    }

    /// The i64 elements, mutable, if this is an i64 array.
    pub fn as_i64_mut(&mut self) -> Option<&mut [i64]> {
        match &mut self.data {
            Data::I64(v) => Some(v),
            Data::Bool(_) | Data::F32(_) | Data::F64(_) => None,
        }
    }

    /// The bool elements, mutable, if this is a bool array.
    pub fn as_bool_mut(&mut self) -> Option<&mut [bool]> {
        match &mut self.data {
            Data::Bool(v) => Some(v),
            Data::I64(_) | Data::F32(_) | Data::F64(_) => None,
        }
    }

    /// Sets every element to `x` converted to the dtype (as [`Array::full`] does),
    /// keeping the storage, so pointers into it stay valid.
    pub fn fill(&mut self, x: f64) {
        match &mut self.data {
            Data::Bool(v) => v.fill(x != 0.0),
            Data::I64(v) => v.fill(x as i64),
            Data::F32(v) => v.fill(x as f32),
            Data::F64(v) => v.fill(x),
        }
    }

    /// Copies `other`'s elements into this array's storage (kept, so pointers into it
    /// stay valid). Returns `false`, changing nothing, unless dtypes and shapes match.
    pub fn copy_from(&mut self, other: &Array) -> bool {
        if self.shape != other.shape {
            return false;
        }
        match (&mut self.data, &other.data) {
            (Data::Bool(d), Data::Bool(s)) => d.copy_from_slice(s),
            (Data::I64(d), Data::I64(s)) => d.copy_from_slice(s),
            (Data::F32(d), Data::F32(s)) => d.copy_from_slice(s),
            (Data::F64(d), Data::F64(s)) => d.copy_from_slice(s),
            (Data::Bool(_) | Data::I64(_) | Data::F32(_) | Data::F64(_), _) => return false,
        }
        true
    }

    /// Splits into shape and storage.
    pub fn into_parts(self) -> (Shape, Data) {
        (self.shape, self.data)
    }
}
