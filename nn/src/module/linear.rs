//! [`Linear`]: `y = x Wᵀ + b` with PyTorch's layout and default initialisation.

use super::{child, Module};
use crate::builder::GraphBuilder;
use crate::init;
use crate::tensor::Tensor;
use onde_ir::DType;

/// A fully connected layer, `torch.nn.Linear(in_features, out_features, bias)`:
/// `weight` is `[out, in]`, `bias` `[out]`; `y = x @ weight.T + bias` over the last axis
/// of `x`.
///
/// Initialisation equals PyTorch's in distribution: `kaiming_uniform_(a=√5)` for the
/// weight, i.e. `U(-1/√in, 1/√in)`, and `U(-1/√in, 1/√in)` for the bias.
#[derive(Debug, Clone)]
pub struct Linear {
    name: String,
    /// `[out_features, in_features]`.
    pub weight: Tensor,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer with bias, parameters named `{name}.weight` and `{name}.bias`.
    #[track_caller]
    pub fn new(g: &GraphBuilder, name: &str, in_features: usize, out_features: usize) -> Linear {
        Linear::with_bias(g, name, in_features, out_features, true)
    }

    /// A layer with or without bias.
    #[track_caller]
    pub fn with_bias(
        g: &GraphBuilder,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Linear {
        let bound = init::linear_bound(in_features);
        let weight = g.parameter(
            &child(name, "weight"),
            init::uniform(
                DType::F32,
                &[out_features, in_features],
                -bound,
                bound,
                g.init_seed(),
            ),
        );
        let bias = bias.then(|| {
            g.parameter(
                &child(name, "bias"),
                init::uniform(DType::F32, &[out_features], -bound, bound, g.init_seed()),
            )
        });
        Linear {
            name: name.to_string(),
            weight,
            bias,
        }
    }
}

impl Module for Linear {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::functional::linear(x, &self.weight, self.bias.as_ref())
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = vec![(child(&self.name, "weight"), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push((child(&self.name, "bias"), b.clone()));
        }
        v
    }
}
