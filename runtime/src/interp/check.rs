//! Checks run before each op is evaluated, so that a malformed graph produces an
//! [`InterpError`] rather than a wrong answer or a panic.
//!
//! 1. Every operand and declared result type must have an element count that fits in
//!    memory (and whose computation does not overflow).
//! 2. Op parameters whose extents the typing rule adds or multiplies must not overflow.
//! 3. The op's typing rule ([`onde_ir::infer`]) must accept the operand types and
//!    agree with the result types the graph declares.
//!
//! After these checks the kernels can trust shapes, dtypes and arities; they still
//! index defensively and report any inconsistency as [`InterpError::Internal`].

use super::error::{InterpError, Result, Site};
use onde_ir::{Op, TensorType};

/// The most elements a tensor may have (its bytes must fit in `isize`).
const MAX_ELEMENTS: usize = isize::MAX as usize / 8;

/// Element count multiplied left to right (the order `Shape::numel` uses), `None` on
/// overflow.
fn numel_checked(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

fn fits(ty: &TensorType) -> bool {
    numel_checked(ty.shape.dims()).is_some_and(|n| n <= MAX_ELEMENTS)
}

/// Extent `d + lo + hi`, if it does not overflow.
fn padded(d: usize, (lo, hi): (usize, usize)) -> Option<usize> {
    d.checked_add(lo)?.checked_add(hi)
}

/// Whether the arithmetic of `op`'s typing rule on `args` stays in range; otherwise
/// what overflows.
fn overflow(op: &Op, args: &[TensorType]) -> Option<String> {
    let dims = |i: usize| args.get(i).map_or(&[][..], |t| t.shape.dims());
    match op {
        Op::Reshape { shape } | Op::Expand { shape } | Op::Random { shape, .. } => {
            numel_checked(shape.dims())
                .is_none()
                .then(|| format!("the element count of {shape} overflows"))
        }
        Op::Pad { pads, .. } => dims(0)
            .iter()
            .zip(pads)
            .any(|(&d, &p)| padded(d, p).is_none())
            .then(|| "a padded extent overflows".to_string()),
        Op::Conv(p) => {
            let (x, w) = (dims(0), dims(1));
            let groups_ok = w.get(1).is_none_or(|c| c.checked_mul(p.groups).is_some());
            let axes_ok = (0..p.padding.len()).all(|i| {
                let len_ok = match (x.get(i + 2), p.padding.get(i)) {
                    (Some(&l), Some(&pad)) => padded(l, pad).is_some(),
                    (None, _) | (_, None) => true,
                };
                let span_ok = match (w.get(i + 2), p.dilation.get(i)) {
                    (Some(&k), Some(&dil)) => k
                        .saturating_sub(1)
                        .checked_mul(dil)
                        .and_then(|s| s.checked_add(1))
                        .is_some(),
                    (None, _) | (_, None) => true,
                };
                len_ok && span_ok
            });
            (!(groups_ok && axes_ok)).then(|| "a convolution extent overflows".to_string())
        }
        Op::Concat { axis } => args
            .iter()
            .try_fold(0usize, |acc, t| match t.shape.dims().get(*axis) {
                Some(&d) => acc.checked_add(d),
                None => Some(acc),
            })
            .is_none()
            .then(|| "the concatenated extent overflows".to_string()),
        Op::Scan(s) => s
            .num_carry
            .checked_add(s.num_xs)
            .is_none()
            .then(|| "the operand counts overflow".to_string()),
        Op::Input { .. }
        | Op::Parameter { .. }
        | Op::Constant(_)
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Compare(_)
        | Op::Where
        | Op::Cast { .. }
        | Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::Permute { .. }
        | Op::Slice { .. }
        | Op::Unfold { .. }
        | Op::Gather { .. }
        | Op::Softmax { .. }
        | Op::SoftmaxBackward { .. }
        | Op::Detach
        | Op::MatMul => None,
        Op::ScatterAdd { shape, .. } => numel_checked(shape.dims())
            .is_none()
            .then(|| format!("the element count of {shape} overflows")),
    }
}

fn list(tys: &[TensorType]) -> String {
    let v: Vec<String> = tys.iter().map(ToString::to_string).collect();
    format!("({})", v.join(", "))
}

/// Checks `op` applied to operands of types `args` against the `declared` types of
/// its results.
pub(crate) fn check_op(
    site: Site,
    op: &Op,
    args: &[TensorType],
    declared: &[TensorType],
) -> Result<()> {
    if let Some(ty) = args.iter().chain(declared).find(|t| !fits(t)) {
        return Err(InterpError::TooLarge {
            op: site.id,
            name: site.name,
            ty: ty.clone(),
        });
    }
    if let Some(reason) = overflow(op, args) {
        return Err(InterpError::MalformedOp {
            op: site.id,
            name: site.name,
            reason,
        });
    }
    let inferred = onde_ir::infer(op, args).map_err(|source| InterpError::TypeRule {
        op: site.id,
        name: site.name,
        source,
    })?;
    if inferred != declared {
        return Err(InterpError::MalformedOp {
            op: site.id,
            name: site.name,
            reason: format!(
                "the graph declares result types {} but the typing rule gives {}",
                list(declared),
                list(&inferred)
            ),
        });
    }
    Ok(())
}
