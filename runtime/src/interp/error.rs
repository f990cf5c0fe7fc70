//! The interpreter's error type.

use onde_ir::{OpId, TensorType, TypeError, ValueId};
use std::fmt;

/// Whether a fed tensor stands for an `Op::Input` or an `Op::Parameter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedKind {
    /// A graph input (`Op::Input`).
    Input,
    /// A learnable parameter (`Op::Parameter`).
    Parameter,
}

impl fmt::Display for FeedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FeedKind::Input => "input",
            FeedKind::Parameter => "parameter",
        })
    }
}

/// Why a graph could not be evaluated.
///
/// Ops are named by their mnemonic and their id in the graph that holds them (for an op
/// inside a scan body, the body graph; the enclosing scan is given by
/// [`InterpError::ScanBody`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InterpError {
    /// No tensor was fed for an input or parameter the requested values depend on.
    #[error("no tensor fed for {kind} `{name}`")]
    MissingFeed {
        /// The input or parameter name.
        name: String,
        /// Input or parameter.
        kind: FeedKind,
    },
    /// A fed tensor does not have the declared dtype and shape.
    #[error("{kind} `{name}` is declared as {expected} but the fed tensor is {got}")]
    FeedMismatch {
        /// The input or parameter name.
        name: String,
        /// Input or parameter.
        kind: FeedKind,
        /// The declared type.
        expected: Box<TensorType>,
        /// The type of the fed tensor.
        got: Box<TensorType>,
    },
    /// A value given positionally to a graph (a scan body's inputs) has the wrong type.
    #[error("graph input #{position} is declared as {expected} but was given {got}")]
    InputMismatch {
        /// Position in the graph's input list.
        position: usize,
        /// The declared type.
        expected: Box<TensorType>,
        /// The type of the given tensor.
        got: Box<TensorType>,
    },
    /// The graph has a cycle, so it has no evaluation order.
    #[error("the graph is not acyclic")]
    NotAcyclic,
    /// A requested value is not a value of the graph.
    #[error("{value:?} is not a value of this graph")]
    UnknownValue {
        /// The requested id.
        value: ValueId,
    },
    /// The graph's structure is broken (a value without producer, an input list entry
    /// that is not an input, a wrong number of positional inputs, …).
    #[error("malformed graph: {reason}")]
    MalformedGraph {
        /// What is wrong.
        reason: String,
    },
    /// An op is applied to operands its typing rule rejects.
    #[error("{name} ({op:?}): {source}")]
    TypeRule {
        /// The op.
        op: OpId,
        /// Its mnemonic.
        name: &'static str,
        /// The typing rule's complaint.
        #[source]
        source: TypeError,
    },
    /// An op node is inconsistent with its value nodes (operands that are not values,
    /// result types that disagree with the typing rule, …).
    #[error("{name} ({op:?}) is malformed: {reason}")]
    MalformedOp {
        /// The op.
        op: OpId,
        /// Its mnemonic.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A tensor is too large to be materialised (its element count overflows).
    #[error("{name} ({op:?}): a tensor of type {ty} is too large to materialise")]
    TooLarge {
        /// The op.
        op: OpId,
        /// Its mnemonic.
        name: &'static str,
        /// The offending type.
        ty: TensorType,
    },
    /// A `gather` index is negative or not below the extent of the gathered axis.
    #[error("gather ({op:?}): index {index} is out of range for axis {axis} of extent {extent}")]
    GatherIndexOutOfRange {
        /// The gather op.
        op: OpId,
        /// The offending index value.
        index: i64,
        /// The extent of the indexed axis.
        extent: usize,
        /// The indexed axis.
        axis: usize,
    },
    /// A max/min/argmax/argmin reduction over an axis of extent 0 (these have no
    /// identity element; PyTorch raises the same error).
    #[error("{name} ({op:?}): cannot reduce axis {axis} of extent 0 (empty {name} has no value)")]
    EmptyReduction {
        /// The op.
        op: OpId,
        /// Its mnemonic.
        name: &'static str,
        /// The empty axis.
        axis: usize,
    },
    /// Evaluating the body of a scan failed.
    #[error("scan ({op:?}){}: {source}", step_suffix(*step))]
    ScanBody {
        /// The scan op (in the enclosing graph).
        op: OpId,
        /// The step being run, or `None` if the body was rejected before any step.
        step: Option<usize>,
        /// What went wrong in the body.
        #[source]
        source: Box<InterpError>,
    },
    /// An inconsistency inside the interpreter itself (a bug, never a user error).
    #[error("internal interpreter error: {reason}")]
    Internal {
        /// What went wrong.
        reason: String,
    },
}

fn step_suffix(step: Option<usize>) -> String {
    match step {
        Some(s) => format!(" at step {s}"),
        None => String::new(),
    }
}

impl InterpError {
    /// An [`InterpError::Internal`].
    pub(crate) fn internal(reason: impl Into<String>) -> InterpError {
        InterpError::Internal {
            reason: reason.into(),
        }
    }

    /// An [`InterpError::MalformedGraph`].
    pub(crate) fn malformed_graph(reason: impl Into<String>) -> InterpError {
        InterpError::MalformedGraph {
            reason: reason.into(),
        }
    }
}

/// Shorthand for results of the interpreter.
pub(crate) type Result<T> = std::result::Result<T, InterpError>;

/// The op being evaluated, for error messages of kernels that can fail on user data.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Site {
    /// The op's id.
    pub(crate) id: OpId,
    /// The op's mnemonic.
    pub(crate) name: &'static str,
}
