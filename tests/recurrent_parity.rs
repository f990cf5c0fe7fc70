//! Recurrent layers against PyTorch (`tests/fixtures/torch_ops/gen_torch_recurrent.py`
//! → `recurrent.safetensors`): RNN tanh/relu, LSTM (with `proj_size`), GRU; 1 and 2
//! layers; uni/bidirectional; batch_first both ways; with and without initial states;
//! unbatched; no biases; variable lengths (`pack_padded_sequence`). PyTorch's weights loaded by name; outputs, final states and
//! the gradients of the input, initial states and every parameter, interpreted and
//! compiled, within 1e-5 of each tensor's largest element.

use crate::common::torch_fixture::{case_names, case_tensors, fixture_bytes};
use onde::module::{CellKind, Forward, Module, Recurrent, RecurrentCell, RecurrentOpts};
use onde::{Array, DType, GraphBuilder, Tensor};
use std::collections::BTreeMap;

fn bytes() -> &'static [u8] {
    static B: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    B.get_or_init(|| fixture_bytes("torch_ops/recurrent.safetensors"))
}

/// The module of each case, as the fixture script builds it.
fn module(g: &GraphBuilder, case: &str) -> Recurrent {
    let o = RecurrentOpts::default();
    let (cell, h, opts) = match case {
        "rnn_tanh_2l_bi_h0" => (CellKind::RnnTanh, 7, o.num_layers(2).bidirectional(true)),
        "rnn_relu_bf" => (CellKind::RnnRelu, 7, o.batch_first(true)),
        "lstm_2l_h0" => (CellKind::Lstm, 7, o.num_layers(2)),
        "lstm_proj_bi_bf" => (
            CellKind::Lstm,
            8,
            o.proj_size(3).bidirectional(true).batch_first(true),
        ),
        "gru_2l_bi_bf_h0" => (
            CellKind::Gru,
            7,
            o.num_layers(2).bidirectional(true).batch_first(true),
        ),
        "gru_unbatched_nobias" => (CellKind::Gru, 4, o.bias(false)),
        "lstm_1l_bi_unbatched" => (CellKind::Lstm, 4, o.bidirectional(true)),
        "gru_2l_bi_bf_h0_lengths" => (
            CellKind::Gru,
            7,
            o.num_layers(2).bidirectional(true).batch_first(true),
        ),
        "lstm_bi_lengths" => (CellKind::Lstm, 6, o.bidirectional(true)),
        "rnn_lengths" => (CellKind::RnnTanh, 5, o),
        other => panic!("unknown case {other}"),
    };
    Recurrent::new(g, "", cell, 5, h, opts)
}

/// Within 1e-5 of the tensor's largest element (gradients summed over time and batch
/// cancel: an element near 0 carries the rounding of its terms, on both sides).
fn close(got: &Array, want: &Array, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let scale = w.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * scale,
            "{what}[{i}]: onde {a}, PyTorch {b} (scale {scale})"
        );
    }
}

#[test]
fn recurrent_layers_match_pytorch() {
    let mut names: Vec<String> = case_names(bytes())
        .into_iter()
        .filter(|n| !n.starts_with("cell_"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 10);
    for case in &names {
        let t: BTreeMap<String, Array> = case_tensors(bytes(), case);
        let g = GraphBuilder::new();
        let m = module(&g, case);
        // PyTorch's parameters, by name; the module declares exactly those.
        let mut mine: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        let mut theirs: Vec<String> = t
            .keys()
            .filter_map(|k| k.strip_prefix("p."))
            .map(String::from)
            .collect();
        mine.sort();
        theirs.sort();
        assert_eq!(mine, theirs, "{case}: parameter names");
        for n in &mine {
            g.set_parameter(n, t[&format!("p.{n}")].clone()).unwrap();
        }
        let input = |n: &str| {
            t.get(n)
                .map(|a| g.input(n, DType::F32, a.shape().dims().to_vec()))
        };
        let x = input("x").unwrap();
        let (h0, c0) = (input("h0"), input("c0"));
        let lstm = m.cell == CellKind::Lstm;
        let lengths = t
            .get("lengths")
            .map(|a| g.input("lengths", DType::I64, a.shape().dims().to_vec()));
        let (out, h_n, c_n) = if let Some(len) = &lengths {
            m.forward_lengths(&x, len, h0.as_ref(), c0.as_ref())
        } else if lstm {
            let state = h0.as_ref().zip(c0.as_ref());
            let (y, (h, c)) = m.call((&x, state));
            (y, h, Some(c))
        } else {
            let (y, h) = m.call((&x, h0.as_ref()));
            (y, h, None)
        };
        let mut results = vec![("out", out, "dy"), ("h_n", h_n, "dh")];
        results.extend(c_n.map(|c| ("c_n", c, "dc")));
        let states = [("h0", h0), ("c0", c0)];
        verify(
            &g,
            &t,
            case,
            results,
            &x,
            &states,
            &m,
            &["x", "h0", "c0", "lengths"],
        );
    }
}

/// Compares `results` (fixture name, tensor, cotangent name) and the gradients of
/// `Σ result · cotangent` with respect to `x`, the given `states` and every parameter of
/// `m` with the fixture, interpreted and compiled; `feeds` names the inputs to feed.
#[allow(clippy::too_many_arguments)]
fn verify(
    g: &GraphBuilder,
    t: &BTreeMap<String, Array>,
    case: &str,
    results: Vec<(&str, Tensor, &str)>,
    x: &Tensor,
    states: &[(&str, Option<Tensor>)],
    m: &dyn Module,
    feeds: &[&str],
) {
    let mut loss: Option<Tensor> = None;
    for (_, r, d) in &results {
        let term = (r * &g.constant(t[*d].clone())).sum_all();
        loss = Some(match loss {
            Some(l) => l + term,
            None => term,
        });
    }
    let loss = loss.expect("a result");
    let mut wrt: Vec<(String, Tensor)> = vec![("x".into(), x.clone())];
    for (n, s) in states {
        wrt.extend(s.clone().map(|s| (n.to_string(), s)));
    }
    wrt.extend(m.named_parameters());
    let refs: Vec<&Tensor> = wrt.iter().map(|(_, t)| t).collect();
    let grads = g.grad(&loss, &refs).unwrap();
    let mut outs: Vec<(String, &Tensor)> =
        results.iter().map(|(n, r, _)| (n.to_string(), r)).collect();
    for ((n, _), gr) in wrt.iter().zip(&grads) {
        outs.push((format!("grad.{n}"), gr));
    }
    let fed: Vec<(&str, Array)> = feeds
        .iter()
        .filter_map(|n| t.get(*n).map(|a| (*n, a.clone())))
        .collect();
    let tensors: Vec<&Tensor> = outs.iter().map(|(_, t)| *t).collect();
    let interp = g.run(&tensors, &fed).unwrap();
    let mut c = g.compile(&tensors).unwrap();
    let compiled = c.run(&fed).unwrap();
    for (i, (n, _)) in outs.iter().enumerate() {
        close(&interp[i], &t[n], &format!("{case} interpreted {n}"));
        close(&compiled[i], &t[n], &format!("{case} compiled {n}"));
    }
}

#[test]
fn recurrent_cells_match_pytorch() {
    let names: Vec<String> = case_names(bytes())
        .into_iter()
        .filter(|n| n.starts_with("cell_"))
        .collect();
    assert_eq!(names.len(), 5);
    for case in &names {
        let t: BTreeMap<String, Array> = case_tensors(bytes(), case);
        let g = GraphBuilder::new();
        let kind = if case.contains("lstm") {
            CellKind::Lstm
        } else if case.contains("gru") {
            CellKind::Gru
        } else if case.contains("relu") {
            CellKind::RnnRelu
        } else {
            CellKind::RnnTanh
        };
        let m = RecurrentCell::new(&g, "", kind, 5, 6, !case.contains("nobias"));
        for (n, _) in m.named_parameters() {
            g.set_parameter(&n, t[&format!("p.{n}")].clone()).unwrap();
        }
        let input = |n: &str| {
            t.get(n)
                .map(|a| g.input(n, DType::F32, a.shape().dims().to_vec()))
        };
        let x = input("x").unwrap();
        let (h, c) = (input("h"), input("c"));
        let (h2, c2) = if kind == CellKind::Lstm {
            let (a, b) = m.call((&x, h.as_ref().zip(c.as_ref())));
            (a, Some(b))
        } else {
            (m.call((&x, h.as_ref())), None)
        };
        let mut results = vec![("h_out", h2, "dh")];
        results.extend(c2.map(|c| ("c_out", c, "dc")));
        let states = [("h", h), ("c", c)];
        verify(&g, &t, case, results, &x, &states, &m, &["x", "h", "c"]);
    }
}
