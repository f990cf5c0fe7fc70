//! Hoisting time-parallel work out of recurrences.
//!
//! In a Scan body, a value that depends on the scanned inputs and loop invariants but
//! not on the carried state can be computed for every step at once, before the loop:
//! the input projection `x_t · W_ih` of an RNN becomes one large matrix product over the
//! whole sequence, which a GEMM runs far faster than one small product per step. The
//! pass rewrites each such value at the frontier of the carry-independent part into a
//! new scanned input, computed outside on the stacked tensors:
//! - a scanned input stands for itself (stacked along the scan axis);
//! - an invariant or constant is loop-invariant; when combined with a stacked operand it
//!   is reshaped to insert a size-1 axis at the scan axis, so broadcasting lines up;
//! - elementwise ops apply to the stacked operands directly;
//! - a matmul whose left operand is stacked (scan axis outside its last two axes) and
//!   whose right operand is a loop-invariant matrix is one batched matmul.
//!
//! - any op whose operands are all loop-invariant (e.g. the transpose of a weight) is
//!   computed once outside.
//!
//! A scanned input that is the same at every step (a broadcast along the scan axis, as
//! the cotangent of a mean over time is) becomes an invariant instead (`invariant_xs`).
//!
//! Only the batched products leave the loop, with what their operands need:
//! elementwise ops after a product (a bias added to the input projection) stay in the
//! body, fused into the step's kernel, instead of costing a pass over the stacked
//! values. Anything else stays in the body. The scan's results are unchanged; DCE then
//! removes the body ops that became dead.

use crate::emit::Emit;
use crate::pass::{Pass, PassError};
use onde_ir::{Graph, Op, OpClass, OpId, ScanOp, Shape, SliceAxis, TensorType, ValueId};
use std::collections::HashMap;
use std::sync::Arc;

/// The hoisting pass.
#[derive(Debug, Default)]
pub struct HoistScan;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outer {
    /// Stacked along the scan axis (one slice per step).
    Stacked(ValueId),
    /// The same for every step.
    Invariant(ValueId),
}

fn fail(e: impl std::fmt::Display) -> PassError {
    PassError::Failed {
        pass: "hoist_scan",
        message: e.to_string(),
    }
}

/// Reshapes an invariant of rank `k <= r` to rank `r + 1` with a size-1 scan axis.
fn lift(g: &mut Graph, v: ValueId, r: usize, axis: usize) -> Result<ValueId, PassError> {
    let t = g.value_type(v).clone();
    let mut dims: Vec<usize> = std::iter::repeat_n(1, r - t.shape.rank())
        .chain(t.shape.dims().iter().copied())
        .collect();
    dims.insert(axis, 1);
    let (_, res) = g
        .add_op(
            Op::Reshape {
                shape: Shape::new(dims),
            },
            &[v],
            None,
        )
        .map_err(fail)?;
    Ok(res[0])
}

/// Tries to compute body op `o` outside, given its operands' outer values.
fn outer_op(
    g: &mut Graph,
    body: &Graph,
    o: OpId,
    args: &[Outer],
    axis: usize,
) -> Result<Option<Outer>, PassError> {
    let node = body.op(o);
    let r = body.value_type(body.results(o)[0]).shape.rank();
    let all_inv = args.iter().all(|a| matches!(a, Outer::Invariant(_)));
    let elementwise = matches!(
        node.op,
        Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Where | Op::Cast { .. }
    );
    // Any pure op on loop invariants is itself loop-invariant (e.g. `W.t()`).
    if all_inv && body.results(o).len() == 1 {
        let ids: Vec<ValueId> = args
            .iter()
            .map(|a| match a {
                Outer::Invariant(v) | Outer::Stacked(v) => *v,
            })
            .collect();
        let (_, res) = g
            .add_op(node.op.clone(), &ids, node.loc.clone())
            .map_err(fail)?;
        return Ok(Some(Outer::Invariant(res[0])));
    }
    if elementwise {
        let mut ids = Vec::with_capacity(args.len());
        for a in args {
            ids.push(match *a {
                Outer::Stacked(v) => v,
                Outer::Invariant(v) => lift(g, v, r, axis)?,
            });
        }
        // Stacked operands of lower rank than the result would misalign: require full rank.
        if args
            .iter()
            .any(|a| matches!(a, Outer::Stacked(v) if g.value_type(*v).shape.rank() != r + 1))
        {
            return Ok(None);
        }
        let (_, res) = g
            .add_op(node.op.clone(), &ids, node.loc.clone())
            .map_err(fail)?;
        return Ok(Some(Outer::Stacked(res[0])));
    }
    if node.op == Op::MatMul {
        if let [Outer::Stacked(a), Outer::Invariant(b)] = *args {
            let ra = g.value_type(a).shape.rank();
            // The scan axis may be the row axis (rows are independent), not the contraction axis.
            if g.value_type(b).shape.rank() == 2 && ra >= 3 && axis + 1 < ra {
                let (_, res) = g
                    .add_op(Op::MatMul, &[a, b], node.loc.clone())
                    .map_err(fail)?;
                return Ok(Some(Outer::Stacked(res[0])));
            }
        }
    }
    Ok(None)
}

/// Hoists out of scan `o`; returns whether it changed.
fn hoist_one(g: &mut Graph, o: OpId) -> Result<bool, PassError> {
    let Op::Scan(s) = g.op(o).op.clone() else {
        return Ok(false);
    };
    let body = &*s.body;
    let (nc, nx) = (s.num_carry, s.num_xs);
    let operands = g.operands(o);
    let bin = body.inputs().to_vec();
    let mut outer: HashMap<ValueId, Outer> = HashMap::new();
    for (i, &v) in bin.iter().enumerate() {
        if i >= nc && i < nc + nx {
            outer.insert(v, Outer::Stacked(operands[i]));
        } else if i >= nc + nx {
            outer.insert(v, Outer::Invariant(operands[i]));
        }
    }
    let Some(order) = body.topo_ops() else {
        return Ok(false);
    };
    let loc = g.op(o).loc.clone();
    // Which body values can be computed outside (those not moved are dropped by DCE).
    for &bo in &order {
        let node = body.op(bo);
        let rs = body.results(bo);
        if matches!(node.op, Op::Input { .. }) {
            continue;
        }
        if let Op::Constant(_) = &node.op {
            let (_, res) = g
                .add_op(node.op.clone(), &[], node.loc.clone())
                .map_err(fail)?;
            outer.insert(rs[0], Outer::Invariant(res[0]));
            continue;
        }
        let xs = body.operands(bo);
        let Some(args) = xs
            .iter()
            .map(|v| outer.get(v).copied())
            .collect::<Option<Vec<Outer>>>()
        else {
            continue;
        };
        if rs.len() != 1 {
            continue;
        }
        if let Some(out) = outer_op(g, body, bo, &args, s.axis)? {
            outer.insert(rs[0], out);
        }
    }
    // What leaves the loop: the batched matrix products and what their operands need.
    // An elementwise op after a product (a bias added to the input projection) stays
    // in the body, where it is fused into the step's kernel for free; outside it would
    // be one more pass over the stacked `[T, …]` values (a write and a read of each).
    let mut moved: std::collections::HashSet<ValueId> = std::collections::HashSet::new();
    let mut todo: Vec<ValueId> = order
        .iter()
        .filter(|&&bo| body.op(bo).op == Op::MatMul)
        .filter_map(|&bo| body.results(bo).first().copied())
        .filter(|r| matches!(outer.get(r), Some(Outer::Stacked(_))))
        .collect();
    while let Some(v) = todo.pop() {
        if bin.contains(&v) || !moved.insert(v) {
            continue;
        }
        if let Some(p) = body.producer(v) {
            todo.extend(
                body.operands(p)
                    .into_iter()
                    .filter(|x| matches!(outer.get(x), Some(Outer::Stacked(_)))),
            );
        }
    }
    // Frontier: moved values used by body ops (or outputs) that stay inside.
    let mut frontier: Vec<ValueId> = Vec::new();
    for &bo in &order {
        let rs = body.results(bo);
        if rs.first().is_some_and(|r| moved.contains(r)) {
            continue;
        }
        if matches!(body.op(bo).op, Op::Input { .. }) {
            continue;
        }
        for v in body.operands(bo) {
            if moved.contains(&v) && !frontier.contains(&v) {
                frontier.push(v);
            }
        }
    }
    for &v in body.outputs() {
        if moved.contains(&v) && !frontier.contains(&v) {
            frontier.push(v);
        }
    }
    if frontier.is_empty() {
        return Ok(false);
    }
    // New body: each frontier value becomes a scanned input.
    let mut nb = body.clone();
    let mut new_inputs = Vec::new();
    for (k, &v) in frontier.iter().enumerate() {
        let ty: TensorType = nb.value_type(v).clone();
        let (_, r) = nb
            .add_op(
                Op::Input {
                    name: format!("hoisted{k}"),
                    ty,
                },
                &[],
                None,
            )
            .map_err(fail)?;
        nb.replace_all_uses(v, r[0]);
        new_inputs.push(r[0]);
    }
    let mut order_in: Vec<ValueId> = bin[..nc + nx].to_vec();
    order_in.extend(&new_inputs);
    order_in.extend(&bin[nc + nx..]);
    nb.set_inputs(order_in);
    crate::dce::dce(&mut nb);
    let mut ops: Vec<ValueId> = operands[..nc + nx].to_vec();
    for &v in &frontier {
        match outer.get(&v) {
            Some(Outer::Stacked(x)) => ops.push(*x),
            Some(Outer::Invariant(_)) | None => return Err(fail("frontier value is not stacked")),
        }
    }
    ops.extend(&operands[nc + nx..]);
    let new = ScanOp {
        body: Arc::new(nb),
        num_xs: nx + frontier.len(),
        ..s.clone()
    };
    replace_scan(g, o, new, &ops, loc)?;
    Ok(true)
}

/// Adds scan `new` over `ops` and points every use of scan `o`'s results at its
/// results (same types); `o` is left to DCE. Returns the new op.
fn replace_scan(
    g: &mut Graph,
    o: OpId,
    new: ScanOp,
    ops: &[ValueId],
    loc: Option<onde_ir::SourceLoc>,
) -> Result<OpId, PassError> {
    let (op, res) = g.add_op(Op::Scan(new), ops, loc).map_err(fail)?;
    for (old, nw) in g.results(o).into_iter().zip(res) {
        g.replace_all_uses(old, nw);
    }
    Ok(op)
}

/// Whether value `v` of `g` is the same at every index of its axis `axis`: a broadcast
/// along it (`expand` of an extent-1 or missing axis), seen through permutations,
/// slices and elementwise ops of such values (at most `depth` ops deep).
fn constant_along(g: &Graph, v: ValueId, axis: usize, depth: usize) -> bool {
    let Some(p) = g.producer(v) else {
        return false;
    };
    if depth == 0 {
        return false;
    }
    let rank = g.value_type(v).shape.rank();
    // Operand `x` of an op broadcasting to rank `rank`: the same along `axis` if it
    // lacks the axis, has extent 1 there, or is itself constant along it.
    let operand = |x: ValueId| {
        let s = &g.value_type(x).shape;
        let lead = rank - s.rank().min(rank);
        axis < lead || s.dims()[axis - lead] == 1 || constant_along(g, x, axis - lead, depth - 1)
    };
    let xs = g.operands(p);
    let op = &g.op(p).op;
    if let Op::Permute { perm } = op {
        constant_along(g, xs[0], perm[axis], depth - 1)
    } else if matches!(op, Op::Slice { .. }) {
        constant_along(g, xs[0], axis, depth - 1)
    } else {
        // An expand broadcasts its operand; an elementwise op broadcasts its operands.
        (matches!(op, Op::Expand { .. }) || op.class() == OpClass::Elementwise)
            && xs.iter().all(|&x| operand(x))
    }
}

/// Scanned inputs that are the same at every step (a broadcast along the scan axis:
/// the cotangent of a mean over time, fed to the backward loop) become invariants: the
/// loop reads one `[…]` value instead of a `[T, …]` stack materialised for it. Returns
/// the scan that replaces `o`, if it was rewritten.
fn invariant_xs(g: &mut Graph, o: OpId) -> Result<Option<OpId>, PassError> {
    let Op::Scan(s) = g.op(o).op.clone() else {
        return Ok(None);
    };
    let (nc, nx) = (s.num_carry, s.num_xs);
    let operands = g.operands(o);
    let same: Vec<usize> = (0..nx)
        .filter(|&k| constant_along(g, operands[nc + k], s.axis, 8))
        .collect();
    if same.is_empty() || s.length == 0 {
        return Ok(None);
    }
    let loc = g.op(o).loc.clone();
    // Each one's first step, without the scan axis.
    let mut e = Emit::new(g);
    e.loc = loc.clone();
    e.rule = "hoist_scan".into();
    let first_step = SliceAxis::range(0, 1);
    let mut first = Vec::with_capacity(same.len());
    for &k in &same {
        let v = operands[nc + k];
        let mut dims = e.shape(v).dims().to_vec();
        dims.remove(s.axis);
        let sl = e.slice_axis(v, s.axis, first_step).map_err(fail)?;
        first.push(e.reshape(sl, Shape::new(dims)).map_err(fail)?);
    }
    // The body takes them after its invariants.
    let bin = s.body.inputs().to_vec();
    let scanned = |k: &usize| !same.contains(k);
    let mut order: Vec<ValueId> = bin[..nc].to_vec();
    order.extend((0..nx).filter(scanned).map(|k| bin[nc + k]));
    order.extend(&bin[nc + nx..]);
    order.extend(same.iter().map(|&k| bin[nc + k]));
    let mut nb = (*s.body).clone();
    nb.set_inputs(order);
    let mut ops: Vec<ValueId> = operands[..nc].to_vec();
    ops.extend((0..nx).filter(scanned).map(|k| operands[nc + k]));
    ops.extend(&operands[nc + nx..]);
    ops.extend(&first);
    let new = ScanOp {
        body: Arc::new(nb),
        num_xs: nx - same.len(),
        ..s.clone()
    };
    replace_scan(g, o, new, &ops, loc).map(Some)
}

impl Pass for HoistScan {
    fn name(&self) -> &'static str {
        "hoist_scan"
    }

    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        let scans: Vec<OpId> = g
            .op_ids()
            .into_iter()
            .filter(|&o| matches!(g.op(o).op, Op::Scan(_)))
            .collect();
        let mut changed = false;
        for mut o in scans {
            if let Some(new) = invariant_xs(g, o)? {
                changed = true;
                o = new;
            }
            changed |= hoist_one(g, o)?;
        }
        if changed {
            crate::dce::dce(g);
        }
        Ok(changed)
    }
}
