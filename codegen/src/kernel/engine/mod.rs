//! The tile engine: f32 kernels with expensive lanes run on the CPU's widest vectors
//! (16 lanes with AVX-512F/DQ, 8 with AVX2 + FMA), one source for every width
//! (`lanes::Lanes`).
//!
//! # Why
//! Cranelift emits 128-bit vectors only (DESIGN.md), so a fused kernel whose cost is
//! its arithmetic — `tanh`, `sigmoid`, `exp`, `log`, divisions — runs at a quarter of
//! the width the CPU offers, and torch.compile's C++ (512-bit on this machine) beats
//! it: W6's forward (`sum(tanh(x·a+b)·sigmoid(x) + x·x)`, 2^20 elements) measured
//! ~105 instructions per 4 elements in the f32x4 loop and 1.05× torch.compile. On a
//! CPU with AVX2 + FMA or AVX-512F/DQ (and a compile whose [`crate::CompileOptions::isa`]
//! allows it), such kernels are run instead by this engine, compiled ahead of time by
//! rustc: the kernel's expression list becomes a small register program, executed
//! tile by tile (a tile is up to [`TILE`] elements of the innermost axis), one
//! instruction at a time over the whole tile with 8- or 16-lane vectors. Every tile's
//! intermediate values live in L1-resident scratch rows, so an instruction costs a
//! load, the operation and a store per 16 elements, plus one dispatch per tile.
//!
//! Measured speed-ups (engine vs Cranelift f32x4, per function and on W6/W1) are in
//! `docs/performance.md`; one function over 2^20 elements is close to a plain copy,
//! i.e. bound by memory, not arithmetic.
//!
//! # What runs here
//! [`compile`] accepts a kernel when (otherwise the Cranelift kernel runs):
//! - the ISA level allows AVX2 or AVX-512 (the widest allowed is used);
//! - loads and stores are f32, expressions f32 or bool (masks), every op is one this
//!   engine implements (all f32 elementwise ops but `pow`);
//! - after normalisation (`nest::normalise`: kept axes first, unit axes dropped,
//!   contiguous axes merged) the innermost axis is contiguous (stride 1) or broadcast
//!   (stride 0) for every load and contiguous for every store, and at least
//!   [`MIN_INNER`] long;
//! - no reduction, or a reduction whose reduced axes include the innermost one
//!   (full reductions, and row reductions such as a log-softmax's sums);
//! - the kernel computes at least one transcendental function ([`UnaryOp::Exp`],
//!   `Log`, `Tanh`, `Sigmoid`, `Sin`, `Cos`). Other kernels keep their register-resident Cranelift
//!   loop, which is faster when the work per element is a few arithmetic ops (W1's
//!   Adam update, with `div` and `sqrt`, measured slower here: every instruction of
//!   the engine stores its tile and the next one loads it; see
//!   `docs/performance.md`).
//!
//! A plain column sum (a bias gradient) takes neither: `column.rs` sums it in
//! registers on the same widths.
//!
//! # Numerics
//! Every lane computes exactly what the Cranelift f32x4 lane computes: the same
//! operations in the same order, the same math (`math.rs` shares `crate::math`'s
//! coefficient tables), the same NaN-propagating `max`/`min` with `-0 < +0`. Only
//! reductions reassociate differently (8 or 16 lanes instead of 4), as they already
//! do across thread counts.
//!
//! # Threads
//! The entry point has the Cranelift kernel's contract (`[lo, hi)` of the outermost
//! normalised axis, a partial result slot for split full reductions), so the
//! executor splits it across threads the same way.

pub mod column;
pub(crate) mod lanes;
pub(crate) mod math;
pub(crate) mod ops;
pub(crate) mod run;

use super::nest::{normalise, Nest};
use super::{Expr, Kernel};
use crate::isa::IsaLevel;
use onde_ir::{BinaryOp, CmpOp, DType, ReduceKind, UnaryOp};

/// Elements of the innermost axis per tile: 8 vectors of 16 lanes. Measured on W6's
/// forward (`onde bench W6`, medians of two runs each, same session): 128 → 1.27 /
/// 1.28 ms, 256 → 1.33–1.42 ms, 512 → 1.46–1.73 ms.
pub const TILE: usize = 128;
/// Shortest innermost axis worth a tile (shorter rows pay the dispatch for little).
pub const MIN_INNER: usize = 64;
/// Most scratch rows a program may use (`MAX_SLOTS · TILE · 4` bytes stay in L1).
const MAX_SLOTS: usize = 40;

/// The vector width a program runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 8 f32 lanes (AVX2 + FMA).
    X8,
    /// 16 f32 lanes (AVX-512F/DQ).
    X16,
}

impl Width {
    /// The widest width level `isa` (capped by this CPU) allows, if any.
    pub fn for_level(isa: IsaLevel) -> Option<Width> {
        match isa.capped() {
            IsaLevel::Avx512 => Some(Width::X16),
            IsaLevel::Avx2 => Some(Width::X8),
            IsaLevel::Baseline => None,
        }
    }

    /// Lanes per vector.
    pub fn lanes(self) -> usize {
        match self {
            Width::X8 => 8,
            Width::X16 => 16,
        }
    }
}

/// One instruction's operation. Masks (bool values) are 32-bit lanes of all ones or
/// zeros, as in the Cranelift kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// f32 comparison producing a mask.
    CmpF(CmpOp),
    /// Comparison of two masks (false < true).
    CmpM(CmpOp),
    /// `a ? b : c`.
    Where,
    /// Mask to 0.0 / 1.0.
    MaskToF32,
    /// `x != 0` (NaN is true, as a C cast).
    F32ToMask,
    /// Logical not of a mask.
    Not,
}

/// `out = op(a, b, c)` over a tile; operands are register numbers.
#[derive(Clone, Copy, Debug)]
struct Instr {
    op: Op,
    a: usize,
    b: usize,
    c: usize,
    out: usize,
}

/// A kernel compiled for the engine.
#[derive(Debug)]
pub struct Program {
    /// The vector width it runs at (chosen once, at compile).
    width: Width,
    nest: Nest,
    /// `(buffer, byte offset)` per access: loads, then stores.
    accesses: Vec<(crate::plan::BufId, isize)>,
    nloads: usize,
    /// Per load: broadcast along the innermost axis (stride 0).
    bcast: Vec<bool>,
    /// Registers: `[0, nloads)` are the loads, then scratch rows (`nslots` of them;
    /// the first `nloads` stage loads that are broadcast or in a partial tile).
    nslots: usize,
    /// `(register, bits)` of constant rows, filled once per call.
    consts: Vec<(usize, u32)>,
    prog: Vec<Instr>,
    /// `(register, access)` of each elementwise store.
    stores: Vec<(usize, usize)>,
    /// `(kind, register, access)` of the reduction.
    reduction: Option<(ReduceKind, usize, usize)>,
}

impl Program {
    /// Registers in all (loads, then scratch rows).
    fn nregs(&self) -> usize {
        self.nloads + self.nslots
    }

    /// The vector width it runs at.
    pub fn width(&self) -> Width {
        self.width
    }

    /// A one-line description for plan dumps.
    pub fn describe(&self) -> String {
        format!(
            "engine ({} lanes): {} instructions, {} scratch rows of {TILE}",
            self.width.lanes(),
            self.prog.len(),
            self.nslots
        )
    }

    /// The register program, one line per instruction, for plan dumps: `rN` are
    /// registers (`r0..` the loads, then scratch rows), each instruction runs over a
    /// whole tile.
    pub fn listing(&self) -> String {
        let mut s = String::new();
        for j in 0..self.nloads {
            let how = if self.bcast[j] {
                "broadcast along the row"
            } else {
                "contiguous"
            };
            s.push_str(&format!("r{j} = load{j} ({how})\n"));
        }
        for &(r, bits) in &self.consts {
            s.push_str(&format!(
                "r{r} = const {:e} ({bits:#x})\n",
                f32::from_bits(bits)
            ));
        }
        for ins in &self.prog {
            let (a, b, c, o) = (ins.a, ins.b, ins.c, ins.out);
            let text = match ins.op {
                Op::Unary(u) => format!("{} r{a}", u.name()),
                Op::Binary(op) => format!("{} r{a}, r{b}", op.name()),
                Op::CmpF(cc) | Op::CmpM(cc) => format!("{} r{a}, r{b}", cc.name()),
                Op::Where => format!("where r{a}, r{b}, r{c}"),
                Op::MaskToF32 => format!("cast r{a} to f32"),
                Op::F32ToMask => format!("cast r{a} to bool"),
                Op::Not => format!("not r{a}"),
            };
            s.push_str(&format!("r{o} = {text}\n"));
        }
        for &(r, j) in &self.stores {
            s.push_str(&format!("store{} <- r{r}\n", j - self.nloads));
        }
        if let Some((kind, r, j)) = self.reduction {
            s.push_str(&format!(
                "store{} <- reduce_{} r{r}\n",
                j - self.nloads,
                kind.name()
            ));
        }
        s
    }
}

fn supported_unary(u: UnaryOp, d: DType) -> bool {
    match d {
        DType::F32 => match u {
            UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Sign
            | UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Relu
            | UnaryOp::Floor
            | UnaryOp::Sin
            | UnaryOp::Cos => true,
            UnaryOp::Not => false,
        },
        DType::Bool => u == UnaryOp::Not,
        DType::I64 | DType::F64 => false,
    }
}

fn supported_binary(op: BinaryOp, d: DType) -> bool {
    match d {
        DType::F32 => match op {
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Max
            | BinaryOp::Min => true,
            BinaryOp::Pow | BinaryOp::And | BinaryOp::Or => false,
        },
        DType::Bool => matches!(op, BinaryOp::And | BinaryOp::Or),
        DType::I64 | DType::F64 => false,
    }
}

/// Compiles `k` for the engine at the widest width `isa` allows on this CPU, or `None`
/// when it does not qualify (see the module doc) and the Cranelift kernel should run.
pub fn compile(k: &Kernel, isa: IsaLevel) -> Option<Program> {
    let width = Width::for_level(isa)?;
    if !k.computes_transcendental() {
        return None;
    }
    let f32_or_bool = |d: DType| matches!(d, DType::F32 | DType::Bool);
    if k.loads.iter().any(|l| l.dtype != DType::F32)
        || k.stores.iter().any(|s| k.dtypes[s.expr] != DType::F32)
        || !k.dtypes.iter().all(|&d| f32_or_bool(d))
    {
        return None;
    }
    let nest = normalise(k);
    let inner = nest.axes.last()?;
    if inner.extent < MIN_INNER {
        return None;
    }
    let nloads = k.loads.len();
    if !inner.strides[..nloads].iter().all(|&s| s == 0 || s == 4) {
        return None;
    }
    let red_store = match &k.reduction {
        Some(r) => {
            // The innermost axis must be reduced (then the stored row is one value).
            if !inner.reduced
                || !r.also.is_empty()
                || k.dtypes[k.stores[r.store].expr] != DType::F32
            {
                return None;
            }
            Some(r.store)
        }
        None => None,
    };
    for (j, &s) in inner.strides[nloads..].iter().enumerate() {
        if Some(j) != red_store && s != 4 {
            return None;
        }
    }
    build(k, nest, red_store, width)
}

/// Register allocation and instruction selection.
fn build(k: &Kernel, nest: Nest, red_store: Option<usize>, width: Width) -> Option<Program> {
    let nloads = k.loads.len();
    let n = k.exprs.len();
    // A same-type cast emits nothing and shares its operand's row: liveness is
    // tracked per root expression (the operand chain's first non-cast), so the row
    // lives until the last use of any alias.
    let mut root: Vec<usize> = (0..n).collect();
    for (i, e) in k.exprs.iter().enumerate() {
        if let Expr::Cast(to, a) = *e {
            if k.dtypes[a] == to {
                root[i] = root[a];
            }
        }
    }
    // Last use of each root (stored ones live to the end).
    let mut last = vec![0usize; n];
    for (i, e) in k.exprs.iter().enumerate() {
        for o in e.operands() {
            let r = root[o];
            last[r] = last[r].max(i);
        }
    }
    for s in &k.stores {
        last[root[s.expr]] = usize::MAX;
    }
    let mut reg = vec![usize::MAX; n];
    // Scratch rows: the first `nloads` stage the loads.
    let mut nslots = nloads;
    let mut free: Vec<usize> = Vec::new();
    let mut consts = Vec::new();
    let mut prog = Vec::new();
    for (i, e) in k.exprs.iter().enumerate() {
        let d = k.dtypes[i];
        let op = match *e {
            Expr::Load(l) => {
                reg[i] = l;
                continue;
            }
            Expr::Const(v, cd) => {
                let bits = match cd {
                    DType::F32 => (v as f32).to_bits(),
                    DType::Bool => {
                        if v != 0.0 {
                            u32::MAX
                        } else {
                            0
                        }
                    }
                    DType::I64 | DType::F64 => return None,
                };
                // Constants get their own row, never reused.
                reg[i] = nloads + nslots;
                nslots += 1;
                consts.push((reg[i], bits));
                continue;
            }
            Expr::Cast(to, a) => match (k.dtypes[a], to) {
                (DType::F32, DType::F32) | (DType::Bool, DType::Bool) => {
                    reg[i] = reg[a];
                    continue;
                }
                (DType::Bool, DType::F32) => (Op::MaskToF32, [a, a, a]),
                (DType::F32, DType::Bool) => (Op::F32ToMask, [a, a, a]),
                _ => return None,
            },
            Expr::Unary(u, a) => {
                if !supported_unary(u, d) {
                    return None;
                }
                if d == DType::Bool {
                    (Op::Not, [a, a, a])
                } else {
                    (Op::Unary(u), [a, a, a])
                }
            }
            Expr::Binary(b, x, y) => {
                if !supported_binary(b, d) {
                    return None;
                }
                (Op::Binary(b), [x, y, y])
            }
            Expr::Compare(c, x, y) => match k.dtypes[x] {
                DType::F32 => (Op::CmpF(c), [x, y, y]),
                DType::Bool => (Op::CmpM(c), [x, y, y]),
                DType::I64 | DType::F64 => return None,
            },
            Expr::Where(c, x, y) => (Op::Where, [c, x, y]),
        };
        let (op, [a, b, c]) = op;
        // Free the rows of operands used for the last time (the output may reuse
        // one: every instruction reads a vector before writing it).
        for o in [a, b, c] {
            let r = reg[o];
            if last[root[o]] == i
                && r >= 2 * nloads
                && !consts.iter().any(|&(cr, _)| cr == r)
                && !free.contains(&r)
            {
                free.push(r);
            }
        }
        let out = match free.pop() {
            Some(r) => r,
            None => {
                nslots += 1;
                nloads + nslots - 1
            }
        };
        reg[i] = out;
        prog.push(Instr {
            op,
            a: reg[a],
            b: reg[b],
            c: reg[c],
            out,
        });
    }
    if nslots > MAX_SLOTS {
        return None;
    }
    let mut accesses: Vec<(crate::plan::BufId, isize)> =
        k.loads.iter().map(|l| (l.buffer, l.offset * 4)).collect();
    accesses.extend(
        k.stores
            .iter()
            .map(|s| (s.buffer, s.window.as_ref().map_or(0, |(o, _)| o * 4))),
    );
    let inner = nest.axes.last()?;
    let bcast = inner.strides[..nloads].iter().map(|&s| s == 0).collect();
    let mut stores = Vec::new();
    let mut reduction = None;
    for (j, s) in k.stores.iter().enumerate() {
        let r = reg[s.expr];
        if Some(j) == red_store {
            let kind = k.reduction.as_ref()?.kind;
            reduction = Some((kind, r, nloads + j));
        } else {
            stores.push((r, nloads + j));
        }
    }
    // Stores of a plain load read its buffer directly: do them before any store that
    // could write over that buffer in place (the planner does not create such a
    // kernel today; this keeps the engine right if it ever does).
    stores.sort_by_key(|&(r, _)| r >= nloads);
    Some(Program {
        width,
        nest,
        accesses,
        nloads,
        bcast,
        nslots,
        consts,
        prog,
        stores,
        reduction,
    })
}
