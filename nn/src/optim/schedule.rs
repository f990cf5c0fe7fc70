//! Learning-rate schedules: host-side functions of the epoch whose value is fed to the
//! graph's learning-rate input ([`crate::train::TrainStep::set_lr`]), so a schedule
//! never recompiles anything.

/// A learning rate as a function of the epoch (0-based), like PyTorch's
/// `lr_scheduler` stepped once per epoch.
pub trait LrSchedule: std::fmt::Debug {
    /// The rate for `epoch` given the optimiser's initial rate `base`.
    fn lr(&self, base: f64, epoch: usize) -> f64;
}

/// The initial rate, always.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConstantLr;

impl LrSchedule for ConstantLr {
    fn lr(&self, base: f64, _epoch: usize) -> f64 {
        base
    }
}

/// `StepLR(step_size, gamma)`: `base · gamma^⌊epoch / step_size⌋`.
#[derive(Debug, Clone, Copy)]
pub struct StepLr {
    /// Epochs between decays (at least 1).
    pub step_size: usize,
    /// Decay factor.
    pub gamma: f64,
}

impl LrSchedule for StepLr {
    fn lr(&self, base: f64, epoch: usize) -> f64 {
        base * self.gamma.powi((epoch / self.step_size.max(1)) as i32)
    }
}

/// `CosineAnnealingLR(T_max, eta_min)`:
/// `eta_min + (base - eta_min)(1 + cos(π·epoch/T_max))/2` (the closed form; it
/// continues periodically past `T_max`, as PyTorch's does).
#[derive(Debug, Clone, Copy)]
pub struct CosineAnnealingLr {
    /// Half period in epochs (at least 1).
    pub t_max: usize,
    /// Lowest rate.
    pub eta_min: f64,
}

impl LrSchedule for CosineAnnealingLr {
    fn lr(&self, base: f64, epoch: usize) -> f64 {
        let t = epoch as f64 / self.t_max.max(1) as f64;
        self.eta_min + (base - self.eta_min) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
    }
}
