//! Mel filterbanks and mel spectrograms, as torchaudio's `melscale_fbanks` and
//! `MelSpectrogram` (HTK or Slaney mel scale, optional Slaney area normalisation), and
//! the log-mel spectrogram.

use crate::spectrogram::{power_frames, SpectrogramOpts};
use crate::SignalError;
use onde_ir::Array;

use onde_nn::Tensor;

/// The mel scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MelScale {
    /// `2595 · log10(1 + f / 700)` (torchaudio's default).
    #[default]
    Htk,
    /// Slaney's (librosa's default): linear below 1 kHz, logarithmic above.
    Slaney,
}

/// Filter normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MelNorm {
    /// Triangles of peak 1 (torchaudio's default).
    #[default]
    None,
    /// Each triangle divided by its width in Hz over 2 (constant energy per band).
    Slaney,
}

/// Hz to mels.
pub fn hz_to_mel(f: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + f / 700.0).log10(),
        MelScale::Slaney => {
            let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
            let min_log_mel = min_log_hz / f_sp;
            let logstep = 6.4f64.ln() / 27.0;
            if f >= min_log_hz {
                min_log_mel + (f / min_log_hz).ln() / logstep
            } else {
                f / f_sp
            }
        }
    }
}

/// Mels to Hz.
pub fn mel_to_hz(m: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(m / 2595.0) - 1.0),
        MelScale::Slaney => {
            let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
            let min_log_mel = min_log_hz / f_sp;
            let logstep = 6.4f64.ln() / 27.0;
            if m >= min_log_mel {
                min_log_hz * (logstep * (m - min_log_mel)).exp()
            } else {
                f_sp * m
            }
        }
    }
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![a],
        _ => (0..n)
            .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

/// torchaudio's `melscale_fbanks`: the `[n_freqs, n_mels]` matrix (f64) that maps a
/// one-sided spectrum of `n_freqs` bins from 0 to `sample_rate / 2` to `n_mels`
/// triangular bands between `f_min` and `f_max`, equally spaced in mels.
///
/// # Errors
/// No bins or bands, a non-positive rate, `f_min` not below `f_max`, or `f_max`
/// above the Nyquist frequency.
pub fn melscale_fbanks(
    n_freqs: usize,
    f_min: f64,
    f_max: f64,
    n_mels: usize,
    sample_rate: u32,
    norm: MelNorm,
    scale: MelScale,
) -> Result<Array, SignalError> {
    let fail = |reason: String| SignalError::Invalid {
        what: "melscale_fbanks".into(),
        reason,
    };
    if n_freqs < 2 || n_mels == 0 || sample_rate == 0 {
        return Err(fail(format!(
            "need at least 2 frequency bins, 1 mel band and a positive rate \
             (n_freqs {n_freqs}, n_mels {n_mels}, sample_rate {sample_rate})"
        )));
    }
    let nyquist = f64::from(sample_rate / 2);
    if !(f_min >= 0.0 && f_min < f_max) {
        return Err(fail(format!(
            "need 0 <= f_min < f_max, got {f_min} and {f_max}"
        )));
    }
    if f_max > f64::from(sample_rate) / 2.0 {
        return Err(fail(format!(
            "f_max {f_max} Hz is above the Nyquist frequency of {sample_rate} Hz ({} Hz)",
            f64::from(sample_rate) / 2.0
        )));
    }
    // torchaudio: bins at linspace(0, sample_rate // 2, n_freqs).
    let freqs = linspace(0.0, nyquist, n_freqs);
    let m_pts = linspace(hz_to_mel(f_min, scale), hz_to_mel(f_max, scale), n_mels + 2);
    let f_pts: Vec<f64> = m_pts.iter().map(|&m| mel_to_hz(m, scale)).collect();
    let f_diff: Vec<f64> = f_pts.windows(2).map(|w| w[1] - w[0]).collect();
    let mut fb = vec![0.0; n_freqs * n_mels];
    for (i, &f) in freqs.iter().enumerate() {
        for m in 0..n_mels {
            let down = (f - f_pts[m]) / f_diff[m];
            let up = (f_pts[m + 2] - f) / f_diff[m + 1];
            let mut v = down.min(up).max(0.0);
            if norm == MelNorm::Slaney {
                v *= 2.0 / (f_pts[m + 2] - f_pts[m]);
            }
            fb[i * n_mels + m] = v;
        }
    }
    Array::f64([n_freqs, n_mels], fb).map_err(|e| fail(e.to_string()))
}

/// Options of [`mel_spectrogram`] (torchaudio's `MelSpectrogram`).
#[derive(Debug, Clone, PartialEq)]
pub struct MelOpts {
    /// Sampling rate in Hz.
    pub sample_rate: u32,
    /// The spectrogram (its `power` must be set; 2 by default).
    pub spec: SpectrogramOpts,
    /// Lowest frequency of the filterbank, Hz.
    pub f_min: f64,
    /// Highest frequency (default `sample_rate / 2`).
    pub f_max: Option<f64>,
    /// Number of bands.
    pub n_mels: usize,
    /// Filter normalisation.
    pub norm: MelNorm,
    /// Mel scale.
    pub mel_scale: MelScale,
}

impl Default for MelOpts {
    fn default() -> MelOpts {
        MelOpts::new(16000)
    }
}

impl MelOpts {
    /// torchaudio's defaults at `sample_rate`: `n_fft` 400, hop 200, 128 HTK bands
    /// from 0 Hz to the Nyquist frequency, no normalisation, power 2.
    pub fn new(sample_rate: u32) -> MelOpts {
        MelOpts {
            sample_rate,
            spec: SpectrogramOpts::new(400),
            f_min: 0.0,
            f_max: None,
            n_mels: 128,
            norm: MelNorm::None,
            mel_scale: MelScale::Htk,
        }
    }

    /// The filterbank `[n_freq, n_mels]` these options use.
    ///
    /// # Errors
    /// See [`melscale_fbanks`].
    pub fn filterbank(&self) -> Result<Array, SignalError> {
        melscale_fbanks(
            self.spec.stft.n_fft / 2 + 1,
            self.f_min,
            self.f_max.unwrap_or(f64::from(self.sample_rate) / 2.0),
            self.n_mels,
            self.sample_rate,
            self.norm,
            self.mel_scale,
        )
    }
}

/// The mel spectrum `[..., n_mels, n_frames]`, or why not.
pub(crate) fn mel_frames(x: &Tensor, o: &MelOpts) -> Result<Tensor, String> {
    if !o.spec.stft.onesided {
        return Err("a mel spectrogram needs a one-sided spectrum".into());
    }
    let power = o
        .spec
        .power
        .ok_or("a mel spectrogram needs a power (or magnitude) spectrogram: set spec.power")?;
    let fb = o.filterbank().map_err(|e| e.to_string())?;
    let p = power_frames(x, &o.spec, power)?;
    // The filterbank transposed, `[n_mels, n_freq]`, applied on the left.
    let dims = fb.shape().dims().to_vec();
    let (nf, nm) = (dims[0], dims[1]);
    let v = fb.to_f64_vec();
    let t: Vec<f64> = (0..nm * nf).map(|i| v[(i % nf) * nm + i / nf]).collect();
    Ok(crate::constant(x.builder(), &[nm, nf], &t, p.dtype()).matmul(&p))
}

/// torchaudio's `MelSpectrogram`: `x` `[..., T]` → `[..., n_mels, n_frames]`.
#[track_caller]
pub fn mel_spectrogram(x: &Tensor, o: &MelOpts) -> Tensor {
    match mel_frames(x, o) {
        Ok(m) => m,
        Err(reason) => x.refuse("mel_spectrogram", reason),
    }
}

/// The log-mel spectrogram `ln(mel + offset)` `[..., n_mels, n_frames]` (the
/// usual network input; torchaudio's MFCC with `log_mels=True` uses offset 1e-6).
#[track_caller]
pub fn log_mel_spectrogram(x: &Tensor, o: &MelOpts, offset: f64) -> Tensor {
    if offset.is_nan() || offset <= 0.0 {
        return x.refuse(
            "log_mel_spectrogram",
            format!("offset must be positive, got {offset}"),
        );
    }
    match mel_frames(x, o) {
        Ok(m) => (m + offset).log(),
        Err(reason) => x.refuse("log_mel_spectrogram", reason),
    }
}
