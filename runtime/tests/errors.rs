//! Feeds, partial evaluation, and errors on bad feeds and malformed graphs.

use crate::common;

use common::*;
use onde_ir::{BinaryOp, DType, Graph, Op, ScanOp, Shape, TensorType};
use onde_runtime::{run, run_values, FeedKind, InterpError};
use std::collections::HashMap;
use std::sync::Arc;

/// `y = x · w + b` with an input and two parameters.
fn affine() -> Graph {
    let mut g = Graph::new();
    let x = input(&mut g, "x", ty(DType::F32, &[2]));
    let w = add1(
        &mut g,
        Op::Parameter {
            name: "w".into(),
            ty: ty(DType::F32, &[2]),
        },
        &[],
    );
    let b = add1(
        &mut g,
        Op::Parameter {
            name: "b".into(),
            ty: ty(DType::F32, &[]),
        },
        &[],
    );
    let xw = add1(&mut g, Op::Binary(BinaryOp::Mul), &[x, w]);
    let y = add1(&mut g, Op::Binary(BinaryOp::Add), &[xw, b]);
    g.set_outputs(vec![y]);
    g
}

fn feeds(items: &[(&str, onde_ir::Array)]) -> HashMap<String, onde_ir::Array> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn inputs_and_parameters_are_fed_by_name() {
    let g = affine();
    let f = feeds(&[
        ("x", f32s(&[2], &[1., 2.])),
        ("w", f32s(&[2], &[3., -4.])),
        ("b", f32s(&[], &[0.5])),
    ]);
    assert_eq!(run(&g, &f).unwrap(), vec![f32s(&[2], &[3.5, -7.5])]);
}

#[test]
fn missing_feeds_are_named() {
    let g = affine();
    let f = feeds(&[("x", f32s(&[2], &[1., 2.])), ("w", f32s(&[2], &[3., -4.]))]);
    let err = run(&g, &f).unwrap_err();
    assert_eq!(
        err,
        InterpError::MissingFeed {
            name: "b".into(),
            kind: FeedKind::Parameter
        }
    );
    assert_eq!(err.to_string(), "no tensor fed for parameter `b`");
    let f = feeds(&[("w", f32s(&[2], &[3., -4.])), ("b", f32s(&[], &[0.5]))]);
    let err = run(&g, &f).unwrap_err();
    assert_eq!(
        err,
        InterpError::MissingFeed {
            name: "x".into(),
            kind: FeedKind::Input
        }
    );
}

#[test]
fn mistyped_feeds_are_rejected() {
    let g = affine();
    let f = feeds(&[
        ("x", f32s(&[3], &[1., 2., 3.])),
        ("w", f32s(&[2], &[3., -4.])),
        ("b", f32s(&[], &[0.5])),
    ]);
    let err = run(&g, &f).unwrap_err();
    let InterpError::FeedMismatch {
        name,
        kind,
        expected,
        got,
    } = &err
    else {
        panic!("unexpected error {err}");
    };
    assert_eq!((name.as_str(), *kind), ("x", FeedKind::Input));
    assert_eq!(**expected, ty(DType::F32, &[2]));
    assert_eq!(**got, ty(DType::F32, &[3]));
    assert_eq!(
        err.to_string(),
        "input `x` is declared as f32[2] but the fed tensor is f32[3]"
    );
    let f = feeds(&[
        ("x", f32s(&[2], &[1., 2.])),
        ("w", f64s(&[2], &[3., -4.])),
        ("b", f32s(&[], &[0.5])),
    ]);
    assert!(matches!(
        run(&g, &f).unwrap_err(),
        InterpError::FeedMismatch {
            kind: FeedKind::Parameter,
            ..
        }
    ));
}

#[test]
fn run_values_only_needs_what_it_evaluates() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", ty(DType::I64, &[2]));
    let unused = input(&mut g, "unused", ty(DType::I64, &[2]));
    let d = add1(&mut g, Op::Binary(BinaryOp::Add), &[x, x]);
    let e = add1(&mut g, Op::Binary(BinaryOp::Mul), &[d, unused]);
    g.set_outputs(vec![e]);
    let f = feeds(&[("x", i64s(&[2], &[1, -2]))]);
    assert_eq!(
        run_values(&g, &f, &[d, x, d]).unwrap(),
        vec![
            i64s(&[2], &[2, -4]),
            i64s(&[2], &[1, -2]),
            i64s(&[2], &[2, -4])
        ]
    );
    assert!(matches!(
        run(&g, &f).unwrap_err(),
        InterpError::MissingFeed { .. }
    ));
    // A value id of another, bigger graph.
    let mut other = Graph::new();
    let mut last = constant(&mut other, i64s(&[], &[0]));
    for _ in 0..10 {
        last = add1(&mut other, Op::Binary(BinaryOp::Add), &[last, last]);
    }
    assert_eq!(
        run_values(&g, &f, &[last]).unwrap_err(),
        InterpError::UnknownValue { value: last }
    );
}

#[test]
fn ill_typed_ops_are_rejected() {
    // An add of f32 and i64 built without type-checking.
    let mut g = Graph::new();
    let a = constant(&mut g, f32s(&[1], &[1.]));
    let b = constant(&mut g, i64s(&[1], &[1]));
    let (_, r) = g.add_op_unchecked(
        Op::Binary(BinaryOp::Add),
        &[a, b],
        vec![ty(DType::F32, &[1])],
        None,
    );
    g.set_outputs(r);
    let err = run(&g, &HashMap::new()).unwrap_err();
    assert!(
        matches!(err, InterpError::TypeRule { name: "add", .. }),
        "{err}"
    );

    // A well-typed op whose declared result type is wrong.
    let mut g = Graph::new();
    let a = constant(&mut g, f32s(&[2], &[1., 2.]));
    let (_, r) = g.add_op_unchecked(
        Op::Unary(onde_ir::UnaryOp::Neg),
        &[a],
        vec![ty(DType::F32, &[3])],
        None,
    );
    g.set_outputs(r);
    let err = run(&g, &HashMap::new()).unwrap_err();
    assert!(
        matches!(err, InterpError::MalformedOp { name: "neg", .. }),
        "{err}"
    );

    // Wrong operand count.
    let mut g = Graph::new();
    let a = constant(&mut g, f32s(&[2], &[1., 2.]));
    let (_, r) = g.add_op_unchecked(Op::MatMul, &[a], vec![ty(DType::F32, &[2])], None);
    g.set_outputs(r);
    assert!(matches!(
        run(&g, &HashMap::new()).unwrap_err(),
        InterpError::TypeRule { .. }
    ));
}

#[test]
fn structural_problems_are_errors() {
    // An output with no producer.
    let mut g = Graph::new();
    let v = g.add_orphan_value(ty(DType::F32, &[]));
    g.set_outputs(vec![v]);
    assert!(matches!(
        run(&g, &HashMap::new()).unwrap_err(),
        InterpError::MalformedGraph { .. }
    ));

    // A cycle: the neg's result feeds back into the neg.
    let mut g = Graph::new();
    let a = constant(&mut g, f32s(&[], &[1.]));
    let (o, r) = g
        .add_op(Op::Unary(onde_ir::UnaryOp::Neg), &[a], None)
        .unwrap();
    g.add_raw_edge(r[0].index(), o.index(), 1);
    g.set_outputs(r);
    assert_eq!(
        run(&g, &HashMap::new()).unwrap_err(),
        InterpError::NotAcyclic
    );

    // An op used as an operand.
    let mut g = Graph::new();
    let a = constant(&mut g, f32s(&[], &[1.]));
    let (o, _) = g
        .add_op(Op::Unary(onde_ir::UnaryOp::Neg), &[a], None)
        .unwrap();
    let (o2, r2) = g.add_op_unchecked(
        Op::Unary(onde_ir::UnaryOp::Neg),
        &[],
        vec![ty(DType::F32, &[])],
        None,
    );
    g.add_raw_edge(o.index(), o2.index(), 0);
    g.set_outputs(r2);
    let err = run(&g, &HashMap::new()).unwrap_err();
    assert!(matches!(err, InterpError::MalformedGraph { .. }), "{err}");
}

#[test]
fn huge_shapes_are_errors_not_panics() {
    let mut g = Graph::new();
    let seed = constant(&mut g, i64s(&[], &[0]));
    let (_, r) = g.add_op_unchecked(
        Op::Random {
            dist: onde_ir::Distribution::Uniform,
            dtype: DType::F32,
            shape: Shape::new([usize::MAX, 2]),
        },
        &[seed],
        vec![TensorType::new(DType::F32, [usize::MAX, 2])],
        None,
    );
    g.set_outputs(r);
    let err = run(&g, &HashMap::new()).unwrap_err();
    assert!(matches!(err, InterpError::TooLarge { .. }), "{err}");

    let mut g = Graph::new();
    let x = constant(&mut g, f32s(&[1], &[1.]));
    let (_, r) = g.add_op_unchecked(
        Op::Pad {
            pads: vec![(usize::MAX, 1)],
            value_bits: 0,
        },
        &[x],
        vec![TensorType::new(DType::F32, [1])],
        None,
    );
    g.set_outputs(r);
    let err = run(&g, &HashMap::new()).unwrap_err();
    assert!(matches!(err, InterpError::MalformedOp { .. }), "{err}");
}

#[test]
fn malformed_scan_bodies_are_errors() {
    // The body's input list names a value that is not an input.
    let mut body = Graph::new();
    let c = input(&mut body, "c", ty(DType::F32, &[]));
    let n = add1(&mut body, Op::Unary(onde_ir::UnaryOp::Neg), &[c]);
    body.set_inputs(vec![n]);
    body.set_outputs(vec![n]);
    let op = Op::Scan(ScanOp {
        body: Arc::new(body),
        num_carry: 1,
        num_xs: 0,
        length: 2,
        axis: 0,
        reverse: false,
    });
    let err = try_eval(op, &[f32s(&[], &[1.])]).unwrap_err();
    assert!(
        matches!(&err, InterpError::ScanBody { step: Some(0), source, .. }
            if matches!(**source, InterpError::MalformedGraph { .. })),
        "{err}"
    );
}
