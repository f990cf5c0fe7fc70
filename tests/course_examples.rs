//! The course's worked examples in `examples/`, run as tests.

#[path = "../examples/linear_regression.rs"]
mod linear_regression;

#[path = "../examples/logistic_newton.rs"]
mod logistic_newton;

#[test]
fn linear_regression_recovers_a_and_b() {
    let (a, b, loss) = linear_regression::train(linear_regression::SEED, 0).unwrap();
    assert!((a - 2.0).abs() < 1e-3, "a = {a}");
    assert!((b + 1.0).abs() < 1e-3, "b = {b}");
    assert!(loss < 1e-5, "loss = {loss}");
}

#[test]
fn newton_converges_fast_and_agrees_with_gradient_descent() {
    let f = logistic_newton::fit(100, 2.0, 1e-10, 0).unwrap();
    assert!(f.newton_iterations <= 10, "{f:?}");
    for (a, b) in f.w_gd.iter().zip(&f.w_newton) {
        assert!((a - b).abs() < 1e-6, "{f:?}");
    }
    // Both classes are separated along +x: positive weights.
    assert!(f.w_newton[0] > 0.0 && f.w_newton[1] > 0.0, "{f:?}");
}
