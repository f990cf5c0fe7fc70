//! Elementwise ops: unary, binary (with broadcasting), comparisons, where, cast.

use crate::common;

use common::*;
use onde_ir::{BinaryOp, CmpOp, DType, Op, UnaryOp};

const NAN: f64 = f64::NAN;

#[test]
fn add_broadcasts_column_and_row() {
    let a = f32s(&[3, 1], &[1., 2., 3.]);
    let b = f32s(&[1, 4], &[10., 20., 30., 40.]);
    let r = eval(Op::Binary(BinaryOp::Add), &[a, b]);
    assert_eq!(
        r,
        f32s(
            &[3, 4],
            &[11., 21., 31., 41., 12., 22., 32., 42., 13., 23., 33., 43.]
        )
    );
}

#[test]
fn scalar_and_tensor_broadcast_both_ways() {
    let s = f64s(&[], &[2.5]);
    let t = f64s(&[2], &[1., -1.]);
    assert_eq!(
        eval(Op::Binary(BinaryOp::Sub), &[s.clone(), t.clone()]),
        f64s(&[2], &[1.5, 3.5])
    );
    assert_eq!(
        eval(Op::Binary(BinaryOp::Sub), &[t, s]),
        f64s(&[2], &[-1.5, -3.5])
    );
}

#[test]
fn broadcast_with_empty_axis() {
    let a = f32s(&[0, 3], &[]);
    let b = f32s(&[1, 3], &[1., 2., 3.]);
    let r = eval(Op::Binary(BinaryOp::Mul), &[a, b]);
    assert_eq!(r, f32s(&[0, 3], &[]));
}

#[test]
fn broadcast_adds_leading_axes() {
    let a = i64s(&[2, 1, 3], &[1, 2, 3, 4, 5, 6]);
    let b = i64s(&[2, 1], &[10, 20]);
    let r = eval(Op::Binary(BinaryOp::Add), &[a, b]);
    assert_eq!(
        r,
        i64s(
            &[2, 2, 3],
            &[11, 12, 13, 21, 22, 23, 14, 15, 16, 24, 25, 26]
        )
    );
}

#[test]
fn float_arithmetic() {
    let a = f32s(&[4], &[1., -3., 2., 9.]);
    let b = f32s(&[4], &[2., 4., 3., 0.5]);
    let op = |o| eval(Op::Binary(o), &[a.clone(), b.clone()]);
    assert_eq!(op(BinaryOp::Add), f32s(&[4], &[3., 1., 5., 9.5]));
    assert_eq!(op(BinaryOp::Sub), f32s(&[4], &[-1., -7., -1., 8.5]));
    assert_eq!(op(BinaryOp::Mul), f32s(&[4], &[2., -12., 6., 4.5]));
    assert_eq!(op(BinaryOp::Div), f32s(&[4], &[0.5, -0.75, 2. / 3., 18.]));
    assert_eq!(op(BinaryOp::Pow), f32s(&[4], &[1., 81., 8., 3.]));
    assert_eq!(op(BinaryOp::Max), f32s(&[4], &[2., 4., 3., 9.]));
    assert_eq!(op(BinaryOp::Min), f32s(&[4], &[1., -3., 2., 0.5]));
}

#[test]
fn division_by_zero_and_pow_follow_ieee() {
    let a = f64s(&[3], &[1., -1., 0.]);
    let b = f64s(&[3], &[0., 0., 0.]);
    let r = eval(Op::Binary(BinaryOp::Div), &[a, b]);
    assert_close(
        &r,
        DType::F64,
        &[3],
        &[f64::INFINITY, f64::NEG_INFINITY, NAN],
        0.0,
    );
    let r = eval(
        Op::Binary(BinaryOp::Pow),
        &[f64s(&[2], &[-8., 0.]), f64s(&[2], &[1. / 3., 0.])],
    );
    assert_close(&r, DType::F64, &[2], &[NAN, 1.], 0.0);
}

#[test]
fn maximum_minimum_propagate_nan() {
    let a = f64s(&[3], &[1., NAN, -2.]);
    let b = f64s(&[3], &[3., 1., NAN]);
    let r = eval(Op::Binary(BinaryOp::Max), &[a.clone(), b.clone()]);
    assert_close(&r, DType::F64, &[3], &[3., NAN, NAN], 0.0);
    let r = eval(Op::Binary(BinaryOp::Min), &[a, b]);
    assert_close(&r, DType::F64, &[3], &[1., NAN, NAN], 0.0);
}

#[test]
fn i64_arithmetic_wraps() {
    let a = i64s(&[4], &[5, -3, i64::MAX, i64::MIN]);
    let b = i64s(&[4], &[-2, 7, 1, 2]);
    let op = |o| eval(Op::Binary(o), &[a.clone(), b.clone()]);
    assert_eq!(
        op(BinaryOp::Add),
        i64s(&[4], &[3, 4, i64::MIN, i64::MIN + 2])
    );
    assert_eq!(
        op(BinaryOp::Sub),
        i64s(&[4], &[7, -10, i64::MAX - 1, i64::MAX - 1])
    );
    assert_eq!(op(BinaryOp::Mul), i64s(&[4], &[-10, -21, i64::MAX, 0]));
    assert_eq!(op(BinaryOp::Max), i64s(&[4], &[5, 7, i64::MAX, 2]));
    assert_eq!(op(BinaryOp::Min), i64s(&[4], &[-2, -3, 1, i64::MIN]));
}

#[test]
fn logical_ops_broadcast() {
    let a = bools(&[2, 1], &[true, false]);
    let b = bools(&[2], &[true, false]);
    assert_eq!(
        eval(Op::Binary(BinaryOp::And), &[a.clone(), b.clone()]),
        bools(&[2, 2], &[true, false, false, false])
    );
    assert_eq!(
        eval(Op::Binary(BinaryOp::Or), &[a.clone(), b]),
        bools(&[2, 2], &[true, true, true, false])
    );
    assert_eq!(
        eval(Op::Unary(UnaryOp::Not), &[a]),
        bools(&[2, 1], &[false, true])
    );
}

#[test]
fn sign_abs_neg_relu_on_floats() {
    let x = f32s(&[5], &[-2., 0., 3., f32::NAN, -0.]);
    let u = |o| eval(Op::Unary(o), &[&x]);
    assert_close(
        &u(UnaryOp::Sign),
        DType::F32,
        &[5],
        &[-1., 0., 1., 0., 0.], // sign(NaN) = 0, as PyTorch
        0.0,
    );
    assert_close(
        &u(UnaryOp::Abs),
        DType::F32,
        &[5],
        &[2., 0., 3., NAN, 0.],
        0.0,
    );
    assert_close(
        &u(UnaryOp::Neg),
        DType::F32,
        &[5],
        &[2., -0., -3., NAN, 0.],
        0.0,
    );
    assert_close(
        &u(UnaryOp::Relu),
        DType::F32,
        &[5],
        &[0., 0., 3., NAN, 0.],
        0.0,
    );
}

#[test]
fn integer_unary_ops() {
    let x = i64s(&[4], &[-5, 0, 7, i64::MIN]);
    let u = |o| eval(Op::Unary(o), &[&x]);
    assert_eq!(u(UnaryOp::Neg), i64s(&[4], &[5, 0, -7, i64::MIN]));
    assert_eq!(u(UnaryOp::Abs), i64s(&[4], &[5, 0, 7, i64::MIN]));
    assert_eq!(u(UnaryOp::Sign), i64s(&[4], &[-1, 0, 1, -1]));
    assert_eq!(u(UnaryOp::Relu), i64s(&[4], &[0, 0, 7, 0]));
}

#[test]
fn transcendental_unary_ops() {
    let x = f64s(&[3], &[-1.5, 0.0, 2.0]);
    let u = |o| eval(Op::Unary(o), &[&x]);
    let e = |f: fn(f64) -> f64| [-1.5f64, 0.0, 2.0].map(f);
    assert_close(&u(UnaryOp::Exp), DType::F64, &[3], &e(f64::exp), 1e-15);
    assert_close(&u(UnaryOp::Sin), DType::F64, &[3], &e(f64::sin), 1e-15);
    assert_close(&u(UnaryOp::Cos), DType::F64, &[3], &e(f64::cos), 1e-15);
    assert_close(&u(UnaryOp::Tanh), DType::F64, &[3], &e(f64::tanh), 1e-15);
    assert_close(
        &u(UnaryOp::Sigmoid),
        DType::F64,
        &[3],
        &[0.182_425_523_806_356_2, 0.5, 0.880_797_077_977_882_3],
        1e-15,
    );
    assert_close(&u(UnaryOp::Floor), DType::F64, &[3], &[-2., 0., 2.], 0.0);
    let y = f32s(&[4], &[4., 1., 0., -1.]);
    let r = eval(Op::Unary(UnaryOp::Sqrt), &[&y]);
    assert_close(&r, DType::F32, &[4], &[2., 1., 0., NAN], 0.0);
    let r = eval(Op::Unary(UnaryOp::Log), &[y]);
    assert_close(
        &r,
        DType::F32,
        &[4],
        &[4f64.ln(), 0., f64::NEG_INFINITY, NAN],
        1e-7,
    );
}

#[test]
fn f32_math_is_f64_rounded_once() {
    let x = f32s(&[1], &[0.1]);
    let r = eval(Op::Unary(UnaryOp::Exp), &[x]);
    assert_eq!(r, f32s(&[1], &[f64::from(0.1f32).exp() as f32]));
}

#[test]
fn comparisons_with_nan() {
    let a = f32s(&[3], &[1., 2., f32::NAN]);
    let b = f32s(&[3], &[2., 2., f32::NAN]);
    let c = |o| eval(Op::Compare(o), &[a.clone(), b.clone()]);
    assert_eq!(c(CmpOp::Eq), bools(&[3], &[false, true, false]));
    assert_eq!(c(CmpOp::Ne), bools(&[3], &[true, false, true]));
    assert_eq!(c(CmpOp::Lt), bools(&[3], &[true, false, false]));
    assert_eq!(c(CmpOp::Le), bools(&[3], &[true, true, false]));
    assert_eq!(c(CmpOp::Gt), bools(&[3], &[false, false, false]));
    assert_eq!(c(CmpOp::Ge), bools(&[3], &[false, true, false]));
}

#[test]
fn comparisons_broadcast_on_i64_and_bool() {
    let a = i64s(&[2, 1], &[-1, 3]);
    let b = i64s(&[3], &[-2, -1, 4]);
    assert_eq!(
        eval(Op::Compare(CmpOp::Ge), &[a, b]),
        bools(&[2, 3], &[true, true, false, true, true, false])
    );
    let p = bools(&[2], &[false, true]);
    let q = bools(&[], &[true]);
    assert_eq!(
        eval(Op::Compare(CmpOp::Lt), &[p, q]),
        bools(&[2], &[true, false])
    );
}

#[test]
fn where_broadcasts_all_three() {
    let c = bools(&[2, 1], &[true, false]);
    let a = i64s(&[3], &[1, 2, 3]);
    let b = i64s(&[], &[0]);
    assert_eq!(
        eval(Op::Where, &[c, a, b]),
        i64s(&[2, 3], &[1, 2, 3, 0, 0, 0])
    );
    let c = bools(&[3], &[false, true, false]);
    let a = f64s(&[3], &[1., 2., 3.]);
    let b = f64s(&[3], &[-1., -2., -3.]);
    assert_eq!(eval(Op::Where, &[c, a, b]), f64s(&[3], &[-1., 2., -3.]));
}

#[test]
fn casts() {
    let x = f32s(&[5], &[-1.7, 1.7, f32::NAN, 0.0, 1e30]);
    assert_eq!(
        eval(Op::Cast { to: DType::I64 }, &[&x]),
        i64s(&[5], &[-1, 1, 0, 0, i64::MAX])
    );
    assert_eq!(
        eval(Op::Cast { to: DType::Bool }, &[x]),
        bools(&[5], &[true, true, true, false, true])
    );
    let b = bools(&[2], &[true, false]);
    assert_eq!(
        eval(Op::Cast { to: DType::F32 }, &[&b]),
        f32s(&[2], &[1., 0.])
    );
    assert_eq!(eval(Op::Cast { to: DType::I64 }, &[b]), i64s(&[2], &[1, 0]));
    let i = i64s(&[3], &[0, 5, -1]);
    assert_eq!(
        eval(Op::Cast { to: DType::Bool }, &[&i]),
        bools(&[3], &[false, true, true])
    );
    assert_eq!(
        eval(Op::Cast { to: DType::F64 }, &[i]),
        f64s(&[3], &[0., 5., -1.])
    );
    // i64 → f32 rounds directly (2^53 + 1 would round twice through f64).
    let big = (1i64 << 53) + 1;
    assert_eq!(
        eval(Op::Cast { to: DType::F32 }, &[i64s(&[1], &[big])]),
        f32s(&[1], &[big as f32])
    );
    assert_eq!(
        eval(Op::Cast { to: DType::F32 }, &[f64s(&[1], &[0.1])]),
        f32s(&[1], &[0.1])
    );
    assert_eq!(
        eval(Op::Cast { to: DType::F64 }, &[f32s(&[1], &[0.1])]),
        f64s(&[1], &[f64::from(0.1f32)])
    );
}

#[test]
fn size_one_and_scalar_shapes() {
    let a = f32s(&[], &[3.]);
    let b = f32s(&[], &[4.]);
    assert_eq!(eval(Op::Binary(BinaryOp::Mul), &[a, b]), f32s(&[], &[12.]));
    let a = f32s(&[1, 1], &[2.]);
    let b = f32s(&[1], &[5.]);
    assert_eq!(
        eval(Op::Binary(BinaryOp::Add), &[a, b]),
        f32s(&[1, 1], &[7.])
    );
}
