//! A kernel's loop nest, normalised for every backend (the Cranelift code and the tile
//! engine): kept axes before reduced axes, extent-1 axes dropped, and adjacent axes
//! merged wherever every access is contiguous across them (a `[64, 256]` elementwise
//! kernel becomes one loop of 16384). Strides are in bytes per access (loads, then
//! stores).

use super::Kernel;
use crate::plan::lazy::contiguous;
use onde_ir::DType;

/// Size in bytes of an element of `d` in buffers (bool is one byte).
pub fn elem_size(d: DType) -> usize {
    match d {
        DType::Bool => 1,
        DType::F32 => 4,
        DType::I64 | DType::F64 => 8,
    }
}

/// One normalised loop axis.
#[derive(Clone, Debug)]
pub(crate) struct Axis {
    pub(crate) extent: usize,
    /// Byte stride per access (loads, then stores).
    pub(crate) strides: Vec<i64>,
    pub(crate) reduced: bool,
}

/// The kernel's loop nest after normalisation.
#[derive(Clone, Debug)]
pub(crate) struct Nest {
    pub(crate) axes: Vec<Axis>,
    /// Number of kept (outer) axes.
    pub(crate) kept: usize,
}

#[allow(clippy::needless_range_loop)] // `a` indexes the shape, the loads' strides and `reduced`
pub(crate) fn normalise(k: &Kernel) -> Nest {
    let r = k.shape.len();
    let reduced: Vec<bool> = (0..r)
        .map(|a| {
            k.reduction
                .as_ref()
                .is_some_and(|red| red.axes.contains(&a))
        })
        .collect();
    let kept_shape: Vec<usize> = (0..r)
        .filter(|&a| !reduced[a])
        .map(|a| k.shape[a])
        .collect();
    let kept_strides = contiguous(&kept_shape);
    let mut axes = Vec::with_capacity(r);
    let mut kept_i = 0;
    let full = contiguous(&k.shape);
    let reduced_store = |j: usize| k.reduction.as_ref().is_some_and(|r| r.reduces(j));
    for a in 0..r {
        let mut strides: Vec<i64> = k
            .loads
            .iter()
            .map(|l| l.strides[a] as i64 * elem_size(l.dtype) as i64)
            .collect();
        for (j, s) in k.stores.iter().enumerate() {
            let st = if reduced_store(j) {
                if reduced[a] {
                    0
                } else {
                    kept_strides[kept_i] as i64
                }
            } else {
                match &s.window {
                    Some((_, w)) => w[a] as i64,
                    None => full[a] as i64,
                }
            };
            strides.push(st * elem_size(k.dtypes[s.expr]) as i64);
        }
        if !reduced[a] {
            kept_i += 1;
        }
        axes.push(Axis {
            extent: k.shape[a],
            strides,
            reduced: reduced[a],
        });
    }
    // Kept axes first (stable), drop extent-1 axes.
    let mut ordered: Vec<Axis> = axes.iter().filter(|a| !a.reduced).cloned().collect();
    let kept_count = ordered.len();
    ordered.extend(axes.iter().filter(|a| a.reduced).cloned());
    let mut kept = kept_count;
    let mut out: Vec<Axis> = Vec::new();
    for (i, a) in ordered.into_iter().enumerate() {
        if a.extent == 1 {
            if i < kept_count {
                kept -= 1;
            }
            continue;
        }
        out.push(a);
    }
    // Merge adjacent axes of the same kind that are contiguous for every access.
    let mut merged: Vec<Axis> = Vec::new();
    let mut merged_kept = 0;
    for (i, a) in out.into_iter().enumerate() {
        let is_kept = i < kept;
        if let Some(prev) = merged.last_mut() {
            let same_kind = prev.reduced == a.reduced;
            let contiguous = prev
                .strides
                .iter()
                .zip(&a.strides)
                .all(|(&p, &s)| p == s * a.extent as i64);
            if same_kind && contiguous {
                prev.extent *= a.extent;
                prev.strides = a.strides.clone();
                continue;
            }
        }
        if is_kept {
            merged_kept += 1;
        }
        merged.push(a);
    }
    Nest {
        axes: merged,
        kept: merged_kept,
    }
}
