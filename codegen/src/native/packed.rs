//! f32 GEMM against a *prepacked* right operand, for weights reused across runs.
//!
//! `matrixmultiply` packs both operands on every call; for the small-`m` products of
//! inference (`x[64,256] @ Wᵀ`) repacking the weights is a fifth of the time. Here the
//! right operand is packed once into panels of [`NR`] columns (for each `p`, `NR`
//! consecutive values, zero-padded), and an AVX-512 micro-kernel computes [`MR`]`×`[`NR`]
//! output tiles reading the left operand in place through its strides: 12 rows × 2 zmm
//! = 24 accumulators, per `p` two panel loads, 12 broadcasts and 24 FMAs.
//!
//! Measured on the 2-core AVX-512 VM, `64×256×256`, same process, alternating:
//! prepacked kernel 53–61 µs vs `matrixmultiply` 79–96 µs (packing once: ~25 µs).
//!
//! Used by the executor only when the caller vouches that the weights did not change
//! since they were packed (`Executable::run_in_place_versioned`); without AVX-512 the
//! caller keeps `matrixmultiply`. Each output element sums its products in `p` order
//! with FMA, like the library's kernel, but results may differ from it in the last bits.

// The micro-kernel is AVX-512 intrinsics on raw pointers: the one place in `native`
// besides the library calls where `unsafe` is needed; every block has a SAFETY comment.
#![allow(unsafe_code)]

use super::gemm::check_view;
use super::NativeError;

/// Rows of an output tile.
pub const MR: usize = 12;
/// Columns of an output tile (two 16-lane vectors).
pub const NR: usize = 32;

/// A right operand `[k, n]` packed into panels of [`NR`] columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedB {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

/// Whether this CPU runs the packed kernel: AVX-512F and DQ, as the AVX-512 engine
/// whose activations the epilogue uses (DQ's float logic).
pub fn available() -> bool {
    crate::kernel::engine::lanes::X16::new().is_some()
}

/// Packs `b` (`k × n`, element `(p, j)` at `b[p·rs + j·cs]`) into `out`, reusing its
/// storage.
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
    out.k = k;
    out.n = n;
    out.data.clear();
    out.data.resize(panels * k * NR, 0.0);
    let (rs, cs) = (rs.max(0) as usize, cs.max(0) as usize);
    for j in 0..panels {
        let cols = (n - j * NR).min(NR);
        for p in 0..k {
            let dst = &mut out.data[(j * k + p) * NR..][..cols];
            for (c, d) in dst.iter_mut().enumerate() {
                *d = b[p * rs + (j * NR + c) * cs];
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
/// same 16-lane functions as the AVX-512 engine (`kernel::engine::math`), so the
/// values are bit-identical to a separate bias + activation kernel.
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
    if !available() {
        return Err(NativeError::shape(OP, "needs AVX-512F and AVX-512DQ"));
    }
    let (rsa, csa) = (rsa.max(0) as usize, csa.max(0) as usize);
    #[cfg(target_arch = "x86_64")]
    for j in 0..n.div_ceil(NR) {
        let cols = (n - j * NR).min(NR);
        let panel = &b.data[j * k * NR..(j + 1) * k * NR];
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(MR);
            // SAFETY: AVX-512F/DQ are available (checked above). The tile reads `a` at
            // `(i + r)·rsa + p·csa` for r < rows, p < k: inside `a` by `check_view`
            // (i + r < m). It reads `panel[p·NR .. p·NR + NR]` for p < k: the panel has
            // k·NR elements. It writes `c[(i + r)·rsc + j·NR + col]` for col < cols
            // (masked stores): below (m-1)·rsc + n <= c.len(), checked above; and, with
            // a bias, `bias[j·NR + col]` for col < cols (masked loads): below n <=
            // bias.len(), checked above.
            unsafe {
                let (ap, cp) = (
                    a.as_ptr().add(i * rsa),
                    c.as_mut_ptr().add(i * rsc + j * NR),
                );
                let bp = bias.map_or(std::ptr::null(), |v| v.as_ptr().wrapping_add(j * NR));
                let args = (k, ap, rsa, csa, panel.as_ptr(), cp, rsc, cols, bp, act);
                // The row count and the vector width (one zmm when the panel has at
                // most 16 real columns, e.g. a 10-class output layer: half the FMAs)
                // are constants of each instance, so the accumulators stay in
                // registers.
                macro_rules! rows {
                    ($w:literal) => {
                        match rows {
                            12 => tile::<12, $w>(args),
                            11 => tile::<11, $w>(args),
                            10 => tile::<10, $w>(args),
                            9 => tile::<9, $w>(args),
                            8 => tile::<8, $w>(args),
                            7 => tile::<7, $w>(args),
                            6 => tile::<6, $w>(args),
                            5 => tile::<5, $w>(args),
                            4 => tile::<4, $w>(args),
                            3 => tile::<3, $w>(args),
                            2 => tile::<2, $w>(args),
                            _ => tile::<1, $w>(args),
                        }
                    };
                }
                if cols <= 16 {
                    rows!(1)
                } else {
                    rows!(2)
                }
            };
            i += rows;
        }
    }
    Ok(())
}

/// `(k, a, rsa, csa, panel, c, rsc, cols, bias, act)` of one tile (`bias` null or
/// the tile's first column's value).
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

/// One output tile of `R <= MR` rows and `cols <= 16·W` columns (`W` = 1 or 2 vectors).
///
/// # Safety
/// AVX-512F must be available; `a`, `panel` and `c` must address the elements described
/// in [`gemm`]'s SAFETY comment.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn tile<const R: usize, const W: usize>(
    (k, a, rsa, csa, panel, c, rsc, cols, bias, act): TileArgs,
) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    };
    let mut acc: [[__m512; W]; R] = [[_mm512_setzero_ps(); W]; R];
    for p in 0..k {
        let mut bv = [_mm512_setzero_ps(); W];
        for (w, b) in bv.iter_mut().enumerate() {
            // SAFETY: per the function's contract (w·16 < NR).
            *b = unsafe { _mm512_loadu_ps(panel.add(p * NR + w * 16)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: per the function's contract (r < R = rows).
            let ar = _mm512_set1_ps(unsafe { *a.add(r * rsa + p * csa) });
            for (acc_rw, b) in acc_r.iter_mut().zip(&bv) {
                *acc_rw = _mm512_fmadd_ps(ar, *b, *acc_rw);
            }
        }
    }
    // SAFETY: forwarded (the tile's elements of `c` and `bias`).
    unsafe { store_tile::<R, W>(&acc, c, rsc, cols, bias, act) };
}

/// Stores a finished tile: `act(acc + bias)` (masked to `cols` columns). Kept out of
/// line so the activation's temporaries do not crowd the accumulation loop's
/// registers.
///
/// # Safety
/// AVX-512F/DQ must be available; `c` (and `bias`, when not null) must address the
/// tile's elements as in [`gemm`]'s SAFETY comment.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
#[inline(never)]
unsafe fn store_tile<const R: usize, const W: usize>(
    acc: &[[std::arch::x86_64::__m512; W]; R],
    c: *mut f32,
    rsc: usize,
    cols: usize,
    bias: *const f32,
    act: Activation,
) {
    use crate::kernel::engine::lanes::{mask16 as lanes, X16};
    use crate::kernel::engine::{math, ops};
    // SAFETY: this function runs with AVX-512F/DQ (its target features).
    let l = unsafe { X16::assume() };
    use std::arch::x86_64::{
        _mm512_add_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_setzero_ps,
    };
    let mut bv = [_mm512_setzero_ps(); W];
    if !bias.is_null() {
        for (w, b) in bv.iter_mut().enumerate() {
            let m = lanes(cols.saturating_sub(w * 16));
            // SAFETY: per the function's contract; masked lanes are not read.
            *b = unsafe { _mm512_maskz_loadu_ps(m, bias.add(w * 16)) };
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (w, acc_rw) in acc_r.iter().enumerate() {
            let m = lanes(cols.saturating_sub(w * 16));
            // The kernel it replaces computes `z + bias` then the activation.
            let z = if bias.is_null() {
                *acc_rw
            } else {
                _mm512_add_ps(*acc_rw, bv[w])
            };
            let y = match act {
                Activation::None => z,
                Activation::Sigmoid => math::sigmoid(l, z),
                Activation::Tanh => math::tanh(l, z),
                Activation::Relu => ops::relu(l, z),
            };
            // SAFETY: per the function's contract; masked lanes are not written.
            unsafe { _mm512_mask_storeu_ps(c.add(r * rsc + w * 16), m, y) };
        }
    }
}
