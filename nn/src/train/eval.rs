//! [`Evaluator`]: a second executable (e.g. the eval-mode forward) fed with a
//! [`TrainStep`]'s parameter buffers by reference, so it always sees the current
//! weights without a copy.

use super::{exec, TrainStep};
use crate::error::Result;
use crate::feed_check::{check_feeds, IndexCheck};
use crate::step_seed::StepSeed;
use onde_codegen::Executable;
use onde_ir::Array;

/// A compiled graph fed with a [`TrainStep`]'s current parameters (no copy).
#[derive(Debug)]
pub struct Evaluator {
    exe: Executable,
    /// Every input name of the builder: feeds of the training graph that this graph
    /// does not use (labels) are ignored, unknown names are errors.
    known: Vec<String>,
    /// The feeds a training step provides (parameters, buffers), found once.
    from_step: Vec<String>,
    /// Step seeds (a train-mode graph with dropout draws new masks every run).
    seed: StepSeed,
    /// Class-index inputs checked before each run ([`crate::feed_check`]).
    index_checks: Vec<IndexCheck>,
    /// Made by [`TrainStep::evaluator_any_batch`]: the other batch sizes.
    pub(super) any: Option<super::any_batch::EvalAny>,
}

impl Evaluator {
    pub(super) fn new(
        exe: Executable,
        known: Vec<String>,
        step: &TrainStep,
        seed: StepSeed,
        index_checks: Vec<IndexCheck>,
    ) -> Evaluator {
        let from_step = exe
            .feeds()
            .map(|(n, _)| n)
            .filter(|n| step.value(n).is_some())
            .map(String::from)
            .collect();
        Evaluator {
            exe,
            known,
            from_step,
            seed,
            index_checks,
            any: None,
        }
    }

    /// Exchanges the compiled graph (and what depends on it) with `other`'s.
    pub(super) fn swap_compiled(&mut self, other: &mut Evaluator) {
        std::mem::swap(&mut self.exe, &mut other.exe);
        std::mem::swap(&mut self.known, &mut other.known);
        std::mem::swap(&mut self.from_step, &mut other.from_step);
        std::mem::swap(&mut self.index_checks, &mut other.index_checks);
    }

    /// Runs on `feeds` with `step`'s parameters and buffers; returns the outputs.
    pub fn run(&mut self, step: &TrainStep, feeds: &[(&str, &Array)]) -> Result<Vec<Array>> {
        self.run_in_place(step, feeds)?;
        Ok((0..self.exe.plan().outputs.len())
            .map(|i| self.exe.output_array(i))
            .collect())
    }

    /// Like [`Evaluator::run`] without copying the outputs out (read them with
    /// [`Evaluator::executable`]`().output_f32(i)`).
    pub fn run_in_place(&mut self, step: &TrainStep, feeds: &[(&str, &Array)]) -> Result<()> {
        self.serve(step, feeds)?;
        let fixed = self.any.is_none();
        check_feeds(&self.index_checks, feeds.iter().copied())?;
        let mut all: Vec<(&str, &Array)> = Vec::with_capacity(feeds.len());
        for &(n, a) in feeds {
            if self.exe.feeds().any(|(f, _)| f == n) {
                all.push((n, a));
            } else if !self.known.iter().any(|k| k == n) {
                return Err(exec(onde_codegen::RunError::UnknownFeed { name: n.into() }));
            }
        }
        // The step's values, unless the caller fed one explicitly.
        let mut weights: Vec<&str> = Vec::with_capacity(self.from_step.len());
        for n in &self.from_step {
            if feeds.iter().any(|(f, _)| f == n) {
                continue;
            }
            if let Some(a) = step.value(n) {
                all.push((n.as_str(), a));
                weights.push(n.as_str());
            }
        }
        self.seed.feed(&self.exe, &mut all);
        // The step's parameters change only when its version does: their packed form
        // is reused between calls (small-batch inference).
        self.exe
            .run_in_place_versioned(&all, step.weights_version(), &weights)
            .map_err(|e| {
                if fixed {
                    super::any_batch::fixed_batch_hint(e, "TrainStep::evaluator_any_batch")
                } else {
                    exec(e)
                }
            })
    }

    /// The executable.
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
}
