//! Executing a [`Program`]: the loop nest over rows, tiles within a row, and the
//! reduction.

use super::{ops, Program, TILE};
use onde_ir::ReduceKind;
use std::arch::x86_64::*;
use std::cell::RefCell;

/// A 64-byte aligned block of 16 floats (one vector).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([f32; 16]);

const BLOCKS_PER_ROW: usize = TILE / 16;

/// Per-thread working memory of the programs run on this thread: scratch rows,
/// registers, access pointers, loop indices. Grown, never shrunk: no allocation per
/// run once the largest program has run on the thread.
struct Scratch {
    rows: Vec<Block>,
    regs: Vec<*mut f32>,
    bases: Vec<*mut u8>,
    ptrs: Vec<*mut u8>,
    idx: Vec<usize>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            rows: Vec::new(),
            regs: Vec::new(),
            bases: Vec::new(),
            ptrs: Vec::new(),
            idx: Vec::new(),
        })
    };
}

fn identity(kind: ReduceKind) -> f32 {
    match kind {
        ReduceKind::Sum => 0.0,
        ReduceKind::Prod => 1.0,
        ReduceKind::Max => f32::NEG_INFINITY,
        ReduceKind::Min => f32::INFINITY,
    }
}

/// `acc ⊕ v` on the lanes of `mask`.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn combine(kind: ReduceKind, acc: __m512, v: __m512, mask: __mmask16) -> __m512 {
    let r = match kind {
        ReduceKind::Sum => _mm512_add_ps(acc, v),
        ReduceKind::Prod => _mm512_mul_ps(acc, v),
        ReduceKind::Max => ops::fmax(acc, v),
        ReduceKind::Min => ops::fmin(acc, v),
    };
    _mm512_mask_blend_ps(mask, acc, r)
}

/// The 16 lanes folded into one value (NaN-propagating for max/min).
#[target_feature(enable = "avx512f,avx512dq")]
fn fold(kind: ReduceKind, acc: __m512) -> f32 {
    let mut lanes = [0f32; 16];
    // SAFETY: `lanes` holds 16 floats.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc) };
    lanes.iter().skip(1).fold(lanes[0], |a, &v| match kind {
        ReduceKind::Sum => a + v,
        ReduceKind::Prod => a * v,
        ReduceKind::Max | ReduceKind::Min if a.is_nan() || v.is_nan() => f32::NAN,
        ReduceKind::Max => {
            if a == v {
                f32::from_bits(a.to_bits() & v.to_bits())
            } else {
                a.max(v)
            }
        }
        ReduceKind::Min => {
            if a == v {
                f32::from_bits(a.to_bits() | v.to_bits())
            } else {
                a.min(v)
            }
        }
    })
}

/// The mask of lanes `[0, n)` of a 16-lane vector (all of them for `n >= 16`).
pub(crate) fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

impl Program {
    /// Computes `[lo, hi)` of the outermost normalised axis, like the Cranelift
    /// kernel of the same [`crate::kernel::Kernel`]; a full reduction writes its
    /// (partial) result to `partial` when it is not null, else to its buffer.
    ///
    /// # Safety
    /// `table` must be the executor's buffer table, every buffer the kernel accesses
    /// live and of its planned size (what the Cranelift kernel's call requires), `[lo,
    /// hi)` within the outermost axis, and `partial` null or valid for an f32 write.
    /// The CPU must support AVX-512F/DQ (checked by [`super::compile`]).
    pub unsafe fn call(&self, table: *const *mut u8, lo: usize, hi: usize, partial: *mut u8) {
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            let need = self.nslots * BLOCKS_PER_ROW;
            if s.rows.len() < need {
                s.rows.resize(need, Block([0.0; 16]));
            }
            s.regs.clear();
            s.regs.resize(self.nregs(), std::ptr::null_mut());
            s.bases.clear();
            s.ptrs.clear();
            s.idx.clear();
            s.idx.resize(self.nest.axes.len(), 0);
            let rows = s.rows.as_mut_ptr().cast::<f32>();
            // SAFETY: forwarded from the caller; the scratch holds `nslots` rows.
            unsafe { self.call_with(table, lo, hi, partial, rows, s) }
        })
    }

    /// [`Program::call`] with the scratch rows at `scratch`.
    ///
    /// # Safety
    /// As [`Program::call`], and `scratch` holds `nslots · TILE` writable floats used
    /// by no one else during the call; `w.regs` has `nregs` entries, `w.idx` one per
    /// axis, `w.bases` and `w.ptrs` are empty.
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn call_with(
        &self,
        table: *const *mut u8,
        lo: usize,
        hi: usize,
        partial: *mut u8,
        scratch: *mut f32,
        w: &mut Scratch,
    ) {
        let nl = self.nloads;
        let regs = &mut w.regs;
        for (s, r) in regs[nl..].iter_mut().enumerate() {
            // SAFETY: row `s` of the scratch (`nslots` rows of TILE floats).
            *r = unsafe { scratch.add(s * TILE) };
        }
        for &(r, bits) in &self.consts {
            let v = _mm512_castsi512_ps(_mm512_set1_epi32(bits as i32));
            for j in 0..BLOCKS_PER_ROW {
                // SAFETY: a scratch row of TILE floats.
                unsafe { _mm512_storeu_ps(regs[r].add(j * 16), v) };
            }
        }
        // Base address of every access.
        let bases = &mut w.bases;
        bases.extend(
            self.accesses
                .iter()
                // SAFETY: the table has an entry per buffer; offsets stay inside it.
                .map(|&(buf, off)| unsafe { (*table.add(buf)).offset(off) }),
        );
        let axes = &self.nest.axes;
        let n = axes.len();
        let inner = &axes[n - 1];
        let red = self.reduction;
        let full_reduction = red.is_some() && self.nest.kept == 0;
        let ident = red.map_or(0.0, |(kind, _, _)| identity(kind));
        let mut acc = _mm512_set1_ps(ident);
        let ptrs = &mut w.ptrs;
        ptrs.extend_from_slice(bases);
        if n == 1 {
            // SAFETY: the caller's contract, `ptrs` at the start of the only row.
            unsafe { self.row(regs, ptrs, lo, hi, &mut acc) };
        } else if lo < hi {
            let idx = &mut w.idx[..n - 1];
            idx[0] = lo;
            let kept = self.nest.kept;
            loop {
                for (j, p) in ptrs.iter_mut().enumerate() {
                    let off: i64 = (0..n - 1).map(|a| idx[a] as i64 * axes[a].strides[j]).sum();
                    // SAFETY: an element of the access's buffer (the planned strides).
                    *p = unsafe { bases[j].offset(off as isize) };
                }
                let group = red.is_some() && !full_reduction;
                if group && idx[kept..].iter().all(|&i| i == 0) {
                    acc = _mm512_set1_ps(ident);
                }
                // SAFETY: as above, for this row.
                unsafe { self.row(regs, ptrs, 0, inner.extent, &mut acc) };
                if group
                    && idx[kept..]
                        .iter()
                        .zip(&axes[kept..n - 1])
                        .all(|(&i, a)| i + 1 == a.extent)
                {
                    if let Some((kind, _, acc_j)) = red {
                        // SAFETY: the reduced store's element for this kept index.
                        unsafe { ptrs[acc_j].cast::<f32>().write_unaligned(fold(kind, acc)) };
                    }
                }
                // Next row.
                let mut a = n - 2;
                loop {
                    idx[a] += 1;
                    let lim = if a == 0 { hi } else { axes[a].extent };
                    if idx[a] < lim {
                        break;
                    }
                    if a == 0 {
                        break;
                    }
                    idx[a] = 0;
                    a -= 1;
                }
                if idx[0] >= hi {
                    break;
                }
            }
        }
        if full_reduction {
            if let Some((kind, _, acc_j)) = red {
                let v = fold(kind, acc);
                let dst = if partial.is_null() {
                    bases[acc_j]
                } else {
                    partial
                };
                // SAFETY: the caller's partial slot, or the reduction's own buffer.
                unsafe { dst.cast::<f32>().write_unaligned(v) };
            }
        }
    }

    /// Elements `[from, to)` of the innermost axis, for the row whose first element
    /// (index 0) of each access is at `ptrs`.
    ///
    /// # Safety
    /// Each `ptrs[j]` points at the row's element 0 of access `j`, with elements
    /// `[from, to)` of a contiguous access (or element 0 of a broadcast one) inside its
    /// buffer; `regs` holds the program's registers with scratch rows of `TILE` floats.
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn row(
        &self,
        regs: &mut [*mut f32],
        ptrs: &[*mut u8],
        from: usize,
        to: usize,
        acc: &mut __m512,
    ) {
        let nl = self.nloads;
        // Broadcast loads: one value for the whole row, staged once.
        for j in 0..nl {
            if self.bcast[j] {
                // SAFETY: the row's element of the load (stride 0 along the row).
                let v = _mm512_set1_ps(unsafe { ptrs[j].cast::<f32>().read_unaligned() });
                let row = regs[nl + j];
                for b in 0..BLOCKS_PER_ROW {
                    // SAFETY: the load's staging row of TILE floats.
                    unsafe { _mm512_storeu_ps(row.add(b * 16), v) };
                }
                regs[j] = row;
            }
        }
        let mut t0 = from;
        while t0 < to {
            let len = (to - t0).min(TILE);
            let nvec = len.div_ceil(16);
            let tail = lanes(len - (nvec - 1) * 16);
            for j in 0..nl {
                if self.bcast[j] {
                    continue;
                }
                // SAFETY: elements [t0, t0 + len) of a contiguous load are in its buffer.
                let src = unsafe { ptrs[j].cast::<f32>().add(t0) };
                if len == TILE {
                    regs[j] = src;
                } else {
                    // A partial tile: stage it (masked, never reading past the end).
                    let row = regs[nl + j];
                    for v in 0..nvec {
                        let m = if v + 1 == nvec { tail } else { 0xffff };
                        // SAFETY: masked lanes are not read; the row has TILE floats.
                        unsafe {
                            let x = _mm512_maskz_loadu_ps(m, src.add(v * 16));
                            _mm512_storeu_ps(row.add(v * 16), x);
                        }
                    }
                    regs[j] = row;
                }
            }
            for ins in &self.prog {
                // SAFETY: every register has TILE floats: scratch rows, staged loads,
                // or a full tile of a contiguous load.
                unsafe { ops::run(ins, regs, nvec) };
            }
            for &(r, j) in &self.stores {
                // SAFETY: elements [t0, t0 + len) of a contiguous store's buffer.
                let dst = unsafe { ptrs[j].cast::<f32>().add(t0) };
                for v in 0..nvec {
                    let m = if v + 1 == nvec { tail } else { 0xffff };
                    // SAFETY: `regs[r]` has TILE floats; masked lanes are not written.
                    unsafe {
                        let x = _mm512_loadu_ps(regs[r].add(v * 16));
                        _mm512_mask_storeu_ps(dst.add(v * 16), m, x);
                    }
                }
            }
            if let Some((kind, r, _)) = self.reduction {
                for v in 0..nvec {
                    let m = if v + 1 == nvec { tail } else { 0xffff };
                    // SAFETY: `regs[r]` has TILE floats.
                    let x = unsafe { _mm512_loadu_ps(regs[r].add(v * 16)) };
                    *acc = combine(kind, *acc, x, m);
                }
            }
            t0 += len;
        }
    }
}
