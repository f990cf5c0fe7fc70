//! Reductions along any axes with `keepdim`: sum, prod, mean, max, min, var, std,
//! logsumexp, argmax/argmin. An empty axis list reduces over all axes (as
//! `torch.sum(x, dim=[])`); the `*_all` forms say so explicitly.

use super::Tensor;
use crate::args::{Arg, IntList};
use onde_ir::{ArgKind, Array, BinaryOp, DType, Op, ReduceKind, SourceLoc, UnaryOp};

impl Tensor {
    /// Normalises an axis list: negative axes count from the end, sorted, no duplicates.
    pub(crate) fn norm_axes(&self, axes: &[i64]) -> Result<Vec<usize>, String> {
        let r = self.dim();
        if axes.is_empty() {
            return Ok((0..r).collect());
        }
        if r == 0 {
            // As PyTorch: a scalar accepts dimension 0 or -1, and there is nothing to reduce.
            return match axes.iter().find(|&&a| a != 0 && a != -1) {
                Some(a) => Err(format!(
                    "dimension {a} out of range for a tensor of rank 0 (expected 0 or -1)"
                )),
                None => Ok(vec![]),
            };
        }
        let mut out = Vec::with_capacity(axes.len());
        for &a in axes {
            out.push(Tensor::norm_axis(a, r)?);
        }
        out.sort_unstable();
        if out.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!("dimension list {axes:?} names an axis twice"));
        }
        Ok(out)
    }

    fn reduce_at(
        &self,
        api: &'static str,
        kind: ReduceKind,
        axes: &[i64],
        keepdim: bool,
        loc: SourceLoc,
    ) -> Tensor {
        let axes = match self.norm_axes(axes) {
            Ok(a) => a,
            Err(e) => return self.fail(api, e, loc),
        };
        // PyTorch sums and multiplies bool tensors as i64; max and min of bools are bools
        // (any / all), computed here on i64 and cast back.
        let is_bool = self.ty().is_some_and(|t| t.dtype == DType::Bool);
        let x = if is_bool {
            self.cast_at(DType::I64, loc.clone())
        } else {
            self.clone()
        };
        let r = Tensor::apply_at(
            api,
            Op::Reduce {
                kind,
                axes,
                keepdim,
            },
            &[&x],
            loc.clone(),
        );
        match kind {
            ReduceKind::Max | ReduceKind::Min if is_bool => r.cast_at(DType::Bool, loc),
            ReduceKind::Max | ReduceKind::Min | ReduceKind::Sum | ReduceKind::Prod => r,
        }
    }

    /// Sum over `axes` (`torch.sum(x, dim, keepdim)`).
    #[track_caller]
    pub fn sum(&self, axes: impl IntList, keepdim: bool) -> Tensor {
        self.reduce_at(
            "sum",
            ReduceKind::Sum,
            &axes.to_ints(),
            keepdim,
            SourceLoc::caller(),
        )
    }

    /// Sum of all elements, a scalar (`torch.sum(x)`).
    #[track_caller]
    pub fn sum_all(&self) -> Tensor {
        self.reduce_at("sum", ReduceKind::Sum, &[], false, SourceLoc::caller())
    }

    /// Product over `axes` (`torch.prod`).
    #[track_caller]
    pub fn prod(&self, axes: impl IntList, keepdim: bool) -> Tensor {
        self.reduce_at(
            "prod",
            ReduceKind::Prod,
            &axes.to_ints(),
            keepdim,
            SourceLoc::caller(),
        )
    }

    /// Maximum over `axes` (`torch.amax`; NaN propagates; an empty axis is an error at run time).
    #[track_caller]
    pub fn max(&self, axes: impl IntList, keepdim: bool) -> Tensor {
        self.reduce_at(
            "max",
            ReduceKind::Max,
            &axes.to_ints(),
            keepdim,
            SourceLoc::caller(),
        )
    }

    /// Minimum over `axes` (`torch.amin`).
    #[track_caller]
    pub fn min(&self, axes: impl IntList, keepdim: bool) -> Tensor {
        self.reduce_at(
            "min",
            ReduceKind::Min,
            &axes.to_ints(),
            keepdim,
            SourceLoc::caller(),
        )
    }

    /// Maximum of all elements (`torch.max(x)`).
    #[track_caller]
    pub fn max_all(&self) -> Tensor {
        self.reduce_at("max", ReduceKind::Max, &[], false, SourceLoc::caller())
    }

    /// Minimum of all elements (`torch.min(x)`).
    #[track_caller]
    pub fn min_all(&self) -> Tensor {
        self.reduce_at("min", ReduceKind::Min, &[], false, SourceLoc::caller())
    }

    fn mean_at(&self, api: &'static str, axes: &[i64], keepdim: bool, loc: SourceLoc) -> Tensor {
        if self.ty().is_some_and(|t| !t.dtype.is_float()) {
            return self.fail(
                api,
                format!(
                    "input dtype must be floating point, got {} (cast with .float())",
                    self.dtype()
                ),
                loc,
            );
        }
        let ax = match self.norm_axes(axes) {
            Ok(a) => a,
            Err(e) => return self.fail(api, e, loc),
        };
        let n: usize = ax.iter().map(|&a| self.shape().dims()[a]).product();
        let s = self.reduce_at(api, ReduceKind::Sum, axes, keepdim, loc.clone());
        s.binary_at(api, BinaryOp::Div, Arg::Float(n as f64), loc)
    }

    /// Mean over `axes` (`torch.mean(x, dim, keepdim)`); float tensors only, as in PyTorch.
    /// The mean of an empty axis is NaN.
    #[track_caller]
    pub fn mean(&self, axes: impl IntList, keepdim: bool) -> Tensor {
        self.mean_at("mean", &axes.to_ints(), keepdim, SourceLoc::caller())
    }

    /// Mean of all elements (`torch.mean(x)`).
    #[track_caller]
    pub fn mean_all(&self) -> Tensor {
        self.mean_at("mean", &[], false, SourceLoc::caller())
    }

    fn var_at(
        &self,
        api: &'static str,
        axes: &[i64],
        correction: usize,
        keepdim: bool,
        loc: SourceLoc,
    ) -> Tensor {
        let ax = match self.norm_axes(axes) {
            Ok(a) => a,
            Err(e) => return self.fail(api, e, loc),
        };
        let n: usize = ax.iter().map(|&a| self.shape().dims()[a]).product();
        let dof = n as f64 - correction as f64;
        let m = self.mean_at(api, axes, true, loc.clone());
        if dof > 0.0 {
            // Σ(x - mean)² / dof, differentiated through the mean too, so every order
            // of derivative is exact.
            let d = self.binary_at(api, BinaryOp::Sub, Arg::Tensor(m), loc.clone());
            let sq = d.binary_at(api, BinaryOp::Mul, Arg::Tensor(d.clone()), loc.clone());
            let s = sq.reduce_at(api, ReduceKind::Sum, axes, keepdim, loc.clone());
            return s.binary_at(api, BinaryOp::Div, Arg::Float(dof), loc);
        }
        // correction ≥ n (known from the shapes), as PyTorch: the value is
        // Σd² / max(0, dof) (inf, NaN for a constant slice) and the gradient its closed
        // form 2·(x - mean)·dy / dof, taken with the mean held fixed (its term vanishes
        // analytically, but inf·0 would turn it into NaN).
        let md = Tensor::apply_at(api, Op::Detach, &[&m], loc.clone());
        let d = self.binary_at(api, BinaryOp::Sub, Arg::Tensor(md), loc.clone());
        let sq = d.binary_at(api, BinaryOp::Mul, Arg::Tensor(d.clone()), loc.clone());
        let s = sq.reduce_at(api, ReduceKind::Sum, axes, keepdim, loc.clone());
        let v = s.binary_at(api, BinaryOp::Div, Arg::Float(0.0), loc.clone());
        if dof == 0.0 {
            return v;
        }
        // dof < 0: value inf (or NaN), gradient 2·d·dy/dof through q - detach(q) = 0.
        let q = s.binary_at(api, BinaryOp::Div, Arg::Float(dof), loc.clone());
        let qd = Tensor::apply_at(api, Op::Detach, &[&q], loc.clone());
        let vd = Tensor::apply_at(api, Op::Detach, &[&v], loc.clone());
        let zero = q.binary_at(api, BinaryOp::Sub, Arg::Tensor(qd), loc.clone());
        vd.binary_at(api, BinaryOp::Add, Arg::Tensor(zero), loc)
    }

    /// Variance over `axes` with Bessel's `correction` (PyTorch's default is 1).
    /// `correction ≥ n` gives inf (NaN where the slice is constant) with PyTorch's
    /// gradient `2·(x - mean)·dy / (n - correction)`.
    #[track_caller]
    pub fn var(&self, axes: impl IntList, correction: usize, keepdim: bool) -> Tensor {
        self.var_at(
            "var",
            &axes.to_ints(),
            correction,
            keepdim,
            SourceLoc::caller(),
        )
    }

    /// Standard deviation over `axes`: `sqrt(var)` (`torch.std`). Where the variance is
    /// 0 (a constant slice: silence, zero padding) the gradient is 0, as in PyTorch,
    /// instead of `dy/(2·0)·0 = NaN`.
    #[track_caller]
    pub fn std(&self, axes: impl IntList, correction: usize, keepdim: bool) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "std";
        let v = self.var_at(api, &axes.to_ints(), correction, keepdim, loc.clone());
        // sqrt of 1 where v = 0 keeps the discarded branch's gradient finite.
        let zero = v.compare_at(api, onde_ir::CmpOp::Eq, Arg::Float(0.0), loc.clone());
        let one = v.const_at(Array::scalar(v.dtype(), 1.0), loc.clone());
        let safe = super::elementwise::where_(&zero, &one, &v);
        let s = safe.unary_at(api, UnaryOp::Sqrt, loc);
        super::elementwise::where_(&zero, 0.0, &s)
    }

    /// `log(sum(exp(x)))` over `axes`, computed stably by subtracting the maximum
    /// (`torch.logsumexp`); all `-inf` gives `-inf`.
    #[track_caller]
    pub fn logsumexp(&self, axes: impl IntList, keepdim: bool) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "logsumexp";
        let axes = axes.to_ints();
        let x = if self.dtype().is_float() {
            self.clone()
        } else {
            self.cast_at(DType::F32, loc.clone())
        };
        let m = x.reduce_at(api, ReduceKind::Max, &axes, true, loc.clone());
        // An infinite maximum would give inf - inf = NaN: shift by 0 there instead.
        let inf = m
            .unary_at(api, UnaryOp::Abs, loc.clone())
            .compare_inf(loc.clone());
        let zero = m.const_at(Array::scalar(m.dtype(), 0.0), loc.clone());
        let m = super::elementwise::where_(&inf, &zero, &m);
        let e = x
            .binary_at(api, BinaryOp::Sub, Arg::Tensor(m.clone()), loc.clone())
            .unary_at(api, UnaryOp::Exp, loc.clone());
        let s = e
            .reduce_at(api, ReduceKind::Sum, &axes, true, loc.clone())
            .unary_at(api, UnaryOp::Log, loc.clone());
        let r = s.binary_at(api, BinaryOp::Add, Arg::Tensor(m), loc.clone());
        if keepdim {
            r
        } else {
            match self.norm_axes(&axes) {
                Ok(ax) => r.squeeze_axes_at(&ax, loc),
                Err(e) => self.fail(api, e, loc),
            }
        }
    }

    fn compare_inf(&self, loc: SourceLoc) -> Tensor {
        let inf = self.const_at(Array::scalar(self.dtype(), f64::INFINITY), loc.clone());
        Tensor::apply_at(
            "logsumexp",
            Op::Compare(onde_ir::CmpOp::Eq),
            &[self, &inf],
            loc,
        )
    }

    fn arg_at(
        &self,
        api: &'static str,
        kind: ArgKind,
        axis: i64,
        keepdim: bool,
        loc: SourceLoc,
    ) -> Tensor {
        let axis = match Tensor::norm_axis(axis, self.dim()) {
            Ok(a) => a,
            Err(e) => return self.fail(api, e, loc),
        };
        Tensor::apply_at(
            api,
            Op::ArgReduce {
                kind,
                axis,
                keepdim,
            },
            &[self],
            loc,
        )
    }

    /// The maximum along `dim` and the index of its first occurrence
    /// (`torch.max(x, dim, keepdim)`): `(values, indices)`. NaN counts as the maximum.
    /// The gradient flows to that one index, as in PyTorch (`amax`/[`Tensor::max`]
    /// splits it between ties instead).
    #[track_caller]
    pub fn max_dim(&self, dim: i64, keepdim: bool) -> (Tensor, Tensor) {
        self.extreme_dim("max", ArgKind::ArgMax, dim, keepdim, SourceLoc::caller())
    }

    /// The minimum along `dim` and the index of its first occurrence
    /// (`torch.min(x, dim, keepdim)`): `(values, indices)`, like [`Tensor::max_dim`].
    #[track_caller]
    pub fn min_dim(&self, dim: i64, keepdim: bool) -> (Tensor, Tensor) {
        self.extreme_dim("min", ArgKind::ArgMin, dim, keepdim, SourceLoc::caller())
    }

    fn extreme_dim(
        &self,
        api: &'static str,
        kind: ArgKind,
        dim: i64,
        keepdim: bool,
        loc: SourceLoc,
    ) -> (Tensor, Tensor) {
        if self.dim() == 0 && (dim == 0 || dim == -1) {
            // As PyTorch: a scalar is its own extreme, at index 0.
            let zero = self.const_at(Array::scalar_i64(0), loc);
            return (self.clone(), zero);
        }
        let axis = match Tensor::norm_axis(dim, self.dim()) {
            Ok(a) => a,
            Err(e) => {
                let t = self.fail(api, e, loc);
                return (t.clone(), t);
            }
        };
        // Bools are ordered false < true: their indices are those of the i64 values.
        let keyed = if self.ty().is_some_and(|t| t.dtype == DType::Bool) {
            self.cast_at(DType::I64, loc.clone())
        } else {
            self.clone()
        };
        let idx = keyed.arg_at(api, kind, axis as i64, true, loc.clone());
        let values = Tensor::apply_at(api, Op::Gather { axis }, &[self, &idx], loc.clone());
        if keepdim {
            (values, idx)
        } else {
            (
                values.squeeze_axes_at(&[axis], loc.clone()),
                idx.squeeze_axes_at(&[axis], loc),
            )
        }
    }

    /// Index of the first maximum along `axis` (`torch.argmax`), i64, no gradient.
    #[track_caller]
    pub fn argmax(&self, axis: i64, keepdim: bool) -> Tensor {
        self.arg_at(
            "argmax",
            ArgKind::ArgMax,
            axis,
            keepdim,
            SourceLoc::caller(),
        )
    }

    /// Index of the first minimum along `axis` (`torch.argmin`), i64, no gradient.
    #[track_caller]
    pub fn argmin(&self, axis: i64, keepdim: bool) -> Tensor {
        self.arg_at(
            "argmin",
            ArgKind::ArgMin,
            axis,
            keepdim,
            SourceLoc::caller(),
        )
    }
}
