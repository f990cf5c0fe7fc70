//! Newton's method as a compiled training step (`onde::optim::Newton`): the Hessian
//! comes from double reverse mode and the solve is graph ops.

use onde::optim::{solve_unpivoted, Newton};
use onde::{Array, DType, GraphBuilder, TrainStep};

/// `A = [[4,1,0],[1,3,1],[0,1,2]]` (SPD), `b = [1, 2, 3]`.
const A: [f64; 9] = [4.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 2.0];
const B: [f64; 3] = [1.0, 2.0, 3.0];

/// `A⁻¹ b` by Cramer's rule (independent of the graph solve).
fn cramer() -> [f64; 3] {
    let det = |m: &[f64; 9]| {
        m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
            + m[2] * (m[3] * m[7] - m[4] * m[6])
    };
    let d = det(&A);
    let mut x = [0.0; 3];
    for (c, xc) in x.iter_mut().enumerate() {
        let mut m = A;
        for r in 0..3 {
            m[r * 3 + c] = B[r];
        }
        *xc = det(&m) / d;
    }
    x
}

#[test]
fn solve_matches_cramer() {
    let g = GraphBuilder::new();
    let a = g.constant(Array::f64([3, 3], A.to_vec()).unwrap());
    let b = g.constant(Array::f64([3], B.to_vec()).unwrap());
    let x = solve_unpivoted(&a, &b);
    let out = g.run(&[&x], &[]).unwrap()[0].to_f64_vec();
    for (o, w) in out.iter().zip(cramer()) {
        assert!((o - w).abs() < 1e-12, "{out:?} vs {:?}", cramer());
    }
}

fn quadratic(damping: f64) -> (GraphBuilder, TrainStep) {
    let g = GraphBuilder::new();
    let w = g.parameter("w", Array::f64([3], vec![5.0, -2.0, 7.0]).unwrap());
    let a = g.constant(Array::f64([3, 3], A.to_vec()).unwrap());
    let b = g.constant(Array::f64([3], B.to_vec()).unwrap());
    // L = ½ wᵀAw − bᵀw: ∇L = Aw − b, H = A, minimum at A⁻¹b.
    let aw = a.matmul(&w.unsqueeze(1)).squeeze(1);
    let loss = (&w * &aw).sum_all() * 0.5 - (&b * &w).sum_all();
    let step = TrainStep::new(&g, &loss, &Newton::new().damping(damping)).unwrap();
    (g, step)
}

#[test]
fn one_newton_step_solves_a_quadratic() {
    let (_g, mut step) = quadratic(0.0);
    step.step(&[]).unwrap();
    let w = step.value("w").unwrap().to_f64_vec();
    for (o, want) in w.iter().zip(cramer()) {
        assert!((o - want).abs() < 1e-12, "{w:?} vs {:?}", cramer());
    }
}

#[test]
fn damped_newton_step_solves_the_shifted_system() {
    // w₁ = w₀ − (A + λI)⁻¹ (A w₀ − b); check (A + λI)(w₀ − w₁) = A w₀ − b.
    let lambda = 0.5;
    let (_g, mut step) = quadratic(lambda);
    let w0 = [5.0, -2.0, 7.0];
    step.step(&[]).unwrap();
    let w1 = step.value("w").unwrap().to_f64_vec();
    for r in 0..3 {
        let mut lhs = lambda * (w0[r] - w1[r]);
        let mut grad = -B[r];
        for c in 0..3 {
            lhs += A[r * 3 + c] * (w0[c] - w1[c]);
            grad += A[r * 3 + c] * w0[c];
        }
        assert!((lhs - grad).abs() < 1e-12, "row {r}: {lhs} vs {grad}");
    }
}

#[test]
fn newton_converges_on_logistic_regression() {
    // Two overlapping 1-D classes, w = [slope, intercept]: the log-loss is strictly
    // convex, so Newton converges quadratically from 0.
    let xs: Vec<f64> = (0..40).map(|i| (i as f64 - 20.0) / 8.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if x + 0.3 * ((i * 7 % 5) as f64 - 2.0) > 0.2 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let g = GraphBuilder::new();
    let w = g.parameter("w", Array::f64([2], vec![0.0, 0.0]).unwrap());
    let x = g.input("x", DType::F64, [40]);
    let y = g.input("y", DType::F64, [40]);
    let z = &x * w.index([onde::Idx::At(0)]) + w.index([onde::Idx::At(1)]);
    let loss = onde::loss::binary_cross_entropy_with_logits(
        &z,
        &y,
        None,
        None,
        onde::loss::Reduction::Mean,
    );
    let mut step = TrainStep::new(&g, &loss, &Newton::new()).unwrap();
    let (xa, ya) = (
        Array::f64([40], xs.clone()).unwrap(),
        Array::f64([40], ys.clone()).unwrap(),
    );
    let mut losses = Vec::new();
    for _ in 0..12 {
        losses.push(step.step(&[("x", &xa), ("y", &ya)]).unwrap());
    }
    for w in losses.windows(2) {
        assert!(w[1] <= w[0] + 1e-15, "loss increased: {losses:?}");
    }
    // At the optimum the gradient (host-computed from the definition) vanishes.
    let wv = step.value("w").unwrap().to_f64_vec();
    let (mut g0, mut g1) = (0.0, 0.0);
    for (xi, yi) in xs.iter().zip(&ys) {
        let p = 1.0 / (1.0 + (-(wv[0] * xi + wv[1])).exp());
        g0 += (p - yi) * xi / 40.0;
        g1 += (p - yi) / 40.0;
    }
    assert!(
        g0.abs() < 1e-10 && g1.abs() < 1e-10,
        "gradient ({g0}, {g1}) at {wv:?}"
    );
}
