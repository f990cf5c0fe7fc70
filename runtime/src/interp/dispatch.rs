//! The single exhaustive `match` from [`Op`] to its kernel.

use super::conv::conv;
use super::elementwise::{binary, cast, compare, select, unary};
use super::error::{InterpError, Result, Site};
use super::gather::{gather, scatter_add};
use super::matmul::matmul;
use super::movement::{concat, expand, pad, permute, reshape, slice, unfold};
use super::random::random;
use super::reduce::{arg_reduce, reduce, softmax, softmax_backward};
use super::scan::scan;
use super::Ctx;
use onde_ir::{Array, Op, ValueId};
use std::rc::Rc;

/// Operand `i`.
fn arg(args: &[Rc<Array>], i: usize) -> Result<&Array> {
    args.get(i)
        .map(|a| &**a)
        .ok_or_else(|| InterpError::internal(format!("missing operand {i}")))
}

/// Evaluates `op` (at `site`, with result values `results`) on `args`.
pub(crate) fn eval_op(
    cx: &Ctx<'_>,
    site: Site,
    op: &Op,
    args: &[Rc<Array>],
    results: &[ValueId],
) -> Result<Vec<Rc<Array>>> {
    let a = |i| arg(args, i);
    let array = match op {
        Op::Input { name, ty } => return Ok(vec![cx.input(name, ty, results)?]),
        Op::Parameter { name, ty } => return Ok(vec![cx.parameter(name, ty)?]),
        Op::Scan(s) => return scan(cx, site, s, args),
        Op::Constant(c) => c.clone(),
        Op::Unary(u) => unary(*u, a(0)?)?,
        Op::Binary(b) => binary(*b, a(0)?, a(1)?)?,
        Op::Compare(c) => compare(*c, a(0)?, a(1)?)?,
        Op::Where => select(a(0)?, a(1)?, a(2)?)?,
        Op::Cast { to } => cast(a(0)?, *to)?,
        Op::Reduce {
            kind,
            axes,
            keepdim,
        } => reduce(site, *kind, a(0)?, axes, *keepdim)?,
        Op::ArgReduce {
            kind,
            axis,
            keepdim,
        } => arg_reduce(site, *kind, a(0)?, *axis, *keepdim)?,
        Op::Reshape { shape } => reshape(a(0)?, shape.dims())?,
        Op::Permute { perm } => permute(a(0)?, perm)?,
        Op::Expand { shape } => expand(a(0)?, shape.dims())?,
        Op::Slice { axes } => slice(a(0)?, axes)?,
        Op::Unfold {
            axis,
            size,
            step,
            dilation,
        } => unfold(a(0)?, *axis, *size, *step, *dilation)?,
        Op::Pad { pads, value_bits } => pad(a(0)?, pads, Op::pad_value(*value_bits))?,
        Op::Concat { axis } => concat(&args.iter().map(|x| &**x).collect::<Vec<_>>(), *axis)?,
        Op::Gather { axis } => gather(site, a(0)?, a(1)?, *axis)?,
        Op::ScatterAdd { axis, shape } => scatter_add(site, a(0)?, a(1)?, *axis, shape.dims())?,
        Op::Softmax { axis } => softmax(site, a(0)?, *axis)?,
        Op::SoftmaxBackward { axis } => softmax_backward(site, a(0)?, a(1)?, *axis)?,
        Op::Detach => a(0)?.clone(),
        Op::MatMul => matmul(a(0)?, a(1)?)?,
        Op::Conv(p) => conv(a(0)?, a(1)?, p)?,
        Op::Random { dist, dtype, shape } => random(a(0)?, *dist, *dtype, shape)?,
    };
    Ok(vec![Rc::new(array)])
}
