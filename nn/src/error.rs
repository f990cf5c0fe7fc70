//! Errors of the graph-building API.
//!
//! ## How errors surface with operator overloading
//! `a + b` cannot return a `Result` without making every expression noisy, so every
//! op returns a [`Tensor`](crate::Tensor) and a failing op returns a *poisoned* tensor
//! that carries the error. Ops on a poisoned tensor propagate the first error without
//! adding nodes, and the builder remembers the first error too. The error surfaces:
//! - at [`Tensor::check`](crate::Tensor::check), which a user can call with `?` right
//!   after any op to fail early;
//! - at [`GraphBuilder::build`](crate::GraphBuilder::build) and
//!   [`GraphBuilder::run`](crate::GraphBuilder::run), which refuse a graph in which any
//!   op failed, even one whose result is unused, so nothing fails silently.
//!
//! Every error names the op as the user called it, the operand types (dtype and
//! shape) and the user's `file:line:column`, recorded with `#[track_caller]`.

use onde_ir::{SourceLoc, TensorType};

/// An error of the graph-building API.
///
/// `Debug` prints the message (as `Display`), so `fn main() -> onde::Result<()>`
/// reports `Error: model.rs:12:9: matmul: …` rather than a struct dump; match on the
/// variants for the fields.
#[derive(Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An op was called with operands or arguments it cannot take.
    #[error("{}", fmt_op(.op, .reason, .operands, .loc))]
    Op {
        /// The op as the user called it (`matmul`, `cat`, `add`…).
        op: &'static str,
        /// What is wrong.
        reason: String,
        /// The operand types.
        operands: Vec<TensorType>,
        /// Where the user called it.
        loc: SourceLoc,
    },
    /// A layer of a model failed: raised by containers
    /// ([`crate::module::Sequential`]) and [`crate::module::summarize`], which call
    /// layers through `dyn Module`, where `#[track_caller]` locations stop at the
    /// layer's `forward`; names the layer by its dotted path (the innermost container's
    /// child: `blocks.1.dw`). [`Error::loc`] is the inner error's.
    #[error("layer `{path}` ({kind}) on input {input:?}: {source}")]
    Layer {
        /// Dotted name of the layer (`blocks.2.dw`).
        path: String,
        /// The layer's type.
        kind: &'static str,
        /// The shape it was given.
        input: Vec<usize>,
        /// The layer's own error.
        source: Box<Error>,
    },
    /// Tensors from two different builders were combined.
    #[error("{loc}: {op}: operands belong to different graph builders")]
    MixedBuilders {
        /// The op.
        op: &'static str,
        /// Where the user called it.
        loc: SourceLoc,
    },
    /// A name was declared twice.
    #[error("{loc}: {what} name {name:?} is already used in this graph")]
    DuplicateName {
        /// `input` or `parameter`.
        what: &'static str,
        /// The name.
        name: String,
        /// Where the user declared it the second time.
        loc: SourceLoc,
    },
    /// Differentiation failed (e.g. with respect to an integer tensor).
    #[error("{loc}: {source}")]
    Grad {
        /// Why.
        source: Box<onde_passes::AdError>,
        /// Where the user asked for the gradient.
        loc: SourceLoc,
    },
    /// Compilation to machine code failed.
    #[error("compile: {0}")]
    Compile(Box<onde_codegen::CompileError>),
    /// A class index fed to a loss is outside `0..classes` (and not its
    /// `ignore_index`): found before the run (see `feed_check`).
    #[error(
        "{loc}: {api}: target `{input}`{} = {value} is out of range for {classes} classes \
         (expected 0..={}{})",
        fmt_pos(.position),
        .classes.saturating_sub(1),
        .ignore.map(|i| format!(" or ignore_index {i}")).unwrap_or_default()
    )]
    TargetOutOfRange {
        /// The loss (`nll_loss`, `cross_entropy`).
        api: &'static str,
        /// The input holding the targets.
        input: String,
        /// The offending element's index.
        position: Vec<usize>,
        /// Its value.
        value: i64,
        /// The number of classes.
        classes: usize,
        /// The loss's `ignore_index`, if any.
        ignore: Option<i64>,
        /// Where the loss was built.
        loc: SourceLoc,
    },
    /// A sequence length fed to a recurrent layer is outside `1..=max` (found before
    /// the run).
    #[error(
        "{loc}: {api}: lengths `{input}`{} = {value} is out of range (every sequence length \
         must be in 1..={max}, the padded length)",
        fmt_pos(.position)
    )]
    LengthOutOfRange {
        /// The layer (`GRU`, `LSTM`, `RNN`).
        api: &'static str,
        /// The input holding the lengths.
        input: String,
        /// The offending element's index.
        position: Vec<usize>,
        /// Its value.
        value: i64,
        /// The padded length `T`.
        max: usize,
        /// Where the layer was called.
        loc: SourceLoc,
    },
    /// A compiled graph failed to run (e.g. a feed of the wrong shape).
    #[error("run: {0}")]
    Exec(Box<onde_codegen::RunError>),
    /// `gradcheck` could not run.
    #[error("gradcheck: {reason}")]
    Gradcheck {
        /// Why.
        reason: String,
    },
    /// No parameter has this name.
    #[error("no parameter named {name:?}")]
    UnknownParameter {
        /// The name.
        name: String,
    },
    /// A parameter value of the wrong type.
    #[error("parameter {name:?} is {expected}, got a value of type {got}")]
    ParameterType {
        /// The name.
        name: String,
        /// The parameter's type.
        expected: Box<TensorType>,
        /// The value's type.
        got: Box<TensorType>,
    },
    /// A training step could not be set up or run.
    #[error("train: {reason}")]
    Train {
        /// Why.
        reason: String,
    },
    /// A state dict entry is missing, unknown or of the wrong type.
    #[error("state dict: {name:?} {reason}")]
    StateDict {
        /// The entry's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint file could not be read or written.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The built graph failed verification (a bug in onde, reported rather than hidden).
    #[error("internal error: {0}")]
    Verify(#[from] onde_ir::VerifyError),
    /// The interpreter failed while running the graph.
    #[error("run failed: {0}")]
    Run(#[from] onde_runtime::InterpError),
}

fn fmt_op(op: &str, reason: &str, operands: &[TensorType], loc: &SourceLoc) -> String {
    let mut s = format!("{loc}: {op}: {reason}");
    if !operands.is_empty() {
        let tys: Vec<String> = operands.iter().map(|t| t.to_string()).collect();
        s.push_str(&format!(" (operands: {})", tys.join(", ")));
    }
    s
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// The user source location the error points at, if any.
    pub fn loc(&self) -> Option<&SourceLoc> {
        match self {
            Error::Op { loc, .. } | Error::MixedBuilders { loc, .. } => Some(loc),
            Error::DuplicateName { loc, .. } | Error::Grad { loc, .. } => Some(loc),
            Error::TargetOutOfRange { loc, .. } | Error::LengthOutOfRange { loc, .. } => Some(loc),
            Error::Layer { source, .. } => source.loc(),
            Error::Verify(_)
            | Error::Run(_)
            | Error::UnknownParameter { .. }
            | Error::Gradcheck { .. }
            | Error::Compile(_)
            | Error::Exec(_)
            | Error::ParameterType { .. }
            | Error::Train { .. }
            | Error::StateDict { .. }
            | Error::Checkpoint { .. } => None,
        }
    }
}

/// `[3]`, `[1, 4]`; nothing for a 0-d target.
fn fmt_pos(p: &[usize]) -> String {
    if p.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = p.iter().map(|i| i.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
