//! Convolution modules, `torch.nn.Conv1d` / `Conv2d` with PyTorch's parameter names,
//! shapes, default initialisation and `padding_mode`, and the course's depthwise,
//! pointwise and depthwise-separable 1-d convolutions.

use super::{child, Module, TimeMap};
use crate::builder::GraphBuilder;
use crate::init;
use crate::tensor::{ConvOpts, PadMode, Padding, Tensor};
use onde_ir::DType;

/// How a convolution module pads (`padding_mode`): PyTorch's `'zeros'` (the default),
/// `'reflect'`, `'replicate'`, `'circular'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PaddingMode {
    /// Zeros.
    #[default]
    Zeros,
    /// Mirror without repeating the edge.
    Reflect,
    /// Repeat the edge.
    Replicate,
    /// Wrap around.
    Circular,
}

/// `torch.nn.Conv1d` (`nd = 1`) or `Conv2d` (`nd = 2`): `weight` is
/// `[out, in/groups, k…]`, `bias` `[out]`; initialised as PyTorch does in distribution,
/// `U(−1/√fan_in, 1/√fan_in)` for both (`kaiming_uniform_(a=√5)`), `fan_in =
/// in/groups · ∏k`.
#[derive(Debug, Clone)]
pub struct Conv {
    name: String,
    nd: usize,
    kernel: Vec<usize>,
    /// Stride, padding, dilation and groups.
    pub opts: ConvOpts,
    /// How the padding is filled.
    pub padding_mode: PaddingMode,
    /// `[out_channels, in_channels/groups, k…]`.
    pub weight: Tensor,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Tensor>,
}

/// A 1-d convolution module.
pub type Conv1d = Conv;
/// A 2-d convolution module.
pub type Conv2d = Conv;

impl Conv {
    /// `nn.Conv1d(in_channels, out_channels, kernel_size, …)` with bias, parameters
    /// named `{name}.weight` and `{name}.bias`.
    #[track_caller]
    pub fn conv1d(
        g: &GraphBuilder,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        opts: ConvOpts,
    ) -> Conv {
        Conv::build(
            g,
            name,
            in_channels,
            out_channels,
            vec![kernel_size],
            opts,
            true,
        )
    }

    /// `nn.Conv2d(in_channels, out_channels, (kh, kw), …)` with bias.
    #[track_caller]
    pub fn conv2d(
        g: &GraphBuilder,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        opts: ConvOpts,
    ) -> Conv {
        Conv::build(
            g,
            name,
            in_channels,
            out_channels,
            kernel_size.to_vec(),
            opts,
            true,
        )
    }

    /// Any convolution: `kernel_size` has one entry per spatial axis (1 or 2).
    #[track_caller]
    pub fn build(
        g: &GraphBuilder,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel_size: Vec<usize>,
        opts: ConvOpts,
        bias: bool,
    ) -> Conv {
        let groups = opts.groups.max(1);
        let per_group = in_channels / groups;
        let fan_in = per_group * kernel_size.iter().product::<usize>();
        let bound = init::linear_bound(fan_in);
        let mut shape = vec![out_channels, per_group];
        shape.extend(&kernel_size);
        let weight = g.parameter(
            &child(name, "weight"),
            init::uniform(DType::F32, &shape, -bound, bound, g.init_seed()),
        );
        let bias = bias.then(|| {
            g.parameter(
                &child(name, "bias"),
                init::uniform(DType::F32, &[out_channels], -bound, bound, g.init_seed()),
            )
        });
        Conv {
            name: name.to_string(),
            nd: kernel_size.len(),
            kernel: kernel_size,
            opts,
            padding_mode: PaddingMode::Zeros,
            weight,
            bias,
        }
    }

    /// The same layer with another `padding_mode`.
    pub fn padding_mode(mut self, mode: PaddingMode) -> Conv {
        self.padding_mode = mode;
        self
    }

    /// The explicit `(before, after)` padding of every spatial axis, in PyTorch's
    /// `F.pad` order (last axis first), for a non-zero padding mode.
    fn pad_pairs(&self) -> Vec<i64> {
        let nd = self.nd;
        let per = |v: &[usize], j: usize| if v.len() == 1 { v[0] } else { v[j] };
        let mut pairs = Vec::with_capacity(2 * nd);
        for j in (0..nd).rev() {
            let (lo, hi) = match &self.opts.padding {
                Padding::Valid => (0, 0),
                Padding::Explicit(p) => (per(p, j), per(p, j)),
                // PyTorch: total d·(k−1), the extra element after.
                Padding::Same => {
                    let total = per(&self.opts.dilation, j) * (self.kernel[j] - 1);
                    (total / 2, total - total / 2)
                }
            };
            pairs.push(lo as i64);
            pairs.push(hi as i64);
        }
        pairs
    }
}

impl Module for Conv {
    /// The window along the last spatial axis.
    fn time_map(&self) -> TimeMap {
        TimeMap::conv(self.kernel.last().copied().unwrap_or(1), &self.opts)
    }

    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let mode = match self.padding_mode {
            PaddingMode::Zeros => None,
            PaddingMode::Reflect => Some(PadMode::Reflect),
            PaddingMode::Replicate => Some(PadMode::Replicate),
            PaddingMode::Circular => Some(PadMode::Circular),
        };
        let (x, opts) = match mode {
            None => (x.clone(), self.opts.clone()),
            // 'same' with a stride: the convolution itself reports PyTorch's error.
            Some(_)
                if self.opts.padding == Padding::Same
                    && self.opts.stride.iter().any(|&s| s != 1) =>
            {
                (x.clone(), self.opts.clone())
            }
            Some(m) => {
                let opts = ConvOpts {
                    padding: Padding::Valid,
                    ..self.opts.clone()
                };
                (x.pad_mode(self.pad_pairs(), m), opts)
            }
        };
        if self.nd == 2 {
            x.conv2d(&self.weight, self.bias.as_ref(), &opts)
        } else {
            x.conv1d(&self.weight, self.bias.as_ref(), &opts)
        }
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = vec![(child(&self.name, "weight"), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push((child(&self.name, "bias"), b.clone()));
        }
        v
    }
}

/// The course's depthwise 1-d convolution: one filter per channel
/// (`groups = channels`).
#[track_caller]
pub fn depthwise_conv1d(
    g: &GraphBuilder,
    name: &str,
    channels: usize,
    kernel_size: usize,
    opts: ConvOpts,
) -> Conv {
    Conv::conv1d(
        g,
        name,
        channels,
        channels,
        kernel_size,
        opts.groups(channels),
    )
}

/// The course's pointwise convolution: a 1-d convolution of kernel 1 (a per-position
/// linear map of the channels).
#[track_caller]
pub fn pointwise_conv1d(
    g: &GraphBuilder,
    name: &str,
    in_channels: usize,
    out_channels: usize,
) -> Conv {
    Conv::conv1d(g, name, in_channels, out_channels, 1, ConvOpts::default())
}

/// The course's depthwise-separable 1-d convolution: a depthwise convolution
/// (`{name}.depthwise`) then a pointwise one (`{name}.pointwise`).
#[derive(Debug, Clone)]
pub struct SeparableConv1d {
    /// One filter per channel.
    pub depthwise: Conv,
    /// Kernel-1 channel mixing.
    pub pointwise: Conv,
}

impl SeparableConv1d {
    /// `in_channels → out_channels` with a depthwise kernel of `kernel_size`
    /// (stride, padding and dilation from `opts`).
    #[track_caller]
    pub fn new(
        g: &GraphBuilder,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        opts: ConvOpts,
    ) -> SeparableConv1d {
        SeparableConv1d {
            depthwise: depthwise_conv1d(
                g,
                &child(name, "depthwise"),
                in_channels,
                kernel_size,
                opts,
            ),
            pointwise: pointwise_conv1d(g, &child(name, "pointwise"), in_channels, out_channels),
        }
    }
}

impl Module for SeparableConv1d {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.pointwise.forward(&self.depthwise.forward(x))
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = self.depthwise.named_parameters();
        v.extend(self.pointwise.named_parameters());
        v
    }

    fn time_map(&self) -> TimeMap {
        TimeMap::Chain(vec![self.depthwise.time_map(), self.pointwise.time_map()])
    }
}
