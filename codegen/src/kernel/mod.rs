//! The kernel IR: one loop nest over a fused group of elementwise ops, optionally
//! ending in a reduction.
//!
//! A kernel iterates over `shape` (row-major). Each [`Load`] reads a buffer through an
//! affine map — `offset + Σ strides[a]·i[a]` in elements — so broadcast (stride 0),
//! permuted and strided-slice operands are read in place without copies. The body is
//! an SSA list of scalar [`Expr`]s; each [`Store`] writes one expression to a
//! contiguous output buffer, or to a window of a bigger one (an operand of a
//! concatenation written in place). With a [`Reduction`], the listed axes are reduced:
//! the reduced stores are accumulated over them (several of one kind over the same
//! axes share the loop) and their outputs have the kept axes only; any reduction but
//! a column reduction (innermost axis kept) may share its loop with elementwise stores.

pub mod clif;
pub mod engine;
pub mod nest;

use crate::plan::BufId;
use onde_ir::{BinaryOp, CmpOp, DType, ReduceKind, UnaryOp};
use std::fmt;

/// An expression of a kernel: its position in [`Kernel::exprs`] (and in
/// [`Kernel::dtypes`] and every per-expression table of a backend). A type of its own,
/// so an expression cannot be confused with a load, a store or a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(usize);

impl ExprId {
    /// The expression at position `i`.
    pub fn new(i: usize) -> ExprId {
        ExprId(i)
    }

    /// Its position in the kernel's expression list.
    pub fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for ExprId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Per-expression tables (expressions, dtypes, a backend's values) are indexed by
/// [`ExprId`] directly.
impl<T> std::ops::Index<ExprId> for Vec<T> {
    type Output = T;
    fn index(&self, e: ExprId) -> &T {
        &self[e.0]
    }
}

impl<T> std::ops::IndexMut<ExprId> for Vec<T> {
    fn index_mut(&mut self, e: ExprId) -> &mut T {
        &mut self[e.0]
    }
}

/// A strided read of a buffer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Load {
    /// The buffer (index into the executor's buffer table).
    pub buffer: BufId,
    /// Element type.
    pub dtype: DType,
    /// Offset in elements.
    pub offset: isize,
    /// Stride in elements per kernel axis (0 = broadcast).
    pub strides: Vec<isize>,
}

/// A scalar expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// Element of load `i`.
    Load(usize),
    /// A constant of a dtype.
    Const(f64, DType),
    /// Unary op.
    Unary(UnaryOp, ExprId),
    /// Binary op.
    Binary(BinaryOp, ExprId, ExprId),
    /// Comparison (result bool).
    Compare(CmpOp, ExprId, ExprId),
    /// `c ? a : b`.
    Where(ExprId, ExprId, ExprId),
    /// Conversion.
    Cast(DType, ExprId),
}

/// An output write: contiguous over the kernel's iteration space, or a window of a
/// bigger buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Store {
    /// Buffer written.
    pub buffer: BufId,
    /// Expression stored.
    pub expr: ExprId,
    /// `None`: element `i` of the iteration space goes to element `i` of `buffer`
    /// (row-major). `Some((offset, strides))`: to `offset + Σ strides[a]·i[a]` — one
    /// operand of a concatenation written in place into the concatenation (never a
    /// reduced store).
    pub window: Option<(isize, Vec<isize>)>,
}

impl Store {
    /// A contiguous store of `expr` into `buffer`.
    pub fn new(buffer: BufId, expr: ExprId) -> Store {
        Store {
            buffer,
            expr,
            window: None,
        }
    }
}

/// Reduction of stored expressions over some kernel axes.
///
/// Usually one store is reduced; sibling reductions ([`Reduction::also`]: the same
/// kind over the same axes, e.g. a batch norm's backward `Σ g` and `Σ g·(x − μ)`)
/// share the loop, so the data is read once for all of them. Other stores of the
/// same kernel are elementwise writes over the whole iteration space, made in the
/// reduction's loop order (kept axes first): a value stored for its other readers and
/// summed in the same pass (`plan::merge`). A column reduction (innermost axis kept,
/// `clif::column_nest`) takes no other store.
#[derive(Clone, Debug, PartialEq)]
pub struct Reduction {
    /// Sum, product, max or min.
    pub kind: ReduceKind,
    /// Axes reduced (sorted).
    pub axes: Vec<usize>,
    /// Which store receives the reduced value.
    pub store: usize,
    /// Further stores reduced the same way (sibling reductions).
    pub also: Vec<usize>,
}

impl Reduction {
    /// Every reduced store: [`Reduction::store`], then [`Reduction::also`].
    pub fn stores(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.store).chain(self.also.iter().copied())
    }

    /// Whether store `j` receives a reduced value.
    pub fn reduces(&self, j: usize) -> bool {
        self.store == j || self.also.contains(&j)
    }
}

/// One fused loop nest.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// A name for dumps (`k3_tanh_mul_sum`).
    pub name: String,
    /// Iteration space.
    pub shape: Vec<usize>,
    /// Reads.
    pub loads: Vec<Load>,
    /// Body, in dependency order.
    pub exprs: Vec<Expr>,
    /// dtype of each expression.
    pub dtypes: Vec<DType>,
    /// Writes.
    pub stores: Vec<Store>,
    /// Optional reduction.
    pub reduction: Option<Reduction>,
    /// The IR ops fused into this kernel, for dumps (`%12 = tanh …`).
    pub fused: Vec<String>,
}

impl Expr {
    /// The expressions this one reads, in operand order.
    pub fn operands(&self) -> Vec<ExprId> {
        match *self {
            Expr::Load(_) | Expr::Const(..) => vec![],
            Expr::Unary(_, a) | Expr::Cast(_, a) => vec![a],
            Expr::Binary(_, a, b) | Expr::Compare(_, a, b) => vec![a, b],
            Expr::Where(c, a, b) => vec![c, a, b],
        }
    }
}

impl Kernel {
    /// Number of iterations.
    pub fn iterations(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the kernel computes a transcendental function (`exp`, `log`, `tanh`,
    /// `sigmoid`, `sin`, `cos`): the kernels the tile engine takes (`engine::compile`).
    pub fn computes_transcendental(&self) -> bool {
        self.exprs
            .iter()
            .any(|e| matches!(e, Expr::Unary(u, _) if u.is_transcendental()))
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel {} over {:?}", self.name, self.shape)?;
        if let Some(r) = &self.reduction {
            write!(
                f,
                " reduce_{} axes={:?} into store {}",
                r.kind.name(),
                r.axes,
                r.store
            )?;
            for j in &r.also {
                write!(f, ", {j}")?;
            }
        }
        writeln!(f, " {{")?;
        for (i, l) in self.loads.iter().enumerate() {
            writeln!(
                f,
                "    load{i} = buf{} {} offset={} strides={:?}",
                l.buffer, l.dtype, l.offset, l.strides
            )?;
        }
        for (i, e) in self.exprs.iter().enumerate() {
            writeln!(f, "    e{i}: {} = {}", self.dtypes[i], show_expr(e))?;
        }
        for s in &self.stores {
            match &s.window {
                None => writeln!(f, "    store buf{} <- e{}", s.buffer, s.expr)?,
                Some((offset, strides)) => writeln!(
                    f,
                    "    store buf{} offset={offset} strides={strides:?} <- e{}",
                    s.buffer, s.expr
                )?,
            }
        }
        for op in &self.fused {
            writeln!(f, "    // fused: {op}")?;
        }
        write!(f, "  }}")
    }
}

fn show_expr(e: &Expr) -> String {
    match e {
        Expr::Load(i) => format!("load{i}"),
        Expr::Const(v, d) => format!("const {v} {d}"),
        Expr::Unary(u, a) => format!("{} e{a}", u.name()),
        Expr::Binary(b, x, y) => format!("{} e{x}, e{y}", b.name()),
        Expr::Compare(c, x, y) => format!("{} e{x}, e{y}", c.name()),
        Expr::Where(c, x, y) => format!("where e{c}, e{x}, e{y}"),
        Expr::Cast(d, a) => format!("cast e{a} to {d}"),
    }
}
