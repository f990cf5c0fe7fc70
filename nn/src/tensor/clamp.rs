//! `clamp`, `clamp_min` and `clamp_max` with scalar or tensor bounds, PyTorch's values
//! and PyTorch's (2.15) gradients, composed from comparisons and `where` so the
//! gradient rules come out of the composition (no clamp op in the IR).
//!
//! Values: `min(max(x, lo), hi)`; NaN in `x` or in a bound gives NaN; `lo > hi` gives
//! `hi` everywhere.
//!
//! Gradients (the subgradient conventions PyTorch chose):
//! - **scalar bounds**: `dx = dy` strictly inside `(lo, hi)`, 0 at a bound, outside and
//!   at NaN (the minimum-norm subgradient, like `relu` at 0);
//! - **one tensor bound**: exactly `maximum(x, lo)` / `minimum(x, hi)` (ties split the
//!   gradient in halves between `x` and the bound; NaN gives both `dy`);
//! - **two tensor bounds**: below `lo` (with `lo ≤ hi`) the gradient goes to `lo`, above
//!   `hi` to `hi`, inside to `x`; a tie `x = lo < hi` or `x = hi > lo` splits it in
//!   halves; `x = lo = hi` gives it to `x`; `lo > hi` gives it to `hi`; at a NaN `x` it
//!   goes to `x`; with a NaN bound it goes to `x` unless `x` is below the other bound's
//!   range, when nobody gets it. One difference from PyTorch, at NaN `x` with `lo > hi`:
//!   PyTorch also passes `dy` to `hi` there (its result is NaN either way); here only
//!   `x` gets it.
//!
//! A scalar bound mixed with a tensor bound is taken as a 0-d tensor (PyTorch refuses
//! the mix). The result dtype is PyTorch's `result_type` of `x` and the bounds.

use super::elementwise::where_;
use super::Tensor;
use crate::args::Arg;
use onde_ir::{Array, DType, SourceLoc};

impl Tensor {
    /// Clamps into `[min, max]` (`torch.clamp`); each bound is a Rust scalar or a
    /// tensor that broadcasts with `self`. See `nn/src/tensor/clamp.rs` for NaN, `min >
    /// max` and the gradients.
    #[track_caller]
    pub fn clamp(&self, min: impl Into<Arg>, max: impl Into<Arg>) -> Tensor {
        self.clamp_at(Some(min.into()), Some(max.into()), SourceLoc::caller())
    }

    /// `max(self, min)` with clamp's gradient (`torch.clamp(x, min=min)`).
    #[track_caller]
    pub fn clamp_min(&self, min: impl Into<Arg>) -> Tensor {
        self.clamp_at(Some(min.into()), None, SourceLoc::caller())
    }

    /// `min(self, max)` with clamp's gradient (`torch.clamp(x, max=max)`).
    #[track_caller]
    pub fn clamp_max(&self, max: impl Into<Arg>) -> Tensor {
        self.clamp_at(None, Some(max.into()), SourceLoc::caller())
    }

    #[track_caller]
    fn clamp_at(&self, min: Option<Arg>, max: Option<Arg>, loc: SourceLoc) -> Tensor {
        let api = "clamp";
        if min.is_none() && max.is_none() {
            return self.fail(api, "at least one of min and max must be given".into(), loc);
        }
        if self.ty().is_some_and(|t| t.dtype == DType::Bool) {
            return self.fail(api, "not defined for dtype bool".into(), loc);
        }
        let tensor_bound =
            matches!(min, Some(Arg::Tensor(_))) || matches!(max, Some(Arg::Tensor(_)));
        let lo = min.map(|a| self.arg_tensor(a, &loc));
        let hi = max.map(|a| self.arg_tensor(a, &loc));
        let mut operands = vec![self.clone()];
        operands.extend(lo.iter().cloned());
        operands.extend(hi.iter().cloned());
        let dt = Tensor::result_type_of(&operands);
        let x = self.cast_at(dt, loc.clone());
        let lo = lo.map(|t| t.cast_at(dt, loc.clone()));
        let hi = hi.map(|t| t.cast_at(dt, loc.clone()));
        // Integers have no gradient: the plain composition is exact.
        if !dt.is_float() {
            let y = match &lo {
                Some(l) => x.maximum(l),
                None => x.clone(),
            };
            return match &hi {
                Some(h) => y.minimum(h),
                None => y,
            };
        }
        match (lo, hi) {
            (Some(l), Some(h)) if tensor_bound => clamp_two_tensors(&x, &l, &h),
            (Some(l), None) if tensor_bound => x.maximum(&l),
            (None, Some(h)) if tensor_bound => x.minimum(&h),
            (lo, hi) => clamp_scalars(&x, lo.as_ref(), hi.as_ref()),
        }
    }
}

/// Scalar bounds: `x` where strictly inside, else the clamped value of a detached `x`
/// (so the gradient is `dy` strictly inside, 0 elsewhere).
#[track_caller]
fn clamp_scalars(x: &Tensor, lo: Option<&Tensor>, hi: Option<&Tensor>) -> Tensor {
    let xd = x.detach();
    let (inside, fallback) = match (lo, hi) {
        (Some(l), Some(h)) => (x.gt(l).logical_and(x.lt(h)), xd.maximum(l).minimum(h)),
        (Some(l), None) => (x.gt(l), xd.maximum(l)),
        (None, Some(h)) => (x.lt(h), xd.minimum(h)),
        (None, None) => return x.clone(),
    };
    where_(&inside, x, fallback)
}

/// Two tensor bounds: PyTorch 2.15's gradient table (module doc) as a chain of `where`.
#[track_caller]
fn clamp_two_tensors(x: &Tensor, lo: &Tensor, hi: &Tensor) -> Tensor {
    let nan = x.const_at(Array::scalar(x.dtype(), f64::NAN), SourceLoc::caller());
    let nan_x = x.ne(x);
    let nan_bound = lo.ne(lo).logical_or(hi.ne(hi));
    let lo_le_hi = lo.le(hi);
    let lo_lt_hi = lo.lt(hi);
    let below = x.lt(lo).logical_and(&lo_le_hi);
    let above = x.gt(hi).logical_and(&lo_le_hi);
    // Outside the range of a NaN bound's partner: NaN, no gradient.
    let out = x.lt(lo).logical_or(x.gt(hi));
    let tie_lo = x.eq(lo).logical_and(&lo_lt_hi);
    let tie_hi = x.eq(hi).logical_and(&lo_lt_hi);
    // At a tie `maximum`/`minimum` give the common value and split the gradient in
    // halves (exact for every value, subnormals included).
    let inner = where_(&nan_bound, x + &nan, x);
    let y = where_(&tie_hi, x.minimum(hi), inner);
    let y = where_(&tie_lo, x.maximum(lo), y);
    let y = where_(&out, &nan, y);
    let y = where_(&above, hi, y);
    let y = where_(&below, lo, y);
    let y = where_(&lo.gt(hi), hi, y);
    where_(&nan_x, x, y)
}

impl Tensor {
    /// PyTorch's `result_type` over several operands: tensors with axes decide within
    /// their category; 0-d operands raise the dtype only with a higher category.
    pub(crate) fn result_type_of(ts: &[Tensor]) -> DType {
        let fold = |zero_d: bool| {
            ts.iter()
                .filter(|t| (t.dim() == 0) == zero_d)
                .map(Tensor::dtype)
                .reduce(DType::promote)
        };
        match (fold(false), fold(true)) {
            (Some(d), Some(z)) => super::elementwise::combine_categories(d, z),
            (Some(d), None) | (None, Some(d)) => d,
            (None, None) => DType::F32,
        }
    }
}
