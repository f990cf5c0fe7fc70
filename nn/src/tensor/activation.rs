//! Activations beyond the elementwise primitives: softmax, log-softmax, LeakyReLU and
//! PReLU, composed from IR ops (so autodiff and fusion need nothing new).

use super::Tensor;
use crate::args::Arg;
use onde_ir::SourceLoc;

impl Tensor {
    /// `log(softmax(x))` along `dim`, computed as `x - logsumexp(x, dim)` (stable for
    /// large inputs), like `F.log_softmax(x, dim)`.
    #[track_caller]
    pub fn log_softmax(&self, dim: i64) -> Tensor {
        let lse = self.logsumexp([dim], true);
        self - &lse
    }

    /// `exp(x) / sum(exp(x))` along `dim`, like `F.softmax(x, dim)` (computed as
    /// `exp(log_softmax(x))`, so it never overflows).
    #[track_caller]
    pub fn softmax(&self, dim: i64) -> Tensor {
        self.log_softmax(dim).exp()
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
