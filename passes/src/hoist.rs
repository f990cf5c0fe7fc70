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
//! Only the batched products leave the loop, with what their operands need:
//! elementwise ops after a product (a bias added to the input projection) stay in the
//! body, fused into the step's kernel, instead of costing a pass over the stacked
//! values. Anything else stays in the body. The scan's results are unchanged; DCE then
//! removes the body ops that became dead.

use crate::pass::{Pass, PassError};
use onde_ir::{Graph, Op, OpId, ScanOp, Shape, TensorType, ValueId};
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
    let (_, res) = g.add_op(Op::Scan(new), &ops, loc).map_err(fail)?;
    for (old, nw) in g.results(o).into_iter().zip(res) {
        g.replace_all_uses(old, nw);
    }
    Ok(true)
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
        for o in scans {
            changed |= hoist_one(g, o)?;
        }
        if changed {
            crate::dce::dce(g);
        }
        Ok(changed)
    }
}
