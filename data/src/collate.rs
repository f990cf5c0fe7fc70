//! Collate functions: a list of samples → one [`Batch`] (`collate_fn`).
//!
//! [`Stack`] stacks every field into `[B, …]` (PyTorch's `default_collate`); samples
//! whose shapes differ are an error that says to pad. [`PadCollate`] pads one field's
//! last axis (a waveform's samples, a feature sequence's frames) to the batch's longest
//! — or up to a multiple of `multiple_of`, so that batches fall into a few length
//! buckets (each compiled once) — and adds `lengths` (`[B]`, i64) and `mask` (`[B, T]`,
//! f32: 1 on valid frames), what the course's padding collate returns and what the
//! temporal pooling layers and recurrent layers take.

use crate::dataset::Sample;
use crate::{invalid, DataError, Result};
use onde_ir::Array;
use onde_ir::Data;

/// A batch: each field stacked along a new leading axis, the labels, and the dataset
/// indices of its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Stacked fields, in the samples' field order (then `lengths` and `mask` when a
    /// [`PadCollate`] made them).
    pub fields: Vec<(String, Array)>,
    /// Labels, i64 `[B]`.
    pub labels: Array,
    /// Dataset index of each sample.
    pub indices: Vec<usize>,
}

impl Batch {
    /// The field `name`.
    pub fn field(&self, name: &str) -> Option<&Array> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch has no sample.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// Turns samples (with their dataset indices, for errors) into a batch.
pub trait Collate: Send + Sync {
    /// The batch of `samples` (non-empty).
    ///
    /// # Errors
    /// [`DataError::Shape`] / [`DataError::Fields`] naming the sample that does not fit.
    fn collate(&self, samples: &[(usize, Sample)]) -> Result<Batch>;
}

/// Stacks every field (`default_collate`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stack;

impl Collate for Stack {
    fn collate(&self, samples: &[(usize, Sample)]) -> Result<Batch> {
        collate_with(samples, None)
    }
}

/// Pads field `field` along its last axis to the batch's longest (rounded up to a
/// multiple of `multiple_of`) with `value`, stacks everything, and adds `lengths` and
/// `mask`.
#[derive(Debug, Clone)]
pub struct PadCollate {
    /// The variable-length field.
    pub field: String,
    /// Padding value.
    pub value: f64,
    /// Pad the length up to a multiple of this (1: the longest exactly).
    pub multiple_of: usize,
}

impl PadCollate {
    /// Zero padding of `field` to the batch's longest.
    pub fn new(field: &str) -> PadCollate {
        PadCollate {
            field: field.to_string(),
            value: 0.0,
            multiple_of: 1,
        }
    }

    /// Lengths rounded up to a multiple of `m` (length buckets).
    pub fn multiple_of(mut self, m: usize) -> PadCollate {
        self.multiple_of = m.max(1);
        self
    }
}

impl Collate for PadCollate {
    fn collate(&self, samples: &[(usize, Sample)]) -> Result<Batch> {
        collate_with(samples, Some(self))
    }
}

fn dims_of(a: &Array) -> Vec<usize> {
    a.shape().dims().to_vec()
}

/// Elements `[start, start + row)` of `x`'s storage as an array of shape `dims`.
pub(crate) fn slice_rows(x: &Array, start: usize, row: usize, dims: &[usize]) -> Result<Array> {
    let r = start..start + row;
    let data = match x.data() {
        Data::Bool(v) => Data::Bool(v[r].to_vec()),
        Data::I64(v) => Data::I64(v[r].to_vec()),
        Data::F32(v) => Data::F32(v[r].to_vec()),
        Data::F64(v) => Data::F64(v[r].to_vec()),
    };
    Array::new(dims.to_vec(), data).map_err(|e| invalid("slice", e.to_string()))
}

/// `a` padded along its last axis to `len` with `value` (cast to `a`'s dtype).
fn pad_last(a: &Array, len: usize, value: f64) -> Result<Array> {
    let dims = dims_of(a);
    let Some(&t) = dims.last() else {
        return Err(invalid("PadCollate", "cannot pad a scalar field"));
    };
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let mut out_dims = dims.clone();
    *out_dims.last_mut().unwrap_or(&mut 0) = len;
    fn pad<T: Copy>(v: &[T], rows: usize, t: usize, len: usize, fill: T) -> Vec<T> {
        let mut out = Vec::with_capacity(rows * len);
        for r in 0..rows {
            out.extend_from_slice(&v[r * t..(r + 1) * t]);
            out.extend(std::iter::repeat_n(fill, len - t));
        }
        out
    }
    let data = match a.data() {
        Data::Bool(v) => Data::Bool(pad(v, rows, t, len, value != 0.0)),
        Data::I64(v) => Data::I64(pad(v, rows, t, len, value as i64)),
        Data::F32(v) => Data::F32(pad(v, rows, t, len, value as f32)),
        Data::F64(v) => Data::F64(pad(v, rows, t, len, value)),
    };
    Array::new(out_dims, data).map_err(|e| invalid("PadCollate", e.to_string()))
}

/// The arrays stacked along a new leading axis (same dtype and shape, checked).
fn stack(parts: &[&Array], name: &str, indices: &[usize], padded: bool) -> Result<Array> {
    let first = parts[0];
    let dims = dims_of(first);
    for (k, a) in parts.iter().enumerate().skip(1) {
        if a.dtype() != first.dtype() {
            return Err(DataError::Fields {
                index: indices[k],
                reason: format!(
                    "has field `{name}` of dtype {}, the batch's first sample {}",
                    a.dtype(),
                    first.dtype()
                ),
            });
        }
        if dims_of(a) != dims {
            let hint = if padded {
                String::new()
            } else {
                "; variable-length samples need a padding collate (PadCollate)".to_string()
            };
            return Err(DataError::Shape {
                field: name.to_string(),
                index: indices[k],
                expected: dims,
                got: dims_of(a),
                hint,
            });
        }
    }
    let mut out_dims = vec![parts.len()];
    out_dims.extend(&dims);
    macro_rules! cat {
        ($variant:ident) => {{
            let mut v = Vec::with_capacity(parts.len() * first.numel());
            for a in parts {
                if let Data::$variant(x) = a.data() {
                    v.extend_from_slice(x);
                }
            }
            Data::$variant(v)
        }};
    }
    let data = match first.data() {
        Data::Bool(_) => cat!(Bool),
        Data::I64(_) => cat!(I64),
        Data::F32(_) => cat!(F32),
        Data::F64(_) => cat!(F64),
    };
    Array::new(out_dims, data).map_err(|e| invalid("collate", e.to_string()))
}

fn collate_with(samples: &[(usize, Sample)], pad: Option<&PadCollate>) -> Result<Batch> {
    let Some((i0, s0)) = samples.first() else {
        return Err(invalid("collate", "no samples"));
    };
    let indices: Vec<usize> = samples.iter().map(|(i, _)| *i).collect();
    let names: Vec<&str> = s0.fields.iter().map(|(n, _)| n.as_str()).collect();
    for (i, s) in samples {
        let theirs: Vec<&str> = s.fields.iter().map(|(n, _)| n.as_str()).collect();
        if theirs != names {
            return Err(DataError::Fields {
                index: *i,
                reason: format!("has fields {theirs:?}, sample {i0} {names:?}"),
            });
        }
    }
    if let Some(p) = pad {
        if !names.contains(&p.field.as_str()) {
            return Err(invalid(
                "PadCollate",
                format!("no field `{}` in the samples (fields: {names:?})", p.field),
            ));
        }
    }
    let mut fields = Vec::with_capacity(names.len() + 2);
    let mut extra = Vec::new();
    for (f, name) in names.iter().enumerate() {
        let arrays: Vec<&Array> = samples.iter().map(|(_, s)| &s.fields[f].1).collect();
        match pad.filter(|p| p.field == *name) {
            None => fields.push((name.to_string(), stack(&arrays, name, &indices, false)?)),
            Some(p) => {
                let mut lengths = Vec::with_capacity(arrays.len());
                for (a, &i) in arrays.iter().zip(&indices) {
                    match a.shape().dims().last() {
                        Some(&t) => lengths.push(t),
                        None => {
                            return Err(invalid(
                                "PadCollate",
                                format!("field `{name}` of sample {i} is a scalar"),
                            ))
                        }
                    }
                }
                let longest = lengths.iter().copied().max().unwrap_or(0);
                let t = longest.div_ceil(p.multiple_of) * p.multiple_of;
                let padded = arrays
                    .iter()
                    .map(|a| pad_last(a, t, p.value))
                    .collect::<Result<Vec<Array>>>()?;
                let refs: Vec<&Array> = padded.iter().collect();
                fields.push((name.to_string(), stack(&refs, name, &indices, true)?));
                let b = lengths.len();
                let mut mask = vec![0f32; b * t];
                for (r, &l) in lengths.iter().enumerate() {
                    mask[r * t..r * t + l].fill(1.0);
                }
                let lens: Vec<i64> = lengths.iter().map(|&l| l as i64).collect();
                extra.push((
                    "lengths".to_string(),
                    Array::i64([b], lens).map_err(|e| invalid("PadCollate", e.to_string()))?,
                ));
                extra.push((
                    "mask".to_string(),
                    Array::f32([b, t], mask).map_err(|e| invalid("PadCollate", e.to_string()))?,
                ));
            }
        }
    }
    fields.extend(extra);
    let labels: Vec<i64> = samples.iter().map(|(_, s)| s.label).collect();
    let labels =
        Array::i64([labels.len()], labels).map_err(|e| invalid("collate", e.to_string()))?;
    Ok(Batch {
        fields,
        labels,
        indices,
    })
}
