//! The course's slide "Optimisation d'un graphe de calcul — régression linéaire":
//! x = rand(10), y = 2x − 1; a and b start at zero and follow 1000 steps of gradient
//! descent with step 0.1 on the mean squared error. The gradient graph is derived once,
//! symbolically, and run at every step (the course's `loss.backward()`); the update is
//! the course's `with torch.no_grad(): a -= 0.1 * a.grad`.
//!
//! Run with `cargo run --example linear_regression`.

use onde::{Array, DType, GraphBuilder};

/// Trains and returns the final `(a, b, loss)`; prints every `every` iterations
/// (0: silent).
pub fn train(seed: i64, every: usize) -> onde::Result<(f32, f32, f32)> {
    let (a_true, b_true) = (2.0f32, -1.0f32);
    // Simulated data: x = rand(10), y = a_true·x + b_true.
    let data = GraphBuilder::new();
    data.manual_seed(seed);
    let x = data.rand([10], DType::F32);
    let y = &x * f64::from(a_true) + f64::from(b_true);
    let xy = data.run(&[&x, &y], &[])?;

    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [10]);
    let y = g.input("y", DType::F32, [10]);
    // requires_grad=True: learnable parameters, from zero.
    let a = g.parameter("a", Array::full(DType::F32, [1], 0.0));
    let b = g.parameter("b", Array::full(DType::F32, [1], 0.0));
    let y_est = &a * &x + &b;
    let loss = (&y_est - &y).pow(2.0).mean_all();
    let grads = g.grad(&loss, &[&a, &b])?;
    let feeds = [("x", xy[0].clone()), ("y", xy[1].clone())];
    let scalar = |arr: &Array| arr.to_f64_vec()[0] as f32;

    let mut last = (0.0, 0.0, f32::NAN);
    for i in 0..1000 {
        let r = g.run(&[&loss, &grads[0], &grads[1]], &feeds)?;
        let values = g.parameter_values();
        let (av, bv) = (scalar(&values[0].1), scalar(&values[1].1));
        let (l, ga, gb) = (scalar(&r[0]), scalar(&r[1]), scalar(&r[2]));
        if every > 0 && i % every == 0 {
            println!("Itération {i}: a: {av:.4}, b: {bv:.4}, loss: {l:.6}, grad a: {ga:.4}, grad b: {gb:.4}");
        }
        // Gradient descent with step 0.1 (outside the graph: the course's no_grad block).
        g.set_parameter("a", Array::full(DType::F32, [1], f64::from(av - 0.1 * ga)))?;
        g.set_parameter("b", Array::full(DType::F32, [1], f64::from(bv - 0.1 * gb)))?;
        last = (av - 0.1 * ga, bv - 0.1 * gb, l);
    }
    Ok(last)
}

/// The seed of the simulated data. Gradient descent's rate here is set by the spread of
/// the ten x values (the loss Hessian's small eigenvalue grows with their variance):
/// most draws reach |err| < 1e-6 in the course's 1000 steps, but a tightly clustered
/// draw (seeds 0 and 3 of this generator) needs more steps. Seed 1 is a typical draw.
pub const SEED: i64 = 1;

#[allow(dead_code)]
fn main() -> onde::Result<()> {
    let (a, b, loss) = train(SEED, 100)?;
    println!("final: a = {a:.6} (true 2), b = {b:.6} (true -1), loss = {loss:.3e}");
    Ok(())
}
