//! Parameter groups (`torch.optim`'s `[{"params": …, "lr": …, "weight_decay": …}]`):
//! which parameters an optimiser updates, each group with its own learning rate and
//! weight decay; every parameter in no group is frozen.
//!
//! Each group's learning rate is its own f64 graph input (`optim.lr` for the first
//! group, `optim.lr.<i>` for group `i ≥ 1`), so rates change without recompiling;
//! [`crate::TrainStep::set_lr`] moves every group by the same factor (as PyTorch's
//! schedulers, which scale each group's initial rate) and
//! [`crate::TrainStep::set_group_lr`] sets one. A group's weight decay builds its
//! update with [`super::Optimizer::with_weight_decay`]. Optimiser state keys stay
//! `optim.<param>.<slot>` and the step counters are shared (one step advances every
//! group, as in PyTorch where each parameter counts its own steps in lockstep).

use super::Optimizer;
use crate::builder::GraphBuilder;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// One parameter group: its parameters and, optionally, its own learning rate and
/// weight decay (`None`: the optimiser's).
#[derive(Debug, Clone)]
pub struct ParamGroup<'a> {
    /// The parameters of the group (learnable parameters of the builder).
    pub params: Vec<&'a Tensor>,
    /// The group's learning rate.
    pub lr: Option<f64>,
    /// The group's weight decay.
    pub weight_decay: Option<f64>,
}

impl<'a> ParamGroup<'a> {
    /// A group of `params` with the optimiser's settings.
    pub fn new(params: impl IntoIterator<Item = &'a Tensor>) -> ParamGroup<'a> {
        ParamGroup {
            params: params.into_iter().collect(),
            lr: None,
            weight_decay: None,
        }
    }

    /// With its own learning rate.
    pub fn lr(mut self, lr: f64) -> ParamGroup<'a> {
        self.lr = Some(lr);
        self
    }

    /// With its own weight decay.
    pub fn weight_decay(mut self, wd: f64) -> ParamGroup<'a> {
        self.weight_decay = Some(wd);
        self
    }
}

/// The groups of a training step, resolved to names.
pub(crate) struct Resolved {
    /// Every updated parameter with its name and group index, in group order.
    pub named: Vec<(String, Tensor, usize)>,
    /// Per group: the initial learning rate and, if the group overrides the weight
    /// decay, the optimiser building its update (else the step's own).
    pub groups: Vec<(f64, Option<Box<dyn Optimizer>>)>,
}

fn err(reason: String) -> Error {
    Error::Train { reason }
}

/// Resolves `groups` (or, when empty, `params` as one group, or every learnable
/// parameter of `g` when that is `None`) against the builder's parameters.
pub(crate) fn resolve(
    g: &GraphBuilder,
    opt: &dyn Optimizer,
    params: Option<&[&Tensor]>,
    groups: &[ParamGroup],
) -> Result<Resolved> {
    let all = g.named_parameters();
    let from_params = params.is_some();
    // How errors name the group: the option the user set.
    let who = |gi: usize| {
        if from_params {
            "TrainOptions::params".to_string()
        } else {
            format!("parameter group {gi}")
        }
    };
    let single;
    let groups: &[ParamGroup] = match (params, groups.is_empty()) {
        (Some(_), false) => {
            return Err(err(
                "TrainOptions: give either `params` or `groups`, not both".into(),
            ))
        }
        (Some(p), true) => {
            single = [ParamGroup::new(p.iter().copied())];
            &single
        }
        (None, true) => {
            single = [ParamGroup::new(all.iter().map(|(_, t)| t))];
            &single
        }
        (None, false) => groups,
    };
    let mut named: Vec<(String, Tensor, usize)> = Vec::new();
    let mut out = Vec::with_capacity(groups.len());
    for (gi, group) in groups.iter().enumerate() {
        let lr = group.lr.unwrap_or(opt.lr());
        if lr.is_nan() || lr < 0.0 {
            return Err(err(format!(
                "parameter group {gi}: the learning rate must be >= 0, got {lr}"
            )));
        }
        let gopt: Option<Box<dyn Optimizer>> = match group.weight_decay {
            None => None,
            Some(wd) => Some(
                opt.with_weight_decay(wd)
                    .map_err(|e| err(format!("parameter group {gi}: {e}")))?,
            ),
        };
        if let Some(o) = &gopt {
            o.validate()
                .map_err(|e| err(format!("parameter group {gi}: {e}")))?;
        }
        for t in &group.params {
            let id = t.value()?;
            let found = all
                .iter()
                .find(|(_, p)| p.value().ok() == Some(id))
                .filter(|_| t.builder().same(g));
            let Some((n, p)) = found else {
                return Err(err(format!(
                    "{}: a tensor of type {} is not a learnable parameter of this builder",
                    who(gi),
                    t.ty().map_or_else(|| "?".into(), |t| t.to_string())
                )));
            };
            match named.iter().find(|(m, _, _)| m == n) {
                Some((_, _, other)) if *other != gi => {
                    return Err(err(format!(
                        "parameter {n} appears in parameter groups {other} and {gi} \
                         (a parameter belongs to one group)"
                    )))
                }
                Some(_) => {}
                None => named.push((n.clone(), p.clone(), gi)),
            }
        }
        out.push((lr, gopt));
    }
    if named.is_empty() {
        return Err(err("the graph has no learnable parameter".into()));
    }
    Ok(Resolved { named, groups: out })
}

/// The learning-rate input name of group `i`.
pub(crate) fn lr_name(i: usize) -> String {
    if i == 0 {
        "optim.lr".into()
    } else {
        format!("optim.lr.{i}")
    }
}
