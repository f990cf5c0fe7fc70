//! Source locations of the user code that created an op.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

/// A user source location (`file:line:column`), recorded with `#[track_caller]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceLoc {
    /// File path as the compiler saw it.
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
}

impl SourceLoc {
    /// Builds a location.
    pub fn new(file: &str, line: u32, col: u32) -> SourceLoc {
        SourceLoc {
            file: Arc::from(file),
            line,
            col,
        }
    }

    /// The location of the caller (through any chain of `#[track_caller]` functions).
    #[track_caller]
    pub fn caller() -> SourceLoc {
        let l = Location::caller();
        SourceLoc::new(l.file(), l.line(), l.column())
    }
}

impl fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}
