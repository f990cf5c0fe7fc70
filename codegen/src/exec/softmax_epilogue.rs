//! Softmax's backward as a product's epilogue: step `i` a matrix product `dP = a·b`
//! read only by step `i + 1`, softmax's backward `dS = softmax_backward(dP, P) · c`
//! along the last axis. The one-panel kernel applies the backward to each row of the
//! product as it leaves its registers (`native::matmul::matmul_softmax_backward_capped`:
//! the same operations, the same bits), so `dP` is never stored nor read back — W5's
//! `dO·vᵀ` and its scores' gradient, `[32, 100, 100]` each. Where that kernel does not
//! take the product (shapes, ISA level, more than one thread), the two steps run as
//! they are.
//!
//! # When
//! Step `i` is an f32 [`Step::MatMul`] whose output is read by no other step and is no
//! graph output; step `i + 1` is [`CopyOp::SoftmaxBackward`] along the output's last
//! axis with `dy` that output and `y` another buffer; its destination is no graph
//! output (a caller may bind an output anywhere) and shares no storage with `a`, `b`
//! or `y`, which are still read while rows of it are written.

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
    let Some(Step::Copy(CopyOp::SoftmaxBackward { axis, .. }, args, dst)) = plan.steps.get(i + 1)
    else {
        return Err("the next step is not softmax's backward");
    };
    if *dtype != DType::F32 {
        return Err("not an f32 product");
    }
    let [dy, y] = args.as_slice() else {
        return Err("softmax's backward without two operands");
    };
    let rank = plan.buffers[*out].ty.shape.dims().len();
    if dy != out || root(plan, *y) == root(plan, *out) || *axis + 1 != rank {
        return Err("not the backward of the product along its last axis");
    }
    let out_root = root(plan, *out);
    let is_output = |b| plan.outputs.iter().any(|&o| root(plan, o) == root(plan, b));
    let read_elsewhere =
        plan.steps.iter().enumerate().any(|(s, st)| {
            s != i + 1 && memory::reads(st).iter().any(|&r| root(plan, r) == out_root)
        });
    if read_elsewhere || is_output(*out) {
        return Err("the product, never stored, is read elsewhere");
    }
    let clash = |x| shares_storage(plan, memory, *dst, x);
    if is_output(*dst) || clash(a.buf) || clash(b.buf) || clash(*y) {
        return Err("the destination may overlap an operand or an output");
    }
    Ok(())
}
