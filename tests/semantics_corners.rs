//! PyTorch corners found reviewing issue 11's change, each against the value or error
//! PyTorch 2.15 gives (checked with PyTorch when the test was written; the values are
//! small enough to state here).

use onde::loss::{binary_cross_entropy_with_logits, cross_entropy, nll_loss, NllOpts, Reduction};
use onde::{Array, DType, Error, GraphBuilder, Tensor};

fn run1(g: &GraphBuilder, t: &Tensor, feeds: &[(&str, Array)]) -> Array {
    g.run(&[t], feeds).unwrap().remove(0)
}

#[test]
fn square_of_bools_is_i64() {
    // torch.tensor([True, False, True]).square() == tensor([1, 0, 1])
    let g = GraphBuilder::new();
    let b = g.constant(Array::bool([3], vec![true, false, true]).unwrap());
    let y = b.square();
    assert_eq!(y.dtype(), DType::I64);
    assert_eq!(run1(&g, &y, &[]).as_i64().unwrap(), &[1, 0, 1]);
}

#[test]
fn a_mask_of_another_builder_is_refused() {
    let a = GraphBuilder::new();
    let x = a.input("x", DType::F32, [3]);
    let _c = a.constant(Array::f32([3], vec![1.0; 3]).unwrap());
    let b = GraphBuilder::new();
    let _i = b.input("i", DType::F32, [3]);
    let m = b.constant(Array::bool([3], vec![true, false, true]).unwrap());
    let e = x.masked_select(&m).check().unwrap_err();
    assert!(matches!(e, Error::MixedBuilders { .. }), "{e:?}");
}

#[test]
fn softmax_over_an_empty_axis_is_empty() {
    // F.softmax(zeros(2, 0), 1).shape == [2, 0]; F.log_softmax(zeros(0, 3), 0) too.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 0]);
    let z = g.input("z", DType::F32, [0, 3]);
    let (s, l) = (x.softmax(1), z.log_softmax(0));
    let out = g
        .run(
            &[&s, &l],
            &[
                ("x", Array::f32([2, 0], vec![]).unwrap()),
                ("z", Array::f32([0, 3], vec![]).unwrap()),
            ],
        )
        .unwrap();
    assert_eq!(out[0].shape().dims(), &[2, 0]);
    assert_eq!(out[1].shape().dims(), &[0, 3]);
}

#[test]
fn unbatched_losses_take_a_one_element_target() {
    // F.cross_entropy(x[C], tensor([k])) == F.cross_entropy(x[C], tensor(k)), 0-d.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [5]);
    let k0 = g.constant(Array::scalar_i64(3));
    let k1 = g.constant(Array::i64([1], vec![3]).unwrap());
    let none = NllOpts {
        reduction: Reduction::None,
        ..NllOpts::default()
    };
    let a = cross_entropy(&x, &k0, &none);
    let b = cross_entropy(&x, &k1, &none);
    let c = nll_loss(&x.log_softmax(0), &k1, &NllOpts::default());
    assert_eq!(b.size(), Vec::<usize>::new());
    let xv = Array::f64([5], vec![0.3, -1.0, 2.0, 0.5, 1.5]).unwrap();
    let out = g.run(&[&a, &b, &c], &[("x", xv)]).unwrap();
    let v: Vec<f64> = out.iter().map(|o| o.to_f64_vec()[0]).collect();
    assert_eq!(v[0], v[1]);
    assert_eq!(v[0], v[2]);
    // A bad shape names cross_entropy, not an op inside it.
    let bad = g.constant(Array::i64([2], vec![0, 1]).unwrap());
    let e = cross_entropy(&x, &bad, &NllOpts::default())
        .check()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Op {
                op: "cross_entropy",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn label_smoothing_zero_negative_or_nan_is_none() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [3, 4]);
    let y = g.constant(Array::i64([3], vec![0, 1, 2]).unwrap());
    let with = |ls: f64| {
        cross_entropy(
            &x,
            &y,
            &NllOpts {
                label_smoothing: ls,
                ..NllOpts::default()
            },
        )
    };
    let (a, b, c) = (with(0.0), with(-0.1), with(f64::NAN));
    let xv = Array::f64([3, 4], (0..12).map(|i| (i as f64 * 0.7).sin()).collect()).unwrap();
    let out = g.run(&[&a, &b, &c], &[("x", xv)]).unwrap();
    assert_eq!(out[0].to_f64_vec(), out[1].to_f64_vec());
    assert_eq!(out[0].to_f64_vec(), out[2].to_f64_vec());
}

#[test]
fn scalars_have_an_extreme_and_can_be_indexed() {
    // tensor(3.).max(0) == (3., 0); tensor(5.).index_select(0, tensor(0)) == tensor(5.)
    let g = GraphBuilder::new();
    let s = g.input("s", DType::F32, Vec::<usize>::new());
    let (v, i) = s.max_dim(0, false);
    let (w, j) = s.min_dim(-1, true);
    let k = s.index_select(0, &g.constant(Array::scalar_i64(0)));
    let out = g
        .run(
            &[&v, &i, &w, &j, &k],
            &[("s", Array::scalar(DType::F32, 3.0))],
        )
        .unwrap();
    assert_eq!(out[0].to_f64_vec(), vec![3.0]);
    assert_eq!(out[1].as_i64().unwrap(), &[0]);
    assert_eq!(out[2].to_f64_vec(), vec![3.0]);
    assert_eq!(out[3].as_i64().unwrap(), &[0]);
    assert_eq!(out[4].shape().rank(), 0);
    assert_eq!(out[4].to_f64_vec(), vec![3.0]);
}

#[test]
fn masked_fill_integer_edges_and_bool_masks() {
    let g = GraphBuilder::new();
    let k = g.input("k", DType::I64, [2]);
    let m = g.constant(Array::bool([2], vec![true, false]).unwrap());
    let a = k.masked_fill(&m, -9.223_372_036_854_776e18);
    let b = k.masked_fill(&m, (1i64 << 53) + 1);
    let out = g
        .run(&[&a, &b], &[("k", Array::i64([2], vec![7, 8]).unwrap())])
        .unwrap();
    assert_eq!(out[0].as_i64().unwrap(), &[i64::MIN, 8]);
    assert_eq!(out[1].as_i64().unwrap(), &[(1i64 << 53) + 1, 8]);
    // masked_fill_ only supports boolean masks (PyTorch).
    let mi = g.constant(Array::i64([2], vec![1, 0]).unwrap());
    let e = k.masked_fill(&mi, 3).check().unwrap_err();
    assert!(e.to_string().contains("bool"), "{e}");
}

#[test]
fn bce_with_logits_weight_keeps_the_input_shape_and_dtype() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3]);
    let t = g.input("t", DType::F32, [3]);
    let w64 = g.input("w", DType::F64, [3]);
    let l = binary_cross_entropy_with_logits(&x, &t, Some(&w64), None, Reduction::None);
    assert_eq!(l.dtype(), DType::F32);
    let big = g.input("big", DType::F32, [2, 3]);
    let e = binary_cross_entropy_with_logits(&x, &t, Some(&big), None, Reduction::Mean)
        .check()
        .unwrap_err();
    assert!(e.to_string().contains("weight"), "{e}");
}

#[test]
fn clamp_ties_are_exact_for_subnormals_and_bools_are_refused() {
    // torch.clamp(x, lo, hi) with x = lo = hi = 5e-324 (f64) is 5e-324.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2]);
    let lo = g.input("lo", DType::F64, [2]);
    let hi = g.input("hi", DType::F64, [2]);
    let y = x.clamp(&lo, &hi);
    let tiny = f64::from_bits(1);
    let v = |a: Vec<f64>| Array::f64([2], a).unwrap();
    let out = run1(
        &g,
        &y,
        &[
            ("x", v(vec![tiny, 3.0 * tiny])),
            ("lo", v(vec![tiny, 3.0 * tiny])),
            ("hi", v(vec![tiny, 1.0])),
        ],
    );
    assert_eq!(out.to_f64_vec(), vec![tiny, 3.0 * tiny]);
    let b = g.constant(Array::bool([2], vec![true, false]).unwrap());
    assert!(b.clamp(0, 1).check().is_err());
}

#[test]
fn extreme_padding_is_an_error_not_a_panic() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 3]);
    assert!(x.pad([i64::MIN, 0], 0.0).check().is_err());
    assert!(x.pad([i64::MAX, i64::MAX], 0.0).check().is_err());
}

#[test]
fn softmax_of_a_scalar_is_one_of_integers_f32_and_a_bad_dim_an_error() {
    // torch.softmax(torch.tensor(3.), 0) == tensor(1.); softmax of an int64 tensor
    // (F.softmax(x, 0, dtype=float32)) computes in f32; dim 2 of a [2, 3] tensor is
    // "Dimension out of range (expected to be in range of [-2, 1], but got 2)".
    let g = GraphBuilder::new();
    let s = g
        .constant(Array::f32(Vec::<usize>::new(), vec![3.0]).unwrap())
        .softmax(-1);
    let i = g.constant(Array::i64([2], vec![0, 2]).unwrap()).softmax(0);
    assert_eq!(i.dtype(), DType::F32);
    let out = g.run(&[&s, &i], &[]).unwrap();
    assert_eq!(out[0].as_f32().unwrap(), &[1.0]);
    let e = 2f32.exp();
    let want = [1.0 / (1.0 + e), e / (1.0 + e)];
    for (a, b) in out[1].as_f32().unwrap().iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    let x = g.input("x", DType::F32, [2, 3]);
    let err = x.softmax(2).check().unwrap_err().to_string();
    assert!(
        err.contains("softmax") && err.contains("dimension 2 out of range"),
        "{err}"
    );
}
