//! The verifier: checks that a graph is well formed and well typed.
//!
//! Graphs built through [`Graph::add_op`] are well typed by construction; the verifier
//! re-checks everything so that graphs from the parser, from passes, or assembled by
//! hand cannot reach the interpreter or the code generator broken. It checks, in order:
//!
//! 1. [`Invariant::Bipartite`]: every edge joins a value and an op (value → op for an
//!    operand, op → value for a result); no value → value or op → op edge.
//! 2. [`Invariant::SingleProducer`]: every value has exactly one producer op.
//! 3. [`Invariant::Slots`]: an op's operand slots are exactly `0..n` and its result
//!    slots exactly `0..m`, each used once.
//! 4. [`Invariant::Acyclic`]: the graph has no cycle.
//! 5. [`Invariant::Typing`]: each op's operand count, dtypes and shapes satisfy its
//!    typing rule ([`crate::typing::infer`]) and its result count and types are exactly
//!    what the rule gives.
//! 6. [`Invariant::Inputs`]: the input list is exactly the results of the `input` ops,
//!    each once, and input names are unique and non-empty.
//! 7. [`Invariant::Parameters`]: parameter names are unique and non-empty.
//! 8. [`Invariant::Outputs`]: every output is a value of the graph.
//! 9. [`Invariant::ScanBody`]: every Scan body passes all of the above, recursively
//!    (its interface against the scan's operands is part of the Scan typing rule, 5).

use crate::graph::{Graph, Node};
use crate::ids::{OpId, ValueId};
use crate::loc::SourceLoc;
use crate::op::Op;
use crate::typing::infer;
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use petgraph::Direction;
use std::collections::HashSet;
use std::fmt;

/// Which invariant a graph broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// Edges alternate between values and ops.
    Bipartite,
    /// Each value has exactly one producer.
    SingleProducer,
    /// Operand and result slots are dense and unique.
    Slots,
    /// No cycles.
    Acyclic,
    /// Op typing rules hold.
    Typing,
    /// The input list matches the input ops.
    Inputs,
    /// Parameter names are unique.
    Parameters,
    /// Outputs are values of the graph.
    Outputs,
    /// Scan bodies verify.
    ScanBody,
}

/// A broken invariant, with the op (and its source location) where it was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct VerifyError {
    /// The invariant broken.
    pub invariant: Invariant,
    /// What is wrong.
    pub message: String,
    /// Source location of the offending op, when known.
    pub loc: Option<SourceLoc>,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid graph ({:?}): {}", self.invariant, self.message)?;
        if let Some(l) = &self.loc {
            write!(f, " at {l}")?;
        }
        Ok(())
    }
}

fn fail<T>(invariant: Invariant, message: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError {
        invariant,
        message: message.into(),
        loc: None,
    })
}

/// Verifies `g`; returns the first broken invariant.
pub fn verify(g: &Graph) -> Result<(), VerifyError> {
    let raw = g.raw();
    // 1. Bipartite.
    for e in raw.edge_references() {
        let (s, t) = (&raw[e.source()], &raw[e.target()]);
        let ok = matches!(
            (s, t),
            (Node::Value(_), Node::Op(_)) | (Node::Op(_), Node::Value(_))
        );
        if !ok {
            return fail(
                Invariant::Bipartite,
                format!(
                    "edge from node {} to node {} does not join a value and an op",
                    e.source().index(),
                    e.target().index()
                ),
            );
        }
    }
    // 2. Single producer.
    for v in g.value_ids() {
        let n = raw.edges_directed(v.0, Direction::Incoming).count();
        if n != 1 {
            return fail(
                Invariant::SingleProducer,
                format!("value {v:?} has {n} producers, expected exactly 1"),
            );
        }
    }
    // 3. Slots.
    for o in g.op_ids() {
        for dir in [Direction::Incoming, Direction::Outgoing] {
            let mut slots: Vec<u32> = raw.edges_directed(o.0, dir).map(|e| e.weight().0).collect();
            slots.sort_unstable();
            if slots.iter().enumerate().any(|(i, &s)| s as usize != i) {
                let what = if dir == Direction::Incoming {
                    "operand"
                } else {
                    "result"
                };
                return Err(at(
                    g,
                    o,
                    Invariant::Slots,
                    format!("{what} slots {slots:?} are not 0..{}", slots.len()),
                ));
            }
        }
    }
    // 4. Acyclic.
    let Some(order) = g.topo_ops() else {
        return fail(Invariant::Acyclic, "the graph has a cycle");
    };
    // 5. Typing (and 9, Scan bodies).
    for &o in &order {
        let node = g.op(o);
        let operands = g.operands(o);
        let tys: Vec<_> = operands.iter().map(|&v| g.value_type(v).clone()).collect();
        let expected =
            infer(&node.op, &tys).map_err(|e| at(g, o, Invariant::Typing, e.to_string()))?;
        let results = g.results(o);
        let got: Vec<_> = results.iter().map(|&v| g.value_type(v).clone()).collect();
        if got != expected {
            let show = |ts: &[crate::dtype::TensorType]| {
                ts.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(at(
                g,
                o,
                Invariant::Typing,
                format!(
                    "{}: results are ({}), typing rule gives ({})",
                    node.op.name(),
                    show(&got),
                    show(&expected)
                ),
            ));
        }
        if let Op::Scan(s) = &node.op {
            verify(&s.body)
                .map_err(|e| at(g, o, Invariant::ScanBody, format!("in scan body: {e}")))?;
        }
    }
    // 6. Inputs.
    let input_ops: Vec<ValueId> = g
        .op_ids()
        .into_iter()
        .filter(|&o| matches!(g.op(o).op, Op::Input { .. }))
        .flat_map(|o| g.results(o))
        .collect();
    let listed: HashSet<ValueId> = g.inputs().iter().copied().collect();
    if listed.len() != g.inputs().len()
        || listed != input_ops.iter().copied().collect::<HashSet<_>>()
    {
        return fail(
            Invariant::Inputs,
            format!(
                "input list {:?} is not exactly the results of the input ops {:?}",
                g.inputs(),
                input_ops
            ),
        );
    }
    let mut names = HashSet::new();
    for &v in g.inputs() {
        let name = g.input_name(v).unwrap_or_default();
        if name.is_empty() || !names.insert(name) {
            return fail(
                Invariant::Inputs,
                format!("input name {name:?} is empty or used twice"),
            );
        }
    }
    // 7. Parameters.
    let mut pnames = HashSet::new();
    for (name, _) in g.parameters() {
        if name.is_empty() || !pnames.insert(name.clone()) {
            return fail(
                Invariant::Parameters,
                format!("parameter name {name:?} is empty or used twice"),
            );
        }
    }
    // 8. Outputs.
    for &v in g.outputs() {
        if g.try_value_type(v).is_none() {
            return fail(
                Invariant::Outputs,
                format!("output {v:?} is not a value of the graph"),
            );
        }
    }
    Ok(())
}

fn at(g: &Graph, o: OpId, invariant: Invariant, message: String) -> VerifyError {
    VerifyError {
        invariant,
        message,
        loc: g.op(o).loc.clone(),
    }
}
