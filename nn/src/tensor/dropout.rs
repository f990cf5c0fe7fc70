//! Dropout as functions (`F.dropout`, `F.dropout1d`, `F.dropout2d`).
//!
//! In training, each element (or each whole channel for the 1d/2d forms) is kept with
//! probability `1 − p` and the kept ones are scaled by `1 / (1 − p)` ("inverted"
//! dropout, so evaluation is the identity), as PyTorch does. `p = 1` multiplies by 0
//! (PyTorch's special case: inf and NaN inputs give NaN), `p = 0` is the identity.
//!
//! The mask comes from an `Op::Random` seeded by the builder's step seed (a graph input,
//! [`GraphBuilder::step_seed`]) plus a per-call stream offset: a compiled step draws a
//! fresh mask every run without recompiling, two dropout calls draw independent masks,
//! and the gradient is `dy · mask / (1 − p)` (the mask is a constant of `x`). The numbers
//! are onde's counter-based generator, not PyTorch's: masks have PyTorch's distribution,
//! not its values.

use super::Tensor;
#[cfg(doc)]
use crate::GraphBuilder;
use onde_ir::SourceLoc;

impl Tensor {
    /// `F.dropout(x, p, training)`: zeroes each element with probability `p` and scales
    /// the rest by `1 / (1 − p)` when `training`; the identity otherwise. `p` must be in
    /// `[0, 1]`.
    #[track_caller]
    pub fn dropout(&self, p: f64, training: bool) -> Tensor {
        let loc = SourceLoc::caller();
        self.dropout_impl("dropout", p, training, 0, loc)
    }

    /// `F.dropout1d(x, p, training)`: zeroes whole channels of a `[N, C, L]` (or
    /// unbatched `[C, L]`) input, each with probability `p`.
    #[track_caller]
    pub fn dropout1d(&self, p: f64, training: bool) -> Tensor {
        let loc = SourceLoc::caller();
        self.dropout_impl("dropout1d", p, training, 1, loc)
    }

    /// `F.dropout2d(x, p, training)`: zeroes whole channels of a `[N, C, H, W]` (or
    /// unbatched `[C, H, W]`) input, each with probability `p`.
    #[track_caller]
    pub fn dropout2d(&self, p: f64, training: bool) -> Tensor {
        let loc = SourceLoc::caller();
        self.dropout_impl("dropout2d", p, training, 2, loc)
    }

    /// Element dropout (`spatial = 0`) or channel dropout over `spatial` trailing axes.
    fn dropout_impl(
        &self,
        api: &'static str,
        p: f64,
        training: bool,
        spatial: usize,
        loc: SourceLoc,
    ) -> Tensor {
        if let Err(e) = self.check() {
            return self.builder().poisoned(e);
        }
        if !(0.0..=1.0).contains(&p) {
            return self.fail(
                api,
                format!("dropout probability has to be between 0 and 1, but got {p}"),
                loc,
            );
        }
        let dims = self.size();
        if !self.dtype().is_float() {
            return self.fail(
                api,
                format!("the input must be floating point, got {}", self.dtype()),
                loc,
            );
        }
        if spatial > 0 && dims.len() != spatial + 1 && dims.len() != spatial + 2 {
            return self.fail(
                api,
                format!(
                    "expects a {}-D (unbatched) or {}-D (batched) input, got {dims:?}",
                    spatial + 1,
                    spatial + 2
                ),
                loc,
            );
        }
        if !training || p == 0.0 {
            return self.clone();
        }
        if p == 1.0 {
            return self.mul(0.0);
        }
        // Element dropout: the mask has the input's shape; channel dropout: one value per
        // channel, broadcast over the spatial axes.
        let mut mask_shape = dims.clone();
        let n = mask_shape.len();
        for d in &mut mask_shape[n - spatial..] {
            *d = 1;
        }
        let g = self.builder();
        let seed = g.stream_seed();
        let u = g.rand_seeded(mask_shape, self.dtype(), &seed);
        let keep = u.ge(p).to_dtype(self.dtype()).mul(1.0 / (1.0 - p));
        self.mul(&keep)
    }
}
