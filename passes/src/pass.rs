//! The pass machinery.
//!
//! A [`Pass`] has a name and rewrites a graph in place, reporting whether it changed
//! anything. A [`Pipeline`] runs passes in the order they were added — the whole
//! pipeline reads top to bottom where it is built — verifies the graph after each pass
//! (always in debug builds, on request in release builds) and calls a dump hook after
//! the passes named in [`Pipeline::dump_after`]. [`Fixpoint`] reruns a group of passes
//! until none changes the graph.

use onde_ir::{verify, Graph, VerifyError};
use std::fmt;

/// A pass failed, or left a graph the verifier rejects.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PassError {
    /// The pass reported an error.
    #[error("pass {pass}: {message}")]
    Failed {
        /// The pass name.
        pass: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The graph failed verification after the pass.
    #[error("graph invalid after pass {pass}: {error}")]
    Verify {
        /// The pass name.
        pass: &'static str,
        /// The verifier's finding.
        error: VerifyError,
    },
    /// A fixpoint did not converge.
    #[error("fixpoint {name} did not converge in {iterations} iterations")]
    NoFixpoint {
        /// The fixpoint's name.
        name: &'static str,
        /// Iterations run.
        iterations: usize,
    },
}

/// A graph-to-graph transformation.
pub trait Pass {
    /// A short, stable name (used by `--stage` and dump hooks).
    fn name(&self) -> &'static str;
    /// Rewrites `g`; returns whether anything changed.
    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError>;
}

type DumpHook = Box<dyn FnMut(&str, &Graph)>;

/// Passes run in sequence.
#[derive(Default)]
pub struct Pipeline {
    passes: Vec<Box<dyn Pass>>,
    dump_after: Vec<String>,
    hook: Option<DumpHook>,
    verify_each: bool,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("passes", &self.names())
            .field("dump_after", &self.dump_after)
            .field("verify_each", &self.verify_each)
            .finish()
    }
}

impl Pipeline {
    /// An empty pipeline that verifies after each pass in debug builds.
    pub fn new() -> Pipeline {
        Pipeline {
            verify_each: cfg!(debug_assertions),
            ..Pipeline::default()
        }
    }

    /// Appends a pass.
    pub fn then(mut self, p: impl Pass + 'static) -> Pipeline {
        self.passes.push(Box::new(p));
        self
    }

    /// Verifies after every pass, also in release builds.
    pub fn verify_each(mut self, on: bool) -> Pipeline {
        self.verify_each = on;
        self
    }

    /// Calls `hook(pass_name, graph)` after each pass whose name is in `names`
    /// (`"*"` for every pass; `"input"` for the graph before the first pass).
    pub fn dump_after(
        mut self,
        names: &[&str],
        hook: impl FnMut(&str, &Graph) + 'static,
    ) -> Pipeline {
        self.dump_after = names.iter().map(|s| s.to_string()).collect();
        self.hook = Some(Box::new(hook));
        self
    }

    /// The pass names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    fn wants(&self, name: &str) -> bool {
        self.dump_after.iter().any(|n| n == name || n == "*")
    }

    /// Runs every pass in order. Returns whether any pass changed the graph.
    pub fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        if self.wants("input") {
            if let Some(h) = &mut self.hook {
                h("input", g);
            }
        }
        let mut changed = false;
        for i in 0..self.passes.len() {
            let name = self.passes[i].name();
            changed |= self.passes[i].run(g)?;
            if self.verify_each {
                verify(g).map_err(|error| PassError::Verify { pass: name, error })?;
            }
            if self.wants(name) {
                if let Some(h) = &mut self.hook {
                    h(name, g);
                }
            }
        }
        Ok(changed)
    }
}

/// Reruns its passes until none changes the graph (at most `max_iterations` rounds).
pub struct Fixpoint {
    name: &'static str,
    passes: Vec<Box<dyn Pass>>,
    max_iterations: usize,
}

impl fmt::Debug for Fixpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.passes.iter().map(|p| p.name()).collect();
        f.debug_struct("Fixpoint")
            .field("name", &self.name)
            .field("passes", &names)
            .finish()
    }
}

impl Fixpoint {
    /// A named fixpoint group of at most `max_iterations` rounds.
    pub fn new(name: &'static str, max_iterations: usize) -> Fixpoint {
        Fixpoint {
            name,
            passes: Vec::new(),
            max_iterations,
        }
    }

    /// Appends a pass to the group.
    pub fn then(mut self, p: impl Pass + 'static) -> Fixpoint {
        self.passes.push(Box::new(p));
        self
    }
}

impl Pass for Fixpoint {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        let mut any = false;
        for _ in 0..self.max_iterations {
            let mut changed = false;
            for p in &mut self.passes {
                changed |= p.run(g)?;
            }
            if !changed {
                return Ok(any);
            }
            any = true;
        }
        Err(PassError::NoFixpoint {
            name: self.name,
            iterations: self.max_iterations,
        })
    }
}
