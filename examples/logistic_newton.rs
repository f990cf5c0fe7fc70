//! The course's logistic regression, trained two ways on two Gaussian classes:
//! gradient descent, and Newton's method with the Hessian from double autodiff
//! (`GraphBuilder::hessian`). Newton reaches the optimum in a handful of iterations;
//! both end at the same parameters.
//!
//! Model: `p(y=1|x) = σ(w₀x₀ + w₁x₁ + w₂)`, loss = mean binary cross-entropy with
//! logits, `log(1 + eᶻ) − y·z`, in f64 (the smooth form: Newton's method needs the
//! second derivative everywhere, and the kinked "stable" form has none at z = 0).
//!
//! Run with `cargo run --example logistic_newton`.

use onde::{Array, DType, GraphBuilder, Tensor};

/// Result of [`fit`].
#[derive(Debug)]
pub struct Fit {
    /// Parameters after gradient descent.
    pub w_gd: Vec<f64>,
    /// Gradient-descent iterations used.
    pub gd_iterations: usize,
    /// Parameters after Newton's method.
    pub w_newton: Vec<f64>,
    /// Newton iterations used.
    pub newton_iterations: usize,
}

/// Two classes of `n` points each: N((-1, -0.5), I) labelled 0 and N((1, 0.8), I) labelled 1.
fn dataset(n: usize) -> onde::Result<(Array, Array)> {
    let g = GraphBuilder::new();
    g.manual_seed(42);
    let noise = g.randn([2 * n, 2], DType::F64);
    let r = g.run(&[&noise], &[])?;
    let z = r[0].to_f64_vec();
    let mut feats = Vec::with_capacity(2 * n * 3);
    let mut labels = Vec::with_capacity(2 * n);
    for i in 0..2 * n {
        let (cx, cy, label) = if i < n {
            (-1.0, -0.5, 0.0)
        } else {
            (1.0, 0.8, 1.0)
        };
        feats.extend([cx + z[2 * i], cy + z[2 * i + 1], 1.0]);
        labels.push(label);
    }
    let x = Array::f64([2 * n, 3], feats).map_err(|e| onde::Error::Gradcheck {
        reason: e.to_string(),
    })?;
    let y = Array::f64([2 * n], labels).map_err(|e| onde::Error::Gradcheck {
        reason: e.to_string(),
    })?;
    Ok((x, y))
}

/// Solves the small dense system `A d = b` by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))
            .unwrap_or(c);
        for k in 0..n {
            a.swap(c * n + k, p * n + k);
        }
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            for k in c..n {
                a[r * n + k] -= f * a[c * n + k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * n + r];
    }
    x
}

/// The loss graph: returns the builder, the loss and the parameter.
fn model(n: usize) -> (GraphBuilder, Tensor, Tensor) {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2 * n, 3]);
    let y = g.input("y", DType::F64, [2 * n]);
    let w = g.parameter("w", Array::full(DType::F64, [3], 0.0));
    let z = x.matmul(&w);
    let loss = ((z.exp() + 1.0).log() - &y * &z).mean_all();
    (g, loss, w)
}

/// Fits by gradient descent (step `lr` until the gradient norm is below `tol`) and by
/// Newton's method (until the step is below `tol`); `every > 0` prints progress.
pub fn fit(n: usize, lr: f64, tol: f64, every: usize) -> onde::Result<Fit> {
    let (x, y) = dataset(n)?;
    let feeds = [("x", x), ("y", y)];

    // Gradient descent.
    let (g, loss, w) = model(n);
    let grad = g.grad(&loss, &[&w])?.remove(0);
    let mut wv = vec![0.0; 3];
    let mut gd_iterations = 0;
    for i in 0..100_000 {
        let r = g.run(&[&loss, &grad], &feeds)?;
        let gv = r[1].to_f64_vec();
        let norm = gv.iter().map(|v| v * v).sum::<f64>().sqrt();
        if every > 0 && i % every == 0 {
            println!(
                "GD {i}: loss {:.10}, |grad| {norm:.3e}, w {wv:?}",
                r[0].to_f64_vec()[0]
            );
        }
        if norm < tol {
            gd_iterations = i;
            break;
        }
        for (a, d) in wv.iter_mut().zip(&gv) {
            *a -= lr * d;
        }
        g.set_parameter(
            "w",
            Array::f64([3], wv.clone()).map_err(|e| onde::Error::Gradcheck {
                reason: e.to_string(),
            })?,
        )?;
        gd_iterations = i + 1;
    }

    // Newton's method with the Hessian from double autodiff.
    let (g, loss, w) = model(n);
    let grad = g.grad(&loss, &[&w])?.remove(0);
    let hess = g.hessian(&loss, &w)?;
    let mut wn = vec![0.0; 3];
    let mut newton_iterations = 0;
    for i in 1..=50 {
        let r = g.run(&[&loss, &grad, &hess], &feeds)?;
        let step = solve(r[2].to_f64_vec(), r[1].to_f64_vec());
        for (a, d) in wn.iter_mut().zip(&step) {
            *a -= d;
        }
        g.set_parameter(
            "w",
            Array::f64([3], wn.clone()).map_err(|e| onde::Error::Gradcheck {
                reason: e.to_string(),
            })?,
        )?;
        let size = step.iter().map(|v| v * v).sum::<f64>().sqrt();
        if every > 0 {
            println!(
                "Newton {i}: loss {:.12}, |step| {size:.3e}, w {wn:?}",
                r[0].to_f64_vec()[0]
            );
        }
        newton_iterations = i;
        if size < tol {
            break;
        }
    }
    Ok(Fit {
        w_gd: wv,
        gd_iterations,
        w_newton: wn,
        newton_iterations,
    })
}

#[allow(dead_code)]
fn main() -> onde::Result<()> {
    let f = fit(100, 2.0, 1e-10, 200)?;
    println!(
        "gradient descent: {} iterations, w = {:?}\nNewton: {} iterations, w = {:?}",
        f.gd_iterations, f.w_gd, f.newton_iterations, f.w_newton
    );
    Ok(())
}
