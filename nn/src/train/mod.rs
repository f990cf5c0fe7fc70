//! [`TrainStep`]: forward, loss, backward and optimiser update compiled to ONE
//! executable, with parameters and optimiser state kept in persistent buffers.
//!
//! The step graph has the data inputs, the parameters, the optimiser state
//! (`optim.<param>.<slot>`, `optim.<global>`) and the learning rate (`optim.lr`, f64) as
//! inputs; its outputs are the loss, any extra outputs the user asked for, optionally
//! the gradients, then the new parameters and state. Each parameter and state input is
//! bound to its new value ([`onde_codegen::Executable::bind_state`]): the update kernel
//! writes it in place when the schedule allows (reported by
//! [`TrainStep::in_place_report`]), so a step allocates nothing and copies no parameter.
//!
//! An [`Evaluator`] (e.g. the eval-mode forward) is a second executable fed with the
//! step's parameter buffers by reference: it always sees the current weights, with no
//! copy. Gradient accumulation ([`TrainOptions::accumulate`]) adds a third executable
//! that sums gradients of micro-batches into buffers which the next [`TrainStep::step`]
//! adds to its own gradient before updating (like several `backward()` calls before
//! `optimizer.step()`; scale the loss yourself if you want a mean).

use crate::builder::GraphBuilder;
use crate::error::{Error, Result};
use crate::feed_check::{check_feeds, IndexCheck};
use crate::optim::{global_arrays, lr_name, resolve, Optimizer, ParamGroup, UpdateInputs};
use crate::step_seed::StepSeed;
use crate::tensor::Tensor;
use onde_codegen::{CompileOptions, Executable};
use onde_ir::{Array, DType, TensorType};

mod any_batch;
mod eval;
pub use eval::Evaluator;

/// Options of [`TrainStep::with_options`].
#[derive(Debug, Clone, Default)]
pub struct TrainOptions<'a> {
    /// Extra outputs computed by every step (e.g. logits for accuracy), read with
    /// [`TrainStep::output`] (index 1, 2, …; index 0 is the loss).
    pub outputs: Vec<&'a Tensor>,
    /// Also output the gradient of every parameter ([`TrainStep::grad`]).
    pub grads: bool,
    /// Enable [`TrainStep::accumulate`].
    pub accumulate: bool,
    /// The parameters the optimiser updates (PyTorch's `optimizer(params)`); `None`:
    /// every learnable parameter of the builder. The others are frozen: fed with their
    /// builder values, kept in the state dict, never updated (fine-tuning a head over a
    /// fixed front-end).
    pub params: Option<Vec<&'a Tensor>>,
    /// Parameter groups with their own learning rate and weight decay
    /// ([`ParamGroup`]); when given, the parameters of no group are frozen. Exclusive
    /// with `params`.
    pub groups: Vec<ParamGroup<'a>>,
    /// Clip the gradients by their global norm before the update (PyTorch's
    /// `clip_grad_norm_(params, max_norm)` between `backward` and `step`): every
    /// gradient is scaled by `min(1, max_norm / (‖g‖₂ + 1e-6))`, `‖g‖₂` over all the
    /// updated parameters' gradients together, inside the compiled step
    /// ([`TrainStep::grad`] still reports the unclipped gradient).
    pub clip_grad_norm: Option<f64>,
    /// Compilation options.
    pub compile: CompileOptions,
}

struct Accum {
    exe: Executable,
    /// Names of the accumulation buffers, one per parameter.
    names: Vec<String>,
}

impl std::fmt::Debug for Accum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accum").field("names", &self.names).finish()
    }
}

/// A compiled training step. See the module documentation.
#[derive(Debug)]
pub struct TrainStep {
    exe: Executable,
    optimizer: String,
    /// Per parameter group: the initial learning rate.
    base_lrs: Vec<f64>,
    /// Per parameter group: the learning-rate input's name and current value.
    lrs: Vec<(String, Array)>,
    buffers: Vec<(String, Array)>,
    n_extra: usize,
    grads_at: Option<usize>,
    accum: Option<Accum>,
    /// Whether the last run was [`TrainStep::accumulate`] (outputs are read from it).
    last_accumulated: bool,
    steps: u64,
    /// Compilation options (also used for evaluators).
    compile: CompileOptions,
    /// Changes whenever a parameter or buffer may have changed (globally unique), so
    /// evaluators can reuse packed weights between steps.
    version: u64,
    /// The step graph, for inspection and reference runs.
    graph: onde_ir::Graph,
    /// The bound states (feed name, index of the output replacing it): the parameters
    /// first (`n_params` of them), then the optimiser state (slots, then globals).
    bindings: Vec<(String, usize)>,
    n_params: usize,
    /// The step seed fed to every step and accumulation (dropout masks).
    seed: StepSeed,
    /// Buffers updated by every step ([`GraphBuilder::update_buffer`]), bound states of
    /// the step, in registration order.
    updated: Vec<String>,
    /// Class-index inputs checked before each step ([`crate::feed_check`]).
    index_checks: Vec<IndexCheck>,
    /// Made by [`TrainStep::any_batch`]: the other batch sizes and how to build more.
    any: Option<any_batch::AnyBatch>,
}

/// A fresh weights version (unique in the process).
fn next_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn train_err(reason: impl Into<String>) -> Error {
    Error::Train {
        reason: reason.into(),
    }
}

fn exec(e: onde_codegen::RunError) -> Error {
    Error::Exec(Box::new(e))
}

impl TrainStep {
    /// Compiles the training step of `loss` over every learnable parameter of `g`, with
    /// optimiser `opt`.
    pub fn new(g: &GraphBuilder, loss: &Tensor, opt: &dyn Optimizer) -> Result<TrainStep> {
        TrainStep::with_options(g, loss, opt, TrainOptions::default())
    }

    /// [`TrainStep::new`] with extra outputs, gradient outputs, accumulation, threads.
    pub fn with_options(
        g: &GraphBuilder,
        loss: &Tensor,
        opt: &dyn Optimizer,
        o: TrainOptions,
    ) -> Result<TrainStep> {
        loss.check()?;
        if loss.numel() != 1 || !loss.dtype().is_float() {
            return Err(train_err(format!(
                "the loss must be a float scalar, got {:?} {}",
                loss.size(),
                loss.dtype()
            )));
        }
        opt.validate().map_err(train_err)?;
        let all = g.named_parameters();
        let resolved = resolve(g, opt, o.params.as_deref(), &o.groups)?;
        let group_of: Vec<usize> = resolved.named.iter().map(|(_, _, i)| *i).collect();
        let named: Vec<(String, Tensor)> =
            resolved.named.into_iter().map(|(n, t, _)| (n, t)).collect();
        let params: Vec<&Tensor> = named.iter().map(|(_, t)| t).collect();
        let grads = g.grad(loss, &params)?;
        let scalar = onde_ir::Shape::from(Vec::<usize>::new());
        let lr_inputs: Vec<Tensor> = (0..resolved.groups.len())
            .map(|i| g.input_reuse(&lr_name(i), DType::F64, scalar.clone()))
            .collect::<Result<_>>()?;
        let globals: Vec<(String, Tensor)> = opt
            .globals()
            .into_iter()
            .map(|(n, _)| {
                let name = format!("optim.{n}");
                g.input_reuse(&name, DType::F64, scalar.clone())
                    .map(|t| (name, t))
            })
            .collect::<Result<_>>()?;
        let gl: Vec<Tensor> = globals.iter().map(|(_, t)| t.clone()).collect();
        let new_globals = opt.update_globals(&gl);
        let hessians: Vec<Option<Tensor>> = if opt.needs_hessian() {
            named
                .iter()
                .map(|(_, p)| g.hessian(loss, p).map(Some))
                .collect::<Result<_>>()?
        } else {
            vec![None; named.len()]
        };
        let mut acc_inputs = Vec::new();
        // The gradients the update uses: plus the accumulated micro-batches, then
        // clipped by their global norm.
        let mut used: Vec<Tensor> = Vec::with_capacity(named.len());
        for ((name, p), gr) in named.iter().zip(&grads) {
            let ty = p.ty().unwrap_or_else(|| TensorType::new(DType::F32, [0]));
            used.push(if o.accumulate {
                let a = g.input_reuse(&format!("accum.{name}"), ty.dtype, ty.shape.clone())?;
                acc_inputs.push(a.clone());
                gr + &a
            } else {
                gr.clone()
            });
        }
        if let Some(max_norm) = o.clip_grad_norm {
            if !(max_norm.is_finite() && max_norm > 0.0) {
                return Err(train_err(format!(
                    "clip_grad_norm must be a positive finite norm, got {max_norm}"
                )));
            }
            let mut sq: Option<Tensor> = None;
            for gr in &used {
                let s = gr.square().sum_all();
                sq = Some(match sq {
                    Some(acc) => acc + s,
                    None => s,
                });
            }
            if let Some(sq) = sq {
                let coef = (max_norm / (sq.sqrt() + 1e-6)).clamp_max(1.0);
                used = used.iter().map(|gr| gr * &coef).collect();
            }
        }
        let mut new_params = Vec::new();
        let mut slot_states: Vec<(String, Tensor, Tensor)> = Vec::new();
        for ((((name, p), gr), hess), &gi) in named.iter().zip(&used).zip(&hessians).zip(&group_of)
        {
            let gopt = resolved.groups[gi].1.as_deref().unwrap_or(opt);
            let inputs = UpdateInputs {
                lr: &lr_inputs[gi],
                globals: &gl,
                new_globals: &new_globals,
                hessian: hess.as_ref(),
            };
            let ty = p.ty().unwrap_or_else(|| TensorType::new(DType::F32, [0]));
            let slots: Vec<(String, Tensor)> = opt
                .slots()
                .into_iter()
                .map(|s| {
                    let n = format!("optim.{name}.{s}");
                    g.input_reuse(&n, ty.dtype, ty.shape.clone())
                        .map(|t| (n, t))
                })
                .collect::<Result<_>>()?;
            let sl: Vec<Tensor> = slots.iter().map(|(_, t)| t.clone()).collect();
            // A parameter the loss does not reach has no gradient (PyTorch's `grad is
            // None`): it and its state are left untouched, weight decay included.
            let (np, ns) = if g.depends_on(loss, p) {
                gopt.update(p, gr, &sl, &inputs)
            } else {
                (p.clone(), sl.clone())
            };
            new_params.push(np);
            for ((n, old), new) in slots.into_iter().zip(ns) {
                slot_states.push((n, old, new));
            }
        }
        let mut outs: Vec<&Tensor> = vec![loss];
        outs.extend(o.outputs.iter().copied());
        let grads_at = o.grads.then_some(outs.len());
        if o.grads {
            outs.extend(grads.iter());
        }
        let params_at = outs.len();
        outs.extend(new_params.iter());
        let slots_at = outs.len();
        outs.extend(slot_states.iter().map(|(_, _, n)| n));
        let globals_at = outs.len();
        outs.extend(new_globals.iter());
        // Buffers the forward updates (batch norm's running statistics).
        let updates = g.buffer_updates();
        let updates_at = outs.len();
        outs.extend(updates.iter().map(|(_, t)| t));
        // Pruned: inputs declared for other graphs (another batch size, eval-only
        // inputs) are not required by the step.
        let graph = g.build_pruned(&outs)?;
        let mut exe = Executable::compile_cached(&graph, o.compile)
            .map_err(|e| Error::Compile(Box::new(e)))?;
        let values = g.parameter_values();
        let value = |n: &str| values.iter().find(|(k, _)| k == n).map(|(_, a)| a.clone());
        // Every state with the output that replaces it and its initial value: the
        // parameters' current values, zeros for the slots, the optimiser's globals.
        let mut states: Vec<(String, usize, Array)> = Vec::new();
        for (i, (name, _)) in named.iter().enumerate() {
            let init = value(name).ok_or_else(|| Error::UnknownParameter { name: name.clone() })?;
            states.push((name.clone(), params_at + i, init));
        }
        for (i, (name, old, _)) in slot_states.iter().enumerate() {
            let ty = old.ty().unwrap_or_else(|| TensorType::new(DType::F32, [0]));
            states.push((
                name.clone(),
                slots_at + i,
                Array::full(ty.dtype, ty.shape, 0.0),
            ));
        }
        for (i, ((name, _), (_, init))) in globals.iter().zip(global_arrays(opt)).enumerate() {
            states.push((name.clone(), globals_at + i, init));
        }
        let mut bindings = Vec::with_capacity(states.len());
        for (name, out, init) in states {
            exe.bind_state(&name, out, init).map_err(exec)?;
            bindings.push((name, out));
        }
        let mut updated = Vec::with_capacity(updates.len());
        for (i, (name, _)) in updates.iter().enumerate() {
            let init = value(name).ok_or_else(|| Error::UnknownParameter { name: name.clone() })?;
            // A buffer the pruned step graph does not read is still written.
            exe.bind_state(name, updates_at + i, init).map_err(exec)?;
            updated.push(name.clone());
        }
        // Fed by value every step: buffers the step does not update, and frozen
        // parameters (in declaration order, after the buffers).
        let frozen = all
            .iter()
            .filter(|(n, _)| !named.iter().any(|(m, _)| m == n))
            .map(|(n, t)| (n.clone(), t.clone()));
        let buffers = g
            .named_buffers()
            .into_iter()
            .chain(frozen)
            .filter(|(n, _)| !updated.contains(n))
            .filter_map(|(n, _)| value(&n).map(|a| (n, a)))
            .collect();
        let accum = if o.accumulate {
            // Loss, the extra outputs (metrics of every micro-batch), the sums, the
            // updated buffers.
            let mut outs: Vec<&Tensor> = vec![loss];
            outs.extend(o.outputs.iter().copied());
            let sums: Vec<Tensor> = grads
                .iter()
                .zip(&acc_inputs)
                .map(|(gr, a)| gr + a)
                .collect();
            outs.extend(sums.iter());
            outs.extend(updates.iter().map(|(_, t)| t));
            // Pruned: the accumulation graph reads no optimiser input.
            let graph = g.build_pruned(&outs)?;
            let mut exe = Executable::compile_cached(&graph, o.compile)
                .map_err(|e| Error::Compile(Box::new(e)))?;
            let mut names = Vec::new();
            for (i, (name, _)) in named.iter().enumerate() {
                let n = format!("accum.{name}");
                let ty = acc_inputs[i]
                    .ty()
                    .unwrap_or_else(|| TensorType::new(DType::F32, [0]));
                let at = 1 + o.outputs.len() + i;
                exe.bind_state(&n, at, Array::full(ty.dtype, ty.shape, 0.0))
                    .map_err(exec)?;
                names.push(n);
            }
            Some(Accum { exe, names })
        } else {
            None
        };
        Ok(TrainStep {
            exe,
            optimizer: opt.name().to_string(),
            base_lrs: resolved.groups.iter().map(|(lr, _)| *lr).collect(),
            lrs: resolved
                .groups
                .iter()
                .enumerate()
                .map(|(i, (lr, _))| (lr_name(i), Array::scalar(DType::F64, *lr)))
                .collect(),
            buffers,
            n_extra: o.outputs.len(),
            grads_at,
            accum,
            last_accumulated: false,
            updated,
            steps: 0,
            compile: o.compile,
            version: next_version(),
            graph,
            bindings,
            n_params: named.len(),
            seed: StepSeed::new(g.seed_base()),
            index_checks: g.index_checks(),
            any: None,
        })
    }

    /// The parameters' names (the first bindings).
    fn params(&self) -> impl Iterator<Item = &String> {
        self.bindings[..self.n_params].iter().map(|(n, _)| n)
    }

    /// The optimiser state's names (the bindings after the parameters).
    fn opt_state(&self) -> impl Iterator<Item = &String> {
        self.bindings[self.n_params..].iter().map(|(n, _)| n)
    }

    /// One training step on a batch (`feeds`: the data inputs by name): forward, loss,
    /// backward, update. Returns the loss (before the update).
    pub fn step(&mut self, feeds: &[(&str, &Array)]) -> Result<f64> {
        self.serve(feeds)?;
        let fixed = self.any.is_none();
        check_feeds(&self.index_checks, feeds.iter().copied())?;
        let TrainStep {
            exe,
            buffers,
            lrs,
            accum,
            seed,
            ..
        } = self;
        let mut all: Vec<(&str, &Array)> = feeds.to_vec();
        {
            // Only what the (pruned) step graph reads.
            let wanted = |n: &str| exe.feeds().any(|(f, _)| f == n);
            for (n, a) in buffers.iter() {
                if wanted(n) {
                    all.push((n.as_str(), a));
                }
            }
            for (n, a) in lrs.iter() {
                if wanted(n) {
                    all.push((n.as_str(), a));
                }
            }
            if let Some(acc) = accum.as_ref() {
                for n in &acc.names {
                    if let Some(a) = acc.exe.state(n).filter(|_| wanted(n)) {
                        all.push((n.as_str(), a));
                    }
                }
            }
        }
        seed.feed(exe, &mut all);
        exe.run_in_place(&all).map_err(|e| {
            if fixed {
                any_batch::fixed_batch_hint(e, "TrainStep::any_batch")
            } else {
                exec(e)
            }
        })?;
        drop(all);
        if let Some(acc) = accum {
            for n in &acc.names {
                acc.exe.zero_state(n).map_err(exec)?;
            }
        }
        self.steps += 1;
        self.version = next_version();
        self.last_accumulated = false;
        self.loss()
    }

    /// Adds the gradients of one micro-batch to the accumulation buffers without
    /// updating (needs [`TrainOptions::accumulate`]); the next [`TrainStep::step`] adds
    /// its own gradient and applies the sum. Returns the micro-batch's loss.
    pub fn accumulate(&mut self, feeds: &[(&str, &Array)]) -> Result<f64> {
        self.serve(feeds)?;
        let fixed = self.any.is_none();
        check_feeds(&self.index_checks, feeds.iter().copied())?;
        let Some(acc) = &mut self.accum else {
            return Err(train_err(
                "accumulate needs TrainOptions { accumulate: true, .. }",
            ));
        };
        let mut all: Vec<(&str, &Array)> = feeds.to_vec();
        let wanted = |n: &str| acc.exe.feeds().any(|(f, _)| f == n);
        for (n, a) in &self.buffers {
            if wanted(n) {
                all.push((n.as_str(), a));
            }
        }
        let bound = self.bindings[..self.n_params].iter().map(|(n, _)| n);
        for n in bound.chain(&self.updated) {
            if let Some(a) = self.exe.state(n).filter(|_| wanted(n)) {
                all.push((n.as_str(), a));
            }
        }
        self.seed.feed(&acc.exe, &mut all);
        acc.exe.run_in_place(&all).map_err(|e| {
            if fixed {
                any_batch::fixed_batch_hint(e, "TrainStep::any_batch")
            } else {
                exec(e)
            }
        })?;
        drop(all);
        // Buffers updated by the forward (running statistics) advance with every
        // micro-batch, as PyTorch's forward does; they are outputs after the sums.
        let first = 1 + self.n_extra + acc.names.len();
        for (i, n) in self.updated.iter().enumerate() {
            let a = acc.exe.output_array(first + i);
            self.exe.set_state(n, a).map_err(exec)?;
        }
        self.version = next_version();
        self.last_accumulated = true;
        Ok(loss_of(&acc.exe))
    }

    /// The loss of the last step (or accumulation).
    pub fn loss(&self) -> Result<f64> {
        Ok(loss_of(self.last_run()))
    }

    /// The executable that ran last: the accumulation's after [`TrainStep::accumulate`].
    fn last_run(&self) -> &Executable {
        match &self.accum {
            Some(acc) if self.last_accumulated => &acc.exe,
            _ => &self.exe,
        }
    }

    /// Output `i` of the last step or accumulation: 0 is the loss, 1.. the extra
    /// outputs.
    pub fn output(&self, i: usize) -> Result<Array> {
        if i > self.n_extra {
            return Err(train_err(format!(
                "output {i} does not exist ({} extra outputs)",
                self.n_extra
            )));
        }
        Ok(self.last_run().output_array(i))
    }

    /// The gradient of parameter `name` in the last step (needs [`TrainOptions::grads`]):
    /// the step's own batch gradient, without the accumulated micro-batch gradients
    /// that [`TrainStep::step`] added before updating.
    pub fn grad(&self, name: &str) -> Result<Array> {
        let Some(at) = self.grads_at else {
            return Err(train_err(
                "gradients are output only with TrainOptions { grads: true, .. }",
            ));
        };
        let i = self
            .params()
            .position(|p| p == name)
            .ok_or_else(|| Error::UnknownParameter { name: name.into() })?;
        Ok(self.exe.output_array(at + i))
    }

    /// Sets the learning rate of the next steps (a graph input: nothing recompiles):
    /// the first parameter group's becomes `lr`, and every other group's moves by the
    /// same factor from its initial rate (`lr_i = base_i · lr / base_0`, as a PyTorch
    /// scheduler scales each group's initial rate; `lr` itself when `base_0` is 0).
    pub fn set_lr(&mut self, lr: f64) {
        let base0 = self.base_lrs[0];
        for (i, (_, a)) in self.lrs.iter_mut().enumerate() {
            let v = if i == 0 || base0 == 0.0 {
                lr
            } else {
                self.base_lrs[i] * (lr / base0)
            };
            *a = Array::scalar(DType::F64, v);
        }
    }

    /// Sets the learning rate of parameter group `group` only.
    pub fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        let n = self.lrs.len();
        let Some((_, a)) = self.lrs.get_mut(group) else {
            return Err(train_err(format!(
                "set_group_lr: no parameter group {group} ({n} groups)"
            )));
        };
        *a = Array::scalar(DType::F64, lr);
        Ok(())
    }

    /// The current learning rate (of the first parameter group).
    pub fn lr(&self) -> f64 {
        self.group_lr(0).unwrap_or(f64::NAN)
    }

    /// The current learning rate of parameter group `group`.
    pub fn group_lr(&self, group: usize) -> Option<f64> {
        let (_, a) = self.lrs.get(group)?;
        a.to_f64_vec().first().copied()
    }

    /// The number of parameter groups.
    pub fn groups(&self) -> usize {
        self.lrs.len()
    }

    /// The initial learning rate of the first parameter group (the base of schedules).
    pub fn base_lr(&self) -> f64 {
        self.base_lrs[0]
    }

    /// The weights version: changes whenever a parameter or buffer may have changed.
    pub fn weights_version(&self) -> u64 {
        self.version
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The current value of parameter, buffer or optimiser state `name`.
    pub fn value(&self, name: &str) -> Option<&Array> {
        if let Some((_, a)) = self.lrs.iter().find(|(n, _)| n == name) {
            return Some(a);
        }
        self.exe
            .state(name)
            .or_else(|| self.buffers.iter().find(|(n, _)| n == name).map(|(_, a)| a))
            .or_else(|| self.accum.as_ref().and_then(|a| a.exe.state(name)))
    }

    /// Names of the parameters this step updates, in declaration order.
    pub fn parameter_names(&self) -> impl Iterator<Item = &str> {
        self.params().map(String::as_str)
    }

    /// For each parameter, optimiser state and updated buffer: whether its update is
    /// written in place (no copy per step).
    pub fn in_place_report(&self) -> Vec<(String, bool)> {
        self.bindings
            .iter()
            .map(|(n, _)| n)
            .chain(&self.updated)
            .map(|n| (n.clone(), self.exe.state_in_place(n).unwrap_or(false)))
            .collect()
    }

    /// The whole state dict, for checkpoints: [`TrainStep::model_state_dict`] then
    /// [`TrainStep::optimizer_state_dict`].
    pub fn state_dict(&self) -> Vec<(String, Array)> {
        let mut out = self.model_state_dict();
        out.extend(self.optimizer_state_dict());
        out
    }

    /// The model's state dict (PyTorch's `model.state_dict()`): the parameters (updated
    /// and frozen) and buffers under their names, nothing else, so it loads into the
    /// PyTorch model with `load_state_dict(strict=True)`.
    pub fn model_state_dict(&self) -> Vec<(String, Array)> {
        let mut out = Vec::new();
        let state = |n: &String| self.exe.state(n).map(|a| (n.clone(), a.clone()));
        out.extend(self.params().filter_map(state));
        out.extend(self.buffers.iter().cloned());
        out.extend(self.updated.iter().filter_map(state));
        out
    }

    /// The optimiser's state dict: its state under `optim.<param>.<slot>` and
    /// `optim.<global>`, and each parameter group's learning rate (`optim.lr`,
    /// `optim.lr.<i>`).
    pub fn optimizer_state_dict(&self) -> Vec<(String, Array)> {
        let mut out: Vec<(String, Array)> = self
            .opt_state()
            .filter_map(|n| self.exe.state(n).map(|a| (n.clone(), a.clone())))
            .collect();
        out.extend(self.lrs.iter().cloned());
        out
    }

    /// Loads a state dict. Every parameter and buffer must be present with its dtype and
    /// shape; optimiser entries are loaded when present (absent ones keep their value,
    /// so PyTorch model weights alone load fine); unknown names are an error when
    /// `strict`.
    pub fn load_state_dict(&mut self, dict: &[(String, Array)], strict: bool) -> Result<()> {
        let find = |n: &str| dict.iter().find(|(k, _)| k == n).map(|(_, a)| a);
        let buffers = self.buffers.iter().map(|(n, _)| n).chain(&self.updated);
        for n in self.params().chain(buffers) {
            if find(n).is_none() {
                return Err(Error::StateDict {
                    name: n.clone(),
                    reason: "missing from the state dict".into(),
                });
            }
        }
        if strict {
            for (k, _) in dict {
                let known = self.bindings.iter().any(|(n, _)| n == k)
                    || self.buffers.iter().any(|(n, _)| n == k)
                    || self.updated.contains(k)
                    || self.lrs.iter().any(|(n, _)| n == k);
                if !known {
                    return Err(Error::StateDict {
                        name: k.clone(),
                        reason: "is not a parameter, buffer or optimiser state of this model"
                            .into(),
                    });
                }
            }
        }
        // Check every entry before changing anything (all or nothing).
        for (k, a) in dict {
            let cur = self
                .buffers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, a)| a)
                .or_else(|| self.exe.state(k));
            if let Some(cur) = cur {
                check_type(k, cur, a)?;
            } else if self.lrs.iter().any(|(n, _)| n == k) && a.numel() != 1 {
                return Err(Error::StateDict {
                    name: k.clone(),
                    reason: format!("must be a scalar, got shape {:?}", a.shape().dims()),
                });
            }
        }
        self.version = next_version();
        for (k, a) in dict {
            if let Some((_, lr)) = self.lrs.iter_mut().find(|(n, _)| n == k) {
                if a.numel() == 1 {
                    *lr = Array::scalar(DType::F64, a.to_f64_vec()[0]);
                }
                continue;
            }
            if let Some(slot) = self.buffers.iter_mut().find(|(n, _)| n == k) {
                check_type(k, &slot.1, a)?;
                slot.1 = a.clone();
            } else if self.exe.state(k).is_some() {
                self.exe
                    .set_state(k, a.clone())
                    .map_err(|e| Error::StateDict {
                        name: k.clone(),
                        reason: e.to_string(),
                    })?;
            }
        }
        Ok(())
    }

    /// Compiles `outputs` (e.g. the eval-mode forward) as an [`Evaluator`] that reads
    /// this step's parameters in place (same compilation options as the step).
    pub fn evaluator(&self, g: &GraphBuilder, outputs: &[&Tensor]) -> Result<Evaluator> {
        let graph = g.build_pruned(outputs)?;
        let exe = Executable::compile_cached(&graph, self.compile)
            .map_err(|e| Error::Compile(Box::new(e)))?;
        let known = g.input_names();
        // Its own seeds, apart from the step's (`seed_base` differs by 2⁵⁰).
        let seed = StepSeed::new(g.seed_base().wrapping_add(1 << 50));
        Ok(Evaluator::new(exe, known, self, seed, g.index_checks()))
    }

    /// The step graph (before optimisation): inputs are the data, parameters,
    /// optimiser state and `optim.lr`; see [`TrainStep::bindings`] for which output
    /// replaces which state. Running it on the interpreter is the reference for the
    /// compiled step.
    pub fn graph(&self) -> &onde_ir::Graph {
        &self.graph
    }

    /// The state bindings: (feed name, index of the output that replaces it).
    pub fn bindings(&self) -> &[(String, usize)] {
        &self.bindings
    }

    /// The training executable (plan dump, compile time).
    pub fn executable(&self) -> &Executable {
        &self.exe
    }

    /// Starts (and resets) or stops timing each compiled step of every run
    /// ([`Executable::set_profiling`]); read it with [`Self::profile`].
    pub fn set_profiling(&mut self, on: bool) {
        self.exe.set_profiling(on);
    }

    /// Time per compiled step since profiling started ([`Executable::profile`]).
    pub fn profile(&self) -> Option<String> {
        self.exe.profile()
    }

    /// The optimiser's name.
    pub fn optimizer(&self) -> &str {
        &self.optimizer
    }
}

/// Output 0 (the loss) of the last run of `exe`.
fn loss_of(exe: &Executable) -> f64 {
    exe.output_array(0)
        .to_f64_vec()
        .first()
        .copied()
        .unwrap_or(f64::NAN)
}

fn check_type(name: &str, want: &Array, got: &Array) -> Result<()> {
    let (w, g) = (
        TensorType::new(want.dtype(), want.shape().clone()),
        TensorType::new(got.dtype(), got.shape().clone()),
    );
    if w != g {
        return Err(Error::StateDict {
            name: name.into(),
            reason: format!("expected {w}, got {g}"),
        });
    }
    Ok(())
}
