//! WAV files: reading (and writing, for tests and generated data) through `hound`.
//!
//! [`read_wav`] returns the samples as f32 `[channels, frames]` scaled to `[-1, 1]`
//! as `torchaudio.load` does by default: an integer sample of `b` bits is divided by
//! `2^(b-1)` (8-bit WAV is unsigned on disk; hound centres it), float samples are kept.
//! Every failure names the file: a missing file, a header that is not WAV, a truncated
//! data chunk. [`probe_wav`] checks a file (header and last frame) without decoding it.

use crate::{DataError, Result};
use onde_ir::Array;
use std::path::Path;

/// A decoded WAV file.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    /// Samples, f32 `[channels, frames]` in `[-1, 1]`.
    pub samples: Array,
    /// Sampling rate in Hz.
    pub rate: u32,
}

impl Wav {
    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.samples.shape().dims()[0]
    }

    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.shape().dims()[1]
    }
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> DataError {
    DataError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

type Reader = hound::WavReader<std::io::BufReader<std::fs::File>>;

/// Opens `path` as WAV: the reader, its spec and its (non-zero) channel count.
fn open(path: &Path) -> Result<(Reader, hound::WavSpec, usize)> {
    let r = hound::WavReader::open(path).map_err(|e| file_error(path, e))?;
    let spec = r.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 {
        return Err(file_error(path, "no channels"));
    }
    Ok((r, spec, channels))
}

/// Reads `path` (any integer or float PCM WAV hound reads: 8/16/24/32-bit integer,
/// 32-bit float, any number of channels and rate).
///
/// # Errors
/// [`DataError::File`] naming the file: unreadable, not a WAV file, or truncated.
pub fn read_wav(path: impl AsRef<Path>) -> Result<Wav> {
    let path = path.as_ref();
    let (mut r, spec, channels) = open(path)?;
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| file_error(path, e))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.saturating_sub(1))) as f64;
            r.samples::<i32>()
                .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| file_error(path, e))?
        }
    };
    if !interleaved.len().is_multiple_of(channels) {
        return Err(file_error(
            path,
            format!(
                "{} samples do not divide into {channels} channels (truncated?)",
                interleaved.len()
            ),
        ));
    }
    let frames = interleaved.len() / channels;
    let mut planar = vec![0f32; interleaved.len()];
    for (t, frame) in interleaved.chunks_exact(channels).enumerate() {
        for (c, &v) in frame.iter().enumerate() {
            planar[c * frames + t] = v;
        }
    }
    let samples = Array::f32([channels, frames], planar).map_err(|e| file_error(path, e))?;
    Ok(Wav {
        samples,
        rate: spec.sample_rate,
    })
}

/// What [`probe_wav`] learns of a file without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Sampling rate in Hz.
    pub rate: u32,
    /// Channels.
    pub channels: usize,
    /// Frames (samples per channel) the header announces.
    pub frames: usize,
}

/// Checks that `path` is a WAV file whose data chunk holds every frame its header
/// announces, reading the header and the last frame only.
///
/// # Errors
/// [`DataError::File`] naming the file: unreadable, not a WAV file, or truncated.
pub fn probe_wav(path: impl AsRef<Path>) -> Result<WavInfo> {
    let path = path.as_ref();
    let (mut r, spec, channels) = open(path)?;
    let frames = r.duration() as usize;
    if frames > 0 {
        r.seek(r.duration() - 1).map_err(|e| file_error(path, e))?;
        let got = match spec.sample_format {
            hound::SampleFormat::Float => r
                .samples::<f32>()
                .take(channels)
                .map(|s| s.map(|_| ()))
                .collect::<std::result::Result<Vec<()>, _>>(),
            hound::SampleFormat::Int => r
                .samples::<i32>()
                .take(channels)
                .map(|s| s.map(|_| ()))
                .collect::<std::result::Result<Vec<()>, _>>(),
        }
        .map_err(|e| file_error(path, format!("{e} (truncated?)")))?;
        if got.len() != channels {
            return Err(file_error(
                path,
                format!("the last of {frames} frames is missing (truncated?)"),
            ));
        }
    }
    Ok(WavInfo {
        rate: spec.sample_rate,
        channels,
        frames,
    })
}

/// Writes f32 `[channels, frames]` samples in `[-1, 1]` to `path` as 16-bit integer
/// PCM (`bits = 16`) or 32-bit float (`bits = 32`).
///
/// # Errors
/// [`DataError::File`] naming the file; [`DataError::Invalid`] for another shape or
/// bit depth.
pub fn write_wav(path: impl AsRef<Path>, samples: &Array, rate: u32, bits: u16) -> Result<()> {
    let path = path.as_ref();
    let dims = samples.shape().dims();
    let (Some(data), [channels, frames]) = (samples.as_f32(), dims) else {
        return Err(crate::invalid(
            "write_wav",
            format!(
                "expected f32 [channels, frames], got {:?} {dims:?}",
                samples.dtype()
            ),
        ));
    };
    let (channels, frames) = (*channels, *frames);
    let format = match bits {
        16 => hound::SampleFormat::Int,
        32 => hound::SampleFormat::Float,
        _ => {
            return Err(crate::invalid(
                "write_wav",
                format!("bits {bits}: 16 or 32"),
            ))
        }
    };
    let spec = hound::WavSpec {
        channels: u16::try_from(channels)
            .map_err(|_| crate::invalid("write_wav", format!("{channels} channels")))?,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: format,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| file_error(path, e))?;
    for t in 0..frames {
        for c in 0..channels {
            let v = data[c * frames + t];
            let r = if bits == 16 {
                w.write_sample((v.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            } else {
                w.write_sample(v)
            };
            r.map_err(|e| file_error(path, e))?;
        }
    }
    w.finalize().map_err(|e| file_error(path, e))
}
