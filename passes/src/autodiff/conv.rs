//! Gradient of a convolution, for any stride, padding, dilation and groups.
//!
//! With `xp = pad(x)`, the convolution is a sum over kernel taps `k` of grouped matrix
//! products: `y = Σ_k W_k · X_k`, where `X_k = xp[.., k·d : … : s]` (a strided slice,
//! `[B, G, C/G, P]` with `P` output positions) and `W_k = w[.., k]` (`[G, O/G, C/G]`).
//! Hence, per tap:
//!   `dX_k = W_kᵀ · dy`   scattered back into `xp` by the slice adjoint, then un-padded;
//!   `dW_k = Σ_b dy · X_kᵀ`, and `dw` is the taps stacked back into the kernel axes.
//! Everything is slice/pad/reshape/matmul/concat/sum, which all have rules, so the
//! gradient is differentiable again. The graph grows with the number of taps, not with
//! the signal length. The per-tap forms are the fallback; the sections below say which
//! layouts replace them:
//!
//! | gradient | 1-d | n-d |
//! |---|---|---|
//! | `dx` | by phases (any stride, padding) | spread `dy` (`∏ s ≤ 4`, `s ≤ K`, pad ≤ reach), else per tap |
//! | `dw`, `C/G = 1` | windows, batched product | windows, product and sum |
//! | `dw`, `C/G·∏K < O/G` | columns | columns |
//! | `dw`, otherwise | per tap on `x`, sliced (no pad) | per tap on `pad(x)` |
//!
//! # Per-tap weight gradient without the padded copy (1-d)
//! A tap only meets the input at the outputs whose read falls inside it, so `dW_k` is
//! the product of `dy` and `x` sliced to those outputs (both views): the padded copy
//! of `x` (a 16 MB pad on W2's layers) is not needed.
//!
//! # Weight gradient from the input's columns
//! Per tap, `dW_k` reads all of `dy` again: for W2's first layer (1 → 32 channels,
//! 11 taps, 16 MB of `dy`) that was 11 passes over `dy`. When the input's columns
//! (`C/G · ∏K` rows per group) are smaller than `dy` (`O/G` rows), they are gathered
//! once (a concat of the tap slices, `[B, G, C/G·∏K, P]`) and `dW` is one product
//! `dy · colsᵀ` summed over the batch, which reads `dy` once. Otherwise (depthwise:
//! 9 column rows against 1 `dy` row) gathering would move more data than it saves:
//! one input channel per group reads the windows below; others keep the per-tap
//! products.
//!
//! # Weight gradient from the input's windows (one input channel per group)
//! With `C/G = 1` (depthwise convolutions) the kernel gradient is
//! `dw[o, k] = Σ_{b,p} dy[b, o, p] · xp[b, g(o), p·s + k·d]`: seen through its sliding
//! windows (`Op::Unfold`, a view with overlapping strides: nothing is copied), each
//! input row is a `[K, P]` matrix and the gradient one batched product with `dy`
//! (1-d; n-d: an elementwise product and a sum). The per-tap form made `∏K` passes
//! over `dy` and `x` (9 on W2's k9 layers); this makes one. In 1-d the outputs whose
//! windows reach into the padding are split off, so only the input's ends are padded
//! (see `window_products_1d`). W2's separable block, forward + backward at batch
//! 32 (`cargo bench --bench conv_grad`, same run): 50.3 → 26.8 ms. Grouped
//! convolutions with more input channels per group keep the per-tap products (their
//! columns are matrices, not rows).
//!
//! # The input gradient is one convolution (n-d: over the spread `dy`)
//! When no padding exceeds the kernel's reach (`pad ≤ (K-1)·d`, true of "same"
//! convolutions and of most strided ones), `dx[c, i] = Σ_{o,k} w[o, c, k] · dy[o, p]`
//! over `p·s = i + pad_lo - k·d` is itself a convolution: of `dy` spread `s` apart
//! (zeros between its values, a "transposed convolution") with the kernel flipped
//! along its spatial axes and transposed between input and output channels within
//! each group (`flipped_kernel`), padded by `(K-1)·d - pad_lo` before and up to the
//! input's length after. It replaces the per-tap products, each scattered into a
//! padded copy of the input and summed: on W2's depthwise layer (`[32, 32, 4000]`, k = 9)
//! that was 9 × (product + 16 MB pad) + a 9-way sum, ~90 ms, against one
//! convolution of a few ms. A strided convolution pays `∏ s`× the multiply-adds on
//! the zeros (and a spread `dy` that much larger), still far less than the per-tap
//! scatter for small strides; so the form is used when `∏ s ≤ 4` and no stride
//! exceeds its kernel (a 16×16 patch embedding keeps the per-tap form), as are larger
//! paddings.
//!
//! # The input gradient by phases (1-d)
//! In 1-d the input gradient is always computed by phases instead, for any stride and
//! padding (the limits above are the spread's; n-d keeps them). See
//! `input_grad_polyphase`: the outputs `i` with the same `(i + pad_lo) mod s` take
//! one subset of the taps, so each phase is a stride-1 convolution of `dy` itself with
//! a strided slice of the flipped kernel, and the `s` results are interleaved (a
//! concat of one-element rows, copied word by word). No multiply-add lands on a zero
//! and no spread `dy` is built: W2's k3 s2 layer, forward + both gradients, 38.8 →
//! 35.3 ms and 55.3 → 44.9 ms in two same-minute A/B pairs (best of 5 × 4 steps).

use super::rules::slice_adjoint;
use crate::emit::{Emit, R};
use onde_ir::{Array, ConvParams, DType, Op, Shape, SliceAxis, ValueId};

pub(super) fn vjp_conv(
    e: &mut Emit<'_>,
    p: &ConvParams,
    x: ValueId,
    w: ValueId,
    dy: ValueId,
    wants: &[bool],
) -> R<Vec<Option<ValueId>>> {
    let (xs, ws, ys) = (e.shape(x), e.shape(w), e.shape(dy));
    let n = p.stride.len();
    let (b, c, o, g) = (xs.dims()[0], xs.dims()[1], ws.dims()[0], p.groups);
    let (cg, og) = (c / g, o / g);
    let out: Vec<usize> = ys.dims()[2..].to_vec();
    let positions: usize = out.iter().product();
    let kernel: Vec<usize> = ws.dims()[2..].to_vec();

    let mut pads = vec![(0, 0), (0, 0)];
    pads.extend(p.padding.iter().copied());
    let xps = Shape::new(xs.dims().iter().zip(&pads).map(|(d, (lo, hi))| d + lo + hi));
    // The padded input, emitted on first use (the 1-d forms below do not read it).
    let mut xp: Option<ValueId> = None;
    let mut padded = |e: &mut Emit<'_>| -> R {
        if let Some(v) = xp {
            return Ok(v);
        }
        let v = e.pad(x, pads.clone())?;
        xp = Some(v);
        Ok(v)
    };
    let dy4 = e.reshape(dy, Shape::new([b, g, og, positions]))?;

    // The input gradient (see the module doc): 1-d by phases, for any stride and
    // padding; n-d as one convolution over `dy` spread by the strides, which pays
    // `∏ s`× the multiply-adds (at most `MAX_SPREAD`); else per tap.
    let dx_by_phases = wants[0] && n == 1;
    let dx_by_spread = wants[0]
        && !dx_by_phases
        && p.stride.iter().product::<usize>() <= MAX_SPREAD
        && (0..n).all(|i| {
            let reach = (kernel[i] - 1) * p.dilation[i];
            xs.dims()[2 + i] > 0
                && p.stride[i] <= kernel[i]
                && p.padding[i].0 <= reach
                && p.padding[i].1 <= reach
        });
    let dx_per_tap = wants[0] && !dx_by_phases && !dx_by_spread;
    // The weight gradient as one product with the input's columns (im2col) when they
    // are smaller than `dy` (see the module doc), else per tap.
    let taps_total: usize = kernel.iter().product();
    let dw_by_columns = wants[1] && cg * taps_total < og;
    // Depthwise-like (one input channel per group): one reduction over the input's
    // windows (see the module doc).
    let dw_by_windows = wants[1] && !dw_by_columns && cg == 1 && positions > 0;
    let mut dxp: Option<ValueId> = None;
    let mut dw_taps = Vec::new();
    let mut columns = Vec::new();
    for tap in taps(&kernel) {
        // X_k: the input positions this tap reads, [B, C, *out].
        let mut axes = vec![SliceAxis::whole(b), SliceAxis::whole(c)];
        for i in 0..n {
            let start = tap[i] * p.dilation[i];
            axes.push(SliceAxis {
                start,
                stop: start + (out[i] - 1) * p.stride[i] + 1,
                step: p.stride[i],
            });
        }
        // W_k: [O, C/G, 1…] → [G, O/G, C/G].
        let mut waxes = vec![SliceAxis::whole(o), SliceAxis::whole(cg)];
        waxes.extend(tap.iter().map(|&k| SliceAxis::range(k, k + 1)));
        if dx_per_tap {
            let wk = e.slice(w, waxes)?;
            let wk = e.reshape(wk, Shape::new([g, og, cg]))?;
            let wkt = e.transpose_last(wk)?;
            let dxk = e.matmul(wkt, dy4)?; // [B, G, C/G, P]
            let mut full = vec![b, c];
            full.extend(&out);
            let dxk = e.reshape(dxk, Shape::new(full))?;
            let placed = slice_adjoint(e, dxk, &xps, &axes)?;
            dxp = Some(match dxp {
                Some(acc) => e.add(acc, placed)?,
                None => placed,
            });
        }
        if dw_by_columns {
            let xp = padded(e)?;
            let xk = e.slice(xp, axes)?;
            columns.push(e.reshape(xk, Shape::new([b, g, cg, 1, positions]))?);
        } else if wants[1] && !dw_by_windows {
            // 1-d: only the positions whose tap reads inside the input contribute, so
            // dy and x are sliced to them (views) and the padded copy is not read.
            let inside = (n == 1)
                .then(|| tap_overlap(xs.dims()[2], positions, tap[0], p))
                .flatten();
            let mut shape = vec![o, cg];
            shape.extend(std::iter::repeat_n(1, n));
            let (dyk, xk) = match inside {
                Some((p0, p1, x0)) => {
                    let count = p1 - p0;
                    let s = p.stride[0];
                    let dyk = e.slice_axis(dy, 2, SliceAxis::range(p0, p1))?;
                    let dyk = e.reshape(dyk, Shape::new([b, g, og, count]))?;
                    let along = SliceAxis {
                        start: x0,
                        stop: x0 + (count - 1) * s + 1,
                        step: s,
                    };
                    let xk = e.slice_axis(x, 2, along)?;
                    (dyk, e.reshape(xk, Shape::new([b, g, cg, count]))?)
                }
                // A 1-d tap that only ever reads padding: its gradient is zero.
                None if n == 1 => {
                    let t = onde_ir::TensorType::new(e.ty(dy).dtype, Shape::new(shape));
                    dw_taps.push(e.zeros(&t)?);
                    continue;
                }
                None => {
                    let xp = padded(e)?;
                    let xk = e.slice(xp, axes)?;
                    (dy4, e.reshape(xk, Shape::new([b, g, cg, positions]))?)
                }
            };
            let xkt = e.transpose_last(xk)?;
            let dwk = e.matmul(dyk, xkt)?; // [B, G, O/G, C/G]
            let dwk = e.sum(dwk, vec![0], false)?;
            dw_taps.push(e.reshape(dwk, Shape::new(shape))?);
        }
    }
    let dx = match dxp {
        None if dx_by_phases => {
            let wt = flipped_kernel(e, w, g, &kernel)?;
            let len = xs.dims()[2];
            Some(input_grad_polyphase(e, p, wt, dy, g, kernel[0], len)?)
        }
        None if dx_by_spread => {
            let wt = flipped_kernel(e, w, g, &kernel)?;
            let len = &xs.dims()[2..];
            Some(input_grad_by_spread(e, p, wt, dy, g, &kernel, len)?)
        }
        Some(d) => {
            let axes = xs
                .dims()
                .iter()
                .enumerate()
                .map(|(i, &len)| {
                    let lo = if i >= 2 { p.padding[i - 2].0 } else { 0 };
                    SliceAxis::range(lo, lo + len)
                })
                .collect();
            Some(e.slice(d, axes)?)
        }
        None => None,
    };
    let dw = if dw_by_columns {
        // [B, G, C/G, K, P] → [B, G, C/G·K, P]ᵀ; dy4 · colsᵀ = [B, G, O/G, C/G·K].
        let cols = e.op(Op::Concat { axis: 3 }, &columns)?;
        let cols = e.reshape(cols, Shape::new([b, g, cg * taps_total, positions]))?;
        let colst = e.transpose_last(cols)?;
        let dw = e.matmul(dy4, colst)?;
        let dw = e.sum(dw, vec![0], false)?;
        let mut shape = vec![o, cg];
        shape.extend(&kernel);
        Some(e.reshape(dw, Shape::new(shape))?)
    } else if dw_by_windows {
        // [G, B, O/G, *K] summed over the batch → [O, 1, *K].
        let per_row = if n == 1 {
            window_products_1d(e, p, x, dy, g, og, kernel[0], out[0])?
        } else {
            let xp = padded(e)?;
            window_products_nd(e, p, xp, dy, g, og, &kernel, &out)?
        };
        let dw = e.sum(per_row, vec![1], false)?;
        let mut shape = vec![o, 1];
        shape.extend(&kernel);
        Some(e.reshape(dw, Shape::new(shape))?)
    } else if wants[1] {
        // Taps are in row-major order: concatenate the last kernel axis first.
        let mut level = dw_taps;
        for i in (0..n).rev() {
            let mut next = Vec::new();
            for chunk in level.chunks(kernel[i]) {
                next.push(e.op(Op::Concat { axis: 2 + i }, chunk)?);
            }
            level = next;
        }
        level.pop()
    } else {
        None
    };
    Ok(vec![dx, dw])
}

/// The kernel gradient of a convolution with one input channel per group, per batch
/// row, from the input's windows (see the module doc): `[G, B, O/G, K]`.
///
/// Per group and batch row, `dw` is a matrix-vector product — the windows `[K, P]`
/// (rows `d` apart, columns `s` apart in one input row; `Op::Unfold`, a view) times
/// `dy`'s row `[P, O/G]` — so it is one batched `MatMul` `[G, B, K, P] @ [G, B, P, O/G]`.
/// The library product reads a row pair once while it is in L1 and runs the `K` dot
/// products on their own accumulators; an elementwise product summed over `B` and `P`
/// by a fused kernel measured 10–21 ms on W2's k9 layer (the reduction's one
/// accumulator chain, and with `B` reduced inside the kept taps each tap re-streamed
/// every batch row). The outputs are split where every tap reads inside the input
/// (`window_ranges`): that interior's windows are a view of `x` itself, and only the
/// few outputs at each end, whose windows reach into the padding, read a small padded
/// copy of the input's ends (padding all of `x` cost a 16 MB copy, ~5 ms, on W2).
#[allow(clippy::too_many_arguments)]
fn window_products_1d(
    e: &mut Emit<'_>,
    p: &ConvParams,
    x: ValueId,
    dy: ValueId,
    g: usize,
    og: usize,
    k: usize,
    positions: usize,
) -> R {
    // `positions > 0` (checked by the caller): at least one range.
    let len = e.shape(x).dims()[2];
    let mut ranges = window_ranges(len, positions, k, p).into_iter();
    let (lo, hi) = ranges.next().unwrap_or((0, positions));
    let mut total = window_products(e, p, x, dy, g, og, k, lo, hi)?;
    for (lo, hi) in ranges {
        let part = window_products(e, p, x, dy, g, og, k, lo, hi)?;
        total = e.add(total, part)?;
    }
    Ok(total)
}

/// [`window_products_1d`] for n spatial axes: positions of several axes do not merge
/// into one strided axis, so the padded input's windows `[B, C, K1, P1, K2, P2, …]` and
/// `dy` are multiplied elementwise as `[G, O/G | 1, B, *K | 1, *P]` and summed over
/// `*P`: `[G, B, O/G, *K]`.
#[allow(clippy::too_many_arguments)]
fn window_products_nd(
    e: &mut Emit<'_>,
    p: &ConvParams,
    xp: ValueId,
    dy: ValueId,
    g: usize,
    og: usize,
    kernel: &[usize],
    out: &[usize],
) -> R {
    let n = kernel.len();
    let b = e.shape(xp).dims()[0];
    let mut xw = xp;
    for (i, &size) in kernel.iter().enumerate() {
        let op = Op::Unfold {
            axis: 2 + 2 * i,
            size,
            step: p.stride[i],
            dilation: p.dilation[i],
        };
        xw = e.op(op, &[xw])?;
    }
    // [B, C, K1, P1, …] → [C, B, K1, …, P1, …] → [G, 1, B, *K, *P] (C = G).
    let mut perm = vec![1, 0];
    perm.extend((0..n).map(|i| 2 + 2 * i));
    perm.extend((0..n).map(|i| 3 + 2 * i));
    let xw = e.permute(xw, perm)?;
    let mut shape = vec![g, 1, b];
    shape.extend(kernel);
    shape.extend(out);
    let xw = e.reshape(xw, Shape::new(shape))?;
    // dy: [B, O, *P] → [B, G, O/G, *P] → [G, O/G, B, *P] → [G, O/G, B, 1…, *P].
    let mut shape = vec![b, g, og];
    shape.extend(out);
    let d = e.reshape(dy, Shape::new(shape))?;
    let mut perm = vec![1, 2, 0];
    perm.extend(3..3 + n);
    let d = e.permute(d, perm)?;
    let mut shape = vec![g, og, b];
    shape.extend(std::iter::repeat_n(1, n));
    shape.extend(out);
    let d = e.reshape(d, Shape::new(shape))?;
    let prod = e.mul(d, xw)?;
    // [G, O/G, B, *K] → [G, B, O/G, *K]
    let summed = e.sum(prod, (3 + n..3 + 2 * n).collect(), false)?;
    let mut perm = vec![0, 2, 1];
    perm.extend(3..3 + n);
    e.permute(summed, perm)
}

/// The output ranges of a 1-d convolution over `len` inputs with `positions` outputs
/// and `k` taps: `[p_lo, p_hi)` where every tap reads inside the input, and the ends
/// before and after it (non-empty ranges only, in order, covering `0..positions`).
fn window_ranges(len: usize, positions: usize, k: usize, p: &ConvParams) -> Vec<(usize, usize)> {
    let (s, reach, pad_lo) = (p.stride[0], (k - 1) * p.dilation[0], p.padding[0].0);
    // First tap inside: p·s ≥ pad_lo. Last tap inside: p·s + reach < pad_lo + len.
    let p_lo = pad_lo.div_ceil(s).min(positions);
    let p_hi = (pad_lo + len)
        .checked_sub(reach)
        .map_or(0, |r| r.div_ceil(s))
        .clamp(p_lo, positions);
    [(0, p_lo), (p_lo, p_hi), (p_hi, positions)]
        .into_iter()
        .filter(|(a, b)| a < b)
        .collect()
}

/// `Σ_{p ∈ [lo, hi)} windows · dy` for one output range of a 1-d convolution with one
/// input channel per group: `[G, B, O/G, K]`. The inputs the range reads (padded
/// coordinates `lo·s .. (hi-1)·s + (K-1)·d + 1`) are sliced from `x`, padded only
/// where they reach past its ends, and unfolded into `[B, C, K, hi - lo]`.
#[allow(clippy::too_many_arguments)]
fn window_products(
    e: &mut Emit<'_>,
    p: &ConvParams,
    x: ValueId,
    dy: ValueId,
    g: usize,
    og: usize,
    k: usize,
    lo: usize,
    hi: usize,
) -> R {
    let xs = e.shape(x);
    let (b, len) = (xs.dims()[0], xs.dims()[2]);
    let (s, d, pad_lo) = (p.stride[0], p.dilation[0], p.padding[0].0);
    // Padded coordinates: the range reads [first, end); the input is
    // [pad_lo, pad_lo + len). Their overlap [in_lo, in_hi) may be empty (a range
    // inside the padding, before or after the input).
    let (first, end) = (lo * s, (hi - 1) * s + (k - 1) * d + 1);
    let span = end - first;
    let in_lo = first.max(pad_lo).min(pad_lo + len);
    let in_hi = end.min(pad_lo + len).max(in_lo);
    let fill_lo = in_lo.saturating_sub(first).min(span);
    let fill_hi = span - fill_lo - (in_hi - in_lo);
    let seg = e.slice_axis(x, 2, SliceAxis::range(in_lo - pad_lo, in_hi - pad_lo))?;
    let seg = if fill_lo + fill_hi > 0 {
        e.pad(seg, vec![(0, 0), (0, 0), (fill_lo, fill_hi)])?
    } else {
        seg
    };
    let op = Op::Unfold {
        axis: 2,
        size: k,
        step: s,
        dilation: d,
    };
    let xw = e.op(op, &[seg])?;
    // [B, C, K, P'] → [C, B, K, P'] (C = G).
    let xw = e.permute(xw, vec![1, 0, 2, 3])?;
    // dy[.., lo..hi]: [B, O, P'] → [B, G, O/G, P'] → [G, B, P', O/G].
    let dyr = e.slice_axis(dy, 2, SliceAxis::range(lo, hi))?;
    let dyr = e.reshape(dyr, Shape::new([b, g, og, hi - lo]))?;
    let dyr = e.permute(dyr, vec![1, 0, 3, 2])?;
    // [G, B, K, P'] @ [G, B, P', O/G] = [G, B, K, O/G] → [G, B, O/G, K].
    let prod = e.matmul(xw, dyr)?;
    e.permute(prod, vec![0, 1, 3, 2])
}

/// Largest product of the strides for which an n-d input gradient convolves the
/// spread `dy` (it pays that many times the multiply-adds on zeros; 1-d goes by
/// phases).
const MAX_SPREAD: usize = 4;

/// The kernel `w` `[O, C/G, *K]` flipped along its spatial axes and transposed between
/// input and output channels within each group: `[C, O/G, *K]`, the kernel of the
/// convolutions that compute the input gradient.
fn flipped_kernel(e: &mut Emit<'_>, w: ValueId, g: usize, kernel: &[usize]) -> R {
    let n = kernel.len();
    let ws = e.shape(w);
    let (o, cg) = (ws.dims()[0], ws.dims()[1]);
    let og = o / g;
    // [O, C/G, *K] → [G, O/G, C/G, *K] → [G, C/G, O/G, *K] → [C, O/G, *K].
    let mut shape = vec![g, og, cg];
    shape.extend(kernel);
    let wt = e.reshape(w, Shape::new(shape))?;
    let mut perm = vec![0, 2, 1];
    perm.extend(3..3 + n);
    let wt = e.permute(wt, perm)?;
    let mut shape = vec![g * cg, og];
    shape.extend(kernel);
    let mut wt = e.reshape(wt, Shape::new(shape.clone()))?;
    // Flip each spatial axis: its taps, one-wide slices, concatenated in reverse.
    for (i, &ki) in kernel.iter().enumerate() {
        if ki < 2 {
            continue;
        }
        let mut taps = Vec::with_capacity(ki);
        for k in (0..ki).rev() {
            taps.push(e.slice_axis(wt, 2 + i, SliceAxis::range(k, k + 1))?);
        }
        wt = e.op(Op::Concat { axis: 2 + i }, &taps)?;
    }
    Ok(wt)
}

/// `dx` as one convolution of `dy` spread by the strides with the flipped kernel `wt`
/// (see the module doc; n-d, within `MAX_SPREAD`).
fn input_grad_by_spread(
    e: &mut Emit<'_>,
    p: &ConvParams,
    wt: ValueId,
    dy: ValueId,
    g: usize,
    kernel: &[usize],
    len: &[usize],
) -> R {
    let n = kernel.len();
    // A strided axis: dy's values spread `s` apart with zeros between: a unit axis
    // inserted after it, widened to `s` by `where(j == 0, dy, 0)` (one elementwise
    // kernel; a pad there copied one element per row), merged.
    // `where`, not a product with a 0/1 mask, so an infinite `dy` makes no NaN.
    let mut dyd = dy;
    for i in 0..n {
        let s = p.stride[i];
        let dims = e.shape(dyd).dims().to_vec();
        let a = 2 + i;
        let pos = dims[a];
        if s == 1 || pos == 0 {
            continue;
        }
        let mut wide = dims.clone();
        wide.insert(a + 1, 1);
        let col = e.reshape(dyd, Shape::new(wide.clone()))?;
        wide[a + 1] = s;
        let col = e.expand(col, Shape::new(wide.clone()))?;
        let unit = vec![1; wide.len()];
        let first = e.op(
            Op::Constant(Array::full(DType::Bool, Shape::new(unit), 1.0)),
            &[],
        )?;
        let mut pads = vec![(0, 0); wide.len()];
        pads[a + 1] = (0, s - 1);
        let mask = e.pad(first, pads)?;
        let mask = e.expand(mask, Shape::new(wide.clone()))?;
        let zeros = e.full_like(col, 0.0)?;
        let spread = e.where_(mask, col, zeros)?;
        let mut merged = dims.clone();
        merged[a] = pos * s;
        // The trailing `s - 1` zeros are kept: slicing them off made the convolution
        // copy its input (2.6 ms on W2's strided layer); they only lengthen the
        // result, trimmed below when the padding after cannot absorb them.
        dyd = e.reshape(spread, Shape::new(merged))?;
    }
    // Pad after so the result is `len` long: `spread + (reach - pad_lo) + pad_hi' -
    // reach = len`. With the spread `(P-1)·s + 1` long that is never negative
    // (`len - spread + pad_lo ≥ reach - pad_hi ≥ 0`); with the kept trailing zeros
    // (`P·s`) it can be, and the result is then cut to `len`.
    let mut trim = false;
    let padding = (0..n)
        .map(|i| {
            let reach = (kernel[i] - 1) * p.dilation[i];
            let spread = e.shape(dyd).dims()[2 + i];
            let hi = (len[i] + p.padding[i].0).checked_sub(spread);
            trim |= hi.is_none();
            (reach - p.padding[i].0, hi.unwrap_or(0))
        })
        .collect();
    let params = ConvParams {
        stride: vec![1; n],
        padding,
        dilation: p.dilation.clone(),
        groups: g,
    };
    let mut dx = e.op(Op::Conv(params), &[dyd, wt])?;
    if trim {
        for (i, &l) in len.iter().enumerate() {
            dx = e.fit_axis(dx, 2 + i, l)?;
        }
    }
    Ok(dx)
}

/// `dx` of a 1-d convolution, phase by phase (see the module doc): `wt` is the
/// flipped, channel-transposed kernel `[C, O/G, K]`.
///
/// In padded coordinates `j = i + pad_lo = q·s + r`, `dx[i] = Σ w[k]·dy[q - e_k]` over
/// the taps with `k·d ≡ r (mod s)`, `e_k = (k·d - r) / s`. Those taps are `s/gcd(d, s)`
/// apart, so their flipped kernel is a strided slice of `wt` and each phase is a
/// stride-1 convolution of `dy` (dilation `d/gcd`) — no multiply-add on the spread
/// form's zeros. Phase `r`'s first input index is `φ = (r - pad_lo) mod s`; the phases'
/// results (padded to `ceil(len/s)`) are stacked and interleaved into `dx`.
#[allow(clippy::too_many_arguments)]
fn input_grad_polyphase(
    e: &mut Emit<'_>,
    p: &ConvParams,
    wt: ValueId,
    dy: ValueId,
    g: usize,
    k: usize,
    len: usize,
) -> R {
    let (s, d, pad_lo) = (p.stride[0], p.dilation[0], p.padding[0].0);
    let (b, c, positions) = {
        let (ds, ws) = (e.shape(dy), e.shape(wt));
        (ds.dims()[0], ws.dims()[0], ds.dims()[2])
    };
    let step = s / gcd(d, s);
    let dil = d / gcd(d, s);
    let q_len = len.div_ceil(s);
    let mut phases = Vec::with_capacity(s);
    for phi in 0..s {
        let r = (phi + pad_lo) % s;
        // Outputs of this phase: i = φ + m·s < len.
        let n_out = len.saturating_sub(phi).div_ceil(s);
        let q_start = (phi + pad_lo - r) / s;
        let on_phase: Vec<usize> = (0..k).filter(|&t| (t * d) % s == r).collect();
        let part = match (on_phase.first(), on_phase.last()) {
            (Some(&k0), Some(&k_max)) if n_out > 0 => {
                // Flipped sub-kernel: wt[K-1-k] for k = k_max, …, k0 (`step` apart).
                let along = SliceAxis {
                    start: k - 1 - k_max,
                    stop: k - k0,
                    step,
                };
                let wt_r = e.slice_axis(wt, 2, along)?;
                // out[q'] = Σ_t wt_r[t]·dy[q' + q_start + t·dil - e_max].
                let e_max = (k_max * d - r) / s;
                let span = (on_phase.len() - 1) * dil;
                let (input, lo) = if e_max >= q_start {
                    (dy, e_max - q_start)
                } else {
                    let cut = (q_start - e_max).min(positions);
                    (e.slice_axis(dy, 2, SliceAxis::range(cut, positions))?, 0)
                };
                let avail = e.shape(input).dims()[2] + lo;
                // Output length `avail + hi - span`: `n_out` when `hi ≥ 0`, else cut.
                let hi = (n_out + span).saturating_sub(avail);
                let params = ConvParams {
                    stride: vec![1],
                    padding: vec![(lo, hi)],
                    dilation: vec![dil],
                    groups: g,
                };
                let out = e.op(Op::Conv(params), &[input, wt_r])?;
                // Its first `n_out` values, then zeros up to `q_len`.
                let out = e.fit_axis(out, 2, n_out)?;
                e.fit_axis(out, 2, q_len)?
            }
            // No tap lands on this phase (stride above the kernel's reach), or no
            // output does (`len < s`): zeros.
            _ => {
                let t = onde_ir::TensorType::new(e.ty(dy).dtype, Shape::new([b, c, q_len]));
                e.zeros(&t)?
            }
        };
        phases.push(part);
    }
    if s == 1 {
        // One phase: the convolution's result is `dx` (no padding or cut needed).
        return Ok(phases.remove(0));
    }
    for part in &mut phases {
        *part = e.reshape(*part, Shape::new([b, c, q_len, 1]))?;
    }
    let stacked = e.op(Op::Concat { axis: 3 }, &phases)?;
    let dx = e.reshape(stacked, Shape::new([b, c, q_len * s]))?;
    e.fit_axis(dx, 2, len)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// For a 1-d convolution over an input of length `len` with `positions` outputs: the
/// outputs `[p0, p1)` at which tap `k` reads inside the input (not its padding) and
/// the input index the first of them reads (`p0·s + k·d - pad_lo`), or `None` if no
/// output does.
fn tap_overlap(
    len: usize,
    positions: usize,
    k: usize,
    p: &ConvParams,
) -> Option<(usize, usize, usize)> {
    let (s, off, lo) = (p.stride[0], k * p.dilation[0], p.padding[0].0);
    // p·s + off ≥ lo and p·s + off < lo + len.
    let p0 = lo.saturating_sub(off).div_ceil(s);
    let p1 = (lo + len)
        .checked_sub(off)
        .map_or(0, |r| r.div_ceil(s))
        .min(positions);
    (p0 < p1).then(|| (p0, p1, p0 * s + off - lo))
}

/// All kernel tap index tuples in row-major order.
fn taps(kernel: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &k in kernel {
        out = out
            .into_iter()
            .flat_map(|t| {
                (0..k).map(move |i| {
                    let mut t = t.clone();
                    t.push(i);
                    t
                })
            })
            .collect();
    }
    out
}
