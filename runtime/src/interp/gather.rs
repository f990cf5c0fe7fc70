//! `gather`, with `torch.gather` semantics, and its adjoint `scatter_add`.

use super::elem::{at, bad_dtype, make, take, typed, with_float};
use super::error::{InterpError, Result, Site};
use super::index::{count, strides, try_for_each_coord};
use onde_ir::Array;

/// `out[c] = x[c with c[axis] replaced by index[c]]`; the result has the index's
/// extents. A negative index or one not below `x`'s extent along `axis` is an
/// [`InterpError::GatherIndexOutOfRange`] (negative indices are not wrapped).
pub(crate) fn gather(site: Site, x: &Array, index: &Array, axis: usize) -> Result<Array> {
    let idx = positions(site, x.shape().dims(), index, axis)?;
    take(x, &idx, index.shape().dims().to_vec())
}

/// `out = zeros(dims); out[c with c[axis] replaced by index[c]] += src[c]`, summed in
/// index order (floats accumulate in f64 and are rounded once). Index errors as for
/// [`gather`].
pub(crate) fn scatter_add(
    site: Site,
    index: &Array,
    src: &Array,
    axis: usize,
    dims: &[usize],
) -> Result<Array> {
    let pos = positions(site, dims, index, axis)?;
    let n: usize = dims.iter().product();
    match src.dtype() {
        onde_ir::DType::I64 => {
            let s = typed::<i64>(src)?;
            let mut out = vec![0i64; n];
            for (k, &p) in pos.iter().enumerate() {
                let slot = out
                    .get_mut(p)
                    .ok_or_else(|| InterpError::internal("scatter position out of range"))?;
                *slot = slot.wrapping_add(at(s, k)?);
            }
            make(dims.to_vec(), out)
        }
        d @ (onde_ir::DType::Bool | onde_ir::DType::F32 | onde_ir::DType::F64) => {
            with_float!(d, T => {
            use super::elem::Float;
            let s = typed::<T>(src)?;
            let mut acc = vec![0f64; n];
            for (k, &p) in pos.iter().enumerate() {
                let slot = acc.get_mut(p).ok_or_else(|| InterpError::internal("scatter position out of range"))?;
                *slot += at(s, k)?.to_f64();
            }
            make(dims.to_vec(), acc.into_iter().map(T::from_f64).collect::<Vec<T>>())
        }, else Err(bad_dtype("scatter_add", d)))
        }
    }
}

/// For each element of `index`, the flat position in an array of extents `xd` that it
/// addresses along `axis`.
fn positions(site: Site, xd: &[usize], index: &Array, axis: usize) -> Result<Vec<usize>> {
    let id = index.shape().dims();
    let valid = id.len() == xd.len()
        && axis < xd.len()
        && (0..xd.len()).all(|i| i == axis || id[i] <= xd[i]);
    if !valid {
        return Err(InterpError::internal(format!(
            "gather: index {} invalid for input {xd:?} along axis {axis}",
            index.shape(),
        )));
    }
    let ix = typed::<i64>(index)?;
    let st = strides(xd);
    let extent = xd[axis];
    let mut idx = Vec::with_capacity(count(id));
    let mut flat = 0;
    try_for_each_coord(id, |c| {
        let k = at(ix, flat)?;
        flat += 1;
        let kk = usize::try_from(k).ok().filter(|&kk| kk < extent).ok_or(
            InterpError::GatherIndexOutOfRange {
                op: site.id,
                index: k,
                extent,
                axis,
            },
        )?;
        let src = c
            .iter()
            .zip(&st)
            .enumerate()
            .map(|(i, (&ci, &s))| if i == axis { kk * s } else { ci * s })
            .sum();
        idx.push(src);
        Ok(())
    })?;
    Ok(idx)
}
