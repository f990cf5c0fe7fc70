//! Loss functions with PyTorch's semantics and defaults (`torch.nn.functional`).
//!
//! Every loss takes a [`Reduction`] (`Mean` by default in PyTorch). Class indices are
//! `i64` tensors; an index outside `[0, C)` (other than `ignore_index`) is an error,
//! never a wrong value: when the target is a graph input, the fed labels are checked
//! before each run and the error names the loss, the input, the element, the class
//! count and the line that built the loss ([`crate::Error::TargetOutOfRange`]); a
//! target computed inside the graph is caught at run time by the gather that picks the
//! class (compiled: `RunError::IndexOutOfRange`; interpreted: `InterpError`).

use crate::tensor::Tensor;
use crate::where_;
use onde_ir::{DType, SourceLoc};

/// How per-element losses are combined (`reduction=` in PyTorch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// The mean (weighted mean for NLL with class weights). PyTorch's default.
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: one loss per element (per sample for NLL).
    None,
}

/// Options of [`nll_loss`] and [`cross_entropy`].
#[derive(Clone, Debug)]
pub struct NllOpts {
    /// A weight per class (`[C]`), or `None` for all ones.
    pub weight: Option<Tensor>,
    /// Targets equal to this contribute nothing (PyTorch's default: -100). Class-index
    /// targets only: [`cross_entropy`] with probability targets refuses any other value.
    pub ignore_index: i64,
    /// The reduction.
    pub reduction: Reduction,
    /// [`cross_entropy`] only: mixes the target with the uniform distribution,
    /// `(1 - ε)·target + ε/C` (PyTorch's `label_smoothing`, in `[0, 1]`, default 0).
    /// [`nll_loss`] refuses a non-zero value, as `F.nll_loss` has no such option.
    pub label_smoothing: f64,
}

impl Default for NllOpts {
    fn default() -> NllOpts {
        NllOpts {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }
}

#[track_caller]
fn reduce(per: &Tensor, r: Reduction) -> Tensor {
    match r {
        Reduction::Mean => per.mean_all(),
        Reduction::Sum => per.sum_all(),
        Reduction::None => per.clone(),
    }
}

/// The negative log-likelihood of `target` classes under log-probabilities `input`
/// (`F.nll_loss`): `input` is `[N, C]` or `[N, C, d1, ...]`, `target` `[N]` or
/// `[N, d1, ...]` of dtype i64; unbatched, `input` is `[C]` and `target` 0-d. With
/// class weights the mean is `Σ w[yᵢ]·(-xᵢ[yᵢ]) / Σ w[yᵢ]` over non-ignored elements,
/// as in PyTorch (NaN when every target is ignored).
#[track_caller]
pub fn nll_loss(input: &Tensor, target: &Tensor, opts: &NllOpts) -> Tensor {
    let loc = SourceLoc::caller();
    if let (Err(e), _) | (_, Err(e)) = (input.check(), target.check()) {
        return input.builder().poisoned(e);
    }
    register_targets("nll_loss", input, target, opts, &loc);
    if opts.label_smoothing != 0.0 {
        return input.fail(
            "nll_loss",
            format!(
                "label_smoothing ({}) is a cross_entropy option; nll_loss has none",
                opts.label_smoothing
            ),
            loc,
        );
    }
    if input.dim() == 1 && (target.dim() == 0 || target.size() == [1]) {
        let t = if target.dim() == 0 {
            target.unsqueeze(0)
        } else {
            target.clone()
        };
        let per = nll_batched(&input.unsqueeze(0), &t, opts, loc);
        return unbatch(per, opts.reduction);
    }
    nll_batched(input, target, opts, loc)
}

/// Registers the check of class-index targets fed as a graph input
/// ([`crate::feed_check`]): classes are `input`'s axis 1 (axis 0 unbatched).
fn register_targets(
    api: &'static str,
    input: &Tensor,
    target: &Tensor,
    opts: &NllOpts,
    loc: &SourceLoc,
) {
    if target.dtype() != DType::I64 {
        return;
    }
    let size = input.size();
    let classes = if size.len() == 1 {
        size.first()
    } else {
        size.get(1)
    };
    if let Some(&c) = classes {
        input
            .builder()
            .check_class_indices(target, c, Some(opts.ignore_index), api, loc);
    }
}

/// A per-sample result of a batch of one back to the unbatched 0-d form.
#[track_caller]
fn unbatch(per: Tensor, r: Reduction) -> Tensor {
    match r {
        Reduction::None => per.squeeze(0),
        Reduction::Mean | Reduction::Sum => per,
    }
}

#[track_caller]
fn nll_batched(input: &Tensor, target: &Tensor, opts: &NllOpts, loc: SourceLoc) -> Tensor {
    let (isz, tsz) = (input.size(), target.size());
    if target.dtype() != DType::I64 {
        return target.fail(
            "nll_loss",
            format!(
                "target must be class indices of dtype i64, got {}",
                target.dtype()
            ),
            loc,
        );
    }
    let shape_ok = isz.len() >= 2 && tsz.len() == isz.len() - 1 && tsz[0] == isz[0] && {
        tsz[1..] == isz[2..]
    };
    if !shape_ok || !input.dtype().is_float() {
        return input.fail(
            "nll_loss",
            format!(
                "expected float input [N, C, ...] and target [N, ...] (or input [C] and a 0-d \
                 target); got input {:?} {} and target {:?}",
                isz,
                input.dtype(),
                tsz
            ),
            loc,
        );
    }
    let c = isz[1];
    if let Some(e) = check_class_weight("nll_loss", opts.weight.as_ref(), c, &loc) {
        return e;
    }
    // Compared as i64 (an f64 or f32 constant would round large class indices).
    let keep = target.ne(opts.ignore_index);
    let safe = where_(&keep, target, 0i64);
    let picked = input.gather(1, &safe.unsqueeze(1)).squeeze(1);
    let w = target_weights(opts.weight.as_ref(), &safe, &keep, input.dtype(), &tsz);
    // Ignored elements contribute exactly 0 (not 0·x, which is NaN when the log-prob
    // read at the placeholder class is -inf).
    let per = where_(&keep, -(&picked * &w), 0.0);
    match opts.reduction {
        Reduction::Mean => per.sum_all() / w.sum_all(),
        Reduction::Sum => per.sum_all(),
        Reduction::None => per,
    }
}

/// An error tensor if `weight` is not `[c]`.
fn check_class_weight(
    api: &'static str,
    weight: Option<&Tensor>,
    c: usize,
    loc: &SourceLoc,
) -> Option<Tensor> {
    let w = weight?;
    if let Err(e) = w.check() {
        return Some(w.builder().poisoned(e));
    }
    (w.size() != [c]).then(|| {
        w.fail(
            api,
            format!(
                "class weight must be [{c}] (one per class), got {:?}",
                w.size()
            ),
            loc.clone(),
        )
    })
}

/// The weight of each element's target class (`w[yᵢ]`, 0 where ignored), shaped like
/// the target.
#[track_caller]
fn target_weights(
    weight: Option<&Tensor>,
    safe: &Tensor,
    keep: &Tensor,
    dtype: DType,
    tsz: &[usize],
) -> Tensor {
    let mask = keep.to_dtype(dtype);
    match weight {
        Some(w) => {
            w.gather(0, &safe.flatten(0, -1))
                .reshape(tsz.iter().map(|&d| d as i64).collect::<Vec<_>>())
                * &mask
        }
        None => mask,
    }
}

/// Cross-entropy from unnormalised `logits` (`F.cross_entropy`), over axis 1 of
/// `[N, C, ...]` logits (axis 0 of unbatched `[C]` logits). The target is either
/// - class indices (i64, `[N, ...]` or 0-d): `nll_loss(log_softmax(logits), target)`,
///   with `ignore_index` and class weights; with `label_smoothing = ε` the loss is
///   `(1 - ε)·nll + ε/C · Σ_c w_c·(-log p_c)`, the second term reduced with the same
///   weighted mean as the first (PyTorch's formula); or
/// - class probabilities (float, the logits' shape): `-Σ_c w_c·t_c·log p_c` per
///   element, with `t` smoothed to `(1 - ε)·t + ε/C`; the mean divides by the number
///   of elements (`N·d1·…`), not by the weights, as in PyTorch. `ignore_index` does not
///   apply to probabilities (any value but the default is an error).
#[track_caller]
pub fn cross_entropy(logits: &Tensor, target: &Tensor, opts: &NllOpts) -> Tensor {
    let loc = SourceLoc::caller();
    let api = "cross_entropy";
    if let (Err(e), _) | (_, Err(e)) = (logits.check(), target.check()) {
        return logits.builder().poisoned(e);
    }
    let eps = opts.label_smoothing;
    // As PyTorch: above 1 is an error; 0, negative or NaN means no smoothing.
    if eps > 1.0 {
        return logits.fail(
            api,
            format!("label_smoothing must be between 0.0 and 1.0, got {eps}"),
            loc,
        );
    }
    let probs = target.dtype().is_float();
    if !probs {
        register_targets(api, logits, target, opts, &loc);
    }
    // Unbatched: `[C]` logits with a 0-d (or one-element) class index, or `[C]`
    // probabilities.
    let unbatched = logits.dim() == 1
        && if probs {
            target.dim() == 1
        } else {
            target.dim() == 0 || target.size() == [1]
        };
    if logits.dim() == 0 || (!probs && !unbatched && logits.dim() != target.dim() + 1) {
        return logits.fail(
            api,
            format!(
                "expected logits [N, C, ...] with class indices [N, ...] (or logits [C] with a \
                 0-d index), or probabilities of the logits' shape; got logits {:?} and target \
                 {:?} {}",
                logits.size(),
                target.size(),
                target.dtype()
            ),
            loc,
        );
    }
    let (x, t) = if unbatched {
        let t = if probs || target.dim() == 0 {
            target.unsqueeze(0)
        } else {
            target.clone()
        };
        (logits.unsqueeze(0), t)
    } else {
        (logits.clone(), target.clone())
    };
    let opts = &NllOpts {
        label_smoothing: if eps > 0.0 { eps } else { 0.0 },
        ..opts.clone()
    };
    let per = if probs {
        cross_entropy_probs(&x, &t, opts, loc)
    } else {
        cross_entropy_indices(&x, &t, opts, loc)
    };
    if unbatched {
        unbatch(per, opts.reduction)
    } else {
        per
    }
}

#[track_caller]
fn cross_entropy_indices(x: &Tensor, t: &Tensor, opts: &NllOpts, loc: SourceLoc) -> Tensor {
    let logp = x.log_softmax(1);
    let eps = opts.label_smoothing;
    let plain = NllOpts {
        label_smoothing: 0.0,
        ..opts.clone()
    };
    let nll = nll_batched(&logp, t, &plain, loc);
    if eps == 0.0 || nll.check().is_err() {
        return nll;
    }
    let c = x.size()[1];
    let class_w = opts.weight.as_ref().map(|w| class_axis(w, x.dim()));
    let terms = match &class_w {
        Some(w) => &logp * w,
        None => logp.clone(),
    };
    let keep = t.ne(opts.ignore_index);
    let smooth = where_(&keep, -terms.sum([1], false), 0.0);
    let smooth = match opts.reduction {
        Reduction::Mean => {
            let safe = where_(&keep, t, 0i64);
            let w = target_weights(opts.weight.as_ref(), &safe, &keep, x.dtype(), &t.size());
            smooth.sum_all() / w.sum_all()
        }
        Reduction::Sum => smooth.sum_all(),
        Reduction::None => smooth,
    };
    nll * (1.0 - eps) + smooth * (eps / c as f64)
}

#[track_caller]
fn cross_entropy_probs(x: &Tensor, t: &Tensor, opts: &NllOpts, loc: SourceLoc) -> Tensor {
    let api = "cross_entropy";
    if x.size() != t.size() || x.dim() < 2 || !x.dtype().is_float() {
        return x.fail(
            api,
            format!(
                "a float target holds class probabilities and must have the logits' shape \
                 [N, C, ...] (or [C]); class indices must be i64; got logits {:?} {} and \
                 target {:?} {}",
                x.size(),
                x.dtype(),
                t.size(),
                t.dtype()
            ),
            loc,
        );
    }
    if opts.ignore_index != -100 {
        return x.fail(
            api,
            format!(
                "ignore_index ({}) does not apply to probability targets",
                opts.ignore_index
            ),
            loc,
        );
    }
    let c = x.size()[1];
    if let Some(e) = check_class_weight(api, opts.weight.as_ref(), c, &loc) {
        return e;
    }
    let eps = opts.label_smoothing;
    let t = if eps > 0.0 {
        t * (1.0 - eps) + eps / c as f64
    } else {
        t.clone()
    };
    let mut terms = x.log_softmax(1) * t;
    if let Some(w) = &opts.weight {
        terms = terms * class_axis(w, x.dim());
    }
    let per = -terms.sum([1], false);
    match opts.reduction {
        Reduction::Mean => per.mean_all(),
        Reduction::Sum => per.sum_all(),
        Reduction::None => per,
    }
}

/// A `[C]` class weight shaped to broadcast along axis 1 of a rank-`rank` tensor.
#[track_caller]
fn class_axis(w: &Tensor, rank: usize) -> Tensor {
    let mut shape = vec![1i64; rank];
    shape[1] = -1;
    w.reshape(shape)
}

fn same_shape(api: &'static str, a: &Tensor, b: &Tensor, loc: &SourceLoc) -> Option<Tensor> {
    if let (Err(e), _) | (_, Err(e)) = (a.check(), b.check()) {
        return Some(a.builder().poisoned(e));
    }
    if a.size() != b.size() {
        return Some(a.fail(
            api,
            format!(
                "input {:?} and target {:?} must have the same shape",
                a.size(),
                b.size()
            ),
            loc.clone(),
        ));
    }
    None
}

/// Mean squared error `(input - target)²` (`F.mse_loss`). Shapes that differ are
/// broadcast together, as PyTorch does (PyTorch also warns, since a `[N, 1]` prediction
/// against a `[N]` target silently becomes `[N, N]`); shapes that do not broadcast are
/// an error.
#[track_caller]
pub fn mse_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    let loc = SourceLoc::caller();
    if let (Err(e), _) | (_, Err(e)) = (input.check(), target.check()) {
        return input.builder().poisoned(e);
    }
    if onde_ir::broadcast_shapes(&input.shape(), &target.shape()).is_none() {
        return input.fail(
            "mse_loss",
            format!(
                "input {:?} and target {:?} must have the same shape or broadcast together",
                input.size(),
                target.size()
            ),
            loc,
        );
    }
    reduce(&(input - target).square(), reduction)
}

/// `max(log q, -100)` with a finite gradient everywhere: where `q ≤ e⁻¹⁰⁰` (so the
/// clamp is active, including `q = 0`) the log is taken of 1 and replaced by -100, so
/// no `0·∞` appears in the backward pass (a saturated sigmoid feeding BCE would
/// otherwise poison every gradient with NaN). For `q > e⁻¹⁰⁰` the gradient is `1/q`
/// (PyTorch caps its magnitude at 1e12; here it is exact, so it can overflow only for
/// f32 denormal `q`).
#[track_caller]
fn clamped_log(q: &Tensor) -> Tensor {
    let c = (-100.0f64).exp();
    let live = q.gt(c);
    let safe = where_(&live, q, 1.0);
    where_(&live, safe.log(), -100.0)
}

/// `softplus(-x) = -log σ(x) = log(1 + e⁻ˣ)`, stable for any `x` and with the exact
/// derivative `σ(x) - 1` everywhere (including `x = 0`, where a `max`/`abs` form has
/// a kink): each branch is evaluated only on arguments where it is finite.
#[track_caller]
fn softplus_neg(x: &Tensor) -> Tensor {
    let pos = x.ge(0.0);
    let xp = where_(&pos, x, 0.0);
    let xn = where_(&pos, 0.0, x);
    let bp = -(xp.sigmoid().log());
    let bn = -&xn - (-&xn).sigmoid().log();
    where_(&pos, bp, bn)
}

/// Binary cross-entropy on probabilities (`F.binary_cross_entropy`):
/// `-(y·log p + (1-y)·log(1-p))`, each log clamped at -100 as PyTorch does, times
/// `weight` (broadcast) if given. Probabilities outside `[0, 1]` give NaN (PyTorch
/// raises; here values are only known when the graph runs). The gradient is that of the loss as computed (clamp
/// included), finite everywhere; at `p ∈ {0, 1}` it differs from PyTorch's closed form
/// `(p-y)/max(p(1-p), 1e-12)`, whose eps gives e.g. 0 instead of 1 at `p = y = 0`.
#[track_caller]
pub fn binary_cross_entropy(
    p: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    reduction: Reduction,
) -> Tensor {
    let loc = SourceLoc::caller();
    if let Some(e) = same_shape("binary_cross_entropy", p, target, &loc) {
        return e;
    }
    if let Some(e) = check_elementwise_weight("binary_cross_entropy", p, weight, &loc) {
        return e;
    }
    let lp = clamped_log(p);
    let l1p = clamped_log(&(1.0f64 - p));
    let mut per = -(target * &lp + (1.0f64 - target) * &l1p);
    if let Some(w) = weight {
        per = per * w.to_dtype(p.dtype());
    }
    reduce(&per, reduction)
}

/// An error tensor if `weight` does not broadcast to `input`'s shape (PyTorch: the
/// weighted loss keeps the input's shape, and its dtype: the weight is cast to it).
fn check_elementwise_weight(
    api: &'static str,
    input: &Tensor,
    weight: Option<&Tensor>,
    loc: &SourceLoc,
) -> Option<Tensor> {
    let w = weight?;
    if let Err(e) = w.check() {
        return Some(w.builder().poisoned(e));
    }
    let fits =
        onde_ir::broadcast_shapes(&w.shape(), &input.shape()).is_some_and(|s| s == input.shape());
    (!fits).then(|| {
        input.fail(
            api,
            format!(
                "weight {:?} must broadcast to the input's shape {:?}",
                w.size(),
                input.size()
            ),
            loc.clone(),
        )
    })
}

/// Binary cross-entropy on logits (`F.binary_cross_entropy_with_logits`):
/// `w·[(1-y)·x + (1+(pw-1)·y)·softplus(-x)]`, with `weight` `w` (broadcast to the
/// input, 1 without it) and `pos_weight` `pw` (broadcast over the last axis, 1 without
/// it), and a stable `softplus(-x)` whose gradient is exact everywhere. Arguments in
/// PyTorch's order.
#[track_caller]
pub fn binary_cross_entropy_with_logits(
    x: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    pos_weight: Option<&Tensor>,
    reduction: Reduction,
) -> Tensor {
    let loc = SourceLoc::caller();
    if let Some(e) = same_shape("binary_cross_entropy_with_logits", x, target, &loc) {
        return e;
    }
    let api = "binary_cross_entropy_with_logits";
    if let Some(e) = check_elementwise_weight(api, x, weight, &loc) {
        return e;
    }
    let sp = softplus_neg(x);
    let mut per = match pos_weight {
        None => (1.0f64 - target) * x + sp,
        Some(pw) => {
            let lw = (pw.to_dtype(x.dtype()) - 1.0) * target + 1.0;
            (1.0f64 - target) * x + lw * sp
        }
    };
    if let Some(w) = weight {
        per = per * w.to_dtype(x.dtype());
    }
    reduce(&per, reduction)
}
