//! API-level semantics with hand-computed expectations: PyTorch's broadcasting, type
//! promotion, negative axes, 1-D matmul rules, indexing, padding order, 'same' conv,
//! scalar operands on either side, random seeding.

use onde::{cat, s, stack, where_, Array, ConvOpts, DType, GraphBuilder, Idx, Tensor};

fn f32s(shape: &[usize], v: &[f32]) -> Array {
    Array::f32(shape.to_vec(), v.to_vec()).unwrap()
}

fn run1(g: &GraphBuilder, t: &Tensor, feeds: &[(&str, Array)]) -> Array {
    g.run(&[t], feeds).unwrap().remove(0)
}

#[test]
fn scalars_on_either_side_and_unary_minus() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3]);
    let y = 2.0 - &x * 3.0 + (1.0 / (&x + 1.0)) - -&x;
    let r = run1(&g, &y, &[("x", f32s(&[3], &[0.0, 1.0, 3.0]))]);
    // 2 - 3x + 1/(x+1) + x
    assert_eq!(r.as_f32().unwrap(), &[3.0, 0.5, -3.75]);
}

#[test]
fn type_promotion_follows_pytorch() {
    let g = GraphBuilder::new();
    let i = g.input("i", DType::I64, [3]);
    let f = g.input("f", DType::F32, [3]);
    let d = g.input("d", DType::F64, [3]);
    assert_eq!((&i + 1).dtype(), DType::I64);
    assert_eq!((&i + 0.5).dtype(), DType::F32);
    assert_eq!((&i / 2).dtype(), DType::F32); // true division
    assert_eq!((&i + &f).dtype(), DType::F32);
    assert_eq!((&f + &d).dtype(), DType::F64);
    assert_eq!((&f * 2.0).dtype(), DType::F32);
    assert_eq!(i.exp().dtype(), DType::F32);
    assert_eq!(f.gt(&i).dtype(), DType::Bool);
    assert_eq!(f.gt(0.0).sum_all().dtype(), DType::I64); // bools sum as i64
    let feeds = [
        ("i", Array::i64([3], vec![1, 2, 3]).unwrap()),
        ("f", f32s(&[3], &[0.5, 0.5, 0.5])),
    ];
    let r = g.run(&[&(&i / 2), &(&i + &f)], &feeds).unwrap();
    assert_eq!(r[0].as_f32().unwrap(), &[0.5, 1.0, 1.5]);
    assert_eq!(r[1].as_f32().unwrap(), &[1.5, 2.5, 3.5]);
}

#[test]
fn broadcasting_corners() {
    let g = GraphBuilder::new();
    let a = g.input("a", DType::F32, [3, 1]);
    let b = g.input("b", DType::F32, [1, 4]);
    let e = g.input("e", DType::F32, [0, 4]);
    let ab = &a * &b;
    assert_eq!(ab.size(), [3, 4]);
    assert_eq!((&e + &b).size(), [0, 4]);
    let feeds = [
        ("a", f32s(&[3, 1], &[1.0, 2.0, 3.0])),
        ("b", f32s(&[1, 4], &[1.0, 10.0, 100.0, 1000.0])),
        ("e", f32s(&[0, 4], &[])),
    ];
    let r = g.run(&[&ab, &(&e + &b)], &feeds).unwrap();
    assert_eq!(r[0].as_f32().unwrap()[4..8], [2.0, 20.0, 200.0, 2000.0]);
    assert_eq!(r[1].numel(), 0);
}

#[test]
fn matmul_one_dimensional_rules() {
    let g = GraphBuilder::new();
    let v = g.input("v", DType::F32, [3]);
    let m = g.input("m", DType::F32, [3, 2]);
    let bm = g.input("bm", DType::F32, [4, 2, 3]);
    assert_eq!(v.matmul(&v).size(), Vec::<usize>::new()); // dot
    assert_eq!(v.matmul(&m).size(), [2]);
    assert_eq!(m.t().matmul(&v).size(), [2]);
    assert_eq!(bm.matmul(&v).size(), [4, 2]);
    assert_eq!(v.matmul(&bm.transpose(-1, -2)).size(), [4, 2]);
    let feeds = [
        ("v", f32s(&[3], &[1.0, 2.0, 3.0])),
        ("m", f32s(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0])),
    ];
    let r = g.run(&[&v.matmul(&v), &v.matmul(&m)], &feeds).unwrap();
    assert_eq!(r[0].as_f32().unwrap(), &[14.0]);
    assert_eq!(r[1].as_f32().unwrap(), &[4.0, 5.0]);
}

#[test]
fn indexing_with_negative_positions_new_axes_and_steps() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [4, 6]);
    let a = x.index(s![-1, Idx::from(1..).step(2)]); // x[-1, 1::2]
    let b = x.index(s![Idx::NewAxis, ..2, -2..]); // x[None, :2, -2:]
    let c = x.index(s![Idx::from(..-1).step(3), Idx::Ellipsis]); // x[:-1:3, ...]
    let d = x.slice(1, Some(-100), Some(100), 4); // clamped
    assert_eq!(a.size(), [3]);
    assert_eq!(b.size(), [1, 2, 2]);
    assert_eq!(c.size(), [1, 6]);
    assert_eq!(d.size(), [4, 2]);
    let data: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let r = g
        .run(&[&a, &b, &d], &[("x", f32s(&[4, 6], &data))])
        .unwrap();
    assert_eq!(r[0].as_f32().unwrap(), &[19.0, 21.0, 23.0]);
    assert_eq!(r[1].as_f32().unwrap(), &[4.0, 5.0, 10.0, 11.0]);
    assert_eq!(
        r[2].as_f32().unwrap(),
        &[0.0, 4.0, 6.0, 10.0, 12.0, 16.0, 18.0, 22.0]
    );
}

#[test]
fn pad_takes_pairs_from_the_last_axis() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [1, 2]);
    let y = x.pad([1, 0, 0, 1], 9.0); // last axis (1, 0), first axis (0, 1)
    assert_eq!(y.size(), [2, 3]);
    let r = run1(&g, &y, &[("x", f32s(&[1, 2], &[1.0, 2.0]))]);
    assert_eq!(r.as_f32().unwrap(), &[9.0, 1.0, 2.0, 9.0, 9.0, 9.0]);
}

#[test]
fn conv1d_same_padding_with_even_kernel_pads_after() {
    // PyTorch 'same' with k=2, d=1: total pad 1, all of it after.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [1, 1, 4]);
    let w = g.input("w", DType::F32, [1, 1, 2]);
    let y = x.conv1d(&w, None, &ConvOpts::default().same());
    assert_eq!(y.size(), [1, 1, 4]);
    let r = g
        .run(
            &[&y],
            &[
                ("x", f32s(&[1, 1, 4], &[1.0, 2.0, 3.0, 4.0])),
                ("w", f32s(&[1, 1, 2], &[1.0, 10.0])),
            ],
        )
        .unwrap();
    assert_eq!(r[0].as_f32().unwrap(), &[21.0, 32.0, 43.0, 4.0]);
}

#[test]
fn conv1d_depthwise_stride_dilation_and_bias() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [1, 2, 5]);
    let w = g.input("w", DType::F32, [2, 1, 2]);
    let b = g.input("b", DType::F32, [2]);
    let y = x.conv1d(
        &w,
        Some(&b),
        &ConvOpts::default().groups(2).dilation(2).stride(2),
    );
    // out len = (5 - 2·1 - 1)/2 + 1 = 2; channel c: x[c,t] + x[c,t+2] scaled by w[c]
    assert_eq!(y.size(), [1, 2, 2]);
    let r = g
        .run(
            &[&y],
            &[
                (
                    "x",
                    f32s(
                        &[1, 2, 5],
                        &[1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0],
                    ),
                ),
                ("w", f32s(&[2, 1, 2], &[1.0, 1.0, 1.0, -1.0])),
                ("b", f32s(&[2], &[0.5, 0.0])),
            ],
        )
        .unwrap();
    assert_eq!(r[0].as_f32().unwrap(), &[4.5, 8.5, -20.0, -20.0]);
}

#[test]
fn where_masked_fill_stack_and_cat_promote() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [4]);
    let i = g.input("i", DType::I64, [4]);
    let w = where_(&x.gt(0.0), &x, 0.0);
    let m = x.masked_fill(&x.lt(0.0), -1.0);
    let st = stack(&[&x, &x], 0);
    let c = cat(&[&x, &i], 0);
    assert_eq!(st.size(), [2, 4]);
    assert_eq!(c.dtype(), DType::F32);
    let r = g
        .run(
            &[&w, &m, &c],
            &[
                ("x", f32s(&[4], &[-2.0, 0.0, 3.0, -0.5])),
                ("i", Array::i64([4], vec![1, 2, 3, 4]).unwrap()),
            ],
        )
        .unwrap();
    assert_eq!(r[0].as_f32().unwrap(), &[0.0, 0.0, 3.0, 0.0]);
    assert_eq!(r[1].as_f32().unwrap(), &[-1.0, 0.0, 3.0, -1.0]);
    assert_eq!(r[2].as_f32().unwrap()[4..], [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn reshape_infers_minus_one_and_squeeze_expand() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 1, 6]);
    assert_eq!(x.reshape([-1, 3]).size(), [4, 3]);
    assert_eq!(x.squeeze(1).size(), [2, 6]);
    assert_eq!(x.squeeze(0).size(), [2, 1, 6]); // not size 1: unchanged
    assert_eq!(x.squeeze_all().size(), [2, 6]);
    assert_eq!(x.expand([3, -1, 4, -1]).size(), [3, 2, 4, 6]);
    assert_eq!(x.flatten(1, 2).size(), [2, 6]);
    assert_eq!(x.permute([2, 0, 1]).size(), [6, 2, 1]);
    assert_eq!(x.sum([-1, 0], false).size(), [1]);
    assert!(x.reshape([-1, -1]).check().is_err());
    assert!(x.reshape([5, -1]).check().is_err());
}

#[test]
fn reductions_var_std_logsumexp_argmax() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2, 3]);
    let feeds = [(
        "x",
        Array::f64([2, 3], vec![1.0, 2.0, 6.0, 3.0, 3.0, f64::NEG_INFINITY]).unwrap(),
    )];
    let v = x.index(s![0, ..]).var([0], 1, false);
    let v0 = x.index(s![0, ..]).var([0], 0, false);
    let lse = x.logsumexp([1], false);
    let am = x.argmax(1, false);
    let r = g.run(&[&v, &v0, &lse, &am], &feeds).unwrap();
    // mean 3, squared deviations 4 + 1 + 9 = 14
    assert_eq!(r[0].as_f64().unwrap(), &[7.0]);
    assert!((r[1].as_f64().unwrap()[0] - 14.0 / 3.0).abs() < 1e-15);
    let l = r[2].as_f64().unwrap();
    assert!((l[0] - (1f64.exp() + 2f64.exp() + 6f64.exp()).ln()).abs() < 1e-12);
    assert!((l[1] - (3.0 + 2f64.ln())).abs() < 1e-12);
    assert_eq!(r[3].as_i64().unwrap(), &[2, 0]); // first maximum wins
}

#[test]
fn all_minus_infinity_logsumexp_is_minus_infinity() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2]);
    let r = run1(
        &g,
        &x.logsumexp([0], false),
        &[("x", f32s(&[2], &[f32::NEG_INFINITY; 2]))],
    );
    assert_eq!(r.as_f32().unwrap(), &[f32::NEG_INFINITY]);
}

#[test]
fn rand_is_seeded_and_reproducible() {
    let run = |seed| {
        let g = GraphBuilder::new();
        g.manual_seed(seed);
        let r = g.rand([1000], DType::F32);
        let n = g.randn([1000], DType::F32);
        g.run(&[&r, &n], &[]).unwrap()
    };
    let (a, b, c) = (run(3), run(3), run(4));
    assert_eq!(a, b);
    assert_ne!(a[0], c[0]);
    let u = a[0].as_f32().unwrap();
    assert!(u.iter().all(|&v| (0.0..1.0).contains(&v)));
    let mean = u.iter().sum::<f32>() / 1000.0;
    assert!((mean - 0.5).abs() < 0.05, "{mean}");
    // Two rand calls in one builder draw different numbers.
    let g = GraphBuilder::new();
    let (p, q) = (g.rand([8], DType::F32), g.rand([8], DType::F32));
    let r = g.run(&[&p, &q], &[]).unwrap();
    assert_ne!(r[0], r[1]);
}

#[test]
fn parameters_are_fed_from_the_builder_store() {
    let g = GraphBuilder::new();
    let w = g.parameter("layer.w", Array::full(DType::F32, [2], 3.0));
    let x = g.input("x", DType::F32, [2]);
    let y = (&w * &x).sum_all();
    let graph = g.build(&[&y]).unwrap();
    assert_eq!(graph.parameters().len(), 1);
    assert_eq!(graph.num_parameter_elements(), 2);
    let r = run1(&g, &y, &[("x", f32s(&[2], &[1.0, 2.0]))]);
    assert_eq!(r.as_f32().unwrap(), &[9.0]);
    assert!(g
        .parameter("layer.w", Array::scalar(DType::F32, 0.0))
        .check()
        .is_err());
}

#[test]
fn unfold_matches_pytorch_windows_interpreted_and_compiled() {
    // torch.arange(1., 8).unfold(0, 2, 2) = [[1, 2], [3, 4], [5, 6]] (PyTorch's docs);
    // with step 1: [[1, 2], [2, 3], …, [6, 7]].
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [7]);
    let a = x.unfold(0, 2, 2);
    let b = x.unfold(-1, 2, 1);
    // x[i, j] = 4i + j over [3, 4]: unfold(1, 2, 2) → [3, 2, 2], windows last;
    // unfold(0, 2, 1) → [2, 4, 2] with out[p, j, k] = y[p + k, j].
    let y = g.input("y", DType::F32, [3, 4]);
    let c = y.unfold(1, 2, 2);
    let d = y.unfold(0, 2, 1);
    let feeds = [
        ("x", f32s(&[7], &[1., 2., 3., 4., 5., 6., 7.])),
        (
            "y",
            f32s(&[3, 4], &(0..12).map(|v| v as f32).collect::<Vec<_>>()),
        ),
    ];
    let want = [
        f32s(&[3, 2], &[1., 2., 3., 4., 5., 6.]),
        f32s(&[6, 2], &[1., 2., 2., 3., 3., 4., 4., 5., 5., 6., 6., 7.]),
        f32s(
            &[3, 2, 2],
            &[0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11.],
        ),
        f32s(
            &[2, 4, 2],
            &[
                0., 4., 1., 5., 2., 6., 3., 7., 4., 8., 5., 9., 6., 10., 7., 11.,
            ],
        ),
    ];
    // A step far past the extent: one window (PyTorch accepts it), no overflow in
    // the strides or in the gradient's scatter.
    let e = y.unfold(0, 1, 1 << 62);
    let de = g.grad(&(&e * &e).sum_all(), &[&y]).unwrap().remove(0);
    let outs = [&a, &b, &c, &d, &e, &de];
    let mut want = want.to_vec();
    want.push(f32s(&[1, 4, 1], &[0., 1., 2., 3.]));
    want.push(f32s(
        &[3, 4],
        &[0., 2., 4., 6., 0., 0., 0., 0., 0., 0., 0., 0.],
    ));
    assert_eq!(g.run(&outs, &feeds).unwrap(), want);
    // Compiled: the windows are a view read by one copy kernel per output.
    let mut exe = g.compile(&outs).unwrap();
    assert_eq!(exe.run(&feeds).unwrap(), want);
}

#[test]
fn overlapping_windows_of_a_computed_value_store_it_once() {
    // tanh(x) read by three overlapping windows: stored once (an `unfold_operand`
    // kernel), not recomputed per window; disjoint frames of it stay fused.
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 50]);
    let t = x.tanh();
    let overlapping = t.unfold(1, 3, 1).sum(vec![2i64], false);
    let frames = (&x * 2.0).unfold(1, 5, 5).sum(vec![2i64], false);
    let feeds = [(
        "x",
        f32s(
            &[2, 50],
            &(0..100)
                .map(|i| (i as f32 - 50.0) / 20.0)
                .collect::<Vec<_>>(),
        ),
    )];
    let want = g.run(&[&overlapping, &frames], &feeds).unwrap();
    let mut exe = g.compile(&[&overlapping, &frames]).unwrap();
    let got = exe.run(&feeds).unwrap();
    for (a, b) in got.iter().zip(&want) {
        for (p, q) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
            assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{p} vs {q}");
        }
    }
    let dump = exe.executable().dump_fused();
    assert_eq!(dump.matches("unfold_operand").count(), 1, "{dump}");
}

#[test]
fn a_step_past_the_extent_selects_one_element_compiled_and_differentiated() {
    // A slice or unfold whose step is never taken (one element along it) may have any
    // step: strides and gradients must not multiply by it.
    let g = GraphBuilder::new();
    let y = g.input("y", DType::F32, [3, 4]);
    let s = y.slice(0, Some(1), None, 1 << 62);
    let u = y.unfold(1, 4, 1 << 62);
    let loss = (&s * &s).sum_all() + u.sum_all();
    let dy = g.grad(&loss, &[&y]).unwrap().remove(0);
    let feeds = [(
        "y",
        f32s(&[3, 4], &(0..12).map(|v| v as f32).collect::<Vec<_>>()),
    )];
    let want = [
        f32s(&[1, 4], &[4., 5., 6., 7.]),
        f32s(&[3, 1, 4], &(0..12).map(|v| v as f32).collect::<Vec<_>>()),
        f32s(
            &[3, 4],
            &[1., 1., 1., 1., 9., 11., 13., 15., 1., 1., 1., 1.],
        ),
    ];
    let outs = [&s, &u, &dy];
    assert_eq!(g.run(&outs, &feeds).unwrap(), want);
    assert_eq!(g.compile(&outs).unwrap().run(&feeds).unwrap(), want);
}
