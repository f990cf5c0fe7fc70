//! W3 and W4 of `../shared/bench/bench.py`, recurrent classifiers over `[B, T, 40]`
//! feature sequences, with PyTorch's module names (`rnn`, `fc`), so their state dicts
//! are the PyTorch models':
//!
//! - W3: `GRU(40, 64, num_layers=2, bidirectional, batch_first)` → mean over time →
//!   `Linear(128, 12)` → log-softmax;
//! - W4: `LSTM(40, 128, batch_first)` → last hidden state `h_n[-1]` → `Linear(128, 12)`
//!   → log-softmax.

use onde_nn::module::{child, Forward, Linear, Module, Recurrent, RecurrentOpts, TimeMap};
use onde_nn::{GraphBuilder, Tensor};

/// W3's bidirectional two-layer GRU classifier.
#[derive(Debug, Clone)]
pub struct GruNet {
    /// `GRU(40, 64, 2 layers, bidirectional, batch_first)`.
    pub rnn: Recurrent,
    /// `Linear(128, 12)`.
    pub fc: Linear,
}

impl GruNet {
    /// PyTorch's default initialisation, parameters under `prefix`.
    #[track_caller]
    pub fn new(g: &GraphBuilder, prefix: &str) -> GruNet {
        let o = RecurrentOpts::default()
            .num_layers(2)
            .bidirectional(true)
            .batch_first(true);
        GruNet {
            rnn: Recurrent::gru(g, &child(prefix, "rnn"), 40, 64, o),
            fc: Linear::new(g, &child(prefix, "fc"), 128, 12),
        }
    }
}

impl Module for GruNet {
    /// Log-probabilities `[B, 12]`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let out = self.rnn.forward(x);
        self.fc.forward(&out.mean([1], false)).log_softmax(-1)
    }
    // Not `named_children`: a summary would chain them, and this forward pools between.
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

/// W4's LSTM classifier on the last hidden state.
#[derive(Debug, Clone)]
pub struct LstmNet {
    /// `LSTM(40, 128, batch_first)`.
    pub rnn: Recurrent,
    /// `Linear(128, 12)`.
    pub fc: Linear,
}

impl LstmNet {
    /// PyTorch's default initialisation, parameters under `prefix`.
    #[track_caller]
    pub fn new(g: &GraphBuilder, prefix: &str) -> LstmNet {
        LstmNet {
            rnn: Recurrent::lstm(
                g,
                &child(prefix, "rnn"),
                40,
                128,
                RecurrentOpts::default().batch_first(true),
            ),
            fc: Linear::new(g, &child(prefix, "fc"), 128, 12),
        }
    }
}

impl Module for LstmNet {
    /// Log-probabilities `[B, 12]`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let (_, h_n) = self.rnn.call((x, None::<&Tensor>));
        let last = h_n.narrow(0, -1, 1).squeeze(0);
        self.fc.forward(&last).log_softmax(-1)
    }
    // Not `named_children`: a summary would chain them, and this forward pools between.
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
