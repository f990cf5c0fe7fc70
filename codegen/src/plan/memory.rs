//! Memory planning: temporaries share storage when their lifetimes do not overlap.
//!
//! Liveness is computed over the step list: a temporary is born at the step that first
//! writes it and dies after the last step that reads it (graph outputs live to the end;
//! a reshape alias keeps its root alive; two scans run side by side count as one step,
//! `plan::concurrent`: every buffer either touches lives through both). Walking the
//! steps in order, a buffer takes the smallest free slot that fits (best fit), else a
//! new slot; slots are freed when their buffer dies. A kernel may also write *in place* over a buffer that dies at that very
//! step when it reads it element for element at the position it writes (offset 0,
//! contiguous, same size, no reduction): every iteration reads before it writes. A
//! convolution's input and weight live through the kernel after it when that kernel
//! reads its output (it may run on the convolution's finished rows, `exec::epilogue`).

use super::{BufId, BufKind, Plan, Step};
use crate::kernel::nest::elem_size;

/// Where each buffer lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Storage slot of each temporary buffer (`None` for feeds, constants, aliases).
    pub slot_of: Vec<Option<usize>>,
    /// Size in bytes of each slot.
    pub slot_bytes: Vec<usize>,
    /// Per step: a scan run alongside the scan before it (`concurrent::alongside`),
    /// which this plan's live ranges account for.
    pub alongside: Vec<bool>,
}

impl MemoryPlan {
    /// Total bytes of temporary storage.
    pub fn total_bytes(&self) -> usize {
        self.slot_bytes.iter().sum()
    }
}

pub(crate) fn root(plan: &Plan, b: BufId) -> BufId {
    root_in(&plan.buffers, b)
}

/// [`root`] over a buffer table (while the plan is being built).
pub(crate) fn root_in(buffers: &[super::BufferSpec], b: BufId) -> BufId {
    match buffers[b].kind {
        BufKind::Alias(r) => r,
        BufKind::Feed(_) | BufKind::Const(_) | BufKind::Temp => b,
    }
}

pub(crate) fn reads(s: &Step) -> Vec<BufId> {
    match s {
        Step::Kernel(k) => k.loads.iter().map(|l| l.buffer).collect(),
        Step::MatMul { a, b, .. } => vec![a.buf, b.buf],
        Step::Conv { x, w, .. } => vec![*x, *w],
        Step::Host { args, .. } | Step::Scan { args, .. } | Step::Copy(_, args, _) => args.clone(),
    }
}

fn bytes(plan: &Plan, b: BufId) -> usize {
    let t = &plan.buffers[b].ty;
    t.shape.numel() * elem_size(t.dtype)
}

/// Whether kernel step `s` may write its store `out` over `dying`, read in place.
pub(crate) fn in_place_ok(plan: &Plan, s: &Step, dying: BufId, out: BufId) -> bool {
    let Step::Kernel(k) = s else {
        return false;
    };
    if k.reduction.is_some() || bytes(plan, dying) != bytes(plan, out) {
        return false;
    }
    // A window of `out` is not read element for element where it is written.
    if k.stores
        .iter()
        .any(|s| s.buffer == out && s.window.is_some())
    {
        return false;
    }
    let contiguous = super::lazy::contiguous(&k.shape);
    k.loads
        .iter()
        .filter(|l| root(plan, l.buffer) == dying)
        .all(|l| {
            l.offset == 0
                && l.strides == contiguous
                && elem_size(l.dtype) == elem_size(plan.buffers[out].ty.dtype)
        })
}

/// The live range of every root buffer, `(birth, death)` per buffer: the first step
/// writing it and the last step reading or writing it (`usize::MAX` for graph outputs;
/// `birth` stays `usize::MAX` for a buffer no step writes), a pair of scans run side by
/// side (`along`, from `concurrent::alongside`) covering both of its steps.
pub(crate) fn lifetimes(plan: &Plan, along: &[bool]) -> (Vec<usize>, Vec<usize>) {
    let n = plan.buffers.len();
    let mut birth = vec![usize::MAX; n];
    let mut death = vec![0usize; n];
    for (i, s) in plan.steps.iter().enumerate() {
        for b in super::writes(s) {
            let r = root(plan, b);
            birth[r] = birth[r].min(i);
            death[r] = death[r].max(i);
        }
        for b in reads(s) {
            let r = root(plan, b);
            death[r] = death[r].max(i);
        }
    }
    // A scan run alongside the one before it (`concurrent::alongside`): the pair is
    // one step for memory, every buffer either touches lives through both.
    for (i, _) in along.iter().enumerate().filter(|(_, &a)| a) {
        for s in [&plan.steps[i - 1], &plan.steps[i]] {
            for b in super::writes(s).into_iter().chain(reads(s)) {
                let r = root(plan, b);
                if birth[r] == i {
                    birth[r] = i - 1;
                }
                death[r] = death[r].max(i);
            }
        }
    }
    // A convolution may run the kernel after it on its finished rows
    // (`exec::epilogue`, "rows"): its input and weight live through that kernel, so
    // the kernel's stores never take their storage while later blocks still read them.
    for (i, pair) in plan.steps.windows(2).enumerate() {
        if let [Step::Conv { x, w, out, .. }, Step::Kernel(k)] = pair {
            if k.loads
                .iter()
                .any(|l| root(plan, l.buffer) == root(plan, *out))
            {
                for b in [*x, *w] {
                    let r = root(plan, b);
                    death[r] = death[r].max(i + 1);
                }
            }
        }
    }
    for &o in &plan.outputs {
        death[root(plan, o)] = usize::MAX;
    }
    (birth, death)
}

/// Assigns storage slots to the plan's temporaries.
pub fn plan_memory(plan: &Plan) -> MemoryPlan {
    let n = plan.buffers.len();
    let temp = |b: BufId| matches!(plan.buffers[b].kind, BufKind::Temp);
    let along = super::concurrent::alongside(plan);
    let (birth, mut death) = lifetimes(plan, &along);
    let mut slot_of = vec![None; n];
    let mut slot_bytes: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    for (i, s) in plan.steps.iter().enumerate() {
        // Free slots of buffers that died before this step.
        if i > 0 {
            for b in (0..n).map(BufId::new) {
                if temp(b) && death[b] == i - 1 {
                    if let Some(sl) = slot_of[b] {
                        free.push(sl);
                    }
                }
            }
        }
        // A buffer born at a step run alongside this one is allocated with this one's.
        let mut born: Vec<BufId> = super::writes(s);
        if along.get(i + 1) == Some(&true) {
            born.extend(super::writes(&plan.steps[i + 1]));
        }
        for b in born {
            if !temp(b) || birth[b] != i || slot_of[b].is_some() {
                continue;
            }
            // In place over a buffer that dies here.
            let donor = reads(s).into_iter().map(|r| root(plan, r)).find(|&d| {
                temp(d)
                    && death[d] == i
                    && slot_of[d].is_some()
                    && d != b
                    && in_place_ok(plan, s, d, b)
            });
            if let Some(d) = donor {
                // The donor's slot passes to `b`; mark the donor as already released.
                slot_of[b] = slot_of[d];
                death[d] = usize::MAX - 1; // never freed again through `d`
                continue;
            }
            let need = bytes(plan, b);
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, &sl)| slot_bytes[sl] >= need)
                .min_by_key(|(_, &sl)| slot_bytes[sl])
                .map(|(k, _)| k);
            slot_of[b] = Some(match best {
                Some(k) => free.swap_remove(k),
                None => {
                    slot_bytes.push(need);
                    slot_bytes.len() - 1
                }
            });
        }
    }
    // Temporaries never written by a step (none in valid plans) still get storage.
    for (b, slot) in slot_of.iter_mut().enumerate() {
        let b = BufId::new(b);
        if temp(b) && slot.is_none() {
            slot_bytes.push(bytes(plan, b));
            *slot = Some(slot_bytes.len() - 1);
        }
    }
    MemoryPlan {
        slot_of,
        slot_bytes,
        alongside: along,
    }
}

/// Whether output buffer `out` can be written directly into feed buffer `feed`'s memory
/// (a persistent state updated in place, see `Executable::bind_state`): `out` is a
/// temporary written by exactly one kernel step `s`, every other step reading `feed`
/// runs before `s`, and `s` reads `feed` only element for element where it writes.
pub fn state_in_place(plan: &Plan, feed: BufId, out: BufId) -> bool {
    if !matches!(plan.buffers[out].kind, BufKind::Temp)
        || !matches!(plan.buffers[feed].kind, BufKind::Feed(_))
    {
        return false;
    }
    let writers: Vec<usize> = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| super::writes(s).contains(&out))
        .map(|(i, _)| i)
        .collect();
    let [w] = writers[..] else {
        return false;
    };
    let step = &plan.steps[w];
    if !in_place_ok(plan, step, feed, out) {
        return false;
    }
    plan.steps
        .iter()
        .enumerate()
        .all(|(i, s)| i <= w || reads(s).into_iter().all(|r| root(plan, r) != feed))
}
