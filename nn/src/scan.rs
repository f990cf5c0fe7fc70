//! [`GraphBuilder::scan`]: recurrence as one `scan` op whose body is built by a closure.
//!
//! The closure receives the carried states, one slice of each scanned input (the scan
//! axis removed) and the loop invariants as tensors of a fresh body builder, and
//! returns the new carried states and the per-step outputs. Weights used in the body
//! must be passed as invariants (tensors of the outer graph cannot be used inside the
//! body, and parameters cannot be declared there), which keeps the body a closed graph
//! that can be compiled once and run for any number of steps.

use crate::builder::GraphBuilder;
use crate::error::Error;
use crate::tensor::Tensor;
use onde_ir::{Op, ScanOp, SourceLoc, TensorType};
use std::sync::Arc;

impl GraphBuilder {
    /// Runs `body` along `axis` of the scanned inputs `xs` (at least one; all of the
    /// same extent there), from the last step to the first if `reverse`.
    /// Returns the final carried states followed by the per-step outputs stacked along
    /// `axis`.
    #[track_caller]
    pub fn scan<F>(
        &self,
        init: &[&Tensor],
        xs: &[&Tensor],
        invariants: &[&Tensor],
        axis: i64,
        reverse: bool,
        body: F,
    ) -> Vec<Tensor>
    where
        F: FnOnce(&[Tensor], &[Tensor], &[Tensor]) -> (Vec<Tensor>, Vec<Tensor>),
    {
        let loc = SourceLoc::caller();
        let fail = |reason: String, operands: Vec<TensorType>| {
            vec![self.poisoned(Error::Op {
                op: "scan",
                reason,
                operands,
                loc: loc.clone(),
            })]
        };
        let all: Vec<&Tensor> = init.iter().chain(xs).chain(invariants).copied().collect();
        let mut tys = Vec::with_capacity(all.len());
        for t in &all {
            if !self.same(t.builder()) {
                return vec![self.poisoned(Error::MixedBuilders { op: "scan", loc })];
            }
            match t.check() {
                Ok(t) => tys.extend(t.ty()),
                Err(e) => return vec![self.poisoned(e)],
            }
        }
        let Some(x0) = xs.first() else {
            return fail(
                "needs at least one scanned input to know the number of steps".into(),
                tys,
            );
        };
        let ax = match Tensor::norm_axis(axis, x0.dim()) {
            Ok(a) => a,
            Err(e) => return fail(e, tys),
        };
        let length = x0.shape().dims()[ax];
        let bb = GraphBuilder::new();
        let mut carries = Vec::new();
        let mut slices = Vec::new();
        let mut consts = Vec::new();
        for (i, t) in init.iter().enumerate() {
            carries.push(bb.input(&format!("carry{i}"), t.dtype(), t.shape()));
        }
        for (i, t) in xs.iter().enumerate() {
            let mut s = t.shape();
            if s.rank() <= ax || s.dims()[ax] != length {
                return fail(
                    format!("scanned input {i} has no extent {length} at axis {ax}"),
                    tys,
                );
            }
            s.0.remove(ax);
            slices.push(bb.input(&format!("x{i}"), t.dtype(), s));
        }
        for (i, t) in invariants.iter().enumerate() {
            consts.push(bb.input(&format!("inv{i}"), t.dtype(), t.shape()));
        }
        let (new_carries, ys) = body(&carries, &slices, &consts);
        if new_carries.len() != init.len() {
            return fail(
                format!(
                    "body returned {} carried states for {} initial ones",
                    new_carries.len(),
                    init.len()
                ),
                tys,
            );
        }
        if !bb.parameter_values().is_empty() {
            return fail(
                "parameters cannot be declared inside a scan body: declare them outside and pass them as invariants".into(),
                tys,
            );
        }
        let outs: Vec<&Tensor> = new_carries.iter().chain(&ys).collect();
        let graph = match bb.build(&outs) {
            Ok(g) => g,
            Err(e) => return vec![self.poisoned(e)],
        };
        let op = Op::Scan(ScanOp {
            body: Arc::new(graph),
            num_carry: init.len(),
            num_xs: xs.len(),
            length,
            axis: ax,
            reverse,
        });
        let ids: Vec<_> = all.iter().filter_map(|t| t.value().ok()).collect();
        self.push_multi("scan", op, &ids, loc)
    }
}
