//! The graph: a petgraph `StableGraph` whose nodes alternate between values and ops.
//!
//! Edges run value → op (an operand, weighted by its operand slot) and op → value (a
//! result, weighted by its result slot). Every value has exactly one producer; graph
//! inputs, parameters and constants are producer ops with no operands. The graph also
//! keeps the ordered lists of its inputs (values produced by `Op::Input`) and outputs.
//!
//! Mutation goes through [`Graph::add_op`], which type-checks the op against its
//! operands (see [`crate::typing`]) so that a graph built through this API is always
//! well-typed; [`fn@crate::verify`] re-checks everything for graphs built any other way.

use crate::dtype::TensorType;
use crate::ids::{OpId, ValueId};
use crate::loc::SourceLoc;
use crate::op::Op;
use crate::typing::{infer, TypeError};
use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

/// A value node: the type of a tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueNode {
    /// dtype and shape.
    pub ty: TensorType,
}

/// An op node: the operation and where the user created it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpNode {
    /// The operation.
    pub op: Op,
    /// User source location, if known.
    pub loc: Option<SourceLoc>,
}

/// A node of the alternating graph.
#[derive(Clone, Debug)]
pub enum Node {
    /// A tensor.
    Value(ValueNode),
    /// An operation.
    Op(OpNode),
}

/// Edge weight: the operand slot (value → op) or result slot (op → value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot(pub u32);

/// A computation graph.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub(crate) g: StableGraph<Node, Slot>,
    pub(crate) inputs: Vec<ValueId>,
    pub(crate) outputs: Vec<ValueId>,
}

/// Error from [`Graph::add_op`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// An operand id is not a value of this graph.
    #[error("operand {0:?} is not a value of this graph")]
    UnknownValue(ValueId),
    /// The op's typing rule rejected the operands.
    #[error(transparent)]
    Type(#[from] TypeError),
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds `op` applied to `operands`, type-checks it and returns its op id and the ids
    /// of its results. An `Op::Input` is appended to the graph's input list.
    pub fn add_op(
        &mut self,
        op: Op,
        operands: &[ValueId],
        loc: Option<SourceLoc>,
    ) -> Result<(OpId, Vec<ValueId>), GraphError> {
        let mut tys = Vec::with_capacity(operands.len());
        for &v in operands {
            tys.push(
                self.try_value_type(v)
                    .ok_or(GraphError::UnknownValue(v))?
                    .clone(),
            );
        }
        let result_tys = infer(&op, &tys)?;
        Ok(self.add_op_unchecked(op, operands, result_tys, loc))
    }

    /// Adds an op with the given result types without type-checking. For parsers and
    /// passes that produce ill-typed graphs on purpose (verifier tests); everything
    /// else should call [`Graph::add_op`].
    pub fn add_op_unchecked(
        &mut self,
        op: Op,
        operands: &[ValueId],
        result_tys: Vec<TensorType>,
        loc: Option<SourceLoc>,
    ) -> (OpId, Vec<ValueId>) {
        let is_input = matches!(op, Op::Input { .. });
        let o = self.g.add_node(Node::Op(OpNode { op, loc }));
        for (i, &v) in operands.iter().enumerate() {
            self.g.add_edge(v.0, o, Slot(i as u32));
        }
        let mut results = Vec::with_capacity(result_tys.len());
        for (i, ty) in result_tys.into_iter().enumerate() {
            let v = self.g.add_node(Node::Value(ValueNode { ty }));
            self.g.add_edge(o, v, Slot(i as u32));
            results.push(ValueId(v));
        }
        if is_input {
            self.inputs.extend(results.iter().copied());
        }
        (OpId(o), results)
    }

    /// Adds a bare value node with no producer. Only for building deliberately broken
    /// graphs in verifier tests.
    pub fn add_orphan_value(&mut self, ty: TensorType) -> ValueId {
        ValueId(self.g.add_node(Node::Value(ValueNode { ty })))
    }

    /// Adds a raw edge. Only for building deliberately broken graphs in verifier tests.
    pub fn add_raw_edge(&mut self, from: usize, to: usize, slot: u32) {
        self.g
            .add_edge(NodeIndex::new(from), NodeIndex::new(to), Slot(slot));
    }

    /// Sets the graph outputs.
    pub fn set_outputs(&mut self, outputs: Vec<ValueId>) {
        self.outputs = outputs;
    }

    /// Graph inputs, in declaration order.
    pub fn inputs(&self) -> &[ValueId] {
        &self.inputs
    }

    /// Overrides the input order (used by parsers and the scan builder). The verifier
    /// checks that the list is exactly the set of `Op::Input` results.
    pub fn set_inputs(&mut self, inputs: Vec<ValueId>) {
        self.inputs = inputs;
    }

    /// Graph outputs, in order.
    pub fn outputs(&self) -> &[ValueId] {
        &self.outputs
    }

    /// The type of a value.
    ///
    /// # Panics
    /// If `v` is not a value of this graph; use [`Graph::try_value_type`] otherwise.
    pub fn value_type(&self, v: ValueId) -> &TensorType {
        self.try_value_type(v).expect("ValueId of another graph")
    }

    /// The type of a value, or `None` if `v` is not a value of this graph.
    pub fn try_value_type(&self, v: ValueId) -> Option<&TensorType> {
        match self.g.node_weight(v.0) {
            Some(Node::Value(n)) => Some(&n.ty),
            Some(Node::Op(_)) | None => None,
        }
    }

    /// The op node, or `None` if `o` is not an op of this graph.
    pub fn try_op(&self, o: OpId) -> Option<&OpNode> {
        match self.g.node_weight(o.0) {
            Some(Node::Op(n)) => Some(n),
            Some(Node::Value(_)) | None => None,
        }
    }

    /// The op node.
    ///
    /// # Panics
    /// If `o` is not an op of this graph.
    pub fn op(&self, o: OpId) -> &OpNode {
        self.try_op(o).expect("OpId of another graph")
    }

    /// The producer of a value.
    pub fn producer(&self, v: ValueId) -> Option<OpId> {
        self.g
            .edges_directed(v.0, Direction::Incoming)
            .next()
            .map(|e| OpId(e.source()))
    }

    /// The operands of an op, in slot order.
    pub fn operands(&self, o: OpId) -> Vec<ValueId> {
        let mut es: Vec<(u32, ValueId)> = self
            .g
            .edges_directed(o.0, Direction::Incoming)
            .map(|e| (e.weight().0, ValueId(e.source())))
            .collect();
        es.sort_by_key(|e| e.0);
        es.into_iter().map(|e| e.1).collect()
    }

    /// The results of an op, in slot order.
    pub fn results(&self, o: OpId) -> Vec<ValueId> {
        let mut es: Vec<(u32, ValueId)> = self
            .g
            .edges_directed(o.0, Direction::Outgoing)
            .map(|e| (e.weight().0, ValueId(e.target())))
            .collect();
        es.sort_by_key(|e| e.0);
        es.into_iter().map(|e| e.1).collect()
    }

    /// The ops that use a value (each once per operand slot that uses it).
    pub fn users(&self, v: ValueId) -> Vec<OpId> {
        self.g
            .edges_directed(v.0, Direction::Outgoing)
            .map(|e| OpId(e.target()))
            .collect()
    }

    /// All op ids, in insertion order.
    pub fn op_ids(&self) -> Vec<OpId> {
        self.g
            .node_indices()
            .filter(|&n| matches!(self.g[n], Node::Op(_)))
            .map(OpId)
            .collect()
    }

    /// All value ids, in insertion order.
    pub fn value_ids(&self) -> Vec<ValueId> {
        self.g
            .node_indices()
            .filter(|&n| matches!(self.g[n], Node::Value(_)))
            .map(ValueId)
            .collect()
    }

    /// Number of value nodes.
    pub fn num_values(&self) -> usize {
        self.value_ids().len()
    }

    /// Number of op nodes.
    pub fn num_ops(&self) -> usize {
        self.op_ids().len()
    }

    /// Parameters: `(name, value)` in insertion order.
    pub fn parameters(&self) -> Vec<(String, ValueId)> {
        let mut out = Vec::new();
        for o in self.op_ids() {
            if let Op::Parameter { name, .. } = &self.op(o).op {
                if let Some(&v) = self.results(o).first() {
                    out.push((name.clone(), v));
                }
            }
        }
        out
    }

    /// Total number of scalar parameters (sum of parameter element counts).
    pub fn num_parameter_elements(&self) -> usize {
        self.parameters()
            .iter()
            .map(|(_, v)| self.value_type(*v).shape.numel())
            .sum()
    }

    /// Input names, in input order (`None` for an input list entry that is not an
    /// `Op::Input` result, which the verifier rejects).
    pub fn input_name(&self, v: ValueId) -> Option<&str> {
        let o = self.producer(v)?;
        if let Op::Input { name, .. } = &self.op(o).op {
            Some(name)
        } else {
            None
        }
    }

    /// Ops in a topological order (operands before users), ties broken by insertion
    /// order (Kahn's algorithm with a min-heap), so a graph built in program order
    /// prints in program order. `None` if the graph has a cycle.
    pub fn topo_ops(&self) -> Option<Vec<OpId>> {
        use std::cmp::Reverse;
        use std::collections::{BinaryHeap, HashMap};
        let mut indeg: HashMap<NodeIndex, usize> = HashMap::new();
        let mut heap = BinaryHeap::new();
        for n in self.g.node_indices() {
            let d = self.g.edges_directed(n, Direction::Incoming).count();
            if d == 0 {
                heap.push(Reverse(n));
            }
            indeg.insert(n, d);
        }
        let mut order = Vec::new();
        let mut seen = 0;
        while let Some(Reverse(n)) = heap.pop() {
            seen += 1;
            if matches!(self.g[n], Node::Op(_)) {
                order.push(OpId(n));
            }
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let d = indeg.get_mut(&e.target())?;
                *d -= 1;
                if *d == 0 {
                    heap.push(Reverse(e.target()));
                }
            }
        }
        (seen == self.g.node_count()).then_some(order)
    }

    /// Raw access to the underlying petgraph graph (read-only).
    pub fn raw(&self) -> &StableGraph<Node, Slot> {
        &self.g
    }
}
