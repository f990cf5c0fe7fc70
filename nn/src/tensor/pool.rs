//! Pooling over the last one or two axes, PyTorch's `F.max_pool1d/2d`,
//! `F.avg_pool1d/2d` and `F.adaptive_avg_pool1d`, composed from IR ops (pad, the
//! sliding-window view `unfold`, arg-max + gather, sums, a matrix product), so autodiff
//! and fusion need nothing new.
//!
//! Semantics (PyTorch's): input `[N, C, L]` or unbatched `[C, L]` (2-d: `[N, C, H, W]`
//! or `[C, H, W]`); `stride` defaults to the kernel size; `padding` (at most half the
//! kernel size) pads with `-inf` for max and zeros for average; `dilation` (max
//! pooling only) spaces the window's taps; with `ceil_mode` the last window may start
//! in the input or the left padding and run past the right end. Output extent:
//! `⌊(L + 2p − d(k−1) − 1)/s⌋ + 1` (`⌈⌉` with `ceil_mode`).
//!
//! - Max pooling routes the gradient to the **first** maximum of each window in
//!   PyTorch's scan order (an arg-max and a gather), not split between ties (which
//!   `amax` would do): after a ReLU, windows of zeros are common. NaN propagates.
//! - Average pooling divides by the window's size, counting the padding
//!   (`count_include_pad`, PyTorch's default) or only the input's elements; a window
//!   running past the padded end (`ceil_mode`) counts only up to it, as PyTorch does.
//! - Adaptive average pooling: bin `i` of `out` averages `[⌊iL/out⌋, ⌈(i+1)L/out⌉)`,
//!   as a product with a constant `[L, out]` matrix.

use super::Tensor;
use crate::args::IntList;
use onde_ir::{Array, Op, SourceLoc};

/// Options of the pooling ops; PyTorch's defaults: stride = kernel size, padding 0,
/// dilation 1, `ceil_mode` false, `count_include_pad` true. A single value applies to
/// every pooled axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolOpts {
    /// Window size per pooled axis.
    pub kernel: Vec<usize>,
    /// Step between windows (`None`: the kernel size).
    pub stride: Option<Vec<usize>>,
    /// Padding on both sides per axis.
    pub padding: Vec<usize>,
    /// Spacing of a window's taps (max pooling only).
    pub dilation: Vec<usize>,
    /// Round the output extent up instead of down.
    pub ceil_mode: bool,
    /// Average pooling: count padded positions in the divisor.
    pub count_include_pad: bool,
}

impl PoolOpts {
    /// Windows of `kernel` (one value, or one per pooled axis).
    pub fn new(kernel: impl IntList) -> PoolOpts {
        PoolOpts {
            kernel: ints(kernel),
            stride: None,
            padding: vec![0],
            dilation: vec![1],
            ceil_mode: false,
            count_include_pad: true,
        }
    }
    /// The step between windows.
    pub fn stride(mut self, s: impl IntList) -> PoolOpts {
        self.stride = Some(ints(s));
        self
    }
    /// Padding on both sides.
    pub fn padding(mut self, p: impl IntList) -> PoolOpts {
        self.padding = ints(p);
        self
    }
    /// Spacing of the window's taps (max pooling).
    pub fn dilation(mut self, d: impl IntList) -> PoolOpts {
        self.dilation = ints(d);
        self
    }
    /// Round the output extent up.
    pub fn ceil_mode(mut self, on: bool) -> PoolOpts {
        self.ceil_mode = on;
        self
    }
    /// Count padded positions in an average's divisor.
    pub fn count_include_pad(mut self, on: bool) -> PoolOpts {
        self.count_include_pad = on;
        self
    }
}

fn ints(v: impl IntList) -> Vec<usize> {
    v.to_ints().into_iter().map(|x| x.max(0) as usize).collect()
}

/// One pooled axis, resolved.
#[derive(Clone, Copy, Debug)]
struct Axis {
    len: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    out: usize,
}

impl Axis {
    /// The padded extent the windows cover: left padding, the input, the right padding
    /// (`p`, or more with `ceil_mode`; negative: trailing elements no window reads).
    fn right_pad(&self) -> i64 {
        let eff = self.d * (self.k - 1) + 1;
        ((self.out - 1) * self.s + eff) as i64 - (self.len + self.p) as i64
    }

    /// Elements window `i` covers, counting the padding (`include_pad`) or not; a
    /// window running past the padded end counts only up to it (PyTorch).
    fn count(&self, i: usize, include_pad: bool) -> usize {
        let start = (i * self.s) as i64 - self.p as i64;
        let end = start + self.k as i64;
        let (lo, hi) = if include_pad {
            (-(self.p as i64), (self.len + self.p) as i64)
        } else {
            (0, self.len as i64)
        };
        (end.min(hi) - start.max(lo)).max(0) as usize
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Max,
    Avg,
}

impl Tensor {
    /// `F.max_pool1d`: the maximum of each window along the last axis of `[N, C, L]` or
    /// `[C, L]` (semantics in `nn/src/tensor/pool.rs`).
    #[track_caller]
    pub fn max_pool1d(&self, opts: &PoolOpts) -> Tensor {
        self.pool_at("max_pool1d", Kind::Max, 1, opts, SourceLoc::caller())
    }

    /// `F.max_pool2d` over the last two axes of `[N, C, H, W]` or `[C, H, W]`.
    #[track_caller]
    pub fn max_pool2d(&self, opts: &PoolOpts) -> Tensor {
        self.pool_at("max_pool2d", Kind::Max, 2, opts, SourceLoc::caller())
    }

    /// `F.avg_pool1d`: the mean of each window along the last axis.
    #[track_caller]
    pub fn avg_pool1d(&self, opts: &PoolOpts) -> Tensor {
        self.pool_at("avg_pool1d", Kind::Avg, 1, opts, SourceLoc::caller())
    }

    /// `F.avg_pool2d` over the last two axes.
    #[track_caller]
    pub fn avg_pool2d(&self, opts: &PoolOpts) -> Tensor {
        self.pool_at("avg_pool2d", Kind::Avg, 2, opts, SourceLoc::caller())
    }

    /// `F.adaptive_avg_pool1d`: `output_size` bins along the last axis, bin `i`
    /// averaging `[⌊iL/out⌋, ⌈(i+1)L/out⌉)`.
    #[track_caller]
    pub fn adaptive_avg_pool1d(&self, output_size: usize) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "adaptive_avg_pool1d";
        if let Err(e) = self.check() {
            return self.builder().poisoned(e);
        }
        let dims = self.size();
        let len = dims.last().copied().unwrap_or(0);
        if !(2..=3).contains(&dims.len()) || output_size == 0 || !self.dtype().is_float() {
            return self.fail(
                api,
                format!(
                    "expected a float [N, C, L] or [C, L] input and an output size >= 1, got \
                     {:?} {} and {output_size}",
                    dims,
                    self.dtype()
                ),
                loc,
            );
        }
        let mut a = vec![0.0; len * output_size];
        for i in 0..output_size {
            let start = i * len / output_size;
            let end = ((i + 1) * len).div_ceil(output_size);
            for l in start..end {
                a[l * output_size + i] = 1.0 / (end - start) as f64;
            }
        }
        let Ok(m) = Array::from_f64(self.dtype(), vec![len, output_size], &a) else {
            return self.fail(api, "averaging matrix".into(), loc);
        };
        let m = self.const_at(m, loc);
        self.matmul(&m)
    }

    #[track_caller]
    fn pool_at(
        &self,
        api: &'static str,
        kind: Kind,
        nd: usize,
        opts: &PoolOpts,
        loc: SourceLoc,
    ) -> Tensor {
        if let Err(e) = self.check() {
            return self.builder().poisoned(e);
        }
        let axes = match resolve(&self.size(), nd, kind, opts) {
            Ok(a) => a,
            Err(e) => return self.fail(api, e, loc),
        };
        if !self.dtype().is_float() {
            return self.fail(
                api,
                format!("not defined for dtype {} (cast first)", self.dtype()),
                loc,
            );
        }
        let r = self.dim();
        // Pad (PyTorch's pair order: last axis first); -inf for max, 0 for average.
        let fill = match kind {
            Kind::Max => f64::NEG_INFINITY,
            Kind::Avg => 0.0,
        };
        let mut pads = Vec::with_capacity(2 * nd);
        for a in axes.iter().rev() {
            pads.push(a.p as i64);
            pads.push(a.right_pad());
        }
        let x = self.pad(pads, fill);
        // Windows of every pooled axis: unfold turns axis `len` into `[k, out]`.
        let mut w = x;
        for (j, a) in axes.iter().enumerate() {
            let axis = r - nd + 2 * j;
            let op = Op::Unfold {
                axis,
                size: a.k,
                step: a.s,
                dilation: a.d,
            };
            w = Tensor::apply_at(api, op, &[&w], loc.clone());
        }
        // [lead.., k0, o0, (k1, o1)] -> [lead.., o0, (o1), k0 (, k1)], windows flattened.
        let lead = r - nd;
        let mut perm: Vec<usize> = (0..lead).collect();
        perm.extend((0..nd).map(|j| lead + 2 * j + 1));
        perm.extend((0..nd).map(|j| lead + 2 * j));
        let w = w.permute_at(api, perm, loc.clone());
        let mut flat: Vec<i64> = self.size()[..lead].iter().map(|&d| d as i64).collect();
        flat.extend(axes.iter().map(|a| a.out as i64));
        flat.push(-1);
        let w = w.reshape(flat);
        match kind {
            Kind::Max => {
                // The first maximum of each window, in the window's row-major order.
                let idx = w.argmax(-1, true);
                w.gather(-1, &idx).squeeze(-1)
            }
            Kind::Avg => {
                let mut div = Vec::new();
                match axes.as_slice() {
                    [a] => {
                        div.extend((0..a.out).map(|i| a.count(i, opts.count_include_pad) as f64))
                    }
                    [a, b] => {
                        for i in 0..a.out {
                            for j in 0..b.out {
                                let n = a.count(i, opts.count_include_pad)
                                    * b.count(j, opts.count_include_pad);
                                div.push(n as f64);
                            }
                        }
                    }
                    _ => return self.fail(api, "one or two pooled axes".into(), loc),
                }
                let shape: Vec<usize> = axes.iter().map(|a| a.out).collect();
                let Ok(d) = Array::from_f64(self.dtype(), shape, &div) else {
                    return self.fail(api, "divisor".into(), loc);
                };
                w.sum([-1], false) / self.const_at(d, loc)
            }
        }
    }
}

/// The pooled axes of an input of `dims`, validated as PyTorch does.
fn resolve(dims: &[usize], nd: usize, kind: Kind, o: &PoolOpts) -> Result<Vec<Axis>, String> {
    if dims.len() != nd + 1 && dims.len() != nd + 2 {
        return Err(format!(
            "expected a {}-d or {}-d input, got shape {dims:?}",
            nd + 1,
            nd + 2
        ));
    }
    let per = |v: &[usize], what: &str| -> Result<Vec<usize>, String> {
        match v.len() {
            1 => Ok(vec![v[0]; nd]),
            n if n == nd => Ok(v.to_vec()),
            n => Err(format!("{what} has {n} values for {nd} pooled axes")),
        }
    };
    let k = per(&o.kernel, "kernel_size")?;
    let s = match &o.stride {
        Some(s) => per(s, "stride")?,
        None => k.clone(),
    };
    let p = per(&o.padding, "padding")?;
    let d = per(&o.dilation, "dilation")?;
    if kind == Kind::Avg && d.iter().any(|&x| x != 1) {
        return Err("average pooling has no dilation".into());
    }
    let mut axes = Vec::with_capacity(nd);
    for j in 0..nd {
        let len = dims[dims.len() - nd + j];
        let (k, s, p, d) = (k[j], s[j], p[j], d[j]);
        if k == 0 || s == 0 || d == 0 {
            return Err(format!(
                "kernel_size {k}, stride {s} and dilation {d} must be at least 1"
            ));
        }
        let eff = d * (k - 1) + 1;
        if 2 * p > k {
            return Err(format!(
                "padding {p} must be at most half the kernel size {k}"
            ));
        }
        let span = (len + 2 * p) as i64 - eff as i64;
        if span < 0 {
            return Err(format!(
                "the window ({eff} wide with dilation) is larger than the padded input \
                 ({} = {len} + 2·{p})",
                len + 2 * p
            ));
        }
        let span = span as usize;
        let mut out = if o.ceil_mode {
            span.div_ceil(s) + 1
        } else {
            span / s + 1
        };
        // With ceil_mode the last window must start inside the input or the left
        // padding.
        if o.ceil_mode && (out - 1) * s >= len + p {
            out -= 1;
        }
        axes.push(Axis {
            len,
            k,
            s,
            p,
            d,
            out,
        });
    }
    Ok(axes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_extents_follow_pytorch() {
        let ax = |len, k, s, p, ceil| {
            let o = PoolOpts::new(k).stride(s).padding(p).ceil_mode(ceil);
            resolve(&[1, 1, len], 1, Kind::Max, &o).unwrap()[0].out
        };
        // nn.MaxPool1d(3, 2)(zeros(1, 1, 10)).shape[-1] == 4; ceil_mode: 5.
        assert_eq!(ax(10, 3, 2, 0, false), 4);
        assert_eq!(ax(10, 3, 2, 0, true), 5);
        // ceil_mode never starts a window in the right padding: L=5, k=2, s=2, p=1.
        assert_eq!(ax(5, 2, 2, 1, true), 3);
        assert!(resolve(&[1, 1, 2], 1, Kind::Max, &PoolOpts::new(5)).is_err());
        assert!(resolve(&[1, 1, 9], 1, Kind::Max, &PoolOpts::new(2).padding(2)).is_err());
    }
}
