//! Data movement and indexing: reshape, permute, expand, slice, unfold, pad, concat,
//! gather.

use crate::common;

use common::*;
use onde_ir::{Op, Shape, SliceAxis};
use onde_runtime::InterpError;

fn sl(start: usize, stop: usize, step: usize) -> SliceAxis {
    SliceAxis { start, stop, step }
}

fn iota_i64(shape: &[usize]) -> onde_ir::Array {
    let n: usize = shape.iter().product();
    i64s(shape, &(0..n as i64).collect::<Vec<_>>())
}

#[test]
fn reshape_keeps_row_major_order() {
    let x = iota_i64(&[2, 3]);
    let r = eval(
        Op::Reshape {
            shape: Shape::new([3, 1, 2]),
        },
        &[x],
    );
    assert_eq!(r, i64s(&[3, 1, 2], &[0, 1, 2, 3, 4, 5]));
    let r = eval(
        Op::Reshape {
            shape: Shape::new([0, 5]),
        },
        &[f32s(&[5, 0], &[])],
    );
    assert_eq!(r, f32s(&[0, 5], &[]));
}

#[test]
fn permute_moves_axes() {
    let x = f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    assert_eq!(
        eval(Op::Permute { perm: vec![1, 0] }, &[x]),
        f32s(&[3, 2], &[1., 4., 2., 5., 3., 6.])
    );
    // out[k, i, j] = x[i, j, k] = 12i + 4j + k.
    let x = iota_i64(&[2, 3, 4]);
    let r = eval(
        Op::Permute {
            perm: vec![2, 0, 1],
        },
        &[x],
    );
    assert_eq!(
        r,
        i64s(
            &[4, 2, 3],
            &[
                0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19,
                23
            ]
        )
    );
}

#[test]
fn expand_broadcasts() {
    let x = f64s(&[3, 1], &[1., 2., 3.]);
    let r = eval(
        Op::Expand {
            shape: Shape::new([2, 3, 2]),
        },
        &[x],
    );
    assert_eq!(
        r,
        f64s(
            &[2, 3, 2],
            &[1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.]
        )
    );
    let r = eval(
        Op::Expand {
            shape: Shape::new([2]),
        },
        &[bools(&[], &[true])],
    );
    assert_eq!(r, bools(&[2], &[true, true]));
    let r = eval(
        Op::Expand {
            shape: Shape::new([0, 2]),
        },
        &[f32s(&[1, 2], &[1., 2.])],
    );
    assert_eq!(r, f32s(&[0, 2], &[]));
}

#[test]
fn slice_with_steps() {
    let x = iota_i64(&[2, 5]);
    let r = eval(
        Op::Slice {
            axes: vec![sl(0, 2, 1), sl(1, 5, 2)],
        },
        &[&x],
    );
    assert_eq!(r, i64s(&[2, 2], &[1, 3, 6, 8]));
    let r = eval(
        Op::Slice {
            axes: vec![sl(1, 2, 1), sl(0, 5, 3)],
        },
        &[&x],
    );
    assert_eq!(r, i64s(&[1, 2], &[5, 8]));
    let r = eval(
        Op::Slice {
            axes: vec![sl(0, 7, 3)],
        },
        &[iota_i64(&[7])],
    );
    assert_eq!(r, i64s(&[3], &[0, 3, 6]));
}

#[test]
fn empty_slices() {
    let x = iota_i64(&[2, 5]);
    let r = eval(
        Op::Slice {
            axes: vec![sl(0, 2, 1), sl(3, 3, 1)],
        },
        &[&x],
    );
    assert_eq!(r, i64s(&[2, 0], &[]));
    let r = eval(
        Op::Slice {
            axes: vec![sl(2, 2, 4), sl(0, 5, 2)],
        },
        &[x],
    );
    assert_eq!(r, i64s(&[0, 3], &[]));
}

#[test]
fn pad_with_constant() {
    let pad = |pads: Vec<(usize, usize)>, v: f64| Op::Pad {
        pads,
        value_bits: v.to_bits(),
    };
    let r = eval(pad(vec![(1, 2)], -1.0), &[f32s(&[2], &[1., 2.])]);
    assert_eq!(r, f32s(&[5], &[-1., 1., 2., -1., -1.]));
    let r = eval(pad(vec![(0, 1), (1, 0)], 0.0), &[f64s(&[1, 1], &[7.])]);
    assert_eq!(r, f64s(&[2, 2], &[0., 7., 0., 0.]));
    // The fill value converts like a cast.
    let r = eval(pad(vec![(1, 0)], 2.7), &[i64s(&[1], &[5])]);
    assert_eq!(r, i64s(&[2], &[2, 5]));
    let r = eval(pad(vec![(0, 1)], 1.0), &[bools(&[1], &[false])]);
    assert_eq!(r, bools(&[2], &[false, true]));
    // Padding an empty axis.
    let r = eval(pad(vec![(1, 1), (0, 0)], 3.0), &[f32s(&[0, 2], &[])]);
    assert_eq!(r, f32s(&[2, 2], &[3., 3., 3., 3.]));
}

#[test]
fn concat_along_axes() {
    let a = f32s(&[2, 2], &[1., 2., 3., 4.]);
    let b = f32s(&[2, 1], &[5., 6.]);
    assert_eq!(
        eval(Op::Concat { axis: 1 }, &[a.clone(), b]),
        f32s(&[2, 3], &[1., 2., 5., 3., 4., 6.])
    );
    let e = f32s(&[0, 2], &[]);
    let c = f32s(&[1, 2], &[7., 8.]);
    assert_eq!(
        eval(Op::Concat { axis: 0 }, &[a.clone(), e, c]),
        f32s(&[3, 2], &[1., 2., 3., 4., 7., 8.])
    );
    assert_eq!(eval(Op::Concat { axis: 0 }, &[&a]), a);
    let r = eval(
        Op::Concat { axis: 0 },
        &[i64s(&[2, 0], &[]), i64s(&[1, 0], &[])],
    );
    assert_eq!(r, i64s(&[3, 0], &[]));
}

#[test]
fn gather_like_torch() {
    // torch.gather(torch.tensor([[1, 2], [3, 4]]), 1, torch.tensor([[0, 0], [1, 0]]))
    let x = i64s(&[2, 2], &[1, 2, 3, 4]);
    let idx = i64s(&[2, 2], &[0, 0, 1, 0]);
    assert_eq!(
        eval(Op::Gather { axis: 1 }, &[x, idx]),
        i64s(&[2, 2], &[1, 1, 4, 3])
    );
    let x = f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let idx = i64s(&[1, 3], &[1, 0, 1]);
    assert_eq!(
        eval(Op::Gather { axis: 0 }, &[x, idx]),
        f32s(&[1, 3], &[4., 2., 6.])
    );
    // The index may be smaller than the input outside the gathered axis.
    let x = iota_i64(&[3, 3]);
    let idx = i64s(&[2, 1], &[2, 0]);
    assert_eq!(
        eval(Op::Gather { axis: 1 }, &[x, idx]),
        i64s(&[2, 1], &[2, 3])
    );
    let x = f32s(&[2], &[1., 2.]);
    assert_eq!(
        eval(Op::Gather { axis: 0 }, &[x, i64s(&[0], &[])]),
        f32s(&[0], &[])
    );
}

#[test]
fn gather_rejects_out_of_range_indices() {
    let x = f32s(&[2, 2], &[1., 2., 3., 4.]);
    for bad in [2, -1] {
        let idx = i64s(&[2, 1], &[0, bad]);
        let err = try_eval(Op::Gather { axis: 1 }, &[x.clone(), idx]).unwrap_err();
        let InterpError::GatherIndexOutOfRange {
            index,
            extent,
            axis,
            ..
        } = err
        else {
            panic!("unexpected error {err}");
        };
        assert_eq!((index, extent, axis), (bad, 2, 1));
    }
}

#[test]
fn unfold_reads_strided_dilated_windows() {
    // out[i, k, p] = x[i, p·step + k·dilation] for x[i, j] = 100i + j, extent 11:
    // size 3, step 3, dilation 2 → span 5, count (11 - 5) / 3 + 1 = 3.
    let x = i64s(
        &[2, 11],
        &(0..2)
            .flat_map(|i| (0..11).map(move |j| 100 * i + j))
            .collect::<Vec<_>>(),
    );
    let op = Op::Unfold {
        axis: 1,
        size: 3,
        step: 3,
        dilation: 2,
    };
    let r = eval(op, &[x]);
    let mut want = Vec::new();
    for i in 0..2 {
        for k in 0..3 {
            for p in 0..3 {
                want.push(100 * i + p * 3 + k * 2);
            }
        }
    }
    assert_eq!(r, i64s(&[2, 3, 3], &want));
    // The window spans the whole axis: one window.
    let op = Op::Unfold {
        axis: 0,
        size: 4,
        step: 1,
        dilation: 1,
    };
    let r = eval(op, &[f32s(&[4], &[1., 2., 3., 4.])]);
    assert_eq!(r, f32s(&[4, 1], &[1., 2., 3., 4.]));
}

#[test]
fn unfold_rejects_windows_that_do_not_fit() {
    let mut g = onde_ir::Graph::new();
    let x = input(&mut g, "x", ty(onde_ir::DType::F32, &[2, 5]));
    let too_wide = Op::Unfold {
        axis: 1,
        size: 3,
        step: 1,
        dilation: 3,
    };
    let err = g.add_op(too_wide, &[x], None).unwrap_err().to_string();
    assert!(err.contains("spans 7") && err.contains("extent 5"), "{err}");
    let zero_step = Op::Unfold {
        axis: 1,
        size: 2,
        step: 0,
        dilation: 1,
    };
    let err = g.add_op(zero_step, &[x], None).unwrap_err().to_string();
    assert!(err.contains("step 0"), "{err}");
    let bad_axis = Op::Unfold {
        axis: 2,
        size: 1,
        step: 1,
        dilation: 1,
    };
    let err = g.add_op(bad_axis, &[x], None).unwrap_err().to_string();
    assert!(err.contains("axis 2 out of range"), "{err}");
}
