//! Normalisation as functions (`F.layer_norm`, `F.group_norm`), composed from means
//! and the biased variance (PyTorch's: divided by `n`), so gradients of every order
//! come from the composition.

use super::Tensor;
use onde_ir::SourceLoc;

impl Tensor {
    /// `F.layer_norm(x, normalized_shape, weight, bias, eps)`: over the last
    /// `normalized_shape.len()` axes (which must equal `normalized_shape`),
    /// `(x − mean) / √(var + eps)`, then `· weight + bias` (each of
    /// `normalized_shape`) when given. PyTorch's default `eps` is `1e-5`.
    #[track_caller]
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "layer_norm";
        if let Err(e) = self.check() {
            return self.builder().poisoned(e);
        }
        let dims = self.size();
        let k = normalized_shape.len();
        let fits = k >= 1 && k <= dims.len() && dims[dims.len() - k..] == *normalized_shape;
        if !fits || !self.dtype().is_float() {
            return self.fail(
                api,
                format!(
                    "normalized_shape {normalized_shape:?} must be the last axes of a float \
                     input, got {dims:?} {}",
                    self.dtype()
                ),
                loc,
            );
        }
        for (what, p) in [("weight", weight), ("bias", bias)] {
            if let Some(p) = p {
                if p.check().is_ok() && p.size() != normalized_shape {
                    return self.fail(
                        api,
                        format!("{what} {:?} must be {normalized_shape:?}", p.size()),
                        loc,
                    );
                }
            }
        }
        let axes: Vec<i64> = (-(k as i64)..0).collect();
        let y = self.standardize(&axes, eps);
        affine(y, weight, bias)
    }

    /// `F.group_norm(x, num_groups, weight, bias, eps)`: `x` is `[N, C, *]`; the
    /// channels are split into `num_groups` groups, each normalised over its channels
    /// and every other axis; `weight`, `bias` are `[C]` (per channel).
    #[track_caller]
    pub fn group_norm(
        &self,
        num_groups: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "group_norm";
        if let Err(e) = self.check() {
            return self.builder().poisoned(e);
        }
        let dims = self.size();
        if dims.len() < 2
            || num_groups == 0
            || !dims[1].is_multiple_of(num_groups)
            || !self.dtype().is_float()
        {
            return self.fail(
                api,
                format!(
                    "expected a float [N, C, *] input with C divisible by num_groups \
                     {num_groups}, got {dims:?} {}",
                    self.dtype()
                ),
                loc,
            );
        }
        let c = dims[1];
        for (what, p) in [("weight", weight), ("bias", bias)] {
            if let Some(p) = p {
                if p.check().is_ok() && p.size() != [c] {
                    return self.fail(
                        api,
                        format!("{what} {:?} must be [{c}] (one per channel)", p.size()),
                        loc,
                    );
                }
            }
        }
        let n = dims[0] as i64;
        let grouped = self.reshape([n, num_groups as i64, -1]);
        let y = grouped
            .standardize(&[-1], eps)
            .reshape(dims.iter().map(|&d| d as i64).collect::<Vec<_>>());
        // Per-channel affine: [C] viewed as [C, 1, ...] against [N, C, *].
        let mut per_channel = vec![1i64; dims.len() - 1];
        per_channel[0] = c as i64;
        let w = weight.map(|w| w.reshape(per_channel.clone()));
        let b = bias.map(|b| b.reshape(per_channel.clone()));
        affine(y, w.as_ref(), b.as_ref())
    }

    /// `(x − mean) / √(var + eps)` over `axes` (biased variance).
    #[track_caller]
    fn standardize(&self, axes: &[i64], eps: f64) -> Tensor {
        let mean = self.mean(axes.to_vec(), true);
        let centered = self - &mean;
        let var = centered.square().mean(axes.to_vec(), true);
        centered / (var + eps).sqrt()
    }
}

/// `y · weight + bias` for the parts given.
#[track_caller]
fn affine(y: Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Tensor {
    let y = match weight {
        Some(w) => y * w,
        None => y,
    };
    match bias {
        Some(b) => y + b,
        None => y,
    }
}
