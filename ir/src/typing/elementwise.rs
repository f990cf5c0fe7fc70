//! Typing of the elementwise ops: unary, binary (broadcasting), compare, where, cast,
//! detach.

use super::*;

pub(super) fn unary(c: &Ctx<'_>, u: &UnaryOp) -> Res {
    c.arity(1)?;
    if !u.accepts(c.tys[0].dtype) {
        return c.err(format!("not defined for dtype {}", c.tys[0].dtype));
    }
    one(c.tys[0].clone())
}

pub(super) fn binary(c: &Ctx<'_>, b: &BinaryOp) -> Res {
    c.arity(2)?;
    let d = c.same_dtype()?;
    if !b.accepts(d) {
        return c.err(format!("not defined for dtype {d}"));
    }
    one(TensorType::new(d, c.broadcast_all(c.tys)?))
}

pub(super) fn compare(c: &Ctx<'_>) -> Res {
    c.arity(2)?;
    c.same_dtype()?;
    one(TensorType::new(DType::Bool, c.broadcast_all(c.tys)?))
}

pub(super) fn where_(c: &Ctx<'_>) -> Res {
    c.arity(3)?;
    if c.tys[0].dtype != DType::Bool {
        return c.err(format!("condition must be bool, got {}", c.tys[0].dtype));
    }
    if c.tys[1].dtype != c.tys[2].dtype {
        return c.err(format!(
            "branches must share a dtype, got {} and {}",
            c.tys[1].dtype, c.tys[2].dtype
        ));
    }
    one(TensorType::new(c.tys[1].dtype, c.broadcast_all(c.tys)?))
}

pub(super) fn cast(c: &Ctx<'_>, to: &DType) -> Res {
    c.arity(1)?;
    one(TensorType::new(*to, c.tys[0].shape.clone()))
}

pub(super) fn detach(c: &Ctx<'_>) -> Res {
    c.arity(1)?;
    one(c.tys[0].clone())
}
