//! Graph passes over [`onde_ir::Graph`].
//!
//! - [`pass`]: the [`Pass`] trait, [`Pipeline`] (passes in a visible order, verification
//!   after each pass in debug builds, a dump hook after any named pass) and
//!   [`Fixpoint`].
//! - [`dce`], [`cse`]: dead-code and common-subexpression elimination.
//! - [`simplify`] (named algebraic rules), [`factor`] (sums sharing one pass over the
//!   data), [`conv_sums`] (sums through pointwise convolutions), [`scale_matmul`]
//!   (a product's uniform scale moved to its smaller operand), [`constfold`];
//!   [`optimize`] runs the
//!   standard pipeline.
//! - [`autodiff`]: reverse-mode differentiation as a graph transformation; its output is
//!   ordinary IR, so it can be differentiated again.
#![warn(missing_docs)]

pub mod autodiff;
pub mod constfold;
pub mod conv_sums;
pub mod cse;
pub mod dce;
pub mod emit;
pub mod factor;
pub mod hoist;
pub mod pass;
pub mod precision;
pub mod scale_matmul;
pub mod simplify;

pub use autodiff::{grad, vjp, AdError};
pub use constfold::ConstFold;
pub use conv_sums::ConvSums;
pub use cse::Cse;
pub use dce::Dce;
pub use factor::FactorSums;
pub use hoist::HoistScan;
pub use pass::{Fixpoint, Pass, PassError, Pipeline};
pub use scale_matmul::ScaleMatMul;
pub use simplify::Simplify;

/// The standard optimisation pipeline, in order: a fixpoint of simplification, sum
/// factoring, sums through pointwise convolutions, scales moved through matrix
/// products, constant folding, CSE and DCE, then hoisting of time-parallel work out of
/// scans. Verifies after each pass in debug builds. Every pass but [`FactorSums`],
/// [`ConvSums`] and [`ScaleMatMul`] keeps results bit for bit; those reassociate (see
/// [`factor`]), as a vectorised reduction does.
pub fn optimizer() -> Pipeline {
    pipeline(true)
}

/// [`optimizer`] without [`FactorSums`], [`ConvSums`] and [`ScaleMatMul`]: the
/// optimised graph computes exactly the bits of the input graph (the property tests
/// compare them bit for bit).
pub fn exact_optimizer() -> Pipeline {
    pipeline(false)
}

fn pipeline(factor: bool) -> Pipeline {
    let mut fix = Fixpoint::new("optimize", 16).then(Simplify::default());
    if factor {
        fix = fix
            .then(FactorSums::default())
            .then(ConvSums)
            .then(ScaleMatMul);
    }
    Pipeline::new()
        .then(fix.then(ConstFold).then(Cse).then(Dce))
        .then(HoistScan)
}

/// Runs [`optimizer`] on `g`.
pub fn optimize(g: &mut onde_ir::Graph) -> Result<(), PassError> {
    optimizer().run(g).map(|_| ())
}
