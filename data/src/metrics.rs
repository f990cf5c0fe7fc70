//! Classification metrics accumulated over batches (a metric logger): running loss,
//! accuracy, top-k accuracy, the confusion matrix, per-class precision, recall and F1,
//! their macro averages and the balanced accuracy (mean per-class recall).
//!
//! Conventions are scikit-learn's: rows of the confusion matrix are true classes,
//! columns predictions; a precision or recall whose denominator is zero counts as 0
//! (`zero_division=0`); balanced accuracy averages the recall of the classes that
//! occur. Targets equal to `ignore_index` (-100, as the losses) are skipped.

use crate::{invalid, Result};
use onde_ir::{Array, Data};

/// Label value skipped by the metrics (as `cross_entropy`'s `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// Running classification metrics over `classes` classes.
#[derive(Debug, Clone)]
pub struct ClassificationMetrics {
    classes: usize,
    /// `confusion[t * classes + p]`: samples of true class `t` predicted `p`.
    confusion: Vec<u64>,
    /// Top-k hits per requested `k`.
    topk: Vec<(usize, u64)>,
    loss_sum: f64,
    loss_samples: u64,
}

impl ClassificationMetrics {
    /// Metrics for `classes` classes, with top-`k` accuracy for each `k` in `topk`.
    pub fn new(classes: usize, topk: &[usize]) -> ClassificationMetrics {
        ClassificationMetrics {
            classes,
            confusion: vec![0; classes * classes],
            topk: topk.iter().map(|&k| (k, 0)).collect(),
            loss_sum: 0.0,
            loss_samples: 0,
        }
    }

    /// Forgets everything (a new epoch or phase).
    pub fn reset(&mut self) {
        self.confusion.fill(0);
        self.topk.iter_mut().for_each(|t| t.1 = 0);
        self.loss_sum = 0.0;
        self.loss_samples = 0;
    }

    /// Adds a batch: `scores` `[B, classes]` (logits or log-probabilities, f32 or f64),
    /// `labels` (`B` of them) and the batch's mean loss (weighted by `B` in the running
    /// mean).
    ///
    /// # Errors
    /// [`crate::DataError::Invalid`] for shapes that do not match or a label outside
    /// `0..classes` (other than the ignore index), naming it.
    pub fn update(&mut self, scores: &Array, labels: &[i64], loss: Option<f64>) -> Result<()> {
        let dims = scores.shape().dims();
        if dims.len() != 2 || dims[1] != self.classes || dims[0] != labels.len() {
            return Err(invalid(
                "ClassificationMetrics::update",
                format!(
                    "scores {dims:?} for {} labels and {} classes (expected [{}, {}])",
                    labels.len(),
                    self.classes,
                    labels.len(),
                    self.classes
                ),
            ));
        }
        let c = self.classes;
        let row = |b: usize| -> Vec<f64> {
            match scores.data() {
                Data::F32(v) => v[b * c..(b + 1) * c]
                    .iter()
                    .map(|&x| f64::from(x))
                    .collect(),
                Data::F64(v) => v[b * c..(b + 1) * c].to_vec(),
                Data::I64(v) => v[b * c..(b + 1) * c].iter().map(|&x| x as f64).collect(),
                Data::Bool(v) => v[b * c..(b + 1) * c]
                    .iter()
                    .map(|&x| f64::from(u8::from(x)))
                    .collect(),
            }
        };
        self.check_labels(labels)?;
        for (b, &y) in labels.iter().enumerate() {
            if y == IGNORE_INDEX {
                continue;
            }
            let s = row(b);
            // Rank of the true class: classes scoring strictly higher, then ties before it.
            let ty = s[y as usize];
            let above = s
                .iter()
                .enumerate()
                .filter(|&(j, &v)| v > ty || (v == ty && j < y as usize))
                .count();
            let pred = s
                .iter()
                .enumerate()
                .fold(0usize, |best, (j, &v)| if v > s[best] { j } else { best });
            self.confusion[y as usize * c + pred] += 1;
            for t in &mut self.topk {
                if above < t.0 {
                    t.1 += 1;
                }
            }
        }
        if let Some(l) = loss {
            let n = labels.iter().filter(|&&y| y != IGNORE_INDEX).count() as u64;
            self.loss_sum += l * n as f64;
            self.loss_samples += n;
        }
        Ok(())
    }

    /// Adds predicted classes directly.
    ///
    /// # Errors
    /// As [`ClassificationMetrics::update`].
    pub fn update_predictions(&mut self, predictions: &[i64], labels: &[i64]) -> Result<()> {
        if predictions.len() != labels.len() {
            return Err(invalid(
                "ClassificationMetrics::update_predictions",
                format!(
                    "{} predictions for {} labels",
                    predictions.len(),
                    labels.len()
                ),
            ));
        }
        self.check_labels(labels)?;
        self.check_labels(predictions)?;
        for (&p, &y) in predictions.iter().zip(labels) {
            if y != IGNORE_INDEX && p != IGNORE_INDEX {
                self.confusion[y as usize * self.classes + p as usize] += 1;
            }
        }
        Ok(())
    }

    fn check_labels(&self, labels: &[i64]) -> Result<()> {
        if let Some((i, y)) = labels
            .iter()
            .enumerate()
            .find(|(_, &y)| y != IGNORE_INDEX && !(0..self.classes as i64).contains(&y))
        {
            return Err(invalid(
                "ClassificationMetrics",
                format!(
                    "label [{i}] = {y} is out of range for {} classes (expected 0..={} or {IGNORE_INDEX})",
                    self.classes,
                    self.classes as i64 - 1
                ),
            ));
        }
        Ok(())
    }

    /// Samples counted (ignored targets excluded).
    pub fn samples(&self) -> u64 {
        self.confusion.iter().sum()
    }

    /// The confusion matrix, row-major `[true, predicted]`.
    pub fn confusion(&self) -> &[u64] {
        &self.confusion
    }

    fn ratio(a: u64, b: u64) -> f64 {
        if b == 0 {
            0.0
        } else {
            a as f64 / b as f64
        }
    }

    /// Running mean loss (0 before any loss was given).
    pub fn loss(&self) -> f64 {
        if self.loss_samples == 0 {
            0.0
        } else {
            self.loss_sum / self.loss_samples as f64
        }
    }

    /// Fraction of samples whose highest score is their class.
    pub fn accuracy(&self) -> f64 {
        let c = self.classes;
        let hits: u64 = (0..c).map(|k| self.confusion[k * c + k]).sum();
        Self::ratio(hits, self.samples())
    }

    /// Top-`k` accuracy, if `k` was requested.
    pub fn top_k(&self, k: usize) -> Option<f64> {
        self.topk
            .iter()
            .find(|t| t.0 == k)
            .map(|t| Self::ratio(t.1, self.samples()))
    }

    /// Precision of class `c`: correct predictions of `c` over all predictions of `c`.
    pub fn precision(&self, c: usize) -> f64 {
        let n = self.classes;
        let predicted: u64 = (0..n).map(|t| self.confusion[t * n + c]).sum();
        Self::ratio(self.confusion[c * n + c], predicted)
    }

    /// Recall of class `c`: correct predictions of `c` over the samples of `c`.
    pub fn recall(&self, c: usize) -> f64 {
        let n = self.classes;
        let actual: u64 = self.confusion[c * n..(c + 1) * n].iter().sum();
        Self::ratio(self.confusion[c * n + c], actual)
    }

    /// F1 of class `c` (harmonic mean of precision and recall; 0 when both are 0).
    pub fn f1(&self, c: usize) -> f64 {
        let (p, r) = (self.precision(c), self.recall(c));
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Unweighted mean of the per-class F1.
    pub fn macro_f1(&self) -> f64 {
        if self.classes == 0 {
            return 0.0;
        }
        (0..self.classes).map(|c| self.f1(c)).sum::<f64>() / self.classes as f64
    }

    /// Mean recall over the classes that occur (balanced accuracy).
    pub fn balanced_accuracy(&self) -> f64 {
        let n = self.classes;
        let present: Vec<usize> = (0..n)
            .filter(|&c| self.confusion[c * n..(c + 1) * n].iter().any(|&v| v > 0))
            .collect();
        if present.is_empty() {
            return 0.0;
        }
        present.iter().map(|&c| self.recall(c)).sum::<f64>() / present.len() as f64
    }

    /// Every scalar metric by name (`loss`, `accuracy`, `top{k}`, `balanced_accuracy`,
    /// `macro_f1`), for logs.
    pub fn summary(&self) -> Vec<(String, f64)> {
        let mut v = vec![
            ("loss".to_string(), self.loss()),
            ("accuracy".to_string(), self.accuracy()),
        ];
        for &(k, _) in &self.topk {
            v.push((format!("top{k}"), self.top_k(k).unwrap_or(0.0)));
        }
        v.push(("balanced_accuracy".to_string(), self.balanced_accuracy()));
        v.push(("macro_f1".to_string(), self.macro_f1()));
        v
    }
}
