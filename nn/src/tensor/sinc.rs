//! SincNet's parametrised band-pass filters (Ravanelli & Bengio, "Speaker Recognition
//! from Raw Waveform with SincNet", 2018), as in the reference implementation
//! (`SincConv_fast`), which SpeechBrain also follows:
//!
//! - cut-offs `low = min_low_hz + |low_hz_|`,
//!   `high = clamp(low + min_band_hz + |band_hz_|, min_low_hz, sample_rate / 2)`;
//! - the left half of each filter at `n_k = 2π·t_k / sample_rate` for the taps
//!   `t = −(K−1)/2 … −1`: `(sin(high·n) − sin(low·n)) / (n / 2) · w`, the centre tap
//!   `2·(high − low)`, the right half mirrored; everything divided by `2·(high − low)`;
//! - `w` the reference's Hamming window `0.54 − 0.46·cos(2π·m / K)` on
//!   `m = linspace(0, K/2 − 1, ⌊K/2⌋)` — not integer steps (for K = 251 the step is
//!   124.5/124): kept so trained SincNet weights give the same filters.
//!
//! Everything is composed from differentiable ops, so gradients reach the cut-offs.

use super::Tensor;
use onde_ir::{Array, SourceLoc};

/// The reference's window and time axis for an odd `kernel_size`: `(n [1, K/2],
/// window [K/2])` as f64 values.
fn taps(kernel_size: usize, sample_rate: f64) -> (Vec<f64>, Vec<f64>) {
    let half = kernel_size / 2;
    let k = kernel_size as f64;
    let end = k / 2.0 - 1.0;
    let window = (0..half)
        .map(|i| {
            let m = if half > 1 {
                end * i as f64 / (half - 1) as f64
            } else {
                0.0
            };
            0.54 - 0.46 * (2.0 * std::f64::consts::PI * m / k).cos()
        })
        .collect();
    let c = (k - 1.0) / 2.0;
    let n = (0..half)
        .map(|i| 2.0 * std::f64::consts::PI * (-c + i as f64) / sample_rate)
        .collect();
    (n, window)
}

impl Tensor {
    /// SincNet's filters `[C, 1, K]` from `low_hz_` and `band_hz_` (`self` and `band_hz`,
    /// each `[C, 1]`), for an odd `kernel_size` (see the module docs for the formula).
    #[track_caller]
    pub fn sinc_band_pass(
        &self,
        band_hz: &Tensor,
        kernel_size: usize,
        sample_rate: f64,
        min_low_hz: f64,
        min_band_hz: f64,
    ) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "sinc_band_pass";
        for t in [self, band_hz] {
            if let Err(e) = t.check() {
                return self.builder().poisoned(e);
            }
        }
        let (ls, bs) = (self.size(), band_hz.size());
        if ls.len() != 2 || ls[1] != 1 || bs != ls || !self.dtype().is_float() {
            return self.fail(
                api,
                format!("low_hz_ and band_hz_ must both be float [C, 1], got {ls:?} and {bs:?}"),
                loc,
            );
        }
        if kernel_size < 3 || kernel_size.is_multiple_of(2) {
            return self.fail(
                api,
                format!("kernel_size must be odd and at least 3, got {kernel_size}"),
                loc,
            );
        }
        let positive = sample_rate > 0.0 && min_low_hz >= 0.0 && min_band_hz >= 0.0;
        if !positive {
            return self.fail(
                api,
                format!(
                    "sample_rate must be positive and min_low_hz, min_band_hz non-negative, \
                     got {sample_rate}, {min_low_hz}, {min_band_hz}"
                ),
                loc,
            );
        }
        let dt = self.dtype();
        let (n, window) = taps(kernel_size, sample_rate);
        let half = n.len();
        let konst = |shape: Vec<usize>, v: &[f64]| match Array::from_f64(dt, shape, v) {
            Ok(a) => self.const_at(a, loc.clone()),
            Err(e) => self.fail(api, e.to_string(), loc.clone()),
        };
        let n = konst(vec![1, half], &n);
        let window = konst(vec![half], &window);
        let low = self.abs() + min_low_hz;
        let high = (&low + min_band_hz + band_hz.abs()).clamp(min_low_hz, sample_rate / 2.0);
        let band = &high - &low;
        let left = (high.matmul(&n).sin() - low.matmul(&n).sin()) / (&n * 0.5) * &window;
        let reversed: Vec<i64> = (0..half as i64).rev().collect();
        let idx = match Array::i64([half], reversed) {
            Ok(a) => self.const_at(a, loc.clone()),
            Err(e) => return self.fail(api, e.to_string(), loc),
        };
        let right = left.index_select(1, &idx);
        let center = &band * 2.0;
        let filters = super::cat(&[&left, &center, &right], 1) / (&band * 2.0);
        let c = ls[0] as i64;
        filters.reshape(vec![c, 1, kernel_size as i64])
    }
}

#[cfg(test)]
mod tests {
    use super::taps;

    #[test]
    fn the_reference_window_and_taps() {
        // K = 5: m = linspace(0, 1.5, 2) = [0, 1.5]; t = [-2, -1].
        let (n, w) = taps(5, 100.0);
        let tau = 2.0 * std::f64::consts::PI;
        assert!((w[0] - 0.08).abs() < 1e-12);
        assert!((w[1] - (0.54 - 0.46 * (tau * 1.5 / 5.0).cos())).abs() < 1e-12);
        assert!((n[0] + 2.0 * tau / 100.0).abs() < 1e-12);
        assert!((n[1] + tau / 100.0).abs() < 1e-12);
    }
}
