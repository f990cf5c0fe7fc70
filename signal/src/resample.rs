//! Resampling between any two rates with a windowed-sinc anti-aliasing filter, as
//! `torchaudio.functional.resample` (its default `sinc_interp_hann`, 6 zero crossings,
//! roll-off 0.99): the rates are reduced by their gcd to `orig → new`, and the signal
//! is convolved with `new` polyphase filters of `2·width + orig` taps at stride `orig`
//! (one strided convolution, differentiable), the phases interleaved.

use onde_nn::{ConvOpts, Tensor};

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The polyphase filters `[new, 1, 2·width + orig]` and `width` (torchaudio's
/// `_get_sinc_resample_kernel` with a Hann window).
fn kernel(orig: usize, new: usize, zeros: usize, rolloff: f64) -> (Vec<f64>, usize) {
    let base = orig.min(new) as f64 * rolloff;
    let width = (zeros as f64 * orig as f64 / base).ceil() as usize;
    let taps = 2 * width + orig;
    let mut k = vec![0.0; new * taps];
    let lw = zeros as f64;
    for p in 0..new {
        for j in 0..taps {
            let idx = (j as f64 - width as f64) / orig as f64;
            let t = ((-(p as f64) / new as f64 + idx) * base).clamp(-lw, lw);
            let window = (t * std::f64::consts::PI / lw / 2.0).cos().powi(2);
            let tp = t * std::f64::consts::PI;
            let sinc = if tp == 0.0 { 1.0 } else { tp.sin() / tp };
            k[p * taps + j] = sinc * window * base / orig as f64;
        }
    }
    (k, width)
}

/// `x` `[..., T]` sampled at `orig_freq` Hz, resampled to `new_freq` Hz:
/// `[..., ⌈T · new / orig⌉]` (torchaudio's `resample` with its defaults).
#[track_caller]
pub fn resample(x: &Tensor, orig_freq: u32, new_freq: u32) -> Tensor {
    match resample_inner(x, orig_freq, new_freq) {
        Ok(y) => y,
        Err(reason) => x.refuse("resample", reason),
    }
}

fn resample_inner(x: &Tensor, orig_freq: u32, new_freq: u32) -> Result<Tensor, String> {
    if orig_freq == 0 || new_freq == 0 {
        return Err(format!(
            "the rates must be positive, got {orig_freq} Hz -> {new_freq} Hz"
        ));
    }
    let ty = x.ty().ok_or("a poisoned input")?;
    if !ty.dtype.is_float() {
        return Err(format!("the signal must be f32 or f64, got {}", ty.dtype));
    }
    let dims = ty.shape.dims().to_vec();
    let (&t, lead) = dims.split_last().ok_or("a scalar has no time axis")?;
    if orig_freq == new_freq {
        return Ok(x.clone());
    }
    let g = gcd(u64::from(orig_freq), u64::from(new_freq));
    let (orig, new) = (
        (u64::from(orig_freq) / g) as usize,
        (u64::from(new_freq) / g) as usize,
    );
    // The filters hold new × (2·width + orig) ≈ new × (orig + 12·orig/new) taps: rates
    // that reduce to large coprime numbers (44101 -> 48000 Hz) would need gigabytes.
    let base = orig.min(new) as f64 * 0.99;
    let taps_est = (2.0 * (6.0 * orig as f64 / base).ceil() + orig as f64) * new as f64;
    if taps_est > (1u64 << 24) as f64 {
        return Err(format!(
            "{orig_freq} Hz -> {new_freq} Hz reduces to {orig} -> {new}: its filters would hold \
             {taps_est:.0} taps; resample through an intermediate rate with a larger common divisor"
        ));
    }
    let (k, width) = kernel(orig, new, 6, 0.99);
    let taps = 2 * width + orig;
    let w = crate::constant(x.builder(), &[new, 1, taps], &k, ty.dtype);
    let n: usize = lead.iter().product();
    let padded = x.reshape([n, 1, t]).pad([width, width + orig], 0.0);
    let conv = ConvOpts {
        stride: vec![orig],
        ..ConvOpts::default()
    };
    // [n, new, frames] -> [n, frames, new] -> [n, frames·new]: phases interleaved.
    let y = padded.conv1d(&w, None, &conv).transpose(1, 2);
    let frames = y.size().get(1).copied().unwrap_or(0);
    let y = y.reshape([n, frames * new]);
    let target = (new as u64 * t as u64).div_ceil(orig as u64) as usize;
    let mut shape = lead.to_vec();
    shape.push(target);
    Ok(y.narrow(-1, 0, target.min(frames * new)).reshape(shape))
}
