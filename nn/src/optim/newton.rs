//! Newton's method for small models: `p ← p - lr·(H + λI)⁻¹ ∇L`, with the Hessian
//! `H` from double reverse mode ([`crate::GraphBuilder::hessian`]) and the linear solve
//! built as graph ops ([`solve_unpivoted`]), so the whole Newton step is one compiled
//! graph like any other optimiser's.
//!
//! The Hessian is taken per parameter tensor: with one parameter tensor (the course's
//! logistic regression) this is exact Newton; with several it is block-diagonal Newton
//! (cross-tensor curvature ignored). Cost: one reverse pass per parameter element and
//! `O(n)` solve ops per tensor of `n` elements — meant for models with up to a few
//! hundred parameters.

use super::{as_dtype, Optimizer, UpdateInputs};
use crate::tensor::Tensor;
use crate::Idx;
use onde_ir::{Array, DType};

/// Newton's method (see the module documentation). `lr = 1` is the pure Newton step;
/// `damping` (λ) adds `λI` to the Hessian (Levenberg), which keeps the step defined
/// where the Hessian is singular or not positive definite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Newton {
    /// Step scale (1: full Newton step).
    pub lr: f64,
    /// λ added to the Hessian's diagonal.
    pub damping: f64,
}

impl Newton {
    /// The full Newton step without damping.
    pub fn new() -> Newton {
        Newton {
            lr: 1.0,
            damping: 0.0,
        }
    }

    /// With damping λ.
    pub fn damping(mut self, lambda: f64) -> Newton {
        self.damping = lambda;
        self
    }
}

impl Default for Newton {
    fn default() -> Newton {
        Newton::new()
    }
}

impl Optimizer for Newton {
    fn name(&self) -> &'static str {
        "newton"
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn validate(&self) -> Result<(), String> {
        if self.lr.is_nan() || self.lr < 0.0 {
            return Err(format!("Newton: lr must be >= 0, got {}", self.lr));
        }
        if self.damping < 0.0 {
            return Err(format!(
                "Newton: damping must be >= 0, got {}",
                self.damping
            ));
        }
        Ok(())
    }
    fn slots(&self) -> Vec<&'static str> {
        Vec::new()
    }
    fn needs_hessian(&self) -> bool {
        true
    }
    fn update(
        &self,
        p: &Tensor,
        grad: &Tensor,
        _slots: &[Tensor],
        inputs: &UpdateInputs,
    ) -> (Tensor, Vec<Tensor>) {
        let Some(h) = inputs.hessian else {
            let bad = p.fail(
                "Newton",
                "the Hessian was not built (TrainStep builds it when needs_hessian())".into(),
                onde_ir::SourceLoc::caller(),
            );
            return (bad, Vec::new());
        };
        let n = p.numel();
        let h = if self.damping != 0.0 {
            let eye = identity(p, n);
            h + eye * self.damping
        } else {
            h.clone()
        };
        let d = solve_unpivoted(&h, &grad.flatten(0, -1));
        let shape: Vec<i64> = p.size().iter().map(|&s| s as i64).collect();
        let lr = as_dtype(inputs.lr, p);
        (p - lr * d.reshape(shape), Vec::new())
    }
}

fn identity(like: &Tensor, n: usize) -> Tensor {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let a = Array::from_f64(like.dtype(), [n, n], &v)
        .unwrap_or_else(|_| Array::full(DType::F32, [n, n], 0.0));
    like.builder().constant(a)
}

/// Solves `a x = b` (`a` `[n, n]`, `b` `[n]`) by Gauss–Jordan elimination without
/// pivoting, unrolled into `O(n)` graph ops on the augmented matrix `[a | b]`.
///
/// Without pivoting this is stable for symmetric positive definite `a` (a Newton
/// step's Hessian near a minimum, or any Hessian with enough damping); a zero pivot
/// gives inf/NaN, as an unguarded division would.
pub fn solve_unpivoted(a: &Tensor, b: &Tensor) -> Tensor {
    let n = b.numel();
    let mut m = crate::cat(&[a, &b.reshape([n as i64, 1])], 1);
    for k in 0..n {
        let ki = k as i64;
        let pivot = m.index([Idx::At(ki), Idx::At(ki)]);
        let row = m.index([Idx::At(ki)]) / &pivot; // [n + 1]
        let col = m.narrow(1, ki, 1); // [n, 1]
        let mut e = vec![0.0; n];
        e[k] = 1.0;
        let ek = Array::from_f64(m.dtype(), [n, 1], &e)
            .unwrap_or_else(|_| Array::full(DType::F32, [n, 1], 0.0));
        let ek = m.builder().constant(ek);
        // Row k becomes `row`; every other row r loses m[r, k]·row.
        m = &m - (col - ek) * row.unsqueeze(0);
    }
    m.narrow(1, n as i64, 1).reshape([n as i64])
}
