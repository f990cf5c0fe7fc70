//! [`Emit`]: a small op-building helper for passes that add IR (autodiff rules).
//! Every op is type-checked as it is added; a failure names the rule that emitted it.
//! [`rewrite_each`]: the loop of a pass that replaces each matched op's result.

use onde_ir::{
    Array, BinaryOp, CmpOp, DType, Graph, Op, ReduceKind, Shape, SliceAxis, SourceLoc, TensorType,
    UnaryOp, ValueId,
};

/// An op a pass tried to add did not type-check.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("rule {rule}: emitting {op}: {error}")]
pub struct EmitError {
    /// The rule (e.g. `grad(matmul)`).
    pub rule: String,
    /// The op being emitted.
    pub op: &'static str,
    /// The graph's error.
    pub error: onde_ir::GraphError,
}

/// Adds ops to a graph on behalf of a named rule, tagging them with a source location.
#[derive(Debug)]
pub struct Emit<'a> {
    /// The graph being extended.
    pub g: &'a mut Graph,
    /// Location recorded on emitted ops (the forward op's, for readable dumps).
    pub loc: Option<SourceLoc>,
    /// The rule currently emitting, for error messages.
    pub rule: String,
}

/// Result of emitting.
pub type R<T = ValueId> = Result<T, EmitError>;

impl<'a> Emit<'a> {
    /// A new emitter.
    pub fn new(g: &'a mut Graph) -> Emit<'a> {
        Emit {
            g,
            loc: None,
            rule: String::new(),
        }
    }

    /// The type of `v`.
    pub fn ty(&self, v: ValueId) -> TensorType {
        self.g.value_type(v).clone()
    }

    /// The shape of `v`.
    pub fn shape(&self, v: ValueId) -> Shape {
        self.ty(v).shape
    }

    /// Adds `op` and returns its results.
    pub fn ops(&mut self, op: Op, operands: &[ValueId]) -> R<Vec<ValueId>> {
        let name = op.name();
        self.g
            .add_op(op, operands, self.loc.clone())
            .map(|(_, r)| r)
            .map_err(|error| EmitError {
                rule: self.rule.clone(),
                op: name,
                error,
            })
    }

    /// Adds a single-result `op`.
    pub fn op(&mut self, op: Op, operands: &[ValueId]) -> R {
        let name = op.name();
        let r = self.ops(op, operands)?;
        r.first().copied().ok_or_else(|| EmitError {
            rule: self.rule.clone(),
            op: name,
            error: onde_ir::GraphError::Type(onde_ir::TypeError {
                op: name,
                operands: vec![],
                reason: "op has no result".into(),
            }),
        })
    }

    /// A scalar constant of `dtype`.
    pub fn scalar(&mut self, dtype: DType, x: f64) -> R {
        self.op(Op::Constant(Array::scalar(dtype, x)), &[])
    }

    /// `x` filled with the scalar `v` (a scalar constant broadcast to `x`'s shape).
    pub fn full_like(&mut self, x: ValueId, v: f64) -> R {
        let t = self.ty(x);
        let s = self.scalar(t.dtype, v)?;
        self.expand(s, t.shape)
    }

    /// Zeros of a given type.
    pub fn zeros(&mut self, t: &TensorType) -> R {
        let s = self.scalar(t.dtype, 0.0)?;
        self.expand(s, t.shape.clone())
    }

    /// Elementwise unary op.
    pub fn unary(&mut self, u: UnaryOp, x: ValueId) -> R {
        self.op(Op::Unary(u), &[x])
    }

    /// Elementwise binary op (broadcasting).
    pub fn binary(&mut self, b: BinaryOp, x: ValueId, y: ValueId) -> R {
        self.op(Op::Binary(b), &[x, y])
    }

    /// `x + y`.
    pub fn add(&mut self, x: ValueId, y: ValueId) -> R {
        self.binary(BinaryOp::Add, x, y)
    }

    /// `x - y`.
    pub fn sub(&mut self, x: ValueId, y: ValueId) -> R {
        self.binary(BinaryOp::Sub, x, y)
    }

    /// `x * y`.
    pub fn mul(&mut self, x: ValueId, y: ValueId) -> R {
        self.binary(BinaryOp::Mul, x, y)
    }

    /// `x / y`.
    pub fn div(&mut self, x: ValueId, y: ValueId) -> R {
        self.binary(BinaryOp::Div, x, y)
    }

    /// `-x`.
    pub fn neg(&mut self, x: ValueId) -> R {
        self.unary(UnaryOp::Neg, x)
    }

    /// `x * c` for a scalar `c` of `x`'s dtype.
    pub fn mul_scalar(&mut self, x: ValueId, c: f64) -> R {
        let s = self.scalar(self.ty(x).dtype, c)?;
        self.mul(x, s)
    }

    /// `x + c` for a scalar `c` of `x`'s dtype.
    pub fn add_scalar(&mut self, x: ValueId, c: f64) -> R {
        let s = self.scalar(self.ty(x).dtype, c)?;
        self.add(x, s)
    }

    /// Comparison.
    pub fn cmp(&mut self, c: CmpOp, x: ValueId, y: ValueId) -> R {
        self.op(Op::Compare(c), &[x, y])
    }

    /// Comparison against a scalar of `x`'s dtype.
    pub fn cmp_scalar(&mut self, c: CmpOp, x: ValueId, v: f64) -> R {
        let s = self.scalar(self.ty(x).dtype, v)?;
        self.cmp(c, x, s)
    }

    /// `where(c, a, b)`.
    pub fn where_(&mut self, c: ValueId, a: ValueId, b: ValueId) -> R {
        self.op(Op::Where, &[c, a, b])
    }

    /// Cast (no-op if already `to`).
    pub fn cast(&mut self, x: ValueId, to: DType) -> R {
        if self.ty(x).dtype == to {
            return Ok(x);
        }
        self.op(Op::Cast { to }, &[x])
    }

    /// Reduction (no-op for an empty axis list without keepdim change).
    pub fn reduce(&mut self, kind: ReduceKind, x: ValueId, axes: Vec<usize>, keepdim: bool) -> R {
        if axes.is_empty() {
            return Ok(x);
        }
        self.op(
            Op::Reduce {
                kind,
                axes,
                keepdim,
            },
            &[x],
        )
    }

    /// Sum over `axes`.
    pub fn sum(&mut self, x: ValueId, axes: Vec<usize>, keepdim: bool) -> R {
        self.reduce(ReduceKind::Sum, x, axes, keepdim)
    }

    /// Reshape (no-op if the shape is unchanged).
    pub fn reshape(&mut self, x: ValueId, shape: Shape) -> R {
        if self.shape(x) == shape {
            return Ok(x);
        }
        self.op(Op::Reshape { shape }, &[x])
    }

    /// Permute (no-op for the identity).
    pub fn permute(&mut self, x: ValueId, perm: Vec<usize>) -> R {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(x);
        }
        self.op(Op::Permute { perm }, &[x])
    }

    /// Swaps the last two axes.
    pub fn transpose_last(&mut self, x: ValueId) -> R {
        let r = self.shape(x).rank();
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.permute(x, perm)
    }

    /// Broadcast to `shape` (no-op if unchanged).
    pub fn expand(&mut self, x: ValueId, shape: Shape) -> R {
        if self.shape(x) == shape {
            return Ok(x);
        }
        self.op(Op::Expand { shape }, &[x])
    }

    /// Strided slice.
    pub fn slice(&mut self, x: ValueId, axes: Vec<SliceAxis>) -> R {
        self.op(Op::Slice { axes }, &[x])
    }

    /// `x` sliced along `axis` only (whole along the others).
    pub fn slice_axis(&mut self, x: ValueId, axis: usize, along: SliceAxis) -> R {
        let axes = self
            .shape(x)
            .dims()
            .iter()
            .enumerate()
            .map(|(a, &n)| {
                if a == axis {
                    along
                } else {
                    SliceAxis::whole(n)
                }
            })
            .collect();
        self.slice(x, axes)
    }

    /// `x` with axis `axis` cut to its first `len` elements or zero-padded after to
    /// `len` (unchanged when it already has that extent).
    pub fn fit_axis(&mut self, x: ValueId, axis: usize, len: usize) -> R {
        let dims = self.shape(x).dims().to_vec();
        let have = dims[axis];
        if have > len {
            self.slice_axis(x, axis, SliceAxis::range(0, len))
        } else {
            let mut pads = vec![(0, 0); dims.len()];
            pads[axis] = (0, len - have);
            self.pad(x, pads)
        }
    }

    /// Zero padding.
    pub fn pad(&mut self, x: ValueId, pads: Vec<(usize, usize)>) -> R {
        if pads.iter().all(|&p| p == (0, 0)) {
            return Ok(x);
        }
        self.op(
            Op::Pad {
                pads,
                value_bits: 0f64.to_bits(),
            },
            &[x],
        )
    }

    /// Batched matmul.
    pub fn matmul(&mut self, a: ValueId, b: ValueId) -> R {
        self.op(Op::MatMul, &[a, b])
    }
}

/// Replaces the result of every op that `find` matches (matched on the graph as it is
/// before any replacement): `build` emits the new value from the match, with an
/// emitter at the op's source location tagged `rule`; uses of the old result move to
/// it, and ops left dead are removed. Returns whether anything was replaced; an
/// emitting error is reported as the pass `rule` failing.
pub(crate) fn rewrite_each<M>(
    g: &mut Graph,
    rule: &'static str,
    find: impl Fn(&Graph, onde_ir::OpId) -> Option<M>,
    build: impl Fn(&mut Emit<'_>, ValueId, &M) -> R,
) -> Result<bool, crate::pass::PassError> {
    let found: Vec<(onde_ir::OpId, M)> = g
        .op_ids()
        .into_iter()
        .filter_map(|o| find(g, o).map(|m| (o, m)))
        .collect();
    for (o, m) in &found {
        let old = g.results(*o)[0];
        let loc = g.op(*o).loc.clone();
        let mut e = Emit::new(g);
        e.loc = loc;
        e.rule = rule.into();
        let new = build(&mut e, old, m).map_err(|err| crate::pass::PassError::Failed {
            pass: rule,
            message: err.to_string(),
        })?;
        g.replace_all_uses(old, new);
    }
    if !found.is_empty() {
        crate::dce::dce(g);
    }
    Ok(!found.is_empty())
}
