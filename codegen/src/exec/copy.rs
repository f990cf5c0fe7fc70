//! Native loop steps ([`plan::CopyOp`]): concat, pad, gather, scatter_add,
//! argmax/argmin, random numbers and softmax, without JIT code or the interpreter.

use super::{elem_size, Executable, RunError};
use crate::kernel::engine::Width;
use crate::plan;
use crate::plan::BufId;
use onde_ir::DType;

impl Executable {
    /// Runs a native loop step (no allocation once the reused counters have grown).
    pub(super) fn copy(
        &mut self,
        op: &plan::CopyOp,
        args: &[BufId],
        out: BufId,
    ) -> Result<(), RunError> {
        let mut idx = std::mem::take(&mut self.scratch_idx);
        let mut iacc = std::mem::take(&mut self.scratch_i64);
        let r = self.copy_with(op, args, out, &mut idx, &mut iacc);
        self.scratch_idx = idx;
        self.scratch_i64 = iacc;
        r
    }

    fn copy_with(
        &mut self,
        op: &plan::CopyOp,
        args: &[BufId],
        out: BufId,
        idx: &mut Vec<usize>,
        iacc: &mut Vec<i64>,
    ) -> Result<(), RunError> {
        let compiled = self.compiled.clone();
        let plan = &compiled.plan;
        let oty = &plan.buffers[out].ty;
        let es = elem_size(oty.dtype);
        let odims = oty.shape.dims();
        let dst = self.ptrs[out];
        match op {
            plan::CopyOp::Concat { axis } => {
                // out viewed as [outer, Σ len_i·inner]; operand i as [outer, len_i·inner].
                let outer: usize = odims[..*axis].iter().product();
                let inner: usize = odims[axis + 1..].iter().product();
                let row = odims[*axis] * inner * es;
                let mut col = 0;
                let word = |a: BufId| plan.buffers[a].ty.shape.dims()[*axis] * inner * es == 4;
                if outer == 0 {
                    // Nothing to copy (and no pointer offsets past an empty buffer).
                } else if args.len() <= 8 && args.iter().all(|&a| word(a)) {
                    // An interleave of 4-byte rows (stack along the last axis, e.g.
                    // a strided convolution's input-gradient phases): output rows in
                    // order, each part read sequentially, each output line written
                    // once (part by part, each line was written once per part).
                    type Word = [u8; 4];
                    // SAFETY: each part holds `outer` 4-byte rows and the output
                    // `outer` rows of `4·args.len()` bytes (concat typing); the buffers are
                    // distinct, and `[u8; 4]` has alignment 1 (bool parts are bytes).
                    let (parts, d) = unsafe {
                        let mut parts: [&[Word]; 8] = [&[]; 8];
                        for (slot, &a) in parts.iter_mut().zip(args) {
                            *slot = std::slice::from_raw_parts(self.ptrs[a].cast::<Word>(), outer);
                        }
                        let n = args.len() * outer;
                        (parts, std::slice::from_raw_parts_mut(dst.cast::<Word>(), n))
                    };
                    match args.len() {
                        1 => interleave::<1>(&parts, d),
                        2 => interleave::<2>(&parts, d),
                        3 => interleave::<3>(&parts, d),
                        4 => interleave::<4>(&parts, d),
                        5 => interleave::<5>(&parts, d),
                        6 => interleave::<6>(&parts, d),
                        7 => interleave::<7>(&parts, d),
                        _ => interleave::<8>(&parts, d),
                    }
                } else {
                    for &a in args {
                        let len = plan.buffers[a].ty.shape.dims()[*axis] * inner * es;
                        // SAFETY: operand `a` holds `outer·len` bytes and the output
                        // `outer·row` bytes with `col + len <= row` (typing rule of
                        // concat); the buffers are distinct.
                        unsafe { copy_rows(self.ptrs[a], len, dst.add(col), row, outer, len) };
                        col += len;
                    }
                }
            }
            plan::CopyOp::Gather { axis } => {
                let (x, ix) = (args[0], args[1]);
                let xdims = plan.buffers[x].ty.shape.dims();
                let n = oty.shape.numel();
                let extent = xdims[*axis];
                let (src, ip) = (self.ptrs[x], self.ptrs[ix].cast::<i64>());
                let (idx, xstr) = counters_and_strides(idx, odims.len(), xdims);
                for k in 0..n {
                    // SAFETY: the index buffer holds `n` i64 elements (the output's shape).
                    let j = unsafe { ip.add(k).read_unaligned() };
                    let s = indexed_offset("gather", j, extent, *axis, idx, xstr)?;
                    // SAFETY: `s` addresses an element of `x` (index < extent on `axis`,
                    // and the index shape fits inside `x` elsewhere, by the typing rule).
                    unsafe { std::ptr::copy_nonoverlapping(src.add(s * es), dst.add(k * es), es) };
                    next_index(idx, odims);
                }
            }
            plan::CopyOp::ScatterAdd { axis } => {
                let (ix, src) = (args[0], args[1]);
                let idims = plan.buffers[ix].ty.shape.dims();
                let m: usize = idims.iter().product();
                let n = oty.shape.numel();
                let extent = odims[*axis];
                let ip = self.ptrs[ix].cast::<i64>();
                let sp = self.ptrs[src];
                let mut acc = std::mem::take(&mut self.scratch64);
                acc.clear();
                acc.resize(n, 0.0);
                iacc.clear();
                iacc.resize(if oty.dtype == DType::I64 { n } else { 0 }, 0);
                let (idx, ostr) = counters_and_strides(idx, idims.len(), odims);
                for k in 0..m {
                    // SAFETY: the index buffer holds `m` i64 elements.
                    let j = unsafe { ip.add(k).read_unaligned() };
                    let pos = match indexed_offset("scatter_add", j, extent, *axis, idx, ostr) {
                        Ok(p) => p,
                        Err(e) => {
                            self.scratch64 = acc;
                            return Err(e);
                        }
                    };
                    // SAFETY: the source holds `m` elements of the output's dtype (same
                    // shape as the index, by the typing rule); `pos < n` since the index
                    // shape fits inside the output off `axis` and `j < extent` on it.
                    unsafe {
                        match oty.dtype {
                            DType::F32 => acc[pos] += f64::from(sp.cast::<f32>().add(k).read()),
                            DType::F64 => acc[pos] += sp.cast::<f64>().add(k).read(),
                            DType::I64 => {
                                iacc[pos] = iacc[pos].wrapping_add(sp.cast::<i64>().add(k).read())
                            }
                            DType::Bool => {}
                        }
                    }
                    next_index(idx, idims);
                }
                for p in 0..n {
                    // SAFETY: the output holds `n` elements of its dtype.
                    unsafe {
                        match oty.dtype {
                            DType::F32 => dst.cast::<f32>().add(p).write(acc[p] as f32),
                            DType::F64 => dst.cast::<f64>().add(p).write(acc[p]),
                            DType::I64 => dst.cast::<i64>().add(p).write(iacc[p]),
                            DType::Bool => {}
                        }
                    }
                }
                self.scratch64 = acc;
            }
            plan::CopyOp::ArgReduce { kind, axis } => {
                let x = args[0];
                let xt = &plan.buffers[x].ty;
                let xdims = xt.shape.dims();
                let n = xdims[*axis];
                let outer: usize = xdims[..*axis].iter().product();
                let inner: usize = xdims[axis + 1..].iter().product();
                let src = self.ptrs[x];
                let out = dst.cast::<i64>();
                // First extremum along the axis; a NaN wins and stays (interpreter rule).
                fn pick<T: PartialOrd + Copy>(
                    kind: onde_ir::ArgKind,
                    get: impl Fn(usize) -> T,
                    is_nan: impl Fn(T) -> bool,
                    n: usize,
                ) -> usize {
                    let (mut best_k, mut best) = (0, get(0));
                    for k in 1..n {
                        let v = get(k);
                        if is_nan(best) {
                            break;
                        }
                        let better = is_nan(v)
                            || match kind {
                                onde_ir::ArgKind::ArgMax => v > best,
                                onde_ir::ArgKind::ArgMin => v < best,
                            };
                        if better {
                            best = v;
                            best_k = k;
                        }
                    }
                    best_k
                }
                if n == 0 {
                    return Err(RunError::Native("argmax/argmin over an empty axis".into()));
                }
                for o in 0..outer {
                    for i in 0..inner {
                        let base = o * n * inner + i;
                        // SAFETY: `base + k·inner` < numel(x) for k < n; `x` holds
                        // numel elements of its dtype; the output holds outer·inner i64.
                        let k = unsafe {
                            match xt.dtype {
                                DType::F32 => {
                                    let p = src.cast::<f32>();
                                    pick(*kind, |k| p.add(base + k * inner).read(), f32::is_nan, n)
                                }
                                DType::F64 => {
                                    let p = src.cast::<f64>();
                                    pick(*kind, |k| p.add(base + k * inner).read(), f64::is_nan, n)
                                }
                                DType::I64 => {
                                    let p = src.cast::<i64>();
                                    pick(*kind, |k| p.add(base + k * inner).read(), |_| false, n)
                                }
                                DType::Bool => 0,
                            }
                        };
                        // SAFETY: as above.
                        unsafe { out.add(o * inner + i).write(k as i64) };
                    }
                }
            }
            plan::CopyOp::Random { dist } => {
                // SAFETY: the seed is an i64 scalar buffer (typing rule of `random`).
                let seed = unsafe { self.ptrs[args[0]].cast::<i64>().read() };
                let n = oty.shape.numel();
                for i in 0..n {
                    let c = i as u64;
                    // SAFETY: the output holds `n` elements of its float dtype.
                    unsafe {
                        match (oty.dtype, dist) {
                            (DType::F32, onde_ir::Distribution::Uniform) => dst
                                .cast::<f32>()
                                .add(i)
                                .write(onde_runtime::uniform_f32(seed, c)),
                            (DType::F64, onde_ir::Distribution::Uniform) => dst
                                .cast::<f64>()
                                .add(i)
                                .write(onde_runtime::uniform_f64(seed, c)),
                            (DType::F32, onde_ir::Distribution::Normal) => dst
                                .cast::<f32>()
                                .add(i)
                                .write(onde_runtime::standard_normal(seed, c) as f32),
                            (DType::F64, onde_ir::Distribution::Normal) => dst
                                .cast::<f64>()
                                .add(i)
                                .write(onde_runtime::standard_normal(seed, c)),
                            (
                                DType::Bool | DType::I64,
                                onde_ir::Distribution::Uniform | onde_ir::Distribution::Normal,
                            ) => {}
                        }
                    }
                }
            }
            plan::CopyOp::Softmax { axis, scale } => {
                let lines = (
                    odims[..*axis].iter().product(),
                    odims[*axis],
                    odims[axis + 1..].iter().product(),
                );
                let (src, numel) = (self.ptrs[args[0]], oty.shape.numel());
                debug_assert!(
                    src.cast_const() >= dst.wrapping_add(numel * es).cast_const()
                        || dst.cast_const() >= src.wrapping_add(numel * es).cast_const(),
                    "softmax operand and output overlap"
                );
                self.softmax(oty.dtype, src.cast_const(), dst, lines, *scale)
                    .map_err(|e| RunError::Native(e.to_string()))?;
            }
            plan::CopyOp::SoftmaxBackward { axis, scale } => {
                let lines = (
                    odims[..*axis].iter().product(),
                    odims[*axis],
                    odims[axis + 1..].iter().product(),
                );
                let (dy, y, numel) = (self.ptrs[args[0]], self.ptrs[args[1]], oty.shape.numel());
                let apart = |p: *mut u8| {
                    p.cast_const() >= dst.wrapping_add(numel * es).cast_const()
                        || dst.cast_const() >= p.wrapping_add(numel * es).cast_const()
                };
                debug_assert!(
                    apart(dy) && apart(y),
                    "softmax_backward operands and output overlap"
                );
                let operands = (dy.cast_const(), y.cast_const(), dst);
                self.softmax_backward(oty.dtype, operands, lines, *scale)
                    .map_err(|e| RunError::Native(e.to_string()))?;
            }
            plan::CopyOp::Pad { pads, value } => {
                // The fill value's bytes, on the stack.
                let bytes: [u8; 8] = match oty.dtype {
                    DType::F32 => {
                        let b = (*value as f32).to_ne_bytes();
                        [b[0], b[1], b[2], b[3], 0, 0, 0, 0]
                    }
                    DType::F64 => value.to_ne_bytes(),
                    DType::I64 => (*value as i64).to_ne_bytes(),
                    DType::Bool => [u8::from(*value != 0.0), 0, 0, 0, 0, 0, 0, 0],
                };
                let n = oty.shape.numel();
                if bytes.iter().all(|&b| b == 0) {
                    // SAFETY: the output holds `n` elements of `es` bytes.
                    unsafe { std::ptr::write_bytes(dst, 0, n * es) };
                } else {
                    // One element's bytes repeated, as `n` rows read from the same place
                    // (an `es`-byte library copy per element cost 15 ms for 4 M).
                    // SAFETY: `bytes` holds `es ≤ 8` bytes (source stride 0) and the
                    // output `n` elements of `es` bytes; distinct memory.
                    unsafe { copy_rows(bytes.as_ptr(), 0, dst, es, n, es) };
                }
                let x = args[0];
                let idims = plan.buffers[x].ty.shape.dims();
                let r = idims.len();
                if r == 0 || idims.iter().product::<usize>() == 0 {
                    return Ok(());
                }
                let last = idims[r - 1] * es;
                let rows: usize = idims[..r - 1].iter().product();
                let src = self.ptrs[x];
                let (idx, ostr) = counters_and_strides(idx, r - 1, odims);
                let mut row = 0;
                while row < rows {
                    let mut off = pads[r - 1].0 as isize;
                    for a in 0..r - 1 {
                        off += (idx[a] + pads[a].0) as isize * ostr[a] as isize;
                    }
                    // The rows that share every index but the one just before the last
                    // axis are evenly spaced in the output: copy the whole run here (a
                    // call per row cost 13 ms for 2 M four-byte rows).
                    let run = if r >= 2 { idims[r - 2] - idx[r - 2] } else { 1 };
                    let step = if r >= 2 { ostr[r - 2] * es } else { 0 };
                    // SAFETY: each row of the input (`last` bytes) lands inside the output
                    // at its padded position (the typing rule sizes the output for it);
                    // rows of a run are `last` bytes apart in the input, `step` in the
                    // output; distinct buffers.
                    unsafe {
                        copy_rows(
                            src.add(row * last),
                            last,
                            dst.add(off as usize * es),
                            step,
                            run,
                            last,
                        )
                    };
                    row += run;
                    if r >= 2 {
                        idx[r - 2] = idims[r - 2] - 1;
                    }
                    next_index(idx, &idims[..r - 1]);
                }
            }
        }
        Ok(())
    }
}

/// Splits the reused scratch into `n` zeroed counters and the row-major strides of
/// `dims` (no allocation once the scratch has grown).
fn counters_and_strides<'a>(
    scratch: &'a mut Vec<usize>,
    n: usize,
    dims: &[usize],
) -> (&'a mut [usize], &'a [usize]) {
    scratch.clear();
    scratch.resize(n + dims.len(), 0);
    let (ctr, st) = scratch.split_at_mut(n);
    let mut acc = 1;
    for a in (0..dims.len()).rev() {
        st[a] = acc;
        acc *= dims[a];
    }
    (ctr, st)
}

/// Advances the row-major multi-index `idx` over extents `dims` by one element.
/// The element offset (with `strides`) of multi-index `idx` with its `axis`
/// coordinate replaced by the index value `j`, which must lie in `[0, extent)`.
fn indexed_offset(
    op: &'static str,
    j: i64,
    extent: usize,
    axis: usize,
    idx: &[usize],
    strides: &[usize],
) -> Result<usize, RunError> {
    let Some(j) = usize::try_from(j).ok().filter(|&j| j < extent) else {
        return Err(RunError::IndexOutOfRange {
            op,
            index: j,
            extent,
            axis,
        });
    };
    Ok(idx
        .iter()
        .zip(strides)
        .enumerate()
        .map(|(a, (&i, &s))| if a == axis { j } else { i } * s)
        .sum())
}

fn next_index(idx: &mut [usize], dims: &[usize]) {
    for a in (0..dims.len()).rev() {
        idx[a] += 1;
        if idx[a] < dims[a] {
            return;
        }
        idx[a] = 0;
    }
}

/// `dst[o·N + j] = parts[j][o]`: `N` parts of 4-byte rows interleaved (stack along a
/// last axis). `N` is a constant so each output row is `N` plain moves, which rustc
/// vectorises (a loop over a run-time part count did not; `docs/performance.md`).
fn interleave<const N: usize>(parts: &[&[[u8; 4]]; 8], dst: &mut [[u8; 4]]) {
    let outer = dst.len() / N;
    let parts: [&[[u8; 4]]; N] = std::array::from_fn(|j| &parts[j][..outer]);
    for (o, row) in dst.chunks_exact_mut(N).enumerate() {
        for (d, p) in row.iter_mut().zip(parts) {
            *d = p[o];
        }
    }
}

/// Copies `rows` rows of `len` bytes from `src` (rows `src_stride` bytes apart) to
/// `dst` (rows `dst_stride` apart; a source stride of 0 repeats one row: Pad's fill).
/// Rows of 4 or 8 bytes (concat and pad along a last axis of one element, fills) are
/// moved as one unaligned word each: a `memcpy` call per element cost 13–17 ms for
/// 2–4 M rows.
///
/// # Safety
/// `src` is valid for reads of `(rows-1)·src_stride + len` bytes, `dst` for writes of
/// `(rows-1)·dst_stride + len` bytes, and the two ranges do not overlap.
unsafe fn copy_rows(
    src: *const u8,
    src_stride: usize,
    dst: *mut u8,
    dst_stride: usize,
    rows: usize,
    len: usize,
) {
    // SAFETY (all three arms): row `o` reads `src + o·src_stride .. + len` and writes
    // `dst + o·dst_stride .. + len`, inside the ranges the caller guarantees.
    unsafe {
        match len {
            0 => {}
            4 => {
                for o in 0..rows {
                    let v = src.add(o * src_stride).cast::<u32>().read_unaligned();
                    dst.add(o * dst_stride).cast::<u32>().write_unaligned(v);
                }
            }
            8 => {
                for o in 0..rows {
                    let v = src.add(o * src_stride).cast::<u64>().read_unaligned();
                    dst.add(o * dst_stride).cast::<u64>().write_unaligned(v);
                }
            }
            _ => {
                for o in 0..rows {
                    std::ptr::copy_nonoverlapping(
                        src.add(o * src_stride),
                        dst.add(o * dst_stride),
                        len,
                    );
                }
            }
        }
    }
}

impl Executable {
    /// Runs `share(lo, hi)` on the executor's threads over `[0, outer)` lines of `line`
    /// elements each (a line whole on one thread, so the same bits at any thread
    /// count) when `vectors` (the f32 vector path runs) and the work is worth the
    /// threads; returns whether it did (otherwise nothing ran).
    fn share_lines(
        &self,
        vectors: bool,
        outer: usize,
        line: usize,
        share: impl Fn(usize, usize) + Send + Copy,
    ) -> bool {
        let threads = if vectors {
            self.share_count(outer * line, outer)
        } else {
            1
        };
        if threads > 1 {
            super::run_shares(threads, outer, move |_, lo, hi| {
                if lo < hi {
                    share(lo, hi);
                }
            });
        }
        threads > 1
    }

    /// Softmax of the `lines` operand at `x` into `out` (distinct buffers of
    /// `outer·n·inner` elements of `dtype`). On vectors (f32 at AVX2 or AVX-512) the
    /// lines are split across the executor's threads (each line whole on one thread:
    /// the same bits at any thread count); the interpreter's definition (f64, or no
    /// vectors) runs on this thread with the reused scratch.
    fn softmax(
        &mut self,
        dtype: DType,
        x: *const u8,
        out: *mut u8,
        lines: crate::native::softmax::Lines,
        scale: f64,
    ) -> Result<(), crate::native::NativeError> {
        use crate::native::softmax::{softmax_scaled_f32, softmax_scaled_f64};
        let (outer, n, inner) = lines;
        let (line, isa) = (n * inner, self.isa);
        let vectors = dtype == DType::F32 && Width::for_level(isa).is_some();
        let (xs, os) = (
            super::SendPtr(x.cast_mut().cast::<f32>()),
            super::SendPtr(out.cast::<f32>()),
        );
        let shared = self.share_lines(vectors, outer, line, move |lo, hi| {
            let len = (hi - lo) * line;
            // SAFETY: lines [lo, hi) of each buffer (inside `outer·line`, the caller's
            // contract); shares write disjoint lines of the output and only read the
            // operand. The vector path never uses the (empty) scratch.
            let r = unsafe {
                softmax_scaled_f32(
                    isa,
                    std::slice::from_raw_parts(xs.get().add(lo * line).cast_const(), len),
                    scale as f32,
                    std::slice::from_raw_parts_mut(os.get().add(lo * line), len),
                    (hi - lo, n, inner),
                    &mut Vec::new(),
                )
            };
            // The lengths were checked for the whole operand: a share cannot fail.
            debug_assert!(r.is_ok());
        });
        if shared {
            return Ok(());
        }
        let numel = outer * line;
        let mut scratch = std::mem::take(&mut self.scratch64);
        // SAFETY: the caller's contract: distinct buffers of `numel` elements of
        // `dtype`, a float (softmax's typing rule).
        let r = unsafe {
            match dtype {
                DType::F64 => softmax_scaled_f64(
                    std::slice::from_raw_parts(x.cast::<f64>(), numel),
                    scale,
                    std::slice::from_raw_parts_mut(out.cast::<f64>(), numel),
                    lines,
                    &mut scratch,
                ),
                DType::F32 => softmax_scaled_f32(
                    isa,
                    std::slice::from_raw_parts(x.cast::<f32>(), numel),
                    scale as f32,
                    std::slice::from_raw_parts_mut(out.cast::<f32>(), numel),
                    lines,
                    &mut scratch,
                ),
                DType::I64 | DType::Bool => Ok(()),
            }
        };
        self.scratch64 = scratch;
        r
    }

    /// Softmax's backward of the `lines` operands `dy`, `y` into `out` (`out` distinct
    /// from both, each `outer·n·inner` elements of `dtype`), split across threads by
    /// whole lines on vectors (the same bits at any thread count), as [`Self::softmax`].
    fn softmax_backward(
        &mut self,
        dtype: DType,
        (dy, y, out): (*const u8, *const u8, *mut u8),
        lines: crate::native::softmax::Lines,
        scale: f64,
    ) -> Result<(), crate::native::NativeError> {
        use crate::native::softmax_backward::{softmax_backward_f32, softmax_backward_f64};
        let (outer, n, inner) = lines;
        let (line, isa) = (n * inner, self.isa);
        let vectors = dtype == DType::F32 && Width::for_level(isa).is_some();
        let (dys, ys, os) = (
            super::SendPtr(dy.cast_mut().cast::<f32>()),
            super::SendPtr(y.cast_mut().cast::<f32>()),
            super::SendPtr(out.cast::<f32>()),
        );
        let shared = self.share_lines(vectors, outer, line, move |lo, hi| {
            let len = (hi - lo) * line;
            // SAFETY: lines [lo, hi) of each buffer (inside `outer·line`, the caller's
            // contract); shares write disjoint lines of the output and only read the
            // operands.
            let r = unsafe {
                softmax_backward_f32(
                    isa,
                    std::slice::from_raw_parts(dys.get().add(lo * line).cast_const(), len),
                    std::slice::from_raw_parts(ys.get().add(lo * line).cast_const(), len),
                    std::slice::from_raw_parts_mut(os.get().add(lo * line), len),
                    (hi - lo, n, inner),
                    scale as f32,
                )
            };
            // The lengths were checked for the whole operand: a share cannot fail.
            debug_assert!(r.is_ok());
        });
        if shared {
            return Ok(());
        }
        let numel = outer * line;
        // SAFETY: the caller's contract: `out` distinct from both operands, each of
        // `numel` elements of `dtype`, a float (the op's typing rule).
        unsafe {
            match dtype {
                DType::F64 => softmax_backward_f64(
                    std::slice::from_raw_parts(dy.cast::<f64>(), numel),
                    std::slice::from_raw_parts(y.cast::<f64>(), numel),
                    std::slice::from_raw_parts_mut(out.cast::<f64>(), numel),
                    lines,
                    scale,
                ),
                DType::F32 => softmax_backward_f32(
                    isa,
                    std::slice::from_raw_parts(dy.cast::<f32>(), numel),
                    std::slice::from_raw_parts(y.cast::<f32>(), numel),
                    std::slice::from_raw_parts_mut(out.cast::<f32>(), numel),
                    lines,
                    scale as f32,
                ),
                DType::I64 | DType::Bool => Ok(()),
            }
        }
    }
}
