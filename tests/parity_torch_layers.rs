//! PyTorch parity of the layers' functional ops (pooling so far): every case of
//! `tests/fixtures/torch_ops/layers.safetensors` (written by
//! `tests/fixtures/torch_ops/gen_torch_layers.py`), values and gradients, interpreted
//! and compiled at every ISA level (`common::torch_fixture`).

use crate::common;
use crate::common::torch_fixture::{self, Inputs};
use onde::module::{BatchNorm, Conv, Module, PaddingMode};
use onde::optim::Sgd;
use onde::{
    Array, ConvOpts, DType, GraphBuilder, PadMode, Padding, PoolOpts, TemporalStat, Tensor,
    TrainOptions, TrainStep,
};
use std::sync::OnceLock;

fn fixture_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| torch_fixture::fixture_bytes("torch_ops/layers.safetensors"))
}

fn check(case: &str, build: impl FnOnce(&Inputs) -> Vec<(&'static str, Tensor)>) {
    torch_fixture::check(fixture_bytes(), case, build)
}

/// `(out_<what>, y)` and `(out_grad_<what>_<x>, dy·∂y/∂x)`.
fn with_grads(i: &Inputs, what: &str, y: Tensor, x: &str) -> Vec<(&'static str, Tensor)> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let g = i.grads(&y, leak(format!("dy_{what}")), &[x]).remove(0);
    vec![
        (leak(format!("out_{what}")), y),
        (leak(format!("out_grad_{what}_{x}")), g),
    ]
}

#[test]
fn max_pool1d_routes_ties_to_the_first_maximum() {
    check("max_pool1d", |i| {
        let (x, x1) = (i.get("x"), i.get("x1"));
        [
            ("k3", x.max_pool1d(&PoolOpts::new(3)), "x"),
            (
                "k3s2p1",
                x.max_pool1d(&PoolOpts::new(3).stride(2).padding(1)),
                "x",
            ),
            (
                "k2s2ceil",
                x.max_pool1d(&PoolOpts::new(2).stride(2).ceil_mode(true)),
                "x",
            ),
            (
                "k3d2",
                x.max_pool1d(&PoolOpts::new(3).stride(1).dilation(2).padding(1)),
                "x",
            ),
            (
                "unbatched_ceil",
                x1.max_pool1d(&PoolOpts::new(4).stride(3).padding(2).ceil_mode(true)),
                "x1",
            ),
        ]
        .into_iter()
        .flat_map(|(w, y, x)| with_grads(i, w, y, x))
        .collect()
    });
}

#[test]
fn max_pool2d() {
    check("max_pool2d", |i| {
        let x = i.get("x");
        [
            ("k2", x.max_pool2d(&PoolOpts::new(2))),
            (
                "k3s2p1",
                x.max_pool2d(&PoolOpts::new(3).stride(2).padding(1)),
            ),
            (
                "k23_ceil",
                x.max_pool2d(&PoolOpts::new([2, 3]).stride([2, 2]).ceil_mode(true)),
            ),
            (
                "k3d2",
                x.max_pool2d(&PoolOpts::new(3).stride(2).dilation([2, 1]).padding([1, 1])),
            ),
        ]
        .into_iter()
        .flat_map(|(w, y)| with_grads(i, w, y, "x"))
        .collect()
    });
}

#[test]
fn avg_pool1d_divisors() {
    check("avg_pool1d", |i| {
        let x = i.get("x");
        [
            ("k3", x.avg_pool1d(&PoolOpts::new(3))),
            (
                "k4s3p2",
                x.avg_pool1d(&PoolOpts::new(4).stride(3).padding(2)),
            ),
            (
                "k4s3p2_nopad",
                x.avg_pool1d(
                    &PoolOpts::new(4)
                        .stride(3)
                        .padding(2)
                        .count_include_pad(false),
                ),
            ),
            (
                "k3s2p1_ceil",
                x.avg_pool1d(&PoolOpts::new(3).stride(2).padding(1).ceil_mode(true)),
            ),
            (
                "k3s2p1_ceil_nopad",
                x.avg_pool1d(
                    &PoolOpts::new(3)
                        .stride(2)
                        .padding(1)
                        .ceil_mode(true)
                        .count_include_pad(false),
                ),
            ),
        ]
        .into_iter()
        .flat_map(|(w, y)| with_grads(i, w, y, "x"))
        .collect()
    });
}

#[test]
fn avg_pool2d() {
    check("avg_pool2d", |i| {
        let x = i.get("x");
        [
            ("k2", x.avg_pool2d(&PoolOpts::new(2))),
            (
                "k3s2p1",
                x.avg_pool2d(&PoolOpts::new(3).stride(2).padding(1)),
            ),
            (
                "k3s2p1_nopad_ceil",
                x.avg_pool2d(
                    &PoolOpts::new(3)
                        .stride(2)
                        .padding(1)
                        .ceil_mode(true)
                        .count_include_pad(false),
                ),
            ),
        ]
        .into_iter()
        .flat_map(|(w, y)| with_grads(i, w, y, "x"))
        .collect()
    });
}

#[test]
fn adaptive_avg_pool1d_bins() {
    check("adaptive_avg_pool1d", |i| {
        let x = i.get("x");
        [("o3", 3), ("o4", 4), ("o10", 10), ("o1", 1)]
            .into_iter()
            .flat_map(|(w, n)| with_grads(i, w, x.adaptive_avg_pool1d(n), "x"))
            .collect()
    });
}

#[test]
fn padding_modes() {
    check("pad_modes", |i| {
        let (x, x2) = (i.get("x"), i.get("x2"));
        [
            ("reflect", x.pad_mode([2, 3], PadMode::Reflect), "x"),
            ("replicate", x.pad_mode([3, 1], PadMode::Replicate), "x"),
            ("circular", x.pad_mode([2, 4], PadMode::Circular), "x"),
            (
                "reflect2d",
                x2.pad_mode([1, 2, 2, 1], PadMode::Reflect),
                "x2",
            ),
            (
                "replicate2d",
                x2.pad_mode([2, 0, 1, 3], PadMode::Replicate),
                "x2",
            ),
            (
                "circular2d",
                x2.pad_mode([1, 1, 2, 0], PadMode::Circular),
                "x2",
            ),
        ]
        .into_iter()
        .flat_map(|(w, y, x)| with_grads(i, w, y, x))
        .collect()
    });
}

/// `(out_<what>, y)` and the gradients with respect to each of `wrt`.
fn with_all_grads(i: &Inputs, what: &str, y: Tensor, wrt: &[&str]) -> Vec<(&'static str, Tensor)> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let gs = i.grads(&y, leak(format!("dy_{what}")), wrt);
    let mut v = vec![(leak(format!("out_{what}")), y)];
    for (x, g) in wrt.iter().zip(gs) {
        v.push((leak(format!("out_grad_{what}_{x}")), g));
    }
    v
}

#[test]
fn layer_and_group_norm() {
    check("norms", |i| {
        let x = i.get("x");
        let (w1, b1, w2, b2) = (i.get("w1"), i.get("b1"), i.get("w2"), i.get("b2"));
        let (wg, bg) = (i.get("wg"), i.get("bg"));
        let mut v = with_all_grads(
            i,
            "ln1",
            x.layer_norm(&[5], Some(w1), Some(b1), 1e-5),
            &["x", "w1", "b1"],
        );
        v.extend(with_all_grads(
            i,
            "ln2",
            x.layer_norm(&[4, 5], Some(w2), Some(b2), 1e-3),
            &["x", "w2", "b2"],
        ));
        v.extend(with_all_grads(
            i,
            "ln_plain",
            x.layer_norm(&[5], None, None, 1e-5),
            &["x"],
        ));
        v.extend(with_all_grads(
            i,
            "gn2",
            x.group_norm(2, Some(wg), Some(bg), 1e-5),
            &["x", "wg", "bg"],
        ));
        v.extend(with_all_grads(
            i,
            "gn4",
            x.group_norm(4, None, None, 1e-5),
            &["x"],
        ));
        v
    });
}

#[test]
fn conv_modules_load_pytorch_weights() {
    check("conv_modules", |i| {
        let g = &i.g;
        let load = |m: &Conv, what: &str| {
            for (name, _) in m.named_parameters() {
                let key = format!("{what}_{}", name.rsplit('.').next().unwrap());
                g.set_parameter(&name, i.array(&key)).unwrap();
            }
        };
        let reflect = Conv::conv1d(g, "reflect", 3, 4, 5, ConvOpts::default().padding(2))
            .padding_mode(PaddingMode::Reflect);
        let circular = Conv::conv1d(
            g,
            "circular_same",
            4,
            4,
            3,
            ConvOpts {
                padding: Padding::Same,
                ..ConvOpts::default()
            }
            .groups(4)
            .dilation(2),
        )
        .padding_mode(PaddingMode::Circular);
        let replicate = Conv::conv2d(
            g,
            "replicate2d",
            2,
            3,
            [3, 2],
            ConvOpts::default().padding(1),
        )
        .padding_mode(PaddingMode::Replicate);
        let strided = Conv::build(
            g,
            "zeros_stride",
            3,
            2,
            vec![4],
            ConvOpts::default().stride(2).padding(1),
            false,
        );
        for (m, what) in [
            (&reflect, "reflect"),
            (&circular, "circular_same"),
            (&replicate, "replicate2d"),
            (&strided, "zeros_stride"),
        ] {
            load(m, what);
        }
        let (x, xd, x2) = (i.get("x"), i.get("xd"), i.get("x2"));
        let mut v = with_grads(i, "reflect", reflect.forward(x), "x");
        v.extend(with_grads(i, "circular_same", circular.forward(xd), "xd"));
        v.extend(with_grads(i, "replicate2d", replicate.forward(x2), "x2"));
        v.extend(with_grads(i, "zeros_stride", strided.forward(x), "x"));
        v
    });
}

#[test]
fn scaled_dot_product_attention() {
    check("sdpa", |i| {
        let (q, k, v) = (i.get("q"), i.get("k"), i.get("v"));
        let (mask, add) = (i.get("mask"), i.get("add"));
        let qkv = ["q", "k", "v"];
        let mut out = with_all_grads(
            i,
            "plain",
            q.scaled_dot_product_attention(k, v, None, 0.0, false, None),
            &qkv,
        );
        out.extend(with_all_grads(
            i,
            "bool_mask",
            q.scaled_dot_product_attention(k, v, Some(mask), 0.0, false, None),
            &qkv,
        ));
        out.extend(with_all_grads(
            i,
            "additive",
            q.scaled_dot_product_attention(k, v, Some(add), 0.0, false, None),
            &qkv,
        ));
        out.extend(with_all_grads(
            i,
            "causal",
            q.scaled_dot_product_attention(k, v, None, 0.0, true, None),
            &qkv,
        ));
        out.extend(with_all_grads(
            i,
            "scale",
            q.scaled_dot_product_attention(k, v, None, 0.0, false, Some(0.3)),
            &qkv,
        ));
        out
    });
}

#[test]
fn temporal_pooling_over_valid_frames() {
    use onde::module::AttentivePooling;
    use TemporalStat::{Kurtosis, Max, Mean, Min, Skewness, Std};
    check("temporal", |i| {
        let g = &i.g;
        let (x, lengths, mask) = (i.get("x"), i.get("lengths"), i.get("mask"));
        let frame = AttentivePooling::new(g, "frame", 4, 5, false, false);
        let channel = AttentivePooling::new(g, "channel", 4, 5, true, true);
        for (m, score) in [(&frame, "score1"), (&channel, "score_c")] {
            for (name, _) in m.named_parameters() {
                let (layer, p) = name.split_once('.').unwrap().1.split_once('.').unwrap();
                let layer = if layer == "score" { score } else { layer };
                g.set_parameter(&name, i.array(&format!("{layer}_{p}")))
                    .unwrap();
            }
        }
        let frame_std = AttentivePooling {
            with_std: true,
            ..frame.clone()
        };
        [
            ("mean", x.temporal_mean(None)),
            ("stats_len", x.statistics_pool(Some(lengths), 1e-5)),
            (
                "higher_mask",
                x.temporal_pool(&[Mean, Std, Skewness, Kurtosis], Some(mask), 1e-5),
            ),
            (
                "maxmin_len",
                x.temporal_pool(&[Max, Min], Some(lengths), 1e-5),
            ),
            ("att_len", frame.forward_valid(x, Some(lengths))),
            ("att_stats_mask", channel.forward_valid(x, Some(mask))),
            ("att_stats", frame_std.forward(x)),
        ]
        .into_iter()
        .flat_map(|(w, y)| with_grads(i, w, y, "x"))
        .collect()
    });
}

/// `nn.MultiheadAttention` loaded from PyTorch's state dicts: packed and separate
/// projections, sequence- and batch-first, bool and float masks of both kinds, averaged
/// and per-head weights, unbatched input.
#[test]
fn multihead_attention_loads_pytorch_weights() {
    use onde::module::{MhaInputs, MultiheadAttention};
    check("mha", |i| {
        let g = &i.g;
        let packed = MultiheadAttention::new(g, "packed", 8, 2);
        let cross = MultiheadAttention::build(g, "cross_bf", 8, 2, true, None, None, true);
        let kvdim = MultiheadAttention::build(g, "kvdim", 6, 3, false, Some(5), Some(3), true);
        let unbatched = MultiheadAttention::new(g, "unbatched", 8, 4);
        for m in [&packed, &cross, &kvdim, &unbatched] {
            for (name, _) in m.named_parameters() {
                g.set_parameter(&name, i.array(&name.replacen('.', "_", 1)))
                    .unwrap();
            }
        }
        let (kpm, add, kpm6, causal) = (
            i.get("kpm"),
            i.get("add_mask"),
            i.get("kpm6"),
            i.get("causal"),
        );
        let weights = MhaInputs {
            need_weights: true,
            ..MhaInputs::default()
        };
        let x = i.get("packed_x");
        let (y1, w1) = packed.attend(
            x,
            x,
            x,
            &MhaInputs {
                key_padding_mask: Some(kpm),
                ..weights.clone()
            },
        );
        let qkv = |w: &str| {
            (
                i.get(&format!("{w}_q")),
                i.get(&format!("{w}_k")),
                i.get(&format!("{w}_v")),
            )
        };
        let (q, k, v) = qkv("cross_bf");
        let (y2, w2) = cross.attend(
            q,
            k,
            v,
            &MhaInputs {
                key_padding_mask: Some(kpm6),
                attn_mask: Some(add),
                ..weights.clone()
            },
        );
        let (q, k, v) = qkv("kvdim");
        let (y3, w3) = kvdim.attend(
            q,
            k,
            v,
            &MhaInputs {
                attn_mask: Some(causal),
                per_head_weights: true,
                ..weights.clone()
            },
        );
        let (q, k, v) = qkv("unbatched");
        let (y4, w4) = unbatched.attend(
            q,
            k,
            v,
            &MhaInputs {
                attn_mask: Some(causal),
                ..weights.clone()
            },
        );
        let mut out = with_all_grads(i, "packed", y1, &["packed_x"]);
        for (what, y) in [("cross_bf", y2), ("kvdim", y3), ("unbatched", y4)] {
            let names: Vec<&'static str> = ["q", "k", "v"]
                .iter()
                .map(|n| &*Box::leak(format!("{what}_{n}").into_boxed_str()))
                .collect();
            out.extend(with_all_grads(i, what, y, &names));
        }
        for (what, w) in [
            ("out_packed_weights", w1),
            ("out_cross_bf_weights", w2),
            ("out_kvdim_weights", w3),
            ("out_unbatched_weights", w4),
        ] {
            out.push((what, w.unwrap()));
        }
        out
    });
}

/// SincConv1d against the reference implementation in the fixture script: the
/// mel-spaced initial cut-offs, the filters of a 251-tap bank, and a strided, padded
/// forward with gradients reaching the input and both cut-offs (the reference's kernel
/// 16, which it raises to 17).
#[test]
fn sinc_conv1d_matches_the_reference() {
    use onde::module::SincConv1d;
    check("sinc", |i| {
        let g = &i.g;
        let (x, low, band) = (i.get("x"), i.get("low"), i.get("band"));
        let opts = ConvOpts::default().stride(2).padding(3);
        let m = SincConv1d::build(g, "sinc", 6, 17, 8000.0, 50.0, 50.0, opts.clone());
        let m251 = SincConv1d::new(g, "sinc251", 4, 251, 16000.0);
        // The module's forward with the fixture's perturbed cut-offs is the functional
        // form: one graph for both.
        let y = x.conv1d(
            &low.sinc_band_pass(band, 17, 8000.0, 50.0, 50.0),
            None,
            &opts,
        );
        let mut out = with_all_grads(i, "conv", y, &["x", "low", "band"]);
        out.extend([
            ("out_init_low", m.low_hz_.clone()),
            ("out_init_band", m.band_hz_.clone()),
            ("out_init251_low", m251.low_hz_.clone()),
            ("out_filters251", m251.filters()),
        ]);
        out
    });
}

/// Batch norm through three compiled SGD steps against PyTorch's module: losses, the
/// input gradient, every parameter and buffer afterwards (running statistics,
/// `num_batches_tracked`), then the eval-mode output through an evaluator.
#[test]
fn batch_norm_training_steps_update_buffers_as_pytorch() {
    let t = torch_fixture::case_tensors(fixture_bytes(), "batch_norm");
    let arr = |k: String| {
        t.get(&k)
            .unwrap_or_else(|| panic!("fixture lacks {k}"))
            .clone()
    };
    let close = |got: &Array, want: &Array, what: &str| {
        assert_eq!(got.shape(), want.shape(), "{what}");
        assert_eq!(got.dtype(), want.dtype(), "{what}");
        common::assert_close(&got.to_f64_vec(), &want.to_f64_vec(), 1e-4, what);
    };
    type Config = (&'static str, Option<f64>, bool, f64, bool, bool);
    let configs: [Config; 5] = [
        // name, momentum, 2d, eps, affine, track_running_stats
        ("bn1d", Some(0.1), false, 1e-5, true, true),
        ("bn1d_cum", None, false, 1e-5, true, true),
        ("bn2d", Some(0.3), true, 1e-3, true, true),
        ("bn1d_plain", Some(0.1), false, 1e-5, false, true),
        ("bn1d_untracked", Some(0.1), false, 1e-5, true, false),
    ];
    for (what, momentum, two_d, eps, affine, track) in configs {
        let g = GraphBuilder::new();
        let bn = BatchNorm::build(
            &g,
            "bn",
            4 - usize::from(two_d),
            two_d,
            eps,
            momentum,
            affine,
            track,
        );
        let mut names: Vec<String> = bn.named_parameters().into_iter().map(|(n, _)| n).collect();
        names.extend(bn.named_buffers().into_iter().map(|(n, _)| n));
        for n in &names {
            g.set_parameter(n, arr(format!("{what}_{}", &n[3..])))
                .unwrap();
        }
        let x0 = arr(format!("{what}_x0"));
        let shape = x0.shape().dims().to_vec();
        let x = g.input("x", DType::F32, shape.clone());
        let dy = g.input("dy", DType::F32, shape.clone());
        // A parameter-free norm still needs a learnable parameter for a TrainStep: one
        // that does not change the loss (its gradient is 0, SGD leaves it alone).
        let dummy = g.parameter("dummy", Array::scalar(DType::F32, 1.0));
        let loss = (&bn.forward(&x) * &dy).sum_all() + &dummy * 0.0;
        let dx = g.grad(&loss, &[&x]).unwrap().remove(0);
        let opts = TrainOptions {
            outputs: vec![&dx],
            ..TrainOptions::default()
        };
        let mut step = TrainStep::with_options(&g, &loss, &Sgd::new(0.1), opts).unwrap();
        for s in 0..3 {
            let (xs, dys) = (arr(format!("{what}_x{s}")), arr(format!("{what}_dy{s}")));
            let l = step.step(&[("x", &xs), ("dy", &dys)]).unwrap();
            let want = arr(format!("out_{what}_loss{s}")).to_f64_vec()[0];
            common::assert_close(&[l], &[want], 1e-4, &format!("{what} loss {s}"));
            if s == 0 {
                let got = step.output(1).unwrap();
                close(&got, &arr(format!("out_{what}_dx0")), &format!("{what} dx"));
            }
        }
        for n in &names {
            let got = step.value(n).unwrap().clone();
            close(
                &got,
                &arr(format!("out_{what}_{}", &n[3..])),
                &format!("{what} {n}"),
            );
        }
        let in_state_dict: Vec<String> = step.state_dict().into_iter().map(|(n, _)| n).collect();
        for n in &names {
            assert!(
                in_state_dict.contains(n),
                "{what}: {n} not in the state dict"
            );
        }
        bn.eval();
        let xe_arr = arr(format!("{what}_xe"));
        let xe = g.input("xe", DType::F32, shape);
        let ye = bn.forward(&xe);
        let mut ev = step.evaluator(&g, &[&ye]).unwrap();
        let got = ev.run(&step, &[("xe", &xe_arr)]).unwrap().remove(0);
        close(
            &got,
            &arr(format!("out_{what}_eval")),
            &format!("{what} eval"),
        );
    }
}

/// Every case of the fixture has a test above.
#[test]
fn every_fixture_case_is_tested() {
    let mut tested = vec![
        "max_pool1d",
        "max_pool2d",
        "avg_pool1d",
        "avg_pool2d",
        "adaptive_avg_pool1d",
        "pad_modes",
        "norms",
        "conv_modules",
        "sdpa",
        "batch_norm",
        "temporal",
        "mha",
        "sinc",
    ];
    tested.sort_unstable();
    assert_eq!(torch_fixture::case_names(fixture_bytes()), tested);
}
