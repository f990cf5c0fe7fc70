//! Graphviz output of a graph.

use super::print::{payload, type_text, value_list, Numbering};
use crate::graph::Graph;
use crate::ids::ValueId;
use crate::op::Op;
use std::collections::HashSet;
use std::fmt::Write as _;

/// How many constant elements an op box shows before `...`.
const CONSTANT_ELEMS: usize = 4;

/// Renders a graph as a Graphviz `digraph`.
///
/// Values are ellipses labelled `%n` (numbered as in [`crate::text::print_graph`]) and
/// their type; graph outputs get a double border. Ops are boxes labelled with their
/// mnemonic, their attributes (constants show at most four elements) and the source
/// `file:line`; inputs, parameters and constants are filled. Operand edges are labelled
/// with the operand slot when an op has several operands. A Scan body is drawn inside a
/// dashed `subgraph cluster_…`, attached to its scan op by a dashed edge; its values
/// keep the body's own numbering.
pub fn to_dot(g: &Graph) -> String {
    let mut out = String::from(
        "digraph onde {\n  compound=true;\n  node [fontname=\"monospace\", fontsize=10];\n  edge [fontname=\"monospace\", fontsize=9];\n",
    );
    write_graph(g, "g", 1, &mut out);
    out.push_str("}\n");
    out
}

/// Escapes a label for a double-quoted Graphviz string; `\n` becomes a line break.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => {}
            c => o.push(c),
        }
    }
    o
}

/// Node id of a value: by its number, so ids do not depend on raw node indices.
fn vid(num: &Numbering, prefix: &str, v: ValueId) -> String {
    match num.number(v) {
        Some(n) => format!("{prefix}_v{n}"),
        None => format!("{prefix}_x{}", v.index()),
    }
}

fn write_graph(g: &Graph, prefix: &str, depth: usize, out: &mut String) {
    let ind = "  ".repeat(depth);
    let num = Numbering::new(g);
    let outputs: HashSet<_> = g.outputs().iter().copied().collect();
    let mut values = g.value_ids();
    values.sort_by_key(|&v| num.number(v));
    for v in values {
        let label = format!("{}\n{}", num.name(v), type_text(g, v));
        let border = if outputs.contains(&v) {
            ", peripheries=2"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{ind}{} [shape=ellipse, label=\"{}\"{border}];",
            vid(&num, prefix, v),
            esc(&label)
        );
    }
    for (k, &o) in num.order.iter().enumerate() {
        let Some(node) = g.try_op(o) else { continue };
        let results = g.results(o);
        let operands = g.operands(o);
        let result_tys: Vec<_> = results.iter().map(|&v| g.try_value_type(v)).collect();
        let mut label = node.op.name().to_string();
        label.push_str(&payload(&node.op, &result_tys, Some(CONSTANT_ELEMS)));
        if let Some(l) = &node.loc {
            let _ = write!(label, "\n{}:{}", l.file, l.line);
        }
        let style = if let Op::Input { .. } = node.op {
            ", style=filled, fillcolor=\"#cfe2ff\""
        } else if let Op::Parameter { .. } = node.op {
            ", style=filled, fillcolor=\"#fff3cd\""
        } else if let Op::Constant(_) = node.op {
            ", style=filled, fillcolor=\"#e9ecef\""
        } else {
            ""
        };
        let id = format!("{prefix}_op{k}");
        let _ = writeln!(
            out,
            "{ind}{id} [shape=box, label=\"{}\"{style}];",
            esc(&label)
        );
        for (i, &v) in operands.iter().enumerate() {
            let slot = if operands.len() > 1 {
                format!(" [label=\"{i}\"]")
            } else {
                String::new()
            };
            let _ = writeln!(out, "{ind}{} -> {id}{slot};", vid(&num, prefix, v));
        }
        for &v in &results {
            let _ = writeln!(out, "{ind}{id} -> {};", vid(&num, prefix, v));
        }
        if let Op::Scan(s) = &node.op {
            let sub = format!("{prefix}_s{k}");
            let _ = writeln!(out, "{ind}subgraph cluster_{sub} {{");
            let _ = writeln!(
                out,
                "{ind}  label=\"{}\"; style=dashed;",
                esc(&format!("scan body of {}", value_list(&num, &results)))
            );
            let _ = writeln!(out, "{ind}  {sub}_anchor [shape=point, style=invis];");
            write_graph(&s.body, &sub, depth + 1, out);
            let _ = writeln!(out, "{ind}}}");
            let _ = writeln!(
                out,
                "{ind}{id} -> {sub}_anchor [lhead=cluster_{sub}, style=dashed, arrowhead=none];"
            );
        }
    }
}
