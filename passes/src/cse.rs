//! Common-subexpression elimination: two ops with equal payloads (`Op: Eq + Hash`) and
//! the same operands compute the same values, so the later one's results are replaced
//! by the earlier one's. Ops with distinct identities are never merged: inputs and
//! parameters (their names differ anyway) and nothing else — `Random` is a pure
//! function of its seed operand, so equal seeds give equal numbers and merging is right.

use crate::pass::{Pass, PassError};
use onde_ir::{Graph, Op, OpId, ValueId};
use std::collections::HashMap;

/// The CSE pass.
#[derive(Debug, Default)]
pub struct Cse;

/// Merges duplicate ops in `g`; returns whether anything changed. Dead duplicates are
/// left for DCE.
pub fn cse(g: &mut Graph) -> bool {
    let Some(order) = g.topo_ops() else {
        return false;
    };
    let mut seen: HashMap<(Op, Vec<ValueId>), OpId> = HashMap::new();
    let mut changed = false;
    for o in order {
        let op = g.op(o).op.clone();
        if op.is_interface() {
            continue;
        }
        let key = (op, g.operands(o));
        match seen.get(&key) {
            Some(&first) => {
                for (old, new) in g.results(o).into_iter().zip(g.results(first)) {
                    if g.is_used(old) {
                        g.replace_all_uses(old, new);
                        changed = true;
                    }
                }
            }
            None => {
                seen.insert(key, o);
            }
        }
    }
    changed
}

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        Ok(cse(g))
    }
}
