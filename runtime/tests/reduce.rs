//! Reductions and arg-reductions.

use crate::common;

use common::*;
use onde_ir::{ArgKind, DType, Op, ReduceKind};
use onde_runtime::InterpError;

const NAN: f64 = f64::NAN;

fn reduce(kind: ReduceKind, axes: &[usize], keepdim: bool) -> Op {
    Op::Reduce {
        kind,
        axes: axes.to_vec(),
        keepdim,
    }
}

fn arg(kind: ArgKind, axis: usize, keepdim: bool) -> Op {
    Op::ArgReduce {
        kind,
        axis,
        keepdim,
    }
}

fn iota_f32(shape: &[usize]) -> onde_ir::Array {
    let n: usize = shape.iter().product();
    f32s(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
}

#[test]
fn sum_over_two_axes_with_and_without_keepdim() {
    // x[i, j, k] = 12i + 4j + k; Σ_{i,k} = 32j + 60.
    let x = iota_f32(&[2, 3, 4]);
    let r = eval(reduce(ReduceKind::Sum, &[0, 2], true), &[&x]);
    assert_eq!(r, f32s(&[1, 3, 1], &[60., 92., 124.]));
    let r = eval(reduce(ReduceKind::Sum, &[0, 2], false), &[&x]);
    assert_eq!(r, f32s(&[3], &[60., 92., 124.]));
    let r = eval(reduce(ReduceKind::Sum, &[0, 1, 2], false), &[&x]);
    assert_eq!(r, f32s(&[], &[276.]));
    let r = eval(reduce(ReduceKind::Max, &[1], true), &[&x]);
    assert_eq!(r, f32s(&[2, 1, 4], &[8., 9., 10., 11., 20., 21., 22., 23.]));
    // No axes: identity.
    assert_eq!(eval(reduce(ReduceKind::Prod, &[], false), &[&x]), x);
}

#[test]
fn prod_max_min_with_negatives() {
    let x = f64s(&[2, 3], &[1., -2., 3., -4., 5., 6.]);
    let e = |k| eval(reduce(k, &[1], false), &[&x]);
    assert_eq!(e(ReduceKind::Sum), f64s(&[2], &[2., 7.]));
    assert_eq!(e(ReduceKind::Prod), f64s(&[2], &[-6., -120.]));
    assert_eq!(e(ReduceKind::Max), f64s(&[2], &[3., 6.]));
    assert_eq!(e(ReduceKind::Min), f64s(&[2], &[-2., -4.]));
    let e0 = |k| eval(reduce(k, &[0], false), &[&x]);
    assert_eq!(e0(ReduceKind::Min), f64s(&[3], &[-4., -2., 3.]));
}

#[test]
fn max_min_propagate_nan() {
    let x = f32s(&[2, 3], &[1., f32::NAN, 3., 4., 5., 6.]);
    let r = eval(reduce(ReduceKind::Max, &[1], false), &[&x]);
    assert_close(&r, DType::F32, &[2], &[NAN, 6.], 0.0);
    let r = eval(reduce(ReduceKind::Min, &[1], false), &[&x]);
    assert_close(&r, DType::F32, &[2], &[NAN, 4.], 0.0);
    let r = eval(reduce(ReduceKind::Sum, &[1], false), &[x]);
    assert_close(&r, DType::F32, &[2], &[NAN, 15.], 0.0);
}

#[test]
fn i64_reductions_wrap() {
    let x = i64s(&[2, 2], &[i64::MAX, 1, -3, 5]);
    let e = |k| eval(reduce(k, &[1], false), &[&x]);
    assert_eq!(e(ReduceKind::Sum), i64s(&[2], &[i64::MIN, 2]));
    assert_eq!(e(ReduceKind::Prod), i64s(&[2], &[i64::MAX, -15]));
    assert_eq!(e(ReduceKind::Max), i64s(&[2], &[i64::MAX, 5]));
    assert_eq!(e(ReduceKind::Min), i64s(&[2], &[1, -3]));
}

#[test]
fn empty_reductions() {
    let x = f32s(&[0, 3], &[]);
    assert_eq!(
        eval(reduce(ReduceKind::Sum, &[0], false), &[&x]),
        f32s(&[3], &[0., 0., 0.])
    );
    assert_eq!(
        eval(reduce(ReduceKind::Prod, &[0], true), &[&x]),
        f32s(&[1, 3], &[1., 1., 1.])
    );
    // Reducing a non-empty axis of an empty tensor is fine.
    assert_eq!(
        eval(reduce(ReduceKind::Max, &[1], false), &[&x]),
        f32s(&[0], &[])
    );
    for kind in [ReduceKind::Max, ReduceKind::Min] {
        let err = try_eval(reduce(kind, &[0], false), &[&x]).unwrap_err();
        assert!(
            matches!(err, InterpError::EmptyReduction { axis: 0, .. }),
            "{err}"
        );
    }
    let err = try_eval(arg(ArgKind::ArgMax, 0, false), &[x]).unwrap_err();
    assert!(
        matches!(err, InterpError::EmptyReduction { axis: 0, .. }),
        "{err}"
    );
}

#[test]
fn argmax_argmin_take_first_of_ties() {
    let x = f32s(&[2, 3], &[1., 3., 3., 2., 2., 1.]);
    assert_eq!(
        eval(arg(ArgKind::ArgMax, 1, false), &[&x]),
        i64s(&[2], &[1, 0])
    );
    assert_eq!(
        eval(arg(ArgKind::ArgMin, 1, false), &[&x]),
        i64s(&[2], &[0, 2])
    );
    assert_eq!(
        eval(arg(ArgKind::ArgMax, 0, true), &[&x]),
        i64s(&[1, 3], &[1, 0, 0])
    );
    assert_eq!(
        eval(arg(ArgKind::ArgMin, 0, false), &[x]),
        i64s(&[3], &[0, 1, 1])
    );
    let y = i64s(&[4], &[-5, 7, 7, -9]);
    assert_eq!(eval(arg(ArgKind::ArgMax, 0, false), &[&y]), i64s(&[], &[1]));
    assert_eq!(eval(arg(ArgKind::ArgMin, 0, true), &[y]), i64s(&[1], &[3]));
}

#[test]
fn argmax_argmin_treat_nan_as_extreme() {
    let x = f64s(&[5], &[1., NAN, 5., NAN, -1.]);
    assert_eq!(eval(arg(ArgKind::ArgMax, 0, false), &[&x]), i64s(&[], &[1]));
    assert_eq!(eval(arg(ArgKind::ArgMin, 0, false), &[x]), i64s(&[], &[1]));
    let x = f64s(&[3], &[NAN, 2., 3.]);
    assert_eq!(eval(arg(ArgKind::ArgMax, 0, false), &[&x]), i64s(&[], &[0]));
    assert_eq!(eval(arg(ArgKind::ArgMin, 0, false), &[x]), i64s(&[], &[0]));
}

#[test]
fn size_one_axes() {
    let x = f32s(&[1, 3, 1], &[4., -1., 2.]);
    assert_eq!(
        eval(reduce(ReduceKind::Sum, &[0, 2], false), &[&x]),
        f32s(&[3], &[4., -1., 2.])
    );
    assert_eq!(
        eval(arg(ArgKind::ArgMax, 2, true), &[x]),
        i64s(&[1, 3, 1], &[0, 0, 0])
    );
}

#[test]
fn softmax_normalises_each_line_of_its_axis() {
    // Along the last axis: e^{x - max} / Σ; the line [0, ln 2, ln 3] gives [1, 2, 3]/6.
    let (l2, l3) = (2f64.ln(), 3f64.ln());
    let x = f64s(&[2, 3], &[0.0, l2, l3, 1000.0, 1000.0, 1000.0]);
    let r = eval(Op::Softmax { axis: 1 }, &[&x]);
    let third = 1.0 / 3.0;
    assert_close(
        &r,
        DType::F64,
        &[2, 3],
        &[1. / 6., 2. / 6., 3. / 6., third, third, third],
        1e-15,
    );
    // Along a middle axis of [2, 2, 2]: lines are x[o, :, i].
    let x = f32s(&[2, 2, 2], &[0., 5., l2 as f32, 5., 1., 1., 1., 1.]);
    let r = eval(Op::Softmax { axis: 1 }, &[&x]);
    assert_close(
        &r,
        DType::F32,
        &[2, 2, 2],
        &[1. / 3., 0.5, 2. / 3., 0.5, 0.5, 0.5, 0.5, 0.5],
        1e-7,
    );
}

#[test]
fn softmax_lines_with_nan_or_infinities_are_nan_as_in_pytorch() {
    let (inf, ninf) = (f32::INFINITY, f32::NEG_INFINITY);
    let x = f32s(
        &[4, 3],
        &[
            1.,
            f32::NAN,
            2.,
            1.,
            inf,
            2.,
            ninf,
            ninf,
            ninf,
            ninf,
            0.,
            ninf,
        ],
    );
    let r = eval(Op::Softmax { axis: 1 }, &[&x]);
    assert_close(
        &r,
        DType::F32,
        &[4, 3],
        &[NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0., 1., 0.],
        0.0,
    );
}

#[test]
fn softmax_of_integers_or_out_of_range_axis_is_a_type_error() {
    let err = |dtype: DType, axis: usize| {
        let mut g = onde_ir::Graph::new();
        let x = input(&mut g, "x", ty(dtype, &[2, 3]));
        g.add_op(Op::Softmax { axis }, &[x], None)
            .unwrap_err()
            .to_string()
    };
    let e = err(DType::I64, 1);
    assert!(e.contains("softmax") && e.contains("f32 and f64"), "{e}");
    let e = err(DType::F32, 2);
    assert!(e.contains("axis 2 out of range for rank 2"), "{e}");
}

/// The line functions the compiled code shares refuse operands of the wrong length
/// with a typed error (no out-of-range index).
#[test]
fn line_functions_refuse_wrong_lengths() {
    let (x, mut out) = (vec![0f32; 6], vec![0f32; 5]);
    let err =
        onde_runtime::softmax_lines(&x, &mut out, (2, 3, 1), &mut Vec::new(), f64::from, |v| {
            v as f32
        })
        .unwrap_err();
    assert_eq!(
        (err.operand, err.expected, err.actual),
        ("out", 6, 5),
        "{err}"
    );
    let mut out = vec![0f32; 6];
    let err =
        onde_runtime::softmax_backward_lines(&x, &x[..4], &mut out, (2, 3, 1), f64::from, |v| {
            v as f32
        })
        .unwrap_err();
    assert_eq!(
        (err.operand, err.expected, err.actual),
        ("y", 6, 4),
        "{err}"
    );
    assert!(err.to_string().contains("softmax_backward_lines"), "{err}");
    // An element count that overflows is refused too.
    let err = onde_runtime::softmax_lines(
        &x,
        &mut out,
        (usize::MAX, 2, 1),
        &mut Vec::new(),
        f64::from,
        |v| v as f32,
    )
    .unwrap_err();
    assert_eq!(err.expected, usize::MAX);
}
