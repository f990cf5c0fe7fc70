//! Im2col: the receptive fields of a tile of output positions copied into a column
//! panel, for one GEMM per (batch, group) and tile.

use super::*;

/// `seg[i] = xrow[(ox0 + i)·s + off - pad]`, zero where that falls in the padding.
pub(super) fn fill_shifted<T: Real>(
    seg: &mut [T],
    xrow: &[T],
    ox0: usize,
    s: usize,
    off: usize,
    pad: usize,
) {
    let (lo, hi) = valid_range(xrow.len(), s, off, pad);
    let lo_i = lo.saturating_sub(ox0).min(seg.len());
    let hi_i = hi.saturating_sub(ox0).min(seg.len()).max(lo_i);
    seg[..lo_i].fill(T::ZERO);
    seg[hi_i..].fill(T::ZERO);
    if hi_i > lo_i {
        let start = (ox0 + lo_i) * s + off - pad;
        let dst = &mut seg[lo_i..hi_i];
        let src = &xrow[start..];
        match s {
            1 => dst.copy_from_slice(&src[..dst.len()]),
            2 => copy_strided::<T, 2>(dst, src),
            3 => copy_strided::<T, 3>(dst, src),
            4 => copy_strided::<T, 4>(dst, src),
            _ => {
                for (d, v) in dst.iter_mut().zip(src.iter().step_by(s)) {
                    *d = *v;
                }
            }
        }
    }
}

/// `dst[i] = src[i·S]`; `src` holds at least `(dst.len() - 1)·S + 1` elements. Whole
/// strides of `S` go through `chunks_exact`, which the compiler vectorises with
/// shuffles (`step_by(S)` stayed a scalar loop: 61% of a stride-2 convolution's time
/// was this copy).
pub(super) fn copy_strided<T: Copy, const S: usize>(dst: &mut [T], src: &[T]) {
    let n = dst.len();
    let whole = (src.len() / S).min(n);
    for (d, c) in dst[..whole].iter_mut().zip(src.chunks_exact(S)) {
        *d = c[0];
    }
    for (i, d) in dst.iter_mut().enumerate().skip(whole) {
        *d = src[i * S];
    }
}

/// Columns `p0..p1` (flattened output positions) of the im2col matrix of one group:
/// row `(ci, ky, kx)` holds the input each position reads through that tap.
pub(super) fn im2col_tile<T: Real>(g: &Geom, xg: &[T], p0: usize, p1: usize, dst: &mut [T]) {
    let tl = p1 - p0;
    let plane = g.h * g.w;
    let rows = dst.chunks_exact_mut(tl);
    let taps = (0..g.cin_g)
        .flat_map(|ci| (0..g.kh).flat_map(move |ky| (0..g.kw).map(move |kx| (ci, ky, kx))));
    for (row, (ci, ky, kx)) in rows.zip(taps) {
        let xc = &xg[ci * plane..(ci + 1) * plane];
        let mut pos = p0;
        while pos < p1 {
            let (oy, ox0) = (pos / g.ow, pos % g.ow);
            let len = (g.ow - ox0).min(p1 - pos);
            let seg = &mut row[pos - p0..pos - p0 + len];
            let iy = oy * g.sh + ky * g.dh;
            if iy < g.ph || iy - g.ph >= g.h {
                seg.fill(T::ZERO);
            } else {
                let r = iy - g.ph;
                fill_shifted(seg, &xc[r * g.w..(r + 1) * g.w], ox0, g.sw, kx * g.dw, g.pw);
            }
            pos += len;
        }
    }
}

pub(super) fn im2col_item<T: Real>(
    g: &Geom,
    x: &[T],
    w: &[T],
    it: Item<'_, T>,
    cols: &mut [T],
) -> Result<(), NativeError> {
    let (npos, rows_k) = (g.npos(), g.rows_k());
    let channels = it.out.len() / npos;
    let xg = it.input(g, x);
    let a = MatRef {
        data: &w[it.first_channel(g) * rows_k..],
        rows: channels,
        cols: rows_k,
        row_stride: rows_k as isize,
        col_stride: 1,
    };
    if g.is_pointwise() {
        return T::gemm(
            a,
            MatRef {
                data: xg,
                rows: rows_k,
                cols: npos,
                row_stride: npos as isize,
                col_stride: 1,
            },
            MatMut {
                data: it.out,
                rows: channels,
                cols: npos,
                row_stride: npos as isize,
                col_stride: 1,
            },
        );
    }
    let tile = g.tile();
    let mut p0 = 0;
    while p0 < npos {
        let p1 = (p0 + tile).min(npos);
        let tl = p1 - p0;
        let panel = &mut cols[..rows_k * tl];
        im2col_tile(g, xg, p0, p1, panel);
        T::gemm(
            a,
            MatRef {
                data: panel,
                rows: rows_k,
                cols: tl,
                row_stride: tl as isize,
                col_stride: 1,
            },
            MatMut {
                data: &mut it.out[p0..],
                rows: channels,
                cols: tl,
                row_stride: npos as isize,
                col_stride: 1,
            },
        )?;
        p0 = p1;
    }
    Ok(())
}
