//! `gather`, with `torch.gather` semantics.

use super::elem::{at, take, typed};
use super::error::{InterpError, Result, Site};
use super::index::{count, strides, try_for_each_coord};
use onde_ir::Array;

/// `out[c] = x[c with c[axis] replaced by index[c]]`; the result has the index's
/// extents. A negative index or one not below `x`'s extent along `axis` is an
/// [`InterpError::GatherIndexOutOfRange`] (negative indices are not wrapped).
pub(crate) fn gather(site: Site, x: &Array, index: &Array, axis: usize) -> Result<Array> {
    let xd = x.shape().dims();
    let id = index.shape().dims();
    let valid = id.len() == xd.len()
        && axis < xd.len()
        && (0..xd.len()).all(|i| i == axis || id[i] <= xd[i]);
    if !valid {
        return Err(InterpError::internal(format!(
            "gather: index {} invalid for input {} along axis {axis}",
            index.shape(),
            x.shape()
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
    take(x, &idx, id.to_vec())
}
