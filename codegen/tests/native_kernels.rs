//! The native matmul and convolution kernels against the reference interpreter.
//!
//! Each case builds a one-op graph (`Op::MatMul` / `Op::Conv` on two inputs), runs it
//! with `onde_runtime::run` (which sums in f64 and rounds once) and compares with
//! `|got − want| ≤ tol · (1 + |want|)`: `tol` = 1e-5 for f32, 1e-12 for f64, inputs
//! uniform in [-1, 1] (so sums are O(√k) and the absolute part covers cancellation).
//! Strided operands (transposed, broadcast with stride 0, sliced) are gathered into a
//! dense array for the reference.

use onde_codegen::native::{
    choose_conv_algorithm, conv, conv_with, matmul, ConvAlgorithm, NativeError, Real,
};
use onde_ir::{Array, ConvParams, DType, Graph, Op, TensorType};
use proptest::prelude::*;
use std::collections::HashMap;

/// Test-side view of the element types.
trait Elem: Real {
    const DT: DType;
    const TOL: f64;
    fn of(v: f64) -> Self;
    fn to(self) -> f64;
}

impl Elem for f32 {
    const DT: DType = DType::F32;
    const TOL: f64 = 1e-5;
    fn of(v: f64) -> f32 {
        v as f32
    }
    fn to(self) -> f64 {
        f64::from(self)
    }
}

impl Elem for f64 {
    const DT: DType = DType::F64;
    const TOL: f64 = 1e-12;
    fn of(v: f64) -> f64 {
        v
    }
    fn to(self) -> f64 {
        self
    }
}

/// Deterministic values in [-1, 1] (an LCG; no dependency needed).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn numel(d: &[usize]) -> usize {
    d.iter().product()
}

/// Runs `op` on inputs `a`, `b` (dense, row-major) in the reference interpreter.
fn reference(
    op: Op,
    dt: DType,
    a: (&[usize], &[f64]),
    b: (&[usize], &[f64]),
) -> (Vec<usize>, Vec<f64>) {
    let mut g = Graph::new();
    let mut ids = Vec::new();
    let mut feeds = HashMap::new();
    for (name, (shape, data)) in [("a", a), ("b", b)] {
        let (_, v) = g
            .add_op(
                Op::Input {
                    name: name.into(),
                    ty: TensorType::new(dt, shape.to_vec()),
                },
                &[],
                None,
            )
            .expect("input");
        ids.push(v[0]);
        feeds.insert(
            name.to_string(),
            Array::from_f64(dt, shape.to_vec(), data).expect("array"),
        );
    }
    let (_, out) = g.add_op(op, &ids, None).expect("op type-checks");
    g.set_outputs(vec![out[0]]);
    let res = onde_runtime::run(&g, &feeds).expect("reference run");
    (res[0].shape().dims().to_vec(), res[0].to_f64_vec())
}

#[track_caller]
fn assert_close<T: Elem>(got: &[T], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g.to();
        assert!(
            (g - w).abs() <= T::TOL * (1.0 + w.abs()),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

/// Dense row-major copy of a strided view.
fn gather(data: &[f64], shape: &[usize], strides: &[isize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(numel(shape));
    let mut idx = vec![0usize; shape.len()];
    if shape.contains(&0) {
        return out;
    }
    loop {
        let off: isize = idx.iter().zip(strides).map(|(&i, &s)| i as isize * s).sum();
        out.push(data[off as usize]);
        let mut ax = shape.len();
        loop {
            if ax == 0 {
                return out;
            }
            ax -= 1;
            idx[ax] += 1;
            if idx[ax] < shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
}

fn contiguous(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![1isize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as isize;
    }
    s
}

/// An operand: raw storage plus the logical view on it.
#[derive(Clone, Debug)]
struct View {
    data: Vec<f64>,
    shape: Vec<usize>,
    strides: Vec<isize>,
}

impl View {
    fn dense(shape: &[usize], seed: u64) -> View {
        View {
            data: values(numel(shape), seed),
            shape: shape.to_vec(),
            strides: contiguous(shape),
        }
    }

    /// The last two axes stored transposed.
    fn transposed(shape: &[usize], seed: u64) -> View {
        let r = shape.len();
        let mut stored = shape.to_vec();
        stored.swap(r - 2, r - 1);
        let mut strides = contiguous(&stored);
        strides.swap(r - 2, r - 1);
        View {
            data: values(numel(shape), seed),
            shape: shape.to_vec(),
            strides,
        }
    }
}

/// The reference result of `a @ b`: output shape and values.
fn matmul_ref(a: &View, b: &View, dt: DType) -> (Vec<usize>, Vec<f64>) {
    let ad = gather(&a.data, &a.shape, &a.strides);
    let bd = gather(&b.data, &b.shape, &b.strides);
    reference(Op::MatMul, dt, (&a.shape, &ad), (&b.shape, &bd))
}

/// Native matmul of two views, checked against `want`; returns the native result.
fn matmul_native<T: Elem>(
    a: &View,
    b: &View,
    want: &(Vec<usize>, Vec<f64>),
    threads: usize,
) -> Vec<T> {
    let ar: Vec<T> = a.data.iter().map(|&v| T::of(v)).collect();
    let br: Vec<T> = b.data.iter().map(|&v| T::of(v)).collect();
    let mut out = vec![T::of(f64::NAN); numel(&want.0)];
    matmul(
        &ar, &a.shape, &a.strides, &br, &b.shape, &b.strides, &mut out, threads,
    )
    .expect("native matmul");
    assert_close(
        &out,
        &want.1,
        &format!("{:?} @ {:?}, threads {threads}", a.shape, b.shape),
    );
    out
}

fn check_matmul<T: Elem>(a: &View, b: &View, threads: usize) -> Vec<T> {
    matmul_native(a, b, &matmul_ref(a, b, T::DT), threads)
}

fn matmul_2d_odd_sizes<T: Elem>() {
    let sizes = [1, 7, 33, 65];
    for &m in &sizes {
        for &k in &sizes {
            for &n in &sizes {
                check_matmul::<T>(&View::dense(&[m, k], 1), &View::dense(&[k, n], 2), 1);
            }
        }
    }
}

#[test]
fn matmul_2d_odd_sizes_f32() {
    matmul_2d_odd_sizes::<f32>();
}

#[test]
fn matmul_2d_odd_sizes_f64() {
    matmul_2d_odd_sizes::<f64>();
}

fn matmul_broadcast_batch<T: Elem>() {
    // [2,1,3,4] @ [5,4,2] -> [2,5,3,2]
    check_matmul::<T>(
        &View::dense(&[2, 1, 3, 4], 3),
        &View::dense(&[5, 4, 2], 4),
        1,
    );
    check_matmul::<T>(
        &View::dense(&[5, 4, 2], 3),
        &View::dense(&[2, 1, 2, 6], 4),
        1,
    );
    // Batch only on one side.
    check_matmul::<T>(&View::dense(&[3, 7], 5), &View::dense(&[4, 7, 2], 6), 1);
    check_matmul::<T>(&View::dense(&[2, 3, 7, 5], 5), &View::dense(&[5, 9], 6), 1);
}

#[test]
fn matmul_broadcast_batch_f32() {
    matmul_broadcast_batch::<f32>();
}

#[test]
fn matmul_broadcast_batch_f64() {
    matmul_broadcast_batch::<f64>();
}

fn matmul_strided_views<T: Elem>() {
    // Transposed operands (x.transpose(-1, -2) without a copy).
    check_matmul::<T>(&View::transposed(&[33, 7], 7), &View::dense(&[7, 65], 8), 1);
    check_matmul::<T>(
        &View::dense(&[5, 33], 7),
        &View::transposed(&[33, 17], 8),
        1,
    );
    check_matmul::<T>(
        &View::transposed(&[3, 9, 11], 9),
        &View::transposed(&[3, 11, 4], 10),
        1,
    );
    // Stride-0 broadcast: the same matrix for every batch entry, and a row repeated.
    let b = View {
        data: values(7 * 5, 11),
        shape: vec![4, 7, 5],
        strides: vec![0, 5, 1],
    };
    check_matmul::<T>(&View::dense(&[4, 3, 7], 12), &b, 1);
    let a = View {
        data: values(7, 13),
        shape: vec![6, 7],
        strides: vec![0, 1],
    };
    check_matmul::<T>(&a, &View::dense(&[7, 3], 14), 1);
    // A sliced view: rows 1.. step 2, columns 3..3+6 of a [20, 12] matrix, passed as a
    // sub-slice starting at its first element.
    let big = values(20 * 12, 15);
    let a = View {
        data: big[12 + 3..].to_vec(),
        shape: vec![8, 6],
        strides: vec![24, 1],
    };
    check_matmul::<T>(&a, &View::dense(&[6, 10], 16), 1);
}

#[test]
fn matmul_strided_views_f32() {
    matmul_strided_views::<f32>();
}

#[test]
fn matmul_strided_views_f64() {
    matmul_strided_views::<f64>();
}

/// One-row products (`[1, k] @ [k, n]`, a depthwise kernel gradient at the padded
/// borders): dot products for `8 ≤ k < 1024` and `n ≤ 64`, the long-dot kernel or the
/// library otherwise; the windows of a row as `b` (row stride 1, column stride 4, as
/// the unfold view of a dilation-4 layer) and dense operands, batched.
fn matmul_one_row_products<T: Elem>() {
    for k in [8usize, 16, 1023, 1500] {
        for n in [1usize, 9, 64, 65] {
            let a = View::dense(&[32, 1, k], 30 + k as u64);
            let windows = View {
                data: values(32 * (k + 4 * n), 40 + n as u64),
                shape: vec![32, k, n],
                strides: vec![(k + 4 * n) as isize, 1, 4],
            };
            check_matmul::<T>(&a, &windows, 1);
            check_matmul::<T>(&a, &windows, 2);
            check_matmul::<T>(&a, &View::dense(&[k, n], 50), 1);
        }
    }
}

#[test]
fn matmul_one_row_products_f32() {
    matmul_one_row_products::<f32>();
}

#[test]
fn matmul_one_row_products_f64() {
    matmul_one_row_products::<f64>();
}

/// Threads never change a result, not even in the last bit.
fn matmul_threads_agree<T: Elem>() {
    let cases: [(&[usize], &[usize]); 4] = [
        (&[200, 100], &[100, 120]),     // one product: rows split
        (&[3, 150, 64], &[64, 130]),    // batch split
        (&[1, 90, 300], &[2, 300, 50]), // broadcast batch of 2
        (&[1, 2000], &[2000, 700]),     // m = 1: cannot split
    ];
    for (i, (sa, sb)) in cases.into_iter().enumerate() {
        let (a, b) = (
            View::dense(sa, 20 + i as u64),
            View::dense(sb, 40 + i as u64),
        );
        let want = matmul_ref(&a, &b, T::DT);
        let one = matmul_native::<T>(&a, &b, &want, 1);
        let two = matmul_native::<T>(&a, &b, &want, 2);
        assert!(one == two, "{sa:?} @ {sb:?}: threads 1 and 2 differ");
    }
}

#[test]
fn matmul_threads_agree_f32() {
    matmul_threads_agree::<f32>();
}

#[test]
fn matmul_threads_agree_f64() {
    matmul_threads_agree::<f64>();
}

#[test]
fn matmul_empty_and_k0() {
    // k = 0: zeros; m = 0: nothing.
    let mut out = vec![7.0f32; 6];
    matmul::<f32>(&[], &[2, 0], &[0, 1], &[], &[0, 3], &[3, 1], &mut out, 1).expect("k = 0");
    assert!(out.iter().all(|&v| v == 0.0));
    let mut none: Vec<f64> = vec![];
    matmul::<f64>(
        &[],
        &[0, 4],
        &[4, 1],
        &[0.0; 8],
        &[4, 2],
        &[2, 1],
        &mut none,
        2,
    )
    .expect("m = 0");
}

#[test]
fn matmul_bad_input_is_an_error() {
    let a = vec![0.0f32; 12];
    let b = vec![0.0f32; 12];
    let mut out = vec![0.0f32; 9];
    let run = |ash: &[usize], ast: &[isize], bsh: &[usize], bst: &[isize], len: usize| {
        let mut o = vec![0.0f32; len];
        matmul(&a, ash, ast, &b, bsh, bst, &mut o, 1)
    };
    // Inner dimensions differ.
    assert!(matches!(
        run(&[3, 4], &[4, 1], &[3, 4], &[4, 1], 12),
        Err(NativeError::Shape { .. })
    ));
    // Rank 1.
    assert!(run(&[12], &[1], &[12, 1], &[1, 1], 1).is_err());
    // Stride count differs from rank.
    assert!(run(&[3, 4], &[4], &[4, 3], &[3, 1], 9).is_err());
    // Batch shapes do not broadcast.
    assert!(run(&[2, 1, 3], &[3, 3, 1], &[3, 3, 1], &[3, 1, 1], 6).is_err());
    // Output length.
    assert!(matches!(
        run(&[3, 4], &[4, 1], &[4, 3], &[3, 1], 8),
        Err(NativeError::Length { .. })
    ));
    // View outside its slice.
    assert!(matches!(
        run(&[3, 4], &[5, 1], &[4, 3], &[3, 1], 9),
        Err(NativeError::OutOfBounds { .. })
    ));
    // Negative stride.
    assert!(matches!(
        run(&[3, 4], &[4, -1], &[4, 3], &[3, 1], 9),
        Err(NativeError::OutOfBounds { .. })
    ));
    // The untouched good call still works.
    matmul(&a, &[3, 4], &[4, 1], &b, &[4, 3], &[3, 1], &mut out, 1).expect("good call");
}

// ---------------------------------------------------------------------------------
// Convolution

#[derive(Clone, Debug)]
struct ConvCase {
    x: Vec<usize>,
    w: Vec<usize>,
    p: ConvParams,
}

#[allow(clippy::too_many_arguments)]
fn conv1d(
    b: usize,
    cin: usize,
    l: usize,
    cout: usize,
    k: usize,
    s: usize,
    pad: (usize, usize),
    d: usize,
    groups: usize,
) -> ConvCase {
    ConvCase {
        x: vec![b, cin, l],
        w: vec![cout, cin / groups, k],
        p: ConvParams {
            stride: vec![s],
            padding: vec![pad],
            dilation: vec![d],
            groups,
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn conv2d(
    b: usize,
    cin: usize,
    hw: [usize; 2],
    cout: usize,
    k: [usize; 2],
    s: [usize; 2],
    pad: [(usize, usize); 2],
    d: [usize; 2],
    groups: usize,
) -> ConvCase {
    ConvCase {
        x: vec![b, cin, hw[0], hw[1]],
        w: vec![cout, cin / groups, k[0], k[1]],
        p: ConvParams {
            stride: s.to_vec(),
            padding: pad.to_vec(),
            dilation: d.to_vec(),
            groups,
        },
    }
}

/// Inputs and reference output of a convolution case.
struct ConvRef {
    xd: Vec<f64>,
    wd: Vec<f64>,
    shape: Vec<usize>,
    want: Vec<f64>,
}

fn conv_ref(c: &ConvCase, dt: DType, seed: u64) -> ConvRef {
    let xd = values(numel(&c.x), seed);
    let wd = values(numel(&c.w), seed + 1);
    let (shape, want) = reference(Op::Conv(c.p.clone()), dt, (&c.x, &xd), (&c.w, &wd));
    ConvRef {
        xd,
        wd,
        shape,
        want,
    }
}

/// Native conv (the given algorithm, or the default with `None`), checked against the
/// reference; returns the native result.
fn conv_native<T: Elem>(
    c: &ConvCase,
    r: &ConvRef,
    algo: Option<ConvAlgorithm>,
    threads: usize,
) -> Vec<T> {
    let x: Vec<T> = r.xd.iter().map(|&v| T::of(v)).collect();
    let w: Vec<T> = r.wd.iter().map(|&v| T::of(v)).collect();
    let mut out = vec![T::of(f64::NAN); numel(&r.shape)];
    let mut scratch = Vec::new();
    match algo {
        Some(a) => conv_with(
            a,
            &x,
            &c.x,
            &w,
            &c.w,
            &c.p,
            &mut out,
            &r.shape,
            &mut scratch,
            threads,
        ),
        None => conv(
            &x,
            &c.x,
            &w,
            &c.w,
            &c.p,
            &mut out,
            &r.shape,
            &mut scratch,
            threads,
        ),
    }
    .expect("native conv");
    assert_close(&out, &r.want, &format!("{c:?} {algo:?} threads {threads}"));
    out
}

/// Both algorithms and the default choice.
fn check_conv_all<T: Elem>(c: &ConvCase, seed: u64) {
    let r = conv_ref(c, T::DT, seed);
    conv_native::<T>(c, &r, None, 1);
    conv_native::<T>(c, &r, Some(ConvAlgorithm::Im2colGemm), 1);
    conv_native::<T>(c, &r, Some(ConvAlgorithm::Direct), 1);
}

fn conv1d_cases() -> Vec<ConvCase> {
    vec![
        // dense
        conv1d(2, 3, 20, 4, 3, 1, (1, 1), 1, 1),
        conv1d(2, 3, 23, 5, 3, 2, (0, 0), 2, 1),
        conv1d(1, 4, 17, 3, 4, 3, (2, 0), 1, 1),
        conv1d(2, 5, 9, 2, 5, 1, (4, 4), 3, 1), // kernel span > input, padding makes it fit
        conv1d(2, 2, 30, 3, 2, 5, (1, 3), 1, 1), // stride > kernel
        conv1d(3, 1, 64, 8, 11, 4, (5, 5), 1, 1), // W2's first layer, small
        conv1d(2, 6, 16, 6, 1, 1, (0, 0), 1, 1), // pointwise: no im2col copy
        conv1d(2, 6, 16, 6, 1, 2, (0, 0), 1, 1), // 1x1 with stride
        // groups = 2
        conv1d(2, 4, 17, 6, 3, 2, (1, 2), 1, 2),
        conv1d(2, 6, 19, 4, 3, 1, (2, 2), 2, 2),
        // depthwise, dilated, W2-like padding 4d
        conv1d(2, 4, 25, 4, 9, 1, (4, 4), 1, 4),
        conv1d(2, 4, 70, 4, 9, 1, (8, 8), 2, 4),
        conv1d(2, 3, 100, 3, 9, 1, (16, 16), 4, 3),
        conv1d(2, 4, 41, 8, 3, 2, (1, 1), 1, 4), // channel multiplier 2
        conv1d(1, 4, 50, 4, 5, 3, (0, 2), 2, 4), // strided depthwise
    ]
}

fn conv2d_cases() -> Vec<ConvCase> {
    vec![
        conv2d(2, 3, [9, 8], 4, [3, 2], [2, 1], [(1, 0), (1, 2)], [1, 2], 1),
        conv2d(1, 2, [7, 7], 3, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1),
        conv2d(
            2,
            4,
            [10, 6],
            4,
            [3, 3],
            [2, 2],
            [(1, 1), (0, 1)],
            [1, 1],
            4,
        ), // depthwise
        conv2d(1, 6, [8, 9], 6, [2, 3], [1, 2], [(0, 1), (2, 0)], [2, 1], 3), // groups of 2
        conv2d(
            1,
            4,
            [12, 11],
            2,
            [7, 5],
            [1, 1],
            [(3, 3), (2, 2)],
            [1, 1],
            2,
        ), // 70 taps > one pass
        conv2d(2, 5, [6, 5], 3, [1, 1], [1, 1], [(0, 0), (0, 0)], [1, 1], 1), // pointwise
    ]
}

#[test]
fn conv1d_f32() {
    for (i, c) in conv1d_cases().iter().enumerate() {
        check_conv_all::<f32>(c, 100 + i as u64);
    }
}

#[test]
fn conv1d_f64() {
    for (i, c) in conv1d_cases().iter().enumerate() {
        check_conv_all::<f64>(c, 200 + i as u64);
    }
}

#[test]
fn conv2d_f32() {
    for (i, c) in conv2d_cases().iter().enumerate() {
        check_conv_all::<f32>(c, 300 + i as u64);
    }
}

#[test]
fn conv2d_f64() {
    for (i, c) in conv2d_cases().iter().enumerate() {
        check_conv_all::<f64>(c, 400 + i as u64);
    }
}

#[test]
fn conv_default_algorithm() {
    let pick = |c: &ConvCase| choose_conv_algorithm(&c.x, &c.w, &c.p);
    // W2: depthwise is direct, the first layer and dense layers use the GEMM.
    assert_eq!(
        pick(&conv1d(32, 32, 4000, 32, 9, 1, (4, 4), 1, 32)),
        ConvAlgorithm::Direct
    );
    assert_eq!(
        pick(&conv1d(32, 1, 16000, 32, 11, 4, (5, 5), 1, 1)),
        ConvAlgorithm::Im2colGemm
    );
    assert_eq!(
        pick(&conv1d(32, 32, 4000, 32, 1, 1, (0, 0), 1, 1)),
        ConvAlgorithm::Im2colGemm
    );
    assert_eq!(
        pick(&conv1d(32, 32, 4000, 32, 3, 2, (1, 1), 1, 1)),
        ConvAlgorithm::Im2colGemm
    );
    assert_eq!(
        pick(&conv1d(2, 64, 100, 32, 3, 1, (1, 1), 1, 32)),
        ConvAlgorithm::Direct
    );
}

/// Threads never change a result: big enough cases to take the parallel path, split
/// over (batch, group) blocks and, with batch 1 and one group, over output channels.
fn conv_threads_agree<T: Elem>() {
    // Each has at least 2^20 multiply-adds, the parallel threshold.
    let cases = [
        conv1d(2, 8, 1000, 8, 9, 1, (4, 4), 1, 1),
        conv1d(1, 16, 1000, 16, 9, 1, (4, 4), 1, 1), // channel split
        conv1d(1, 1, 16000, 32, 11, 4, (5, 5), 1, 1), // channel split, first layer
        conv1d(4, 32, 1000, 32, 9, 1, (8, 8), 2, 32), // depthwise
        conv1d(1, 1, 60000, 2, 9, 1, (4, 4), 1, 1),  // direct, channel split
        conv2d(
            2,
            8,
            [32, 32],
            8,
            [3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ),
    ];
    for (i, c) in cases.iter().enumerate() {
        let r = conv_ref(c, T::DT, 500 + i as u64);
        for algo in [ConvAlgorithm::Im2colGemm, ConvAlgorithm::Direct] {
            let one = conv_native::<T>(c, &r, Some(algo), 1);
            let two = conv_native::<T>(c, &r, Some(algo), 2);
            assert!(one == two, "{c:?} {algo:?}: threads 1 and 2 differ");
        }
    }
}

#[test]
fn conv_threads_agree_f32() {
    conv_threads_agree::<f32>();
}

#[test]
fn conv_threads_agree_f64() {
    conv_threads_agree::<f64>();
}

#[test]
fn conv_scratch_is_reused() {
    let c = conv1d(2, 4, 300, 8, 5, 1, (2, 2), 1, 1);
    let x = vec![0.5f32; numel(&c.x)];
    let w = vec![0.25f32; numel(&c.w)];
    let out_shape = [2, 8, 300];
    let mut out = vec![0.0f32; numel(&out_shape)];
    let mut scratch = Vec::new();
    conv(
        &x,
        &c.x,
        &w,
        &c.w,
        &c.p,
        &mut out,
        &out_shape,
        &mut scratch,
        1,
    )
    .expect("first");
    let (ptr, cap) = (scratch.as_ptr(), scratch.capacity());
    assert!(cap > 0, "im2col uses the scratch");
    conv(
        &x,
        &c.x,
        &w,
        &c.w,
        &c.p,
        &mut out,
        &out_shape,
        &mut scratch,
        1,
    )
    .expect("second");
    assert_eq!(
        (scratch.as_ptr(), scratch.capacity()),
        (ptr, cap),
        "no reallocation"
    );
}

#[test]
fn conv_bad_input_is_an_error() {
    let c = conv1d(2, 4, 10, 6, 3, 1, (1, 1), 1, 2);
    let x = vec![0.0f64; numel(&c.x)];
    let w = vec![0.0f64; numel(&c.w)];
    let mut s = Vec::new();
    let mut out = vec![0.0f64; 2 * 6 * 10];
    let good = [2, 6, 10];
    conv(&x, &c.x, &w, &c.w, &c.p, &mut out, &good, &mut s, 1).expect("good call");
    // Wrong output shape.
    assert!(conv(&x, &c.x, &w, &c.w, &c.p, &mut out, &[2, 6, 9], &mut s, 1).is_err());
    // Wrong slice lengths.
    assert!(matches!(
        conv(&x[1..], &c.x, &w, &c.w, &c.p, &mut out, &good, &mut s, 1),
        Err(NativeError::Length { .. })
    ));
    assert!(conv(&x, &c.x, &w, &c.w, &c.p, &mut out[1..], &good, &mut s, 1).is_err());
    // Groups that do not divide, weight channels that disagree, stride 0, dilation 0.
    let mut bad = c.p.clone();
    bad.groups = 3;
    assert!(conv(&x, &c.x, &w, &c.w, &bad, &mut out, &good, &mut s, 1).is_err());
    assert!(conv(&x, &c.x, &w, &[6, 4, 3], &c.p, &mut out, &good, &mut s, 1).is_err());
    let mut bad = c.p.clone();
    bad.stride = vec![0];
    assert!(conv(&x, &c.x, &w, &c.w, &bad, &mut out, &good, &mut s, 1).is_err());
    let mut bad = c.p.clone();
    bad.dilation = vec![0];
    assert!(conv(&x, &c.x, &w, &c.w, &bad, &mut out, &good, &mut s, 1).is_err());
    // Kernel larger than the padded input.
    let long = [6, 2, 13];
    let wl = vec![0.0f64; numel(&long)];
    assert!(conv(&x, &c.x, &wl, &long, &c.p, &mut out, &good, &mut s, 1).is_err());
    // 3-d is not implemented.
    let p3 = ConvParams {
        stride: vec![1; 3],
        padding: vec![(0, 0); 3],
        dilation: vec![1; 3],
        groups: 1,
    };
    let x3 = vec![0.0f64; 8];
    let mut o3 = vec![0.0f64; 1];
    assert!(matches!(
        conv(
            &x3,
            &[1, 1, 2, 2, 2],
            &x3,
            &[1, 1, 2, 2, 2],
            &p3,
            &mut o3,
            &[1, 1, 1, 1, 1],
            &mut s,
            1
        ),
        Err(NativeError::Unsupported { .. })
    ));
}

// ---------------------------------------------------------------------------------
// Random shapes

fn arb_matmul() -> impl Strategy<Value = (View, View)> {
    (
        proptest::collection::vec(1usize..4, 0..3),
        proptest::collection::vec(1usize..4, 0..3),
        1usize..20,
        0usize..20,
        1usize..20,
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(ba, bb, m, k, n, ta, tb, seed)| {
            // Make the batch shapes broadcastable: where both have an axis, keep one of
            // the extents or 1.
            let mut bb = bb;
            let r = ba.len().min(bb.len());
            for i in 0..r {
                let (ia, ib) = (ba.len() - 1 - i, bb.len() - 1 - i);
                if ba[ia] != bb[ib] && ba[ia] != 1 {
                    bb[ib] = if seed % 2 == 0 { 1 } else { ba[ia] };
                }
            }
            let mut sa = ba;
            sa.extend([m, k]);
            let mut sb = bb;
            sb.extend([k, n]);
            let make = |s: &[usize], t: bool, seed: u64| {
                if t {
                    View::transposed(s, seed)
                } else {
                    View::dense(s, seed)
                }
            };
            (make(&sa, ta, seed), make(&sb, tb, seed ^ 0x5555))
        })
}

fn arb_conv() -> impl Strategy<Value = ConvCase> {
    (
        1usize..3,       // batch
        1usize..4,       // groups
        1usize..4,       // channels in per group
        1usize..3,       // channels out per group
        prop::bool::ANY, // 2-d
        proptest::collection::vec(
            (
                1usize..12,
                1usize..5,
                1usize..4,
                0usize..4,
                0usize..4,
                1usize..3,
            ),
            2,
        ),
    )
        .prop_filter_map("kernel must fit", |(b, groups, cig, cog, two_d, axes)| {
            let n = if two_d { 2 } else { 1 };
            let mut x = vec![b, groups * cig];
            let mut w = vec![groups * cog, cig];
            let mut p = ConvParams {
                stride: vec![],
                padding: vec![],
                dilation: vec![],
                groups,
            };
            for &(len, k, s, plo, phi, d) in &axes[..n] {
                onde_ir::typing::conv_out_len(len, k, s, (plo, phi), d)?;
                x.push(len);
                w.push(k);
                p.stride.push(s);
                p.padding.push((plo, phi));
                p.dilation.push(d);
            }
            Some(ConvCase { x, w, p })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matmul_random_f32((a, b) in arb_matmul()) {
        check_matmul::<f32>(&a, &b, 1);
    }

    #[test]
    fn matmul_random_f64((a, b) in arb_matmul()) {
        check_matmul::<f64>(&a, &b, 2);
    }

    #[test]
    fn conv_random_f32(c in arb_conv(), seed in any::<u32>()) {
        check_conv_all::<f32>(&c, u64::from(seed));
    }

    #[test]
    fn conv_random_f64(c in arb_conv(), seed in any::<u32>()) {
        check_conv_all::<f64>(&c, u64::from(seed));
    }
}

/// Largest |got − exact| / max |exact| of an f32 product `[m, k] · [k, n]` at ISA level
/// `isa`, against an f64 reference.
fn f32_product_error(isa: onde_codegen::IsaLevel, m: usize, k: usize, n: usize) -> f64 {
    let a = values(m * k, 11);
    let b = values(k * n, 12);
    let (af, bf): (Vec<f32>, Vec<f32>) = (
        a.iter().map(|&v| v as f32).collect(),
        b.iter().map(|&v| v as f32).collect(),
    );
    let mut out = vec![f32::NAN; m * n];
    onde_codegen::native::matmul_capped(
        isa,
        &af,
        &[m, k],
        &[k as isize, 1],
        &bf,
        &[k, n],
        &[n as isize, 1],
        &mut out,
        1,
    )
    .expect("product");
    let mut worst = 0.0f64;
    let mut scale = 0.0f64;
    for i in 0..m {
        for j in 0..n {
            let exact: f64 = (0..k)
                .map(|p| af[i * k + p] as f64 * bf[p * n + j] as f64)
                .sum();
            worst = worst.max((out[i * n + j] as f64 - exact).abs());
            scale = scale.max(exact.abs());
        }
    }
    worst / scale
}

#[test]
fn f32_products_are_as_accurate_at_every_isa_level() {
    // Long k: every level's library GEMM (gemm's kernels where its own choice is the
    // level — AVX-512 at Avx512, AVX2 at Avx2 on a CPU without AVX-512F or in a build
    // without the `gemm-avx512` feature — else
    // matrixmultiply) sums in blocks; none is more than three times as far from the
    // exact result as the baseline's. gemm's AVX2 kernel is the farthest measured:
    // 1.0e-6 against the baseline's 4.1e-7 on [64,1000]·[1000,96] (emulated Zen 3,
    // `.ci/run-emulated`).
    use onde_codegen::IsaLevel;
    for (m, k, n) in [(16, 4096, 16), (64, 1000, 96), (1, 2000, 70)] {
        let base = f32_product_error(IsaLevel::Baseline, m, k, n);
        for isa in [IsaLevel::Avx2, IsaLevel::Avx512] {
            let e = f32_product_error(isa, m, k, n);
            eprintln!("[{m},{k}]·[{k},{n}] {isa:?}: {e:.2e} (baseline {base:.2e})");
            assert!(
                e <= 3.0 * base + 1e-7,
                "[{m},{k}]·[{k},{n}] {isa:?}: {e:e} vs baseline {base:e}"
            );
        }
    }
}

#[test]
fn batched_times_one_matrix_folds_rows_or_not_and_is_right() {
    // `[2, 3, 4, 5] @ [5, 6]`: contiguous rows fold into one `[24, 5] @ [5, 6]`
    // product; a transposed batch (rows not evenly spaced) and a broadcast single row
    // (m = 1) do not; all against the reference, f32 and f64, 1 and 2 threads.
    let dense = View::dense(&[2, 3, 4, 5], 71);
    let weight = View::dense(&[5, 6], 72);
    let mut transposed = View::dense(&[3, 2, 4, 5], 73);
    // View [2, 3, 4, 5] of a [3, 2, 4, 5] buffer: swap the two batch axes.
    transposed.shape.swap(0, 1);
    transposed.strides.swap(0, 1);
    let single = View::dense(&[4, 1, 5], 74);
    for a in [&dense, &transposed, &single] {
        let want = matmul_ref(a, &weight, DType::F32);
        for threads in [1, 2] {
            matmul_native::<f32>(a, &weight, &want, threads);
        }
        let want = matmul_ref(a, &weight, DType::F64);
        matmul_native::<f64>(a, &weight, &want, 1);
    }
}

/// `matmul_bias_capped`: where the one-panel kernel or the `gemm` crate takes the
/// product, bits equal the product then a separate bias add; elsewhere (a `k` above
/// one `gemm` block or the one-panel kernel's, a level neither runs at) it declines and
/// writes nothing; a short bias or output is a typed error.
#[test]
fn matmul_bias_equals_the_product_then_the_add_or_declines() {
    use onde_codegen::native::matmul::{gemm_crate_at, matmul_bias_capped};
    let f =
        |n: usize, seed: u64| -> Vec<f32> { values(n, seed).iter().map(|&v| v as f32).collect() };
    for isa in onde_codegen::IsaLevel::ALL {
        // Which kernel takes each product: the one-panel kernel on 16 lanes (`a·wᵀ` of
        // 33–112 columns, `k ≤ 80`; `a·w` of 48 or 64 columns, `k ≤ 128`), else `gemm`
        // where it runs and `k` is within `wide::MAX_K_ONTO` (64).
        let sixteen = isa.capped() == onde_codegen::IsaLevel::Avx512;
        let gemm = gemm_crate_at(isa);
        for (m, k, n, transposed, taken) in [
            (600, 64, 128, true, gemm),
            (3200, 64, 64, true, sixteen || gemm),
            // A partial last vector of bias on the one-panel kernel.
            (700, 17, 40, true, sixteen || gemm),
            (600, 65, 48, true, sixteen),
            (600, 90, 48, true, false),
            (3200, 64, 64, false, sixteen || gemm),
            (100, 100, 48, false, sixteen),
            (50, 129, 64, false, false),
        ] {
            let a = f(m * k, 1);
            let w = f(n * k, 2);
            let bias = f(n, 3);
            // `b = wᵀ` (`[k, n]` with strides `[1, k]`) or `w` itself (`[n, 1]`).
            let (bs, bst) = if transposed {
                ([k, n], [1isize, k as isize])
            } else {
                ([k, n], [n as isize, 1])
            };
            let mut got = vec![f32::NAN; m * n];
            let ran = matmul_bias_capped(
                isa,
                &a,
                [m, k],
                [k as isize, 1],
                &w,
                bs,
                bst,
                &bias,
                &mut got,
            )
            .unwrap();
            let what = format!("{isa:?} {m}x{k}x{n} transposed={transposed}");
            assert_eq!(ran, taken, "{what}");
            if !ran {
                assert!(got.iter().all(|v| v.is_nan()), "{what}: declined but wrote");
                continue;
            }
            let mut want = vec![0f32; m * n];
            onde_codegen::native::matmul_capped(
                isa,
                &a,
                &[m, k],
                &[k as isize, 1],
                &w,
                &bs,
                &bst,
                &mut want,
                1,
            )
            .unwrap();
            for (i, v) in want.iter_mut().enumerate() {
                *v += bias[i % n];
            }
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{what}");
        }
    }
    let (a, b) = (vec![0f32; 600 * 64], vec![0f32; 64 * 48]);
    let mut out = vec![0f32; 600 * 48];
    let short = matmul_bias_capped(
        onde_codegen::IsaLevel::Avx512,
        &a,
        [600, 64],
        [64, 1],
        &b,
        [64, 48],
        [48, 1],
        &[0.0; 47],
        &mut out,
    )
    .unwrap_err()
    .to_string();
    assert!(short.contains("bias of 47"), "{short}");
}

/// `matmul_rows_capped` with softmax's backward: W5's `dO·vᵀ` then softmax's backward, fused where
/// the one-panel kernel takes the products (16 lanes), bit for bit the product then
/// `softmax_backward_f32`; declined (nothing written) elsewhere; a short `y` is a typed
/// error.
#[test]
fn a_product_then_softmax_backward_fused_equals_the_two_steps() {
    use onde_codegen::native::matmul::{matmul_rows_capped, RowsAfter};
    use onde_codegen::native::softmax_backward::softmax_backward_f32;
    let f =
        |n: usize, seed: u64| -> Vec<f32> { values(n, seed).iter().map(|&v| v as f32).collect() };
    for isa in onde_codegen::IsaLevel::ALL {
        let sixteen = isa.capped() == onde_codegen::IsaLevel::Avx512;
        // (batch, m, k, n): W5's shape, and edges (tiles of 3 rows and 1, a partial last
        // vector or none).
        // Even and odd counts of whole vectors, with and without a partial last one.
        let shapes = [
            (3, 100, 64, 100),
            (2, 9, 17, 33),
            (1, 10, 40, 64),
            (1, 12, 20, 48),
            (1, 9, 16, 80),
            (1, 8, 16, 112),
            (1, 10, 30, 50),
        ];
        for ((nb, m, k, n), finite) in shapes.into_iter().flat_map(|s| [(s, true), (s, false)]) {
            let mut a = f(nb * m * k, 1);
            let bt = f(nb * n * k, 2);
            // `y` as a softmax output would be: positive, rows summing to about 1; or, with
            // an infinite value in a row of `a`, of both signs (the product's padded
            // lanes are then NaN and must not reach the row's sum).
            let y: Vec<f32> = f(nb * m * n, 3)
                .iter()
                .map(|v| {
                    if finite {
                        (v.abs() + 0.01) / n as f32
                    } else {
                        *v
                    }
                })
                .collect();
            let (mut bt, mut y) = (bt, y);
            if !finite {
                // Row 2 of entry 0: `dy = +∞` in every column (`a = [∞, 0, …]`, `b`'s
                // first row all 1) and `y < 0`, so `s = -∞` and every result is finite
                // only if no NaN from the padded lanes (`∞·0`) reaches the sum.
                a[2 * k..3 * k].fill(0.0);
                a[2 * k] = f32::INFINITY;
                for j in 0..n {
                    bt[j * k] = 1.0;
                    y[2 * n + j] = -0.01;
                }
            }
            let (ash, ast) = ([nb, m, k], [(m * k) as isize, k as isize, 1]);
            let (bsh, bst) = ([nb, k, n], [(n * k) as isize, 1, k as isize]);
            let mut got = vec![f32::NAN; nb * m * n];
            let after = RowsAfter::SoftmaxBackward {
                y: &y,
                scale: 0.125,
            };
            let ran =
                matmul_rows_capped(isa, &a, &ash, &ast, &bt, &bsh, &bst, after, &mut got).unwrap();
            let what = format!("{isa:?} [{nb}, {m}, {k}] @ [{nb}, {k}, {n}]");
            assert_eq!(ran, sixteen, "{what}");
            if !ran {
                assert!(got.iter().all(|v| v.is_nan()), "{what}: declined but wrote");
                continue;
            }
            let mut dy = vec![0f32; nb * m * n];
            onde_codegen::native::matmul_capped(isa, &a, &ash, &ast, &bt, &bsh, &bst, &mut dy, 1)
                .unwrap();
            let mut want = vec![0f32; nb * m * n];
            softmax_backward_f32(isa, &dy, &y, &mut want, (nb * m, n, 1), 0.125).unwrap();
            let bits = |x: &[f32]| {
                x.iter()
                    .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&got), bits(&want), "{what} finite {finite}");
        }
    }
    let (a, b, y) = (
        vec![0f32; 100 * 64],
        vec![0f32; 64 * 100],
        vec![0f32; 99 * 100],
    );
    let mut out = vec![0f32; 100 * 100];
    let short = matmul_rows_capped(
        onde_codegen::IsaLevel::Avx512,
        &a,
        &[100, 64],
        &[64, 1],
        &b,
        &[64, 100],
        &[1, 64],
        RowsAfter::SoftmaxBackward { y: &y, scale: 1.0 },
        &mut out,
    )
    .unwrap_err()
    .to_string();
    assert!(short.contains("y"), "{short}");
}

/// `matmul_rows_capped` with a softmax: W5's scores `q·kᵀ` then the scaled softmax, fused where the
/// one-panel kernel takes the products (16 lanes), bit for bit the product then
/// `softmax_scaled_f32` — with NaN and infinite scores among them; declined (nothing
/// written) elsewhere.
#[test]
fn a_product_then_softmax_fused_equals_the_two_steps() {
    use onde_codegen::native::matmul::{matmul_rows_capped, RowsAfter};
    use onde_codegen::native::softmax::softmax_scaled_f32;
    let f =
        |n: usize, seed: u64| -> Vec<f32> { values(n, seed).iter().map(|&v| v as f32).collect() };
    for isa in onde_codegen::IsaLevel::ALL {
        let sixteen = isa.capped() == onde_codegen::IsaLevel::Avx512;
        for (nb, m, k, n) in [
            (3, 100, 64, 100),
            (2, 9, 17, 33),
            (1, 10, 40, 64),
            (1, 8, 16, 48),
        ] {
            let mut a = f(nb * m * k, 1);
            let bt = f(nb * n * k, 2);
            // One row with a NaN score, one with an infinite one.
            a[k] = f32::NAN;
            a[2 * k + 1] = f32::INFINITY;
            let (ash, ast) = ([nb, m, k], [(m * k) as isize, k as isize, 1]);
            let (bsh, bst) = ([nb, k, n], [(n * k) as isize, 1, k as isize]);
            for scale in [0.125f32, 1.0] {
                let mut got = vec![f32::NAN; nb * m * n];
                let after = RowsAfter::Softmax { scale };
                let ran = matmul_rows_capped(isa, &a, &ash, &ast, &bt, &bsh, &bst, after, &mut got)
                    .unwrap();
                let what = format!("{isa:?} [{nb}, {m}, {k}] @ [{nb}, {k}, {n}] · {scale}");
                assert_eq!(ran, sixteen, "{what}");
                if !ran {
                    assert!(got.iter().all(|v| v.is_nan()), "{what}: declined but wrote");
                    continue;
                }
                let mut s = vec![0f32; nb * m * n];
                onde_codegen::native::matmul_capped(
                    isa, &a, &ash, &ast, &bt, &bsh, &bst, &mut s, 1,
                )
                .unwrap();
                let mut want = vec![0f32; nb * m * n];
                softmax_scaled_f32(isa, &s, scale, &mut want, (nb * m, n, 1), &mut Vec::new())
                    .unwrap();
                let bits = |x: &[f32]| {
                    x.iter()
                        .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
                        .collect::<Vec<_>>()
                };
                assert_eq!(bits(&got), bits(&want), "{what}");
                assert!(got[n..2 * n].iter().all(|v| v.is_nan()), "{what}: NaN row");
            }
        }
    }
}

/// A one-row product `[1, k] · [k, n]` with `b`'s rows contiguous (W5's score-layer
/// weight gradient `[1, 3200] · [3200, 64]`) runs on the engine's vectors where the
/// level allows, with the scalar loop's operations in its order: bits equal the
/// baseline level's at every level, close to f64.
#[test]
fn one_row_sums_of_scaled_rows_are_the_scalar_sums_at_every_level() {
    let f =
        |n: usize, seed: u64| -> Vec<f32> { values(n, seed).iter().map(|&v| v as f32).collect() };
    for (k, n) in [(5, 2), (9, 17), (100, 40), (3200, 64), (13, 64), (64, 33)] {
        let a = f(k, 1);
        let b = f(k * n, 2);
        let run = |isa| {
            let mut c = vec![f32::NAN; n];
            onde_codegen::native::matmul_capped(
                isa,
                &a,
                &[1, k],
                &[k as isize, 1],
                &b,
                &[k, n],
                &[n as isize, 1],
                &mut c,
                1,
            )
            .unwrap();
            c
        };
        let want = run(onde_codegen::IsaLevel::Baseline);
        for j in 0..n {
            let exact: f64 = (0..k)
                .map(|p| f64::from(a[p]) * f64::from(b[p * n + j]))
                .sum();
            assert!(
                (f64::from(want[j]) - exact).abs() <= 1e-5 * (1.0 + k as f64),
                "k={k} n={n} column {j}: {} vs {exact}",
                want[j]
            );
        }
        for isa in crate::common::isa_levels() {
            let got = run(isa);
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "k={k} n={n} {isa:?}");
        }
    }
}

/// `matmul_rows_capped` with an add: W5's residual `x + P·v` (`P` by rows or, as in
/// its backward, by columns; `v` row-major), fused where the one-panel kernel takes the
/// products (16 lanes), bit for bit the product then the add; declined (nothing
/// written) elsewhere; a short `r` is a typed error.
#[test]
fn a_product_then_an_add_fused_equals_the_two_steps() {
    use onde_codegen::native::matmul::{matmul_rows_capped, RowsAfter};
    let f =
        |n: usize, seed: u64| -> Vec<f32> { values(n, seed).iter().map(|&v| v as f32).collect() };
    for isa in onde_codegen::IsaLevel::ALL {
        let sixteen = isa.capped() == onde_codegen::IsaLevel::Avx512;
        // (batch, m, k, n, `a` by columns, `b` by columns): W5's `P·v` and `Pᵀ·dO`,
        // every tile height, a partial last vector (`b` by columns, 40 columns).
        for (nb, m, k, n, a_cols, b_cols) in [
            (3, 100, 100, 64, false, false),
            (2, 100, 100, 64, true, false),
            (1, 13, 20, 48, false, false),
            (2, 9, 17, 40, false, true),
        ] {
            let a = f(nb * m * k, 1);
            let b = f(nb * k * n, 2);
            let r = f(nb * m * n, 3);
            let (ash, ast) = batched(nb, m, k, a_cols);
            let (bsh, bst) = batched(nb, k, n, b_cols);
            let mut got = vec![f32::NAN; nb * m * n];
            let after = RowsAfter::Add { r: &r };
            let ran =
                matmul_rows_capped(isa, &a, &ash, &ast, &b, &bsh, &bst, after, &mut got).unwrap();
            let what = format!("{isa:?} [{nb}, {m}, {k}] @ [{nb}, {k}, {n}] a_cols={a_cols}");
            assert_eq!(ran, sixteen, "{what}");
            if !ran {
                assert!(got.iter().all(|v| v.is_nan()), "{what}: declined but wrote");
                continue;
            }
            let mut want = vec![0f32; nb * m * n];
            onde_codegen::native::matmul_capped(isa, &a, &ash, &ast, &b, &bsh, &bst, &mut want, 1)
                .unwrap();
            for (w, x) in want.iter_mut().zip(&r) {
                *w += *x;
            }
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{what}");
        }
    }
    let (a, b, r) = (
        vec![0f32; 100 * 100],
        vec![0f32; 100 * 64],
        vec![0f32; 99 * 64],
    );
    let mut out = vec![0f32; 100 * 64];
    let short = matmul_rows_capped(
        onde_codegen::IsaLevel::Avx512,
        &a,
        &[100, 100],
        &[100, 1],
        &b,
        &[100, 64],
        &[64, 1],
        RowsAfter::Add { r: &r },
        &mut out,
    )
    .unwrap_err()
    .to_string();
    assert!(short.contains("matmul_add: r has 6336 elements"), "{short}");
}

/// `matmul_rows_capped` with column sums: W5's `dV = Pᵀ·dO` and its bias gradient
/// `Σ_rows dV`, fused where the one-panel kernel takes the products (16 lanes): the
/// product bit for bit `matmul_capped`'s, the sums bit for bit a column sum from zero
/// in row order over the whole batch; declined (nothing written, the sums included)
/// elsewhere; sums of the wrong length are a typed error.
#[test]
fn a_product_then_column_sums_fused_equals_the_two_steps() {
    use onde_codegen::native::matmul::{matmul_rows_capped, RowsAfter};
    let f =
        |n: usize, seed: u64| -> Vec<f32> { values(n, seed).iter().map(|&v| v as f32).collect() };
    for isa in onde_codegen::IsaLevel::ALL {
        let sixteen = isa.capped() == onde_codegen::IsaLevel::Avx512;
        for (nb, m, k, n, a_cols, b_cols) in [
            (3, 100, 100, 64, true, false),
            (2, 13, 20, 48, false, false),
            (2, 9, 17, 40, false, true),
        ] {
            let a = f(nb * m * k, 1);
            let b = f(nb * k * n, 2);
            let (ash, ast) = batched(nb, m, k, a_cols);
            let (bsh, bst) = batched(nb, k, n, b_cols);
            let mut got = vec![f32::NAN; nb * m * n];
            let mut sums = vec![f32::NAN; n];
            let after = RowsAfter::ColumnSums { sums: &mut sums };
            let ran =
                matmul_rows_capped(isa, &a, &ash, &ast, &b, &bsh, &bst, after, &mut got).unwrap();
            let what = format!("{isa:?} [{nb}, {m}, {k}] @ [{nb}, {k}, {n}]");
            assert_eq!(ran, sixteen, "{what}");
            if !ran {
                assert!(got.iter().chain(&sums).all(|v| v.is_nan()), "{what}: wrote");
                continue;
            }
            let mut want = vec![0f32; nb * m * n];
            onde_codegen::native::matmul_capped(isa, &a, &ash, &ast, &b, &bsh, &bst, &mut want, 1)
                .unwrap();
            let mut want_sums = vec![0f32; n];
            for row in want.chunks_exact(n) {
                for (s, x) in want_sums.iter_mut().zip(row) {
                    *s += *x;
                }
            }
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{what}");
            assert_eq!(bits(&sums), bits(&want_sums), "{what} sums");
        }
    }
    let (a, b) = (vec![0f32; 100 * 100], vec![0f32; 100 * 64]);
    let mut out = vec![0f32; 100 * 64];
    let mut sums = vec![0f32; 63];
    let short = matmul_rows_capped(
        onde_codegen::IsaLevel::Avx512,
        &a,
        &[100, 100],
        &[100, 1],
        &b,
        &[100, 64],
        &[64, 1],
        RowsAfter::ColumnSums { sums: &mut sums },
        &mut out,
    )
    .unwrap_err()
    .to_string();
    assert!(
        short.contains("matmul_column_sums: sums has 63 elements"),
        "{short}"
    );
}

/// Shape and strides of a contiguous batch of `[rows, cols]` matrices, each stored by
/// rows or (`by_cols`) by columns.
fn batched(nb: usize, rows: usize, cols: usize, by_cols: bool) -> ([usize; 3], [isize; 3]) {
    let each = (rows * cols) as isize;
    let strides = if by_cols {
        [each, 1, rows as isize]
    } else {
        [each, cols as isize, 1]
    };
    ([nb, rows, cols], strides)
}
