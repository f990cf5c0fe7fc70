//! Reverse-mode automatic differentiation as a graph transformation.
//!
//! [`vjp`] adds to the graph the ops computing the vector-Jacobian product of some
//! outputs (with given cotangents) with respect to some values, and returns the
//! gradient values; [`grad`] is the scalar-loss case. The driver:
//! 1. prunes to the *active* values: descendants of the `wrt` set that are also
//!    ancestors of the outputs;
//! 2. walks the ops in reverse topological order, and for each op with a cotangent
//!    on a result calls its rule ([`rules::vjp_op`], one exhaustive match, each arm
//!    with its math) for the active float operands;
//! 3. accumulates fan-out (a value used several times) by addition, once every
//!    contribution is in; the gradients of slices that tile adjacent ranges of one axis
//!    (zero paddings) are joined by one concatenation instead of padded and summed.
//!
//! Every rule is built from ops that themselves have rules, so the output is ordinary
//! IR that can be differentiated again (second derivatives, Hessian-vector products).
//! Integer and bool values have no gradient: asking for one is an error. A `wrt` value
//! the outputs do not depend on gets a zero gradient (as JAX; PyTorch would return
//! `None`).

mod conv;
pub mod rules;
mod scan;
pub mod unbroadcast;

use crate::emit::{Emit, EmitError};
use onde_ir::{DType, Graph, Op, TensorType, ValueId};
use std::collections::{HashMap, HashSet, VecDeque};

/// Why differentiation failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AdError {
    /// A value is not of this graph.
    #[error("value {0:?} is not in the graph")]
    NotInGraph(ValueId),
    /// Gradients exist only for floating-point values.
    #[error("cannot differentiate with respect to {what} of type {ty}: only f32/f64 values have gradients")]
    NotDifferentiable {
        /// Which value (e.g. `input "labels"`).
        what: String,
        /// Its type.
        ty: Box<TensorType>,
    },
    /// `grad` needs a scalar float loss.
    #[error("grad needs a scalar floating-point loss, got {0} (use vjp with a cotangent)")]
    NotScalar(Box<TensorType>),
    /// A cotangent's type differs from its output's.
    #[error("cotangent of type {got} given for an output of type {expected}")]
    CotangentType {
        /// The output's type.
        expected: Box<TensorType>,
        /// The cotangent's type.
        got: Box<TensorType>,
    },
    /// The graph has a cycle.
    #[error("the graph has a cycle")]
    Cycle,
    /// A rule emitted an ill-typed op (a bug in onde, reported with the rule's name).
    #[error(transparent)]
    Emit(#[from] EmitError),
}

fn describe(g: &Graph, v: ValueId) -> String {
    match g.producer(v).map(|o| &g.op(o).op) {
        Some(onde_ir::Op::Input { name, .. }) => format!("input {name:?}"),
        Some(onde_ir::Op::Parameter { name, .. }) => format!("parameter {name:?}"),
        Some(op) => format!("the result of {} ({v:?})", op.name()),
        None => format!("{v:?}"),
    }
}

/// Gradient of the scalar float `loss` with respect to each of `wrt`.
pub fn grad(g: &mut Graph, loss: ValueId, wrt: &[ValueId]) -> Result<Vec<ValueId>, AdError> {
    let t = g
        .try_value_type(loss)
        .ok_or(AdError::NotInGraph(loss))?
        .clone();
    if t.shape.rank() != 0 || !t.dtype.is_float() {
        return Err(AdError::NotScalar(Box::new(t)));
    }
    let one = Emit::new(g).scalar(t.dtype, 1.0)?;
    vjp(g, &[(loss, one)], wrt)
}

/// Vector-Jacobian product: for `seeds = [(y, dy), …]`, returns `Σ dyᵀ ∂y/∂w` for each
/// `w` in `wrt`, as new values of `g`.
pub fn vjp(
    g: &mut Graph,
    seeds: &[(ValueId, ValueId)],
    wrt: &[ValueId],
) -> Result<Vec<ValueId>, AdError> {
    for &w in wrt {
        let t = g.try_value_type(w).ok_or(AdError::NotInGraph(w))?;
        if !t.dtype.is_float() {
            return Err(AdError::NotDifferentiable {
                what: describe(g, w),
                ty: Box::new(t.clone()),
            });
        }
    }
    for &(y, dy) in seeds {
        let ty = g.try_value_type(y).ok_or(AdError::NotInGraph(y))?.clone();
        let tdy = g.try_value_type(dy).ok_or(AdError::NotInGraph(dy))?.clone();
        if ty != tdy {
            return Err(AdError::CotangentType {
                expected: Box::new(ty),
                got: Box::new(tdy),
            });
        }
    }
    let order = g.topo_ops().ok_or(AdError::Cycle)?;
    let active = active_values(g, seeds, wrt);

    let mut ct: HashMap<ValueId, Vec<ValueId>> = HashMap::new();
    let mut e = Emit::new(g);
    for &(y, dy) in seeds {
        if active.contains(&y) || wrt.contains(&y) {
            accumulate(&mut e, &mut ct, y, dy)?;
        }
    }
    for &o in order.iter().rev() {
        let results = e.g.results(o);
        // Every user of the results came later in the order: their contributions are in.
        let mut dys: Vec<Option<ValueId>> = Vec::with_capacity(results.len());
        for r in &results {
            dys.push(total(&mut e, &mut ct, *r)?);
        }
        if dys.iter().all(Option::is_none) {
            continue;
        }
        let operands = e.g.operands(o);
        let wants: Vec<bool> = operands
            .iter()
            .map(|v| active.contains(v) && e.g.value_type(*v).dtype.is_float())
            .collect();
        if !wants.iter().any(|&w| w) {
            continue;
        }
        let node = e.g.op(o).clone();
        e.loc = node.loc.clone();
        e.rule = format!("grad({})", node.op.name());
        let grads = rules::vjp_op(&mut e, &node.op, &operands, &results, &dys, &wants)?;
        for ((v, gv), want) in operands.iter().zip(grads).zip(&wants) {
            if let (Some(gv), true) = (gv, want) {
                accumulate(&mut e, &mut ct, *v, gv)?;
            }
        }
    }
    e.loc = None;
    e.rule = "grad(zero)".into();
    let mut out = Vec::with_capacity(wrt.len());
    for &w in wrt {
        match total(&mut e, &mut ct, w)? {
            Some(d) => out.push(d),
            None => {
                let t = e.ty(w);
                out.push(e.zeros(&t)?);
            }
        }
    }
    Ok(out)
}

/// Records `d` as a contribution to the cotangent of `v` (fan-out is a sum, formed by
/// [`total`] once every contribution is in).
fn accumulate(
    _e: &mut Emit<'_>,
    ct: &mut HashMap<ValueId, Vec<ValueId>>,
    v: ValueId,
    d: ValueId,
) -> Result<(), EmitError> {
    ct.entry(v).or_default().push(d);
    Ok(())
}

/// The cotangent of `v`: the sum of its contributions, in the order they came, except
/// that zero paddings of adjacent ranges along one axis (the gradients of slices that
/// tile a tensor: an LSTM's four gates cut from one product) become one padding of their
/// concatenation — one copy instead of a padded tensor per slice and a sum over them.
/// The values are the same (each element comes from one slice), up to the sign of a
/// zero (`-0 + 0 = +0`).
fn total(
    e: &mut Emit<'_>,
    ct: &mut HashMap<ValueId, Vec<ValueId>>,
    v: ValueId,
) -> Result<Option<ValueId>, EmitError> {
    let Some(parts) = ct.get(&v) else {
        return Ok(None);
    };
    if parts.len() == 1 {
        return Ok(Some(parts[0]));
    }
    let parts = merge_pads(e, parts)?;
    let mut sum = parts[0];
    for &d in &parts[1..] {
        sum = e.add(sum, d)?;
    }
    ct.insert(v, vec![sum]);
    Ok(Some(sum))
}

/// A zero padding of `x` along one axis only: `(x, axis, before, after)`.
fn pad_on_one_axis(g: &Graph, v: ValueId) -> Option<(ValueId, usize, usize, usize)> {
    let o = g.producer(v)?;
    let Op::Pad { pads, value_bits } = &g.op(o).op else {
        return None;
    };
    if Op::pad_value(*value_bits) != 0.0 {
        return None;
    }
    let mut axes = pads.iter().enumerate().filter(|(_, &p)| p != (0, 0));
    let (axis, &(lo, hi)) = axes.next()?;
    if axes.next().is_some() {
        return None;
    }
    Some((g.operands(o)[0], axis, lo, hi))
}

/// `parts` with each run of zero paddings that tile adjacent ranges of one axis
/// replaced by one padding of their concatenation (see [`total`]).
fn merge_pads(e: &mut Emit<'_>, parts: &[ValueId]) -> Result<Vec<ValueId>, EmitError> {
    let pads: Vec<Option<(ValueId, usize, usize, usize)>> =
        parts.iter().map(|&d| pad_on_one_axis(e.g, d)).collect();
    let mut out = Vec::with_capacity(parts.len());
    let mut used = vec![false; parts.len()];
    for i in 0..parts.len() {
        if used[i] {
            continue;
        }
        let Some((_, axis, _, _)) = pads[i] else {
            out.push(parts[i]);
            continue;
        };
        // The paddings along this axis, by where their data starts.
        let mut run: Vec<(usize, usize, ValueId, usize)> = (i..parts.len())
            .filter(|&j| !used[j])
            .filter_map(|j| match pads[j] {
                Some((x, a, lo, _)) if a == axis => {
                    Some((lo, e.g.value_type(x).shape.dims()[axis], x, j))
                }
                _ => None,
            })
            .collect();
        run.sort_by_key(|r| r.0);
        // Split into chains of adjacent ranges (each starts where the previous ended),
        // greedily from the lowest start, and take part `i`'s.
        let mut chains: Vec<Vec<(usize, usize, ValueId, usize)>> = Vec::new();
        let mut taken = vec![false; run.len()];
        for first in 0..run.len() {
            if taken[first] {
                continue;
            }
            taken[first] = true;
            let mut chain = vec![run[first]];
            let mut end = run[first].0 + run[first].1;
            while let Some(k) = (0..run.len()).find(|&k| !taken[k] && run[k].0 == end) {
                taken[k] = true;
                chain.push(run[k]);
                end += run[k].1;
            }
            chains.push(chain);
        }
        let chain = chains
            .into_iter()
            .find(|c| c.iter().any(|r| r.3 == i))
            .unwrap_or_default();
        if chain.len() < 2 {
            out.push(parts[i]);
            used[i] = true;
            continue;
        }
        let full = e.g.value_type(parts[i]).shape.dims()[axis];
        let lo = chain[0].0;
        let end = chain.last().map_or(lo, |c| c.0 + c.1);
        let xs: Vec<ValueId> = chain.iter().map(|c| c.2).collect();
        for c in &chain {
            used[c.3] = true;
        }
        let cat = e.op(Op::Concat { axis }, &xs)?;
        let mut pads = vec![(0, 0); e.g.value_type(parts[i]).shape.rank()];
        pads[axis] = (lo, full - end);
        out.push(e.pad(cat, pads)?);
    }
    Ok(out)
}

/// Values that depend on `wrt` and that the seeded outputs depend on.
fn active_values(g: &Graph, seeds: &[(ValueId, ValueId)], wrt: &[ValueId]) -> HashSet<ValueId> {
    let mut fwd: HashSet<ValueId> = wrt.iter().copied().collect();
    let mut q: VecDeque<ValueId> = wrt.iter().copied().collect();
    while let Some(v) = q.pop_front() {
        for o in g.users(v) {
            for r in g.results(o) {
                if fwd.insert(r) {
                    q.push_back(r);
                }
            }
        }
    }
    let mut bwd: HashSet<ValueId> = seeds.iter().map(|s| s.0).collect();
    let mut q: VecDeque<ValueId> = bwd.iter().copied().collect();
    while let Some(v) = q.pop_front() {
        if let Some(o) = g.producer(v) {
            for x in g.operands(o) {
                if bwd.insert(x) {
                    q.push_back(x);
                }
            }
        }
    }
    fwd.intersection(&bwd).copied().collect()
}

/// Whether a dtype can carry a gradient.
pub fn differentiable(d: DType) -> bool {
    d.is_float()
}
