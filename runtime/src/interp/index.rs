//! Index arithmetic on row-major arrays: strides, element counts, coordinate
//! iteration and strided / broadcast index mapping.
//!
//! Every kernel expresses its data movement through these few helpers, so the
//! row-major conventions live in one place. Arithmetic saturates instead of
//! overflowing: an overflow can only happen for shapes with a zero extent somewhere,
//! and those have no elements to index.

/// Number of elements of `dims` (0 if any extent is 0, saturating otherwise).
pub(crate) fn count(dims: &[usize]) -> usize {
    if dims.contains(&0) {
        0
    } else {
        dims.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }
}

/// Row-major (C-order) strides of `dims`, in elements.
pub(crate) fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![0; dims.len()];
    let mut acc = 1usize;
    for (st, &d) in s.iter_mut().zip(dims).rev() {
        *st = acc;
        acc = acc.saturating_mul(d);
    }
    s
}

/// Calls `f` with every coordinate of `dims`, in row-major order.
pub(crate) fn for_each_coord(dims: &[usize], mut f: impl FnMut(&[usize])) {
    let _ = try_for_each_coord::<()>(dims, |c| {
        f(c);
        Ok(())
    });
}

/// Calls `f` with every coordinate of `dims`, in row-major order, stopping at the first
/// error.
pub(crate) fn try_for_each_coord<E>(
    dims: &[usize],
    mut f: impl FnMut(&[usize]) -> Result<(), E>,
) -> Result<(), E> {
    if count(dims) == 0 {
        return Ok(());
    }
    let mut c = vec![0; dims.len()];
    loop {
        f(&c)?;
        // Odometer increment, last axis fastest.
        let mut axis = dims.len();
        loop {
            if axis == 0 {
                return Ok(());
            }
            axis -= 1;
            c[axis] += 1;
            if c[axis] < dims[axis] {
                break;
            }
            c[axis] = 0;
        }
    }
}

/// `offset + Σ coord[i]·strides[i]`.
pub(crate) fn dot(coord: &[usize], strides: &[usize], offset: usize) -> usize {
    coord
        .iter()
        .zip(strides)
        .fold(offset, |a, (&c, &s)| a.saturating_add(c.saturating_mul(s)))
}

/// For every coordinate of `dims` in row-major order, the flat index
/// `offset + Σ coord[i]·strides[i]`: the element order of a strided view.
pub(crate) fn strided_indices(dims: &[usize], strides: &[usize], offset: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(count(dims));
    for_each_coord(dims, |c| out.push(dot(c, strides, offset)));
    out
}

/// Strides that read an array of extents `from` as if broadcast to `to` (NumPy rules:
/// align right, missing leading axes and extent-1 axes get stride 0). `None` if
/// `from` does not broadcast to `to`.
pub(crate) fn broadcast_strides(from: &[usize], to: &[usize]) -> Option<Vec<usize>> {
    if from.len() > to.len() {
        return None;
    }
    let lead = to.len() - from.len();
    let fs = strides(from);
    let mut out = vec![0; to.len()];
    for (i, (&f, &s)) in from.iter().zip(&fs).enumerate() {
        let t = to[lead + i];
        if f == t {
            out[lead + i] = s;
        } else if f != 1 {
            return None;
        }
    }
    Some(out)
}

/// The broadcast of several shapes (NumPy rules), `None` if incompatible.
pub(crate) fn broadcast_all(shapes: &[&[usize]]) -> Option<Vec<usize>> {
    let mut out: Vec<usize> = Vec::new();
    for s in shapes {
        let a = onde_ir::Shape::new(out.iter().copied());
        let b = onde_ir::Shape::new(s.iter().copied());
        out = onde_ir::broadcast_shapes(&a, &b)?.dims().to_vec();
    }
    Some(out)
}

/// For each operand extents in `shapes`, the flat index of the operand element that
/// feeds each element of the broadcast result `out` (row-major). `None` if some
/// operand does not broadcast to `out`.
pub(crate) fn broadcast_indices(shapes: &[&[usize]], out: &[usize]) -> Option<Vec<Vec<usize>>> {
    shapes
        .iter()
        .map(|s| Some(strided_indices(out, &broadcast_strides(s, out)?, 0)))
        .collect()
}

/// `dims` without axis `axis` (unchanged if `axis` is out of range).
pub(crate) fn remove_axis(dims: &[usize], axis: usize) -> Vec<usize> {
    dims.iter()
        .enumerate()
        .filter(|&(i, _)| i != axis)
        .map(|(_, &d)| d)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_and_count() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
        assert_eq!(count(&[2, 3, 4]), 24);
        assert_eq!(count(&[]), 1);
        assert_eq!(count(&[usize::MAX, usize::MAX, 0]), 0);
    }

    #[test]
    fn coords_in_row_major_order() {
        let mut seen = Vec::new();
        for_each_coord(&[2, 2], |c| seen.push(c.to_vec()));
        assert_eq!(seen, vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
        let mut n = 0;
        for_each_coord(&[], |c| {
            assert!(c.is_empty());
            n += 1
        });
        assert_eq!(n, 1);
        for_each_coord(&[3, 0], |_| panic!("no coordinates expected"));
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]), Some(vec![0, 1, 0]));
        assert_eq!(broadcast_strides(&[3], &[4]), None);
        assert_eq!(broadcast_all(&[&[3, 1], &[1, 4]]), Some(vec![3, 4]));
        assert_eq!(broadcast_all(&[&[0, 3], &[1, 3]]), Some(vec![0, 3]));
        assert_eq!(
            broadcast_indices(&[&[2, 1], &[3]], &[2, 3]),
            Some(vec![vec![0, 0, 0, 1, 1, 1], vec![0, 1, 2, 0, 1, 2]])
        );
    }
}
