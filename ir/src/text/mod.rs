//! The text form of a graph (print and parse) and Graphviz output.
//!
//! Placeholder printer until the full text module lands.

use crate::graph::Graph;

/// Prints a graph in the text form.
pub fn print_graph(g: &Graph) -> String {
    format!("{g:?}")
}
