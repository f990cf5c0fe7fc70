//! Gradient of a Scan: a reverse-time Scan over the saved per-step values.
//!
//! Forward `scan` with carries `c`, scanned inputs `x`, invariants `k` and body
//! `(c', y) = B(c, x, k)`. Reverse mode needs each step's carry-in, so the forward scan
//! is replaced by one whose body also emits its carry-in as a per-step output (the
//! stacked `C`), and the matrix products that depend on the carry (`P`, an RNN's
//! `h·W_hhᵀ`, or the offset sums of it that the gradient reads, see
//! `save_candidates`): the backward body reads those instead of recomputing them.
//! Recomputing them costs the forward's FLOPs again (one batched product over every
//! step after hoisting, plus a pass to re-add the input projection); storing costs one
//! write per step of data the forward computed anyway. The backward scan runs in the
//! opposite direction with
//!   carries   `dc` (cotangent of the carry, starting from that of the final carry) and
//!             `dk` (accumulated cotangent of each invariant, starting at zero),
//!   scanned   `C`, `x`, `dY` (cotangents of the stacked outputs) and `P`,
//!   invariant `k`;
//! its body recomputes `B(c, x, k)` and applies [`super::vjp`] to it:
//!   `(dc_in, dx, dk_step) = vjp(B, (dc, dy))`, new carries `(dc_in, dk + dk_step)`,
//!   per-step output `dx`.
//! Its final carries are the cotangents of the initial carries and of the invariants; its
//! stacked outputs are those of the scanned inputs. No unrolling: the graph grows by a
//! constant, whatever the number of steps. Integer carries/inputs take part in the
//! recomputation but get no cotangent.
//!
//! An invariant whose per-step cotangent is an outer product with a scanned value —
//! `[permute](aᵀ·G)` for a weight used as `a·Wᵀ` or `a·W` (an RNN's `W_hh` against the
//! saved carry `h`, `W_ih` against the input), or `reshape(Σ G)` for a broadcast bias —
//! is not accumulated in the loop: the backward scan outputs the per-step `G` stacked,
//! and the sum over steps is one product `A_flatᵀ·G_flat` over every step's rows (or one
//! sum) after the loop. The per-step work loses a small GEMM and a carried accumulator
//! (measured on W4: `docs/performance.md`).

use super::unbroadcast::unbroadcast;
use super::vjp;
use crate::emit::{Emit, EmitError, R};
use onde_ir::{Graph, GraphError, Op, ScanOp, TensorType, TypeError, ValueId};
use std::sync::Arc;

fn fail(e: &Emit<'_>, reason: String) -> EmitError {
    EmitError {
        rule: e.rule.clone(),
        op: "scan",
        error: GraphError::Type(TypeError {
            op: "scan",
            operands: vec![],
            reason,
        }),
    }
}

fn input(g: &mut Graph, name: String, ty: TensorType) -> Result<ValueId, GraphError> {
    Ok(g.add_op(Op::Input { name, ty }, &[], None)?.1[0])
}

pub(super) fn vjp_scan(
    e: &mut Emit<'_>,
    s: &ScanOp,
    xs: &[ValueId],
    ys: &[ValueId],
    dys: &[Option<ValueId>],
    wants: &[bool],
) -> R<Vec<Option<ValueId>>> {
    let (nc, nx) = (s.num_carry, s.num_xs);
    let nk = xs.len() - nc - nx;
    let ny = ys.len() - nc;
    let body = &s.body;
    let bin: Vec<TensorType> = body
        .inputs()
        .iter()
        .map(|&v| body.value_type(v).clone())
        .collect();
    let bout: Vec<TensorType> = body
        .outputs()
        .iter()
        .map(|&v| body.value_type(v).clone())
        .collect();

    // Values of the forward body worth saving per step rather than recomputing in the
    // backward body (see `save_candidates`); those the backward body ends up reading
    // are stacked by the forward scan (step 4).
    let cands = save_candidates(body, nc);

    // 2. Which positions carry cotangents (float only).
    let fc: Vec<usize> = (0..nc).filter(|&i| bin[i].dtype.is_float()).collect();
    // Carries always flow (the recurrence needs them); inputs and invariants only when
    // their cotangent is wanted.
    let fx: Vec<usize> = (0..nx)
        .filter(|&i| bin[nc + i].dtype.is_float() && wants[nc + i])
        .collect();
    let fk: Vec<usize> = (0..nk)
        .filter(|&i| bin[nc + nx + i].dtype.is_float() && wants[nc + nx + i])
        .collect();
    let fy: Vec<usize> = (0..ny).filter(|&i| bout[nc + i].dtype.is_float()).collect();

    // 3. The backward body.
    let mut tb = Graph::new();
    let err = |e: &Emit<'_>, x: GraphError| fail(e, format!("building the backward body: {x}"));
    let mut dc = Vec::new();
    for &i in &fc {
        dc.push(input(&mut tb, format!("dc{i}"), bin[i].clone()).map_err(|x| err(e, x))?);
    }
    let mut dk_acc = Vec::new();
    for &i in &fk {
        dk_acc.push(
            input(&mut tb, format!("dk{i}"), bin[nc + nx + i].clone()).map_err(|x| err(e, x))?,
        );
    }
    let mut args = Vec::new();
    for (i, t) in bin.iter().take(nc).enumerate() {
        args.push(input(&mut tb, format!("c{i}"), t.clone()).map_err(|x| err(e, x))?);
    }
    for i in 0..nx {
        args.push(input(&mut tb, format!("x{i}"), bin[nc + i].clone()).map_err(|x| err(e, x))?);
    }
    let mut dy = Vec::new();
    for &i in &fy {
        dy.push(input(&mut tb, format!("dy{i}"), bout[nc + i].clone()).map_err(|x| err(e, x))?);
    }
    let mut saved_in = Vec::new();
    for (j, &v) in cands.iter().enumerate() {
        let t = body.value_type(v).clone();
        saved_in.push(input(&mut tb, format!("p{j}"), t).map_err(|x| err(e, x))?);
    }
    for i in 0..nk {
        args.push(
            input(&mut tb, format!("k{i}"), bin[nc + nx + i].clone()).map_err(|x| err(e, x))?,
        );
    }
    // The body recomputed, with the saved products as extra outputs so that their
    // recomputation can be swapped for the saved values once differentiated.
    let mut body_p = (**body).clone();
    let mut outs_p = body_p.outputs().to_vec();
    outs_p.extend_from_slice(&cands);
    body_p.set_outputs(outs_p);
    let re_all = tb
        .inline(&body_p, &args)
        .map_err(|x| fail(e, format!("recomputing the body: {x}")))?;
    let (re, re_p) = re_all.split_at(re_all.len() - cands.len());
    let mut seeds: Vec<(ValueId, ValueId)> =
        fc.iter().zip(&dc).map(|(&i, &d)| (re[i], d)).collect();
    seeds.extend(fy.iter().zip(&dy).map(|(&i, &d)| (re[nc + i], d)));
    let mut wrt: Vec<ValueId> = fc.iter().map(|&i| args[i]).collect();
    wrt.extend(fx.iter().map(|&i| args[nc + i]));
    wrt.extend(fk.iter().map(|&i| args[nc + nx + i]));
    let grads = vjp(&mut tb, &seeds, &wrt)
        .map_err(|x| fail(e, format!("differentiating the body: {x}")))?;
    // Read the saved values instead of recomputing them: the gradient rules use the
    // operands of a product (which stay) and the output of a `tanh` or `sigmoid`.
    for (&r, &p) in re_p.iter().zip(&saved_in) {
        tb.replace_all_uses(r, p);
    }
    let (g_c, rest) = grads.split_at(fc.len());
    let (g_x, g_k) = rest.split_at(fx.len());
    // Invariants whose per-step cotangent is a sum over the step's rows (a recurrent
    // weight's `hᵀ·G`, a bias's `Σ_b G`): the backward scan emits the per-step `G`
    // instead of accumulating, and one product (or sum) over all steps follows the loop.
    let hoists: Vec<Option<Hoist>> = g_k
        .iter()
        .map(|&gk| match_hoist(&tb, gk, &args[..nc + nx]))
        .collect();
    let mut touts: Vec<ValueId> = g_c.to_vec();
    {
        let mut te = Emit::new(&mut tb);
        te.rule = e.rule.clone();
        for ((&acc, &gk), h) in dk_acc.iter().zip(g_k).zip(&hoists) {
            if h.is_none() {
                touts.push(te.add(acc, gk)?);
            }
        }
    }
    touts.extend_from_slice(g_x);
    // The per-step values of the hoisted cotangents, each once.
    let mut per_step: Vec<ValueId> = Vec::new();
    for h in hoists.iter().flatten() {
        if !per_step.contains(&h.step) && !g_x.contains(&h.step) {
            per_step.push(h.step);
        }
    }
    touts.extend_from_slice(&per_step);
    tb.set_outputs(touts);
    for (&acc, h) in dk_acc.iter().zip(&hoists) {
        if h.is_some() {
            if let Some(o) = tb.producer(acc) {
                tb.remove_op(o);
            }
        }
    }

    // Keep the saved values the backward body reads (a product whose only consumer was
    // a saved `sigmoid` is read no more).
    crate::dce::dce(&mut tb);
    let mut saved = Vec::new();
    for (&c, &p) in cands.iter().zip(&saved_in) {
        if tb.is_used(p) {
            saved.push(c);
        } else if let Some(o) = tb.producer(p) {
            tb.remove_op(o);
        }
    }

    // 4. The forward scan, which also stacks each step's carry-in and the saved values;
    // it replaces the original.
    let mut aug = (**body).clone();
    let mut outs = aug.outputs().to_vec();
    outs.extend_from_slice(&aug.inputs()[..nc]);
    outs.extend_from_slice(&saved);
    aug.set_outputs(outs);
    let fwd = ScanOp {
        body: Arc::new(aug),
        ..s.clone()
    };
    let new = e.ops(Op::Scan(fwd), xs)?;
    for (&old, &nw) in ys.iter().zip(&new) {
        e.g.replace_all_uses(old, nw);
    }
    let saved_c = &new[nc + ny..nc + ny + nc];
    let saved_p = &new[nc + ny + nc..];

    // 5. The backward scan's operands.
    let mut ops = Vec::new();
    for &i in &fc {
        ops.push(match dys[i] {
            Some(d) => d,
            None => e.zeros(&bin[i])?,
        });
    }
    for (j, &i) in fk.iter().enumerate() {
        if hoists[j].is_none() {
            ops.push(e.zeros(&bin[nc + nx + i])?);
        }
    }
    ops.extend_from_slice(saved_c);
    ops.extend_from_slice(&xs[nc..nc + nx]);
    for &i in &fy {
        ops.push(match dys[nc + i] {
            Some(d) => d,
            None => {
                let t = e.ty(ys[nc + i]);
                e.zeros(&t)?
            }
        });
    }
    ops.extend_from_slice(saved_p);
    ops.extend_from_slice(&xs[nc + nx..]);
    let kept = hoists.iter().filter(|h| h.is_none()).count();
    let bwd = ScanOp {
        body: Arc::new(tb),
        num_carry: fc.len() + kept,
        num_xs: nc + nx + fy.len() + saved.len(),
        length: s.length,
        axis: s.axis,
        reverse: !s.reverse,
    };
    let r = e.ops(Op::Scan(bwd), &ops)?;

    // 6. Map the backward scan's results to the forward operands.
    let mut out = vec![None; xs.len()];
    for (j, &i) in fc.iter().enumerate() {
        out[i] = Some(r[j]);
    }
    let stacked = &r[fc.len() + kept..];
    for (j, &i) in fx.iter().enumerate() {
        out[nc + i] = Some(stacked[j]);
    }
    let steps = &stacked[fx.len()..];
    // Operands of the backward scan's scanned inputs: saved carries, then inputs.
    let scanned_ops: Vec<ValueId> = saved_c.iter().chain(&xs[nc..nc + nx]).copied().collect();
    let mut carried = fc.len();
    for (j, &i) in fk.iter().enumerate() {
        out[nc + nx + i] = Some(match &hoists[j] {
            None => {
                carried += 1;
                r[carried - 1]
            }
            Some(h) => {
                // The stacked per-step value: a scanned input's cotangent when it is
                // the same value (an RNN's `x_t·W_ih + h·W_hh` gives both the same),
                // else its own output.
                let stacked_g = match g_x.iter().position(|&v| v == h.step) {
                    Some(j) => stacked[j],
                    None => steps[per_step.iter().position(|&v| v == h.step).unwrap_or(0)],
                };
                h.after_loop(e, stacked_g, &scanned_ops, &bin[nc + nx + i], s.axis)?
            }
        });
    }
    for (o, w) in out.iter_mut().zip(wants) {
        if !w {
            *o = None;
        }
    }
    Ok(out)
}

/// Values of the forward body that the backward body should read rather than
/// recompute: those that depend on the carried state (so the hoisting pass cannot batch
/// their recomputation over every step before the loop), are not outputs, and are
/// either a contraction (an RNN's `h·W_hhᵀ`) or a transcendental (its gates'
/// `sigmoid` and `tanh`, whose gradient rules read their output). Recomputing costs the
/// forward's work again inside the backward loop; saving costs one write per step of a
/// value the forward computed anyway (PyTorch's LSTM keeps its gates the same way).
///
/// A contraction whose every use is an offset — `[slice] → add/sub` of a value that
/// does not depend on the carry (an input projection, a bias) — also offers those sums
/// (see [`offset_ends`]): the backward reads a GRU's `W_hn h + b_hn` (`[B, H]`)
/// instead of the whole `h·W_hhᵀ` (`[B, 3H]`) it was sliced from, and the product
/// stays a temporary of the step instead of being stacked. Only the candidates the
/// backward body ends up reading are stacked (`vjp_scan`). The sums are offered only
/// when saving all of them costs no more than the product: every use of the product
/// is an offset (so it is read no more once its sums are saved: an add's gradient
/// reads neither operand), each sum has its operand's size (no broadcast wider), every
/// sum can be saved, and together they hold at most the product's elements.
fn save_candidates(body: &Graph, nc: usize) -> Vec<ValueId> {
    let Some(topo) = body.topo_ops() else {
        return Vec::new();
    };
    let mut dep: std::collections::HashSet<ValueId> = body.inputs()[..nc].iter().copied().collect();
    for &o in &topo {
        if body.operands(o).iter().any(|v| dep.contains(v)) {
            dep.extend(body.results(o));
        }
    }
    let saveable = |v: ValueId| body.value_type(v).dtype.is_float() && !body.outputs().contains(&v);
    let mut out = Vec::new();
    for o in topo {
        let rs = body.results(o);
        if rs.len() != 1 || !dep.contains(&rs[0]) {
            continue;
        }
        let op = &body.op(o).op;
        let contraction = op.class() == onde_ir::OpClass::Contraction;
        // A softmax holds its exponentials (the normalisation class).
        let costly = contraction
            || op.class() == onde_ir::OpClass::Normalization
            || matches!(op, Op::Unary(u) if u.is_transcendental());
        if costly && saveable(rs[0]) {
            out.push(rs[0]);
            if contraction {
                for end in offset_ends(body, rs[0], &dep, &saveable).unwrap_or_default() {
                    if !out.contains(&end) {
                        out.push(end);
                    }
                }
            }
        }
    }
    out
}

/// The sums `[slice(v)] ± u` (`u` independent of the carry: not in `dep`) that use `v`,
/// when every use of `v` is one of them, each `saveable` and of its operand's size, and
/// they hold no more elements than `v` (else `None`).
fn offset_ends(
    body: &Graph,
    v: ValueId,
    dep: &std::collections::HashSet<ValueId>,
    saveable: &dyn Fn(ValueId) -> bool,
) -> Option<Vec<ValueId>> {
    // The result of use `u` of `x` when it is `x ± w` with `w` carry-free.
    let offset = |u: onde_ir::OpId, x: ValueId| -> Option<ValueId> {
        let ops = body.operands(u);
        let add_sub = matches!(
            body.op(u).op,
            Op::Binary(onde_ir::BinaryOp::Add | onde_ir::BinaryOp::Sub)
        );
        let other_free = ops.len() == 2
            && ops.iter().filter(|&&w| w == x).count() == 1
            && ops.iter().all(|&w| w == x || !dep.contains(&w));
        (add_sub && other_free).then(|| body.results(u)[0])
    };
    let numel = |x: ValueId| body.value_type(x).shape.numel();
    let mut ends = Vec::new();
    // An offset of `x` of `x`'s own size, saveable.
    let mut end = |u, x: ValueId| -> Option<()> {
        let e = offset(u, x)?;
        (saveable(e) && numel(e) == numel(x)).then(|| ends.push(e))
    };
    for u in body.users(v) {
        if matches!(body.op(u).op, Op::Slice { .. }) {
            let s = body.results(u)[0];
            if body.outputs().contains(&s) {
                return None;
            }
            for w in body.users(s) {
                end(w, s)?;
            }
        } else {
            end(u, v)?;
        }
    }
    ends.sort();
    ends.dedup();
    let total: usize = ends.iter().map(|&e| numel(e)).sum();
    (!ends.is_empty() && total <= numel(v)).then_some(ends)
}

/// An invariant's per-step cotangent computed after the loop from the stacked per-step
/// value `step` (see `vjp_scan`).
#[derive(Clone, Debug)]
struct Hoist {
    /// The per-step value (`G`) in the backward body.
    step: ValueId,
    kind: HoistKind,
}

#[derive(Clone, Debug)]
enum HoistKind {
    /// `[permute](aᵀ · G)` with `a` the `usize`-th scanned input (2-D operands): after
    /// the loop, `[permute](A_flatᵀ · G_flat)` over all steps' rows.
    Outer { scanned: usize, transposed: bool },
    /// `reshape(Σ_axes G)` (a broadcast bias): after the loop, the sum over the step axis
    /// too.
    Sum,
}

/// Recognises a hoistable per-step cotangent `v` of the backward body `g`
/// (`scanned`: the body's scanned inputs).
fn match_hoist(g: &Graph, v: ValueId, scanned: &[ValueId]) -> Option<Hoist> {
    let producer = |x: ValueId| g.producer(x).map(|o| (g.op(o).op.clone(), g.operands(o)));
    let swap = |op: &Op| matches!(op, Op::Permute { perm } if perm == &vec![1, 0]);
    let (op, xs) = producer(v)?;
    // Outer products, optionally transposed (a weight used as `h · Wᵀ`).
    let (mm, transposed) = if swap(&op) { (xs[0], true) } else { (v, false) };
    if let Some((Op::MatMul, ab)) = producer(mm) {
        if let Some((pop, pa)) = producer(ab[0]) {
            let two_d = |x: ValueId| g.value_type(x).shape.rank() == 2;
            if swap(&pop) && two_d(pa[0]) && two_d(ab[1]) {
                if let Some(i) = scanned.iter().position(|&s| s == pa[0]) {
                    return Some(Hoist {
                        step: ab[1],
                        kind: HoistKind::Outer {
                            scanned: i,
                            transposed,
                        },
                    });
                }
            }
        }
    }
    // A bias: reshape(sum(G, axes, keepdim)).
    if let Op::Reshape { .. } = op {
        if let Some((
            Op::Reduce {
                kind: onde_ir::ReduceKind::Sum,
                axes: _,
                keepdim: true,
            },
            gs,
        )) = producer(xs[0])
        {
            return Some(Hoist {
                step: gs[0],
                kind: HoistKind::Sum,
            });
        }
    }
    None
}

impl Hoist {
    /// The invariant's cotangent (type `ty`) from the stacked per-step values `steps`
    /// (`[T, …]`) and the scanned operands.
    fn after_loop(
        &self,
        e: &mut Emit<'_>,
        steps: ValueId,
        scanned: &[ValueId],
        ty: &TensorType,
        axis: usize,
    ) -> R {
        // The step axis in front (stacked values have it at the scan's axis).
        let front = |e: &mut Emit<'_>, v: ValueId| -> R {
            if axis == 0 {
                return Ok(v);
            }
            let r = e.shape(v).rank();
            let mut perm = vec![axis];
            perm.extend((0..r).filter(|&a| a != axis));
            e.permute(v, perm)
        };
        let steps = front(e, steps)?;
        match &self.kind {
            HoistKind::Outer {
                scanned: i,
                transposed,
            } => {
                let a = front(e, scanned[*i])?;
                let (ash, gsh) = (e.shape(a), e.shape(steps));
                let (ad, gd) = (ash.dims(), gsh.dims());
                let a2 = e.reshape(a, vec![ad[0] * ad[1], ad[2]].into())?;
                let g2 = e.reshape(steps, vec![gd[0] * gd[1], gd[2]].into())?;
                let at = e.permute(a2, vec![1, 0])?;
                let p = e.matmul(at, g2)?;
                if *transposed {
                    e.permute(p, vec![1, 0])
                } else {
                    Ok(p)
                }
            }
            // The broadcast bias's gradient over every step's rows: `unbroadcast`, the
            // form a bias added to the stacked values outside takes too, so CSE merges
            // the two (an RNN's `b_ih` and `b_hh` have the same gradient).
            HoistKind::Sum => unbroadcast(e, steps, &ty.shape),
        }
    }
}
