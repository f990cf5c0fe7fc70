//! Code generation: fused kernels JIT-compiled with Cranelift, library GEMM and native
//! kernels for the rest, and the [`Executable`] that runs a compiled graph.
//!
//! Pipeline (see each module's doc):
//! 1. [`plan`]: the graph is cut into steps. Chains of elementwise ops (with broadcast,
//!    permuted and sliced operands read through strides) and the reduction consuming
//!    them become one [`kernel::Kernel`] each; matmul and convolution go to
//!    [`native`] library kernels; the remaining ops (gather, concat, random, scan…)
//!    run as host steps.
//! 2. [`kernel::clif`]: each kernel is lowered to a Cranelift function — loop nests
//!    over the kernel's (coalesced) iteration space, f32x4/f64x2 SIMD on the innermost
//!    axis with a scalar tail, transcendental functions from [`math`]. On AVX2 and
//!    AVX-512 CPUs, f32 kernels with transcendental functions run instead on the tile
//!    engine [`kernel::engine`], 8 or 16 lanes wide (Cranelift emits 128-bit vectors
//!    only), with lane results identical to the Cranelift code's. [`IsaLevel`] caps
//!    what a compile may use ([`CompileOptions::isa`]).
//! 3. [`exec`]: buffers are allocated once; `run` checks the inputs and executes the
//!    steps in order (a Linear layer's bias + activation kernel is applied by the
//!    prepacked GEMM to its output tiles in registers); `set_profiling` times each
//!    step.
#![warn(missing_docs)]
#![allow(unsafe_code)] // JIT calls only; each unsafe block carries a SAFETY comment.

pub mod exec;
pub mod isa;
pub mod jit;
pub mod kernel;
pub mod math;
pub mod native;
pub mod plan;
mod pool;

pub use exec::{CompileError, CompileOptions, Executable, RunError};
pub use isa::IsaLevel;
