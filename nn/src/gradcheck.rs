//! `gradcheck`: a graph's symbolic gradients against central finite differences in f64.
//!
//! The graph is first promoted to f64 ([`onde_passes::precision`]), so the check tests
//! the gradient *rules*, not f32 rounding. A non-scalar output is reduced to
//! `Σ out · r` with a fixed pseudo-random `r`, which checks the full Jacobian-vector
//! structure with one backward pass. Each element `wᵢ` of each checked tensor gets
//! `(f(w + εeᵢ) − f(w − εeᵢ)) / 2ε`, compared with the analytic value by
//! `|a − n| ≤ atol + rtol·|n|`. The report names the worst element with its index.

use crate::builder::GraphBuilder;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use onde_ir::{Array, DType, Graph, Op, Shape, ValueId};
use std::collections::HashMap;
use std::fmt;

/// Tolerances and step of [`GraphBuilder::gradcheck`](crate::GraphBuilder::gradcheck) (PyTorch's `gradcheck` defaults: ε = 1e-6,
/// atol = 1e-5, rtol = 1e-3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradcheckOpts {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

impl Default for GradcheckOpts {
    fn default() -> GradcheckOpts {
        GradcheckOpts {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
        }
    }
}

/// The element whose analytic and numeric derivatives disagree most (relative to the
/// tolerance).
#[derive(Clone, Debug, PartialEq)]
pub struct Worst {
    /// The input or parameter name.
    pub name: String,
    /// The element's index.
    pub index: Vec<usize>,
    /// Symbolic derivative.
    pub analytic: f64,
    /// Central-difference derivative.
    pub numeric: f64,
    /// `|analytic − numeric| / (atol + rtol·|numeric|)`: above 1 is a failure.
    pub score: f64,
}

/// Result of [`GraphBuilder::gradcheck`](crate::GraphBuilder::gradcheck).
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckReport {
    /// Elements compared.
    pub checked: usize,
    /// The worst element (`None` if nothing was checked).
    pub worst: Option<Worst>,
}

impl GradcheckReport {
    /// Whether every element is within tolerance.
    pub fn ok(&self) -> bool {
        self.worst.as_ref().is_none_or(|w| w.score <= 1.0)
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.worst {
            None => write!(f, "gradcheck: nothing to check"),
            Some(w) => write!(
                f,
                "gradcheck {} over {} elements; worst: {}{:?} analytic {:.9e} numeric {:.9e} (score {:.3})",
                if self.ok() { "passed" } else { "FAILED" },
                self.checked,
                w.name,
                w.index,
                w.analytic,
                w.numeric,
                w.score
            ),
        }
    }
}

fn to_f64_array(a: &Array) -> Array {
    match a.dtype() {
        DType::F32 => Array::f64(a.shape().clone(), a.to_f64_vec()).unwrap_or_else(|_| a.clone()),
        DType::F64 | DType::I64 | DType::Bool => a.clone(),
    }
}

fn unravel(mut i: usize, shape: &Shape) -> Vec<usize> {
    let mut idx = vec![0; shape.rank()];
    for (k, &d) in shape.dims().iter().enumerate().rev() {
        if d > 0 {
            idx[k] = i % d;
            i /= d;
        }
    }
    idx
}

fn check_err(reason: String) -> Error {
    Error::Gradcheck { reason }
}

/// Checks the gradients of `output` of `graph` with respect to the inputs or
/// parameters named in `wrt`, at the point given by `feeds` (every input and
/// parameter by name).
pub fn gradcheck_graph(
    graph: &Graph,
    output: ValueId,
    wrt: &[&str],
    feeds: &HashMap<String, Array>,
    opts: GradcheckOpts,
) -> Result<GradcheckReport> {
    let (mut g, map) = onde_passes::precision::to_f64_mapped(graph)
        .map_err(|e| check_err(format!("promoting the graph to f64: {e}")))?;
    let mut out = *map
        .get(&output)
        .ok_or_else(|| check_err(format!("output {output:?} is not in the graph")))?;
    // The checked tensors, by name.
    let mut wrt_ids = Vec::new();
    for name in wrt {
        let found = g.op_ids().into_iter().find_map(|o| {
            let (Op::Input { name: n, .. } | Op::Parameter { name: n, .. }) = &g.op(o).op else {
                return None;
            };
            if n == name {
                g.results(o).first().copied()
            } else {
                None
            }
        });
        wrt_ids
            .push(found.ok_or_else(|| check_err(format!("no input or parameter named {name:?}")))?);
    }
    // A scalar objective.
    let ot = g.value_type(out).clone();
    if !ot.dtype.is_float() {
        return Err(check_err(format!(
            "output of type {ot} is not floating point"
        )));
    }
    if ot.shape.rank() != 0 {
        let n = ot.shape.numel();
        let r: Vec<f64> = (0..n)
            .map(|i| ((i as f64 + 1.0) * 0.7548776662466927).fract() - 0.5)
            .collect();
        let rc = Array::f64(ot.shape.clone(), r).map_err(|e| check_err(e.to_string()))?;
        let add = |g: &mut Graph, op: Op, xs: &[ValueId]| {
            g.add_op(op, xs, None)
                .map(|r| r.1[0])
                .map_err(|e| check_err(format!("building the objective: {e}")))
        };
        let rv = add(&mut g, Op::Constant(rc), &[])?;
        let prod = add(&mut g, Op::Binary(onde_ir::BinaryOp::Mul), &[out, rv])?;
        let axes = (0..ot.shape.rank()).collect();
        out = add(
            &mut g,
            Op::Reduce {
                kind: onde_ir::ReduceKind::Sum,
                axes,
                keepdim: false,
            },
            &[prod],
        )?;
    }
    let grads = onde_passes::grad(&mut g, out, &wrt_ids).map_err(|e| check_err(e.to_string()))?;
    let mut feeds: HashMap<String, Array> = feeds
        .iter()
        .map(|(k, v)| (k.clone(), to_f64_array(v)))
        .collect();
    let analytic = onde_runtime::run_values(&g, &feeds, &grads)?;
    let mut worst: Option<Worst> = None;
    let mut checked = 0;
    for (k, name) in wrt.iter().enumerate() {
        let base = feeds
            .get(*name)
            .cloned()
            .ok_or_else(|| check_err(format!("no feed for {name:?}")))?;
        let shape = base.shape().clone();
        let vals = base.to_f64_vec();
        let a = analytic[k].to_f64_vec();
        for i in 0..vals.len() {
            let mut f = |delta: f64| -> Result<f64> {
                let mut v = vals.clone();
                v[i] += delta;
                feeds.insert(
                    (*name).to_string(),
                    Array::f64(shape.clone(), v).map_err(|e| check_err(e.to_string()))?,
                );
                let r = onde_runtime::run_values(&g, &feeds, &[out])?;
                Ok(r[0].to_f64_vec().first().copied().unwrap_or(f64::NAN))
            };
            let numeric = (f(opts.eps)? - f(-opts.eps)?) / (2.0 * opts.eps);
            // Both NaN (e.g. the mean of an empty tensor upstream) or the same infinity
            // agree; a NaN on one side only is the worst possible mismatch.
            let agree =
                (a[i].is_nan() && numeric.is_nan()) || (a[i].is_infinite() && a[i] == numeric);
            let score = if agree {
                0.0
            } else {
                let s = (a[i] - numeric).abs() / (opts.atol + opts.rtol * numeric.abs());
                if s.is_nan() {
                    f64::INFINITY
                } else {
                    s
                }
            };
            checked += 1;
            if worst.as_ref().is_none_or(|w| score > w.score) {
                worst = Some(Worst {
                    name: (*name).to_string(),
                    index: unravel(i, &shape),
                    analytic: a[i],
                    numeric,
                    score,
                });
            }
        }
        feeds.insert((*name).to_string(), base);
    }
    Ok(GradcheckReport { checked, worst })
}

impl GraphBuilder {
    /// [`gradcheck_graph`] on this builder's graph: `wrt` are inputs or parameters,
    /// `feeds` the inputs (parameters come from the builder's store).
    pub fn gradcheck(
        &self,
        output: &Tensor,
        wrt: &[&Tensor],
        feeds: &[(&str, Array)],
        opts: GradcheckOpts,
    ) -> Result<GradcheckReport> {
        let g = self.build(&[output])?;
        let out = g.outputs()[0];
        let mut names = Vec::new();
        for t in wrt {
            let v = t.value()?;
            let name = g.producer(v).and_then(|o| {
                let (Op::Input { name, .. } | Op::Parameter { name, .. }) = &g.op(o).op else {
                    return None;
                };
                Some(name.clone())
            });
            names.push(
                name.ok_or_else(|| check_err(format!("{t:?} is not an input or a parameter")))?,
            );
        }
        let mut map: HashMap<String, Array> = self.parameter_values().into_iter().collect();
        for (n, a) in feeds {
            map.insert((*n).to_string(), a.clone());
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        gradcheck_graph(&g, out, &refs, &map, opts)
    }
}
