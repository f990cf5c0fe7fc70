//! Planning: from a graph to a list of steps over buffers.
//!
//! Walking the ops in topological order, each value is either a materialised buffer
//! or a [`Lazy`] expression. Elementwise ops, broadcasts, permutes, slices and
//! contiguous reshapes stay lazy, so chains of them fuse into the kernel that finally
//! materialises them. A value is materialised when
//! - it is a graph output, a reduction result, or an operand of a non-fusible op;
//! - it is used more than once and is not trivially cheap (so no work is duplicated);
//! - its expression grows past [`MAX_FUSED_OPS`] (compile time is ~1–2 µs per CLIF
//!   instruction, so kernels are capped).
//!
//! A reduction consumes its lazy operand directly: the producer chain is computed inside
//! the reduction loop (`sum(x·x)` is one pass over memory). Matrix products and
//! convolutions are [`Step::MatMul`]/[`Step::Conv`] on library kernels (matmul reads
//! transposed and broadcast operands through strides, with no copy). Concat, pad,
//! gather, scatter_add, argmax/argmin, random and softmax run natively as
//! [`Step::Copy`] loops;
//! a scan is a [`Step::Scan`] loop over its compiled body; integer `pow` is an
//! elementwise kernel op (a square-and-multiply loop in the element's code). What is
//! left (bool argmax or scatter) runs as [`Step::Host`] steps evaluated by the
//! reference interpreter on a one-op graph.

pub mod concurrent;
mod cost;
pub mod lazy;
pub mod memory;
mod merge;
mod row_sums;
mod scaled_softmax;
mod steps;
pub mod verify;

use cost::{cost, scalar_worth_storing};
use merge::intern;
pub use merge::merge_kernels;
pub(crate) use merge::writes;
pub(crate) use row_sums::reads_at_each_element;
pub use steps::{BufId, BufKind, BufferSpec, CopyOp, Plan, PlanError, Step, View};

use crate::kernel::{Expr, ExprId, Kernel, Load, Reduction, Store};
use lazy::{contiguous, LNode, Lazy};
use onde_ir::{BinaryOp, DType, Graph, Op, OpId, ReduceKind, TensorType, ValueId};
use std::collections::HashMap;

/// Largest number of ops fused into one kernel before materialising.
pub const MAX_FUSED_OPS: usize = 48;

/// A value used several times is recomputed in each consumer (instead of being written
/// to memory and read back) when its expression costs at most this much (1 per
/// arithmetic op, 4 per transcendental). Consumers with the same iteration space are
/// then merged into one kernel ([`merge_kernels`]), where the duplicate computations
/// collapse, so the value is computed once and never stored.
pub const RECOMPUTE_BUDGET: usize = 16;

/// A shared lazy value reading this many whole tensors is stored once rather than
/// recomputed by each consumer: the sum of four gradient contributions of a residual
/// stream in W2's backward was re-read by three batch-norm reductions (80 MB a pass,
/// memory-bound), where one stored copy costs one write and one read each (the W2
/// measurements behind the threshold are in `docs/performance.md`). Two whole reads
/// are not enough: a batch norm's masked gradient `where(relu_mask(x), 0, dy)` reads
/// `x` and `dy`, and every consumer reads `x` anyway, so storing it only added a write
/// and a read per consumer. Values computing a
/// transcendental are left to recomputation unless they fit in cache
/// ([`CACHED_TRANSCENDENTAL_MAX_NUMEL`]), and small ones ([`MEMORY_HEAVY_MIN_NUMEL`])
/// too.
const SHARED_MAX_FULL_READS: usize = 3;

/// Smallest value for the memory-traffic rule above (a quarter MiB of f32): below, the
/// data stays in cache and recomputing is cheaper (an optimiser's moments must stay
/// fused into its in-place update).
const MEMORY_HEAVY_MIN_NUMEL: usize = 1 << 16;

/// Largest shared transcendental value stored once rather than recomputed by each
/// consumer (2 MiB of f32, one core's L2): written and read back while it is still in
/// cache, one store and one load per element cost less than a second `exp` (e.g. the
/// exponentials of an attention softmax, read by the row sums, the normalisation and
/// the backward). Bigger values stream from memory, where recomputing wins; values
/// smaller than [`MEMORY_HEAVY_MIN_NUMEL`] stay recomputed too, so a recurrent step's
/// small gate kernel is not split in two. Measurements: `docs/performance.md`.
const CACHED_TRANSCENDENTAL_MAX_NUMEL: usize = 1 << 19;

/// Least cost ([`cost`]) of a broadcast operand worth storing at its own size (one
/// transcendental): see [`Planner::store_before_broadcast`].
const BROADCAST_STORE_COST: usize = 4;

/// Least broadcast factor for [`Planner::store_before_broadcast`].
const BROADCAST_STORE_FACTOR: usize = 4;

/// Least broadcast factor at which any computed operand (one op is enough) is stored
/// at its own size before an elementwise op broadcasts it: a batch norm's per-channel
/// `1/√(var/n + ε)` broadcast over `[N, C, T]` would otherwise be recomputed for each
/// of the N·T elements of a channel (a division and a square root per element, which
/// made W2's normalisation kernels bound by arithmetic instead of memory), while the
/// stored `[1, C, 1]` costs one tiny kernel.
const WIDE_BROADCAST_FACTOR: usize = 1024;

/// Most expressions in a merged kernel.
pub const MAX_MERGED_EXPRS: usize = 160;

#[derive(Clone, Debug)]
enum Val {
    Buf(BufId),
    Lazy(Lazy),
}

struct Planner<'g> {
    g: &'g Graph,
    buffers: Vec<BufferSpec>,
    steps: Vec<Step>,
    vals: HashMap<ValueId, Val>,
    uses: HashMap<ValueId, usize>,
    kernels: usize,
    /// Buffers holding values that stay lazy for their other consumers.
    materialized: HashMap<ValueId, BufId>,
}

/// Plans `g` (which must verify).
pub fn plan(g: &Graph) -> Result<Plan, PlanError> {
    let mut uses: HashMap<ValueId, usize> = HashMap::new();
    for o in g.op_ids() {
        for v in g.operands(o) {
            *uses.entry(v).or_default() += 1;
        }
    }
    for &v in g.outputs() {
        *uses.entry(v).or_default() += 1;
    }
    let mut p = Planner {
        g,
        buffers: Vec::new(),
        steps: Vec::new(),
        vals: HashMap::new(),
        uses,
        kernels: 0,
        materialized: HashMap::new(),
    };
    let order = g.topo_ops().ok_or_else(|| PlanError {
        op: "graph".into(),
        reason: "the graph has a cycle".into(),
    })?;
    for o in order {
        p.op(o)?;
    }
    let mut outputs = Vec::new();
    let mut copies = Vec::new();
    for &v in g.outputs() {
        let b = p.materialize(v, "output")?;
        // An output that is an input (or a reshape of one) is copied at the start of the
        // run: handing out the caller's array would let a read after the run see freed
        // or updated memory (a state updated in place, a dropped batch).
        let root = match p.buffers[b].kind {
            BufKind::Alias(r) => r,
            BufKind::Feed(_) | BufKind::Const(_) | BufKind::Temp => b,
        };
        if matches!(p.buffers[root].kind, BufKind::Feed(_)) {
            let t = p.buffers[b].ty.clone();
            let l = Lazy::buffer(b, t.dtype, t.shape.dims());
            let copy = p.emit_kernel(&l, None, "output_copy");
            if let Some(step) = p.steps.pop() {
                copies.push(step);
            }
            outputs.push(copy);
        } else {
            outputs.push(b);
        }
    }
    copies.append(&mut p.steps);
    p.steps = copies;
    let steps = merge::sink_products_to_bias_kernels(&p.buffers, p.steps);
    let steps = merge_kernels(&p.buffers, steps);
    let steps = merge::sink_products(&p.buffers, steps);
    let steps = concurrent::pair_scans(&p.buffers, steps);
    let steps = row_sums::split_after_convs(&mut p.buffers, steps);
    Ok(Plan {
        buffers: p.buffers,
        steps,
        outputs,
    })
}

fn is_float_or(d: DType) -> bool {
    d.is_float()
}

impl Planner<'_> {
    fn ty(&self, v: ValueId) -> TensorType {
        self.g.value_type(v).clone()
    }

    /// `%id = op @ file:line` for the producer of `v`.
    fn describe(&self, v: ValueId) -> String {
        match self.g.producer(v) {
            Some(o) => {
                let n = self.g.op(o);
                let at = n
                    .loc
                    .as_ref()
                    .map(|l| format!(" @ {}:{}", l.file, l.line))
                    .unwrap_or_default();
                format!("{v:?} = {}{at}", n.op.name())
            }
            None => format!("{v:?}"),
        }
    }

    fn new_buf(&mut self, ty: TensorType, kind: BufKind) -> BufId {
        self.buffers.push(BufferSpec { ty, kind });
        BufId::new(self.buffers.len() - 1)
    }

    fn lazy(&self, v: ValueId) -> Result<Lazy, PlanError> {
        let t = self.ty(v);
        match self.vals.get(&v) {
            Some(Val::Buf(b)) => Ok(Lazy::buffer(*b, t.dtype, t.shape.dims())),
            Some(Val::Lazy(l)) => Ok(l.clone()),
            None => Err(PlanError {
                op: format!("{v:?}"),
                reason: "value used before it is computed".into(),
            }),
        }
    }

    /// Turns a lazy value into a kernel writing a new buffer.
    fn emit_kernel(
        &mut self,
        l: &Lazy,
        reduction: Option<(ReduceKind, Vec<usize>, Vec<usize>)>,
        label: &str,
    ) -> BufId {
        let out_shape = match &reduction {
            Some((_, _, out)) => out.clone(),
            None => l.shape.clone(),
        };
        let buf = self.new_buf(TensorType::new(l.dtype, out_shape), BufKind::Temp);
        self.emit_kernel_to(l, reduction, label, buf, None);
        buf
    }

    /// Turns a lazy value into a kernel writing `buf`: all of it, or the `window`
    /// `(offset, strides)` of it (no reduction then).
    fn emit_kernel_to(
        &mut self,
        l: &Lazy,
        reduction: Option<(ReduceKind, Vec<usize>, Vec<usize>)>,
        label: &str,
        buf: BufId,
        window: Option<(isize, Vec<isize>)>,
    ) {
        let mut k = Kernel {
            name: format!("k{}_{label}", self.kernels),
            shape: l.shape.clone(),
            loads: Vec::new(),
            exprs: Vec::new(),
            dtypes: Vec::new(),
            stores: Vec::new(),
            reduction: reduction.map(|(kind, axes, _)| Reduction {
                kind,
                axes,
                store: 0,
                also: vec![],
            }),
            fused: l.ops.clone(),
        };
        self.kernels += 1;
        let mut load_ids: HashMap<(BufId, isize, Vec<isize>), usize> = HashMap::new();
        let mut dtypes_of_nodes: Vec<DType> = Vec::with_capacity(l.nodes.len());
        // Lazy node index -> kernel expression index; identical expressions (the same
        // load, or the same op on the same operands) are emitted once.
        let mut node_expr: Vec<ExprId> = Vec::with_capacity(l.nodes.len());
        let mut seen: HashMap<String, ExprId> = HashMap::new();
        for n in &l.nodes {
            let (e, d) = match n {
                LNode::Leaf {
                    buf,
                    dtype,
                    offset,
                    strides,
                } => {
                    let key = (*buf, *offset, strides.clone());
                    let next = k.loads.len();
                    let id = *load_ids.entry(key).or_insert(next);
                    if id == next {
                        k.loads.push(Load {
                            buffer: *buf,
                            dtype: *dtype,
                            offset: *offset,
                            strides: strides.clone(),
                        });
                    }
                    (Expr::Load(id), *dtype)
                }
                LNode::Const(v, d) => (Expr::Const(*v, *d), *d),
                LNode::Unary(u, a) => (Expr::Unary(*u, node_expr[*a]), dtypes_of_nodes[*a]),
                LNode::Binary(b, x, y) => (
                    Expr::Binary(*b, node_expr[*x], node_expr[*y]),
                    dtypes_of_nodes[*x],
                ),
                LNode::Compare(c, x, y) => {
                    (Expr::Compare(*c, node_expr[*x], node_expr[*y]), DType::Bool)
                }
                LNode::Where(c, x, y) => (
                    Expr::Where(node_expr[*c], node_expr[*x], node_expr[*y]),
                    dtypes_of_nodes[*x],
                ),
                LNode::Cast(d, a) => (Expr::Cast(*d, node_expr[*a]), *d),
            };
            dtypes_of_nodes.push(d);
            node_expr.push(intern(&mut k, &mut seen, e, d));
        }
        k.stores.push(Store {
            buffer: buf,
            expr: node_expr[l.root()],
            window,
        });
        self.steps.push(Step::Kernel(k));
    }

    /// The value as a buffer (materialising it if lazy). A cheap lazy value stays lazy
    /// for its other consumers (see [`RECOMPUTE_BUDGET`]).
    /// `v` materialised, read back as a whole contiguous buffer.
    fn stored(&mut self, v: ValueId, why: &str) -> Result<Lazy, PlanError> {
        let b = self.materialize(v, why)?;
        let t = self.ty(v);
        Ok(Lazy::buffer(b, t.dtype, t.shape.dims()))
    }

    fn materialize(&mut self, v: ValueId, why: &str) -> Result<BufId, PlanError> {
        if let Some(&b) = self.materialized.get(&v) {
            return Ok(b);
        }
        match self.vals.get(&v).cloned() {
            Some(Val::Buf(b)) => Ok(b),
            Some(Val::Lazy(l)) => {
                let b = match l.is_whole_buffer() {
                    Some(b) if self.buffers[b].ty.shape.dims() == l.shape.as_slice() => b,
                    Some(b) => {
                        let root = match self.buffers[b].kind {
                            BufKind::Alias(r) => r,
                            BufKind::Feed(_) | BufKind::Const(_) | BufKind::Temp => b,
                        };
                        self.new_buf(
                            TensorType::new(l.dtype, l.shape.clone()),
                            BufKind::Alias(root),
                        )
                    }
                    None => self.emit_kernel(&l, None, why),
                };
                if cost(&l) <= RECOMPUTE_BUDGET {
                    self.materialized.insert(v, b);
                } else {
                    self.vals.insert(v, Val::Buf(b));
                }
                Ok(b)
            }
            None => Err(PlanError {
                op: format!("{v:?}"),
                reason: "value used before it is computed".into(),
            }),
        }
    }

    /// The lazy operand `v` of an elementwise op producing `out_numel` elements. A
    /// one-element operand that is costly or mixes dtypes ([`scalar_worth_storing`])
    /// is stored first when the op broadcasts it over more elements, so it is computed
    /// once rather than per element (scalar chains stay fused until that point).
    fn elem_operand(&mut self, v: ValueId, out_numel: usize) -> Result<Lazy, PlanError> {
        let l = self.lazy(v)?;
        if out_numel > 1 && scalar_worth_storing(&l) {
            let b = self.emit_kernel(&l, None, "scalar");
            self.vals.insert(v, Val::Buf(b));
            let t = self.ty(v);
            return Ok(Lazy::buffer(b, t.dtype, t.shape.dims()));
        }
        // An operand the op broadcasts (implicitly, `[B, T, 1] · [B, T, C]`): a costly
        // one is stored once rather than recomputed per output element, as below.
        let numel: usize = l.shape.iter().product();
        let worth = (cost(&l) >= BROADCAST_STORE_COST
            && numel.saturating_mul(BROADCAST_STORE_FACTOR) <= out_numel)
            || numel.saturating_mul(WIDE_BROADCAST_FACTOR) <= out_numel;
        if l.ops() > 0 && worth {
            let b = self.materialize(v, "broadcast_operand")?;
            let t = self.ty(v);
            return Ok(Lazy::buffer(b, t.dtype, t.shape.dims()));
        }
        if let Some(stored) = self.store_before_broadcast(&l) {
            self.vals.insert(v, Val::Lazy(stored.clone()));
            return Ok(stored);
        }
        Ok(l)
    }

    /// A costly value broadcast along some axes (every read has stride 0 there), e.g.
    /// attention-pooling weights `softmax_T(s)` `[B, T, 1]` expanded over the channels:
    /// fused as it is, every consumer element would recompute its `exp` (64 times per
    /// weight in W5). Stored once at its own size and read back through
    /// a broadcast leaf instead, when it costs at least [`BROADCAST_STORE_COST`] per
    /// element and is broadcast at least [`BROADCAST_STORE_FACTOR`]-fold.
    fn store_before_broadcast(&mut self, l: &Lazy) -> Option<Lazy> {
        if l.ops() == 0 || cost(l) < BROADCAST_STORE_COST {
            return None;
        }
        let leaves = l.leaf_strides();
        let broadcast: Vec<bool> = (0..l.shape.len())
            .map(|a| l.shape[a] > 1 && leaves.iter().all(|s| s[a] == 0))
            .collect();
        let factor: usize = (0..l.shape.len())
            .filter(|&a| broadcast[a])
            .map(|a| l.shape[a])
            .product();
        if factor < BROADCAST_STORE_FACTOR {
            return None;
        }
        let own: Vec<usize> = (0..l.shape.len())
            .map(|a| if broadcast[a] { 1 } else { l.shape[a] })
            .collect();
        let mut small = l.clone();
        small.shape = own.clone();
        let b = self.emit_kernel(&small, None, "broadcast_operand");
        Some(Lazy::buffer(b, l.dtype, &own).broadcast(&l.shape))
    }

    /// Records a lazy result, materialising it if it is shared and costly, or big.
    fn set_lazy(&mut self, v: ValueId, l: Lazy, label: &str) {
        let l = l.note(self.describe(v));
        let shared = self.uses.get(&v).copied().unwrap_or(0) > 1;
        let memory_heavy = full_reads(&l) >= SHARED_MAX_FULL_READS
            && !transcendental(&l)
            && l.shape.iter().product::<usize>() >= MEMORY_HEAVY_MIN_NUMEL;
        let numel = l.shape.iter().product::<usize>();
        let cached_transcendental = transcendental(&l)
            && (MEMORY_HEAVY_MIN_NUMEL..=CACHED_TRANSCENDENTAL_MAX_NUMEL).contains(&numel);
        if (shared && (cost(&l) > RECOMPUTE_BUDGET || memory_heavy || cached_transcendental))
            || l.ops() > MAX_FUSED_OPS
            || (shared && l.ops() > 0 && self.feeds_library_op(v))
        {
            let b = self.emit_kernel(&l, None, label);
            self.vals.insert(v, Val::Buf(b));
        } else {
            self.vals.insert(v, Val::Lazy(l));
        }
    }

    /// Whether `v` reaches a matrix product or convolution operand (directly or through
    /// view ops). Such an operand is materialised anyway; when `v` is also used
    /// elsewhere, storing it once lets every consumer read it — the library op through
    /// a strided view — instead of each consumer recomputing it (a backward pass's
    /// `dz` feeds both `dz @ W` and `dzᵀ @ x`, and the bias gradient).
    fn feeds_library_op(&self, v: ValueId) -> bool {
        let mut stack = vec![v];
        let mut seen = std::collections::HashSet::new();
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            for u in self.g.users(x) {
                match &self.g.op(u).op {
                    Op::MatMul | Op::Conv(_) => return true,
                    Op::Permute { .. } | Op::Reshape { .. } | Op::Expand { .. } => {
                        stack.extend(self.g.results(u));
                    }
                    Op::Input { .. }
                    | Op::Parameter { .. }
                    | Op::Constant(_)
                    | Op::Unary(_)
                    | Op::Binary(_)
                    | Op::Compare(_)
                    | Op::Where
                    | Op::Cast { .. }
                    | Op::Reduce { .. }
                    | Op::ArgReduce { .. }
                    | Op::Slice { .. }
                    | Op::Unfold { .. }
                    | Op::Pad { .. }
                    | Op::Concat { .. }
                    | Op::Gather { .. }
                    | Op::ScatterAdd { .. }
                    | Op::Softmax { .. }
                    | Op::SoftmaxBackward { .. }
                    | Op::Detach
                    | Op::Random { .. }
                    | Op::Scan(_) => {}
                }
            }
        }
        false
    }

    fn op(&mut self, o: OpId) -> Result<(), PlanError> {
        let node = self.g.op(o).clone();
        let xs = self.g.operands(o);
        let rs = self.g.results(o);
        let Some(&r) = rs.first() else {
            return Ok(());
        };
        let rt = self.ty(r);
        let shape = rt.shape.dims().to_vec();
        let label = node.op.name();
        match &node.op {
            Op::Input { name, ty } | Op::Parameter { name, ty } => {
                let b = self.new_buf(ty.clone(), BufKind::Feed(name.clone()));
                self.vals.insert(r, Val::Buf(b));
            }
            Op::Constant(a) => {
                if a.numel() == 1 {
                    let v = a.to_f64_vec()[0];
                    let l = Lazy::constant(v, a.dtype(), &shape);
                    self.vals.insert(r, Val::Lazy(l));
                } else {
                    let b = self.new_buf(rt.clone(), BufKind::Const(a.clone()));
                    self.vals.insert(r, Val::Buf(b));
                }
            }
            Op::Unary(u) => self.elementwise(r, &xs, label, |n| LNode::Unary(*u, n[0]))?,
            Op::Binary(_) if self.fold_softmax_backward_scale(&node.op, &xs, r) => {}
            Op::Binary(b) => {
                self.elementwise(r, &xs, label, |n| LNode::Binary(*b, n[0], n[1]))?;
            }
            Op::Compare(c) => {
                self.elementwise(r, &xs, label, |n| LNode::Compare(*c, n[0], n[1]))?;
            }
            Op::Where => self.elementwise(r, &xs, label, |n| LNode::Where(n[0], n[1], n[2]))?,
            Op::Cast { to } => self.elementwise(r, &xs, label, |n| LNode::Cast(*to, n[0]))?,
            Op::Detach => {
                let a = self.lazy(xs[0])?;
                self.set_lazy(r, a, label);
            }
            Op::Expand { shape: s } => {
                let a = self.elem_operand(xs[0], rt.shape.numel())?;
                self.set_lazy(r, a.broadcast(s.dims()), label);
            }
            Op::Permute { perm } => {
                let a = self.lazy(xs[0])?;
                self.set_lazy(r, a.permute(perm), label);
            }
            Op::Slice { axes } => {
                let a = self.lazy(xs[0])?;
                self.set_lazy(r, a.slice(axes), label);
            }
            Op::Unfold {
                axis,
                size,
                step,
                dilation,
            } => {
                let mut a = self.lazy(xs[0])?;
                let overlap = *step < (*size - 1) * *dilation + 1;
                if *size > 1 && overlap && a.ops() > 0 {
                    // Overlapping windows of a computed value: store it once rather
                    // than recompute each element in every window reading it (or
                    // materialise all windows, `size`× the data, for a matmul).
                    a = self.stored(xs[0], "unfold_operand")?;
                }
                let count = shape[axis + 1];
                self.set_lazy(r, a.unfold(*axis, *size, count, *step, *dilation), label);
            }
            Op::Reshape { shape: s } => {
                let a = self.lazy(xs[0])?;
                let l = match a.reshape(s.dims()) {
                    Some(l) => l,
                    None => {
                        let whole = self.stored(xs[0], "reshape_src")?;
                        whole.reshape(s.dims()).ok_or_else(|| PlanError {
                            op: "reshape".into(),
                            reason: "a contiguous buffer could not be reshaped".into(),
                        })?
                    }
                };
                self.set_lazy(r, l, label);
            }
            Op::Reduce { kind, axes, .. } => {
                let src = self.ty(xs[0]);
                let reduced_empty = axes.iter().any(|&a| src.shape.dims()[a] == 0);
                let minmax = matches!(kind, ReduceKind::Max | ReduceKind::Min);
                if axes.is_empty() || (reduced_empty && minmax) || src.shape.numel() == 0 {
                    return self.host(o, &xs, &rs);
                }
                let a = self.lazy(xs[0])?.note(self.describe(r));
                let b = self.emit_kernel(&a, Some((*kind, axes.clone(), shape.clone())), label);
                self.vals.insert(r, Val::Buf(b));
            }
            Op::MatMul if !is_float_or(rt.dtype) => return self.host(o, &xs, &rs),
            Op::MatMul => self.matmul(r, xs[0], xs[1])?,
            Op::Conv(p) => self.conv(r, xs[0], xs[1], p)?,
            Op::Concat { axis } => {
                if !self.concat_in_place(r, &xs, *axis)? {
                    let operands: Vec<_> = xs.iter().map(|&x| (x, "concat_operand")).collect();
                    self.copy_step(r, CopyOp::Concat { axis: *axis }, &operands)?;
                }
            }
            Op::Pad { pads, value_bits } => {
                let pad = CopyOp::Pad {
                    pads: pads.clone(),
                    value: Op::pad_value(*value_bits),
                };
                self.copy_step(r, pad, &[(xs[0], "pad_operand")])?;
            }
            Op::Gather { axis } => {
                let operands = [(xs[0], "gather_input"), (xs[1], "gather_index")];
                self.copy_step(r, CopyOp::Gather { axis: *axis }, &operands)?;
            }
            Op::ScatterAdd { axis, .. } if rt.dtype != DType::Bool => {
                let operands = [(xs[0], "scatter_index"), (xs[1], "scatter_source")];
                self.copy_step(r, CopyOp::ScatterAdd { axis: *axis }, &operands)?;
            }
            Op::ArgReduce { kind, axis, .. } if self.ty(xs[0]).dtype != DType::Bool => {
                let op = CopyOp::ArgReduce {
                    kind: *kind,
                    axis: *axis,
                };
                self.copy_step(r, op, &[(xs[0], "argreduce_input")])?;
            }
            Op::Softmax { axis } => {
                // `softmax(x · c)` reads `x` and takes the factor (`scaled_softmax`).
                let (x, scale) = self.softmax_input_scale(xs[0], r).unwrap_or((xs[0], 1.0));
                self.copy_step(
                    r,
                    CopyOp::Softmax { axis: *axis, scale },
                    &[(x, "softmax_input")],
                )?;
            }
            Op::SoftmaxBackward { axis } => {
                self.copy_step(
                    r,
                    CopyOp::SoftmaxBackward {
                        axis: *axis,
                        scale: 1.0,
                    },
                    &[
                        (xs[0], "softmax_backward_dy"),
                        (xs[1], "softmax_backward_y"),
                    ],
                )?;
            }
            Op::Random { dist, dtype, .. } if dtype.is_float() => {
                self.copy_step(r, CopyOp::Random { dist: *dist }, &[(xs[0], "random_seed")])?;
            }
            Op::ArgReduce { .. } | Op::ScatterAdd { .. } | Op::Random { .. } => {
                return self.host(o, &xs, &rs)
            }
            Op::Scan(sc) => self.scan(sc, &xs, &rs)?,
        }
        Ok(())
    }

    /// `r = a @ b` on the library GEMM, operands read as strided views.
    fn matmul(&mut self, r: ValueId, a: ValueId, b: ValueId) -> Result<(), PlanError> {
        let (a, b) = (self.view(a)?, self.view(b)?);
        let rt = self.ty(r);
        let dtype = rt.dtype;
        let out = self.new_buf(rt, BufKind::Temp);
        self.steps.push(Step::MatMul { a, b, out, dtype });
        self.vals.insert(r, Val::Buf(out));
        Ok(())
    }

    /// `r = conv(x, w)` on the native kernels.
    fn conv(
        &mut self,
        r: ValueId,
        x: ValueId,
        w: ValueId,
        params: &onde_ir::ConvParams,
    ) -> Result<(), PlanError> {
        let x = self.materialize(x, "conv_input")?;
        let w = self.materialize(w, "conv_weight")?;
        let rt = self.ty(r);
        let dtype = rt.dtype;
        let out = self.new_buf(rt, BufKind::Temp);
        let params = params.clone();
        self.steps.push(Step::Conv {
            x,
            w,
            out,
            params,
            dtype,
        });
        self.vals.insert(r, Val::Buf(out));
        Ok(())
    }

    /// A scan over materialised operands, its results new buffers.
    fn scan(
        &mut self,
        sc: &onde_ir::ScanOp,
        xs: &[ValueId],
        rs: &[ValueId],
    ) -> Result<(), PlanError> {
        let mut args = Vec::with_capacity(xs.len());
        for &x in xs {
            args.push(self.materialize(x, "scan_operand")?);
        }
        let mut outs = Vec::with_capacity(rs.len());
        for &r in rs {
            let b = self.new_buf(self.ty(r), BufKind::Temp);
            self.vals.insert(r, Val::Buf(b));
            outs.push(b);
        }
        self.steps.push(Step::Scan {
            scan: sc.clone(),
            args,
            outs,
        });
        Ok(())
    }

    /// `r` as a lazy elementwise combination of its (broadcast) operands `xs`, fused
    /// into whatever kernel finally materialises it.
    fn elementwise(
        &mut self,
        r: ValueId,
        xs: &[ValueId],
        label: &str,
        make: impl Fn(&[usize]) -> LNode,
    ) -> Result<(), PlanError> {
        let rt = self.ty(r);
        let n = rt.shape.numel();
        let mut parts = Vec::with_capacity(xs.len());
        for &x in xs {
            parts.push(self.elem_operand(x, n)?);
        }
        let l = Lazy::combine(rt.shape.dims(), rt.dtype, &parts, make);
        self.set_lazy(r, l, label);
        Ok(())
    }

    /// A concatenation whose operands are computed (lazy, not yet stored) is written
    /// in place: each operand's kernel stores straight into its window of the result,
    /// instead of into a buffer of its own that a copy then concatenates. Kernels over
    /// the same operand shape merge into one loop (a recurrent backward step's gate
    /// gradients: one kernel for the whole `[B, 3H]`, no copy). Operands already in
    /// memory are copied in by a kernel too. `false` (nothing emitted) when no operand
    /// is computed: the native copy stays.
    fn concat_in_place(
        &mut self,
        r: ValueId,
        xs: &[ValueId],
        axis: usize,
    ) -> Result<bool, PlanError> {
        let mut lazies = Vec::with_capacity(xs.len());
        for &x in xs {
            lazies.push(self.lazy(x)?);
        }
        let t = self.ty(r);
        // An empty result has no element to write (its buffer would stay unwritten).
        if lazies.iter().all(|l| l.ops() == 0) || t.shape.numel() == 0 {
            return Ok(false);
        }
        let out = self.new_buf(t.clone(), BufKind::Temp);
        let strides = contiguous(t.shape.dims());
        let mut at = 0isize;
        for (l, &x) in lazies.iter().zip(xs) {
            let extent = self.ty(x).shape.dims()[axis];
            if extent > 0 && l.shape.iter().all(|&d| d > 0) {
                let window = (at * strides[axis], strides.clone());
                self.emit_kernel_to(l, None, "concat_operand", out, Some(window));
            }
            at += extent as isize;
        }
        self.vals.insert(r, Val::Buf(out));
        Ok(true)
    }

    /// `r` as a new buffer written by a native copy step ([`Step::Copy`]) over its
    /// materialised operands (`(value, why)` for the error messages).
    fn copy_step(
        &mut self,
        r: ValueId,
        op: CopyOp,
        operands: &[(ValueId, &str)],
    ) -> Result<(), PlanError> {
        let mut args = Vec::with_capacity(operands.len());
        for &(v, why) in operands {
            args.push(self.materialize(v, why)?);
        }
        let out = self.new_buf(self.ty(r), BufKind::Temp);
        self.steps.push(Step::Copy(op, args, out));
        self.vals.insert(r, Val::Buf(out));
        Ok(())
    }

    /// A strided view for a library operand: a single read of a buffer stays a view;
    /// anything else is materialised first (with its last two axes swapped in memory
    /// when its reads are contiguous along the second-last axis).
    fn view(&mut self, v: ValueId) -> Result<View, PlanError> {
        let l = self.lazy(v)?;
        if let Some((buf, offset, strides)) = l.as_leaf() {
            return Ok(View {
                buf,
                offset,
                shape: l.shape.clone(),
                strides: strides.to_vec(),
            });
        }
        let r = l.shape.len();
        if r >= 2 && transposed_reads(&l) {
            // A transposed computed operand (W5's `(k + bias)ᵀ` for `q kᵀ`): written in
            // the layout its reads are contiguous in (vectorised loads and stores),
            // passed to the library as a transposed view (it takes any strides).
            let mut perm: Vec<usize> = (0..r).collect();
            perm.swap(r - 2, r - 1);
            let natural = l.permute(&perm);
            let b = self.emit_kernel(&natural, None, "matmul_operand");
            let mut strides = contiguous(&natural.shape);
            strides.swap(r - 2, r - 1);
            return Ok(View {
                buf: b,
                offset: 0,
                shape: l.shape.clone(),
                strides,
            });
        }
        let b = self.materialize(v, "matmul_operand")?;
        Ok(View {
            buf: b,
            offset: 0,
            shape: l.shape.clone(),
            strides: contiguous(&l.shape),
        })
    }

    /// Runs op `o` on the interpreter.
    fn host(&mut self, o: OpId, xs: &[ValueId], rs: &[ValueId]) -> Result<(), PlanError> {
        let node = self.g.op(o).clone();
        let mut args = Vec::new();
        let mut g = Graph::new();
        let mut ins = Vec::new();
        for (i, &x) in xs.iter().enumerate() {
            args.push(self.materialize(x, "host_operand")?);
            let ty = self.ty(x);
            let (_, r) = g
                .add_op(
                    Op::Input {
                        name: format!("a{i}"),
                        ty,
                    },
                    &[],
                    None,
                )
                .map_err(|e| PlanError {
                    op: node.op.name().into(),
                    reason: e.to_string(),
                })?;
            ins.push(r[0]);
        }
        let (_, res) = g
            .add_op(node.op.clone(), &ins, node.loc.clone())
            .map_err(|e| PlanError {
                op: node.op.name().into(),
                reason: e.to_string(),
            })?;
        g.set_outputs(res);
        let mut outs = Vec::new();
        for &r in rs {
            let b = self.new_buf(self.ty(r), BufKind::Temp);
            self.vals.insert(r, Val::Buf(b));
            outs.push(b);
        }
        self.steps.push(Step::Host {
            graph: g,
            args,
            outs,
        });
        Ok(())
    }
}

/// Whether the buffer reads of `l` are contiguous along its second-last axis and none
/// along its last (a transposed elementwise value): written as is, its kernel would
/// load and store with a stride on the innermost axis (scalar code).
fn transposed_reads(l: &Lazy) -> bool {
    let r = l.shape.len();
    if l.shape[r - 1] < 2 || l.shape[r - 2] < 2 {
        return false;
    }
    let leaves = l.leaf_strides();
    leaves.iter().any(|s| s[r - 2] == 1) && leaves.iter().all(|s| s[r - 1] != 1)
}

/// Distinct buffer reads of `l` that touch a different element at every position
/// (no broadcast axis): its memory traffic per element, in tensors.
fn full_reads(l: &Lazy) -> usize {
    let mut seen: Vec<(BufId, isize, &[isize])> = Vec::new();
    for n in &l.nodes {
        if let LNode::Leaf {
            buf,
            offset,
            strides,
            ..
        } = n
        {
            let full = strides
                .iter()
                .zip(&l.shape)
                .all(|(&st, &e)| st != 0 || e <= 1);
            if full
                && !seen
                    .iter()
                    .any(|(b, o, s)| b == buf && o == offset && *s == strides.as_slice())
            {
                seen.push((*buf, *offset, strides.as_slice()));
            }
        }
    }
    seen.len()
}

/// Whether `l` computes a transcendental function (its recomputation costs arithmetic,
/// not only memory: W6's `tanh(x·a + b)` is cheaper recomputed in the backward kernel,
/// which reads `x`, `a` and `b` anyway, than stored).
fn transcendental(l: &Lazy) -> bool {
    l.nodes
        .iter()
        .any(|n| matches!(n, LNode::Unary(u, _) if u.is_transcendental()))
}
