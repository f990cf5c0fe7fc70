//! Ready-made training recipes, shared by the examples and the tests that check them.
//!
//! [`train_signal_mlp`]: an MLP classifying [`SyntheticSignals`] waveforms (sine,
//! square, sawtooth, chirp; fresh waveforms every epoch), trained with Adam and a cosine learning-rate schedule on
//! one compiled [`TrainStep`], validated each epoch by an eval-mode [`Evaluator`](onde_nn::train::Evaluator) that
//! reads the step's parameters in place. The README's main job runs it
//! (`cargo run --release --example signal_mlp`).

use onde_nn::data::{Batches, SyntheticSignals};
use onde_nn::loss::{cross_entropy, NllOpts};
use onde_nn::module::{Linear, Module, Relu, Sequential};
use onde_nn::optim::{Adam, CosineAnnealingLr, LrSchedule};
use onde_nn::train::{TrainOptions, TrainStep};
use onde_nn::{Array, DType, GraphBuilder, Result};

/// Settings of [`train_signal_mlp`].
#[derive(Debug, Clone)]
pub struct SignalMlpConfig {
    /// Samples per waveform (the MLP's input width).
    pub length: usize,
    /// Noise standard deviation (signal amplitudes are 0.5–1).
    pub noise: f64,
    /// Training examples per epoch (freshly generated each epoch).
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
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Training accuracy over the epoch's batches (during training).
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

/// Trains the signal classifier; calls `on_epoch` after each epoch and returns every
/// epoch's report with the trained step (its parameters, [`TrainStep::state_dict`]).
pub fn train_signal_mlp(
    cfg: &SignalMlpConfig,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<(Vec<EpochReport>, TrainStep)> {
    if cfg.batch == 0 || cfg.train < cfg.batch || cfg.val < cfg.batch || cfg.length == 0 {
        return Err(onde_nn::Error::Train {
            reason: format!(
                "signal MLP: need batch >= 1, train and val >= batch and length >= 1 \
                 (batch {}, train {}, val {}, length {})",
                cfg.batch, cfg.train, cfg.val, cfg.length
            ),
        });
    }
    let mut data = SyntheticSignals::new(cfg.length, cfg.noise, cfg.seed);
    let (xva, yva) = data.dataset(cfg.val);

    let g = GraphBuilder::new();
    g.manual_seed(cfg.seed as i64);
    let mut model = Sequential::new("");
    model
        .push(Linear::new(&g, "0", cfg.length, cfg.hidden))
        .push(Relu)
        .push(Linear::new(&g, "2", cfg.hidden, cfg.hidden))
        .push(Relu)
        .push(Linear::new(&g, "4", cfg.hidden, 4));
    let x = g.input("x", DType::F32, [cfg.batch, cfg.length]);
    let y = g.input("y", DType::I64, [cfg.batch]);
    let logits = model.forward(&x);
    let loss = cross_entropy(&logits, &y, &NllOpts::default());
    let opt = Adam::new(cfg.lr);
    let opts = TrainOptions {
        outputs: vec![&logits],
        ..TrainOptions::default()
    };
    let mut step = TrainStep::with_options(&g, &loss, &opt, opts)?;
    model.eval();
    let eval_logits = model.forward(&x);
    let eval_loss = cross_entropy(&eval_logits, &y, &NllOpts::default());
    let mut eval = step.evaluator(&g, &[&eval_logits, &eval_loss])?;
    let schedule = CosineAnnealingLr {
        t_max: cfg.epochs,
        eta_min: 0.0,
    };

    let mut reports = Vec::with_capacity(cfg.epochs);
    for epoch in 0..cfg.epochs {
        let lr = schedule.lr(cfg.lr, epoch);
        step.set_lr(lr);
        // Fresh waveforms every epoch: the generator is an endless source, so the model
        // cannot memorise a fixed training set.
        let (xtr, ytr) = data.dataset(cfg.train);
        let (mut loss_sum, mut hits, mut seen, mut nb) = (0.0, 0, 0, 0);
        for idx in Batches::new(
            cfg.train,
            cfg.batch,
            cfg.seed.wrapping_add(epoch as u64 + 1),
        ) {
            let (bx, by) = Batches::gather(&xtr, &ytr, &idx)?;
            loss_sum += step.step(&[("x", &bx), ("y", &by)])?;
            hits += correct(&step.output(1)?, &by);
            seen += idx.len();
            nb += 1;
        }
        let (mut vloss, mut vhits, mut vseen, mut vb) = (0.0, 0, 0, 0);
        let all: Vec<usize> = (0..cfg.val).collect();
        for idx in all.chunks_exact(cfg.batch) {
            let (bx, by) = Batches::gather(&xva, &yva, idx)?;
            let out = eval.run(&step, &[("x", &bx), ("y", &by)])?;
            vloss += out[1].to_f64_vec().first().copied().unwrap_or(f64::NAN);
            vhits += correct(&out[0], &by);
            vseen += idx.len();
            vb += 1;
        }
        let r = EpochReport {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / nb.max(1) as f64,
            train_acc: hits as f64 / seen.max(1) as f64,
            val_loss: vloss / vb.max(1) as f64,
            val_acc: vhits as f64 / vseen.max(1) as f64,
        };
        on_epoch(&r);
        reports.push(r);
    }
    Ok((reports, step))
}
