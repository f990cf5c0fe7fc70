//! `onde features IN.wav --kind stft|spectrogram|mel|logmel|mfcc [...] --out OUT.safetensors
//! [--png OUT.png]`: features of a WAV file like Kaldi's feature tools, computed by the
//! same compiled graph ops a model's front-end uses (onde-signal, torchaudio's
//! defaults). The safetensors file holds one tensor, `features`: `[channels,
//! n_features, frames]` (`stft`: `[channels, n_freq, frames, 2]`, real and imaginary
//! parts). `--png` draws the first channel with time and frequency axes (power
//! spectra in dB).

use onde_ir::{Array, DType};
use onde_nn::{GraphBuilder, Tensor};
use onde_signal::{
    log_mel_spectrogram, mel_spectrogram, mfcc, spectrogram, stft, MelOpts, MfccOpts,
    SpectrogramOpts, StftOpts,
};
use std::path::PathBuf;

/// Which features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Complex STFT as real pairs (torch.stft).
    Stft,
    /// Power spectrogram (torchaudio's Spectrogram).
    Spectrogram,
    /// Mel spectrogram (torchaudio's MelSpectrogram).
    Mel,
    /// ln(mel + 1e-6).
    Logmel,
    /// MFCC (torchaudio's MFCC).
    Mfcc,
}

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct FeatureArgs {
    /// The WAV file.
    pub input: PathBuf,
    /// Which features.
    #[arg(long, value_enum, default_value_t = Kind::Logmel)]
    pub kind: Kind,
    /// FFT size.
    #[arg(long, default_value_t = 400)]
    pub n_fft: usize,
    /// Hop in samples (default: win / 2, torchaudio's).
    #[arg(long)]
    pub hop: Option<usize>,
    /// Window length (default: n_fft).
    #[arg(long)]
    pub win: Option<usize>,
    /// Mel bands.
    #[arg(long, default_value_t = 128)]
    pub n_mels: usize,
    /// Cepstral coefficients.
    #[arg(long, default_value_t = 40)]
    pub n_mfcc: usize,
    /// Lowest mel frequency, Hz.
    #[arg(long, default_value_t = 0.0)]
    pub f_min: f64,
    /// Highest mel frequency, Hz (default: Nyquist).
    #[arg(long)]
    pub f_max: Option<f64>,
    /// Output safetensors file.
    #[arg(long)]
    pub out: PathBuf,
    /// Also draw the first channel as a PNG (or SVG) picture.
    #[arg(long)]
    pub png: Option<PathBuf>,
}

fn spec_opts(a: &FeatureArgs) -> SpectrogramOpts {
    let mut s = SpectrogramOpts::new(a.n_fft);
    if let Some(w) = a.win {
        s = s.win_length(w);
    }
    if let Some(h) = a.hop {
        s = s.hop(h);
    }
    s
}

fn mel_opts(a: &FeatureArgs, rate: u32) -> MelOpts {
    MelOpts {
        spec: spec_opts(a),
        f_min: a.f_min,
        f_max: a.f_max,
        n_mels: a.n_mels,
        ..MelOpts::new(rate)
    }
}

fn features(a: &FeatureArgs, x: &Tensor, rate: u32) -> Tensor {
    match a.kind {
        Kind::Stft => {
            let s = spec_opts(a);
            let o = StftOpts {
                hop_length: Some(s.stft.hop()),
                ..s.stft
            };
            stft(x, &o)
        }
        Kind::Spectrogram => spectrogram(x, &spec_opts(a)),
        Kind::Mel => mel_spectrogram(x, &mel_opts(a, rate)),
        Kind::Logmel => log_mel_spectrogram(x, &mel_opts(a, rate), 1e-6),
        Kind::Mfcc => mfcc(
            x,
            &MfccOpts {
                n_mfcc: a.n_mfcc,
                mel: mel_opts(a, rate),
                ..MfccOpts::new(rate)
            },
        ),
    }
}

/// Runs the command; prints what it wrote and how fast.
pub fn run(a: &FeatureArgs) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    let wav = onde_data::read_wav(&a.input).map_err(|e| e.to_string())?;
    let (c, n) = (wav.channels(), wav.frames());
    if n == 0 {
        return Err(format!("{}: the file has no samples", a.input.display()));
    }
    let read = t0.elapsed();
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [c, n]);
    let y = features(a, &x, wav.rate);
    y.check().map_err(|e| {
        format!(
            "{} ({c} channels, {n} samples at {} Hz): {e}",
            a.input.display(),
            wav.rate
        )
    })?;
    let t1 = std::time::Instant::now();
    let mut exe = g.compile(&[&y]).map_err(|e| e.to_string())?;
    let out = exe
        .run(&[("x", wav.samples)])
        .map_err(|e| e.to_string())?
        .remove(0);
    let computed = t1.elapsed();
    onde_nn::checkpoint::save(&a.out, &[("features".to_string(), out.clone())])
        .map_err(|e| e.to_string())?;
    let secs = n as f64 / f64::from(wav.rate);
    eprintln!(
        "{}: {c} channel(s), {secs:.2} s at {} Hz -> features {:?} in {}; read {:.1} ms, \
         compiled + computed {:.1} ms ({:.0}x real time)",
        a.input.display(),
        wav.rate,
        out.shape().dims(),
        a.out.display(),
        read.as_secs_f64() * 1e3,
        computed.as_secs_f64() * 1e3,
        secs / (read + computed).as_secs_f64().max(1e-9)
    );
    if let Some(png) = &a.png {
        picture(a, &out, wav.rate, n, png)?;
        eprintln!("picture: {}", png.display());
    }
    Ok(())
}

/// The first channel as an image: power spectra in dB, the others as they are.
fn picture(
    a: &FeatureArgs,
    out: &Array,
    rate: u32,
    n: usize,
    path: &PathBuf,
) -> Result<(), String> {
    let dims = out.shape().dims().to_vec();
    let v = out.to_f64_vec();
    let (rows, cols) = (dims[1], dims[2]);
    let first: Vec<f64> = match a.kind {
        Kind::Stft => (0..rows * cols)
            .map(|i| {
                let (re, im) = (v[2 * i], v[2 * i + 1]);
                10.0 * (re * re + im * im).max(1e-10).log10()
            })
            .collect(),
        Kind::Spectrogram | Kind::Mel => v[..rows * cols]
            .iter()
            .map(|&p| 10.0 * p.max(1e-10).log10())
            .collect(),
        Kind::Logmel | Kind::Mfcc => v[..rows * cols].to_vec(),
    };
    let seconds = n as f64 / f64::from(rate);
    let (label, top) = match a.kind {
        Kind::Stft | Kind::Spectrogram => ("frequency (Hz)", f64::from(rate) / 2.0),
        Kind::Mel | Kind::Logmel => ("mel band", rows as f64),
        Kind::Mfcc => ("coefficient", rows as f64),
    };
    onde_data::plot::heatmap(&first, rows, cols, (0.0, seconds), (0.0, top), label, path)
        .map_err(|e| e.to_string())
}
