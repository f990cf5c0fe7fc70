//! The one unbroadcast helper: the adjoint of NumPy broadcasting.
//!
//! If `x` of shape `s` was broadcast to `t`, the cotangent of `x` is the cotangent at
//! `t` summed over the leading axes `t` added and over the axes where `s` has extent 1
//! and `t` does not, then reshaped to `s`.

use crate::emit::{Emit, R};
use onde_ir::{Shape, ValueId};

/// Sums `g` down to `target` (the inverse of broadcasting `target` to `g`'s shape).
pub fn unbroadcast(e: &mut Emit<'_>, g: ValueId, target: &Shape) -> R {
    let gs = e.shape(g);
    if &gs == target {
        return Ok(g);
    }
    let lead = gs.rank().saturating_sub(target.rank());
    let axes: Vec<usize> = (0..gs.rank())
        .filter(|&i| i < lead || (target.dims()[i - lead] == 1 && gs.dims()[i] != 1))
        .collect();
    let s = e.sum(g, axes, true)?;
    e.reshape(s, target.clone())
}
