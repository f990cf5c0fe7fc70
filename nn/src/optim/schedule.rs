//! Learning-rate schedules: host-side functions of the epoch whose value is fed to the
//! graph's learning-rate input ([`crate::train::TrainStep::set_lr`]), so a schedule
//! never recompiles anything.

/// A learning rate as a function of the epoch (0-based), like PyTorch's
/// `lr_scheduler` stepped once per epoch — or of the optimisation step, when the caller
/// asks per step (a warm-up over the first steps).
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

/// `ExponentialLR(gamma)`: `base · gamma^epoch`.
#[derive(Debug, Clone, Copy)]
pub struct ExponentialLr {
    /// Decay factor per epoch.
    pub gamma: f64,
}

impl LrSchedule for ExponentialLr {
    fn lr(&self, base: f64, epoch: usize) -> f64 {
        base * self.gamma.powi(epoch as i32)
    }
}

/// `LinearLR(start_factor, end_factor, total_iters)`: the factor goes linearly from
/// `start_factor` to `end_factor` over `total_iters` epochs (or steps), then stays.
#[derive(Debug, Clone, Copy)]
pub struct LinearLr {
    /// Factor at epoch 0.
    pub start_factor: f64,
    /// Factor from `total_iters` on.
    pub end_factor: f64,
    /// Length of the ramp.
    pub total_iters: usize,
}

impl LrSchedule for LinearLr {
    fn lr(&self, base: f64, epoch: usize) -> f64 {
        let t = (epoch.min(self.total_iters) as f64) / self.total_iters.max(1) as f64;
        base * (self.start_factor + (self.end_factor - self.start_factor) * t)
    }
}

/// A linear warm-up from `base · start_factor` to `base` over `warmup` epochs (or
/// steps), then `after` counted from the end of the warm-up (PyTorch's
/// `SequentialLR([LinearLR(start_factor, 1, warmup), after], milestones=[warmup])`).
#[derive(Debug)]
pub struct Warmup<S: LrSchedule> {
    /// Length of the warm-up.
    pub warmup: usize,
    /// Factor at epoch 0.
    pub start_factor: f64,
    /// The schedule after the warm-up.
    pub after: S,
}

impl<S: LrSchedule> LrSchedule for Warmup<S> {
    fn lr(&self, base: f64, epoch: usize) -> f64 {
        if epoch < self.warmup {
            LinearLr {
                start_factor: self.start_factor,
                end_factor: 1.0,
                total_iters: self.warmup,
            }
            .lr(base, epoch)
        } else {
            self.after.lr(base, epoch - self.warmup)
        }
    }
}

/// Whether a smaller or a larger monitored value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateauMode {
    /// A loss: smaller is better.
    Min,
    /// An accuracy: larger is better.
    Max,
}

/// `ReduceLROnPlateau`: multiplies the rate by `factor` when the monitored metric has
/// not improved (by more than a relative `threshold`) for more than `patience`
/// epochs, then waits `cooldown` epochs; never below `min_lr`. Stateful: call
/// [`ReduceLrOnPlateau::step`] with each epoch's metric and feed the rate it returns.
#[derive(Debug, Clone)]
pub struct ReduceLrOnPlateau {
    /// Min or max mode.
    pub mode: PlateauMode,
    /// Decay factor (< 1).
    pub factor: f64,
    /// Epochs without improvement tolerated.
    pub patience: usize,
    /// Relative improvement needed (PyTorch's `threshold_mode='rel'`).
    pub threshold: f64,
    /// Epochs to wait after a reduction.
    pub cooldown: usize,
    /// Lowest rate.
    pub min_lr: f64,
    lr: f64,
    best: Option<f64>,
    bad_epochs: usize,
    cooldown_left: usize,
}

impl ReduceLrOnPlateau {
    /// PyTorch's defaults (`factor` 0.1, `patience` 10, `threshold` 1e-4, no cooldown,
    /// `min_lr` 0) from the initial rate `lr`.
    pub fn new(lr: f64, mode: PlateauMode) -> ReduceLrOnPlateau {
        ReduceLrOnPlateau {
            mode,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            lr,
            best: None,
            bad_epochs: 0,
            cooldown_left: 0,
        }
    }

    /// The current rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Its counters for a checkpoint: the current rate, the best metric (NaN before
    /// the first epoch), the epochs without improvement and the cooldown left.
    pub fn state(&self) -> [f64; 4] {
        [
            self.lr,
            self.best.unwrap_or(f64::NAN),
            self.bad_epochs as f64,
            self.cooldown_left as f64,
        ]
    }

    /// Restores counters saved by [`ReduceLrOnPlateau::state`] (a resumed run then
    /// reduces the rate at the same epoch as an uninterrupted one).
    pub fn load_state(&mut self, s: [f64; 4]) {
        self.lr = s[0];
        self.best = (!s[1].is_nan()).then_some(s[1]);
        self.bad_epochs = s[2].max(0.0) as usize;
        self.cooldown_left = s[3].max(0.0) as usize;
    }

    fn better(&self, v: f64, best: f64) -> bool {
        match self.mode {
            PlateauMode::Min => v < best * (1.0 - self.threshold),
            PlateauMode::Max => v > best * (1.0 + self.threshold),
        }
    }

    /// Records this epoch's `metric`; returns the rate for the next epoch.
    pub fn step(&mut self, metric: f64) -> f64 {
        match self.best {
            Some(b) if !self.better(metric, b) => self.bad_epochs += 1,
            _ => {
                self.best = Some(metric);
                self.bad_epochs = 0;
            }
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > self.patience {
            let new = (self.lr * self.factor).max(self.min_lr);
            if self.lr - new > 1e-8 {
                self.lr = new;
            }
            self.cooldown_left = self.cooldown;
            self.bad_epochs = 0;
        }
        self.lr
    }
}
