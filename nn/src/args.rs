//! Argument types that make calls read like PyTorch: `x.sum([0, 2], true)`,
//! `x.reshape([2, -1])`, `x + 1.5`, `x.index(s![0, .., Idx::from(0..).step(2)])`.

use crate::tensor::Tensor;

/// A list of integers given as a literal array, slice, `Vec` or single integer.
/// Negative entries count from the end where the op allows it (axes, `-1` in shapes).
pub trait IntList {
    /// The integers.
    fn to_ints(&self) -> Vec<i64>;
}

macro_rules! int_list {
    ($($t:ty),*) => {$(
        impl IntList for $t {
            fn to_ints(&self) -> Vec<i64> { vec![*self as i64] }
        }
        impl<const N: usize> IntList for [$t; N] {
            fn to_ints(&self) -> Vec<i64> { self.iter().map(|&x| x as i64).collect() }
        }
        impl<const N: usize> IntList for &[$t; N] {
            fn to_ints(&self) -> Vec<i64> { self.iter().map(|&x| x as i64).collect() }
        }
        impl IntList for &[$t] {
            fn to_ints(&self) -> Vec<i64> { self.iter().map(|&x| x as i64).collect() }
        }
        impl IntList for Vec<$t> {
            fn to_ints(&self) -> Vec<i64> { self.iter().map(|&x| x as i64).collect() }
        }
    )*};
}
int_list!(i32, i64, usize, isize);

impl IntList for onde_ir::Shape {
    fn to_ints(&self) -> Vec<i64> {
        self.dims().iter().map(|&x| x as i64).collect()
    }
}

/// The right-hand side of a binary op: a tensor or a Rust scalar.
#[derive(Clone, Debug)]
pub enum Arg {
    /// A tensor.
    Tensor(Tensor),
    /// A float scalar (becomes a constant of the tensor operand's float dtype).
    Float(f64),
    /// An integer scalar (becomes a constant of the tensor operand's dtype).
    Int(i64),
    /// A bool scalar.
    Bool(bool),
}

impl From<&Tensor> for Arg {
    fn from(t: &Tensor) -> Arg {
        Arg::Tensor(t.clone())
    }
}
impl From<Tensor> for Arg {
    fn from(t: Tensor) -> Arg {
        Arg::Tensor(t)
    }
}
impl From<&&Tensor> for Arg {
    fn from(t: &&Tensor) -> Arg {
        Arg::Tensor((*t).clone())
    }
}
impl From<f64> for Arg {
    fn from(x: f64) -> Arg {
        Arg::Float(x)
    }
}
impl From<f32> for Arg {
    fn from(x: f32) -> Arg {
        Arg::Float(f64::from(x))
    }
}
impl From<i64> for Arg {
    fn from(x: i64) -> Arg {
        Arg::Int(x)
    }
}
impl From<i32> for Arg {
    fn from(x: i32) -> Arg {
        Arg::Int(i64::from(x))
    }
}
impl From<bool> for Arg {
    fn from(x: bool) -> Arg {
        Arg::Bool(x)
    }
}

/// One entry of an index expression, as in `x[0, :, 0::2]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idx {
    /// A single position; the axis is removed (`x[3]`, negative counts from the end).
    At(i64),
    /// A range `start:stop:step` (ends optional and clamped, negative from the end,
    /// step >= 1); the axis is kept.
    Range {
        /// Start, default 0.
        start: Option<i64>,
        /// Stop, default the extent.
        stop: Option<i64>,
        /// Step, default 1.
        step: i64,
    },
    /// `...`: as many full ranges as needed.
    Ellipsis,
    /// `None`/`newaxis`: insert an axis of extent 1.
    NewAxis,
}

impl Idx {
    /// The full range `:`.
    pub const FULL: Idx = Idx::Range {
        start: None,
        stop: None,
        step: 1,
    };

    /// Sets the step of a range (`Idx::from(0..).step(2)` is `0::2`).
    pub fn step(self, step: i64) -> Idx {
        match self {
            Idx::Range { start, stop, .. } => Idx::Range { start, stop, step },
            Idx::At(i) => Idx::Range {
                start: Some(i),
                stop: None,
                step,
            },
            Idx::Ellipsis | Idx::NewAxis => self,
        }
    }
}

impl From<i64> for Idx {
    fn from(i: i64) -> Idx {
        Idx::At(i)
    }
}
impl From<i32> for Idx {
    fn from(i: i32) -> Idx {
        Idx::At(i64::from(i))
    }
}
impl From<std::ops::RangeFull> for Idx {
    fn from(_: std::ops::RangeFull) -> Idx {
        Idx::FULL
    }
}
macro_rules! range_idx {
    ($($t:ty),*) => {$(
        impl From<std::ops::Range<$t>> for Idx {
            fn from(r: std::ops::Range<$t>) -> Idx {
                Idx::Range { start: Some(r.start as i64), stop: Some(r.end as i64), step: 1 }
            }
        }
        impl From<std::ops::RangeFrom<$t>> for Idx {
            fn from(r: std::ops::RangeFrom<$t>) -> Idx {
                Idx::Range { start: Some(r.start as i64), stop: None, step: 1 }
            }
        }
        impl From<std::ops::RangeTo<$t>> for Idx {
            fn from(r: std::ops::RangeTo<$t>) -> Idx {
                Idx::Range { start: None, stop: Some(r.end as i64), step: 1 }
            }
        }
    )*};
}
range_idx!(i32, i64);

/// Builds an index list: `s![0, .., Idx::from(0..).step(2)]` is PyTorch's
/// `[0, :, 0::2]`; use `Idx::Ellipsis` for `...` and `Idx::NewAxis` for `None`.
#[macro_export]
macro_rules! s {
    ($($e:expr),* $(,)?) => {
        [$($crate::Idx::from($e)),*]
    };
}
