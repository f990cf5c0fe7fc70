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

use crate::pass::{Pass, PassError};
use onde_ir::{Graph, Op, OpId, ReduceKind, Shape, ValueId};

/// The pass (see the module doc).
#[derive(Debug, Default)]
pub struct ConvSums;

fn fail(e: impl std::fmt::Display) -> PassError {
    PassError::Failed {
        pass: "conv_sums",
        message: e.to_string(),
    }
}

/// The conv's input and weight when sum `o` (over `axes`) qualifies.
fn matches(g: &Graph, o: OpId) -> Option<(ValueId, ValueId, onde_ir::ConvParams)> {
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
    let wt = g.value_type(w);
    let rank = out.shape.rank();
    let pointwise = wt.shape.dims()[2..].iter().all(|&k| k == 1)
        && params.stride.iter().all(|&s| s == 1)
        && params.padding.iter().all(|&(a, b)| a == 0 && b == 0);
    // Summed over the batch and every position, with more than one of them (else the
    // rewrite would give back the same sum).
    let positions: usize = std::iter::once(0)
        .chain(2..rank)
        .map(|a| out.shape.dims()[a])
        .product();
    let over_positions = std::iter::once(0).chain(2..rank).all(|a| axes.contains(&a));
    (out.dtype.is_float() && pointwise && over_positions && positions > 1)
        .then(|| (x, w, params.clone()))
}

impl Pass for ConvSums {
    fn name(&self) -> &'static str {
        "conv_sums"
    }

    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        let sums: Vec<OpId> = g
            .op_ids()
            .into_iter()
            .filter(|&o| matches(g, o).is_some())
            .collect();
        for &o in &sums {
            let Some((x, w, params)) = matches(g, o) else {
                continue;
            };
            let Op::Reduce { axes, .. } = g.op(o).op.clone() else {
                continue;
            };
            let loc = g.op(o).loc.clone();
            let rank = g.value_type(x).shape.rank();
            let positions: Vec<usize> = std::iter::once(0).chain(2..rank).collect();
            let (_, xs) = g
                .add_op(
                    Op::Reduce {
                        kind: ReduceKind::Sum,
                        axes: positions,
                        keepdim: true,
                    },
                    &[x],
                    loc.clone(),
                )
                .map_err(fail)?;
            let (_, mut c) = g
                .add_op(Op::Conv(params), &[xs[0], w], loc.clone())
                .map_err(fail)?;
            if axes.contains(&1) {
                (_, c) = g
                    .add_op(
                        Op::Reduce {
                            kind: ReduceKind::Sum,
                            axes: vec![1],
                            keepdim: true,
                        },
                        &[c[0]],
                        loc.clone(),
                    )
                    .map_err(fail)?;
            }
            let old = g.results(o)[0];
            let shape: Shape = g.value_type(old).shape.clone();
            let (_, r) = g
                .add_op(Op::Reshape { shape }, &[c[0]], loc)
                .map_err(fail)?;
            g.replace_all_uses(old, r[0]);
        }
        if !sums.is_empty() {
            crate::dce::dce(g);
        }
        Ok(!sums.is_empty())
    }
}
