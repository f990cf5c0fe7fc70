//! Activation modules (parameter-free, except [`PRelu`]'s learnable slope).

use super::{child, Module};
use crate::builder::GraphBuilder;
use crate::tensor::Tensor;
use onde_ir::{Array, DType};

/// `torch.nn.Sigmoid`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sigmoid;
impl Module for Sigmoid {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.sigmoid()
    }
}

/// `torch.nn.Tanh`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tanh;
impl Module for Tanh {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.tanh()
    }
}

/// `torch.nn.ReLU`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Relu;
impl Module for Relu {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.relu()
    }
}

/// `torch.nn.LeakyReLU(negative_slope)` (PyTorch's default slope is 0.01).
#[derive(Debug, Clone, Copy)]
pub struct LeakyRelu {
    /// Slope for negative inputs.
    pub negative_slope: f64,
}
impl Default for LeakyRelu {
    fn default() -> LeakyRelu {
        LeakyRelu {
            negative_slope: 0.01,
        }
    }
}
impl Module for LeakyRelu {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.leaky_relu(self.negative_slope)
    }
}

/// `torch.nn.PReLU(num_parameters, init=0.25)`: a learnable slope for negative inputs,
/// one shared or one per channel (axis 1), parameter `{name}.weight`.
#[derive(Debug, Clone)]
pub struct PRelu {
    name: String,
    /// The slopes, `[num_parameters]`.
    pub weight: Tensor,
}
impl PRelu {
    /// `num_parameters` slopes initialised to `init`.
    #[track_caller]
    pub fn new(g: &GraphBuilder, name: &str, num_parameters: usize, init: f64) -> PRelu {
        PRelu {
            name: name.to_string(),
            weight: g.parameter(
                &child(name, "weight"),
                Array::full(DType::F32, [num_parameters], init),
            ),
        }
    }
}
impl Module for PRelu {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.prelu(&self.weight)
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![(child(&self.name, "weight"), self.weight.clone())]
    }
}

/// `torch.nn.Softmax(dim)`.
#[derive(Debug, Clone, Copy)]
pub struct Softmax {
    /// The axis normalised over.
    pub dim: i64,
}
impl Module for Softmax {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.softmax(self.dim)
    }
}

/// `torch.nn.LogSoftmax(dim)`.
#[derive(Debug, Clone, Copy)]
pub struct LogSoftmax {
    /// The axis normalised over.
    pub dim: i64,
}
impl Module for LogSoftmax {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.log_softmax(self.dim)
    }
}
