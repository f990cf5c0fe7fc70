//! Recurrent layers beyond PyTorch parity (`recurrent_parity.rs`): the graph does not
//! grow with the sequence (one scan per layer and direction), inter-layer dropout only
//! in train mode with fresh masks per step, and bad input as typed errors naming the
//! layer and the shapes.

use onde::module::{Forward, Module, Recurrent, RecurrentOpts};
use onde::{Array, DType, GraphBuilder, Tensor};

/// The graph of a 2-layer bidirectional GRU's loss and parameter gradients over
/// `[t, 2, 3]` inputs.
fn gru_grad_graph(t: usize) -> onde::ir::Graph {
    let g = GraphBuilder::new();
    let m = Recurrent::gru(
        &g,
        "gru",
        3,
        4,
        RecurrentOpts::default().num_layers(2).bidirectional(true),
    );
    let x = g.input("x", DType::F32, [t, 2, 3]);
    let loss = m.forward(&x).square().mean_all();
    let params = m.parameters();
    let refs: Vec<&Tensor> = params.iter().collect();
    let grads = g.grad(&loss, &refs).unwrap();
    let mut outs: Vec<&Tensor> = vec![&loss];
    outs.extend(grads.iter());
    g.build(&outs).unwrap()
}

fn ops_of(t: usize) -> usize {
    gru_grad_graph(t).op_ids().len()
}

#[test]
fn the_graph_does_not_grow_with_the_sequence() {
    // Forward and backward of a 2-layer bidirectional GRU: as many ops for 10 steps as
    // for 10 000 (four forward scans, their reverse scans).
    assert_eq!(ops_of(10), ops_of(10_000));
}

#[test]
fn dropout_between_layers_only_in_train_mode() {
    let g = GraphBuilder::new();
    let o = RecurrentOpts::default().num_layers(2).dropout(0.5);
    let m = Recurrent::lstm(&g, "lstm", 3, 6, o);
    let x = g.input("x", DType::F32, [4, 2, 3]);
    let train = m.forward(&x);
    m.eval();
    let eval = m.forward(&x);
    let plain = Recurrent::lstm(&g, "plain", 3, 6, RecurrentOpts::default().num_layers(2));
    for (n, p) in plain.named_parameters() {
        let theirs = n.replacen("plain", "lstm", 1);
        let v = g
            .parameter_values()
            .into_iter()
            .find(|(k, _)| *k == theirs)
            .unwrap()
            .1;
        g.set_parameter(&n, v).unwrap();
        let _ = p;
    }
    plain.eval();
    let reference = plain.forward(&x);
    let xs = Array::f32(
        [4, 2, 3],
        (0..24).map(|i| (i as f32 * 0.37).sin()).collect(),
    )
    .unwrap();
    let mut c = g.compile(&[&train, &eval, &reference]).unwrap();
    let a = c.run(&[("x", xs.clone())]).unwrap();
    let b = c.run(&[("x", xs)]).unwrap();
    assert_eq!(a[1], a[2], "eval mode is the layer without dropout");
    assert_ne!(a[0], a[2], "train mode drops");
    assert_ne!(a[0], b[0], "a new mask every run");
}

#[test]
fn bad_input_is_a_typed_error_naming_the_layer() {
    let g = GraphBuilder::new();
    let gru = Recurrent::gru(&g, "gru", 8, 16, RecurrentOpts::default().num_layers(2));
    let msg = |t: &Tensor| t.check().unwrap_err().to_string();
    let x = g.input("x", DType::F32, [10, 4, 7]);
    let e = msg(&gru.forward(&x));
    assert!(
        e.contains("GRU") && e.contains("expected input [T, B, 8]") && e.contains("[10, 4, 7]"),
        "{e}"
    );
    let x = g.input("x2", DType::F32, [10, 4, 8]);
    let h0 = g.input("h0", DType::F32, [1, 4, 16]);
    let e = msg(&gru.call((&x, Some(&h0))).0);
    assert!(e.contains("h0 must be [2, 4, 16], got [1, 4, 16]"), "{e}");
    let lstm = Recurrent::lstm(&g, "lstm", 8, 4, RecurrentOpts::default().proj_size(4));
    let e = msg(&lstm.forward(&x));
    assert!(
        e.contains("proj_size (4) must be smaller than hidden_size (4)"),
        "{e}"
    );
    let bad = Recurrent::gru(&g, "p", 8, 4, RecurrentOpts::default().proj_size(2));
    let e = msg(&bad.forward(&x));
    assert!(e.contains("proj_size is an LSTM option"), "{e}");
    let e = msg(&gru.call((&x, Some((&h0, &h0)))).1 .1);
    assert!(
        e.contains("c0") || e.contains("h0") || e.contains("cell state"),
        "{e}"
    );
    let empty = g.input("empty", DType::F32, [0, 4, 8]);
    let e = msg(&gru.forward(&empty));
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn lengths_out_of_range_are_reported_before_the_run() {
    let g = GraphBuilder::new();
    let gru = Recurrent::gru(&g, "gru", 3, 4, RecurrentOpts::default().batch_first(true));
    let x = g.input("x", DType::F32, [2, 5, 3]);
    let len = g.input("len", DType::I64, [2]);
    let (y, h, _) = gru.forward_lengths(&x, &len, None, None);
    let xs = Array::f32([2, 5, 3], vec![0.1; 30]).unwrap();
    let mut c = g.compile(&[&y, &h]).unwrap();
    for (bad, at) in [(vec![5i64, 0], 1), (vec![6, 2], 0)] {
        let e = c
            .run(&[
                ("x", xs.clone()),
                ("len", Array::i64([2], bad.clone()).unwrap()),
            ])
            .unwrap_err()
            .to_string();
        let want = format!(
            "GRU: lengths `len`[{at}] = {} is out of range (every sequence length must be in 1..=5, the padded length)",
            bad[at]
        );
        assert!(e.contains(&want), "{e}");
    }
    // Valid lengths run; the output past a sequence's end is zero.
    let out = c
        .run(&[("x", xs), ("len", Array::i64([2], vec![5, 2]).unwrap())])
        .unwrap();
    let y = out[0].to_f64_vec();
    assert!(y[(5 + 2) * 4..].iter().all(|&v| v == 0.0), "{y:?}");
    assert!(y[5 * 4..(5 + 2) * 4].iter().all(|&v| v != 0.0));
    let bad = g.input("lenf", DType::F32, [2]);
    let e = gru
        .forward_lengths(&x, &bad, None, None)
        .0
        .check()
        .unwrap_err();
    assert!(e.to_string().contains("lengths must be i64 [2]"), "{e}");
}

#[test]
fn streaming_chunks_give_the_whole_sequence_outputs() {
    use onde::RecurrentStream;
    let (b, t, i) = (2, 12, 3);
    let xs: Vec<f32> = (0..b * t * i)
        .map(|k| ((k * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    for lstm in [false, true] {
        let g = GraphBuilder::new();
        let o = RecurrentOpts::default().num_layers(2).batch_first(true);
        let m = if lstm {
            Recurrent::lstm(&g, "rnn", i, 5, o.proj_size(2))
        } else {
            Recurrent::gru(&g, "rnn", i, 5, o)
        };
        // Another layer on the same builder, not part of the stream.
        let _head = onde::module::Linear::new(&g, "head", 5, 2);
        let x = g.input("x", DType::F32, [b, t, i]);
        let whole = m.forward(&x);
        let all = Array::f32([b, t, i], xs.clone()).unwrap();
        let want = g.run(&[&whole], &[("x", all)]).unwrap()[0].to_f64_vec();
        let h_out = if lstm { 2 } else { 5 };
        // Chunks of 4 frames, then again after a reset.
        let mut s = RecurrentStream::new(&g, &m, b, 4).unwrap();
        for round in 0..2 {
            let mut got = vec![0.0; b * t * h_out];
            for c in 0..t / 4 {
                let mut chunk = Vec::with_capacity(b * 4 * i);
                for bi in 0..b {
                    let start = (bi * t + c * 4) * i;
                    chunk.extend_from_slice(&xs[start..start + 4 * i]);
                }
                let y = s
                    .push(&Array::f32([b, 4, i], chunk).unwrap())
                    .unwrap()
                    .to_f64_vec();
                for bi in 0..b {
                    for f in 0..4 {
                        for h in 0..h_out {
                            got[(bi * t + c * 4 + f) * h_out + h] = y[(bi * 4 + f) * h_out + h];
                        }
                    }
                }
            }
            for (k, (a, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - w).abs() < 1e-5,
                    "lstm {lstm} round {round} [{k}]: {a} vs {w}"
                );
            }
            s.reset();
        }
        let e = s
            .push(&Array::f32([b, 3, i], vec![0.0; b * 3 * i]).unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("a chunk must be [2, 4, 3]"), "{e}");
    }
    let g = GraphBuilder::new();
    let bi = Recurrent::gru(&g, "bi", 3, 4, RecurrentOpts::default().bidirectional(true));
    let e = RecurrentStream::new(&g, &bi, 1, 1).unwrap_err();
    assert!(
        e.to_string().contains("bidirectional layer cannot stream"),
        "{e}"
    );
}

#[test]
fn truncated_backpropagation_through_time_feeds_the_state() {
    // A training step over 5-frame chunks with h0 an input fed with the previous
    // chunk's h_n: the state carries over, the gradient stops at the chunk boundary.
    use onde::optim::Sgd;
    use onde::{TrainOptions, TrainStep};
    let g = GraphBuilder::new();
    let m = Recurrent::gru(&g, "gru", 2, 3, RecurrentOpts::default());
    let x = g.input("x", DType::F32, [5, 1, 2]);
    let h0 = g.input("h0", DType::F32, [1, 1, 3]);
    let (y, h_n) = m.call((&x, Some(&h0)));
    let loss = y.square().mean_all();
    let opts = TrainOptions {
        outputs: vec![&h_n],
        ..TrainOptions::default()
    };
    let mut step = TrainStep::with_options(&g, &loss, &Sgd::new(0.1), opts).unwrap();
    let mut h = Array::f32([1, 1, 3], vec![0.0; 3]).unwrap();
    let mut states = Vec::new();
    for c in 0..3 {
        let xs = Array::f32(
            [5, 1, 2],
            (0..10).map(|k| ((k + c) as f32 * 0.3).sin()).collect(),
        )
        .unwrap();
        step.step(&[("x", &xs), ("h0", &h)]).unwrap();
        h = step.output(1).unwrap();
        states.push(h.to_f64_vec());
    }
    assert!(states[1] != states[0] && states[2] != states[1]);
    assert!(states
        .iter()
        .flatten()
        .all(|v| v.is_finite() && v.abs() < 1.0));
}

#[test]
fn weight_gradients_are_one_product_after_the_backward_loop() {
    // The backward scan of each layer and direction carries only the state's cotangent:
    // `Σ_t hᵀ·G` (recurrent weight) and `Σ_t Σ_b G` (bias) are computed after the loop
    // from the stacked per-step `G` (one GEMM, one sum), not accumulated step by step.
    let ir = onde::ir::print_graph(&gru_grad_graph(7));
    let carries: Vec<&str> = ir
        .lines()
        .filter(|l| l.contains("= scan "))
        .filter_map(|l| l.split("carry=").nth(1)?.split(' ').next())
        .collect();
    // 4 forward scans (also stacking their carry-ins) and 4 backward scans, all with one
    // carried state.
    assert_eq!(carries.len(), 8, "{ir}");
    assert!(carries.iter().all(|&c| c == "1"), "{carries:?}");
}

#[test]
fn the_gru_backward_reads_the_n_gate_sum_not_the_whole_product() {
    // The backward of a GRU step needs `W_hn h + b_hn` (inside `r ⊙ (…)`), not the
    // whole `h·W_hhᵀ` (`[B, 3H]`) it is sliced from: the forward scans stack that sum
    // (`[T, B, H]`), so no value of width 3H is written per step (the product stays a
    // temporary of the step).
    let graph = gru_grad_graph(7);
    let mut forward_scans = 0;
    for o in graph.op_ids() {
        let onde::ir::Op::Scan(s) = &graph.op(o).op else {
            continue;
        };
        // Backward bodies take the carries' cotangents (`dc…`).
        let backward = s
            .body
            .inputs()
            .iter()
            .any(|&v| s.body.input_name(v).is_some_and(|n| n.starts_with("dc")));
        if backward {
            continue;
        }
        forward_scans += 1;
        let widths: Vec<usize> = graph
            .results(o)
            .iter()
            .map(|&v| *graph.value_type(v).shape.dims().last().unwrap())
            .collect();
        // h, y, the carry-in, r, z, n and W_hn h + b_hn, each H = 4 wide.
        assert_eq!(widths, vec![4; 7]);
    }
    assert_eq!(forward_scans, 4);
}

#[test]
fn both_directions_run_side_by_side_with_two_threads() {
    // A bidirectional layer's two loops are adjacent steps of the plan, marked to run
    // together (forward and backward scans of both layers: four pairs), and two
    // threads compute what one does: the loops share nothing they write.
    use onde::codegen::{plan, CompileOptions, Executable};
    let graph = gru_grad_graph(9);
    let mut g2 = graph.clone();
    onde::passes::optimize(&mut g2).unwrap();
    let p = plan::plan(&g2).unwrap();
    let pairs = plan::concurrent::alongside(&p)
        .iter()
        .filter(|&&a| a)
        .count();
    assert_eq!(pairs, 4);
    let x = Array::f32(
        [9, 2, 3],
        (0..54).map(|i| ((i as f32) * 0.41).sin()).collect(),
    )
    .unwrap();
    let results: Vec<Vec<Vec<f64>>> = [1, 2]
        .into_iter()
        .map(|threads| {
            let opts = CompileOptions {
                threads,
                ..CompileOptions::default()
            };
            let mut exe = Executable::compile(&graph, opts).unwrap();
            let mut feeds: Vec<(String, Array)> = vec![("x".into(), x.clone())];
            for (name, ty) in exe
                .feeds()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect::<Vec<_>>()
            {
                if name != "x" {
                    let n = ty.shape.numel();
                    let v = (0..n)
                        .map(|i| ((i as f32) * 0.77 + 0.3).cos() * 0.4)
                        .collect();
                    feeds.push((name, Array::f32(ty.shape.dims().to_vec(), v).unwrap()));
                }
            }
            let refs: Vec<(&str, &Array)> = feeds.iter().map(|(n, a)| (n.as_str(), a)).collect();
            exe.run(&refs)
                .unwrap()
                .iter()
                .map(Array::to_f64_vec)
                .collect()
        })
        .collect();
    for (a, b) in results[0].iter().zip(&results[1]) {
        for (p, q) in a.iter().zip(b) {
            assert!((p - q).abs() <= 1e-6 * (1.0 + q.abs()), "{p} vs {q}");
        }
    }
}
