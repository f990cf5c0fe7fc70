//! Framing and the short-time Fourier transform as graph ops, so a front-end at a
//! model's input compiles into the training step and passes gradients.
//!
//! How the STFT computes: the frames are a strided view `[..., n_fft, n_frames]` of
//! the (padded) signal ([`Tensor::unfold`]), and their windowed DFT is matrix
//! products that land in torchaudio's `[freq, frames]` layout. When `n_fft` splits
//! into two factors of at least 8 (400 = 20·20, 512 = 16·32) the DFT is Cooley–Tukey's
//! two stages ([`two_stage_dft`]): about a fifth of the multiplications of the direct
//! product, which is used otherwise (a constant `[2·n_freq, n_fft]` matrix, the window
//! folded in). Why matrix products rather than an FFT kernel: they are differentiable
//! by the existing rules (the input gradient is the transposed products and an
//! overlap-add in `⌈n_fft/hop⌉` passes), run on the GEMM, and need no new primitive;
//! on F1 (log-mel of 32 one-second clips) the two stages brought the forward from 8.6
//! to 6.4 ms against torchaudio's FFT at 9.4–10.3 ms (`docs/performance.md`, with the
//! variants tried: a strided convolution, frames-major layouts, a separate twiddle
//! pass). Angles are reduced `nk mod N` in integers and evaluated in f64, so the
//! matrices are exact to the dtype's rounding.

use crate::window::Window;
use onde_ir::DType;
use onde_nn::{PadMode, Tensor};

/// Options of [`stft`], with `torch.stft`'s defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct StftOpts {
    /// FFT size: frame length and number of frequency bins (`n_fft/2 + 1` one-sided).
    pub n_fft: usize,
    /// Samples between frames (default `n_fft / 4`).
    pub hop_length: Option<usize>,
    /// Window length, at most `n_fft`; the window is zero-padded to `n_fft`, centred
    /// (default `n_fft`).
    pub win_length: Option<usize>,
    /// The window function (default Hann).
    pub window: Window,
    /// Periodic window (PyTorch's default) or symmetric.
    pub periodic: bool,
    /// Pad `n_fft / 2` on both sides so frame `t` is centred on sample `t · hop`.
    pub center: bool,
    /// How `center` pads (default reflect).
    pub pad_mode: PadMode,
    /// Multiply by `n_fft^(−1/2)` (`torch.stft(normalized=True)`).
    pub normalized: bool,
    /// Only the `n_fft/2 + 1` non-negative frequencies of a real signal.
    pub onesided: bool,
}

impl StftOpts {
    /// `torch.stft`'s defaults for `n_fft`: hop `n_fft/4`, a periodic Hann window of
    /// `n_fft`, centred with reflect padding, not normalised, one-sided.
    pub fn new(n_fft: usize) -> StftOpts {
        StftOpts {
            n_fft,
            hop_length: None,
            win_length: None,
            window: Window::Hann,
            periodic: true,
            center: true,
            pad_mode: PadMode::Reflect,
            normalized: false,
            onesided: true,
        }
    }

    /// The hop in samples.
    pub fn hop(&self) -> usize {
        self.hop_length.unwrap_or(self.n_fft / 4)
    }

    /// The window length.
    pub fn win(&self) -> usize {
        self.win_length.unwrap_or(self.n_fft)
    }

    /// Number of frequency bins.
    pub fn n_freq(&self) -> usize {
        if self.onesided {
            self.n_fft / 2 + 1
        } else {
            self.n_fft
        }
    }

    /// Number of frames of a `len`-sample signal, or why there are none.
    pub fn frames(&self, len: usize) -> Result<usize, String> {
        self.check()?;
        let padded = if self.center {
            len + 2 * (self.n_fft / 2)
        } else {
            len
        };
        if padded < self.n_fft {
            return Err(format!(
                "n_fft {} is larger than the {}signal of {padded} samples",
                self.n_fft,
                if self.center { "padded " } else { "" }
            ));
        }
        Ok(1 + (padded - self.n_fft) / self.hop())
    }

    /// The options' own consistency (n_fft, hop, window length).
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.n_fft == 0 {
            return Err("n_fft must be at least 1".into());
        }
        if self.hop() == 0 {
            return Err(format!(
                "hop_length must be at least 1 (n_fft {} gives a default hop of n_fft/4 = 0)",
                self.n_fft
            ));
        }
        let w = self.win();
        if w == 0 || w > self.n_fft {
            return Err(format!(
                "win_length {w} must be between 1 and n_fft ({})",
                self.n_fft
            ));
        }
        Ok(())
    }

    /// The window zero-padded to `n_fft`, centred, as `torch.stft` places it.
    pub fn padded_window(&self) -> Vec<f64> {
        // A window longer than n_fft (refused by the transforms) keeps its middle.
        let w = self.window.coefficients(self.win(), self.periodic);
        let mut full = vec![0.0; self.n_fft];
        if w.len() <= self.n_fft {
            let left = (self.n_fft - w.len()) / 2;
            full[left..left + w.len()].copy_from_slice(&w);
        } else {
            let skip = (w.len() - self.n_fft) / 2;
            full.copy_from_slice(&w[skip..skip + self.n_fft]);
        }
        full
    }
}

/// `x` `[..., T]` cut into frames `[..., n_frames, frame_length]`, `hop` samples
/// apart (`x.unfold(-1, frame_length, hop)`); the last partial frame is dropped.
#[track_caller]
pub fn frame(x: &Tensor, frame_length: usize, hop: usize) -> Tensor {
    let t = x.size().last().copied().unwrap_or(0);
    if x.dim() == 0 {
        return x.refuse("frame", "a scalar has no time axis");
    }
    if frame_length == 0 || hop == 0 {
        return x.refuse(
            "frame",
            format!("frame_length ({frame_length}) and hop ({hop}) must be at least 1"),
        );
    }
    if t < frame_length {
        return x.refuse(
            "frame",
            format!("a frame of {frame_length} samples is longer than the signal ({t})"),
        );
    }
    x.unfold(-1, frame_length, hop)
}

/// The DFT matrix `[2·n_freq, n_fft]` (cosines then negated sines, the window and
/// `scale` folded in).
fn dft_matrix(o: &StftOpts, scale: f64) -> Vec<f64> {
    let (n, nf) = (o.n_fft, o.n_freq());
    let w = o.padded_window();
    let mut m = vec![0.0f64; 2 * nf * n];
    for k in 0..nf {
        for (i, wi) in w.iter().enumerate() {
            let a = std::f64::consts::TAU * ((i * k) % n) as f64 / n as f64;
            m[k * n + i] = wi * a.cos() * scale;
            m[(nf + k) * n + i] = -wi * a.sin() * scale;
        }
    }
    m
}

/// The real and imaginary parts of the windowed DFT of every frame, each
/// `[..., n_freq, n_frames]` (torchaudio's layout), scaled by `scale`; or why the
/// options do not fit the signal. The frames are a view `[..., n_fft, n_frames]` of
/// the padded signal, multiplied on the left by the DFT matrix.
pub(crate) fn dft(x: &Tensor, o: &StftOpts, scale: f64) -> Result<(Tensor, Tensor), String> {
    let ty = x.ty().ok_or("a poisoned input")?;
    if !ty.dtype.is_float() {
        return Err(format!("the signal must be f32 or f64, got {}", ty.dtype));
    }
    let t = *ty
        .shape
        .dims()
        .last()
        .ok_or("a scalar has no time axis: give [..., T]")?;
    o.frames(t)?;
    let padded = if o.center {
        let p = o.n_fft / 2;
        if matches!(o.pad_mode, PadMode::Reflect) && p >= t {
            return Err(format!(
                "center=True with reflect padding pads n_fft/2 = {p} samples, which needs a \
                 signal longer than that ({t}): use PadMode::Constant(0.0) or center=false"
            ));
        }
        x.pad_mode([p, p], o.pad_mode)
    } else {
        x.clone()
    };
    let frames = padded.unfold(-1, o.n_fft, o.hop()).transpose(-1, -2);
    if let Some((n1, n2)) = split(o.n_fft) {
        return Ok(two_stage_dft(&frames, o, scale, ty.dtype, n1, n2));
    }
    let nf = o.n_freq();
    let m = crate::constant(
        x.builder(),
        &[2 * nf, o.n_fft],
        &dft_matrix(o, scale),
        ty.dtype,
    );
    let y = m.matmul(&frames);
    let nf = o.n_freq();
    Ok((y.narrow(-2, 0, nf), y.narrow(-2, nf as i64, nf)))
}

/// A factorisation `n = n1 · n2` with both factors at least 8 and `n1` the largest
/// divisor up to `√n` (400 = 20 · 20, 512 = 16 · 32), for [`two_stage_dft`]; `None`
/// when `n` has none (a prime, or a small `n`): the direct DFT product then.
fn split(n: usize) -> Option<(usize, usize)> {
    let n1 = (8..=n.isqrt()).rev().find(|d| n.is_multiple_of(*d))?;
    (n / n1 >= 8).then_some((n1, n / n1))
}

/// The DFT of frames `[..., n, F]` (`n = n1·n2`) in two stages of matrix products,
/// Cooley–Tukey's decomposition (sample `i = n2·i1 + i2`, bin `k = k1 + n1·k2`):
/// `n2·F` DFTs of size `n1` over `i1` (one product `[2·n1, n1] @ [n1, n2·F]` per
/// signal), then per `k1` the DFTs of size `n2` over `i2` with the twiddle
/// `e^(−2πi·i2·k1/n)` folded into their matrices (`[2·m2, 2·n2] @ [2·n2, F]`), for the
/// `k2` that reach a returned bin. About `(n1 + 2·m2)/n_freq` of the direct product's
/// multiplications (400: a fifth), all in differentiable ops, no copy between the
/// stages. Returns (re, im) `[..., n_freq, F]`.
fn two_stage_dft(
    frames: &Tensor,
    o: &StftOpts,
    scale: f64,
    dtype: DType,
    n1: usize,
    n2: usize,
) -> (Tensor, Tensor) {
    let g = frames.builder();
    let n = o.n_fft;
    let nf = o.n_freq();
    let tau = std::f64::consts::TAU;
    let mut lead = frames.size();
    let count = lead.pop().unwrap_or(0);
    lead.pop();
    let shaped = |tail: &[usize]| {
        let mut s = lead.clone();
        s.extend_from_slice(tail);
        s
    };
    // The window (and scale), then [..., n1, n2·F].
    let w: Vec<f64> = o.padded_window().iter().map(|v| v * scale).collect();
    let xa = (frames * crate::constant(g, &[n, 1], &w, dtype)).reshape(shaped(&[n1, n2 * count]));
    // Stage A: rows (cos, −sin) of 2π·i1·k1/n1 interleaved per k1, so the product
    // [..., 2·n1, n2·F] reads as [..., n1, (re | im)·n2, F] without a copy.
    let mut ma = vec![0.0; 2 * n1 * n1];
    for k1 in 0..n1 {
        for i1 in 0..n1 {
            let a = tau * ((i1 * k1) % n1) as f64 / n1 as f64;
            ma[2 * k1 * n1 + i1] = a.cos();
            ma[(2 * k1 + 1) * n1 + i1] = -a.sin();
        }
    }
    let y = crate::constant(g, &[2 * n1, n1], &ma, dtype)
        .matmul(&xa)
        .reshape(shaped(&[n1, 2 * n2, count]));
    // Stage B with the twiddle folded in: per k1, X[k] for k = k1 + n1·k2 is
    // Σ_i2 e^(−2πi·i2·k/n)·Y(k1, i2); rows Xr (k2) then Xi (k2), columns Yr (i2) then
    // Yi (i2): [n1, 2·m2, 2·n2], for the m2 = ⌈n_freq / n1⌉ values of k2 that reach a
    // returned bin.
    let m2 = nf.div_ceil(n1).min(n2);
    let mut mb = vec![0.0; n1 * 2 * m2 * 2 * n2];
    for k1 in 0..n1 {
        let base = k1 * 2 * m2 * 2 * n2;
        for k2 in 0..m2 {
            for i2 in 0..n2 {
                let k = k1 + n1 * k2;
                let a = tau * ((i2 * k) % n) as f64 / n as f64;
                let (c, s) = (a.cos(), a.sin());
                mb[base + k2 * 2 * n2 + i2] = c;
                mb[base + k2 * 2 * n2 + n2 + i2] = s;
                mb[base + (m2 + k2) * 2 * n2 + i2] = -s;
                mb[base + (m2 + k2) * 2 * n2 + n2 + i2] = c;
            }
        }
    }
    let xb = crate::constant(g, &[n1, 2 * m2, 2 * n2], &mb, dtype).matmul(&y);
    // [..., k1, k2, F] -> [..., k2, k1, F] -> bins k2·n1 + k1, the first n_freq.
    let order = |part: Tensor| {
        part.transpose(-3, -2)
            .reshape(shaped(&[m2 * n1, count]))
            .narrow(-2, 0, nf)
    };
    (
        order(xb.narrow(-2, 0, m2)),
        order(xb.narrow(-2, m2 as i64, m2)),
    )
}

/// `torch.stft(x, ..., return_complex=True)` as real pairs: `x` `[..., T]` →
/// `[..., n_freq, n_frames, 2]` (`torch.view_as_real`'s layout: real, imaginary).
#[track_caller]
pub fn stft(x: &Tensor, o: &StftOpts) -> Tensor {
    let scale = if o.normalized {
        1.0 / (o.n_fft as f64).sqrt()
    } else {
        1.0
    };
    match dft(x, o, scale) {
        Ok((re, im)) => onde_nn::stack(&[&re, &im], -1),
        Err(reason) => x.refuse("stft", reason),
    }
}

/// Options of [`istft`]: the STFT's, and the output length.
#[derive(Debug, Clone, PartialEq)]
pub struct IstftOpts {
    /// The options the STFT was computed with (`pad_mode` is not needed: `center`
    /// trims `n_fft / 2` from both ends).
    pub stft: StftOpts,
    /// Output length (default: `hop · (frames − 1)`, after trimming).
    pub length: Option<usize>,
}

/// Overlap-adds frames `[..., n_fft, F]` `hop` apart into `[..., hop·(F−1) + n_fft]`:
/// the window axis is cut into chunks of `hop` samples, each chunk of every frame
/// lies end to end, and the chunks are shifted and summed (`⌈n_fft/hop⌉` passes).
fn overlap_add(frames: &Tensor, n_fft: usize, hop: usize, count: usize) -> Tensor {
    let total = hop * (count - 1) + n_fft;
    let mut sum: Option<Tensor> = None;
    let mut j0 = 0;
    while j0 < n_fft {
        let w = hop.min(n_fft - j0);
        // [..., w, F] -> [..., F, w] -> widened to hop -> [..., F·hop] at offset j0.
        let mut part = frames.narrow(-2, j0 as i64, w).transpose(-1, -2);
        if w < hop {
            part = part.pad([0, hop - w], 0.0);
        }
        let mut shape = part.size();
        let f = shape.pop().unwrap_or(0) * shape.pop().unwrap_or(0);
        shape.push(f);
        let flat = part.reshape(shape);
        let len = count * hop;
        // Place at j0 within `total` (cut what passes the end: zeros from the widening).
        let placed = if j0 + len <= total {
            flat.pad([j0, total - j0 - len], 0.0)
        } else {
            flat.narrow(-1, 0, total - j0).pad([j0, 0], 0.0)
        };
        sum = Some(match sum {
            Some(s) => s + placed,
            None => placed,
        });
        j0 += w;
    }
    sum.unwrap_or_else(|| frames.refuse("istft", "no frame"))
}

/// `torch.istft`: real pairs `[..., n_freq, F, 2]` (as [`stft`] returns) → the signal
/// `[..., length]`, by the inverse DFT of every frame (a matrix product), the window,
/// overlap-add, and division by the overlap-added squared window (the least-squares
/// inverse; PyTorch's). One-sided spectra are completed by Hermitian symmetry (the
/// imaginary parts of the DC and Nyquist bins are ignored, as an FFT's `irfft` does).
#[track_caller]
pub fn istft(z: &Tensor, o: &IstftOpts) -> Tensor {
    match istft_inner(z, o) {
        Ok(y) => y,
        Err(reason) => z.refuse("istft", reason),
    }
}

fn istft_inner(z: &Tensor, o: &IstftOpts) -> Result<Tensor, String> {
    let s = &o.stft;
    s.check()?;
    let dims = z.size();
    let ty = z.ty().ok_or("a poisoned input")?;
    if !ty.dtype.is_float() {
        return Err(format!("the spectrum must be f32 or f64, got {}", ty.dtype));
    }
    let (n, nf, hop) = (s.n_fft, s.n_freq(), s.hop());
    if dims.len() < 3 || dims[dims.len() - 1] != 2 || dims[dims.len() - 3] != nf {
        return Err(format!(
            "expects [..., n_freq = {nf}, frames, 2] (n_fft {n}{}), got {dims:?}",
            if s.onesided { ", one-sided" } else { "" }
        ));
    }
    let count = dims[dims.len() - 2];
    if count == 0 {
        return Err("no frame".into());
    }
    let w = s.padded_window();
    let scale = if s.normalized { (n as f64).sqrt() } else { 1.0 };
    // Synthesis matrices [n_fft, n_freq]: frame[i] = Σ_k c_k (re_k cos − im_k sin)/N.
    let (mut cr, mut ci) = (vec![0.0; n * nf], vec![0.0; n * nf]);
    for i in 0..n {
        for k in 0..nf {
            let c = if !s.onesided || k == 0 || 2 * k == n {
                1.0
            } else {
                2.0
            };
            let a = std::f64::consts::TAU * ((i * k) % n) as f64 / n as f64;
            let f = c * w[i] * scale / n as f64;
            cr[i * nf + k] = f * a.cos();
            // The imaginary parts of DC and Nyquist do not exist for a real frame.
            ci[i * nf + k] = if s.onesided && (k == 0 || 2 * k == n) {
                0.0
            } else {
                -f * a.sin()
            };
        }
    }
    let re = z.narrow(-1, 0, 1).squeeze(-1);
    let im = z.narrow(-1, 1, 1).squeeze(-1);
    let g = z.builder();
    let frames = crate::constant(g, &[n, nf], &cr, ty.dtype).matmul(&re)
        + crate::constant(g, &[n, nf], &ci, ty.dtype).matmul(&im);
    let y = overlap_add(&frames, n, hop, count);
    // The window envelope Σ_f w²[t − f·hop], on the host; samples it does not cover
    // (below 1e-11) are an error, as in PyTorch.
    let total = hop * (count - 1) + n;
    let mut env = vec![0.0; total];
    for f in 0..count {
        for (i, wi) in w.iter().enumerate() {
            env[f * hop + i] += wi * wi;
        }
    }
    // With `center`, `n_fft / 2` is trimmed at the start; the end is `length` samples
    // later (reaching into the end padding if asked, as PyTorch), by default the end
    // minus its padding; past the overlap-added signal, zeros.
    let (start, default_end) = if s.center {
        (n / 2, total - n / 2)
    } else {
        (0, total)
    };
    let length = o.length.unwrap_or(default_end.saturating_sub(start));
    // Beyond the overlap-added signal the output is zeros; a length past 2^31 samples
    // is refused rather than allocated.
    if length > (1 << 31) {
        return Err(format!(
            "length {length} is too large (at most 2^31 samples)"
        ));
    }
    let end = (start + length).min(total);
    if let Some(t) = (start..end).find(|&t| env[t] < 1e-11) {
        return Err(format!(
            "the window overlap-adds to zero at sample {t}: this window and hop are not \
             invertible (NOLA)"
        ));
    }
    let inv: Vec<f64> = env
        .iter()
        .map(|&e| if e < 1e-11 { 0.0 } else { 1.0 / e })
        .collect();
    let inv = crate::constant(g, &[total], &inv, ty.dtype);
    let y = y * inv;
    let avail = end - start;
    Ok(if length <= avail {
        y.narrow(-1, start as i64, length)
    } else {
        y.narrow(-1, start as i64, avail)
            .pad([0, length - avail], 0.0)
    })
}
