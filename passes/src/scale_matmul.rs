//! A uniform scale of a matrix product moves to its smaller computed operand:
//! `(a @ b) · c → (a · c) @ b` (or `a @ (b · c)`), and `c · (a @ b)` and `(a @ b) / c`
//! likewise, for a uniform, finite, non-zero float constant `c` and a product read
//! only by that scaling. Only an operand smaller than the product and computed by the
//! graph is scaled: a fed input or parameter scaled at every run would become a
//! temporary (a weight would lose its prepacked GEMM, and in a loop be rescaled every
//! step).
//!
//! # Why
//! A scaled product read by elementwise kernels costs a pass over the product; scaling
//! the smaller operand instead fuses into the kernel that computes that operand. A
//! multiply read only by a softmax is left alone: the softmax takes the factor as it reads
//! the product (the codegen's `plan::scaled_softmax`, no pass at all), and the operand
//! stays unscaled for the other products that read it (attention's backward reads `q`
//! for `dK`), so the kernel computing it stores one result, not two.
//!
//! # Rounding
//! For `c = ±2ᵏ` both forms give the same bits unless a product under- or overflows;
//! otherwise the scaling is reassociated into the sums. So the pass is in
//! [`crate::optimizer`], not in [`crate::exact_optimizer`].

use crate::emit::rewrite_each;
use crate::pass::{Pass, PassError};
use crate::simplify::scalar_const;
use onde_ir::{BinaryOp, Graph, Op, OpId, ValueId};

/// The pass (see the module doc).
#[derive(Debug, Default)]
pub struct ScaleMatMul;

/// A scaling to rewrite: the product's operands, which one to scale, the op and the
/// constant operand.
struct Found {
    a: ValueId,
    b: ValueId,
    scale_a: bool,
    op: BinaryOp,
    c: ValueId,
}

/// Scaling `o` when it qualifies (see the module doc).
fn matches(g: &Graph, o: OpId) -> Option<Found> {
    let Op::Binary(op @ (BinaryOp::Mul | BinaryOp::Div)) = g.op(o).op else {
        return None;
    };
    let xs = g.operands(o);
    let r = *g.results(o).first()?;
    let is_product = |v: ValueId| {
        g.producer(v)
            .is_some_and(|q| g.op(q).op == Op::MatMul && g.users(v).len() == 1)
            && !g.outputs().contains(&v)
    };
    let (x0, x1) = (*xs.first()?, *xs.get(1)?);
    // `p · c`, `c · p` or `p / c`, with a finite, non-zero scale: `0 · inf` or `inf · 0` inside the sums would give NaN
    // where the scaled product has none (or the reverse).
    let scale = |v: ValueId| scalar_const(g, v).is_some_and(|c| c.is_finite() && c != 0.0);
    let (p, c) = if is_product(x0) && scale(x1) {
        (x0, x1)
    } else if op == BinaryOp::Mul && is_product(x1) && scale(x0) {
        (x1, x0)
    } else {
        return None;
    };
    // A softmax reading the scaled product takes the factor itself as it reads the
    // product (the codegen's `plan::scaled_softmax`): nothing to move.
    let users = g.users(r);
    if op == BinaryOp::Mul
        && users.len() == 1
        && users
            .iter()
            .all(|&u| matches!(g.op(u).op, Op::Softmax { .. }))
        && !g.outputs().contains(&r)
    {
        return None;
    }
    let prod = g.producer(p)?;
    let (rt, ct) = (g.value_type(r), g.value_type(c));
    // The scaling must not broadcast the product (the result is the product's type)
    // and must be one value (a rank-0 constant, or a uniform one no larger).
    if rt != g.value_type(p) || !rt.dtype.is_float() || ct.shape.numel() != 1 {
        return None;
    }
    let ab = g.operands(prod);
    let (a, b) = (*ab.first()?, *ab.get(1)?);
    // An operand is worth scaling when it is smaller than the product and computed (a
    // graph input or parameter scaled every run would be a new temporary: a weight
    // would lose its prepacked GEMM, and inside a loop be rescaled every step).
    let fed = |mut v: ValueId| {
        // Through views: a Linear layer's weight is read as `permute(W)`.
        while let Some(q) = g.producer(v) {
            let op = &g.op(q).op;
            if matches!(op, Op::Input { .. } | Op::Parameter { .. }) {
                return true;
            }
            let view = matches!(
                op,
                Op::Permute { .. }
                    | Op::Reshape { .. }
                    | Op::Expand { .. }
                    | Op::Slice { .. }
                    | Op::Cast { .. }
                    | Op::Detach
            );
            if !view {
                return false;
            }
            v = g.operands(q)[0];
        }
        false
    };
    let out = rt.shape.numel();
    let candidate = |v: ValueId| {
        let n = g.value_type(v).shape.numel();
        (n < out && !fed(v)).then_some(n)
    };
    let scale_a = match (candidate(a), candidate(b)) {
        (Some(na), Some(nb)) => na <= nb,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => return None,
    };
    Some(Found {
        a,
        b,
        scale_a,
        op,
        c,
    })
}

impl Pass for ScaleMatMul {
    fn name(&self) -> &'static str {
        "scale_matmul"
    }

    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        rewrite_each(g, "scale_matmul", matches, |e, _, f| {
            let c = e.reshape(f.c, onde_ir::Shape::scalar())?;
            let (a, b) = if f.scale_a {
                (e.binary(f.op, f.a, c)?, f.b)
            } else {
                (f.a, e.binary(f.op, f.b, c)?)
            };
            e.matmul(a, b)
        })
    }
}
