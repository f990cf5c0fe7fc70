//! f32 GEMM against a *prepacked* right operand, for weights reused across runs.
//!
//! `matrixmultiply` packs both operands on every call; for the small-`m` products of
//! inference (`x[64,256] @ Wᵀ`) repacking the weights is a fifth of the time. Here the
//! right operand is packed once into panels of [`NR`] columns (for each `p`, `NR`
//! consecutive values, zero-padded), and a micro-kernel written once over the engine's
//! vector widths (`Lanes`) computes output tiles reading the left operand in place
//! through its strides: with AVX-512, [`MR`]`×`[`NR`] tiles (12 rows × 2 zmm = 24
//! accumulators, per `p` two panel loads, 12 broadcasts and 24 FMAs); with AVX2, 6 rows
//! × 2 ymm (half a panel: 12 accumulators, 2 loads, 6 broadcasts, 12 FMAs).
//!
//! Measured on the 2-core AVX-512 VM, `64×256×256`, same process, alternating:
//! prepacked kernel 53–61 µs vs `matrixmultiply` 79–96 µs (packing once: ~25 µs).
//!
//! Used by the executor for products against weights: packed once per weights version
//! when the caller vouches they did not change (`Executable::run_in_place_versioned`),
//! or packed at every plain run for a transposed weight and a few rows (a training
//! step; `exec/prepacked.rs` says where); without AVX2 the library GEMM runs. Each output element sums its products in `p` order
//! with FMA, like the library's kernel, but results may differ from it in the last bits.

// The micro-kernel is SIMD on raw pointers: the one place in `native`
// besides the library calls where `unsafe` is needed; every block has a SAFETY comment.
#![allow(unsafe_code)]

use super::{check_view, transpose};
use crate::isa::IsaLevel;
use crate::kernel::engine::lanes::{Lanes, X16, X8};
use crate::kernel::engine::Width;
use crate::native::NativeError;

/// Rows of an output tile on 16 lanes (6 on 8 lanes).
pub const MR: usize = 12;
/// Columns of a packed panel: an output tile's on 16 lanes (two vectors), two tiles'
/// on 8 lanes.
pub const NR: usize = 32;

/// A right operand `[k, n]` packed into panels of [`NR`] columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedB {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

/// Whether this CPU runs the packed kernel: AVX2 + FMA (8 lanes) or AVX-512F/DQ (16
/// lanes), the engine's widths, whose activations the epilogue uses.
pub fn available() -> bool {
    Width::for_level(IsaLevel::Avx512).is_some()
}

/// Packs `b` (`k × n`, element `(p, j)` at `b[p·rs + j·cs]`) into `out`, reusing its
/// storage. Row-major `b` is copied a panel row at a time, `b` with contiguous columns
/// (a `Linear` weight `Wᵀ`) by 4 × 4 transposed blocks; other strides element by
/// element. A training step packs each weight once per step (after the update), so this
/// is on its hot path.
pub fn pack_b(
    b: &[f32],
    k: usize,
    n: usize,
    rs: isize,
    cs: isize,
    out: &mut PackedB,
) -> Result<(), NativeError> {
    check_view("packed gemm", "b", b.len(), &[k, n], &[rs, cs])?;
    let panels = n.div_ceil(NR);
    let len = panels
        .checked_mul(k)
        .and_then(|v| v.checked_mul(NR))
        .ok_or_else(|| {
            NativeError::shape("packed gemm", format!("a {k} × {n} panel overflows usize"))
        })?;
    out.k = k;
    out.n = n;
    // Every element is written below (the padding of a ragged last panel included).
    out.data.resize(len, 0.0);
    if k == 0 || n == 0 {
        return Ok(());
    }
    // Strides of extent-1 axes are never multiplied by a non-zero index.
    let rs = if k > 1 { rs.unsigned_abs() } else { 0 };
    let cs = if n > 1 { cs.unsigned_abs() } else { 0 };
    for (j, panel) in out.data.chunks_exact_mut(k * NR).enumerate() {
        let cols = (n - j * NR).min(NR);
        if cols < NR {
            panel.fill(0.0);
        }
        let first = j * NR * cs;
        if cs == 1 {
            for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
                dst[..cols].copy_from_slice(&b[first + p * rs..][..cols]);
            }
        } else if rs == 1 {
            let cols_view = &b[first..=first + transpose::last_col(k, cols, cs)];
            transpose::transpose_into(cols_view, k, cols, cs, panel, NR);
        } else {
            for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
                for (c, d) in dst[..cols].iter_mut().enumerate() {
                    *d = b[first + p * rs + c * cs];
                }
            }
        }
    }
    Ok(())
}

/// `c[m, n] = a[m, k] · B` with `a` read through strides `(rsa, csa)` and `c` row-major
/// with row stride `rsc`. Errors if views reach outside their slices or shapes
/// disagree; the caller checks [`available`] (without AVX-512 this returns an error).
#[allow(clippy::too_many_arguments)] // The shape of a GEMM call.
pub fn gemm(
    m: usize,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &PackedB,
    c: &mut [f32],
    rsc: usize,
) -> Result<(), NativeError> {
    gemm_epilogue(m, a, rsa, csa, b, c, rsc, None, Activation::None)
}

/// An activation applied to each output tile in registers by [`gemm_epilogue`]: the
/// same functions as the tile engine (`kernel::engine::math`), so the values are
/// bit-identical to a separate bias + activation kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// None (bias only, or nothing).
    None,
    /// `1/(1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `x` where `x > 0` or NaN, else `+0` (the kernels' relu).
    Relu,
}

/// [`gemm`] with an epilogue on each output tile while it is in registers:
/// `c = act(a·B + bias)`, `bias` one value per column (`n` long) when given.
#[allow(clippy::too_many_arguments)] // The shape of a GEMM call plus its epilogue.
pub fn gemm_epilogue(
    m: usize,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &PackedB,
    c: &mut [f32],
    rsc: usize,
    bias: Option<&[f32]>,
    act: Activation,
) -> Result<(), NativeError> {
    gemm_epilogue_capped(IsaLevel::Avx512, m, a, rsa, csa, b, c, rsc, bias, act)
}

/// [`gemm_epilogue`] on the widest vectors `isa` allows on this CPU (the executor's
/// [`crate::CompileOptions::isa`]). Every width computes the same bits: each output
/// element is the same FMA chain in `p` order, and the activations are the engine's.
#[allow(clippy::too_many_arguments)] // The shape of a GEMM call plus its epilogue.
pub fn gemm_epilogue_capped(
    isa: IsaLevel,
    m: usize,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &PackedB,
    c: &mut [f32],
    rsc: usize,
    bias: Option<&[f32]>,
    act: Activation,
) -> Result<(), NativeError> {
    const OP: &str = "packed gemm";
    if bias.is_some_and(|v| v.len() < b.n) {
        return Err(NativeError::shape(
            OP,
            format!(
                "bias of {} values for {} columns",
                bias.map_or(0, <[f32]>::len),
                b.n
            ),
        ));
    }
    let (k, n) = (b.k, b.n);
    check_view(OP, "a", a.len(), &[m, k], &[rsa, csa])?;
    if m > 0 && n > 0 && ((m - 1) * rsc + n > c.len() || rsc < n) {
        return Err(NativeError::shape(
            OP,
            format!(
                "output of {} elements for {m}×{n} with row stride {rsc}",
                c.len()
            ),
        ));
    }
    if b.data.len() != n.div_ceil(NR) * k * NR {
        return Err(NativeError::shape(OP, "packed operand is inconsistent"));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let Some(width) = Width::for_level(isa) else {
        return Err(NativeError::shape(OP, "needs AVX2 + FMA or AVX-512F/DQ"));
    };
    let (rsa, csa) = (rsa.max(0) as usize, csa.max(0) as usize);
    let bias = bias.map_or(std::ptr::null(), <[f32]>::as_ptr);
    let args = (m, a.as_ptr(), rsa, csa, b, c.as_mut_ptr(), rsc, bias, act);
    // SAFETY: `width` is one this CPU has (`Width::for_level` caps `isa` by the detected
    // level). The views were checked above: `a` covers `(i, p)` at `i·rsa + p·csa` for
    // i < m, p < k (`check_view`); `c` covers `(i, j)` at `i·rsc + j` for i < m, j < n
    // ((m-1)·rsc + n <= c.len()); `bias`, when not null, has at least n values; the
    // packed operand has n.div_ceil(NR)·k·NR values.
    unsafe {
        match width {
            Width::X16 => gemm_x16(args),
            Width::X8 => gemm_x8(args),
        }
    }
    Ok(())
}

/// `(m, a, rsa, csa, b, c, rsc, bias, act)` of a checked product (see the SAFETY
/// comment in [`gemm_epilogue_capped`]; `bias` null or `n` values).
type GemmArgs<'a> = (
    usize,
    *const f32,
    usize,
    usize,
    &'a PackedB,
    *mut f32,
    usize,
    *const f32,
    Activation,
);

/// `(k, a, rsa, csa, panel, c, rsc, cols, bias, act)` of one tile (`panel` and `bias`
/// at the tile's first column; `bias` may be null).
type TileArgs = (
    usize,
    *const f32,
    usize,
    usize,
    *const f32,
    *mut f32,
    usize,
    usize,
    *const f32,
    Activation,
);

/// The product on one vector width: output tiles of up to `mr` rows and `sub` columns
/// (16 lanes: 12 rows × 2 zmm, the whole 32-column panel; 8 lanes: 6 rows × 2 ymm, a
/// panel in two 16-column halves — 12 accumulators, 2 panel vectors and a broadcast
/// fill the 16 ymm registers). The tile functions are chosen per row count and vector
/// count, constants of each instance, so the accumulators stay in registers.
///
/// # Safety
/// As [`gemm_epilogue_capped`]'s SAFETY comment, on a CPU with `L`'s instruction set.
#[inline(always)]
unsafe fn gemm_lanes<L: Lanes>(
    (m, a, rsa, csa, b, c, rsc, bias, act): GemmArgs<'_>,
    mr: usize,
    tile: impl Fn(usize, usize, TileArgs),
) {
    let (k, n) = (b.k, b.n);
    let sub = (2 * L::N).min(NR);
    for j in 0..n.div_ceil(NR) {
        let panel_cols = (n - j * NR).min(NR);
        let panel = b.data[j * k * NR..(j + 1) * k * NR].as_ptr();
        for s in (0..panel_cols).step_by(sub) {
            let cols = (panel_cols - s).min(sub);
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(mr);
                // The tile reads `a` at `(i + r)·rsa + p·csa` (r < rows, p < k), the
                // panel at `p·NR + s + col` and writes `c` at `(i + r)·rsc + j·NR + s +
                // col` (col < cols), reading `bias[j·NR + s + col]`: all inside the
                // views checked by the caller (i + r < m, j·NR + s + col < n).
                let args = (
                    k,
                    a.wrapping_add(i * rsa),
                    rsa,
                    csa,
                    panel.wrapping_add(s),
                    c.wrapping_add(i * rsc + j * NR + s),
                    rsc,
                    cols,
                    if bias.is_null() {
                        bias
                    } else {
                        bias.wrapping_add(j * NR + s)
                    },
                    act,
                );
                tile(rows, cols.div_ceil(L::N), args);
                i += rows;
            }
        }
    }
}

/// A width's out-of-line tile store: `(acc, c, rsc, cols, bias, act)`.
type StoreFn<L, const R: usize, const W: usize> =
    unsafe fn(&[[<L as Lanes>::V; W]; R], *mut f32, usize, usize, *const f32, Activation);

/// One output tile of `R` rows and `cols <= N·W` columns (`W` = 1 or 2 vectors):
/// `k` FMAs per element in `p` order, then `store` (the width's out-of-line epilogue).
///
/// # Safety
/// `a`, `panel` and `c` (and `bias`) address the tile's elements as described in
/// [`gemm_lanes`]; the CPU has `L`'s instruction set.
#[inline(always)]
unsafe fn tile_lanes<L: Lanes, const R: usize, const W: usize>(
    l: L,
    (k, a, rsa, csa, panel, c, rsc, cols, bias, act): TileArgs,
    store: StoreFn<L, R, W>,
) {
    let mut acc = [[l.zero(); W]; R];
    for p in 0..k {
        let mut bv = [l.zero(); W];
        for (w, b) in bv.iter_mut().enumerate() {
            // SAFETY: per the function's contract (w·N < cols rounded up to a vector,
            // inside the zero-padded panel row of NR values).
            *b = unsafe { l.load(panel.add(p * NR + w * L::N)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: per the function's contract (r < R = rows).
            let ar = l.splat(unsafe { *a.add(r * rsa + p * csa) });
            for (acc_rw, b) in acc_r.iter_mut().zip(&bv) {
                *acc_rw = l.fmadd(ar, *b, *acc_rw);
            }
        }
    }
    // SAFETY: forwarded (the tile's elements of `c` and `bias`).
    unsafe { store(&acc, c, rsc, cols, bias, act) };
}

/// Stores a finished tile: `act(acc + bias)`, the lanes past `cols` not written.
///
/// # Safety
/// `c` (and `bias`, when not null) address the tile's elements as in [`gemm_lanes`];
/// the CPU has `L`'s instruction set.
#[inline(always)]
unsafe fn store_lanes<L: Lanes, const R: usize, const W: usize>(
    l: L,
    acc: &[[L::V; W]; R],
    c: *mut f32,
    rsc: usize,
    cols: usize,
    bias: *const f32,
    act: Activation,
) {
    use crate::kernel::engine::{math, ops};
    let mut bv = [l.zero(); W];
    if !bias.is_null() {
        for (w, b) in bv.iter_mut().enumerate() {
            // SAFETY: per the function's contract; lanes past `cols` are not read.
            *b = unsafe { l.load_first(bias.add(w * L::N), cols.saturating_sub(w * L::N)) };
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (w, acc_rw) in acc_r.iter().enumerate() {
            // The kernel it replaces computes `z + bias` then the activation.
            let z = if bias.is_null() {
                *acc_rw
            } else {
                l.add(*acc_rw, bv[w])
            };
            let y = match act {
                Activation::None => z,
                Activation::Sigmoid => math::sigmoid(l, z),
                Activation::Tanh => math::tanh(l, z),
                Activation::Relu => ops::relu(l, z),
            };
            let dst = c.wrapping_add(r * rsc + w * L::N);
            let n = cols.saturating_sub(w * L::N);
            // SAFETY: per the function's contract; lanes past `cols` are not written.
            unsafe {
                if n >= L::N {
                    l.store(dst, y);
                } else {
                    l.store_first(dst, n, y);
                }
            }
        }
    }
}

/// The per-width entry points: each instantiates the generic kernels above under its
/// `#[target_feature]` (the tile store out of line, so the activation's temporaries do
/// not crowd the accumulation loop's registers).
macro_rules! width_kernels {
    ($gemm:ident, $tile:ident, $store:ident, $feat:literal, $L:ident, $mr:literal, [$($r:literal)*]) => {
        /// The product on this width (see [`gemm_lanes`]).
        ///
        /// # Safety
        /// As [`gemm_lanes`].
        #[target_feature(enable = $feat)]
        unsafe fn $gemm(args: GemmArgs<'_>) {
            let tile = |rows: usize, w: usize, t: TileArgs| {
                macro_rules! rows {
                    ($w:literal) => {
                        match rows {
                            $($r => unsafe { $tile::<$r, $w>(t) },)*
                            _ => unreachable!("tile rows {rows} > {}", $mr),
                        }
                    };
                }
                if w == 1 {
                    rows!(1)
                } else {
                    rows!(2)
                }
            };
            // SAFETY: forwarded; the tile closure's calls satisfy `$tile`'s contract
            // (`gemm_lanes` passes tiles of at most `$mr` rows and 1 or 2 vectors).
            unsafe { gemm_lanes::<$L>(args, $mr, tile) }
        }

        /// One tile on this width.
        ///
        /// # Safety
        /// As [`tile_lanes`].
        #[target_feature(enable = $feat)]
        unsafe fn $tile<const R: usize, const W: usize>(t: TileArgs) {
            // SAFETY: this function runs with the width's instruction set (its
            // caller's contract); the rest is forwarded.
            unsafe { tile_lanes::<$L, R, W>($L::assume(), t, $store::<R, W>) }
        }

        /// A finished tile's store on this width.
        ///
        /// # Safety
        /// As [`store_lanes`].
        #[target_feature(enable = $feat)]
        #[inline(never)]
        unsafe fn $store<const R: usize, const W: usize>(
            acc: &[[<$L as Lanes>::V; W]; R],
            c: *mut f32,
            rsc: usize,
            cols: usize,
            bias: *const f32,
            act: Activation,
        ) {
            // SAFETY: as above.
            unsafe { store_lanes::<$L, R, W>($L::assume(), acc, c, rsc, cols, bias, act) }
        }
    };
}

width_kernels!(gemm_x16, tile_x16, store_x16, "avx512f,avx512dq", X16, 12, [12 11 10 9 8 7 6 5 4 3 2 1]);
width_kernels!(gemm_x8, tile_x8, store_x8, "avx2,fma", X8, 6, [6 5 4 3 2 1]);
