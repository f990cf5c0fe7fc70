//! Lowering a [`Kernel`] to a Cranelift function `fn(buffers: *const *mut u8)`.
//!
//! `buffers` is the executor's table of buffer base pointers. The iteration space is
//! normalised first (`nest.rs`, shared with the tile engine: kept axes before reduced
//! axes, extent-1 axes dropped, adjacent contiguous axes merged). The innermost axis is
//! vectorised — f32x4 for f32 kernels, f64x2 for f64 — when every load on it has
//! stride 0 (splatted once, outside the loop) or 1, with a scalar tail for any length;
//! kernels mixing float widths or using i64, and bool loads/stores, use scalar code.
//! A reduction keeps a vector accumulator and a scalar one for the tail, combined
//! lane by lane at the end (so f32 sums are reassociated; the tests allow for it).
//! Code is generated in program order and compiled with `opt_level=speed`, whose GVN
//! and loop-invariant code motion remove the repeated constants and address arithmetic
//! of the straightforward lowering (measured in `crate::jit`).

use super::nest::{elem_size, normalise, Axis, Nest};
use super::{Expr, Kernel};
use crate::math;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, AbiParam, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use onde_ir::{BinaryOp, CmpOp, DType, ReduceKind, UnaryOp};

/// Flags of element loads and stores: they never trap (every address is inside a
/// buffer of the planned size) but may be unaligned (views start anywhere), so vector
/// accesses must not assume 16-byte alignment.
fn data_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

fn scalar_ty(d: DType) -> Type {
    match d {
        DType::Bool => types::I8,
        DType::I64 => types::I64,
        DType::F32 => types::F32,
        DType::F64 => types::F64,
    }
}

/// The vector shape of a kernel: lanes and the float type, or scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Scalar,
    /// f32x4 with i32x4 masks.
    F32x4,
    /// f64x2 with i64x2 masks.
    F64x2,
}

impl Mode {
    fn lanes(self) -> usize {
        match self {
            Mode::Scalar => 1,
            Mode::F32x4 => 4,
            Mode::F64x2 => 2,
        }
    }

    fn ty(self, d: DType) -> Type {
        match (self, d) {
            (Mode::Scalar, d) => scalar_ty(d),
            (Mode::F32x4, DType::Bool) => types::I32X4,
            (Mode::F64x2, DType::Bool) => types::I64X2,
            (Mode::F32x4, DType::F32 | DType::F64 | DType::I64) => types::F32X4,
            (Mode::F64x2, DType::F32 | DType::F64 | DType::I64) => types::F64X2,
        }
    }
}

/// The loop order of a *column reduction*: a partial reduction whose innermost
/// (reduced) axis is strided for some load — summing the rows of a row-major matrix,
/// a bias gradient — would run as scalar code with one serial chain per output. When
/// the innermost kept axis is contiguous (or broadcast) for every load and at least
/// [`COLUMN_MIN`] long, the axes are reordered to `[outer kept…, reduced…, innermost
/// kept]`: the output row is set to the identity, then each reduced iteration
/// combines a whole vectorised row into it. Every output still combines its inputs in
/// the same order as the scalar chain (identity, then the reduced axes in order), so
/// results are bit-identical; `kept` of the returned nest counts the outer kept axes.
/// (Where the ISA level has the engine's widths, a plain f32 column sum runs in
/// registers instead, with the same bits: `engine::column`.)
pub(crate) fn column_nest(k: &Kernel) -> Option<Nest> {
    let red = k.reduction.as_ref()?;
    let nest = normalise(k);
    let n = nest.axes.len();
    if nest.kept == 0 || nest.kept == n || k.stores.len() != 1 {
        return None;
    }
    let nl = k.loads.len();
    let elem = |i: usize| elem_size(k.loads[i].dtype) as i64;
    let inner = &nest.axes[n - 1];
    if (0..nl).all(|i| inner.strides[i] == 0 || inner.strides[i] == elem(i)) {
        return None; // the innermost reduced axis already vectorises
    }
    let last_kept = &nest.axes[nest.kept - 1];
    let d = k.dtypes[k.stores[red.store].expr];
    if last_kept.extent < COLUMN_MIN
        || !(0..nl).all(|i| last_kept.strides[i] == 0 || last_kept.strides[i] == elem(i))
        || last_kept.strides[nl + red.store] != elem_size(d) as i64
    {
        return None;
    }
    let mut axes: Vec<Axis> = nest.axes[..nest.kept - 1].to_vec();
    axes.extend(nest.axes[nest.kept..].iter().cloned());
    axes.push(last_kept.clone());
    let permuted = Nest {
        axes,
        kept: nest.kept - 1,
    };
    (choose_mode(k, &permuted) != Mode::Scalar).then_some(permuted)
}

/// Shortest innermost kept axis for [`column_nest`].
const COLUMN_MIN: usize = 8;

fn choose_mode(k: &Kernel, nest: &Nest) -> Mode {
    let has = |d: DType| k.dtypes.contains(&d) || k.loads.iter().any(|l| l.dtype == d);
    if has(DType::I64) || (has(DType::F32) && has(DType::F64)) {
        return Mode::Scalar;
    }
    if k.loads.iter().any(|l| l.dtype == DType::Bool)
        || k.stores.iter().any(|s| k.dtypes[s.expr] == DType::Bool)
    {
        return Mode::Scalar;
    }
    let mode = if has(DType::F32) {
        Mode::F32x4
    } else if has(DType::F64) {
        Mode::F64x2
    } else {
        return Mode::Scalar;
    };
    let Some(inner) = nest.axes.last() else {
        return Mode::Scalar;
    };
    if inner.extent < mode.lanes() {
        return Mode::Scalar;
    }
    let nloads = k.loads.len();
    let loads_ok = k.loads.iter().enumerate().all(|(i, l)| {
        let s = inner.strides[i];
        s == 0 || s == elem_size(l.dtype) as i64
    });
    let stores_ok = inner.strides[nloads..]
        .iter()
        .enumerate()
        .all(|(j, &s)| s == 0 || s == elem_size(k.dtypes[k.stores[j].expr]) as i64);
    if loads_ok && stores_ok {
        mode
    } else {
        Mode::Scalar
    }
}

/// Emits the body of the kernel function into `b` (whose signature is
/// `(i64 buffers) -> ()`); the caller finalises the builder.
pub fn emit(k: &Kernel, b: &mut FunctionBuilder) {
    let (nest, column) = match column_nest(k) {
        Some(n) => (n, true),
        None => (normalise(k), false),
    };
    let mode = choose_mode(k, &nest);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (table, lo, hi, partial) = (params[0], params[1], params[2], params[3]);
    let mut bases = Vec::new();
    let flags = MemFlagsData::trusted();
    let accesses: Vec<(crate::plan::BufId, isize, DType)> = k
        .loads
        .iter()
        .map(|l| (l.buffer, l.offset, l.dtype))
        .chain(k.stores.iter().map(|s| {
            let offset = s.window.as_ref().map_or(0, |(o, _)| *o);
            (s.buffer, offset, k.dtypes[s.expr])
        }))
        .collect();
    for &(buf, offset, d) in &accesses {
        let p = b
            .ins()
            .load(types::I64, flags, table, (buf.index() * 8) as i32);
        let p = if offset != 0 {
            b.ins().iadd_imm_s(p, offset as i64 * elem_size(d) as i64)
        } else {
            p
        };
        bases.push(p);
    }
    let zero = b.ins().iconst(types::I64, 0);
    let offs = vec![zero; accesses.len()];
    let mut cx = Cx {
        k,
        nest: &nest,
        mode,
        bases,
        acc: None,
        acc_slot: 0,
        lo,
        hi,
        partial,
        column,
    };
    cx.level(b, 0, offs);
    b.ins().return_(&[]);
    b.seal_all_blocks();
}

/// Longest innermost axis of a scalar-mode kernel that is unrolled rather than looped
/// (not the outermost axis, whose range the caller splits).
const UNROLL_MAX: usize = 8;

/// Accumulator variables of a reduction: ([`ACCUMULATORS`] vectors, or none in scalar
/// mode; scalar).
type Acc = (Option<[Variable; ACCUMULATORS]>, Variable);

/// Vector accumulators of a row reduction. The vector loop is unrolled by this factor,
/// step `j` of each iteration combining into accumulator `j`: one accumulator made
/// every iteration wait for the previous combine (a `max` with NaN propagation is a
/// compare and two selects, a long dependency chain per element), and four partial sums per lane also round less than one
/// (the sum of `k` terms in `k/16` steps per chain instead of `k/4`).
const ACCUMULATORS: usize = 4;

/// Vectors per iteration of an elementwise (or column-order) vector loop: the loop's
/// own instructions (pointer steps, counter, compare and branch) paid once per four
/// vectors instead of per vector.
const ELEMENTWISE_UNROLL: i64 = 4;

struct Cx<'a> {
    k: &'a Kernel,
    nest: &'a Nest,
    mode: Mode,
    bases: Vec<Value>,
    /// One accumulator set per reduced store ([`Reduction::stores`] order) while the
    /// reduced loops are emitted.
    acc: Option<Vec<Acc>>,
    /// Which vector accumulator [`Cx::finish`] combines into.
    acc_slot: usize,
    /// Range `[lo, hi)` of the outermost axis this call computes (for threads).
    lo: Value,
    hi: Value,
    /// Where a full reduction writes its partial result, or 0 for its own buffer.
    partial: Value,
    /// Column order (see [`column_nest`]): the reduced store is accumulated in place,
    /// row by row, along the innermost kept axis.
    column: bool,
}

/// [`ACCUMULATORS`] fresh vector accumulators of a reduction, each at its identity.
fn vector_accs(
    b: &mut FunctionBuilder,
    kind: ReduceKind,
    d: DType,
    mode: Mode,
) -> [Variable; ACCUMULATORS] {
    std::array::from_fn(|_| {
        let v = b.declare_var(mode.ty(d));
        let init = identity(b, kind, d, mode);
        b.def_var(v, init);
        v
    })
}

/// Emits `for i in (start..end).step_by(step)`, calling `body(b, i)`.
fn counted_loop(
    b: &mut FunctionBuilder,
    start: Value,
    end: Value,
    step: i64,
    mut body: impl FnMut(&mut FunctionBuilder, Value),
) {
    let var = b.declare_var(types::I64);
    b.def_var(var, start);
    let header = b.create_block();
    let body_block = b.create_block();
    let exit = b.create_block();
    b.ins().jump(header, &[]);
    b.switch_to_block(header);
    let i = b.use_var(var);
    // Run while i + step <= end.
    let last = b.ins().iadd_imm_s(i, step);
    let cond = b.ins().icmp(IntCC::SignedLessThanOrEqual, last, end);
    b.ins().brif(cond, body_block, &[], exit, &[]);
    b.switch_to_block(body_block);
    body(b, i);
    let next = b.ins().iadd_imm_s(i, step);
    b.def_var(var, next);
    b.ins().jump(header, &[]);
    b.switch_to_block(exit);
}

impl Cx<'_> {
    fn nloads(&self) -> usize {
        self.k.loads.len()
    }

    /// Loop bounds of axis `level`: the caller's `[lo, hi)` for the outermost axis,
    /// `[0, extent)` for the others.
    fn bounds(&self, b: &mut FunctionBuilder, level: usize, extent: usize) -> (Value, Value) {
        // A column-order kernel or sibling reductions whose outermost axis is reduced
        // are never split (see `outer_extent`): they run their whole range.
        let siblings = self
            .k
            .reduction
            .as_ref()
            .is_some_and(|r| !r.also.is_empty());
        let split = !((self.column || siblings) && self.nest.kept == 0);
        if level == 0 && split {
            (self.lo, self.hi)
        } else {
            let z = b.ins().iconst(types::I64, 0);
            let e = b.ins().iconst(types::I64, extent as i64);
            (z, e)
        }
    }

    fn level(&mut self, b: &mut FunctionBuilder, level: usize, offs: Vec<Value>) {
        let n = self.nest.axes.len();
        let reducing = self.k.reduction.is_some();
        if reducing && level == self.nest.kept && self.acc.is_none() {
            if !self.column {
                self.reduction(b, level, offs);
                return;
            }
            // Column order: the output row starts at the identity, then every
            // reduced iteration accumulates into it (`finish`).
            self.column_init(b, &offs);
        }
        if level == n {
            // No axes left (a single element).
            self.inner_scalar_once(b, &offs);
            return;
        }
        if level + 1 == n {
            self.inner(b, level, &offs);
            return;
        }
        let axis = self.nest.axes[level].clone();
        let (start, end) = self.bounds(b, level, axis.extent);
        counted_loop(b, start, end, 1, |b, i| {
            let next: Vec<Value> = offs
                .iter()
                .zip(&axis.strides)
                .map(|(&o, &s)| {
                    if s == 0 {
                        o
                    } else {
                        let d = b.ins().imul_imm_s(i, s);
                        b.ins().iadd(o, d)
                    }
                })
                .collect();
            self.level(b, level + 1, next);
        });
    }

    /// Initialises accumulators, runs the reduced loops, stores the combined result.
    fn reduction(&mut self, b: &mut FunctionBuilder, level: usize, offs: Vec<Value>) {
        let Some(red) = &self.k.reduction else {
            return;
        };
        let kind = red.kind;
        let stores: Vec<usize> = red.stores().collect();
        let mut accs: Vec<Acc> = Vec::with_capacity(stores.len());
        for &rs in &stores {
            let d = self.k.dtypes[self.k.stores[rs].expr];
            let sv = b.declare_var(scalar_ty(d));
            let init = identity(b, kind, d, Mode::Scalar);
            b.def_var(sv, init);
            let vv = (self.mode != Mode::Scalar).then(|| vector_accs(b, kind, d, self.mode));
            accs.push((vv, sv));
        }
        self.acc = Some(accs.clone());
        self.level(b, level, offs.clone());
        for (&rs, &(vv, sv)) in stores.iter().zip(&accs) {
            let d = self.k.dtypes[self.k.stores[rs].expr];
            // The vector accumulators pairwise, then horizontally: scalar acc ⊕ each lane.
            let mut total = b.use_var(sv);
            if let Some(vv) = vv {
                let parts: Vec<Value> = vv.iter().map(|&v| b.use_var(v)).collect();
                let v = combine_pairwise(b, kind, d, parts);
                for lane in 0..self.mode.lanes() {
                    let x = b.ins().extractlane(v, lane as u8);
                    total = combine(b, kind, d, total, x);
                }
            }
            let store_index = self.nloads() + rs;
            let own = b.ins().iadd(self.bases[store_index], offs[store_index]);
            // A threaded full reduction writes its partial result where the caller
            // says (never with siblings: `outer_extent` runs those as one share).
            let use_partial = b.ins().icmp_imm_s(IntCC::NotEqual, self.partial, 0);
            let addr = b.ins().select(use_partial, self.partial, own);
            b.ins().store(data_flags(), total, addr, 0);
        }
        self.acc = None;
    }

    /// The innermost axis: a vector loop (if the mode allows) and a scalar tail.
    fn inner(&mut self, b: &mut FunctionBuilder, level: usize, offs: &[Value]) {
        // A row reduction over several axes (batch norm's statistics over (N, T) of
        // `[N, C, T]`): each row is summed into fresh accumulators, then its total is
        // folded into the output's running total, so every chain is one row long plus
        // one step per row rather than all the rows long, as a cascaded sum would be.
        let vectors = self
            .acc
            .as_ref()
            .is_some_and(|a| a.iter().all(|(vv, _)| vv.is_some()));
        if let (true, Some(outer), Some(red)) = (vectors, self.acc.clone(), &self.k.reduction) {
            if level > self.nest.kept && self.mode != Mode::Scalar {
                let kind = red.kind;
                let mode = self.mode;
                let stores: Vec<usize> = red.stores().collect();
                let rows: Vec<Acc> = stores
                    .iter()
                    .zip(&outer)
                    .map(|(&rs, &(_, sv))| {
                        let d = self.k.dtypes[self.k.stores[rs].expr];
                        (Some(vector_accs(b, kind, d, mode)), sv)
                    })
                    .collect();
                self.acc = Some(rows.clone());
                self.inner_loops(b, level, offs);
                self.acc = Some(outer.clone());
                for ((&rs, (row, _)), (out, _)) in stores.iter().zip(&rows).zip(&outer) {
                    let (Some(row), Some(out)) = (row, out) else {
                        continue;
                    };
                    let d = self.k.dtypes[self.k.stores[rs].expr];
                    let parts: Vec<Value> = row.iter().map(|&v| b.use_var(v)).collect();
                    let total = combine_pairwise(b, kind, d, parts);
                    let run = b.use_var(out[0]);
                    let next = combine(b, kind, d, run, total);
                    b.def_var(out[0], next);
                }
                return;
            }
        }
        self.inner_loops(b, level, offs);
    }

    /// The innermost axis' loops (see [`Cx::inner`]).
    fn inner_loops(&mut self, b: &mut FunctionBuilder, level: usize, offs: &[Value]) {
        let axis = self.nest.axes[level].clone();
        if self.mode == Mode::Scalar && level > 0 && axis.extent <= UNROLL_MAX {
            // A short scalar innermost axis (e.g. a stride-2 interleave, `[.., P, 2]`)
            // is unrolled: a loop per 2 elements cost more than the elements.
            let none = vec![None; self.nloads()];
            let unwalked = vec![None; offs.len()];
            for i in 0..axis.extent {
                let iv = b.ins().iconst(types::I64, i as i64);
                let vals = self.eval(b, Mode::Scalar, &axis, offs, iv, &none, &unwalked);
                self.finish(b, Mode::Scalar, &axis, offs, iv, &vals, &unwalked);
            }
            return;
        }
        let (start, end) = self.bounds(b, level, axis.extent);
        let lanes = self.mode.lanes() as i64;
        let mut tail_start = start;
        if self.mode != Mode::Scalar {
            // Broadcast loads (stride 0 on this axis) are read and splatted once.
            let mut hoisted = vec![None; self.nloads()];
            for (i, l) in self.k.loads.iter().enumerate() {
                if axis.strides[i] == 0 {
                    let addr = b.ins().iadd(self.bases[i], offs[i]);
                    let x = b.ins().load(scalar_ty(l.dtype), data_flags(), addr, 0);
                    hoisted[i] = Some(b.ins().splat(self.mode.ty(l.dtype), x));
                }
            }
            // Every other access walks its own pointer, advanced once per iteration:
            // loop-carried variables that Cranelift cannot rematerialise into the body
            // (as it did with `base + outer offsets + i·stride`: two `imul`s and three
            // adds per access and iteration).
            let walkers: Vec<Option<Variable>> = (0..offs.len())
                .map(|a| {
                    if axis.strides[a] == 0 {
                        return None;
                    }
                    let var = b.declare_var(types::I64);
                    let first = self.addr(b, a, &axis, offs, start);
                    b.def_var(var, first);
                    Some(var)
                })
                .collect();
            let mode = self.mode;
            // A row reduction's vector loop, unrolled over the accumulators (see
            // [`ACCUMULATORS`]); the loop below finishes the last whole vectors.
            let unroll = if self
                .acc
                .as_ref()
                .is_some_and(|a| a.first().is_some_and(|(vv, _)| vv.is_some()))
            {
                ACCUMULATORS as i64
            } else {
                ELEMENTWISE_UNROLL
            };
            let mut vec_start = start;
            if unroll > 1 {
                let step = lanes * unroll;
                counted_loop(b, start, end, step, |b, i| {
                    let base: Vec<Option<Value>> =
                        walkers.iter().map(|w| w.map(|v| b.use_var(v))).collect();
                    for j in 0..unroll {
                        let ptrs: Vec<Option<Value>> = base
                            .iter()
                            .enumerate()
                            .map(|(a, p)| {
                                p.map(|p| {
                                    if j == 0 {
                                        p
                                    } else {
                                        b.ins().iadd_imm_s(p, axis.strides[a] * lanes * j)
                                    }
                                })
                            })
                            .collect();
                        let ij = if j == 0 {
                            i
                        } else {
                            b.ins().iadd_imm_s(i, lanes * j)
                        };
                        self.acc_slot = j as usize;
                        let vals = self.eval(b, mode, &axis, offs, ij, &hoisted, &ptrs);
                        self.finish(b, mode, &axis, offs, ij, &vals, &ptrs);
                    }
                    self.acc_slot = 0;
                    for (a, w) in walkers.iter().enumerate() {
                        if let (Some(var), Some(p)) = (w, base[a]) {
                            let next = b.ins().iadd_imm_s(p, axis.strides[a] * step);
                            b.def_var(*var, next);
                        }
                    }
                });
                let span = b.ins().isub(end, start);
                let whole = b.ins().udiv_imm_u(span, step);
                let covered = b.ins().imul_imm_s(whole, step);
                vec_start = b.ins().iadd(start, covered);
            }
            counted_loop(b, vec_start, end, lanes, |b, i| {
                let ptrs: Vec<Option<Value>> =
                    walkers.iter().map(|w| w.map(|v| b.use_var(v))).collect();
                let vals = self.eval(b, mode, &axis, offs, i, &hoisted, &ptrs);
                self.finish(b, mode, &axis, offs, i, &vals, &ptrs);
                for (a, w) in walkers.iter().enumerate() {
                    if let (Some(var), Some(p)) = (w, ptrs[a]) {
                        let next = b.ins().iadd_imm_s(p, axis.strides[a] * lanes);
                        b.def_var(*var, next);
                    }
                }
            });
            // tail = start + (end - start) / lanes · lanes
            let span = b.ins().isub(end, start);
            let whole = b.ins().udiv_imm_u(span, lanes);
            let covered = b.ins().imul_imm_s(whole, lanes);
            tail_start = b.ins().iadd(start, covered);
        }
        let none = vec![None; self.nloads()];
        let unwalked = vec![None; offs.len()];
        counted_loop(b, tail_start, end, 1, |b, i| {
            let vals = self.eval(b, Mode::Scalar, &axis, offs, i, &none, &unwalked);
            self.finish(b, Mode::Scalar, &axis, offs, i, &vals, &unwalked);
        });
    }

    /// Column order: sets the output row (the innermost axis of the reduced store) to
    /// the reduction's identity, vectorised with a scalar tail.
    fn column_init(&mut self, b: &mut FunctionBuilder, offs: &[Value]) {
        let Some(red) = &self.k.reduction else {
            return;
        };
        let (kind, rs) = (red.kind, red.store);
        let d = self.k.dtypes[self.k.stores[rs].expr];
        let Some(axis) = self.nest.axes.last().cloned() else {
            return;
        };
        let a = self.nloads() + rs;
        let start = b.ins().iconst(types::I64, 0);
        let end = b.ins().iconst(types::I64, axis.extent as i64);
        let lanes = self.mode.lanes() as i64;
        let mode = self.mode;
        let whole = (axis.extent as i64 / lanes) * lanes;
        if mode != Mode::Scalar {
            let vend = b.ins().iconst(types::I64, whole);
            counted_loop(b, start, vend, lanes, |b, i| {
                let v = identity(b, kind, d, mode);
                let addr = self.addr(b, a, &axis, offs, i);
                b.ins().store(data_flags(), v, addr, 0);
            });
        }
        let tail = if mode != Mode::Scalar {
            b.ins().iconst(types::I64, whole)
        } else {
            start
        };
        counted_loop(b, tail, end, 1, |b, i| {
            let v = identity(b, kind, d, Mode::Scalar);
            let addr = self.addr(b, a, &axis, offs, i);
            b.ins().store(data_flags(), v, addr, 0);
        });
    }

    fn inner_scalar_once(&mut self, b: &mut FunctionBuilder, offs: &[Value]) {
        let axis = Axis {
            extent: 1,
            strides: vec![0; offs.len()],
            reduced: false,
        };
        let zero = b.ins().iconst(types::I64, 0);
        let none = vec![None; self.nloads()];
        let unwalked = vec![None; offs.len()];
        let vals = self.eval(b, Mode::Scalar, &axis, offs, zero, &none, &unwalked);
        self.finish(b, Mode::Scalar, &axis, offs, zero, &vals, &unwalked);
    }

    /// Address of access `a` at inner index `i`.
    fn addr(
        &self,
        b: &mut FunctionBuilder,
        a: usize,
        axis: &Axis,
        offs: &[Value],
        i: Value,
    ) -> Value {
        let base = b.ins().iadd(self.bases[a], offs[a]);
        let s = axis.strides[a];
        if s == 0 {
            base
        } else {
            let d = b.ins().imul_imm_s(i, s);
            b.ins().iadd(base, d)
        }
    }

    /// Address of access `a` at inner index `i`: its walking pointer when it has one.
    fn at(
        &self,
        b: &mut FunctionBuilder,
        a: usize,
        axis: &Axis,
        offs: &[Value],
        i: Value,
        ptrs: &[Option<Value>],
    ) -> Value {
        match ptrs.get(a).copied().flatten() {
            Some(p) => p,
            None => self.addr(b, a, axis, offs, i),
        }
    }

    /// Stores (elementwise) or accumulates (reduction) the results of one iteration.
    /// `ptrs`: the walking pointer of each access, if any (see [`Cx::inner`]).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        b: &mut FunctionBuilder,
        mode: Mode,
        axis: &Axis,
        offs: &[Value],
        i: Value,
        vals: &[Value],
        ptrs: &[Option<Value>],
    ) {
        let mut skip = None;
        if let (true, Some(red)) = (self.column, &self.k.reduction) {
            let e = self.k.stores[red.store].expr;
            let d = self.k.dtypes[e];
            let addr = self.at(b, self.nloads() + red.store, axis, offs, i, ptrs);
            let acc = b.ins().load(mode.ty(d), data_flags(), addr, 0);
            let next = combine(b, red.kind, d, acc, vals[e.index()]);
            b.ins().store(data_flags(), next, addr, 0);
            skip = Some(red.store);
        }
        let mut reduced: Vec<usize> = Vec::new();
        if let (Some(accs), Some(red)) = (&self.acc, &self.k.reduction) {
            for (rs, &(vv, sv)) in red.stores().zip(accs) {
                let e = self.k.stores[rs].expr;
                let d = self.k.dtypes[e];
                let var = if mode == Mode::Scalar {
                    Some(sv)
                } else {
                    vv.map(|v| v[self.acc_slot])
                };
                if let Some(var) = var {
                    let acc = b.use_var(var);
                    let next = combine(b, red.kind, d, acc, vals[e.index()]);
                    b.def_var(var, next);
                }
                reduced.push(rs);
            }
        }
        for (j, s) in self.k.stores.iter().enumerate() {
            if Some(j) == skip || reduced.contains(&j) {
                continue;
            }
            let a = self.nloads() + j;
            let addr = self.at(b, a, axis, offs, i, ptrs);
            b.ins().store(data_flags(), vals[s.expr.index()], addr, 0);
        }
    }

    /// Evaluates every expression for inner index `i`.
    #[allow(clippy::too_many_arguments)]
    fn eval(
        &self,
        b: &mut FunctionBuilder,
        mode: Mode,
        axis: &Axis,
        offs: &[Value],
        i: Value,
        hoisted: &[Option<Value>],
        ptrs: &[Option<Value>],
    ) -> Vec<Value> {
        let mut v: Vec<Value> = Vec::with_capacity(self.k.exprs.len());
        for (idx, e) in self.k.exprs.iter().enumerate() {
            let d = self.k.dtypes[idx];
            let ty = mode.ty(d);
            let x = match e {
                Expr::Load(l) => match hoisted.get(*l).copied().flatten() {
                    Some(h) => h,
                    None => {
                        let addr = self.at(b, *l, axis, offs, i, ptrs);
                        b.ins().load(ty, data_flags(), addr, 0)
                    }
                },
                Expr::Const(c, d) => constant(b, mode, *d, *c),
                Expr::Unary(u, a) => unary(b, mode, *u, self.k.dtypes[*a], v[*a]),
                Expr::Binary(op, x, y) => binary(b, mode, *op, self.k.dtypes[*x], v[*x], v[*y]),
                Expr::Compare(c, x, y) => compare(b, mode, *c, self.k.dtypes[*x], v[*x], v[*y]),
                Expr::Where(c, x, y) => select(b, mode, d, v[*c], v[*x], v[*y]),
                Expr::Cast(to, a) => cast(b, mode, self.k.dtypes[*a], *to, v[*a]),
            };
            v.push(x);
        }
        v
    }
}

fn fconst(b: &mut FunctionBuilder, mode: Mode, d: DType, x: f64) -> Value {
    let s = if d == DType::F64 {
        b.ins().f64const(x)
    } else {
        b.ins().f32const(x as f32)
    };
    match mode {
        Mode::Scalar => s,
        Mode::F32x4 | Mode::F64x2 => b.ins().splat(mode.ty(d), s),
    }
}

fn constant(b: &mut FunctionBuilder, mode: Mode, d: DType, x: f64) -> Value {
    match d {
        DType::F32 | DType::F64 => fconst(b, mode, d, x),
        DType::I64 => b.ins().iconst(types::I64, x as i64),
        DType::Bool => match mode {
            Mode::Scalar => b.ins().iconst(types::I8, i64::from(x != 0.0)),
            Mode::F32x4 | Mode::F64x2 => {
                let lane = if mode == Mode::F32x4 {
                    types::I32
                } else {
                    types::I64
                };
                let s = b.ins().iconst(lane, if x != 0.0 { -1 } else { 0 });
                b.ins().splat(mode.ty(DType::Bool), s)
            }
        },
    }
}

/// `c ? x : y` (mask select in vector mode).
fn select(b: &mut FunctionBuilder, mode: Mode, d: DType, c: Value, x: Value, y: Value) -> Value {
    match mode {
        Mode::Scalar => b.ins().select(c, x, y),
        Mode::F32x4 | Mode::F64x2 => {
            let ty = mode.ty(d);
            let m = if ty == mode.ty(DType::Bool) {
                c
            } else {
                b.ins().bitcast(ty, MemFlagsData::new(), c)
            };
            b.ins().bitselect(m, x, y)
        }
    }
}

fn identity(b: &mut FunctionBuilder, kind: ReduceKind, d: DType, mode: Mode) -> Value {
    let v = match kind {
        ReduceKind::Sum => 0.0,
        ReduceKind::Prod => 1.0,
        ReduceKind::Max => f64::NEG_INFINITY,
        ReduceKind::Min => f64::INFINITY,
    };
    if d == DType::I64 {
        let i = match kind {
            ReduceKind::Sum => 0,
            ReduceKind::Prod => 1,
            ReduceKind::Max => i64::MIN,
            ReduceKind::Min => i64::MAX,
        };
        return b.ins().iconst(types::I64, i);
    }
    fconst(b, mode, d, v)
}

/// `parts` combined pairwise: `(p0 ⊕ p1) ⊕ (p2 ⊕ p3)`.
fn combine_pairwise(
    b: &mut FunctionBuilder,
    kind: ReduceKind,
    d: DType,
    mut parts: Vec<Value>,
) -> Value {
    while parts.len() > 1 {
        parts = parts
            .chunks(2)
            .map(|p| match p {
                [x, y] => combine(b, kind, d, *x, *y),
                _ => p[0],
            })
            .collect();
    }
    parts[0]
}

fn combine(b: &mut FunctionBuilder, kind: ReduceKind, d: DType, acc: Value, x: Value) -> Value {
    if d == DType::I64 {
        return match kind {
            ReduceKind::Sum => b.ins().iadd(acc, x),
            ReduceKind::Prod => b.ins().imul(acc, x),
            ReduceKind::Max => b.ins().smax(acc, x),
            ReduceKind::Min => b.ins().smin(acc, x),
        };
    }
    match kind {
        ReduceKind::Sum => b.ins().fadd(acc, x),
        ReduceKind::Prod => b.ins().fmul(acc, x),
        ReduceKind::Max => b.ins().fmax(acc, x),
        ReduceKind::Min => b.ins().fmin(acc, x),
    }
}

fn sign(b: &mut FunctionBuilder, mode: Mode, d: DType, x: Value) -> Value {
    if d == DType::I64 {
        let pos = b.ins().icmp_imm_s(IntCC::SignedGreaterThan, x, 0);
        let neg = b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
        let one = b.ins().iconst(types::I64, 1);
        let m1 = b.ins().iconst(types::I64, -1);
        let z = b.ins().iconst(types::I64, 0);
        let inner = b.ins().select(neg, m1, z);
        return b.ins().select(pos, one, inner);
    }
    let z = fconst(b, mode, d, 0.0);
    let one = fconst(b, mode, d, 1.0);
    let m1 = fconst(b, mode, d, -1.0);
    let pos = b.ins().fcmp(FloatCC::GreaterThan, x, z);
    let neg = b.ins().fcmp(FloatCC::LessThan, x, z);
    // NaN compares false both ways: sign(NaN) = 0, as PyTorch.
    let inner = select(b, mode, d, neg, m1, z);
    select(b, mode, d, pos, one, inner)
}

fn unary(b: &mut FunctionBuilder, mode: Mode, u: UnaryOp, d: DType, x: Value) -> Value {
    if d == DType::I64 {
        return match u {
            UnaryOp::Neg => b.ins().ineg(x),
            UnaryOp::Abs => b.ins().iabs(x),
            UnaryOp::Sign => sign(b, mode, d, x),
            UnaryOp::Relu => {
                let z = b.ins().iconst(types::I64, 0);
                b.ins().smax(x, z)
            }
            // Not typed for i64 (the typing rules reject them).
            UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Floor
            | UnaryOp::Not => x,
        };
    }
    if d == DType::Bool {
        return match mode {
            Mode::Scalar => b.ins().bxor_imm_s(x, 1),
            Mode::F32x4 | Mode::F64x2 => b.ins().bnot(x),
        };
    }
    match u {
        UnaryOp::Neg => b.ins().fneg(x),
        UnaryOp::Abs => b.ins().fabs(x),
        UnaryOp::Sign => sign(b, mode, d, x),
        UnaryOp::Exp => math::exp(b, x),
        UnaryOp::Log => math::log(b, x),
        UnaryOp::Sqrt => math::sqrt(b, x),
        UnaryOp::Sin => math::sin(b, x),
        UnaryOp::Cos => math::cos(b, x),
        UnaryOp::Tanh => math::tanh(b, x),
        UnaryOp::Sigmoid => math::sigmoid(b, x),
        UnaryOp::Relu => {
            // x where x > 0 or x is NaN (its bits unchanged), else +0: the
            // interpreter's rule (NaN-propagating like torch.relu, relu(-0) = +0) as
            // a compare and a mask (`fmax` costs eight instructions on x86 vectors).
            let z = fconst(b, mode, d, 0.0);
            let keep = b.ins().fcmp(FloatCC::UnorderedOrGreaterThan, x, z);
            match mode {
                Mode::Scalar => b.ins().select(keep, x, z),
                Mode::F32x4 | Mode::F64x2 => {
                    let m = b.ins().bitcast(mode.ty(d), MemFlagsData::new(), keep);
                    b.ins().band(x, m)
                }
            }
        }
        UnaryOp::Floor => b.ins().floor(x),
        UnaryOp::Not => x,
    }
}

fn binary(
    b: &mut FunctionBuilder,
    _mode: Mode,
    op: BinaryOp,
    d: DType,
    x: Value,
    y: Value,
) -> Value {
    match d {
        DType::I64 => match op {
            BinaryOp::Add => b.ins().iadd(x, y),
            BinaryOp::Sub => b.ins().isub(x, y),
            BinaryOp::Mul => b.ins().imul(x, y),
            BinaryOp::Max => b.ins().smax(x, y),
            BinaryOp::Min => b.ins().smin(x, y),
            BinaryOp::Pow => int_pow(b, x, y),
            // Not typed for i64.
            BinaryOp::Div | BinaryOp::And | BinaryOp::Or => x,
        },
        DType::Bool => match op {
            BinaryOp::And => b.ins().band(x, y),
            BinaryOp::Or => b.ins().bor(x, y),
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Pow
            | BinaryOp::Max
            | BinaryOp::Min => x,
        },
        DType::F32 | DType::F64 => match op {
            BinaryOp::Add => b.ins().fadd(x, y),
            BinaryOp::Sub => b.ins().fsub(x, y),
            BinaryOp::Mul => b.ins().fmul(x, y),
            BinaryOp::Div => b.ins().fdiv(x, y),
            BinaryOp::Pow => math::pow(b, x, y),
            BinaryOp::Max => b.ins().fmax(x, y),
            BinaryOp::Min => b.ins().fmin(x, y),
            BinaryOp::And | BinaryOp::Or => x,
        },
    }
}

/// `x ** y` for i64 scalars, as the interpreter's `int_pow`: wrapping square-and-
/// multiply over the bits of `y >= 0` (a loop of at most 63 steps that stops when
/// the remaining exponent is 0); for `y < 0`, `1/xʸ` truncated toward zero: 1 for
/// `x = 1`, ±1 for `x = -1` (by the parity of `y`), else 0 (also for `x = 0`).
fn int_pow(b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
    let i = |b: &mut FunctionBuilder, v: i64| b.ins().iconst(types::I64, v);
    let (zero, one, m1) = (i(b, 0), i(b, 1), i(b, -1));
    let neg = b.ins().icmp(IntCC::SignedLessThan, y, zero);
    let is1 = b.ins().icmp(IntCC::Equal, x, one);
    let ism1 = b.ins().icmp(IntCC::Equal, x, m1);
    let odd = b.ins().band_imm_u(y, 1);
    let pm1 = b.ins().select(odd, m1, one);
    let inner = b.ins().select(ism1, pm1, zero);
    let negative = b.ins().select(is1, one, inner);
    let (acc, base, e) = (
        b.declare_var(types::I64),
        b.declare_var(types::I64),
        b.declare_var(types::I64),
    );
    b.def_var(acc, one);
    b.def_var(base, x);
    let e0 = b.ins().select(neg, zero, y);
    b.def_var(e, e0);
    let (header, body, exit) = (b.create_block(), b.create_block(), b.create_block());
    b.ins().jump(header, &[]);
    b.switch_to_block(header);
    let ev = b.use_var(e);
    b.ins().brif(ev, body, &[], exit, &[]);
    b.switch_to_block(body);
    let (av, bv, ev) = (b.use_var(acc), b.use_var(base), b.use_var(e));
    let bit = b.ins().band_imm_u(ev, 1);
    let prod = b.ins().imul(av, bv);
    let av = b.ins().select(bit, prod, av);
    b.def_var(acc, av);
    let sq = b.ins().imul(bv, bv);
    b.def_var(base, sq);
    let shifted = b.ins().ushr_imm_u(ev, 1);
    b.def_var(e, shifted);
    b.ins().jump(header, &[]);
    b.switch_to_block(exit);
    let av = b.use_var(acc);
    b.ins().select(neg, negative, av)
}

fn compare(b: &mut FunctionBuilder, _mode: Mode, c: CmpOp, d: DType, x: Value, y: Value) -> Value {
    match d {
        DType::F32 | DType::F64 => {
            let cc = match c {
                CmpOp::Eq => FloatCC::Equal,
                CmpOp::Ne => FloatCC::NotEqual,
                CmpOp::Lt => FloatCC::LessThan,
                CmpOp::Le => FloatCC::LessThanOrEqual,
                CmpOp::Gt => FloatCC::GreaterThan,
                CmpOp::Ge => FloatCC::GreaterThanOrEqual,
            };
            b.ins().fcmp(cc, x, y)
        }
        DType::I64 | DType::Bool => {
            let signed = d == DType::I64;
            let cc = match c {
                CmpOp::Eq => IntCC::Equal,
                CmpOp::Ne => IntCC::NotEqual,
                CmpOp::Lt if signed => IntCC::SignedLessThan,
                CmpOp::Le if signed => IntCC::SignedLessThanOrEqual,
                CmpOp::Gt if signed => IntCC::SignedGreaterThan,
                CmpOp::Ge if signed => IntCC::SignedGreaterThanOrEqual,
                // Bools are 0/1 (scalar) or all-ones masks (vector): unsigned order
                // puts false before true in both.
                CmpOp::Lt => IntCC::UnsignedLessThan,
                CmpOp::Le => IntCC::UnsignedLessThanOrEqual,
                CmpOp::Gt => IntCC::UnsignedGreaterThan,
                CmpOp::Ge => IntCC::UnsignedGreaterThanOrEqual,
            };
            b.ins().icmp(cc, x, y)
        }
    }
}

fn cast(b: &mut FunctionBuilder, mode: Mode, from: DType, to: DType, x: Value) -> Value {
    if from == to {
        return x;
    }
    match mode {
        Mode::F32x4 | Mode::F64x2 => {
            // Vector kernels only cast between bool masks and their float width.
            if to == DType::Bool {
                let z = fconst(b, mode, from, 0.0);
                b.ins().fcmp(FloatCC::NotEqual, x, z)
            } else {
                let one = fconst(b, mode, to, 1.0);
                let z = fconst(b, mode, to, 0.0);
                select(b, mode, to, x, one, z)
            }
        }
        Mode::Scalar => match (from, to) {
            (DType::F32, DType::F64) => b.ins().fpromote(types::F64, x),
            (DType::F64, DType::F32) => b.ins().fdemote(types::F32, x),
            (DType::F32 | DType::F64, DType::I64) => b.ins().fcvt_to_sint_sat(types::I64, x),
            (DType::F32 | DType::F64, DType::Bool) => {
                let z = fconst(b, Mode::Scalar, from, 0.0);
                b.ins().fcmp(FloatCC::NotEqual, x, z)
            }
            (DType::I64, DType::F32 | DType::F64) => b.ins().fcvt_from_sint(scalar_ty(to), x),
            (DType::I64, DType::Bool) => b.ins().icmp_imm_s(IntCC::NotEqual, x, 0),
            (DType::Bool, DType::I64) => b.ins().uextend(types::I64, x),
            (DType::Bool, DType::F32 | DType::F64) => {
                let one = fconst(b, Mode::Scalar, to, 1.0);
                let z = fconst(b, Mode::Scalar, to, 0.0);
                b.ins().select(x, one, z)
            }
            (DType::F32, DType::F32)
            | (DType::F64, DType::F64)
            | (DType::I64, DType::I64)
            | (DType::Bool, DType::Bool) => x,
        },
    }
}

/// The kernel function's signature:
/// `(buffers: *const *mut u8, lo: i64, hi: i64, partial: *mut u8) -> ()`, computing
/// `[lo, hi)` of the outermost (normalised) axis — see [`outer_extent`] — and, for a
/// full reduction, writing its (partial) result to `partial` when it is not null.
pub fn signature(call_conv: cranelift_codegen::isa::CallConv) -> cranelift_codegen::ir::Signature {
    let mut sig = cranelift_codegen::ir::Signature::new(call_conv);
    for _ in 0..4 {
        sig.params.push(AbiParam::new(types::I64));
    }
    sig
}

/// How a kernel can be split across threads: the extent of its outermost axis (1 if
/// it has none) and whether that axis is reduced (then each thread produces a partial
/// result to combine).
pub fn outer_extent(k: &Kernel) -> (usize, bool) {
    if let Some(n) = column_nest(k) {
        // Column order with no kept axis before the reduced ones: the outermost loop
        // is reduced and every share would accumulate into the same row, so the
        // kernel runs as one share.
        if n.kept == 0 {
            return (1, false);
        }
        return (n.axes[0].extent, false);
    }
    let nest = normalise(k);
    let siblings = k.reduction.as_ref().is_some_and(|r| !r.also.is_empty());
    match nest.axes.first() {
        // Sibling reductions over every axis run as one share: a share's partial
        // slot holds one value.
        Some(a) if a.reduced && siblings => (1, false),
        Some(a) => (a.extent, a.reduced),
        None => (1, false),
    }
}
