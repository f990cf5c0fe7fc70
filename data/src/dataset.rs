//! Datasets: `len` and `get(i)`, as `torch.utils.data.Dataset` (map-style), and the
//! ways to combine and split them.

use crate::rng::SplitMix64;
use crate::{invalid, DataError, Result};
use onde_ir::Array;
use std::sync::Arc;

/// One example: named arrays (a waveform, features…) and its class label.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The arrays, by name, in a fixed order (the batch keeps it).
    pub fields: Vec<(String, Array)>,
    /// Class index (for regression or unlabelled data, any value; collate keeps it).
    pub label: i64,
}

impl Sample {
    /// A sample of one field.
    pub fn new(name: &str, value: Array, label: i64) -> Sample {
        Sample {
            fields: vec![(name.to_string(), value)],
            label,
        }
    }

    /// The field `name`.
    pub fn field(&self, name: &str) -> Option<&Array> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
}

/// A map-style dataset. `get` is called from the loader's worker threads, hence
/// `Send + Sync`; it returns a [`DataError`] (e.g. [`DataError::Sample`] naming a file)
/// rather than panicking.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// Sample `index` (`< len()`).
    ///
    /// # Errors
    /// [`DataError::Index`] past the end; the dataset's own failures.
    fn get(&self, index: usize) -> Result<Sample>;

    /// Whether the dataset has no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A grouping key of sample `index` for [`group_split`] (a speaker, a prompt);
    /// `None` when the dataset has none.
    fn group(&self, _index: usize) -> Option<String> {
        None
    }
}

fn check_index(index: usize, len: usize) -> Result<()> {
    if index < len {
        Ok(())
    } else {
        Err(DataError::Index { index, len })
    }
}

/// Samples held in memory, with optional group keys.
#[derive(Debug, Clone, Default)]
pub struct InMemory {
    samples: Vec<Sample>,
    groups: Option<Vec<String>>,
}

impl InMemory {
    /// A dataset of `samples`.
    pub fn new(samples: Vec<Sample>) -> InMemory {
        InMemory {
            samples,
            groups: None,
        }
    }

    /// With a group key per sample (for [`group_split`]).
    ///
    /// # Errors
    /// [`DataError::Invalid`] when there is not one key per sample.
    pub fn with_groups(mut self, groups: Vec<String>) -> Result<InMemory> {
        if groups.len() != self.samples.len() {
            return Err(invalid(
                "InMemory::with_groups",
                format!(
                    "{} group keys for {} samples",
                    groups.len(),
                    self.samples.len()
                ),
            ));
        }
        self.groups = Some(groups);
        Ok(self)
    }

    /// Rows of `x` (`[N, …]`) as samples of field `name`, with `labels` (`N` of them),
    /// as `TensorDataset(x, y)`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when `x` has no leading axis or the counts differ.
    pub fn from_rows(name: &str, x: &Array, labels: &[i64]) -> Result<InMemory> {
        let dims = x.shape().dims();
        let Some((&n, rest)) = dims.split_first() else {
            return Err(invalid("InMemory::from_rows", "a scalar has no rows"));
        };
        if n != labels.len() {
            return Err(invalid(
                "InMemory::from_rows",
                format!("{n} rows but {} labels", labels.len()),
            ));
        }
        let row: usize = rest.iter().product();
        let mut samples = Vec::with_capacity(n);
        for (i, &y) in labels.iter().enumerate() {
            let a = crate::collate::slice_rows(x, i * row, row, rest)?;
            samples.push(Sample::new(name, a, y));
        }
        Ok(InMemory::new(samples))
    }
}

impl Dataset for InMemory {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index(index, self.samples.len())?;
        Ok(self.samples[index].clone())
    }

    fn group(&self, index: usize) -> Option<String> {
        self.groups.as_ref().and_then(|g| g.get(index).cloned())
    }
}

/// The samples of `dataset` at `indices`, in that order (`torch.utils.data.Subset`).
#[derive(Clone)]
pub struct Subset {
    dataset: Arc<dyn Dataset>,
    indices: Vec<usize>,
}

impl std::fmt::Debug for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Subset({} of {})",
            self.indices.len(),
            self.dataset.len()
        )
    }
}

impl Subset {
    /// The subset at `indices`.
    ///
    /// # Errors
    /// [`DataError::Index`] for an index past the dataset's end.
    pub fn new(dataset: Arc<dyn Dataset>, indices: Vec<usize>) -> Result<Subset> {
        let len = dataset.len();
        if let Some(&index) = indices.iter().find(|&&i| i >= len) {
            return Err(DataError::Index { index, len });
        }
        Ok(Subset { dataset, indices })
    }

    /// The indices into the underlying dataset.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index(index, self.indices.len())?;
        self.dataset.get(self.indices[index])
    }

    fn group(&self, index: usize) -> Option<String> {
        self.indices.get(index).and_then(|&i| self.dataset.group(i))
    }
}

/// Datasets one after the other (`torch.utils.data.ConcatDataset`).
#[derive(Clone)]
pub struct ConcatDataset {
    parts: Vec<Arc<dyn Dataset>>,
    /// Cumulative lengths: part `k` holds indices `[ends[k-1], ends[k])`.
    ends: Vec<usize>,
}

impl std::fmt::Debug for ConcatDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ConcatDataset({} parts, {} samples)",
            self.parts.len(),
            self.len()
        )
    }
}

impl ConcatDataset {
    /// `parts` concatenated.
    pub fn new(parts: Vec<Arc<dyn Dataset>>) -> ConcatDataset {
        let mut ends = Vec::with_capacity(parts.len());
        let mut acc = 0;
        for p in &parts {
            acc += p.len();
            ends.push(acc);
        }
        ConcatDataset { parts, ends }
    }

    fn locate(&self, index: usize) -> Result<(usize, usize)> {
        check_index(index, self.len())?;
        let k = self.ends.partition_point(|&e| e <= index);
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        Ok((k, index - start))
    }
}

impl Dataset for ConcatDataset {
    fn len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    fn get(&self, index: usize) -> Result<Sample> {
        let (k, i) = self.locate(index)?;
        self.parts[k].get(i)
    }

    fn group(&self, index: usize) -> Option<String> {
        let (k, i) = self.locate(index).ok()?;
        self.parts[k].group(i)
    }
}

/// Split sizes from `fractions` (summing to 1) of `n`: floors, then the remainder one
/// by one to the first splits (as `torch.utils.data.random_split` with fractions).
fn sizes(n: usize, fractions: &[f64], what: &str) -> Result<Vec<usize>> {
    let sum: f64 = fractions.iter().sum();
    if fractions.is_empty()
        || fractions.iter().any(|f| !(0.0..=1.0).contains(f))
        || (sum - 1.0).abs() > 1e-6
    {
        return Err(invalid(
            what,
            format!("fractions {fractions:?} must each be in [0, 1] and sum to 1"),
        ));
    }
    let mut out: Vec<usize> = fractions
        .iter()
        .map(|f| (f * n as f64).floor() as usize)
        .collect();
    let mut rest = n - out.iter().sum::<usize>();
    for s in out.iter_mut() {
        if rest == 0 {
            break;
        }
        *s += 1;
        rest -= 1;
    }
    Ok(out)
}

/// Splits `dataset` at random into parts of the given `fractions` (summing to 1),
/// reproducibly from `seed`; every sample lands in exactly one part.
///
/// # Errors
/// [`DataError::Invalid`] for fractions outside `[0, 1]` or not summing to 1.
pub fn random_split(
    dataset: Arc<dyn Dataset>,
    fractions: &[f64],
    seed: u64,
) -> Result<Vec<Subset>> {
    let n = dataset.len();
    let sz = sizes(n, fractions, "random_split")?;
    let order = SplitMix64::new(seed).permutation(n);
    let mut out = Vec::with_capacity(sz.len());
    let mut at = 0;
    for s in sz {
        out.push(Subset::new(dataset.clone(), order[at..at + s].to_vec())?);
        at += s;
    }
    Ok(out)
}

/// Splits `dataset` by its group keys ([`Dataset::group`]): the groups are shuffled
/// with `seed` and dealt to the parts so that each part gets about its fraction of the
/// *samples*, and no group is in two parts (one speaker never in both training and
/// test).
///
/// # Errors
/// [`DataError::Invalid`] for bad fractions or a sample without a group key.
pub fn group_split(dataset: Arc<dyn Dataset>, fractions: &[f64], seed: u64) -> Result<Vec<Subset>> {
    let n = dataset.len();
    let target = sizes(n, fractions, "group_split")?;
    let mut keys: Vec<String> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
        let Some(k) = dataset.group(i) else {
            return Err(invalid(
                "group_split",
                format!("sample {i} has no group key (give the dataset groups)"),
            ));
        };
        match keys.iter().position(|x| *x == k) {
            Some(g) => members[g].push(i),
            None => {
                keys.push(k);
                members.push(vec![i]);
            }
        }
    }
    let order = SplitMix64::new(seed).permutation(keys.len());
    let mut parts: Vec<Vec<usize>> = vec![Vec::new(); target.len()];
    for g in order {
        // The part furthest below its target (relative), first among equals.
        let k = (0..parts.len())
            .max_by(|&a, &b| {
                let need = |p: usize| target[p] as f64 - parts[p].len() as f64;
                need(a).total_cmp(&need(b)).then(b.cmp(&a))
            })
            .unwrap_or(0);
        parts[k].extend(&members[g]);
    }
    parts
        .into_iter()
        .map(|mut p| {
            p.sort_unstable();
            Subset::new(dataset.clone(), p)
        })
        .collect()
}
