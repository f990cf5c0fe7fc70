//! Property: a compiled training step (fused kernels, parameters and optimiser state
//! updated in place, outputs copied) gives the same states, step after step, as its own
//! step graph run on the reference interpreter with the states carried by hand.

use crate::common;

use onde::loss::{cross_entropy, NllOpts};
use onde::module::{Linear, Module, Relu, Sequential, Sigmoid};
use onde::optim::{Adam, Optimizer, Sgd};
use onde::{Array, DType, GraphBuilder, TrainStep};
use proptest::prelude::*;
use std::collections::HashMap;

fn check(batch: usize, inp: usize, hidden: usize, classes: usize, opt: &dyn Optimizer, seed: u64) {
    let g = GraphBuilder::new();
    g.manual_seed(seed as i64);
    let mut m = Sequential::new("");
    m.push(Linear::new(&g, "0", inp, hidden))
        .push(Relu)
        .push(Linear::new(&g, "2", hidden, hidden))
        .push(Sigmoid)
        .push(Linear::new(&g, "4", hidden, classes));
    let x = g.input("x", DType::F32, [batch, inp]);
    let y = g.input("y", DType::I64, [batch]);
    let loss = cross_entropy(&m.forward(&x), &y, &NllOpts::default());
    let mut step = TrainStep::new(&g, &loss, opt).unwrap();
    let graph = step.graph().clone();
    let bindings = step.bindings().to_vec();
    // Reference states: the initial values the step holds.
    let mut states: HashMap<String, Array> = bindings
        .iter()
        .map(|(n, _)| (n.clone(), step.value(n).unwrap().clone()))
        .collect();
    for it in 0..3u64 {
        let xs = common::data(DType::F32, &[batch, inp], (seed + it) as usize);
        let ys = Array::i64(
            [batch],
            (0..batch)
                .map(|i| ((i as u64 + seed + it) % classes as u64) as i64)
                .collect(),
        )
        .unwrap();
        let mut feeds: HashMap<String, Array> = states.clone();
        feeds.insert("x".into(), xs.clone());
        feeds.insert("y".into(), ys.clone());
        feeds.insert("optim.lr".into(), Array::scalar(DType::F64, opt.lr()));
        let want = onde::runtime::run(&graph, &feeds).unwrap();
        let l = step.step(&[("x", &xs), ("y", &ys)]).unwrap();
        let wl = want[0].to_f64_vec()[0];
        assert!(
            (l - wl).abs() <= 1e-4 * wl.abs().max(1.0),
            "step {it}: loss {l} vs {wl}"
        );
        for (name, out) in &bindings {
            let got = step.value(name).unwrap().to_f64_vec();
            let w = want[*out].to_f64_vec();
            let scale = w.iter().fold(1e-3f64, |a, v| a.max(v.abs()));
            for (a, b) in got.iter().zip(&w) {
                assert!(
                    (a - b).abs() <= 1e-4 * scale,
                    "step {it}: {name}: compiled {a} vs interpreter {b}"
                );
            }
            states.insert(name.clone(), want[*out].clone());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn compiled_train_step_equals_interpreter(
        batch in 1usize..7,
        inp in 1usize..10,
        hidden in 1usize..10,
        classes in 2usize..5,
        which in 0usize..4,
        seed in 0u64..1000,
    ) {
        let opt: Box<dyn Optimizer> = match which {
            0 => Box::new(Sgd::new(0.1)),
            1 => Box::new(Sgd::new(0.05).momentum(0.9).nesterov(true).weight_decay(1e-3)),
            // Adam's step is lr·m̂/(√v̂ + eps): where a gradient is ~0 (pure f32
            // cancellation noise, ~1e-10) the default eps = 1e-8 amplifies the
            // difference between the compiled f32 sums and the interpreter's by
            // lr/eps = 1e6 (seen at 1500 cases: a bias moved 1.6e-4 apart). That is
            // Adam's conditioning, not the compiler's; `w1_parity` bounds it for the
            // default eps. Here eps = 1e-3 keeps the whole Adam code path while the
            // comparison measures the compiler.
            2 => Box::new(Adam::new(1e-2).eps(1e-3)),
            _ => Box::new(Adam::adamw(1e-2).eps(1e-3)),
        };
        check(batch, inp, hidden, classes, opt.as_ref(), seed);
    }
}

#[test]
fn evaluator_follows_the_weights_across_steps_and_checkpoint_loads() {
    // The evaluator reuses packed weights while the step's version is unchanged; every
    // step and every load must be seen (compared with the interpreter on the current
    // weights).
    let g = GraphBuilder::new();
    let mut m = Sequential::new("");
    m.push(Linear::new(&g, "0", 16, 24))
        .push(Relu)
        .push(Linear::new(&g, "2", 24, 3));
    let x = g.input("x", DType::F32, [13, 16]);
    let y = g.input("y", DType::I64, [13]);
    let out = m.forward(&x);
    let loss = cross_entropy(&out, &y, &NllOpts::default());
    let mut step = TrainStep::new(&g, &loss, &Adam::new(0.05)).unwrap();
    let mut eval = step.evaluator(&g, &[&out]).unwrap();
    let fwd = g.build_pruned(&[&out]).unwrap();
    let xs = common::data(DType::F32, &[13, 16], 9);
    let ys = Array::i64([13], (0..13).map(|i| i % 3).collect()).unwrap();
    let check = |eval: &mut onde::Evaluator, step: &TrainStep, what: &str| {
        let got = eval.run(step, &[("x", &xs)]).unwrap();
        let mut feeds: HashMap<String, Array> = HashMap::new();
        feeds.insert("x".into(), xs.clone());
        for n in step.parameter_names() {
            feeds.insert(n.to_string(), step.value(n).unwrap().clone());
        }
        let want = onde::runtime::run(&fwd, &feeds).unwrap();
        for (a, b) in got[0].to_f64_vec().iter().zip(want[0].to_f64_vec()) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{what}: {a} vs {b}"
            );
        }
    };
    check(&mut eval, &step, "initial");
    check(&mut eval, &step, "initial again (reused)");
    let saved = step.state_dict();
    for i in 0..3 {
        step.step(&[("x", &xs), ("y", &ys)]).unwrap();
        check(&mut eval, &step, &format!("after step {i}"));
    }
    step.load_state_dict(&saved, true).unwrap();
    check(&mut eval, &step, "after loading the initial state");
}
