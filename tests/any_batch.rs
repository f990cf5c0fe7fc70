//! Any batch size: a training step and an evaluator built by a function of the batch
//! size compile one executable per size they are fed, once, and share one state. The
//! oracle is the same sequence of steps on fixed-batch steps whose state is handed over
//! by `state_dict` / `load_state_dict` (a copy, independent of the swap).

use onde::loss::{cross_entropy, NllOpts};
use onde::module::{BatchNorm, Linear, Module, Relu, Sequential};
use onde::optim::Adam;
use onde::{Array, DType, Error, GraphBuilder, TrainOptions, TrainStep};
use std::rc::Rc;

const F: usize = 6;

/// A model with a batch norm (running statistics updated by the step) and its builder.
fn model() -> (GraphBuilder, Rc<Sequential>) {
    let g = GraphBuilder::new();
    g.manual_seed(11);
    let mut m = Sequential::new("");
    m.push(Linear::new(&g, "0", F, 8))
        .push(BatchNorm::batch_norm1d(&g, "1", 8))
        .push(Relu)
        .push(Linear::new(&g, "3", 8, 3));
    (g, Rc::new(m))
}

/// The training step of `m` for batch `b` (logits as extra output).
fn step_for(g: &GraphBuilder, m: &Sequential, b: usize) -> onde::Result<TrainStep> {
    m.train();
    let x = g.input("x", DType::F32, [b, F]);
    let y = g.input("y", DType::I64, [b]);
    let logits = m.forward(&x);
    let loss = cross_entropy(&logits, &y, &NllOpts::default());
    let opts = TrainOptions {
        outputs: vec![&logits],
        ..TrainOptions::default()
    };
    TrainStep::with_options(g, &loss, &Adam::new(1e-2), opts)
}

fn batch(b: usize, seed: usize) -> (Array, Array) {
    let x: Vec<f32> = (0..b * F)
        .map(|i| ((i + 7 * seed) * 37 % 101) as f32 / 50.0 - 1.0)
        .collect();
    let y: Vec<i64> = (0..b).map(|i| ((i + seed) % 3) as i64).collect();
    (Array::f32([b, F], x).unwrap(), Array::i64([b], y).unwrap())
}

#[test]
fn one_step_trains_at_every_batch_size_with_one_state() {
    let (g, m) = model();
    let (g2, m2) = (g.clone(), m.clone());
    let mut step = TrainStep::any_batch(&g, 8, move |b| step_for(&g2, &m2, b)).unwrap();
    // The oracle: a fixed-batch step per size (each in its own builder, initialised
    // alike), the state copied between them.
    let mut fixed: Vec<(usize, TrainStep)> = Vec::new();
    let mut state: Option<Vec<(String, Array)>> = None;
    let sizes = [8, 8, 5, 8, 3, 5, 8];
    for (i, &b) in sizes.iter().enumerate() {
        let (x, y) = batch(b, i);
        let loss = step.step(&[("x", &x), ("y", &y)]).unwrap();
        assert_eq!(step.batch_size(), Some(b));
        assert_eq!(step.output(1).unwrap().shape().dims(), &[b, 3]);
        let at = match fixed.iter().position(|(s, _)| *s == b) {
            Some(at) => at,
            None => {
                let (h, n) = model();
                fixed.push((b, step_for(&h, &n, b).unwrap()));
                fixed.len() - 1
            }
        };
        let f = &mut fixed[at].1;
        if let Some(s) = &state {
            f.load_state_dict(s, true).unwrap();
        }
        let want = f.step(&[("x", &x), ("y", &y)]).unwrap();
        state = Some(f.state_dict());
        assert_eq!(loss, want, "step {i} (batch {b})");
    }
    // Each size compiled once; parameters, running statistics, Adam's moments and
    // step count equal the oracle's.
    assert_eq!(step.compiled_batch_sizes(), vec![3, 5, 8]);
    let (got, want) = (step.state_dict(), state.unwrap());
    assert_eq!(got.len(), want.len());
    for ((n, a), (m, b)) in got.iter().zip(&want) {
        assert_eq!(n, m);
        assert_eq!(a, b, "{n}");
    }
    assert!(got.iter().any(|(n, _)| n == "1.running_mean"));
    assert_eq!(step.steps(), sizes.len() as u64);
}

#[test]
fn an_evaluator_serves_any_batch_with_the_current_weights() {
    let (g, m) = model();
    let (g2, m2) = (g.clone(), m.clone());
    let mut step = TrainStep::any_batch(&g, 8, move |b| step_for(&g2, &m2, b)).unwrap();
    let (g3, m3) = (g.clone(), m.clone());
    let mut eval = step
        .evaluator_any_batch(8, move |b| {
            m3.eval();
            let x = g3.input("x", DType::F32, [b, F]);
            Ok(vec![m3.forward(&x)])
        })
        .unwrap();
    let (x, y) = batch(8, 1);
    step.step(&[("x", &x), ("y", &y)]).unwrap();
    let all = eval.run(&step, &[("x", &x)]).unwrap().remove(0);
    // Rows are independent in eval mode: the first 3 rows alone give the same logits.
    let x3 = Array::f32([3, F], x.as_f32().unwrap()[..3 * F].to_vec()).unwrap();
    let part = eval.run(&step, &[("x", &x3), ("y", &y)]).unwrap().remove(0);
    assert_eq!(eval.batch_size(), Some(3));
    assert_eq!(part.as_f32().unwrap(), &all.as_f32().unwrap()[..9]);
    // After another step (at another batch size) both sizes see the new weights.
    let (x5, y5) = batch(5, 2);
    step.step(&[("x", &x5), ("y", &y5)]).unwrap();
    let again = eval.run(&step, &[("x", &x)]).unwrap().remove(0);
    assert_ne!(again, all);
    let part = eval.run(&step, &[("x", &x3)]).unwrap().remove(0);
    assert_eq!(part.as_f32().unwrap(), &again.as_f32().unwrap()[..9]);
    assert_eq!(eval.compiled_batch_sizes(), vec![3, 8]);
}

#[test]
fn feeds_that_no_batch_size_serves_are_errors_that_say_what_to_do() {
    let (g, m) = model();
    // A fixed-batch step fed a partial batch names any_batch and drop_last.
    let mut fixed = step_for(&g, &m, 8).unwrap();
    let (x, y) = batch(5, 0);
    let e = fixed.step(&[("x", &x), ("y", &y)]).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("any_batch") && msg.contains("drop_last") && msg.contains("\"x\""),
        "{msg}"
    );
    // An any-batch step fed another feature size: the feed's error, nothing compiled.
    let (g2, m2) = (g.clone(), m.clone());
    let mut step = TrainStep::any_batch(&g, 8, move |b| step_for(&g2, &m2, b)).unwrap();
    let bad = Array::f32([8, F + 1], vec![0.0; 8 * (F + 1)]).unwrap();
    let (_, y8) = batch(8, 0);
    let e = step.step(&[("x", &bad), ("y", &y8)]).unwrap_err();
    assert!(e.to_string().contains("\"x\""), "{e}");
    assert_eq!(step.compiled_batch_sizes(), vec![8]);
    // Inputs of two batch sizes disagreeing.
    let e = step.step(&[("x", &x), ("y", &y8)]).unwrap_err();
    assert!(e.to_string().contains("\"y\""), "{e}");
    assert!(TrainStep::any_batch(&g, 0, |_| unreachable!()).is_err());
    // A feature size equal to the batch fed wrong is not taken for a new batch.
    let h = GraphBuilder::new();
    let fc = Linear::new(&h, "fc", 4, 3);
    let h2 = h.clone();
    let mut square = TrainStep::any_batch(&h, 4, move |b| {
        let x = h2.input("x", DType::F32, [b, 4]);
        let y = h2.input("y", DType::I64, [b]);
        let loss = cross_entropy(&fc.forward(&x), &y, &NllOpts::default());
        TrainStep::new(&h2, &loss, &Adam::new(1e-3))
    })
    .unwrap();
    let wide = Array::f32([4, 5], vec![0.0; 20]).unwrap();
    let y4 = Array::i64([4], vec![0, 1, 2, 0]).unwrap();
    let e = square.step(&[("x", &wide), ("y", &y4)]).unwrap_err();
    assert!(
        e.to_string().contains("\"x\"") && !e.to_string().contains("any_batch"),
        "{e}"
    );
    assert_eq!(square.compiled_batch_sizes(), vec![4]);
}

#[test]
fn a_build_function_that_makes_new_parameters_is_refused() {
    let g = GraphBuilder::new();
    let g2 = g.clone();
    let mut step = TrainStep::any_batch(&g, 4, move |b| {
        // Wrong: the model is built inside, so batch 2 declares new parameters.
        let fc = Linear::new(&g2, &format!("fc{b}"), F, 3);
        let x = g2.input("x", DType::F32, [b, F]);
        let y = g2.input("y", DType::I64, [b]);
        let loss = cross_entropy(&fc.forward(&x), &y, &NllOpts::default());
        TrainStep::new(&g2, &loss, &Adam::new(1e-3))
    })
    .unwrap();
    let (x, y) = batch(2, 0);
    let e = step.step(&[("x", &x), ("y", &y)]).unwrap_err();
    assert!(
        e.to_string().contains("build the model once outside"),
        "{e}"
    );
}

#[test]
fn an_input_name_takes_one_shape_per_graph() {
    let g = GraphBuilder::new();
    let a = g.input("x", DType::F32, [4, 2]);
    let b = g.input("x", DType::F32, [3, 2]);
    // Each graph reads one declaration: fine.
    assert!(g.build(&[&a.sum_all()]).is_ok());
    let out = g
        .run(
            &[&b.sum_all()],
            &[("x", Array::f32([3, 2], vec![1.0; 6]).unwrap())],
        )
        .unwrap();
    assert_eq!(out[0].to_f64_vec(), vec![6.0]);
    // A graph reading both is an error naming both types.
    let e = g.build(&[&(a.sum_all() + b.sum_all())]).unwrap_err();
    assert!(matches!(e, Error::DuplicateName { .. }), "{e}");
    assert!(
        e.to_string().contains("f32[4,2]") && e.to_string().contains("f32[3,2]"),
        "{e}"
    );
    // The same name and shape again is the same input.
    let c = g.input("x", DType::F32, [4, 2]);
    assert_eq!(c.value().unwrap(), a.value().unwrap());
}
