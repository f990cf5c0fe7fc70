//! Graph passes over [`onde_ir::Graph`].
//!
//! - [`pass`]: the [`Pass`] trait, [`Pipeline`] (passes in a visible order, verification
//!   after each pass in debug builds, a dump hook after any named pass) and
//!   [`Fixpoint`].
//! - [`dce`], [`cse`]: dead-code and common-subexpression elimination.
//! - [`simplify`] (named algebraic rules), [`constfold`]; [`optimize`] runs the
//!   standard pipeline.
//! - [`autodiff`]: reverse-mode differentiation as a graph transformation; its output is
//!   ordinary IR, so it can be differentiated again.
#![warn(missing_docs)]

pub mod autodiff;
pub mod constfold;
pub mod cse;
pub mod dce;
pub mod emit;
pub mod hoist;
pub mod pass;
pub mod precision;
pub mod simplify;

pub use autodiff::{grad, vjp, AdError};
pub use constfold::ConstFold;
pub use cse::Cse;
pub use dce::Dce;
pub use hoist::HoistScan;
pub use pass::{Fixpoint, Pass, PassError, Pipeline};
pub use simplify::Simplify;

/// The standard optimisation pipeline, in order: a fixpoint of simplification, constant
/// folding, CSE and DCE, then hoisting of time-parallel work out of scans. Verifies
/// after each pass in debug builds.
pub fn optimizer() -> Pipeline {
    Pipeline::new()
        .then(
            Fixpoint::new("optimize", 16)
                .then(Simplify::default())
                .then(ConstFold)
                .then(Cse)
                .then(Dce),
        )
        .then(HoistScan)
}

/// Runs [`optimizer`] on `g`.
pub fn optimize(g: &mut onde_ir::Graph) -> Result<(), PassError> {
    optimizer().run(g).map(|_| ())
}
