//! Typing rules: the result types of each op given its operand types.
//!
//! [`infer`] is the single source of truth, used both when building a graph
//! ([`crate::Graph::add_op`]) and when verifying one ([`fn@crate::verify`]).

use crate::dtype::{DType, Shape, TensorType};
use crate::op::{ConvParams, Op, ScanOp};
use std::fmt;

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
    let one = |t: TensorType| Ok(vec![t]);
    match op {
        Op::Input { ty, .. } | Op::Parameter { ty, .. } => {
            c.arity(0)?;
            one(ty.clone())
        }
        Op::Constant(a) => {
            c.arity(0)?;
            one(TensorType::new(a.dtype(), a.shape().clone()))
        }
        Op::Unary(u) => {
            c.arity(1)?;
            if !u.accepts(tys[0].dtype) {
                return c.err(format!("not defined for dtype {}", tys[0].dtype));
            }
            one(tys[0].clone())
        }
        Op::Binary(b) => {
            c.arity(2)?;
            let d = c.same_dtype()?;
            if !b.accepts(d) {
                return c.err(format!("not defined for dtype {d}"));
            }
            one(TensorType::new(d, c.broadcast_all(tys)?))
        }
        Op::Compare(_) => {
            c.arity(2)?;
            c.same_dtype()?;
            one(TensorType::new(DType::Bool, c.broadcast_all(tys)?))
        }
        Op::Where => {
            c.arity(3)?;
            if tys[0].dtype != DType::Bool {
                return c.err(format!("condition must be bool, got {}", tys[0].dtype));
            }
            if tys[1].dtype != tys[2].dtype {
                return c.err(format!(
                    "branches must share a dtype, got {} and {}",
                    tys[1].dtype, tys[2].dtype
                ));
            }
            one(TensorType::new(tys[1].dtype, c.broadcast_all(tys)?))
        }
        Op::Cast { to } => {
            c.arity(1)?;
            one(TensorType::new(*to, tys[0].shape.clone()))
        }
        Op::Reduce { axes, keepdim, .. } => {
            c.arity(1)?;
            let t = &tys[0];
            if t.dtype == DType::Bool {
                return c.err("not defined for dtype bool (cast first)");
            }
            check_axes(&c, axes, t.shape.rank())?;
            one(TensorType::new(t.dtype, reduced(&t.shape, axes, *keepdim)))
        }
        Op::ArgReduce { axis, keepdim, .. } => {
            c.arity(1)?;
            let t = &tys[0];
            if t.dtype == DType::Bool {
                return c.err("not defined for dtype bool (cast first)");
            }
            if *axis >= t.shape.rank() {
                return c.err(format!(
                    "axis {axis} out of range for rank {}",
                    t.shape.rank()
                ));
            }
            one(TensorType::new(
                DType::I64,
                reduced(&t.shape, &[*axis], *keepdim),
            ))
        }
        Op::Reshape { shape } => {
            c.arity(1)?;
            if shape.numel() != tys[0].shape.numel() {
                return c.err(format!(
                    "cannot reshape {} ({} elements) to {} ({} elements)",
                    tys[0].shape,
                    tys[0].shape.numel(),
                    shape,
                    shape.numel()
                ));
            }
            one(TensorType::new(tys[0].dtype, shape.clone()))
        }
        Op::Permute { perm } => {
            c.arity(1)?;
            let r = tys[0].shape.rank();
            let mut seen = vec![false; r];
            if perm.len() != r
                || perm
                    .iter()
                    .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
            {
                return c.err(format!("{perm:?} is not a permutation of {r} axes"));
            }
            let s = Shape::new(perm.iter().map(|&p| tys[0].shape.0[p]));
            one(TensorType::new(tys[0].dtype, s))
        }
        Op::Expand { shape } => {
            c.arity(1)?;
            if !broadcasts_to(&tys[0].shape, shape) {
                return c.err(format!("cannot broadcast {} to {}", tys[0].shape, shape));
            }
            one(TensorType::new(tys[0].dtype, shape.clone()))
        }
        Op::Slice { axes } => {
            c.arity(1)?;
            let s = &tys[0].shape;
            if axes.len() != s.rank() {
                return c.err(format!("{} slice ranges for rank {}", axes.len(), s.rank()));
            }
            for (i, (a, &d)) in axes.iter().zip(s.dims()).enumerate() {
                if a.step == 0 || a.start > a.stop || a.stop > d {
                    return c.err(format!(
                        "axis {i}: range {}:{}:{} invalid for extent {d}",
                        a.start, a.stop, a.step
                    ));
                }
            }
            one(TensorType::new(
                tys[0].dtype,
                Shape::new(axes.iter().map(|a| a.len())),
            ))
        }
        Op::Unfold {
            axis,
            size,
            step,
            dilation,
        } => {
            c.arity(1)?;
            let s = &tys[0].shape;
            let Some(&len) = s.dims().get(*axis) else {
                return c.err(format!("axis {axis} out of range for rank {}", s.rank()));
            };
            if *size == 0 || *step == 0 || *dilation == 0 {
                return c.err(format!(
                    "size {size}, step {step} and dilation {dilation} must all be at least 1"
                ));
            }
            let span = (size - 1).saturating_mul(*dilation).saturating_add(1);
            if span > len {
                return c.err(format!(
                    "a window of {size} elements {dilation} apart spans {span}, more than \
                     axis {axis}'s extent {len}"
                ));
            }
            let mut dims = s.dims().to_vec();
            dims.splice(axis..=axis, [*size, (len - span) / step + 1]);
            one(TensorType::new(tys[0].dtype, Shape::new(dims)))
        }
        Op::Pad { pads, .. } => {
            c.arity(1)?;
            let s = &tys[0].shape;
            if pads.len() != s.rank() {
                return c.err(format!("{} pad pairs for rank {}", pads.len(), s.rank()));
            }
            let mut dims = Vec::with_capacity(pads.len());
            for (d, p) in s.dims().iter().zip(pads) {
                match d.checked_add(p.0).and_then(|v| v.checked_add(p.1)) {
                    Some(v) => dims.push(v),
                    None => return c.err(format!("padding {p:?} overflows an axis of {d}")),
                }
            }
            one(TensorType::new(tys[0].dtype, Shape::new(dims)))
        }
        Op::Concat { axis } => {
            if tys.is_empty() {
                return c.err("expects at least one operand");
            }
            let d = c.same_dtype()?;
            let r = tys[0].shape.rank();
            if *axis >= r {
                return c.err(format!("axis {axis} out of range for rank {r}"));
            }
            let mut out = tys[0].shape.clone();
            for t in &tys[1..] {
                let ok = t.shape.rank() == r
                    && (0..r).all(|i| i == *axis || t.shape.0[i] == tys[0].shape.0[i]);
                if !ok {
                    return c.err(format!(
                        "shapes {} and {} differ outside axis {axis}",
                        tys[0].shape, t.shape
                    ));
                }
                out.0[*axis] += t.shape.0[*axis];
            }
            one(TensorType::new(d, out))
        }
        Op::Gather { axis } => {
            c.arity(2)?;
            let (x, idx) = (&tys[0], &tys[1]);
            if idx.dtype != DType::I64 {
                return c.err(format!("index must be i64, got {}", idx.dtype));
            }
            let r = x.shape.rank();
            if idx.shape.rank() != r {
                return c.err(format!(
                    "index rank {} differs from input rank {r}",
                    idx.shape.rank()
                ));
            }
            if *axis >= r {
                return c.err(format!("axis {axis} out of range for rank {r}"));
            }
            if (0..r).any(|i| i != *axis && idx.shape.0[i] > x.shape.0[i]) {
                return c.err(format!(
                    "index shape {} exceeds input shape {} outside axis {axis}",
                    idx.shape, x.shape
                ));
            }
            one(TensorType::new(x.dtype, idx.shape.clone()))
        }
        Op::ScatterAdd { axis, shape } => {
            c.arity(2)?;
            let (idx, src) = (&tys[0], &tys[1]);
            if idx.dtype != DType::I64 {
                return c.err(format!("index must be i64, got {}", idx.dtype));
            }
            if idx.shape != src.shape {
                return c.err(format!(
                    "index shape {} differs from source shape {}",
                    idx.shape, src.shape
                ));
            }
            let r = shape.rank();
            if idx.shape.rank() != r || *axis >= r {
                return c.err(format!(
                    "index rank {} and axis {axis} do not fit result shape {shape}",
                    idx.shape.rank()
                ));
            }
            if (0..r).any(|i| i != *axis && idx.shape.0[i] > shape.0[i]) {
                return c.err(format!(
                    "index shape {} exceeds result shape {shape} outside axis {axis}",
                    idx.shape
                ));
            }
            one(TensorType::new(src.dtype, shape.clone()))
        }
        Op::Detach => {
            c.arity(1)?;
            one(tys[0].clone())
        }
        Op::MatMul => {
            c.arity(2)?;
            let d = c.same_dtype()?;
            if d == DType::Bool {
                return c.err("not defined for dtype bool");
            }
            let (a, b) = (&tys[0].shape, &tys[1].shape);
            if a.rank() < 2 || b.rank() < 2 {
                return c.err("both operands need rank >= 2");
            }
            let (m, k) = (a.0[a.rank() - 2], a.0[a.rank() - 1]);
            let (k2, n) = (b.0[b.rank() - 2], b.0[b.rank() - 1]);
            if k != k2 {
                return c.err(format!("inner dimensions differ: {a} @ {b} ({k} vs {k2})"));
            }
            let ba = Shape::new(a.0[..a.rank() - 2].iter().copied());
            let bb = Shape::new(b.0[..b.rank() - 2].iter().copied());
            let Some(mut batch) = broadcast_shapes(&ba, &bb) else {
                return c.err(format!("batch shapes {ba} and {bb} cannot be broadcast"));
            };
            batch.0.push(m);
            batch.0.push(n);
            one(TensorType::new(d, batch))
        }
        Op::Conv(p) => {
            c.arity(2)?;
            infer_conv(&c, p)
        }
        Op::Random { dtype, shape, .. } => {
            c.arity(1)?;
            if tys[0].dtype != DType::I64 || tys[0].shape.rank() != 0 {
                return c.err(format!("seed must be i64[], got {}", tys[0]));
            }
            if !dtype.is_float() {
                return c.err(format!("random values must be float, got {dtype}"));
            }
            one(TensorType::new(*dtype, shape.clone()))
        }
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

fn infer_conv(c: &Ctx<'_>, p: &ConvParams) -> Result<Vec<TensorType>, TypeError> {
    let d = c.same_dtype()?;
    if !d.is_float() {
        return c.err(format!("not defined for dtype {d}"));
    }
    let (x, w) = (&c.tys[0].shape, &c.tys[1].shape);
    let n = p.stride.len();
    if n == 0 || p.padding.len() != n || p.dilation.len() != n {
        return c.err("stride, padding and dilation need one entry per spatial axis");
    }
    if x.rank() != n + 2 || w.rank() != n + 2 {
        return c.err(format!(
            "{n}-d convolution needs input [B, C, *{n} spatial] and weight [C_out, C_in/groups, *{n} kernel]"
        ));
    }
    if p.groups == 0 || x.0[1] % p.groups != 0 || w.0[0] % p.groups != 0 {
        return c.err(format!(
            "groups={} must divide input channels {} and output channels {}",
            p.groups, x.0[1], w.0[0]
        ));
    }
    if w.0[1] * p.groups != x.0[1] {
        return c.err(format!(
            "weight expects {} input channels per group, input has {} channels in {} group(s)",
            w.0[1], x.0[1], p.groups
        ));
    }
    let mut out = vec![x.0[0], w.0[0]];
    for i in 0..n {
        if p.dilation[i] == 0 {
            return c.err("dilation must be >= 1");
        }
        match conv_out_len(x.0[i + 2], w.0[i + 2], p.stride[i], p.padding[i], p.dilation[i]) {
            Some(o) => out.push(o),
            None => {
                return c.err(format!(
                    "kernel {} (dilation {}) does not fit input length {} padded by {:?} with stride {}",
                    w.0[i + 2], p.dilation[i], x.0[i + 2], p.padding[i], p.stride[i]
                ))
            }
        }
    }
    Ok(vec![TensorType::new(d, out)])
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
