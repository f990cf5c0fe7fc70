//! Batch norm beyond the PyTorch fixture (`parity_torch_layers.rs`): PyTorch's names
//! and initial values, a module applied twice in one step (updates chain), gradient
//! accumulation advancing the running statistics per micro-batch, buffers written in
//! place and round-tripping through a checkpoint, and typed errors.

use onde::module::{BatchNorm, Module};
use onde::optim::Sgd;
use onde::{checkpoint, Array, DType, Error, GraphBuilder, TrainOptions, TrainStep};

fn names(v: Vec<(String, onde::Tensor)>) -> Vec<String> {
    v.into_iter().map(|(n, _)| n).collect()
}

/// `[N, C, L]` with channel c equal to `base + c` everywhere but a ±`spread` pattern
/// over the batch, so each channel's batch mean is `base + c` and its biased variance
/// is `spread²`.
fn channels(n: usize, c: usize, l: usize, base: f32, spread: f32) -> Array {
    let mut v = Vec::with_capacity(n * c * l);
    for b in 0..n {
        for ch in 0..c {
            for _ in 0..l {
                let sign = if b % 2 == 0 { 1.0 } else { -1.0 };
                v.push(base + ch as f32 + sign * spread);
            }
        }
    }
    Array::f32([n, c, l], v).unwrap()
}

#[test]
fn names_shapes_and_initial_values_are_pytorch_s() {
    let g = GraphBuilder::new();
    let bn = BatchNorm::batch_norm1d(&g, "enc.bn", 6);
    assert_eq!(
        names(bn.named_parameters()),
        ["enc.bn.weight", "enc.bn.bias"]
    );
    assert_eq!(
        names(bn.named_buffers()),
        [
            "enc.bn.running_mean",
            "enc.bn.running_var",
            "enc.bn.num_batches_tracked"
        ]
    );
    let vals = g.parameter_values();
    let get = |n: &str| vals.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(get("enc.bn.weight").to_f64_vec(), vec![1.0; 6]);
    assert_eq!(get("enc.bn.bias").to_f64_vec(), vec![0.0; 6]);
    assert_eq!(get("enc.bn.running_mean").to_f64_vec(), vec![0.0; 6]);
    assert_eq!(get("enc.bn.running_var").to_f64_vec(), vec![1.0; 6]);
    let nbt = get("enc.bn.num_batches_tracked");
    assert_eq!((nbt.dtype(), nbt.numel()), (DType::I64, 1));
    // Buffers are not learnable.
    assert_eq!(g.named_parameters().len(), 2);
    let plain = BatchNorm::build(&g, "p", 3, true, 1e-5, Some(0.1), false, false);
    assert!(plain.named_parameters().is_empty() && plain.named_buffers().is_empty());
}

#[test]
fn a_module_applied_twice_chains_its_updates() {
    let g = GraphBuilder::new();
    let bn = BatchNorm::batch_norm1d(&g, "bn", 2);
    let x1 = g.input("x1", DType::F32, [4, 2, 3]);
    let x2 = g.input("x2", DType::F32, [4, 2, 3]);
    let loss = (bn.forward(&x1).sum_all() + bn.forward(&x2).sum_all()) * 0.5;
    let mut step = TrainStep::new(&g, &loss, &Sgd::new(0.0)).unwrap();
    let a1 = channels(4, 2, 3, 10.0, 1.0);
    let a2 = channels(4, 2, 3, 20.0, 2.0);
    step.step(&[("x1", &a1), ("x2", &a2)]).unwrap();
    // n = 12 values per channel: unbiased variance = biased · 12/11.
    let m = |rm0: f64, b1: f64, b2: f64| 0.9 * (0.9 * rm0 + 0.1 * b1) + 0.1 * b2;
    let want_mean = [m(0.0, 10.0, 20.0), m(0.0, 11.0, 21.0)];
    let v1 = 12.0 / 11.0;
    let want_var = [m(1.0, v1, 4.0 * v1); 2];
    let got = |n: &str| step.value(n).unwrap().to_f64_vec();
    for (g, w) in got("bn.running_mean").iter().zip(want_mean) {
        assert!((g - w).abs() < 1e-4, "{g} vs {w}");
    }
    for (g, w) in got("bn.running_var").iter().zip(want_var) {
        assert!((g - w).abs() < 1e-4, "{g} vs {w}");
    }
    assert_eq!(got("bn.num_batches_tracked"), vec![2.0]);
}

#[test]
fn accumulation_advances_the_running_statistics_per_micro_batch() {
    let g = GraphBuilder::new();
    let bn = BatchNorm::build(&g, "bn", 2, false, 1e-5, None, true, true);
    let x = g.input("x", DType::F32, [2, 2, 5]);
    let loss = bn.forward(&x).square().mean_all();
    let opts = TrainOptions {
        accumulate: true,
        ..TrainOptions::default()
    };
    let mut step = TrainStep::with_options(&g, &loss, &Sgd::new(0.1), opts).unwrap();
    let batches = [
        channels(2, 2, 5, 1.0, 1.0),
        channels(2, 2, 5, 3.0, 1.0),
        channels(2, 2, 5, 8.0, 1.0),
    ];
    step.accumulate(&[("x", &batches[0])]).unwrap();
    step.accumulate(&[("x", &batches[1])]).unwrap();
    step.step(&[("x", &batches[2])]).unwrap();
    // momentum None: the cumulative average of the three batch means.
    let rm = step.value("bn.running_mean").unwrap().to_f64_vec();
    let want = [(1.0 + 3.0 + 8.0) / 3.0, (2.0 + 4.0 + 9.0) / 3.0];
    for (g, w) in rm.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{rm:?} vs {want:?}");
    }
    let nbt = step.value("bn.num_batches_tracked").unwrap().to_f64_vec();
    assert_eq!(nbt, vec![3.0]);
}

#[test]
fn buffers_are_updated_in_place_and_round_trip_through_a_checkpoint() {
    let build = || {
        let g = GraphBuilder::new();
        let bn = BatchNorm::batch_norm2d(&g, "bn", 3);
        let x = g.input("x", DType::F32, [2, 3, 2, 2]);
        let loss = bn.forward(&x).square().sum_all();
        let step = TrainStep::new(&g, &loss, &Sgd::new(0.05)).unwrap();
        (g, step)
    };
    let (_, mut step) = build();
    let report = step.in_place_report();
    for b in [
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    ] {
        assert!(
            report.iter().any(|(n, _)| n == b),
            "{b} missing from {report:?}"
        );
    }
    let xs = Array::f32([2, 3, 2, 2], (0..24).map(|i| (i * 7 % 11) as f32).collect()).unwrap();
    for _ in 0..2 {
        step.step(&[("x", &xs)]).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("onde_bn_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bn.safetensors");
    checkpoint::save(&path, &step.state_dict()).unwrap();
    let (_, mut fresh) = build();
    fresh
        .load_state_dict(&checkpoint::load(&path).unwrap(), true)
        .unwrap();
    for b in [
        "bn.weight",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    ] {
        assert_eq!(fresh.value(b), step.value(b), "{b}");
    }
    assert_eq!(
        fresh.value("bn.num_batches_tracked").unwrap().to_f64_vec(),
        [2.0]
    );
    // Both continue identically.
    let (a, b) = (
        step.step(&[("x", &xs)]).unwrap(),
        fresh.step(&[("x", &xs)]).unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(fresh.value("bn.running_var"), step.value("bn.running_var"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_is_a_typed_error_naming_the_module() {
    let g = GraphBuilder::new();
    let bn1 = BatchNorm::batch_norm1d(&g, "enc.bn1", 4);
    let bn2 = BatchNorm::batch_norm2d(&g, "enc.bn2", 4);
    let cases = [
        (
            bn1.forward(&g.input("a", DType::F32, [2, 3, 5])),
            "BatchNorm1d `enc.bn1` has 4 channels, the input [2, 3, 5] has 3",
        ),
        (
            bn2.forward(&g.input("b", DType::F32, [2, 4, 5])),
            "BatchNorm2d `enc.bn2` expects 4-D input, got [2, 4, 5]",
        ),
        (
            bn1.forward(&g.input("c", DType::F32, [1, 4])),
            "expected more than 1 value per channel when training",
        ),
        (
            g.input("d", DType::F32, [2, 4]).batch_norm(
                Some(&g.input("rm", DType::F32, [4])),
                Some(&g.input("rv", DType::F32, [4])),
                None,
                None,
                true,
                0.1,
                1e-5,
            ),
            "running_mean must be a buffer",
        ),
        (
            g.input("e", DType::F32, [2, 4]).batch_norm(
                None,
                None,
                Some(&g.input("w", DType::F32, [3])),
                None,
                true,
                0.1,
                1e-5,
            ),
            "weight [3] must be [4]",
        ),
    ];
    for (t, msg) in cases {
        match t.check() {
            Err(Error::Op {
                op, reason, loc, ..
            }) => {
                assert_eq!(op, "batch_norm");
                assert!(reason.contains(msg), "{reason}");
                assert!(loc.file.ends_with("batch_norm.rs"), "{loc:?}");
            }
            other => panic!("expected an Op error for {msg:?}, got {other:?}"),
        }
    }
    // In eval mode a batch of one is fine (running statistics).
    bn1.eval();
    assert!(bn1
        .forward(&g.input("f", DType::F32, [1, 4]))
        .check()
        .is_ok());
    // update_buffer checks its arguments.
    let t = g.input("t", DType::F32, [4]);
    let e = g.update_buffer("enc.bn1.weight", &t).unwrap_err();
    assert!(e.to_string().contains("not a buffer"), "{e}");
    let e = g
        .update_buffer("enc.bn1.running_mean", &g.input("u", DType::F32, [5]))
        .unwrap_err();
    assert!(e.to_string().contains("f32[5]"), "{e}");
}

/// The backward of a training-mode batch norm (with the ReLU after it, as in W2's
/// blocks) reads the data for two sums, Σg and Σg·(x − μ), as PyTorch's kernel does:
/// the optimiser's sum factoring merges the five sums autodiff writes (β's, γ's, the
/// variance's, the mean's and the gradient of a bias feeding the norm). With μ and σ²
/// in the forward and the loss's own sum: five passes over `[N, C, L]` in all. The
/// gradients still match the unoptimised graph.
#[test]
fn the_backward_sums_the_data_twice() {
    use onde::ir::{Op, ReduceKind};
    let g = GraphBuilder::new();
    let bn = BatchNorm::batch_norm1d(&g, "bn", 4);
    let x = g.input("x", DType::F32, [6, 4, 40]);
    let b = g.input("b", DType::F32, [1, 4, 1]);
    let w = g.input("w", DType::F32, [6, 4, 40]);
    let y = bn.forward(&(&x + &b)).relu();
    let loss = (&y * &w).sum_all();
    let grads = g.grad(&loss, &[&x, &b]).unwrap();
    let graph = g.build(&[&loss, &grads[0], &grads[1]]).unwrap();
    let full_sums = |gr: &onde::ir::Graph| {
        gr.op_ids()
            .into_iter()
            .filter(|&o| {
                matches!(
                    gr.op(o).op,
                    Op::Reduce {
                        kind: ReduceKind::Sum,
                        ..
                    }
                ) && gr.value_type(gr.operands(o)[0]).shape.numel() == 6 * 4 * 40
            })
            .count()
    };
    let mut exact = graph.clone();
    onde::passes::exact_optimizer().run(&mut exact).unwrap();
    let mut opt = graph.clone();
    onde::passes_optimize(&mut opt).unwrap();
    assert_eq!(full_sums(&exact), 6);
    assert_eq!(full_sums(&opt), 5, "{}", onde::ir::print_graph(&opt));
    let data = |n: usize, s: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + s * 104_729) % 997) as f32 / 997.0) - 0.4)
            .collect()
    };
    let mut feeds = std::collections::HashMap::new();
    feeds.insert(
        "x".to_string(),
        Array::f32([6, 4, 40], data(960, 1)).unwrap(),
    );
    feeds.insert("b".to_string(), Array::f32([1, 4, 1], data(4, 2)).unwrap());
    feeds.insert(
        "w".to_string(),
        Array::f32([6, 4, 40], data(960, 3)).unwrap(),
    );
    for (name, v) in g.parameter_values() {
        feeds.insert(name, v);
    }
    let a = onde::runtime::run(&graph, &feeds).unwrap();
    let o = onde::runtime::run(&opt, &feeds).unwrap();
    let grad_x = a[1].to_f64_vec().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (k, (p, q)) in a.iter().zip(&o).enumerate() {
        let scale = p.to_f64_vec().iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        // The bias feeding the norm has gradient 0 exactly: the rounding noise of a sum
        // of 240 per-element gradients unoptimised, 0 once the centred sum is known to
        // vanish.
        let tol = if k == 2 {
            240.0 * 1e-6 * grad_x
        } else {
            1e-4 * scale
        };
        for (u, v) in p.to_f64_vec().iter().zip(q.to_f64_vec()) {
            assert!((u - v).abs() <= tol, "output {k}: {u} vs {v}");
        }
    }
}
