//! Reductions after a convolution split into sums of rows, so they run on the
//! convolution's finished rows while those are in cache.
//!
//! # Why
//! A batch norm after a convolution sums the `[N, C, T]` output over `N` and `T` per
//! channel (its mean in the forward pass, `Σ dy` and `Σ dy·x̂` in the backward). The
//! convolution hands each block of finished output rows to the kernel that follows it
//! (`exec::epilogue`, "rows"), but only when that kernel's outer loop runs over those
//! rows in order — not for a sum over `N` and `T`, whose outer loop is the channel.
//! Read after the whole output is written, each such sum is one more pass over the
//! output (16 MB per layer in W2; split here: the three blocks' backward sums).
//!
//! # What
//! When step `i` is a convolution and step `i + 1` a kernel over the convolution's
//! output shape that reads it and reduces axes `R` of which the trailing ones are a
//! suffix `S` of the shape, with some axis before `S` kept, the kernel becomes two:
//! - the same kernel reducing `S` only (its elementwise stores unchanged), each
//!   reduced value stored per row into a new `[kept…, R∖S…]` temporary: its outer loop
//!   is now the rows, so the convolution can run it as its rows epilogue;
//! - a small kernel summing (or taking the max, min or product of) those partial
//!   results over `R ∖ S` into the original buffers, which every reader keeps reading.
//!
//! Only sums along a suffix of at least [`MIN_ROW`] elements are split: shorter rows
//! would make the partial kernel a loop of short reductions. And only kernels that also
//! store elementwise values (a batch norm's backward: the masked gradient, stored, and
//! its two sums). Splitting the forward means too (pure sums) was faster, but changed
//! their rounding, and W2's first-layer weight gradient amplifies an ulp's change of a
//! mean enough to leave `tests/bench_parity.rs`'s bound against PyTorch (the means
//! themselves stayed right; measurements in `docs/performance.md`). Whether to accept
//! that rounding for the speed is left open; the forward means keep their unsplit
//! order.
//!
//! # Rounding
//! A sum is reassociated (rows of `T` first, then across `N`), the freedom every
//! vectorised reduction already takes; max and min are unchanged. The rounding does
//! change, which is why the forward means are left alone (above).

use super::memory::root_in;
use super::*;

/// Fewest elements a split row sums (see the module doc).
const MIN_ROW: usize = 64;

/// Splits every kernel that follows a convolution and qualifies (see the module doc),
/// adding the partial results' temporaries to `buffers`.
pub(super) fn split_after_convs(buffers: &mut Vec<BufferSpec>, steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for step in steps {
        let after_conv = match out.last() {
            Some(Step::Conv { out: o, .. }) => Some(*o),
            _ => None,
        };
        match (step, after_conv) {
            (Step::Kernel(k), Some(conv_out)) => match split(buffers, &k, conv_out) {
                Some((rows, rest)) => {
                    out.push(Step::Kernel(rows));
                    out.push(Step::Kernel(rest));
                }
                None => out.push(Step::Kernel(k)),
            },
            (step, _) => out.push(step),
        }
    }
    out
}

/// The suffix of `k`'s axes it reduces, when `k` qualifies to be split after a
/// convolution writing `conv_out` (see the module doc): `Some(first axis of S)`.
fn suffix_start(buffers: &[BufferSpec], k: &Kernel, conv_out: BufId) -> Option<usize> {
    let red = k.reduction.as_ref()?;
    let r = k.shape.len();
    // Trailing reduced axes.
    let mut s = r;
    while s > 0 && red.axes.contains(&(s - 1)) {
        s -= 1;
    }
    let row: usize = k.shape[s..].iter().product();
    let outer_reduced = red.axes.iter().any(|&a| a < s && k.shape[a] > 1);
    let kept_outer = (0..s).any(|a| !red.axes.contains(&a) && k.shape[a] > 1);
    if s == r || row < MIN_ROW || !outer_reduced || !kept_outer {
        return None;
    }
    // Only a kernel that also stores elementwise values (see the module doc).
    if k.stores.len() == red.stores().count() {
        return None;
    }
    // The convolution's output read where the rows epilogue requires it.
    reads_at_each_element(buffers, k, conv_out).then_some(s)
}

/// Whether kernel `k` iterates over exactly `out`'s shape and reads `out` (at least
/// once), and every load of `out`'s storage is `out` itself at the element of the
/// iteration (offset 0, row-major strides; an axis of extent 1 may carry any): what a
/// kernel run on a convolution's finished rows needs (`exec::epilogue`).
pub(crate) fn reads_at_each_element(buffers: &[BufferSpec], k: &Kernel, out: BufId) -> bool {
    let shape = buffers[out].ty.shape.dims();
    if k.shape != shape || k.iterations() == 0 {
        return false;
    }
    let row_major = contiguous(shape);
    let out_root = root_in(buffers, out);
    let mut reads = k
        .loads
        .iter()
        .filter(|l| root_in(buffers, l.buffer) == out_root)
        .peekable();
    reads.peek().is_some()
        && reads.all(|l| {
            l.buffer == out
                && l.offset == 0
                && (0..shape.len()).all(|a| shape[a] == 1 || l.strides[a] == row_major[a])
        })
}

/// `k` as a kernel of row reductions and a kernel combining them, or `None` when it
/// does not qualify.
fn split(buffers: &mut Vec<BufferSpec>, k: &Kernel, conv_out: BufId) -> Option<(Kernel, Kernel)> {
    let s = suffix_start(buffers, k, conv_out)?;
    let red = k.reduction.as_ref()?;
    let reduced: Vec<usize> = red.stores().collect();
    // The partial results: the iteration shape without the suffix.
    let part_shape: Vec<usize> = k.shape[..s].to_vec();
    let mut rows = k.clone();
    rows.name = format!("{}_rows", k.name);
    let mut rest = Kernel {
        name: format!("{}_combine", k.name),
        shape: part_shape.clone(),
        loads: Vec::new(),
        exprs: Vec::new(),
        dtypes: Vec::new(),
        stores: Vec::new(),
        reduction: None,
        fused: vec![format!("partial results of {} per row", k.name)],
    };
    let strides: Vec<isize> = contiguous(&part_shape);
    for &j in &reduced {
        let st = &k.stores[j];
        let dtype = k.dtypes[st.expr];
        let part = BufId::new(buffers.len());
        buffers.push(BufferSpec {
            ty: TensorType::new(dtype, part_shape.clone()),
            kind: BufKind::Temp,
        });
        rows.stores[j].buffer = part;
        rest.loads.push(Load {
            buffer: part,
            dtype,
            offset: 0,
            strides: strides.clone(),
        });
        rest.exprs.push(Expr::Load(rest.loads.len() - 1));
        rest.dtypes.push(dtype);
        rest.stores
            .push(Store::new(st.buffer, ExprId::new(rest.exprs.len() - 1)));
    }
    rows.reduction = Some(Reduction {
        kind: red.kind,
        axes: (s..k.shape.len()).collect(),
        store: red.store,
        also: red.also.clone(),
    });
    rest.reduction = Some(Reduction {
        kind: red.kind,
        axes: red.axes.iter().copied().filter(|&a| a < s).collect(),
        store: 0,
        also: (1..reduced.len()).collect(),
    });
    Some((rows, rest))
}
