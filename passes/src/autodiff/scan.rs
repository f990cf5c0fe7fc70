//! Gradient of a Scan: a reverse-time Scan over the saved per-step values.
//!
//! Forward `scan` with carries `c`, scanned inputs `x`, invariants `k` and body
//! `(c', y) = B(c, x, k)`. Reverse mode needs each step's carry-in, so the forward scan
//! is replaced by one whose body also emits its carry-in as a per-step output (the
//! stacked `C`). The backward scan runs in the opposite direction with
//!   carries   `dc` (cotangent of the carry, starting from that of the final carry) and
//!             `dk` (accumulated cotangent of each invariant, starting at zero),
//!   scanned   `C`, `x`, and `dY` (cotangents of the stacked outputs),
//!   invariant `k`;
//! its body recomputes `B(c, x, k)` and applies [`super::vjp`] to it:
//!   `(dc_in, dx, dk_step) = vjp(B, (dc, dy))`, new carries `(dc_in, dk + dk_step)`,
//!   per-step output `dx`.
//! Its final carries are the cotangents of the initial carries and of the invariants; its
//! stacked outputs are those of the scanned inputs. No unrolling: the graph grows by a
//! constant, whatever the number of steps. Integer carries/inputs take part in the
//! recomputation but get no cotangent.

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

    // 1. Forward scan that also stacks each step's carry-in; it replaces the original.
    let mut aug = (**body).clone();
    let mut outs = aug.outputs().to_vec();
    outs.extend_from_slice(&aug.inputs()[..nc]);
    aug.set_outputs(outs);
    let fwd = ScanOp {
        body: Arc::new(aug),
        ..s.clone()
    };
    let new = e.ops(Op::Scan(fwd), xs)?;
    for (&old, &nw) in ys.iter().zip(&new) {
        e.g.replace_all_uses(old, nw);
    }
    let saved_c = &new[nc + ny..];

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
    for i in 0..nk {
        args.push(
            input(&mut tb, format!("k{i}"), bin[nc + nx + i].clone()).map_err(|x| err(e, x))?,
        );
    }
    let re = tb
        .inline(body, &args)
        .map_err(|x| fail(e, format!("recomputing the body: {x}")))?;
    let mut seeds: Vec<(ValueId, ValueId)> =
        fc.iter().zip(&dc).map(|(&i, &d)| (re[i], d)).collect();
    seeds.extend(fy.iter().zip(&dy).map(|(&i, &d)| (re[nc + i], d)));
    let mut wrt: Vec<ValueId> = fc.iter().map(|&i| args[i]).collect();
    wrt.extend(fx.iter().map(|&i| args[nc + i]));
    wrt.extend(fk.iter().map(|&i| args[nc + nx + i]));
    let grads = vjp(&mut tb, &seeds, &wrt)
        .map_err(|x| fail(e, format!("differentiating the body: {x}")))?;
    let (g_c, rest) = grads.split_at(fc.len());
    let (g_x, g_k) = rest.split_at(fx.len());
    let mut touts: Vec<ValueId> = g_c.to_vec();
    {
        let mut te = Emit::new(&mut tb);
        te.rule = e.rule.clone();
        for (&acc, &gk) in dk_acc.iter().zip(g_k) {
            touts.push(te.add(acc, gk)?);
        }
    }
    touts.extend_from_slice(g_x);
    tb.set_outputs(touts);

    // 4. The backward scan's operands.
    let mut ops = Vec::new();
    for &i in &fc {
        ops.push(match dys[i] {
            Some(d) => d,
            None => e.zeros(&bin[i])?,
        });
    }
    for &i in &fk {
        ops.push(e.zeros(&bin[nc + nx + i])?);
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
    ops.extend_from_slice(&xs[nc + nx..]);
    let bwd = ScanOp {
        body: Arc::new(tb),
        num_carry: fc.len() + fk.len(),
        num_xs: nc + nx + fy.len(),
        length: s.length,
        axis: s.axis,
        reverse: !s.reverse,
    };
    let r = e.ops(Op::Scan(bwd), &ops)?;

    // 5. Map the backward scan's results to the forward operands.
    let mut out = vec![None; xs.len()];
    for (j, &i) in fc.iter().enumerate() {
        out[i] = Some(r[j]);
    }
    for (j, &i) in fk.iter().enumerate() {
        out[nc + nx + i] = Some(r[fc.len() + j]);
    }
    let stacked = &r[fc.len() + fk.len()..];
    for (j, &i) in fx.iter().enumerate() {
        out[nc + i] = Some(stacked[j]);
    }
    for (o, w) in out.iter_mut().zip(wants) {
        if !w {
            *o = None;
        }
    }
    Ok(out)
}
