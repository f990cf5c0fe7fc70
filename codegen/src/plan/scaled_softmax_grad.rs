//! A scalar factor folded into softmax's backward step.
//!
//! Attention scales its scores (`softmax(q·kᵀ·c)`, `c = 1/√d`), so the scores'
//! gradient is `c · softmax_backward(dP, P)`: as a separate multiply, one more pass
//! over the whole `[B, T, T]` gradient, as long as the backward step itself. When
//! the step's result has no other user than `mul(result, c)` with `c` a scalar
//! constant, the step takes the factor (`CopyOp::SoftmaxBackward::scale`) and
//! multiplies each result in registers before storing it — the same two roundings as
//! the separate multiply, so the values are bit-identical to the unfolded plan.

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
