//! Compiling a built graph to machine code: [`GraphBuilder::compile`] returns a
//! [`Compiled`] graph that runs on the JIT (`onde_codegen::Executable`) and feeds the
//! builder's parameter values automatically.

use crate::builder::GraphBuilder;
use crate::error::{Error, Result};
use crate::feed_check::{check_feeds, IndexCheck};
use crate::step_seed::StepSeed;
use crate::tensor::Tensor;
use onde_codegen::{CompileOptions, Executable};
use onde_ir::Array;

/// A graph compiled by [`GraphBuilder::compile`].
#[derive(Debug)]
pub struct Compiled {
    exe: Executable,
    params: Vec<(String, Array)>,
    seed: StepSeed,
    index_checks: Vec<IndexCheck>,
}

impl GraphBuilder {
    /// Builds the graph with `outputs` and compiles it (cached per graph and shapes).
    pub fn compile(&self, outputs: &[&Tensor]) -> Result<Compiled> {
        self.compile_with(outputs, CompileOptions::default())
    }

    /// [`GraphBuilder::compile`] of only what `outputs` need: inputs declared for
    /// other graphs of this builder need no feed.
    pub(crate) fn compile_pruned(&self, outputs: &[&Tensor]) -> Result<Compiled> {
        self.compiled(self.build_pruned(outputs)?, CompileOptions::default())
    }

    /// [`GraphBuilder::compile`] with options (threads, CLIF capture).
    pub fn compile_with(&self, outputs: &[&Tensor], opts: CompileOptions) -> Result<Compiled> {
        self.compiled(self.build(outputs)?, opts)
    }

    /// Compiles `g`, fed with this builder's values of the parameters it reads.
    fn compiled(&self, g: onde_ir::Graph, opts: CompileOptions) -> Result<Compiled> {
        let exe = Executable::compile_cached(&g, opts).map_err(|e| Error::Compile(Box::new(e)))?;
        let params = self
            .parameter_values()
            .into_iter()
            .filter(|(n, _)| exe.feeds().any(|(f, _)| f == n))
            .collect();
        Ok(Compiled {
            exe,
            params,
            seed: StepSeed::new(self.seed_base()),
            index_checks: self.index_checks(),
        })
    }
}

impl Compiled {
    /// Runs on the named inputs (parameters are fed from the builder's values at
    /// compile time, or as updated with [`Compiled::set_parameter`]). A graph reading
    /// the step seed (dropout in train mode) gets a new one every run unless fed.
    pub fn run(&mut self, feeds: &[(&str, Array)]) -> Result<Vec<Array>> {
        check_feeds(&self.index_checks, feeds.iter().map(|(n, a)| (*n, a)))?;
        let mut all: Vec<(&str, &Array)> = feeds.iter().map(|(n, a)| (*n, a)).collect();
        for (n, a) in &self.params {
            if !feeds.iter().any(|(f, _)| f == n) {
                all.push((n.as_str(), a));
            }
        }
        self.seed.feed(&self.exe, &mut all);
        self.exe.run(&all).map_err(|e| Error::Exec(Box::new(e)))
    }

    /// Replaces a parameter value fed to later runs.
    pub fn set_parameter(&mut self, name: &str, value: Array) -> Result<()> {
        match self.params.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => Err(Error::UnknownParameter { name: name.into() }),
        }
    }

    /// The underlying executable (plan dump, CLIF, compile time).
    pub fn executable(&self) -> &Executable {
        &self.exe
    }

    /// The underlying executable, mutably (per-step profiling:
    /// [`Executable::set_profiling`]).
    pub fn executable_mut(&mut self) -> &mut Executable {
        &mut self.exe
    }
}
