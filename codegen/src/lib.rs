//! Code generation: a kernel IR over fused groups, lowered to Cranelift IR and
//! JIT-compiled, plus library GEMM/convolution kernels.
//!
//! Deliberately empty until the compile issue lands: the crate exists now so the
//! workspace already has the layout of `DESIGN.md`.
#![warn(missing_docs)]
