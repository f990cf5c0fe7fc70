//! `onde dump` end to end: built-in examples, text files, Graphviz output, errors.

use std::process::Command;

fn onde(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_onde"))
        .args(args)
        .output()
        .expect("runs the onde binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dump_mlp_prints_header_and_shapes() {
    let (ok, out, err) = onde(&["dump", "--example", "mlp"]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("// mlp"));
    let header = lines.next().unwrap();
    assert!(
        header.contains("values") && header.contains("ops"),
        "{header}"
    );
    // 256·256 + 256 + 256·256 + 256 + 256·10 + 10 parameter elements in 6 tensors.
    assert!(
        header.contains("6 parameters (134,154 elements)"),
        "{header}"
    );
    assert!(out.contains("f32[64,256] = input \"x\""), "{out}");
    assert!(out.contains("= matmul"), "{out}");
    assert!(out.contains("f32[64,10]"), "{out}");
}

#[test]
fn dump_mon_modele_applies_the_module_twice() {
    let (ok, out, err) = onde(&["dump", "--example", "mon_modele"]);
    assert!(ok, "{err}");
    // x [5,1,100] -> y [5,5,100] -> z [5,9,100], as in the slide.
    assert!(out.contains("f32[5,5,100] = concat"), "{out}");
    assert!(out.contains("f32[5,9,100] = concat"), "{out}");
    assert!(
        out.contains("parameter \"mon_modele.learnable_param\""),
        "{out}"
    );
}

#[test]
fn dump_rnn_has_a_scan_with_a_body() {
    let (ok, out, err) = onde(&["dump", "--example", "rnn"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("= scan") && out.contains("length=100"),
        "{out}"
    );
    assert!(out.contains("tanh"), "{out}");
}

#[test]
fn dump_dot_format() {
    let (ok, out, err) = onde(&["dump", "--example", "rnn", "--format", "dot"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("digraph") && out.contains("subgraph cluster"),
        "{out}"
    );
}

#[test]
fn dump_file_round_trips_the_printed_text() {
    let (ok, text, err) = onde(&["dump", "--example", "mon_modele"]);
    assert!(ok, "{err}");
    let dir = std::env::temp_dir().join(format!("onde-dump-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mon_modele.onde");
    std::fs::write(&path, &text).unwrap();
    let (ok, again, err) = onde(&["dump", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    // Same graph text after the header line naming the source.
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&again), body(&text));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn dump_errors_are_reported_not_panicked() {
    let (ok, _, err) = onde(&["dump", "--example", "nope"]);
    assert!(
        !ok && err.contains("unknown example") && err.contains("mlp"),
        "{err}"
    );
    let (ok, _, err) = onde(&["dump", "/nonexistent/file.onde"]);
    assert!(!ok && err.contains("/nonexistent/file.onde"), "{err}");
    let dir = std::env::temp_dir().join(format!("onde-dump-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.onde");
    std::fs::write(
        &path,
        "graph {\n  %0: f32[2] = input \"x\"\n  %1: f32[3] = exp %0\n  outputs %1\n}\n",
    )
    .unwrap();
    let (ok, _, err) = onde(&["dump", path.to_str().unwrap()]);
    assert!(
        !ok && err.contains("exp") && err.contains("f32[3]"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn dump_grad_prints_forward_then_backward() {
    let (ok, out, err) = onde(&["dump", "--example", "mlp", "--grad"]);
    assert!(ok, "{err}");
    let forward = out
        .find("forward (outputs: loss)")
        .expect("forward section");
    let backward = out.find("forward + backward").expect("backward section");
    assert!(forward < backward);
    // The backward graph has a transposed matmul for each weight gradient and outputs
    // the loss plus six gradients.
    let tail = &out[backward..];
    let outputs = tail
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("outputs"))
        .unwrap();
    assert_eq!(outputs.matches('%').count(), 7, "{outputs}");
    assert!(tail.matches("= matmul").count() >= 3 + 5, "{tail}");
    let (ok, out, err) = onde(&["dump", "--example", "rnn", "--grad"]);
    assert!(ok, "{err}");
    assert!(out.contains("reverse=true"), "a reverse-time scan: {out}");
    let (ok, _, err) = onde(&["dump", "--example", "nope", "--grad"]);
    assert!(!ok && err.contains("unknown example"), "{err}");
}

#[test]
fn dump_stages_and_clif() {
    let (ok, out, err) = onde(&["dump", "--example", "rnn", "--grad", "--stage", "fused"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("fused plan") && out.contains(": scan "),
        "{out}"
    );
    assert!(out.contains("matmul f32"), "{out}");
    for stage in ["input", "simplify", "constfold", "cse", "dce", "optimized"] {
        let (ok, out, err) = onde(&["dump", "--example", "mlp", "--stage", stage]);
        assert!(ok, "{stage}: {err}");
        assert!(
            out.contains(&format!("after {stage}")) || out.contains("optimisation fixpoint"),
            "{out}"
        );
    }
    let (ok, out, err) = onde(&["dump", "--example", "mon_modele", "--clif"]);
    assert!(ok, "{err}");
    assert!(out.contains("function") && out.contains("block0"), "{out}");
    let (ok, _, err) = onde(&["dump", "--example", "mlp", "--stage", "nope"]);
    assert!(!ok && err.contains("unknown stage"), "{err}");
}

#[test]
fn bench_rejects_unknown_workloads() {
    let (ok, _, err) = onde(&["bench", "W9"]);
    assert!(!ok && err.contains("W9"), "{err}");
}

#[test]
fn dump_train_shows_the_whole_training_step() {
    let (ok, out, err) = onde(&["dump", "--example", "mlp", "--train"]);
    assert!(ok, "{err}");
    assert!(out.contains("training step"), "{out}");
    // The optimiser's inputs and the parameters are in the one graph.
    assert!(out.contains("input \"optim.lr\""), "{out}");
    assert!(out.contains("input \"optim.fc1.weight.exp_avg\""), "{out}");
    assert!(out.contains("parameter \"fc3.bias\""), "{out}");
    let (ok, fused, err) = onde(&["dump", "--example", "mlp", "--train", "--stage", "fused"]);
    assert!(ok, "{err}");
    assert!(
        fused.contains("matmul f32") && fused.contains(": kernel "),
        "{fused}"
    );
    let (ok, _, err) = onde(&["dump", "--example", "mlp", "--train", "--grad"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
}

#[test]
fn summary_of_the_keyword_spotter_gives_its_receptive_field() {
    let (ok, out, err) = onde(&["summary", "--example", "kws"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("input [32, 1, 16000]"), "{out}");
    let conv = out.lines().find(|l| l.starts_with("conv_s2")).unwrap();
    let cells: Vec<&str> = conv.split_whitespace().collect();
    // layer, type, output (3 cells), params, receptive field, jump, start.
    assert_eq!(cells[cells.len() - 3..], ["243", "8", "-121"], "{conv}");
    assert!(out.contains("learnable parameters: 12812"), "{out}");
    // A wrong input names the layer.
    let (ok, _, err) = onde(&["summary", "--example", "kws", "--input", "1,2,100"]);
    assert!(!ok);
    assert!(err.contains("layer `conv0` (Conv)"), "{err}");
    let (ok, _, err) = onde(&["summary", "--example", "nope"]);
    assert!(!ok && err.contains("available: kws"), "{err}");
}

#[test]
fn summaries_of_the_attention_and_recurrent_models() {
    // Models whose forward is not a chain of their layers are one row with every
    // parameter, seeing the whole sequence: W5 (q, k, v, score, fc), W4, W3.
    let w5 = 3 * (64 * 64 + 64) + (64 + 1) + (64 * 12 + 12);
    let w4 = 4 * 128 * (40 + 128) + 2 * 4 * 128 + (128 * 12 + 12);
    for (name, params) in [("attention", w5), ("lstm", w4)] {
        let (ok, out, err) = onde(&["summary", "--example", name]);
        assert!(ok, "{name}: {err}");
        assert!(
            out.contains(&format!("learnable parameters: {params}")),
            "{name}: {out}"
        );
    }
    let (ok, out, err) = onde(&["summary", "--example", "gru"]);
    assert!(ok, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("RnnClassifier"))
        .unwrap();
    assert!(row.contains("[32, 12]") && row.contains("all"), "{out}");
}

#[test]
fn dump_lstm_training_step_lists_scan_bodies() {
    // W4's training step: a forward and a backward scan, each with its body's plan;
    // the backward body evaluates no transcendental (it reads the saved gates).
    let (ok, out, err) = onde(&["dump", "--example", "lstm", "--train", "--stage", "fused"]);
    assert!(ok, "{err}");
    assert!(out.contains("reverse=false"), "{out}");
    assert!(out.contains("reverse=true"), "{out}");
    let bodies: Vec<&str> = out.split("  body (").skip(1).collect();
    assert_eq!(bodies.len(), 2, "{out}");
    let backward = bodies[1].split("\n  }\n").next().unwrap_or("");
    assert!(backward.contains("| step"), "{backward}");
    for f in ["sigmoid", "tanh", "exp"] {
        assert!(
            !backward.contains(&format!("= {f} ")),
            "{f} in the backward body:\n{backward}"
        );
    }
    let (ok, out, err) = onde(&["dump", "--example", "gru"]);
    assert!(ok, "{err}");
    assert!(out.contains("= scan") && out.contains("sigmoid"), "{out}");
}
