//! Graph editing used by passes: redirecting uses, removing ops, inlining one graph
//! into another. Each keeps the graph's invariants (single producer, dense slots).

use crate::graph::{Graph, GraphError, Node, Slot};
use crate::ids::{OpId, ValueId};
use crate::op::Op;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::HashMap;

/// Error of [`Graph::inline`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InlineError {
    /// The number of values given for the inlined graph's inputs is wrong.
    #[error("inlined graph has {expected} inputs, {got} values given")]
    InputCount {
        /// Inputs of the inlined graph.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// The inlined graph has a cycle.
    #[error("inlined graph has a cycle")]
    Cycle,
    /// The inlined graph uses a value that no op or input produces.
    #[error("inlined graph uses value {0:?}, which has no producer")]
    Unproduced(ValueId),
    /// An op failed to type-check in its new place.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

impl Graph {
    /// Makes every use of `old` (operand slots and graph outputs) use `new` instead.
    /// `old` keeps its producer; DCE removes it once unused.
    pub fn replace_all_uses(&mut self, old: ValueId, new: ValueId) {
        if old == new {
            return;
        }
        let uses: Vec<(OpId, Slot, petgraph::stable_graph::EdgeIndex)> = self
            .g
            .edges_directed(old.0, Direction::Outgoing)
            .map(|e| (OpId(e.target()), *e.weight(), e.id()))
            .collect();
        for (o, slot, e) in uses {
            self.g.remove_edge(e);
            self.g.add_edge(new.0, o.0, slot);
        }
        for out in &mut self.outputs {
            if *out == old {
                *out = new;
            }
        }
    }

    /// Replaces operand `slot` of op `o` by `v`.
    pub fn set_operand(&mut self, o: OpId, slot: usize, v: ValueId) {
        let e = self
            .g
            .edges_directed(o.0, Direction::Incoming)
            .find(|e| e.weight().0 as usize == slot)
            .map(|e| e.id());
        if let Some(e) = e {
            self.g.remove_edge(e);
        }
        self.g.add_edge(v.0, o.0, Slot(slot as u32));
    }

    /// Whether a value is used by an op or is a graph output.
    pub fn is_used(&self, v: ValueId) -> bool {
        self.outputs.contains(&v)
            || self
                .g
                .edges_directed(v.0, Direction::Outgoing)
                .next()
                .is_some()
    }

    /// Removes op `o` and its result values. Any remaining use of a result (including
    /// as a graph output or input) is dropped with it, so callers remove only dead ops.
    pub fn remove_op(&mut self, o: OpId) {
        for r in self.results(o) {
            self.outputs.retain(|&v| v != r);
            self.inputs.retain(|&v| v != r);
            self.g.remove_node(r.0);
        }
        self.g.remove_node(o.0);
    }

    /// Copies `body`'s ops into this graph, with `args` standing for `body`'s inputs (in
    /// order), and returns the values standing for `body`'s outputs. Source locations
    /// are kept. Ops are type-checked in their new place.
    pub fn inline(&mut self, body: &Graph, args: &[ValueId]) -> Result<Vec<ValueId>, InlineError> {
        if args.len() != body.inputs().len() {
            return Err(InlineError::InputCount {
                expected: body.inputs().len(),
                got: args.len(),
            });
        }
        let mut map: HashMap<ValueId, ValueId> = body
            .inputs()
            .iter()
            .copied()
            .zip(args.iter().copied())
            .collect();
        let order = body.topo_ops().ok_or(InlineError::Cycle)?;
        for o in order {
            let node = body.op(o);
            if matches!(node.op, Op::Input { .. }) {
                continue;
            }
            let mut operands = Vec::new();
            for v in body.operands(o) {
                operands.push(*map.get(&v).ok_or(InlineError::Unproduced(v))?);
            }
            let (_, results) = self.add_op(node.op.clone(), &operands, node.loc.clone())?;
            for (old, new) in body.results(o).into_iter().zip(results) {
                map.insert(old, new);
            }
        }
        body.outputs()
            .iter()
            .map(|v| map.get(v).copied().ok_or(InlineError::Unproduced(*v)))
            .collect()
    }

    /// Replaces the payload of op `o` (e.g. a Scan with a cleaned body). The caller keeps
    /// the result types unchanged; the verifier checks it.
    pub fn set_op(&mut self, o: OpId, op: Op) {
        if let Some(Node::Op(n)) = self.g.node_weight_mut(o.0) {
            n.op = op;
        }
    }

    /// Whether node `v` is a live value of this graph.
    pub fn contains_value(&self, v: ValueId) -> bool {
        matches!(self.g.node_weight(v.0), Some(Node::Value(_)))
    }
}
