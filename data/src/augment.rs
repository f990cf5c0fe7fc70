//! Augmentation of waveforms, applied per sample in the loader's workers: random gain,
//! additive noise at a signal-to-noise ratio, mixing with background recordings,
//! time shift, random crop or pad to a length, and speed perturbation by resampling.
//!
//! Each transform reads and writes one field (default `audio`, f32 `[channels, T]`)
//! and draws from a generator seeded by `(seed, epoch, dataset index)`
//! ([`crate::rng::SplitMix64::for_sample`]): an epoch's augmented batches are the same
//! whatever the number of workers, and differ from one epoch to the next.
//! Compose them with [`Compose`]; give them to [`crate::DataLoader::transform`].

use crate::dataset::Sample;
use crate::rng::SplitMix64;
use crate::{invalid, DataError, Result};
use onde_ir::Array;
use std::sync::Arc;

/// A per-sample transform.
pub trait Transform: Send + Sync {
    /// `sample` transformed, drawing from `rng`.
    ///
    /// # Errors
    /// A missing field or one that is not f32 `[channels, T]`, named.
    fn apply(&self, sample: Sample, rng: &mut SplitMix64) -> Result<Sample>;
}

/// Transforms applied in order.
#[derive(Clone, Default)]
pub struct Compose(pub Vec<Arc<dyn Transform>>);

impl std::fmt::Debug for Compose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Compose({} transforms)", self.0.len())
    }
}

impl Compose {
    /// No transform yet.
    pub fn new() -> Compose {
        Compose(Vec::new())
    }

    /// Appends `t`.
    pub fn then(mut self, t: impl Transform + 'static) -> Compose {
        self.0.push(Arc::new(t));
        self
    }
}

impl Transform for Compose {
    fn apply(&self, mut sample: Sample, rng: &mut SplitMix64) -> Result<Sample> {
        for t in &self.0 {
            sample = t.apply(sample, rng)?;
        }
        Ok(sample)
    }
}

/// The field's samples `(data, channels, frames)` (f32 `[channels, T]`).
fn wave<'a>(s: &'a mut Sample, field: &str, what: &str) -> Result<(&'a mut Array, usize, usize)> {
    let Some((_, a)) = s.fields.iter_mut().find(|(n, _)| n == field) else {
        return Err(invalid(what, format!("the sample has no field `{field}`")));
    };
    let dims = a.shape().dims().to_vec();
    match (a.as_f32().is_some(), dims.as_slice()) {
        (true, &[c, t]) => Ok((a, c, t)),
        _ => Err(invalid(
            what,
            format!(
                "field `{field}` is {:?} {dims:?}, expected f32 [channels, T]",
                a.dtype()
            ),
        )),
    }
}

fn set(a: &mut Array, c: usize, v: Vec<f32>) -> Result<()> {
    let t = v.len() / c.max(1);
    *a = Array::f32([c, t], v).map_err(|e| invalid("augment", e.to_string()))?;
    Ok(())
}

fn power(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64
}

/// Multiplies by `10^(g/20)`, `g` uniform in `[min_db, max_db]`.
#[derive(Debug, Clone)]
pub struct RandomGain {
    /// Field transformed.
    pub field: String,
    /// Smallest gain, dB.
    pub min_db: f64,
    /// Largest gain, dB.
    pub max_db: f64,
}

impl RandomGain {
    /// A gain in `[min_db, max_db]` on `audio`.
    pub fn new(min_db: f64, max_db: f64) -> RandomGain {
        RandomGain {
            field: "audio".into(),
            min_db,
            max_db,
        }
    }
}

impl Transform for RandomGain {
    fn apply(&self, mut s: Sample, rng: &mut SplitMix64) -> Result<Sample> {
        let g = 10f64.powf(rng.uniform(self.min_db, self.max_db) / 20.0) as f32;
        let (a, _, _) = wave(&mut s, &self.field, "RandomGain")?;
        if let Some(v) = a.as_f32_mut() {
            v.iter_mut().for_each(|x| *x *= g);
        }
        Ok(s)
    }
}

/// Adds white Gaussian noise at an SNR uniform in `[min_db, max_db]` (relative to the
/// signal's mean power over all channels; a silent signal is left as is).
#[derive(Debug, Clone)]
pub struct AddNoise {
    /// Field transformed.
    pub field: String,
    /// Lowest SNR, dB.
    pub min_db: f64,
    /// Highest SNR, dB.
    pub max_db: f64,
}

impl AddNoise {
    /// White noise at an SNR in `[min_db, max_db]` on `audio`.
    pub fn new(min_db: f64, max_db: f64) -> AddNoise {
        AddNoise {
            field: "audio".into(),
            min_db,
            max_db,
        }
    }
}

impl Transform for AddNoise {
    fn apply(&self, mut s: Sample, rng: &mut SplitMix64) -> Result<Sample> {
        let snr = rng.uniform(self.min_db, self.max_db);
        let (a, _, _) = wave(&mut s, &self.field, "AddNoise")?;
        let Some(v) = a.as_f32_mut() else {
            return Ok(s);
        };
        let p = power(v);
        if p > 0.0 {
            let sigma = (p / 10f64.powf(snr / 10.0)).sqrt();
            v.iter_mut()
                .for_each(|x| *x += (sigma * rng.normal()) as f32);
        }
        Ok(s)
    }
}

/// Mixes in a random segment of a random background recording (f32 `[1, T]` or
/// `[channels, T]`, looped when shorter) at an SNR uniform in `[min_db, max_db]`, with
/// probability `p`.
#[derive(Clone)]
pub struct MixBackground {
    /// Field transformed.
    pub field: String,
    /// Background recordings (mono ones are added to every channel).
    pub backgrounds: Arc<Vec<Array>>,
    /// Lowest SNR, dB.
    pub min_db: f64,
    /// Highest SNR, dB.
    pub max_db: f64,
    /// Probability of mixing.
    pub p: f64,
}

impl std::fmt::Debug for MixBackground {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MixBackground({} recordings, {}..{} dB, p {})",
            self.backgrounds.len(),
            self.min_db,
            self.max_db,
            self.p
        )
    }
}

impl MixBackground {
    /// Mixing `backgrounds` into `audio` at an SNR in `[min_db, max_db]`, always.
    ///
    /// # Errors
    /// [`DataError::Invalid`] for no recording or one that is not f32 `[c, T > 0]`.
    pub fn new(backgrounds: Vec<Array>, min_db: f64, max_db: f64) -> Result<MixBackground> {
        if backgrounds.is_empty() {
            return Err(invalid("MixBackground", "no background recording"));
        }
        for (i, b) in backgrounds.iter().enumerate() {
            let d = b.shape().dims();
            if b.as_f32().is_none() || d.len() != 2 || d[1] == 0 {
                return Err(invalid(
                    "MixBackground",
                    format!(
                        "recording {i} is {:?} {d:?}, expected f32 [channels, T > 0]",
                        b.dtype()
                    ),
                ));
            }
        }
        Ok(MixBackground {
            field: "audio".into(),
            backgrounds: Arc::new(backgrounds),
            min_db,
            max_db,
            p: 1.0,
        })
    }

    /// Mixing with probability `p`.
    pub fn probability(mut self, p: f64) -> MixBackground {
        self.p = p.clamp(0.0, 1.0);
        self
    }
}

impl Transform for MixBackground {
    fn apply(&self, mut s: Sample, rng: &mut SplitMix64) -> Result<Sample> {
        if rng.next_f64() >= self.p {
            return Ok(s);
        }
        let b = &self.backgrounds[rng.below(self.backgrounds.len())];
        let snr = rng.uniform(self.min_db, self.max_db);
        let (a, c, t) = wave(&mut s, &self.field, "MixBackground")?;
        let (bc, bt) = (b.shape().dims()[0], b.shape().dims()[1]);
        if bc != 1 && bc != c {
            return Err(DataError::Invalid {
                what: "MixBackground".into(),
                reason: format!("a {bc}-channel background for a {c}-channel signal"),
            });
        }
        let bd = b.as_f32().unwrap_or(&[]);
        let start = rng.below(bt);
        // The segment, looped, per channel.
        let seg: Vec<f32> = (0..c)
            .flat_map(|ch| {
                let row = if bc == 1 { 0 } else { ch };
                (0..t).map(move |k| bd[row * bt + (start + k) % bt])
            })
            .collect();
        let Some(v) = a.as_f32_mut() else {
            return Ok(s);
        };
        let (ps, pb) = (power(v), power(&seg));
        if ps > 0.0 && pb > 0.0 {
            let k = (ps / (pb * 10f64.powf(snr / 10.0))).sqrt() as f32;
            v.iter_mut().zip(&seg).for_each(|(x, &n)| *x += k * n);
        }
        Ok(s)
    }
}

/// Shifts in time by up to `max_shift` frames either way: circularly, or filling with
/// zeros.
#[derive(Debug, Clone)]
pub struct TimeShift {
    /// Field transformed.
    pub field: String,
    /// Largest shift, frames.
    pub max_shift: usize,
    /// Wrap around instead of filling with zeros.
    pub circular: bool,
}

impl TimeShift {
    /// A zero-filled shift of up to `max_shift` frames on `audio`.
    pub fn new(max_shift: usize) -> TimeShift {
        TimeShift {
            field: "audio".into(),
            max_shift,
            circular: false,
        }
    }
}

impl Transform for TimeShift {
    fn apply(&self, mut s: Sample, rng: &mut SplitMix64) -> Result<Sample> {
        let shift = rng.below(2 * self.max_shift + 1) as i64 - self.max_shift as i64;
        let (a, c, t) = wave(&mut s, &self.field, "TimeShift")?;
        let v = a.as_f32().unwrap_or(&[]);
        let mut out = vec![0f32; c * t];
        for ch in 0..c {
            for k in 0..t {
                let src = k as i64 - shift;
                let src = if self.circular {
                    Some(src.rem_euclid(t.max(1) as i64) as usize)
                } else {
                    usize::try_from(src).ok().filter(|&x| x < t)
                };
                if let Some(x) = src {
                    out[ch * t + k] = v[ch * t + x];
                }
            }
        }
        set(a, c, out)?;
        Ok(s)
    }
}

/// A random window of `length` frames of a longer signal; a shorter one zero-padded at
/// a random offset (the course's fixed-length inputs).
#[derive(Debug, Clone)]
pub struct RandomCropOrPad {
    /// Field transformed.
    pub field: String,
    /// Output frames.
    pub length: usize,
}

impl RandomCropOrPad {
    /// `audio` to `length` frames.
    pub fn new(length: usize) -> RandomCropOrPad {
        RandomCropOrPad {
            field: "audio".into(),
            length,
        }
    }
}

impl Transform for RandomCropOrPad {
    fn apply(&self, mut s: Sample, rng: &mut SplitMix64) -> Result<Sample> {
        let n = self.length;
        let (a, c, t) = wave(&mut s, &self.field, "RandomCropOrPad")?;
        let v = a.as_f32().unwrap_or(&[]);
        let mut out = vec![0f32; c * n];
        if t >= n {
            let at = rng.below(t - n + 1);
            for ch in 0..c {
                out[ch * n..(ch + 1) * n].copy_from_slice(&v[ch * t + at..ch * t + at + n]);
            }
        } else {
            let at = rng.below(n - t + 1);
            for ch in 0..c {
                out[ch * n + at..ch * n + at + t].copy_from_slice(&v[ch * t..(ch + 1) * t]);
            }
        }
        set(a, c, out)?;
        Ok(s)
    }
}

/// Speed perturbation: plays the signal `factor` times faster (length ÷ factor, every
/// frequency × factor), `factor` drawn from `factors` (Kaldi's 0.9, 1.0, 1.1). The
/// resampling is a windowed-sinc interpolation (Hann window, `ZEROS` zero crossings
/// each side) low-passed at `ROLLOFF · min(1, 1 / factor)` of Nyquist, so no
/// frequency folds back when speeding up (the roll-off leaves room for the kernel's
/// transition band, as torchaudio's resampler does).
#[derive(Debug, Clone)]
pub struct SpeedPerturb {
    /// Field transformed.
    pub field: String,
    /// Speed factors to choose from.
    pub factors: Vec<f64>,
}

/// Zero crossings of the interpolation kernel on each side.
const ZEROS: f64 = 16.0;

/// Fraction of the (lower) Nyquist frequency kept.
const ROLLOFF: f64 = 0.94;

impl SpeedPerturb {
    /// One of `factors` (each > 0) per sample, on `audio`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] for no factor or one that is not positive and finite.
    pub fn new(factors: Vec<f64>) -> Result<SpeedPerturb> {
        if factors.is_empty() || factors.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
            return Err(invalid(
                "SpeedPerturb",
                format!("factors {factors:?}: each must be > 0"),
            ));
        }
        Ok(SpeedPerturb {
            field: "audio".into(),
            factors,
        })
    }
}

/// `factor` as a fraction `p / q` with `q ≤ 1000` (exact for Kaldi's 0.9 and 1.1;
/// the nearest such fraction otherwise).
fn as_fraction(factor: f64) -> (usize, usize) {
    let mut best = (factor.round().max(1.0) as usize, 1usize);
    let mut err = f64::INFINITY;
    for q in 1..=1000usize {
        let p = (factor * q as f64).round().max(1.0) as usize;
        let e = (p as f64 / q as f64 - factor).abs();
        if e < err - 1e-15 {
            (best, err) = ((p, q), e);
            if e < 1e-12 {
                break;
            }
        }
    }
    best
}

/// `x` (one channel) resampled so that output frame `k` is input time `k · factor`:
/// a polyphase filter — with `factor = p / q`, output `k` reads around input
/// `⌊k·p / q⌋` with the taps of phase `k·p mod q`, precomputed once per call (a
/// windowed sinc per phase), so each output costs one short dot product.
pub fn resample_speed(x: &[f32], factor: f64) -> Vec<f32> {
    let t = x.len();
    let n = ((t as f64) / factor).floor() as usize;
    if (factor - 1.0).abs() < 1e-12 {
        return x.to_vec();
    }
    let (p, q) = as_fraction(factor);
    let cutoff = ROLLOFF * (1.0 / factor).min(1.0);
    let half = ZEROS / cutoff;
    let h = half.ceil() as i64;
    let width = (2 * h + 2) as usize;
    // taps[r][m]: weight of input i + m - h for phase r (input time i + r / q).
    let mut taps = vec![0f64; q * width];
    for r in 0..q {
        let frac = r as f64 / q as f64;
        for m in 0..width {
            let d = (m as i64 - h) as f64 - frac;
            if d.abs() > half {
                continue;
            }
            let arg = d * cutoff;
            let sinc = if arg.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
            };
            let w = 0.5 + 0.5 * (std::f64::consts::PI * d / half).cos();
            taps[r * width + m] = cutoff * sinc * w;
        }
    }
    (0..n)
        .map(|k| {
            let kp = k * p;
            let (i, r) = ((kp / q) as i64, kp % q);
            let row = &taps[r * width..(r + 1) * width];
            let mut acc = 0.0;
            for (m, &w) in row.iter().enumerate() {
                let j = i + m as i64 - h;
                if (0..t as i64).contains(&j) {
                    acc += f64::from(x[j as usize]) * w;
                }
            }
            acc as f32
        })
        .collect()
}

impl Transform for SpeedPerturb {
    fn apply(&self, mut s: Sample, rng: &mut SplitMix64) -> Result<Sample> {
        let factor = self.factors[rng.below(self.factors.len())];
        let (a, c, t) = wave(&mut s, &self.field, "SpeedPerturb")?;
        let v = a.as_f32().unwrap_or(&[]);
        let out: Vec<f32> = (0..c)
            .flat_map(|ch| resample_speed(&v[ch * t..(ch + 1) * t], factor))
            .collect();
        set(a, c, out)?;
        Ok(s)
    }
}
