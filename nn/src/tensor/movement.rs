//! Movement ops: reshape/flatten/squeeze/unsqueeze, transpose/permute, expand, tile,
//! cat/stack, pad, gather/index_select. Negative dimensions count from the end.

use super::Tensor;
use crate::args::IntList;
use crate::builder::GraphBuilder;
use crate::error::Error;
use onde_ir::{DType, Op, Shape, SliceAxis, SourceLoc};

impl Tensor {
    pub(crate) fn reshape_at(&self, api: &'static str, dims: &[i64], loc: SourceLoc) -> Tensor {
        let n = self.numel();
        let mut out = Vec::with_capacity(dims.len());
        let mut infer = None;
        for (i, &d) in dims.iter().enumerate() {
            if d == -1 {
                if infer.replace(i).is_some() {
                    return self.fail(api, "only one dimension can be inferred (-1)".into(), loc);
                }
                out.push(1);
            } else if d < 0 {
                return self.fail(api, format!("invalid shape dimension {d}"), loc);
            } else {
                out.push(d as usize);
            }
        }
        if let Some(i) = infer {
            let known: usize = out.iter().product();
            if known == 0 || !n.is_multiple_of(known) {
                return self.fail(
                    api,
                    format!("shape {dims:?} is invalid for input of size {n}"),
                    loc,
                );
            }
            out[i] = n / known;
        }
        let shape = Shape::new(out);
        if self.ty().is_some_and(|t| t.shape == shape) {
            return self.clone();
        }
        Tensor::apply_at(api, Op::Reshape { shape }, &[self], loc)
    }

    /// Same elements in a new shape; one entry may be `-1` (`torch.reshape`).
    #[track_caller]
    pub fn reshape(&self, shape: impl IntList) -> Tensor {
        self.reshape_at("reshape", &shape.to_ints(), SourceLoc::caller())
    }

    /// Alias of [`Tensor::reshape`] (`Tensor.view`; values are immutable, so there is
    /// no aliasing difference).
    #[track_caller]
    pub fn view(&self, shape: impl IntList) -> Tensor {
        self.reshape_at("view", &shape.to_ints(), SourceLoc::caller())
    }

    /// Merges axes `start..=end` into one (`torch.flatten(x, start_dim, end_dim)`);
    /// `flatten(0, -1)` gives a 1-D tensor, and a scalar becomes `[1]`.
    #[track_caller]
    pub fn flatten(&self, start_dim: i64, end_dim: i64) -> Tensor {
        let loc = SourceLoc::caller();
        let s = self.shape();
        if s.rank() == 0 {
            return self.reshape_at("flatten", &[1], loc);
        }
        let (a, b) = match (
            Tensor::norm_axis(start_dim, s.rank()),
            Tensor::norm_axis(end_dim, s.rank()),
        ) {
            (Ok(a), Ok(b)) if a <= b => (a, b),
            (Ok(_), Ok(_)) => {
                return self.fail("flatten", "start_dim cannot come after end_dim".into(), loc)
            }
            (Err(e), _) | (_, Err(e)) => return self.fail("flatten", e, loc),
        };
        let mut dims: Vec<i64> = s.dims()[..a].iter().map(|&d| d as i64).collect();
        dims.push(s.dims()[a..=b].iter().product::<usize>() as i64);
        dims.extend(s.dims()[b + 1..].iter().map(|&d| d as i64));
        self.reshape_at("flatten", &dims, loc)
    }

    /// Inserts an axis of extent 1 at `dim`, in `[-rank-1, rank]` (`torch.unsqueeze`).
    #[track_caller]
    pub fn unsqueeze(&self, dim: i64) -> Tensor {
        let loc = SourceLoc::caller();
        let s = self.shape();
        let d = match Tensor::norm_axis(dim, s.rank() + 1) {
            Ok(d) => d,
            Err(e) => return self.fail("unsqueeze", e, loc),
        };
        let mut dims: Vec<i64> = s.dims().iter().map(|&x| x as i64).collect();
        dims.insert(d, 1);
        self.reshape_at("unsqueeze", &dims, loc)
    }

    pub(crate) fn squeeze_axes_at(&self, axes: &[usize], loc: SourceLoc) -> Tensor {
        let dims: Vec<i64> = self
            .shape()
            .dims()
            .iter()
            .enumerate()
            .filter(|(i, &d)| !(d == 1 && axes.contains(i)))
            .map(|(_, &d)| d as i64)
            .collect();
        self.reshape_at("squeeze", &dims, loc)
    }

    /// Removes axis `dim` if its extent is 1, else returns the tensor unchanged
    /// (`torch.squeeze(x, dim)`).
    #[track_caller]
    pub fn squeeze(&self, dim: i64) -> Tensor {
        let loc = SourceLoc::caller();
        match Tensor::norm_axis(dim, self.dim()) {
            Ok(d) => self.squeeze_axes_at(&[d], loc),
            Err(e) => self.fail("squeeze", e, loc),
        }
    }

    /// Removes every axis of extent 1 (`torch.squeeze(x)`).
    #[track_caller]
    pub fn squeeze_all(&self) -> Tensor {
        let axes: Vec<usize> = (0..self.dim()).collect();
        self.squeeze_axes_at(&axes, SourceLoc::caller())
    }

    pub(crate) fn permute_at(&self, api: &'static str, perm: Vec<usize>, loc: SourceLoc) -> Tensor {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return self.clone();
        }
        Tensor::apply_at(api, Op::Permute { perm }, &[self], loc)
    }

    /// Reorders axes: result axis `i` is input axis `dims[i]` (`torch.permute`).
    #[track_caller]
    pub fn permute(&self, dims: impl IntList) -> Tensor {
        let loc = SourceLoc::caller();
        let r = self.dim();
        let dims = dims.to_ints();
        if dims.len() != r {
            return self.fail(
                "permute",
                format!("{} dims given for a tensor of rank {r}", dims.len()),
                loc,
            );
        }
        let mut perm = Vec::with_capacity(r);
        for &d in &dims {
            match Tensor::norm_axis(d, r) {
                Ok(a) => perm.push(a),
                Err(e) => return self.fail("permute", e, loc),
            }
        }
        self.permute_at("permute", perm, loc)
    }

    /// Swaps two axes (`torch.transpose(x, dim0, dim1)`).
    #[track_caller]
    pub fn transpose(&self, dim0: i64, dim1: i64) -> Tensor {
        let loc = SourceLoc::caller();
        let r = self.dim();
        match (Tensor::norm_axis(dim0, r), Tensor::norm_axis(dim1, r)) {
            (Ok(a), Ok(b)) => {
                let mut perm: Vec<usize> = (0..r).collect();
                perm.swap(a, b);
                self.permute_at("transpose", perm, loc)
            }
            (Err(e), _) | (_, Err(e)) => self.fail("transpose", e, loc),
        }
    }

    /// Transpose of a tensor of rank <= 2 (`Tensor.t()`).
    #[track_caller]
    pub fn t(&self) -> Tensor {
        let loc = SourceLoc::caller();
        match self.dim() {
            0 | 1 => self.clone(),
            2 => self.permute_at("t", vec![1, 0], loc),
            r => self.fail(
                "t",
                format!("expects a tensor of rank <= 2, got rank {r}"),
                loc,
            ),
        }
    }

    pub(crate) fn expand_at(&self, api: &'static str, shape: Shape, loc: SourceLoc) -> Tensor {
        if self.ty().is_some_and(|t| t.shape == shape) {
            return self.clone();
        }
        Tensor::apply_at(api, Op::Expand { shape }, &[self], loc)
    }

    /// Broadcasts to `sizes`; `-1` keeps an existing extent (`Tensor.expand`).
    #[track_caller]
    pub fn expand(&self, sizes: impl IntList) -> Tensor {
        let loc = SourceLoc::caller();
        let s = self.shape();
        let sizes = sizes.to_ints();
        if sizes.len() < s.rank() {
            return self.fail(
                "expand",
                format!(
                    "{} sizes given for a tensor of rank {}",
                    sizes.len(),
                    s.rank()
                ),
                loc,
            );
        }
        let lead = sizes.len() - s.rank();
        let mut out = Vec::with_capacity(sizes.len());
        for (i, &d) in sizes.iter().enumerate() {
            if d == -1 && i >= lead {
                out.push(s.dims()[i - lead]);
            } else if d < 0 {
                return self.fail("expand", format!("invalid size {d} at position {i}"), loc);
            } else {
                out.push(d as usize);
            }
        }
        self.expand_at("expand", Shape::new(out), loc)
    }

    /// Broadcasts to `other`'s shape (`Tensor.expand_as`).
    #[track_caller]
    pub fn expand_as(&self, other: &Tensor) -> Tensor {
        self.expand_at("expand_as", other.shape(), SourceLoc::caller())
    }

    /// Broadcasts to `shape` (`torch.broadcast_to`).
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl IntList) -> Tensor {
        let loc = SourceLoc::caller();
        let dims = shape.to_ints();
        if dims.iter().any(|&d| d < 0) {
            return self.fail("broadcast_to", format!("invalid shape {dims:?}"), loc);
        }
        self.expand_at(
            "broadcast_to",
            Shape::new(dims.iter().map(|&d| d as usize)),
            loc,
        )
    }

    fn tile_at(&self, api: &'static str, reps: &[i64], loc: SourceLoc) -> Tensor {
        if reps.iter().any(|&r| r < 0) {
            return self.fail(
                api,
                format!("repetitions {reps:?} must be non-negative"),
                loc,
            );
        }
        let s = self.shape();
        let r = reps.len().max(s.rank());
        let reps: Vec<usize> = std::iter::repeat_n(1, r - reps.len())
            .chain(reps.iter().map(|&x| x as usize))
            .collect();
        let dims: Vec<usize> = std::iter::repeat_n(1, r - s.rank())
            .chain(s.dims().iter().copied())
            .collect();
        // [d0, d1] -> [1, d0, 1, d1] -> expand [r0, d0, r1, d1] -> [r0·d0, r1·d1];
        // axes repeated once get no extra axis.
        let inter: Vec<i64> = reps
            .iter()
            .zip(&dims)
            .flat_map(|(&k, &d)| {
                if k == 1 {
                    vec![d as i64]
                } else {
                    vec![1, d as i64]
                }
            })
            .collect();
        let expanded =
            Shape::new(
                reps.iter()
                    .zip(&dims)
                    .flat_map(|(&k, &d)| if k == 1 { vec![d] } else { vec![k, d] }),
            );
        let out: Vec<i64> = reps
            .iter()
            .zip(&dims)
            .map(|(&k, &d)| (k * d) as i64)
            .collect();
        self.reshape_at(api, &inter, loc.clone())
            .expand_at(api, expanded, loc.clone())
            .reshape_at(api, &out, loc)
    }

    /// Repeats the whole tensor along each axis (`torch.tile(x, dims)`); fewer `dims`
    /// than axes are padded with 1 on the left, more add leading axes.
    #[track_caller]
    pub fn tile(&self, dims: impl IntList) -> Tensor {
        self.tile_at("tile", &dims.to_ints(), SourceLoc::caller())
    }

    /// `Tensor.repeat(sizes)`: like [`Tensor::tile`] but `sizes` must cover every axis.
    #[track_caller]
    pub fn repeat(&self, sizes: impl IntList) -> Tensor {
        let loc = SourceLoc::caller();
        let sizes = sizes.to_ints();
        if sizes.len() < self.dim() {
            return self.fail(
                "repeat",
                format!(
                    "{} repeat sizes cannot be fewer than the {} axes",
                    sizes.len(),
                    self.dim()
                ),
                loc,
            );
        }
        self.tile_at("repeat", &sizes, loc)
    }

    /// Constant padding in PyTorch's order (`F.pad(x, pad, value=value)`): `pad` holds
    /// `(before, after)` pairs starting from the **last** axis. A negative entry crops
    /// that many elements instead (cropping more than the extent is an error).
    #[track_caller]
    pub fn pad(&self, pad: impl IntList, value: f64) -> Tensor {
        let loc = SourceLoc::caller();
        let p = pad.to_ints();
        let r = self.dim();
        if !p.len().is_multiple_of(2) || p.len() / 2 > r {
            return self.fail(
                "pad",
                format!("padding {p:?} must hold (before, after) pairs for at most {r} axes"),
                loc,
            );
        }
        // Negative entries crop (as PyTorch): slice them off first, then pad the rest.
        let dims = self.size();
        let mut pads = vec![(0, 0); r];
        let mut crop = Vec::with_capacity(r);
        let mut cropped = false;
        for (a, &n) in dims.iter().enumerate() {
            let k = r - 1 - a;
            let (lo, hi) = p.get(2 * k).map_or((0, 0), |&lo| (lo, p[2 * k + 1]));
            let cut = |v: i64| if v < 0 { v.unsigned_abs() as usize } else { 0 };
            let (cut_lo, cut_hi) = (cut(lo), cut(hi));
            if cut_lo.saturating_add(cut_hi) > n {
                return self.fail(
                    "pad",
                    format!(
                        "padding {p:?} crops {} elements from dimension {a} of extent {n} \
                         (shape {})",
                        cut_lo.saturating_add(cut_hi),
                        self.shape()
                    ),
                    loc,
                );
            }
            cropped |= cut_lo + cut_hi > 0;
            crop.push(SliceAxis::range(cut_lo, n - cut_hi));
            pads[a] = (lo.max(0) as usize, hi.max(0) as usize);
        }
        let x = if cropped {
            Tensor::apply_at("pad", Op::Slice { axes: crop }, &[self], loc.clone())
        } else {
            self.clone()
        };
        if pads.iter().all(|&(lo, hi)| lo == 0 && hi == 0) {
            return x;
        }
        Tensor::apply_at(
            "pad",
            Op::Pad {
                pads,
                value_bits: value.to_bits(),
            },
            &[&x],
            loc,
        )
    }

    /// Sliding windows of `size` elements, `step` apart, along `dim`
    /// (`torch.Tensor.unfold(dim, size, step)`): `dim` becomes the number of windows
    /// `(L - size) / step + 1` and a last axis of `size` is appended, with
    /// `out[.., p, .., k] = x[.., p·step + k, ..]`. A view: nothing is copied when it
    /// feeds a fused kernel (the IR's `unfold` puts the window axis first; this
    /// permutes it last, as PyTorch does).
    #[track_caller]
    pub fn unfold(&self, dim: i64, size: usize, step: usize) -> Tensor {
        let loc = SourceLoc::caller();
        let r = self.dim();
        let axis = match Tensor::norm_axis(dim, r) {
            Ok(a) => a,
            Err(e) => return self.fail("unfold", e, loc),
        };
        let len = self.size().get(axis).copied().unwrap_or(0);
        if size == 0 || step == 0 || size > len {
            return self.fail(
                "unfold",
                format!(
                    "size {size} and step {step} must be at least 1, and the size at most \
                     dimension {dim}'s extent {len} (shape {})",
                    self.shape()
                ),
                loc,
            );
        }
        let op = Op::Unfold {
            axis,
            size,
            step,
            dilation: 1,
        };
        let w = Tensor::apply_at("unfold", op, &[self], loc.clone());
        // [.., size, count, ..] -> [.., count, .., size]
        let mut perm: Vec<usize> = (0..=r).filter(|&i| i != axis).collect();
        perm.push(axis);
        w.permute_at("unfold", perm, loc)
    }

    /// `torch.gather(x, dim, index)`: `out[i][j] = x[index[i][j]][j]` for `dim = 0`.
    /// `index` is i64 with the rank of `x`; out-of-range indices fail at run time.
    #[track_caller]
    pub fn gather(&self, dim: i64, index: &Tensor) -> Tensor {
        let loc = SourceLoc::caller();
        match Tensor::norm_axis(dim, self.dim()) {
            Ok(axis) => Tensor::apply_at("gather", Op::Gather { axis }, &[self, index], loc),
            Err(e) => self.fail("gather", e, loc),
        }
    }

    /// `self` plus `src` summed into the positions `index` addresses along `dim`
    /// (`Tensor.scatter_add(dim, index, src)`); `index` and `src` share a shape.
    #[track_caller]
    pub fn scatter_add(&self, dim: i64, index: &Tensor, src: &Tensor) -> Tensor {
        let loc = SourceLoc::caller();
        let axis = match Tensor::norm_axis(dim, self.dim()) {
            Ok(a) => a,
            Err(e) => return self.fail("scatter_add", e, loc),
        };
        let src = src.cast_at(self.dtype(), loc.clone());
        let s = Tensor::apply_at(
            "scatter_add",
            Op::ScatterAdd {
                axis,
                shape: self.shape(),
            },
            &[index, &src],
            loc.clone(),
        );
        self.binary_at(
            "scatter_add",
            onde_ir::BinaryOp::Add,
            crate::Arg::Tensor(s),
            loc,
        )
    }

    /// Selects entries `index` (1-D or 0-d, i64) along `dim` (`torch.index_select`); a
    /// 0-d index keeps `dim` with extent 1, as in PyTorch.
    #[track_caller]
    pub fn index_select(&self, dim: i64, index: &Tensor) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "index_select";
        if self.dim() == 0 && (dim == 0 || dim == -1) && index.numel() == 1 {
            // As PyTorch: a scalar indexed by a one-element index (which must be 0) is
            // itself.
            return self
                .reshape([1])
                .index_select(0, &index.reshape([1]))
                .reshape(Vec::<i64>::new());
        }
        let axis = match Tensor::norm_axis(dim, self.dim()) {
            Ok(a) => a,
            Err(e) => return self.fail(api, e, loc),
        };
        if index
            .ty()
            .is_some_and(|t| t.shape.rank() > 1 || t.dtype != DType::I64)
        {
            let mut operands: Vec<_> = self.ty().into_iter().collect();
            operands.extend(index.ty());
            return self.builder().poisoned(Error::Op {
                op: api,
                reason: "index must be a 1-D or 0-d i64 tensor".into(),
                operands,
                loc,
            });
        }
        let mut view = vec![1i64; self.dim()];
        view[axis] = index.numel() as i64;
        let mut out = self.shape();
        out.0[axis] = index.numel();
        let idx = index
            .reshape_at(api, &view, loc.clone())
            .expand_at(api, out, loc.clone());
        Tensor::apply_at(api, Op::Gather { axis }, &[self, &idx], loc)
    }
}

/// Concatenates tensors along `dim` (`torch.cat`); dtypes are promoted. An empty list
/// gives a poisoned tensor of a fresh builder whose error says so.
#[track_caller]
pub fn cat(tensors: &[&Tensor], dim: i64) -> Tensor {
    cat_at("cat", tensors, dim, SourceLoc::caller())
}

fn cat_at(api: &'static str, tensors: &[&Tensor], dim: i64, loc: SourceLoc) -> Tensor {
    let Some(first) = tensors.first() else {
        return GraphBuilder::new().poisoned(Error::Op {
            op: api,
            reason: "expects a non-empty list of tensors".into(),
            operands: vec![],
            loc,
        });
    };
    let axis = match Tensor::norm_axis(dim, first.dim()) {
        Ok(a) => a,
        Err(e) => return first.fail(api, e, loc),
    };
    let d = tensors
        .iter()
        .map(|t| t.dtype())
        .fold(DType::Bool, DType::promote);
    let cast: Vec<Tensor> = tensors.iter().map(|t| t.cast_at(d, loc.clone())).collect();
    let refs: Vec<&Tensor> = cast.iter().collect();
    Tensor::apply_at(api, Op::Concat { axis }, &refs, loc)
}

/// Stacks tensors of one shape along a new axis `dim` (`torch.stack`).
#[track_caller]
pub fn stack(tensors: &[&Tensor], dim: i64) -> Tensor {
    let loc = SourceLoc::caller();
    let Some(first) = tensors.first() else {
        return cat_at("stack", tensors, dim, loc);
    };
    let d = match Tensor::norm_axis(dim, first.dim() + 1) {
        Ok(d) => d as i64,
        Err(e) => return first.fail("stack", e, loc),
    };
    let un: Vec<Tensor> = tensors
        .iter()
        .map(|t| {
            let mut dims: Vec<i64> = t.shape().dims().iter().map(|&x| x as i64).collect();
            dims.insert(d as usize, 1);
            t.reshape_at("stack", &dims, loc.clone())
        })
        .collect();
    let refs: Vec<&Tensor> = un.iter().collect();
    cat_at("stack", &refs, d, loc)
}

/// How [`Tensor::pad_mode`] fills the border (`F.pad`'s `mode`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// A constant value (`mode='constant'`).
    Constant(f64),
    /// Mirror without repeating the edge (`'reflect'`: `[a b c] → b a b c b a` for 2).
    Reflect,
    /// Repeat the edge (`'replicate'`).
    Replicate,
    /// Wrap around (`'circular'`).
    Circular,
}

impl Tensor {
    /// `F.pad(x, pad, mode)`: `pad` holds `(before, after)` pairs from the last axis, as
    /// [`Tensor::pad`]; `Reflect` needs each pad below the axis' extent, `Circular` at
    /// most the extent (PyTorch's limits), `Replicate` a non-empty axis. The non-constant
    /// modes read the input through constant indices, so the gradient sums back into
    /// the elements each border copies.
    #[track_caller]
    pub fn pad_mode(&self, pad: impl IntList, mode: PadMode) -> Tensor {
        let loc = SourceLoc::caller();
        let p = pad.to_ints();
        if let PadMode::Constant(v) = mode {
            return self.pad(p, v);
        }
        let r = self.dim();
        if !p.len().is_multiple_of(2) || p.len() / 2 > r || p.iter().any(|&x| x < 0) {
            return self.fail(
                "pad",
                format!(
                    "padding {p:?} must hold non-negative (before, after) pairs for at most {r} \
                     axes in mode {mode:?}"
                ),
                loc,
            );
        }
        let mut x = self.clone();
        for (k, pair) in p.chunks(2).enumerate() {
            let axis = r - 1 - k;
            let n = self.size()[axis] as i64;
            let (lo, hi) = (pair[0], pair[1]);
            let ok = match mode {
                PadMode::Reflect => lo < n && hi < n,
                PadMode::Circular => lo <= n && hi <= n,
                PadMode::Replicate => n > 0,
                PadMode::Constant(_) => true,
            };
            if !ok {
                return self.fail(
                    "pad",
                    format!(
                        "padding ({lo}, {hi}) is too large for dimension {axis} of extent {n} \
                         in mode {mode:?}"
                    ),
                    loc,
                );
            }
            if lo == 0 && hi == 0 {
                continue;
            }
            let idx: Vec<i64> = (-lo..n + hi)
                .map(|i| match mode {
                    PadMode::Reflect => {
                        let period = 2 * (n - 1);
                        let m = if period == 0 { 0 } else { i.rem_euclid(period) };
                        if m < n {
                            m
                        } else {
                            period - m
                        }
                    }
                    PadMode::Replicate => i.clamp(0, n - 1),
                    PadMode::Circular => i.rem_euclid(n),
                    PadMode::Constant(_) => i,
                })
                .collect();
            // Only the borders are gathered; the interior is the input itself (a copy
            // by concatenation, and its gradient passes straight through).
            let (lo, hi) = (lo as usize, hi as usize);
            let mut parts: Vec<Tensor> = Vec::with_capacity(3);
            for (range, at) in [(0..lo, 0), (idx.len() - hi..idx.len(), 1)] {
                if range.is_empty() {
                    continue;
                }
                let border = idx[range].to_vec();
                let len = border.len();
                let Ok(a) = onde_ir::Array::i64([len], border) else {
                    return self.fail("pad", "index".into(), loc);
                };
                let i = x.const_at(a, loc.clone());
                let part = x.index_select(axis as i64, &i);
                if at == 0 {
                    parts.push(part);
                    parts.push(x.clone());
                } else {
                    if parts.is_empty() {
                        parts.push(x.clone());
                    }
                    parts.push(part);
                }
            }
            let refs: Vec<&Tensor> = parts.iter().collect();
            x = cat(&refs, axis as i64);
        }
        x
    }
}
