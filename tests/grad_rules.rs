//! Per-rule gradient tests: hand-derived expectations with the math in a comment, and a
//! finite-difference check (f64) of every differentiable op on its own, with the
//! corners that matter (stride/padding/dilation/groups, steps, broadcasting, ties).

use onde::nn::{GradcheckOpts, Padding};
use onde::{cat, where_, Array, ConvOpts, DType, Error, GraphBuilder, Idx, Tensor};

fn f64s(shape: &[usize], v: &[f64]) -> Array {
    Array::f64(shape.to_vec(), v.to_vec()).unwrap()
}

fn data(shape: &[usize], seed: usize) -> Array {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|k| (((k * 7919 + seed * 104729) % 1000) as f64 / 1000.0 - 0.5) * 2.0 + 0.03)
        .collect();
    Array::f64(shape.to_vec(), v).unwrap()
}

/// Runs `grad(loss, wrt)` and returns the gradients as f64 vectors.
fn grads(
    g: &GraphBuilder,
    loss: &Tensor,
    wrt: &[&Tensor],
    feeds: &[(&str, Array)],
) -> Vec<Vec<f64>> {
    let gs = g.grad(loss, wrt).unwrap();
    let refs: Vec<&Tensor> = gs.iter().collect();
    g.run(&refs, feeds)
        .unwrap()
        .iter()
        .map(|a| a.to_f64_vec())
        .collect()
}

#[test]
fn polynomial() {
    // y = Σ x² + 5x  ⇒  dy/dx = 2x + 5
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [3]);
    let y = (x.square() + &x * 5.0).sum_all();
    let r = grads(&g, &y, &[&x], &[("x", f64s(&[3], &[-1.0, 0.0, 2.5]))]);
    assert_eq!(r[0], vec![3.0, 5.0, 10.0]);
}

#[test]
fn fan_out_accumulates() {
    // y = Σ x·x + x  ⇒  dy/dx = 2x + 1 (x used three times)
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2]);
    let y = (&x * &x + &x).sum_all();
    let r = grads(&g, &y, &[&x], &[("x", f64s(&[2], &[3.0, -2.0]))]);
    assert_eq!(r[0], vec![7.0, -3.0]);
}

#[test]
fn matmul_and_broadcast_bias() {
    // y = Σ (x W + b)  ⇒  dW = xᵀ·1, db = batch size per column, dx = 1·Wᵀ
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2, 3]);
    let w = g.input("w", DType::F64, [3, 2]);
    let b = g.input("b", DType::F64, [2]);
    let y = (x.matmul(&w) + &b).sum_all();
    let feeds = [
        ("x", f64s(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
        ("w", f64s(&[3, 2], &[1.0, -1.0, 0.5, 2.0, 0.0, 1.0])),
        ("b", f64s(&[2], &[0.0, 0.0])),
    ];
    let r = grads(&g, &y, &[&x, &w, &b], &feeds);
    assert_eq!(r[0], vec![0.0, 2.5, 1.0, 0.0, 2.5, 1.0]);
    assert_eq!(r[1], vec![5.0, 5.0, 7.0, 7.0, 9.0, 9.0]);
    assert_eq!(r[2], vec![2.0, 2.0]);
}

#[test]
fn relu_and_abs_have_zero_gradient_at_zero() {
    // PyTorch: relu'(0) = 0, |x|'(0) = sign(0) = 0
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [3]);
    let y = (x.relu() + x.abs()).sum_all();
    let r = grads(&g, &y, &[&x], &[("x", f64s(&[3], &[-2.0, 0.0, 3.0]))]);
    assert_eq!(r[0], vec![-1.0, 0.0, 2.0]);
}

#[test]
fn elementwise_maximum_splits_ties() {
    // y = Σ maximum(a, b): the larger gets 1, ties give ½ to each (PyTorch)
    let g = GraphBuilder::new();
    let a = g.input("a", DType::F64, [3]);
    let b = g.input("b", DType::F64, [3]);
    let y = a.maximum(&b).sum_all();
    let r = grads(
        &g,
        &y,
        &[&a, &b],
        &[
            ("a", f64s(&[3], &[1.0, 2.0, 5.0])),
            ("b", f64s(&[3], &[0.0, 2.0, 6.0])),
        ],
    );
    assert_eq!(r[0], vec![1.0, 0.5, 0.0]);
    assert_eq!(r[1], vec![0.0, 0.5, 1.0]);
}

#[test]
fn reduce_max_shares_gradient_evenly_among_ties() {
    // y = amax(x) over a row with two maxima: each gets ½ (PyTorch's amax rule)
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [4]);
    let y = x.max([0], false);
    let r = grads(&g, &y, &[&x], &[("x", f64s(&[4], &[3.0, 1.0, 3.0, 2.0]))]);
    assert_eq!(r[0], vec![0.5, 0.0, 0.5, 0.0]);
}

#[test]
fn prod_with_zeros() {
    // y = x₀x₁x₂: dy/dxᵢ = product of the others; with one zero only that slot is non-zero
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [3]);
    let y = x.prod([0], false);
    let r = grads(&g, &y, &[&x], &[("x", f64s(&[3], &[2.0, 0.0, 4.0]))]);
    assert_eq!(r[0], vec![0.0, 8.0, 0.0]);
    let r = grads(&g, &y, &[&x], &[("x", f64s(&[3], &[0.0, 0.0, 4.0]))]);
    assert_eq!(r[0], vec![0.0, 0.0, 0.0]);
    let r = grads(&g, &y, &[&x], &[("x", f64s(&[3], &[2.0, 3.0, 4.0]))]);
    assert_eq!(r[0], vec![12.0, 8.0, 6.0]);
}

#[test]
fn gather_scatters_back_with_repeats() {
    // y = Σ gather(x, 0, [2, 0, 2])  ⇒  dx = counts of each index = [1, 0, 2]
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [3]);
    let idx = g.constant(Array::i64([3], vec![2, 0, 2]).unwrap());
    let y = x.gather(0, &idx).sum_all();
    let r = grads(&g, &y, &[&x], &[("x", f64s(&[3], &[1.0, 2.0, 3.0]))]);
    assert_eq!(r[0], vec![1.0, 0.0, 2.0]);
}

#[test]
fn where_and_detach_block_gradients() {
    // y = Σ where(x > 0, x², detach(x)·3)  ⇒  dy/dx = 2x where x > 0, else 0
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [3]);
    let y = where_(&x.gt(0.0), x.square(), x.detach() * 3.0).sum_all();
    let r = grads(&g, &y, &[&x], &[("x", f64s(&[3], &[-1.0, 2.0, 0.5]))]);
    assert_eq!(r[0], vec![0.0, 4.0, 1.0]);
}

#[test]
fn unused_wrt_gets_zeros_and_integers_are_refused() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2]);
    let z = g.input("z", DType::F64, [3]);
    let labels = g.input("labels", DType::I64, [2]);
    let y = x.sum_all();
    let r = grads(&g, &y, &[&z], &[("x", f64s(&[2], &[1.0, 1.0]))]);
    assert_eq!(r[0], vec![0.0; 3]);
    let line = line!() + 1;
    let e = g.grad(&y, &[&labels]).unwrap_err();
    assert!(matches!(e, Error::Grad { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("labels")
            && msg.contains("i64")
            && msg.contains(&format!("grad_rules.rs:{line}")),
        "{msg}"
    );
    let e = g.grad(&x, &[&x]).unwrap_err();
    assert!(e.to_string().contains("scalar"), "{e}");
}

#[test]
fn gradients_accumulate_over_several_losses() {
    // vjp with two unit seeds = grad(l1) + grad(l2): d(Σx²)/dx + d(Σ3x)/dx = 2x + 3
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2]);
    let l1 = x.square().sum_all();
    let l2 = (&x * 3.0).sum_all();
    let one = g.scalar(1.0, DType::F64);
    let gs = g.vjp(&[(&l1, &one), (&l2, &one)], &[&x]).unwrap();
    let r = g
        .run(&[&gs[0]], &[("x", f64s(&[2], &[1.0, -4.0]))])
        .unwrap();
    assert_eq!(r[0].to_f64_vec(), vec![5.0, -5.0]);
}

#[test]
fn second_derivative_and_hessian() {
    // f = Σ x³ + x₀x₁  ⇒  H = diag(6x) + [[0,1],[1,0]]
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2]);
    let f = x.pow(3.0).sum_all() + x.index([Idx::At(0)]) * x.index([Idx::At(1)]);
    let h = g.hessian(&f, &x).unwrap();
    assert_eq!(h.size(), [2, 2]);
    let r = g.run(&[&h], &[("x", f64s(&[2], &[1.0, 2.0]))]).unwrap();
    assert_eq!(r[0].to_f64_vec(), vec![6.0, 1.0, 1.0, 12.0]);
}

/// Every differentiable op on its own, checked by central differences in f64.
#[test]
fn every_op_passes_gradcheck() {
    type Case = (
        &'static str,
        Vec<Vec<usize>>,
        fn(&GraphBuilder, &[Tensor]) -> Tensor,
    );
    let cases: Vec<Case> = vec![
        ("neg abs sign", vec![vec![5]], |_, x| {
            (-&x[0]).abs() + x[0].sign()
        }),
        ("exp log sqrt", vec![vec![5]], |_, x| {
            x[0].exp() + (x[0].square() + 1.0).log() + (x[0].square() + 0.1).sqrt()
        }),
        (
            "sin cos tanh sigmoid relu floor",
            vec![vec![2, 3]],
            |_, x| {
                x[0].sin() * x[0].cos() + x[0].tanh() + x[0].sigmoid() + x[0].relu() + x[0].floor()
            },
        ),
        ("add sub broadcast", vec![vec![3, 1], vec![1, 4]], |_, x| {
            &x[0] + &x[1] - &x[1] * 2.0
        }),
        ("mul div broadcast", vec![vec![2, 3], vec![3]], |_, x| {
            &x[0] * &x[1] / (x[1].square() + 1.0)
        }),
        ("pow both", vec![vec![4], vec![4]], |_, x| {
            (x[0].square() + 0.5).pow(&x[1])
        }),
        ("maximum minimum", vec![vec![4], vec![1]], |_, x| {
            x[0].maximum(&x[1]) + x[0].minimum(&(&x[1] * 0.5))
        }),
        ("where", vec![vec![2, 3], vec![3]], |_, x| {
            where_(&x[0].gt(0.0), &x[0], &x[1])
        }),
        ("cast f32 round trip", vec![vec![3]], |_, x| {
            x[0].float().double() * 1.0
        }),
        ("sum mean keepdim", vec![vec![2, 3, 2]], |_, x| {
            x[0].sum([0, 2], true) + x[0].mean([1], true).sum([2], true)
        }),
        ("max min amax", vec![vec![3, 4]], |_, x| {
            x[0].max([1], true) + x[0].min([0], false)
        }),
        ("prod", vec![vec![2, 3]], |_, x| x[0].prod([1], false)),
        ("var std logsumexp", vec![vec![3, 4]], |_, x| {
            x[0].var([1], 1, false) + x[0].std([1], 0, false) + x[0].logsumexp([1], false)
        }),
        ("softmax log_softmax", vec![vec![3, 4]], |_, x| {
            x[0].softmax(1) * 2.0 + x[0].log_softmax(0)
        }),
        ("clamp scalar and tensor bounds", vec![vec![3, 4], vec![3, 1], vec![4]], |_, x| {
            x[0].clamp(-0.3, 0.4) + x[0].clamp(&x[1], &(&x[2] + 1.0)) + x[0].clamp_min(&x[2])
        }),
        ("max_dim min_dim", vec![vec![3, 4]], |_, x| {
            x[0].max_dim(1, true).0 + x[0].min_dim(0, false).0
        }),
        ("cross_entropy probabilities smoothed", vec![vec![3, 4], vec![3, 4]], |_, x| {
            let opts = onde::loss::NllOpts {
                label_smoothing: 0.2,
                reduction: onde::loss::Reduction::None,
                ..Default::default()
            };
            onde::loss::cross_entropy(&x[0], &x[1].softmax(1), &opts)
        }),
        ("max and avg pooling, 1-d and 2-d", vec![vec![2, 2, 9], vec![1, 2, 5, 6]], |_, x| {
            let o = |k: usize| onde::PoolOpts::new(k);
            x[0].max_pool1d(&o(3).stride(2).padding(1).ceil_mode(true)).sum([2], false)
                + x[0].avg_pool1d(&o(4).stride(3).padding(2).count_include_pad(false)).sum([2], false)
                + x[0].adaptive_avg_pool1d(4).sum([2], false)
                + x[1].max_pool2d(&o(2).dilation(2)).sum([2, 3], false).sum([0], false)
                + x[1].avg_pool2d(&o(3).stride(2).padding(1)).sum([2, 3], false).sum([0], false)
        }),
        ("layer norm, group norm, padding modes", vec![vec![2, 4, 5], vec![5], vec![4]], |_, x| {
            let ln = x[0].layer_norm(&[5], Some(&x[1]), None, 1e-5);
            let gn = x[0].group_norm(2, Some(&x[2]), Some(&x[2]), 1e-5);
            let pads = x[0].pad_mode([2, 1], onde::PadMode::Reflect).sum([2], false)
                + x[0].pad_mode([1, 3], onde::PadMode::Circular).sum([2], false)
                + x[0].pad_mode([2, 2], onde::PadMode::Replicate).sum([2], false);
            (ln * gn).sum([2], false) + pads
        }),
        ("sinc band-pass filters (SincNet cut-offs)", vec![vec![3, 1], vec![3, 1]], |_, x| {
            let low = &x[0] * 100.0 + 200.0;
            let band = &x[1] * 50.0 + 300.0;
            low.sinc_band_pass(&band, 7, 2000.0, 50.0, 50.0)
        }),
        (
            "recurrent cells (RNN tanh/relu, LSTM with projection, 2-layer bidirectional GRU)",
            vec![vec![5, 2, 3], vec![4, 2, 4], vec![1, 2, 2], vec![1, 2, 4], vec![1, 2, 4]],
            |g, x| {
                use onde::module::{Forward, Recurrent, RecurrentOpts};
                let o = RecurrentOpts::default();
                let rnn = Recurrent::rnn(g, "rnn", 3, 4, o);
                let relu = Recurrent::rnn_relu(g, "relu", 3, 4, o.batch_first(true));
                let lstm = Recurrent::lstm(g, "lstm", 3, 4, o.proj_size(2));
                let gru = Recurrent::gru(g, "gru", 3, 4, o.num_layers(2).bidirectional(true));
                let (y1, h1) = rnn.call((&x[0], Some(&x[4])));
                let (y2, h2) = relu.call((&x[0], None::<&Tensor>));
                let (y3, (h3, c3)) = lstm.call((&x[0], Some((&x[2], &x[3]))));
                let (y4, h4) = gru.call((&x[0], Some(&x[1])));
                y1.square().sum_all()
                    + h1.sum_all()
                    + y2.square().sum_all()
                    + h2.sum_all()
                    + (y3.square().sum_all() + h3.sum_all() + c3.square().sum_all())
                    + (y4.square().sum_all() + h4.sum_all())
            },
        ),
        ("batch norm with batch statistics", vec![vec![4, 3, 5], vec![3], vec![3]], |_, x| {
            x[0].batch_norm(None, None, Some(&x[1]), Some(&x[2]), true, 0.1, 1e-5)
        }),
        ("temporal and attention pooling over valid frames", vec![vec![2, 3, 6], vec![2, 1, 6]], |g, x| {
            use onde::TemporalStat::{Kurtosis, Max, Mean, Skewness, Std};
            let lengths = g.constant(Array::i64([2], vec![6, 4]).unwrap());
            let mask = g.constant(
                Array::bool([2, 6], vec![true, false, true, true, false, true, true, true, true, false, false, true])
                    .unwrap(),
            );
            let stats = x[0].temporal_pool(&[Mean, Std, Skewness, Kurtosis, Max], Some(&lengths), 1e-5);
            let att = x[0].attention_pool(&x[1], Some(&mask), true, 1e-5);
            stats.sum([1], false) + att.sum([1], false)
        }),
        ("scaled dot-product attention, masks", vec![vec![2, 3, 4], vec![2, 5, 4], vec![2, 5, 3]], |g, x| {
            let add = g.constant(f64s(&[3, 5], &(0..15).map(|i| (i % 4) as f64 * -0.5).collect::<Vec<_>>()));
            let a = x[0].scaled_dot_product_attention(&x[1], &x[2], Some(&add), 0.0, false, None);
            let c = x[0].scaled_dot_product_attention(&x[1], &x[2], None, 0.0, true, Some(0.7));
            a + c
        }),
        ("multi-head attention (inputs)", vec![vec![3, 2, 4]], |g, x| {
            use onde::module::{MhaInputs, MultiheadAttention};
            let m = MultiheadAttention::new(g, "mha", 4, 2);
            let kpm = g.constant(Array::bool([2, 3], vec![false, false, true, false, false, false]).unwrap());
            let o = MhaInputs {
                key_padding_mask: Some(&kpm),
                need_weights: true,
                ..MhaInputs::default()
            };
            let (y, w) = m.attend(&x[0], &x[0], &x[0], &o);
            y.sum([2], false) + w.unwrap().sum([2], false).transpose(0, 1)
        }),
        ("reshape permute", vec![vec![2, 3, 4]], |_, x| {
            x[0].reshape([4, 6]).transpose(0, 1).permute([1, 0])
        }),
        ("expand tile", vec![vec![3, 1]], |_, x| {
            x[0].expand([2, 3, 4]) + x[0].tile([2, 1, 4])
        }),
        ("slice steps", vec![vec![7, 5]], |_, x| {
            x[0].index(onde::s![Idx::from(1..).step(3), Idx::from(..-1).step(2)])
        }),
        ("pad", vec![vec![2, 3]], |_, x| x[0].pad([1, 2, 0, 1], 0.5)),
        // Frames that tile all but the end (step = size) and frames with gaps whose
        // widened last frame passes the end (step > size): the one-pass adjoint.
        ("unfold frames", vec![vec![2, 10, 2]], |_, x| {
            x[0].unfold(1, 3, 3).tanh()
        }),
        ("unfold frames with gaps", vec![vec![2, 8]], |_, x| {
            x[0].unfold(-1, 2, 3).tanh()
        }),
        // Overlapping windows: each element's gradient sums over the windows reading it.
        ("unfold overlapping", vec![vec![2, 7, 3]], |_, x| {
            x[0].unfold(1, 3, 2).tanh()
        }),
        // Overlap-add in chunks of the step: a partial last chunk (7 = 3 + 3 + 1), a
        // window three steps wide, one window only.
        ("unfold overlapping, partial chunk", vec![vec![2, 17]], |_, x| {
            x[0].unfold(-1, 7, 3).tanh()
        }),
        ("unfold overlapping, three chunks", vec![vec![1, 3, 13]], |_, x| {
            x[0].unfold(-1, 6, 2).sin()
        }),
        ("unfold overlapping, one window", vec![vec![2, 6]], |_, x| {
            x[0].unfold(-1, 5, 2).tanh()
        }),
        ("cat stack", vec![vec![2, 3], vec![2, 1]], |_, x| {
            cat(&[&x[0], &x[1], &x[0]], 1)
        }),
        ("gather index_select", vec![vec![3, 4]], |g, x| {
            let idx = g.constant(Array::i64([3, 2], vec![0, 3, 3, 3, 1, 0]).unwrap());
            let sel = g.constant(Array::i64([3], vec![2, 0, 2]).unwrap());
            x[0].gather(1, &idx).sum([1], true) + x[0].index_select(0, &sel)
        }),
        ("scatter_add", vec![vec![3, 2], vec![2, 2]], |g, x| {
            let idx = g.constant(Array::i64([2, 2], vec![0, 2, 0, 1]).unwrap());
            x[0].scatter_add(0, &idx, &x[1])
        }),
        (
            "matmul batched broadcast",
            vec![vec![2, 1, 3, 4], vec![5, 4, 2]],
            |_, x| x[0].matmul(&x[1]),
        ),
        (
            "matmul of a batch by one matrix (weight gradient as one flat product)",
            vec![vec![2, 3, 4, 5], vec![5, 2]],
            |_, x| x[0].matmul(&x[1]),
        ),
        (
            "matmul of a transposed batch by one matrix",
            vec![vec![4, 3, 5], vec![5, 2]],
            |_, x| x[0].transpose(0, 1).matmul(&x[1]),
        ),
        ("matmul vector", vec![vec![3], vec![3, 2]], |_, x| {
            x[0].matmul(&x[1])
        }),
        (
            "conv1d stride pad dilation groups bias",
            vec![vec![2, 4, 11], vec![6, 2, 3], vec![6]],
            |_, x| {
                x[0].conv1d(
                    &x[1],
                    Some(&x[2]),
                    &ConvOpts::default()
                        .stride(2)
                        .padding(3)
                        .dilation(2)
                        .groups(2),
                )
            },
        ),
        (
            "conv1d depthwise same",
            vec![vec![1, 3, 8], vec![3, 1, 4]],
            |_, x| x[0].conv1d(&x[1], None, &ConvOpts::default().same().groups(3)),
        ),
        (
            // Stride 1 with padding within the kernel's reach: the input gradient is
            // one convolution with the flipped, channel-transposed kernel.
            "conv1d stride 1 groups 2 (input gradient as a convolution)",
            vec![vec![2, 4, 9], vec![6, 2, 3], vec![6]],
            |_, x| {
                x[0].conv1d(
                    &x[1],
                    Some(&x[2]),
                    &ConvOpts::default().padding(3).dilation(2).groups(2),
                )
            },
        ),
        (
            // One input channel per group, two outputs each: the kernel gradient is one
            // reduction over the input's strided, dilated windows (unfold).
            "conv1d depthwise multiplier 2, stride 2, dilation 2 (kernel gradient from windows)",
            vec![vec![2, 3, 13], vec![6, 1, 3]],
            |_, x| {
                x[0].conv1d(
                    &x[1],
                    None,
                    &ConvOpts::default()
                        .stride(2)
                        .padding(2)
                        .dilation(2)
                        .groups(3),
                )
            },
        ),
        (
            // Padding wider than the kernel's reach: the end ranges' windows read
            // padding only (an empty slice of the input, padded).
            "conv1d depthwise stride 3, padding 4 > reach (windows at both ends)",
            vec![vec![2, 2, 5], vec![2, 1, 2]],
            |_, x| {
                x[0].conv1d(
                    &x[1],
                    None,
                    &ConvOpts::default().stride(3).padding(4).groups(2),
                )
            },
        ),
        (
            // Stride 4 over padding 6 with k = 1: the first two outputs and the last
            // read padding only (windows of an empty slice, entirely padded).
            "conv1d depthwise stride 4, padding 6, k1 (ranges inside the padding)",
            vec![vec![1, 2, 3], vec![2, 1, 1]],
            |_, x| {
                x[0].conv1d(
                    &x[1],
                    None,
                    &ConvOpts::default().stride(4).padding(6).groups(2),
                )
            },
        ),
        (
            "conv2d depthwise stride (2, 1) dilation (1, 2) (kernel gradient from windows)",
            vec![vec![2, 2, 7, 8], vec![2, 1, 3, 2]],
            |_, x| {
                let opts = ConvOpts {
                    stride: vec![2, 1],
                    padding: Padding::Explicit(vec![1, 1]),
                    dilation: vec![1, 2],
                    groups: 2,
                };
                x[0].conv2d(&x[1], None, &opts)
            },
        ),
        (
            "conv2d stride 1 groups 2, per-axis padding and dilation (input gradient as a convolution)",
            vec![vec![2, 4, 5, 6], vec![4, 2, 3, 2]],
            |_, x| {
                let opts = ConvOpts {
                    stride: vec![1, 1],
                    padding: Padding::Explicit(vec![2, 1]),
                    dilation: vec![1, 2],
                    groups: 2,
                };
                x[0].conv2d(&x[1], None, &opts)
            },
        ),
        (
            // Fewer input columns (C/G·K = 3) than output channels per group (6): the
            // kernel gradient is one product with the gathered columns.
            "conv1d first-layer-like, stride 2 (kernel gradient from columns)",
            vec![vec![2, 1, 20], vec![6, 1, 3], vec![6]],
            |_, x| {
                x[0].conv1d(
                    &x[1],
                    Some(&x[2]),
                    &ConvOpts::default().stride(2).padding(1),
                )
            },
        ),
        (
            "conv1d groups 2 dilated (kernel gradient from columns)",
            vec![vec![2, 2, 15], vec![8, 1, 3]],
            |_, x| {
                x[0].conv1d(
                    &x[1],
                    None,
                    &ConvOpts::default().padding(2).dilation(2).groups(2),
                )
            },
        ),
        (
            "conv2d (kernel gradient from columns)",
            vec![vec![2, 1, 6, 5], vec![5, 1, 2, 2]],
            |_, x| {
                let opts = ConvOpts {
                    stride: vec![2, 1],
                    padding: Padding::Explicit(vec![1, 0]),
                    dilation: vec![1, 1],
                    groups: 1,
                };
                x[0].conv2d(&x[1], None, &opts)
            },
        ),
        (
            // Both axes strided: dy is spread along each in turn.
            "conv2d stride (2, 2) groups 2 (input gradient over spread dy)",
            vec![vec![2, 4, 7, 8], vec![4, 2, 3, 2]],
            |_, x| {
                let opts = ConvOpts {
                    stride: vec![2, 2],
                    padding: Padding::Explicit(vec![1, 1]),
                    dilation: vec![1, 1],
                    groups: 2,
                };
                x[0].conv2d(&x[1], None, &opts)
            },
        ),
        (
            // By phases: the even phase's convolution yields more outputs than the
            // input has even positions (its result is cut). The spread form's cut is
            // reached by the 2-d stride (2, 2) case above (axis 1: 5·2 > 8 + 1).
            "conv1d k2 s2 p1 (input gradient by phases, a phase cut)",
            vec![vec![2, 2, 10], vec![3, 2, 2]],
            |_, x| x[0].conv1d(&x[1], None, &ConvOpts::default().stride(2).padding(1)),
        ),
        (
            // Polyphase input gradient with gcd(d, s) = 1: every phase takes a
            // different subset of taps (d = 3, s = 2: k = 0, 2 and k = 1).
            "conv1d k3 d3 s2 p4 (input gradient by phases)",
            vec![vec![2, 2, 13], vec![3, 2, 3]],
            |_, x| {
                x[0].conv1d(
                    &x[1],
                    None,
                    &ConvOpts::default().stride(2).padding(4).dilation(3),
                )
            },
        ),
        (
            // s = 3, d = 2, K = 4: phases with two, one and one taps; odd length.
            "conv1d k4 d2 s3 p1 (input gradient by phases)",
            vec![vec![1, 2, 17], vec![2, 2, 4]],
            |_, x| {
                x[0].conv1d(
                    &x[1],
                    None,
                    &ConvOpts::default().stride(3).padding(1).dilation(2),
                )
            },
        ),
        (
            // L = 3, K = 3, s = 3, p = 1: one phase's dy slice starts past dy's end
            // (an empty input convolved over padding only).
            "conv1d k3 s3 p1 (a phase over an empty dy slice)",
            vec![vec![1, 2, 3], vec![2, 2, 3]],
            |_, x| x[0].conv1d(&x[1], None, &ConvOpts::default().stride(3).padding(1)),
        ),
        (
            // Stride above the kernel, and taps that read only padding.
            "conv1d stride 3 > kernel span, padding-only taps",
            vec![vec![1, 2, 2], vec![3, 2, 5]],
            |_, x| x[0].conv1d(&x[1], None, &ConvOpts::default().stride(3).padding(4)),
        ),
        (
            "conv2d",
            vec![vec![1, 2, 5, 6], vec![4, 1, 3, 2]],
            |_, x| {
                let opts = ConvOpts {
                    stride: vec![2, 1],
                    padding: Padding::Explicit(vec![1, 0]),
                    dilation: vec![1, 2],
                    groups: 2,
                };
                x[0].conv2d(&x[1], None, &opts)
            },
        ),
        (
            "scan forward and reverse",
            vec![vec![2, 5, 3], vec![2, 3], vec![3, 3]],
            |g, x| {
                let fwd = g.scan(&[&x[1]], &[&x[0]], &[&x[2]], 1, false, |c, xs, k| {
                    let h = (c[0].matmul(&k[0]) + &xs[0]).tanh();
                    (vec![h.clone()], vec![&h * 2.0])
                });
                let bwd = g.scan(&[&x[1]], &[&fwd[1]], &[], 1, true, |c, xs, _| {
                    let h = &c[0] * 0.5 + xs[0].sin();
                    (vec![h.clone()], vec![h])
                });
                bwd[1].sum([1], false) + &fwd[0] + &bwd[0]
            },
        ),
    ];
    for (name, shapes, f) in cases {
        let g = GraphBuilder::new();
        let xs: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| g.input(&format!("x{i}"), DType::F64, s.clone()))
            .collect();
        let y = f(&g, &xs);
        y.check().unwrap_or_else(|e| panic!("{name}: {e}"));
        let feeds: Vec<(String, Array)> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("x{i}"), data(s, i + 1)))
            .collect();
        let fr: Vec<(&str, Array)> = feeds.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
        let refs: Vec<&Tensor> = xs.iter().collect();
        let report = g
            .gradcheck(&y, &refs, &fr, GradcheckOpts::default())
            .unwrap();
        assert!(report.ok(), "{name}: {report}");
        assert!(report.checked > 0, "{name}");
    }
}

/// Second derivatives of softmax (its own op, whose gradient is `softmax_backward`,
/// itself an op whose rule emits ops that have rules) and of the composites whose first derivative holds a value fixed
/// (log_softmax: the row maximum) or routes through `where` (std's zero-variance
/// guard, clamp), away from the points where they are not differentiable: the
/// gradient, itself checked by central differences in f64.
#[test]
fn composites_differentiate_twice() {
    type Case = (&'static str, fn(&Tensor) -> Tensor);
    let cases: Vec<Case> = vec![
        ("softmax", |x| (x.softmax(1) * x.sin()).sum_all()),
        // Along the outer axis (lines strided across columns), and through the
        // gradient's own gradient: `softmax_backward` differentiated in both operands.
        ("softmax axis 0", |x| (x.softmax(0) * x.cos()).sum_all()),
        ("log_softmax", |x| (x.log_softmax(0) * x.cos()).sum_all()),
        ("std var", |x| {
            (x.std([1], 1, false) * x.var([1], 0, false)).sum_all()
        }),
        ("clamp", |x| (x.clamp(-0.3, 0.5) * x).sum_all()),
        ("logsumexp", |x| x.logsumexp([1], false).square().sum_all()),
    ];
    for (name, f) in cases {
        let g = GraphBuilder::new();
        let x = g.input("x", DType::F64, [3, 4]);
        let dx = g.grad(&f(&x), &[&x]).unwrap().remove(0);
        let feeds = [("x", data(&[3, 4], 7))];
        let report = g
            .gradcheck(&dx, &[&x], &feeds, GradcheckOpts::default())
            .unwrap();
        assert!(report.ok(), "{name}: {report}");
    }
}

/// The IR's `unfold` with a step and a dilation (the API's `unfold` has dilation 1):
/// `Σ tanh(windows)`, gradient against f64 finite differences.
#[test]
fn unfold_with_step_and_dilation_passes_gradcheck() {
    use onde::ir::{Graph, Op, ReduceKind, TensorType, UnaryOp};
    let mut g = Graph::new();
    let ty = TensorType::new(DType::F64, vec![2, 11]);
    let add =
        |g: &mut Graph, op: Op, xs: &[onde::ir::ValueId]| g.add_op(op, xs, None).unwrap().1[0];
    let x = add(
        &mut g,
        Op::Input {
            name: "x".into(),
            ty,
        },
        &[],
    );
    // [2, 11] → [2, 3, 4]: out[i, k, p] = x[i, 2p + 2k]: even elements are read by up
    // to three windows, odd ones by none (zero gradient).
    let w = add(
        &mut g,
        Op::Unfold {
            axis: 1,
            size: 3,
            step: 2,
            dilation: 2,
        },
        &[x],
    );
    let t = add(&mut g, Op::Unary(UnaryOp::Tanh), &[w]);
    let loss = add(
        &mut g,
        Op::Reduce {
            kind: ReduceKind::Sum,
            axes: vec![0, 1, 2],
            keepdim: false,
        },
        &[t],
    );
    let feeds = [("x".to_string(), data(&[2, 11], 5))].into_iter().collect();
    let report =
        onde::nn::gradcheck_graph(&g, loss, &["x"], &feeds, GradcheckOpts::default()).unwrap();
    assert!(report.ok(), "{report}");
}
