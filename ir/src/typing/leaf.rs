//! Typing of the leaves: inputs, parameters, constants, random numbers.

use super::*;

pub(super) fn interface(c: &Ctx<'_>, ty: &TensorType) -> Res {
    c.arity(0)?;
    one(ty.clone())
}

pub(super) fn constant(c: &Ctx<'_>, a: &Array) -> Res {
    c.arity(0)?;
    one(TensorType::new(a.dtype(), a.shape().clone()))
}

pub(super) fn random(c: &Ctx<'_>, dtype: &DType, shape: &Shape) -> Res {
    c.arity(1)?;
    if c.tys[0].dtype != DType::I64 || c.tys[0].shape.rank() != 0 {
        return c.err(format!("seed must be i64[], got {}", c.tys[0]));
    }
    if !dtype.is_float() {
        return c.err(format!("random values must be float, got {dtype}"));
    }
    one(TensorType::new(*dtype, shape.clone()))
}
