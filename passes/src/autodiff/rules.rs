//! One gradient rule per op. `dy` is the cotangent of the result `y`; each arm returns
//! the cotangents of the operands (`None` = zero or not wanted). Rules emit only ops
//! that have rules themselves, so gradients can be differentiated again.

use super::unbroadcast::unbroadcast;
use super::{conv, scan};
use crate::emit::{Emit, R};
use onde_ir::{BinaryOp, CmpOp, Op, ReduceKind, Shape, SliceAxis, UnaryOp, ValueId};

/// Cotangents of `op`'s operands `xs` given its results `ys` and their cotangents `dys`,
/// for the operands flagged in `wants`.
pub fn vjp_op(
    e: &mut Emit<'_>,
    op: &Op,
    xs: &[ValueId],
    ys: &[ValueId],
    dys: &[Option<ValueId>],
    wants: &[bool],
) -> R<Vec<Option<ValueId>>> {
    let none = vec![None; xs.len()];
    if let Op::Scan(s) = op {
        return scan::vjp_scan(e, s, xs, ys, dys, wants);
    }
    let (Some(&y), Some(Some(dy))) = (ys.first(), dys.first().copied()) else {
        return Ok(none);
    };
    let one = |g: ValueId| Ok(vec![Some(g)]);
    match op {
        // Leaves and ops without a gradient: nothing flows to operands.
        Op::Input { .. }
        | Op::Parameter { .. }
        | Op::Constant(_)
        | Op::Random { .. }
        | Op::Compare(_)
        | Op::ArgReduce { .. }
        | Op::Detach => Ok(none),
        Op::Unary(u) => unary(e, *u, xs[0], y, dy),
        Op::Binary(b) => binary(e, *b, xs[0], xs[1], y, dy, wants),
        // y = where(c, a, b)  ⇒  da = where(c, dy, 0), db = where(c, 0, dy), unbroadcast
        Op::Where => {
            let z = e.full_like(dy, 0.0)?;
            let mut out = vec![None; 3];
            if wants[1] {
                let da = e.where_(xs[0], dy, z)?;
                out[1] = Some(unbroadcast(e, da, &e.shape(xs[1]))?);
            }
            if wants[2] {
                let db = e.where_(xs[0], z, dy)?;
                out[2] = Some(unbroadcast(e, db, &e.shape(xs[2]))?);
            }
            Ok(out)
        }
        // y = cast(x) between float types  ⇒  dx = cast(dy) back; no gradient to integers
        Op::Cast { .. } => {
            let xt = e.ty(xs[0]);
            if xt.dtype.is_float() {
                one(e.cast(dy, xt.dtype)?)
            } else {
                Ok(none)
            }
        }
        Op::Reduce {
            kind,
            axes,
            keepdim,
        } => reduce(e, *kind, axes, *keepdim, xs[0], y, dy),
        // y = softmax(x) along a  ⇒  dx = y ⊙ (dy − Σₐ(dy ⊙ y)) (Σ keeps the axis), as
        // one op: codegen runs it in one pass per line
        Op::Softmax { axis } => one(e.op(Op::SoftmaxBackward { axis: *axis }, &[dy, y])?),
        // r = softmax_backward(g, s) = s ⊙ (g − Σₐ g ⊙ s), cotangent G:
        //   dg = s ⊙ (G − Σₐ G ⊙ s) = softmax_backward(G, s)
        //   ds = G ⊙ (g − Σₐ g ⊙ s) − g ⊙ Σₐ(G ⊙ s)
        Op::SoftmaxBackward { axis } => {
            let (g, s) = (xs[0], xs[1]);
            let mut out = vec![None; 2];
            if wants[0] {
                out[0] = Some(e.op(Op::SoftmaxBackward { axis: *axis }, &[dy, s])?);
            }
            if wants[1] {
                let gs = e.mul(g, s)?;
                let sum_gs = e.sum(gs, vec![*axis], true)?;
                let centred = e.sub(g, sum_gs)?;
                let left = e.mul(dy, centred)?;
                let big_gs = e.mul(dy, s)?;
                let sum_big = e.sum(big_gs, vec![*axis], true)?;
                let right = e.mul(g, sum_big)?;
                out[1] = Some(e.sub(left, right)?);
            }
            Ok(out)
        }
        // y = reshape(x)  ⇒  dx = reshape(dy, shape(x))
        Op::Reshape { .. } => one(e.reshape(dy, e.shape(xs[0]))?),
        // y = permute(x, p)  ⇒  dx = permute(dy, p⁻¹)
        Op::Permute { perm } => {
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            one(e.permute(dy, inv)?)
        }
        // y = expand(x)  ⇒  dx = unbroadcast(dy)
        Op::Expand { .. } => one(unbroadcast(e, dy, &e.shape(xs[0]))?),
        // y = x[start:stop:step]  ⇒  dx = dy scattered back to the selected positions
        Op::Slice { axes } => one(slice_adjoint(e, dy, &e.shape(xs[0]), axes)?),
        // y = unfold(x)  ⇒  dx = Σ_k (window element k of dy, scattered back)
        Op::Unfold {
            axis,
            size,
            step,
            dilation,
        } => one(unfold_adjoint(
            e,
            dy,
            &e.shape(xs[0]),
            *axis,
            *size,
            *step,
            *dilation,
        )?),
        // y = pad(x)  ⇒  dx = dy[lo : lo + n]
        Op::Pad { pads, .. } => {
            let axes = pads
                .iter()
                .zip(e.shape(xs[0]).dims())
                .map(|(&(lo, _), &n)| SliceAxis::range(lo, lo + n))
                .collect();
            one(e.slice(dy, axes)?)
        }
        // y = cat(x₀, x₁, …)  ⇒  dxᵢ = dy[offᵢ : offᵢ + nᵢ] along the axis
        Op::Concat { axis } => {
            let ys_shape = e.shape(dy);
            let mut off = 0;
            let mut out = Vec::with_capacity(xs.len());
            for (i, &x) in xs.iter().enumerate() {
                let n = e.shape(x).dims()[*axis];
                if wants[i] {
                    let axes = ys_shape
                        .dims()
                        .iter()
                        .enumerate()
                        .map(|(a, &d)| {
                            if a == *axis {
                                SliceAxis::range(off, off + n)
                            } else {
                                SliceAxis::whole(d)
                            }
                        })
                        .collect();
                    out.push(Some(e.slice(dy, axes)?));
                } else {
                    out.push(None);
                }
                off += n;
            }
            Ok(out)
        }
        // y = gather(x, axis, idx)  ⇒  dx = scatter_add(idx, dy) into shape(x); no gradient to idx
        Op::Gather { axis } => {
            let shape = e.shape(xs[0]);
            let dx = e.op(Op::ScatterAdd { axis: *axis, shape }, &[xs[1], dy])?;
            Ok(vec![Some(dx), None])
        }
        // y = scatter_add(idx, s)  ⇒  ds = gather(dy, axis, idx)
        Op::ScatterAdd { axis, .. } => {
            let ds = e.op(Op::Gather { axis: *axis }, &[dy, xs[0]])?;
            Ok(vec![None, Some(ds)])
        }
        // y = a @ b  ⇒  da = dy @ bᵀ, db = aᵀ @ dy, each summed over broadcast batch axes
        Op::MatMul => {
            let (a, b) = (xs[0], xs[1]);
            let mut out = vec![None, None];
            if wants[0] {
                let bt = e.transpose_last(b)?;
                let da = e.matmul(dy, bt)?;
                out[0] = Some(unbroadcast(e, da, &e.shape(a))?);
            }
            if wants[1] {
                let (sa, sb) = (e.shape(a), e.shape(b));
                let db = if sb.rank() == 2 && sa.rank() > 2 {
                    // `[.., m, k] @ [k, n]` (a layer's weight): `db = Σ_batch aᵀ·dy` is one
                    // product over all rows, `a_flatᵀ · dy_flat`, not a batched product
                    // summed over the batch.
                    let d = sa.dims();
                    let rows: usize = d[..d.len() - 1].iter().product();
                    let n = sb.dims()[1];
                    let a2 = e.reshape(a, vec![rows, d[d.len() - 1]].into())?;
                    let dy2 = e.reshape(dy, vec![rows, n].into())?;
                    let at = e.transpose_last(a2)?;
                    e.matmul(at, dy2)?
                } else {
                    let at = e.transpose_last(a)?;
                    let db = e.matmul(at, dy)?;
                    unbroadcast(e, db, &sb)?
                };
                out[1] = Some(db);
            }
            Ok(out)
        }
        Op::Conv(p) => conv::vjp_conv(e, p, xs[0], xs[1], dy, wants),
        Op::Scan(_) => Ok(none),
    }
}

fn unary(
    e: &mut Emit<'_>,
    u: UnaryOp,
    x: ValueId,
    y: ValueId,
    dy: ValueId,
) -> R<Vec<Option<ValueId>>> {
    let g = match u {
        // y = -x  ⇒  dx = -dy
        UnaryOp::Neg => e.neg(dy)?,
        // y = |x|  ⇒  dx = dy·sign(x)   (0 at x = 0, as PyTorch)
        UnaryOp::Abs => {
            let s = e.unary(UnaryOp::Sign, x)?;
            e.mul(dy, s)?
        }
        // y = sign(x), floor(x), ¬x: piecewise constant  ⇒  dx = 0
        UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Not => return Ok(vec![None]),
        // y = eˣ  ⇒  dx = dy·y
        UnaryOp::Exp => e.mul(dy, y)?,
        // y = ln x  ⇒  dx = dy / x
        UnaryOp::Log => e.div(dy, x)?,
        // y = √x  ⇒  dx = dy / (2y)
        UnaryOp::Sqrt => {
            let two_y = e.mul_scalar(y, 2.0)?;
            e.div(dy, two_y)?
        }
        // y = sin x  ⇒  dx = dy·cos x
        UnaryOp::Sin => {
            let c = e.unary(UnaryOp::Cos, x)?;
            e.mul(dy, c)?
        }
        // y = cos x  ⇒  dx = -dy·sin x
        UnaryOp::Cos => {
            let s = e.unary(UnaryOp::Sin, x)?;
            let m = e.mul(dy, s)?;
            e.neg(m)?
        }
        // y = tanh x  ⇒  dx = dy·(1 - y²)
        UnaryOp::Tanh => {
            let y2 = e.mul(y, y)?;
            let one = e.scalar(e.ty(y).dtype, 1.0)?;
            let d = e.sub(one, y2)?;
            e.mul(dy, d)?
        }
        // y = σ(x)  ⇒  dx = dy·y·(1 - y)
        UnaryOp::Sigmoid => {
            let one = e.scalar(e.ty(y).dtype, 1.0)?;
            let d = e.sub(one, y)?;
            let yd = e.mul(y, d)?;
            e.mul(dy, yd)?
        }
        // y = max(x, 0)  ⇒  dx = 0 where x ≤ 0, else dy: 0 at x = 0 and dy at x = NaN
        // (PyTorch's threshold_backward tests `x <= 0`, which NaN fails)
        UnaryOp::Relu => {
            let off = e.cmp_scalar(CmpOp::Le, x, 0.0)?;
            let z = e.full_like(dy, 0.0)?;
            e.where_(off, z, dy)?
        }
    };
    Ok(vec![Some(g)])
}

fn binary(
    e: &mut Emit<'_>,
    b: BinaryOp,
    x0: ValueId,
    x1: ValueId,
    y: ValueId,
    dy: ValueId,
    wants: &[bool],
) -> R<Vec<Option<ValueId>>> {
    let (s0, s1) = (e.shape(x0), e.shape(x1));
    let (g0, g1) = match b {
        // y = a + b  ⇒  da = dy, db = dy
        BinaryOp::Add => (Some(dy), Some(dy)),
        // y = a - b  ⇒  da = dy, db = -dy
        BinaryOp::Sub => (Some(dy), if wants[1] { Some(e.neg(dy)?) } else { None }),
        // y = a·b  ⇒  da = dy·b, db = dy·a
        BinaryOp::Mul => (
            if wants[0] { Some(e.mul(dy, x1)?) } else { None },
            if wants[1] { Some(e.mul(dy, x0)?) } else { None },
        ),
        // y = a / b  ⇒  da = dy / b, db = -dy·y / b
        BinaryOp::Div => (
            if wants[0] { Some(e.div(dy, x1)?) } else { None },
            if wants[1] {
                let t = e.mul(dy, y)?;
                let t = e.div(t, x1)?;
                Some(e.neg(t)?)
            } else {
                None
            },
        ),
        // y = aᵇ  ⇒  da = dy·b·a^(b-1) (0 where b = 0), db = dy·y·ln a (0 where a = 0 and b ≥ 0),
        // PyTorch's masking.
        BinaryOp::Pow => {
            let g0 = if wants[0] {
                let bm1 = e.add_scalar(x1, -1.0)?;
                let p = e.binary(BinaryOp::Pow, x0, bm1)?;
                let t = e.mul(x1, p)?;
                let t = e.mul(dy, t)?;
                let bz = e.cmp_scalar(CmpOp::Eq, x1, 0.0)?;
                let z = e.full_like(t, 0.0)?;
                Some(e.where_(bz, z, t)?)
            } else {
                None
            };
            let g1 = if wants[1] {
                let l = e.unary(UnaryOp::Log, x0)?;
                let t = e.mul(y, l)?;
                let t = e.mul(dy, t)?;
                let az = e.cmp_scalar(CmpOp::Eq, x0, 0.0)?;
                let bnn = e.cmp_scalar(CmpOp::Ge, x1, 0.0)?;
                let m = e.binary(BinaryOp::And, az, bnn)?;
                let z = e.full_like(t, 0.0)?;
                Some(e.where_(m, z, t)?)
            } else {
                None
            };
            (g0, g1)
        }
        // y = max(a, b)  ⇒  the larger operand gets dy; on ties each gets dy/2 (PyTorch)
        // y = min(a, b)  ⇒  the smaller operand gets dy; on ties each gets dy/2
        BinaryOp::Max | BinaryOp::Min => {
            let win = if b == BinaryOp::Max {
                CmpOp::Gt
            } else {
                CmpOp::Lt
            };
            let lose = if b == BinaryOp::Max {
                CmpOp::Lt
            } else {
                CmpOp::Gt
            };
            let tie = e.cmp(CmpOp::Eq, x0, x1)?;
            let half = e.mul_scalar(dy, 0.5)?;
            let z = e.full_like(dy, 0.0)?;
            let shared = e.where_(tie, half, dy)?;
            let g0 = if wants[0] {
                let l = e.cmp(lose, x0, x1)?;
                Some(e.where_(l, z, shared)?)
            } else {
                None
            };
            let g1 = if wants[1] {
                let w = e.cmp(win, x0, x1)?;
                Some(e.where_(w, z, shared)?)
            } else {
                None
            };
            (g0, g1)
        }
        // Logical ops: no gradient.
        BinaryOp::And | BinaryOp::Or => (None, None),
    };
    let g0 = match g0.filter(|_| wants[0]) {
        Some(g) => Some(unbroadcast(e, g, &s0)?),
        None => None,
    };
    let g1 = match g1.filter(|_| wants[1]) {
        Some(g) => Some(unbroadcast(e, g, &s1)?),
        None => None,
    };
    Ok(vec![g0, g1])
}

/// `dy` of a reduction, reshaped with the reduced axes kept and broadcast to `shape`.
fn spread(e: &mut Emit<'_>, dy: ValueId, x_shape: &Shape, axes: &[usize]) -> R {
    let kept =
        Shape::new(
            x_shape
                .dims()
                .iter()
                .enumerate()
                .map(|(i, &d)| if axes.contains(&i) { 1 } else { d }),
        );
    let k = e.reshape(dy, kept)?;
    e.expand(k, x_shape.clone())
}

fn reduce(
    e: &mut Emit<'_>,
    kind: ReduceKind,
    axes: &[usize],
    _keepdim: bool,
    x: ValueId,
    y: ValueId,
    dy: ValueId,
) -> R<Vec<Option<ValueId>>> {
    let xs = e.shape(x);
    let dyx = spread(e, dy, &xs, axes)?;
    let g = match kind {
        // y = Σ x  ⇒  dx = dy broadcast over the reduced axes
        ReduceKind::Sum => dyx,
        // y = max x (amax)  ⇒  dx = dy / k on each of the k maximal elements, 0 elsewhere
        // (PyTorch's amax/amin rule: ties share the gradient evenly)
        ReduceKind::Max | ReduceKind::Min => {
            let yx = spread(e, y, &xs, axes)?;
            let hit = e.cmp(CmpOp::Eq, x, yx)?;
            let mask = e.cast(hit, e.ty(x).dtype)?;
            let count = e.sum(mask, axes.to_vec(), true)?;
            let share = e.div(mask, count)?;
            e.mul(dyx, share)?
        }
        // y = Π x  ⇒  dx_i = dy·Π_{j≠i} x_j, computed without dividing by zero:
        // with z zeros among the reduced elements and P the product of the non-zeros,
        // Π_{j≠i} x_j = P / x_i if z = 0; P if z = 1 and x_i = 0; else 0.
        ReduceKind::Prod => {
            let dt = e.ty(x).dtype;
            let zero = e.cmp_scalar(CmpOp::Eq, x, 0.0)?;
            let ones = e.full_like(x, 1.0)?;
            let nz = e.where_(zero, ones, x)?;
            let p = e.reduce(ReduceKind::Prod, nz, axes.to_vec(), true)?;
            let zf = e.cast(zero, dt)?;
            let zc = e.sum(zf, axes.to_vec(), true)?;
            let zc_is0 = e.cmp_scalar(CmpOp::Eq, zc, 0.0)?;
            let zc_is1 = e.cmp_scalar(CmpOp::Eq, zc, 1.0)?;
            let px = e.expand(p, xs.clone())?;
            let z = e.full_like(x, 0.0)?;
            let at_zero = e.where_(zc_is1, px, z)?;
            let pdiv = e.div(px, nz)?;
            let elsewhere = e.where_(zc_is0, pdiv, z)?;
            let others = e.where_(zero, at_zero, elsewhere)?;
            e.mul(dyx, others)?
        }
    };
    Ok(vec![Some(g)])
}

/// The adjoint of [`Op::Unfold`]: window element `k` of every window (`dy[.., k, :, ..]`)
/// is the strided slice `x[.., k·dilation :: step, ..]`, so `dx` is the sum over `k` of
/// those slices' adjoints. Built from slice, reshape, pad and add: differentiable again.
pub fn unfold_adjoint(
    e: &mut Emit<'_>,
    dy: ValueId,
    in_shape: &Shape,
    axis: usize,
    size: usize,
    step: usize,
    dilation: usize,
) -> R {
    let ys = e.shape(dy);
    let count = ys.dims()[axis + 1];
    if dilation == 1 && (step >= size || count == 1) {
        return unfold_adjoint_disjoint(e, dy, in_shape, axis, size, step);
    }
    if dilation == 1 {
        return unfold_adjoint_overlapping(e, dy, in_shape, axis, size, step);
    }
    // Window element k of every window (count ≥ 1, size ≥ 1: the typing rule).
    let placed = |e: &mut Emit<'_>, k: usize| -> R {
        let part = e.slice_axis(dy, axis, SliceAxis::range(k, k + 1))?;
        let mut dims = ys.dims().to_vec();
        dims.remove(axis);
        let part = e.reshape(part, Shape::new(dims))?;
        let start = k * dilation;
        let along = SliceAxis {
            start,
            stop: start + (count - 1) * step + 1,
            step,
        };
        let mut axes: Vec<SliceAxis> = in_shape
            .dims()
            .iter()
            .map(|&n| SliceAxis::whole(n))
            .collect();
        axes[axis] = along;
        slice_adjoint(e, part, in_shape, &axes)
    };
    let mut total = placed(e, 0)?;
    for k in 1..size {
        let part = placed(e, k)?;
        total = e.add(total, part)?;
    }
    Ok(total)
}

/// [`unfold_adjoint`] for overlapping windows without dilation (`step < size`: the
/// frames of an STFT): the window axis is cut into `⌈size/step⌉` chunks of `step`
/// elements; chunk `j` of every window is a disjoint unfold of the input shifted by
/// `j·step`, put back in one pass ([`unfold_adjoint_disjoint`]) and shifted. The sum
/// of the chunks is the overlap-add, in `⌈size/step⌉` passes instead of `size`.
fn unfold_adjoint_overlapping(
    e: &mut Emit<'_>,
    dy: ValueId,
    in_shape: &Shape,
    axis: usize,
    size: usize,
    step: usize,
) -> R {
    let n = in_shape.dims()[axis];
    // Chunk starting at window element `j0`, put back and shifted by `j0`.
    let chunk = |e: &mut Emit<'_>, j0: usize| -> R {
        let w = step.min(size - j0);
        let part = e.slice_axis(dy, axis, SliceAxis::range(j0, j0 + w))?;
        let mut shifted = in_shape.dims().to_vec();
        shifted[axis] = n - j0;
        let part = unfold_adjoint_disjoint(e, part, &Shape::new(shifted), axis, w, step)?;
        if j0 == 0 {
            return Ok(part);
        }
        let mut pads = vec![(0, 0); in_shape.rank()];
        pads[axis] = (j0, 0);
        e.pad(part, pads)
    };
    let mut total = chunk(e, 0)?;
    for j0 in (step..size).step_by(step) {
        let part = chunk(e, j0)?;
        total = e.add(total, part)?;
    }
    Ok(total)
}

/// [`unfold_adjoint`] for windows that do not overlap (`dilation = 1`, `step ≥ size`,
/// e.g. framing a signal): each input element is read by at most one window, so `dy`
/// `[.., size, count, ..]` is put back in place in one pass — windows first
/// (`[.., count, size, ..]`), each widened to `step` with zeros, merged, then cut or
/// padded to the input's extent — instead of `size` scattered adds.
fn unfold_adjoint_disjoint(
    e: &mut Emit<'_>,
    dy: ValueId,
    in_shape: &Shape,
    axis: usize,
    size: usize,
    step: usize,
) -> R {
    let ys = e.shape(dy);
    let count = ys.dims()[axis + 1];
    // One window: its step never applies (and may be near usize::MAX).
    let step = if count > 1 { step } else { size };
    let mut perm: Vec<usize> = (0..ys.rank()).collect();
    perm.swap(axis, axis + 1);
    let mut g = e.permute(dy, perm)?;
    if step > size {
        let mut pads = vec![(0, 0); ys.rank()];
        pads[axis + 1] = (0, step - size);
        g = e.pad(g, pads)?;
    }
    let mut merged = in_shape.dims().to_vec();
    merged[axis] = count * step;
    let g = e.reshape(g, Shape::new(merged))?;
    e.fit_axis(g, axis, in_shape.dims()[axis])
}

/// The adjoint of a strided slice: `dy` placed at positions `start + i·step` of a zero
/// tensor of `in_shape`. Built from reshape, pad and slice (interleave zeros, then
/// shift), so it is differentiable again.
pub fn slice_adjoint(e: &mut Emit<'_>, dy: ValueId, in_shape: &Shape, axes: &[SliceAxis]) -> R {
    let mut g = dy;
    // Interleave step-1 zeros after each element on strided axes.
    // (A one-element axis takes no step: a step near usize::MAX is legal there.)
    for (a, s) in axes.iter().enumerate() {
        if s.step > 1 && s.len() > 1 {
            let sh = e.shape(g);
            let n = sh.dims()[a];
            let mut inserted: Vec<usize> = sh.dims().to_vec();
            inserted.insert(a + 1, 1);
            let t = e.reshape(g, Shape::new(inserted))?;
            let mut pads = vec![(0, 0); sh.rank() + 1];
            pads[a + 1] = (0, s.step - 1);
            let t = e.pad(t, pads)?;
            let mut merged = sh.dims().to_vec();
            merged[a] = n * s.step;
            g = e.reshape(t, Shape::new(merged))?;
        }
    }
    // Shift into place: pad before by `start`, then pad or trim after to the extent.
    let sh = e.shape(g);
    let mut pads = Vec::with_capacity(axes.len());
    let mut trim = false;
    for (a, s) in axes.iter().enumerate() {
        let len = sh.dims()[a];
        let n = in_shape.dims()[a];
        let end = s.start + len;
        pads.push((s.start, n.saturating_sub(end)));
        trim |= end > n;
    }
    let g = e.pad(g, pads)?;
    if trim {
        let axes = in_shape
            .dims()
            .iter()
            .map(|&n| SliceAxis::whole(n))
            .collect();
        e.slice(g, axes)
    } else {
        Ok(g)
    }
}
