//! The plan verifier: the invariants the executor's `unsafe` blocks rely on, checked on
//! the plan itself (after planning, in debug builds and so in every test, and by
//! [`verify`] on demand).
//!
//! Invariants:
//! 1. **Buffers exist**: every buffer a step names is in the plan; an alias names an
//!    earlier buffer of the same dtype with at least its element count (a reshape, or
//!    a contiguous prefix: the same memory from element 0).
//! 2. **Reads stay inside their buffer**: every element a kernel load or a matmul view
//!    can address (offset plus each axis's extent − 1 times its stride, for the most
//!    negative and the most positive corner) lies in `[0, numel)` of its buffer; an
//!    empty iteration space reads nothing.
//! 3. **Dtypes agree**: a load's dtype is its buffer's; a store's expression has its
//!    buffer's dtype; a matmul's or a convolution's buffers have the step's dtype.
//! 4. **Stores cover their buffer exactly**: an elementwise store writes the whole
//!    iteration space (its buffer has that many elements), a reduction's store the kept
//!    axes; a matmul's output holds `batch·m·n` elements.
//! 5. **Kernel bodies are well formed**: an expression reads only earlier expressions
//!    and existing loads; a reduction names an existing store and axes of the space.
//! 6. **Defined before use**: a temporary is written by an earlier step before any step
//!    reads it (through any alias); feeds and constants are never written.
//! 7. **Memory** ([`verify_memory`]): every temporary has a slot big enough; two
//!    temporaries share a slot only when their live ranges do not overlap, or when a
//!    kernel writes one in place over the other at the step where it dies (read element
//!    for element where it is written).
//! 8. **Scans run alongside** ([`verify_memory`], `plan::concurrent`): of two scans run
//!    at the same time, neither writes a buffer the other reads or writes, nor one in
//!    the storage slot of such a buffer (checked from the steps themselves, not from
//!    the live ranges that memory planning derived from the pairing).

use super::memory::{self, MemoryPlan};
use super::{BufId, BufKind, Plan, PlanError, Step, View};
use crate::kernel::{Expr, Kernel};
use onde_ir::DType;

fn err(step: usize, reason: String) -> PlanError {
    PlanError {
        op: format!("plan step {step}"),
        reason,
    }
}

/// Checks every invariant of the module doc; the first violation is the error.
pub fn verify(plan: &Plan) -> Result<(), PlanError> {
    let n = plan.buffers.len();
    // 1. Aliases.
    for (b, spec) in plan.buffers.iter().enumerate() {
        if let BufKind::Alias(of) = spec.kind {
            let ok = of.index() < b
                && plan.buffers[of].ty.dtype == spec.ty.dtype
                && plan.buffers[of].ty.shape.numel() >= spec.ty.shape.numel();
            if !ok {
                return Err(err(
                    0,
                    format!(
                        "buffer {b} ({}) aliases buffer {of} ({}): another dtype, fewer elements or a later buffer",
                        spec.ty,
                        plan.buffers
                            .get(of.index())
                            .map_or("missing".to_string(), |s| s.ty.to_string())
                    ),
                ));
            }
        }
    }
    let root = |mut b: BufId| {
        while let BufKind::Alias(of) = plan.buffers[b].kind {
            b = of;
        }
        b
    };
    let mut written = vec![false; n];
    for (b, spec) in plan.buffers.iter().enumerate() {
        written[b] = matches!(spec.kind, BufKind::Feed(_) | BufKind::Const(_));
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let (reads, writes) = step_buffers(step);
        for &b in reads.iter().chain(&writes) {
            if b.index() >= n {
                return Err(err(i, format!("names buffer {b} of {n}")));
            }
        }
        check_step(plan, i, step)?;
        // 6. Defined before use.
        for &b in &reads {
            if !written[root(b)] {
                return Err(err(i, format!("reads buffer {b} before any step wrote it")));
            }
        }
        for &b in &writes {
            let r = root(b);
            if matches!(plan.buffers[r].kind, BufKind::Feed(_) | BufKind::Const(_)) {
                return Err(err(i, format!("writes buffer {b}, a feed or constant")));
            }
            written[r] = true;
        }
    }
    for &b in &plan.outputs {
        if b.index() >= n || !written[root(b)] {
            return Err(err(
                plan.steps.len(),
                format!("output buffer {b} is never written"),
            ));
        }
    }
    Ok(())
}

/// Checks a memory plan against its plan: every temporary has a slot big enough for it
/// (feeds, constants and aliases have none), and two temporaries share a slot only if
/// their live ranges do not overlap — except a kernel writing its output in place over
/// an operand that dies at that very step, read element for element where it writes
/// (`memory::in_place_ok`).
pub fn verify_memory(plan: &Plan, memory: &MemoryPlan) -> Result<(), PlanError> {
    let n = plan.buffers.len();
    let fail = |reason: String| {
        Err(PlanError {
            op: "memory plan".into(),
            reason,
        })
    };
    if memory.slot_of.len() != n {
        return fail(format!("{} slots for {n} buffers", memory.slot_of.len()));
    }
    let bytes = |b: BufId| {
        let t = &plan.buffers[b].ty;
        t.shape.numel() * crate::kernel::nest::elem_size(t.dtype)
    };
    let mut by_slot: Vec<Vec<BufId>> = vec![Vec::new(); memory.slot_bytes.len()];
    for b in (0..n).map(BufId::new) {
        let temp = matches!(plan.buffers[b].kind, BufKind::Temp);
        match (temp, memory.slot_of[b]) {
            (true, Some(s)) if s < memory.slot_bytes.len() && memory.slot_bytes[s] >= bytes(b) => {
                by_slot[s].push(b);
            }
            (true, slot) => {
                return fail(format!(
                    "temporary {b} has slot {slot:?}, missing or too small"
                ))
            }
            (false, None) => {}
            (false, Some(s)) => return fail(format!("buffer {b}, not a temporary, has slot {s}")),
        }
    }
    // Scans run alongside each other: what one writes is neither touched by the other
    // nor stored where the other's buffers are.
    for (i, _) in memory.alongside.iter().enumerate().filter(|(_, &a)| a) {
        let place = |b: BufId| {
            let r = memory::root(plan, b);
            (r, memory.slot_of[r])
        };
        let (ra, wa) = step_buffers(&plan.steps[i - 1]);
        let (rb, wb) = step_buffers(&plan.steps[i]);
        for (writes, other) in [(&wa, [&rb, &wb]), (&wb, [&ra, &wa])] {
            for &w in writes {
                let (wr, ws) = place(w);
                for &o in other.into_iter().flatten() {
                    let (or, os) = place(o);
                    if wr == or || (ws.is_some() && ws == os) {
                        return fail(format!(
                            "scans at steps {} and {i} run together, but buffer {w} (written) \
                             and {o} share storage",
                            i - 1
                        ));
                    }
                }
            }
        }
    }
    let (birth, death) = memory::lifetimes(plan, &memory.alongside);
    for (slot, bufs) in by_slot.iter().enumerate() {
        for (i, &a) in bufs.iter().enumerate() {
            for &b in &bufs[i + 1..] {
                let (a, b) = if birth[a] <= birth[b] { (a, b) } else { (b, a) };
                if death[a] < birth[b] {
                    continue;
                }
                let in_place = death[a] == birth[b]
                    && plan
                        .steps
                        .get(birth[b])
                        .is_some_and(|s| memory::in_place_ok(plan, s, a, b));
                if !in_place {
                    return fail(format!(
                        "buffers {a} (steps {}..={}) and {b} (steps {}..={}) share slot {slot} while both live",
                        birth[a], death[a], birth[b], death[b]
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The buffers a step reads and writes.
fn step_buffers(step: &Step) -> (Vec<BufId>, Vec<BufId>) {
    match step {
        Step::Kernel(k) => (
            k.loads.iter().map(|l| l.buffer).collect(),
            k.stores.iter().map(|s| s.buffer).collect(),
        ),
        Step::MatMul { a, b, out, .. } => (vec![a.buf, b.buf], vec![*out]),
        Step::Conv { x, w, out, .. } => (vec![*x, *w], vec![*out]),
        Step::Scan { args, outs, .. } | Step::Host { args, outs, .. } => {
            (args.clone(), outs.clone())
        }
        Step::Copy(_, args, out) => (args.clone(), vec![*out]),
    }
}

fn check_step(plan: &Plan, i: usize, step: &Step) -> Result<(), PlanError> {
    let ty = |b: BufId| &plan.buffers[b].ty;
    match step {
        Step::Kernel(k) => check_kernel(plan, i, k),
        Step::MatMul { a, b, out, dtype } => {
            for (what, v) in [("a", a), ("b", b)] {
                check_view(plan, i, what, v)?;
                if ty(v.buf).dtype != *dtype {
                    return Err(err(
                        i,
                        format!("matmul {what} is {}, not {dtype}", ty(v.buf).dtype),
                    ));
                }
            }
            let (ra, rb) = (a.shape.len(), b.shape.len());
            if ra < 2 || rb < 2 {
                return Err(err(i, "matmul operands below rank 2".into()));
            }
            // The batch axes broadcast (NumPy rules, aligned on the right).
            let (ba, bb) = (&a.shape[..ra - 2], &b.shape[..rb - 2]);
            let rank = ba.len().max(bb.len());
            let at = |s: &[usize], k: usize| (k + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
            let batch: usize = (0..rank).map(|k| at(ba, k).max(at(bb, k))).product();
            let (m, nn) = (a.shape[ra - 2], b.shape[rb - 1]);
            let want = batch * m * nn;
            if ty(*out).dtype != *dtype || ty(*out).shape.numel() != want {
                return Err(err(
                    i,
                    format!(
                        "matmul output buffer {} is {}, not {want} {dtype} elements",
                        out,
                        ty(*out)
                    ),
                ));
            }
            Ok(())
        }
        Step::Conv {
            x, w, out, dtype, ..
        } => {
            for b in [*x, *w, *out] {
                if ty(b).dtype != *dtype {
                    return Err(err(
                        i,
                        format!("conv buffer {b} is {}, not {dtype}", ty(b).dtype),
                    ));
                }
            }
            Ok(())
        }
        Step::Scan { .. } | Step::Copy(..) | Step::Host { .. } => Ok(()),
    }
}

/// The element offsets a strided access reaches over `shape`: `(lowest, highest)`, or
/// `None` when the space is empty (nothing is read).
fn reach(offset: isize, shape: &[usize], strides: &[isize]) -> Option<(i128, i128)> {
    if shape.contains(&0) {
        return None;
    }
    let (mut lo, mut hi) = (offset as i128, offset as i128);
    for (&d, &s) in shape.iter().zip(strides) {
        let span = (d as i128 - 1) * s as i128;
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    Some((lo, hi))
}

fn inside(plan: &Plan, buf: BufId, r: Option<(i128, i128)>) -> bool {
    let numel = plan.buffers[buf].ty.shape.numel() as i128;
    r.is_none_or(|(lo, hi)| lo >= 0 && hi < numel)
}

fn check_view(plan: &Plan, i: usize, what: &str, v: &View) -> Result<(), PlanError> {
    if v.shape.len() != v.strides.len() {
        return Err(err(
            i,
            format!(
                "view {what}: {} strides for rank {}",
                v.strides.len(),
                v.shape.len()
            ),
        ));
    }
    if !inside(plan, v.buf, reach(v.offset, &v.shape, &v.strides)) {
        return Err(err(
            i,
            format!(
                "view {what} (offset {}, shape {:?}, strides {:?}) reaches outside buffer {} of {} elements",
                v.offset,
                v.shape,
                v.strides,
                v.buf,
                plan.buffers[v.buf].ty.shape.numel()
            ),
        ));
    }
    Ok(())
}

fn check_kernel(plan: &Plan, i: usize, k: &Kernel) -> Result<(), PlanError> {
    let name = &k.name;
    // 2, 3: loads.
    for (j, l) in k.loads.iter().enumerate() {
        if l.strides.len() != k.shape.len() {
            return Err(err(
                i,
                format!(
                    "{name}: load {j} has {} strides for rank {}",
                    l.strides.len(),
                    k.shape.len()
                ),
            ));
        }
        let bty = &plan.buffers[l.buffer].ty;
        if bty.dtype != l.dtype {
            return Err(err(
                i,
                format!(
                    "{name}: load {j} reads {} from a {} buffer",
                    l.dtype, bty.dtype
                ),
            ));
        }
        if !inside(plan, l.buffer, reach(l.offset, &k.shape, &l.strides)) {
            return Err(err(
                i,
                format!(
                    "{name}: load {j} (offset {}, strides {:?} over {:?}) reaches outside buffer {} of {} elements",
                    l.offset,
                    l.strides,
                    k.shape,
                    l.buffer,
                    bty.shape.numel()
                ),
            ));
        }
    }
    // 5: expressions.
    if k.dtypes.len() != k.exprs.len() {
        return Err(err(
            i,
            format!(
                "{name}: {} dtypes for {} expressions",
                k.dtypes.len(),
                k.exprs.len()
            ),
        ));
    }
    for (e, x) in k.exprs.iter().enumerate() {
        if let Expr::Load(j) = *x {
            if j >= k.loads.len() {
                return Err(err(
                    i,
                    format!("{name}: expression {e} reads load {j} of {}", k.loads.len()),
                ));
            }
        }
        if let Some(o) = x.operands().into_iter().find(|&o| o.index() >= e) {
            return Err(err(
                i,
                format!("{name}: expression {e} reads expression {o}, not an earlier one"),
            ));
        }
    }
    // 4, 5: stores and the reduction.
    let space: usize = k.shape.iter().product();
    let red = k.reduction.as_ref();
    if let Some(r) = red {
        if r.stores().any(|j| j >= k.stores.len()) || r.axes.iter().any(|&a| a >= k.shape.len()) {
            return Err(err(
                i,
                format!(
                    "{name}: reduction names store {} or axes {:?} out of range",
                    r.store, r.axes
                ),
            ));
        }
    }
    for (j, s) in k.stores.iter().enumerate() {
        if s.expr.index() >= k.exprs.len() {
            return Err(err(
                i,
                format!(
                    "{name}: store {j} of expression {} of {}",
                    s.expr,
                    k.exprs.len()
                ),
            ));
        }
        let want = match red {
            Some(r) if r.reduces(j) => k
                .shape
                .iter()
                .enumerate()
                .filter(|(a, _)| !r.axes.contains(a))
                .map(|(_, &d)| d)
                .product(),
            Some(_) | None => space,
        };
        let bty = &plan.buffers[s.buffer].ty;
        let dt: DType = k.dtypes[s.expr];
        if let Some((offset, strides)) = &s.window {
            // A window of a bigger buffer (a concatenation written in place): never
            // reduced, within the buffer, the buffer's dtype.
            let reduced = red.is_some_and(|r| r.reduces(j));
            if reduced
                || bty.dtype != dt
                || strides.len() != k.shape.len()
                || !inside(plan, s.buffer, reach(*offset, &k.shape, strides))
            {
                return Err(err(
                    i,
                    format!(
                        "{name}: store {j} (offset {offset}, strides {strides:?} over {:?}) \
                         reaches outside buffer {} ({bty}) or is reduced",
                        k.shape, s.buffer
                    ),
                ));
            }
            continue;
        }
        if bty.dtype != dt || bty.shape.numel() != want {
            return Err(err(
                i,
                format!(
                    "{name}: store {j} writes {want} {dt} elements into buffer {} ({})",
                    s.buffer, bty
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::verify;
    use crate::plan::{plan, Plan, Step};
    use onde_ir::{parse_graph, DType};

    fn planned(src: &str) -> Plan {
        let p = plan(&parse_graph(src).unwrap()).unwrap();
        verify(&p).unwrap();
        p
    }

    const ELEMENTWISE: &str = r#"graph {
  %0: f32[4,8] = input "x"
  %1: f32[4,8] = tanh %0
  %2: f32[4] = reduce_sum %1 axes=[1] keepdim=false
  %3: f32[4,8] = exp %1
  %4: f32[4,8] = mul %3, %3
  outputs %2, %4
}"#;

    /// The first kernel step and its index.
    fn kernel(p: &mut Plan) -> &mut crate::kernel::Kernel {
        p.steps
            .iter_mut()
            .find_map(|s| match s {
                Step::Kernel(k) => Some(k),
                Step::MatMul { .. }
                | Step::Conv { .. }
                | Step::Scan { .. }
                | Step::Copy(..)
                | Step::Host { .. } => None,
            })
            .expect("a kernel step")
    }

    fn fails(p: &Plan, needle: &str) {
        let e = verify(p).expect_err("the corrupted plan must fail");
        assert!(e.to_string().contains(needle), "{e}");
    }

    #[test]
    fn every_invariant_catches_its_violation() {
        let good = planned(ELEMENTWISE);
        // A read past the end of its buffer.
        let mut p = good.clone();
        kernel(&mut p).loads[0].offset += 1;
        fails(&p, "reaches outside");
        // A negative corner.
        let mut p = good.clone();
        kernel(&mut p).loads[0].strides[0] = -8;
        fails(&p, "reaches outside");
        // A load of the wrong dtype.
        let mut p = good.clone();
        kernel(&mut p).loads[0].dtype = DType::F64;
        fails(&p, "reads f64");
        // An expression reading a later one.
        let mut p = good.clone();
        let k = kernel(&mut p);
        let last = k.exprs.len() - 1;
        k.exprs[0] =
            crate::kernel::Expr::Unary(onde_ir::UnaryOp::Neg, crate::kernel::ExprId::new(last));
        fails(&p, "not an earlier one");
        // A store into a buffer of another size.
        let mut p = good.clone();
        p.buffers.push(crate::plan::BufferSpec {
            ty: onde_ir::TensorType::new(DType::F32, [7]),
            kind: crate::plan::BufKind::Temp,
        });
        let seven = p.buffers.len() - 1;
        kernel(&mut p).stores[0].buffer = crate::plan::BufId::new(seven);
        fails(&p, "into buffer");
        // A window store (a concatenation operand) reaching past its buffer.
        let mut p = good.clone();
        let k = kernel(&mut p);
        let j = k.stores.len() - 1;
        k.stores[j].window = Some((1, vec![8, 1]));
        fails(&p, "reaches outside buffer");
        // A store into the input (a feed, read-only), of the right size.
        let mut p = planned(
            r#"graph {
  %0: f32[4,8] = input "x"
  %1: f32[4,8] = tanh %0
  outputs %1
}"#,
        );
        let feed = p
            .buffers
            .iter()
            .position(|b| matches!(b.kind, crate::plan::BufKind::Feed(_)))
            .unwrap();
        kernel(&mut p).stores[0].buffer = crate::plan::BufId::new(feed);
        fails(&p, "a feed or constant");
        // A step that reads a temporary before anything wrote it: the kernel consuming
        // a matrix product moved before it.
        let mut p = planned(
            r#"graph {
  %0: f32[4,8] = input "x"
  %1: f32[8,3] = input "w"
  %2: f32[4,3] = matmul %0, %1
  %3: f32[4,3] = tanh %2
  outputs %3
}"#,
        );
        assert_eq!(p.steps.len(), 2);
        p.steps.reverse();
        fails(&p, "before any step wrote it");
        // A buffer that does not exist.
        let mut p = good;
        kernel(&mut p).loads[0].buffer = crate::plan::BufId::new(1000);
        fails(&p, "names buffer 1000");
    }

    #[test]
    fn memory_plans_are_checked() {
        use crate::plan::memory::plan_memory;
        use crate::plan::BufId;
        // Two temporaries alive together (both outputs), and a chain where one dies as
        // the next is written in place.
        let p = planned(
            r#"graph {
  %0: f32[64] = input "x"
  %1: f32[64] = tanh %0
  %2: f32[64] = input "w"
  %3: f32[64,1] = reshape %0 shape=[64,1]
  %4: f32[1,64] = reshape %2 shape=[1,64]
  %5: f32[64,64] = matmul %3, %4
  %6: f32[64,64] = exp %5
  outputs %1, %6
}"#,
        );
        let m = plan_memory(&p);
        super::verify_memory(&p, &m).unwrap();
        let temps: Vec<BufId> = (0..p.buffers.len())
            .map(BufId::new)
            .filter(|&b| m.slot_of[b].is_some())
            .collect();
        assert!(temps.len() >= 2, "{m:?}");
        // The two outputs live to the end: one slot for both is refused.
        let (a, b) = (p.outputs[0], p.outputs[1]);
        let mut bad = m.clone();
        bad.slot_of[b] = bad.slot_of[a];
        bad.slot_bytes[bad.slot_of[a].unwrap()] = usize::MAX;
        let e = super::verify_memory(&p, &bad).unwrap_err();
        assert!(e.to_string().contains("while both live"), "{e}");
        // A slot smaller than its buffer.
        let mut small = m.clone();
        small.slot_bytes[small.slot_of[a].unwrap()] = 4;
        let e = super::verify_memory(&p, &small).unwrap_err();
        assert!(e.to_string().contains("too small"), "{e}");
        // A feed given a slot.
        let mut feed = m;
        let x = (0..p.buffers.len())
            .map(BufId::new)
            .find(|&b| matches!(p.buffers[b].kind, crate::plan::BufKind::Feed(_)))
            .unwrap();
        feed.slot_of[x] = Some(0);
        assert!(super::verify_memory(&p, &feed).is_err());
    }

    #[test]
    fn matmul_views_and_outputs_are_checked() {
        let good = planned(
            r#"graph {
  %0: f32[2,1,3,4] = input "a"
  %1: f32[5,4,2] = input "b"
  %2: f32[2,5,3,2] = matmul %0, %1
  outputs %2
}"#,
        );
        let mm = |p: &mut Plan| {
            p.steps
                .iter_mut()
                .find_map(|s| match s {
                    Step::MatMul { a, .. } => Some(a.offset),
                    Step::Kernel(_)
                    | Step::Conv { .. }
                    | Step::Scan { .. }
                    | Step::Copy(..)
                    | Step::Host { .. } => None,
                })
                .is_some()
        };
        let mut p = good.clone();
        assert!(mm(&mut p), "the product is a matmul step");
        for s in &mut p.steps {
            if let Step::MatMul { a, .. } = s {
                if let Some(st) = a.strides.last_mut() {
                    *st = 2;
                }
            }
        }
        fails(&p, "reaches outside");
        let mut p = good;
        for s in &mut p.steps {
            if let Step::MatMul { dtype, .. } = s {
                *dtype = DType::F64;
            }
        }
        fails(&p, "is f32, not f64");
    }
}
