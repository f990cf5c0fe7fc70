//! Optimisers compiled into a `TrainStep`, against hand-written f64 references of
//! PyTorch's single-tensor update rules (`torch.optim.SGD`, `Adam`, `AdamW`):
//! plain SGD, momentum (first step buffer = g), dampening, Nesterov, weight decay,
//! Adam with bias correction, AdamW's decoupled decay; `set_lr` without recompiling;
//! schedules; gradient accumulation; the optimiser state in `state_dict()`.
//!
//! The model is one parameter `w` ([3]) with loss `Σ w² + Σ c·w` (`c` an input), so the
//! gradient is known in closed form: `∂loss/∂w = 2w + c`.

use onde::optim::{Adam, ConstantLr, CosineAnnealingLr, LrSchedule, Optimizer, Sgd, StepLr};
use onde::{Array, DType, Error, GraphBuilder, Tensor, TrainOptions, TrainStep};

const W0: [f64; 3] = [1.0, -2.0, 0.5];
const C: [f64; 3] = [0.3, -0.7, 0.2];

fn arr(dtype: DType, v: &[f64]) -> Array {
    Array::from_f64(dtype, vec![v.len()], v).unwrap()
}

/// The model: parameter `w` (initial `W0`), input `c`, loss `Σ w² + Σ c·w`.
fn model(dtype: DType) -> (GraphBuilder, Tensor) {
    let g = GraphBuilder::new();
    let w = g.parameter("w", arr(dtype, &W0));
    let c = g.input("c", dtype, [3]);
    let loss = (&w * &w).sum_all() + (&c * &w).sum_all();
    (g, loss)
}

/// ∂(Σ w² + Σ c·w)/∂w = 2w + c.
fn grad_ref(w: &[f64], c: &[f64]) -> Vec<f64> {
    w.iter().zip(c).map(|(w, c)| 2.0 * w + c).collect()
}

/// Tolerance: relative 1e-12 in f64; in f32 1e-6 relative to max(|want|, 0.1) (the
/// f32 update rounds each of a handful of ops to 6e-8).
fn assert_close(got: &[f64], want: &[f64], dtype: DType, what: &str) {
    let (tol, floor) = if dtype == DType::F64 {
        (1e-12, 1.0)
    } else {
        (1e-6, 0.1)
    };
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let err = (a - b).abs();
        assert!(
            err <= tol * b.abs().max(floor),
            "{what}[{i}]: got {a}, want {b} (err {err:e}); all {got:?} vs {want:?}"
        );
    }
}

/// PyTorch's `_single_tensor_sgd`:
/// ```text
/// g = g + wd·p                        (weight decay)
/// buf = g (first step) | momentum·buf + (1-dampening)·g
/// g = g + momentum·buf (Nesterov) | buf
/// p = p - lr·g
/// ```
#[derive(Debug, Clone)]
struct SgdRef {
    lr: f64,
    momentum: f64,
    dampening: f64,
    wd: f64,
    nesterov: bool,
    buf: Option<Vec<f64>>,
}

impl SgdRef {
    fn new(lr: f64) -> SgdRef {
        SgdRef {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            wd: 0.0,
            nesterov: false,
            buf: None,
        }
    }

    fn step(&mut self, p: &mut [f64], grad: &[f64]) {
        let mut g: Vec<f64> = grad
            .iter()
            .zip(p.iter())
            .map(|(g, p)| g + self.wd * p)
            .collect();
        if self.momentum != 0.0 {
            let buf = match self.buf.take() {
                None => g.clone(),
                Some(b) => b
                    .iter()
                    .zip(&g)
                    .map(|(b, g)| self.momentum * b + (1.0 - self.dampening) * g)
                    .collect(),
            };
            g = if self.nesterov {
                g.iter()
                    .zip(&buf)
                    .map(|(g, b)| g + self.momentum * b)
                    .collect()
            } else {
                buf.clone()
            };
            self.buf = Some(buf);
        }
        for (p, g) in p.iter_mut().zip(&g) {
            *p -= self.lr * g;
        }
    }
}

/// PyTorch's `_single_tensor_adam` (amsgrad off):
/// ```text
/// t += 1
/// p = p·(1 - lr·wd) (AdamW) | g = g + wd·p (Adam)
/// m = β₁m + (1-β₁)g;  v = β₂v + (1-β₂)g²
/// p = p - (lr / (1-β₁ᵗ)) · m / (√v / √(1-β₂ᵗ) + eps)
/// ```
#[derive(Debug, Clone)]
struct AdamRef {
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    wd: f64,
    decoupled: bool,
    t: u32,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl AdamRef {
    fn new(lr: f64, n: usize) -> AdamRef {
        AdamRef {
            lr,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            wd: 0.0,
            decoupled: false,
            t: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    fn step(&mut self, p: &mut [f64], grad: &[f64]) {
        self.t += 1;
        let t = self.t as i32;
        let mut g = grad.to_vec();
        if self.wd != 0.0 {
            if self.decoupled {
                for x in p.iter_mut() {
                    *x *= 1.0 - self.lr * self.wd;
                }
            } else {
                for (g, x) in g.iter_mut().zip(p.iter()) {
                    *g += self.wd * x;
                }
            }
        }
        let bc1 = 1.0 - self.b1.powi(t);
        let bc2 = 1.0 - self.b2.powi(t);
        for i in 0..p.len() {
            self.m[i] = self.b1 * self.m[i] + (1.0 - self.b1) * g[i];
            self.v[i] = self.b2 * self.v[i] + (1.0 - self.b2) * g[i] * g[i];
            let denom = self.v[i].sqrt() / bc2.sqrt() + self.eps;
            p[i] -= self.lr / bc1 * self.m[i] / denom;
        }
    }
}

/// Runs `n` steps of `opt` on the model and checks `w` after each against `reference`
/// (called with the current reference weights and the gradient at them).
fn check_steps(
    opt: &dyn Optimizer,
    dtype: DType,
    n: usize,
    mut reference: impl FnMut(&mut [f64], &[f64]),
    what: &str,
) -> TrainStep {
    let (g, loss) = model(dtype);
    let mut step = TrainStep::new(&g, &loss, opt).unwrap();
    let c = arr(dtype, &C);
    let mut w = arr(dtype, &W0).to_f64_vec();
    for k in 1..=n {
        // The loss returned is the one before the update, at the current weights.
        let want_loss: f64 = w.iter().zip(&C).map(|(w, c)| w * w + c * w).sum();
        let l = step.step(&[("c", &c)]).unwrap();
        assert_close(
            &[l],
            &[want_loss],
            dtype,
            &format!("{what} {dtype}: loss {k}"),
        );
        let gr = grad_ref(&w, &C);
        reference(&mut w, &gr);
        let got = step.value("w").unwrap().to_f64_vec();
        assert_close(
            &got,
            &w,
            dtype,
            &format!("{what} {dtype}: w after step {k}"),
        );
    }
    assert_eq!(step.steps(), n as u64);
    step
}

const DTYPES: [DType; 2] = [DType::F32, DType::F64];

#[test]
fn sgd_plain() {
    // Step 1 by hand: g = 2w + c = [2.3, -4.7, 1.2]; w = w - 0.1 g = [0.77, -1.53, 0.38].
    let mut w = W0.to_vec();
    SgdRef::new(0.1).step(&mut w, &grad_ref(&W0, &C));
    assert_close(&w, &[0.77, -1.53, 0.38], DType::F64, "hand step");
    for dtype in DTYPES {
        let mut r = SgdRef::new(0.1);
        let step = check_steps(&Sgd::new(0.1), dtype, 3, |p, g| r.step(p, g), "sgd");
        assert_eq!(step.optimizer(), "sgd");
        // Plain SGD keeps no state: the state dict is the weights and the rate.
        let names: Vec<String> = step.state_dict().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["w".to_string(), "optim.lr".to_string()]);
    }
}

#[test]
fn sgd_momentum() {
    // Step 1: buf = g₁ = [2.3, -4.7, 1.2] (not (1-dampening)·g), w₁ = w₀ - 0.1·g₁ =
    // [0.77, -1.53, 0.38]. Step 2: g₂ = 2w₁ + c = [1.84, -3.76, 0.96];
    // buf = 0.9·g₁ + g₂ = [3.91, -7.99, 2.04]; w₂ = w₁ - 0.1·buf = [0.379, -0.731, 0.176].
    let mut r = SgdRef {
        momentum: 0.9,
        ..SgdRef::new(0.1)
    };
    let mut w = W0.to_vec();
    for _ in 0..2 {
        let g = grad_ref(&w, &C);
        r.step(&mut w, &g);
    }
    assert_close(&w, &[0.379, -0.731, 0.176], DType::F64, "hand steps");
    for dtype in DTYPES {
        let mut r = SgdRef {
            momentum: 0.9,
            ..SgdRef::new(0.1)
        };
        let step = check_steps(
            &Sgd::new(0.1).momentum(0.9),
            dtype,
            3,
            |p, g| r.step(p, g),
            "sgd momentum",
        );
        // The momentum buffer is state and equals the reference buffer.
        let buf = step.value("optim.w.momentum_buffer").unwrap().to_f64_vec();
        assert_close(&buf, r.buf.as_ref().unwrap(), dtype, "momentum buffer");
    }
}

#[test]
fn sgd_momentum_with_dampening() {
    // First step ignores dampening (buf = g); later buf = 0.9·buf + 0.5·g.
    for dtype in DTYPES {
        let mut r = SgdRef {
            momentum: 0.9,
            dampening: 0.5,
            ..SgdRef::new(0.1)
        };
        check_steps(
            &Sgd::new(0.1).momentum(0.9).dampening(0.5),
            dtype,
            3,
            |p, g| r.step(p, g),
            "sgd dampening",
        );
    }
}

#[test]
fn sgd_nesterov() {
    // Step 1: buf = g₁; update g₁ + 0.9·g₁ = 1.9·g₁ → w₁ = w₀ - 0.19·g₁ =
    // [0.563, -1.107, 0.272].
    let mut r = SgdRef {
        momentum: 0.9,
        nesterov: true,
        ..SgdRef::new(0.1)
    };
    let mut w = W0.to_vec();
    r.step(&mut w, &grad_ref(&W0, &C));
    assert_close(&w, &[0.563, -1.107, 0.272], DType::F64, "hand step");
    for dtype in DTYPES {
        let mut r = SgdRef {
            momentum: 0.9,
            nesterov: true,
            ..SgdRef::new(0.1)
        };
        check_steps(
            &Sgd::new(0.1).momentum(0.9).nesterov(true),
            dtype,
            3,
            |p, g| r.step(p, g),
            "sgd nesterov",
        );
    }
}

#[test]
fn sgd_weight_decay() {
    // Step 1: g = 2w + c + 0.1·w = [2.4, -4.9, 1.25]; w₁ = w₀ - 0.1·g = [0.76, -1.51, 0.375].
    let mut r = SgdRef {
        wd: 0.1,
        ..SgdRef::new(0.1)
    };
    let mut w = W0.to_vec();
    r.step(&mut w, &grad_ref(&W0, &C));
    assert_close(&w, &[0.76, -1.51, 0.375], DType::F64, "hand step");
    for dtype in DTYPES {
        let mut r = SgdRef {
            wd: 0.1,
            ..SgdRef::new(0.1)
        };
        check_steps(
            &Sgd::new(0.1).weight_decay(0.1),
            dtype,
            3,
            |p, g| r.step(p, g),
            "sgd wd",
        );
        // Weight decay with Nesterov momentum: the decayed gradient feeds the buffer.
        let mut r = SgdRef {
            wd: 0.05,
            momentum: 0.8,
            nesterov: true,
            ..SgdRef::new(0.05)
        };
        check_steps(
            &Sgd::new(0.05)
                .weight_decay(0.05)
                .momentum(0.8)
                .nesterov(true),
            dtype,
            3,
            |p, g| r.step(p, g),
            "sgd wd nesterov",
        );
    }
}

#[test]
fn adam_bias_corrected() {
    // Step 1 by hand: m = 0.1·g, v = 0.001·g²; m̂ = g, v̂ = g²; update = lr·g/(|g| + eps)
    // ≈ lr·sign(g): w₁ ≈ [0.9, -1.9, 0.4] (off by lr·eps/|g| ≈ 1e-9).
    let mut r = AdamRef::new(0.1, 3);
    let mut w = W0.to_vec();
    r.step(&mut w, &grad_ref(&W0, &C));
    for (i, want) in [0.9, -1.9, 0.4].iter().enumerate() {
        assert!((w[i] - want).abs() < 1e-8, "{w:?}");
    }
    for dtype in DTYPES {
        let mut r = AdamRef::new(0.1, 3);
        let step = check_steps(&Adam::new(0.1), dtype, 3, |p, g| r.step(p, g), "adam");
        assert_eq!(step.optimizer(), "adam");
        let m = step.value("optim.w.exp_avg").unwrap().to_f64_vec();
        let v = step.value("optim.w.exp_avg_sq").unwrap().to_f64_vec();
        assert_close(&m, &r.m, dtype, "exp_avg");
        assert_close(&v, &r.v, dtype, "exp_avg_sq");
    }
}

#[test]
fn adam_betas_eps_and_l2_weight_decay() {
    for dtype in DTYPES {
        let mut r = AdamRef {
            b1: 0.8,
            b2: 0.99,
            eps: 1e-3,
            wd: 0.1,
            ..AdamRef::new(0.05, 3)
        };
        check_steps(
            &Adam::new(0.05).betas(0.8, 0.99).eps(1e-3).weight_decay(0.1),
            dtype,
            3,
            |p, g| r.step(p, g),
            "adam l2",
        );
    }
}

#[test]
fn adamw_decoupled_weight_decay() {
    // AdamW's defaults: weight decay 0.01, decoupled: p ← p·(1 - lr·wd) before the Adam
    // step, the gradient left untouched.
    let a = Adam::adamw(0.1);
    assert_eq!(a.weight_decay, 1e-2);
    assert!(a.decoupled);
    for dtype in DTYPES {
        let mut r = AdamRef {
            wd: 0.01,
            decoupled: true,
            ..AdamRef::new(0.1, 3)
        };
        let step = check_steps(&Adam::adamw(0.1), dtype, 3, |p, g| r.step(p, g), "adamw");
        assert_eq!(step.optimizer(), "adamw");
        // A strong decay makes the difference with L2 Adam visible.
        let mut r = AdamRef {
            wd: 0.5,
            decoupled: true,
            ..AdamRef::new(0.1, 3)
        };
        check_steps(
            &Adam::adamw(0.1).weight_decay(0.5),
            dtype,
            3,
            |p, g| r.step(p, g),
            "adamw wd 0.5",
        );
    }
    // Decoupled vs L2 differ (sanity of the reference itself).
    let (mut w1, mut w2) = (W0.to_vec(), W0.to_vec());
    let mut r1 = AdamRef {
        wd: 0.5,
        decoupled: true,
        ..AdamRef::new(0.1, 3)
    };
    let mut r2 = AdamRef {
        wd: 0.5,
        ..AdamRef::new(0.1, 3)
    };
    for _ in 0..2 {
        let (g1, g2) = (grad_ref(&w1, &C), grad_ref(&w2, &C));
        r1.step(&mut w1, &g1);
        r2.step(&mut w2, &g2);
    }
    assert!((w1[0] - w2[0]).abs() > 1e-3, "{w1:?} vs {w2:?}");
}

// ---------------------------------------------------------------------------------
// Learning rate: set_lr without recompiling, schedules
// ---------------------------------------------------------------------------------

#[test]
fn set_lr_changes_the_step_without_recompiling() {
    for dtype in DTYPES {
        let (g, loss) = model(dtype);
        let mut step = TrainStep::new(&g, &loss, &Sgd::new(0.1)).unwrap();
        let exe_ptr: *const onde::codegen::Executable = step.executable();
        let plan_ptr: *const onde::codegen::plan::Plan = step.executable().plan();
        let compile_time = step.executable().compile_time();
        assert_eq!(step.lr(), 0.1);
        assert_eq!(step.base_lr(), 0.1);
        let c = arr(dtype, &C);
        let mut w = arr(dtype, &W0).to_f64_vec();
        for lr in [0.1, 0.01, 0.25] {
            step.set_lr(lr);
            assert_eq!(step.lr(), lr);
            step.step(&[("c", &c)]).unwrap();
            // w ← w - lr·(2w + c) with the new rate.
            let gr = grad_ref(&w, &C);
            for (w, g) in w.iter_mut().zip(&gr) {
                *w -= lr * g;
            }
            assert_close(
                &step.value("w").unwrap().to_f64_vec(),
                &w,
                dtype,
                &format!("w after a step at lr {lr}"),
            );
            // Same executable, same compiled plan, no new compilation.
            assert!(std::ptr::eq(exe_ptr, step.executable()));
            assert!(std::ptr::eq(plan_ptr, step.executable().plan()));
            assert_eq!(step.executable().compile_time(), compile_time);
        }
        assert_eq!(
            step.base_lr(),
            0.1,
            "set_lr does not move the schedule base"
        );
        let lr_state = step
            .state_dict()
            .into_iter()
            .find(|(n, _)| n == "optim.lr")
            .unwrap()
            .1;
        assert_eq!(lr_state.to_f64_vec(), vec![0.25]);
    }
}

#[test]
fn set_lr_with_adam_scales_the_bias_corrected_step() {
    let dtype = DType::F64;
    let (g, loss) = model(dtype);
    let mut step = TrainStep::new(&g, &loss, &Adam::new(0.1)).unwrap();
    let compile_time = step.executable().compile_time();
    let c = arr(dtype, &C);
    let mut r = AdamRef::new(0.1, 3);
    let mut w = W0.to_vec();
    for lr in [0.1, 0.02, 0.3] {
        step.set_lr(lr);
        r.lr = lr;
        step.step(&[("c", &c)]).unwrap();
        let gr = grad_ref(&w, &C);
        r.step(&mut w, &gr);
        assert_close(&step.value("w").unwrap().to_f64_vec(), &w, dtype, "adam lr");
    }
    assert_eq!(step.executable().compile_time(), compile_time);
}

#[test]
fn step_lr_schedule_values() {
    // StepLR(step_size=3, gamma=0.1), base 0.5: epochs 0-2 → 0.5, 3-5 → 0.05,
    // 6-8 → 0.005, 9 → 0.0005.
    let s = StepLr {
        step_size: 3,
        gamma: 0.1,
    };
    let hand = [0.5, 0.5, 0.5, 0.05, 0.05, 0.05, 0.005, 0.005, 0.005, 0.0005];
    for (e, want) in hand.iter().enumerate() {
        let formula = 0.5 * 0.1f64.powi((e / 3) as i32);
        let got = s.lr(0.5, e);
        assert!((got - want).abs() <= 1e-15, "epoch {e}: {got} vs {want}");
        assert!((got - formula).abs() <= 1e-15 * formula, "epoch {e}: {got}");
    }
    // ConstantLr is the base rate.
    for e in [0, 1, 100] {
        assert_eq!(ConstantLr.lr(0.3, e), 0.3);
    }
}

#[test]
fn cosine_annealing_schedule_values() {
    // CosineAnnealingLR(T_max=10, eta_min=0.001), base 0.1:
    // lr(e) = 0.001 + 0.099·(1 + cos(π e / 10)) / 2.
    // e=0 → 0.1; e=5 → 0.0505; e=10 → 0.001; e=20 → 0.1 (periodic, as PyTorch's).
    let s = CosineAnnealingLr {
        t_max: 10,
        eta_min: 0.001,
    };
    for (e, want) in [(0usize, 0.1), (5, 0.0505), (10, 0.001), (20, 0.1)] {
        let got = s.lr(0.1, e);
        assert!((got - want).abs() <= 1e-15, "epoch {e}: {got} vs {want}");
    }
    for e in 0..=25 {
        let formula =
            0.001 + (0.1 - 0.001) * (1.0 + (std::f64::consts::PI * e as f64 / 10.0).cos()) / 2.0;
        let got = s.lr(0.1, e);
        assert!(
            (got - formula).abs() <= 1e-15,
            "epoch {e}: {got} vs {formula}"
        );
    }
    // Monotone decreasing over the first half period.
    for e in 0..10 {
        assert!(s.lr(0.1, e + 1) < s.lr(0.1, e));
    }
}

#[test]
fn schedule_drives_a_train_step() {
    // One SGD step per epoch at the scheduled rate.
    let dtype = DType::F64;
    let (g, loss) = model(dtype);
    let mut step = TrainStep::new(&g, &loss, &Sgd::new(0.2).momentum(0.5)).unwrap();
    let sched = StepLr {
        step_size: 2,
        gamma: 0.5,
    };
    let c = arr(dtype, &C);
    let mut r = SgdRef {
        momentum: 0.5,
        ..SgdRef::new(0.2)
    };
    let mut w = W0.to_vec();
    for epoch in 0..5 {
        let lr = sched.lr(step.base_lr(), epoch);
        step.set_lr(lr);
        r.lr = 0.2 * 0.5f64.powi((epoch / 2) as i32);
        step.step(&[("c", &c)]).unwrap();
        let gr = grad_ref(&w, &C);
        r.step(&mut w, &gr);
        assert_close(
            &step.value("w").unwrap().to_f64_vec(),
            &w,
            dtype,
            &format!("epoch {epoch}"),
        );
    }
}

// ---------------------------------------------------------------------------------
// Gradient accumulation
// ---------------------------------------------------------------------------------

/// Model for accumulation: parameter `w` ([3]), batch input `x` ([3]),
/// loss `Σ x·w²`, so ∂loss/∂w = 2·x·w.
fn accum_model(dtype: DType) -> (GraphBuilder, Tensor) {
    let g = GraphBuilder::new();
    let w = g.parameter("w", arr(dtype, &W0));
    let x = g.input("x", dtype, [3]);
    let loss = (&x * &w * &w).sum_all();
    (g, loss)
}

const BATCHES: [[f64; 3]; 3] = [[1.0, 0.5, -1.0], [0.25, 2.0, 3.0], [-0.5, 1.0, 0.75]];

#[test]
fn gradient_accumulation_equals_one_step_on_the_summed_gradient() {
    for dtype in DTYPES {
        let (g, loss) = accum_model(dtype);
        let o = TrainOptions {
            accumulate: true,
            ..TrainOptions::default()
        };
        let mut step = TrainStep::with_options(&g, &loss, &Sgd::new(0.1), o).unwrap();
        let xs: Vec<Array> = BATCHES.iter().map(|b| arr(dtype, b)).collect();
        let w0 = arr(dtype, &W0).to_f64_vec();
        // Two micro-batches accumulate; the weights do not move.
        let mut sum = [0.0; 3];
        for (k, x) in xs[..2].iter().enumerate() {
            let l = step.accumulate(&[("x", x)]).unwrap();
            let want_l: f64 = (0..3).map(|i| BATCHES[k][i] * w0[i] * w0[i]).sum();
            assert_close(&[l], &[want_l], dtype, "micro-batch loss");
            for i in 0..3 {
                sum[i] += 2.0 * BATCHES[k][i] * w0[i];
            }
            assert_close(
                &step.value("accum.w").unwrap().to_f64_vec(),
                &sum,
                dtype,
                "accumulated gradient",
            );
            assert_close(
                &step.value("w").unwrap().to_f64_vec(),
                &w0,
                dtype,
                "w during accumulation",
            );
        }
        // The step adds its own batch's gradient and applies the sum:
        // w₁ = w₀ - 0.1·Σ_b 2·x_b·w₀ = w₀ - 0.2·w₀·(x₁ + x₂ + x₃).
        // Hand: x₁+x₂+x₃ = [0.75, 3.5, 2.75] → w₁ = [1 - 0.15, -2 + 1.4, 0.5 - 0.275]
        // = [0.85, -0.6, 0.225].
        step.step(&[("x", &xs[2])]).unwrap();
        let mut w1 = w0.clone();
        for i in 0..3 {
            let total: f64 = BATCHES.iter().map(|b| 2.0 * b[i] * w0[i]).sum();
            w1[i] -= 0.1 * total;
        }
        assert_close(&w1, &[0.85, -0.6, 0.225], DType::F64, "hand");
        assert_close(
            &step.value("w").unwrap().to_f64_vec(),
            &w1,
            dtype,
            "w after accumulate ×2 + step",
        );
        // The buffers are cleared by the step: the next step uses its batch only.
        assert_close(
            &step.value("accum.w").unwrap().to_f64_vec(),
            &[0.0; 3],
            dtype,
            "accumulator after the step",
        );
        step.step(&[("x", &xs[0])]).unwrap();
        let w2: Vec<f64> = (0..3)
            .map(|i| w1[i] - 0.1 * 2.0 * BATCHES[0][i] * w1[i])
            .collect();
        assert_close(
            &step.value("w").unwrap().to_f64_vec(),
            &w2,
            dtype,
            "plain step after accumulation",
        );
    }
}

#[test]
fn gradient_accumulation_with_adam() {
    // Adam sees one gradient: the sum of the three micro-batch gradients.
    let dtype = DType::F64;
    let (g, loss) = accum_model(dtype);
    let o = TrainOptions {
        accumulate: true,
        ..TrainOptions::default()
    };
    let mut step = TrainStep::with_options(&g, &loss, &Adam::new(0.1), o).unwrap();
    let xs: Vec<Array> = BATCHES.iter().map(|b| arr(dtype, b)).collect();
    step.accumulate(&[("x", &xs[0])]).unwrap();
    step.accumulate(&[("x", &xs[1])]).unwrap();
    step.step(&[("x", &xs[2])]).unwrap();
    let mut w = W0.to_vec();
    let total: Vec<f64> = (0..3)
        .map(|i| BATCHES.iter().map(|b| 2.0 * b[i] * W0[i]).sum())
        .collect();
    let mut r = AdamRef::new(0.1, 3);
    r.step(&mut w, &total);
    assert_close(
        &step.value("w").unwrap().to_f64_vec(),
        &w,
        dtype,
        "adam accum",
    );
    assert_close(
        &step.value("optim.w.exp_avg").unwrap().to_f64_vec(),
        &r.m,
        dtype,
        "adam accum exp_avg",
    );
}

#[test]
fn accumulate_without_the_option_is_a_typed_error() {
    let (g, loss) = accum_model(DType::F32);
    let mut step = TrainStep::new(&g, &loss, &Sgd::new(0.1)).unwrap();
    let x = arr(DType::F32, &BATCHES[0]);
    let e = step.accumulate(&[("x", &x)]).unwrap_err();
    assert!(matches!(e, Error::Train { .. }), "{e:?}");
    // Nothing moved.
    assert_eq!(
        step.value("w").unwrap().to_f64_vec(),
        arr(DType::F32, &W0).to_f64_vec()
    );
}

// ---------------------------------------------------------------------------------
// Optimiser state in the state dict
// ---------------------------------------------------------------------------------

#[test]
fn adam_state_dict_holds_moments_and_step() {
    let dtype = DType::F32;
    let (g, loss) = model(dtype);
    let mut step = TrainStep::new(&g, &loss, &Adam::new(0.1)).unwrap();
    let c = arr(dtype, &C);
    let mut r = AdamRef::new(0.1, 3);
    let mut w = W0.to_vec();
    for _ in 0..2 {
        step.step(&[("c", &c)]).unwrap();
        let gr = grad_ref(&w, &C);
        r.step(&mut w, &gr);
    }
    let sd = step.state_dict();
    let get = |n: &str| -> &Array {
        &sd.iter()
            .find(|(k, _)| k == n)
            .unwrap_or_else(|| panic!("{n} missing from {:?}", names(&sd)))
            .1
    };
    for n in [
        "w",
        "optim.w.exp_avg",
        "optim.w.exp_avg_sq",
        "optim.step",
        "optim.lr",
    ] {
        get(n);
    }
    assert_eq!(sd.len(), 5, "{:?}", names(&sd));
    // `step` is an f64 scalar counting the updates (PyTorch's state['step']).
    assert_eq!(get("optim.step").dtype(), DType::F64);
    assert_eq!(get("optim.step").to_f64_vec(), vec![2.0]);
    assert_eq!(get("optim.lr").to_f64_vec(), vec![0.1]);
    assert_eq!(get("optim.w.exp_avg").dtype(), dtype);
    assert_eq!(get("optim.w.exp_avg").shape().dims(), &[3]);
    assert_close(&get("w").to_f64_vec(), &w, dtype, "w");
    assert_close(&get("optim.w.exp_avg").to_f64_vec(), &r.m, dtype, "exp_avg");
    assert_close(
        &get("optim.w.exp_avg_sq").to_f64_vec(),
        &r.v,
        dtype,
        "exp_avg_sq",
    );
    // SGD with momentum: its buffer and step counter.
    let (g, loss) = model(dtype);
    let mut step = TrainStep::new(&g, &loss, &Sgd::new(0.1).momentum(0.9)).unwrap();
    step.step(&[("c", &c)]).unwrap();
    let sd = step.state_dict();
    let mut n = names(&sd);
    n.sort();
    assert_eq!(
        n,
        vec!["optim.lr", "optim.step", "optim.w.momentum_buffer", "w"]
    );
}

fn names(sd: &[(String, Array)]) -> Vec<String> {
    sd.iter().map(|(n, _)| n.clone()).collect()
}

#[test]
fn two_training_steps_on_one_builder_and_untouched_parameters() {
    // A second TrainStep reuses the optimiser inputs the first one declared; a parameter
    // the loss does not reach is left alone even with AdamW's decoupled weight decay
    // (PyTorch skips parameters whose grad is None).
    let g = GraphBuilder::new();
    let w = g.parameter("w", Array::f32([2], vec![1.0, 2.0]).unwrap());
    let _unused = g.parameter("unused", Array::f32([2], vec![5.0, 6.0]).unwrap());
    let loss = (&w * &w).sum_all();
    let mut first = TrainStep::new(&g, &loss, &Adam::adamw(0.1)).unwrap();
    let mut second = TrainStep::new(&g, &loss, &Adam::adamw(0.1)).unwrap();
    first.step(&[]).unwrap();
    second.step(&[]).unwrap();
    assert_eq!(
        first.value("w").unwrap().as_f32().unwrap(),
        second.value("w").unwrap().as_f32().unwrap()
    );
    assert_ne!(first.value("w").unwrap().as_f32().unwrap(), &[1.0, 2.0]);
    assert_eq!(
        first.value("unused").unwrap().as_f32().unwrap(),
        &[5.0, 6.0]
    );
    assert!(g.first_error().is_none(), "{:?}", g.first_error());
}

#[test]
fn frozen_parameters_are_fed_but_never_updated() {
    use onde::module::{Linear, Module};
    use onde::{TrainOptions, TrainStep};
    let g = onde::GraphBuilder::new();
    g.manual_seed(3);
    let front = Linear::new(&g, "front", 4, 3);
    let head = Linear::new(&g, "head", 3, 1);
    let x = g.input("x", onde::DType::F32, [5, 4]);
    let loss = head.forward(&front.forward(&x).tanh()).square().mean_all();
    let only_head: Vec<&onde::Tensor> = vec![&head.weight, head.bias.as_ref().unwrap()];
    let opts = TrainOptions {
        params: Some(only_head),
        grads: true,
        ..TrainOptions::default()
    };
    let mut step = TrainStep::with_options(&g, &loss, &onde::optim::Sgd::new(0.5), opts).unwrap();
    assert_eq!(
        step.parameter_names().collect::<Vec<_>>(),
        ["head.weight", "head.bias"]
    );
    let xs = onde::Array::f32(
        [5, 4],
        (0..20).map(|i| (i % 7) as f32 * 0.3 - 1.0).collect(),
    )
    .unwrap();
    let before = step.value("front.weight").unwrap().clone();
    let head0 = step.value("head.weight").unwrap().clone();
    let l0 = step.step(&[("x", &xs)]).unwrap();
    let l1 = step.step(&[("x", &xs)]).unwrap();
    assert!(l1 < l0, "the head learns: {l0} -> {l1}");
    assert_eq!(step.value("front.weight").unwrap(), &before, "frozen");
    assert_ne!(step.value("head.weight").unwrap(), &head0);
    // The frozen weights are in the state dict (as in PyTorch) and have no optimiser
    // state; the head's gradient is output, the front's is not.
    let keys: Vec<String> = step.state_dict().into_iter().map(|(k, _)| k).collect();
    assert!(keys.contains(&"front.weight".to_string()));
    assert!(step.grad("head.weight").is_ok() && step.grad("front.weight").is_err());
    // A tensor that is not a parameter is refused by name of the option.
    let opts = TrainOptions {
        params: Some(vec![&x]),
        ..TrainOptions::default()
    };
    let e = TrainStep::with_options(&g, &loss, &onde::optim::Sgd::new(0.5), opts).unwrap_err();
    assert!(e.to_string().contains("TrainOptions::params"), "{e}");
}

/// The trajectories of `tests/fixtures/torch_ops/schedules.txt` (made by
/// `gen_schedules.py` with PyTorch's schedulers), base rate 0.1.
fn torch_schedules() -> Vec<(String, Vec<f64>)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torch_ops/schedules.txt"
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().unwrap().to_string();
            (name, it.map(|v| v.parse().unwrap()).collect())
        })
        .collect()
}

#[test]
fn schedules_match_pytorch() {
    use onde::optim::{ExponentialLr, LinearLr, PlateauMode, ReduceLrOnPlateau, StepLr, Warmup};
    let cases = torch_schedules();
    let want = |n: &str| cases.iter().find(|c| c.0 == n).unwrap().1.clone();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1e-12);
    let check = |name: &str, s: &dyn LrSchedule| {
        for (e, w) in want(name).into_iter().enumerate() {
            let g = s.lr(0.1, e);
            assert!(close(g, w), "{name} epoch {e}: {g} vs PyTorch {w}");
        }
    };
    check("exponential", &ExponentialLr { gamma: 0.9 });
    check(
        "linear",
        &LinearLr {
            start_factor: 0.1,
            end_factor: 1.0,
            total_iters: 4,
        },
    );
    check(
        "warmup_step",
        &Warmup {
            warmup: 3,
            start_factor: 0.01,
            after: StepLr {
                step_size: 2,
                gamma: 0.5,
            },
        },
    );
    // ReduceLROnPlateau: the rate of each epoch, stepping with that epoch's metric.
    let loss = [
        1.0, 0.9, 0.9, 0.91, 0.95, 0.89, 0.9, 0.9, 0.9, 0.9, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6,
    ];
    let mut p = ReduceLrOnPlateau::new(0.1, PlateauMode::Min);
    p.factor = 0.5;
    p.patience = 2;
    p.cooldown = 1;
    p.min_lr = 0.02;
    for (e, (w, m)) in want("plateau_min").into_iter().zip(loss).enumerate() {
        assert!(
            close(p.lr(), w),
            "plateau_min epoch {e}: {} vs PyTorch {w}",
            p.lr()
        );
        p.step(m);
    }
    let acc = [0.5, 0.6, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7];
    let mut p = ReduceLrOnPlateau::new(0.1, PlateauMode::Max);
    p.patience = 1;
    for (e, (w, m)) in want("plateau_max").into_iter().zip(acc).enumerate() {
        assert!(
            close(p.lr(), w),
            "plateau_max epoch {e}: {} vs PyTorch {w}",
            p.lr()
        );
        p.step(m);
    }
}

/// `clip_grad_norm`: the update uses every gradient scaled by
/// `min(1, max_norm / (‖g‖₂ + 1e-6))` over all parameters together (PyTorch's
/// `clip_grad_norm_`), computed here on the host from the step's unclipped gradients.
#[test]
fn gradients_clipped_by_their_global_norm() {
    for (max_norm, clips) in [(0.05, true), (1e6, false)] {
        let g = GraphBuilder::new();
        g.manual_seed(4);
        let lin = onde::module::Linear::new(&g, "fc", 6, 3);
        let x = g.input("x", DType::F32, [5, 6]);
        let y = g.input("y", DType::I64, [5]);
        let logits = onde::Module::forward(&lin, &x);
        let loss = onde::loss::cross_entropy(&logits, &y, &onde::loss::NllOpts::default());
        let opts = TrainOptions {
            grads: true,
            clip_grad_norm: Some(max_norm),
            ..TrainOptions::default()
        };
        let lr = 0.5;
        let mut step = TrainStep::with_options(&g, &loss, &Sgd::new(lr), opts).unwrap();
        let before = step.model_state_dict();
        let xs: Vec<f64> = (0..30).map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.3).collect();
        let xa = arr(DType::F32, &xs);
        let xa = Array::f32([5, 6], xa.as_f32().unwrap().to_vec()).unwrap();
        let ya = Array::i64([5], vec![0, 2, 1, 1, 0]).unwrap();
        step.step(&[("x", &xa), ("y", &ya)]).unwrap();
        let after = step.model_state_dict();
        let grads: Vec<Vec<f64>> = before
            .iter()
            .map(|(n, _)| step.grad(n).unwrap().to_f64_vec())
            .collect();
        let norm = grads.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
        let coef = (max_norm / (norm + 1e-6)).min(1.0);
        assert_eq!(coef < 1.0, clips, "norm {norm}");
        for (((n, p0), (_, p1)), gr) in before.iter().zip(&after).zip(&grads) {
            for ((a, b), gv) in p0.to_f64_vec().iter().zip(p1.to_f64_vec()).zip(gr) {
                let want = a - lr * gv * coef;
                assert!(
                    (b - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{n}: {b} vs {want}"
                );
            }
        }
    }
    // A norm that is not positive is refused.
    let g = GraphBuilder::new();
    let w = g.parameter("w", onde::Array::f32([2], vec![1.0, 2.0]).unwrap());
    let loss = w.square().sum_all();
    let opts = TrainOptions {
        clip_grad_norm: Some(0.0),
        ..TrainOptions::default()
    };
    let e = TrainStep::with_options(&g, &loss, &Sgd::new(0.1), opts).unwrap_err();
    assert!(e.to_string().contains("clip_grad_norm"), "{e}");
}
