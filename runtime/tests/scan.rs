//! Scan: carries, scanned inputs, invariants, reverse, length 0, nesting.

use crate::common;

use common::*;
use onde_ir::{Array, BinaryOp, DType, Graph, Op, ReduceKind, ScanOp};
use onde_runtime::{run, InterpError};
use std::collections::HashMap;
use std::sync::Arc;

/// Body of a cumulative sum over `[2]` vectors: `c' = c + x`, `y = c'`.
fn cumsum_body() -> Graph {
    let mut b = Graph::new();
    let c = input(&mut b, "c", ty(DType::F32, &[2]));
    let x = input(&mut b, "x", ty(DType::F32, &[2]));
    let s = add1(&mut b, Op::Binary(BinaryOp::Add), &[c, x]);
    b.set_outputs(vec![s, s]);
    b
}

fn scan_op(
    body: Graph,
    num_carry: usize,
    num_xs: usize,
    length: usize,
    axis: usize,
    reverse: bool,
) -> Op {
    Op::Scan(ScanOp {
        body: Arc::new(body),
        num_carry,
        num_xs,
        length,
        axis,
        reverse,
    })
}

fn run_scan(op: Op, args: &[Array]) -> Vec<Array> {
    try_eval(op, args).unwrap()
}

#[test]
fn cumulative_sum_over_axis_1() {
    let c0 = f32s(&[2], &[0., 0.]);
    let xs = f32s(&[2, 4], &[1., 2., 3., 4., 10., 20., 30., 40.]);
    let r = run_scan(scan_op(cumsum_body(), 1, 1, 4, 1, false), &[c0, xs]);
    assert_eq!(r[0], f32s(&[2], &[10., 100.]));
    assert_eq!(r[1], f32s(&[2, 4], &[1., 3., 6., 10., 10., 30., 60., 100.]));
}

#[test]
fn reverse_scan_stores_outputs_at_their_step() {
    let c0 = f32s(&[2], &[0., 0.]);
    let xs = f32s(&[2, 4], &[1., 2., 3., 4., 10., 20., 30., 40.]);
    let r = run_scan(scan_op(cumsum_body(), 1, 1, 4, 1, true), &[c0, xs]);
    assert_eq!(r[0], f32s(&[2], &[10., 100.]));
    assert_eq!(r[1], f32s(&[2, 4], &[10., 9., 7., 4., 100., 90., 70., 40.]));
}

#[test]
fn length_zero_passes_carries_through() {
    let c0 = f32s(&[2], &[5., 6.]);
    let xs = f32s(&[2, 0], &[]);
    for reverse in [false, true] {
        let r = run_scan(
            scan_op(cumsum_body(), 1, 1, 0, 1, reverse),
            &[c0.clone(), xs.clone()],
        );
        assert_eq!(r[0], c0);
        assert_eq!(r[1], f32s(&[2, 0], &[]));
    }
}

#[test]
fn invariants_reach_every_step() {
    // h' = h·w + x, y = h'.
    let mut b = Graph::new();
    let h = input(&mut b, "h", ty(DType::F64, &[2]));
    let x = input(&mut b, "x", ty(DType::F64, &[2]));
    let w = input(&mut b, "w", ty(DType::F64, &[2]));
    let hw = add1(&mut b, Op::Binary(BinaryOp::Mul), &[h, w]);
    let h2 = add1(&mut b, Op::Binary(BinaryOp::Add), &[hw, x]);
    b.set_outputs(vec![h2, h2]);
    let h0 = f64s(&[2], &[0., 0.]);
    let xs = f64s(&[2, 3], &[1., 1., 1., 1., 2., 3.]);
    let w = f64s(&[2], &[2., 3.]);
    let r = run_scan(scan_op(b, 1, 1, 3, 1, false), &[h0, xs, w]);
    assert_eq!(r[0], f64s(&[2], &[7., 18.]));
    assert_eq!(r[1], f64s(&[2, 3], &[1., 3., 7., 1., 5., 18.]));
}

#[test]
fn map_without_carries_over_axis_0() {
    // y = x · 2 per row, and also a row sum as a second per-step output.
    let mut b = Graph::new();
    let x = input(&mut b, "x", ty(DType::I64, &[3]));
    let two = constant(&mut b, i64s(&[], &[2]));
    let y = add1(&mut b, Op::Binary(BinaryOp::Mul), &[x, two]);
    let s = add1(
        &mut b,
        Op::Reduce {
            kind: ReduceKind::Sum,
            axes: vec![0],
            keepdim: false,
        },
        &[x],
    );
    b.set_outputs(vec![y, s]);
    let xs = i64s(&[2, 3], &[1, 2, 3, -4, 5, -6]);
    let r = run_scan(scan_op(b, 0, 1, 2, 0, false), &[xs]);
    assert_eq!(r[0], i64s(&[2, 3], &[2, 4, 6, -8, 10, -12]));
    assert_eq!(r[1], i64s(&[2], &[6, -5]));
}

#[test]
fn two_carries_two_scanned_inputs() {
    // (a, b) carries; xs p, q: a' = a + p, b' = b · q; ys: a' - b'.
    let mut body = Graph::new();
    let a = input(&mut body, "a", ty(DType::I64, &[]));
    let bb = input(&mut body, "b", ty(DType::I64, &[]));
    let p = input(&mut body, "p", ty(DType::I64, &[]));
    let q = input(&mut body, "q", ty(DType::I64, &[]));
    let a2 = add1(&mut body, Op::Binary(BinaryOp::Add), &[a, p]);
    let b2 = add1(&mut body, Op::Binary(BinaryOp::Mul), &[bb, q]);
    let d = add1(&mut body, Op::Binary(BinaryOp::Sub), &[a2, b2]);
    body.set_outputs(vec![a2, b2, d]);
    let r = run_scan(
        scan_op(body, 2, 2, 3, 0, false),
        &[
            i64s(&[], &[0]),
            i64s(&[], &[1]),
            i64s(&[3], &[1, 2, 3]),
            i64s(&[3], &[2, 3, 4]),
        ],
    );
    assert_eq!(r[0], i64s(&[], &[6]));
    assert_eq!(r[1], i64s(&[], &[24]));
    assert_eq!(r[2], i64s(&[3], &[-1, -3, -18]));
}

#[test]
fn nested_scan() {
    // Inner: row sum by scanning the row. Outer: scans rows, carrying the running total.
    let mut inner = Graph::new();
    let c = input(&mut inner, "c", ty(DType::F32, &[]));
    let x = input(&mut inner, "x", ty(DType::F32, &[]));
    let s = add1(&mut inner, Op::Binary(BinaryOp::Add), &[c, x]);
    inner.set_outputs(vec![s]);

    let mut outer = Graph::new();
    let total = input(&mut outer, "total", ty(DType::F32, &[]));
    let row = input(&mut outer, "row", ty(DType::F32, &[3]));
    let zero = constant(&mut outer, f32s(&[], &[0.]));
    let row_sum = add1(&mut outer, scan_op(inner, 1, 1, 3, 0, false), &[zero, row]);
    let t2 = add1(&mut outer, Op::Binary(BinaryOp::Add), &[total, row_sum]);
    outer.set_outputs(vec![t2, row_sum]);

    let r = run_scan(
        scan_op(outer, 1, 1, 2, 0, false),
        &[f32s(&[], &[0.]), f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.])],
    );
    assert_eq!(r[0], f32s(&[], &[21.]));
    assert_eq!(r[1], f32s(&[2], &[6., 15.]));
}

#[test]
fn body_parameters_are_fed_by_name() {
    let mut body = Graph::new();
    let c = input(&mut body, "c", ty(DType::F32, &[]));
    let k = add1(
        &mut body,
        Op::Parameter {
            name: "k".into(),
            ty: ty(DType::F32, &[]),
        },
        &[],
    );
    let s = add1(&mut body, Op::Binary(BinaryOp::Mul), &[c, k]);
    body.set_outputs(vec![s]);
    let mut g = Graph::new();
    let c0 = constant(&mut g, f32s(&[], &[1.]));
    let r = add(&mut g, scan_op(body, 1, 0, 3, 0, false), &[c0]);
    g.set_outputs(r);
    let feeds = HashMap::from([("k".to_string(), f32s(&[], &[2.]))]);
    assert_eq!(run(&g, &feeds).unwrap(), vec![f32s(&[], &[8.])]);
    let err = run(&g, &HashMap::new()).unwrap_err();
    assert!(
        matches!(&err, InterpError::ScanBody { step: Some(0), source, .. }
            if matches!(**source, InterpError::MissingFeed { .. })),
        "{err}"
    );
}

#[test]
fn errors_in_the_body_name_the_step() {
    // Gather with the scanned index: step 2 has an out-of-range index.
    let mut body2 = Graph::new();
    let i2 = input(&mut body2, "i", ty(DType::I64, &[1]));
    let t2 = input(&mut body2, "table", ty(DType::F32, &[3]));
    let g2 = add1(&mut body2, Op::Gather { axis: 0 }, &[t2, i2]);
    body2.set_outputs(vec![g2]);
    let args = [i64s(&[3, 1], &[0, 2, 3]), f32s(&[3], &[1., 2., 3.])];
    let err = try_eval(scan_op(body2, 0, 1, 3, 0, false), &args).unwrap_err();
    let InterpError::ScanBody {
        step: Some(2),
        source,
        ..
    } = &err
    else {
        panic!("unexpected error {err}");
    };
    assert!(matches!(
        **source,
        InterpError::GatherIndexOutOfRange {
            index: 3,
            extent: 3,
            ..
        }
    ));
    assert!(err.to_string().contains("step 2"), "{err}");
}
