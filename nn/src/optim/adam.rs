//! Adam and AdamW (`torch.optim.Adam`, `torch.optim.AdamW`).
//!
//! # One deviation from PyTorch's arithmetic
//! PyTorch computes `denom = √v / √(1-β₂ᵗ) + eps`; here it is `√v · r + eps` with
//! `r = 1/√(1-β₂ᵗ)` computed once per step in f64 and rounded to the parameter's
//! dtype. The two agree to within an ulp of `denom` (the W1 parity test against
//! PyTorch's own step still holds at 1e-5), and the update kernel loses one of its two
//! divisions per element: W1's fused Adam kernel is bound by the divider (√ and ÷ on
//! 128-bit vectors), and its share of the training step went from 20.5% to 16.5%
//! (`onde bench W1 --profile`). The update itself is `p - step·m / denom`, product
//! first, as PyTorch's CPU `addcdiv` kernel computes `self + value·t1 / t2`.

use super::{as_dtype, Optimizer, UpdateInputs};
use crate::tensor::Tensor;

/// Adam (`decoupled = false`) or AdamW (`decoupled = true`), PyTorch's defaults:
/// `lr = 1e-3`, `betas = (0.9, 0.999)`, `eps = 1e-8`, weight decay 0 (Adam) / 1e-2
/// (AdamW).
///
/// One step, with `t` the step number from 1:
/// `p ← p·(1 - lr·wd)` (AdamW) or `g ← g + wd·p` (Adam);
/// `m ← m + (1-β₁)(g - m)`; `v ← β₂v + (1-β₂)g²`;
/// `p ← p - (lr / (1-β₁ᵗ)) · m / (√v · (1/√(1-β₂ᵗ)) + eps)` (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    /// `(β₁, β₂)`.
    pub betas: (f64, f64),
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay (L2 for Adam, decoupled for AdamW).
    pub weight_decay: f64,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
}

impl Adam {
    /// Adam with PyTorch's defaults and rate `lr`.
    pub fn new(lr: f64) -> Adam {
        Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// AdamW with PyTorch's defaults (weight decay 0.01) and rate `lr`.
    pub fn adamw(lr: f64) -> Adam {
        Adam {
            weight_decay: 1e-2,
            decoupled: true,
            ..Adam::new(lr)
        }
    }

    /// With these betas.
    pub fn betas(mut self, b1: f64, b2: f64) -> Adam {
        self.betas = (b1, b2);
        self
    }

    /// With this epsilon.
    pub fn eps(mut self, eps: f64) -> Adam {
        self.eps = eps;
        self
    }

    /// With this weight decay.
    pub fn weight_decay(mut self, wd: f64) -> Adam {
        self.weight_decay = wd;
        self
    }
}

impl Optimizer for Adam {
    fn name(&self) -> &'static str {
        if self.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn with_weight_decay(&self, wd: f64) -> Result<Box<dyn Optimizer>, String> {
        Ok(Box::new(Adam {
            weight_decay: wd,
            ..*self
        }))
    }
    fn validate(&self) -> Result<(), String> {
        let (b1, b2) = self.betas;
        if !(0.0..1.0).contains(&b1) || !(0.0..1.0).contains(&b2) {
            return Err(format!("Adam: betas must be in [0, 1), got ({b1}, {b2})"));
        }
        if self.lr < 0.0 || self.eps < 0.0 || self.weight_decay < 0.0 {
            return Err(format!(
                "Adam: lr, eps and weight decay must be >= 0 (lr {}, eps {}, weight_decay {})",
                self.lr, self.eps, self.weight_decay
            ));
        }
        Ok(())
    }
    fn globals(&self) -> Vec<(&'static str, f64)> {
        vec![("step", 0.0)]
    }
    fn slots(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_avg_sq"]
    }
    fn update(
        &self,
        p: &Tensor,
        grad: &Tensor,
        slots: &[Tensor],
        inputs: &UpdateInputs,
    ) -> (Tensor, Vec<Tensor>) {
        let (b1, b2) = self.betas;
        let t = &inputs.new_globals[0];
        // Scalars in f64, as PyTorch computes them in Python floats.
        let bc1 = 1.0f64 - t.builder().scalar(b1, onde_ir::DType::F64).pow(t);
        let bc2 = 1.0f64 - t.builder().scalar(b2, onde_ir::DType::F64).pow(t);
        let step_size = as_dtype(&(inputs.lr / &bc1), p);
        // PyTorch divides `√v` by `√bc2`; multiplying by the reciprocal (computed once,
        // in f64) gives the same `denom` to within an ulp and spares one of the
        // per-element divisions, which bound the update kernel (W1's Adam kernel,
        // `onde bench W1 --profile`: see the module doc).
        let inv_bc2_sqrt = as_dtype(&(1.0f64 / bc2.sqrt()), p);
        let mut p = p.clone();
        let mut g = grad.clone();
        if self.weight_decay != 0.0 {
            if self.decoupled {
                let f = as_dtype(&(1.0f64 - inputs.lr * self.weight_decay), &p);
                p = p * f;
            } else {
                g = g + &p * self.weight_decay;
            }
        }
        let (m, v) = (&slots[0], &slots[1]);
        let m = m + (&g - m) * (1.0 - b1);
        let v = v * b2 + &g * &g * (1.0 - b2);
        let denom = v.sqrt() * inv_bc2_sqrt + self.eps;
        // `addcdiv(p, m, denom, value = -step_size)`: PyTorch's CPU kernel computes
        // `p + value·m / denom`, product first.
        let p = p - step_size * &m / denom;
        (p, vec![m, v])
    }
}
