//! onde's intermediate representation.
//!
//! A model is a [`Graph`]: a typed DAG whose nodes alternate between values (tensors
//! with a [`DType`] and a concrete [`Shape`]) and operations ([`Op`]), exactly as the
//! course defines a computation graph. Recurrence is expressed with [`Op::Scan`],
//! whose body is a nested graph, so sequence length never grows the graph.
//!
//! - [`catalogue`]: what kind of op each is (exhaustive methods the passes ask).
//! - [`typing`]: the typing rule of every op (one function, used by the builder and
//!   the verifier).
//! - [`mod@verify`]: the verifier; its module doc lists every invariant.
//! - [`text`]: the text form (print and parse back) and Graphviz output.
#![warn(missing_docs)]

pub mod array;
pub mod catalogue;
pub mod dtype;
pub mod edit;
pub mod graph;
pub mod ids;
pub mod loc;
pub mod op;
pub mod text;
pub mod typing;
pub mod verify;

pub use array::{Array, ArrayLenError, Data};
pub use catalogue::OpClass;
pub use dtype::{DType, Shape, TensorType};
pub use edit::InlineError;
pub use graph::{Graph, GraphError, Node, OpNode, Slot, ValueNode};
pub use ids::{OpId, ValueId};
pub use loc::SourceLoc;
pub use op::{
    ArgKind, BinaryOp, CmpOp, ConvParams, Distribution, Op, ReduceKind, ScanOp, SliceAxis, UnaryOp,
};
pub use text::{parse_graph, print_graph, to_dot, ParseError};
pub use typing::{broadcast_shapes, infer, TypeError};
pub use verify::{verify, Invariant, VerifyError};
