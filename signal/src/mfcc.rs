//! MFCC (torchaudio's `MFCC`: decibel or log mel spectrogram, then DCT-II), Kaldi's
//! cepstral liftering, deltas (torchaudio's `compute_deltas`) and pre-emphasis.

use crate::mel::{mel_frames, MelOpts};
use crate::spectrogram::{amplitude_to_db, DbOpts, Scale};

use onde_nn::{PadMode, Tensor};

/// torchaudio's `create_dct`: the `[n_mels, n_mfcc]` DCT-II matrix, orthonormal with
/// `ortho` (else unscaled, `2·Σ cos`-free form as torchaudio's `norm=None`).
pub fn create_dct(n_mfcc: usize, n_mels: usize, ortho: bool) -> Vec<f64> {
    let mut d = vec![0.0; n_mels * n_mfcc];
    for n in 0..n_mels {
        for k in 0..n_mfcc {
            let mut v = (std::f64::consts::PI / n_mels as f64 * (n as f64 + 0.5) * k as f64).cos();
            if ortho {
                if k == 0 {
                    v *= std::f64::consts::FRAC_1_SQRT_2;
                }
                v *= (2.0 / n_mels as f64).sqrt();
            } else {
                v *= 2.0;
            }
            d[n * n_mfcc + k] = v;
        }
    }
    d
}

/// Options of [`mfcc`] (torchaudio's `MFCC`).
#[derive(Debug, Clone, PartialEq)]
pub struct MfccOpts {
    /// Coefficients kept (at most `mel.n_mels`).
    pub n_mfcc: usize,
    /// Orthonormal DCT (torchaudio's `norm='ortho'`, the default).
    pub ortho: bool,
    /// `ln(mel + 1e-6)` instead of decibels clipped at 80 dB below the maximum.
    pub log_mels: bool,
    /// The mel spectrogram.
    pub mel: MelOpts,
    /// Kaldi's cepstral liftering `1 + (L/2)·sin(πk/L)` (none in torchaudio's MFCC;
    /// Kaldi's default L is 22).
    pub lifter: Option<f64>,
}

impl MfccOpts {
    /// torchaudio's defaults at `sample_rate`: 40 coefficients, orthonormal DCT,
    /// decibels, and [`MelOpts::new`]'s mel spectrogram.
    pub fn new(sample_rate: u32) -> MfccOpts {
        MfccOpts {
            n_mfcc: 40,
            ortho: true,
            log_mels: false,
            mel: MelOpts::new(sample_rate),
            lifter: None,
        }
    }
}

impl Default for MfccOpts {
    fn default() -> MfccOpts {
        MfccOpts::new(16000)
    }
}

/// torchaudio's `MFCC`: `x` `[..., T]` → `[..., n_mfcc, n_frames]`.
#[track_caller]
pub fn mfcc(x: &Tensor, o: &MfccOpts) -> Tensor {
    let n_mels = o.mel.n_mels;
    if o.n_mfcc == 0 || o.n_mfcc > n_mels {
        return x.refuse(
            "mfcc",
            format!(
                "n_mfcc {} must be between 1 and n_mels ({n_mels})",
                o.n_mfcc
            ),
        );
    }
    if o.lifter.is_some_and(|l| l.is_nan() || l <= 0.0) {
        return x.refuse("mfcc", "the lifter must be positive");
    }
    let mel = match mel_frames(x, &o.mel) {
        Ok(m) => m,
        Err(reason) => return x.refuse("mfcc", reason),
    };
    let mel = if o.log_mels {
        (mel + 1e-6).log()
    } else {
        // Decibels with torchaudio's top_db of 80 (the maximum's grouping depends on
        // the rank, as torchaudio's).
        let db = DbOpts {
            stype: Scale::Power,
            top_db: Some(80.0),
            ..DbOpts::default()
        };
        amplitude_to_db(&mel, &db)
    };
    let mut dct = create_dct(o.n_mfcc, n_mels, o.ortho);
    if let Some(l) = o.lifter {
        for row in dct.chunks_mut(o.n_mfcc) {
            for (k, v) in row.iter_mut().enumerate() {
                *v *= 1.0 + 0.5 * l * (std::f64::consts::PI * k as f64 / l).sin();
            }
        }
    }
    // Transposed, `[n_mfcc, n_mels]`, applied on the left of `[..., n_mels, T]`.
    let dct_t: Vec<f64> = (0..o.n_mfcc * n_mels)
        .map(|i| dct[(i % n_mels) * o.n_mfcc + i / n_mels])
        .collect();
    crate::constant(x.builder(), &[o.n_mfcc, n_mels], &dct_t, x.dtype()).matmul(&mel)
}

/// torchaudio's `compute_deltas` along the last (time) axis: `Σₖ k·(x[t+k] −
/// x[t−k]) / (2·Σₖ k²)` for `k = 1..=(win_length−1)/2`, edges replicated. Apply it
/// twice for delta-deltas.
#[track_caller]
pub fn compute_deltas(x: &Tensor, win_length: usize) -> Tensor {
    if win_length < 3 {
        return x.refuse(
            "compute_deltas",
            format!("win_length must be at least 3, got {win_length}"),
        );
    }
    let t = x.size().last().copied().unwrap_or(0);
    if x.dim() == 0 || t == 0 {
        return x.refuse("compute_deltas", "needs a non-empty time axis");
    }
    let n = (win_length - 1) / 2;
    let denom = (n * (n + 1) * (2 * n + 1)) as f64 / 3.0;
    let p = x.pad_mode([n, n], PadMode::Replicate);
    let mut acc: Option<Tensor> = None;
    for k in 1..=n {
        let fwd = p.narrow(-1, (n + k) as i64, t);
        let back = p.narrow(-1, (n - k) as i64, t);
        let term = (fwd - back) * k as f64;
        acc = Some(match acc {
            Some(a) => a + term,
            None => term,
        });
    }
    match acc {
        Some(a) => a / denom,
        None => x.refuse("compute_deltas", "no window"),
    }
}

/// torchaudio's `preemphasis`: `y[t] = x[t] − coeff·x[t−1]`, `y[0] = x[0]`, along the
/// last axis.
#[track_caller]
pub fn preemphasis(x: &Tensor, coeff: f64) -> Tensor {
    let t = x.size().last().copied().unwrap_or(0);
    if x.dim() == 0 || t == 0 {
        return x.refuse("preemphasis", "needs a non-empty time axis");
    }
    let prev = x.narrow(-1, 0, t - 1).pad([1usize, 0], 0.0);
    x - &(prev * coeff)
}
