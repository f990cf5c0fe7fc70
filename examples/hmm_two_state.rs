//! The course's two-state HMM: a hidden state that stays put with probability 0.99,
//! observed through unit-variance Gaussians at −1 and +1. Samples a sequence, decodes it
//! with Viterbi and forward-backward (compiled scans in the graph), prints the
//! accuracy of both decodings and the log-likelihood, re-estimates the model with
//! Baum–Welch from a wrong start, and draws the true states, the posterior of state 1
//! and the Viterbi path in `hmm_two_state.png`.
//!
//! `cargo run --release --example hmm_two_state [-- STEPS]`

use onde::signal::hmm::{
    baum_welch, forward, gaussian_log_emissions, posteriors, viterbi, GaussianHmm, Markov,
};
use onde::{Array, DType, GraphBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5000);
    let chain = Markov::two_state(0.99)?;
    // Sample: states and observations, from a seeded counter-based generator.
    let uniform = |i: u64| onde::runtime::uniform_f64(7, i);
    let (mut states, mut xs) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    let mut s = usize::from(uniform(0) < 0.5);
    for t in 0..steps as u64 {
        if t > 0 && uniform(3 * t) > chain.trans[s * 2 + s] {
            s = 1 - s;
        }
        // Box-Muller from two draws.
        let (u1, u2) = (uniform(3 * t + 1).max(1e-300), uniform(3 * t + 2));
        let noise = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        states.push(s as i64);
        xs.push(if s == 1 { 1.0 } else { -1.0 } + noise);
    }
    let x = Array::f64([1, steps, 1], xs.clone())?;

    let g = GraphBuilder::new();
    let xt = g.input("x", DType::F64, [1, steps, 1]);
    let means = g.constant(Array::f64([2, 1], vec![-1.0, 1.0])?);
    let vars = g.constant(Array::f64([2, 1], vec![1.0, 1.0])?);
    let (ls, lt) = chain.log_tensors(&g, DType::F64);
    let e = gaussian_log_emissions(&xt, &means, &vars);
    let (_, ll) = forward(&e, &ls, &lt);
    let (path, _) = viterbi(&e, &ls, &lt);
    let (gamma, _) = posteriors(&e, &ls, &lt);
    let out = g.compile(&[&ll, &path, &gamma])?.run(&[("x", x.clone())])?;
    let path = out[1].as_i64().unwrap_or(&[]).to_vec();
    let p1: Vec<f64> = out[2].to_f64_vec().chunks(2).map(|r| r[1]).collect();
    let acc =
        |d: &[i64]| d.iter().zip(&states).filter(|(a, b)| a == b).count() as f64 / steps as f64;
    let posterior_path: Vec<i64> = p1.iter().map(|&p| i64::from(p > 0.5)).collect();
    let frame_wise: Vec<i64> = xs.iter().map(|&v| i64::from(v > 0.0)).collect();
    println!(
        "{steps} steps; log-likelihood {:.2}; accuracy: frame by frame {:.1}%, Viterbi {:.1}%, posteriors {:.1}%",
        out[0].to_f64_vec()[0],
        100.0 * acc(&frame_wise),
        100.0 * acc(&path),
        100.0 * acc(&posterior_path)
    );
    // Baum-Welch from a wrong model: it finds the chain and the emissions back.
    let wrong = GaussianHmm {
        markov: Markov::new(vec![0.5, 0.5], vec![0.7, 0.3, 0.3, 0.7])?,
        dim: 1,
        means: vec![-0.3, 0.4],
        vars: vec![2.0, 2.0],
    };
    let (m, hist) = baum_welch(&x, &wrong, 20, 1e-3)?;
    println!(
        "Baum-Welch, 20 iterations: log-likelihood {:.2} -> {:.2}; stay {:.4} / {:.4}, means {:.3} / {:.3}, variances {:.3} / {:.3}",
        hist[0],
        hist[hist.len() - 1],
        m.markov.trans[0],
        m.markov.trans[3],
        m.means[0],
        m.means[1],
        m.vars[0],
        m.vars[1]
    );
    let shown = steps.min(2000);
    let truth: Vec<f64> = states[..shown].iter().map(|&s| s as f64).collect();
    let vit: Vec<f64> = path[..shown]
        .iter()
        .map(|&s| s as f64 * 0.96 + 0.02)
        .collect();
    onde::data::plot::lines(
        "two-state HMM: true state, P(state 1 | x), Viterbi path",
        &[
            ("true state", &truth),
            ("posterior of state 1", &p1[..shown]),
            ("Viterbi", &vit),
        ],
        "time step",
        "hmm_two_state.png",
    )?;
    println!("picture: hmm_two_state.png (the first {shown} steps)");
    Ok(())
}
