//! The seeded generator behind every random choice of this crate: SplitMix64 (Steele,
//! Lea & Flood, 2014), a 64-bit state advanced by a constant and mixed. Small, fast,
//! and the same stream on every machine, which is what reproducible epochs need (a
//! statistical-quality generator for shuffling, not for cryptography).

/// A SplitMix64 stream.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The stream for epoch `epoch` of a run seeded with `seed` (independent streams
    /// per epoch, so one epoch can be replayed alone).
    pub fn for_epoch(seed: u64, epoch: u64) -> SplitMix64 {
        let mut s = SplitMix64::new(seed ^ 0x5851_F42D_4C95_7F2D);
        let a = s.next_u64();
        SplitMix64::new(a ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The stream for sample `index` in epoch `epoch` of a run seeded with `seed`:
    /// what a per-sample augmentation draws from, so its result does not depend on
    /// which worker thread prepared the sample.
    pub fn for_sample(seed: u64, epoch: u64, index: usize) -> SplitMix64 {
        let mut s = SplitMix64::for_epoch(seed, epoch);
        let a = s.next_u64();
        let mut t = SplitMix64::new(a ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        SplitMix64::new(t.next_u64())
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias (rejection).
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }

    /// `0..n` in a uniformly random order (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
        v
    }
}
