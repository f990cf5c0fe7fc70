//! Early stopping on a validation metric (Lightning's `EarlyStopping`): stop when the
//! metric has not improved by more than `min_delta` for `patience` epochs in a row;
//! remember the best epoch (whose checkpoint is the one to keep).

/// Whether a smaller or a larger metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A loss.
    Min,
    /// An accuracy.
    Max,
}

/// The early-stopping state.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    /// Min or max.
    pub mode: Mode,
    /// Epochs without improvement before stopping (at least 1).
    pub patience: usize,
    /// Smallest change that counts as an improvement (absolute).
    pub min_delta: f64,
    best: Option<(usize, f64)>,
    bad: usize,
    seen: usize,
}

impl EarlyStopping {
    /// Stops after `patience` epochs without improvement (`min_delta` 0).
    pub fn new(mode: Mode, patience: usize) -> EarlyStopping {
        EarlyStopping {
            mode,
            patience: patience.max(1),
            min_delta: 0.0,
            best: None,
            bad: 0,
            seen: 0,
        }
    }

    /// An improvement must exceed `d`.
    pub fn min_delta(mut self, d: f64) -> EarlyStopping {
        self.min_delta = d.abs();
        self
    }

    /// Records the metric of the next epoch; returns `true` when training should stop.
    /// A NaN metric never improves.
    pub fn step(&mut self, metric: f64) -> bool {
        let epoch = self.seen;
        self.seen += 1;
        let improved = match self.best {
            None => !metric.is_nan(),
            Some((_, b)) => match self.mode {
                Mode::Min => metric < b - self.min_delta,
                Mode::Max => metric > b + self.min_delta,
            },
        };
        if improved {
            self.best = Some((epoch, metric));
            self.bad = 0;
        } else {
            self.bad += 1;
        }
        self.bad >= self.patience
    }

    /// Whether the last epoch recorded was the best so far (save its checkpoint).
    pub fn improved(&self) -> bool {
        self.bad == 0 && self.best.is_some()
    }

    /// Its counters for a checkpoint: the best epoch and metric (NaN before the first
    /// epoch), the epochs without improvement, the epochs seen.
    pub fn state(&self) -> [f64; 4] {
        let (e, m) = self
            .best
            .map_or((f64::NAN, f64::NAN), |(e, m)| (e as f64, m));
        [e, m, self.bad as f64, self.seen as f64]
    }

    /// Restores counters saved by [`EarlyStopping::state`].
    pub fn load_state(&mut self, s: [f64; 4]) {
        self.best = (!s[0].is_nan()).then(|| (s[0].max(0.0) as usize, s[1]));
        self.bad = s[2].max(0.0) as usize;
        self.seen = s[3].max(0.0) as usize;
    }

    /// The best epoch (0-based, in call order) and its metric.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }
}
