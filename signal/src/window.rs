//! Analysis windows as host-side coefficient vectors (they become graph constants):
//! Hann, Hamming, Blackman (as `torch.*_window`, periodic or symmetric), Kaldi's Povey
//! window and the rectangular one.

/// A window function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    /// `0.5 − 0.5 cos(2πn/M)` (`torch.hann_window`).
    #[default]
    Hann,
    /// `0.54 − 0.46 cos(2πn/M)` (`torch.hamming_window`).
    Hamming,
    /// `0.42 − 0.5 cos(2πn/M) + 0.08 cos(4πn/M)` (`torch.blackman_window`).
    Blackman,
    /// Kaldi's: a symmetric Hann window to the power 0.85 (always symmetric, as
    /// `torchaudio.compliance.kaldi`).
    Povey,
    /// All ones.
    Rectangular,
}

impl Window {
    /// The window's `length` coefficients. `periodic` (PyTorch's default) uses
    /// `M = length`, as for spectral analysis; symmetric uses `M = length − 1`, as for
    /// filter design. A window of length 1 is `[1]`.
    pub fn coefficients(self, length: usize, periodic: bool) -> Vec<f64> {
        if length == 0 {
            return Vec::new();
        }
        if length == 1 {
            return vec![1.0];
        }
        let m = |periodic: bool| (if periodic { length } else { length - 1 }) as f64;
        let tau = std::f64::consts::TAU;
        (0..length)
            .map(|n| {
                let n = n as f64;
                match self {
                    Window::Hann => 0.5 - 0.5 * (tau * n / m(periodic)).cos(),
                    Window::Hamming => 0.54 - 0.46 * (tau * n / m(periodic)).cos(),
                    Window::Blackman => {
                        let x = tau * n / m(periodic);
                        0.42 - 0.5 * x.cos() + 0.08 * (2.0 * x).cos()
                    }
                    Window::Povey => (0.5 - 0.5 * (tau * n / m(false)).cos()).powf(0.85),
                    Window::Rectangular => 1.0,
                }
            })
            .collect()
    }
}
