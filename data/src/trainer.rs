//! `fit`: the training loop of a classifier on a compiled [`TrainStep`], epoch by
//! epoch — a training phase over a [`DataLoader`] (learning rate from a schedule per
//! epoch or per update, running metrics, optional gradient accumulation), then an optional validation phase
//! through an eval-mode [`Evaluator`] (running metrics, ReduceLROnPlateau and early
//! stopping on a chosen validation metric), each epoch's metrics written to a
//! [`MetricLog`], drawn as pictures and reported to a callback.
//!
//! The graph's inputs are fed from the batch's fields of the same names (`inputs`) and
//! the labels (`target`); the training step's extra output `logits_output` and the
//! evaluator's outputs `[logits, loss]` give the metrics.
//!
//! Gradient accumulation (`accumulate = k`): the gradients of `k` consecutive batches
//! are summed ([`TrainStep::accumulate`]) and applied by one optimiser update on the
//! `k`-th ([`TrainStep::step`]), and at the epoch's last batch. The sum is PyTorch's
//! `backward()` called `k` times before `optimizer.step()`; for the mean of a
//! Lightning `accumulate_grad_batches`, divide the loss by `k` when building it. Needs
//! a step compiled with `TrainOptions { accumulate: true, .. }`.
//!
//! Checkpoints: with `checkpoint_dir`, `last.safetensors` after every epoch and
//! `best.safetensors` when the monitored validation metric improves (the step's whole
//! state — parameters, buffers, optimiser state, learning rates — the epoch, and the
//! counters of ReduceLROnPlateau, early stopping and the best metric).
//! [`Trainer::resume`] loads one and continues from the next epoch: the loader's order
//! and the schedule are functions of the epoch, so a resumed run reaches the same
//! weights, reduces the rate and stops at the same epochs as an uninterrupted one
//! (tested).
//!
//! Pictures: with `plots_dir`, `curves.png` and `curves.svg` (loss and accuracy per
//! epoch, train against validation) and `confusion.png` and `confusion.svg` (the last
//! epoch's validation confusion matrix, or the training one without validation),
//! rewritten after every
//! epoch ([`crate::plot`]); after a resume the curves start at the resumed epoch (the
//! metric log has them all).
//!
//! Progress: a bar per phase on stderr (batches, samples/s, ETA, running loss and
//! accuracy) through `indicatif`, which draws nothing when stderr is not a terminal;
//! `quiet` turns it off everywhere (logs, CI).

use crate::early_stopping::{EarlyStopping, Mode};
use crate::log::MetricLog;
use crate::metrics::ClassificationMetrics;
use crate::{invalid, DataError, DataLoader, Result};
use onde_ir::Array;
use onde_nn::optim::{LrSchedule, ReduceLrOnPlateau};
use onde_nn::{Evaluator, TrainStep};

/// What `fit` does each epoch.
#[derive(Debug)]
pub struct Trainer {
    /// Epochs to run (fewer if early stopping triggers).
    pub epochs: usize,
    /// Number of classes (for the metrics).
    pub classes: usize,
    /// Batch fields fed to the graph inputs of the same names.
    pub inputs: Vec<String>,
    /// Graph input of the labels.
    pub target: String,
    /// Extra output of the training step holding the logits `[B, classes]`.
    pub logits_output: usize,
    /// Top-k accuracies to report besides top-1.
    pub topk: Vec<usize>,
    /// Learning rate from the step's initial rate, as a function of the epoch or of
    /// the optimiser update (see `interval`).
    pub schedule: Option<Box<dyn LrSchedule>>,
    /// Whether `schedule` advances once per epoch (PyTorch's usual
    /// `scheduler.step()` after each epoch) or once per optimiser update (a warm-up
    /// over the first updates; Lightning's `interval="step"`). Its argument is then
    /// the update's index from the start of training (accumulated batches count as
    /// one update), so a resumed run continues the same curve.
    pub interval: Interval,
    /// Reduce the rate when `monitor` stalls (after the schedule, if any).
    pub plateau: Option<ReduceLrOnPlateau>,
    /// Stop when `monitor` stalls.
    pub early_stopping: Option<EarlyStopping>,
    /// Validation metric watched by `plateau` and `early_stopping` (`loss`,
    /// `accuracy`, `balanced_accuracy`, `macro_f1`, `top{k}`).
    pub monitor: String,
    /// Whether a smaller (`Min`, a loss) or larger monitored value is better, for the
    /// best checkpoint when there is no early stopping (which has its own mode).
    pub monitor_mode: Mode,
    /// Per-epoch CSV and JSON-lines log.
    pub log: Option<MetricLog>,
    /// Where `last.safetensors` and `best.safetensors` go.
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// First epoch to run (0-based; set by [`Trainer::resume`]).
    pub start_epoch: usize,
    /// No progress bars.
    pub quiet: bool,
    /// Batches whose gradients are summed per optimiser update (1: none).
    pub accumulate: usize,
    /// Where `curves.png`/`.svg` and `confusion.png`/`.svg` go.
    pub plots_dir: Option<std::path::PathBuf>,
    /// Class names for the confusion matrix (default: the class numbers).
    pub class_names: Vec<String>,
    best_metric: Option<f64>,
}

/// When a learning-rate schedule advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interval {
    /// Once per epoch.
    #[default]
    Epoch,
    /// Once per optimiser update.
    Step,
}

/// Key of the epoch count in a checkpoint.
const EPOCH_KEY: &str = "trainer.epoch";
/// Keys of the trainer's counters in a checkpoint (f64 vectors; NaN for "none").
const PLATEAU_KEY: &str = "trainer.plateau";
const STOPPING_KEY: &str = "trainer.early_stopping";
const BEST_KEY: &str = "trainer.best_metric";

/// One epoch's results.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochSummary {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Learning rate of the epoch's first update (every update's, with
    /// [`Interval::Epoch`]).
    pub lr: f64,
    /// Training metrics (`loss`, `accuracy`, …).
    pub train: Vec<(String, f64)>,
    /// Validation metrics (empty without a validation loader).
    pub valid: Vec<(String, f64)>,
    /// Whether this epoch's monitored metric was the best so far.
    pub best: bool,
}

impl EpochSummary {
    /// A validation metric by name.
    pub fn valid_metric(&self, name: &str) -> Option<f64> {
        self.valid.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// A training metric by name.
    pub fn train_metric(&self, name: &str) -> Option<f64> {
        self.train.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

fn nn_error(e: onde_nn::Error) -> DataError {
    DataError::Invalid {
        what: "fit".into(),
        reason: e.to_string(),
    }
}

impl Trainer {
    /// `epochs` epochs of a `classes`-way classifier fed from field `x` and labels into
    /// `y`, logits as the step's extra output 1, validation loss monitored; no schedule,
    /// plateau, early stopping or log.
    pub fn new(epochs: usize, classes: usize) -> Trainer {
        Trainer {
            epochs,
            classes,
            inputs: vec!["x".into()],
            target: "y".into(),
            logits_output: 1,
            topk: Vec::new(),
            schedule: None,
            interval: Interval::Epoch,
            plateau: None,
            early_stopping: None,
            monitor: "loss".into(),
            monitor_mode: Mode::Min,
            log: None,
            checkpoint_dir: None,
            start_epoch: 0,
            quiet: false,
            accumulate: 1,
            plots_dir: None,
            class_names: Vec::new(),
            best_metric: None,
        }
    }

    /// A progress bar for `n` batches of a phase (hidden when quiet).
    fn bar(&self, n: usize, prefix: String) -> indicatif::ProgressBar {
        if self.quiet {
            return indicatif::ProgressBar::hidden();
        }
        let pb = indicatif::ProgressBar::new(n as u64);
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:>14} [{bar:28}] {pos}/{len} batches, ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        pb.set_style(style);
        pb.set_prefix(prefix);
        pb
    }

    fn save(&self, step: &TrainStep, name: &str, epochs_done: usize) -> Result<()> {
        let Some(dir) = &self.checkpoint_dir else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).map_err(|e| DataError::File {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let mut dict = step.state_dict();
        let f64s = |v: Vec<f64>| {
            Array::f64([v.len()], v).map_err(|e| invalid("checkpoint", e.to_string()))
        };
        let epoch = Array::i64([], vec![epochs_done as i64])
            .map_err(|e| invalid("checkpoint", e.to_string()))?;
        dict.push((EPOCH_KEY.to_string(), epoch));
        if let Some(p) = &self.plateau {
            dict.push((PLATEAU_KEY.into(), f64s(p.state().to_vec())?));
        }
        if let Some(es) = &self.early_stopping {
            dict.push((STOPPING_KEY.into(), f64s(es.state().to_vec())?));
        }
        dict.push((
            BEST_KEY.into(),
            f64s(vec![self.best_metric.unwrap_or(f64::NAN)])?,
        ));
        onde_nn::checkpoint::save(dir.join(name), &dict).map_err(nn_error)
    }

    /// The pictures after an epoch: the curves of `done` and `last`, and `last`'s
    /// confusion matrix (validation, else training), each as PNG and SVG.
    fn draw(
        &self,
        dir: &std::path::Path,
        done: &[EpochSummary],
        last: &EpochSummary,
        confusion: &[u64],
    ) -> Result<()> {
        let history: Vec<EpochSummary> = done.iter().chain([last]).cloned().collect();
        let names: Vec<String> = (0..self.classes)
            .map(|c| {
                self.class_names
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| c.to_string())
            })
            .collect();
        for ext in ["png", "svg"] {
            crate::plot::training_curves(&history, dir.join(format!("curves.{ext}")))?;
            crate::plot::confusion_matrix(confusion, &names, dir.join(format!("confusion.{ext}")))?;
        }
        Ok(())
    }

    /// Removes the trainer's counters from a loaded checkpoint and applies them.
    fn take_counters(&mut self, dict: &mut Vec<(String, Array)>) {
        let mut take = |key: &str| -> Option<Vec<f64>> {
            let at = dict.iter().position(|(n, _)| n == key)?;
            Some(dict.remove(at).1.to_f64_vec())
        };
        let four = |v: Vec<f64>| -> Option<[f64; 4]> { v.try_into().ok() };
        let plateau = take(PLATEAU_KEY).and_then(four);
        let stopping = take(STOPPING_KEY).and_then(four);
        let best = take(BEST_KEY);
        if let (Some(p), Some(s)) = (&mut self.plateau, plateau) {
            p.load_state(s);
        }
        if let (Some(es), Some(s)) = (&mut self.early_stopping, stopping) {
            es.load_state(s);
        }
        if let Some(b) = best.and_then(|v| v.first().copied()) {
            self.best_metric = (!b.is_nan()).then_some(b);
        }
    }

    /// Loads checkpoint `path` (written by `fit`) into `step` and continues from the
    /// epoch after the one it saved; returns that epoch (0-based).
    ///
    /// # Errors
    /// A checkpoint that cannot be read or does not fit the step, named.
    pub fn resume(
        &mut self,
        step: &mut TrainStep,
        path: impl AsRef<std::path::Path>,
    ) -> Result<usize> {
        let path = path.as_ref();
        let mut dict = onde_nn::checkpoint::load(path).map_err(nn_error)?;
        let at = dict
            .iter()
            .position(|(n, _)| n == EPOCH_KEY)
            .ok_or_else(|| DataError::File {
                path: path.display().to_string(),
                message: format!("no `{EPOCH_KEY}`: not a checkpoint written by Trainer::fit"),
            })?;
        let (_, e) = dict.remove(at);
        let done = e
            .as_i64()
            .and_then(|v| v.first().copied())
            .unwrap_or(0)
            .max(0) as usize;
        self.take_counters(&mut dict);
        step.load_state_dict(&dict, true).map_err(nn_error)?;
        self.start_epoch = done;
        Ok(done)
    }

    fn feeds<'a>(&'a self, batch: &'a crate::Batch) -> Result<Vec<(&'a str, &'a Array)>> {
        let mut feeds = Vec::with_capacity(self.inputs.len() + 1);
        for name in &self.inputs {
            let Some((n, a)) = batch.fields.iter().find(|(n, _)| n == name) else {
                let have: Vec<&str> = batch.fields.iter().map(|(n, _)| n.as_str()).collect();
                return Err(invalid(
                    "fit",
                    format!("the batch has no field `{name}` to feed (fields: {have:?})"),
                ));
            };
            feeds.push((n.as_str(), a));
        }
        feeds.push((self.target.as_str(), &batch.labels));
        Ok(feeds)
    }

    /// Trains `step` on `train` (and evaluates `eval`, whose outputs are `[logits,
    /// loss]`, on `valid` after each epoch); calls `on_epoch` after each epoch and
    /// returns every epoch's summary.
    ///
    /// # Errors
    /// A loader's error, a feed the graphs refuse (shapes, a label out of range), a
    /// missing field, or a monitored metric that does not exist.
    pub fn fit(
        &mut self,
        step: &mut TrainStep,
        train: &DataLoader,
        mut valid: Option<(&mut Evaluator, &DataLoader)>,
        mut on_epoch: impl FnMut(&EpochSummary),
    ) -> Result<Vec<EpochSummary>> {
        if self.accumulate == 0 {
            return Err(invalid(
                "fit",
                "accumulate must be at least 1 (batches per optimiser update)",
            ));
        }
        let base = step.base_lr();
        let mut out = Vec::with_capacity(self.epochs);
        let mut tm = ClassificationMetrics::new(self.classes, &self.topk);
        let mut vm = ClassificationMetrics::new(self.classes, &self.topk);
        for epoch in self.start_epoch..self.epochs {
            let batches = train.epoch(epoch as u64)?;
            let n = batches.num_batches();
            // Optimiser updates per epoch (the same every epoch), for per-update
            // schedules.
            let updates = n.div_ceil(self.accumulate);
            // The rate of update `u` of this epoch.
            let rate = |u: usize| {
                let mut lr = base;
                if let Some(s) = &self.schedule {
                    lr = match self.interval {
                        Interval::Epoch => s.lr(base, epoch),
                        Interval::Step => s.lr(base, epoch * updates + u),
                    };
                }
                if let Some(p) = &self.plateau {
                    lr = lr.min(p.lr());
                }
                lr
            };
            let lr = rate(0);
            step.set_lr(lr);
            tm.reset();
            let pb = self.bar(n, format!("epoch {} train", epoch + 1));
            let t0 = std::time::Instant::now();
            for (i, batch) in batches.enumerate() {
                let batch = batch?;
                let feeds = self.feeds(&batch)?;
                // The k-th batch of a group, and the epoch's last, apply the update.
                let update = (i + 1) % self.accumulate == 0 || i + 1 == n;
                if update && self.interval == Interval::Step {
                    step.set_lr(rate(i / self.accumulate));
                }
                let loss = if update {
                    step.step(&feeds)
                } else {
                    step.accumulate(&feeds)
                }
                .map_err(nn_error)?;
                let logits = step.output(self.logits_output).map_err(nn_error)?;
                let labels = batch.labels.as_i64().unwrap_or(&[]);
                tm.update(&logits, labels, Some(loss))?;
                pb.inc(1);
                pb.set_message(format!(
                    "{:.0} samples/s, loss {:.4}, acc {:.3}",
                    tm.samples() as f64 / t0.elapsed().as_secs_f64().max(1e-9),
                    tm.loss(),
                    tm.accuracy()
                ));
            }
            pb.finish();
            let mut summary = EpochSummary {
                epoch: epoch + 1,
                lr,
                train: tm.summary(),
                valid: Vec::new(),
                best: false,
            };
            if let Some((eval, loader)) = valid.as_mut() {
                vm.reset();
                let batches = loader.epoch(0)?;
                let pb = self.bar(batches.num_batches(), format!("epoch {} valid", epoch + 1));
                for batch in batches {
                    pb.inc(1);
                    let batch = batch?;
                    let feeds = self.feeds(&batch)?;
                    let outs = eval.run(step, &feeds).map_err(nn_error)?;
                    if outs.len() < 2 {
                        return Err(invalid("fit", "the evaluator must output [logits, loss]"));
                    }
                    let loss = outs[1].to_f64_vec().first().copied().unwrap_or(f64::NAN);
                    vm.update(&outs[0], batch.labels.as_i64().unwrap_or(&[]), Some(loss))?;
                }
                pb.finish_with_message(format!("loss {:.4}, acc {:.3}", vm.loss(), vm.accuracy()));
                summary.valid = vm.summary();
            }
            if let Some(log) = &mut self.log {
                log.log(summary.epoch as u64, "train", &summary.train)?;
                if !summary.valid.is_empty() {
                    log.log(summary.epoch as u64, "valid", &summary.valid)?;
                }
            }
            let mut stop = false;
            if !summary.valid.is_empty() {
                let m = summary.valid_metric(&self.monitor).ok_or_else(|| {
                    invalid(
                        "fit",
                        format!("no validation metric `{}` to monitor", self.monitor),
                    )
                })?;
                if let Some(p) = &mut self.plateau {
                    p.step(m);
                }
                if let Some(es) = &mut self.early_stopping {
                    stop = es.step(m);
                    summary.best = es.improved();
                } else {
                    let better = match (self.best_metric, self.monitor_mode) {
                        (None, _) => !m.is_nan(),
                        (Some(b), Mode::Min) => m < b,
                        (Some(b), Mode::Max) => m > b,
                    };
                    if better {
                        self.best_metric = Some(m);
                    }
                    summary.best = better;
                }
            }
            if let Some(dir) = &self.plots_dir {
                let m = if summary.valid.is_empty() { &tm } else { &vm };
                self.draw(dir, &out, &summary, m.confusion())?;
            }
            self.save(step, "last.safetensors", epoch + 1)?;
            if summary.best {
                self.save(step, "best.safetensors", epoch + 1)?;
            }
            on_epoch(&summary);
            out.push(summary);
            if stop {
                break;
            }
        }
        Ok(out)
    }
}
