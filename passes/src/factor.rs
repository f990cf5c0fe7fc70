//! Factoring sums: `Σ_A (c · x) → c · Σ_A x` for every `c` constant along the summed
//! axes `A`, and `Σ_A (x + y) → Σ_A x + Σ_A y` when every part is already summed
//! elsewhere, so one pass over the data serves several reductions.
//!
//! # Why
//! Reverse-mode differentiation writes each reduction of a gradient as it meets it. The
//! backward of a batch norm over `[N, C, T]` asks for `Σ dy`, `Σ dy·x̂`, `Σ dy·γ·x̂/σ`,
//! `Σ dx'` (the mean's gradient) and, for the bias feeding the norm, `Σ dx`: five passes
//! over tensors of 16 MB in W2, where `Σ dy` and `Σ dy·(x − μ)` suffice (PyTorch's
//! hand-written kernel reads the data twice). Written with per-channel factors pulled
//! out (`γ`, `1/σ` are constant along the summed axes `N, T`) the sums share their
//! cores and common-subexpression elimination merges them; sums of sums split into sums
//! that already exist. The rewrite is exact at every derivative order (it is algebra on
//! the graph, not a different formula for the layer), so second-order gradients through
//! a norm stay right.
//!
//! # What
//! For a `reduce_sum` over axes `A` of a float value `v` of shape `S`, [`decompose`]
//! writes `v` as a signed sum of *terms* `± (Π f) / (Π d) · Π x`: the factors `f` and
//! divisors `d` are constant along `A` (their shape, right-aligned against `S`, has
//! extent 1 on `A`; an `expand` of such a value counts as the value), the *core*
//! `x₁ · x₂ …` holds the leaves of shape `S`. It looks through `add`, `sub`, `neg`,
//! `mul`, and `div` by a constant-along-`A` value; a product of two sums is a leaf, and
//! so is `x − mean_A(x)`, which sums to exactly 0. Then:
//! - one term: `Σ_A v` becomes `± Π f / Π d · Σ_A core` (with the core's leaves
//!   multiplied in a canonical order, so equal cores become the same sum after CSE);
//!   nothing is done when there is no factor and the core is already canonical;
//! - several terms: only when every core is the core of another sum over `A` that stays
//!   one sum (single term): the split then adds no pass over the data, and, relying
//!   only on sums that are not split themselves, the pass settles in a round or two
//!   (a chain of residual sums does not come apart one level per round). A term
//!   without core sums to `f · |A|`; centred terms drop out. Sums over an empty axis
//!   are left alone.
//!
//! # Rounding
//! Not bit-exact: `c · Σ x` rounds differently from `Σ c·x` (one rounding for the
//! product instead of one per element, so at least as accurate), and a split sum
//! subtracts sums that were computed apart: a term that is zero in exact arithmetic
//! (the batch-norm mean's `Σ (x − μ)`) comes out as rounding noise of the size of
//! `ulp(Σ x)` instead of the noise of summing the differences. This is the freedom every
//! reduction already takes (onde's vectorised sums do not add in index order either).
//! Like a fast-math compiler, it takes `Σ(x − mean x) = 0` also where `x` holds an
//! infinity or NaN (the unfactored sum would be NaN; in a batch norm's backward the
//! NaN reaches the gradient through its other terms anyway).

use crate::pass::{Pass, PassError};
use onde_ir::{Array, BinaryOp, Graph, Op, OpId, ReduceKind, UnaryOp, ValueId};
use std::collections::HashMap;

/// Most terms a sum is split into; deeper expressions are left alone.
const MAX_TERMS: usize = 8;
/// Most leaves in one core.
const MAX_CORE: usize = 4;

/// `± Π muls / Π divs · Π core`.
#[derive(Clone, Debug, PartialEq)]
struct Term {
    neg: bool,
    muls: Vec<ValueId>,
    divs: Vec<ValueId>,
    /// Leaves of the full shape, sorted.
    core: Vec<ValueId>,
    /// The core is one value `x − mean_A(x)` (times constants): it sums to exactly 0.
    centered: bool,
}

impl Term {
    fn invariant(v: ValueId) -> Term {
        Term {
            neg: false,
            muls: vec![v],
            divs: vec![],
            core: vec![],
            centered: false,
        }
    }

    fn leaf(v: ValueId) -> Term {
        Term {
            neg: false,
            muls: vec![],
            divs: vec![],
            core: vec![v],
            centered: false,
        }
    }

    fn negated(mut self) -> Term {
        self.neg = !self.neg;
        self
    }

    fn times(mut self, other: Term) -> Option<Term> {
        self.centered =
            (self.centered && other.core.is_empty()) || (other.centered && self.core.is_empty());
        self.neg ^= other.neg;
        self.muls.extend(other.muls);
        self.divs.extend(other.divs);
        self.core.extend(other.core);
        self.core.sort();
        (self.core.len() <= MAX_CORE).then_some(self)
    }
}

/// The ops a sum is decomposed through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Neg,
}

fn arith(op: &Op) -> Option<Arith> {
    [
        (Op::Binary(BinaryOp::Add), Arith::Add),
        (Op::Binary(BinaryOp::Sub), Arith::Sub),
        (Op::Binary(BinaryOp::Mul), Arith::Mul),
        (Op::Binary(BinaryOp::Div), Arith::Div),
        (Op::Unary(UnaryOp::Neg), Arith::Neg),
    ]
    .into_iter()
    .find(|(o, _)| o == op)
    .map(|(_, a)| a)
}

/// What one reduction sums: the shape, dtype and axes its operand is summed over.
struct Site<'a> {
    shape: &'a [usize],
    axes: &'a [usize],
}

/// `v` with its broadcasts looked through, when it is constant along the summed axes.
fn invariant(g: &Graph, site: &Site<'_>, v: ValueId) -> Option<ValueId> {
    let ty = g.value_type(v);
    let dims = ty.shape.dims();
    let r = site.shape.len();
    if dims.len() > r {
        return None;
    }
    let lead = r - dims.len();
    let constant = (0..dims.len()).all(|i| {
        let a = lead + i;
        let d = dims[i];
        if site.axes.contains(&a) {
            d == 1
        } else {
            d == 1 || d == site.shape[a]
        }
    });
    if constant {
        return Some(v);
    }
    let o = g.producer(v)?;
    if let Op::Expand { .. } = g.op(o).op {
        return invariant(g, site, *g.operands(o).first()?);
    }
    None
}

/// `v` as a signed sum of terms (see the module doc), or `None` if a part is neither
/// constant along the axes nor of the full shape.
fn decompose(g: &Graph, site: &Site<'_>, v: ValueId, depth: usize) -> Option<Vec<Term>> {
    if let Some(c) = invariant(g, site, v) {
        return Some(vec![Term::invariant(c)]);
    }
    let ty = g.value_type(v);
    if ty.shape.dims() != site.shape || depth > 24 {
        return None;
    }
    let leaf = Some(vec![Term::leaf(v)]);
    let Some(o) = g.producer(v) else {
        return leaf;
    };
    let xs = g.operands(o);
    if g.op(o).op == Op::Binary(BinaryOp::Sub) && is_mean_of(g, site, xs[1], xs[0]) {
        // `x − mean_A(x)`: a leaf (expanding it would sum x only to subtract the
        // same sum again) that sums to exactly 0.
        let mut t = Term::leaf(v);
        t.centered = true;
        return Some(vec![t]);
    }
    let terms = match arith(&g.op(o).op) {
        Some(Arith::Add) => {
            let mut t = decompose(g, site, xs[0], depth + 1)?;
            if t.len() >= MAX_TERMS {
                return None;
            }
            t.extend(decompose(g, site, xs[1], depth + 1)?);
            t
        }
        Some(Arith::Sub) => {
            let mut t = decompose(g, site, xs[0], depth + 1)?;
            if t.len() >= MAX_TERMS {
                return None;
            }
            t.extend(
                decompose(g, site, xs[1], depth + 1)?
                    .into_iter()
                    .map(Term::negated),
            );
            t
        }
        Some(Arith::Neg) => decompose(g, site, xs[0], depth + 1)?
            .into_iter()
            .map(Term::negated)
            .collect(),
        Some(Arith::Mul) => {
            let a = decompose(g, site, xs[0], depth + 1)?;
            let b = decompose(g, site, xs[1], depth + 1)?;
            let constant = |t: &[Term]| t.len() == 1 && t[0].core.is_empty();
            if constant(&b) || constant(&a) {
                // A sum times a constant-along-the-axes value distributes.
                let (sum, f) = if constant(&b) { (a, &b[0]) } else { (b, &a[0]) };
                sum.into_iter()
                    .map(|t| t.times(f.clone()))
                    .collect::<Option<Vec<_>>>()?
            } else {
                // A factor that is itself a sum stays whole, as a leaf (with its
                // constant factors peeled off: `x̂ = (x − μ)·r` is the leaf `x − μ`
                // times `r`, as in every other sum reading `x − μ`).
                let one = |t: Vec<Term>, x: ValueId| -> Option<Term> {
                    match t.len() {
                        1 => t.into_iter().next(),
                        _ => as_leaf(g, site, x, depth + 1),
                    }
                };
                let (a, b) = (one(a, xs[0])?, one(b, xs[1])?);
                match a.times(b) {
                    Some(t) => vec![t],
                    None => return leaf,
                }
            }
        }
        Some(Arith::Div) => match invariant(g, site, xs[1]) {
            Some(d) => decompose(g, site, xs[0], depth + 1)?
                .into_iter()
                .map(|mut t| {
                    t.divs.push(d);
                    t
                })
                .collect(),
            None => return leaf,
        },
        None => return leaf,
    };
    (terms.len() <= MAX_TERMS).then_some(terms)
}

/// Whether `m` is `Σ_A x / |A|` (kept dims) for the sum's axes `A`: the mean of `x`.
fn is_mean_of(g: &Graph, site: &Site<'_>, m: ValueId, x: ValueId) -> bool {
    let Some(o) = g.producer(m) else {
        return false;
    };
    let xs = g.operands(o);
    if g.value_type(x).shape.dims() != site.shape {
        return false;
    }
    let count: usize = site.axes.iter().map(|&a| site.shape[a]).product();
    // `1/n` rounded to the dtype: within half an ulp of it (another `n` is further).
    let eps = match g.value_type(x).dtype {
        onde_ir::DType::F32 => f64::from(f32::EPSILON),
        onde_ir::DType::F64 | onde_ir::DType::I64 | onde_ir::DType::Bool => f64::EPSILON,
    };
    let sum_of_x = |s: ValueId| {
        g.producer(s).is_some_and(|s| {
            let summed = Op::Reduce {
                kind: ReduceKind::Sum,
                axes: site.axes.to_vec(),
                keepdim: true,
            };
            g.op(s).op == summed && g.operands(s).first() == Some(&x)
        })
    };
    let op = &g.op(o).op;
    if matches!(op, Op::Expand { .. }) {
        return is_mean_of(g, site, xs[0], x);
    }
    match arith(op) {
        Some(Arith::Div) => {
            sum_of_x(xs[0]) && crate::simplify::scalar_const(g, xs[1]) == Some(count as f64)
        }
        // `Σx · (1/n)` (the simplifier turns a division by 2ᵏ into this), with 1/n
        // rounded to the dtype.
        Some(Arith::Mul) => [(0, 1), (1, 0)].iter().any(|&(s, c)| {
            sum_of_x(xs[s])
                && crate::simplify::scalar_const(g, xs[c])
                    .is_some_and(|v| (v * count as f64 - 1.0).abs() <= eps)
        }),
        Some(Arith::Add | Arith::Sub | Arith::Neg) | None => false,
    }
}

/// `v` as one term whose core is a single leaf: constant factors and negations peeled
/// off, the rest whole (used for a sum inside a product).
fn as_leaf(g: &Graph, site: &Site<'_>, v: ValueId, depth: usize) -> Option<Term> {
    if depth > 24 {
        return None;
    }
    let full = || (g.value_type(v).shape.dims() == site.shape).then(|| Term::leaf(v));
    let Some(o) = g.producer(v) else {
        return full();
    };
    let xs = g.operands(o);
    match arith(&g.op(o).op) {
        Some(Arith::Mul) => {
            if let Some(c) = invariant(g, site, xs[1]) {
                as_leaf(g, site, xs[0], depth + 1)?.times(Term::invariant(c))
            } else if let Some(c) = invariant(g, site, xs[0]) {
                as_leaf(g, site, xs[1], depth + 1)?.times(Term::invariant(c))
            } else {
                full()
            }
        }
        Some(Arith::Div) => match invariant(g, site, xs[1]) {
            Some(d) => {
                let mut t = as_leaf(g, site, xs[0], depth + 1)?;
                t.divs.push(d);
                Some(t)
            }
            None => full(),
        },
        Some(Arith::Neg) => Some(as_leaf(g, site, xs[0], depth + 1)?.negated()),
        Some(Arith::Add | Arith::Sub) | None => full(),
    }
}

/// Whether `v` is already a product of exactly the leaves of `core`, in any order
/// (CSE identifies `a·b` with `b·a`, so the order is not what makes sums equal).
fn is_product(g: &Graph, v: ValueId, core: &[ValueId]) -> bool {
    fn leaves(g: &Graph, v: ValueId, core: &[ValueId], out: &mut Vec<ValueId>) {
        if out.len() > core.len() {
            return;
        }
        if !core.contains(&v) {
            if let Some(o) = g.producer(v) {
                if g.op(o).op == Op::Binary(BinaryOp::Mul) {
                    for x in g.operands(o) {
                        leaves(g, x, core, out);
                    }
                    return;
                }
            }
        }
        out.push(v);
    }
    let mut found = Vec::new();
    leaves(g, v, core, &mut found);
    found.sort();
    found == core
}

/// A reduce_sum to rewrite: op, operand, result, axes, keepdim.
struct Sum {
    op: OpId,
    x: ValueId,
    out: ValueId,
    axes: Vec<usize>,
    keepdim: bool,
}

fn sums(g: &Graph) -> Vec<Sum> {
    let Some(order) = g.topo_ops() else {
        return vec![];
    };
    order
        .into_iter()
        .filter_map(|o| {
            let Op::Reduce {
                kind: ReduceKind::Sum,
                axes,
                keepdim,
            } = &g.op(o).op
            else {
                return None;
            };
            let x = *g.operands(o).first()?;
            let out = *g.results(o).first()?;
            g.value_type(x).dtype.is_float().then(|| Sum {
                op: o,
                x,
                out,
                axes: axes.clone(),
                keepdim: *keepdim,
            })
        })
        .collect()
}

/// The factoring pass (see the module doc).
#[derive(Debug, Default)]
pub struct FactorSums {
    /// How many sums were rewritten (for tests and dumps).
    pub rewritten: usize,
}

type Key = (Vec<usize>, Vec<usize>, onde_ir::DType);

impl Pass for FactorSums {
    fn name(&self) -> &'static str {
        "factor_sums"
    }

    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        let all = sums(g);
        if all.is_empty() {
            return Ok(false);
        }
        // Per (shape, axes, dtype): the cores of single-term sums (how many each).
        let key = |g: &Graph, s: &Sum| -> Key {
            let t = g.value_type(s.x);
            (t.shape.dims().to_vec(), s.axes.clone(), t.dtype)
        };
        let mut plans: Vec<(usize, Vec<Term>)> = Vec::new();
        let mut cores: HashMap<Key, HashMap<Vec<ValueId>, usize>> = HashMap::new();
        for (i, s) in all.iter().enumerate() {
            let k = key(g, s);
            // A sum over an empty axis is 0 whatever its operand: left alone (a factor
            // times the count 0 would turn an infinite factor into NaN).
            if s.axes.iter().any(|&a| k.0[a] == 0) {
                continue;
            }
            let site = Site {
                shape: &k.0,
                axes: &s.axes,
            };
            let Some(terms) = decompose(g, &site, s.x, 0) else {
                continue;
            };
            if let [t] = terms.as_slice() {
                if !t.core.is_empty() && !t.centered {
                    *cores
                        .entry(k)
                        .or_default()
                        .entry(t.core.clone())
                        .or_default() += 1;
                }
            }
            plans.push((i, terms));
        }
        let mut changed = false;
        // Sums rewritten so far in this run: a later plan that names one (as its
        // operand or in a term) was decomposed before the rewrite; building it would
        // bring the replaced sum back to life, and the next round would rewrite it
        // again, forever. Such plans wait for the next round's fresh decomposition.
        let mut replaced: Vec<ValueId> = Vec::new();
        for (i, terms) in plans {
            let s = &all[i];
            let stale = replaced.contains(&s.x)
                || terms.iter().any(|t| {
                    t.muls
                        .iter()
                        .chain(&t.divs)
                        .chain(&t.core)
                        .any(|v| replaced.contains(v))
                });
            if stale {
                continue;
            }
            let k = key(g, s);
            // Centred terms sum to exactly 0.
            let dropped = terms.iter().any(|t| t.centered);
            let terms: Vec<Term> = terms.into_iter().filter(|t| !t.centered).collect();
            // A core exists when a sum that stays one sum (single term) sums it: a split
            // then only reuses sums that outlive this round, so the pass settles (a
            // split relying on a sum that is itself split would come apart one level
            // per round along a residual stream).
            let exists = |t: &Term| {
                t.core.is_empty() || cores.get(&k).is_some_and(|c| c.contains_key(&t.core))
            };
            let rewrite = match terms.as_slice() {
                [] => dropped,
                [t] => {
                    dropped
                        || (!t.core.is_empty()
                            && (!t.muls.is_empty()
                                || !t.divs.is_empty()
                                || t.neg
                                || !is_product(g, s.x, &t.core)
                                // Another sum of the same core keeps its axes: the
                                // same form lets CSE merge them.
                                || (!s.keepdim
                                    && cores
                                        .get(&k)
                                        .and_then(|c| c.get(&t.core))
                                        .is_some_and(|&n| n > 1))))
                }
                // Split only when it adds no pass over the data: every core is summed
                // elsewhere.
                _ => terms.iter().all(exists),
            };
            if !rewrite {
                continue;
            }
            let loc = g.op(s.op).loc.clone();
            match build(g, s, &k.0, &terms, loc) {
                Ok(Some(new)) => {
                    g.replace_all_uses(s.out, new);
                    replaced.push(s.out);
                    self.rewritten += 1;
                    changed = true;
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(PassError::Failed {
                        pass: "factor_sums",
                        message: e.to_string(),
                    })
                }
            }
        }
        Ok(changed)
    }
}

/// Builds `Σ terms` for sum `s` (input shape `shape`); `None` when the result would not
/// have the sum's type (then the sum is left alone).
fn build(
    g: &mut Graph,
    s: &Sum,
    shape: &[usize],
    terms: &[Term],
    loc: Option<onde_ir::SourceLoc>,
) -> Result<Option<ValueId>, onde_ir::GraphError> {
    let ty = g.value_type(s.out).clone();
    let dtype = ty.dtype;
    let kept: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(a, &d)| if s.axes.contains(&a) { 1 } else { d })
        .collect();
    let count: usize = s.axes.iter().map(|&a| shape[a]).product();
    let add = |g: &mut Graph, op: Op, xs: &[ValueId]| -> Result<ValueId, onde_ir::GraphError> {
        Ok(g.add_op(op, xs, loc.clone())?.1[0])
    };
    let mut total: Option<ValueId> = None;
    for t in terms {
        let mut v = match t.core.as_slice() {
            [] => {
                let c = add(g, Op::Constant(Array::scalar(dtype, count as f64)), &[])?;
                Some(c)
            }
            core => {
                let mut p = core[0];
                for &x in &core[1..] {
                    p = add(g, Op::Binary(BinaryOp::Mul), &[p, x])?;
                }
                let r = add(
                    g,
                    Op::Reduce {
                        kind: ReduceKind::Sum,
                        axes: s.axes.clone(),
                        keepdim: true,
                    },
                    &[p],
                )?;
                Some(r)
            }
        };
        for &f in &t.muls {
            v = Some(match v {
                Some(x) => add(g, Op::Binary(BinaryOp::Mul), &[x, f])?,
                None => f,
            });
        }
        let mut v = v.expect("a term has a core or a count");
        for &d in &t.divs {
            v = add(g, Op::Binary(BinaryOp::Div), &[v, d])?;
        }
        if g.value_type(v).shape.dims() != kept.as_slice() {
            v = add(
                g,
                Op::Expand {
                    shape: kept.clone().into(),
                },
                &[v],
            )?;
        }
        total = Some(match total {
            None if t.neg => add(g, Op::Unary(UnaryOp::Neg), &[v])?,
            None => v,
            Some(acc) => {
                let op = if t.neg { BinaryOp::Sub } else { BinaryOp::Add };
                add(g, Op::Binary(op), &[acc, v])?
            }
        });
    }
    let mut out = match total {
        Some(t) => t,
        None => {
            let z = add(g, Op::Constant(Array::scalar(dtype, 0.0)), &[])?;
            add(
                g,
                Op::Expand {
                    shape: kept.clone().into(),
                },
                &[z],
            )?
        }
    };
    if !s.keepdim {
        out = add(
            g,
            Op::Reshape {
                shape: ty.shape.clone(),
            },
            &[out],
        )?;
    }
    Ok((g.value_type(out) == &ty).then_some(out))
}
