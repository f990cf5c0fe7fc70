//! Parity with PyTorch on W1 (the MLP of `../shared/bench/bench.py`): with PyTorch's
//! initial weights and batch, onde's loss, every gradient and the weights after one Adam
//! step match within 1e-5 relative (fixture and the command that made it in
//! `tests/fixtures/w1/`).

use crate::common::{bench_fixture, fixture_get};
use onde::apps::examples::w1_mlp;
use onde::nn::loss::{nll_loss, NllOpts};
use onde::nn::module::Module;
use onde::nn::optim::Adam;
use onde::{Array, DType, GraphBuilder, TrainOptions, TrainStep};

/// Largest |a-b| / max(|b|, floor) over the elements.
fn max_rel(a: &Array, b: &Array, floor: f64) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs() / y.abs().max(floor))
        .fold(0.0, f64::max)
}

#[test]
fn w1_one_adam_step_matches_pytorch() {
    let params = bench_fixture("w1", "params");
    let inputs = bench_fixture("w1", "inputs");
    let step1 = bench_fixture("w1", "step1");
    let g = GraphBuilder::new();
    let m = w1_mlp(&g);
    g.load_state_dict(&params, true).unwrap();
    let x = g.input("x", DType::F32, [64, 256]);
    let y = g.input("y", DType::I64, [64]);
    let logp = m.forward(&x).log_softmax(-1);
    let loss = nll_loss(&logp, &y, &NllOpts::default());
    let opts = TrainOptions {
        outputs: vec![&logp],
        grads: true,
        ..TrainOptions::default()
    };
    let mut step = TrainStep::with_options(&g, &loss, &Adam::new(1e-3), opts).unwrap();
    let mut eval = step.evaluator(&g, &[&logp]).unwrap();
    let feeds = [
        ("x", fixture_get(&inputs, "x")),
        ("y", fixture_get(&inputs, "y")),
    ];

    // Eval-mode forward with the initial weights (shares the step's buffers).
    let infer = eval.run(&step, &feeds).unwrap();
    let e = max_rel(&infer[0], fixture_get(&step1, "infer_out"), 1e-3);
    assert!(e < 1e-5, "infer_out rel err {e}");

    let l = step.step(&feeds).unwrap();
    let want = fixture_get(&step1, "loss").to_f64_vec()[0];
    assert!((l - want).abs() / want < 1e-5, "loss {l} vs torch {want}");
    let e = max_rel(
        &step.output(1).unwrap(),
        fixture_get(&step1, "train_out"),
        1e-3,
    );
    assert!(e < 1e-5, "train_out rel err {e}");
    let lr = 1e-3;
    let eps = 1e-8;
    for name in [
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "fc3.weight",
        "fc3.bias",
    ] {
        // Gradients: relative to the tensor's largest element (elements that are sums
        // cancelling to ~0 carry f32 rounding noise of the terms, not of the result).
        let gr = step.grad(name).unwrap().to_f64_vec();
        let want = fixture_get(&step1, &format!("grad.{name}")).to_f64_vec();
        let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let worst = gr
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-5 * scale,
            "grad.{name}: max abs err {worst:e} vs scale {scale:e}"
        );
        // Weights after the step: 1e-5 relative per element (to max(|p₀|, |p₁|)), plus the first Adam step's
        // sensitivity to the gradient's own rounding: p₁ = p₀ - lr·g/(|g| + eps), so an
        // error δg moves p₁ by lr·eps·δg/(|g| + eps)² (large only where g ≈ 0).
        let after = step.value(name).unwrap().to_f64_vec();
        let torch = fixture_get(&step1, &format!("after_step.{name}")).to_f64_vec();
        let before = fixture_get(&params, name).to_f64_vec();
        for i in 0..after.len() {
            let dg = (gr[i] - want[i]).abs();
            let sens = lr * eps * dg / (want[i].abs() + eps).powi(2);
            // Relative to the operands of `p₀ - step` (the result may cancel to ~0).
            let tol = 1e-5 * torch[i].abs().max(before[i].abs()) + 2.0 * sens;
            let err = (after[i] - torch[i]).abs();
            assert!(
                err <= tol,
                "after_step.{name}[{i}]: onde {} torch {} (grad {} vs {})",
                after[i],
                torch[i],
                gr[i],
                want[i]
            );
        }
    }
    // The update wrote every parameter and Adam slot in place (no copy per step).
    for (name, in_place) in step.in_place_report() {
        if name != "optim.step" {
            assert!(in_place, "{name} is copied, not updated in place");
        }
    }
    // The evaluator now sees the updated weights without any copy.
    let after = eval.run(&step, &feeds).unwrap();
    assert!(max_rel(&after[0], fixture_get(&step1, "infer_out"), 1e-3) > 1e-4);
}
