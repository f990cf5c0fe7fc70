//! Epilogue fusion: the kernel that consumes a matrix product's or a convolution's
//! output runs on it while it is still in registers (matmul) or in cache (conv); a
//! softmax of a product, its backward, a residual add or its column sums, likewise
//! (`exec::rows_epilogue`).
//!
//! # Matmul: in registers
//! ## When
//! Step `i` is a 2-D f32 [`Step::MatMul`] `out[m, n] = a @ b` and step `i + 1` the
//! kernel `dst = act(out + bias)` over `[m, n]` or a row-major reshape of it ending in
//! `n` (`[T, B, n]` for a linear layer on a sequence): it reads `out` row-major
//! (offset 0), at most one f32 `bias` broadcast along rows, adds them
//! (optional) and applies sigmoid, tanh or relu (optional), with one elementwise
//! store. Nothing else may read `out` (it is never stored), and `dst` must not share
//! storage with `a`, `b` or the bias (the GEMM still reads them for later tiles) nor
//! be a graph output (a bound state may point it anywhere at run time).
//!
//! ## How
//! `native::prepacked::gemm_epilogue` applies `act(acc + bias)` to each output tile with
//! the tile engine's activations (16 lanes on AVX-512, 8 on AVX2), so the values are
//! bit-identical to the separate kernel. Only where the product runs on the prepacked
//! GEMM (`exec/prepacked.rs`: versioned runs, and plain runs for a transposed weight
//! with few rows). The activation is in an out-of-line function after the
//! accumulation loop: inlined, its temporaries slowed the loop itself ~2.5×.
//!
//! Elsewhere, a bias-only kernel on one thread whose product goes to the one-panel
//! kernel (a plain run over many rows: W5's `[3200, 64]` projections) gets the bias
//! added to each accumulator as it is stored; one whose product goes to the `gemm`
//! crate is folded the other way round: the bias is written to `dst` first and the
//! GEMM adds the product onto it (`native::matmul::matmul_bias_capped`: one rounding
//! of the same sum, so the same bits, NaN payloads aside). Otherwise the kernel runs
//! as its own step.
//!
//! A general form running any row-major consumer on blocks of rows was tried and
//! removed (neutral; `docs/performance.md`).
//!
//! # Conv: on blocks of finished rows
//! Convolution outputs are the opposite case: a keyword spotter's `[32, 32, 4000]` is
//! 16 MiB, and its consumers (bias, batch norm, ReLU, a residual add) are one cheap
//! pass each, bound by memory, not by arithmetic. So the consumer is not fused into the
//! convolution's arithmetic: the convolution still stores its output, and the
//! consumer's compiled kernel runs on each block of rows as soon as the convolution
//! has written it (`native::conv_then`: one batch entry of W2, 512 KiB, in L2),
//! on the thread that wrote it. The kernel is the same compiled code, called on a
//! sub-range of its outer axis, so results are bit-identical to the separate step.
//!
//! ## Measured
//! Neutral while the activations fit the last-level cache, 1.37× on W2's first layers
//! at batch 128 (64 MiB per activation): `docs/performance.md`.
//!
//! ## When
//! Step `i` is a [`Step::Conv`] and step `i + 1` a kernel over exactly the
//! convolution's output shape — elementwise, or reducing a suffix of its axes with an
//! outer axis kept (a batch norm's sums over `N` and `T`, split into sums of rows by
//! `plan::row_sums` for this), so that its outer loop visits the output's rows in
//! order — that reads the output only at the
//! element it writes (offset 0, row-major strides; other operands are free: a
//! per-channel bias, batch-norm scale and shift, a residual). Its stores must not share
//! storage with the convolution's input or weight (later blocks still read them): the
//! memory plan is checked here, and each run checks the actual pointers too (a graph
//! output may be bound by the caller to any memory, an input's included), falling
//! back to the separate step when they overlap. The kernel may write in place over
//! the convolution's output: a block is finished when it runs. Other readers of the
//! output are fine (it is stored).

use crate::kernel::{Expr, ExprId, Kernel};
use crate::native::prepacked::Activation;
use crate::plan::memory::{self, root, MemoryPlan};
use crate::plan::{BufId, Plan, PlanError, Step};
use onde_ir::{BinaryOp, DType, UnaryOp};

/// A kernel `dst = act(out + bias)` (bias broadcast along rows, both parts optional)
/// that the prepacked GEMM applies to each output tile in registers, so the product
/// itself is never stored (only when nothing else reads it); a bias-only one may
/// instead be preset in `dst` for the library GEMM to add the product onto (module
/// doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Simple {
    /// `(buffer, element offset)` of the bias.
    pub(super) bias: Option<(BufId, isize)>,
    pub(super) act: Activation,
    /// The kernel's output buffer.
    pub(super) dst: BufId,
}

/// How a step runs its next step as its epilogue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Fused {
    /// A matmul applies [`Simple`] (the next step, a kernel) to its output tiles in
    /// registers.
    Registers(Simple),
    /// A convolution runs the next step, a kernel, on each block of output rows it
    /// finishes.
    Rows,
    /// A matmul applies the next step, a softmax of the product, its backward, a
    /// residual add or its column sums, to the rows of each tile as it is done
    /// (`exec::rows_epilogue`): what it does and its destination.
    TileRows(super::rows_epilogue::After, BufId),
}

/// For each step, `Some` when it is a matmul or conv whose next step is its epilogue.
pub(super) fn find(plan: &Plan, memory: &MemoryPlan) -> Vec<Option<Fused>> {
    (0..plan.steps.len())
        .map(|i| match plan.steps[i] {
            Step::MatMul { .. } => check(plan, memory, i).map(Fused::Registers).or_else(|| {
                super::rows_epilogue::check(plan, memory, i)
                    .ok()
                    .map(|(what, dst)| Fused::TileRows(what, dst))
            }),
            Step::Conv { .. } => check_conv(plan, memory, i).then_some(Fused::Rows),
            Step::Kernel(_) | Step::Host { .. } | Step::Scan { .. } | Step::Copy(..) => None,
        })
        .collect()
}

/// The epilogue verifier: restates, from the plan and the memory plan alone, what the
/// executor's `unsafe` code relies on for each fused pair `find` returned (run after
/// `find` in debug builds, so in every test):
/// - **registers**: step `i` is a 2-D f32 matmul and step `i + 1` an elementwise f32
///   kernel over its `m·n` elements (last axis `n`) with one whole-buffer store, to
///   `dst`, reading the product element for element only; nothing but that kernel
///   reads the product and it is no graph output (it is never stored); `dst` is no
///   graph output and shares no storage with either operand or the bias; the bias is
///   an f32 buffer holding `n` elements from its offset (the tile reads them all);
/// - **rows**: step `i` is a convolution and step `i + 1` a kernel over its output's
///   shape, elementwise or reducing a suffix of its axes (outer loop over the rows in
///   order), whose stores share no storage with the convolution's input or weight
///   (later blocks still read them);
/// - **tile rows**: as `exec::rows_epilogue::check` states.
pub(super) fn verify(
    plan: &Plan,
    memory: &MemoryPlan,
    fused: &[Option<Fused>],
) -> Result<(), PlanError> {
    let fail = |i: usize, why: &str| PlanError {
        op: format!("plan step {i}"),
        reason: format!("epilogue of step {}: {why}", i + 1),
    };
    if fused.len() != plan.steps.len() {
        return Err(fail(0, "one entry per step expected"));
    }
    let is_output = |b: BufId| plan.outputs.iter().any(|&o| root(plan, o) == root(plan, b));
    for (i, f) in fused.iter().enumerate() {
        let Some(f) = f else { continue };
        if let Fused::TileRows(what, dst) = *f {
            let found = super::rows_epilogue::check(plan, memory, i).map_err(|why| fail(i, why))?;
            if found != (what, dst) {
                return Err(fail(i, "the recorded epilogue is not the next step's"));
            }
            continue;
        }
        let Some(Step::Kernel(k)) = plan.steps.get(i + 1) else {
            return Err(fail(i, "the next step is not a kernel"));
        };
        let reduces = k.reduction.is_some();
        match (f, &plan.steps[i]) {
            (Fused::Registers(sm), Step::MatMul { a, b, out, dtype }) => {
                if reduces {
                    return Err(fail(i, "the kernel reduces"));
                }
                if *dtype != DType::F32 || a.shape.len() != 2 || b.shape.len() != 2 {
                    return Err(fail(i, "not a 2-D f32 matrix product"));
                }
                let (m, n) = (a.shape[0], b.shape[1]);
                if k.iterations() != m * n
                    || k.shape.last() != Some(&n)
                    || k.stores.len() != 1
                    || k.stores[0].buffer != sm.dst
                    || k.stores[0].window.is_some()
                    || k.dtypes.iter().any(|&d| d != DType::F32)
                {
                    return Err(fail(
                        i,
                        "not one whole-buffer f32 store over the product's rows of n",
                    ));
                }
                // The tile holds the product's element (i, j): the kernel must read the
                // product there only (row-major, offset 0), and no other view of it.
                let row_major = crate::plan::lazy::contiguous(&k.shape);
                let out_root = root(plan, *out);
                let bad_read = k.loads.iter().any(|l| {
                    root(plan, l.buffer) == out_root
                        && (l.buffer != *out
                            || l.offset != 0
                            || (0..k.shape.len())
                                .any(|a| k.shape[a] != 1 && l.strides[a] != row_major[a]))
                });
                if bad_read {
                    return Err(fail(
                        i,
                        "the product is read other than element for element",
                    ));
                }
                let read_elsewhere = plan.steps.iter().enumerate().any(|(s, st)| {
                    s != i + 1 && memory::reads(st).iter().any(|&r| root(plan, r) == out_root)
                });
                if read_elsewhere || is_output(*out) {
                    return Err(fail(i, "the product, never stored, is read elsewhere"));
                }
                let clash = |x: BufId| shares_storage(plan, memory, sm.dst, x);
                if is_output(sm.dst)
                    || clash(a.buf)
                    || clash(b.buf)
                    || sm.bias.is_some_and(|(bb, _)| clash(bb))
                {
                    return Err(fail(
                        i,
                        "the destination may overlap an operand or an output",
                    ));
                }
                if let Some((bb, offset)) = sm.bias {
                    let spec = &plan.buffers[bb];
                    let fits =
                        offset >= 0 && (offset as usize).saturating_add(n) <= spec.ty.shape.numel();
                    if spec.ty.dtype != DType::F32 || !fits {
                        return Err(fail(i, "the bias does not hold n f32 values"));
                    }
                }
            }
            (Fused::Rows, Step::Conv { x, w, out, .. }) => {
                if !rows_in_order(k) {
                    return Err(fail(i, "the kernel reduces other than rows in order"));
                }
                if k.shape != plan.buffers[*out].ty.shape.dims() {
                    return Err(fail(
                        i,
                        "the kernel does not run over the convolution's output",
                    ));
                }
                let clash = k.stores.iter().any(|st| {
                    shares_storage(plan, memory, st.buffer, *x)
                        || shares_storage(plan, memory, st.buffer, *w)
                });
                if clash {
                    return Err(fail(
                        i,
                        "a store may overlap the convolution's input or weight",
                    ));
                }
            }
            (Fused::Registers(_) | Fused::Rows | Fused::TileRows(..), _) => {
                return Err(fail(i, "the fused step is of another kind"));
            }
        }
    }
    Ok(())
}

/// Whether step `i`, a convolution, can run step `i + 1` on its finished rows (see
/// the module doc).
fn check_conv(plan: &Plan, memory: &MemoryPlan, i: usize) -> bool {
    let Step::Conv { x, w, out, .. } = &plan.steps[i] else {
        return false;
    };
    let Some(Step::Kernel(k)) = plan.steps.get(i + 1) else {
        return false;
    };
    if !rows_in_order(k) || !crate::plan::reads_at_each_element(&plan.buffers, k, *out) {
        return false;
    }
    k.stores.iter().all(|st| {
        !shares_storage(plan, memory, st.buffer, *x) && !shares_storage(plan, memory, st.buffer, *w)
    })
}

/// Whether `k`'s outer loop runs over its iteration space in row-major blocks: no
/// reduction, or one over a suffix of its axes (`plan::row_sums`) that leaves an outer
/// kept loop, so a call on outer indices `[lo, hi)` reads and writes exactly those
/// rows (and their reduced values).
fn rows_in_order(k: &Kernel) -> bool {
    let Some(red) = &k.reduction else {
        return true;
    };
    let r = k.shape.len();
    let suffix = red
        .axes
        .iter()
        .enumerate()
        .all(|(j, &a)| a == r - red.axes.len() + j);
    let (_, outer_reduced) = crate::kernel::clif::outer_extent(k);
    suffix
        && !red.axes.is_empty()
        && !outer_reduced
        && crate::kernel::clif::column_nest(k).is_none()
        && (0..r - red.axes.len()).any(|a| k.shape[a] > 1)
}

/// Whether buffers `x` and `y` may occupy the same memory.
pub(super) fn shares_storage(plan: &Plan, memory: &MemoryPlan, x: BufId, y: BufId) -> bool {
    let (x, y) = (root(plan, x), root(plan, y));
    x == y
        || matches!(
            (memory.slot_of.get(x.index()), memory.slot_of.get(y.index())),
            (Some(Some(s)), Some(Some(t))) if s == t
        )
}

fn check(plan: &Plan, memory: &MemoryPlan, i: usize) -> Option<Simple> {
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
    // The kernel runs over `[m, n]`, or over a row-major reshape of it whose last axis
    // is `n` (a linear layer on `[T, B, I]` computes `[T·B, n]` and adds its bias over
    // `[T, B, n]`).
    let r = k.shape.len();
    if r < 2 || k.shape[r - 1] != n || k.shape[..r - 1].iter().product::<usize>() != m {
        return None;
    }
    if m == 0 || n == 0 {
        return None;
    }
    let row_major = crate::plan::lazy::contiguous(&k.shape);
    let reads: Vec<_> = k.loads.iter().filter(|l| l.buffer == *out).collect();
    if reads.is_empty()
        || reads.iter().any(|l| {
            l.offset != 0 || (0..r).any(|a| k.shape[a] != 1 && l.strides[a] != row_major[a])
        })
    {
        return None;
    }
    if k.loads
        .iter()
        .any(|l| l.buffer != *out && root(plan, l.buffer) == root(plan, *out))
    {
        return None;
    }
    for st in &k.stores {
        if plan
            .outputs
            .iter()
            .any(|&o| root(plan, o) == root(plan, st.buffer))
            || shares_storage(plan, memory, st.buffer, a.buf)
            || shares_storage(plan, memory, st.buffer, b.buf)
        {
            return None;
        }
    }
    // The product is not needed as such when only this kernel reads it.
    let out_root = root(plan, *out);
    let read_elsewhere =
        plan.steps.iter().enumerate().any(|(s, st)| {
            s != i + 1 && memory::reads(st).iter().any(|&b| root(plan, b) == out_root)
        }) || plan.outputs.iter().any(|&o| root(plan, o) == out_root);
    if read_elsewhere {
        return None;
    }
    // The tile writes the destination while later tiles still read the bias: they
    // must not share storage (the planner never makes them, checked anyway).
    simple(k, *out, n).filter(|sm| {
        sm.bias
            .is_none_or(|(b, _)| !shares_storage(plan, memory, sm.dst, b))
    })
}

/// Matches `k` against `dst = act(out + bias)`: loads of `out` (row-major) and at
/// most one f32 row-broadcast `bias`, an optional add of the two, an optional
/// sigmoid/tanh/relu, one elementwise store.
fn simple(k: &Kernel, out: BufId, n: usize) -> Option<Simple> {
    if k.reduction.is_some()
        || k.stores.len() != 1
        || k.stores[0].window.is_some()
        || k.loads.len() > 2
    {
        return None;
    }
    let mut bias = None;
    for l in &k.loads {
        if l.buffer == out {
            continue;
        }
        let (last, rows) = l.strides.split_last()?;
        let row_broadcast = *last == 1 && rows.iter().all(|&s| s == 0);
        if l.dtype != DType::F32 || !row_broadcast || l.offset < 0 || bias.is_some() {
            return None;
        }
        bias = Some((l.buffer, l.offset));
    }
    let is_load_of = |e: ExprId, want_out: bool| match k.exprs[e] {
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

#[cfg(test)]
mod tests {
    use super::{find, verify, Fused};
    use crate::plan::memory::plan_memory;
    use crate::plan::{plan, Plan};
    use onde_ir::parse_graph;

    /// A linear layer with bias and sigmoid: its kernel fuses into the product.
    const LINEAR: &str = r#"graph {
  %0: f32[50,33] = input "x"
  %1: f32[33,70] = input "w"
  %2: f32[70] = input "b"
  %3: f32[50,70] = matmul %0, %1
  %4: f32[50,70] = expand %2 shape=[50,70]
  %5: f32[50,70] = add %3, %4
  %6: f32[50,70] = sigmoid %5
  %8: f32[70,20] = input "w2"
  %7: f32[50,20] = matmul %6, %8
  outputs %7
}"#;

    fn fused(p: &Plan) -> (usize, Vec<Option<Fused>>) {
        let f = find(p, &plan_memory(p));
        let i = f.iter().position(Option::is_some).expect("a fused matmul");
        (i, f)
    }

    #[test]
    fn what_find_admits_passes_and_corruptions_are_named() {
        let p = plan(&parse_graph(LINEAR).unwrap()).unwrap();
        let (i, f) = fused(&p);
        let memory = plan_memory(&p);
        verify(&p, &memory, &f).unwrap();

        // A bias read past its buffer's end.
        let mut bad = f.clone();
        if let Some(Fused::Registers(sm)) = &mut bad[i] {
            sm.bias = sm.bias.map(|(b, _)| (b, 1));
        }
        let e = verify(&p, &memory, &bad).unwrap_err().to_string();
        assert!(e.contains("bias"), "{e}");

        // The destination made a graph output (a caller may bind it anywhere).
        let mut q = p.clone();
        if let Some(Fused::Registers(sm)) = &f[i] {
            q.outputs.push(sm.dst);
        }
        let e = verify(&q, &memory, &f).unwrap_err().to_string();
        assert!(e.contains("overlap an operand or an output"), "{e}");

        // The fusion attached to a step of another kind, and a missing entry.
        let mut shifted = vec![None; f.len()];
        shifted[i + 1] = f[i];
        assert!(verify(&p, &memory, &shifted).is_err());
        assert!(verify(&p, &memory, &f[1..]).is_err());
    }

    #[test]
    fn a_product_read_elsewhere_is_refused() {
        // The same layer also returning the product: `find` refuses; a forged entry
        // must fail the verifier.
        let src = LINEAR.replace("outputs %7", "outputs %7, %3");
        let p = plan(&parse_graph(&src).unwrap()).unwrap();
        let memory = plan_memory(&p);
        let f = find(&p, &memory);
        assert!(f.iter().all(Option::is_none));
        let (_, good) = fused(&plan(&parse_graph(LINEAR).unwrap()).unwrap());
        let forged: Vec<_> = (0..p.steps.len())
            .map(|s| good.get(s).copied().flatten())
            .collect();
        let e = verify(&p, &memory, &forged).unwrap_err().to_string();
        assert!(
            e.contains("read elsewhere") || e.contains("another kind"),
            "{e}"
        );
    }

    #[test]
    fn rows_take_sums_of_rows_only() {
        // A convolution and a sum over the batch and time with a value stored in the
        // same loop: split into row sums, which `find` fuses and the verifier passes. A
        // sum over the batch alone is not fused; forged, the verifier names it.
        let conv = |sum: &str, ty: &str| {
            format!(
                r#"graph {{
  %0: f32[2,4,300] = input "x"
  %1: f32[4,4,1] = input "w"
  %2: f32[2,4,300] = conv %0, %1 stride=[1] padding=[(0,0)] dilation=[1] groups=1
  %3: {ty} = reduce_sum %2 {sum} keepdim=false
  %4: f32[2,4,300] = tanh %2
  outputs %3, %4
}}"#
            )
        };
        let p = plan(&parse_graph(&conv("axes=[0,2]", "f32[4]")).unwrap()).unwrap();
        let memory = plan_memory(&p);
        let f = find(&p, &memory);
        assert_eq!(f[0], Some(Fused::Rows), "{:?}", p.steps);
        verify(&p, &memory, &f).unwrap();

        let q = plan(&parse_graph(&conv("axes=[0]", "f32[4,300]")).unwrap()).unwrap();
        let memory = plan_memory(&q);
        let f = find(&q, &memory);
        assert!(f.iter().all(Option::is_none), "{:?}", q.steps);
        let mut forged = f.clone();
        forged[0] = Some(Fused::Rows);
        let e = verify(&q, &memory, &forged).unwrap_err().to_string();
        assert!(e.contains("rows in order"), "{e}");
    }
}
