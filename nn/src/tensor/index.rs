//! Slicing: `x.index(s![0, .., Idx::from(0..).step(2)])` is PyTorch's `x[0, :, 0::2]`,
//! and `slice`/`narrow` take one axis at a time. Ranges clamp like Python; a single
//! position out of range is an error; steps must be >= 1 (as in PyTorch).
//!
//! Boolean-mask indexing (`x[mask]`, `torch.masked_select`) gives a result whose length
//! is the number of `true` entries. onde's shapes are static (a compiled step is
//! specialised to them), so the mask's values must be known when the graph is built:
//! a constant, or computed from constants only. A mask computed from inputs is an error
//! that names the static-shape alternatives: `where_`/`masked_fill` to replace the
//! unselected entries, or a masked reduction (`(x * m).sum() / m.sum()`).

use super::Tensor;
use crate::args::Idx;
use onde_ir::{Array, Op, SliceAxis, SourceLoc};

/// Python's clamping of a slice bound to `[0, n]`.
fn clamp_bound(b: i64, n: usize) -> usize {
    let n = n as i64;
    let b = if b < 0 { b + n } else { b };
    b.clamp(0, n) as usize
}

impl Tensor {
    fn slice_axes_at(&self, api: &'static str, axes: Vec<SliceAxis>, loc: SourceLoc) -> Tensor {
        let whole = axes
            .iter()
            .zip(self.shape().dims())
            .all(|(a, &d)| a.start == 0 && a.stop == d && a.step == 1);
        if whole {
            return self.clone();
        }
        Tensor::apply_at(api, Op::Slice { axes }, &[self], loc)
    }

    /// PyTorch indexing with [`Idx`] entries (see the [`crate::s!`] macro): positions
    /// remove their axis, ranges keep it, `Ellipsis` stands for the remaining axes and
    /// `NewAxis` inserts an axis of extent 1.
    #[track_caller]
    pub fn index(&self, idx: impl AsRef<[Idx]>) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "index";
        let idx = idx.as_ref();
        let shape = self.shape();
        let r = shape.rank();
        let n_ell = idx.iter().filter(|i| matches!(i, Idx::Ellipsis)).count();
        let n_real = idx
            .iter()
            .filter(|i| matches!(i, Idx::At(_) | Idx::Range { .. }))
            .count();
        if n_ell > 1 {
            return self.fail(api, "an index can only have a single ellipsis".into(), loc);
        }
        if n_real > r {
            return self.fail(
                api,
                format!("too many indices for a tensor of rank {r}: {n_real} given"),
                loc,
            );
        }
        let mut expanded = Vec::new();
        for i in idx {
            if matches!(i, Idx::Ellipsis) {
                expanded.extend(std::iter::repeat_n(Idx::FULL, r - n_real));
            } else {
                expanded.push(*i);
            }
        }
        if n_ell == 0 {
            expanded.extend(std::iter::repeat_n(Idx::FULL, r - n_real));
        }
        let mut axes = Vec::with_capacity(r);
        let mut out = Vec::new();
        let mut axis = 0;
        for i in &expanded {
            match *i {
                Idx::NewAxis => out.push(1i64),
                Idx::At(p) => {
                    let n = shape.dims()[axis];
                    let q = if p < 0 { p + n as i64 } else { p };
                    if q < 0 || q >= n as i64 {
                        return self.fail(
                            api,
                            format!(
                                "index {p} is out of bounds for dimension {axis} with size {n}"
                            ),
                            loc,
                        );
                    }
                    let q = q as usize;
                    axes.push(SliceAxis {
                        start: q,
                        stop: q + 1,
                        step: 1,
                    });
                    axis += 1;
                }
                Idx::Range { start, stop, step } => {
                    let n = shape.dims()[axis];
                    if step < 1 {
                        return self.fail(
                            api,
                            format!("slice step must be positive, got {step} on dimension {axis}"),
                            loc,
                        );
                    }
                    let a = start.map_or(0, |b| clamp_bound(b, n));
                    let b = stop.map_or(n, |b| clamp_bound(b, n)).max(a);
                    let s = SliceAxis {
                        start: a,
                        stop: b,
                        step: step as usize,
                    };
                    out.push(s.len() as i64);
                    axes.push(s);
                    axis += 1;
                }
                Idx::Ellipsis => {}
            }
        }
        self.slice_axes_at(api, axes, loc.clone())
            .reshape_at(api, &out, loc)
    }

    /// Elements `start, start+step, …` below `stop` along `dim`; `None` ends mean the
    /// whole axis; negative bounds count from the end and clamp (`x[.., start:stop:step]`).
    #[track_caller]
    pub fn slice(&self, dim: i64, start: Option<i64>, stop: Option<i64>, step: i64) -> Tensor {
        let loc = SourceLoc::caller();
        let r = self.dim();
        let axis = match Tensor::norm_axis(dim, r) {
            Ok(a) => a,
            Err(e) => return self.fail("slice", e, loc),
        };
        if step < 1 {
            return self.fail(
                "slice",
                format!("slice step must be positive, got {step}"),
                loc,
            );
        }
        let n = self.shape().dims()[axis];
        let a = start.map_or(0, |b| clamp_bound(b, n));
        let b = stop.map_or(n, |b| clamp_bound(b, n)).max(a);
        self.slice_one_axis("slice", axis, a, b, step as usize, loc)
    }

    /// `length` elements from `start` along `dim` (`torch.narrow`); must fit.
    #[track_caller]
    pub fn narrow(&self, dim: i64, start: i64, length: usize) -> Tensor {
        let loc = SourceLoc::caller();
        let axis = match Tensor::norm_axis(dim, self.dim()) {
            Ok(a) => a,
            Err(e) => return self.fail("narrow", e, loc),
        };
        let n = self.shape().dims()[axis];
        let st = if start < 0 { start + n as i64 } else { start };
        if st < 0 || st as usize + length > n {
            return self.fail(
                "narrow",
                format!("start {start} + length {length} exceeds dimension {axis} of size {n}"),
                loc,
            );
        }
        let st = st as usize;
        self.slice_one_axis("narrow", axis, st, st + length, 1, loc)
    }

    /// Slices `start..stop` by `step` along `axis`, every other axis whole.
    fn slice_one_axis(
        &self,
        api: &'static str,
        axis: usize,
        start: usize,
        stop: usize,
        step: usize,
        loc: SourceLoc,
    ) -> Tensor {
        let mut axes: Vec<SliceAxis> = self
            .shape()
            .dims()
            .iter()
            .map(|&d| SliceAxis {
                start: 0,
                stop: d,
                step: 1,
            })
            .collect();
        axes[axis] = SliceAxis { start, stop, step };
        self.slice_axes_at(api, axes, loc)
    }

    /// `x[mask]` with a bool `mask` covering the leading axes of `x` (PyTorch's boolean
    /// indexing): the selected entries, `[count, rest of the axes…]`, in row-major order.
    /// The mask must be known when the graph is built (see the module doc).
    #[track_caller]
    pub fn index_mask(&self, mask: &Tensor) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "index_mask";
        if let (Err(e), _) | (_, Err(e)) = (self.check(), mask.check()) {
            return self.builder().poisoned(e);
        }
        let (xs, ms) = (self.size(), mask.size());
        if ms.len() > xs.len() || xs[..ms.len()] != ms[..] {
            return self.fail(
                api,
                format!("the mask's shape {ms:?} must equal the leading axes of {xs:?}"),
                loc,
            );
        }
        let k = ms.len();
        let Some(idx) = self.mask_positions(api, mask, &loc) else {
            return self.fail(api, static_mask_reason(), loc);
        };
        let mut shape = vec![-1i64];
        shape.extend(xs[k..].iter().map(|&d| d as i64));
        self.reshape(shape).index_select(0, &idx)
    }

    /// The entries of `x` where `mask` (broadcast with `x`) is true, as a 1-D tensor
    /// (`torch.masked_select`). The mask must be known when the graph is built (see the
    /// module doc).
    #[track_caller]
    pub fn masked_select(&self, mask: &Tensor) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "masked_select";
        if let (Err(e), _) | (_, Err(e)) = (self.check(), mask.check()) {
            return self.builder().poisoned(e);
        }
        let shape = match onde_ir::broadcast_shapes(&self.shape(), &mask.shape()) {
            Some(s) => s,
            None => {
                return self.fail(
                    api,
                    format!(
                        "the mask's shape {:?} does not broadcast with {:?}",
                        mask.size(),
                        self.size()
                    ),
                    loc,
                )
            }
        };
        let m = mask.broadcast_to(shape.clone());
        let Some(idx) = self.mask_positions(api, &m, &loc) else {
            return self.fail(api, static_mask_reason(), loc);
        };
        self.broadcast_to(shape).reshape([-1]).index_select(0, &idx)
    }

    /// The flat positions of `mask`'s true entries as a constant i64 tensor, or `None`
    /// if the mask's values are not known while building.
    fn mask_positions(&self, api: &'static str, mask: &Tensor, loc: &SourceLoc) -> Option<Tensor> {
        if !self.builder().same(mask.builder()) {
            return Some(self.builder().poisoned(crate::error::Error::MixedBuilders {
                op: api,
                loc: loc.clone(),
            }));
        }
        let m = match self.builder().known_value(mask)? {
            Ok(m) => m,
            Err(e) => {
                return Some(self.fail(
                    api,
                    format!("evaluating the mask failed: {e}"),
                    loc.clone(),
                ))
            }
        };
        let pos: Vec<i64> = match m.as_bool() {
            Some(b) => (0..b.len()).filter(|&i| b[i]).map(|i| i as i64).collect(),
            None => {
                return Some(self.fail(
                    api,
                    format!("the mask must be bool, got {}", m.dtype()),
                    loc.clone(),
                ))
            }
        };
        let n = pos.len();
        let a = Array::i64([n], pos).ok()?;
        Some(self.const_at(a, loc.clone()))
    }
}

fn static_mask_reason() -> String {
    "the mask depends on graph inputs, but the result's length is the number of true \
     entries and onde's shapes are static: use where_/masked_fill to replace the other \
     entries, or a masked reduction such as (x * mask).sum() / mask.sum()"
        .into()
}
