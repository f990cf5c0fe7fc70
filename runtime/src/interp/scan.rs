//! `scan`: runs the body graph once per step, threading the carried states.
//!
//! Operands are `num_carry` initial carries, `num_xs` scanned inputs and then the
//! loop invariants. Step `t` feeds the body's inputs positionally: the current
//! carries, slice `t` of each scanned input along `axis` (that axis removed), the
//! invariants. The body's outputs are the new carries followed by the per-step
//! outputs, which are stacked along `axis` at index `t`. With `reverse`, `t` runs from
//! `length - 1` down to 0. With `length == 0` the carries pass through unchanged and
//! each stacked output has extent 0 along `axis`.

use super::error::{InterpError, Result, Site};
use super::movement::{index_axis, stack};
use super::{run_body, Ctx, Plan};
use onde_ir::{Array, ScanOp};
use std::rc::Rc;

/// Evaluates the scan `s` (at `site`) on its operands.
pub(crate) fn scan(
    cx: &Ctx<'_>,
    site: Site,
    s: &ScanOp,
    args: &[Rc<Array>],
) -> Result<Vec<Rc<Array>>> {
    let body = &*s.body;
    let in_body = |step: Option<usize>| {
        move |e: InterpError| InterpError::ScanBody {
            op: site.id,
            step,
            source: Box::new(e),
        }
    };
    let plan = Plan::new(body, body.outputs()).map_err(in_body(None))?;
    let nc = s.num_carry;
    let (carry0, rest) = args
        .split_at_checked(nc)
        .ok_or_else(|| InterpError::internal("scan: fewer operands than carries"))?;
    let (xs, invariants) = rest
        .split_at_checked(s.num_xs)
        .ok_or_else(|| InterpError::internal("scan: fewer operands than scanned inputs"))?;
    let outputs = body.outputs();
    let num_ys = outputs
        .len()
        .checked_sub(nc)
        .ok_or_else(|| InterpError::internal("scan: fewer body outputs than carries"))?;

    let mut carries = carry0.to_vec();
    let mut ys: Vec<Vec<Rc<Array>>> = vec![Vec::new(); num_ys];
    let mut step = |t: usize| -> Result<()> {
        let mut inputs = carries.clone();
        for x in xs {
            inputs.push(Rc::new(index_axis(x, s.axis, t)?));
        }
        inputs.extend(invariants.iter().cloned());
        let mut outs = run_body(body, &plan, cx.feeds, inputs).map_err(in_body(Some(t)))?;
        if outs.len() != outputs.len() {
            return Err(InterpError::internal("scan: wrong number of body outputs"));
        }
        for (y, v) in ys.iter_mut().zip(outs.split_off(nc)) {
            y.push(v);
        }
        carries = outs;
        Ok(())
    };
    if s.reverse {
        (0..s.length).rev().try_for_each(&mut step)?;
    } else {
        (0..s.length).try_for_each(&mut step)?;
    }
    if s.reverse {
        // Collected from the last step to the first: put them back in step order.
        ys.iter_mut().for_each(|y| y.reverse());
    }

    let mut results = carries;
    for (y, &v) in ys.iter().zip(&outputs[nc..]) {
        let elem = body
            .try_value_type(v)
            .ok_or_else(|| InterpError::internal("scan: body output is not a value"))?;
        let parts: Vec<&Array> = y.iter().map(|a| &**a).collect();
        results.push(Rc::new(stack(&parts, s.axis, elem)?));
    }
    Ok(results)
}
