//! [`MultiheadAttention`]: `torch.nn.MultiheadAttention` with PyTorch's parameters,
//! initialisation, layouts and mask conventions, built on
//! [`Tensor::scaled_dot_product_attention`]'s composition.
//!
//! Mask conventions follow `nn.MultiheadAttention`, which are the opposite of
//! `F.scaled_dot_product_attention`'s for booleans: in `key_padding_mask` `[N, S]` and
//! `attn_mask` `[L, S]` or `[N·H, L, S]`, `true` means "do not attend"; float masks are
//! added to the scores. A query whose every key is masked gets zeros (with zero
//! gradient) where PyTorch's `need_weights` path gives NaN.

use super::{child, Linear, Module};
use crate::builder::GraphBuilder;
use crate::init;
use crate::tensor::Tensor;
use onde_ir::{Array, DType, SourceLoc};
use std::cell::Cell;

/// Options of [`MultiheadAttention::attend`] (PyTorch's forward arguments).
#[derive(Debug, Clone, Default)]
pub struct MhaInputs<'a> {
    /// `[N, S]`: `true` (or `-inf`) marks padded keys.
    pub key_padding_mask: Option<&'a Tensor>,
    /// `[L, S]` or `[N·H, L, S]`: `true` (or `-inf`) forbids attending.
    pub attn_mask: Option<&'a Tensor>,
    /// Also return the attention weights.
    pub need_weights: bool,
    /// Weights averaged over heads `[N, L, S]` (PyTorch's default) rather than
    /// `[N, H, L, S]`. Ignored unless `need_weights`.
    pub per_head_weights: bool,
    /// Causal mask (query `i` sees keys `j ≤ i`), instead of `attn_mask`.
    pub is_causal: bool,
}

/// `torch.nn.MultiheadAttention(embed_dim, num_heads, bias=True, kdim=None, vdim=None,
/// batch_first=False)`; set [`MultiheadAttention::dropout`] for PyTorch's `dropout`
/// (weights dropped in train mode). No `add_bias_kv`, `add_zero_attn`.
///
/// Parameters, as PyTorch's state dict: `in_proj_weight` `[3E, E]` when `kdim = vdim =
/// E`, else `q_proj_weight` `[E, E]`, `k_proj_weight` `[E, kdim]`, `v_proj_weight`
/// `[E, vdim]`; `in_proj_bias` `[3E]`; `out_proj.weight` `[E, E]`, `out_proj.bias`.
/// Initialisation as PyTorch: Xavier-uniform projections, zero biases, `out_proj.weight`
/// with `Linear`'s default.
#[derive(Debug, Clone)]
pub struct MultiheadAttention {
    name: String,
    /// `E`.
    pub embed_dim: usize,
    /// `H` (divides `E`).
    pub num_heads: usize,
    /// Inputs `[N, L, E]` rather than `[L, N, E]`.
    pub batch_first: bool,
    /// `in_proj_weight`, or `(q, k, v)` projection weights when `kdim`/`vdim` differ.
    pub in_proj: InProj,
    /// `[3E]`, if the module has biases.
    pub in_proj_bias: Option<Tensor>,
    /// `E → E`.
    pub out_proj: Linear,
    /// Dropout on the attention weights in train mode (PyTorch's `dropout`, default 0).
    pub dropout: f64,
    training: Cell<bool>,
}

/// The input projections of a [`MultiheadAttention`].
#[derive(Debug, Clone)]
pub enum InProj {
    /// `in_proj_weight` `[3E, E]`.
    Packed(Tensor),
    /// `q_proj_weight`, `k_proj_weight`, `v_proj_weight`.
    Separate(Tensor, Tensor, Tensor),
}

impl MultiheadAttention {
    /// Self-attention sizes with biases, sequence-first as PyTorch's default.
    #[track_caller]
    pub fn new(
        g: &GraphBuilder,
        name: &str,
        embed_dim: usize,
        num_heads: usize,
    ) -> MultiheadAttention {
        MultiheadAttention::build(g, name, embed_dim, num_heads, true, None, None, false)
    }

    /// Every option: `bias`, `kdim`, `vdim` (`None` = `embed_dim`), `batch_first`.
    /// `num_heads` must divide `embed_dim` (checked at `forward`, as a typed error).
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn build(
        g: &GraphBuilder,
        name: &str,
        embed_dim: usize,
        num_heads: usize,
        bias: bool,
        kdim: Option<usize>,
        vdim: Option<usize>,
        batch_first: bool,
    ) -> MultiheadAttention {
        let e = embed_dim;
        let (kd, vd) = (kdim.unwrap_or(e), vdim.unwrap_or(e));
        let xavier = |shape: &[usize]| {
            let bound = (6.0 / (shape[0] + shape[1]).max(1) as f64).sqrt();
            init::uniform(DType::F32, shape, -bound, bound, g.init_seed())
        };
        let in_proj = if kd == e && vd == e {
            InProj::Packed(g.parameter(&child(name, "in_proj_weight"), xavier(&[3 * e, e])))
        } else {
            InProj::Separate(
                g.parameter(&child(name, "q_proj_weight"), xavier(&[e, e])),
                g.parameter(&child(name, "k_proj_weight"), xavier(&[e, kd])),
                g.parameter(&child(name, "v_proj_weight"), xavier(&[e, vd])),
            )
        };
        let in_proj_bias = bias.then(|| {
            g.parameter(
                &child(name, "in_proj_bias"),
                Array::full(DType::F32, vec![3 * e], 0.0),
            )
        });
        let out_proj = Linear::with_bias(g, &child(name, "out_proj"), e, e, bias);
        if bias {
            // PyTorch zeroes out_proj.bias (the weight keeps Linear's initialisation).
            let zeros = Array::full(DType::F32, vec![e], 0.0);
            if let Err(err) = g.set_parameter(&child(name, "out_proj.bias"), zeros) {
                g.poisoned(err);
            }
        }
        MultiheadAttention {
            name: name.to_string(),
            embed_dim: e,
            num_heads,
            batch_first,
            in_proj,
            in_proj_bias,
            out_proj,
            dropout: 0.0,
            training: Cell::new(true),
        }
    }

    /// `forward(query, key, value, key_padding_mask, need_weights, attn_mask,
    /// average_attn_weights, is_causal)`: query `[L, N, E]` (`[N, L, E]` with
    /// `batch_first`, or unbatched `[L, E]`), key `[S, N, kdim]`, value `[S, N, vdim]`.
    /// Returns the output (query's layout) and, with `need_weights`, the weights
    /// `[N, L, S]` (or `[N, H, L, S]`; without the batch axis for unbatched inputs).
    #[track_caller]
    pub fn attend(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        o: &MhaInputs,
    ) -> (Tensor, Option<Tensor>) {
        let loc = SourceLoc::caller();
        match self.attend_at(query, key, value, o, loc) {
            Ok(r) => r,
            Err(poisoned) => (poisoned, None),
        }
    }

    fn attend_at(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        o: &MhaInputs,
        loc: SourceLoc,
    ) -> Result<(Tensor, Option<Tensor>), Tensor> {
        let api = "multihead_attention";
        let g = query.builder();
        for t in [query, key, value]
            .into_iter()
            .chain(o.key_padding_mask)
            .chain(o.attn_mask)
        {
            if let Err(e) = t.check() {
                return Err(g.poisoned(e));
            }
        }
        let (e, h) = (self.embed_dim, self.num_heads);
        // The poisoned result for a bad argument, naming the module.
        let poison = |reason: String| {
            query.fail(
                api,
                format!("MultiheadAttention `{}`: {reason}", self.name),
                loc.clone(),
            )
        };
        let fail = |reason: String| Err(poison(reason));
        if o.is_causal && (o.attn_mask.is_some() || o.key_padding_mask.is_some()) {
            return fail(
                "is_causal cannot be combined with attn_mask or key_padding_mask here".into(),
            );
        }
        if h == 0 || !e.is_multiple_of(h) {
            return fail(format!("embed_dim {e} must be divisible by num_heads {h}"));
        }
        let (qs, ks, vs) = (query.size(), key.size(), value.size());
        let unbatched = qs.len() == 2;
        let rank_ok = [&qs, &ks, &vs].iter().all(|s| s.len() == qs.len());
        if !rank_ok || (qs.len() != 2 && qs.len() != 3) {
            return fail(format!(
                "query, key and value must all be 3-D (batched) or 2-D (unbatched), got \
                 {qs:?}, {ks:?}, {vs:?}"
            ));
        }
        // To [N, L, E].
        let to_nle = |t: &Tensor| {
            if unbatched {
                t.unsqueeze(0)
            } else if self.batch_first {
                t.clone()
            } else {
                t.transpose(0, 1)
            }
        };
        let (q, k, v) = (to_nle(query), to_nle(key), to_nle(value));
        let (n, l, s) = (q.size()[0], q.size()[1], k.size()[1]);
        let (kd, vd) = match &self.in_proj {
            InProj::Packed(_) => (e, e),
            InProj::Separate(_, k, v) => (k.size()[1], v.size()[1]),
        };
        let sizes_ok = q.size()[2] == e
            && k.size()[2] == kd
            && v.size()[2] == vd
            && k.size()[0] == n
            && v.size()[0] == n
            && v.size()[1] == s;
        if !sizes_ok {
            return fail(format!(
                "expected query [.., {e}], key [.., {kd}] and value [.., {vd}] with equal \
                 batch and key lengths, got {qs:?}, {ks:?}, {vs:?}"
            ));
        }
        let (wq, wk, wv) = match &self.in_proj {
            InProj::Packed(w) => (
                w.narrow(0, 0, e),
                w.narrow(0, e as i64, e),
                w.narrow(0, 2 * e as i64, e),
            ),
            InProj::Separate(q, k, v) => (q.clone(), k.clone(), v.clone()),
        };
        let project = |x: &Tensor, w: &Tensor, i: i64| {
            let y = x.matmul(&w.t());
            match &self.in_proj_bias {
                Some(b) => y + b.narrow(0, i * e as i64, e),
                None => y,
            }
        };
        let d = e / h;
        // [N, T, E] → [N, H, T, D].
        let heads = |x: Tensor, t: usize| {
            x.reshape(vec![n as i64, t as i64, h as i64, d as i64])
                .transpose(1, 2)
        };
        let qh = heads(project(&q, &wq, 0), l);
        let kh = heads(project(&k, &wk, 1), s);
        let vh = heads(project(&v, &wv, 2), s);
        let mask = self.combined_mask(o, n, l, s, unbatched, query.dtype(), &poison)?;
        let p = if self.training.get() {
            self.dropout
        } else {
            0.0
        };
        let (out, probs) = qh.attention_at(
            &kh,
            &vh,
            mask.as_ref(),
            p,
            o.is_causal,
            None,
            o.need_weights,
            None,
            loc.clone(),
        )?;
        let out = out
            .transpose(1, 2)
            .reshape(vec![n as i64, l as i64, e as i64]);
        let out = self.out_proj.forward(&out);
        let out = if unbatched {
            out.squeeze(0)
        } else if self.batch_first {
            out
        } else {
            out.transpose(0, 1)
        };
        // `attention_at` returns the weights whenever `need_weights` asked for them.
        let weights = probs.filter(|_| o.need_weights).map(|probs| {
            let w = if o.per_head_weights {
                probs
            } else {
                probs.mean([1], false)
            };
            if unbatched {
                w.squeeze(0)
            } else {
                w
            }
        });
        Ok((out, weights))
    }

    /// `key_padding_mask` and `attn_mask` merged into one SDPA mask broadcasting to
    /// `[N, H, L, S]`: a "keep" bool mask when both are bool, else an additive float one.
    #[allow(clippy::too_many_arguments)]
    fn combined_mask(
        &self,
        o: &MhaInputs,
        n: usize,
        l: usize,
        s: usize,
        unbatched: bool,
        dtype: DType,
        bad: &dyn Fn(String) -> Tensor,
    ) -> Result<Option<Tensor>, Tensor> {
        let h = self.num_heads;
        let mut parts: Vec<Tensor> = Vec::new();
        if let Some(m) = o.key_padding_mask {
            let want: Vec<usize> = if unbatched { vec![s] } else { vec![n, s] };
            if m.size() != want {
                return Err(bad(format!(
                    "key_padding_mask {:?} must be {want:?} (batch, key length)",
                    m.size()
                )));
            }
            parts.push(m.reshape(vec![n as i64, 1, 1, s as i64]));
        }
        if let Some(m) = o.attn_mask {
            let sz = m.size();
            let m = if sz == [l, s] {
                m.clone()
            } else if sz == [n * h, l, s] {
                m.reshape(vec![n as i64, h as i64, l as i64, s as i64])
            } else {
                return Err(bad(format!(
                    "attn_mask {sz:?} must be [{l}, {s}] or [{}, {l}, {s}] (batch·heads, query, key)",
                    n * h
                )));
            };
            parts.push(m);
        }
        if parts.is_empty() {
            return Ok(None);
        }
        let all_bool = parts.iter().all(|p| p.dtype() == DType::Bool);
        if all_bool {
            // true = masked here; SDPA keeps true.
            let mut keep = parts[0].logical_not();
            for p in &parts[1..] {
                keep = keep.logical_and(p.logical_not());
            }
            return Ok(Some(keep));
        }
        let additive = |p: &Tensor| {
            if p.dtype() == DType::Bool {
                let zeros = p.builder().scalar(0.0, dtype);
                crate::tensor::where_(p, f64::NEG_INFINITY, &zeros)
            } else {
                p.clone()
            }
        };
        let mut sum = additive(&parts[0]);
        for p in &parts[1..] {
            sum = sum + additive(p);
        }
        Ok(Some(sum))
    }
}

impl Module for MultiheadAttention {
    /// Self-attention without masks (`attend(x, x, x)`), the output only.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.attend(x, x, x, &MhaInputs::default()).0
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = match &self.in_proj {
            InProj::Packed(w) => vec![(child(&self.name, "in_proj_weight"), w.clone())],
            InProj::Separate(q, k, w) => vec![
                (child(&self.name, "q_proj_weight"), q.clone()),
                (child(&self.name, "k_proj_weight"), k.clone()),
                (child(&self.name, "v_proj_weight"), w.clone()),
            ],
        };
        if let Some(b) = &self.in_proj_bias {
            v.push((child(&self.name, "in_proj_bias"), b.clone()));
        }
        v.extend(self.out_proj.named_parameters());
        v
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn is_training(&self) -> bool {
        self.training.get()
    }
}
