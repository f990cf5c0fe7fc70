//! The reference interpreter: the driver.
//!
//! [`run_values`] plans the evaluation (the ops the wanted values depend on, in
//! [`Graph::topo_ops`] order), then evaluates op by op. Before each op, [`check`]
//! re-applies the typing rule to the actual operands and compares it with the types
//! the graph declares; [`dispatch`] then calls the op's kernel. Values are shared
//! through `Rc` so that scan invariants are not copied at every step.
//!
//! Kernels, one file per family: [`elementwise`], [`reduce`], [`movement`],
//! [`gather`], [`matmul`], [`conv`], [`random`], [`scan`]; shared helpers in [`index`]
//! (row-major index arithmetic) and [`elem`] (typed storage access and conversions).

mod check;
mod conv;
mod dispatch;
mod elem;
mod elementwise;
pub(crate) mod error;
mod gather;
mod index;
mod matmul;
mod movement;
pub mod random;
mod reduce;
pub use reduce::{check_lines, softmax_backward_lines, softmax_lines, LinesError};
mod scan;

use error::{FeedKind, InterpError, Result, Site};
use onde_ir::{Array, Graph, Op, OpId, TensorType, ValueId};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Evaluates the outputs of `graph` (in [`Graph::outputs`] order).
///
/// `feeds` supplies every `Op::Input` and `Op::Parameter` the outputs depend on, by
/// name; each must have exactly the declared dtype and shape. Ops are evaluated in
/// [`Graph::topo_ops`] order; ops the outputs do not depend on are skipped (so their
/// inputs need not be fed).
///
/// # Semantics
/// PyTorch's, with these conventions (the JIT must match them up to float rounding):
/// - **Floats**: elementwise math, reductions, matmul and conv are computed in f64 and
///   rounded once to the array's dtype (for f32 this is exact for `+ - * /` and
///   comparisons and within one rounding of native f32 otherwise). Sums and dot products
///   accumulate sequentially in row-major / increasing-index order.
/// - **i64** arithmetic (add, sub, mul, neg, abs, sum, prod, matmul) wraps on overflow.
/// - **NaN**: binary maximum/minimum and reduce max/min propagate NaN (`torch.maximum`,
///   `amax`); `relu(NaN)` is NaN and `sign(NaN)` is 0, as in PyTorch; argmax and argmin return the first
///   NaN if there is one. Comparisons with NaN are false except `ne`.
/// - **Cast**: float → i64 truncates toward zero, saturating at the i64 range, and NaN
///   becomes 0; anything → bool is `!= 0` (NaN is true); bool → number is 0 or 1;
///   i64 → float rounds to nearest.
/// - **Broadcasting** (NumPy rules) applies to binary ops, comparisons and `where`.
/// - **Empty reductions**: sum is 0, product is 1, max/min/argmax/argmin are an
///   [`InterpError::EmptyReduction`].
/// - **Gather** indices must lie in `0..extent` (negative indices are an error).
/// - **Pad** converts its fill value like a cast.
/// - **Random** follows the counter-based scheme of [`crate::random_bits`].
/// - **Scan** bodies get their inputs by position (carries, slices, invariants);
///   an `Op::Parameter` inside a body is fed by name from `feeds`.
///
/// # Errors
/// Missing or mistyped feeds, malformed graphs (cycles, ill-typed ops, broken
/// structure), and runtime failures (gather index out of range, empty max/min) are
/// reported as [`InterpError`]s; the interpreter does not panic.
pub fn run(
    graph: &Graph,
    feeds: &HashMap<String, Array>,
) -> std::result::Result<Vec<Array>, InterpError> {
    run_values(graph, feeds, graph.outputs())
}

/// Evaluates the values `wanted` of `graph` (in that order), like [`run`].
///
/// # Errors
/// As [`run`]; additionally [`InterpError::UnknownValue`] if a wanted id is not a value
/// of `graph`.
pub fn run_values(
    graph: &Graph,
    feeds: &HashMap<String, Array>,
    wanted: &[ValueId],
) -> std::result::Result<Vec<Array>, InterpError> {
    let plan = Plan::new(graph, wanted)?;
    let cx = Ctx { feeds, seeds: None };
    let values = plan.execute(graph, &cx)?;
    wanted
        .iter()
        .map(|v| {
            values
                .get(v)
                .map(|a| Array::clone(a))
                .ok_or_else(|| InterpError::internal(format!("{v:?} was not computed")))
        })
        .collect()
}

/// Evaluates `graph` with its inputs given by position ([`Graph::inputs`] order) and
/// returns its outputs. Used for scan bodies.
pub(crate) fn run_body(
    graph: &Graph,
    plan: &Plan,
    feeds: &HashMap<String, Array>,
    inputs: Vec<Rc<Array>>,
) -> Result<Vec<Rc<Array>>> {
    let declared = graph.inputs();
    if inputs.len() != declared.len() {
        return Err(InterpError::malformed_graph(format!(
            "the graph has {} inputs but {} values were given",
            declared.len(),
            inputs.len()
        )));
    }
    let mut seeds = HashMap::new();
    for (position, (&v, a)) in declared.iter().zip(inputs).enumerate() {
        let ty = graph.try_value_type(v).ok_or_else(|| {
            InterpError::malformed_graph(format!("input #{position} ({v:?}) is not a value"))
        })?;
        let producer = graph.producer(v).and_then(|o| graph.try_op(o));
        if !producer.is_some_and(|n| matches!(n.op, Op::Input { .. })) {
            return Err(InterpError::malformed_graph(format!(
                "input #{position} ({v:?}) is not the result of an input op"
            )));
        }
        let got = type_of(&a);
        if &got != ty {
            return Err(InterpError::InputMismatch {
                position,
                expected: Box::new(ty.clone()),
                got: Box::new(got),
            });
        }
        seeds.insert(v, a);
    }
    let cx = Ctx {
        feeds,
        seeds: Some(&seeds),
    };
    let values = plan.execute(graph, &cx)?;
    graph
        .outputs()
        .iter()
        .map(|v| {
            values
                .get(v)
                .cloned()
                .ok_or_else(|| InterpError::internal(format!("{v:?} was not computed")))
        })
        .collect()
}

/// The type of an array.
fn type_of(a: &Array) -> TensorType {
    TensorType::new(a.dtype(), a.shape().clone())
}

/// Where inputs and parameters come from.
pub(crate) struct Ctx<'a> {
    /// Tensors fed by name (parameters always; inputs unless `seeds` is set).
    pub(crate) feeds: &'a HashMap<String, Array>,
    /// Input values given by position (for scan bodies), keyed by input value.
    seeds: Option<&'a HashMap<ValueId, Rc<Array>>>,
}

impl Ctx<'_> {
    /// The fed tensor `name`, checked against its declared type.
    fn feed(&self, name: &str, kind: FeedKind, ty: &TensorType) -> Result<Rc<Array>> {
        let a = self
            .feeds
            .get(name)
            .ok_or_else(|| InterpError::MissingFeed {
                name: name.to_string(),
                kind,
            })?;
        let got = type_of(a);
        if &got != ty {
            return Err(InterpError::FeedMismatch {
                name: name.to_string(),
                kind,
                expected: Box::new(ty.clone()),
                got: Box::new(got),
            });
        }
        Ok(Rc::new(a.clone()))
    }

    /// The value of the input op `name` whose result is `results[0]`.
    pub(crate) fn input(
        &self,
        name: &str,
        ty: &TensorType,
        results: &[ValueId],
    ) -> Result<Rc<Array>> {
        match self.seeds {
            None => self.feed(name, FeedKind::Input, ty),
            Some(seeds) => results
                .first()
                .and_then(|v| seeds.get(v))
                .cloned()
                .ok_or_else(|| {
                    InterpError::malformed_graph(format!(
                        "input `{name}` is not in the graph's input list"
                    ))
                }),
        }
    }

    /// The value of the parameter `name`.
    pub(crate) fn parameter(&self, name: &str, ty: &TensorType) -> Result<Rc<Array>> {
        self.feed(name, FeedKind::Parameter, ty)
    }
}

/// The ops to evaluate, in order.
pub(crate) struct Plan {
    order: Vec<OpId>,
}

impl Plan {
    /// The ops `wanted` depends on, in [`Graph::topo_ops`] order.
    pub(crate) fn new(graph: &Graph, wanted: &[ValueId]) -> Result<Plan> {
        if let Some(&value) = wanted.iter().find(|&&v| graph.try_value_type(v).is_none()) {
            return Err(InterpError::UnknownValue { value });
        }
        let topo = graph.topo_ops().ok_or(InterpError::NotAcyclic)?;
        let mut needed = HashSet::new();
        let mut seen = HashSet::new();
        let mut stack = wanted.to_vec();
        while let Some(v) = stack.pop() {
            if !seen.insert(v) {
                continue;
            }
            if graph.try_value_type(v).is_none() {
                return Err(InterpError::malformed_graph(format!(
                    "{v:?} is used as a value but is not a value node"
                )));
            }
            let o = graph.producer(v).ok_or_else(|| {
                InterpError::malformed_graph(format!("{v:?} has no producing op"))
            })?;
            if needed.insert(o) {
                stack.extend(graph.operands(o));
            }
        }
        Ok(Plan {
            order: topo.into_iter().filter(|o| needed.contains(o)).collect(),
        })
    }

    /// Evaluates the planned ops; returns every computed value.
    fn execute(&self, graph: &Graph, cx: &Ctx<'_>) -> Result<HashMap<ValueId, Rc<Array>>> {
        let mut values: HashMap<ValueId, Rc<Array>> = HashMap::new();
        for &o in &self.order {
            let node = graph
                .try_op(o)
                .ok_or_else(|| InterpError::malformed_graph(format!("{o:?} is not an op")))?;
            let site = Site {
                id: o,
                name: node.op.name(),
            };
            let malformed = |reason: String| InterpError::MalformedOp {
                op: o,
                name: site.name,
                reason,
            };
            let args = graph
                .operands(o)
                .iter()
                .map(|v| {
                    values
                        .get(v)
                        .cloned()
                        .ok_or_else(|| malformed(format!("operand {v:?} is not a computed value")))
                })
                .collect::<Result<Vec<_>>>()?;
            let results = graph.results(o);
            let declared = results
                .iter()
                .map(|&v| {
                    graph
                        .try_value_type(v)
                        .cloned()
                        .ok_or_else(|| malformed(format!("result {v:?} is not a value")))
                })
                .collect::<Result<Vec<_>>>()?;
            let arg_types: Vec<TensorType> = args.iter().map(|a| type_of(a)).collect();
            check::check_op(site, &node.op, &arg_types, &declared)?;
            let outs = dispatch::eval_op(cx, site, &node.op, &args, &results)?;
            if outs.len() != results.len() {
                return Err(InterpError::internal(format!(
                    "{} produced {} results, expected {}",
                    site.name,
                    outs.len(),
                    results.len()
                )));
            }
            for ((&v, a), ty) in results.iter().zip(outs).zip(&declared) {
                if &type_of(&a) != ty {
                    return Err(InterpError::internal(format!(
                        "{} produced a {}, expected {ty}",
                        site.name,
                        type_of(&a)
                    )));
                }
                values.insert(v, a);
            }
        }
        Ok(values)
    }
}
