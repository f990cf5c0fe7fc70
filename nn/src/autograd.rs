//! Gradients at the API level: [`GraphBuilder::grad`], [`GraphBuilder::vjp`] (several
//! losses accumulate), [`GraphBuilder::hvp`] and [`GraphBuilder::hessian`].
//!
//! The course's `requires_grad` is the distinction between [`GraphBuilder::parameter`]
//! (learnable, listed by [`GraphBuilder::parameters`]) and inputs or constants; any float
//! tensor can still be differentiated against explicitly. `torch.no_grad` /
//! `detach()` is [`Tensor::detach`]. Gradients are new tensors of the same graph, built
//! symbolically by `onde_passes::autodiff`, so they can be run, compiled, or
//! differentiated again.

use crate::builder::GraphBuilder;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use onde_ir::{Array, SourceLoc, TensorType, ValueId};

impl GraphBuilder {
    /// The learnable parameters, in declaration order (buffers excluded).
    pub fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// The learnable parameters with their dotted names, in declaration order.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.named_all()
            .into_iter()
            .filter(|(n, _)| !self.is_buffer(n))
            .collect()
    }

    /// The buffers ([`GraphBuilder::buffer`]) with their names, in declaration order.
    pub fn named_buffers(&self) -> Vec<(String, Tensor)> {
        self.named_all()
            .into_iter()
            .filter(|(n, _)| self.is_buffer(n))
            .collect()
    }

    fn named_all(&self) -> Vec<(String, Tensor)> {
        let st = self.state.borrow();
        st.graph
            .parameters()
            .into_iter()
            .map(|(name, v)| (name, Tensor::from_parts(self.clone(), Ok(v))))
            .collect()
    }

    /// Replaces the stored value of parameter `name` (e.g. after an optimiser step).
    /// The new value must have the parameter's dtype and shape.
    pub fn set_parameter(&self, name: &str, value: Array) -> Result<()> {
        let mut st = self.state.borrow_mut();
        let Some(slot) = st.params.iter_mut().find(|(n, _)| n == name) else {
            return Err(Error::UnknownParameter { name: name.into() });
        };
        let want = TensorType::new(slot.1.dtype(), slot.1.shape().clone());
        let got = TensorType::new(value.dtype(), value.shape().clone());
        if want != got {
            return Err(Error::ParameterType {
                name: name.into(),
                expected: Box::new(want),
                got: Box::new(got),
            });
        }
        slot.1 = value;
        Ok(())
    }

    fn ids(&self, api: &'static str, ts: &[&Tensor], loc: &SourceLoc) -> Result<Vec<ValueId>> {
        let mut out = Vec::with_capacity(ts.len());
        for t in ts {
            if !self.same(t.builder()) {
                return Err(Error::MixedBuilders {
                    op: api,
                    loc: loc.clone(),
                });
            }
            out.push(t.value()?);
        }
        Ok(out)
    }

    fn wrap(&self, vs: Vec<ValueId>) -> Vec<Tensor> {
        vs.into_iter()
            .map(|v| Tensor::from_parts(self.clone(), Ok(v)))
            .collect()
    }

    /// Gradient of the scalar float `loss` with respect to each of `wrt` (zeros for one
    /// the loss does not depend on), like `torch.autograd.grad(loss, wrt)`.
    #[track_caller]
    pub fn grad(&self, loss: &Tensor, wrt: &[&Tensor]) -> Result<Vec<Tensor>> {
        let loc = SourceLoc::caller();
        let l = self.ids("grad", &[loss], &loc)?[0];
        let w = self.ids("grad", wrt, &loc)?;
        let r = onde_passes::grad(&mut self.state.borrow_mut().graph, l, &w);
        r.map(|v| self.wrap(v)).map_err(|source| Error::Grad {
            source: Box::new(source),
            loc,
        })
    }

    /// Vector-Jacobian product summed over several outputs: `Σ_i dyᵢᵀ ∂yᵢ/∂w`. With
    /// scalar losses and unit cotangents this accumulates the gradients of several
    /// losses, as repeated `loss.backward()` calls do in PyTorch.
    #[track_caller]
    pub fn vjp(&self, seeds: &[(&Tensor, &Tensor)], wrt: &[&Tensor]) -> Result<Vec<Tensor>> {
        let loc = SourceLoc::caller();
        let mut s = Vec::with_capacity(seeds.len());
        for (y, dy) in seeds {
            let ids = self.ids("vjp", &[y, dy], &loc)?;
            s.push((ids[0], ids[1]));
        }
        let w = self.ids("vjp", wrt, &loc)?;
        let r = onde_passes::vjp(&mut self.state.borrow_mut().graph, &s, &w);
        r.map(|v| self.wrap(v)).map_err(|source| Error::Grad {
            source: Box::new(source),
            loc,
        })
    }

    /// Hessian-vector product `H·v` of the scalar `loss` with respect to `wrt`, with `v`
    /// one tensor per `wrt` entry (double reverse mode: the gradient of `⟨∇loss, v⟩`).
    #[track_caller]
    pub fn hvp(&self, loss: &Tensor, wrt: &[&Tensor], v: &[&Tensor]) -> Result<Vec<Tensor>> {
        let loc = SourceLoc::caller();
        if v.len() != wrt.len() {
            return Err(Error::Op {
                op: "hvp",
                reason: format!(
                    "{} direction tensors for {} wrt tensors",
                    v.len(),
                    wrt.len()
                ),
                operands: vec![],
                loc,
            });
        }
        let g = self.grad(loss, wrt)?;
        let mut dot: Option<Tensor> = None;
        for (gi, vi) in g.iter().zip(v) {
            let term = (gi * *vi).sum_all();
            dot = Some(match dot {
                Some(d) => d + term,
                None => term,
            });
        }
        let Some(dot) = dot else {
            return Ok(vec![]);
        };
        dot.check()?;
        self.grad(&dot, wrt)
    }

    /// The full Hessian `[n, n]` of the scalar `loss` with respect to `w` (flattened to
    /// `n` elements): one reverse pass per row over the gradient. For small parameter
    /// vectors (the course's Newton method); `n` passes add `O(n)` subgraphs.
    #[track_caller]
    pub fn hessian(&self, loss: &Tensor, w: &Tensor) -> Result<Tensor> {
        let g = self.grad(loss, &[w])?.remove(0).flatten(0, -1);
        let n = w.numel();
        let mut rows = Vec::with_capacity(n);
        for i in 0..n {
            let gi = g.index([crate::Idx::At(i as i64)]);
            gi.check()?;
            rows.push(self.grad(&gi, &[w])?.remove(0).flatten(0, -1));
        }
        let refs: Vec<&Tensor> = rows.iter().collect();
        if refs.is_empty() {
            let z = w.full_like(0.0).reshape([0, 0]);
            return z.check();
        }
        crate::stack(&refs, 0).check()
    }
}
