//! Softmax along one axis ([`onde_ir::Op::Softmax`]) in one pass per line.
//!
//! The operand is contiguous and viewed as `[outer, n, inner]` (`n` the axis). Each
//! line takes the maximum `m`, then `e = exp(x - m)` is written to the output while
//! its sum accumulates, then the line (still in L1 for the lengths of these models) is
//! scaled by `1/Σe`: one read of the input and one write of the output, where the same
//! softmax as five IR ops costs four passes over memory, a Cranelift `fmax` chain (~8
//! instructions per 4 lanes) and a division per element (W5's `[32, 100, 100]` scores:
//! ~465 µs as ops).
//!
//! The operand may be read times a scalar factor ([`softmax_scaled_f32`]): attention's
//! `softmax(q·kᵀ·c)` with `c` folded into the step (`plan::scaled_softmax`), each
//! element `x·c` rounded as the separate multiply would round it.
//!
//! Paths:
//! - f32 on AVX2 + FMA or AVX-512 (the engine's widths, [`crate::CompileOptions::isa`]
//!   permitting): written once over [`Lanes`]. Contiguous lines (`inner = 1`) run
//!   along their vectors four lines at a time (`contiguous_lines`: one line alone left
//!   the core waiting on its chain of maximum, exponentials and sum; `exp` the
//!   engine's, i.e. `crate::math`'s polynomial); with
//!   `inner > 1`, vectors run across `inner` columns at once, each lane one line.
//!   The maximum is MAXPS, which may drop a NaN; the NaN then reaches the sum
//!   through its own exponential, so the line is NaN all the same.
//! - otherwise (f64, baseline x86-64, an ISA cap): the interpreter's definition itself
//!   ([`onde_runtime::softmax_lines`]), each line's exponentials and sum in f64,
//!   rounded once.
//!
//! Numerics: like PyTorch's CPU kernel, the line is multiplied by the reciprocal of the
//! sum (one division per line, ≤ 1.5 ulp from `e / Σe`); a line holding NaN or `+inf`,
//! or only `-inf`, is NaN (`x - m` is NaN there), as in PyTorch. The f32 sum
//! reassociates over the vector lanes, as reductions do at every width.

// SIMD on raw pointers over checked slices: every block has a SAFETY comment.
#![allow(unsafe_code)]

use super::NativeError;
use crate::isa::IsaLevel;
use crate::kernel::engine::lanes::{width_entry, Lanes};
use crate::kernel::engine::{math, Width};

/// A softmax operand's lines: `(outer, n, inner)`, the operand viewed as
/// `[outer, n, inner]` with `n` the normalised axis.
pub type Lines = (usize, usize, usize);

/// Checks that `x` and `out` hold the `outer · n · inner` elements of `lines`.
fn check(len_x: usize, len_out: usize, lines: Lines) -> Result<(), NativeError> {
    Ok(onde_runtime::check_lines(
        "softmax",
        lines,
        &[("x", len_x), ("out", len_out)],
    )?)
}

/// `out = softmax(x)` along the middle axis of `lines` (f32), on the widest vectors
/// `isa` allows on this CPU; without them, the interpreter's definition
/// ([`onde_runtime::softmax_lines`]) with `scratch` (grown to `n` once and reused;
/// the vector paths never touch it, so `&mut Vec::new()` costs nothing there).
///
/// # Errors
/// [`NativeError`] if `x` or `out` does not hold `outer · n · inner` elements.
pub fn softmax_f32(
    isa: IsaLevel,
    x: &[f32],
    out: &mut [f32],
    lines: Lines,
    scratch: &mut Vec<f64>,
) -> Result<(), NativeError> {
    softmax_scaled_f32(isa, x, 1.0, out, lines, scratch)
}

/// `out = softmax(x · scale)` (f32): [`softmax_f32`] of the operand multiplied by
/// `scale` as it is read — each product rounded to f32 as a separate multiply would,
/// so the bits equal that multiply then [`softmax_f32`] (attention's `softmax(q·kᵀ·c)`
/// with the `c` folded in, `plan::scaled_softmax`).
///
/// # Errors
/// As [`softmax_f32`].
pub fn softmax_scaled_f32(
    isa: IsaLevel,
    x: &[f32],
    scale: f32,
    out: &mut [f32],
    lines: Lines,
    scratch: &mut Vec<f64>,
) -> Result<(), NativeError> {
    check(x.len(), out.len(), lines)?;
    if x.is_empty() {
        return Ok(());
    }
    let (outer, n, inner) = lines;
    let args = (x.as_ptr(), out.as_mut_ptr(), outer, n, inner, scale);
    match Width::for_level(isa) {
        // SAFETY: the width is one this CPU has (`for_level` caps by the detected
        // level); `x` and `out` hold `outer·n·inner` elements (checked above) and are
        // distinct (a shared and an exclusive borrow).
        Some(width) => unsafe { lines_on(width, args) },
        None => onde_runtime::softmax_lines(
            x,
            out,
            lines,
            scratch,
            move |v| f64::from(v * scale),
            |v| v as f32,
        )
        .map_err(NativeError::from)?,
    }
    Ok(())
}

/// `out = softmax(x)` along the middle axis of `lines` (f64): the interpreter's
/// definition ([`onde_runtime::softmax_lines`]), with `scratch` as in [`softmax_f32`].
///
/// # Errors
/// [`NativeError`] if `x` or `out` does not hold `outer · n · inner` elements.
pub fn softmax_f64(
    x: &[f64],
    out: &mut [f64],
    lines: Lines,
    scratch: &mut Vec<f64>,
) -> Result<(), NativeError> {
    softmax_scaled_f64(x, 1.0, out, lines, scratch)
}

/// `out = softmax(x · scale)` (f64), as [`softmax_scaled_f32`].
///
/// # Errors
/// As [`softmax_f64`].
pub fn softmax_scaled_f64(
    x: &[f64],
    scale: f64,
    out: &mut [f64],
    lines: Lines,
    scratch: &mut Vec<f64>,
) -> Result<(), NativeError> {
    check(x.len(), out.len(), lines)?;
    onde_runtime::softmax_lines(x, out, lines, scratch, move |v| v * scale, |v| v)?;
    Ok(())
}

/// `(x, out, outer, n, inner, scale)` of a checked call.
type Args = (*const f32, *mut f32, usize, usize, usize, f32);

width_entry! {
    /// [`lines`] on `width`'s vectors.
    ///
    /// # Safety
    /// As [`lines`], with `width` one this CPU has.
    unsafe fn lines_on(Args) => lines
}

/// Lines taken side by side by [`contiguous_lines`].
const GROUP: usize = 4;

/// Every line of the operand.
///
/// # Safety
/// `x` is valid for reading and `out` for writing `outer·n·inner` floats, and they do
/// not overlap.
#[inline(always)]
unsafe fn lines<L: Lanes>(l: L, (x, out, outer, n, inner, scale): Args) {
    // The operand is read as `x · scale` (one rounding, as a separate multiply); a
    // factor of 1 changes no value (NaN payloads aside), so no branch in the loops.
    let sc = l.splat(scale);
    if inner == 1 {
        // Line `o` is `n` contiguous floats at `o·n` of each buffer.
        let mut o = 0;
        while o + GROUP <= outer {
            // SAFETY: lines `o .. o + GROUP` are inside both buffers (`o + GROUP ≤ outer`).
            unsafe { contiguous_lines::<L, GROUP>(l, x.add(o * n), out.add(o * n), n, sc) };
            o += GROUP;
        }
        while o < outer {
            // SAFETY: line `o < outer`.
            unsafe { contiguous_lines::<L, 1>(l, x.add(o * n), out.add(o * n), n, sc) };
            o += 1;
        }
        return;
    }
    for o in 0..outer {
        let base = o * n * inner;
        let mut i = 0;
        while i < inner {
            let lanes = (inner - i).min(L::N);
            // SAFETY: columns `[i, i + lanes)` of the `[n, inner]` block at `base`.
            unsafe { columns(l, x.add(base + i), out.add(base + i), n, inner, lanes, sc) };
            i += lanes;
        }
    }
}

/// `G` consecutive lines of `n` contiguous floats, taken side by side: each step below
/// runs on all `G` lines before the next, so that one line's dependency chain (its
/// maximum folded across lanes, then its exponentials, then its sum and reciprocal)
/// overlaps the others'. One line alone left the core waiting on that chain. Each
/// line's arithmetic is the same whatever `G`. Each element is read as `x·sc`.
///
/// # Safety
/// `x` readable and `out` writable for `G·n` floats, either not overlapping or the
/// same (in place: each element is read before its own result is written); `n ≥ 1`.
// `g` indexes each line's accumulators and its offset together.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
pub(crate) unsafe fn contiguous_lines<L: Lanes, const G: usize>(
    l: L,
    x: *const f32,
    out: *mut f32,
    n: usize,
    sc: L::V,
) {
    let full = n / L::N;
    let tail = n % L::N;
    // Offset of vector `v` of line `g`.
    let at = |g: usize, v: usize| g * n + v * L::N;
    let ninf = l.splat(f32::NEG_INFINITY);
    // The maximum, on two accumulators per line, with MAXPS: a NaN may be dropped
    // here, but then `exp(NaN - m)` makes the sum, hence the whole line, NaN anyway.
    let (mut m0, mut m1) = ([ninf; G], [ninf; G]);
    let mut v = 0;
    while v + 2 <= full {
        for g in 0..G {
            // SAFETY: vectors `v` and `v + 1` of line `g` (`v + 2 ≤ full`, `g < G`).
            unsafe {
                m0[g] = l.max_raw(l.mul(l.load(x.add(at(g, v))), sc), m0[g]);
                m1[g] = l.max_raw(l.mul(l.load(x.add(at(g, v + 1))), sc), m1[g]);
            }
        }
        v += 2;
    }
    if v < full {
        for g in 0..G {
            // SAFETY: vector `v < full` of line `g`.
            m0[g] = l.max_raw(l.mul(unsafe { l.load(x.add(at(g, v))) }, sc), m0[g]);
        }
    }
    if tail > 0 {
        for g in 0..G {
            // SAFETY: the last `tail` floats of line `g`; lanes past them are not read.
            let t = l.mul(unsafe { l.load_first(x.add(at(g, full)), tail) }, sc);
            m1[g] = l.max_raw(l.blend(l.first(tail), ninf, t), m1[g]);
        }
    }
    // (Loops rather than `std::array::from_fn`: its closure was not always inlined
    // into the vector code, which then went through memory.)
    let mut mv = m0;
    for (m, b) in mv.iter_mut().zip(m1) {
        *m = l.all_max_raw(l.max_raw(*m, b));
    }
    // The exponentials, stored, and their sums.
    let (mut s0, mut s1) = ([l.zero(); G], [l.zero(); G]);
    let mut v = 0;
    while v + 2 <= full {
        for g in 0..G {
            // SAFETY: as in the first loop, for reading `x` and writing `out`.
            unsafe {
                let a = math::exp(l, l.sub(l.mul(l.load(x.add(at(g, v))), sc), mv[g]));
                let b = math::exp(l, l.sub(l.mul(l.load(x.add(at(g, v + 1))), sc), mv[g]));
                l.store(out.add(at(g, v)), a);
                l.store(out.add(at(g, v + 1)), b);
                s0[g] = l.add(s0[g], a);
                s1[g] = l.add(s1[g], b);
            }
        }
        v += 2;
    }
    if v < full {
        for g in 0..G {
            // SAFETY: vector `v < full` of line `g`.
            unsafe {
                let a = math::exp(l, l.sub(l.mul(l.load(x.add(at(g, v))), sc), mv[g]));
                l.store(out.add(at(g, v)), a);
                s0[g] = l.add(s0[g], a);
            }
        }
    }
    if tail > 0 {
        for g in 0..G {
            // SAFETY: the last `tail` floats of line `g`; lanes past them are neither
            // read nor written.
            unsafe {
                let t = l.mul(l.load_first(x.add(at(g, full)), tail), sc);
                let e = math::exp(l, l.sub(t, mv[g]));
                l.store_first(out.add(at(g, full)), tail, e);
                s1[g] = l.add(s1[g], l.blend(l.first(tail), l.zero(), e));
            }
        }
    }
    let mut r = s0;
    for (r, b) in r.iter_mut().zip(s1) {
        *r = l.splat(1.0 / l.reduce_add(l.add(*r, b)));
    }
    for v in 0..full {
        for g in 0..G {
            // SAFETY: vector `v < full` of output line `g`, written above.
            unsafe {
                let p = out.add(at(g, v));
                l.store(p, l.mul(l.load(p), r[g]));
            }
        }
    }
    if tail > 0 {
        for g in 0..G {
            // SAFETY: the last `tail` floats of output line `g`.
            unsafe {
                let p = out.add(at(g, full));
                l.store_first(p, tail, l.mul(l.load_first(p, tail), r[g]));
            }
        }
    }
}

/// `lanes ≤ N` lines side by side: column `c` of the `[n, inner]` block at `x` (row
/// stride `inner`) is lane `c`.
///
/// # Safety
/// For each `k < n`, `x + k·inner` readable and `out + k·inner` writable for `lanes`
/// floats, not overlapping; `1 ≤ lanes ≤ N`.
#[inline(always)]
unsafe fn columns<L: Lanes>(
    l: L,
    x: *const f32,
    out: *mut f32,
    n: usize,
    inner: usize,
    lanes: usize,
    sc: L::V,
) {
    // MAXPS may drop a NaN, which then makes its line's sum NaN (as in
    // `contiguous_lines`).
    let mut m = l.splat(f32::NEG_INFINITY);
    for k in 0..n {
        // SAFETY: row `k < n` of the block, `lanes` floats.
        m = l.max_raw(
            l.mul(unsafe { load_some(l, x.add(k * inner), lanes) }, sc),
            m,
        );
    }
    let mut s = l.zero();
    for k in 0..n {
        // SAFETY: row `k < n` of each block, `lanes` floats.
        unsafe {
            let e = math::exp(
                l,
                l.sub(l.mul(load_some(l, x.add(k * inner), lanes), sc), m),
            );
            store_some(l, out.add(k * inner), lanes, e);
            s = l.add(s, e);
        }
    }
    let r = l.div(l.splat(1.0), s);
    for k in 0..n {
        // SAFETY: row `k < n` of the output block, written above.
        unsafe {
            let p = out.add(k * inner);
            store_some(l, p, lanes, l.mul(load_some(l, p, lanes), r));
        }
    }
}

/// The first `lanes ≤ N` floats at `p` (the other lanes 0).
///
/// # Safety
/// `p` readable for `lanes` floats.
#[inline(always)]
unsafe fn load_some<L: Lanes>(l: L, p: *const f32, lanes: usize) -> L::V {
    // SAFETY: the caller's contract (a whole vector only when `lanes == N`).
    unsafe {
        if lanes == L::N {
            l.load(p)
        } else {
            l.load_first(p, lanes)
        }
    }
}

/// The first `lanes ≤ N` lanes of `v` to `p`.
///
/// # Safety
/// `p` writable for `lanes` floats.
#[inline(always)]
unsafe fn store_some<L: Lanes>(l: L, p: *mut f32, lanes: usize, v: L::V) {
    // SAFETY: the caller's contract (a whole vector only when `lanes == N`).
    unsafe {
        if lanes == L::N {
            l.store(p, v)
        } else {
            l.store_first(p, lanes, v)
        }
    }
}
