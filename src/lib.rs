//! onde: a deep-learning graph compiler for signals.
//!
//! This facade re-exports the user-facing API: build a graph with [`GraphBuilder`] and
//! [`Tensor`] handles (PyTorch's names and semantics), inspect it as IR ([`ir`]), and
//! run it on the reference interpreter ([`runtime`]).
//!
//! ```
//! use onde::{GraphBuilder, DType, Array};
//! let g = GraphBuilder::new();
//! let x = g.input("x", DType::F32, [3]);
//! let y = (&x * &x).sum_all();
//! let out = g.run(&[&y], &[("x", Array::f32([3], vec![1.0, 2.0, 3.0]).unwrap())]).unwrap();
//! assert_eq!(out[0].as_f32().unwrap(), &[14.0]);
//! ```
#![warn(missing_docs)]

pub use onde_apps as apps;
pub use onde_codegen as codegen;
pub use onde_data as data;
pub use onde_ir as ir;
pub use onde_nn as nn;
pub use onde_passes as passes;
pub use onde_runtime as runtime;
pub use onde_signal as signal;

pub use onde_nn::{
    cat, s, stack, where_, Arg, Array, ConvOpts, DType, Error, Evaluator, GraphBuilder, Idx,
    IntList, Module, PadMode, Padding, PoolOpts, RecurrentStream, Result, Shape, TemporalStat,
    Tensor, TrainOptions, TrainStep, STEP_SEED,
};
pub use onde_nn::{checkpoint, functional, init, loss, module, optim};

/// Runs the standard optimisation pipeline on a graph (`onde_passes::optimize`).
pub fn passes_optimize(g: &mut ir::Graph) -> std::result::Result<(), passes::PassError> {
    passes::optimize(g)
}
