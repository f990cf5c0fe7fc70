//! The op catalogue: what kind of operation each op is, as exhaustive methods, so a
//! new op cannot be left out of a class by accident (a `matches!` list or a hand-kept
//! array would silently leave it out: constant folding would fold a new impure op).
//!
//! Every pass that needs "is this op X" asks here:
//! - [`Op::class`]: the family (leaf, elementwise, reduction, movement, contraction,
//!   normalisation, random, loop), for dumps and cost decisions;
//! - [`Op::is_interface`]: inputs and parameters, the graph's interface (CSE and DCE
//!   keep them);
//! - [`Op::is_foldable`]: what constant folding may evaluate at compile time;
//! - [`UnaryOp::is_transcendental`]: a polynomial evaluation per element (the tile
//!   engine's reason to run a kernel);
//! - [`UnaryOp::float_only`]: defined on floats only (the API computes it in f32 for
//!   an integer tensor, as PyTorch does).

use crate::op::{Op, UnaryOp};

/// The family of an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpClass {
    /// No operands: inputs, parameters, constants.
    Leaf,
    /// One result element per element of the (broadcast) operands: unary, binary,
    /// compare, where, cast, detach.
    Elementwise,
    /// Reduces axes: reduce, arg-reduce.
    Reduction,
    /// Moves or selects elements without arithmetic: reshape, permute, expand, slice,
    /// unfold, pad, concat, gather, scatter-add.
    Movement,
    /// Matrix product and convolution.
    Contraction,
    /// Normalises lines along an axis, same shape out: softmax (a reduction and an
    /// elementwise pass in one op).
    Normalization,
    /// Counter-based random numbers (pure given the seed, but kept visible).
    Random,
    /// A loop with a body graph ([`Op::Scan`]).
    Loop,
}

impl Op {
    /// The op's family.
    pub fn class(&self) -> OpClass {
        match self {
            Op::Input { .. } | Op::Parameter { .. } | Op::Constant(_) => OpClass::Leaf,
            Op::Unary(_)
            | Op::Binary(_)
            | Op::Compare(_)
            | Op::Where
            | Op::Cast { .. }
            | Op::Detach => OpClass::Elementwise,
            Op::Reduce { .. } | Op::ArgReduce { .. } => OpClass::Reduction,
            Op::Reshape { .. }
            | Op::Permute { .. }
            | Op::Expand { .. }
            | Op::Slice { .. }
            | Op::Unfold { .. }
            | Op::Pad { .. }
            | Op::Concat { .. }
            | Op::Gather { .. }
            | Op::ScatterAdd { .. } => OpClass::Movement,
            Op::MatMul | Op::Conv(_) => OpClass::Contraction,
            Op::Softmax { .. } | Op::SoftmaxBackward { .. } => OpClass::Normalization,
            Op::Random { .. } => OpClass::Random,
            Op::Scan(_) => OpClass::Loop,
        }
    }

    /// Inputs and parameters: the graph's interface, fed by name at run time (never
    /// merged with a look-alike, never removed as dead).
    pub fn is_interface(&self) -> bool {
        // The leaves other than constants (derived from `class`, so a new op needs no
        // entry here).
        self.class() == OpClass::Leaf && !matches!(self, Op::Constant(_))
    }

    /// Whether constant folding may evaluate the op at compile time when its operands
    /// are constants: not leaves (nothing to fold), not random numbers (kept visible in
    /// dumps, and a large tensor from a tiny seed), not loops (kept visible).
    pub fn is_foldable(&self) -> bool {
        match self.class() {
            OpClass::Leaf | OpClass::Random | OpClass::Loop => false,
            OpClass::Elementwise
            | OpClass::Reduction
            | OpClass::Movement
            | OpClass::Contraction
            | OpClass::Normalization => true,
        }
    }
}

impl UnaryOp {
    /// Transcendental: evaluated as a polynomial per element (`exp`, `log`, `tanh`,
    /// `sigmoid`, `sin`, `cos`), worth the tile engine's wide vectors. `sqrt` is one
    /// instruction, as are the others.
    pub fn is_transcendental(self) -> bool {
        match self {
            UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Sin
            | UnaryOp::Cos => true,
            UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Sign
            | UnaryOp::Sqrt
            | UnaryOp::Relu
            | UnaryOp::Floor
            | UnaryOp::Not => false,
        }
    }

    /// Defined on floats only, computed in f32 for integer (and bool) tensors by the API
    /// as PyTorch does. `floor` is float-only in the IR, but the API returns an integer
    /// tensor unchanged instead (PyTorch's `floor` of an integer).
    pub fn float_only(self) -> bool {
        match self {
            UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Floor => true,
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Relu | UnaryOp::Not => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn float_only_ops_accept_floats_only() {
        for u in UnaryOp::ALL {
            if u.float_only() {
                assert!(u.accepts(DType::F32) && !u.accepts(DType::I64), "{u:?}");
            }
        }
        assert!(UnaryOp::ALL
            .iter()
            .all(|u| !u.is_transcendental() || u.float_only()));
    }
}
