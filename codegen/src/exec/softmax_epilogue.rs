//! A softmax, or softmax's backward, as the epilogue of the product it reads: step `i`
//! a matrix product `s = a·b` read only by step `i + 1`, either `softmax(s·c)` or
//! `softmax_backward(s, P)·c` along the last axis. The one-panel kernel applies the
//! step to the rows of each tile as soon as it is done
//! (`native::matmul::matmul_softmax_rows_capped`: the same
//! operations, the same bits): the softmax in place on the rows just stored, still in
//! L1; the backward from the registers, the product never stored — W5's scores `q·kᵀ`
//! and `dP = dO·vᵀ`, `[32, 100, 100]` each, not read back from L2. Where that kernel
//! does not take the product (shapes, ISA level, more than one thread), the two steps
//! run as they are (the product on the prepacked kernel where it would have been).
//!
//! # When
//! Step `i` is an f32 [`Step::MatMul`] whose output is read by no other step and is no
//! graph output; step `i + 1` is [`CopyOp::Softmax`] of that output, or
//! [`CopyOp::SoftmaxBackward`] with `dy` that output and `y` another buffer, along the
//! output's last axis; its destination is no graph output (a caller may bind an output
//! anywhere) and shares no storage with `a`, `b` (or `y`), which are still read while
//! rows of it are written.

use super::epilogue::shares_storage;
use crate::plan::memory::{self, root, MemoryPlan};
use crate::plan::{CopyOp, Plan, Step};
use onde_ir::DType;

/// Whether step `i` runs step `i + 1` as its epilogue (module doc); `Err` says why
/// not, for the verifier's messages.
pub(super) fn check(plan: &Plan, memory: &MemoryPlan, i: usize) -> Result<(), &'static str> {
    let Step::MatMul { a, b, out, dtype } = &plan.steps[i] else {
        return Err("not a matrix product");
    };
    let (axis, y, dst) = match plan.steps.get(i + 1) {
        Some(Step::Copy(CopyOp::Softmax { axis, .. }, args, dst)) if args[..] == [*out] => {
            (*axis, None, *dst)
        }
        Some(Step::Copy(CopyOp::SoftmaxBackward { axis, .. }, args, dst)) => {
            let [dy, y] = args.as_slice() else {
                return Err("softmax's backward without two operands");
            };
            if dy != out || root(plan, *y) == root(plan, *out) {
                return Err("not the backward of the product");
            }
            (*axis, Some(*y), *dst)
        }
        _ => return Err("the next step is not a softmax of the product or its backward"),
    };
    if *dtype != DType::F32 {
        return Err("not an f32 product");
    }
    if axis + 1 != plan.buffers[*out].ty.shape.dims().len() {
        return Err("not along the product's last axis");
    }
    let out_root = root(plan, *out);
    let is_output = |b| plan.outputs.iter().any(|&o| root(plan, o) == root(plan, b));
    let read_elsewhere =
        plan.steps.iter().enumerate().any(|(s, st)| {
            s != i + 1 && memory::reads(st).iter().any(|&r| root(plan, r) == out_root)
        });
    if read_elsewhere {
        return Err("the product is read by another step");
    }
    if is_output(*out) {
        return Err("the product is a graph output");
    }
    let clash = |x| shares_storage(plan, memory, dst, x);
    if is_output(dst) || clash(a.buf) || clash(b.buf) || y.is_some_and(clash) {
        return Err("the destination may overlap an operand or an output");
    }
    Ok(())
}
