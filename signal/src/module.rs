//! The transforms as [`Module`]s, to put at a model's input (in a [`Sequential`] before
//! the layers): they hold no parameters, and describe their geometry along time for
//! [`onde_nn::module::summarize`] (an STFT frame is a window of `n_fft` samples every
//! `hop`).
//!
//! [`Sequential`]: onde_nn::module::Sequential

use crate::mel::{log_mel_spectrogram, mel_spectrogram, MelOpts};
use crate::mfcc::{compute_deltas, mfcc, preemphasis, MfccOpts};
use crate::spectrogram::{amplitude_to_db, spectrogram, DbOpts, SpectrogramOpts};
use crate::stft::StftOpts;
use onde_nn::module::{Module, TimeMap};
use onde_nn::Tensor;

fn stft_map(o: &StftOpts, extra_pad: usize) -> TimeMap {
    TimeMap::Window {
        kernel: o.n_fft,
        stride: o.hop().max(1),
        dilation: 1,
        padding: extra_pad + if o.center { o.n_fft / 2 } else { 0 },
    }
}

/// torchaudio's `Spectrogram` ([`spectrogram`]).
#[derive(Debug, Clone, Default)]
pub struct Spectrogram(pub SpectrogramOpts);

impl Module for Spectrogram {
    fn forward(&self, x: &Tensor) -> Tensor {
        spectrogram(x, &self.0)
    }
    fn time_map(&self) -> TimeMap {
        stft_map(&self.0.stft, self.0.pad)
    }
}

/// torchaudio's `MelSpectrogram` ([`mel_spectrogram`]).
#[derive(Debug, Clone, Default)]
pub struct MelSpectrogram(pub MelOpts);

impl Module for MelSpectrogram {
    fn forward(&self, x: &Tensor) -> Tensor {
        mel_spectrogram(x, &self.0)
    }
    fn time_map(&self) -> TimeMap {
        stft_map(&self.0.spec.stft, self.0.spec.pad)
    }
}

/// The log-mel spectrogram `ln(mel + offset)` ([`log_mel_spectrogram`]).
#[derive(Debug, Clone)]
pub struct LogMel {
    /// The mel spectrogram.
    pub mel: MelOpts,
    /// Added before the logarithm.
    pub offset: f64,
}

impl LogMel {
    /// `ln(mel + 1e-6)` with torchaudio's mel defaults at `sample_rate`.
    pub fn new(sample_rate: u32) -> LogMel {
        LogMel {
            mel: MelOpts::new(sample_rate),
            offset: 1e-6,
        }
    }
}

impl Module for LogMel {
    fn forward(&self, x: &Tensor) -> Tensor {
        log_mel_spectrogram(x, &self.mel, self.offset)
    }
    fn time_map(&self) -> TimeMap {
        stft_map(&self.mel.spec.stft, self.mel.spec.pad)
    }
}

/// torchaudio's `MFCC` ([`mfcc`]).
#[derive(Debug, Clone, Default)]
pub struct Mfcc(pub MfccOpts);

impl Module for Mfcc {
    fn forward(&self, x: &Tensor) -> Tensor {
        mfcc(x, &self.0)
    }
    fn time_map(&self) -> TimeMap {
        stft_map(&self.0.mel.spec.stft, self.0.mel.spec.pad)
    }
}

/// torchaudio's `AmplitudeToDB` ([`amplitude_to_db`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct AmplitudeToDb(pub DbOpts);

impl Module for AmplitudeToDb {
    fn forward(&self, x: &Tensor) -> Tensor {
        amplitude_to_db(x, &self.0)
    }
}

/// torchaudio's `ComputeDeltas` ([`compute_deltas`]).
#[derive(Debug, Clone, Copy)]
pub struct Deltas {
    /// Window length (odd, at least 3; torchaudio's default 5).
    pub win_length: usize,
}

impl Default for Deltas {
    fn default() -> Deltas {
        Deltas { win_length: 5 }
    }
}

impl Module for Deltas {
    fn forward(&self, x: &Tensor) -> Tensor {
        compute_deltas(x, self.win_length)
    }
    fn time_map(&self) -> TimeMap {
        let n = (self.win_length.max(3) - 1) / 2;
        TimeMap::Window {
            kernel: 2 * n + 1,
            stride: 1,
            dilation: 1,
            padding: n,
        }
    }
}

/// torchaudio's `Preemphasis` ([`preemphasis`]).
#[derive(Debug, Clone, Copy)]
pub struct Preemphasis {
    /// The coefficient (torchaudio's default 0.97).
    pub coeff: f64,
}

impl Default for Preemphasis {
    fn default() -> Preemphasis {
        Preemphasis { coeff: 0.97 }
    }
}

impl Module for Preemphasis {
    fn forward(&self, x: &Tensor) -> Tensor {
        preemphasis(x, self.coeff)
    }
    fn time_map(&self) -> TimeMap {
        TimeMap::Window {
            kernel: 2,
            stride: 1,
            dilation: 1,
            padding: 1,
        }
    }
}
