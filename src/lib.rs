//! onde: a deep-learning graph compiler for signals.
#![warn(missing_docs)]
pub use onde_ir as ir;
