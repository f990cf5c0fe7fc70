//! Executing a [`Program`]: the loop nest over rows, tiles within a row, and the
//! reduction, written once for every width ([`Lanes`]) and instantiated in one
//! `#[target_feature]` entry point per width ([`Program::call`] picks it).

use super::lanes::{Lanes, X16, X8};
use super::{ops, Program, Width, TILE};
use onde_ir::ReduceKind;
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
#[inline(always)]
fn combine<L: Lanes>(l: L, kind: ReduceKind, acc: L::V, v: L::V, mask: L::M) -> L::V {
    let r = match kind {
        ReduceKind::Sum => l.add(acc, v),
        ReduceKind::Prod => l.mul(acc, v),
        ReduceKind::Max => ops::fmax(l, acc, v),
        ReduceKind::Min => ops::fmin(l, acc, v),
    };
    l.blend(mask, acc, r)
}

/// The lanes folded into one value (NaN-propagating for max/min).
#[inline(always)]
fn fold<L: Lanes>(l: L, kind: ReduceKind, acc: L::V) -> f32 {
    let lanes = l.to_array(acc);
    let lanes = &lanes[..L::N];
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

impl Program {
    /// Computes `[lo, hi)` of the outermost normalised axis, like the Cranelift
    /// kernel of the same [`crate::kernel::Kernel`]; a full reduction writes its
    /// (partial) result to `partial` when it is not null, else to its buffer.
    ///
    /// # Safety
    /// `table` must be the executor's buffer table, every buffer the kernel accesses
    /// live and of its planned size (what the Cranelift kernel's call requires), `[lo,
    /// hi)` within the outermost axis, and `partial` null or valid for an f32 write.
    /// The CPU must support the program's width (checked by [`super::compile`]).
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
            // SAFETY: forwarded from the caller, who checked the CPU has the program's
            // width (`compile` chose it from the detected level); the scratch holds
            // `nslots` rows.
            unsafe {
                match self.width {
                    Width::X16 => self.call_x16(table, lo, hi, partial, rows, s),
                    Width::X8 => self.call_x8(table, lo, hi, partial, rows, s),
                }
            }
        })
    }

    /// [`Program::call_with`] on 16 lanes.
    ///
    /// # Safety
    /// As [`Program::call_with`], on a CPU with AVX-512F/DQ.
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn call_x16(
        &self,
        table: *const *mut u8,
        lo: usize,
        hi: usize,
        partial: *mut u8,
        scratch: *mut f32,
        w: &mut Scratch,
    ) {
        // SAFETY: this function runs with AVX-512F/DQ (its caller's contract), so the
        // token's claim holds; the rest is forwarded.
        unsafe { self.call_with(X16::assume(), table, lo, hi, partial, scratch, w) }
    }

    /// [`Program::call_with`] on 8 lanes.
    ///
    /// # Safety
    /// As [`Program::call_with`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn call_x8(
        &self,
        table: *const *mut u8,
        lo: usize,
        hi: usize,
        partial: *mut u8,
        scratch: *mut f32,
        w: &mut Scratch,
    ) {
        // SAFETY: this function runs with AVX2 and FMA (its caller's contract), so the
        // token's claim holds; the rest is forwarded.
        unsafe { self.call_with(X8::assume(), table, lo, hi, partial, scratch, w) }
    }

    /// [`Program::call`] with the scratch rows at `scratch`, on width `L`.
    ///
    /// # Safety
    /// As [`Program::call`], and `scratch` holds `nslots · TILE` writable floats used
    /// by no one else during the call; `w.regs` has `nregs` entries, `w.idx` one per
    /// axis, `w.bases` and `w.ptrs` are empty.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn call_with<L: Lanes>(
        &self,
        l: L,
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
            let v = l.splat_bits(bits);
            for j in 0..TILE / L::N {
                // SAFETY: a scratch row of TILE floats.
                unsafe { l.store(regs[r].add(j * L::N), v) };
            }
        }
        // Base address of every access.
        let bases = &mut w.bases;
        bases.extend(
            self.accesses
                .iter()
                // SAFETY: the table has an entry per buffer; offsets stay inside it.
                .map(|&(buf, off)| unsafe { (*table.add(buf.index())).offset(off) }),
        );
        let axes = &self.nest.axes;
        let n = axes.len();
        let inner = &axes[n - 1];
        let red = self.reduction;
        let full_reduction = red.is_some() && self.nest.kept == 0;
        let ident = red.map_or(0.0, |(kind, _, _)| identity(kind));
        let mut acc = l.splat(ident);
        let ptrs = &mut w.ptrs;
        ptrs.extend_from_slice(bases);
        if n == 1 {
            // SAFETY: the caller's contract, `ptrs` at the start of the only row.
            unsafe { self.row(l, regs, ptrs, lo, hi, &mut acc) };
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
                    acc = l.splat(ident);
                }
                // SAFETY: as above, for this row.
                unsafe { self.row(l, regs, ptrs, 0, inner.extent, &mut acc) };
                if group
                    && idx[kept..]
                        .iter()
                        .zip(&axes[kept..n - 1])
                        .all(|(&i, a)| i + 1 == a.extent)
                {
                    if let Some((kind, _, acc_j)) = red {
                        // SAFETY: the reduced store's element for this kept index.
                        unsafe {
                            ptrs[acc_j]
                                .cast::<f32>()
                                .write_unaligned(fold(l, kind, acc))
                        };
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
                let v = fold(l, kind, acc);
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
    #[inline(always)]
    unsafe fn row<L: Lanes>(
        &self,
        l: L,
        regs: &mut [*mut f32],
        ptrs: &[*mut u8],
        from: usize,
        to: usize,
        acc: &mut L::V,
    ) {
        let nl = self.nloads;
        // Broadcast loads: one value for the whole row, staged once.
        for j in 0..nl {
            if self.bcast[j] {
                // SAFETY: the row's element of the load (stride 0 along the row).
                let v = l.splat(unsafe { ptrs[j].cast::<f32>().read_unaligned() });
                let row = regs[nl + j];
                for b in 0..TILE / L::N {
                    // SAFETY: the load's staging row of TILE floats.
                    unsafe { l.store(row.add(b * L::N), v) };
                }
                regs[j] = row;
            }
        }
        let mut t0 = from;
        while t0 < to {
            let len = (to - t0).min(TILE);
            let nvec = len.div_ceil(L::N);
            // Lanes of the tile's last vector.
            let tail = len - (nvec - 1) * L::N;
            for j in 0..nl {
                if self.bcast[j] {
                    continue;
                }
                // SAFETY: elements [t0, t0 + len) of a contiguous load are in its buffer.
                let src = unsafe { ptrs[j].cast::<f32>().add(t0) };
                if tail == L::N {
                    // Whole vectors (a full tile, or a row of 64 on 16 lanes): the
                    // instructions read `nvec` vectors, all inside `[t0, t0 + len)`.
                    regs[j] = src;
                } else {
                    // A partial tile: stage it (masked, never reading past the end).
                    let row = regs[nl + j];
                    for v in 0..nvec {
                        let n = if v + 1 == nvec { tail } else { L::N };
                        // SAFETY: lanes past `n` are not read; the row has TILE floats.
                        unsafe {
                            let x = l.load_first(src.add(v * L::N), n);
                            l.store(row.add(v * L::N), x);
                        }
                    }
                    regs[j] = row;
                }
            }
            for ins in &self.prog {
                // SAFETY: every register has `nvec` vectors: scratch rows and staged
                // loads (TILE floats), or whole vectors of a contiguous load.
                unsafe { ops::run(l, ins, regs, nvec) };
            }
            for &(r, j) in &self.stores {
                // SAFETY: elements [t0, t0 + len) of a contiguous store's buffer.
                let dst = unsafe { ptrs[j].cast::<f32>().add(t0) };
                for v in 0..nvec {
                    // SAFETY: `regs[r]` has TILE floats; lanes past `tail` of the last
                    // vector are not written.
                    unsafe {
                        let x = l.load(regs[r].add(v * L::N));
                        if v + 1 == nvec && tail < L::N {
                            l.store_first(dst.add(v * L::N), tail, x);
                        } else {
                            l.store(dst.add(v * L::N), x);
                        }
                    }
                }
            }
            if let Some((kind, r, _)) = self.reduction {
                for v in 0..nvec {
                    let n = if v + 1 == nvec { tail } else { L::N };
                    // SAFETY: `regs[r]` has TILE floats.
                    let x = unsafe { l.load(regs[r].add(v * L::N)) };
                    *acc = combine(l, kind, *acc, x, l.first(n));
                }
            }
            t0 += len;
        }
    }
}
