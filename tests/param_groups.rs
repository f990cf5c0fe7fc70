//! Parameter groups (`torch.optim`'s `[{"params": …, "lr": …, "weight_decay": …}]`)
//! and the split of the state dict into the model's and the optimiser's, against
//! hand-written f64 references of PyTorch's SGD and Adam updates.
//!
//! Model: parameters `a` [2], `b` [3], `c` [1], loss `Σ a² + Σ (b − 1)² + 3·c·Σ a`,
//! so `∂/∂a = 2a + 3c`, `∂/∂b = 2(b − 1)`, `∂/∂c = 3 Σ a`.

use onde::module::{Linear, Module, StateSource};
use onde::optim::{Adam, Newton, ParamGroup, Sgd};
use onde::{Array, DType, GraphBuilder, Tensor, TrainOptions, TrainStep};

const A0: [f64; 2] = [0.5, -1.5];
const B0: [f64; 3] = [2.0, 0.0, -1.0];
const C0: [f64; 1] = [0.25];

fn arr(v: &[f64]) -> Array {
    Array::from_f64(DType::F64, vec![v.len()], v).unwrap()
}

fn model() -> (GraphBuilder, [Tensor; 3], Tensor) {
    let g = GraphBuilder::new();
    let a = g.parameter("a", arr(&A0));
    let b = g.parameter("b", arr(&B0));
    let c = g.parameter("c", arr(&C0));
    let loss = (&a * &a).sum_all()
        + ((&b - 1.0) * (&b - 1.0)).sum_all()
        + &c.sum_all() * &a.sum_all() * 3.0;
    (g, [a, b, c], loss)
}

fn grads(a: &[f64], b: &[f64], c: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    (
        a.iter().map(|x| 2.0 * x + 3.0 * c[0]).collect(),
        b.iter().map(|x| 2.0 * (x - 1.0)).collect(),
        vec![3.0 * a.iter().sum::<f64>()],
    )
}

fn value(step: &TrainStep, n: &str) -> Vec<f64> {
    step.value(n).unwrap().to_f64_vec()
}

fn close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (x, y) in got.iter().zip(want) {
        assert!(
            (x - y).abs() <= 1e-12 * y.abs().max(1.0),
            "{what}: {got:?} vs {want:?}"
        );
    }
}

#[test]
fn sgd_groups_have_their_own_lr_and_weight_decay_and_the_rest_is_frozen() {
    let (g, [a, b, _c], loss) = model();
    let opts = TrainOptions {
        groups: vec![
            ParamGroup::new([&a]),
            ParamGroup::new([&b]).lr(0.5).weight_decay(0.1),
        ],
        ..TrainOptions::default()
    };
    let mut step = TrainStep::with_options(&g, &loss, &Sgd::new(0.1), opts).unwrap();
    assert_eq!(step.groups(), 2);
    let (mut av, mut bv, cv) = (A0.to_vec(), B0.to_vec(), C0.to_vec());
    for it in 0..3 {
        step.step(&[]).unwrap();
        let (ga, gb, _) = grads(&av, &bv, &cv);
        // p ← p − lr·(g + wd·p)
        av = av.iter().zip(&ga).map(|(p, g)| p - 0.1 * g).collect();
        bv = bv
            .iter()
            .zip(&gb)
            .map(|(p, g)| p - 0.5 * (g + 0.1 * p))
            .collect();
        close(&value(&step, "a"), &av, &format!("a after step {it}"));
        close(&value(&step, "b"), &bv, &format!("b after step {it}"));
        close(&value(&step, "c"), &C0, "c is frozen");
    }
    // A schedule moves every group by the same factor; one group can be set alone.
    step.set_lr(0.05);
    assert_eq!(step.group_lr(0), Some(0.05));
    assert!((step.group_lr(1).unwrap() - 0.25).abs() < 1e-15);
    step.set_group_lr(1, 0.0).unwrap();
    let before_b = value(&step, "b");
    step.step(&[]).unwrap();
    close(&value(&step, "b"), &before_b, "b with lr 0");
    assert!(step.set_group_lr(2, 0.1).is_err());
}

#[test]
fn adam_groups_follow_pytorch_per_group() {
    // Adam (L2 weight decay) on `a` with lr 0.01, `c` with lr 0.1 and weight decay 0.5.
    let (g, [a, _b, c], loss) = model();
    let opts = TrainOptions {
        groups: vec![
            ParamGroup::new([&a]).lr(0.01),
            ParamGroup::new([&c]).lr(0.1).weight_decay(0.5),
        ],
        ..TrainOptions::default()
    };
    let mut step = TrainStep::with_options(&g, &loss, &Adam::new(1e-3), opts).unwrap();
    let (mut av, bv, mut cv) = (A0.to_vec(), B0.to_vec(), C0.to_vec());
    let (mut ma, mut va) = (vec![0.0; 2], vec![0.0; 2]);
    let (mut mc, mut vc) = (vec![0.0; 1], vec![0.0; 1]);
    let adam = |p: &mut Vec<f64>,
                gr: &[f64],
                m: &mut Vec<f64>,
                v: &mut Vec<f64>,
                lr: f64,
                wd: f64,
                t: i32| {
        for i in 0..p.len() {
            let g = gr[i] + wd * p[i];
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            let mh = m[i] / (1.0 - 0.9f64.powi(t));
            let vh = v[i] / (1.0 - 0.999f64.powi(t));
            p[i] -= lr * mh / (vh.sqrt() + 1e-8);
        }
    };
    for t in 1..=3 {
        step.step(&[]).unwrap();
        let (ga, _, gc) = grads(&av, &bv, &cv);
        adam(&mut av, &ga, &mut ma, &mut va, 0.01, 0.0, t);
        adam(&mut cv, &gc, &mut mc, &mut vc, 0.1, 0.5, t);
        close(&value(&step, "a"), &av, &format!("a at t={t}"));
        close(&value(&step, "c"), &cv, &format!("c at t={t}"));
        close(&value(&step, "b"), &B0, "b is frozen");
    }
    close(&value(&step, "optim.c.exp_avg"), &mc, "c's exp_avg");
}

#[test]
fn bad_groups_are_typed_errors() {
    let (g, [a, b, _], loss) = model();
    let msg = |o: TrainOptions, opt: &dyn onde::optim::Optimizer| {
        TrainStep::with_options(&g, &loss, opt, o)
            .unwrap_err()
            .to_string()
    };
    let e = msg(
        TrainOptions {
            groups: vec![ParamGroup::new([&a, &b]), ParamGroup::new([&b])],
            ..TrainOptions::default()
        },
        &Sgd::new(0.1),
    );
    assert!(
        e.contains("parameter b appears in parameter groups 0 and 1"),
        "{e}"
    );
    let e = msg(
        TrainOptions {
            params: Some(vec![&a]),
            groups: vec![ParamGroup::new([&b])],
            ..TrainOptions::default()
        },
        &Sgd::new(0.1),
    );
    assert!(e.contains("either `params` or `groups`"), "{e}");
    let e = msg(
        TrainOptions {
            groups: vec![ParamGroup::new([&a]).weight_decay(0.1)],
            ..TrainOptions::default()
        },
        &Newton::new(),
    );
    assert!(
        e.contains("parameter group 0: newton has no weight decay"),
        "{e}"
    );
    let e = msg(
        TrainOptions {
            groups: vec![ParamGroup::new([&a]).lr(-1.0)],
            ..TrainOptions::default()
        },
        &Sgd::new(0.1),
    );
    assert!(
        e.contains("parameter group 0: the learning rate must be >= 0"),
        "{e}"
    );
    let e = msg(
        TrainOptions {
            groups: vec![ParamGroup::new([&b]).weight_decay(-0.5)],
            ..TrainOptions::default()
        },
        &Adam::new(0.1),
    );
    assert!(
        e.contains("parameter group 0: Adam: lr, eps and weight decay must be >= 0"),
        "{e}"
    );
    let other = GraphBuilder::new();
    let stray = other.parameter("z", arr(&[1.0]));
    let e = msg(
        TrainOptions {
            groups: vec![ParamGroup::new([&stray])],
            ..TrainOptions::default()
        },
        &Sgd::new(0.1),
    );
    assert!(
        e.contains("is not a learnable parameter of this builder"),
        "{e}"
    );
}

#[test]
fn model_and_optimizer_state_dicts_are_separate() {
    let g = GraphBuilder::new();
    let lin = Linear::new(&g, "fc", 3, 2);
    let head = Linear::new(&g, "head", 2, 1);
    let x = g.input("x", DType::F32, [4, 3]);
    let loss = head.forward(&lin.forward(&x)).square().mean_all();
    // Only `fc` is trained (its own lr); `head` is frozen.
    let params = lin.parameters();
    let opts = TrainOptions {
        groups: vec![ParamGroup::new(params.iter()).lr(0.1)],
        ..TrainOptions::default()
    };
    let mut step = TrainStep::with_options(&g, &loss, &Adam::new(1e-3), opts).unwrap();
    let xs = Array::f32([4, 3], (0..12).map(|i| i as f32 * 0.1).collect()).unwrap();
    step.step(&[("x", &xs)]).unwrap();
    let keys = |d: &[(String, Array)]| d.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    // The model's dict: every parameter (trained and frozen), no optimiser key.
    let model = step.model_state_dict();
    let mut mk = keys(&model);
    mk.sort();
    assert_eq!(mk, ["fc.bias", "fc.weight", "head.bias", "head.weight"]);
    let opt = step.optimizer_state_dict();
    assert!(
        keys(&opt).iter().all(|k| k.starts_with("optim.")),
        "{opt:?}"
    );
    assert!(keys(&opt).contains(&"optim.fc.weight.exp_avg".to_string()));
    assert!(keys(&opt).contains(&"optim.lr".to_string()));
    assert_eq!(step.state_dict().len(), model.len() + opt.len());
    // A module's own dict: its names only, with the trained values.
    let fc = lin.state_dict(&step);
    assert_eq!(keys(&fc), ["fc.weight", "fc.bias"]);
    assert_eq!(&fc[0].1, step.value("fc.weight").unwrap());
    assert_ne!(&fc[0].1, &g.state_value("fc.weight").unwrap(), "trained");
    assert_eq!(
        head.state_dict(&g),
        head.state_dict(&step),
        "frozen head unchanged"
    );
    // The model's dict loads alone (strict), and the optimiser's state is kept.
    let exp_avg = step.value("optim.fc.weight.exp_avg").unwrap().clone();
    let mut fresh = model.clone();
    for (_, a) in &mut fresh {
        *a = Array::full(a.dtype(), a.shape().clone(), 0.5);
    }
    step.load_state_dict(&fresh, true).unwrap();
    assert_eq!(step.value("fc.weight").unwrap().to_f64_vec(), [0.5; 6]);
    assert_eq!(step.value("optim.fc.weight.exp_avg").unwrap(), &exp_avg);
    // Group learning rates round-trip through the optimiser's dict.
    step.set_lr(0.02);
    let saved = step.optimizer_state_dict();
    step.set_lr(0.5);
    step.load_state_dict(&[model, saved].concat(), true)
        .unwrap();
    assert_eq!(step.lr(), 0.02);
}
