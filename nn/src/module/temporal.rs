//! Pooling over time as modules: [`StatisticsPooling`] (any [`TemporalStat`]s,
//! parameter-free) and [`AttentivePooling`] (learned frame scores, softmax over time,
//! weighted mean and optionally standard deviation). Inputs are `[B, C, T]`; the
//! functional forms and the handling of padded frames are in `tensor::temporal`.
//!
//! [`Module::forward`] pools every frame; `forward_valid` takes the lengths
//! (`i64 [B]`) or a mask (`bool [B, T]`) of a padded batch.

use super::{child, Linear, Module, TimeMap};
use crate::builder::GraphBuilder;
use crate::tensor::{TemporalStat, Tensor};

/// Statistics over time, concatenated along channels: `[B, C, T]` →
/// `[B, C · stats.len()]` (x-vector statistics pooling is `[Mean, Std]`).
#[derive(Debug, Clone, PartialEq)]
pub struct StatisticsPooling {
    /// The statistics, in output order.
    pub stats: Vec<TemporalStat>,
    /// Floor of the variance under standard deviations (default `1e-5`).
    pub eps: f64,
}

impl StatisticsPooling {
    /// Mean ‖ std with `eps = 1e-5`.
    pub fn new() -> StatisticsPooling {
        StatisticsPooling::with_stats(&[TemporalStat::Mean, TemporalStat::Std])
    }

    /// The given statistics with `eps = 1e-5`.
    pub fn with_stats(stats: &[TemporalStat]) -> StatisticsPooling {
        StatisticsPooling {
            stats: stats.to_vec(),
            eps: 1e-5,
        }
    }

    /// Pools the valid frames only (lengths `i64 [B]` or mask `bool [B, T]`).
    #[track_caller]
    pub fn forward_valid(&self, x: &Tensor, valid: Option<&Tensor>) -> Tensor {
        x.temporal_pool(&self.stats, valid, self.eps)
    }
}

impl Default for StatisticsPooling {
    fn default() -> StatisticsPooling {
        StatisticsPooling::new()
    }
}

impl Module for StatisticsPooling {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_valid(x, None)
    }

    fn time_map(&self) -> TimeMap {
        TimeMap::Global
    }
}

/// Attention pooling: frame scores `score(tanh(hidden(x_t)))` (linear layers
/// `{name}.hidden`, `C → H`, and `{name}.score`), a softmax over the valid frames, then the weighted mean `[B, C]`, or mean ‖ std `[B, 2C]` with
/// `with_std` (attentive statistics pooling, Okabe et al. 2018). With `channel_wise`
/// the score layer gives one score per channel (`{name}.score.weight` `[C, H]`, as in
/// ECAPA-TDNN), else one per frame (`[1, H]`).
#[derive(Debug, Clone)]
pub struct AttentivePooling {
    /// `C → H`.
    pub hidden: Linear,
    /// `H → 1` or `H → C`.
    pub score: Linear,
    /// Also output the weighted standard deviation.
    pub with_std: bool,
    /// Floor of the weighted variance (default `1e-5`).
    pub eps: f64,
}

impl AttentivePooling {
    /// Pooling of `channels` channels with a hidden attention layer of `hidden` units.
    #[track_caller]
    pub fn new(
        g: &GraphBuilder,
        name: &str,
        channels: usize,
        hidden: usize,
        with_std: bool,
        channel_wise: bool,
    ) -> AttentivePooling {
        let out = if channel_wise { channels } else { 1 };
        AttentivePooling {
            hidden: Linear::new(g, &child(name, "hidden"), channels, hidden),
            score: Linear::new(g, &child(name, "score"), hidden, out),
            with_std,
            eps: 1e-5,
        }
    }

    /// Pools the valid frames only (lengths `i64 [B]` or mask `bool [B, T]`).
    #[track_caller]
    pub fn forward_valid(&self, x: &Tensor, valid: Option<&Tensor>) -> Tensor {
        // [B, C, T] → [B, T, C] for the linear layers, scores back to [B, ·, T].
        let frames = x.transpose(1, 2);
        let scores = self
            .score
            .forward(&self.hidden.forward(&frames).tanh())
            .transpose(1, 2);
        x.attention_pool(&scores, valid, self.with_std, self.eps)
    }
}

impl Module for AttentivePooling {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_valid(x, None)
    }

    fn time_map(&self) -> TimeMap {
        TimeMap::Global
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = self.hidden.named_parameters();
        v.extend(self.score.named_parameters());
        v
    }
}
