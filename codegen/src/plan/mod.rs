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
//! gather, scatter_add, argmax/argmin and random run natively as [`Step::Copy`] loops;
//! a scan is a [`Step::Scan`] loop over its compiled body; integer `pow` is an
//! elementwise kernel op (a square-and-multiply loop in the element's code). What is
//! left (bool argmax or scatter) runs as [`Step::Host`] steps evaluated by the
//! reference interpreter on a one-op graph.

pub mod lazy;
pub mod memory;
pub mod verify;

use crate::kernel::{Expr, Kernel, Load, Reduction, Store};
use lazy::{contiguous, LNode, Lazy};
use onde_ir::{
    Array, BinaryOp, ConvParams, DType, Graph, Op, OpId, ReduceKind, TensorType, ValueId,
};
use std::collections::HashMap;

/// Largest number of ops fused into one kernel before materialising.
pub const MAX_FUSED_OPS: usize = 48;

/// A value used several times is recomputed in each consumer (instead of being written
/// to memory and read back) when its expression costs at most this much (1 per
/// arithmetic op, 4 per transcendental). Consumers with the same iteration space are
/// then merged into one kernel ([`merge_kernels`]), where the duplicate computations
/// collapse, so the value is computed once and never stored.
pub const RECOMPUTE_BUDGET: usize = 16;

/// Most expressions in a merged kernel.
pub const MAX_MERGED_EXPRS: usize = 160;

/// Where a buffer's memory comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum BufKind {
    /// An input or parameter, fed by name at run time (read-only).
    Feed(String),
    /// A constant, filled at compile time.
    Const(Array),
    /// A temporary written by a step.
    Temp,
    /// The same memory as another buffer, seen with another shape (a reshape).
    Alias(usize),
}

/// A buffer of the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferSpec {
    /// dtype and shape (contiguous).
    pub ty: TensorType,
    /// Origin.
    pub kind: BufKind,
}

/// A strided view of a buffer (for library matmul operands).
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    /// Buffer.
    pub buf: usize,
    /// Offset in elements.
    pub offset: isize,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub strides: Vec<isize>,
}

impl View {
    /// The view's buffer `buf` from the view's first element. An empty view's offset
    /// may point past its buffer (a slice starting at the extent of an empty tensor);
    /// nothing is read from it, so it starts from nothing.
    pub fn from_offset<'a, T>(&self, buf: &'a [T]) -> &'a [T] {
        usize::try_from(self.offset)
            .ok()
            .and_then(|o| buf.get(o..))
            .unwrap_or(&[])
    }
}

/// One step of a plan.
#[derive(Clone, Debug)]
pub enum Step {
    /// A fused kernel, JIT-compiled.
    Kernel(Kernel),
    /// Batched matrix product on the library GEMM.
    MatMul {
        /// Left operand.
        a: View,
        /// Right operand.
        b: View,
        /// Contiguous output buffer.
        out: usize,
        /// Element type.
        dtype: DType,
    },
    /// Convolution on native kernels.
    Conv {
        /// Input buffer.
        x: usize,
        /// Weight buffer.
        w: usize,
        /// Output buffer.
        out: usize,
        /// Parameters.
        params: ConvParams,
        /// Element type.
        dtype: DType,
    },
    /// A recurrence: the body is compiled on its own and called once per step, with
    /// no allocation per step (see `exec`).
    Scan {
        /// The scan (body graph and layout).
        scan: onde_ir::ScanOp,
        /// Operand buffers: carries, scanned inputs, invariants.
        args: Vec<usize>,
        /// Result buffers: final carries, stacked outputs.
        outs: Vec<usize>,
    },
    /// A data-movement op run natively (block copies, no allocation).
    Copy(CopyOp, Vec<usize>, usize),
    /// An op run by the reference interpreter on a one-op graph.
    Host {
        /// The one-op graph (inputs `a0`, `a1`, … in operand order).
        graph: Graph,
        /// Operand buffers.
        args: Vec<usize>,
        /// Result buffers.
        outs: Vec<usize>,
    },
}

/// Ops the executor runs natively as plain loops (data movement, index ops, random
/// numbers): no JIT kernel, no interpreter, no allocation.
#[derive(Clone, Debug, PartialEq)]
pub enum CopyOp {
    /// Concatenation of the operands along `axis`.
    Concat {
        /// Axis.
        axis: usize,
    },
    /// `torch.gather` along `axis` (operands: input, i64 index); an index out of range
    /// is a run-time error, as in the interpreter.
    Gather {
        /// Axis.
        axis: usize,
    },
    /// `scatter_add` along `axis` (operands: i64 index, source of the index's shape)
    /// into zeros; floats accumulate in f64 and round once, as in the interpreter. An
    /// index out of range is a run-time error.
    ScatterAdd {
        /// Axis.
        axis: usize,
    },
    /// `argmax`/`argmin` along `axis` (first extremum; NaN wins, as in the
    /// interpreter), result i64.
    ArgReduce {
        /// Which one.
        kind: onde_ir::ArgKind,
        /// Axis.
        axis: usize,
    },
    /// Counter-based random numbers from the i64 seed operand, the interpreter's
    /// generator element for element.
    Random {
        /// Distribution.
        dist: onde_ir::Distribution,
    },
    /// Constant padding.
    Pad {
        /// `(before, after)` per axis.
        pads: Vec<(usize, usize)>,
        /// Fill value (converted to the dtype).
        value: f64,
    },
}

/// A compiled graph's schedule.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Buffers.
    pub buffers: Vec<BufferSpec>,
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Output buffers, in the graph's output order.
    pub outputs: Vec<usize>,
}

/// Planning failed (an unsupported construct; the graph itself was verified).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("planning {op}: {reason}")]
pub struct PlanError {
    /// The op.
    pub op: String,
    /// Why.
    pub reason: String,
}

#[derive(Clone, Debug)]
enum Val {
    Buf(usize),
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
    materialized: HashMap<ValueId, usize>,
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
    Ok(Plan {
        buffers: p.buffers,
        steps: merge_kernels(p.steps),
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

    fn new_buf(&mut self, ty: TensorType, kind: BufKind) -> usize {
        self.buffers.push(BufferSpec { ty, kind });
        self.buffers.len() - 1
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
    ) -> usize {
        let out_shape = match &reduction {
            Some((_, _, out)) => out.clone(),
            None => l.shape.clone(),
        };
        let buf = self.new_buf(TensorType::new(l.dtype, out_shape), BufKind::Temp);
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
            }),
            fused: l.ops.clone(),
        };
        self.kernels += 1;
        let mut load_ids: HashMap<(usize, isize, Vec<isize>), usize> = HashMap::new();
        let mut dtypes_of_nodes: Vec<DType> = Vec::with_capacity(l.nodes.len());
        // Lazy node index -> kernel expression index; identical expressions (the same
        // load, or the same op on the same operands) are emitted once.
        let mut node_expr: Vec<usize> = Vec::with_capacity(l.nodes.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
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
        });
        self.steps.push(Step::Kernel(k));
        buf
    }

    /// The value as a buffer (materialising it if lazy). A cheap lazy value stays lazy
    /// for its other consumers (see [`RECOMPUTE_BUDGET`]).
    /// `v` materialised, read back as a whole contiguous buffer.
    fn stored(&mut self, v: ValueId, why: &str) -> Result<Lazy, PlanError> {
        let b = self.materialize(v, why)?;
        let t = self.ty(v);
        Ok(Lazy::buffer(b, t.dtype, t.shape.dims()))
    }

    fn materialize(&mut self, v: ValueId, why: &str) -> Result<usize, PlanError> {
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
        Ok(l)
    }

    /// Records a lazy result, materialising it if it is shared and costly, or big.
    fn set_lazy(&mut self, v: ValueId, l: Lazy, label: &str) {
        let l = l.note(self.describe(v));
        let shared = self.uses.get(&v).copied().unwrap_or(0) > 1;
        if (shared && cost(&l) > RECOMPUTE_BUDGET)
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
            Op::Unary(u) => {
                let a = self.elem_operand(xs[0], rt.shape.numel())?;
                let l = Lazy::combine(&shape, rt.dtype, &[a], |n| LNode::Unary(*u, n[0]));
                self.set_lazy(r, l, label);
            }
            Op::Binary(b) => {
                let n = rt.shape.numel();
                let (x, y) = (self.elem_operand(xs[0], n)?, self.elem_operand(xs[1], n)?);
                let l = Lazy::combine(&shape, rt.dtype, &[x, y], |n| LNode::Binary(*b, n[0], n[1]));
                self.set_lazy(r, l, label);
            }
            Op::Compare(c) => {
                let n = rt.shape.numel();
                let (x, y) = (self.elem_operand(xs[0], n)?, self.elem_operand(xs[1], n)?);
                let l = Lazy::combine(&shape, DType::Bool, &[x, y], |n| {
                    LNode::Compare(*c, n[0], n[1])
                });
                self.set_lazy(r, l, label);
            }
            Op::Where => {
                let n = rt.shape.numel();
                let (c, x, y) = (
                    self.elem_operand(xs[0], n)?,
                    self.elem_operand(xs[1], n)?,
                    self.elem_operand(xs[2], n)?,
                );
                let l = Lazy::combine(&shape, rt.dtype, &[c, x, y], |n| {
                    LNode::Where(n[0], n[1], n[2])
                });
                self.set_lazy(r, l, label);
            }
            Op::Cast { to } => {
                let a = self.elem_operand(xs[0], rt.shape.numel())?;
                let l = Lazy::combine(&shape, *to, &[a], |n| LNode::Cast(*to, n[0]));
                self.set_lazy(r, l, label);
            }
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
            Op::MatMul => {
                if !is_float_or(rt.dtype) {
                    return self.host(o, &xs, &rs);
                }
                let a = self.view(xs[0])?;
                let b = self.view(xs[1])?;
                let out = self.new_buf(rt.clone(), BufKind::Temp);
                self.steps.push(Step::MatMul {
                    a,
                    b,
                    out,
                    dtype: rt.dtype,
                });
                self.vals.insert(r, Val::Buf(out));
            }
            Op::Conv(p) => {
                let x = self.materialize(xs[0], "conv_input")?;
                let w = self.materialize(xs[1], "conv_weight")?;
                let out = self.new_buf(rt.clone(), BufKind::Temp);
                self.steps.push(Step::Conv {
                    x,
                    w,
                    out,
                    params: p.clone(),
                    dtype: rt.dtype,
                });
                self.vals.insert(r, Val::Buf(out));
            }
            Op::Concat { axis } => {
                let mut args = Vec::with_capacity(xs.len());
                for &x in &xs {
                    args.push(self.materialize(x, "concat_operand")?);
                }
                let out = self.new_buf(rt.clone(), BufKind::Temp);
                self.steps
                    .push(Step::Copy(CopyOp::Concat { axis: *axis }, args, out));
                self.vals.insert(r, Val::Buf(out));
            }
            Op::Pad { pads, value_bits } => {
                let x = self.materialize(xs[0], "pad_operand")?;
                let out = self.new_buf(rt.clone(), BufKind::Temp);
                let pad = CopyOp::Pad {
                    pads: pads.clone(),
                    value: Op::pad_value(*value_bits),
                };
                self.steps.push(Step::Copy(pad, vec![x], out));
                self.vals.insert(r, Val::Buf(out));
            }
            Op::Gather { axis } => {
                let x = self.materialize(xs[0], "gather_input")?;
                let idx = self.materialize(xs[1], "gather_index")?;
                let out = self.new_buf(rt.clone(), BufKind::Temp);
                self.steps.push(Step::Copy(
                    CopyOp::Gather { axis: *axis },
                    vec![x, idx],
                    out,
                ));
                self.vals.insert(r, Val::Buf(out));
            }
            Op::ScatterAdd { axis, .. } if rt.dtype != DType::Bool => {
                let idx = self.materialize(xs[0], "scatter_index")?;
                let src = self.materialize(xs[1], "scatter_source")?;
                let out = self.new_buf(rt.clone(), BufKind::Temp);
                self.steps.push(Step::Copy(
                    CopyOp::ScatterAdd { axis: *axis },
                    vec![idx, src],
                    out,
                ));
                self.vals.insert(r, Val::Buf(out));
            }
            Op::ArgReduce { kind, axis, .. } if self.ty(xs[0]).dtype != DType::Bool => {
                let x = self.materialize(xs[0], "argreduce_input")?;
                let out = self.new_buf(rt.clone(), BufKind::Temp);
                let op = CopyOp::ArgReduce {
                    kind: *kind,
                    axis: *axis,
                };
                self.steps.push(Step::Copy(op, vec![x], out));
                self.vals.insert(r, Val::Buf(out));
            }
            Op::Random { dist, dtype, .. } if dtype.is_float() => {
                let seed = self.materialize(xs[0], "random_seed")?;
                let out = self.new_buf(rt.clone(), BufKind::Temp);
                self.steps
                    .push(Step::Copy(CopyOp::Random { dist: *dist }, vec![seed], out));
                self.vals.insert(r, Val::Buf(out));
            }
            Op::ArgReduce { .. } | Op::ScatterAdd { .. } | Op::Random { .. } => {
                return self.host(o, &xs, &rs)
            }
            Op::Scan(sc) => {
                let mut args = Vec::with_capacity(xs.len());
                for &x in &xs {
                    args.push(self.materialize(x, "scan_operand")?);
                }
                let mut outs = Vec::with_capacity(rs.len());
                for &r in &rs {
                    let b = self.new_buf(self.ty(r), BufKind::Temp);
                    self.vals.insert(r, Val::Buf(b));
                    outs.push(b);
                }
                self.steps.push(Step::Scan {
                    scan: sc.clone(),
                    args,
                    outs,
                });
            }
        }
        Ok(())
    }

    /// A strided view for a library operand: a single read of a buffer stays a view;
    /// anything else is materialised first.
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

/// Work per element of a lazy expression: 1 per op, 4 per transcendental function,
/// counting each distinct subexpression once (trees repeat shared subexpressions, which
/// a kernel computes once).
/// A one-element value is stored (computed once) before it is broadcast into a larger
/// loop when it costs a transcendental or mixes dtypes: inlined into that loop it would
/// be recomputed per element, and a mixed-width expression forces the whole loop onto
/// scalar code (e.g. an optimiser's f64 bias corrections cast to f32 inside a parameter
/// update).
fn scalar_worth_storing(l: &Lazy) -> bool {
    if l.shape.iter().product::<usize>() != 1 || l.ops() == 0 {
        return false;
    }
    let mixed = l.nodes.iter().any(|n| match n {
        LNode::Leaf { dtype, .. } | LNode::Const(_, dtype) | LNode::Cast(dtype, _) => {
            *dtype != l.dtype
        }
        LNode::Unary(..) | LNode::Binary(..) | LNode::Compare(..) | LNode::Where(..) => false,
    });
    mixed || cost(l) >= 4
}

fn cost(l: &Lazy) -> usize {
    let mut keys: Vec<String> = Vec::with_capacity(l.nodes.len());
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for n in &l.nodes {
        let (key, c) = match n {
            LNode::Leaf {
                buf,
                offset,
                strides,
                ..
            } => (format!("L{buf}/{offset}/{strides:?}"), 0),
            LNode::Const(v, d) => (format!("C{v:?}{d:?}"), 0),
            LNode::Unary(u, a) => {
                let c = match u {
                    onde_ir::UnaryOp::Exp
                    | onde_ir::UnaryOp::Log
                    | onde_ir::UnaryOp::Tanh
                    | onde_ir::UnaryOp::Sigmoid
                    | onde_ir::UnaryOp::Sin
                    | onde_ir::UnaryOp::Cos => 4,
                    onde_ir::UnaryOp::Neg
                    | onde_ir::UnaryOp::Abs
                    | onde_ir::UnaryOp::Sign
                    | onde_ir::UnaryOp::Sqrt
                    | onde_ir::UnaryOp::Relu
                    | onde_ir::UnaryOp::Floor
                    | onde_ir::UnaryOp::Not => 1,
                };
                (format!("U{u:?}({})", keys[*a]), c)
            }
            LNode::Binary(b, x, y) => {
                let c = if *b == BinaryOp::Pow { 8 } else { 1 };
                (format!("B{b:?}({},{})", keys[*x], keys[*y]), c)
            }
            LNode::Compare(cm, x, y) => (format!("P{cm:?}({},{})", keys[*x], keys[*y]), 1),
            LNode::Where(c, x, y) => (format!("W({},{},{})", keys[*c], keys[*x], keys[*y]), 1),
            LNode::Cast(d, a) => (format!("T{d:?}({})", keys[*a]), 1),
        };
        if seen.insert(key.clone()) {
            total += c;
        }
        keys.push(key);
    }
    total
}

/// Identity of an expression for deduplication (operands are already interned ids).
fn expr_key(e: &Expr, d: DType) -> String {
    format!("{e:?}/{d:?}")
}

/// Appends `e` to `k` unless an identical expression is already there; returns its id.
fn intern(k: &mut Kernel, seen: &mut HashMap<String, usize>, e: Expr, d: DType) -> usize {
    let key = expr_key(&e, d);
    if let Some(&id) = seen.get(&key) {
        return id;
    }
    k.exprs.push(e);
    k.dtypes.push(d);
    seen.insert(key, k.exprs.len() - 1);
    k.exprs.len() - 1
}

fn full_reduction(k: &Kernel) -> bool {
    k.reduction
        .as_ref()
        .is_none_or(|r| r.axes.len() == k.shape.len())
}

pub(crate) fn writes(s: &Step) -> Vec<usize> {
    match s {
        Step::Kernel(k) => k.stores.iter().map(|st| st.buffer).collect(),
        Step::MatMul { out, .. } | Step::Conv { out, .. } => vec![*out],
        Step::Host { outs, .. } | Step::Scan { outs, .. } => outs.clone(),
        Step::Copy(_, _, out) => vec![*out],
    }
}

/// Appends kernel `b` to kernel `a`: one loop computing both. Loads and identical
/// expressions are shared.
fn append(a: &mut Kernel, b: &Kernel) {
    let mut load_map = Vec::with_capacity(b.loads.len());
    for l in &b.loads {
        let id = match a.loads.iter().position(|x| x == l) {
            Some(i) => i,
            None => {
                a.loads.push(l.clone());
                a.loads.len() - 1
            }
        };
        load_map.push(id);
    }
    let mut seen: HashMap<String, usize> = a
        .exprs
        .iter()
        .zip(&a.dtypes)
        .enumerate()
        .map(|(i, (e, d))| (expr_key(e, *d), i))
        .collect();
    let mut expr_map = Vec::with_capacity(b.exprs.len());
    for (e, d) in b.exprs.iter().zip(&b.dtypes) {
        let m = |i: &usize| expr_map[*i];
        let e2 = match e {
            Expr::Load(l) => Expr::Load(load_map[*l]),
            Expr::Const(v, d) => Expr::Const(*v, *d),
            Expr::Unary(u, x) => Expr::Unary(*u, m(x)),
            Expr::Binary(o, x, y) => Expr::Binary(*o, m(x), m(y)),
            Expr::Compare(c, x, y) => Expr::Compare(*c, m(x), m(y)),
            Expr::Where(c, x, y) => Expr::Where(m(c), m(x), m(y)),
            Expr::Cast(t, x) => Expr::Cast(*t, m(x)),
        };
        expr_map.push(intern(a, &mut seen, e2, *d));
    }
    let base = a.stores.len();
    for st in &b.stores {
        a.stores.push(Store {
            buffer: st.buffer,
            expr: expr_map[st.expr],
        });
    }
    if let Some(r) = &b.reduction {
        a.reduction = Some(Reduction {
            kind: r.kind,
            axes: r.axes.clone(),
            store: r.store + base,
        });
    }
    a.name = format!("{}+{}", a.name, b.name);
    a.fused.extend(b.fused.iter().cloned());
}

/// Merges kernels with the same iteration space into one loop (horizontal fusion),
/// when the later one reads nothing written by the earlier one or anything in between,
/// and at most one of them reduces (over all axes).
pub fn merge_kernels(steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for s in steps {
        let Step::Kernel(k) = &s else {
            out.push(s);
            continue;
        };
        let reads: Vec<usize> = k.loads.iter().map(|l| l.buffer).collect();
        let mut target = None;
        let mut written_after: Vec<usize> = Vec::new();
        for i in (0..out.len()).rev() {
            written_after.extend(writes(&out[i]));
            if let Step::Kernel(prev) = &out[i] {
                let compatible = prev.shape == k.shape
                    && full_reduction(prev)
                    && full_reduction(k)
                    && !(prev.reduction.is_some() && k.reduction.is_some())
                    && prev.exprs.len() + k.exprs.len() <= MAX_MERGED_EXPRS
                    && !reads.iter().any(|b| written_after.contains(b));
                if compatible {
                    target = Some(i);
                }
            }
            if reads.iter().any(|b| written_after.contains(b)) {
                break;
            }
        }
        match target {
            Some(i) => {
                if let Step::Kernel(prev) = &mut out[i] {
                    append(prev, k);
                }
            }
            None => out.push(s),
        }
    }
    out
}
