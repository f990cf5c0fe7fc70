//! [`SincConv1d`]: SincNet's first layer, a convolution of the raw waveform with
//! band-pass filters whose two cut-offs per filter are the only learnable parameters
//! (`low_hz_`, `band_hz_`, the reference implementation's names and `[C, 1]` shapes).
//! The filters are recomputed from the cut-offs in the graph at every step
//! ([`Tensor::sinc_band_pass`], formula there).

use super::{child, Module, TimeMap};
use crate::builder::GraphBuilder;
use crate::tensor::{ConvOpts, Tensor};
use onde_ir::{Array, DType, SourceLoc};

/// `SincConv_fast(out_channels, kernel_size, sample_rate=16000, in_channels=1,
/// stride=1, padding=0, dilation=1, min_low_hz=50, min_band_hz=50)`.
///
/// Initialisation as the reference: cut-offs equally spaced on the mel scale between
/// 30 Hz and `sample_rate/2 − (min_low_hz + min_band_hz)`; `low_hz_` the lower edges,
/// `band_hz_` the widths. `kernel_size` must be odd (the filters are symmetric about a
/// centre tap): an even one is a typed error, where the reference silently adds one.
#[derive(Debug, Clone)]
pub struct SincConv1d {
    name: String,
    /// `[C, 1]` lower cut-offs before `min_low_hz + |·|`.
    pub low_hz_: Tensor,
    /// `[C, 1]` band widths before `min_band_hz + |·|`.
    pub band_hz_: Tensor,
    /// Filter length (odd).
    pub kernel_size: usize,
    /// Sampling rate of the input, Hz.
    pub sample_rate: f64,
    /// Floor of the low cut-off, Hz.
    pub min_low_hz: f64,
    /// Floor of the band width, Hz.
    pub min_band_hz: f64,
    /// Stride, padding, dilation (groups must stay 1).
    pub opts: ConvOpts,
}

fn to_mel(hz: f64) -> f64 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn to_hz(mel: f64) -> f64 {
    700.0 * (10f64.powf(mel / 2595.0) - 1.0)
}

impl SincConv1d {
    /// `out_channels` filters of `kernel_size` taps at `sample_rate`, with the
    /// reference's defaults (`min_low_hz = min_band_hz = 50`, stride 1, no padding).
    #[track_caller]
    pub fn new(
        g: &GraphBuilder,
        name: &str,
        out_channels: usize,
        kernel_size: usize,
        sample_rate: f64,
    ) -> SincConv1d {
        SincConv1d::build(
            g,
            name,
            out_channels,
            kernel_size,
            sample_rate,
            50.0,
            50.0,
            ConvOpts::default(),
        )
    }

    /// Every option.
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn build(
        g: &GraphBuilder,
        name: &str,
        out_channels: usize,
        kernel_size: usize,
        sample_rate: f64,
        min_low_hz: f64,
        min_band_hz: f64,
        opts: ConvOpts,
    ) -> SincConv1d {
        if kernel_size.is_multiple_of(2) {
            g.poisoned(crate::Error::Op {
                op: "SincConv1d",
                reason: format!(
                    "`{name}`: kernel_size must be odd (the filters are symmetric about a \
                     centre tap), got {kernel_size}; the reference implementation would use {}",
                    kernel_size + 1
                ),
                operands: Vec::new(),
                loc: SourceLoc::caller(),
            });
        }
        let low = to_mel(30.0);
        let high = to_mel(sample_rate / 2.0 - (min_low_hz + min_band_hz));
        let hz: Vec<f64> = (0..=out_channels)
            .map(|i| {
                let t = if out_channels == 0 {
                    0.0
                } else {
                    i as f64 / out_channels as f64
                };
                to_hz(low + (high - low) * t)
            })
            .collect();
        let lows = &hz[..out_channels];
        let bands: Vec<f64> = hz.windows(2).map(|w| w[1] - w[0]).collect();
        let param = |n: &str, v: &[f64]| {
            let a = Array::from_f64(DType::F32, vec![out_channels, 1], v)
                .unwrap_or_else(|_| Array::full(DType::F32, vec![out_channels, 1], 0.0));
            g.parameter(&child(name, n), a)
        };
        SincConv1d {
            name: name.to_string(),
            low_hz_: param("low_hz_", lows),
            band_hz_: param("band_hz_", &bands),
            kernel_size,
            sample_rate,
            min_low_hz,
            min_band_hz,
            opts,
        }
    }

    /// The filters `[C, 1, K]` as a graph value (to plot or inspect them).
    #[track_caller]
    pub fn filters(&self) -> Tensor {
        self.low_hz_.sinc_band_pass(
            &self.band_hz_,
            self.kernel_size,
            self.sample_rate,
            self.min_low_hz,
            self.min_band_hz,
        )
    }
}

impl Module for SincConv1d {
    /// `[B, 1, T]` → `[B, C, T']`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let loc = SourceLoc::caller();
        if let Err(e) = x.check() {
            return x.builder().poisoned(e);
        }
        let s = x.size();
        if s.len() != 3 || s[1] != 1 || self.opts.groups != 1 {
            return x.fail(
                "sinc_conv1d",
                format!(
                    "SincConv1d `{}` filters one channel [B, 1, T] (groups 1), got {s:?}",
                    self.name
                ),
                loc,
            );
        }
        x.conv1d(&self.filters(), None, &self.opts)
    }

    fn time_map(&self) -> TimeMap {
        TimeMap::conv(self.kernel_size, &self.opts)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![
            (child(&self.name, "low_hz_"), self.low_hz_.clone()),
            (child(&self.name, "band_hz_"), self.band_hz_.clone()),
        ]
    }
}
