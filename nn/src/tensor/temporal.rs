//! Pooling over time for classification: `[B, C, T]` (a conv stack's output) to one
//! vector per example, with padded batches handled by the valid frames only.
//!
//! `valid` is optional and is either the lengths (`i64 [B]`, the first `len` frames of
//! each example are valid) or a mask (`bool [B, T]`, true = valid). Both are ordinary
//! graph values: they may be inputs fed per batch (unlike boolean indexing, nothing
//! depends on their values at build time). Padded frames take no part in any statistic
//! and receive zero gradient. An example with no valid frame gives NaN (0/0), as the
//! same computation in PyTorch.
//!
//! Design choices (documented since papers differ): standard deviations use the biased
//! variance (divided by the valid count, as x-vector statistics pooling), floored at
//! `eps` before the square root so the gradient stays finite on constant inputs
//! (SpeechBrain's `clamp(var, min=eps)`); skewness is `E[(x−μ)³]/σ³` and kurtosis the
//! non-excess `E[(x−μ)⁴]/σ⁴`, with the same σ.

use super::Tensor;
use crate::tensor::where_;
use onde_ir::{DType, SourceLoc};

/// A statistic of [`Tensor::temporal_pool`]; results are concatenated along channels in
/// the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalStat {
    /// Mean over valid frames.
    Mean,
    /// Standard deviation (biased, floored at `eps` before the root).
    Std,
    /// `E[(x−μ)³] / σ³`.
    Skewness,
    /// `E[(x−μ)⁴] / σ⁴` (not the excess kurtosis).
    Kurtosis,
    /// Maximum over valid frames.
    Max,
    /// Minimum over valid frames.
    Min,
}

impl Tensor {
    /// Pools `[B, C, T]` over time into `[B, C · stats.len()]`: each statistic over the
    /// valid frames (`valid`: lengths `i64 [B]` or mask `bool [B, T]`, see the module
    /// docs), concatenated in order. Statistics pooling (x-vectors) is
    /// `[Mean, Std]`; higher-order statistics add `Skewness`, `Kurtosis`.
    #[track_caller]
    pub fn temporal_pool(
        &self,
        stats: &[TemporalStat],
        valid: Option<&Tensor>,
        eps: f64,
    ) -> Tensor {
        let loc = SourceLoc::caller();
        let w = match self.frame_weights("temporal_pool", valid, &loc) {
            Ok(w) => w,
            Err(poisoned) => return poisoned,
        };
        if stats.is_empty() {
            return self.fail("temporal_pool", "no statistic asked for".into(), loc);
        }
        let parts = self.weighted_stats(stats, &w, valid.is_some(), eps);
        let refs: Vec<&Tensor> = parts.iter().collect();
        super::cat(&refs, 1)
    }

    /// Mean over valid frames: `[B, C, T]` → `[B, C]`.
    #[track_caller]
    pub fn temporal_mean(&self, valid: Option<&Tensor>) -> Tensor {
        self.temporal_pool(&[TemporalStat::Mean], valid, 0.0)
    }

    /// Statistics pooling: mean ‖ std over valid frames, `[B, C, T]` → `[B, 2C]`.
    #[track_caller]
    pub fn statistics_pool(&self, valid: Option<&Tensor>, eps: f64) -> Tensor {
        self.temporal_pool(&[TemporalStat::Mean, TemporalStat::Std], valid, eps)
    }

    /// Attention-weighted pooling: `scores` `[B, 1, T]` or `[B, C, T]` (one per frame, or
    /// per channel and frame) are turned into weights by a softmax over valid frames;
    /// returns the weighted mean `[B, C]`, and with `with_std` also the weighted
    /// standard deviation `√max(Σα x² − μ², eps)` (attentive statistics pooling, Okabe
    /// et al. 2018): `[B, 2C]`.
    #[track_caller]
    pub fn attention_pool(
        &self,
        scores: &Tensor,
        valid: Option<&Tensor>,
        with_std: bool,
        eps: f64,
    ) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "attention_pool";
        let w = match self.frame_weights(api, valid, &loc) {
            Ok(w) => w,
            Err(poisoned) => return poisoned,
        };
        if let Err(e) = scores.check() {
            return self.builder().poisoned(e);
        }
        let (d, s) = (self.size(), scores.size());
        if s.len() != 3 || s[0] != d[0] || s[2] != d[2] || (s[1] != 1 && s[1] != d[1]) {
            return self.fail(
                api,
                format!("scores {s:?} must be [B, 1, T] or [B, C, T] for an input {d:?}"),
                loc,
            );
        }
        let scores = match valid {
            Some(_) => where_(&w.gt(0.0), scores, f64::NEG_INFINITY),
            None => scores.clone(),
        };
        let alpha = scores.softmax(-1);
        let mean = (self * &alpha).sum([-1], false);
        if !with_std {
            return mean;
        }
        let second = (self.square() * &alpha).sum([-1], false);
        let std = (second - mean.square()).clamp_min(eps).sqrt();
        super::cat(&[&mean, &std], 1)
    }

    /// The per-frame weights `[B, 1, T]` (1 valid, 0 padded) in `x`'s dtype; on bad
    /// arguments, the poisoned result. Without `valid`, all ones.
    fn frame_weights(
        &self,
        api: &'static str,
        valid: Option<&Tensor>,
        loc: &SourceLoc,
    ) -> Result<Tensor, Tensor> {
        if let Err(e) = self.check() {
            return Err(self.builder().poisoned(e));
        }
        let d = self.size();
        if d.len() != 3 || !self.dtype().is_float() {
            return Err(self.fail(
                api,
                format!(
                    "expects a float input [B, C, T], got {d:?} {}",
                    self.dtype()
                ),
                loc.clone(),
            ));
        }
        let (b, t) = (d[0], d[2]);
        let g = self.builder();
        let Some(v) = valid else {
            return Ok(g.full(vec![1, 1, t], 1.0, self.dtype()));
        };
        if let Err(e) = v.check() {
            return Err(g.poisoned(e));
        }
        let mask = match (v.dtype(), v.size().as_slice()) {
            (DType::I64, [n]) if *n == b => {
                let frames = g.arange(0.0, t as f64, 1.0, DType::I64);
                frames.lt(v.unsqueeze(1))
            }
            (DType::Bool, [n, m]) if *n == b && *m == t => v.clone(),
            (dt, s) => {
                return Err(self.fail(
                    api,
                    format!(
                        "valid must be lengths i64 [{b}] or a mask bool [{b}, {t}], got {dt} {s:?}"
                    ),
                    loc.clone(),
                ));
            }
        };
        Ok(mask.unsqueeze(1).to_dtype(self.dtype()))
    }

    /// The statistics over time with frame weights `w` (`[B, 1, T]`, 0 or 1). The
    /// count, mean, centred values and variance are built once and shared.
    fn weighted_stats(
        &self,
        stats: &[TemporalStat],
        w: &Tensor,
        masked: bool,
        eps: f64,
    ) -> Vec<Tensor> {
        use std::cell::OnceCell;
        let n = OnceCell::new();
        let mean_of = |t: &Tensor| (t * w).sum([-1], false) / n.get_or_init(|| w.sum([-1], false));
        let mean = OnceCell::new();
        let centered = OnceCell::new();
        let var = OnceCell::new();
        let mean = || mean.get_or_init(|| mean_of(self)).clone();
        let centered = || {
            centered
                .get_or_init(|| self - &mean().unsqueeze(-1))
                .clone()
        };
        let var = || {
            var.get_or_init(|| mean_of(&centered().square()).clamp_min(eps))
                .clone()
        };
        let extreme = |max: bool| {
            let x = if masked {
                let fill = if max {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                };
                where_(&w.gt(0.0), self, fill)
            } else {
                self.clone()
            };
            if max {
                x.max([-1], false)
            } else {
                x.min([-1], false)
            }
        };
        stats
            .iter()
            .map(|s| match s {
                TemporalStat::Mean => mean(),
                TemporalStat::Std => var().sqrt(),
                TemporalStat::Skewness => mean_of(&centered().pow(3.0)) / var().pow(1.5),
                TemporalStat::Kurtosis => mean_of(&centered().pow(4.0)) / var().square(),
                TemporalStat::Max => extreme(true),
                TemporalStat::Min => extreme(false),
            })
            .collect()
    }
}
