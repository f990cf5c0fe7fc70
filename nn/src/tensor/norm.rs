//! Normalisation as functions (`F.layer_norm`, `F.group_norm`, `F.batch_norm`),
//! composed from means and the biased variance (PyTorch's: divided by `n`), so
//! gradients of every order come from the composition.
//!
//! Batch norm's running statistics are buffers: in training, `batch_norm` registers
//! their new values with [`crate::GraphBuilder::update_buffer`] (PyTorch updates them
//! in place), and a [`crate::TrainStep`] writes them back after every step. The update
//! uses the unbiased batch variance (divided by `n − 1`) while normalisation uses the
//! biased one, as PyTorch.

use super::Tensor;
use crate::args::Arg;
use onde_ir::SourceLoc;

/// How much of the batch statistic enters the running one: PyTorch's
/// `exponential_average_factor`, a number (`momentum`) or a tensor (`1 / num_batches`
/// for the cumulative average of `momentum=None`).
#[derive(Debug, Clone)]
pub(crate) enum Factor {
    /// `momentum`.
    Fixed(f64),
    /// A scalar f32 tensor computed in the graph.
    Tensor(Tensor),
}

impl Tensor {
    /// `F.layer_norm(x, normalized_shape, weight, bias, eps)`: over the last
    /// `normalized_shape.len()` axes (which must equal `normalized_shape`),
    /// `(x − mean) / √(var + eps)`, then `· weight + bias` (each of
    /// `normalized_shape`) when given. PyTorch's default `eps` is `1e-5`.
    #[track_caller]
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "layer_norm";
        if let Err(e) = self.check() {
            return self.builder().poisoned(e);
        }
        let dims = self.size();
        let k = normalized_shape.len();
        let fits = k >= 1 && k <= dims.len() && dims[dims.len() - k..] == *normalized_shape;
        if !fits || !self.dtype().is_float() {
            return self.fail(
                api,
                format!(
                    "normalized_shape {normalized_shape:?} must be the last axes of a float \
                     input, got {dims:?} {}",
                    self.dtype()
                ),
                loc,
            );
        }
        for (what, p) in [("weight", weight), ("bias", bias)] {
            if let Some(p) = p {
                if p.check().is_ok() && p.size() != normalized_shape {
                    return self.fail(
                        api,
                        format!("{what} {:?} must be {normalized_shape:?}", p.size()),
                        loc,
                    );
                }
            }
        }
        let axes: Vec<i64> = (-(k as i64)..0).collect();
        let y = self.standardize(&axes, eps);
        affine(y, weight, bias)
    }

    /// `F.group_norm(x, num_groups, weight, bias, eps)`: `x` is `[N, C, *]`; the
    /// channels are split into `num_groups` groups, each normalised over its channels
    /// and every other axis; `weight`, `bias` are `[C]` (per channel).
    #[track_caller]
    pub fn group_norm(
        &self,
        num_groups: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "group_norm";
        if let Err(e) = self.check() {
            return self.builder().poisoned(e);
        }
        let dims = self.size();
        if dims.len() < 2
            || num_groups == 0
            || !dims[1].is_multiple_of(num_groups)
            || !self.dtype().is_float()
        {
            return self.fail(
                api,
                format!(
                    "expected a float [N, C, *] input with C divisible by num_groups \
                     {num_groups}, got {dims:?} {}",
                    self.dtype()
                ),
                loc,
            );
        }
        let c = dims[1];
        for (what, p) in [("weight", weight), ("bias", bias)] {
            if let Some(p) = p {
                if p.check().is_ok() && p.size() != [c] {
                    return self.fail(
                        api,
                        format!("{what} {:?} must be [{c}] (one per channel)", p.size()),
                        loc,
                    );
                }
            }
        }
        let n = dims[0] as i64;
        let grouped = self.reshape([n, num_groups as i64, -1]);
        let y = grouped
            .standardize(&[-1], eps)
            .reshape(dims.iter().map(|&d| d as i64).collect::<Vec<_>>());
        // Per-channel affine: [C] viewed as [C, 1, ...] against [N, C, *].
        let mut per_channel = vec![1i64; dims.len() - 1];
        per_channel[0] = c as i64;
        let w = weight.map(|w| w.reshape(per_channel.clone()));
        let b = bias.map(|b| b.reshape(per_channel.clone()));
        affine(y, w.as_ref(), b.as_ref())
    }

    /// `F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum,
    /// eps)`: `x` is `[N, C, *]`; each channel is normalised by the batch's mean and
    /// biased variance over every axis but 1 when `training` (or when no running
    /// statistics are given), else by `running_mean`/`running_var`; then `· weight +
    /// bias` (each `[C]`). In training, given running statistics (which must be buffers)
    /// are updated to `(1 − momentum) · running + momentum · batch`, the variance's
    /// batch statistic being unbiased. PyTorch's defaults: `momentum = 0.1`,
    /// `eps = 1e-5`.
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn batch_norm(
        &self,
        running_mean: Option<&Tensor>,
        running_var: Option<&Tensor>,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        training: bool,
        momentum: f64,
        eps: f64,
    ) -> Tensor {
        let loc = SourceLoc::caller();
        self.batch_norm_at(
            running_mean,
            running_var,
            weight,
            bias,
            training,
            Factor::Fixed(momentum),
            eps,
            loc,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn batch_norm_at(
        &self,
        running_mean: Option<&Tensor>,
        running_var: Option<&Tensor>,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        training: bool,
        factor: Factor,
        eps: f64,
        loc: SourceLoc,
    ) -> Tensor {
        let api = "batch_norm";
        if let Err(e) = self.check() {
            return self.builder().poisoned(e);
        }
        let dims = self.size();
        if dims.len() < 2 || !self.dtype().is_float() {
            return self.fail(
                api,
                format!(
                    "expects a float input [N, C, *], got {dims:?} {}",
                    self.dtype()
                ),
                loc,
            );
        }
        let c = dims[1];
        let per_channel = [
            ("running_mean", running_mean),
            ("running_var", running_var),
            ("weight", weight),
            ("bias", bias),
        ];
        for (what, p) in per_channel {
            if let Some(p) = p {
                if let Err(e) = p.check() {
                    return self.builder().poisoned(e);
                }
                if p.size() != [c] {
                    return self.fail(
                        api,
                        format!(
                            "{what} {:?} must be [{c}] (one per channel of {dims:?})",
                            p.size()
                        ),
                        loc,
                    );
                }
            }
        }
        if running_mean.is_some() != running_var.is_some() {
            return self.fail(
                api,
                "running_mean and running_var must be given together".into(),
                loc,
            );
        }
        // [C] → [C, 1, …] to broadcast against [N, C, *].
        let mut bshape: Vec<i64> = vec![c as i64];
        bshape.extend(std::iter::repeat_n(1, dims.len() - 2));
        let per = |t: &Tensor| t.reshape(bshape.clone());
        let running = running_mean.zip(running_var);
        let y = match running {
            Some((rm, rv)) if !training => (self - &per(rm)) / (per(rv) + eps).sqrt(),
            _ => {
                let n = self.numel() / c.max(1);
                if training && n <= 1 {
                    return self.fail(
                        api,
                        format!(
                            "expected more than 1 value per channel when training, got input \
                             size {dims:?}"
                        ),
                        loc,
                    );
                }
                let axes: Vec<i64> = (0..dims.len() as i64).filter(|&a| a != 1).collect();
                let mean = self.mean(axes.clone(), true);
                let centered = self - &mean;
                let var = centered.square().mean(axes, true);
                if let (true, Some((rm, rv))) = (training, running) {
                    let bm = mean.detach().reshape(vec![c as i64]);
                    let bv = var.detach().reshape(vec![c as i64]) * (n as f64 / (n - 1) as f64);
                    for (stat, batch, what) in [(rm, bm, "running_mean"), (rv, bv, "running_var")] {
                        if let Err(e) = update_running(stat, &batch, &factor, what, &loc) {
                            return self.builder().poisoned(e);
                        }
                    }
                }
                centered / (var + eps).sqrt()
            }
        };
        affine(y, weight.map(per).as_ref(), bias.map(per).as_ref())
    }

    /// `(x − mean) / √(var + eps)` over `axes` (biased variance).
    #[track_caller]
    fn standardize(&self, axes: &[i64], eps: f64) -> Tensor {
        let mean = self.mean(axes.to_vec(), true);
        let centered = self - &mean;
        let var = centered.square().mean(axes.to_vec(), true);
        centered / (var + eps).sqrt()
    }
}

/// Registers `(1 − f) · stat + f · batch` as the new value of buffer `stat`, computed
/// from its latest value (so two uses in one step chain, as in PyTorch).
fn update_running(
    stat: &Tensor,
    batch: &Tensor,
    factor: &Factor,
    what: &str,
    loc: &SourceLoc,
) -> crate::Result<()> {
    let g = stat.builder();
    let Some(name) = g.buffer_name(stat) else {
        return Err(crate::Error::Op {
            op: "batch_norm",
            reason: format!(
                "{what} must be a buffer (GraphBuilder::buffer) to be updated in training"
            ),
            operands: stat.ty().into_iter().collect(),
            loc: loc.clone(),
        });
    };
    let cur = g.latest_buffer(&name).unwrap_or_else(|| stat.clone());
    let (keep, take): (Arg, Arg) = match factor {
        Factor::Fixed(m) => ((1.0 - m).into(), (*m).into()),
        Factor::Tensor(f) => (f.neg().add(1.0).into(), f.clone().into()),
    };
    let new = batch.mul(take) + cur.mul(keep);
    g.update_buffer(&name, &new)
}

/// `y · weight + bias` for the parts given.
#[track_caller]
fn affine(y: Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Tensor {
    let y = match weight {
        Some(w) => y * w,
        None => y,
    };
    match bias {
        Some(b) => y + b,
        None => y,
    }
}
