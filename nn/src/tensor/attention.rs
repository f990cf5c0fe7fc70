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
        match self.attention_at(
            k, v, attn_mask, dropout_p, is_causal, scale, false, None, loc,
        ) {
            Ok((out, _)) | Err(out) => out,
        }
    }

    /// [`Tensor::scaled_dot_product_attention`] (no dropout) computed by blocks of
    /// `block` queries, whatever the length: the memory-bounded form that long
    /// sequences (`L·S ≥ 2²²`) get automatically, with the block size chosen. Same
    /// values as the one-shot form (each row's softmax sees all its keys).
    #[track_caller]
    pub fn scaled_dot_product_attention_blocked(
        &self,
        k: &Tensor,
        v: &Tensor,
        attn_mask: Option<&Tensor>,
        is_causal: bool,
        scale: Option<f64>,
        block: usize,
    ) -> Tensor {
        let loc = SourceLoc::caller();
        let api = "scaled_dot_product_attention_blocked";
        if block == 0 {
            return self.fail(api, "block must be at least 1".into(), loc);
        }
        match self.attention_at(
            k,
            v,
            attn_mask,
            0.0,
            is_causal,
            scale,
            false,
            Some(block),
            loc,
        ) {
            Ok((o, _)) | Err(o) => o,
        }
    }

    /// Scaled dot-product attention returning the output and, with `need_probs`, the
    /// attention weights `[…, L, S]` (after dropout); `Err` holds the poisoned result
    /// on bad arguments. Long sequences without dropout whose weights are not needed
    /// run by query blocks ([`Tensor::attention_blocked`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attention_at(
        &self,
        k: &Tensor,
        v: &Tensor,
        attn_mask: Option<&Tensor>,
        dropout_p: f64,
        is_causal: bool,
        scale: Option<f64>,
        need_probs: bool,
        block: Option<usize>,
        loc: SourceLoc,
    ) -> Result<(Tensor, Option<Tensor>), Tensor> {
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
        let auto =
            !need_probs && dropout_p == 0.0 && l > QUERY_BLOCK && l * s >= BLOCKED_MIN_SCORES;
        if let Some(b) = block.or(auto.then_some(QUERY_BLOCK)) {
            let out = self.attention_blocked(k, v, attn_mask, is_causal, scale, b, loc)?;
            return Ok((out, None));
        }
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
        Ok((probs.matmul(v), Some(probs)))
    }

    /// Attention by blocks of [`QUERY_BLOCK`] queries: a `scan` over the blocks whose
    /// body computes `softmax(q_blk kᵀ · scale + mask_blk) v` for one block (keys and
    /// values are loop invariants). Only one block's `[…, QUERY_BLOCK, S]` scores exist
    /// at a time, and the gradient, a reverse scan, recomputes them per block from the
    /// saved inputs, so memory grows as `L·E + QUERY_BLOCK·S` rather than `L·S`: the
    /// tiling of softmax(QKᵀ)V at the granularity of query blocks, in the graph (same
    /// values; each row's softmax still sees all its keys at once).
    #[allow(clippy::too_many_arguments)]
    fn attention_blocked(
        &self,
        k: &Tensor,
        v: &Tensor,
        attn_mask: Option<&Tensor>,
        is_causal: bool,
        scale: f64,
        block: usize,
        loc: SourceLoc,
    ) -> Result<Tensor, Tensor> {
        let g = self.builder();
        let qs = self.size();
        let r = qs.len();
        let l = qs[r - 2];
        let s = k.size()[k.dim() - 2];
        let nblk = l.div_ceil(block);
        let lp = nblk * block;
        let extra = (lp - l) as i64;
        // [..batch, L, X] → [nblk, ..batch, block, X] (queries padded with zeros).
        let blocks = |t: &Tensor| -> Tensor {
            let ts = t.size();
            let tr = ts.len();
            let padded = t.pad([0, 0, 0, extra], 0.0);
            let mut shape: Vec<i64> = ts[..tr - 2].iter().map(|&d| d as i64).collect();
            shape.extend([nblk as i64, block as i64, ts[tr - 1] as i64]);
            let mut perm: Vec<i64> = vec![(tr - 2) as i64];
            perm.extend((0..tr - 2).map(|a| a as i64));
            perm.extend([(tr - 1) as i64, tr as i64]);
            padded.reshape(shape).permute(perm)
        };
        let qb = blocks(self);
        let mut xs = vec![qb];
        let mut invariants = vec![k.clone(), v.clone()];
        // The mask: per block when it has a query axis, else invariant; bool masks as
        // additive 0 / -inf (the same semantics in `attention_at`).
        enum MaskIn {
            None,
            Scanned,
            Invariant,
            Causal,
        }
        let mask_in = match attn_mask {
            None if is_causal => {
                let rows: Vec<i64> = (0..lp as i64).collect();
                let rows = Array::i64([nblk, block], rows).map_err(|e| {
                    self.fail("scaled_dot_product_attention", e.to_string(), loc.clone())
                })?;
                xs.push(self.const_at(rows, loc.clone()));
                MaskIn::Causal
            }
            None => MaskIn::None,
            Some(m) => {
                let m = if m.dtype() == DType::Bool {
                    where_(m, 0.0, f64::NEG_INFINITY).to_dtype(self.dtype())
                } else {
                    m.clone()
                };
                let ms = m.size();
                if ms.len() >= 2 && ms[ms.len() - 2] == l {
                    xs.push(blocks(&m));
                    MaskIn::Scanned
                } else {
                    invariants.push(m);
                    MaskIn::Invariant
                }
            }
        };
        let x_refs: Vec<&Tensor> = xs.iter().collect();
        let inv_refs: Vec<&Tensor> = invariants.iter().collect();
        let body_loc = loc.clone();
        let out = g.scan(&[], &x_refs, &inv_refs, 0, false, |_, x, inv| {
            let (q, k, v) = (&x[0], &inv[0], &inv[1]);
            let mask = match mask_in {
                MaskIn::None => None,
                MaskIn::Scanned => Some(x[1].clone()),
                MaskIn::Invariant => Some(inv[2].clone()),
                MaskIn::Causal => {
                    let cols = q.builder().arange(0.0, s as f64, 1.0, DType::I64);
                    Some(cols.unsqueeze(0).le(x[1].unsqueeze(1)))
                }
            };
            let out = match q.attention_at(
                k,
                v,
                mask.as_ref(),
                0.0,
                false,
                Some(scale),
                false,
                None,
                body_loc,
            ) {
                Ok((o, _)) | Err(o) => o,
            };
            (vec![], vec![out])
        });
        let stacked = out.into_iter().next().ok_or_else(|| {
            self.fail(
                "scaled_dot_product_attention",
                "blocked attention".into(),
                loc.clone(),
            )
        })?;
        if let Err(err) = stacked.check() {
            return Err(g.poisoned(err));
        }
        // [nblk, ..batch, block, Ev] → [..batch, L, Ev].
        let ss = stacked.size();
        let sr = ss.len();
        let mut perm: Vec<i64> = (1..sr - 2).map(|a| a as i64).collect();
        perm.extend([0, (sr - 2) as i64, (sr - 1) as i64]);
        let mut shape: Vec<i64> = ss[1..sr - 2].iter().map(|&d| d as i64).collect();
        shape.extend([lp as i64, ss[sr - 1] as i64]);
        Ok(stacked
            .permute(perm)
            .reshape(shape)
            .pad([0, 0, 0, -extra], 0.0))
    }
}

/// Queries per block of [`Tensor::attention_blocked`]: `[…, 128, S]` scores per step
/// (2 MB per batch·head at S = 4096).
pub(crate) const QUERY_BLOCK: usize = 128;

/// Fewest scores `L·S` per batch·head for which attention runs by query blocks
/// (2048 × 2048: 16 MB of f32 scores, and as much again for each intermediate the
/// gradient keeps); shorter sequences, such as W5's 100 × 100, keep the one-shot form.
pub(crate) const BLOCKED_MIN_SCORES: usize = 1 << 22;
