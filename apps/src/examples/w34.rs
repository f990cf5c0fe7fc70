//! W3 and W4 of `../shared/bench/bench.py`, recurrent classifiers over `[B, T, 40]`
//! feature sequences, with PyTorch's module names (`rnn`, `fc`), so their state dicts
//! are the PyTorch models':
//!
//! - W3 ([`RnnClassifier::w3`]): `GRU(40, 64, num_layers=2, bidirectional,
//!   batch_first)` → mean over time → `Linear(128, 12)` → log-softmax;
//! - W4 ([`RnnClassifier::w4`]): `LSTM(40, 128, batch_first)` → last hidden state
//!   `h_n[-1]` → `Linear(128, 12)` → log-softmax.

use onde_nn::module::{child, Forward, Linear, Module, Recurrent, RecurrentOpts, TimeMap};
use onde_nn::{GraphBuilder, Tensor};

/// What the classifier reads from the recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readout {
    /// The output sequence's mean over time (W3).
    MeanOverTime,
    /// The last layer's final hidden state (W4).
    LastHidden,
}

/// A recurrent layer, a readout, `Linear(·, 12)` and log-softmax (W3, W4).
#[derive(Debug, Clone)]
pub struct RnnClassifier {
    /// The recurrent layer (`rnn.*`).
    pub rnn: Recurrent,
    /// `Linear(·, 12)` (`fc.*`).
    pub fc: Linear,
    /// What `fc` reads.
    pub readout: Readout,
}

impl RnnClassifier {
    /// W3: `GRU(40, 64, 2 layers, bidirectional, batch_first)`, mean over time,
    /// `Linear(128, 12)`; PyTorch's default initialisation, parameters under `prefix`.
    #[track_caller]
    pub fn w3(g: &GraphBuilder, prefix: &str) -> RnnClassifier {
        let o = RecurrentOpts::default()
            .num_layers(2)
            .bidirectional(true)
            .batch_first(true);
        RnnClassifier {
            rnn: Recurrent::gru(g, &child(prefix, "rnn"), 40, 64, o),
            fc: Linear::new(g, &child(prefix, "fc"), 128, 12),
            readout: Readout::MeanOverTime,
        }
    }

    /// W4: `LSTM(40, 128, batch_first)`, last hidden state, `Linear(128, 12)`.
    #[track_caller]
    pub fn w4(g: &GraphBuilder, prefix: &str) -> RnnClassifier {
        let o = RecurrentOpts::default().batch_first(true);
        RnnClassifier {
            rnn: Recurrent::lstm(g, &child(prefix, "rnn"), 40, 128, o),
            fc: Linear::new(g, &child(prefix, "fc"), 128, 12),
            readout: Readout::LastHidden,
        }
    }
}

impl Module for RnnClassifier {
    /// Log-probabilities `[B, 12]`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let features = match self.readout {
            Readout::MeanOverTime => self.rnn.forward(x).mean([1], false),
            Readout::LastHidden => {
                let (_, h_n) = self.rnn.call((x, None::<&Tensor>));
                h_n.narrow(0, -1, 1).squeeze(0)
            }
        };
        self.fc.forward(&features).log_softmax(-1)
    }
    // Not `named_children`: a summary would chain them, and the readout sits between.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = self.rnn.named_parameters();
        v.extend(self.fc.named_parameters());
        v
    }
    fn set_training(&self, training: bool) {
        self.rnn.set_training(training);
    }
    fn is_training(&self) -> bool {
        self.rnn.is_training()
    }
    fn time_map(&self) -> TimeMap {
        TimeMap::Global
    }
}
