//! The seeded generator behind every random choice of this crate: SplitMix64 (Steele,
//! Lea & Flood, 2014) as the graph's random ops use it, counter-based. Small, fast,
//! and the same stream on every machine, which is what reproducible epochs need (a
//! statistical-quality generator for shuffling, not for cryptography).

/// A SplitMix64 stream: the counter-based generator of the graph's random ops
/// ([`onde_runtime::random_bits`], one mix of the seed and the draw's counter), so the
/// data side and the graph side share one definition.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    seed: i64,
    counter: u64,
}

/// Separates the epoch streams' seeds from the run's own stream.
const EPOCH_DOMAIN: i64 = 0x5851_F42D_4C95_7F2D;

impl SplitMix64 {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 {
            seed: seed as i64,
            counter: 0,
        }
    }

    /// The stream for epoch `epoch` of a run seeded with `seed` (independent streams
    /// per epoch, so one epoch can be replayed alone).
    pub fn for_epoch(seed: u64, epoch: u64) -> SplitMix64 {
        SplitMix64::new(onde_runtime::random_bits(seed as i64 ^ EPOCH_DOMAIN, epoch))
    }

    /// The stream for sample `index` in epoch `epoch` of a run seeded with `seed`:
    /// what a per-sample augmentation draws from, so its result does not depend on
    /// which worker thread prepared the sample.
    pub fn for_sample(seed: u64, epoch: u64, index: usize) -> SplitMix64 {
        let e = SplitMix64::for_epoch(seed, epoch).seed;
        SplitMix64::new(onde_runtime::random_bits(e ^ EPOCH_DOMAIN, index as u64))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.counter += 1;
        onde_runtime::random_bits(self.seed, self.counter)
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
