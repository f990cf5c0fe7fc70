//! A softmax, softmax's backward, a residual add or column sums as the epilogue of the
//! product it reads: step `i` a matrix product `s = a·b` read only by step `i + 1`,
//! either `softmax(s·c)` or `softmax_backward(s, P)·c` along the last axis, or a
//! kernel `s + r` over the product's shape; or read by a kernel summing it over every
//! axis but the last (a bias gradient `Σ dY`), where the product is stored as usual
//! for its other readers and each tile's rows are also added to the sums, in row
//! order (the column sum's own order, so its bits). The one-panel kernel applies the step to the rows of
//! each tile as soon as it is done (`native::matmul::matmul_rows_capped`: the same
//! operations, the same bits): the softmax in place on the rows just stored, still in
//! L1; the backward from the registers, the product never stored; `r`'s rows added to
//! the accumulators as they are stored — W5's scores `q·kᵀ` and `dP = dO·vᵀ`, `[32,
//! 100, 100]` each, not read back from L2, its residual `h = x + P·v` without the
//! product stored and read back, and its bias gradients summed as `dQ`, `dK`, `dV` are
//! stored. Where that kernel does not take the product (shapes,
//! ISA level, more than one thread), the two steps run as they are (the product on
//! the prepacked kernel where it would have been).
//!
//! # When
//! Step `i` is an f32 [`Step::MatMul`] whose output is read by no other step and is no
//! graph output; step `i + 1` is [`CopyOp::Softmax`] of that output, or
//! [`CopyOp::SoftmaxBackward`] with `dy` that output and `y` another buffer, along the
//! output's last axis, or a kernel whose only work is `out + r` (either order) over
//! the output's shape, both read element for element (row-major, offset 0; `r` an f32
//! buffer of that shape), stored whole into one buffer. Or step `i + 1` is a kernel
//! whose only work is the sum of the output, read element for element, over every
//! axis but the last, into a buffer of the last axis' extent (then the product may be
//! read elsewhere and be a graph output: it is stored). The destination is no graph
//! output (a caller may bind an output anywhere) and shares no storage with `a`, `b`
//! (or `y`, `r`, the stored product), which are still read or written while rows of
//! it are written.
//!
//! `plan::merge::sink_products` moves a product next to its first reader when that
//! is a kernel or a softmax, so these pairs end up adjacent.

use super::epilogue::shares_storage;
use crate::kernel::{Expr, Kernel};
use crate::plan::memory::{self, root, MemoryPlan};
use crate::plan::{BufId, CopyOp, Plan, Step};
use onde_ir::{BinaryOp, DType};

/// What step `i + 1` does to the rows of the product `out` (see [`after`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum After {
    /// `softmax(out · scale)`.
    Softmax { scale: f64 },
    /// `softmax_backward(out, y) · scale`.
    SoftmaxBackward { y: BufId, scale: f64 },
    /// `out + r`.
    Add { r: BufId },
    /// `Σ_rows out` (every axis but the last summed): the product is stored as usual
    /// and its rows are also added to the sums as they are stored.
    ColumnSums,
}

/// What `next` does to the rows of the product `out`, and its destination, when it is
/// one of the epilogues of the module doc (a softmax along the last axis; the kernel's
/// shape, loads and store checked; ownership and overlaps are [`check`]'s).
fn after(plan: &Plan, out: BufId, next: &Step) -> Option<(After, BufId)> {
    let last = plan.buffers[out].ty.shape.dims().len().checked_sub(1)?;
    match next {
        Step::Copy(CopyOp::Softmax { scale, axis }, args, dst)
            if args[..] == [out] && *axis == last =>
        {
            Some((After::Softmax { scale: *scale }, *dst))
        }
        Step::Copy(CopyOp::SoftmaxBackward { scale, axis }, args, dst) if *axis == last => {
            match args[..] {
                [dy, y] if dy == out && root(plan, y) != root(plan, out) => {
                    Some((After::SoftmaxBackward { y, scale: *scale }, *dst))
                }
                _ => None,
            }
        }
        Step::Kernel(k) => residual(plan, out, k)
            .map(|(r, dst)| (After::Add { r }, dst))
            .or_else(|| column_sums(plan, out, k).map(|dst| (After::ColumnSums, dst))),
        Step::Copy(..)
        | Step::MatMul { .. }
        | Step::Conv { .. }
        | Step::Host { .. }
        | Step::Scan { .. } => None,
    }
}

/// `(r, dst)` when kernel `k` is exactly `dst = out + r` over `out`'s shape: two f32
/// loads read element for element (row-major, offset 0, over the whole shape), one of
/// them `out` and the other a buffer `r` of the same shape, their sum stored whole.
fn residual(plan: &Plan, out: BufId, k: &Kernel) -> Option<(BufId, BufId)> {
    let dims = plan.buffers[out].ty.shape.dims();
    if k.reduction.is_some() || k.shape != dims || k.loads.len() != 2 || k.stores.len() != 1 {
        return None;
    }
    let row_major = crate::plan::lazy::contiguous(dims);
    let plain = |l: &crate::kernel::Load| {
        l.dtype == DType::F32
            && l.offset == 0
            && (0..dims.len()).all(|a| dims[a] == 1 || l.strides[a] == row_major[a])
    };
    if !k.loads.iter().all(plain) || k.dtypes.iter().any(|&d| d != DType::F32) {
        return None;
    }
    let which = |b: BufId| k.loads.iter().position(|l| l.buffer == b);
    let o = which(out)?;
    let r = k.loads[1 - o].buffer;
    let r_spec = &plan.buffers[r].ty;
    if root(plan, r) == root(plan, out) || r_spec.shape.dims() != dims {
        return None;
    }
    let store = &k.stores[0];
    let dst = &plan.buffers[store.buffer].ty;
    if dst.dtype != DType::F32 || dst.shape.numel() != r_spec.shape.numel() {
        return None;
    }
    let sum = match k.exprs.get(store.expr.index()) {
        Some(Expr::Binary(BinaryOp::Add, x, y)) => [*x, *y],
        _ => return None,
    };
    let load = |e: crate::kernel::ExprId| match k.exprs.get(e.index()) {
        Some(Expr::Load(j)) => Some(*j),
        _ => None,
    };
    let (Some(x), Some(y)) = (load(sum[0]), load(sum[1])) else {
        return None;
    };
    if x == y || store.window.is_some() {
        return None;
    }
    Some((r, store.buffer))
}

/// `dst` when kernel `k` is exactly `dst = Σ out` over every axis of `out` but the
/// last: one f32 load of `out`, element for element (row-major, offset 0), summed, the
/// `n` sums stored whole.
fn column_sums(plan: &Plan, out: BufId, k: &Kernel) -> Option<BufId> {
    let dims = plan.buffers[out].ty.shape.dims();
    let (Some(red), [load], [store]) = (&k.reduction, k.loads.as_slice(), k.stores.as_slice())
    else {
        return None;
    };
    let row_major = crate::plan::lazy::contiguous(dims);
    let rows: Vec<usize> = (0..dims.len().saturating_sub(1)).collect();
    let plain = load.buffer == out
        && load.dtype == DType::F32
        && load.offset == 0
        && (0..dims.len()).all(|a| dims[a] == 1 || load.strides[a] == row_major[a]);
    let dst = &plan.buffers[store.buffer].ty;
    let sums = dst.dtype == DType::F32 && dst.shape.numel() == dims.last().copied().unwrap_or(0);
    let summed = red.kind == onde_ir::ReduceKind::Sum
        && red.also.is_empty()
        && red.store == 0
        && red.axes == rows
        && matches!(k.exprs.as_slice(), [Expr::Load(0)])
        && k.dtypes.iter().all(|&d| d == DType::F32);
    (k.shape == dims && plain && sums && summed && store.window.is_none() && dims.len() >= 2)
        .then_some(store.buffer)
}

/// What step `i + 1` does as the epilogue of step `i`, and its destination, when it
/// runs as one (module doc; found once at compile, kept in `Fused::TileRows` for the
/// runs); `Err` says why not, for the verifier's messages.
pub(super) fn check(
    plan: &Plan,
    memory: &MemoryPlan,
    i: usize,
) -> Result<(After, BufId), &'static str> {
    let Step::MatMul { a, b, out, dtype } = &plan.steps[i] else {
        return Err("not a matrix product");
    };
    let Some((what, dst)) = plan.steps.get(i + 1).and_then(|s| after(plan, *out, s)) else {
        return Err(
            "the next step is not a softmax of the product or its backward along its last axis, an add or its sums",
        );
    };
    if *dtype != DType::F32 {
        return Err("not an f32 product");
    }
    let out_root = root(plan, *out);
    let is_output = |b| plan.outputs.iter().any(|&o| root(plan, o) == root(plan, b));
    let read_elsewhere =
        plan.steps.iter().enumerate().any(|(s, st)| {
            s != i + 1 && memory::reads(st).iter().any(|&r| root(plan, r) == out_root)
        });
    // With column sums the product is stored as usual: others may read it.
    let stored = what == After::ColumnSums;
    if read_elsewhere && !stored {
        return Err("the product is read by another step");
    }
    if is_output(*out) && !stored {
        return Err("the product is a graph output");
    }
    let other = match what {
        After::SoftmaxBackward { y, .. } => Some(y),
        After::Add { r } => Some(r),
        After::ColumnSums => Some(*out),
        After::Softmax { .. } => None,
    };
    let clash = |x| shares_storage(plan, memory, dst, x);
    if is_output(dst) || clash(a.buf) || clash(b.buf) || other.is_some_and(clash) {
        return Err("the destination may overlap an operand or an output");
    }
    Ok((what, dst))
}
