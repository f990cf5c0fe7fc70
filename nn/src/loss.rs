//! Loss functions with PyTorch's semantics and defaults (`torch.nn.functional`).
//!
//! Every loss takes a [`Reduction`] (`Mean` by default in PyTorch). Class indices are
//! `i64` tensors; an index outside `[0, C)` (other than `ignore_index`) is reported when
//! the graph runs, as a typed index-out-of-range error from the gather that picks the
//! class (compiled: `RunError::IndexOutOfRange`; interpreted: `InterpError`), never a
//! wrong value.

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
    /// Targets equal to this contribute nothing (PyTorch's default: -100).
    pub ignore_index: i64,
    /// The reduction.
    pub reduction: Reduction,
}

impl Default for NllOpts {
    fn default() -> NllOpts {
        NllOpts {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
        }
    }
}

fn reduce(per: &Tensor, r: Reduction) -> Tensor {
    match r {
        Reduction::Mean => per.mean_all(),
        Reduction::Sum => per.sum_all(),
        Reduction::None => per.clone(),
    }
}

/// The negative log-likelihood of `target` classes under log-probabilities `input`
/// (`F.nll_loss`): `input` is `[N, C]` or `[N, C, d1, ...]`, `target` `[N]` or
/// `[N, d1, ...]` of dtype i64. With class weights the mean is
/// `Σ w[yᵢ]·(-xᵢ[yᵢ]) / Σ w[yᵢ]` over non-ignored elements, as in PyTorch.
#[track_caller]
pub fn nll_loss(input: &Tensor, target: &Tensor, opts: &NllOpts) -> Tensor {
    let loc = SourceLoc::caller();
    let (isz, tsz) = (input.size(), target.size());
    if let (Err(e), _) | (_, Err(e)) = (input.check(), target.check()) {
        return input.builder().poisoned(e);
    }
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
                "expected float input [N, C, ...] and target [N, ...]; got input {:?} {} and target {:?}",
                isz,
                input.dtype(),
                tsz
            ),
            loc,
        );
    }
    let c = isz[1];
    if let Some(w) = &opts.weight {
        if w.size() != [c] {
            return w.fail(
                "nll_loss",
                format!(
                    "class weight must be [{c}] (one per class), got {:?}",
                    w.size()
                ),
                loc,
            );
        }
    }
    let keep = target.ne(opts.ignore_index as f64);
    let safe = where_(&keep, target, 0i64);
    let picked = input.gather(1, &safe.unsqueeze(1)).squeeze(1);
    let mask = keep.to_dtype(input.dtype());
    let w = match &opts.weight {
        Some(w) => {
            w.gather(0, &safe.flatten(0, -1))
                .reshape(tsz.iter().map(|&d| d as i64).collect::<Vec<_>>())
                * &mask
        }
        None => mask,
    };
    // Ignored elements contribute exactly 0 (not 0·x, which is NaN when the log-prob
    // read at the placeholder class is -inf).
    let per = where_(&keep, -(&picked * &w), 0.0);
    match opts.reduction {
        Reduction::Mean => per.sum_all() / w.sum_all(),
        Reduction::Sum => per.sum_all(),
        Reduction::None => per,
    }
}

/// Cross-entropy from unnormalised `logits` (`F.cross_entropy` with class indices):
/// `nll_loss(log_softmax(logits, 1), target)`.
#[track_caller]
pub fn cross_entropy(logits: &Tensor, target: &Tensor, opts: &NllOpts) -> Tensor {
    nll_loss(&logits.log_softmax(1), target, opts)
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

/// Mean squared error `(input - target)²` (`F.mse_loss`); shapes must match.
#[track_caller]
pub fn mse_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    let loc = SourceLoc::caller();
    if let Some(e) = same_shape("mse_loss", input, target, &loc) {
        return e;
    }
    reduce(&(input - target).square(), reduction)
}

/// `max(log q, -100)` with a finite gradient everywhere: where `q ≤ e⁻¹⁰⁰` (so the
/// clamp is active, including `q = 0`) the log is taken of 1 and replaced by -100, so
/// no `0·∞` appears in the backward pass (a saturated sigmoid feeding BCE would
/// otherwise poison every gradient with NaN). For `q > e⁻¹⁰⁰` the gradient is `1/q`
/// (PyTorch caps its magnitude at 1e12; here it is exact, so it can overflow only for
/// f32 denormal `q`).
fn clamped_log(q: &Tensor) -> Tensor {
    let c = (-100.0f64).exp();
    let live = q.gt(c);
    let safe = where_(&live, q, 1.0);
    where_(&live, safe.log(), -100.0)
}

/// `softplus(-x) = -log σ(x) = log(1 + e⁻ˣ)`, stable for any `x` and with the exact
/// derivative `σ(x) - 1` everywhere (including `x = 0`, where a `max`/`abs` form has
/// a kink): each branch is evaluated only on arguments where it is finite.
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
    let lp = clamped_log(p);
    let l1p = clamped_log(&(1.0f64 - p));
    let mut per = -(target * &lp + (1.0f64 - target) * &l1p);
    if let Some(w) = weight {
        per = per * w;
    }
    reduce(&per, reduction)
}

/// Binary cross-entropy on logits (`F.binary_cross_entropy_with_logits`):
/// `(1-y)·x + (1+(pw-1)·y)·softplus(-x)` (`pw = 1` without `pos_weight`, which
/// broadcasts over the last axis), with a stable `softplus(-x)` whose gradient is exact
/// everywhere.
#[track_caller]
pub fn binary_cross_entropy_with_logits(
    x: &Tensor,
    target: &Tensor,
    pos_weight: Option<&Tensor>,
    reduction: Reduction,
) -> Tensor {
    let loc = SourceLoc::caller();
    if let Some(e) = same_shape("binary_cross_entropy_with_logits", x, target, &loc) {
        return e;
    }
    let sp = softplus_neg(x);
    let per = match pos_weight {
        None => (1.0f64 - target) * x + sp,
        Some(pw) => {
            let lw = (pw - 1.0) * target + 1.0;
            (1.0f64 - target) * x + lw * sp
        }
    };
    reduce(&per, reduction)
}
