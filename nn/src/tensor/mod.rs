//! [`Tensor`]: a handle to a value of a graph being built, with PyTorch's method names.
//!
//! Methods are split by kind: [`elementwise`](self) (arithmetic, math, comparisons,
//! `where`), `operators` (`+ - * /` and unary `-`), `reduce`, `movement` (reshape,
//! permute, cat, tile, pad, gather…), `index` (slicing), `linalg` (matmul, conv) and
//! `creation` (`zeros_like`, …). Every method is `#[track_caller]`: the op records the
//! caller's location and any error names it (see [`crate::error`]).

mod activation;
mod attention;
mod clamp;
mod creation;
mod dropout;
mod elementwise;
mod index;
mod linalg;
mod movement;
mod norm;
pub(crate) use norm::Factor;
mod operators;
mod pool;
mod reduce;
mod sinc;
mod temporal;

pub use elementwise::where_;
pub use linalg::{ConvOpts, Padding};
pub use movement::{cat, stack, PadMode};
pub use pool::PoolOpts;
pub use temporal::TemporalStat;

use crate::builder::GraphBuilder;
use crate::error::{Error, Result};
use onde_ir::{DType, Op, Shape, SourceLoc, TensorType, ValueId};
use std::fmt;
use std::rc::Rc;

/// A handle to a value (tensor) of a graph under construction.
///
/// Cloning a `Tensor` clones the handle; values are immutable, so this is also
/// PyTorch's `clone()` (a copy that no later op can alias).
#[derive(Clone)]
pub struct Tensor {
    b: GraphBuilder,
    v: std::result::Result<ValueId, Rc<Error>>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.v {
            Ok(v) => write!(f, "Tensor({v:?}: {})", self.b.ty(*v)),
            Err(e) => write!(f, "Tensor(<error: {e}>)"),
        }
    }
}

impl Tensor {
    pub(crate) fn from_parts(
        b: GraphBuilder,
        v: std::result::Result<ValueId, Rc<Error>>,
    ) -> Tensor {
        Tensor { b, v }
    }

    /// The builder this tensor belongs to.
    pub fn builder(&self) -> &GraphBuilder {
        &self.b
    }

    /// The IR value id, or the error that poisoned this tensor.
    pub fn value(&self) -> Result<ValueId> {
        self.v.clone().map_err(|e| (*e).clone())
    }

    /// A poisoned tensor of this builder: `op` refused its arguments (applied to this
    /// tensor) for `reason`. For functions composed outside this crate (onde-signal's
    /// transforms), so their errors name the op, the operand and the caller's
    /// `file:line` like the built-in ones (mark the function `#[track_caller]`). A
    /// tensor already poisoned keeps its first error.
    #[track_caller]
    pub fn refuse(&self, op: &'static str, reason: impl Into<String>) -> Tensor {
        if self.v.is_err() {
            return self.clone();
        }
        self.b.poisoned(Error::Op {
            op,
            reason: reason.into(),
            operands: self.ty().into_iter().collect(),
            loc: onde_ir::SourceLoc::caller(),
        })
    }

    /// `Ok(self)` if every op leading here succeeded, else the first error: use with
    /// `?` after an op to fail early.
    pub fn check(&self) -> Result<Tensor> {
        self.value().map(|_| self.clone())
    }

    /// dtype and shape (`None` for a poisoned tensor).
    pub fn ty(&self) -> Option<TensorType> {
        self.v.as_ref().ok().map(|&v| self.b.ty(v))
    }

    /// The shape (empty for a poisoned tensor; see [`Tensor::check`]).
    pub fn shape(&self) -> Shape {
        self.ty().map(|t| t.shape).unwrap_or_default()
    }

    /// The shape as a `Vec<usize>`.
    pub fn size(&self) -> Vec<usize> {
        self.shape().dims().to_vec()
    }

    /// The dtype (`f32` for a poisoned tensor; see [`Tensor::check`]).
    pub fn dtype(&self) -> DType {
        self.ty().map(|t| t.dtype).unwrap_or(DType::F32)
    }

    /// Number of axes.
    pub fn dim(&self) -> usize {
        self.shape().rank()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape().numel()
    }

    /// Applies an IR op to `operands` (all of one builder), recording `loc`.
    pub(crate) fn apply_at(
        api: &'static str,
        op: Op,
        operands: &[&Tensor],
        loc: SourceLoc,
    ) -> Tensor {
        let b = operands[0].b.clone();
        let mut ids = Vec::with_capacity(operands.len());
        for t in operands {
            if !b.same(&t.b) {
                return b.poisoned(Error::MixedBuilders { op: api, loc });
            }
            match &t.v {
                Ok(v) => ids.push(*v),
                Err(e) => return Tensor::from_parts(b, Err(e.clone())),
            }
        }
        b.push(api, op, &ids, loc)
    }

    /// If this tensor carries an error raised inside a layer (not already attributed to
    /// one), the same error wrapped in [`Error::Layer`] naming the layer; the builder's
    /// first error is rewrapped too when it is that error. Containers call it on each
    /// child's output whose input was fine.
    pub(crate) fn in_layer(self, path: &str, kind: &'static str, input: Vec<usize>) -> Tensor {
        let Err(inner) = &self.v else {
            return self;
        };
        if matches!(**inner, Error::Layer { .. }) {
            return self;
        }
        let wrapped = Rc::new(Error::Layer {
            path: path.to_string(),
            kind,
            input,
            source: Box::new((**inner).clone()),
        });
        {
            let mut st = self.b.state.borrow_mut();
            if st
                .first_error
                .as_ref()
                .is_some_and(|f| Rc::ptr_eq(f, inner))
            {
                st.first_error = Some(wrapped.clone());
            }
        }
        Tensor::from_parts(self.b.clone(), Err(wrapped))
    }

    /// A poisoned tensor carrying an argument error for `api`.
    pub(crate) fn fail(&self, api: &'static str, reason: String, loc: SourceLoc) -> Tensor {
        if let Err(e) = &self.v {
            return Tensor::from_parts(self.b.clone(), Err(e.clone()));
        }
        let operands = self.ty().into_iter().collect();
        self.b.poisoned(Error::Op {
            op: api,
            reason,
            operands,
            loc,
        })
    }

    /// Normalises a possibly negative axis for a tensor of rank `rank`.
    pub(crate) fn norm_axis(axis: i64, rank: usize) -> std::result::Result<usize, String> {
        let r = rank as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(format!(
                "dimension {axis} out of range for a tensor of rank {rank} (expected in [{}, {}])",
                -r,
                r - 1
            ));
        }
        Ok(a as usize)
    }
}
