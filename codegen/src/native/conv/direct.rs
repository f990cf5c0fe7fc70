//! The direct kernel: each output row is `Σ_taps w · shifted input row`, with a
//! register-blocked interior (compiled for the baseline, AVX2 and AVX-512, the f32
//! stride-1 interior written once over the engine's vector widths) and checked edges.

use super::*;

/// One term of an output row: `w · x[start + o·s + off - pad]`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Tap<T> {
    pub(super) w: T,
    /// Index of the input row's first element in the group's input.
    pub(super) start: usize,
    /// Padded offset of the tap along the row: `kx · dilation`.
    pub(super) off: usize,
}

/// Direct kernel on one item, compiled for the best instruction set up to `cap`.
#[allow(unsafe_code)]
pub(super) fn direct_item<T: Real>(cap: IsaLevel, g: &Geom, x: &[T], w: &[T], it: Item<'_, T>) {
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
pub(super) fn direct_item_avx2<T: Real>(g: &Geom, x: &[T], w: &[T], it: Item<'_, T>) {
    direct_item_generic::<T, true, BLOCK_AVX2>(g, x, w, it);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) fn direct_item_avx512<T: Real>(g: &Geom, x: &[T], w: &[T], it: Item<'_, T>) {
    direct_item_generic::<T, true, BLOCK_AVX512>(g, x, w, it);
}

/// `acc + w·v`, fused when `FMA` (only instantiated where FMA is enabled).
#[inline(always)]
pub(super) fn madd<T: Real, const FMA: bool>(w: T, v: T, acc: T) -> T {
    if FMA {
        w.mul_add(v, acc)
    } else {
        acc + w * v
    }
}

#[inline(always)]
pub(super) fn direct_item_generic<T: Real, const FMA: bool, const BLOCK: usize>(
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
pub(super) fn direct_row<T: Real, const FMA: bool, const BLOCK: usize>(
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
pub(super) fn interior_f32<T: Real>(
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
pub(super) unsafe fn interior_f32_x16(
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
pub(super) unsafe fn interior_f32_x8(
    out: &mut [f32],
    accumulate: bool,
    w: &[f32],
    base: &[usize],
    x: &[f32],
) {
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
pub(super) unsafe fn interior_lanes<L: Lanes>(
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
