//! Unit tests of the text form; property tests are in `ir/tests/text_roundtrip.rs`.

use super::*;
use crate::{DType, Graph, Op, SourceLoc, TensorType};

/// The example of the module doc.
const EXAMPLE: &str = r#"graph {
  %0: f32[5,1,100] = input "x" @ "examples/mlp.rs":12:5
  %1: f32[1,4,1] = parameter "m.learnable_param"
  %2: f32[] = constant f32[] [1.5]
  %3: f32[5,1,100] = reduce_sum %0 axes=[1] keepdim=true @ "src/a.rs":3:9
  %4: f32[5,4,100] = add %3, %1
  %5: f32[4,8] = input "h0"
  %6: f32[10,4,8] = input "xs"
  %7: f32[4,8], %8: f32[10,4,8] = scan %5, %6 carry=1 xs=1 length=10 axis=0 reverse=false {
    %0: f32[4,8] = input "c"
    %1: f32[4,8] = input "x"
    %2: f32[4,8] = add %0, %1
    %3: f32[4,8] = tanh %2
    outputs %3, %3
  }
  outputs %4, %8
}
"#;

#[test]
fn doc_example_round_trips() {
    let g = parse_graph(EXAMPLE).unwrap();
    assert_eq!(print_graph(&g), EXAMPLE);
    assert_eq!(g.num_ops(), 8);
    assert_eq!(g.inputs().len(), 3);
    assert_eq!(g.outputs().len(), 2);
    let first = g.topo_ops().unwrap()[0];
    assert_eq!(
        g.op(first).loc,
        Some(SourceLoc::new("examples/mlp.rs", 12, 5))
    );
}

#[test]
fn summary_counts_scan_bodies() {
    let g = parse_graph(EXAMPLE).unwrap();
    assert_eq!(
        summary(&g),
        "// 13 values, 12 ops, 1 parameter (4 elements); including 1 scan body"
    );
    assert_eq!(
        summary(&Graph::new()),
        "// 0 values, 0 ops, 0 parameters (0 elements)"
    );
}

#[test]
fn dot_has_clusters_and_labels() {
    let g = parse_graph(EXAMPLE).unwrap();
    let d = to_dot(&g);
    assert!(d.starts_with("digraph onde {"));
    assert!(d.ends_with("}\n"));
    assert!(d.contains("subgraph cluster_g_s"));
    assert!(d.contains("reduce_sum axes=[1] keepdim=true\\nsrc/a.rs:3"));
    assert!(d.contains("input \\\"x\\\""));
    assert!(d.contains("label=\"%4\\nf32[5,4,100]\", peripheries=2"));
    // Balanced braces (outside strings, which only hold escaped quotes here).
    assert_eq!(d.matches('{').count(), d.matches('}').count());
}

#[test]
fn input_order_is_restored() {
    let mut g = Graph::new();
    let t = TensorType::new(DType::F32, [2]);
    let (_, a) = g
        .add_op(
            Op::Input {
                name: "a".into(),
                ty: t.clone(),
            },
            &[],
            None,
        )
        .unwrap();
    let (_, b) = g
        .add_op(
            Op::Input {
                name: "b".into(),
                ty: t,
            },
            &[],
            None,
        )
        .unwrap();
    g.set_inputs(vec![b[0], a[0]]);
    g.set_outputs(vec![a[0]]);
    let s = print_graph(&g);
    assert!(s.contains("  inputs %1, %0\n"), "{s}");
    let h = parse_graph(&s).unwrap();
    assert_eq!(h.input_name(h.inputs()[0]), Some("b"));
    assert_eq!(print_graph(&h), s);
}

#[test]
fn ill_typed_text_parses() {
    // Result type disagrees with the input's own type, and add of mismatched shapes.
    let src = "graph {\n  %0: f32[3] = input \"x\" ty=f32[2]\n  %1: i64[7] = add %0, %0\n  %2: f32[1] = orphan\n  outputs %1\n}\n";
    let g = parse_graph(src).unwrap();
    let printed = print_graph(&g);
    // Orphans are printed first, so values are renumbered.
    assert_eq!(
        printed,
        "graph {\n  %0: f32[1] = orphan\n  %1: f32[3] = input \"x\" ty=f32[2]\n  %2: i64[7] = add %1, %1\n  outputs %2\n}\n"
    );
    assert_eq!(print_graph(&parse_graph(&printed).unwrap()), printed);
}

#[test]
fn zero_result_ops_and_empty_lists() {
    let src = "graph {\n  %0: f32[2] = input \"x\"\n  neg %0\n  inputs\n  outputs\n}\n";
    let g = parse_graph(src).unwrap();
    assert!(g.inputs().is_empty());
    assert_eq!(print_graph(&g), src);
}

fn err(src: &str) -> ParseError {
    match parse_graph(src) {
        Ok(g) => panic!("parsed:\n{}", print_graph(&g)),
        Err(e) => e,
    }
}

#[test]
fn error_positions_and_messages() {
    let e = err("graph {\n  %0: f32[5,1 100] = input \"x\"\n}\n");
    assert_eq!((e.line, e.col), (2, 15));
    assert_eq!(
        e.to_string(),
        "line 2, col 15: expected ',' or ']' in shape, found number 100"
    );

    let e = err("graph {\n  %0: f32[2] = input \"x\"\n  %1: f32[2] = neg %7\n}\n");
    assert_eq!((e.line, e.col), (3, 20));
    assert!(e.msg.contains("undefined value %7"), "{e}");

    let e = err("graph {\n  %0: f32[2] = input \"x\"\n  %0: f32[2] = neg %0\n}\n");
    assert_eq!((e.line, e.col), (3, 3));
    assert!(e.msg.contains("redefinition of %0"), "{e}");

    let e = err("graph {\n  %0: f32[2] = frobnicate\n}\n");
    assert_eq!(e.line, 2);
    assert!(e.msg.contains("unknown op 'frobnicate'"), "{e}");

    let e = err("graph {\n  %0: f32[2] = input \"x\"\n  %1: f32[2] = concat %0\n}\n");
    assert_eq!(e.line, 3);
    assert!(e.msg.contains("needs attribute 'axis='"), "{e}");

    let e = err("graph {\n  %0: f32[2] = input \"x\"\n  %1: f32[2] = neg %0 axis=1\n}\n");
    assert!(e.msg.contains("unknown attribute 'axis'"), "{e}");

    let e = err("graph {\n  %0: f32[2] = constant f32[2] [1.0]\n}\n");
    assert_eq!(e.line, 2);
    assert!(e.msg.contains("needs 2 elements, got 1"), "{e}");

    let e = err("graph {\n  %0: f32[2] = input \"x\"\n");
    assert_eq!(e.line, 3);
    assert!(e.msg.contains("expected '}'"), "{e}");

    let e = err("graph {\n  %0: f32[2] = input \"x\n}\n");
    assert_eq!((e.line, e.col), (2, 22));
    assert!(e.msg.contains("unterminated string"), "{e}");

    let e = err("graph {\n  %0: f32[99999999999,99999999999,99999999999] = input \"x\"\n}\n");
    assert!(e.msg.contains("more elements than fit"), "{e}");

    let e = err("graph {\n  %0: f64[] = constant f64[] [nan(0x3ff0000000000000)]\n}\n");
    assert!(e.msg.contains("not the bit pattern of a NaN"), "{e}");

    let e = err("graph {\n  outputs\n  outputs\n}\n");
    assert_eq!(e.line, 3);

    let e = err("graph {\n}\ngraph {\n}\n");
    assert_eq!(e.line, 3);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let mut s = String::from("graph {\n");
    for _ in 0..10_000 {
        s.push_str("scan carry=0 xs=0 length=1 axis=0 reverse=false {\n");
    }
    let e = err(&s);
    assert!(e.msg.contains("nesting"), "{e}");
}

#[test]
fn broken_graphs_print_without_panicking() {
    let t = TensorType::new(DType::F32, [2]);
    let mut g = Graph::new();
    let (xo, x) = g
        .add_op(
            Op::Input {
                name: "x".into(),
                ty: t.clone(),
            },
            &[],
            None,
        )
        .unwrap();
    let (no, n) = g.add_op(Op::Unary(crate::UnaryOp::Neg), &x, None).unwrap();
    let orphan = g.add_orphan_value(t.clone());
    g.add_op_unchecked(Op::MatMul, &[orphan, n[0]], vec![t], None);
    // An op used as an operand, and a cycle through the input op.
    g.add_raw_edge(xo.index(), no.index(), 1);
    g.add_raw_edge(n[0].index(), xo.index(), 0);
    g.set_outputs(vec![n[0]]);
    let s = print_graph(&g);
    assert!(s.contains("// warning: the graph has a cycle"), "{s}");
    assert!(s.contains("%0: f32[2] = orphan"), "{s}");
    assert!(s.contains("%?"), "{s}");
    assert!(parse_graph(&s).is_err());
    let _ = to_dot(&g);
    let _ = summary(&g);
}
