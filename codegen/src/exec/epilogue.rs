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
//! # In registers
//! When the kernel is exactly `act(out + bias)` (a Linear layer's bias and
//! sigmoid/tanh/relu, either part optional) and nothing else reads the product, the
//! prepacked GEMM applies it to each 12×32 output tile while the tile is still in
//! registers (`native::packed::gemm_epilogue`, the engine's 16-lane activations, so
//! bit-identical to the separate kernel) and the product is never stored. W1
//! inference: 0.1224 ms (p10 0.1187) against 0.1252 (0.1236) for the previous binary
//! in the same minute. The activation runs in an out-of-line function after the
//! accumulation loop: inlined, its temporaries slowed the loop itself ~2.5×.
//!
//! # Row blocks: measured neutral
//! The consumers after our GEMMs are compute-bound (a sigmoid costs more than
//! reading its input from L2) and the outputs fit in L2, so the saved pass is not
//! visible: W1 inference p10 0.1241 / 0.1242 / 0.1237 ms unfused vs 0.1250 / 0.1255 /
//! 0.1247 ms fused (alternating runs, `onde bench W1 [--no-epilogues]`); a
//! `[512,1024] @ [1024,2048]` + bias + sigmoid + row sum, 24.9–25.5 ms unfused vs
//! 24.6–26.6 ms fused; blocks of 12 rows were ~2% slower than 24. Within ~1% either
//! way at 24 rows, so it stays on, for consumers cheap enough to be bound by the
//! traffic it saves; `CompileOptions::epilogues = false` turns it off.

use crate::kernel::clif::outer_extent;
use crate::kernel::{Expr, Kernel};
use crate::native::packed::Activation;
use crate::plan::memory::{self, root, MemoryPlan};
use crate::plan::{Plan, Step};
use onde_ir::{BinaryOp, DType, UnaryOp};

/// Rows per block: two of the packed kernel's 12-row tiles (a 256-wide f32 block is
/// 24 KB, half of L1; see the module doc for the measurements).
pub(super) const ROWS: usize = 24;

/// How a kernel step follows its matmul: kernel outer-axis units per output row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Epilogue {
    pub(super) units_per_row: usize,
    /// When the kernel is just `act(out + bias)`, computed in the GEMM's registers.
    pub(super) simple: Option<Simple>,
}

/// A kernel `dst = act(out + bias)` (bias broadcast along rows, both parts optional)
/// that the prepacked GEMM applies to each output tile in registers, so the product
/// itself is never stored (only when nothing else reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Simple {
    /// `(buffer, element offset)` of the bias.
    pub(super) bias: Option<(usize, isize)>,
    pub(super) act: Activation,
    /// The kernel's output buffer.
    pub(super) dst: usize,
}

/// For each step, `Some` when it is a matmul whose next step is its epilogue.
pub(super) fn find(plan: &Plan, memory: &MemoryPlan) -> Vec<Option<Epilogue>> {
    (0..plan.steps.len())
        .map(|i| check(plan, memory, i))
        .collect()
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
    // The product is not needed as such when only this kernel reads it.
    let out_root = root(plan, *out);
    let read_elsewhere =
        plan.steps.iter().enumerate().any(|(s, st)| {
            s != i + 1 && memory::reads(st).iter().any(|&b| root(plan, b) == out_root)
        }) || plan.outputs.iter().any(|&o| root(plan, o) == out_root);
    let simple = if read_elsewhere {
        None
    } else {
        // The tile writes the destination while later tiles still read the bias:
        // they must not share storage (the planner never makes them, checked anyway).
        simple(k, *out, n).filter(|sm| {
            sm.bias
                .is_none_or(|(b, _)| !shares_storage(plan, memory, sm.dst, b))
        })
    };
    Some(Epilogue {
        units_per_row,
        simple,
    })
}

/// Matches `k` against `dst = act(out + bias)`: loads of `out` (row-major) and at
/// most one f32 row-broadcast `bias`, an optional add of the two, an optional
/// sigmoid/tanh/relu, one elementwise store.
fn simple(k: &Kernel, out: usize, n: usize) -> Option<Simple> {
    if k.reduction.is_some() || k.stores.len() != 1 || k.loads.len() > 2 {
        return None;
    }
    let mut bias = None;
    for l in &k.loads {
        if l.buffer == out {
            continue;
        }
        if l.dtype != DType::F32 || l.strides != [0, 1] || l.offset < 0 || bias.is_some() {
            return None;
        }
        bias = Some((l.buffer, l.offset));
    }
    let is_load_of = |e: usize, want_out: bool| match k.exprs[e] {
        Expr::Load(l) => (k.loads[l].buffer == out) == want_out,
        Expr::Const(..)
        | Expr::Unary(..)
        | Expr::Binary(..)
        | Expr::Compare(..)
        | Expr::Where(..)
        | Expr::Cast(..) => false,
    };
    let root = k.stores[0].expr;
    let act_of = |u: UnaryOp| match u {
        UnaryOp::Sigmoid => Some(Activation::Sigmoid),
        UnaryOp::Tanh => Some(Activation::Tanh),
        UnaryOp::Relu => Some(Activation::Relu),
        UnaryOp::Neg
        | UnaryOp::Abs
        | UnaryOp::Sign
        | UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Sqrt
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Floor
        | UnaryOp::Not => None,
    };
    let (pre, act) = match k.exprs[root] {
        Expr::Unary(u, x) => (x, act_of(u)?),
        Expr::Load(_)
        | Expr::Const(..)
        | Expr::Binary(..)
        | Expr::Compare(..)
        | Expr::Where(..)
        | Expr::Cast(..) => (root, Activation::None),
    };
    let with_bias = matches!(
        k.exprs[pre],
        Expr::Binary(BinaryOp::Add, x, y)
            if (is_load_of(x, true) && is_load_of(y, false))
                || (is_load_of(x, false) && is_load_of(y, true))
    );
    if with_bias != bias.is_some() || (!with_bias && !is_load_of(pre, true)) {
        return None;
    }
    // Every expression must be one of those just matched (no other work).
    let used = 1
        + usize::from(bias.is_some())
        + usize::from(with_bias)
        + usize::from(act != Activation::None);
    if k.exprs.len() != used || k.dtypes.iter().any(|&d| d != DType::F32) || n == 0 {
        return None;
    }
    Some(Simple {
        bias,
        act,
        dst: k.stores[0].buffer,
    })
}
