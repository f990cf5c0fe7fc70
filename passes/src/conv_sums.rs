//! Sums through pointwise convolutions: `Σ_{n, s} conv₁ₓ₁(x, w) → conv₁ₓ₁(Σ_{n, s} x, w)`
//! for a convolution whose kernel covers one position (every spatial extent 1, stride
//! 1, no padding; any groups), summed over the batch and every spatial axis.
//!
//! # Why
//! Such a convolution mixes channels at each position and nothing else, so it is
//! linear position by position: summing its output over positions is the convolution
//! of the summed input. A layer's bias gradient is exactly such a sum when a pointwise
//! convolution follows it — in W2's blocks (depthwise → pointwise → batch norm) the
//! depthwise bias gradient is `Σ` of the pointwise layer's input gradient, a pass over
//! 16 MB; rewritten, it is `Σ` of the pointwise output gradient, which [`FactorSums`]
//! then expresses through the batch norm's own sums, and a `[1, C, 1]` convolution.
//!
//! # Rounding
//! Reassociates (the channel mix happens once on the sums instead of per position), as
//! [`FactorSums`] does; so it is in [`crate::optimizer`] and not in
//! [`crate::exact_optimizer`].
//!
//! [`FactorSums`]: crate::FactorSums

use crate::emit::rewrite_each;
use crate::pass::{Pass, PassError};
use onde_ir::{Graph, Op, OpId, ReduceKind, Shape, ValueId};

/// The pass (see the module doc).
#[derive(Debug, Default)]
pub struct ConvSums;

/// A sum to rewrite: the conv's input and weight, its parameters, the summed axes.
struct Found {
    x: ValueId,
    w: ValueId,
    params: onde_ir::ConvParams,
    axes: Vec<usize>,
}

/// Sum `o` when it qualifies (see the module doc).
fn matches(g: &Graph, o: OpId) -> Option<Found> {
    let Op::Reduce {
        kind: ReduceKind::Sum,
        axes,
        ..
    } = &g.op(o).op
    else {
        return None;
    };
    let v = *g.operands(o).first()?;
    let p = g.producer(v)?;
    let Op::Conv(params) = &g.op(p).op else {
        return None;
    };
    let xw = g.operands(p);
    let (x, w) = (*xw.first()?, *xw.get(1)?);
    let out = g.value_type(v);
    let pointwise = g.value_type(w).shape.dims()[2..].iter().all(|&k| k == 1)
        && params.stride.iter().all(|&s| s == 1)
        && params.padding.iter().all(|&(a, b)| a == 0 && b == 0);
    // Summed over the batch and every position, with more than one of them (else the
    // rewrite would give back the same sum).
    let positions = positions(out.shape.rank());
    let count: usize = positions.iter().map(|&a| out.shape.dims()[a]).product();
    let over_positions = positions.iter().all(|a| axes.contains(a));
    (out.dtype.is_float() && pointwise && over_positions && count > 1).then(|| Found {
        x,
        w,
        params: params.clone(),
        axes: axes.clone(),
    })
}

/// The batch and spatial axes of a convolution's `[N, C, spatial…]` value.
fn positions(rank: usize) -> Vec<usize> {
    std::iter::once(0).chain(2..rank).collect()
}

impl Pass for ConvSums {
    fn name(&self) -> &'static str {
        "conv_sums"
    }

    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        rewrite_each(g, "conv_sums", matches, |e, old, f| {
            let shape: Shape = e.shape(old);
            let rank = e.shape(f.x).rank();
            let xs = e.sum(f.x, positions(rank), true)?;
            let mut c = e.op(Op::Conv(f.params.clone()), &[xs, f.w])?;
            if f.axes.contains(&1) {
                c = e.sum(c, vec![1], true)?;
            }
            e.reshape(c, shape)
        })
    }
}
