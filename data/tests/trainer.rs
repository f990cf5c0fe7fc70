//! `Trainer::fit` on a small classifier of synthetic waveforms through the loader:
//! it learns (validation accuracy well above chance), logs every epoch, follows its
//! schedule, and early stopping ends a run that stalls.

use onde_data::early_stopping::Mode;
use onde_data::{DataLoader, Dataset, EarlyStopping, InMemory, MetricLog, Trainer};
use onde_nn::data::SyntheticSignals;
use onde_nn::loss::{cross_entropy, NllOpts};
use onde_nn::module::{Linear, Module, Relu, Sequential};
use onde_nn::optim::{Adam, StepLr};
use onde_nn::{DType, GraphBuilder, TrainOptions, TrainStep};
use std::sync::Arc;

const LEN: usize = 64;
const BATCH: usize = 16;

fn signals(n: usize, seed: u64) -> Arc<dyn Dataset> {
    let (x, y) = SyntheticSignals::new(LEN, 0.1, seed).dataset(n);
    Arc::new(InMemory::from_rows("x", &x, y.as_i64().unwrap()).unwrap())
}

/// The step (logits as extra output 1) and its eval-mode evaluator `[logits, loss]`.
fn model(lr: f64) -> (TrainStep, onde_nn::Evaluator) {
    build(lr, false)
}

/// [`model`], optionally compiled for gradient accumulation.
fn build(lr: f64, accumulate: bool) -> (TrainStep, onde_nn::Evaluator) {
    let g = GraphBuilder::new();
    g.manual_seed(3);
    let mut m = Sequential::new("");
    m.push(Linear::new(&g, "0", LEN, 32))
        .push(Relu)
        .push(Linear::new(&g, "2", 32, 4));
    let x = g.input("x", DType::F32, [BATCH, LEN]);
    let y = g.input("y", DType::I64, [BATCH]);
    let logits = m.forward(&x);
    let loss = cross_entropy(&logits, &y, &NllOpts::default());
    let opts = TrainOptions {
        outputs: vec![&logits],
        accumulate,
        ..TrainOptions::default()
    };
    let step = TrainStep::with_options(&g, &loss, &Adam::new(lr), opts).unwrap();
    m.eval();
    let el = m.forward(&x);
    let eloss = cross_entropy(&el, &y, &NllOpts::default());
    let eval = step.evaluator(&g, &[&el, &eloss]).unwrap();
    (step, eval)
}

#[test]
fn fit_learns_logs_and_follows_its_schedule() {
    let train = DataLoader::new(signals(256, 1), BATCH)
        .shuffle(5)
        .drop_last(true)
        .num_workers(2);
    let valid = DataLoader::new(signals(128, 2), BATCH).drop_last(true);
    let (mut step, mut eval) = model(1e-2);
    let dir = std::env::temp_dir().join(format!("onde-data-{}-fit", std::process::id()));
    let mut t = Trainer::new(6, 4);
    t.topk = vec![2];
    t.schedule = Some(Box::new(StepLr {
        step_size: 4,
        gamma: 0.1,
    }));
    t.log = Some(MetricLog::create(&dir).unwrap());
    t.plots_dir = Some(dir.join("plots"));
    t.class_names = ["sine", "square", "saw", "chirp"]
        .map(String::from)
        .to_vec();
    let mut seen = 0;
    let hist = t
        .fit(&mut step, &train, Some((&mut eval, &valid)), |_| seen += 1)
        .unwrap();
    assert_eq!((hist.len(), seen), (6, 6));
    let first = &hist[0];
    let last = &hist[5];
    assert!(
        last.train_metric("loss").unwrap() < first.train_metric("loss").unwrap(),
        "{hist:?}"
    );
    let acc = last.valid_metric("accuracy").unwrap();
    // Four classes (chance 0.25); a 2-layer MLP on raw 64-sample waveforms after six
    // epochs of 256 samples is at ~0.5 (the recipe reaches more with more data).
    assert!(acc > 0.4, "validation accuracy {acc} (chance 0.25)");
    assert!(
        acc > first.valid_metric("accuracy").unwrap() || acc > 0.45,
        "{hist:?}"
    );
    assert!(last.valid_metric("top2").unwrap() >= acc);
    // StepLR(4, 0.1) from Adam's 1e-2.
    let lrs: Vec<f64> = hist.iter().map(|h| h.lr).collect();
    for (e, lr) in lrs.iter().enumerate() {
        let want = if e < 4 { 1e-2 } else { 1e-3 };
        assert!((lr - want).abs() < 1e-15, "epoch {e}: {lr}");
    }
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 6, "{csv}");
    assert!(csv.starts_with("epoch,phase,loss,accuracy,top2,balanced_accuracy,macro_f1\n"));
    // The pictures of the last epoch: both curves over six epochs, the confusion matrix.
    let plots = dir.join("plots");
    let png = image::open(plots.join("curves.png")).unwrap();
    assert_eq!((png.width(), png.height()), (960, 400));
    let svg = std::fs::read_to_string(plots.join("curves.svg")).unwrap();
    let six = svg
        .split("points=\"")
        .skip(1)
        .filter(|p| p[..p.find('"').unwrap()].split_whitespace().count() == 6)
        .count();
    assert_eq!(
        six, 4,
        "loss and accuracy, train and valid, six epochs each"
    );
    let cm = image::open(plots.join("confusion.png")).unwrap();
    assert_eq!((cm.width(), cm.height()), (480, 480));
    let cm_svg = std::fs::read_to_string(plots.join("confusion.svg")).unwrap();
    assert!(cm_svg.contains(">\nsine\n</text>") && cm_svg.contains(">\nchirp\n</text>"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn early_stopping_ends_a_stalled_run() {
    let train = DataLoader::new(signals(64, 1), BATCH).drop_last(true);
    let valid = DataLoader::new(signals(32, 2), BATCH).drop_last(true);
    // A zero learning rate: nothing improves after the first epoch.
    let (mut step, mut eval) = model(0.0);
    let mut t = Trainer::new(20, 4);
    t.early_stopping = Some(EarlyStopping::new(Mode::Min, 2));
    let hist = t
        .fit(&mut step, &train, Some((&mut eval, &valid)), |_| {})
        .unwrap();
    assert_eq!(
        hist.len(),
        3,
        "best at epoch 1, then 2 epochs without improvement"
    );
    assert!(hist[0].best && !hist[1].best && !hist[2].best);
    // A monitored metric that does not exist is an error that names it.
    let mut t = Trainer::new(1, 4);
    t.monitor = "f2".into();
    let e = t
        .fit(&mut step, &train, Some((&mut eval, &valid)), |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("`f2`"), "{e}");
    // A field the graph needs but the batch lacks.
    let mut t = Trainer::new(1, 4);
    t.inputs = vec!["audio".into()];
    let e = t.fit(&mut step, &train, None, |_| {}).unwrap_err();
    assert!(e.to_string().contains("`audio`"), "{e}");
}

#[test]
fn a_resumed_run_reaches_the_weights_of_an_uninterrupted_one() {
    let train = || {
        DataLoader::new(signals(96, 1), BATCH)
            .shuffle(9)
            .drop_last(true)
    };
    let valid = DataLoader::new(signals(32, 2), BATCH).drop_last(true);
    let dir = std::env::temp_dir().join(format!("onde-data-{}-resume", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let schedule = || {
        Box::new(StepLr {
            step_size: 2,
            gamma: 0.5,
        })
    };
    // Uninterrupted: 4 epochs (quiet: no progress bars; the others draw theirs, hidden
    // without a terminal — the results do not depend on it).
    let (mut a, mut ea) = model(1e-2);
    let mut t = Trainer::new(4, 4);
    t.quiet = true;
    t.schedule = Some(schedule());
    t.fit(&mut a, &train(), Some((&mut ea, &valid)), |_| {})
        .unwrap();
    // Interrupted after 2 epochs (checkpointed), resumed on a fresh step for 2 more.
    let (mut b, mut eb) = model(1e-2);
    let mut t = Trainer::new(2, 4);
    t.schedule = Some(schedule());
    t.checkpoint_dir = Some(dir.clone());
    t.fit(&mut b, &train(), Some((&mut eb, &valid)), |_| {})
        .unwrap();
    assert!(dir.join("last.safetensors").exists() && dir.join("best.safetensors").exists());
    let (mut c, mut ec) = model(1e-2);
    let mut t = Trainer::new(4, 4);
    t.schedule = Some(schedule());
    assert_eq!(t.resume(&mut c, dir.join("last.safetensors")).unwrap(), 2);
    let hist = t
        .fit(&mut c, &train(), Some((&mut ec, &valid)), |_| {})
        .unwrap();
    assert_eq!(hist.iter().map(|h| h.epoch).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(hist[0].lr, 5e-3, "the schedule continues at epoch 3");
    let (wa, wc) = (a.state_dict(), c.state_dict());
    assert_eq!(wa.len(), wc.len());
    for ((na, xa), (nc, xc)) in wa.iter().zip(&wc) {
        assert_eq!(na, nc);
        assert_eq!(xa, xc, "{na} differs after resuming");
    }
    // A file that is not a Trainer checkpoint says so.
    onde_nn::checkpoint::save(dir.join("weights.safetensors"), &a.model_state_dict()).unwrap();
    let e = Trainer::new(1, 4)
        .resume(&mut c, dir.join("weights.safetensors"))
        .unwrap_err();
    assert!(e.to_string().contains("trainer.epoch"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resumed_run_keeps_its_plateau_and_early_stopping_counters() {
    let train = || {
        DataLoader::new(signals(64, 1), BATCH)
            .shuffle(4)
            .drop_last(true)
    };
    let valid = DataLoader::new(signals(32, 2), BATCH).drop_last(true);
    let dir = std::env::temp_dir().join(format!("onde-data-{}-counters", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // ReduceLROnPlateau that halves the rate whenever the validation loss does not halve
    // (every epoch after the first), and early stopping that never sees an improvement
    // of 10 after the first epoch: it stops after epoch 4.
    let trainer = |epochs: usize| {
        let mut t = Trainer::new(epochs, 4);
        t.quiet = true;
        let mut p = onde_nn::optim::ReduceLrOnPlateau::new(1e-2, onde_nn::optim::PlateauMode::Min);
        p.patience = 0;
        p.factor = 0.5;
        p.threshold = 0.5;
        t.plateau = Some(p);
        t.early_stopping = Some(EarlyStopping::new(Mode::Min, 3).min_delta(10.0));
        t
    };
    let (mut a, mut ea) = model(1e-2);
    let whole = trainer(10)
        .fit(&mut a, &train(), Some((&mut ea, &valid)), |_| {})
        .unwrap();
    let lrs: Vec<f64> = whole.iter().map(|h| h.lr).collect();
    assert_eq!(lrs, vec![1e-2, 1e-2, 5e-3, 2.5e-3], "{whole:?}");
    let (mut b, mut eb) = model(1e-2);
    let mut t = trainer(2);
    t.checkpoint_dir = Some(dir.clone());
    t.fit(&mut b, &train(), Some((&mut eb, &valid)), |_| {})
        .unwrap();
    let (mut c, mut ec) = model(1e-2);
    let mut t = trainer(10);
    assert_eq!(t.resume(&mut c, dir.join("last.safetensors")).unwrap(), 2);
    let rest = t
        .fit(&mut c, &train(), Some((&mut ec, &valid)), |_| {})
        .unwrap();
    // The same rates and the same stop (epoch 4), so the same weights.
    assert_eq!(rest.iter().map(|h| h.epoch).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(
        rest.iter().map(|h| h.lr).collect::<Vec<_>>(),
        lrs[2..].to_vec()
    );
    for ((na, xa), (_, xc)) in a.state_dict().iter().zip(&c.state_dict()) {
        assert_eq!(xa, xc, "{na} differs after resuming");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A step compiled for gradient accumulation.
fn accumulating_model() -> TrainStep {
    build(1e-2, true).0
}

#[test]
fn fit_accumulates_gradients_over_batches() {
    // 7 batches per epoch, 3 per update: updates after batches 3, 6 and 7.
    let loader = DataLoader::new(signals(7 * BATCH, 1), BATCH).shuffle(2);
    let mut a = accumulating_model();
    let mut t = Trainer::new(2, 4);
    t.quiet = true;
    t.accumulate = 3;
    let hist = t.fit(&mut a, &loader, None, |_| {}).unwrap();
    assert_eq!(a.steps(), 2 * 3, "three updates per epoch");
    // The same by hand.
    let mut b = accumulating_model();
    let mut losses = Vec::new();
    for epoch in 0..2u64 {
        let mut sum = 0.0;
        for (i, batch) in loader.epoch(epoch).unwrap().enumerate() {
            let batch = batch.unwrap();
            let x = &batch.fields.iter().find(|(n, _)| n == "x").unwrap().1;
            let feeds = [("x", x), ("y", &batch.labels)];
            sum += if (i + 1) % 3 == 0 || i == 6 {
                b.step(&feeds).unwrap()
            } else {
                b.accumulate(&feeds).unwrap()
            };
        }
        losses.push(sum / 7.0);
    }
    for ((na, xa), (_, xb)) in a.state_dict().iter().zip(&b.state_dict()) {
        assert_eq!(xa, xb, "{na}");
    }
    // The training metrics cover every batch, accumulated ones included.
    for (h, want) in hist.iter().zip(&losses) {
        let got = h.train_metric("loss").unwrap();
        assert!(
            (got - want).abs() < 1e-9,
            "epoch {}: {got} vs {want}",
            h.epoch
        );
    }
    let mut t = Trainer::new(1, 4);
    t.accumulate = 0;
    let e = t.fit(&mut a, &loader, None, |_| {}).unwrap_err();
    assert!(e.to_string().contains("accumulate"), "{e}");
}

#[test]
fn fit_keeps_the_partial_last_batch_with_an_any_batch_step() {
    // 100 training samples in batches of 16 (6 full, then 4), 50 validation ones (3 ×
    // 16, then 2): every sample counts, each batch size compiles once.
    let train = DataLoader::new(signals(100, 1), BATCH).shuffle(3);
    let valid = DataLoader::new(signals(50, 2), BATCH);
    let g = GraphBuilder::new();
    g.manual_seed(3);
    let mut m = Sequential::new("");
    m.push(Linear::new(&g, "0", LEN, 32))
        .push(Relu)
        .push(Linear::new(&g, "2", 32, 4));
    let m = std::rc::Rc::new(m);
    let (h, mt) = (g.clone(), m.clone());
    let mut step = TrainStep::any_batch(&g, BATCH, move |b| {
        mt.train();
        let x = h.input("x", DType::F32, [b, LEN]);
        let y = h.input("y", DType::I64, [b]);
        let logits = mt.forward(&x);
        let loss = cross_entropy(&logits, &y, &NllOpts::default());
        let opts = TrainOptions {
            outputs: vec![&logits],
            ..TrainOptions::default()
        };
        TrainStep::with_options(&h, &loss, &Adam::new(1e-2), opts)
    })
    .unwrap();
    let (h, me) = (g.clone(), m.clone());
    let mut eval = step
        .evaluator_any_batch(BATCH, move |b| {
            me.eval();
            let x = h.input("x", DType::F32, [b, LEN]);
            let y = h.input("y", DType::I64, [b]);
            let logits = me.forward(&x);
            let loss = cross_entropy(&logits, &y, &NllOpts::default());
            Ok(vec![logits, loss])
        })
        .unwrap();
    let mut t = Trainer::new(3, 4);
    t.quiet = true;
    let hist = t
        .fit(&mut step, &train, Some((&mut eval, &valid)), |_| {})
        .unwrap();
    assert_eq!(step.steps(), 3 * 7);
    assert_eq!(step.compiled_batch_sizes(), vec![4, BATCH]);
    assert_eq!(eval.compiled_batch_sizes(), vec![2, BATCH]);
    // The validation metrics cover all 50 samples: the same as one batch of 50.
    let all = DataLoader::new(signals(50, 2), 50)
        .epoch(0)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let x = &all.fields.iter().find(|(n, _)| n == "x").unwrap().1;
    let outs = eval.run(&step, &[("x", x), ("y", &all.labels)]).unwrap();
    let mut whole = onde_data::ClassificationMetrics::new(4, &[]);
    let loss = outs[1].to_f64_vec()[0];
    whole
        .update(&outs[0], all.labels.as_i64().unwrap(), Some(loss))
        .unwrap();
    let last = hist.last().unwrap();
    assert_eq!(last.valid_metric("accuracy"), Some(whole.accuracy()));
    let got = last.valid_metric("loss").unwrap();
    assert!(
        (got - loss).abs() < 1e-5 * loss.abs().max(1.0),
        "{got} vs {loss}"
    );
}

#[test]
fn a_per_update_schedule_sets_the_rate_of_every_update() {
    // A linear warm-up over the first 5 updates, per update, with accumulation over 2
    // batches: 7 batches = 4 updates per epoch, 3 epochs.
    let loader = DataLoader::new(signals(7 * BATCH, 1), BATCH).shuffle(6);
    let schedule = || onde_nn::optim::LinearLr {
        start_factor: 0.2,
        end_factor: 1.0,
        total_iters: 5,
    };
    let mut a = accumulating_model();
    let mut t = Trainer::new(3, 4);
    t.quiet = true;
    t.accumulate = 2;
    t.schedule = Some(Box::new(schedule()));
    t.interval = onde_data::Interval::Step;
    let hist = t.fit(&mut a, &loader, None, |_| {}).unwrap();
    // By hand: set the rate before each update.
    let mut b = accumulating_model();
    let base = b.base_lr();
    let mut u = 0;
    let mut firsts = Vec::new();
    for epoch in 0..3u64 {
        for (i, batch) in loader.epoch(epoch).unwrap().enumerate() {
            let batch = batch.unwrap();
            let x = &batch.fields.iter().find(|(n, _)| n == "x").unwrap().1;
            let feeds = [("x", x), ("y", &batch.labels)];
            if (i + 1) % 2 == 0 || i == 6 {
                let lr = onde_nn::optim::LrSchedule::lr(&schedule(), base, u);
                if i == 1 {
                    firsts.push(lr);
                }
                b.set_lr(lr);
                b.step(&feeds).unwrap();
                u += 1;
            } else {
                b.accumulate(&feeds).unwrap();
            }
        }
    }
    assert_eq!(u, 12);
    for ((na, xa), (_, xb)) in a.state_dict().iter().zip(&b.state_dict()) {
        assert_eq!(xa, xb, "{na}");
    }
    assert_eq!(hist.iter().map(|h| h.lr).collect::<Vec<_>>(), firsts);
    // Epochs start at updates 0, 4 and 8: the ramp, then the base rate.
    assert!(
        firsts[0] < firsts[1] && firsts[1] < firsts[2] && firsts[2] == base,
        "{firsts:?}"
    );
}
