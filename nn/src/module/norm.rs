//! Normalisation modules: `torch.nn.LayerNorm` and `GroupNorm`, with PyTorch's
//! parameter names and initialisation (`weight` ones, `bias` zeros).

use super::{child, Module};
use crate::builder::GraphBuilder;
use crate::tensor::Tensor;
use onde_ir::{Array, DType};

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
