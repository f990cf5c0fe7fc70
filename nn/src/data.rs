//! Data: a synthetic signal-classification task the project generates itself, and
//! shuffled mini-batches.
//!
//! [`SyntheticSignals`] draws waveforms of four classes — sine, square, sawtooth and
//! linear chirp — with random frequency, phase and amplitude plus white Gaussian noise,
//! from a seeded generator (SplitMix64), so every run and every machine sees the same
//! data without any download.

use onde_ir::Array;

/// Class names of [`SyntheticSignals`], by label.
pub const SIGNAL_CLASSES: [&str; 4] = ["sine", "square", "sawtooth", "chirp"];

/// A seeded generator of labelled waveforms.
#[derive(Debug, Clone)]
pub struct SyntheticSignals {
    /// Samples per waveform.
    pub length: usize,
    /// Standard deviation of the additive noise (amplitudes are in `[0.5, 1]`).
    pub noise: f64,
    seed: i64,
    counter: u64,
}

impl SyntheticSignals {
    /// A generator of `length`-sample waveforms with noise std `noise`, seeded.
    pub fn new(length: usize, noise: f64, seed: u64) -> SyntheticSignals {
        SyntheticSignals {
            length,
            noise,
            seed: seed as i64,
            counter: 0,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.counter += 1;
        onde_runtime::random_bits(self.seed, self.counter)
    }

    /// Uniform on `[0, 1)`.
    fn uniform(&mut self) -> f64 {
        self.counter += 1;
        onde_runtime::uniform_f64(self.seed, self.counter)
    }

    fn gaussian(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// One waveform of class `label` (0..4).
    pub fn waveform(&mut self, label: usize) -> Vec<f32> {
        let n = self.length as f64;
        // Frequency in cycles per window: 2 to 8 (well below Nyquist).
        let f0 = 2.0 + 6.0 * self.uniform();
        let phase = self.uniform();
        let amp = 0.5 + 0.5 * self.uniform();
        let f1 = f0 + 4.0 + 4.0 * self.uniform();
        (0..self.length)
            .map(|i| {
                let t = i as f64 / n;
                let cyc = f0 * t + phase;
                let frac = cyc - cyc.floor();
                let clean = match label {
                    0 => (std::f64::consts::TAU * cyc).sin(),
                    1 => {
                        if frac < 0.5 {
                            1.0
                        } else {
                            -1.0
                        }
                    }
                    2 => 2.0 * frac - 1.0,
                    _ => {
                        // Instantaneous frequency sweeps linearly from f0 to f1.
                        let c = f0 * t + 0.5 * (f1 - f0) * t * t + phase;
                        (std::f64::consts::TAU * c).sin()
                    }
                };
                (amp * clean + self.noise * self.gaussian()) as f32
            })
            .collect()
    }

    /// `n` examples with balanced random labels: `(x [n, length] f32, y [n] i64)`.
    pub fn dataset(&mut self, n: usize) -> (Array, Array) {
        let mut xs = Vec::with_capacity(n * self.length);
        let mut ys = Vec::with_capacity(n);
        for i in 0..n {
            let label = (i + (self.next_u64() % 4) as usize) % 4;
            xs.extend(self.waveform(label));
            ys.push(label as i64);
        }
        let x = Array::f32([n, self.length], xs)
            .unwrap_or_else(|_| Array::full(onde_ir::DType::F32, [0, self.length], 0.0));
        let y = Array::i64([n], ys).unwrap_or_else(|_| Array::scalar_i64(0));
        (x, y)
    }
}

/// Mini-batches of a dataset in a seeded random order (`DataLoader(shuffle=True,
/// drop_last=True)`): every batch has exactly `batch` rows, so one compiled step serves
/// them all.
#[derive(Debug, Clone)]
pub struct Batches {
    order: Vec<usize>,
    batch: usize,
    pos: usize,
}

impl Batches {
    /// Batches of `batch` row indices out of `n`, shuffled with `seed` (Fisher–Yates).
    pub fn new(n: usize, batch: usize, seed: u64) -> Batches {
        let mut order: Vec<usize> = (0..n).collect();
        let mut g = SyntheticSignals::new(0, 0.0, seed);
        for i in (1..n).rev() {
            let j = (g.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        Batches {
            order,
            batch: batch.max(1),
            pos: 0,
        }
    }

    /// Gathers rows `idx` of a 2-D f32 `x` and 1-D i64 `y` into batch arrays. Errors
    /// (naming the problem) if `x` is not 2-D f32, `y` not 1-D i64 with one label per
    /// row, or an index is out of range.
    pub fn gather(x: &Array, y: &Array, idx: &[usize]) -> crate::Result<(Array, Array)> {
        let bad = |reason: String| crate::Error::Train { reason };
        let dims = x.shape().dims();
        let (Some(xs), Some(ys), [rows, width]) = (x.as_f32(), y.as_i64(), dims) else {
            return Err(bad(format!(
                "batch gather needs x as f32 [rows, width] and y as i64 [rows], got x {} {:?} and y {} {:?}",
                x.dtype(),
                dims,
                y.dtype(),
                y.shape().dims()
            )));
        };
        if ys.len() != *rows {
            return Err(bad(format!("{} labels for {rows} rows", ys.len())));
        }
        let mut bx = Vec::with_capacity(idx.len() * width);
        let mut by = Vec::with_capacity(idx.len());
        for &i in idx {
            if i >= *rows {
                return Err(bad(format!("row {i} out of range for {rows} rows")));
            }
            bx.extend_from_slice(&xs[i * width..(i + 1) * width]);
            by.push(ys[i]);
        }
        let e = |e: onde_ir::ArrayLenError| bad(e.to_string());
        Ok((
            Array::f32([idx.len(), *width], bx).map_err(e)?,
            Array::i64([idx.len()], by).map_err(e)?,
        ))
    }
}

impl Iterator for Batches {
    type Item = Vec<usize>;
    fn next(&mut self) -> Option<Vec<usize>> {
        if self.pos + self.batch > self.order.len() {
            return None;
        }
        let b = self.order[self.pos..self.pos + self.batch].to_vec();
        self.pos += self.batch;
        Some(b)
    }
}
