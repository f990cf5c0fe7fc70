//! Softmax's backward along one axis ([`onde_ir::Op::SoftmaxBackward`]): `dx = y ⊙ (dy
//! − Σ dy ⊙ y)`, in one pass per line.
//!
//! The operands are contiguous and viewed as `[outer, n, inner]` (`n` the axis). Each
//! line's sum `s = Σ dy·y` is taken, then `y·(dy − s)` is written while the line is
//! still in L1: one read of each operand from memory and one write, where the same
//! gradient as ops is a row reduction and a broadcast kernel, each a pass over memory.
//!
//! Paths:
//! - f32 on AVX2 + FMA or AVX-512 ([`crate::CompileOptions::isa`] permitting): written
//!   once over [`Lanes`]. A contiguous line (`inner = 1`) runs along its vectors (the
//!   sum by FMAs on two accumulators, then reduced across lanes); with `inner > 1`,
//!   vectors run across `inner` columns at once, each lane one line.
//! - otherwise (f64, baseline x86-64, an ISA cap): the interpreter's definition itself
//!   ([`onde_runtime::softmax_backward_lines`]), the sum and each result in f64,
//!   rounded once.
//!
//! Numerics (f32 vectors): the sum reassociates over the lanes and rounds at each FMA,
//! then `dy − s` and the product round once each: a few ulps from the interpreter's
//! once-rounded value, as the two ops it replaces were.

// SIMD on raw pointers over checked slices: every block has a SAFETY comment.
#![allow(unsafe_code)]

use super::softmax::Lines;
use super::NativeError;
use crate::isa::IsaLevel;
use crate::kernel::engine::lanes::{width_entry, Lanes};
use crate::kernel::engine::Width;

/// Checks that `dy`, `y` and `out` hold the `outer · n · inner` elements of `lines`.
fn check(lens: [(&'static str, usize); 3], lines: Lines) -> Result<(), NativeError> {
    Ok(onde_runtime::check_lines("softmax_backward", lines, &lens)?)
}

/// `out = y ⊙ (dy − Σ dy ⊙ y)` along the middle axis of `lines` (f32), on the widest
/// vectors `isa` allows on this CPU; without them, the interpreter's definition. With
/// `scale ≠ 1` each result is then multiplied by `scale` (a second rounding, as a
/// separate multiply would).
///
/// # Errors
/// [`NativeError`] if an operand does not hold `outer · n · inner` elements.
pub fn softmax_backward_f32(
    isa: IsaLevel,
    dy: &[f32],
    y: &[f32],
    out: &mut [f32],
    lines: Lines,
    scale: f32,
) -> Result<(), NativeError> {
    check(
        [("dy", dy.len()), ("y", y.len()), ("out", out.len())],
        lines,
    )?;
    if y.is_empty() {
        return Ok(());
    }
    let (outer, n, inner) = lines;
    let args = (
        dy.as_ptr(),
        y.as_ptr(),
        out.as_mut_ptr(),
        outer,
        n,
        inner,
        scale,
    );
    match Width::for_level(isa) {
        // SAFETY: the width is one this CPU has (`for_level` caps by the detected
        // level); the three buffers hold `outer·n·inner` elements (checked above) and
        // `out` overlaps neither operand (an exclusive and two shared borrows).
        Some(width) => unsafe { lines_on(width, args) },
        None => {
            onde_runtime::softmax_backward_lines(dy, y, out, lines, f64::from, |v| v as f32)?;
            if scale != 1.0 {
                out.iter_mut().for_each(|v| *v *= scale);
            }
        }
    }
    Ok(())
}

/// `out = y ⊙ (dy − Σ dy ⊙ y)` along the middle axis of `lines` (f64): the
/// interpreter's definition ([`onde_runtime::softmax_backward_lines`]), then times
/// `scale` (when not 1) as in [`softmax_backward_f32`].
///
/// # Errors
/// [`NativeError`] if an operand does not hold `outer · n · inner` elements.
pub fn softmax_backward_f64(
    dy: &[f64],
    y: &[f64],
    out: &mut [f64],
    lines: Lines,
    scale: f64,
) -> Result<(), NativeError> {
    check(
        [("dy", dy.len()), ("y", y.len()), ("out", out.len())],
        lines,
    )?;
    onde_runtime::softmax_backward_lines(dy, y, out, lines, |v| v, |v| v)?;
    if scale != 1.0 {
        out.iter_mut().for_each(|v| *v *= scale);
    }
    Ok(())
}

/// `(dy, y, out, outer, n, inner, scale)` of a checked call.
type Args = (*const f32, *const f32, *mut f32, usize, usize, usize, f32);

width_entry! {
    /// [`lines`] on `width`'s vectors.
    ///
    /// # Safety
    /// As [`lines`], with `width` one this CPU has.
    unsafe fn lines_on(Args) => lines
}

/// Every line of the operands.
///
/// # Safety
/// `dy` and `y` are valid for reading and `out` for writing `outer·n·inner` floats,
/// `out` overlapping neither.
#[inline(always)]
unsafe fn lines<L: Lanes>(l: L, (dy, y, out, outer, n, inner, scale): Args) {
    // Multiplying by 1 changes no value (NaN payloads aside): no branch in the loops.
    let c = l.splat(scale);
    for o in 0..outer {
        let base = o * n * inner;
        if inner == 1 {
            // SAFETY: line `o` is `n` contiguous floats at `base` of each buffer.
            unsafe { contiguous_line(l, dy.add(base), y.add(base), out.add(base), n, c) };
        } else {
            let mut i = 0;
            while i < inner {
                let lanes = (inner - i).min(L::N);
                let at = base + i;
                // SAFETY: columns `[i, i + lanes)` of the `[n, inner]` block at `base`.
                unsafe { columns(l, (dy.add(at), y.add(at), out.add(at)), n, inner, lanes, c) };
                i += lanes;
            }
        }
    }
}

/// One line of `n` contiguous floats.
///
/// # Safety
/// `dy`, `y` readable and `out` writable for `n` floats, `out` overlapping neither.
#[inline(always)]
unsafe fn contiguous_line<L: Lanes>(
    l: L,
    dy: *const f32,
    y: *const f32,
    out: *mut f32,
    n: usize,
    c: L::V,
) {
    let full = n / L::N;
    let tail = n % L::N;
    let (mut s0, mut s1) = (l.zero(), l.zero());
    let mut v = 0;
    while v + 2 <= full {
        // SAFETY: vectors `v` and `v + 1` are inside the line (`v + 2 ≤ full`).
        unsafe {
            let (a, b) = (v * L::N, (v + 1) * L::N);
            s0 = l.fmadd(l.load(dy.add(a)), l.load(y.add(a)), s0);
            s1 = l.fmadd(l.load(dy.add(b)), l.load(y.add(b)), s1);
        }
        v += 2;
    }
    if v < full {
        // SAFETY: vector `v < full` is inside the line.
        unsafe {
            let a = v * L::N;
            s0 = l.fmadd(l.load(dy.add(a)), l.load(y.add(a)), s0);
        }
    }
    if tail > 0 {
        // SAFETY: the line's last `tail` floats; lanes past them load as 0.
        unsafe {
            let a = full * L::N;
            s1 = l.fmadd(
                l.load_first(dy.add(a), tail),
                l.load_first(y.add(a), tail),
                s1,
            );
        }
    }
    let s = l.splat(l.reduce_add(l.add(s0, s1)));
    for v in 0..full {
        // SAFETY: vector `v < full` of each line.
        unsafe {
            let a = v * L::N;
            let d = l.sub(l.load(dy.add(a)), s);
            l.store(out.add(a), l.mul(l.mul(l.load(y.add(a)), d), c));
        }
    }
    if tail > 0 {
        // SAFETY: the lines' last `tail` floats; lanes past them are neither read nor
        // written.
        unsafe {
            let a = full * L::N;
            let d = l.sub(l.load_first(dy.add(a), tail), s);
            let r = l.mul(l.mul(l.load_first(y.add(a), tail), d), c);
            l.store_first(out.add(a), tail, r);
        }
    }
}

/// `lanes ≤ N` lines side by side: column `c` of the `[n, inner]` blocks (row stride
/// `inner`) is lane `c`.
///
/// # Safety
/// For each `k < n`, `dy + k·inner`, `y + k·inner` readable and `out + k·inner`
/// writable for `lanes` floats, `out` overlapping neither; `1 ≤ lanes ≤ N`.
#[inline(always)]
unsafe fn columns<L: Lanes>(
    l: L,
    (dy, y, out): (*const f32, *const f32, *mut f32),
    n: usize,
    inner: usize,
    lanes: usize,
    c: L::V,
) {
    let load = |p: *const f32| {
        // SAFETY: the caller's rows, `lanes` floats (a whole vector only when `lanes ==
        // N`).
        unsafe {
            if lanes == L::N {
                l.load(p)
            } else {
                l.load_first(p, lanes)
            }
        }
    };
    let mut s = l.zero();
    for k in 0..n {
        // SAFETY: row `k < n` of each block.
        s = l.fmadd(
            load(unsafe { dy.add(k * inner) }),
            load(unsafe { y.add(k * inner) }),
            s,
        );
    }
    for k in 0..n {
        // SAFETY: row `k < n` of each block; `lanes` floats written.
        unsafe {
            let v = l.mul(load(y.add(k * inner)), l.sub(load(dy.add(k * inner)), s));
            let v = l.mul(v, c);
            let p = out.add(k * inner);
            if lanes == L::N {
                l.store(p, v);
            } else {
                l.store_first(p, lanes, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 31 + seed * 17) % 23) as f32 - 11.0) / 8.0)
            .collect()
    }

    /// Every layout (contiguous lines with and without a tail, columns with full and
    /// partial vectors) at every ISA level, against the f64 definition.
    #[test]
    fn matches_the_definition_at_every_level_and_layout() {
        for &(outer, n, inner) in &[
            (3, 100, 1),
            (2, 7, 1),
            (1, 33, 1),
            (2, 5, 19),
            (3, 4, 16),
            (1, 1, 1),
        ] {
            let numel = outer * n * inner;
            let dy = values(numel, 1);
            let y = values(numel, 2);
            let mut want = vec![0f64; numel];
            let (dy64, y64): (Vec<f64>, Vec<f64>) = (
                dy.iter().map(|&v| f64::from(v)).collect(),
                y.iter().map(|&v| f64::from(v)).collect(),
            );
            onde_runtime::softmax_backward_lines(
                &dy64,
                &y64,
                &mut want,
                (outer, n, inner),
                |v| v,
                |v| v,
            )
            .unwrap();
            for isa in [IsaLevel::Baseline, IsaLevel::Avx2, IsaLevel::Avx512] {
                let mut out = vec![f32::NAN; numel];
                softmax_backward_f32(isa, &dy, &y, &mut out, (outer, n, inner), 1.0).unwrap();
                for (i, (&got, &w)) in out.iter().zip(&want).enumerate() {
                    let tol = 1e-5 * (1.0 + w.abs()) * n as f64;
                    assert!(
                        (f64::from(got) - w).abs() <= tol,
                        "{isa:?} {outer}x{n}x{inner} [{i}]: {got} vs {w}"
                    );
                }
            }
        }
    }

    /// A folded factor rounds exactly as a separate multiply of the unscaled result.
    #[test]
    fn scale_is_a_separate_rounding() {
        let lines = (4, 37, 1);
        let (dy, y) = (values(148, 3), values(148, 4));
        for isa in [IsaLevel::Baseline, IsaLevel::Avx2, IsaLevel::Avx512] {
            let (mut plain, mut scaled) = (vec![0f32; 148], vec![0f32; 148]);
            softmax_backward_f32(isa, &dy, &y, &mut plain, lines, 1.0).unwrap();
            softmax_backward_f32(isa, &dy, &y, &mut scaled, lines, 0.3).unwrap();
            for (p, s) in plain.iter().zip(&scaled) {
                assert_eq!((p * 0.3).to_bits(), s.to_bits(), "{isa:?}");
            }
        }
    }

    #[test]
    fn wrong_lengths_are_typed_errors() {
        let (dy, y) = (vec![0f32; 6], vec![0f32; 5]);
        let mut out = vec![0f32; 6];
        let err =
            softmax_backward_f32(IsaLevel::Avx512, &dy, &y, &mut out, (2, 3, 1), 1.0).unwrap_err();
        assert!(err.to_string().contains("softmax_backward"), "{err}");
        assert!(err.to_string().contains('y'), "{err}");
    }
}
