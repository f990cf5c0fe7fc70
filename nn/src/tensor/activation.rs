//! Activations beyond the elementwise primitives: softmax (its own IR op, run in one
//! pass per line by codegen), log-softmax, LeakyReLU and PReLU (composed from IR ops,
//! so autodiff and fusion need nothing new).

use super::Tensor;
use crate::args::Arg;
use onde_ir::{Op, SourceLoc};

impl Tensor {
    /// `log(softmax(x))` along `dim` (`F.log_softmax(x, dim)`), computed as
    /// `(x - m) - log Σ exp(x - m)` with `m` the row maximum held fixed (the result does
    /// not depend on it, so the gradient is exact at every order): stable for large
    /// inputs, and, as in PyTorch, a row holding NaN or `+inf`, or only `-inf`, is NaN.
    /// Integer inputs compute in f32.
    #[track_caller]
    pub fn log_softmax(&self, dim: i64) -> Tensor {
        let x = self.float_math();
        if x.extent(dim) == Some(0) {
            return x;
        }
        let shifted = &x - x.max([dim], true).detach();
        let lse = shifted.exp().sum([dim], true).log();
        shifted - lse
    }

    /// `exp(x) / Σ exp(x)` along `dim` (`F.softmax(x, dim)`), one IR op
    /// ([`onde_ir::Op::Softmax`]): computed as PyTorch does, `e = exp(x - m)` with `m`
    /// the row maximum, then `e / Σe` (the f32 vector code, like PyTorch's CPU kernel,
    /// multiplies by `1/Σe`): no overflow, and full relative precision for large logits
    /// (`exp(x - logsumexp)` loses it). A row holding NaN or `+inf`, or only
    /// `-inf`, is NaN, as in PyTorch. Integer inputs compute in f32; a 0-d tensor
    /// (`dim` 0 or -1) is 1.
    #[track_caller]
    pub fn softmax(&self, dim: i64) -> Tensor {
        let loc = SourceLoc::caller();
        let x = self.float_math();
        if x.dim() == 0 {
            return match Tensor::norm_axis(dim, 1) {
                Ok(_) => x.reshape([1]).softmax(0).reshape(Vec::<i64>::new()),
                Err(e) => x.fail("softmax", e, loc),
            };
        }
        let axis = match Tensor::norm_axis(dim, x.dim()) {
            Ok(a) => a,
            Err(e) => return x.fail("softmax", e, loc),
        };
        Tensor::apply_at("softmax", Op::Softmax { axis }, &[&x], loc)
    }

    /// The extent of axis `dim` (negative counts from the end), if it is an axis.
    fn extent(&self, dim: i64) -> Option<usize> {
        Tensor::norm_axis(dim, self.dim())
            .ok()
            .and_then(|a| self.size().get(a).copied())
    }

    /// `self`, or `self` in f32 if it is not a float tensor.
    #[track_caller]
    fn float_math(&self) -> Tensor {
        if self.dtype().is_float() {
            self.clone()
        } else {
            self.float()
        }
    }

    /// `x` where `x > 0`, else `negative_slope * x` (`F.leaky_relu`, default slope 0.01).
    #[track_caller]
    pub fn leaky_relu(&self, negative_slope: f64) -> Tensor {
        let pos = self.gt(0.0);
        super::where_(&pos, self, self * negative_slope)
    }

    /// PReLU with a learnable slope `weight` (`F.prelu`): `x` where `x > 0`, else
    /// `weight * x`. `weight` has 1 element, or one per channel (axis 1 of `x`).
    #[track_caller]
    pub fn prelu(&self, weight: &Tensor) -> Tensor {
        let loc = SourceLoc::caller();
        let n = weight.numel();
        let w = if n == 1 || self.dim() < 2 {
            weight.reshape(Vec::<i64>::new())
        } else {
            let c = self.size()[1];
            if c != n || weight.dim() != 1 {
                return self.fail(
                    "prelu",
                    format!(
                        "weight has {n} elements ({:?}) but the input has {c} channels (axis 1)",
                        weight.size()
                    ),
                    loc,
                );
            }
            let mut shape = vec![1i64; self.dim()];
            shape[1] = n as i64;
            weight.reshape(shape)
        };
        let pos = self.gt(0.0);
        let neg = self * Arg::Tensor(w);
        super::where_(&pos, self, neg)
    }
}
