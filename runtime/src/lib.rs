//! onde's runtime.
//!
//! For now this crate holds the **reference interpreter**: a deliberately simple,
//! obviously-correct evaluator of an [`onde_ir::Graph`] on host [`onde_ir::Array`]s.
//! It is the oracle every other backend (the JIT, optimisation passes) is tested
//! against, so it favours clarity over speed: every op is a few loops over row-major
//! arrays, with PyTorch's semantics.
//!
//! - [`run`] evaluates a graph's outputs, [`run_values`] any chosen values.
//! - Inputs and parameters are fed by name; a problem with the graph or the feeds is
//!   reported as an [`InterpError`], never as a panic.
//! - The counter-based random number scheme of [`onde_ir::Op::Random`] is specified in
//!   [`random`], whose functions ([`random_bits`], [`uniform_f32`], [`uniform_f64`],
//!   [`standard_normal`]) other backends can use to reproduce it bit for bit.
//!
//! The numerical conventions (float math in f64, wrapping integers, NaN handling,
//! casts) are listed in the documentation of [`run`].
#![warn(missing_docs)]

mod interp;

pub use interp::error::{FeedKind, InterpError};
pub use interp::random;
pub use interp::random::{random_bits, standard_normal, uniform_f32, uniform_f64};
pub use interp::{check_lines, run, run_values, softmax_backward_lines, softmax_lines, LinesError};
