//! runtime
#![warn(missing_docs)]
