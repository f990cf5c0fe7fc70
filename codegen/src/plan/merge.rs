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
    append_with(a, b, &HashMap::new());
}

/// [`append`], with `b`'s loads in `subst` replaced by `a`'s expressions (values `a`
/// stores where `b` reads them, see [`producer_substitution`]).
fn append_with(a: &mut Kernel, b: &Kernel, subst: &HashMap<usize, ExprId>) {
    let mut load_map = Vec::with_capacity(b.loads.len());
    for (j, l) in b.loads.iter().enumerate() {
        if subst.contains_key(&j) {
            load_map.push(usize::MAX);
            continue;
        }
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
        if let Expr::Load(l) = e {
            if let Some(&x) = subst.get(l) {
                expr_map.push(x);
                continue;
            }
        }
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

/// A kernel with a faster loop of its own, which stays alone rather than take sibling
/// reductions: a column reduction's vectorised column order takes one store
/// (`clif::column_nest`), and the tile engine (kernels computing a transcendental)
/// takes no siblings.
fn own_loop(k: &Kernel) -> bool {
    crate::kernel::clif::column_nest(k).is_some() || k.computes_transcendental()
}

/// Whether `a` and `b` reduce the same way (kind and axes), neither with a loop of its
/// own ([`own_loop`]): one loop can accumulate both.
fn same_reduction(a: &Kernel, b: &Kernel) -> bool {
    match (&a.reduction, &b.reduction) {
        (Some(x), Some(y)) => x.kind == y.kind && x.axes == y.axes && !own_loop(a) && !own_loop(b),
        _ => false,
    }
}

/// Whether every store of `k` is reduced.
fn only_reduced(k: &Kernel) -> bool {
    k.reduction
        .as_ref()
        .is_some_and(|r| k.stores.len() == 1 + r.also.len())
}

/// Whether `a` and `b` reduce the same way and store nothing else: one loop can
/// accumulate both (sibling reductions, [`Reduction::also`]), reading the data they
/// share once — a batch norm backward's two sums over `[N, C, T]`.
fn siblings(a: &Kernel, b: &Kernel) -> bool {
    same_reduction(a, b) && only_reduced(a) && only_reduced(b)
}

/// Whether the elementwise work of kernel `e` may run in the loop of the reducing
/// kernel `r`, which keeps its order (kept axes first). Not in a column reduction's
/// loop (it takes one store, `clif::column_nest`), nor in a full reduction's with
/// siblings (one share, `clif::outer_extent`: the elementwise work would lose its
/// threads), nor, unless `r` reduces every axis, when tile-engine work (a
/// transcendental) would run on rows shorter than a tile: each costs the engine a
/// staged partial tile (W5's `exp` over `[32, 100, 100]` ran as one 320 000-long axis
/// alone, and 20% slower as 3 200 rows of 100 with its row sums).
fn joins(r: &Kernel, e: &Kernel) -> bool {
    let full = full_reduction(r);
    let with_siblings = r.reduction.as_ref().is_some_and(|x| !x.also.is_empty());
    let short_engine_rows = (r.computes_transcendental() || e.computes_transcendental())
        && crate::kernel::nest::normalise(r)
            .axes
            .last()
            .is_some_and(|inner| inner.extent < crate::kernel::engine::TILE);
    crate::kernel::clif::column_nest(r).is_none()
        && !(full && with_siblings)
        && (full || !short_engine_rows)
}

/// Whether kernels `a` (earlier) and `b` may share one loop as they are: at most one
/// of them reduces, and the other's elementwise work [`joins`] it.
fn one_reduces(a: &Kernel, b: &Kernel) -> bool {
    match (&a.reduction, &b.reduction) {
        (Some(_), Some(_)) => false,
        (None, None) => true,
        (Some(_), None) => joins(a, b),
        (None, Some(_)) => joins(b, a),
    }
}

/// When kernel `k` can run in the loop of the kernel `prev` that produces some of its
/// operands elementwise: the load of each such operand (by its index in `k`) and the
/// expression of `prev` stored there. Needs the same iteration space, at most one of
/// them reducing (the other [`joins`] its loop) or both reducing as siblings, every
/// load of a buffer `prev` writes reading it element for element where `prev` stores
/// it (offset 0, row-major, no window), and nothing `k` writes touched by `prev`. The
/// loop takes the reducing kernel's order (kept axes first); `prev`'s stores stay, for
/// their other readers.
fn producer_substitution(
    buffers: &[BufferSpec],
    prev: &Kernel,
    k: &Kernel,
) -> Option<HashMap<usize, ExprId>> {
    let root = |b: BufId| super::memory::root_in(buffers, b);
    if prev.shape != k.shape || prev.exprs.len() + k.exprs.len() > MAX_MERGED_EXPRS {
        return None;
    }
    // As horizontally (`one_reduces`), except that a reducing `prev` takes a sibling:
    // the same kind over the same axes, every store of `k` reduced (a batch norm
    // backward's second sum over the `g` the first one's kernel stores), with no loop
    // of its own (see `siblings`).
    let fits = if prev.reduction.is_some() && k.reduction.is_some() {
        same_reduction(prev, k) && only_reduced(k)
    } else {
        one_reduces(prev, k)
    };
    if !fits {
        return None;
    }
    let touched: Vec<BufId> = prev
        .loads
        .iter()
        .map(|l| root(l.buffer))
        .chain(prev.stores.iter().map(|s| root(s.buffer)))
        .collect();
    if k.stores.iter().any(|s| touched.contains(&root(s.buffer))) {
        return None;
    }
    let contiguous = super::lazy::contiguous(&k.shape);
    let mut subst = HashMap::new();
    for (j, l) in k.loads.iter().enumerate() {
        let mut stores = prev
            .stores
            .iter()
            .enumerate()
            .filter(|(_, s)| root(s.buffer) == root(l.buffer));
        let Some((si, st)) = stores.next() else {
            continue;
        };
        // Read through an alias (another shape of the same memory): left alone.
        if st.buffer != l.buffer {
            return None;
        }
        let reduced = prev.reduction.as_ref().is_some_and(|r| r.reduces(si));
        let aligned = stores.next().is_none()
            && !reduced
            && st.window.is_none()
            && l.offset == 0
            && l.strides == contiguous
            && prev.dtypes[st.expr] == l.dtype;
        if !aligned {
            return None;
        }
        subst.insert(j, st.expr);
    }
    (!subst.is_empty()).then_some(subst)
}

/// Merges kernels with the same iteration space into one loop: horizontally, when the
/// later one reads nothing written by the earlier one or anything in between, and at
/// most one of them reduces (the other [`joins`] its loop), or both reduce the same way
/// and store nothing else ([`siblings`]); vertically, when the later one reads what the
/// earlier one stores, element for element, and nothing in between touches its
/// operands ([`producer_substitution`]): a value stored for several readers and summed
/// (a batch norm backward's `g` and its `Σ g`, `Σ g·x̂`), or an LSTM's new cell state
/// and its `tanh`, are then computed, stored and used in one pass. Buffers are compared
/// by root (a reshape alias is its root's memory).
pub fn merge_kernels(buffers: &[BufferSpec], steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for s in steps {
        let Step::Kernel(k) = &s else {
            out.push(s);
            continue;
        };
        let root = |b: BufId| super::memory::root_in(buffers, b);
        let reads: Vec<BufId> = k.loads.iter().map(|l| root(l.buffer)).collect();
        let mut target = None;
        let mut vertical = None;
        let mut written_after: Vec<BufId> = Vec::new();
        for i in (0..out.len()).rev() {
            let here: Vec<BufId> = writes(&out[i]).into_iter().map(root).collect();
            if reads.iter().any(|b| here.contains(b))
                && !reads.iter().any(|b| written_after.contains(b))
            {
                if let Step::Kernel(prev) = &out[i] {
                    if let Some(subst) = producer_substitution(buffers, prev, k) {
                        vertical = Some((i, subst));
                    }
                }
            }
            written_after.extend(here);
            if let Step::Kernel(prev) = &out[i] {
                let shapes = prev.shape == k.shape
                    && prev.exprs.len() + k.exprs.len() <= MAX_MERGED_EXPRS
                    && !reads.iter().any(|b| written_after.contains(b));
                let compatible = shapes && (one_reduces(prev, k) || siblings(prev, k));
                if compatible {
                    target = Some(i);
                }
            }
            if reads.iter().any(|b| written_after.contains(b)) {
                break;
            }
        }
        if let Some((i, subst)) = vertical {
            if let Step::Kernel(prev) = &mut out[i] {
                append_with(prev, k, &subst);
            }
            continue;
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
/// output, when that step is a kernel, a softmax or its backward and nothing in between
/// touches the product's operands or output: that step is then the product's next one
/// and can run as its epilogue (`exec::epilogue`, `exec::rows_epilogue`).
/// Topological order can put other work between them (a model that computes several
/// products first, then their bias and activation kernels; a softmax computed between
/// a product and the backward step that reads both).
pub fn sink_products(buffers: &[BufferSpec], steps: Vec<Step>) -> Vec<Step> {
    sink_products_to(buffers, steps, |_| true)
}

/// [`sink_products`] before [`merge_kernels`], for products whose first reader is a
/// kernel that may become a bias (or residual) epilogue: elementwise, one store, and
/// besides the product at most one operand, broadcast along rows (a bias: stride 0 on
/// every axis but the last) or read like the product (a residual). The product then
/// sits between its kernel and the kernels before it, which are not merged into one
/// loop with it — W5's inference computed its three projections, then their three
/// bias adds as one kernel, which no product could take as its epilogue. Other
/// readers keep their place, so they may still merge with the kernels before them.
pub fn sink_products_to_bias_kernels(buffers: &[BufferSpec], steps: Vec<Step>) -> Vec<Step> {
    sink_products_to(buffers, steps, |s| {
        let Step::Kernel(k) = s else {
            return false;
        };
        let rank = k.shape.len();
        let bias_like = |l: &crate::kernel::Load| {
            l.strides[..rank.saturating_sub(1)]
                .iter()
                .all(|&st| st == 0)
        };
        let simple = k.reduction.is_none() && k.stores.len() == 1;
        simple
            && match k.loads.as_slice() {
                [_] => true,
                [x, y] => x.strides == y.strides || bias_like(x) || bias_like(y),
                _ => false,
            }
    })
}

/// [`sink_products`] to the readers `accept` takes.
fn sink_products_to(
    buffers: &[BufferSpec],
    steps: Vec<Step>,
    accept: impl Fn(&Step) -> bool,
) -> Vec<Step> {
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
        // A kernel, or a softmax or its backward reading the product as its operand
        // (`dy` for the backward, not `y`).
        let epilogue_kind = match &steps[j].0 {
            Step::Kernel(_) => true,
            Step::Copy(super::CopyOp::Softmax { .. }, args, _)
            | Step::Copy(super::CopyOp::SoftmaxBackward { .. }, args, _) => args
                .first()
                .is_some_and(|&x| super::memory::root_in(buffers, x) == out),
            Step::MatMul { .. }
            | Step::Conv { .. }
            | Step::Host { .. }
            | Step::Scan { .. }
            | Step::Copy(..) => false,
        };
        if j > i + 1 && epilogue_kind && reads_out(&steps[j].0) && accept(&steps[j].0) {
            let (s, _) = steps.remove(i);
            steps.insert(j - 1, (s, true));
            // Step `i` is now the one that followed the product: look at it next.
            continue;
        }
        i += 1;
    }
    steps.into_iter().map(|(s, _)| s).collect()
}
