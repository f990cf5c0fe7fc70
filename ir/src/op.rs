//! The closed set of operations and their typed payloads.
//!
//! Every stage dispatches on [`Op`] with an exhaustive `match` (never `_ =>`), so adding
//! an op is a compile error in every stage that forgot it. `Op` derives `Eq + Hash` so
//! common-subexpression elimination can key on it.
//!
//! Design choices recorded here:
//! - **Broadcasting is implicit** in [`Op::Unary`]'s siblings [`Op::Binary`],
//!   [`Op::Compare`] and [`Op::Where`]: operands follow NumPy/PyTorch broadcasting, so
//!   graphs and dumps stay small and fusion sees broadcast operands directly. All other
//!   ops require exact shapes. Operands of one op share a dtype; promotion is the API's
//!   job (it inserts [`Op::Cast`]).
//! - **Convolution is a primitive** ([`Op::Conv`], N-d, used for 1-D and 2-D), not
//!   unfold + matmul: codegen can then pick a direct depthwise kernel for grouped
//!   convolutions instead of paying for a dense one. Bias is a separate broadcast add.
//! - **Random numbers are counter-based**: [`Op::Random`] takes an explicit `i64[]` seed
//!   operand, and element `i` is a pure function of `(seed, i)`, so results do not depend
//!   on evaluation order, thread count or backend.
//! - **Softmax is a primitive** ([`Op::Softmax`]), unlike the other composites (batch
//!   norm, log-softmax, the recurrent cells), which the API builds from primitives and
//!   fusion recovers: its line needs a maximum, then the exponentials and their sum,
//!   then a scaling — as ops, four passes over memory and a division per element; as
//!   one op, codegen runs it in one pass per line, and its gradient `y ⊙ (dy − Σ dy ⊙
//!   y)` has no division (W5's attention scores `[32, 100, 100]`: forward ~2.3×,
//!   backward ~1.5× faster than as ops).
//! - **Recurrence is [`Op::Scan`]**, a loop whose body is a nested [`Graph`]: a 16000-step
//!   RNN is a graph of constant size.
//! - Inputs, parameters and constants are ops with no operands, so every value has
//!   exactly one producer.
//!
//! # Adding an op
//! The compiler lists every place that must handle it (exhaustive matches); in order:
//! 1. here: the variant and its payload (a payload-free elementwise op, comparison or
//!    reduction kind goes into its `op_enum!` list, which also gives the text mnemonic
//!    and `ALL`), and [`Op::name`];
//! 2. `catalogue.rs`: its class, and whether it is foldable or an interface;
//! 3. `typing.rs`: its typing rule; `verify.rs` if it has invariants of its own;
//! 4. `text/print.rs` and `text/parse.rs`: its text form (the round-trip property test
//!    generates it from `ALL` or needs a case);
//! 5. `runtime/src/interp/`: `check.rs` and `dispatch.rs` (the reference semantics);
//! 6. `passes/src/autodiff/rules.rs`: its gradient rule, with the math in a comment;
//!    `passes/src/simplify.rs` and `passes/src/precision.rs`;
//! 7. `codegen/src/plan/mod.rs`: how it lowers (fused kernel, native step or host
//!    step; `exec/copy.rs` for host steps), and the tile engine's `supported_*` lists
//!    for a new elementwise op;
//! 8. `nn/src/tensor/`: the user-facing method, with PyTorch's name and semantics;
//! 9. tests: interpreter values, gradcheck, JIT vs interpreter, text round trip.

use crate::array::Array;
use crate::dtype::{DType, Shape, TensorType};
use crate::graph::Graph;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Declares a closed set of simple ops (no payload) with its text mnemonics: the enum,
/// `ALL` (every variant, in declaration order) and `name()`, generated from one list,
/// so the parser, the printer and the test generators that iterate `ALL` cannot miss a
/// variant added later.
macro_rules! op_enum {
    (
        $(#[$m:meta])*
        pub enum $E:ident {
            $( $(#[$vm:meta])* $V:ident = $name:literal, )*
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $E {
            $( $(#[$vm])* $V, )*
        }

        impl $E {
            /// Every variant, in declaration order (generated with the enum).
            pub const ALL: [$E; [$($name),*].len()] = [$($E::$V),*];

            /// Mnemonic in the text form and in error messages.
            pub fn name(self) -> &'static str {
                match self {
                    $( $E::$V => $name, )*
                }
            }
        }
    };
}

op_enum! {
    /// Elementwise operations of one operand.
    pub enum UnaryOp {
        /// `-x` (float, i64).
        Neg = "neg",
        /// `|x|` (float, i64).
        Abs = "abs",
        /// `sign(x)` ∈ {-1, 0, 1}; `sign(NaN) = 0`, as PyTorch (float, i64).
        Sign = "sign",
        /// `e^x`.
        Exp = "exp",
        /// Natural logarithm.
        Log = "log",
        /// Square root.
        Sqrt = "sqrt",
        /// Sine.
        Sin = "sin",
        /// Cosine.
        Cos = "cos",
        /// Hyperbolic tangent.
        Tanh = "tanh",
        /// Logistic sigmoid `1 / (1 + e^-x)`.
        Sigmoid = "sigmoid",
        /// `max(x, 0)` (float, i64).
        Relu = "relu",
        /// Floor (float).
        Floor = "floor",
        /// Logical not (bool).
        Not = "not",
    }
}

impl UnaryOp {
    /// Whether the op accepts operands of `dtype`.
    pub fn accepts(self, dtype: DType) -> bool {
        match self {
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Relu => {
                dtype.is_float() || dtype == DType::I64
            }
            UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Floor => dtype.is_float(),
            UnaryOp::Not => dtype == DType::Bool,
        }
    }
}

op_enum! {
    /// Elementwise operations of two operands (with broadcasting).
    pub enum BinaryOp {
        /// `a + b` (float, i64).
        Add = "add",
        /// `a - b` (float, i64).
        Sub = "sub",
        /// `a * b` (float, i64).
        Mul = "mul",
        /// `a / b`, true division (float only).
        Div = "div",
        /// `a ^ b` (float; i64 with wrapping, where a negative exponent truncates `1/aⁿ`
        /// toward zero and `0` to a negative power is `0`).
        Pow = "pow",
        /// Elementwise maximum, NaN-propagating like `torch.maximum` (float, i64).
        Max = "maximum",
        /// Elementwise minimum, NaN-propagating like `torch.minimum` (float, i64).
        Min = "minimum",
        /// Logical and (bool).
        And = "and",
        /// Logical or (bool).
        Or = "or",
    }
}

impl BinaryOp {
    /// Whether the op accepts operands of `dtype`.
    pub fn accepts(self, dtype: DType) -> bool {
        match self {
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Max
            | BinaryOp::Min
            | BinaryOp::Pow => dtype.is_float() || dtype == DType::I64,
            BinaryOp::Div => dtype.is_float(),
            BinaryOp::And | BinaryOp::Or => dtype == DType::Bool,
        }
    }
}

op_enum! {
    /// Elementwise comparisons (with broadcasting), producing `bool`.
    pub enum CmpOp {
        /// `a == b`.
        Eq = "eq",
        /// `a != b`.
        Ne = "ne",
        /// `a < b`.
        Lt = "lt",
        /// `a <= b`.
        Le = "le",
        /// `a > b`.
        Gt = "gt",
        /// `a >= b`.
        Ge = "ge",
    }
}

op_enum! {
    /// Reduction kinds.
    pub enum ReduceKind {
        /// Sum (0 over an empty set).
        Sum = "sum",
        /// Product (1 over an empty set).
        Prod = "prod",
        /// Maximum, NaN-propagating (an empty set is a runtime error, as in PyTorch).
        Max = "max",
        /// Minimum, NaN-propagating (an empty set is a runtime error, as in PyTorch).
        Min = "min",
    }
}

op_enum! {
    /// Index-producing reductions (no gradient).
    pub enum ArgKind {
        /// Index of the first maximum (NaN counts as the maximum, as in PyTorch).
        ArgMax = "argmax",
        /// Index of the first minimum (NaN counts as the minimum, as in PyTorch).
        ArgMin = "argmin",
    }
}

op_enum! {
    /// Distribution of [`Op::Random`].
    pub enum Distribution {
        /// Uniform on `[0, 1)`.
        Uniform = "uniform",
        /// Standard normal.
        Normal = "normal",
    }
}

/// One axis of [`Op::Slice`]: elements `start, start+step, …` below `stop`.
///
/// Invariant (checked by the verifier): `start <= stop <= extent`, `step >= 1`.
/// Negative indices and clamping are resolved by the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SliceAxis {
    /// First index.
    pub start: usize,
    /// One past the last index considered.
    pub stop: usize,
    /// Stride, at least 1.
    pub step: usize,
}

impl SliceAxis {
    /// The whole of an axis of extent `len`.
    pub fn whole(len: usize) -> SliceAxis {
        SliceAxis {
            start: 0,
            stop: len,
            step: 1,
        }
    }

    /// Elements `start..stop`, step 1.
    pub fn range(start: usize, stop: usize) -> SliceAxis {
        SliceAxis {
            start,
            stop,
            step: 1,
        }
    }

    /// The number of elements selected: `ceil((stop - start) / step)`.
    pub fn len(&self) -> usize {
        if self.stop <= self.start || self.step == 0 {
            0
        } else {
            (self.stop - self.start).div_ceil(self.step)
        }
    }

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Convolution parameters for N spatial dimensions (N = 1 or 2 in practice).
///
/// Operands: input `[B, C_in, *S]`, weight `[C_out, C_in / groups, *K]`.
/// Result: `[B, C_out, *O]` with
/// `O = (S + pad_lo + pad_hi - dilation·(K-1) - 1) / stride + 1` (floor division).
/// This is cross-correlation, as in PyTorch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvParams {
    /// Stride per spatial axis.
    pub stride: Vec<usize>,
    /// Zero padding `(before, after)` per spatial axis.
    pub padding: Vec<(usize, usize)>,
    /// Dilation per spatial axis.
    pub dilation: Vec<usize>,
    /// Number of groups; `C_in` and `C_out` are multiples of it.
    pub groups: usize,
}

/// A recurrence: the body graph runs once per step along `axis`.
///
/// Operands, in order: `num_carry` initial carried states, `num_xs` scanned inputs
/// (sliced along `axis` at each step), then loop-invariant inputs.
/// The body's graph inputs are, in order: the carried states, one slice of each
/// scanned input (with `axis` removed), the invariants. Its graph outputs are the new
/// carried states (same types as the initial ones) followed by per-step outputs.
/// Results: the final carried states, then each per-step output stacked along `axis`
/// (length `length`). With `reverse`, steps run from the last index to the first and
/// per-step outputs are stored at the index of the step that produced them.
#[derive(Clone, Debug)]
pub struct ScanOp {
    /// The body, a complete graph of its own.
    pub body: Arc<Graph>,
    /// Number of carried states.
    pub num_carry: usize,
    /// Number of scanned inputs.
    pub num_xs: usize,
    /// Number of steps.
    pub length: usize,
    /// Axis along which inputs are sliced and outputs stacked.
    pub axis: usize,
    /// Run from the last step to the first.
    pub reverse: bool,
}

impl PartialEq for ScanOp {
    fn eq(&self, o: &ScanOp) -> bool {
        self.num_carry == o.num_carry
            && self.num_xs == o.num_xs
            && self.length == o.length
            && self.axis == o.axis
            && self.reverse == o.reverse
            && (Arc::ptr_eq(&self.body, &o.body)
                || crate::text::print_graph(&self.body) == crate::text::print_graph(&o.body))
    }
}

impl Eq for ScanOp {}

impl Hash for ScanOp {
    // Consistent with `eq`: the body is left out of the hash (equal ops still hash
    // equally; distinct bodies merely share a bucket).
    fn hash<H: Hasher>(&self, h: &mut H) {
        (
            self.num_carry,
            self.num_xs,
            self.length,
            self.axis,
            self.reverse,
        )
            .hash(h);
    }
}

/// An operation. Operand and result counts and typing rules are in [`crate::typing`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A named graph input, fed at run time. No operands.
    Input {
        /// Name used to feed it.
        name: String,
        /// Type of the fed tensor.
        ty: TensorType,
    },
    /// A named learnable parameter, fed at run time. No operands.
    Parameter {
        /// Dotted name, as in a PyTorch state dict.
        name: String,
        /// Type of the parameter tensor.
        ty: TensorType,
    },
    /// A constant array. No operands.
    Constant(Array),
    /// Elementwise unary op.
    Unary(UnaryOp),
    /// Elementwise binary op with broadcasting.
    Binary(BinaryOp),
    /// Elementwise comparison with broadcasting; result is `bool`.
    Compare(CmpOp),
    /// `where(cond, a, b)` with broadcasting of all three.
    Where,
    /// Conversion to another dtype (float→int truncates toward zero).
    Cast {
        /// Target dtype.
        to: DType,
    },
    /// Reduction over `axes` (sorted, unique), keeping them as size 1 if `keepdim`.
    Reduce {
        /// Which reduction.
        kind: ReduceKind,
        /// Axes reduced, sorted ascending, no duplicates.
        axes: Vec<usize>,
        /// Keep reduced axes as extent 1.
        keepdim: bool,
    },
    /// argmax/argmin along one axis; result is `i64`.
    ArgReduce {
        /// Which one.
        kind: ArgKind,
        /// Axis reduced.
        axis: usize,
        /// Keep the axis as extent 1.
        keepdim: bool,
    },
    /// Same elements in row-major order, new shape (same element count).
    Reshape {
        /// Target shape.
        shape: Shape,
    },
    /// Axis permutation: result axis `i` is operand axis `perm[i]`.
    Permute {
        /// A permutation of `0..rank`.
        perm: Vec<usize>,
    },
    /// Broadcast to `shape` (NumPy rules; may add leading axes).
    Expand {
        /// Target shape.
        shape: Shape,
    },
    /// Strided slice, one [`SliceAxis`] per axis.
    Slice {
        /// Per-axis ranges.
        axes: Vec<SliceAxis>,
    },
    /// Sliding windows along one axis, as a view (like `torch.Tensor.unfold`, with a
    /// dilation and the window axis placed first): axis `axis` of extent `L` becomes
    /// two axes `[size, count]` with
    /// `out[.., k, p, ..] = x[.., p·step + k·dilation, ..]` and
    /// `count = (L - (size-1)·dilation - 1) / step + 1` (the window must fit: `L ≥
    /// (size-1)·dilation + 1`). Windows overlap: it reads each element up to `size`
    /// times without copying it (the depthwise convolution's weight gradient reads
    /// `dy` and the input once through it).
    Unfold {
        /// Axis windowed.
        axis: usize,
        /// Window length (≥ 1).
        size: usize,
        /// Distance between window starts (≥ 1).
        step: usize,
        /// Distance between a window's elements (≥ 1).
        dilation: usize,
    },
    /// Constant padding `(before, after)` per axis with `value` (stored as f64 bits).
    Pad {
        /// Per-axis padding.
        pads: Vec<(usize, usize)>,
        /// Fill value, as `f64::to_bits` so the op stays `Eq + Hash`.
        value_bits: u64,
    },
    /// Concatenation of all operands along `axis`.
    Concat {
        /// Axis.
        axis: usize,
    },
    /// `torch.gather(input, axis, index)`: result has the index's shape and
    /// `out[.., i, ..] = input[.., index[.., i, ..], ..]` along `axis`.
    Gather {
        /// Axis indexed.
        axis: usize,
    },
    /// The adjoint of [`Op::Gather`]: operands `index` (i64) and `src` of one shape;
    /// result of `shape`, zero except `out[.., index[.., i, ..], ..] += src[.., i, ..]`
    /// along `axis` (`torch.zeros(shape).scatter_add(axis, index, src)`).
    ScatterAdd {
        /// Axis indexed.
        axis: usize,
        /// Result shape.
        shape: Shape,
    },
    /// `exp(x) / Σ exp(x)` along `axis` (`torch.softmax(x, axis)`), float only, same
    /// type as the operand. Computed as `e = exp(x - m)`, `e / Σe` with `m` the maximum
    /// along the axis (no overflow), so a line holding NaN or `+inf`, or only `-inf`, is
    /// NaN, as in PyTorch. A primitive rather than its five ops: codegen runs it in one
    /// pass over each line (max, exponentials and sum, scaling in registers or L1), and
    /// its gradient `y ⊙ (dy − Σ dy ⊙ y)` needs no division.
    Softmax {
        /// The axis normalised.
        axis: usize,
    },
    /// Softmax's backward along `axis`: operands `(dy, y)` with `y = softmax(x)`, result
    /// `dx = y ⊙ (dy − Σ_axis dy ⊙ y)` (the sum keeps the axis), float only, all three
    /// of one type (`torch._softmax_backward_data(dy, y, axis)`). What autodiff emits
    /// for [`Op::Softmax`]: codegen runs it in one pass per line (the line's sum, then
    /// the result, while the line is in L1), where as ops it is a row reduction and a
    /// broadcast kernel, each a pass over memory.
    SoftmaxBackward {
        /// The axis normalised in the forward softmax.
        axis: usize,
    },
    /// Identity in value, but no gradient flows through it (`detach`, `no_grad`).
    Detach,
    /// Batched matrix product `[.., m, k] @ [.., k, n]` with broadcast batch axes.
    MatMul,
    /// Convolution (cross-correlation), see [`ConvParams`].
    Conv(ConvParams),
    /// Random tensor from an `i64[]` seed operand.
    Random {
        /// Distribution.
        dist: Distribution,
        /// Element type (float).
        dtype: DType,
        /// Result shape.
        shape: Shape,
    },
    /// A loop with a nested body graph, see [`ScanOp`].
    Scan(ScanOp),
}

impl Op {
    /// Mnemonic used in the text form and in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Parameter { .. } => "parameter",
            Op::Constant(_) => "constant",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Compare(c) => c.name(),
            Op::Where => "where",
            Op::Cast { .. } => "cast",
            Op::Reduce { kind, .. } => match kind {
                ReduceKind::Sum => "reduce_sum",
                ReduceKind::Prod => "reduce_prod",
                ReduceKind::Max => "reduce_max",
                ReduceKind::Min => "reduce_min",
            },
            Op::ArgReduce { kind, .. } => kind.name(),
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Expand { .. } => "expand",
            Op::Slice { .. } => "slice",
            Op::Unfold { .. } => "unfold",
            Op::Pad { .. } => "pad",
            Op::Concat { .. } => "concat",
            Op::Gather { .. } => "gather",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::Softmax { .. } => "softmax",
            Op::SoftmaxBackward { .. } => "softmax_backward",
            Op::Detach => "detach",
            Op::MatMul => "matmul",
            Op::Conv(_) => "conv",
            Op::Random { .. } => "random",
            Op::Scan(_) => "scan",
        }
    }

    /// The pad value as f64 (for [`Op::Pad`]).
    pub fn pad_value(value_bits: u64) -> f64 {
        f64::from_bits(value_bits)
    }
}
