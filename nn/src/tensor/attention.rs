//! Scaled dot-product attention (`F.scaled_dot_product_attention`), composed from
//! matrix products, a masked softmax and `where`, so gradients of every order come
//! from the composition. Dropout on the weights uses [`Tensor::dropout`]'s step-seeded
//! masks.

use super::elementwise::where_;
use super::Tensor;
use onde_ir::{Array, DType, SourceLoc};

impl Tensor {
    /// `F.scaled_dot_product_attention(q, k, v, attn_mask, is_causal=…, scale=…)`:
    /// `softmax(q kᵀ · scale + mask) v` with `q` `[…, L, E]`, `k` `[…, S, E]`, `v`
    /// `[…, S, Ev]` (batch axes broadcast) and `scale` `1/√E` by default.
    /// `attn_mask` broadcasts to `[…, L, S]`: a bool mask keeps the `true` positions, a
    /// float mask is added to the scores. `is_causal` keeps `j ≤ i` (top-left aligned)
    /// and excludes `attn_mask`, as in PyTorch. A query whose every key is masked gets
    /// zeros (PyTorch 2.15's result), with zero gradient. `dropout_p > 0` drops
    /// attention weights as [`Tensor::dropout`] does (whenever given, as PyTorch: pass 0
    /// in eval mode), with a mask drawn from the step seed.
    #[track_caller]
    pub fn scaled_dot_product_attention(
        &self,
        k: &Tensor,
        v: &Tensor,
        attn_mask: Option<&Tensor>,
        dropout_p: f64,
        is_causal: bool,
        scale: Option<f64>,
    ) -> Tensor {
        let loc = SourceLoc::caller();
        match self.attention_at(k, v, attn_mask, dropout_p, is_causal, scale, loc) {
            Ok((out, _)) | Err(out) => out,
        }
    }

    /// Scaled dot-product attention returning the output and the attention weights
    /// `[…, L, S]` (after dropout); `Err` holds the poisoned result on bad arguments.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attention_at(
        &self,
        k: &Tensor,
        v: &Tensor,
        attn_mask: Option<&Tensor>,
        dropout_p: f64,
        is_causal: bool,
        scale: Option<f64>,
        loc: SourceLoc,
    ) -> Result<(Tensor, Tensor), Tensor> {
        let api = "scaled_dot_product_attention";
        for t in [self, k, v].into_iter().chain(attn_mask) {
            if let Err(e) = t.check() {
                return Err(self.builder().poisoned(e));
            }
        }
        let (qs, ks, vs) = (self.size(), k.size(), v.size());
        let ok = qs.len() >= 2
            && ks.len() >= 2
            && vs.len() >= 2
            && qs[qs.len() - 1] == ks[ks.len() - 1]
            && ks[ks.len() - 2] == vs[vs.len() - 2]
            && self.dtype().is_float();
        if !ok {
            return Err(self.fail(
                api,
                format!(
                    "expected float q [.., L, E], k [.., S, E], v [.., S, Ev]; got {qs:?}, {ks:?}, {vs:?}"
                ),
                loc,
            ));
        }
        if !(0.0..=1.0).contains(&dropout_p) {
            return Err(self.fail(
                api,
                format!("dropout_p must be between 0 and 1, got {dropout_p}"),
                loc,
            ));
        }
        if is_causal && attn_mask.is_some() {
            return Err(self.fail(
                api,
                "an explicit attn_mask cannot be given with is_causal (PyTorch)".into(),
                loc,
            ));
        }
        let e = qs[qs.len() - 1];
        let (l, s) = (qs[qs.len() - 2], ks[ks.len() - 2]);
        let scale = scale.unwrap_or(1.0 / (e as f64).sqrt());
        let scores = self.matmul(&k.transpose(-2, -1)) * scale;
        // Which positions take part (bool), and the scores with additive masks applied.
        let (keep, scores) = match attn_mask {
            None if !is_causal => (None, scores),
            None => {
                let tril: Vec<bool> = (0..l * s).map(|ij| ij % s <= ij / s).collect();
                let Ok(a) = Array::bool([l, s], tril) else {
                    return Err(self.fail(api, "causal mask".into(), loc));
                };
                (Some(self.const_at(a, loc)), scores)
            }
            Some(m) if m.dtype() == DType::Bool => (Some(m.clone()), scores),
            Some(m) => {
                let added = scores + m;
                // Additive -inf entries mask as a bool mask would.
                (Some(added.ne(f64::NEG_INFINITY)), added)
            }
        };
        let probs = match keep {
            None => scores.softmax(-1),
            Some(keep) => {
                // Rows with no key kept give zeros: softmax over finite placeholders,
                // then multiplied by 0.
                let any = keep.to_dtype(DType::I64).max([-1], true).to_bool();
                let masked = where_(&keep, &scores, f64::NEG_INFINITY);
                let safe = where_(&any, &masked, 0.0);
                safe.softmax(-1) * any.to_dtype(scores.dtype())
            }
        };
        let probs = if dropout_p > 0.0 {
            probs.dropout(dropout_p, true)
        } else {
            probs
        };
        Ok((probs.matmul(v), probs))
    }
}
