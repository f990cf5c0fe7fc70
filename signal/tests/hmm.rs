//! HMMs in the graph against a numpy reference in f64 (`fixtures/gen_hmm.py`), within
//! 1e-6: forward (α, log-likelihood), backward (β), posteriors, Viterbi, Baum–Welch
//! after 1 and 5 iterations, a discrete HMM, and the course's two-state chain over
//! 100 000 steps (no underflow); the log-likelihood's gradient against finite
//! differences; bad chains are typed errors.

use onde_ir::{Array, DType};
use onde_nn::{GradcheckOpts, GraphBuilder, Tensor};
use onde_signal::hmm::*;
use std::collections::HashMap;
use std::sync::OnceLock;

fn fx(name: &str) -> &'static Array {
    static F: OnceLock<HashMap<String, Array>> = OnceLock::new();
    F.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/hmm.safetensors"
        );
        onde_nn::checkpoint::load(path)
            .unwrap()
            .into_iter()
            .collect()
    })
    .get(name)
    .unwrap_or_else(|| panic!("no fixture `{name}`"))
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{i}]: {a} vs numpy {b}"
        );
    }
}

fn input(g: &GraphBuilder, name: &str, a: &Array) -> Tensor {
    g.input(name, a.dtype(), a.shape().clone())
}

fn ln(g: &GraphBuilder, a: &Array) -> Tensor {
    g.constant(
        Array::f64(
            a.shape().clone(),
            a.to_f64_vec().iter().map(|p| p.ln()).collect(),
        )
        .unwrap(),
    )
}

#[test]
fn gaussian_hmm_matches_numpy() {
    let g = GraphBuilder::new();
    let x = input(&g, "x", fx("g.x"));
    let means = g.constant(fx("g.means").clone());
    let vars = g.constant(fx("g.vars").clone());
    let (ls, lt) = (ln(&g, fx("g.start")), ln(&g, fx("g.trans")));
    let e = gaussian_log_emissions(&x, &means, &vars);
    let (alpha, ll) = forward(&e, &ls, &lt);
    let beta = backward(&e, &lt);
    let (gamma, _) = posteriors(&e, &ls, &lt);
    let (path, score) = viterbi(&e, &ls, &lt);
    let outs = [&e, &alpha, &ll, &beta, &gamma, &path, &score];
    let feeds = [("x", fx("g.x").clone())];
    let interp = g.run(&outs, &feeds).unwrap();
    let compiled = g.compile(&outs).unwrap().run(&feeds).unwrap();
    for got in [&interp, &compiled] {
        let names = ["emissions", "alpha", "loglik", "beta", "gamma"];
        for (i, n) in names.iter().enumerate() {
            close(
                n,
                &got[i].to_f64_vec(),
                &fx(&format!("g.{n}")).to_f64_vec(),
                1e-6,
            );
        }
        assert_eq!(
            got[5].as_i64().unwrap(),
            fx("g.path").as_i64().unwrap(),
            "viterbi path"
        );
        close(
            "score",
            &got[6].to_f64_vec(),
            &fx("g.score").to_f64_vec(),
            1e-6,
        );
        // Posteriors are distributions.
        for row in got[4].to_f64_vec().chunks(3) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }
}

#[test]
fn discrete_hmm_matches_numpy() {
    let g = GraphBuilder::new();
    let sym = input(&g, "s", fx("d.symbols"));
    let le = ln(&g, fx("d.emit"));
    let (ls, lt) = (ln(&g, fx("d.start")), ln(&g, fx("d.trans")));
    let e = discrete_log_emissions(&sym, &le);
    let (alpha, ll) = forward(&e, &ls, &lt);
    let (path, _) = viterbi(&e, &ls, &lt);
    let got = g
        .run(&[&alpha, &ll, &path], &[("s", fx("d.symbols").clone())])
        .unwrap();
    close(
        "alpha",
        &got[0].to_f64_vec(),
        &fx("d.alpha").to_f64_vec(),
        1e-6,
    );
    close(
        "loglik",
        &got[1].to_f64_vec(),
        &fx("d.loglik").to_f64_vec(),
        1e-6,
    );
    assert_eq!(got[2].as_i64().unwrap(), fx("d.path").as_i64().unwrap());
}

#[test]
fn the_course_two_state_chain_over_100000_steps() {
    // Stay with probability 0.99, unit-variance Gaussians at -1 and +1: the compiled
    // scans run 10^5 steps in log space without underflow.
    let x = fx("c.x");
    let n = x.numel();
    let x = Array::f64([1, n, 1], x.to_f64_vec()).unwrap();
    let chain = Markov::two_state(0.99).unwrap();
    let g = GraphBuilder::new();
    let xt = g.input("x", DType::F64, [1, n, 1]);
    let means = g.constant(Array::f64([2, 1], vec![-1.0, 1.0]).unwrap());
    let vars = g.constant(Array::f64([2, 1], vec![1.0, 1.0]).unwrap());
    let (ls, lt) = chain.log_tensors(&g, DType::F64);
    let e = gaussian_log_emissions(&xt, &means, &vars);
    let (_, ll) = forward(&e, &ls, &lt);
    let (path, _) = viterbi(&e, &ls, &lt);
    let (gamma, _) = posteriors(&e, &ls, &lt);
    let got = g
        .compile(&[&ll, &path, &gamma])
        .unwrap()
        .run(&[("x", x)])
        .unwrap();
    close(
        "loglik",
        &got[0].to_f64_vec(),
        &fx("c.loglik").to_f64_vec(),
        1e-9,
    );
    let want = fx("c.path").as_bool().unwrap();
    let path = got[1].as_i64().unwrap();
    assert!(
        path.iter().zip(want).all(|(p, w)| (*p == 1) == *w),
        "viterbi path"
    );
    assert!(got[2]
        .to_f64_vec()
        .iter()
        .all(|p| p.is_finite() && *p >= 0.0));
}

#[test]
fn baum_welch_matches_numpy_and_raises_the_likelihood() {
    let s = |n: &str| fx(n).to_f64_vec();
    let init = GaussianHmm {
        markov: Markov::new(s("bw.init.start"), s("bw.init.trans")).unwrap(),
        dim: 2,
        means: s("bw.init.means"),
        vars: s("bw.init.vars"),
    };
    for it in [1usize, 5] {
        let (m, hist) = baum_welch(fx("g.x"), &init, it, 1e-3).unwrap();
        close(
            "start",
            &m.markov.start,
            &s(&format!("bw.{it}.start")),
            1e-6,
        );
        close(
            "trans",
            &m.markov.trans,
            &s(&format!("bw.{it}.trans")),
            1e-6,
        );
        close("means", &m.means, &s(&format!("bw.{it}.means")), 1e-6);
        close("vars", &m.vars, &s(&format!("bw.{it}.vars")), 1e-6);
        assert_eq!(hist.len(), it);
        assert!(hist.windows(2).all(|w| w[1] >= w[0] - 1e-9), "{hist:?}");
    }
}

#[test]
fn the_log_likelihood_is_differentiable() {
    // d loglik / d means against finite differences (training an HMM by gradient).
    let g = GraphBuilder::new();
    let x = g.constant(
        Array::f64(
            [1, 12, 2],
            (0..24)
                .map(|i| ((i * 37) % 11) as f64 / 5.0 - 1.0)
                .collect(),
        )
        .unwrap(),
    );
    let means = g.input("means", DType::F64, [3, 2]);
    let vars = g.constant(fx("g.vars").clone());
    let (ls, lt) = (ln(&g, fx("g.start")), ln(&g, fx("g.trans")));
    let e = gaussian_log_emissions(&x, &means, &vars);
    let (_, ll) = forward(&e, &ls, &lt);
    let loss = ll.sum_all();
    let r = g.gradcheck(
        &loss,
        &[&means],
        &[("means", fx("g.means").clone())],
        GradcheckOpts::default(),
    );
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn bad_chains_and_shapes_are_errors() {
    let e = Markov::new(vec![0.5, 0.5], vec![0.9, 0.2, 0.5, 0.5]).unwrap_err();
    assert!(
        e.to_string().contains("transition row 0 sums to 1.1"),
        "{e}"
    );
    let e = Markov::new(vec![0.5, 0.6], vec![1.0, 0.0, 0.0, 1.0]).unwrap_err();
    assert!(e.to_string().contains("start distribution"), "{e}");
    let e = Markov::new(vec![1.0], vec![0.5, 0.5]).unwrap_err();
    assert!(e.to_string().contains("need 1 transition"), "{e}");
    let e = Markov::new(vec![1.0, 0.0], vec![1.5, -0.5, 0.0, 1.0]).unwrap_err();
    assert!(e.to_string().contains("negative"), "{e}");
    let g = GraphBuilder::new();
    let em = g.input("e", DType::F64, [2, 5, 3]);
    let (ls, lt) = Markov::two_state(0.9).unwrap().log_tensors(&g, DType::F64);
    let (a, _) = forward(&em, &ls, &lt);
    let msg = a.check().unwrap_err().to_string();
    assert!(
        msg.contains("hmm forward") && msg.contains("[2, 5, 3]"),
        "{msg}"
    );
}

#[test]
fn an_hmm_smooths_a_frame_classifiers_posteriors() {
    // The hybrid approach: a frame classifier right 75% of the time on a sticky
    // two-state sequence; Viterbi on its scaled likelihoods (posteriors over priors)
    // with the chain's transitions recovers far more frames.
    let n = 3000;
    let u = |i: u64| onde_runtime::uniform_f64(11, i);
    let mut states = Vec::with_capacity(n);
    let mut s = 0usize;
    for t in 0..n as u64 {
        if u(2 * t) < 0.01 {
            s = 1 - s;
        }
        states.push(s);
    }
    // The classifier: P(state 1) = 0.8 when it is right (75% of frames), 0.2 otherwise.
    let post: Vec<f64> = states
        .iter()
        .enumerate()
        .flat_map(|(t, &s)| {
            let right = u(2 * t as u64 + 1) < 0.75;
            let p1: f64 = if (s == 1) == right { 0.8 } else { 0.2 };
            [(1.0 - p1).ln(), p1.ln()]
        })
        .collect();
    let g = GraphBuilder::new();
    let lp = g.constant(Array::f64([1, n, 2], post.clone()).unwrap());
    let priors = g.constant(Array::f64([2], vec![0.5f64.ln(), 0.5f64.ln()]).unwrap());
    let (ls, lt) = Markov::two_state(0.99).unwrap().log_tensors(&g, DType::F64);
    let (path, _) = viterbi(&hybrid_log_emissions(&lp, &priors), &ls, &lt);
    let path = g.compile(&[&path]).unwrap().run(&[]).unwrap().remove(0);
    let acc = |d: &[usize]| d.iter().zip(&states).filter(|(a, b)| a == b).count() as f64 / n as f64;
    let framewise: Vec<usize> = post.chunks(2).map(|p| usize::from(p[1] > p[0])).collect();
    let smoothed: Vec<usize> = path.as_i64().unwrap().iter().map(|&q| q as usize).collect();
    let (before, after) = (acc(&framewise), acc(&smoothed));
    assert!(
        before < 0.8 && after > 0.95,
        "frame-wise {before}, smoothed {after}"
    );
}
