//! Recurrent layers beyond PyTorch parity (`recurrent_parity.rs`): the graph does not
//! grow with the sequence (one scan per layer and direction), inter-layer dropout only
//! in train mode with fresh masks per step, and bad input as typed errors naming the
//! layer and the shapes.

use onde::module::{Forward, Module, Recurrent, RecurrentOpts};
use onde::{Array, DType, GraphBuilder, Tensor};

fn ops_of(t: usize) -> usize {
    let g = GraphBuilder::new();
    let m = Recurrent::gru(
        &g,
        "gru",
        8,
        16,
        RecurrentOpts::default().num_layers(2).bidirectional(true),
    );
    let x = g.input("x", DType::F32, [t, 4, 8]);
    let loss = m.forward(&x).square().mean_all();
    let params = m.parameters();
    let refs: Vec<&Tensor> = params.iter().collect();
    let grads = g.grad(&loss, &refs).unwrap();
    let mut outs: Vec<&Tensor> = vec![&loss];
    outs.extend(grads.iter());
    let graph = g.build(&outs).unwrap();
    graph.op_ids().len()
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
