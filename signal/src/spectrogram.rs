//! Spectrograms and decibels, as torchaudio's `Spectrogram` and `AmplitudeToDB`
//! (same defaults: `n_fft` 400, hop `win_length / 2`, periodic Hann window, centred
//! with reflect padding, power 2).

use crate::stft::{dft, StftOpts};
use onde_nn::Tensor;

/// Options of [`spectrogram`] (torchaudio's `Spectrogram`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrogramOpts {
    /// Framing and window; the hop defaults to `win_length / 2` here (torchaudio's),
    /// not `n_fft / 4` (torch.stft's).
    pub stft: StftOpts,
    /// Zeros added on both sides before the STFT (torchaudio's `pad`).
    pub pad: usize,
    /// `|X|^power`: 2 the power spectrum, 1 the magnitude; `None`: the complex STFT as
    /// real pairs `[..., n_freq, n_frames, 2]`.
    pub power: Option<f64>,
    /// Divide the STFT by `sqrt(Σ w²)` (torchaudio's `normalized=True`).
    pub normalized: bool,
}

impl Default for SpectrogramOpts {
    fn default() -> SpectrogramOpts {
        SpectrogramOpts::new(400)
    }
}

impl SpectrogramOpts {
    /// torchaudio's defaults for `n_fft`: hop `n_fft / 2`, power 2.
    pub fn new(n_fft: usize) -> SpectrogramOpts {
        let mut stft = StftOpts::new(n_fft);
        stft.hop_length = Some((n_fft / 2).max(1));
        SpectrogramOpts {
            stft,
            pad: 0,
            power: Some(2.0),
            normalized: false,
        }
    }

    /// With hop `hop` (the window length stays).
    pub fn hop(mut self, hop: usize) -> SpectrogramOpts {
        self.stft.hop_length = Some(hop);
        self
    }

    /// With a window of `win` samples; the hop, when not set, follows (`win / 2`).
    pub fn win_length(mut self, win: usize) -> SpectrogramOpts {
        if self.stft.hop_length == Some((self.stft.win() / 2).max(1)) {
            self.stft.hop_length = Some((win / 2).max(1));
        }
        self.stft.win_length = Some(win);
        self
    }

    fn scale(&self) -> f64 {
        if self.normalized {
            let w = self.stft.padded_window();
            1.0 / w.iter().map(|v| v * v).sum::<f64>().sqrt()
        } else {
            1.0
        }
    }
}

/// The STFT as torchaudio's `Spectrogram` takes it (the options checked before the
/// window normalisation reads the window, `pad` zeros on both sides): (re, im)
/// `[..., n_freq, n_frames]`, or why not.
fn complex(x: &Tensor, o: &SpectrogramOpts) -> Result<(Tensor, Tensor), String> {
    o.stft.check()?;
    let x = if o.pad > 0 {
        x.pad([o.pad, o.pad], 0.0)
    } else {
        x.clone()
    };
    dft(&x, &o.stft, o.scale())
}

/// The power (or magnitude) spectrum `[..., n_freq, n_frames]`, or why not.
pub(crate) fn power_frames(x: &Tensor, o: &SpectrogramOpts, power: f64) -> Result<Tensor, String> {
    if !(power.is_finite() && power > 0.0) {
        return Err(format!("power must be positive, got {power}"));
    }
    let (re, im) = complex(x, o)?;
    let p2 = re.square() + im.square();
    Ok(if power == 2.0 {
        p2
    } else if power == 1.0 {
        p2.sqrt()
    } else {
        p2.pow(power / 2.0)
    })
}

/// torchaudio's `Spectrogram`: `x` `[..., T]` → `[..., n_freq, n_frames]` (or real
/// pairs `[..., n_freq, n_frames, 2]` with `power: None`). The magnitude (`power` 1)
/// has an infinite gradient where the spectrum is exactly 0; use the power spectrum
/// to train through silence.
#[track_caller]
pub fn spectrogram(x: &Tensor, o: &SpectrogramOpts) -> Tensor {
    let r = match o.power {
        Some(p) => power_frames(x, o, p),
        None => complex(x, o).map(|(re, im)| onde_nn::stack(&[&re, &im], -1)),
    };
    // A `match`, not `unwrap_or_else`: the caller's location does not pass through a
    // closure.
    match r {
        Ok(y) => y,
        Err(reason) => x.refuse("spectrogram", reason),
    }
}

/// Whether [`amplitude_to_db`]'s input is a power or an amplitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// A power (`10·log10`).
    #[default]
    Power,
    /// An amplitude (`20·log10`).
    Magnitude,
}

/// Options of [`amplitude_to_db`] (torchaudio's `AmplitudeToDB`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbOpts {
    /// Power or magnitude input.
    pub stype: Scale,
    /// Clip to `top_db` below the maximum (see [`amplitude_to_db`]).
    pub top_db: Option<f64>,
    /// Floor of the input before the logarithm.
    pub amin: f64,
    /// Reference value (0 dB).
    pub reference: f64,
}

impl Default for DbOpts {
    fn default() -> DbOpts {
        DbOpts {
            stype: Scale::Power,
            top_db: None,
            amin: 1e-10,
            reference: 1.0,
        }
    }
}

/// torchaudio's `AmplitudeToDB`: `m · log10(max(x, amin)) − m · log10(max(amin,
/// reference))` with `m` 10 (power) or 20 (magnitude), then with `top_db` clipped to
/// `top_db` below the maximum — the maximum as torchaudio takes it: over the whole
/// tensor for up to 3 axes (`[F, T]`, and a `[B, F, T]` batch together), per leading
/// index over the last 3 axes for 4 or more (`[B, C, F, T]`: per example).
#[track_caller]
pub fn amplitude_to_db(x: &Tensor, o: &DbOpts) -> Tensor {
    if o.amin.is_nan() || o.amin <= 0.0 || o.reference.is_nan() || o.reference <= 0.0 {
        return x.refuse("amplitude_to_db", "amin and the reference must be positive");
    }
    if o.top_db.is_some_and(|t| t.is_nan() || t < 0.0) {
        return x.refuse("amplitude_to_db", "top_db must be non-negative");
    }
    let m = match o.stype {
        Scale::Power => 10.0,
        Scale::Magnitude => 20.0,
    };
    let ln10 = std::f64::consts::LN_10;
    let db = x.clamp_min(o.amin).log() * (m / ln10) - m * o.amin.max(o.reference).log10();
    let Some(top) = o.top_db else {
        return db;
    };
    let r = db.dim();
    let max = if r <= 3 {
        db.max_all()
    } else {
        db.max([-3i64, -2, -1], true)
    };
    db.maximum(&(max - top))
}
