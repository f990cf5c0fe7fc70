//! Typing of the movement ops: reshape, permute, expand, slice, unfold, pad, concat,
//! gather, scatter-add.

use super::*;

pub(super) fn reshape(c: &Ctx<'_>, shape: &Shape) -> Res {
    c.arity(1)?;
    if shape.numel() != c.tys[0].shape.numel() {
        return c.err(format!(
            "cannot reshape {} ({} elements) to {} ({} elements)",
            c.tys[0].shape,
            c.tys[0].shape.numel(),
            shape,
            shape.numel()
        ));
    }
    one(TensorType::new(c.tys[0].dtype, shape.clone()))
}

pub(super) fn permute(c: &Ctx<'_>, perm: &[usize]) -> Res {
    c.arity(1)?;
    let r = c.tys[0].shape.rank();
    let mut seen = vec![false; r];
    if perm.len() != r
        || perm
            .iter()
            .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
    {
        return c.err(format!("{perm:?} is not a permutation of {r} axes"));
    }
    let s = Shape::new(perm.iter().map(|&p| c.tys[0].shape.0[p]));
    one(TensorType::new(c.tys[0].dtype, s))
}

pub(super) fn expand(c: &Ctx<'_>, shape: &Shape) -> Res {
    c.arity(1)?;
    if !broadcasts_to(&c.tys[0].shape, shape) {
        return c.err(format!("cannot broadcast {} to {}", c.tys[0].shape, shape));
    }
    one(TensorType::new(c.tys[0].dtype, shape.clone()))
}

pub(super) fn slice(c: &Ctx<'_>, axes: &[SliceAxis]) -> Res {
    c.arity(1)?;
    let s = &c.tys[0].shape;
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
        c.tys[0].dtype,
        Shape::new(axes.iter().map(|a| a.len())),
    ))
}

pub(super) fn unfold(
    c: &Ctx<'_>,
    axis: &usize,
    size: &usize,
    step: &usize,
    dilation: &usize,
) -> Res {
    c.arity(1)?;
    let s = &c.tys[0].shape;
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
    one(TensorType::new(c.tys[0].dtype, Shape::new(dims)))
}

pub(super) fn pad(c: &Ctx<'_>, pads: &[(usize, usize)]) -> Res {
    c.arity(1)?;
    let s = &c.tys[0].shape;
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
    one(TensorType::new(c.tys[0].dtype, Shape::new(dims)))
}

pub(super) fn concat(c: &Ctx<'_>, axis: &usize) -> Res {
    if c.tys.is_empty() {
        return c.err("expects at least one operand");
    }
    let d = c.same_dtype()?;
    let r = c.tys[0].shape.rank();
    if *axis >= r {
        return c.err(format!("axis {axis} out of range for rank {r}"));
    }
    let mut out = c.tys[0].shape.clone();
    for t in &c.tys[1..] {
        let ok = t.shape.rank() == r
            && (0..r).all(|i| i == *axis || t.shape.0[i] == c.tys[0].shape.0[i]);
        if !ok {
            return c.err(format!(
                "shapes {} and {} differ outside axis {axis}",
                c.tys[0].shape, t.shape
            ));
        }
        out.0[*axis] += t.shape.0[*axis];
    }
    one(TensorType::new(d, out))
}

pub(super) fn gather(c: &Ctx<'_>, axis: &usize) -> Res {
    c.arity(2)?;
    let (x, idx) = (&c.tys[0], &c.tys[1]);
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

pub(super) fn scatter_add(c: &Ctx<'_>, axis: &usize, shape: &Shape) -> Res {
    c.arity(2)?;
    let (idx, src) = (&c.tys[0], &c.tys[1]);
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
