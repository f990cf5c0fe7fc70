//! Optimisers whose update is part of the graph.
//!
//! An optimiser describes its state — per-parameter slots (`momentum_buffer`,
//! `exp_avg`, `exp_avg_sq`) and global scalars (`step`) — and builds the update as
//! graph ops from the parameters, their gradients, the state and the learning rate.
//! The learning rate and the state are graph inputs, the new parameters and state
//! graph outputs: a [`crate::train::TrainStep`] binds them as persistent buffers, so a
//! training step (forward, loss, backward, update) is one executable and changing the
//! rate (schedules) never recompiles.
//!
//! Scalar arithmetic (learning rate, bias corrections) is done in f64 and cast to the
//! parameter's dtype, as PyTorch does with Python floats; the elementwise update follows
//! PyTorch's single-tensor (`foreach=False`) formulas, so one step matches PyTorch to
//! float rounding.

mod adam;
mod group;
mod newton;
mod schedule;
mod sgd;

pub use adam::Adam;
pub use group::ParamGroup;
pub(crate) use group::{lr_name, resolve};
pub use newton::{solve_unpivoted, Newton};
pub use schedule::{
    ConstantLr, CosineAnnealingLr, ExponentialLr, LinearLr, LrSchedule, PlateauMode,
    ReduceLrOnPlateau, StepLr, Warmup,
};
pub use sgd::Sgd;

use crate::tensor::Tensor;
use onde_ir::Array;

/// The graph inputs an update reads: learning rate, global scalars, parameter slots.
#[derive(Debug, Clone)]
pub struct UpdateInputs<'a> {
    /// The learning rate (f64 scalar input).
    pub lr: &'a Tensor,
    /// Global state scalars, in [`Optimizer::globals`] order (old values).
    pub globals: &'a [Tensor],
    /// Global state after this step ([`Optimizer::update_globals`]).
    pub new_globals: &'a [Tensor],
    /// The Hessian of the loss with respect to this parameter (flattened, `[n, n]`),
    /// built only for optimisers whose [`Optimizer::needs_hessian`] is true.
    pub hessian: Option<&'a Tensor>,
}

/// An optimiser as graph construction.
pub trait Optimizer: std::fmt::Debug {
    /// Name used in state-dict keys (`adam`, `sgd`).
    fn name(&self) -> &'static str;

    /// The initial learning rate.
    fn lr(&self) -> f64;

    /// This optimiser with weight decay `wd` (a parameter group's own,
    /// [`ParamGroup::weight_decay`]); an error for optimisers without weight decay.
    fn with_weight_decay(&self, wd: f64) -> Result<Box<dyn Optimizer>, String> {
        let _ = wd;
        Err(format!("{} has no weight decay", self.name()))
    }

    /// Rejects inconsistent settings (as PyTorch's constructors do).
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// Global scalar state with initial values (e.g. `("step", 0.0)`), stored as f64.
    fn globals(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// Whether [`Optimizer::update`] needs the per-parameter Hessian (Newton).
    fn needs_hessian(&self) -> bool {
        false
    }

    /// Per-parameter state slot names; each starts as zeros shaped like its parameter.
    fn slots(&self) -> Vec<&'static str>;

    /// New values of the global scalars from the old ones. By default every global is
    /// a step counter (`step`), incremented.
    fn update_globals(&self, globals: &[Tensor]) -> Vec<Tensor> {
        globals.iter().map(|s| s + 1.0).collect()
    }

    /// The new parameter and slot values for one parameter `p` with gradient `grad` and
    /// slots `slots` (in [`Optimizer::slots`] order).
    fn update(
        &self,
        p: &Tensor,
        grad: &Tensor,
        slots: &[Tensor],
        inputs: &UpdateInputs,
    ) -> (Tensor, Vec<Tensor>);
}

/// A scalar f64 tensor cast to `like`'s dtype (for multiplying into a parameter).
pub(crate) fn as_dtype(s: &Tensor, like: &Tensor) -> Tensor {
    s.to_dtype(like.dtype())
}

/// Initial global state arrays (f64 scalars).
pub(crate) fn global_arrays(opt: &dyn Optimizer) -> Vec<(&'static str, Array)> {
    opt.globals()
        .into_iter()
        .map(|(n, v)| (n, Array::scalar(onde_ir::DType::F64, v)))
        .collect()
}
