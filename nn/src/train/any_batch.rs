//! Any batch size: a [`TrainStep`] or [`Evaluator`] made with a function that builds
//! the model's graph for a given batch size ([`TrainStep::any_batch`],
//! [`TrainStep::evaluator_any_batch`]) compiles one executable per batch size it is
//! fed, on demand, and keeps each (a partial last batch compiles once per run, not
//! once per epoch).
//!
//! Why a build function and not a symbolic dimension in the IR: shapes are concrete
//! everywhere below the builder (fusion, memory planning and codegen specialise on
//! them, which is where the speed comes from), and the user's code computes shapes
//! from sizes (a reshape to `[B·T, C]`), so the honest way to get the graph for another
//! batch is to run that code again. The build function declares the inputs at the
//! batch size it is given and applies the model built once outside it (same builder,
//! same parameters): the graphs of every batch size share the parameters by name.
//!
//! One step owns the state: the parameters, buffers and optimiser state live in the
//! executable of the batch size that ran last; switching to another batch size swaps
//! the state arrays between the two executables (no copy). The learning rates, frozen
//! parameters, step count and step seed are the step's own, whatever the batch size.
//!
//! Which batch a feed asks for: a feed whose shape differs from the compiled input's in
//! one axis only, that axis being the input's first of the compiled batch size (so
//! `[B, T, F]` and `[T, B, F]` inputs both work, unless T equals the batch); any other
//! difference is the run's typed error, before anything is compiled.

use super::{exec, next_version, Evaluator, TrainStep};
use crate::builder::GraphBuilder;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use onde_codegen::Executable;
use onde_ir::Array;

/// Builds a training step for a batch size.
pub(super) type BuildStep = Box<dyn FnMut(usize) -> Result<TrainStep>>;
/// Builds an evaluator's outputs for a batch size.
pub(super) type BuildOutputs = Box<dyn FnMut(usize) -> Result<Vec<Tensor>>>;

/// A training step's batch sizes: the active one, the others compiled so far (their
/// executables hold stale state until switched to), and the build function.
pub(super) struct AnyBatch {
    pub(super) batch: usize,
    pub(super) spares: Vec<(usize, TrainStep)>,
    pub(super) build: BuildStep,
    /// The model's builder: its pending buffer updates are cleared before each build,
    /// so a batch norm's running-statistics update of one batch size does not chain
    /// onto another's ([`GraphBuilder::latest_buffer`]).
    pub(super) g: GraphBuilder,
}

impl std::fmt::Debug for AnyBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let spares: Vec<usize> = self.spares.iter().map(|(b, _)| *b).collect();
        f.debug_struct("AnyBatch")
            .field("batch", &self.batch)
            .field("spares", &spares)
            .finish()
    }
}

/// An evaluator's batch sizes.
pub(super) struct EvalAny {
    pub(super) batch: usize,
    pub(super) spares: Vec<(usize, Evaluator)>,
    pub(super) build: BuildOutputs,
}

impl std::fmt::Debug for EvalAny {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let spares: Vec<usize> = self.spares.iter().map(|(b, _)| *b).collect();
        f.debug_struct("EvalAny")
            .field("batch", &self.batch)
            .field("spares", &spares)
            .finish()
    }
}

/// The active batch size and the spares', ascending.
fn sorted_sizes(active: usize, spares: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut all: Vec<usize> = std::iter::once(active).chain(spares).collect();
    all.sort_unstable();
    all
}

/// The batch size `feeds` ask of `exe` (compiled for `batch`): `None` when every feed
/// fits, or when no batch size would make them fit (the run then reports the feed).
pub(super) fn requested_batch(
    exe: &Executable,
    feeds: &[(&str, &Array)],
    batch: usize,
) -> Option<usize> {
    let mut want = None;
    for &(name, a) in feeds {
        let Some((_, ty)) = exe.feeds().find(|(n, _)| *n == name) else {
            continue;
        };
        let fed = a.shape().dims();
        let compiled = ty.shape.dims();
        if a.dtype() != ty.dtype || fed.len() != compiled.len() {
            return None;
        }
        let Some(axis) = (0..fed.len()).find(|&i| fed[i] != compiled[i]) else {
            continue;
        };
        // The batch axis of an input is its first axis of the compiled batch size; a
        // difference elsewhere (a feature size equal to the batch) is not a new batch,
        // and neither is a second difference.
        let batch_axis = compiled.iter().position(|&d| d == batch);
        let only_one = (axis + 1..fed.len()).all(|i| fed[i] == compiled[i]);
        if batch_axis != Some(axis) || !only_one || fed[axis] == 0 {
            return None;
        }
        match want {
            None => want = Some(fed[axis]),
            Some(b) if b == fed[axis] => {}
            Some(_) => return None,
        }
    }
    want
}

/// The error of a feed the compiled graph cannot take, with what to do when the
/// graph has one batch size.
pub(super) fn fixed_batch_hint(e: onde_codegen::RunError, how: &str) -> Error {
    if matches!(e, onde_codegen::RunError::FeedType { .. }) {
        return Error::Train {
            reason: format!(
                "{e}. The graph was compiled for one batch size: build it with {how} to run \
                 it at any batch size, or keep batches of that size (DataLoader::drop_last)"
            ),
        };
    }
    exec(e)
}

impl TrainStep {
    /// A training step for any batch size: `build(b)` declares the inputs for batch
    /// size `b` in the model's builder `g`, applies the model (built once, outside) and
    /// returns `TrainStep::with_options(..)` of its loss; it is called now for `batch`,
    /// then once for each other batch size [`TrainStep::step`] is fed (the partial last
    /// batch of an epoch, an evaluation batch), and every compiled size is kept. The
    /// parameters and optimiser state are shared by all (see [`crate::train`]).
    ///
    /// ```
    /// use onde_nn::loss::{cross_entropy, NllOpts};
    /// use onde_nn::module::{Linear, Module};
    /// use onde_nn::{optim::Sgd, Array, DType, GraphBuilder, TrainStep};
    /// let g = GraphBuilder::new();
    /// let model = Linear::new(&g, "fc", 8, 3);
    /// let h = g.clone();
    /// let mut step = TrainStep::any_batch(&h, 4, move |b| {
    ///     let x = g.input("x", DType::F32, [b, 8]);
    ///     let y = g.input("y", DType::I64, [b]);
    ///     let loss = cross_entropy(&model.forward(&x), &y, &NllOpts::default());
    ///     TrainStep::new(&g, &loss, &Sgd::new(0.1))
    /// })?;
    /// for b in [4, 4, 3] {
    ///     let x = Array::f32([b, 8], vec![0.5; b * 8])?;
    ///     let y = Array::i64([b], vec![1; b])?;
    ///     step.step(&[("x", &x), ("y", &y)])?;
    /// }
    /// assert_eq!(step.compiled_batch_sizes(), vec![3, 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A zero batch size, `build`'s own error, or (for a later batch size) a step whose
    /// parameters, buffers or optimiser differ from the first one's.
    pub fn any_batch(
        g: &GraphBuilder,
        batch: usize,
        mut build: impl FnMut(usize) -> Result<TrainStep> + 'static,
    ) -> Result<TrainStep> {
        if batch == 0 {
            return Err(Error::Train {
                reason: "any_batch: the batch size must be at least 1".into(),
            });
        }
        g.clear_buffer_updates();
        let mut step = build(batch)?;
        step.any = Some(AnyBatch {
            batch,
            spares: Vec::new(),
            build: Box::new(build),
            g: g.clone(),
        });
        Ok(step)
    }

    /// The batch size of the executable that runs next (`None` for a step made without
    /// [`TrainStep::any_batch`]).
    pub fn batch_size(&self) -> Option<usize> {
        self.any.as_ref().map(|a| a.batch)
    }

    /// Every batch size compiled so far, ascending (empty without
    /// [`TrainStep::any_batch`]).
    pub fn compiled_batch_sizes(&self) -> Vec<usize> {
        self.any.as_ref().map_or_else(Vec::new, |any| {
            sorted_sizes(any.batch, any.spares.iter().map(|(b, _)| *b))
        })
    }

    /// Makes the executable for the batch size `feeds` ask for the active one
    /// (compiling it the first time), carrying the state over.
    pub(super) fn serve(&mut self, feeds: &[(&str, &Array)]) -> Result<()> {
        let Some(mut any) = self.any.take() else {
            return Ok(());
        };
        let r = self.serve_with(&mut any, feeds);
        self.any = Some(any);
        r
    }

    fn serve_with(&mut self, any: &mut AnyBatch, feeds: &[(&str, &Array)]) -> Result<()> {
        let Some(b) = requested_batch(&self.exe, feeds, any.batch) else {
            return Ok(());
        };
        let i = match any.spares.iter().position(|(s, _)| *s == b) {
            Some(i) => i,
            None => {
                any.g.clear_buffer_updates();
                let v = (any.build)(b)?;
                self.check_same_state(&v, b)?;
                any.spares.push((b, v));
                any.spares.len() - 1
            }
        };
        let (sb, spare) = &mut any.spares[i];
        std::mem::swap(&mut any.batch, sb);
        // The compiled parts change places; the state moves into the new active one.
        std::mem::swap(&mut self.exe, &mut spare.exe);
        std::mem::swap(&mut self.accum, &mut spare.accum);
        std::mem::swap(&mut self.graph, &mut spare.graph);
        std::mem::swap(&mut self.index_checks, &mut spare.index_checks);
        std::mem::swap(&mut self.grads_at, &mut spare.grads_at);
        std::mem::swap(&mut self.n_extra, &mut spare.n_extra);
        std::mem::swap(&mut self.bindings, &mut spare.bindings);
        let names = self.bindings.iter().map(|(n, _)| n).chain(&self.updated);
        for n in names {
            self.exe.swap_state_with(&mut spare.exe, n).map_err(exec)?;
        }
        if let (Some(a), Some(s)) = (self.accum.as_mut(), spare.accum.as_mut()) {
            for n in &a.names {
                a.exe.swap_state_with(&mut s.exe, n).map_err(exec)?;
            }
        }
        self.last_accumulated = false;
        self.version = next_version();
        Ok(())
    }

    /// `v` (built for batch size `b`) has this step's parameters, buffers and optimiser.
    fn check_same_state(&self, v: &TrainStep, b: usize) -> Result<()> {
        let names = |s: &TrainStep| -> Vec<String> {
            s.bindings
                .iter()
                .map(|(n, _)| n.clone())
                .chain(s.updated.iter().cloned())
                .chain(s.buffers.iter().map(|(n, _)| n.clone()))
                .chain(s.lrs.iter().map(|(n, _)| n.clone()))
                .collect()
        };
        let (mine, theirs) = (names(self), names(v));
        if mine != theirs
            || self.optimizer != v.optimizer
            || v.accum.is_some() != self.accum.is_some()
        {
            let only: Vec<&String> = theirs.iter().filter(|n| !mine.contains(n)).collect();
            let missing: Vec<&String> = mine.iter().filter(|n| !theirs.contains(n)).collect();
            return Err(Error::Train {
                reason: format!(
                    "any_batch: the step built for batch size {b} does not have the state of \
                     the first one (optimiser {} vs {}, accumulation {} vs {}; new names \
                     {only:?}, missing {missing:?}): build the model once outside the \
                     function and only declare inputs and apply it inside",
                    v.optimizer,
                    self.optimizer,
                    v.accum.is_some(),
                    self.accum.is_some()
                ),
            });
        }
        Ok(())
    }

    /// An evaluator for any batch size: `build(b)` declares the inputs for batch size
    /// `b` and returns the outputs (e.g. the eval-mode logits and loss) in the step's
    /// builder; called now for `batch` and once for each other batch size it is fed.
    /// Reads this step's current parameters like [`TrainStep::evaluator`].
    ///
    /// # Errors
    /// A zero batch size, `build`'s error or no output, or what
    /// [`TrainStep::evaluator`] refuses.
    pub fn evaluator_any_batch(
        &self,
        batch: usize,
        mut build: impl FnMut(usize) -> Result<Vec<Tensor>> + 'static,
    ) -> Result<Evaluator> {
        if batch == 0 {
            return Err(Error::Train {
                reason: "evaluator_any_batch: the batch size must be at least 1".into(),
            });
        }
        let mut ev = self.evaluator_of(&build(batch)?)?;
        ev.any = Some(EvalAny {
            batch,
            spares: Vec::new(),
            build: Box::new(build),
        });
        Ok(ev)
    }

    /// The evaluator of `outputs` (of one builder).
    pub(super) fn evaluator_of(&self, outputs: &[Tensor]) -> Result<Evaluator> {
        let Some(first) = outputs.first() else {
            return Err(Error::Train {
                reason: "an evaluator needs at least one output".into(),
            });
        };
        let g = first.builder().clone();
        let refs: Vec<&Tensor> = outputs.iter().collect();
        self.evaluator(&g, &refs)
    }
}

impl Evaluator {
    /// Makes the executable for the batch size `feeds` ask for the active one.
    pub(super) fn serve(&mut self, step: &TrainStep, feeds: &[(&str, &Array)]) -> Result<()> {
        let Some(mut any) = self.any.take() else {
            return Ok(());
        };
        let r = (|| {
            let Some(b) = requested_batch(self.executable(), feeds, any.batch) else {
                return Ok(());
            };
            let i = match any.spares.iter().position(|(s, _)| *s == b) {
                Some(i) => i,
                None => {
                    let outs = (any.build)(b)?;
                    any.spares.push((b, step.evaluator_of(&outs)?));
                    any.spares.len() - 1
                }
            };
            let (sb, spare) = &mut any.spares[i];
            std::mem::swap(&mut any.batch, sb);
            self.swap_compiled(spare);
            Ok(())
        })();
        self.any = Some(any);
        r
    }

    /// The batch size of the executable that runs next (`None` without
    /// [`TrainStep::evaluator_any_batch`]).
    pub fn batch_size(&self) -> Option<usize> {
        self.any.as_ref().map(|a| a.batch)
    }

    /// Every batch size compiled so far, ascending.
    pub fn compiled_batch_sizes(&self) -> Vec<usize> {
        self.any.as_ref().map_or_else(Vec::new, |any| {
            sorted_sizes(any.batch, any.spares.iter().map(|(b, _)| *b))
        })
    }
}
