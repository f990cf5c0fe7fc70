//! Matrix products and convolutions.

use super::Tensor;
use crate::args::Arg;
use onde_ir::{BinaryOp, ConvParams, Op, SourceLoc};

/// Padding of a convolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding (PyTorch's `'valid'`).
    Valid,
    /// Output length equals input length (`'same'`, stride 1 only); an odd total pad
    /// puts the extra element after, as PyTorch does.
    Same,
    /// Zeros on both sides, one value per spatial axis (or one value for all).
    Explicit(Vec<usize>),
}

/// Options of [`Tensor::conv1d`]/[`Tensor::conv2d`] with PyTorch's defaults (stride 1,
/// no padding, dilation 1, one group). Single values apply to every spatial axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvOpts {
    /// Stride per spatial axis (or one for all).
    pub stride: Vec<usize>,
    /// Padding.
    pub padding: Padding,
    /// Dilation per spatial axis (or one for all).
    pub dilation: Vec<usize>,
    /// Groups (`groups == channels` is a depthwise convolution).
    pub groups: usize,
}

impl Default for ConvOpts {
    fn default() -> ConvOpts {
        ConvOpts {
            stride: vec![1],
            padding: Padding::Explicit(vec![0]),
            dilation: vec![1],
            groups: 1,
        }
    }
}

impl ConvOpts {
    /// Same stride on every axis.
    pub fn stride(mut self, s: usize) -> ConvOpts {
        self.stride = vec![s];
        self
    }
    /// Same zero padding on both sides of every axis.
    pub fn padding(mut self, p: usize) -> ConvOpts {
        self.padding = Padding::Explicit(vec![p]);
        self
    }
    /// `'same'` padding.
    pub fn same(mut self) -> ConvOpts {
        self.padding = Padding::Same;
        self
    }
    /// Same dilation on every axis.
    pub fn dilation(mut self, d: usize) -> ConvOpts {
        self.dilation = vec![d];
        self
    }
    /// Number of groups.
    pub fn groups(mut self, g: usize) -> ConvOpts {
        self.groups = g;
        self
    }
}

fn per_axis(v: &[usize], n: usize, what: &str) -> Result<Vec<usize>, String> {
    match v.len() {
        1 => Ok(vec![v[0]; n]),
        k if k == n => Ok(v.to_vec()),
        k => Err(format!("{what} has {k} entries for {n} spatial axes")),
    }
}

impl Tensor {
    /// Matrix product with PyTorch's `torch.matmul` rules: 1-D operands are promoted
    /// to a row/column and the added axis removed again; batch axes broadcast.
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "matmul";
        let (ra, rb) = (self.dim(), other.dim());
        let d = self.dtype().promote(other.dtype());
        let a = self.cast_at(d, loc.clone());
        let b = other.cast_at(d, loc.clone());
        if ra == 0 || rb == 0 {
            return a.fail(api, "both arguments need at least 1 dimension".into(), loc);
        }
        let a2 = if ra == 1 {
            a.reshape_at(api, &[1, -1], loc.clone())
        } else {
            a
        };
        let b2 = if rb == 1 {
            b.reshape_at(api, &[-1, 1], loc.clone())
        } else {
            b
        };
        let r = Tensor::apply_at(api, Op::MatMul, &[&a2, &b2], loc.clone());
        // A failed product (e.g. `[3] @ [4]`) has no shape to remove axes from.
        if (ra > 1 && rb > 1) || r.check().is_err() {
            return r;
        }
        let mut dims: Vec<i64> = r.shape().dims().iter().map(|&x| x as i64).collect();
        let n = dims.len();
        // Remove the added column axis (last), then the added row axis (second-to-last).
        if rb == 1 {
            dims.remove(n - 1);
        }
        if ra == 1 {
            dims.remove(n - 2);
        }
        r.reshape_at(api, &dims, loc)
    }

    fn conv_at(
        &self,
        api: &'static str,
        n: usize,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvOpts,
        loc: SourceLoc,
    ) -> Tensor {
        let fail = |e: String| self.fail(api, e, loc.clone());
        if self.dim() != n + 2 {
            return fail(format!(
                "expects a batched input of rank {} ([B, C_in, {}]), got rank {}",
                n + 2,
                if n == 1 { "T" } else { "H, W" },
                self.dim()
            ));
        }
        let stride = match per_axis(&opts.stride, n, "stride") {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        let dilation = match per_axis(&opts.dilation, n, "dilation") {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        let padding = match &opts.padding {
            Padding::Valid => vec![(0, 0); n],
            Padding::Explicit(p) => match per_axis(p, n, "padding") {
                Ok(v) => v.into_iter().map(|p| (p, p)).collect(),
                Err(e) => return fail(e),
            },
            Padding::Same => {
                if stride.iter().any(|&s| s != 1) {
                    return fail("padding='same' is not supported for strided convolutions".into());
                }
                let k = weight.shape();
                if k.rank() != n + 2 {
                    return fail(format!("weight must have rank {}, got {}", n + 2, k.rank()));
                }
                (0..n)
                    .map(|i| {
                        let total = dilation[i] * k.dims()[i + 2].saturating_sub(1);
                        (total / 2, total - total / 2)
                    })
                    .collect()
            }
        };
        let p = ConvParams {
            stride,
            padding,
            dilation,
            groups: opts.groups,
        };
        let d = self.dtype().promote(weight.dtype());
        let x = self.cast_at(d, loc.clone());
        let w = weight.cast_at(d, loc.clone());
        let y = Tensor::apply_at(api, Op::Conv(p), &[&x, &w], loc.clone());
        match bias {
            None => y,
            Some(b) => {
                let mut view = vec![1i64; n + 2];
                view[1] = -1;
                let b = b.reshape_at(api, &view, loc.clone());
                y.binary_at(api, BinaryOp::Add, Arg::Tensor(b), loc)
            }
        }
    }

    /// 1-D convolution (cross-correlation) of `[B, C_in, T]` with weight
    /// `[C_out, C_in/groups, K]` and optional bias `[C_out]` (`F.conv1d`).
    #[track_caller]
    pub fn conv1d(&self, weight: &Tensor, bias: Option<&Tensor>, opts: &ConvOpts) -> Tensor {
        self.conv_at("conv1d", 1, weight, bias, opts, SourceLoc::caller())
    }

    /// 2-D convolution of `[B, C_in, H, W]` with weight `[C_out, C_in/groups, KH, KW]`
    /// and optional bias `[C_out]` (`F.conv2d`).
    #[track_caller]
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, opts: &ConvOpts) -> Tensor {
        self.conv_at("conv2d", 2, weight, bias, opts, SourceLoc::caller())
    }
}
