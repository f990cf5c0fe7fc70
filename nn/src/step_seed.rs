//! Feeding the step seed ([`crate::GraphBuilder::step_seed`]): every run of a
//! [`crate::TrainStep`], [`crate::Evaluator`] or [`crate::Compiled`] whose graph reads the
//! seed input gets a new value (the builder's seed base plus a run counter), unless the
//! caller feeds one (to replay a step). The value is a graph input, so a new mask per
//! step costs no recompilation.

use crate::builder::STEP_SEED;
use onde_codegen::Executable;
use onde_ir::Array;

/// The seed values of successive runs.
#[derive(Debug, Clone)]
pub(crate) struct StepSeed {
    base: i64,
    runs: i64,
    value: Array,
}

impl StepSeed {
    pub(crate) fn new(base: i64) -> StepSeed {
        StepSeed {
            base,
            runs: 0,
            value: Array::scalar_i64(base),
        }
    }

    /// Adds the next seed to `all` if `exe` reads the seed and the caller did not feed
    /// it.
    pub(crate) fn feed<'a>(&'a mut self, exe: &Executable, all: &mut Vec<(&'a str, &'a Array)>) {
        let wanted = exe.feeds().any(|(f, _)| f == STEP_SEED);
        if !wanted || all.iter().any(|(n, _)| *n == STEP_SEED) {
            return;
        }
        self.value = Array::scalar_i64(self.base.wrapping_add(self.runs));
        self.runs = self.runs.wrapping_add(1);
        all.push((STEP_SEED, &self.value));
    }
}
