//! The signal front-end of the course's speech pipelines, as differentiable graph ops
//! (compositions of onde's primitives, so they compile into a training step and pass
//! gradients of any order) and as [`module`]s to put at a model's input:
//!
//! - WAV files ([`read_wav`], [`write_wav`], shared with onde-data),
//!   [`mix_channels`];
//! - [`stft::frame`], [`stft::stft`] (torch.stft's options and defaults, real pairs
//!   out) and its inverse [`stft::istft`], [`resample::resample`] (torchaudio's
//!   windowed-sinc resampler), [`window::Window`] (Hann, Hamming, Blackman, Povey, rectangular; periodic or
//!   symmetric);
//! - [`spectrogram::spectrogram`] and [`spectrogram::amplitude_to_db`] (torchaudio's
//!   `Spectrogram`, `AmplitudeToDB`);
//! - [`mel::melscale_fbanks`], [`mel::mel_spectrogram`], [`mel::log_mel_spectrogram`]
//!   (HTK or Slaney scale, Slaney normalisation);
//! - [`mfcc::mfcc`] (DCT-II, optional Kaldi liftering), [`mfcc::compute_deltas`],
//!   [`mfcc::preemphasis`];
//! - SpecAugment's [`augment::frequency_masking`] and [`augment::time_masking`]
//!   (training only, new masks every step);
//! - [`hmm`]: hidden Markov models as scans (forward, backward, posteriors, Viterbi,
//!   Baum–Welch).
//!
//! Defaults are torchaudio's (periodic Hann window, `center=True` with reflect
//! padding, power 2, HTK mel scale, no filterbank normalisation); every transform is
//! checked against torchaudio by fixtures (`signal/tests/fixtures/gen_torchaudio.py`).
//! Bad arguments (hop 0, `n_fft` longer than the padded signal, `f_max` above Nyquist…)
//! poison the result with an error naming the transform, the input and your line.

pub mod augment;
pub mod hmm;
pub mod mel;
pub mod mfcc;
pub mod module;
pub mod resample;
pub mod spectrogram;
pub mod stft;
pub mod window;

pub use augment::{frequency_masking, time_masking, FrequencyMasking, TimeMasking};
pub use mel::{log_mel_spectrogram, mel_spectrogram, melscale_fbanks, MelNorm, MelOpts, MelScale};
pub use mfcc::{compute_deltas, create_dct, mfcc, preemphasis, MfccOpts};
pub use module::{AmplitudeToDb, Deltas, LogMel, MelSpectrogram, Mfcc, Preemphasis, Spectrogram};
pub use resample::resample;
pub use spectrogram::{amplitude_to_db, spectrogram, DbOpts, Scale, SpectrogramOpts};
pub use stft::{frame, istft, stft, IstftOpts, StftOpts};
pub use window::Window;
// WAV files: the data crate's reader and writer (one implementation, hound).
pub use onde_data::{read_wav, write_wav, Wav};

/// Mixes the channels of `x` `[..., C, T]` down to one, `[..., 1, T]` (their mean).
#[track_caller]
pub fn mix_channels(x: &onde_nn::Tensor) -> onde_nn::Tensor {
    if x.dim() < 2 {
        return x.refuse("mix_channels", "expects [..., channels, T]");
    }
    x.mean([-2i64], true)
}

/// `values` (computed in f64 on the host: DFT matrices, filterbanks, windows) as a
/// constant of `g` in the signal's `dtype`.
pub(crate) fn constant(
    g: &onde_nn::GraphBuilder,
    shape: &[usize],
    values: &[f64],
    dtype: onde_ir::DType,
) -> onde_nn::Tensor {
    match onde_ir::Array::from_f64(dtype, shape.to_vec(), values) {
        Ok(a) => g.constant(a),
        Err(e) => g
            .zeros(shape.to_vec(), dtype)
            .refuse("constant", e.to_string()),
    }
}

/// A signal function's refusal of its arguments (those that build no graph).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    /// A bad argument, named.
    #[error("{what}: {reason}")]
    Invalid {
        /// The function.
        what: String,
        /// Why.
        reason: String,
    },
}
