//! Scalar factors folded into the softmax steps.
//!
//! Attention scales its scores: `softmax(q·kᵀ·c)`, `c = 1/√d`.
//! - **Forward**: when the softmax's operand is `mul(x, c)` with `c` a scalar constant
//!   and nothing else reads the product, the step reads `x` and takes the factor
//!   (`CopyOp::Softmax::scale`), multiplying each element as it loads it: the scaled
//!   scores are never stored (one pass over the `[B, T, T]` scores saved) and the
//!   values are those of the separate multiply, bit for bit.
//! - **Backward**: the scores' gradient is `c · softmax_backward(dP, P)`; as a separate
//!   multiply, one more pass over the whole gradient, as long as the backward step
//!   itself. When the step's result has no other user than `mul(result, c)`, the step
//!   takes the factor (`CopyOp::SoftmaxBackward::scale`) and multiplies each result in
//!   registers before storing it — the same two roundings as the separate multiply, so
//!   the values are bit-identical to the unfolded plan.
//!
//! (`passes::scale_matmul` leaves a product's scaling in place when a softmax reads
//! it, for the forward fold.)

use super::steps::{CopyOp, Step};
use super::{Planner, Val};
use onde_ir::{BinaryOp, Op, ValueId};

impl Planner<'_> {
    /// If `r = mul(a, b)` is such a multiply (module doc), folds the factor into the
    /// step that computed the other operand, maps `r` to that step's buffer and
    /// returns `true`; otherwise changes nothing and returns `false`.
    pub(super) fn fold_softmax_backward_scale(
        &mut self,
        op: &Op,
        xs: &[ValueId],
        r: ValueId,
    ) -> bool {
        if *op != Op::Binary(BinaryOp::Mul) || xs.len() != 2 {
            return false;
        }
        for (grad, factor) in [(xs[0], xs[1]), (xs[1], xs[0])] {
            let from_softmax_backward = self
                .g
                .producer(grad)
                .is_some_and(|p| matches!(self.g.op(p).op, Op::SoftmaxBackward { .. }));
            if !from_softmax_backward {
                continue;
            }
            let Some(c) = self.scalar_constant(factor) else {
                continue;
            };
            if self.g.value_type(grad) != self.g.value_type(r)
                || self.g.users(grad).len() != 1
                || self.g.outputs().contains(&grad)
            {
                continue;
            }
            let Some(Val::Buf(buf)) = self.vals.get(&grad) else {
                continue;
            };
            let buf = *buf;
            let step = self.steps.iter_mut().rev().find_map(|s| {
                if let Step::Copy(CopyOp::SoftmaxBackward { scale, .. }, _, out) = s {
                    (*out == buf).then_some(scale)
                } else {
                    None
                }
            });
            // One factor only: two folded factors would round once where two multiplies
            // round twice.
            if let Some(scale) = step.filter(|s| **s == 1.0) {
                *scale = c;
                self.vals.insert(r, Val::Buf(buf));
                return true;
            }
        }
        false
    }

    /// If the softmax operand `t` (of the softmax whose result is `r`) is `mul(x, c)`
    /// with `c` a scalar constant, `x` of `t`'s own type, nothing else reading `t` and `t`
    /// not stored yet (module doc): `(x, c)`.
    pub(super) fn softmax_input_scale(&self, t: ValueId, r: ValueId) -> Option<(ValueId, f64)> {
        let p = self.g.producer(t)?;
        let xs = self.g.operands(p);
        if self.g.op(p).op != Op::Binary(BinaryOp::Mul)
            || xs.len() != 2
            || self.g.users(t).len() != 1
            || self.g.outputs().contains(&t)
            || self.g.value_type(t).dtype != self.g.value_type(r).dtype
            // Already stored (a long fused chain is): read it.
            || !matches!(self.vals.get(&t), Some(Val::Lazy(_)))
        {
            return None;
        }
        [(xs[0], xs[1]), (xs[1], xs[0])]
            .into_iter()
            .find_map(|(x, c)| {
                let c = self.scalar_constant(c)?;
                (self.g.value_type(x) == self.g.value_type(t)).then_some((x, c))
            })
    }

    /// The value of `v` if it is a one-element float constant.
    fn scalar_constant(&self, v: ValueId) -> Option<f64> {
        let node = self.g.op(self.g.producer(v)?);
        let Op::Constant(a) = &node.op else {
            return None;
        };
        if a.shape().numel() != 1 {
            return None;
        }
        match (a.as_f32(), a.as_f64()) {
            (Some(x), _) => x.first().map(|&x| f64::from(x)),
            (None, Some(x)) => x.first().copied(),
            (None, None) => None,
        }
    }
}
