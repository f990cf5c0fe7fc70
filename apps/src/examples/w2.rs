//! W2 of `../shared/bench/bench.py`, the keyword spotter on raw waveforms, with
//! PyTorch's module names (`conv0`, `bn0`, `blocks.{i}.dw/pw/bn`, `conv_s2`, `fc1`,
//! `fc2`), so its state dict is the PyTorch model's:
//!
//! waveform `[B, 1, T]` → `Conv1d(1, 32, k=11, s=4, p=5)` → BN → ReLU → three blocks
//! `h = x + ReLU(BN(pw(dw(x))))` (`dw`: depthwise k = 9, dilation d ∈ {1, 2, 4},
//! padding 4d; `pw`: pointwise) → `Conv1d(32, 32, k=3, s=2, p=1)` → mean ‖
//! `√(var_biased + 1e-5)` over time → `Linear(64, 64)` → `Linear(64, 12)` →
//! log-softmax. Each output of `conv_s2` sees 243 input samples, 8 apart.

use onde_nn::module::{
    child, depthwise_conv1d, pointwise_conv1d, BatchNorm, Conv, Linear, LogSoftmax, Module, Relu,
    TimeMap,
};
use onde_nn::{ConvOpts, GraphBuilder, Tensor};

/// One residual block: `x + relu(bn(pw(dw(x))))`.
#[derive(Debug, Clone)]
pub struct KwsBlock {
    /// Depthwise, kernel 9, dilation d, padding 4d.
    pub dw: Conv,
    /// Pointwise.
    pub pw: Conv,
    /// Batch norm.
    pub bn: BatchNorm,
}

impl Module for KwsBlock {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x + &self
            .bn
            .forward(&self.pw.forward(&self.dw.forward(x)))
            .relu()
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = self.dw.named_parameters();
        v.extend(self.pw.named_parameters());
        v.extend(self.bn.named_parameters());
        v
    }
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        self.bn.named_buffers()
    }
    fn set_training(&self, t: bool) {
        self.bn.set_training(t);
    }
    fn is_training(&self) -> bool {
        self.bn.is_training()
    }
    fn time_map(&self) -> TimeMap {
        TimeMap::Chain(vec![self.dw.time_map(), self.pw.time_map()])
    }
}

/// W2's statistics pooling: mean ‖ `√(var_biased + 1e-5)` over time.
#[derive(Debug, Clone, Copy)]
pub struct MeanStd;

impl Module for MeanStd {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let mean = x.mean([-1], false);
        let var = x.var([-1], 0, false);
        onde_nn::cat(&[&mean, &(var + 1e-5).sqrt()], 1)
    }
    fn time_map(&self) -> TimeMap {
        TimeMap::Global
    }
}

/// The W2 keyword spotter (see the module docs).
#[derive(Debug, Clone)]
pub struct Kws {
    /// `Conv1d(1, 32, 11, stride 4, padding 5)`.
    pub conv0: Conv,
    /// `BatchNorm1d(32)`.
    pub bn0: BatchNorm,
    /// The three residual blocks.
    pub blocks: Vec<KwsBlock>,
    /// `Conv1d(32, 32, 3, stride 2, padding 1)`.
    pub conv_s2: Conv,
    /// `Linear(64, 64)`.
    pub fc1: Linear,
    /// `Linear(64, 12)`.
    pub fc2: Linear,
}

impl Kws {
    /// The model with PyTorch's default initialisation, parameters under `prefix`.
    #[track_caller]
    pub fn new(g: &GraphBuilder, prefix: &str) -> Kws {
        let n = |s: &str| child(prefix, s);
        let blocks = [1usize, 2, 4]
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                let b = n(&format!("blocks.{i}"));
                KwsBlock {
                    dw: depthwise_conv1d(
                        g,
                        &child(&b, "dw"),
                        32,
                        9,
                        ConvOpts::default().dilation(d).padding(4 * d),
                    ),
                    pw: pointwise_conv1d(g, &child(&b, "pw"), 32, 32),
                    bn: BatchNorm::batch_norm1d(g, &child(&b, "bn"), 32),
                }
            })
            .collect();
        Kws {
            conv0: Conv::conv1d(
                g,
                &n("conv0"),
                1,
                32,
                11,
                ConvOpts::default().stride(4).padding(5),
            ),
            bn0: BatchNorm::batch_norm1d(g, &n("bn0"), 32),
            blocks,
            conv_s2: Conv::conv1d(
                g,
                &n("conv_s2"),
                32,
                32,
                3,
                ConvOpts::default().stride(2).padding(1),
            ),
            fc1: Linear::new(g, &n("fc1"), 64, 64),
            fc2: Linear::new(g, &n("fc2"), 64, 12),
        }
    }
}

impl Module for Kws {
    /// Log-probabilities `[B, 12]`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.named_children()
            .into_iter()
            .fold(x.clone(), |h, (_, m)| m.forward(&h))
    }
    fn named_children(&self) -> Vec<(String, &dyn Module)> {
        let mut v: Vec<(String, &dyn Module)> = vec![
            ("conv0".into(), &self.conv0),
            ("bn0".into(), &self.bn0),
            ("relu".into(), &Relu),
        ];
        for (i, b) in self.blocks.iter().enumerate() {
            v.push((format!("blocks.{i}"), b));
        }
        v.push(("conv_s2".into(), &self.conv_s2));
        v.push(("pool".into(), &MeanStd));
        v.push(("fc1".into(), &self.fc1));
        v.push(("fc2".into(), &self.fc2));
        v.push(("log_softmax".into(), &LogSoftmax { dim: 1 }));
        v
    }
    fn is_training(&self) -> bool {
        self.bn0.is_training()
    }
}
