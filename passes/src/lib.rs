//! Graph passes over [`onde_ir::Graph`].
//!
//! - [`pass`]: the [`Pass`] trait, [`Pipeline`] (passes in a visible order, verification
//!   after each pass in debug builds, a dump hook after any named pass) and
//!   [`Fixpoint`].
//! - [`dce`], [`cse`]: dead-code and common-subexpression elimination.
//! - [`autodiff`]: reverse-mode differentiation as a graph transformation; its output is
//!   ordinary IR, so it can be differentiated again.
#![warn(missing_docs)]

pub mod autodiff;
pub mod cse;
pub mod dce;
pub mod emit;
pub mod pass;
pub mod precision;

pub use autodiff::{grad, vjp, AdError};
pub use cse::Cse;
pub use dce::Dce;
pub use pass::{Fixpoint, Pass, PassError, Pipeline};
