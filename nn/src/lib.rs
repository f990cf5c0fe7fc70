//! nn
#![warn(missing_docs)]
