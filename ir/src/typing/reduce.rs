//! Typing of the reductions (reduce, arg-reduce) and of softmax, a reduction and an
//! elementwise pass along one axis.

use super::*;

pub(super) fn reduce(c: &Ctx<'_>, axes: &[usize], keepdim: &bool) -> Res {
    c.arity(1)?;
    let t = &c.tys[0];
    if t.dtype == DType::Bool {
        return c.err("not defined for dtype bool (cast first)");
    }
    check_axes(c, axes, t.shape.rank())?;
    one(TensorType::new(t.dtype, reduced(&t.shape, axes, *keepdim)))
}

pub(super) fn arg_reduce(c: &Ctx<'_>, axis: &usize, keepdim: &bool) -> Res {
    c.arity(1)?;
    let t = &c.tys[0];
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

/// `softmax_backward(dy, y)`: two float operands of one type, `axis` within their rank.
pub(super) fn softmax_backward(c: &Ctx<'_>, axis: &usize) -> Res {
    c.arity(2)?;
    let (dy, y) = (&c.tys[0], &c.tys[1]);
    if dy != y {
        return c.err(format!("dy and y must have one type, got {dy} and {y}"));
    }
    if !y.dtype.is_float() {
        return c.err(format!("defined for f32 and f64, not {:?}", y.dtype));
    }
    if *axis >= y.shape.rank() {
        return c.err(format!(
            "axis {axis} out of range for rank {}",
            y.shape.rank()
        ));
    }
    one(y.clone())
}

pub(super) fn softmax(c: &Ctx<'_>, axis: &usize) -> Res {
    c.arity(1)?;
    let t = &c.tys[0];
    if !t.dtype.is_float() {
        return c.err(format!(
            "defined for f32 and f64, not {:?} (cast first)",
            t.dtype
        ));
    }
    if *axis >= t.shape.rank() {
        return c.err(format!(
            "axis {axis} out of range for rank {}",
            t.shape.rank()
        ));
    }
    one(t.clone())
}
