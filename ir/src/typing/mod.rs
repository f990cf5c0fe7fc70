//! Typing rules: the result types of each op given its operand types.
//!
//! [`infer`] is the single source of truth, used both when building a graph
//! ([`crate::Graph::add_op`]) and when verifying one ([`fn@crate::verify`]). It
//! dispatches each op to its rule, one file per family: `leaf.rs`, `elementwise.rs`,
//! `reduce.rs`, `movement.rs`, `contraction.rs` (and the scan's rule here).

mod contraction;
mod elementwise;
mod leaf;
mod movement;
mod reduce;

use crate::array::Array;
use crate::dtype::{DType, Shape, TensorType};
use crate::op::{BinaryOp, ConvParams, Op, ScanOp, SliceAxis, UnaryOp};
use std::fmt;

/// The result of a typing rule.
type Res = Result<Vec<TensorType>, TypeError>;

/// One result of type `t`.
fn one(t: TensorType) -> Res {
    Ok(vec![t])
}

/// An op was applied to operands its typing rule rejects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct TypeError {
    /// The op's mnemonic.
    pub op: &'static str,
    /// The operand types it was given.
    pub operands: Vec<TensorType>,
    /// What is wrong, in words.
    pub reason: String,
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.reason)?;
        if !self.operands.is_empty() {
            f.write_str(" (operands: ")?;
            for (i, t) in self.operands.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{t}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// NumPy/PyTorch broadcasting of two shapes: align right, each pair of extents must be
/// equal or one of them 1. `None` if incompatible.
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Option<Shape> {
    let r = a.rank().max(b.rank());
    let mut out = vec![0; r];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.rank() >= r {
            a.0[i + a.rank() - r]
        } else {
            1
        };
        let db = if i + b.rank() >= r {
            b.0[i + b.rank() - r]
        } else {
            1
        };
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(Shape::new(out))
}

/// Whether `from` broadcasts to exactly `to`.
pub fn broadcasts_to(from: &Shape, to: &Shape) -> bool {
    from.rank() <= to.rank() && broadcast_shapes(from, to).as_ref() == Some(to)
}

/// The output extent of a convolution along one axis, or `None` if the (dilated)
/// kernel does not fit in the padded input.
pub fn conv_out_len(
    len: usize,
    kernel: usize,
    stride: usize,
    pad: (usize, usize),
    dilation: usize,
) -> Option<usize> {
    let padded = len + pad.0 + pad.1;
    let span = dilation * (kernel.checked_sub(1)?) + 1;
    if stride == 0 || span > padded {
        return None;
    }
    Some((padded - span) / stride + 1)
}

struct Ctx<'a> {
    op: &'static str,
    tys: &'a [TensorType],
}

impl Ctx<'_> {
    fn err<T>(&self, reason: impl Into<String>) -> Result<T, TypeError> {
        Err(TypeError {
            op: self.op,
            operands: self.tys.to_vec(),
            reason: reason.into(),
        })
    }

    fn arity(&self, n: usize) -> Result<(), TypeError> {
        if self.tys.len() != n {
            return self.err(format!("expects {n} operand(s), got {}", self.tys.len()));
        }
        Ok(())
    }

    fn same_dtype(&self) -> Result<DType, TypeError> {
        let d = self.tys[0].dtype;
        if let Some(t) = self.tys.iter().find(|t| t.dtype != d) {
            return self.err(format!(
                "operands must share a dtype, got {} and {}",
                d, t.dtype
            ));
        }
        Ok(d)
    }

    fn broadcast_all(&self, tys: &[TensorType]) -> Result<Shape, TypeError> {
        let mut s = tys[0].shape.clone();
        for t in &tys[1..] {
            s = match broadcast_shapes(&s, &t.shape) {
                Some(s) => s,
                None => {
                    return self.err(format!(
                        "shapes {} and {} cannot be broadcast together",
                        s, t.shape
                    ))
                }
            };
        }
        Ok(s)
    }
}

/// Result types of `op` applied to operands of types `tys`.
pub fn infer(op: &Op, tys: &[TensorType]) -> Result<Vec<TensorType>, TypeError> {
    let c = Ctx { op: op.name(), tys };
    match op {
        Op::Input { ty, .. } | Op::Parameter { ty, .. } => leaf::interface(&c, ty),
        Op::Constant(a) => leaf::constant(&c, a),
        Op::Unary(u) => elementwise::unary(&c, u),
        Op::Binary(b) => elementwise::binary(&c, b),
        Op::Compare(_) => elementwise::compare(&c),
        Op::Where => elementwise::where_(&c),
        Op::Cast { to } => elementwise::cast(&c, to),
        Op::Reduce { axes, keepdim, .. } => reduce::reduce(&c, axes, keepdim),
        Op::ArgReduce { axis, keepdim, .. } => reduce::arg_reduce(&c, axis, keepdim),
        Op::Reshape { shape } => movement::reshape(&c, shape),
        Op::Permute { perm } => movement::permute(&c, perm),
        Op::Expand { shape } => movement::expand(&c, shape),
        Op::Slice { axes } => movement::slice(&c, axes),
        Op::Unfold {
            axis,
            size,
            step,
            dilation,
        } => movement::unfold(&c, axis, size, step, dilation),
        Op::Pad { pads, .. } => movement::pad(&c, pads),
        Op::Concat { axis } => movement::concat(&c, axis),
        Op::Gather { axis } => movement::gather(&c, axis),
        Op::ScatterAdd { axis, shape } => movement::scatter_add(&c, axis, shape),
        Op::Softmax { axis } => reduce::softmax(&c, axis),
        Op::SoftmaxBackward { axis } => reduce::softmax_backward(&c, axis),
        Op::Detach => elementwise::detach(&c),
        Op::MatMul => contraction::matmul(&c),
        Op::Conv(p) => contraction::conv_op(&c, p),
        Op::Random { dtype, shape, .. } => leaf::random(&c, dtype, shape),
        Op::Scan(s) => infer_scan(&c, s),
    }
}

fn check_axes(c: &Ctx<'_>, axes: &[usize], rank: usize) -> Result<(), TypeError> {
    if axes.iter().any(|&a| a >= rank) {
        return c.err(format!("axes {axes:?} out of range for rank {rank}"));
    }
    if axes.windows(2).any(|w| w[0] >= w[1]) {
        return c.err(format!("axes {axes:?} must be sorted and unique"));
    }
    Ok(())
}

fn reduced(s: &Shape, axes: &[usize], keepdim: bool) -> Shape {
    let mut out = Vec::new();
    for (i, &d) in s.dims().iter().enumerate() {
        if axes.contains(&i) {
            if keepdim {
                out.push(1);
            }
        } else {
            out.push(d);
        }
    }
    Shape::new(out)
}

fn infer_scan(c: &Ctx<'_>, s: &ScanOp) -> Result<Vec<TensorType>, TypeError> {
    let tys = c.tys;
    if s.num_carry + s.num_xs > tys.len() {
        return c.err(format!(
            "{} carried + {} scanned operands declared, only {} given",
            s.num_carry,
            s.num_xs,
            tys.len()
        ));
    }
    let body = &s.body;
    let bin = body.inputs();
    if bin.len() != tys.len() {
        return c.err(format!(
            "body has {} inputs, scan has {} operands",
            bin.len(),
            tys.len()
        ));
    }
    let mut expected = Vec::new();
    for (i, t) in tys.iter().enumerate() {
        if i >= s.num_carry && i < s.num_carry + s.num_xs {
            if s.axis >= t.shape.rank() || t.shape.0[s.axis] != s.length {
                return c.err(format!(
                    "scanned operand {i} of type {t} has no extent {} at axis {}",
                    s.length, s.axis
                ));
            }
            let mut sh = t.shape.clone();
            sh.0.remove(s.axis);
            expected.push(TensorType::new(t.dtype, sh));
        } else {
            expected.push(t.clone());
        }
    }
    for (i, (&v, e)) in bin.iter().zip(&expected).enumerate() {
        match body.try_value_type(v) {
            Some(t) if t == e => {}
            Some(t) => return c.err(format!("body input {i} has type {t}, expected {e}")),
            None => return c.err(format!("body input {i} is not a body value")),
        }
    }
    let bout = body.outputs();
    if bout.len() < s.num_carry {
        return c.err(format!(
            "body has {} outputs, fewer than its {} carried states",
            bout.len(),
            s.num_carry
        ));
    }
    let mut results = Vec::new();
    for (i, &v) in bout.iter().enumerate() {
        let Some(t) = body.try_value_type(v) else {
            return c.err(format!("body output {i} is not a body value"));
        };
        if i < s.num_carry {
            if t != &tys[i] {
                return c.err(format!(
                    "carried state {i}: body returns {t}, initial value is {}",
                    tys[i]
                ));
            }
            results.push(t.clone());
        } else {
            if s.axis > t.shape.rank() {
                return c.err(format!(
                    "per-step output {} of rank {} cannot be stacked at axis {}",
                    i - s.num_carry,
                    t.shape.rank(),
                    s.axis
                ));
            }
            let mut sh = t.shape.clone();
            sh.0.insert(s.axis, s.length);
            results.push(TensorType::new(t.dtype, sh));
        }
    }
    Ok(results)
}
