//! Convolution (cross-correlation) for 1 and 2 spatial dimensions: im2col + GEMM for
//! dense groups, a direct kernel for depthwise and narrow groups.
//!
//! Both algorithms work on a 2-d geometry: a 1-d convolution is a 2-d one with a
//! height of 1 (input, kernel and output), stride, dilation 1 and no padding on that
//! axis. The output is produced in work items of `(batch, group, output channels)`;
//! each item owns a contiguous block of the output, so threads never share memory.

use super::matmul::{MatMut, MatRef, Real};
use super::{checked_numel, for_each_split, NativeError, PARALLEL_MIN_FMAS};
use crate::isa::IsaLevel;
use crate::kernel::engine::lanes::{Lanes, X16, X8};
use crate::kernel::engine::Width;
use onde_ir::ConvParams;

const OP: &str = "conv";

/// Elements of one im2col tile (`C_in/groups · ∏K` rows × tile columns): 384 KiB of
/// f32, so the panel the GEMM packs from stays in L2.
const TILE_ELEMS: usize = 96 * 1024;

/// Output positions per register block in the direct kernel: 4 vectors of f32 (SSE2:
/// 16, AVX2: 32, AVX-512: 64), so the accumulators of a block stay in registers.
const BLOCK_SSE: usize = 16;
const BLOCK_AVX2: usize = 32;
const BLOCK_AVX512: usize = 64;

/// Taps (weight, input row) gathered per pass of the direct kernel; more taps are
/// accumulated over several passes.
const MAX_TAPS: usize = 64;

/// How [`conv_with`] computes a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvAlgorithm {
    /// Copy receptive fields into a column matrix (in tiles) and multiply by the
    /// weight with the library GEMM. Cost: the copy plus a dense GEMM per group.
    Im2colGemm,
    /// Sum `weight · shifted input row` per output row, register-blocked. Cost:
    /// `C_in/groups · ∏K` multiply-adds per output element, no copy.
    Direct,
}

/// The algorithm [`conv`] uses: [`ConvAlgorithm::Direct`] when each group reads at
/// most 2 input channels and either the convolution is grouped (depthwise, or
/// grouped with narrow groups) or a group has at most 4 output channels (a GEMM with
/// `m ≤ 4` and `k ≤ 2·∏K` is mostly overhead); [`ConvAlgorithm::Im2colGemm`]
/// otherwise, including for shapes that are invalid (the call then reports why).
pub fn choose_conv_algorithm(
    x_shape: &[usize],
    w_shape: &[usize],
    p: &ConvParams,
) -> ConvAlgorithm {
    let (Some(&c_in), Some(&c_out)) = (x_shape.get(1), w_shape.first()) else {
        return ConvAlgorithm::Im2colGemm;
    };
    let g = p.groups.max(1);
    let (cin_g, cout_g) = (c_in / g, c_out / g);
    if cin_g <= 2 && (p.groups > 1 || cout_g <= 4) {
        ConvAlgorithm::Direct
    } else {
        ConvAlgorithm::Im2colGemm
    }
}

/// Validated geometry, normalised to 2 spatial axes.
#[derive(Clone, Copy, Debug)]
struct Geom {
    batch: usize,
    c_in: usize,
    groups: usize,
    cin_g: usize,
    cout_g: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    sh: usize,
    sw: usize,
    /// Padding before, per axis (padding after only shapes the output extent).
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
}

impl Geom {
    /// Output positions per channel.
    fn npos(&self) -> usize {
        self.oh * self.ow
    }

    /// Reduction length of one output: `C_in/groups · kh · kw`.
    fn rows_k(&self) -> usize {
        self.cin_g * self.kh * self.kw
    }

    /// Whether the input is its own column matrix (1×1 kernel, stride 1, no padding).
    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.oh == self.h
            && self.ow == self.w
    }

    /// Columns per im2col tile.
    fn tile(&self) -> usize {
        let t = (TILE_ELEMS / self.rows_k().max(1)).max(64) / 16 * 16;
        t.min(self.npos()).max(1)
    }
}

fn geometry(
    x_shape: &[usize],
    w_shape: &[usize],
    p: &ConvParams,
    out_shape: &[usize],
) -> Result<Geom, NativeError> {
    let n = p.stride.len();
    if p.padding.len() != n || p.dilation.len() != n {
        return Err(NativeError::shape(
            OP,
            "stride, padding and dilation need one entry per spatial axis",
        ));
    }
    if n != 1 && n != 2 {
        return Err(NativeError::Unsupported {
            op: OP,
            what: format!("{n}-d convolution (only 1-d and 2-d)"),
        });
    }
    if x_shape.len() != n + 2 || w_shape.len() != n + 2 || out_shape.len() != n + 2 {
        return Err(NativeError::shape(
            OP,
            format!(
                "{n}-d convolution needs rank {} input, weight and output, got {x_shape:?}, {w_shape:?}, {out_shape:?}",
                n + 2
            ),
        ));
    }
    let (batch, c_in, c_out, cin_g) = (x_shape[0], x_shape[1], w_shape[0], w_shape[1]);
    let groups = p.groups;
    if groups == 0 || c_out % groups != 0 || cin_g.checked_mul(groups) != Some(c_in) {
        return Err(NativeError::shape(
            OP,
            format!("input channels {c_in}, weight {w_shape:?} and groups {groups} do not match"),
        ));
    }
    let mut o = [1usize; 2];
    for i in 0..n {
        if p.dilation[i] == 0 {
            return Err(NativeError::shape(OP, "dilation 0"));
        }
        o[i] = onde_ir::typing::conv_out_len(
            x_shape[2 + i],
            w_shape[2 + i],
            p.stride[i],
            p.padding[i],
            p.dilation[i],
        )
        .ok_or_else(|| {
            NativeError::shape(
                OP,
                format!(
                    "kernel {:?} (stride {:?}, dilation {:?}) does not fit input {x_shape:?} padded by {:?}",
                    &w_shape[2..],
                    p.stride,
                    p.dilation,
                    p.padding
                ),
            )
        })?;
    }
    // Checked without building the expected shape (this runs on every call).
    if out_shape.len() != 2 + n || out_shape[..2] != [batch, c_out] || out_shape[2..] != o[..n] {
        let mut want = vec![batch, c_out];
        want.extend_from_slice(&o[..n]);
        return Err(NativeError::shape(
            OP,
            format!("output shape {out_shape:?}, expected {want:?}"),
        ));
    }
    // Spatial axes, with a leading unit axis for 1-d.
    let at = |v: &[usize], i: usize, unit: usize| {
        if n == 2 {
            v[i]
        } else if i == 0 {
            unit
        } else {
            v[0]
        }
    };
    Ok(Geom {
        batch,
        c_in,
        groups,
        cin_g,
        cout_g: c_out / groups,
        h: at(&x_shape[2..], 0, 1),
        w: at(&x_shape[2..], 1, 1),
        kh: at(&w_shape[2..], 0, 1),
        kw: at(&w_shape[2..], 1, 1),
        oh: at(&o, 0, 1),
        ow: at(&o, 1, 1),
        sh: at(&p.stride, 0, 1),
        sw: at(&p.stride, 1, 1),
        // Leading padding only: the output extent already accounts for the trailing one.
        ph: if n == 2 { p.padding[0].0 } else { 0 },
        pw: p.padding[n - 1].0,
        dh: at(&p.dilation, 0, 1),
        dw: at(&p.dilation, 1, 1),
    })
}

fn check_len(operand: &'static str, actual: usize, dims: &[usize]) -> Result<(), NativeError> {
    let expected = checked_numel(dims)
        .ok_or_else(|| NativeError::shape(OP, format!("{operand} shape {dims:?} overflows")))?;
    if actual != expected {
        return Err(NativeError::Length {
            op: OP,
            operand,
            expected,
            actual,
        });
    }
    Ok(())
}

/// N-d convolution (cross-correlation) for N = 1 and 2, exactly
/// [`onde_ir::Op::Conv`] (see [`ConvParams`]): `x` is contiguous `[B, C_in, *S]`,
/// `w` contiguous `[C_out, C_in/groups, *K]`, `out` contiguous `[B, C_out, *O]` with
/// `O = (S + pad_lo + pad_hi - dilation·(K-1) - 1) / stride + 1`. No bias.
///
/// The algorithm is [`choose_conv_algorithm`]'s. `scratch` holds the im2col tiles
/// (`threads × C_in/groups·∏K × tile` elements, at most about 96 Ki per thread); it is
/// grown when too small, never shrunk, so an executor can keep one per thread of
/// control and pay no allocation after the first call. `threads` (0 counts as 1) threads
/// are used when the convolution has at least about 2²⁰ multiply-adds; the result does
/// not depend on `threads`.
///
/// # Errors
/// [`NativeError`] if the shapes disagree with each other or with `p` (as the IR's
/// typing rule), a slice length differs from its shape, or N is not 1 or 2.
#[allow(clippy::too_many_arguments)] // The executor's calling convention.
pub fn conv<T: Real>(
    x: &[T],
    x_shape: &[usize],
    w: &[T],
    w_shape: &[usize],
    p: &ConvParams,
    out: &mut [T],
    out_shape: &[usize],
    scratch: &mut Vec<T>,
    threads: usize,
) -> Result<(), NativeError> {
    let algo = choose_conv_algorithm(x_shape, w_shape, p);
    conv_with(
        algo, x, x_shape, w, w_shape, p, out, out_shape, scratch, threads,
    )
}

/// [`conv`] with the direct kernel's instruction set capped at `isa` (the executor's
/// [`crate::CompileOptions::isa`]).
///
/// # Errors
/// As [`conv`].
#[allow(clippy::too_many_arguments)] // The executor's calling convention.
pub fn conv_capped<T: Real>(
    isa: IsaLevel,
    x: &[T],
    x_shape: &[usize],
    w: &[T],
    w_shape: &[usize],
    p: &ConvParams,
    out: &mut [T],
    out_shape: &[usize],
    scratch: &mut Vec<T>,
    threads: usize,
) -> Result<(), NativeError> {
    let algo = choose_conv_algorithm(x_shape, w_shape, p);
    conv_impl(
        algo, isa, x, x_shape, w, w_shape, p, out, out_shape, scratch, threads, None,
    )
    .map(|_| ())
}

/// [`conv`] with the algorithm forced (for benchmarks, tests and tuning).
///
/// # Errors
/// As [`conv`].
#[allow(clippy::too_many_arguments)] // The executor's calling convention.
pub fn conv_with<T: Real>(
    algo: ConvAlgorithm,
    x: &[T],
    x_shape: &[usize],
    w: &[T],
    w_shape: &[usize],
    p: &ConvParams,
    out: &mut [T],
    out_shape: &[usize],
    scratch: &mut Vec<T>,
    threads: usize,
) -> Result<(), NativeError> {
    conv_impl(
        algo,
        IsaLevel::Avx512,
        x,
        x_shape,
        w,
        w_shape,
        p,
        out,
        out_shape,
        scratch,
        threads,
        None,
    )
    .map(|_| ())
}

/// Work run on finished rows of a convolution's output while they are still in cache:
/// the executor's fused consumer kernel (`exec::epilogue`).
pub struct RowEpilogue<'a> {
    /// The output, read in row-major order, is `rows` equal rows.
    pub rows: usize,
    /// Called with `[lo, hi)` rows once every element of them is written, on the
    /// thread that wrote them; the calls cover each row exactly once. Rows are
    /// independent: calls run concurrently on disjoint ranges.
    pub run: &'a (dyn Fn(usize, usize) + Sync),
}

impl std::fmt::Debug for RowEpilogue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowEpilogue")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// [`conv`], then `then.run` on blocks of finished output rows, interleaved with the
/// convolution: each `(batch, group)` block of output is written, and the rows it
/// completes are handed to `then.run` at once, so a consumer reads them from cache
/// rather than from memory after the whole output is written.
///
/// Work is dealt out in units of `lcm(C_out/groups · ∏O, numel / rows)` elements (one
/// batch entry of W2's 32 × 4000 outputs: 512 KiB), each unit on one thread.
/// Returns `Ok(true)` when every row went through `then.run`; `Ok(false)` — the
/// convolution is computed but `then.run` was never called, the caller runs its
/// consumer itself — when the rows do not divide the output evenly, when the output
/// is empty or sums nothing, when splitting would leave a thread idle (fewer units
/// than threads: the output channels of a group would have to be split), or when
/// `threads > 1` but the convolution is too small to split (the consumer, run
/// separately, may still split).
///
/// # Errors
/// As [`conv`].
#[allow(clippy::too_many_arguments)] // The executor's calling convention.
pub fn conv_then<T: Real>(
    x: &[T],
    x_shape: &[usize],
    w: &[T],
    w_shape: &[usize],
    p: &ConvParams,
    out: &mut [T],
    out_shape: &[usize],
    scratch: &mut Vec<T>,
    threads: usize,
    isa: IsaLevel,
    then: &RowEpilogue<'_>,
) -> Result<bool, NativeError> {
    let algo = choose_conv_algorithm(x_shape, w_shape, p);
    conv_impl(
        algo,
        isa,
        x,
        x_shape,
        w,
        w_shape,
        p,
        out,
        out_shape,
        scratch,
        threads,
        Some(then),
    )
}

/// [`conv_with`] with the direct kernel's instruction set capped at `isa` (tests) and
/// an optional row epilogue ([`conv_then`]; returns whether it ran).
#[allow(clippy::too_many_arguments)]
fn conv_impl<T: Real>(
    algo: ConvAlgorithm,
    isa: IsaLevel,
    x: &[T],
    x_shape: &[usize],
    w: &[T],
    w_shape: &[usize],
    p: &ConvParams,
    out: &mut [T],
    out_shape: &[usize],
    scratch: &mut Vec<T>,
    threads: usize,
    then: Option<&RowEpilogue<'_>>,
) -> Result<bool, NativeError> {
    let g = geometry(x_shape, w_shape, p, out_shape)?;
    check_len("x", x.len(), x_shape)?;
    check_len("w", w.len(), w_shape)?;
    check_len("out", out.len(), out_shape)?;
    if out.is_empty() {
        return Ok(false);
    }
    if g.rows_k() == 0 {
        // No input channels: every output sums nothing.
        out.fill(T::ZERO);
        return Ok(false);
    }
    let npos = g.npos();
    let units = g.batch * g.groups;
    let threads = threads.max(1);
    let fmas = out.len().saturating_mul(g.rows_k());
    let parallel = threads > 1 && fmas >= PARALLEL_MIN_FMAS;
    let nthreads = if parallel { threads } else { 1 };
    // Output channels per work item: a whole group, or a share of it when there are
    // fewer (batch, group) blocks than threads.
    let split = if parallel && units < threads {
        threads.div_ceil(units).min(g.cout_g)
    } else {
        1
    };
    let block = g.cout_g * npos;
    // Elements per epilogue unit: whole blocks and whole rows.
    let fused = then.and_then(|e| {
        // With threads to spare but too little convolution to split, the consumer runs
        // as its own step, which may still use them.
        let idle = threads > 1 && !parallel;
        if idle || split != 1 || e.rows == 0 || !out.len().is_multiple_of(e.rows) {
            return None;
        }
        let unit = lcm(block, out.len() / e.rows);
        (out.len() / unit >= nthreads).then_some((e, unit))
    });
    // Per-thread im2col panels (none for the direct kernel and 1×1 convolutions).
    let per = match algo {
        ConvAlgorithm::Direct => 0,
        ConvAlgorithm::Im2colGemm if g.is_pointwise() => 0,
        ConvAlgorithm::Im2colGemm => g.rows_k() * g.tile(),
    };
    let need = per * nthreads;
    if scratch.len() < need {
        scratch.resize(need, T::ZERO);
    }
    // One im2col panel per thread, on the stack for up to 4 threads (no allocation
    // per call).
    let mut states: smallvec::SmallVec<[&mut [T]; 4]> = smallvec::SmallVec::new();
    let mut rest = &mut scratch[..need];
    for _ in 0..nthreads {
        let (mine, tail) = rest.split_at_mut(per);
        states.push(mine);
        rest = tail;
    }
    let item = |cols: &mut [T], it: Item<'_, T>| match algo {
        ConvAlgorithm::Direct => {
            direct_item(isa, &g, x, w, it);
            Ok(())
        }
        ConvAlgorithm::Im2colGemm => im2col_item(&g, x, w, it, cols),
    };
    let Some((e, unit)) = fused else {
        let co_per = g.cout_g.div_ceil(split);
        let items = out.chunks_mut(block).enumerate().flat_map(move |(u, blk)| {
            blk.chunks_mut(co_per * npos)
                .enumerate()
                .map(move |(part, oc)| Item {
                    b: u / g.groups,
                    grp: u % g.groups,
                    co0: part * co_per,
                    out: oc,
                })
        });
        for_each_split(OP, items, &mut states, parallel, |cols, it| item(cols, it))?;
        return Ok(false);
    };
    let row = out.len() / e.rows;
    let units = out.chunks_mut(unit).enumerate();
    for_each_split(OP, units, &mut states, parallel, |cols, (ui, chunk)| {
        let start = ui * unit;
        let mut done = start;
        for (j, blk) in chunk.chunks_mut(block).enumerate() {
            let u = start / block + j;
            item(
                cols,
                Item {
                    b: u / g.groups,
                    grp: u % g.groups,
                    co0: 0,
                    out: blk,
                },
            )?;
            let end = start + (j + 1) * block;
            if end.is_multiple_of(row) {
                (e.run)(done / row, end / row);
                done = end;
            }
        }
        Ok(())
    })?;
    Ok(true)
}

/// Least common multiple of two positive numbers.
fn lcm(a: usize, b: usize) -> usize {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

/// One block of output: channels `co0..` of group `grp` for batch entry `b`.
struct Item<'a, T> {
    b: usize,
    grp: usize,
    co0: usize,
    /// `[channels, oh·ow]`, contiguous.
    out: &'a mut [T],
}

impl<T> Item<'_, T> {
    /// The input channels of this item's group, `[cin_g, h·w]`.
    fn input<'x>(&self, g: &Geom, x: &'x [T]) -> &'x [T] {
        let plane = g.h * g.w;
        let start = (self.b * g.c_in + self.grp * g.cin_g) * plane;
        &x[start..start + g.cin_g * plane]
    }

    /// Global index of this item's first output channel.
    fn first_channel(&self, g: &Geom) -> usize {
        self.grp * g.cout_g + self.co0
    }
}

/// Output positions `o` (along one axis) whose tap at padded offset `off` reads inside
/// an input of length `len` padded by `pad` before: `pad ≤ o·s + off < pad + len`.
/// Returns `[lo, hi)` (not clamped to the output length; empty as `lo == hi`).
fn valid_range(len: usize, s: usize, off: usize, pad: usize) -> (usize, usize) {
    let lo = if off >= pad {
        0
    } else {
        (pad - off).div_ceil(s)
    };
    let hi = if pad + len > off {
        (pad + len - 1 - off) / s + 1
    } else {
        0
    };
    (lo, hi.max(lo))
}

/// `seg[i] = xrow[(ox0 + i)·s + off - pad]`, zero where that falls in the padding.
fn fill_shifted<T: Real>(seg: &mut [T], xrow: &[T], ox0: usize, s: usize, off: usize, pad: usize) {
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
fn copy_strided<T: Copy, const S: usize>(dst: &mut [T], src: &[T]) {
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
fn im2col_tile<T: Real>(g: &Geom, xg: &[T], p0: usize, p1: usize, dst: &mut [T]) {
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

fn im2col_item<T: Real>(
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

/// One term of an output row: `w · x[start + o·s + off - pad]`.
#[derive(Clone, Copy, Debug, Default)]
struct Tap<T> {
    w: T,
    /// Index of the input row's first element in the group's input.
    start: usize,
    /// Padded offset of the tap along the row: `kx · dilation`.
    off: usize,
}

/// Direct kernel on one item, compiled for the best instruction set up to `cap`.
#[allow(unsafe_code)]
fn direct_item<T: Real>(cap: IsaLevel, g: &Geom, x: &[T], w: &[T], it: Item<'_, T>) {
    match cap.min(IsaLevel::detect()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `direct_item_avx512` only requires the `avx512f`, `avx2` and `fma`
        // target features, which `IsaLevel::detect` found on this CPU.
        IsaLevel::Avx512 => unsafe { direct_item_avx512(g, x, w, it) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `direct_item_avx2` only requires the `avx2` and `fma` target
        // features, which `IsaLevel::detect` found on this CPU.
        IsaLevel::Avx2 => unsafe { direct_item_avx2(g, x, w, it) },
        #[cfg(not(target_arch = "x86_64"))]
        IsaLevel::Avx512 | IsaLevel::Avx2 => {
            direct_item_generic::<T, false, BLOCK_SSE>(g, x, w, it)
        }
        IsaLevel::Baseline => direct_item_generic::<T, false, BLOCK_SSE>(g, x, w, it),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn direct_item_avx2<T: Real>(g: &Geom, x: &[T], w: &[T], it: Item<'_, T>) {
    direct_item_generic::<T, true, BLOCK_AVX2>(g, x, w, it);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn direct_item_avx512<T: Real>(g: &Geom, x: &[T], w: &[T], it: Item<'_, T>) {
    direct_item_generic::<T, true, BLOCK_AVX512>(g, x, w, it);
}

/// `acc + w·v`, fused when `FMA` (only instantiated where FMA is enabled).
#[inline(always)]
fn madd<T: Real, const FMA: bool>(w: T, v: T, acc: T) -> T {
    if FMA {
        w.mul_add(v, acc)
    } else {
        acc + w * v
    }
}

#[inline(always)]
fn direct_item_generic<T: Real, const FMA: bool, const BLOCK: usize>(
    g: &Geom,
    x: &[T],
    w: &[T],
    it: Item<'_, T>,
) {
    let (npos, rows_k) = (g.npos(), g.rows_k());
    let xg = it.input(g, x);
    let plane = g.h * g.w;
    let first = it.first_channel(g);
    let mut taps = [Tap::<T>::default(); MAX_TAPS];
    for (c, orow_all) in it.out.chunks_exact_mut(npos).enumerate() {
        let wrow = &w[(first + c) * rows_k..(first + c + 1) * rows_k];
        for (oy, orow) in orow_all.chunks_exact_mut(g.ow).enumerate() {
            let mut n = 0;
            let mut accumulate = false;
            for ci in 0..g.cin_g {
                for ky in 0..g.kh {
                    let iy = oy * g.sh + ky * g.dh;
                    if iy < g.ph || iy - g.ph >= g.h {
                        continue;
                    }
                    let start = ci * plane + (iy - g.ph) * g.w;
                    for kx in 0..g.kw {
                        taps[n] = Tap {
                            w: wrow[(ci * g.kh + ky) * g.kw + kx],
                            start,
                            off: kx * g.dw,
                        };
                        n += 1;
                        if n == MAX_TAPS {
                            direct_row::<T, FMA, BLOCK>(orow, accumulate, &taps[..n], xg, g);
                            accumulate = true;
                            n = 0;
                        }
                    }
                }
            }
            if n > 0 || !accumulate {
                direct_row::<T, FMA, BLOCK>(orow, accumulate, &taps[..n], xg, g);
            }
        }
    }
}

/// `out[o] (+)= Σ_taps w · xg[start + o·sw + off - pw]`, zero outside the input row.
#[inline(always)]
fn direct_row<T: Real, const FMA: bool, const BLOCK: usize>(
    out: &mut [T],
    accumulate: bool,
    taps: &[Tap<T>],
    xg: &[T],
    g: &Geom,
) {
    let (s, pad, len) = (g.sw, g.pw, g.w);
    let n = out.len();
    let (Some(off_min), Some(off_max)) = (
        taps.iter().map(|t| t.off).min(),
        taps.iter().map(|t| t.off).max(),
    ) else {
        if !accumulate {
            out.fill(T::ZERO);
        }
        return;
    };
    // Interior: every tap reads inside the row.
    let lo = valid_range(len, s, off_min, pad).0.min(n);
    let hi = valid_range(len, s, off_max, pad).1.clamp(lo, n);
    // Edges: checked scalar loop.
    for o in (0..lo).chain(hi..n) {
        let mut acc = if accumulate { out[o] } else { T::ZERO };
        for t in taps {
            let q = o * s + t.off;
            if q >= pad && q - pad < len {
                acc = madd::<T, FMA>(t.w, xg[t.start + q - pad], acc);
            }
        }
        out[o] = acc;
    }
    // Interior, in register blocks of BLOCK outputs.
    #[cfg(target_arch = "x86_64")]
    if FMA && (BLOCK == BLOCK_AVX512 || BLOCK == BLOCK_AVX2) && s == 1 {
        let width = if BLOCK == BLOCK_AVX512 {
            Width::X16
        } else {
            Width::X8
        };
        if let (Some(x32), Some(out32)) = (T::as_f32(xg), T::as_f32_mut(out)) {
            if interior_f32(width, out32, accumulate, taps, x32, lo, hi, pad) {
                return;
            }
        }
    }
    let mut o = lo;
    while o + BLOCK <= hi {
        let mut acc = [T::ZERO; BLOCK];
        if accumulate {
            acc.copy_from_slice(&out[o..o + BLOCK]);
        }
        for t in taps {
            let base = t.start + o * s + t.off - pad;
            if s == 1 {
                for (a, v) in acc.iter_mut().zip(&xg[base..base + BLOCK]) {
                    *a = madd::<T, FMA>(t.w, *v, *a);
                }
            } else {
                let xs = &xg[base..base + (BLOCK - 1) * s + 1];
                for (a, v) in acc.iter_mut().zip(xs.iter().step_by(s)) {
                    *a = madd::<T, FMA>(t.w, *v, *a);
                }
            }
        }
        out[o..o + BLOCK].copy_from_slice(&acc);
        o += BLOCK;
    }
    for (i, slot) in out[o..hi].iter_mut().enumerate() {
        let mut acc = if accumulate { *slot } else { T::ZERO };
        for t in taps {
            acc = madd::<T, FMA>(t.w, xg[t.start + (o + i) * s + t.off - pad], acc);
        }
        *slot = acc;
    }
}

/// The interior `[lo, hi)` of a stride-1 f32 output row on `width`'s vectors (only
/// called from the kernel compiled for that width, after detection; see
/// [`interior_lanes`]). Returns `false` (nothing written) when a tap would read outside
/// `xg`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments, unsafe_code)]
fn interior_f32<T: Real>(
    width: Width,
    out: &mut [f32],
    accumulate: bool,
    taps: &[Tap<T>],
    xg: &[f32],
    lo: usize,
    hi: usize,
    pad: usize,
) -> bool {
    // Only the AVX2 and AVX-512 builds of the direct kernel get here (SAFETY note).
    debug_assert!(Width::for_level(IsaLevel::Avx512).is_some_and(|w| w.lanes() >= width.lanes()));
    if lo > hi || hi > out.len() || taps.len() > MAX_TAPS {
        return false;
    }
    let mut w = [0f32; MAX_TAPS];
    let mut base = [0usize; MAX_TAPS];
    for (i, t) in taps.iter().enumerate() {
        let Some(&[wt]) = T::as_f32(std::slice::from_ref(&t.w)) else {
            return false;
        };
        // Input index read by output `lo`; outputs up to `hi - 1` read `hi - lo` in a row.
        let Some(b) = (t.start + lo + t.off).checked_sub(pad) else {
            return false;
        };
        if b + (hi - lo) > xg.len() {
            return false;
        }
        (w[i], base[i]) = (wt, b);
    }
    let n = taps.len();
    let (out, w, base) = (&mut out[lo..hi], &w[..n], &base[..n]);
    // SAFETY: `Width::X16` comes only from `direct_item_avx512` (`BLOCK_AVX512` with FMA
    // is instantiated there alone), which runs after `IsaLevel::detect` found the
    // AVX-512 level; `Width::X8` only from `direct_item_avx2` (AVX2 and FMA found). Every
    // tap reads `x[base + i]` for `i < hi - lo`, checked above to lie in `xg`.
    unsafe {
        match width {
            Width::X16 => interior_f32_x16(out, accumulate, w, base, xg),
            Width::X8 => interior_f32_x8(out, accumulate, w, base, xg),
        }
    }
    true
}

/// [`interior_lanes`] on 16 lanes.
///
/// # Safety
/// The CPU has AVX-512F/DQ; `base[t] + out.len() <= x.len()` for every tap.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
#[allow(unsafe_code)]
unsafe fn interior_f32_x16(
    out: &mut [f32],
    accumulate: bool,
    w: &[f32],
    base: &[usize],
    x: &[f32],
) {
    // SAFETY: this function runs with AVX-512F/DQ; the rest is forwarded.
    unsafe { interior_lanes(X16::assume(), out, accumulate, w, base, x) }
}

/// [`interior_lanes`] on 8 lanes.
///
/// # Safety
/// The CPU has AVX2 and FMA; `base[t] + out.len() <= x.len()` for every tap.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(unsafe_code)]
unsafe fn interior_f32_x8(out: &mut [f32], accumulate: bool, w: &[f32], base: &[usize], x: &[f32]) {
    // SAFETY: this function runs with AVX2 and FMA; the rest is forwarded.
    unsafe { interior_lanes(X8::assume(), out, accumulate, w, base, x) }
}

/// The interior of a stride-1 f32 output row, written once over the engine's widths:
/// 8 accumulators of `N` lanes (128 outputs on AVX-512, 64 on AVX2) per block, so the
/// 4-cycle FMA latency is covered, then one-vector blocks with a masked tail. Each
/// output is the FMA chain the generic kernel computes, tap by tap from `+0` or the
/// stored value, so the results are bit-identical to it at every width; the generic
/// form, left to the compiler, ran the W2 depthwise convolution at ~12 GFMA/s.
///
/// # Safety
/// The CPU has `L`'s instruction set; `base[t] + out.len() <= x.len()` for every tap.
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn interior_lanes<L: Lanes>(
    l: L,
    out: &mut [f32],
    accumulate: bool,
    w: &[f32],
    base: &[usize],
    x: &[f32],
) {
    let n = out.len();
    let o = out.as_mut_ptr();
    let x = x.as_ptr();
    let block = 8 * L::N;
    let mut i = 0;
    // SAFETY (every access below): output lanes `i + N·j + l < n` lie in `out`; tap `t`
    // reads `x[base[t] + i + N·j + l]` with the same bound, inside `x` by the caller's
    // contract; lanes at or past `n` are masked off (masked loads do not fault).
    unsafe {
        while i + block <= n {
            let mut acc = [l.zero(); 8];
            if accumulate {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = l.load(o.add(i + L::N * j));
                }
            }
            for (&wt, &b) in w.iter().zip(base) {
                let wv = l.splat(wt);
                let p = x.add(b + i);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = l.fmadd(wv, l.load(p.add(L::N * j)), *a);
                }
            }
            for (j, a) in acc.iter().enumerate() {
                l.store(o.add(i + L::N * j), *a);
            }
            i += block;
        }
        while i < n {
            let left = n - i;
            let mut acc = if accumulate {
                l.load_first(o.add(i), left)
            } else {
                l.zero()
            };
            for (&wt, &b) in w.iter().zip(base) {
                let v = l.load_first(x.add(b + i), left);
                acc = l.fmadd(l.splat(wt), v, acc);
            }
            l.store_first(o.add(i), left.min(L::N), acc);
            i += L::N;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    /// Every compiled variant of the direct kernel (those this CPU can run) agrees with
    /// im2col + GEMM; the integration tests only reach the best one.
    #[test]
    fn direct_kernel_variants_agree() {
        let cases: [(&[usize], &[usize], ConvParams); 5] = [
            (
                &[2, 4, 300],
                &[4, 1, 9],
                ConvParams {
                    stride: vec![1],
                    padding: vec![(8, 8)],
                    dilation: vec![2],
                    groups: 4,
                },
            ),
            (
                &[1, 4, 500],
                &[8, 2, 5],
                ConvParams {
                    stride: vec![3],
                    padding: vec![(2, 1)],
                    dilation: vec![1],
                    groups: 2,
                },
            ),
            (
                &[1, 2, 20, 150],
                &[2, 1, 3, 3],
                ConvParams {
                    stride: vec![1, 1],
                    padding: vec![(1, 1), (1, 1)],
                    dilation: vec![1, 1],
                    groups: 2,
                },
            ),
            (
                // 90 taps at stride 1: two passes (the second accumulates); interior
                // rows [4, 329): 2 blocks of 128, 4 vectors and a masked tail of 5.
                &[1, 4, 6, 333],
                &[2, 2, 5, 9],
                ConvParams {
                    stride: vec![1, 1],
                    padding: vec![(2, 2), (4, 4)],
                    dilation: vec![1, 1],
                    groups: 2,
                },
            ),
            (
                &[1, 4, 12, 200],
                &[2, 2, 7, 11],
                ConvParams {
                    stride: vec![1, 2],
                    padding: vec![(3, 3), (5, 5)],
                    dilation: vec![1, 1],
                    groups: 2,
                },
            ),
        ];
        for (xs, ws, p) in &cases {
            let out_shape: Vec<usize> = {
                let n = p.stride.len();
                let mut o = vec![xs[0], ws[0]];
                for i in 0..n {
                    o.push(
                        onde_ir::typing::conv_out_len(
                            xs[2 + i],
                            ws[2 + i],
                            p.stride[i],
                            p.padding[i],
                            p.dilation[i],
                        )
                        .expect("valid"),
                    );
                }
                o
            };
            let numel = |d: &[usize]| d.iter().product::<usize>();
            let (x, w) = (values(numel(xs), 1), values(numel(ws), 2));
            let mut scratch = Vec::new();
            let mut want = vec![0.0f64; numel(&out_shape)];
            conv_impl(
                ConvAlgorithm::Im2colGemm,
                IsaLevel::Avx512,
                &x,
                xs,
                &w,
                ws,
                p,
                &mut want,
                &out_shape,
                &mut scratch,
                1,
                None,
            )
            .expect("im2col");
            let mut f32_runs: Vec<(IsaLevel, Vec<f32>)> = Vec::new();
            for isa in [IsaLevel::Baseline, IsaLevel::Avx2, IsaLevel::Avx512] {
                let mut got = vec![f64::NAN; want.len()];
                conv_impl(
                    ConvAlgorithm::Direct,
                    isa,
                    &x,
                    xs,
                    &w,
                    ws,
                    p,
                    &mut got,
                    &out_shape,
                    &mut scratch,
                    1,
                    None,
                )
                .expect("direct");
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                        "{isa:?}: {g} vs {w}"
                    );
                }
                let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
                let mut gotf = vec![f32::NAN; want.len()];
                let mut sf = Vec::new();
                conv_impl(
                    ConvAlgorithm::Direct,
                    isa,
                    &xf,
                    xs,
                    &wf,
                    ws,
                    p,
                    &mut gotf,
                    &out_shape,
                    &mut sf,
                    1,
                    None,
                )
                .expect("direct f32");
                for (g, w) in gotf.iter().zip(&want) {
                    let g = f64::from(*g);
                    assert!(
                        (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{isa:?} f32: {g} vs {w}"
                    );
                }
                f32_runs.push((isa.min(IsaLevel::detect()), gotf));
            }
            // With FMA, the interior kernel computes each output's FMA chain in the
            // generic kernel's order at every width: AVX2 and AVX-512 bit-identical.
            if let [.., (IsaLevel::Avx2, a), (IsaLevel::Avx512, b)] = f32_runs.as_slice() {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(a), bits(b), "{xs:?} * {ws:?}");
            }
        }
    }
}
