//! Epilogue fusion: a kernel that consumes a matrix product's output row by row runs
//! on each block of rows right after the GEMM has written it, while the block is in
//! L1, instead of in a second pass over the whole output.
//!
//! # When
//! Step `i` is a 2-D f32 [`Step::MatMul`] `out[m, n] = a @ b` and step `i + 1` a
//! kernel over exactly `[m, n]` that reads `out` (offset 0, strides `[n, 1]`), keeps
//! axis 0 (no reduction, or one over axis 1 only: a bias + activation, a softmax's row
//! max or sum), and whose outermost normalised axis is the rows (`m`) or the whole
//! contiguous matrix (`m·n`), so a block of rows is a range of the kernel's
//! `[lo, hi)` contract. Its stores must not share storage with `a` or `b` (the GEMM
//! still reads them for later blocks), nor with `out` unless they are `[m, n]`
//! elementwise (then a block rewrites the rows it has just read), and must not be
//! graph outputs (a bound state may point them anywhere at run time).
//!
//! # Only with the prepacked GEMM
//! The executor fuses only when the product runs on the prepacked-weights kernel
//! (`native::packed`, versioned inference runs): `matrixmultiply` packs the right
//! operand on every call, so splitting its call into row blocks would repack the
//! weights once per block.
//!
//! # Measured: neutral here
//! The consumers after our GEMMs are compute-bound (a sigmoid costs more than
//! reading its input from L2) and the outputs fit in L2, so the saved pass is not
//! visible: W1 inference p10 0.1241 / 0.1242 / 0.1237 ms unfused vs 0.1250 / 0.1255 /
//! 0.1247 ms fused (alternating runs, `onde bench W1 [--no-epilogues]`); a
//! `[512,1024] @ [1024,2048]` + bias + sigmoid + row sum, 24.9–25.5 ms unfused vs
//! 24.6–26.6 ms fused; blocks of 12 rows were ~2% slower than 24. Within ~1% either
//! way at 24 rows, so it stays on, for consumers cheap enough to be bound by the
//! traffic it saves; `CompileOptions::epilogues = false` turns it off.

use crate::kernel::clif::outer_extent;
use crate::plan::memory::MemoryPlan;
use crate::plan::{BufKind, Plan, Step};
use onde_ir::DType;

/// Rows per block: two of the packed kernel's 12-row tiles (a 256-wide f32 block is
/// 24 KB, half of L1; see the module doc for the measurements).
pub(super) const ROWS: usize = 24;

/// How a kernel step follows its matmul: kernel outer-axis units per output row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Epilogue {
    pub(super) units_per_row: usize,
}

/// For each step, `Some` when it is a matmul whose next step is its epilogue.
pub(super) fn find(plan: &Plan, memory: &MemoryPlan) -> Vec<Option<Epilogue>> {
    (0..plan.steps.len())
        .map(|i| check(plan, memory, i))
        .collect()
}

fn root(plan: &Plan, b: usize) -> usize {
    match plan.buffers[b].kind {
        BufKind::Alias(r) => r,
        BufKind::Feed(_) | BufKind::Const(_) | BufKind::Temp => b,
    }
}

/// Whether buffers `x` and `y` may occupy the same memory.
fn shares_storage(plan: &Plan, memory: &MemoryPlan, x: usize, y: usize) -> bool {
    let (x, y) = (root(plan, x), root(plan, y));
    x == y
        || matches!(
            (memory.slot_of.get(x), memory.slot_of.get(y)),
            (Some(Some(s)), Some(Some(t))) if s == t
        )
}

fn check(plan: &Plan, memory: &MemoryPlan, i: usize) -> Option<Epilogue> {
    let Step::MatMul { a, b, out, dtype } = &plan.steps[i] else {
        return None;
    };
    let Some(Step::Kernel(k)) = plan.steps.get(i + 1) else {
        return None;
    };
    if *dtype != DType::F32 || a.shape.len() != 2 || b.shape.len() != 2 {
        return None;
    }
    let (m, n) = (a.shape[0], b.shape[1]);
    if k.shape != [m, n] || m == 0 || n == 0 {
        return None;
    }
    let reads: Vec<_> = k.loads.iter().filter(|l| l.buffer == *out).collect();
    if reads.is_empty()
        || reads
            .iter()
            .any(|l| l.offset != 0 || l.strides != [n as isize, 1])
    {
        return None;
    }
    if k.loads
        .iter()
        .any(|l| l.buffer != *out && root(plan, l.buffer) == root(plan, *out))
    {
        return None;
    }
    let red_store = match &k.reduction {
        Some(r) if r.axes == [1] => Some(r.store),
        Some(_) => return None,
        None => None,
    };
    for (j, s) in k.stores.iter().enumerate() {
        if plan
            .outputs
            .iter()
            .any(|&o| root(plan, o) == root(plan, s.buffer))
            || shares_storage(plan, memory, s.buffer, a.buf)
            || shares_storage(plan, memory, s.buffer, b.buf)
            || (Some(j) == red_store && shares_storage(plan, memory, s.buffer, *out))
        {
            return None;
        }
    }
    let units_per_row = match outer_extent(k) {
        (e, false) if e == m => 1,
        (e, false) if e == m * n => n,
        _ => return None,
    };
    Some(Epilogue { units_per_row })
}
