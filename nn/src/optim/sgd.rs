//! Gradient descent and SGD with momentum, Nesterov and weight decay
//! (`torch.optim.SGD`).

use super::{as_dtype, Optimizer, UpdateInputs};
use crate::tensor::Tensor;
use crate::where_;

/// `torch.optim.SGD(lr, momentum, dampening, weight_decay, nesterov)`; with the
/// defaults it is plain gradient descent `p ← p - lr·g`.
///
/// With momentum: `g ← g + wd·p`; `buf ← g` on the first step, else
/// `buf ← momentum·buf + (1-dampening)·g`; then `g ← g + momentum·buf` (Nesterov) or
/// `g ← buf`; `p ← p - lr·g`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0: none).
    pub momentum: f64,
    /// Dampening of the momentum.
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`, as in PyTorch).
    pub nesterov: bool,
}

impl Sgd {
    /// Plain gradient descent with rate `lr`.
    pub fn new(lr: f64) -> Sgd {
        Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    /// With momentum.
    pub fn momentum(mut self, momentum: f64) -> Sgd {
        self.momentum = momentum;
        self
    }

    /// With Nesterov momentum.
    pub fn nesterov(mut self, on: bool) -> Sgd {
        self.nesterov = on;
        self
    }

    /// With weight decay.
    pub fn weight_decay(mut self, wd: f64) -> Sgd {
        self.weight_decay = wd;
        self
    }

    /// With dampening.
    pub fn dampening(mut self, d: f64) -> Sgd {
        self.dampening = d;
        self
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "sgd"
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn with_weight_decay(&self, wd: f64) -> Result<Box<dyn Optimizer>, String> {
        Ok(Box::new(Sgd {
            weight_decay: wd,
            ..*self
        }))
    }
    fn validate(&self) -> Result<(), String> {
        if self.lr < 0.0 || self.momentum < 0.0 || self.weight_decay < 0.0 {
            return Err(format!(
                "SGD: lr, momentum and weight decay must be >= 0 (lr {}, momentum {}, weight_decay {})",
                self.lr, self.momentum, self.weight_decay
            ));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err("SGD: Nesterov momentum requires a momentum and zero dampening".into());
        }
        Ok(())
    }
    fn globals(&self) -> Vec<(&'static str, f64)> {
        if self.momentum != 0.0 {
            vec![("step", 0.0)]
        } else {
            Vec::new()
        }
    }
    fn slots(&self) -> Vec<&'static str> {
        if self.momentum != 0.0 {
            vec!["momentum_buffer"]
        } else {
            Vec::new()
        }
    }
    fn update(
        &self,
        p: &Tensor,
        grad: &Tensor,
        slots: &[Tensor],
        inputs: &UpdateInputs,
    ) -> (Tensor, Vec<Tensor>) {
        let lr = as_dtype(inputs.lr, p);
        let mut g = grad.clone();
        if self.weight_decay != 0.0 {
            g = g + p * self.weight_decay;
        }
        let mut new_slots = Vec::new();
        if self.momentum != 0.0 {
            let buf = &slots[0];
            let first = inputs.globals[0].eq(0.0);
            let next = buf * self.momentum + &g * (1.0 - self.dampening);
            let buf = where_(&first, &g, &next);
            g = if self.nesterov {
                g + &buf * self.momentum
            } else {
                buf.clone()
            };
            new_slots.push(buf);
        }
        (p - lr * g, new_slots)
    }
}
