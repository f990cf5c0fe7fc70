//! Merging kernels over the same iteration space into one loop (duplicate
//! computations collapse, so a value recomputed for several consumers is computed
//! once and never stored).

use super::*;

/// Identity of an expression for deduplication (operands are already interned ids).
pub(super) fn expr_key(e: &Expr, d: DType) -> String {
    format!("{e:?}/{d:?}")
}

/// Appends `e` to `k` unless an identical expression is already there; returns its id.
pub(super) fn intern(
    k: &mut Kernel,
    seen: &mut HashMap<String, ExprId>,
    e: Expr,
    d: DType,
) -> ExprId {
    let key = expr_key(&e, d);
    if let Some(&id) = seen.get(&key) {
        return id;
    }
    k.exprs.push(e);
    k.dtypes.push(d);
    let id = ExprId::new(k.exprs.len() - 1);
    seen.insert(key, id);
    id
}

pub(super) fn full_reduction(k: &Kernel) -> bool {
    k.reduction
        .as_ref()
        .is_none_or(|r| r.axes.len() == k.shape.len())
}

pub(crate) fn writes(s: &Step) -> Vec<BufId> {
    match s {
        Step::Kernel(k) => k.stores.iter().map(|st| st.buffer).collect(),
        Step::MatMul { out, .. } | Step::Conv { out, .. } => vec![*out],
        Step::Host { outs, .. } | Step::Scan { outs, .. } => outs.clone(),
        Step::Copy(_, _, out) => vec![*out],
    }
}

/// Appends kernel `b` to kernel `a`: one loop computing both. Loads and identical
/// expressions are shared.
pub(super) fn append(a: &mut Kernel, b: &Kernel) {
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
    let mut seen: HashMap<String, ExprId> = a
        .exprs
        .iter()
        .zip(&a.dtypes)
        .enumerate()
        .map(|(i, (e, d))| (expr_key(e, *d), ExprId::new(i)))
        .collect();
    let mut expr_map: Vec<ExprId> = Vec::with_capacity(b.exprs.len());
    for (e, d) in b.exprs.iter().zip(&b.dtypes) {
        let m = |i: &ExprId| expr_map[*i];
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
            window: st.window.clone(),
        });
    }
    if let Some(r) = &b.reduction {
        match &mut a.reduction {
            // Siblings: the same kind over the same axes (see `siblings`).
            Some(ar) => ar.also.extend(r.stores().map(|j| j + base)),
            None => {
                a.reduction = Some(Reduction {
                    kind: r.kind,
                    axes: r.axes.clone(),
                    store: r.store + base,
                    also: r.also.iter().map(|j| j + base).collect(),
                })
            }
        }
    }
    a.name = format!("{}+{}", a.name, b.name);
    a.fused.extend(b.fused.iter().cloned());
}

/// Whether `a` and `b` reduce the same way (kind and axes) and store nothing else:
/// one loop can accumulate both (sibling reductions, [`Reduction::also`]), reading the
/// data they share once — a batch norm backward's two sums over `[N, C, T]`.
fn siblings(a: &Kernel, b: &Kernel) -> bool {
    let only = |k: &Kernel, r: &Reduction| k.stores.len() == 1 + r.also.len();
    // A kernel with a faster loop of its own stays alone: a column reduction's
    // vectorised column order takes one store (`clif::column_nest`), and the tile
    // engine (kernels computing a transcendental) takes no siblings.
    let own_loop = |k: &Kernel| {
        crate::kernel::clif::column_nest(k).is_some()
            || k.exprs
                .iter()
                .any(|e| matches!(e, Expr::Unary(u, _) if u.is_transcendental()))
    };
    match (&a.reduction, &b.reduction) {
        (Some(x), Some(y)) => {
            x.kind == y.kind
                && x.axes == y.axes
                && only(a, x)
                && only(b, y)
                && !own_loop(a)
                && !own_loop(b)
        }
        _ => false,
    }
}

/// Merges kernels with the same iteration space into one loop (horizontal fusion),
/// when the later one reads nothing written by the earlier one or anything in between,
/// and at most one of them reduces (over all axes), or both reduce the same way and
/// store nothing else ([`siblings`]).
pub fn merge_kernels(steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for s in steps {
        let Step::Kernel(k) = &s else {
            out.push(s);
            continue;
        };
        let reads: Vec<BufId> = k.loads.iter().map(|l| l.buffer).collect();
        let mut target = None;
        let mut written_after: Vec<BufId> = Vec::new();
        for i in (0..out.len()).rev() {
            written_after.extend(writes(&out[i]));
            if let Step::Kernel(prev) = &out[i] {
                let shapes = prev.shape == k.shape
                    && prev.exprs.len() + k.exprs.len() <= MAX_MERGED_EXPRS
                    && !reads.iter().any(|b| written_after.contains(b));
                let no_siblings =
                    |k: &Kernel| k.reduction.as_ref().is_none_or(|r| r.also.is_empty());
                let one_reduces = full_reduction(prev)
                    && full_reduction(k)
                    && !(prev.reduction.is_some() && k.reduction.is_some())
                    && no_siblings(prev)
                    && no_siblings(k);
                let compatible = shapes && (one_reduces || siblings(prev, k));
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

/// Moves each matrix product down to just before the first step that reads its
/// output, when that step is a kernel and nothing in between touches the product's
/// operands or output: the kernel is then the product's next step and can run as its
/// register epilogue (`exec::epilogue`). Topological order can put other work between
/// them — W3's two directions compute both input projections first, then add each
/// one's bias over `[T, B, 3H]` as a separate pass.
pub fn sink_products(buffers: &[BufferSpec], steps: Vec<Step>) -> Vec<Step> {
    // Each step moves at most once (two products read by one kernel would otherwise
    // take turns moving past each other).
    let mut steps: Vec<(Step, bool)> = steps.into_iter().map(|s| (s, false)).collect();
    let mut i = 0;
    while i < steps.len() {
        let (Step::MatMul { a, b, out, .. }, false) = &steps[i] else {
            i += 1;
            continue;
        };
        let (a, b, out) = (
            super::memory::root_in(buffers, a.buf),
            super::memory::root_in(buffers, b.buf),
            super::memory::root_in(buffers, *out),
        );
        let reads_out = |s: &Step| {
            super::memory::reads(s)
                .iter()
                .any(|&x| super::memory::root_in(buffers, x) == out)
        };
        let touches = |s: &Step| {
            reads_out(s)
                || writes(s)
                    .iter()
                    .any(|&x| [a, b, out].contains(&super::memory::root_in(buffers, x)))
        };
        let Some(j) = (i + 1..steps.len()).find(|&j| touches(&steps[j].0)) else {
            i += 1;
            continue;
        };
        if j > i + 1 && matches!(steps[j].0, Step::Kernel(_)) && reads_out(&steps[j].0) {
            let (s, _) = steps.remove(i);
            steps.insert(j - 1, (s, true));
            // Step `i` is now the one that followed the product: look at it next.
            continue;
        }
        i += 1;
    }
    steps.into_iter().map(|(s, _)| s).collect()
}
