//! The order of an epoch's samples (`torch.utils.data.Sampler`) and its cut into
//! batches (`BatchSampler`). Samplers are seeded and take the epoch number, so an
//! epoch's order is a function of `(seed, epoch)`: reproducible, and replayable on
//! resume.

use crate::rng::SplitMix64;
use crate::{invalid, Result};

/// Dataset indices for one epoch.
pub trait Sampler: Send + Sync {
    /// The indices of epoch `epoch` (for a dataset of `len` samples).
    fn indices(&self, len: usize, epoch: u64) -> Vec<usize>;
}

/// `0, 1, …, len − 1` every epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct SequentialSampler;

impl Sampler for SequentialSampler {
    fn indices(&self, len: usize, _epoch: u64) -> Vec<usize> {
        (0..len).collect()
    }
}

/// Random order: without replacement, a fresh permutation every epoch (each sample
/// once per epoch: the course's mini-batch SGD "v2"); with replacement, `num_samples`
/// independent uniform draws (SGD "v1").
#[derive(Debug, Clone, Copy)]
pub struct RandomSampler {
    /// Seed of the run.
    pub seed: u64,
    /// Draw with replacement.
    pub replacement: bool,
    /// Draws per epoch (default: the dataset's length).
    pub num_samples: Option<usize>,
}

impl RandomSampler {
    /// A permutation per epoch.
    pub fn new(seed: u64) -> RandomSampler {
        RandomSampler {
            seed,
            replacement: false,
            num_samples: None,
        }
    }

    /// `num_samples` uniform draws with replacement per epoch.
    pub fn with_replacement(seed: u64, num_samples: usize) -> RandomSampler {
        RandomSampler {
            seed,
            replacement: true,
            num_samples: Some(num_samples),
        }
    }
}

impl Sampler for RandomSampler {
    fn indices(&self, len: usize, epoch: u64) -> Vec<usize> {
        let mut rng = SplitMix64::for_epoch(self.seed, epoch);
        let n = self.num_samples.unwrap_or(len);
        if len == 0 {
            return Vec::new();
        }
        if self.replacement {
            (0..n).map(|_| rng.below(len)).collect()
        } else {
            // More than one pass when num_samples > len: whole permutations, then part.
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let p = rng.permutation(len);
                let take = (n - out.len()).min(len);
                out.extend_from_slice(&p[..take]);
            }
            out
        }
    }
}

/// Index `i` drawn with probability `weights[i] / Σ weights` (with or without
/// replacement), `num_samples` per epoch: class balancing with weights
/// `1 / count(class)` (`torch.utils.data.WeightedRandomSampler`).
#[derive(Debug, Clone)]
pub struct WeightedRandomSampler {
    cumulative: Vec<f64>,
    weights: Vec<f64>,
    num_samples: usize,
    replacement: bool,
    seed: u64,
}

impl WeightedRandomSampler {
    /// A sampler over `weights.len()` indices.
    ///
    /// # Errors
    /// [`crate::DataError::Invalid`] for a negative or non-finite weight, all weights
    /// zero, or more draws without replacement than non-zero weights.
    pub fn new(
        weights: Vec<f64>,
        num_samples: usize,
        replacement: bool,
        seed: u64,
    ) -> Result<Self> {
        if let Some((i, w)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !w.is_finite() || **w < 0.0)
        {
            return Err(invalid(
                "WeightedRandomSampler",
                format!("weight {i} is {w}; weights must be finite and non-negative"),
            ));
        }
        let positive = weights.iter().filter(|&&w| w > 0.0).count();
        if positive == 0 {
            return Err(invalid("WeightedRandomSampler", "every weight is zero"));
        }
        if !replacement && num_samples > positive {
            return Err(invalid(
                "WeightedRandomSampler",
                format!(
                    "{num_samples} draws without replacement from {positive} samples of non-zero weight"
                ),
            ));
        }
        let mut acc = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        Ok(WeightedRandomSampler {
            cumulative,
            weights,
            num_samples,
            replacement,
            seed,
        })
    }

    /// Weights `1 / count(label)` per sample, so that every class is drawn equally
    /// often on average.
    pub fn balanced(labels: &[i64], num_samples: usize, seed: u64) -> Result<Self> {
        let mut counts = std::collections::HashMap::new();
        for &l in labels {
            *counts.entry(l).or_insert(0usize) += 1;
        }
        let w = labels.iter().map(|l| 1.0 / counts[l] as f64).collect();
        WeightedRandomSampler::new(w, num_samples, true, seed)
    }
}

impl Sampler for WeightedRandomSampler {
    fn indices(&self, _len: usize, epoch: u64) -> Vec<usize> {
        let mut rng = SplitMix64::for_epoch(self.seed, epoch);
        if self.replacement {
            let total = self.cumulative.last().copied().unwrap_or(0.0);
            return (0..self.num_samples)
                .map(|_| {
                    let u = rng.next_f64() * total;
                    self.cumulative
                        .partition_point(|&c| c <= u)
                        .min(self.weights.len() - 1)
                })
                .collect();
        }
        // Without replacement: Efraimidis–Spirakis keys u^(1/w), the largest first.
        let mut keyed: Vec<(f64, usize)> = self
            .weights
            .iter()
            .enumerate()
            .filter(|(_, &w)| w > 0.0)
            .map(|(i, &w)| (rng.next_f64().max(f64::MIN_POSITIVE).ln() / w, i))
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        keyed
            .into_iter()
            .take(self.num_samples)
            .map(|(_, i)| i)
            .collect()
    }
}

/// An epoch's order cut into batches of `batch_size` (the last one shorter unless
/// `drop_last`).
#[derive(Debug, Clone, Copy)]
pub struct BatchSampler {
    /// Samples per batch (> 0).
    pub batch_size: usize,
    /// Drop the last batch when it is short.
    pub drop_last: bool,
}

impl BatchSampler {
    /// The batches of `order`.
    pub fn batches(&self, order: &[usize]) -> Vec<Vec<usize>> {
        let b = self.batch_size.max(1);
        order
            .chunks(b)
            .filter(|c| !self.drop_last || c.len() == b)
            .map(<[usize]>::to_vec)
            .collect()
    }
}
