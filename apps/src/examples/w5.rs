//! W5 and W5s of `../shared/bench/bench.py`, self-attention over a sequence of
//! feature vectors, with PyTorch's module names (`q`, `k`, `v`, `score`, `fc`), so its
//! state dict is the PyTorch model's:
//!
//! `x [B, T, 64]` → `q, k, v = Linear(64, 64)(x)` → `a = softmax(q kᵀ / 8) v` →
//! `h = x + a` → `w = softmax_T(Linear(64, 1)(h))` → `p = Σ_T w h` → `Linear(64, 12)` →
//! log-softmax. W5 writes the attention as explicit products and a softmax; W5s calls
//! [`Tensor::scaled_dot_product_attention`] (same weights, same result).

use onde_nn::module::{child, Linear, Module, TimeMap};
use onde_nn::{GraphBuilder, Tensor};

/// The W5/W5s attention classifier (see the module docs).
#[derive(Debug, Clone)]
pub struct AttnNet {
    /// Query projection `Linear(64, 64)`.
    pub q: Linear,
    /// Key projection `Linear(64, 64)`.
    pub k: Linear,
    /// Value projection `Linear(64, 64)`.
    pub v: Linear,
    /// Attention-pooling scores `Linear(64, 1)`.
    pub score: Linear,
    /// Classifier `Linear(64, 12)`.
    pub fc: Linear,
    /// `true` for W5s: the attention through `scaled_dot_product_attention`.
    pub sdpa: bool,
}

impl AttnNet {
    /// The model with PyTorch's default initialisation, parameters under `prefix`.
    #[track_caller]
    pub fn new(g: &GraphBuilder, prefix: &str, sdpa: bool) -> AttnNet {
        let n = |s: &str| child(prefix, s);
        AttnNet {
            q: Linear::new(g, &n("q"), 64, 64),
            k: Linear::new(g, &n("k"), 64, 64),
            v: Linear::new(g, &n("v"), 64, 64),
            score: Linear::new(g, &n("score"), 64, 1),
            fc: Linear::new(g, &n("fc"), 64, 12),
            sdpa,
        }
    }
}

impl Module for AttnNet {
    /// Log-probabilities `[B, 12]` of `x` `[B, T, 64]`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let (q, k, v) = (self.q.forward(x), self.k.forward(x), self.v.forward(x));
        let a = if self.sdpa {
            q.scaled_dot_product_attention(&k, &v, None, 0.0, false, None)
        } else {
            (q.matmul(&k.transpose(-1, -2)) / 8.0)
                .softmax(-1)
                .matmul(&v)
        };
        let h = x + &a;
        let w = self.score.forward(&h).softmax(1);
        let p = (&w * &h).sum([1], false);
        self.fc.forward(&p).log_softmax(-1)
    }
    // Parameters rather than `named_children`: a summary chains children in order, and
    // this forward is not a chain (q, k, v all read `x`).
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        [&self.q, &self.k, &self.v, &self.score, &self.fc]
            .into_iter()
            .flat_map(|l| l.named_parameters())
            .collect()
    }
    fn time_map(&self) -> TimeMap {
        TimeMap::Global
    }
}
