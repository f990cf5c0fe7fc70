//! Data movement: `reshape`, `permute`, `expand`, `slice`, `unfold`, `pad`, `concat`, and the
//! axis slicing / stacking used by `scan`.
//!
//! Each op is expressed as "element `j` of the result is element `idx[j]` of the
//! operand" (see [`take`]), with the index lists built by the helpers of
//! [`super::index`].

use super::elem::{make, take, take_or_fill, typed, with_elem, Elem, Num};
use super::error::{InterpError, Result};
use super::index::{
    broadcast_strides, count, dot, for_each_coord, remove_axis, strided_indices, strides,
};
use onde_ir::{Array, SliceAxis, TensorType};

/// Same elements, new extents (row-major).
pub(crate) fn reshape(x: &Array, dims: &[usize]) -> Result<Array> {
    Array::new(dims, x.data().clone()).map_err(|e| InterpError::internal(e.to_string()))
}

/// Result axis `i` is operand axis `perm[i]`.
pub(crate) fn permute(x: &Array, perm: &[usize]) -> Result<Array> {
    let dims = x.shape().dims();
    let st = strides(dims);
    let mut out = Vec::with_capacity(perm.len());
    let mut out_strides = Vec::with_capacity(perm.len());
    for &p in perm {
        match (dims.get(p), st.get(p)) {
            (Some(&d), Some(&s)) => {
                out.push(d);
                out_strides.push(s);
            }
            (None, _) | (_, None) => {
                return Err(InterpError::internal(format!(
                    "{perm:?} is not a permutation of {} axes",
                    dims.len()
                )))
            }
        }
    }
    take(x, &strided_indices(&out, &out_strides, 0), out)
}

/// Broadcast to extents `dims`.
pub(crate) fn expand(x: &Array, dims: &[usize]) -> Result<Array> {
    let st = broadcast_strides(x.shape().dims(), dims).ok_or_else(|| {
        InterpError::internal(format!("cannot broadcast {} to {dims:?}", x.shape()))
    })?;
    take(x, &strided_indices(dims, &st, 0), dims.to_vec())
}

/// Strided slice, one range per axis.
pub(crate) fn slice(x: &Array, axes: &[SliceAxis]) -> Result<Array> {
    let dims = x.shape().dims();
    let st = strides(dims);
    if axes.len() != dims.len()
        || axes
            .iter()
            .zip(dims)
            .any(|(a, &d)| a.step == 0 || a.start > a.stop || a.stop > d)
    {
        return Err(InterpError::internal(format!(
            "slice {axes:?} invalid for extents {dims:?}"
        )));
    }
    let out: Vec<usize> = axes.iter().map(SliceAxis::len).collect();
    let offset = dot(&axes.iter().map(|a| a.start).collect::<Vec<_>>(), &st, 0);
    let out_strides: Vec<usize> = axes
        .iter()
        .zip(&st)
        .map(|(a, &s)| a.step.saturating_mul(s))
        .collect();
    take(x, &strided_indices(&out, &out_strides, offset), out)
}

/// Sliding windows along `axis` (see `Op::Unfold`): axis `axis` becomes
/// `[size, count]` with `out[.., k, p, ..] = x[.., p·step + k·dilation, ..]`.
pub(crate) fn unfold(
    x: &Array,
    axis: usize,
    size: usize,
    step: usize,
    dilation: usize,
) -> Result<Array> {
    let dims = x.shape().dims();
    let st = strides(dims);
    let len = *dims
        .get(axis)
        .ok_or_else(|| InterpError::internal(format!("unfold axis {axis} out of range")))?;
    let span = size
        .checked_sub(1)
        .and_then(|s| s.checked_mul(dilation))
        .and_then(|s| s.checked_add(1))
        .filter(|&s| s <= len && step > 0 && dilation > 0)
        .ok_or_else(|| {
            InterpError::internal(format!(
                "unfold size {size} step {step} dilation {dilation} invalid for extent {len}"
            ))
        })?;
    let mut out = dims.to_vec();
    out.splice(axis..=axis, [size, (len - span) / step + 1]);
    // A one-element axis needs no stride (and a huge step or dilation, legal there,
    // must not overflow): elsewhere `dilation`, `step` < `len`, so the products fit.
    let count = out[axis + 1];
    let along = |n: usize, by: usize| if n > 1 { by * st[axis] } else { 0 };
    let mut out_strides = st.clone();
    out_strides.splice(axis..=axis, [along(size, dilation), along(count, step)]);
    take(x, &strided_indices(&out, &out_strides, 0), out)
}

/// Constant padding `(before, after)` per axis with `value`, converted to the dtype
/// like a cast (truncation toward zero for i64, `!= 0` for bool).
pub(crate) fn pad(x: &Array, pads: &[(usize, usize)], value: f64) -> Result<Array> {
    let dims = x.shape().dims();
    if pads.len() != dims.len() {
        return Err(InterpError::internal("one pad pair per axis expected"));
    }
    let st = strides(dims);
    let mut out = Vec::with_capacity(dims.len());
    for (&d, &(lo, hi)) in dims.iter().zip(pads) {
        out.push(
            d.checked_add(lo)
                .and_then(|e| e.checked_add(hi))
                .ok_or_else(|| InterpError::internal("padded extent overflows"))?,
        );
    }
    let mut idx = Vec::with_capacity(count(&out));
    for_each_coord(&out, |c| {
        let inside = c
            .iter()
            .zip(pads)
            .zip(dims)
            .all(|((&c, &(lo, _)), &d)| c >= lo && c - lo < d);
        idx.push(inside.then(|| {
            c.iter()
                .zip(pads)
                .zip(&st)
                .map(|((&c, &(lo, _)), &s)| (c - lo) * s)
                .sum()
        }));
    });
    take_or_fill(x, &idx, Num::Float(value), out)
}

/// Writes, for each of `outer` rows, chunk `o` of each part in turn:
/// `parts[k][o·chunk[k] .. (o+1)·chunk[k]]`. Concatenation and stacking along an axis
/// are both this interleaving.
fn interleave<T: Elem>(parts: &[&[T]], chunks: &[usize], outer: usize) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for o in 0..outer {
        for (p, &c) in parts.iter().zip(chunks) {
            let chunk = p.get(o * c..(o + 1) * c).ok_or_else(|| {
                InterpError::internal(format!("chunk {o} of size {c} out of bounds"))
            })?;
            out.extend_from_slice(chunk);
        }
    }
    Ok(out)
}

/// Concatenates `xs` along `axis` (all of `dtype`, equal extents elsewhere).
fn join(xs: &[&Array], axis: usize, out: Vec<usize>) -> Result<Array> {
    let Some(first) = xs.first() else {
        return Err(InterpError::internal("nothing to concatenate"));
    };
    let outer = count(out.get(..axis).unwrap_or(&[]));
    let chunks: Vec<usize> = xs
        .iter()
        .map(|x| count(x.shape().dims().get(axis..).unwrap_or(&[])))
        .collect();
    if count(&out) == 0 {
        // Nothing to copy (and `outer` or a chunk may be saturated).
        return with_elem!(first.dtype(), T => make::<T>(out, Vec::new()));
    }
    with_elem!(first.dtype(), T => {
        let parts = xs.iter().map(|x| typed::<T>(x)).collect::<Result<Vec<_>>>()?;
        make(out, interleave(&parts, &chunks, outer)?)
    })
}

/// Concatenation along `axis`.
pub(crate) fn concat(xs: &[&Array], axis: usize) -> Result<Array> {
    let Some(first) = xs.first() else {
        return Err(InterpError::internal("concat of no operands"));
    };
    let dims = first.shape().dims();
    if axis >= dims.len() {
        return Err(InterpError::internal("concat axis out of range"));
    }
    let mut out = dims.to_vec();
    out[axis] = 0;
    for x in xs {
        let d = x.shape().dims();
        if d.len() != dims.len() || (0..d.len()).any(|i| i != axis && d[i] != dims[i]) {
            return Err(InterpError::internal(
                "concat operands differ outside the axis",
            ));
        }
        out[axis] = out[axis]
            .checked_add(d[axis])
            .ok_or_else(|| InterpError::internal("concatenated extent overflows"))?;
    }
    join(xs, axis, out)
}

/// The slice of `x` at index `t` of `axis`, with that axis removed.
pub(crate) fn index_axis(x: &Array, axis: usize, t: usize) -> Result<Array> {
    let dims = x.shape().dims();
    if dims.get(axis).is_none_or(|&d| t >= d) {
        return Err(InterpError::internal(format!(
            "index {t} of axis {axis} out of range for {}",
            x.shape()
        )));
    }
    let st = strides(dims);
    let out = remove_axis(dims, axis);
    let idx = strided_indices(&out, &remove_axis(&st, axis), t * st[axis]);
    take(x, &idx, out)
}

/// Stacks `parts` (each of type `elem`) along a new axis `axis`; with no parts the
/// result has extent 0 there.
pub(crate) fn stack(parts: &[&Array], axis: usize, elem: &TensorType) -> Result<Array> {
    let dims = elem.shape.dims();
    if axis > dims.len() {
        return Err(InterpError::internal("stack axis out of range"));
    }
    for p in parts {
        if p.dtype() != elem.dtype || p.shape() != &elem.shape {
            return Err(InterpError::internal(format!(
                "stacking a {}{} as a {elem}",
                p.dtype(),
                p.shape()
            )));
        }
    }
    let mut out = dims.to_vec();
    out.insert(axis, parts.len());
    if parts.is_empty() {
        return with_elem!(elem.dtype, T => make::<T>(out, Vec::new()));
    }
    // Stacking is concatenation of the parts, each given a unit axis at `axis`.
    let mut unit = dims.to_vec();
    unit.insert(axis, 1);
    let reshaped = parts
        .iter()
        .map(|p| reshape(p, &unit))
        .collect::<Result<Vec<_>>>()?;
    join(&reshaped.iter().collect::<Vec<_>>(), axis, out)
}
