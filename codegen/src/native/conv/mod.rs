//! Convolution (cross-correlation) for 1 and 2 spatial dimensions: im2col + GEMM for
//! dense groups, a direct kernel for depthwise and narrow groups.
//!
//! Both algorithms work on a 2-d geometry: a 1-d convolution is a 2-d one with a
//! height of 1 (input, kernel and output), stride, dilation 1 and no padding on that
//! axis. The output is produced in work items of `(batch, group, output channels)`;
//! each item owns a contiguous block of the output, so threads never share memory.

mod direct;
mod geometry;
mod im2col;

use super::matmul::{MatMut, MatRef, Real};
use super::{checked_numel, for_each_split, NativeError, PARALLEL_MIN_FMAS};
use crate::isa::IsaLevel;
use crate::kernel::engine::lanes::{Lanes, X16, X8};
use crate::kernel::engine::Width;
use direct::*;
use geometry::*;
use im2col::*;
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
