//! Graph passes over `onde_ir::Graph`.
//!
//! This crate is the home of the pass machinery (a `Pass` trait, a pipeline with
//! verification after each pass), autodiff, simplification, fusion and memory
//! planning. It is deliberately empty until the autodiff issue lands: the crate
//! exists now so the workspace already has the layout of `DESIGN.md`.
#![warn(missing_docs)]
