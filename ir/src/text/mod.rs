//! The text form of a graph (print and parse back) and Graphviz output.
//!
//! [`print_graph`] writes a line-based form that [`parse_graph`] reads back into an
//! equal graph: same ops (every payload field), same result types, same operands,
//! source locations, input order and outputs. [`to_dot`] renders Graphviz and
//! [`summary`] a one-line header comment for dumps.
//!
//! # Example
//!
//! ```text
//! graph {
//!   %0: f32[5,1,100] = input "x" @ "examples/mlp.rs":12:5
//!   %1: f32[1,4,1] = parameter "m.learnable_param"
//!   %2: f32[] = constant f32[] [1.5]
//!   %3: f32[5,1,100] = reduce_sum %0 axes=[1] keepdim=true @ "src/a.rs":3:9
//!   %4: f32[5,4,100] = add %3, %1
//!   %5: f32[4,8] = input "h0"
//!   %6: f32[10,4,8] = input "xs"
//!   %7: f32[4,8], %8: f32[10,4,8] = scan %5, %6 carry=1 xs=1 length=10 axis=0 reverse=false {
//!     %0: f32[4,8] = input "c"
//!     %1: f32[4,8] = input "x"
//!     %2: f32[4,8] = add %0, %1
//!     %3: f32[4,8] = tanh %2
//!     outputs %3, %3
//!   }
//!   outputs %4, %8
//! }
//! ```
//!
//! # Grammar
//!
//! ```text
//! file      := NL* 'graph' '{' NL body '}' NL* EOF
//! body      := (stmt? NL)*
//! stmt      := 'inputs' values | 'outputs' values | orphan | opline
//! opline    := [result (',' result)* '='] MNEMONIC values payload attr* [loc] [scanbody]
//! result    := VALUE ':' type
//! values    := [VALUE (',' VALUE)*]
//! type      := DTYPE '[' [INT (',' INT)*] ']'                e.g. f32[5,1,100], i64[]
//! payload   := STRING            (input, parameter: the name)
//!            | type elems        (constant: dtype, shape, all elements row-major)
//!            | ε                 (every other op)
//! elems     := '[' [elem (',' elem)*] ']'
//! attr      := IDENT '=' attrval
//! loc       := '@' STRING ':' INT ':' INT                    file:line:col
//! scanbody  := '{' NL body '}'
//! orphan    := VALUE ':' type '=' 'orphan'
//! ```
//!
//! - `NL` is a newline; other whitespace is insignificant and `//` starts a comment.
//! - `VALUE` is `%` and digits. Values are defined once and used after their
//!   definition; each graph (the top level and each Scan body) has its own numbering.
//!   The printer numbers values `%0, %1, …` in the order of [`crate::Graph::topo_ops`],
//!   each op's results in slot order.
//! - `MNEMONIC` is [`crate::Op::name`]. Ops with no results omit `… =`.
//! - `STRING` is double-quoted, with escapes `\"`, `\\`, `\n`, `\t`, `\r` and
//!   `\u{hex}` (the printer uses the last one for other control characters).
//! - Floats (constant elements, `value=`) print as Rust's shortest round-trip digits
//!   (`1.5`, `-0.0`, `1e-7`), `inf`, `-inf`, `nan` for the canonical quiet NaN and
//!   `nan(0x7fc00001)` (the raw bits, 8 hex digits for f32, 16 for f64) for any other
//!   NaN, so every bit pattern round-trips; no NaN payload is normalised. i64 elements
//!   are decimal, bool elements `true`/`false`.
//! - `inputs` lists the graph inputs when their order is not that of the `input` ops
//!   in the text (the default); `outputs` lists the graph outputs (printed always,
//!   optional when parsing: absent means none). Each appears at most once per graph,
//!   after the values it names.
//! - `orphan` declares a value with no producer; only deliberately broken graphs
//!   (verifier tests) have them and the printer lists them first.
//!
//! Attributes, in the order printed (the parser accepts any order; each is required
//! once, unknown keys are errors):
//!
//! | ops | attributes |
//! |---|---|
//! | `input`, `parameter` | optional `ty=f32[2,3]`, printed only if the op's type differs from its result type (ill-typed graphs) |
//! | `cast` | `to=f64` |
//! | `reduce_sum/prod/max/min` | `axes=[0,2] keepdim=true` |
//! | `argmax`, `argmin` | `axis=1 keepdim=false` |
//! | `reshape`, `expand` | `shape=[2,3]` |
//! | `permute` | `perm=[1,0]` |
//! | `slice` | `axes=[0:5:1, 0:10:2]` (start:stop:step per axis) |
//! | `pad` | `pads=[(1,2), (0,0)] value=0.0` (the fill as an f64, from `value_bits`) |
//! | `unfold` | `axis=2 size=9 step=1 dilation=1` |
//! | `concat`, `gather`, `softmax` | `axis=0` |
//! | `conv` | `stride=[1] padding=[(2,2)] dilation=[1] groups=1` |
//! | `random` | `dist=uniform dtype=f32 shape=[3,4]` |
//! | `scan` | `carry=1 xs=1 length=10 axis=0 reverse=false`, then the body in `{ … }` |
//! | unary, binary, comparisons, `where`, `matmul`, `constant` | none |
//!
//! The parser builds ops with [`crate::Graph::add_op_unchecked`] using the printed
//! result types, so ill-typed text parses and [`fn@crate::verify`] can reject it. Shapes
//! whose element count overflows `usize` are rejected. Graphs that cannot be expressed
//! (cycles, edges to non-values) print on a best-effort basis that does not parse back.

mod dot;
pub mod filecheck;
mod lexer;
mod parse;
mod print;

pub use dot::to_dot;
pub use parse::{parse_graph, ParseError};
pub use print::{print_graph, summary};

#[cfg(test)]
mod tests;
