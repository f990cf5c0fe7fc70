//! Dead-code elimination: removes ops none of whose results is used by another op or
//! is a graph output. Inputs and parameters are the graph's interface and are kept.
//! Scan bodies are cleaned too (their inputs are kept: they are the loop interface).

use crate::pass::{Pass, PassError};
use onde_ir::{Graph, Op, ScanOp};
use std::sync::Arc;

/// The dead-code elimination pass.
#[derive(Debug, Default)]
pub struct Dce;

/// Removes dead ops from `g`; returns whether anything was removed.
pub fn dce(g: &mut Graph) -> bool {
    let mut changed = false;
    let Some(order) = g.topo_ops() else {
        return false;
    };
    // Reverse topological order: users are visited before their operands, so one sweep
    // removes whole dead chains.
    for o in order.into_iter().rev() {
        let keep = g.op(o).op.is_interface() || g.results(o).iter().any(|&r| g.is_used(r));
        if !keep {
            g.remove_op(o);
            changed = true;
            continue;
        }
        if let Op::Scan(s) = &g.op(o).op {
            let mut body = (*s.body).clone();
            if dce(&mut body) {
                let new = ScanOp {
                    body: Arc::new(body),
                    ..s.clone()
                };
                g.set_op(o, Op::Scan(new));
                changed = true;
            }
        }
    }
    changed
}

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        Ok(dce(g))
    }
}
