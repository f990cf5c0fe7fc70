//! Ready-made training recipes, shared by the examples and the tests that check them.
//!
//! [`train_signal_mlp`]: an MLP classifying [`SyntheticSignals`] waveforms (sine,
//! square, sawtooth, chirp), fed by a [`DataLoader`] (shuffled every epoch, worker
//! threads) and trained by [`Trainer::fit`] with Adam and a cosine learning-rate
//! schedule on one compiled [`TrainStep`] built for any batch size, validated each
//! epoch by an eval-mode evaluator that reads the step's parameters in place, its
//! curves and confusion matrix drawn when asked. The README's main job runs it
//! (`cargo run --release --example signal_mlp`).

use onde_data::rng::SplitMix64;
use onde_data::{DataLoader, Dataset, InMemory, Sample, Trainer, Transform};
use onde_nn::data::SyntheticSignals;
use onde_nn::loss::{cross_entropy, NllOpts};
use onde_nn::module::{Linear, Module, Relu, Sequential};
use onde_nn::optim::{Adam, CosineAnnealingLr};
use onde_nn::train::{TrainOptions, TrainStep};
use onde_nn::{Array, DType, GraphBuilder, Result};
use std::rc::Rc;
use std::sync::Arc;

/// Settings of [`train_signal_mlp`].
#[derive(Debug, Clone)]
pub struct SignalMlpConfig {
    /// Samples per waveform (the MLP's input width).
    pub length: usize,
    /// Noise standard deviation (signal amplitudes are 0.5–1).
    pub noise: f64,
    /// Training examples.
    pub train: usize,
    /// Validation examples.
    pub val: usize,
    /// Batch size.
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Hidden width (two hidden layers).
    pub hidden: usize,
    /// Initial learning rate (cosine-annealed to 0 over the epochs).
    pub lr: f64,
    /// Seed of data, initialisation and shuffling.
    pub seed: u64,
    /// Data loader worker threads.
    pub workers: usize,
    /// Where the training curves and the confusion matrix are drawn (none: not drawn).
    pub plots_dir: Option<std::path::PathBuf>,
    /// Progress bars on stderr (drawn only on a terminal).
    pub progress: bool,
}

impl Default for SignalMlpConfig {
    fn default() -> SignalMlpConfig {
        SignalMlpConfig {
            length: 128,
            noise: 0.3,
            train: 16384,
            val: 1024,
            batch: 64,
            epochs: 15,
            hidden: 128,
            lr: 2e-3,
            seed: 0,
            workers: 2,
            plots_dir: None,
            progress: false,
        }
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// Epoch number from 1.
    pub epoch: usize,
    /// Learning rate used in this epoch.
    pub lr: f64,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Training accuracy over the epoch's samples (during training).
    pub train_acc: f64,
    /// Validation loss (eval mode, after the epoch).
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_acc: f64,
}

/// Number of rows of `logits` `[B, C]` whose argmax equals the label.
pub fn correct(logits: &Array, labels: &Array) -> usize {
    let c = logits.shape().dims().get(1).copied().unwrap_or(1).max(1);
    let l = logits.to_f64_vec();
    let y = labels.as_i64().unwrap_or(&[]);
    l.chunks(c)
        .zip(y)
        .filter(|(row, &y)| {
            let mut best = 0;
            for (j, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = j;
                }
            }
            best as i64 == y
        })
        .count()
}

/// Adds white Gaussian noise of a fixed standard deviation to field `x` (a transform
/// of its own: the library's `AddNoise` sets an SNR instead).
struct GaussianNoise {
    std: f64,
}

impl Transform for GaussianNoise {
    fn apply(&self, mut s: Sample, rng: &mut SplitMix64) -> onde_data::Result<Sample> {
        if let Some(v) = s
            .fields
            .iter_mut()
            .find(|(n, _)| n == "x")
            .and_then(|(_, a)| a.as_f32_mut())
        {
            v.iter_mut()
                .for_each(|x| *x += (self.std * rng.normal()) as f32);
        }
        Ok(s)
    }
}

fn data_err(e: onde_data::DataError) -> onde_nn::Error {
    onde_nn::Error::Train {
        reason: e.to_string(),
    }
}

/// Trains the signal classifier; calls `on_epoch` after each epoch and returns every
/// epoch's report with the trained step (its parameters, [`TrainStep::state_dict`]).
pub fn train_signal_mlp(
    cfg: &SignalMlpConfig,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<(Vec<EpochReport>, TrainStep)> {
    if cfg.batch == 0 || cfg.train == 0 || cfg.val == 0 || cfg.length == 0 {
        return Err(onde_nn::Error::Train {
            reason: format!(
                "signal MLP: need batch, train, val and length >= 1 \
                 (batch {}, train {}, val {}, length {})",
                cfg.batch, cfg.train, cfg.val, cfg.length
            ),
        });
    }
    let dataset = |n: usize, noise: f64, seed: u64| -> Result<Arc<dyn Dataset>> {
        let (x, y) = SyntheticSignals::new(cfg.length, noise, seed).dataset(n);
        let labels = y.as_i64().unwrap_or(&[]);
        Ok(Arc::new(
            InMemory::from_rows("x", &x, labels).map_err(data_err)?,
        ))
    };
    let valid = DataLoader::new(dataset(cfg.val, cfg.noise, cfg.seed)?, cfg.batch);
    // Clean training waveforms; the loader's workers add fresh noise every epoch, so
    // the model never sees the same noisy waveform twice.
    let train = DataLoader::new(
        dataset(cfg.train, 0.0, cfg.seed.wrapping_add(7))?,
        cfg.batch,
    )
    .shuffle(cfg.seed.wrapping_add(1))
    .transform(GaussianNoise { std: cfg.noise }, cfg.seed.wrapping_add(2))
    .num_workers(cfg.workers);

    // The model, built once; the step and the evaluator apply it at any batch size
    // (the last partial batch of an epoch compiles once, then is reused).
    let g = GraphBuilder::new();
    g.manual_seed(cfg.seed as i64);
    let mut model = Sequential::new("");
    model
        .push(Linear::new(&g, "0", cfg.length, cfg.hidden))
        .push(Relu)
        .push(Linear::new(&g, "2", cfg.hidden, cfg.hidden))
        .push(Relu)
        .push(Linear::new(&g, "4", cfg.hidden, 4));
    let model = Rc::new(model);
    let (h, m, len, lr) = (g.clone(), model.clone(), cfg.length, cfg.lr);
    let mut step = TrainStep::any_batch(&g, cfg.batch, move |b| {
        m.train();
        let x = h.input("x", DType::F32, [b, len]);
        let y = h.input("y", DType::I64, [b]);
        let logits = m.forward(&x);
        let loss = cross_entropy(&logits, &y, &NllOpts::default());
        let opts = TrainOptions {
            outputs: vec![&logits],
            ..TrainOptions::default()
        };
        TrainStep::with_options(&h, &loss, &Adam::new(lr), opts)
    })?;
    let (h, m) = (g.clone(), model.clone());
    let mut eval = step.evaluator_any_batch(cfg.batch, move |b| {
        m.eval();
        let x = h.input("x", DType::F32, [b, len]);
        let y = h.input("y", DType::I64, [b]);
        let logits = m.forward(&x);
        let loss = cross_entropy(&logits, &y, &NllOpts::default());
        Ok(vec![logits, loss])
    })?;

    let mut trainer = Trainer::new(cfg.epochs, 4);
    trainer.schedule = Some(Box::new(CosineAnnealingLr {
        t_max: cfg.epochs,
        eta_min: 0.0,
    }));
    trainer.quiet = !cfg.progress;
    trainer.plots_dir = cfg.plots_dir.clone();
    trainer.class_names = ["sine", "square", "sawtooth", "chirp"]
        .map(String::from)
        .to_vec();
    let mut reports = Vec::with_capacity(cfg.epochs);
    trainer
        .fit(&mut step, &train, Some((&mut eval, &valid)), |s| {
            let get = |v: Option<f64>| v.unwrap_or(f64::NAN);
            let r = EpochReport {
                epoch: s.epoch,
                lr: s.lr,
                train_loss: get(s.train_metric("loss")),
                train_acc: get(s.train_metric("accuracy")),
                val_loss: get(s.valid_metric("loss")),
                val_acc: get(s.valid_metric("accuracy")),
            };
            on_epoch(&r);
            reports.push(r);
        })
        .map_err(data_err)?;
    Ok((reports, step))
}
