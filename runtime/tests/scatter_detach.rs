//! `scatter_add` (the adjoint of gather) and `detach` (identity in value).

use crate::common;
use common::*;
use onde_ir::{DType, Op, Shape};
use onde_runtime::InterpError;

#[test]
fn scatter_add_sums_repeated_indices_along_axis_1() {
    // out = zeros(2, 3); out[i, idx[i, j]] += src[i, j]
    let idx = i64s(&[2, 2], &[0, 0, 2, 1]);
    let src = f32s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let op = Op::ScatterAdd {
        axis: 1,
        shape: Shape::new([2, 3]),
    };
    let r = eval(op, &[&idx, &src]);
    assert_close(
        &r,
        DType::F32,
        &[2, 3],
        &[3.0, 0.0, 0.0, 0.0, 4.0, 3.0],
        0.0,
    );
}

#[test]
fn scatter_add_axis_0_with_a_smaller_index_and_i64() {
    // out = zeros(3, 2); out[idx[i, j], j] += src[i, j] for idx of shape [1, 2]
    let idx = i64s(&[1, 2], &[2, 0]);
    let src = i64s(&[1, 2], &[5, 7]);
    let op = Op::ScatterAdd {
        axis: 0,
        shape: Shape::new([3, 2]),
    };
    let r = eval(op, &[&idx, &src]);
    assert_eq!(r.as_i64().unwrap(), &[0, 7, 0, 0, 5, 0]);
}

#[test]
fn scatter_add_out_of_range_index_is_an_error() {
    let idx = i64s(&[2], &[0, 3]);
    let src = f64s(&[2], &[1.0, 1.0]);
    let op = Op::ScatterAdd {
        axis: 0,
        shape: Shape::new([3]),
    };
    let e = try_eval(op, &[&idx, &src]).unwrap_err();
    assert!(
        matches!(
            e,
            InterpError::GatherIndexOutOfRange {
                index: 3,
                extent: 3,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn detach_is_the_identity_in_value() {
    let x = f64s(&[3], &[1.0, -2.0, f64::NAN]);
    let r = eval(Op::Detach, &[&x]);
    assert_close(&r, DType::F64, &[3], &[1.0, -2.0, f64::NAN], 0.0);
}
