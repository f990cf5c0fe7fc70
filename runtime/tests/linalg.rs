//! Matrix products and convolutions.

use crate::common;

use common::*;
use onde_ir::{ConvParams, Op};

#[test]
fn matmul_2d() {
    let a = f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let b = f32s(&[3, 2], &[7., 8., 9., 10., 11., 12.]);
    assert_eq!(
        eval(Op::MatMul, &[a, b]),
        f32s(&[2, 2], &[58., 64., 139., 154.])
    );
}

#[test]
fn matmul_i64_with_negatives() {
    let a = i64s(&[1, 2], &[-1, 2]);
    let b = i64s(&[2, 3], &[1, 0, -3, 4, 5, 6]);
    assert_eq!(eval(Op::MatMul, &[a, b]), i64s(&[1, 3], &[7, 10, 15]));
}

#[test]
fn matmul_batched_with_broadcast_batch() {
    // a: [2, 1, 2, 2] holds I and 2I; b: [3, 2, 2] holds [[j, 1], [0, j]] for j = 0..3.
    let a = f64s(&[2, 1, 2, 2], &[1., 0., 0., 1., 2., 0., 0., 2.]);
    let b = f64s(
        &[3, 2, 2],
        &[0., 1., 0., 0., 1., 1., 0., 1., 2., 1., 0., 2.],
    );
    let r = eval(Op::MatMul, &[a, b]);
    let mut want = Vec::new();
    for i in 1..=2 {
        for j in 0..3 {
            let s = f64::from(i);
            let j = f64::from(j);
            want.extend([s * j, s, 0., s * j]);
        }
    }
    assert_eq!(r, f64s(&[2, 3, 2, 2], &want));
}

#[test]
fn matmul_batch_broadcast_from_rank_2() {
    // [2, 2] @ [2, 2, 1]: the matrix is reused for both batch entries.
    let a = i64s(&[2, 2], &[1, 2, 3, 4]);
    let b = i64s(&[2, 2, 1], &[1, 1, 0, -1]);
    assert_eq!(eval(Op::MatMul, &[a, b]), i64s(&[2, 2, 1], &[3, 7, -2, -4]));
}

#[test]
fn matmul_empty_inner_dimension_is_zero() {
    let a = f32s(&[2, 0], &[]);
    let b = f32s(&[0, 3], &[]);
    assert_eq!(eval(Op::MatMul, &[a, b]), f32s(&[2, 3], &[0.; 6]));
    let a = f32s(&[0, 2], &[]);
    let b = f32s(&[2, 3], &[1.; 6]);
    assert_eq!(eval(Op::MatMul, &[a, b]), f32s(&[0, 3], &[]));
}

fn conv1d(stride: usize, pad: (usize, usize), dilation: usize, groups: usize) -> Op {
    Op::Conv(ConvParams {
        stride: vec![stride],
        padding: vec![pad],
        dilation: vec![dilation],
        groups,
    })
}

fn x5() -> onde_ir::Array {
    f32s(&[1, 1, 5], &[1., 2., 3., 4., 5.])
}

fn w123() -> onde_ir::Array {
    f32s(&[1, 1, 3], &[1., 2., 3.])
}

#[test]
fn conv1d_is_cross_correlation() {
    // out[o] = x[o] + 2x[o+1] + 3x[o+2] (no kernel flip).
    let r = eval(conv1d(1, (0, 0), 1, 1), &[x5(), w123()]);
    assert_eq!(r, f32s(&[1, 1, 3], &[14., 20., 26.]));
}

#[test]
fn conv1d_stride_and_padding() {
    // Padded input [0, 1, 2, 3, 4, 5, 0], windows at 0, 2, 4.
    let r = eval(conv1d(2, (1, 1), 1, 1), &[x5(), w123()]);
    assert_eq!(r, f32s(&[1, 1, 3], &[8., 20., 14.]));
    // Asymmetric padding [0, 0, 1, 2, 3, 4, 5].
    let r = eval(conv1d(1, (2, 0), 1, 1), &[x5(), w123()]);
    assert_eq!(r, f32s(&[1, 1, 5], &[3., 8., 14., 20., 26.]));
    // Stride that does not divide evenly: (5 - 3) / 3 + 1 = 1 output.
    let r = eval(conv1d(3, (0, 0), 1, 1), &[x5(), w123()]);
    assert_eq!(r, f32s(&[1, 1, 1], &[14.]));
}

#[test]
fn conv1d_dilation() {
    // Taps at 0, 2, 4: 1 + 2·3 + 3·5.
    let r = eval(conv1d(1, (0, 0), 2, 1), &[x5(), w123()]);
    assert_eq!(r, f32s(&[1, 1, 1], &[22.]));
    // With padding (2, 2): padded [0, 0, 1, 2, 3, 4, 5, 0, 0], taps o, o+2, o+4.
    let r = eval(conv1d(2, (2, 2), 2, 1), &[x5(), w123()]);
    // o = 0: 0 + 2·1 + 3·3 = 11; o = 2: 1 + 2·3 + 3·5 = 22; o = 4: 3 + 2·5 + 0 = 13.
    assert_eq!(r, f32s(&[1, 1, 3], &[11., 22., 13.]));
}

#[test]
fn conv1d_groups() {
    // 4 input channels, 2 groups: out 0 reads channels 0-1, out 1 reads channels 2-3.
    let x = f64s(
        &[1, 4, 3],
        &[
            1., 2., 3., 10., 20., 30., 100., 200., 300., 1000., 2000., 3000.,
        ],
    );
    let w = f64s(&[2, 2, 1], &[1., 2., 3., 4.]);
    let r = eval(conv1d(1, (0, 0), 1, 2), &[x, w]);
    assert_eq!(r, f64s(&[1, 2, 3], &[21., 42., 63., 4300., 8600., 12900.]));
}

#[test]
fn conv1d_depthwise() {
    // groups == channels: each channel has its own kernel.
    let x = f32s(&[1, 2, 4], &[1., 2., 3., 4., 5., 6., 7., 8.]);
    let w = f32s(&[2, 1, 2], &[1., -1., 2., 1.]);
    let r = eval(conv1d(1, (0, 0), 1, 2), &[x.clone(), w]);
    assert_eq!(r, f32s(&[1, 2, 3], &[-1., -1., -1., 16., 19., 22.]));
    // Channel multiplier 2: outputs 0-1 read channel 0, outputs 2-3 read channel 1.
    let w = f32s(&[4, 1, 1], &[1., -1., 10., 0.5]);
    let r = eval(conv1d(1, (0, 0), 1, 2), &[x, w]);
    assert_eq!(
        r,
        f32s(
            &[1, 4, 4],
            &[1., 2., 3., 4., -1., -2., -3., -4., 50., 60., 70., 80., 2.5, 3., 3.5, 4.]
        )
    );
}

#[test]
fn conv1d_batch_and_multiple_channels() {
    let x = f32s(&[2, 1, 3], &[1., 2., 3., 4., 5., 6.]);
    let w = f32s(&[2, 1, 2], &[1., 1., 1., -1.]);
    let r = eval(conv1d(1, (0, 0), 1, 1), &[x, w]);
    assert_eq!(r, f32s(&[2, 2, 2], &[3., 5., -1., -1., 9., 11., -1., -1.]));
    // Two input channels summed into one output.
    let x = f32s(&[1, 2, 2], &[1., 2., 3., 4.]);
    let w = f32s(&[1, 2, 1], &[10., 100.]);
    let r = eval(conv1d(1, (0, 0), 1, 1), &[x, w]);
    assert_eq!(r, f32s(&[1, 1, 2], &[310., 420.]));
}

fn conv2d(stride: usize, pad: usize) -> Op {
    Op::Conv(ConvParams {
        stride: vec![stride; 2],
        padding: vec![(pad, pad); 2],
        dilation: vec![1; 2],
        groups: 1,
    })
}

#[test]
fn conv2d_small() {
    let x = f32s(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    let w = f32s(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let r = eval(conv2d(1, 0), &[x.clone(), w.clone()]);
    assert_eq!(r, f32s(&[1, 1, 2, 2], &[37., 47., 67., 77.]));
    // Padding 1 and stride 2: windows at padded (0,0), (0,2), (2,0), (2,2).
    let r = eval(conv2d(2, 1), &[x, w]);
    assert_eq!(r, f32s(&[1, 1, 2, 2], &[4., 18., 36., 77.]));
}

#[test]
fn conv2d_mixed_parameters_f64() {
    // Stride (1, 2), padding ((0, 0), (1, 0)), dilation (2, 1) on a 3×4 input.
    let x = f64s(
        &[1, 1, 3, 4],
        &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.],
    );
    let w = f64s(&[1, 1, 2, 2], &[1., 0., 0., 1.]);
    let op = Op::Conv(ConvParams {
        stride: vec![1, 2],
        padding: vec![(0, 0), (1, 0)],
        dilation: vec![2, 1],
        groups: 1,
    });
    // Rows: taps r and r+2 (one output row). Cols: padded [0, c0..c3], windows at 0, 2.
    // out[0, 0] = w00·xp[0][0] + w11·xp[2][1] = 0 + x[2][0] = 9.
    // out[0, 1] = xp[0][2] + xp[2][3] = x[0][1] + x[2][2] = 2 + 11 = 13.
    assert_eq!(eval(op, &[x, w]), f64s(&[1, 1, 1, 2], &[9., 13.]));
}
