//! Normalisation modules: `torch.nn.LayerNorm`, `GroupNorm`, `BatchNorm1d/2d`, with
//! PyTorch's parameter and buffer names and initialisation (`weight` ones, `bias`
//! zeros, `running_mean` zeros, `running_var` ones).

use super::{child, Module};
use crate::builder::GraphBuilder;
use crate::tensor::{Factor, Tensor};
use onde_ir::{Array, DType, SourceLoc};
use std::cell::Cell;

/// `torch.nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)`.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    name: String,
    /// The trailing axes normalised.
    pub normalized_shape: Vec<usize>,
    /// Added to the variance.
    pub eps: f64,
    /// `normalized_shape`, ones at first; `None` without an elementwise affine.
    pub weight: Option<Tensor>,
    /// `normalized_shape`, zeros at first.
    pub bias: Option<Tensor>,
}

impl LayerNorm {
    /// With PyTorch's defaults (`eps = 1e-5`, learnable weight and bias).
    #[track_caller]
    pub fn new(g: &GraphBuilder, name: &str, normalized_shape: &[usize]) -> LayerNorm {
        LayerNorm::with_options(g, name, normalized_shape, 1e-5, true)
    }

    /// With `eps` and `elementwise_affine` given.
    #[track_caller]
    pub fn with_options(
        g: &GraphBuilder,
        name: &str,
        normalized_shape: &[usize],
        eps: f64,
        elementwise_affine: bool,
    ) -> LayerNorm {
        let shape = normalized_shape.to_vec();
        let (weight, bias) = affine_params(g, name, &shape, elementwise_affine);
        LayerNorm {
            name: name.to_string(),
            normalized_shape: shape,
            eps,
            weight,
            bias,
        }
    }
}

impl Module for LayerNorm {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            &self.normalized_shape,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        named(&self.name, &self.weight, &self.bias)
    }
}

/// `torch.nn.GroupNorm(num_groups, num_channels, eps=1e-5, affine=True)`.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    name: String,
    /// Groups the channels are split into.
    pub num_groups: usize,
    /// Added to the variance.
    pub eps: f64,
    /// `[num_channels]`, ones at first; `None` without affine.
    pub weight: Option<Tensor>,
    /// `[num_channels]`, zeros at first.
    pub bias: Option<Tensor>,
}

impl GroupNorm {
    /// With PyTorch's defaults (`eps = 1e-5`, affine).
    #[track_caller]
    pub fn new(g: &GraphBuilder, name: &str, num_groups: usize, num_channels: usize) -> GroupNorm {
        let (weight, bias) = affine_params(g, name, &[num_channels], true);
        GroupNorm {
            name: name.to_string(),
            num_groups,
            eps: 1e-5,
            weight,
            bias,
        }
    }
}

impl Module for GroupNorm {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.group_norm(
            self.num_groups,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        named(&self.name, &self.weight, &self.bias)
    }
}

/// `weight` (ones) and `bias` (zeros) of `shape`, if `on`.
#[track_caller]
fn affine_params(
    g: &GraphBuilder,
    name: &str,
    shape: &[usize],
    on: bool,
) -> (Option<Tensor>, Option<Tensor>) {
    if !on {
        return (None, None);
    }
    let w = g.parameter(
        &child(name, "weight"),
        Array::full(DType::F32, shape.to_vec(), 1.0),
    );
    let b = g.parameter(
        &child(name, "bias"),
        Array::full(DType::F32, shape.to_vec(), 0.0),
    );
    (Some(w), Some(b))
}

fn named(name: &str, w: &Option<Tensor>, b: &Option<Tensor>) -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    if let Some(w) = w {
        v.push((child(name, "weight"), w.clone()));
    }
    if let Some(b) = b {
        v.push((child(name, "bias"), b.clone()));
    }
    v
}

/// `torch.nn.BatchNorm1d` / `BatchNorm2d(num_features, eps=1e-5, momentum=0.1,
/// affine=True, track_running_stats=True)`.
///
/// Parameters `{name}.weight` (ones) and `{name}.bias` (zeros) when affine; buffers
/// `{name}.running_mean` (zeros), `{name}.running_var` (ones) and
/// `{name}.num_batches_tracked` (i64 0) when tracking, PyTorch's state-dict keys. In
/// train mode the batch statistics normalise and the buffers are updated by every
/// [`crate::TrainStep`] (`momentum = None` is the cumulative average
/// `1 / num_batches_tracked`); in eval mode the running statistics normalise. Without
/// tracking, batch statistics are used in both modes.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    name: String,
    /// `"BatchNorm1d"` or `"BatchNorm2d"` (for errors).
    kind: &'static str,
    /// Input ranks accepted (`[2, 3]` for 1d, `[4]` for 2d).
    ranks: &'static [usize],
    /// Channels (`num_features`).
    pub num_features: usize,
    /// Added to the variance.
    pub eps: f64,
    /// Weight of the batch statistic in the running one; `None` = cumulative average.
    pub momentum: Option<f64>,
    /// `[C]`, ones at first; `None` without affine.
    pub weight: Option<Tensor>,
    /// `[C]`, zeros at first.
    pub bias: Option<Tensor>,
    /// `running_mean`, `running_var`, `num_batches_tracked`; `None` without tracking.
    pub running: Option<(Tensor, Tensor, Tensor)>,
    training: Cell<bool>,
}

/// `torch.nn.BatchNorm1d`: inputs `[N, C]` or `[N, C, L]`.
pub type BatchNorm1d = BatchNorm;
/// `torch.nn.BatchNorm2d`: inputs `[N, C, H, W]`.
pub type BatchNorm2d = BatchNorm;

impl BatchNorm {
    /// `BatchNorm1d(num_features)` with PyTorch's defaults.
    #[track_caller]
    pub fn batch_norm1d(g: &GraphBuilder, name: &str, num_features: usize) -> BatchNorm {
        BatchNorm::build(g, name, num_features, false, 1e-5, Some(0.1), true, true)
    }

    /// `BatchNorm2d(num_features)` with PyTorch's defaults.
    #[track_caller]
    pub fn batch_norm2d(g: &GraphBuilder, name: &str, num_features: usize) -> BatchNorm {
        BatchNorm::build(g, name, num_features, true, 1e-5, Some(0.1), true, true)
    }

    /// Every option: `two_d` picks BatchNorm2d, then `eps`, `momentum` (`None` for the
    /// cumulative average), `affine`, `track_running_stats`.
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn build(
        g: &GraphBuilder,
        name: &str,
        num_features: usize,
        two_d: bool,
        eps: f64,
        momentum: Option<f64>,
        affine: bool,
        track_running_stats: bool,
    ) -> BatchNorm {
        let (weight, bias) = affine_params(g, name, &[num_features], affine);
        let running = track_running_stats.then(|| {
            let c = vec![num_features];
            (
                g.buffer(
                    &child(name, "running_mean"),
                    Array::full(DType::F32, c.clone(), 0.0),
                ),
                g.buffer(&child(name, "running_var"), Array::full(DType::F32, c, 1.0)),
                g.buffer(&child(name, "num_batches_tracked"), Array::scalar_i64(0)),
            )
        });
        BatchNorm {
            name: name.to_string(),
            kind: if two_d { "BatchNorm2d" } else { "BatchNorm1d" },
            ranks: if two_d { &[4] } else { &[2, 3] },
            num_features,
            eps,
            momentum,
            weight,
            bias,
            running,
            training: Cell::new(true),
        }
    }
}

impl Module for BatchNorm {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let loc = SourceLoc::caller();
        if let Err(e) = x.check() {
            return x.builder().poisoned(e);
        }
        if !self.ranks.contains(&x.dim()) {
            let want: Vec<String> = self.ranks.iter().map(|r| format!("{r}-D")).collect();
            return x.fail(
                "batch_norm",
                format!(
                    "{} `{}` expects {} input, got {:?}",
                    self.kind,
                    self.name,
                    want.join(" or "),
                    x.size()
                ),
                loc,
            );
        }
        if x.size()[1] != self.num_features {
            return x.fail(
                "batch_norm",
                format!(
                    "{} `{}` has {} channels, the input {:?} has {} on axis 1",
                    self.kind,
                    self.name,
                    self.num_features,
                    x.size(),
                    x.size()[1]
                ),
                loc,
            );
        }
        let training = self.training.get();
        let mut factor = Factor::Fixed(self.momentum.unwrap_or(0.0));
        if let (true, Some((_, _, nbt))) = (training, &self.running) {
            let g = x.builder();
            let name = child(&self.name, "num_batches_tracked");
            let cur = g.latest_buffer(&name).unwrap_or_else(|| nbt.clone());
            let next = cur.add(1i64);
            if let Err(e) = g.update_buffer(&name, &next) {
                return g.poisoned(e);
            }
            if self.momentum.is_none() {
                factor = Factor::Tensor(next.to_dtype(DType::F32).reciprocal());
            }
        }
        let (rm, rv) = match &self.running {
            Some((m, v, _)) => (Some(m), Some(v)),
            None => (None, None),
        };
        x.batch_norm_at(
            rm,
            rv,
            self.weight.as_ref(),
            self.bias.as_ref(),
            training,
            factor,
            self.eps,
            loc,
        )
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        named(&self.name, &self.weight, &self.bias)
    }

    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        match &self.running {
            Some((m, v, n)) => vec![
                (child(&self.name, "running_mean"), m.clone()),
                (child(&self.name, "running_var"), v.clone()),
                (child(&self.name, "num_batches_tracked"), n.clone()),
            ],
            None => Vec::new(),
        }
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn is_training(&self) -> bool {
        self.training.get()
    }
}
