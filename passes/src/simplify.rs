//! Algebraic simplification as named, directional rewrite rules.
//!
//! Each rule reads the graph at one op and may return a [`Patch`]; the driver applies
//! patches (rules never mutate), so a rule cannot invalidate the walk. Every rule
//! removes an op or replaces ops by fewer or cheaper ones, and is exact: results are
//! bit-for-bit those of the original graph (a rule only fires when the result type
//! equals the type of what replaces it). Rules that are only true up to rounding or
//! for part of the domain (`exp(log x) → x` is wrong for x ≤ 0, `log(exp x) → x` for
//! large x) are *fast-math* rules, off unless [`Simplify::fast_math`] is set.

use crate::pass::{Pass, PassError};
use onde_ir::{BinaryOp, Graph, Op, OpId, UnaryOp, ValueId};

/// A rewrite: uses of `old` become uses of `new` (an existing value) or of the result
/// of a new op.
#[derive(Clone, Debug, PartialEq)]
pub enum Patch {
    /// Replace by an existing value.
    Value(ValueId, ValueId),
    /// Replace by a new op on existing values.
    Op(ValueId, Op, Vec<ValueId>),
    /// Replace by the last of several new ops; operands are existing values
    /// (`Ok(v)`) or the result of an earlier new op of the list (`Err(index)`).
    Ops(ValueId, Vec<(Op, Vec<Result<ValueId, usize>>)>),
}

/// A named rule.
pub struct Rule {
    /// Stable name (`mul_one`).
    pub name: &'static str,
    /// Exact (always on) or fast-math (opt-in).
    pub exact: bool,
    /// Inspects op `o`; returns a patch if the rule applies.
    pub apply: fn(&Graph, OpId) -> Option<Patch>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rule({})", self.name)
    }
}

/// The value of a uniform constant (every element the same bits), or of a broadcast or
/// reshape of one.
pub(crate) fn scalar_const(g: &Graph, v: ValueId) -> Option<f64> {
    let o = g.producer(v)?;
    let op = &g.op(o).op;
    if let Op::Constant(a) = op {
        let vals = a.to_f64_vec();
        let first = *vals.first()?;
        return vals
            .iter()
            .all(|&x| x.to_bits() == first.to_bits())
            .then_some(first);
    }
    // A broadcast or reshape of a uniform constant is uniform (W6's backward seed is
    // `expand` of a one-element constant 1).
    if matches!(op, Op::Expand { .. } | Op::Reshape { .. }) {
        return scalar_const(g, *g.operands(o).first()?);
    }
    None
}

fn single(g: &Graph, o: OpId) -> Option<(Op, Vec<ValueId>, ValueId)> {
    let r = *g.results(o).first()?;
    Some((g.op(o).op.clone(), g.operands(o), r))
}

/// `x op c → x` when the result has `x`'s type and `c` is the identity of `op`.
fn identity_operand(g: &Graph, o: OpId, bin: BinaryOp, c: f64, commutes: bool) -> Option<Patch> {
    let (op, xs, r) = single(g, o)?;
    if op != Op::Binary(bin) {
        return None;
    }
    let rt = g.value_type(r);
    let sides: &[(usize, usize)] = if commutes {
        &[(0, 1), (1, 0)]
    } else {
        &[(0, 1)]
    };
    for &(keep, drop) in sides {
        // `1.0 * x` is exact; `x + 0.0` turns -0.0 into +0.0, so the additive identity
        // is -0.0 (compared by bits).
        let is_id = scalar_const(g, xs[drop]).is_some_and(|v| v.to_bits() == c.to_bits());
        if is_id && g.value_type(xs[keep]) == rt {
            return Some(Patch::Value(r, xs[keep]));
        }
    }
    None
}

fn mul_one(g: &Graph, o: OpId) -> Option<Patch> {
    identity_operand(g, o, BinaryOp::Mul, 1.0, true)
}

fn div_one(g: &Graph, o: OpId) -> Option<Patch> {
    identity_operand(g, o, BinaryOp::Div, 1.0, false)
}

fn add_neg_zero(g: &Graph, o: OpId) -> Option<Patch> {
    identity_operand(g, o, BinaryOp::Add, -0.0, true)
}

/// `x - (+0) → x`: exact for every `x` (`-0 - +0 = -0`); `x - (-0)` is not removed.
fn sub_zero(g: &Graph, o: OpId) -> Option<Patch> {
    identity_operand(g, o, BinaryOp::Sub, 0.0, false)
}

/// `x / c → x · (1/c)` for a uniform float constant `c = ±2ᵏ` whose reciprocal is a
/// normal number of the dtype: `1/c` is exact and scaling by a power of two rounds
/// once, so both sides give the same bits for every `x` (subnormal results included:
/// the exact quotient is rounded the same way). Attention's `scores / √64`: a division
/// per score becomes a multiplication.
fn div_pow2(g: &Graph, o: OpId) -> Option<Patch> {
    let (op, xs, r) = single(g, o)?;
    if op != Op::Binary(BinaryOp::Div) {
        return None;
    }
    let cty = g.value_type(xs[1]).clone();
    if g.value_type(xs[0]) != g.value_type(r) || !cty.dtype.is_float() {
        return None;
    }
    let c = scalar_const(g, xs[1])?;
    if !c.is_finite() || c == 0.0 {
        return None;
    }
    let inv = 1.0 / c;
    let pow2 = |v: f64| v.abs().log2().fract() == 0.0;
    let max_exp = if cty.dtype == onde_ir::DType::F32 {
        126.0
    } else {
        1022.0
    };
    if !pow2(c) || c.abs().log2().abs() > max_exp || (inv * c - 1.0).abs() > 0.0 {
        return None;
    }
    let scalar = onde_ir::Array::from_f64(cty.dtype, Vec::<usize>::new(), &[inv]).ok()?;
    let mut ops = vec![(Op::Constant(scalar), vec![])];
    let operand = if cty.shape.rank() == 0 {
        Err(0)
    } else {
        ops.push((
            Op::Expand {
                shape: cty.shape.clone(),
            },
            vec![Err(0)],
        ));
        Err(1)
    };
    ops.push((Op::Binary(BinaryOp::Mul), vec![Ok(xs[0]), operand]));
    Some(Patch::Ops(r, ops))
}

fn double_negation(g: &Graph, o: OpId) -> Option<Patch> {
    let (op, xs, r) = single(g, o)?;
    if op != Op::Unary(UnaryOp::Neg) {
        return None;
    }
    let inner = g.producer(xs[0])?;
    if g.op(inner).op != Op::Unary(UnaryOp::Neg) {
        return None;
    }
    Some(Patch::Value(r, g.operands(inner)[0]))
}

fn noop_view(g: &Graph, o: OpId) -> Option<Patch> {
    let (op, xs, r) = single(g, o)?;
    let same = g.value_type(r) == g.value_type(*xs.first()?);
    let noop = match &op {
        Op::Reshape { .. } | Op::Expand { .. } | Op::Cast { .. } => same,
        Op::Permute { perm } => perm.iter().enumerate().all(|(i, &p)| i == p),
        Op::Slice { axes } => {
            same && axes
                .iter()
                .zip(g.value_type(xs[0]).shape.dims())
                .all(|(a, &d)| a.start == 0 && a.stop == d && a.step == 1)
        }
        Op::Pad { pads, .. } => pads.iter().all(|&p| p == (0, 0)),
        Op::Concat { .. } => xs.len() == 1,
        Op::Input { .. }
        | Op::Parameter { .. }
        | Op::Constant(_)
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Compare(_)
        | Op::Where
        | Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::Softmax { .. }
        | Op::SoftmaxBackward { .. }
        | Op::Detach
        | Op::MatMul
        | Op::Conv(_)
        | Op::Random { .. }
        | Op::Unfold { .. }
        | Op::Scan(_) => false,
    };
    noop.then_some(Patch::Value(r, xs[0]))
}

/// `outer(inner(x)) → outer(x)` when the op at `o` and its operand's producer are both
/// of the kind `same` accepts and the outer op alone gives the same result (a reshape
/// or broadcast of a reshape or broadcast only depends on the final shape).
fn collapse_nested(g: &Graph, o: OpId, same: fn(&Op) -> bool) -> Option<Patch> {
    let (op, xs, r) = single(g, o)?;
    if !same(&op) {
        return None;
    }
    let inner = g.producer(*xs.first()?)?;
    if !same(&g.op(inner).op) {
        return None;
    }
    Some(Patch::Op(r, op, vec![g.operands(inner)[0]]))
}

fn reshape_of_reshape(g: &Graph, o: OpId) -> Option<Patch> {
    collapse_nested(g, o, |op| matches!(op, Op::Reshape { .. }))
}

fn transpose_of_transpose(g: &Graph, o: OpId) -> Option<Patch> {
    let (op, xs, r) = single(g, o)?;
    let Op::Permute { perm: outer } = op else {
        return None;
    };
    let inner = g.producer(xs[0])?;
    let Op::Permute { perm: first } = &g.op(inner).op else {
        return None;
    };
    // result axis a = inner axis outer[a] = source axis first[outer[a]]
    let perm: Vec<usize> = outer.iter().map(|&a| first[a]).collect();
    let src = g.operands(inner)[0];
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Some(Patch::Value(r, src));
    }
    Some(Patch::Op(r, Op::Permute { perm }, vec![src]))
}

/// `(a @ b)ᵀ → bᵀ @ aᵀ` (last two axes) when the product is used only by this
/// transpose: the product is then computed directly in the layout its consumers read
/// (e.g. a weight gradient `(xᵀ·dy)ᵀ` consumed by an optimiser's elementwise update),
/// and the operand transposes are free strided views for the GEMM. Same products
/// summed in the same order: exact.
fn transpose_of_matmul(g: &Graph, o: OpId) -> Option<Patch> {
    let (op, xs, r) = single(g, o)?;
    let Op::Permute { perm } = op else {
        return None;
    };
    let n = perm.len();
    let swaps_last_two = n >= 2
        && perm[n - 1] == n - 2
        && perm[n - 2] == n - 1
        && perm[..n - 2].iter().enumerate().all(|(i, &p)| i == p);
    if !swaps_last_two {
        return None;
    }
    let mm = g.producer(xs[0])?;
    if g.op(mm).op != Op::MatMul || g.users(xs[0]).len() != 1 || g.outputs().contains(&xs[0]) {
        return None;
    }
    let ab = g.operands(mm);
    // Both operands must have the product's rank (no implicit matrix-vector forms).
    if ab.iter().any(|&v| g.value_type(v).shape.rank() != n) {
        return None;
    }
    Some(Patch::Ops(
        r,
        vec![
            (Op::Permute { perm: perm.clone() }, vec![Ok(ab[1])]),
            (Op::Permute { perm }, vec![Ok(ab[0])]),
            (Op::MatMul, vec![Err(0), Err(1)]),
        ],
    ))
}

/// `a[…, m, 1] @ b[…, 1, n]` (every sum has one term: an outer product, e.g. the input
/// gradient of a `Linear(·, 1)` layer, `dscore ⊗ w`) → `a·b + 0` with both operands
/// broadcast to the product's shape: an elementwise product that fuses into its
/// consumers instead of a GEMM call writing the whole matrix. Exact: the product of
/// two floats rounds once either way, and a matrix product's sum starts from `+0` (the
/// interpreter's definition, which the compiled products follow), so `+ 0` (never
/// removed: only `-0` is the additive identity) turns a `-0` product into `+0` as the
/// matrix product does. Float dtypes, operands of the product's rank and dtype (a
/// lower-rank operand is reshaped by the layers before it gets here).
fn outer_product(g: &Graph, o: OpId) -> Option<Patch> {
    let (op, xs, r) = single(g, o)?;
    if op != Op::MatMul {
        return None;
    }
    let rt = g.value_type(r).clone();
    let n = rt.shape.rank();
    let (at, bt) = (g.value_type(xs[0]), g.value_type(xs[1]));
    let fits = |t: &onde_ir::TensorType| t.shape.rank() == n && t.dtype == rt.dtype;
    if n < 2 || !rt.dtype.is_float() || !fits(at) || !fits(bt) || at.shape.dims()[n - 1] != 1 {
        return None;
    }
    let zero = onde_ir::Array::from_f64(rt.dtype, Vec::<usize>::new(), &[0.0]).ok()?;
    let expand = || Op::Expand {
        shape: rt.shape.clone(),
    };
    Some(Patch::Ops(
        r,
        vec![
            (expand(), vec![Ok(xs[0])]),
            (expand(), vec![Ok(xs[1])]),
            (Op::Binary(BinaryOp::Mul), vec![Err(0), Err(1)]),
            (Op::Constant(zero), vec![]),
            (expand(), vec![Err(3)]),
            (Op::Binary(BinaryOp::Add), vec![Err(2), Err(4)]),
        ],
    ))
}

/// `reduce(concat(x₁, …, xₙ))` over axes that do not include the concatenation axis →
/// `concat(reduce(x₁), …, reduce(xₙ))`, also through a permute between the two
/// (`reduce(permute(concat(…)))`, each part permuted the same way): each result
/// element combines the same elements of one operand in the same order, so the bits
/// are the same, and the concatenation copies the small results instead of the
/// operands (a bidirectional RNN's outputs averaged over time: `[T, B, 2H]` never
/// built). Concatenations nested along the same axis (`out = cat([out, h])` in a
/// loop), each read only there, are taken apart in the same firing: one level per
/// fixpoint round would exhaust the optimiser's rounds.
fn reduce_of_concat(g: &Graph, o: OpId) -> Option<Patch> {
    let (op, xs, r) = single(g, o)?;
    let Op::Reduce {
        kind,
        axes,
        keepdim,
    } = op
    else {
        return None;
    };
    let sole = |v: ValueId| g.users(v).len() == 1 && !g.outputs().contains(&v);
    let mut src = xs[0];
    let mut perm = None;
    if let Some(p) = g.producer(src) {
        if let Op::Permute { perm: pp } = &g.op(p).op {
            if !sole(src) {
                return None;
            }
            perm = Some(pp.clone());
            src = g.operands(p)[0];
        }
    }
    let cat = g.producer(src)?;
    let Op::Concat { axis } = g.op(cat).op else {
        return None;
    };
    if !sole(src) {
        return None;
    }
    // The concatenation axis as seen by the reduction.
    let seen = match &perm {
        Some(p) => p.iter().position(|&a| a == axis)?,
        None => axis,
    };
    if axes.contains(&seen) {
        return None;
    }
    let out_axis = if keepdim {
        seen
    } else {
        seen - axes.iter().filter(|&&a| a < seen).count()
    };
    // The leaves of the tree of concatenations along `axis` read only by their parent.
    let mut parts = Vec::new();
    let mut stack: Vec<ValueId> = g.operands(cat).into_iter().rev().collect();
    while let Some(x) = stack.pop() {
        let nested = g
            .producer(x)
            .filter(|&p| sole(x) && g.op(p).op == Op::Concat { axis });
        match nested {
            Some(p) => stack.extend(g.operands(p).into_iter().rev()),
            None => parts.push(x),
        }
    }
    let mut ops = Vec::new();
    let mut reduced = Vec::with_capacity(parts.len());
    for &x in &parts {
        let operand = match &perm {
            Some(p) => {
                ops.push((Op::Permute { perm: p.clone() }, vec![Ok(x)]));
                Err(ops.len() - 1)
            }
            None => Ok(x),
        };
        ops.push((
            Op::Reduce {
                kind,
                axes: axes.clone(),
                keepdim,
            },
            vec![operand],
        ));
        reduced.push(Err(ops.len() - 1));
    }
    ops.push((Op::Concat { axis: out_axis }, reduced));
    Some(Patch::Ops(r, ops))
}

fn broadcast_folding(g: &Graph, o: OpId) -> Option<Patch> {
    collapse_nested(g, o, |op| matches!(op, Op::Expand { .. }))
}

fn double_detach(g: &Graph, o: OpId) -> Option<Patch> {
    let (op, xs, r) = single(g, o)?;
    if op != Op::Detach {
        return None;
    }
    let inner = g.producer(xs[0])?;
    (g.op(inner).op == Op::Detach).then_some(Patch::Value(r, xs[0]))
}

fn unary_of_unary(g: &Graph, o: OpId, outer: UnaryOp, inner_op: UnaryOp) -> Option<Patch> {
    let (op, xs, r) = single(g, o)?;
    if op != Op::Unary(outer) {
        return None;
    }
    let inner = g.producer(xs[0])?;
    if g.op(inner).op != Op::Unary(inner_op) {
        return None;
    }
    Some(Patch::Value(r, g.operands(inner)[0]))
}

fn exp_log(g: &Graph, o: OpId) -> Option<Patch> {
    unary_of_unary(g, o, UnaryOp::Exp, UnaryOp::Log)
}

fn log_exp(g: &Graph, o: OpId) -> Option<Patch> {
    unary_of_unary(g, o, UnaryOp::Log, UnaryOp::Exp)
}

/// All rules, in the order they are tried.
pub const RULES: &[Rule] = &[
    Rule {
        name: "mul_one",
        exact: true,
        apply: mul_one,
    },
    Rule {
        name: "div_one",
        exact: true,
        apply: div_one,
    },
    Rule {
        name: "div_pow2",
        exact: true,
        apply: div_pow2,
    },
    Rule {
        name: "add_neg_zero",
        exact: true,
        apply: add_neg_zero,
    },
    Rule {
        name: "sub_zero",
        exact: true,
        apply: sub_zero,
    },
    Rule {
        name: "double_negation",
        exact: true,
        apply: double_negation,
    },
    Rule {
        name: "noop_view",
        exact: true,
        apply: noop_view,
    },
    Rule {
        name: "reshape_of_reshape",
        exact: true,
        apply: reshape_of_reshape,
    },
    Rule {
        name: "transpose_of_transpose",
        exact: true,
        apply: transpose_of_transpose,
    },
    Rule {
        name: "transpose_of_matmul",
        exact: true,
        apply: transpose_of_matmul,
    },
    Rule {
        name: "outer_product",
        exact: true,
        apply: outer_product,
    },
    Rule {
        name: "reduce_of_concat",
        exact: true,
        apply: reduce_of_concat,
    },
    Rule {
        name: "broadcast_folding",
        exact: true,
        apply: broadcast_folding,
    },
    Rule {
        name: "double_detach",
        exact: true,
        apply: double_detach,
    },
    Rule {
        name: "exp_log",
        exact: false,
        apply: exp_log,
    },
    Rule {
        name: "log_exp",
        exact: false,
        apply: log_exp,
    },
];

/// The simplification pass.
#[derive(Debug, Default)]
pub struct Simplify {
    /// Also apply rules that are not exact (see the module doc).
    pub fast_math: bool,
    /// How many times each rule fired (for dumps and tests).
    pub fired: Vec<(&'static str, usize)>,
}

impl Simplify {
    fn count(&mut self, name: &'static str) {
        match self.fired.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 += 1,
            None => self.fired.push((name, 1)),
        }
    }
}

impl Pass for Simplify {
    fn name(&self) -> &'static str {
        "simplify"
    }

    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        let Some(order) = g.topo_ops() else {
            return Ok(false);
        };
        let mut changed = false;
        for o in order {
            if g.try_op(o).is_none() {
                continue;
            }
            for rule in RULES {
                if !rule.exact && !self.fast_math {
                    continue;
                }
                let Some(patch) = (rule.apply)(g, o) else {
                    continue;
                };
                let loc = g.op(o).loc.clone();
                match patch {
                    Patch::Value(old, new) => g.replace_all_uses(old, new),
                    Patch::Op(old, op, args) => {
                        let (_, r) = g.add_op(op, &args, loc).map_err(|e| PassError::Failed {
                            pass: "simplify",
                            message: format!("rule {}: {e}", rule.name),
                        })?;
                        g.replace_all_uses(old, r[0]);
                    }
                    Patch::Ops(old, ops) => {
                        let mut made: Vec<ValueId> = Vec::with_capacity(ops.len());
                        for (op, args) in ops {
                            let args: Vec<ValueId> = args
                                .into_iter()
                                .map(|a| a.unwrap_or_else(|i| made[i]))
                                .collect();
                            let (_, r) = g.add_op(op, &args, loc.clone()).map_err(|e| {
                                PassError::Failed {
                                    pass: "simplify",
                                    message: format!("rule {}: {e}", rule.name),
                                }
                            })?;
                            made.push(r[0]);
                        }
                        if let Some(&last) = made.last() {
                            g.replace_all_uses(old, last);
                        }
                    }
                }
                self.count(rule.name);
                changed = true;
                break;
            }
        }
        Ok(changed)
    }
}
