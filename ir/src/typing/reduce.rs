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
