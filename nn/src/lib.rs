//! onde's graph-building API.
//!
//! A [`GraphBuilder`] owns a graph under construction; [`Tensor`] handles are values of
//! it, with PyTorch's method names and semantics (broadcasting, type promotion,
//! negative axes, `keepdim`, slicing with steps). Every op records the caller's
//! `file:line:column`; a bad shape or dtype gives a typed [`Error`] naming the op, the
//! operand types and that location — never a panic (see [`error`] for how errors
//! surface through operator overloading).
//!
//! ```
//! use onde_nn::{GraphBuilder, DType, cat};
//! let g = GraphBuilder::new();
//! let x = g.input("x", DType::F32, [10, 5, 100]);
//! assert_eq!(cat(&[&x, &x], 1).size(), vec![10, 10, 100]);
//! assert_eq!(x.tile([2, 3, 4]).size(), vec![20, 15, 400]);
//! assert_eq!(x.mean([1], true).size(), vec![10, 1, 100]);
//! ```
//!
//! # Layout
//! - [`tensor`]: the `Tensor` methods, one file per family (elementwise, reductions,
//!   movement, linear algebra and convolution, pooling, norms, attention, …);
//! - [`functional`]: `torch.nn.functional` as free functions over those methods, and
//!   [`loss`];
//! - [`module`]: layers holding parameters, one file per family (linear, conv, pool,
//!   norm, dropout, attention, sinc, temporal pooling, containers), the [`Module`] and
//!   [`module::Forward`] interfaces and the model summary;
//! - [`optim`]: optimisers, parameter groups and schedules, built into the graph;
//! - [`train`]: the compiled training step and evaluators; [`checkpoint`] state dicts.
//!
//! Models (the benchmark workloads, the course's demo graphs) and training recipes are
//! in the `onde-apps` crate.
#![warn(missing_docs)]

pub mod args;
pub mod autograd;
pub mod builder;
pub mod checkpoint;
pub mod compile;
pub mod data;
pub mod error;
mod feed_check;
pub mod functional;
pub mod gradcheck;
pub mod init;
pub mod loss;
pub mod module;
pub mod optim;
pub mod scan;
mod step_seed;
pub mod stream;
pub mod tensor;
pub mod train;

pub use args::{Arg, Idx, IntList};
pub use builder::{GraphBuilder, STEP_SEED};
pub use compile::Compiled;
pub use error::{Error, Result};
pub use gradcheck::{gradcheck_graph, GradcheckOpts, GradcheckReport};
pub use module::Module;
pub use onde_ir::{Array, DType, Shape};
pub use stream::RecurrentStream;
pub use tensor::{cat, stack, where_, ConvOpts, PadMode, Padding, PoolOpts, TemporalStat, Tensor};
pub use train::{Evaluator, TrainOptions, TrainStep};
