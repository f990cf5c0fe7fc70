//! Constant folding: an op whose operands are all constants is evaluated once, at
//! compile time, by the reference interpreter, and replaced by a constant. Skipped:
//! ops with no operands, random numbers and scans (kept visible), and results larger
//! than [`MAX_FOLDED_ELEMENTS`] (a broadcast scalar stays a cheap broadcast instead of
//! becoming a large constant buffer). An op the interpreter rejects at run time (e.g. a
//! gather out of range) is left in place, so the error surfaces when the graph runs.

use crate::pass::{Pass, PassError};
use onde_ir::{Graph, Op};
use std::collections::HashMap;

/// Largest result folded into a constant.
pub const MAX_FOLDED_ELEMENTS: usize = 4096;

/// The constant-folding pass.
#[derive(Debug, Default)]
pub struct ConstFold;

impl Pass for ConstFold {
    fn name(&self) -> &'static str {
        "constfold"
    }

    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        let Some(order) = g.topo_ops() else {
            return Ok(false);
        };
        let mut changed = false;
        for o in order {
            let node = g.op(o).clone();
            let xs = g.operands(o);
            let foldable = !xs.is_empty() && node.op.is_foldable();
            if !foldable {
                continue;
            }
            let rs = g.results(o);
            if rs
                .iter()
                .any(|&r| g.value_type(r).shape.numel() > MAX_FOLDED_ELEMENTS)
            {
                continue;
            }
            let mut args = Vec::with_capacity(xs.len());
            for &x in &xs {
                match g.producer(x).map(|p| &g.op(p).op) {
                    Some(Op::Constant(a)) => args.push(a.clone()),
                    _ => break,
                }
            }
            if args.len() != xs.len() {
                continue;
            }
            // A one-op graph over the constants.
            let mut one = Graph::new();
            let mut ins = Vec::new();
            for a in &args {
                let r = one
                    .add_op(Op::Constant(a.clone()), &[], None)
                    .map_err(|e| PassError::Failed {
                        pass: "constfold",
                        message: e.to_string(),
                    })?;
                ins.push(r.1[0]);
            }
            let Ok((_, outs)) = one.add_op(node.op.clone(), &ins, None) else {
                continue;
            };
            one.set_outputs(outs);
            let Ok(values) = onde_runtime::run(&one, &HashMap::new()) else {
                continue;
            };
            for (r, v) in rs.into_iter().zip(values) {
                let (_, c) = g
                    .add_op(Op::Constant(v), &[], node.loc.clone())
                    .map_err(|e| PassError::Failed {
                        pass: "constfold",
                        message: e.to_string(),
                    })?;
                g.replace_all_uses(r, c[0]);
                changed = true;
            }
        }
        Ok(changed)
    }
}
