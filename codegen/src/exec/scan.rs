//! Scan steps: the body's executable run once per step, fed by pointers into the
//! carry, input and output buffers, with staging made at compile time.

use super::{elem_size, CompileOptions, Compiled, Executable, RunError, ScanState, Storage};
use crate::plan::{BufId, Plan, Step};
use std::rc::Rc;
use std::time::{Duration, Instant};

impl Executable {
    /// Runs a scan step: the body executable once per step, fed by pointers into the
    /// carry, input and output buffers (no allocation; the staging buffers were made at
    /// compile time).
    pub(super) fn scan(
        &mut self,
        i: usize,
        sc: &onde_ir::ScanOp,
        args: &[BufId],
        outs: &[BufId],
    ) -> Result<(), RunError> {
        let Some(mut st) = self.scans.get_mut(i).and_then(Option::take) else {
            return Err(RunError::Native("scan body missing".into()));
        };
        let compiled = self.compiled.clone();
        let r = scan_with(&mut st, &compiled.plan, &self.ptrs, sc, args, outs);
        self.scans[i] = Some(st);
        r
    }

    /// Runs scan steps `i` and `i + 1`, a pair that `plan::concurrent::alongside`
    /// marks (they share no written buffer, and memory planning kept their storage
    /// apart), the second on a pool thread while the first runs here; each body runs
    /// on one thread. Returns each step's time (for the profile). Without a pool the
    /// two run one after the other.
    pub(super) fn scan_pair(&mut self, i: usize) -> Result<[Duration; 2], RunError> {
        let compiled = self.compiled.clone();
        let steps = &compiled.plan.steps;
        let (
            Some(Step::Scan {
                scan: sa,
                args: aa,
                outs: oa,
            }),
            Some(Step::Scan {
                scan: sb,
                args: ab,
                outs: ob,
            }),
        ) = (steps.get(i), steps.get(i + 1))
        else {
            return Err(RunError::Native("scan pair missing".into()));
        };
        let (mut st_a, mut st_b) = match (self.scans[i].take(), self.scans[i + 1].take()) {
            (Some(a), Some(b)) => (a, b),
            (a, b) => {
                // Put back whichever was there.
                self.scans[i] = a;
                self.scans[i + 1] = b;
                return Err(RunError::Native("scan body missing".into()));
            }
        };
        let threads = (st_a.body.threads, st_b.body.threads);
        st_a.body.threads = 1;
        st_b.body.threads = 1;
        let plan = &compiled.plan;
        let ptrs = &self.ptrs;
        let run = |st: &mut ScanState, sc, args, outs| {
            let t0 = Instant::now();
            let r = scan_with(st, plan, ptrs, sc, args, outs);
            (r, t0.elapsed())
        };
        let (ra, rb) = match crate::pool::pool() {
            Some(pool) => {
                let mut rb = None;
                let job = Unshared((&mut st_b, &mut rb, &run, sb, ab, ob));
                let mut ra = None;
                pool.in_place_scope(|scope| {
                    scope.spawn(move |_| {
                        let (st, out, run, sc, args, outs) = job.into_inner();
                        *out = Some(run(st, sc, args, outs));
                    });
                    ra = Some(run(&mut st_a, sa, aa, oa));
                });
                let fail = || {
                    (
                        Err(RunError::Native("scan pair did not run".into())),
                        Duration::ZERO,
                    )
                };
                (ra.unwrap_or_else(fail), rb.unwrap_or_else(fail))
            }
            None => (run(&mut st_a, sa, aa, oa), run(&mut st_b, sb, ab, ob)),
        };
        st_a.body.threads = threads.0;
        st_b.body.threads = threads.1;
        self.scans[i] = Some(st_a);
        self.scans[i + 1] = Some(st_b);
        ra.0?;
        rb.0?;
        Ok([ra.1, rb.1])
    }
}

/// What the second scan of a pair takes to its thread: its own state, its result
/// slot, and shared references to the plan, the buffer table and the run closure.
///
/// SAFETY (of the `Send` impl): the state is the second scan's alone (taken out of the
/// executor): its body executable, including its `Rc<Compiled>`, is touched by no other
/// thread while the pair runs. The first scan has its own body and its own `Rc` (each
/// scan step's body is compiled on its own); the body's `Rc` allocation is also held
/// by the outer `Compiled::bodies` and by executables sharing that `Compiled` through
/// the compile cache, all of them `!Send` and so only usable by the calling thread,
/// which waits in the scope; the outer `Compiled` is held, not cloned or dropped, by
/// the calling thread until the scope ends. The plan and the buffer table are only
/// read during the pair. The two scans write disjoint buffers, which neither reads the
/// other's (`alongside`), and memory planning gave every buffer either touches storage
/// of its own for the whole pair (`memory::lifetimes`). The scope joins the thread
/// before any of it is used again.
struct Unshared<T>(T);

// SAFETY: see the type's doc.
unsafe impl<T> Send for Unshared<T> {}

impl<T> Unshared<T> {
    /// The value (a method, so that a closure captures the whole wrapper).
    fn into_inner(self) -> T {
        self.0
    }
}

fn scan_with(
    st: &mut ScanState,
    plan: &Plan,
    ptrs: &[*mut u8],
    sc: &onde_ir::ScanOp,
    args: &[BufId],
    outs: &[BufId],
) -> Result<(), RunError> {
    let (nc, nx) = (sc.num_carry, sc.num_xs);
    let ty = |b: BufId| plan.buffers[b].ty.clone();
    // Carries live in the result buffers: start from the initial values.
    for c in 0..nc {
        let t = ty(args[c]);
        let bytes = t.shape.numel() * elem_size(t.dtype);
        if bytes > 0 && ptrs[outs[c]] != ptrs[args[c]] {
            // SAFETY: both buffers hold `bytes` bytes (same type) and are distinct.
            unsafe { std::ptr::copy_nonoverlapping(ptrs[args[c]], ptrs[outs[c]], bytes) };
        }
    }
    // Scanned inputs with the scan axis in front.
    let mut xs_base = Vec::with_capacity(nx);
    for k in 0..nx {
        let t = ty(args[nc + k]);
        if sc.axis == 0 {
            xs_base.push(ptrs[args[nc + k]]);
        } else {
            let dst = st.xs_front[k].ptr();
            // SAFETY: the source holds `t`'s elements; `dst` was sized for them.
            unsafe {
                move_axis(
                    ptrs[args[nc + k]],
                    dst,
                    t.shape.dims(),
                    sc.axis,
                    elem_size(t.dtype),
                    true,
                )
            };
            xs_base.push(dst);
        }
    }
    let ny = outs.len() - nc;
    let mut ys_base = Vec::with_capacity(ny);
    for j in 0..ny {
        ys_base.push(if sc.axis == 0 {
            ptrs[outs[nc + j]]
        } else {
            st.ys_front[j].ptr()
        });
    }
    let slice_bytes = |b: BufId| {
        let t = ty(b);
        t.shape.numel().checked_div(sc.length).unwrap_or(0) * elem_size(t.dtype)
    };
    let xs_slice: Vec<usize> = (0..nx).map(|k| slice_bytes(args[nc + k])).collect();
    let ys_slice: Vec<usize> = (0..ny).map(|j| slice_bytes(outs[nc + j])).collect();
    let carry_bytes: Vec<usize> = (0..nc)
        .map(|c| {
            let t = ty(outs[c]);
            t.shape.numel() * elem_size(t.dtype)
        })
        .collect();
    let mut feed_ptrs: Vec<*mut u8> = vec![std::ptr::null_mut(); st.inputs.len()];
    let n_body = st.body.compiled.plan.buffers.len();
    // The loop invariants (an RNN's recurrent weights) do not change during this
    // scan: the body runs as a versioned run vouching for them, so a matrix product
    // against one packs it once per scan call instead of once per step (W4's
    // `h · W_hhᵀ`, 128 × 512, every one of 100 steps).
    st.body.is_weight.clear();
    st.body.is_weight.resize(n_body, false);
    for &k in &st.inputs[nc + nx..] {
        let buf = st.body.feeds[k].2;
        st.body.is_weight[buf] = true;
    }
    st.body.weights_version = Some(next_scan_version());
    let lay = Layout {
        xs_base: &xs_base,
        ys_base: &ys_base,
        xs_slice: &xs_slice,
        ys_slice: &ys_slice,
        carry_bytes: &carry_bytes,
    };
    let r = scan_steps(st, ptrs, sc, args, outs, &lay, &mut feed_ptrs);
    st.body.weights_version = None;
    let body_outs = &st.body.compiled.plan.outputs;
    for (j, home) in st.direct.iter().enumerate() {
        if let Some(p) = *home {
            st.body.ptrs[body_outs[nc + j]] = p;
        }
    }
    for (c, path) in st.carries.iter().enumerate() {
        if let CarryPath::ByTurns(home) = *path {
            st.body.ptrs[body_outs[c]] = home;
        }
    }
    r?;
    if sc.axis != 0 {
        for j in 0..ny {
            let t = ty(outs[nc + j]);
            let mut front: Vec<usize> = t.shape.dims().to_vec();
            let l = front.remove(sc.axis);
            front.insert(0, l);
            // SAFETY: `ys_base[j]` holds the stacked outputs axis-first; the result
            // buffer holds the same number of elements.
            unsafe {
                move_axis(
                    ys_base[j],
                    ptrs[outs[nc + j]],
                    &front,
                    sc.axis,
                    elem_size(t.dtype),
                    false,
                )
            };
        }
    }
    Ok(())
}

/// The steps of a scan (see [`scan_with`]); stacked outputs marked
/// `direct` in the state are written by the body in place.
fn scan_steps(
    st: &mut ScanState,
    ptrs: &[*mut u8],
    sc: &onde_ir::ScanOp,
    args: &[BufId],
    outs: &[BufId],
    lay: &Layout<'_>,
    feed_ptrs: &mut [*mut u8],
) -> Result<(), RunError> {
    let Layout {
        xs_base,
        ys_base,
        xs_slice,
        ys_slice,
        carry_bytes,
    } = *lay;
    let (nc, nx) = (sc.num_carry, sc.num_xs);
    let ny = outs.len() - nc;
    let body = st.body.compiled.clone();
    let body_outs = &body.plan.outputs;
    let carries = &st.carries;
    // Where each carry is for the next step: the carry's buffer (holding the initial
    // value) until a step leaves it elsewhere; and, written by turns, the other one.
    let mut last_slot: Vec<*mut u8> = (0..nc).map(|c| ptrs[outs[c]]).collect();
    let mut spare: Vec<*mut u8> = (0..nc).map(|c| st.carry_stage[c].ptr()).collect();
    for step in 0..sc.length {
        let t = if sc.reverse {
            sc.length - 1 - step
        } else {
            step
        };
        feed_ptrs[..nc].copy_from_slice(&last_slot);
        for k in 0..nx {
            // SAFETY: offset `t·slice` stays inside the scanned buffer (t < length).
            feed_ptrs[nc + k] = unsafe { xs_base[k].add(t * xs_slice[k]) };
        }
        for (k, &b) in args[nc + nx..].iter().enumerate() {
            feed_ptrs[nc + nx + k] = ptrs[b];
        }
        for j in (0..ny).filter(|&j| st.direct[j].is_some()) {
            // SAFETY: slot `t` of the stacked buffer holds `ys_slice[j]` bytes, the
            // size of the body's output buffer.
            st.body.ptrs[body_outs[nc + j]] = unsafe { ys_base[j].add(t * ys_slice[j]) };
        }
        for (c, path) in carries.iter().enumerate() {
            if let CarryPath::ByTurns(_) = path {
                // The spare: the stage or the carry's buffer, whichever this step does
                // not read (both hold the carry's bytes).
                st.body.ptrs[body_outs[c]] = spare[c];
            }
        }
        st.body.run_ptrs(&st.inputs, feed_ptrs)?;
        // New carries: stage first (an output may alias another carry's input).
        for (c, path) in carries.iter().enumerate() {
            match *path {
                CarryPath::InOutput(j) => {
                    // SAFETY: slot `t` of stacked output `j`, where the body wrote it.
                    last_slot[c] = unsafe { ys_base[j].add(t * ys_slice[j]) };
                }
                CarryPath::ByTurns(_) => std::mem::swap(&mut last_slot[c], &mut spare[c]),
                CarryPath::Staged if carry_bytes[c] > 0 => {
                    let src = st.body.ptrs[body_outs[c]];
                    // SAFETY: body output `c` has the carry's type; the stage was sized
                    // for it and is distinct memory.
                    unsafe { std::ptr::copy(src, st.carry_stage[c].ptr(), carry_bytes[c]) };
                }
                CarryPath::Staged => {}
            }
        }
        // Outputs before carries: an output may be a carry input, which the
        // commit below overwrites.
        for j in 0..ny {
            let src = st.body.ptrs[body_outs[nc + j]];
            if ys_slice[j] > 0 && st.direct[j].is_none() {
                // SAFETY: body output has the per-step type; the destination slot
                // `t` of the stacked buffer holds `ys_slice[j]` bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(src, ys_base[j].add(t * ys_slice[j]), ys_slice[j])
                };
            }
        }
        for (c, path) in carries.iter().enumerate() {
            if matches!(path, CarryPath::Staged) && carry_bytes[c] > 0 {
                // SAFETY: as above; the carry buffer holds `carry_bytes[c]` bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        st.carry_stage[c].ptr(),
                        ptrs[outs[c]],
                        carry_bytes[c],
                    )
                };
            }
        }
    }
    // The last values left elsewhere than in the carries' buffers.
    for (c, &slot) in last_slot.iter().enumerate() {
        let dst = ptrs[outs[c]];
        if slot != dst {
            // SAFETY: the last step's slot of a stacked output, or the stage, and the
            // carry's buffer: each holds `carry_bytes[c]` bytes (the carry's type),
            // distinct memory.
            unsafe { std::ptr::copy_nonoverlapping(slot, dst, carry_bytes[c]) };
        }
    }
    Ok(())
}

/// Where a scan's stacked inputs and outputs are and how big one step's slice is.
#[derive(Clone, Copy)]
struct Layout<'a> {
    /// Scanned inputs, scan axis in front.
    xs_base: &'a [*mut u8],
    /// Stacked outputs, scan axis in front.
    ys_base: &'a [*mut u8],
    /// Bytes of one step's slice of each scanned input.
    xs_slice: &'a [usize],
    /// Bytes of one step's slice of each stacked output.
    ys_slice: &'a [usize],
    /// Bytes of each carry.
    carry_bytes: &'a [usize],
}

/// A fresh weights version for one scan call's body runs (unique in the process).
fn next_scan_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 62);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl ScanState {
    pub(super) fn new(
        sc: &onde_ir::ScanOp,
        args: &[BufId],
        outs: &[BufId],
        plan: &Plan,
        body: Rc<Compiled>,
        opts: CompileOptions,
    ) -> ScanState {
        let body = Box::new(Executable::from_compiled(body, opts));
        let inputs = sc
            .body
            .inputs()
            .iter()
            .map(|&v| {
                let name = sc.body.input_name(v).unwrap_or_default();
                body.feed_index(name).unwrap_or(usize::MAX)
            })
            .collect();
        let bytes = |b: BufId| {
            let t = &plan.buffers[b].ty;
            t.shape.numel() * elem_size(t.dtype)
        };
        let (nc, nx) = (sc.num_carry, sc.num_xs);
        let front = |b: BufId| Storage::new(if sc.axis == 0 { 0 } else { bytes(b) });
        // Stacked outputs the body writes straight into their slot of the result (its
        // buffer re-pointed there for the step) instead of into its own temporary and
        // copied after: a temporary of the body (not a feed, constant or reshape alias),
        // the first stacked output it backs. An LSTM's forward stacks nine `[B, H]`
        // values per step, copies that cost as much as its gate kernel.
        let compiled = &body.compiled;
        let body_outs = &compiled.plan.outputs;
        // A temporary of the body (not a feed, constant or reshape alias): its pointer
        // may be aimed elsewhere for a step.
        let own = |b: BufId| {
            matches!(compiled.plan.buffers[b].kind, crate::plan::BufKind::Temp)
                && !compiled.aliases.iter().any(|&(a, _)| a == b)
        };
        let direct: Vec<Option<*mut u8>> = (0..outs.len() - nc)
            .map(|j| {
                let b = body_outs[nc + j];
                let ok = bytes(outs[nc + j]) > 0 && own(b) && !body_outs[nc..nc + j].contains(&b);
                ok.then(|| body.ptrs[b])
            })
            .collect();
        let carries = (0..nc)
            .map(|c| {
                let b = body_outs[c];
                let stacked =
                    (0..direct.len()).find(|&j| direct[j].is_some() && body_outs[nc + j] == b);
                let alone = own(b) && body_outs.iter().filter(|&&o| o == b).count() == 1;
                if bytes(outs[c]) == 0 {
                    CarryPath::Staged
                } else if let Some(j) = stacked {
                    CarryPath::InOutput(j)
                } else if alone {
                    CarryPath::ByTurns(body.ptrs[b])
                } else {
                    CarryPath::Staged
                }
            })
            .collect();
        ScanState {
            body,
            inputs,
            xs_front: args[nc..nc + nx].iter().map(|&b| front(b)).collect(),
            ys_front: outs[nc..].iter().map(|&b| front(b)).collect(),
            carry_stage: outs[..nc].iter().map(|&b| Storage::new(bytes(b))).collect(),
            direct,
            carries,
        }
    }
}

/// Where a scan's body leaves a carry's new value, for the next step to read.
#[derive(Clone, Copy, Debug)]
pub(super) enum CarryPath {
    /// In its own temporary, copied to a stage then to the carry's buffer (a carry the
    /// body's outputs share, or a reshape of another buffer).
    Staged,
    /// In slot `t` of stacked output `j`, which it is too (an RNN's `h'` is its `y`):
    /// the next step reads it there; only the last is copied to the carry's buffer.
    InOutput(usize),
    /// In the carry's buffer and its stage by turns (the body's output pointer, whose
    /// own value is kept here to be restored after a call, aimed at whichever the step
    /// does not read); only the last is copied if it ends in the stage.
    ByTurns(*mut u8),
}

/// Copies a row-major tensor of extents `dims` (elements of `esize` bytes), moving
/// `axis` to the front (`to_front`), or, with `to_front = false`, moving the front axis
/// of `dims` back to position `axis`.
///
/// # Safety
/// `src` and `dst` must each hold `Π dims` elements and not overlap.
unsafe fn move_axis(
    src: *const u8,
    dst: *mut u8,
    dims: &[usize],
    axis: usize,
    esize: usize,
    to_front: bool,
) {
    let n: usize = dims.iter().product();
    if n == 0 {
        return;
    }
    // Source index -> destination index via the permuted layout.
    let r = dims.len();
    let perm: Vec<usize> = if to_front {
        std::iter::once(axis)
            .chain((0..r).filter(|&a| a != axis))
            .collect()
    } else {
        // dims is axis-first; the destination puts axis 0 at `axis`.
        let mut p: Vec<usize> = (1..r).collect();
        p.insert(axis, 0);
        p
    };
    let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let mut src_strides = vec![1usize; r];
    for a in (0..r.saturating_sub(1)).rev() {
        src_strides[a] = src_strides[a + 1] * dims[a + 1];
    }
    let mut idx = vec![0usize; r];
    for o in 0..n {
        let s: usize = (0..r).map(|a| idx[a] * src_strides[perm[a]]).sum();
        // SAFETY: `s < n` and `o < n`, within both buffers by the caller's guarantee.
        unsafe { std::ptr::copy_nonoverlapping(src.add(s * esize), dst.add(o * esize), esize) };
        for a in (0..r).rev() {
            idx[a] += 1;
            if idx[a] < out_dims[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}
