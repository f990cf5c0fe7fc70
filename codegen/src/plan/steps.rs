//! The plan's data: buffers, strided views, steps and the plan itself.

use crate::kernel::Kernel;
use onde_ir::{Array, ConvParams, DType, Graph, TensorType};
use std::fmt;

/// A buffer of a plan: an index into [`Plan::buffers`] and into the executor's tables
/// of the same length. A type of its own, so a buffer cannot be confused with a step,
/// an expression, an element count or an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufId(usize);

impl BufId {
    /// The buffer at position `i` of the plan.
    pub fn new(i: usize) -> BufId {
        BufId(i)
    }

    /// Its position in the plan's buffer list (and in every per-buffer table).
    pub fn index(self) -> usize {
        self.0
    }
}

/// Per-buffer tables (the plan's buffers, the executor's pointers and storage) are
/// indexed by [`BufId`] directly, as vectors or as slices of them (a `Vec` impl of its
/// own is needed: the standard one, generic over slice indices, hides the slice's).
impl<T> std::ops::Index<BufId> for [T] {
    type Output = T;
    fn index(&self, b: BufId) -> &T {
        &self[b.0]
    }
}

impl<T> std::ops::IndexMut<BufId> for [T] {
    fn index_mut(&mut self, b: BufId) -> &mut T {
        &mut self[b.0]
    }
}

impl<T> std::ops::Index<BufId> for Vec<T> {
    type Output = T;
    fn index(&self, b: BufId) -> &T {
        &self[b.0]
    }
}

impl<T> std::ops::IndexMut<BufId> for Vec<T> {
    fn index_mut(&mut self, b: BufId) -> &mut T {
        &mut self[b.0]
    }
}

impl fmt::Display for BufId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

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
    Alias(BufId),
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
    pub buf: BufId,
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
        out: BufId,
        /// Element type.
        dtype: DType,
    },
    /// Convolution on native kernels.
    Conv {
        /// Input buffer.
        x: BufId,
        /// Weight buffer.
        w: BufId,
        /// Output buffer.
        out: BufId,
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
        args: Vec<BufId>,
        /// Result buffers: final carries, stacked outputs.
        outs: Vec<BufId>,
    },
    /// A data-movement op run natively (block copies, no allocation).
    Copy(CopyOp, Vec<BufId>, BufId),
    /// An op run by the reference interpreter on a one-op graph.
    Host {
        /// The one-op graph (inputs `a0`, `a1`, … in operand order).
        graph: Graph,
        /// Operand buffers.
        args: Vec<BufId>,
        /// Result buffers.
        outs: Vec<BufId>,
    },
}

/// Ops the executor runs natively as plain loops (data movement, index ops, random
/// numbers, softmax): no JIT kernel, no interpreter, no allocation.
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
    /// Softmax along `axis` of a float operand times `scale` (`native::softmax`: one
    /// pass per line, SIMD on the engine's widths for f32; `scale` a multiply by a
    /// scalar constant folded in, `plan::scaled_softmax`, 1 otherwise).
    Softmax {
        /// Axis.
        axis: usize,
        /// Factor applied to each operand element as it is read (rounded as the
        /// multiply was).
        scale: f64,
    },
    /// Softmax's backward `y ⊙ (dy − Σ dy ⊙ y)` along `axis`, operands `(dy, y)`
    /// (`native::softmax_backward`: one pass per line, SIMD on the engine's widths for
    /// f32), times `scale` (a multiply by a scalar constant folded in,
    /// `plan::scaled_softmax`; 1 otherwise).
    SoftmaxBackward {
        /// Axis.
        axis: usize,
        /// Factor applied to each result (rounded separately, as the multiply was).
        scale: f64,
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
    pub outputs: Vec<BufId>,
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
