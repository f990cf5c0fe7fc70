//! Hidden Markov models in log space, as scans in the graph (batched over sequences,
//! compiled like any model, the log-likelihood differentiable): emission
//! log-densities (diagonal Gaussian, discrete), [`forward`] (α and the
//! log-likelihood), [`backward`] (β), [`posteriors`] (γ), [`viterbi`] (best path and
//! its score), [`baum_welch`] (EM re-estimation of a Gaussian HMM), and
//! [`hybrid_log_emissions`] for smoothing a frame classifier's posteriors (the hybrid
//! approach: scaled likelihoods `log p(s|x) − log p(s)`).
//!
//! Every recursion is a log-sum-exp (or a max) over the previous state, so a
//! 100 000-step sequence neither underflows nor unrolls: the scan's body is compiled
//! once. Shapes: emissions `[B, T, S]`, start `[S]`, transitions `[S, S]` (row `i`:
//! from state `i`), all log-probabilities.

use crate::SignalError;
use onde_ir::{Array, DType};
use onde_nn::{GraphBuilder, Tensor};

/// Start and transition probabilities checked on the host, for a graph's constants.
#[derive(Debug, Clone, PartialEq)]
pub struct Markov {
    /// Number of states.
    pub states: usize,
    /// Start probabilities `[S]`.
    pub start: Vec<f64>,
    /// Transition probabilities `[S, S]`, row-major (row: from).
    pub trans: Vec<f64>,
}

impl Markov {
    /// Checks that `start` and every row of `trans` are probability vectors (within
    /// 1e-6).
    ///
    /// # Errors
    /// Wrong lengths, negative or non-finite entries, or a row not summing to 1, named.
    pub fn new(start: Vec<f64>, trans: Vec<f64>) -> Result<Markov, SignalError> {
        let s = start.len();
        let fail = |reason: String| SignalError::Invalid {
            what: "Markov::new".into(),
            reason,
        };
        if s == 0 || trans.len() != s * s {
            return Err(fail(format!(
                "{s} start probabilities need {} transition probabilities, got {}",
                s * s,
                trans.len()
            )));
        }
        let check = |name: String, row: &[f64]| -> Result<(), SignalError> {
            if row.iter().any(|p| !p.is_finite() || *p < 0.0) {
                return Err(fail(format!(
                    "{name} has a negative or non-finite entry: {row:?}"
                )));
            }
            let sum: f64 = row.iter().sum();
            if (sum - 1.0).abs() > 1e-6 {
                return Err(fail(format!("{name} sums to {sum}, not 1: {row:?}")));
            }
            Ok(())
        };
        check("the start distribution".into(), &start)?;
        for (i, row) in trans.chunks(s).enumerate() {
            check(format!("transition row {i}"), row)?;
        }
        Ok(Markov {
            states: s,
            start,
            trans,
        })
    }

    /// The two-state chain of the course: stay with probability `stay`, start uniform.
    pub fn two_state(stay: f64) -> Result<Markov, SignalError> {
        Markov::new(vec![0.5, 0.5], vec![stay, 1.0 - stay, 1.0 - stay, stay])
    }

    /// `(log start [S], log transitions [S, S])` as constants of `g` in `dtype`.
    pub fn log_tensors(&self, g: &GraphBuilder, dtype: DType) -> (Tensor, Tensor) {
        let s = self.states;
        let ln = |v: &[f64]| v.iter().map(|p| p.ln()).collect::<Vec<f64>>();
        (
            crate::constant(g, &[s], &ln(&self.start), dtype),
            crate::constant(g, &[s, s], &ln(&self.trans), dtype),
        )
    }
}

/// Diagonal-Gaussian emission log-densities: `x` `[B, T, D]`, `means` and `vars`
/// `[S, D]` → `[B, T, S]`, `−½ Σ_d (ln 2πσ² + (x − μ)²/σ²)`.
#[track_caller]
pub fn gaussian_log_emissions(x: &Tensor, means: &Tensor, vars: &Tensor) -> Tensor {
    let (xs, ms) = (x.size(), means.size());
    if xs.len() != 3 || ms.len() != 2 || ms[1] != xs[2] || vars.size() != ms {
        return x.refuse(
            "gaussian_log_emissions",
            format!(
                "x must be [B, T, D] and means, vars [S, D] (got x {xs:?}, means {ms:?}, vars {:?})",
                vars.size()
            ),
        );
    }
    let d = x.unsqueeze(2) - means;
    let quad = (d.square() / vars).sum([-1i64], false);
    let logdet = (vars * std::f64::consts::TAU).log().sum([-1i64], false);
    (quad + logdet) * -0.5
}

/// Discrete emissions: `symbols` i64 `[B, T]` in `0..V`, `log_emit` `[S, V]` →
/// `[B, T, S]`.
#[track_caller]
pub fn discrete_log_emissions(symbols: &Tensor, log_emit: &Tensor) -> Tensor {
    let (ss, es) = (symbols.size(), log_emit.size());
    if ss.len() != 2 || es.len() != 2 || symbols.dtype() != DType::I64 {
        return symbols.refuse(
            "discrete_log_emissions",
            format!("symbols must be i64 [B, T] and log_emit [S, V] (got {ss:?}, {es:?})"),
        );
    }
    let flat = symbols.reshape([ss[0] * ss[1]]);
    log_emit
        .transpose(0, 1)
        .index_select(0, &flat)
        .reshape([ss[0], ss[1], es[0]])
}

/// The hybrid approach's scaled likelihoods: a frame classifier's log-posteriors
/// `[B, T, S]` minus the log-priors of the states `[S]` (`log p(x|s) + const`).
pub fn hybrid_log_emissions(log_posteriors: &Tensor, log_priors: &Tensor) -> Tensor {
    log_posteriors - log_priors
}

/// Checks `[B, T, S]`, `[S]`, `[S, S]`; the number of steps.
fn shapes(e: &Tensor, start: &Tensor, trans: &Tensor) -> Result<usize, String> {
    let es = e.size();
    let s = *es.last().unwrap_or(&0);
    if es.len() != 3 || start.size() != [s] || trans.size() != [s, s] || es[1] == 0 || s == 0 {
        return Err(format!(
            "emissions must be [B, T, S] with T, S >= 1, start [S] and transitions [S, S] \
             (got {es:?}, {:?}, {:?})",
            start.size(),
            trans.size()
        ));
    }
    Ok(es[1])
}

/// The forward algorithm: `(α [B, T, S], log-likelihood [B])`, `α_t(j) = log p(x_0..t,
/// s_t = j)`.
#[track_caller]
pub fn forward(log_em: &Tensor, log_start: &Tensor, log_trans: &Tensor) -> (Tensor, Tensor) {
    let t = match shapes(log_em, log_start, log_trans) {
        Ok(t) => t,
        Err(reason) => {
            let e = log_em.refuse("hmm forward", reason);
            return (e.clone(), e);
        }
    };
    let g = log_em.builder();
    let a0 = log_em.narrow(1, 0, 1).squeeze(1) + log_start;
    let alphas = if t == 1 {
        a0.unsqueeze(1)
    } else {
        let rest = log_em.narrow(1, 1, t - 1);
        let out = g.scan(&[&a0], &[&rest], &[log_trans], 1, false, |c, x, inv| {
            let next = (c[0].unsqueeze(-1) + &inv[0]).logsumexp([-2i64], false) + &x[0];
            (vec![next.clone()], vec![next])
        });
        if out.len() < 2 {
            return (out[0].clone(), out[0].clone());
        }
        onde_nn::cat(&[&a0.unsqueeze(1), &out[1]], 1)
    };
    let last = alphas.narrow(1, (t - 1) as i64, 1).squeeze(1);
    let ll = last.logsumexp([-1i64], false);
    (alphas, ll)
}

/// The backward algorithm: `β [B, T, S]`, `β_t(i) = log p(x_t+1..T−1 | s_t = i)`.
#[track_caller]
pub fn backward(log_em: &Tensor, log_trans: &Tensor) -> Tensor {
    let s = log_em.size().last().copied().unwrap_or(0);
    let start = log_em.builder().zeros([s], log_em.dtype());
    let t = match shapes(log_em, &start, log_trans) {
        Ok(t) => t,
        Err(reason) => return log_em.refuse("hmm backward", reason),
    };
    let b = log_em.size()[0];
    let end = log_em.builder().zeros([b, 1, s], log_em.dtype());
    if t == 1 {
        return end;
    }
    let rest = log_em.narrow(1, 1, t - 1);
    let init = end.squeeze(1);
    let out = log_em
        .builder()
        .scan(&[&init], &[&rest], &[log_trans], 1, true, |c, x, inv| {
            // β_t(i) = logsumexp_j A(i, j) + e_t+1(j) + β_t+1(j)
            let next = (&inv[0] + (&x[0] + &c[0]).unsqueeze(-2)).logsumexp([-1i64], false);
            (vec![next.clone()], vec![next])
        });
    if out.len() < 2 {
        return out[0].clone();
    }
    onde_nn::cat(&[&out[1], &end], 1)
}

/// State posteriors `γ [B, T, S]` (probabilities, each row summing to 1) and the
/// log-likelihood `[B]`.
#[track_caller]
pub fn posteriors(log_em: &Tensor, log_start: &Tensor, log_trans: &Tensor) -> (Tensor, Tensor) {
    let (alphas, ll) = forward(log_em, log_start, log_trans);
    let betas = backward(log_em, log_trans);
    let gamma = (alphas + betas - ll.unsqueeze(-1).unsqueeze(-1)).exp();
    (gamma, ll)
}

/// Viterbi decoding: `(best path i64 [B, T], its log-probability [B])`. Ties go to the
/// lowest state.
#[track_caller]
pub fn viterbi(log_em: &Tensor, log_start: &Tensor, log_trans: &Tensor) -> (Tensor, Tensor) {
    let t = match shapes(log_em, log_start, log_trans) {
        Ok(t) => t,
        Err(reason) => {
            let e = log_em.refuse("viterbi", reason);
            return (e.clone(), e);
        }
    };
    let g = log_em.builder();
    let d0 = log_em.narrow(1, 0, 1).squeeze(1) + log_start;
    if t == 1 {
        let (score, q) = d0.max_dim(-1, false);
        return (q.unsqueeze(1), score);
    }
    let rest = log_em.narrow(1, 1, t - 1);
    let fwd = g.scan(&[&d0], &[&rest], &[log_trans], 1, false, |c, x, inv| {
        // δ_t(j) = max_i δ_t−1(i) + A(i, j) + e_t(j); ψ_t(j) = the argmax i.
        let (best, arg) = (c[0].unsqueeze(-1) + &inv[0]).max_dim(-2, false);
        (vec![best + &x[0]], vec![arg])
    });
    if fwd.len() < 2 {
        return (fwd[0].clone(), fwd[0].clone());
    }
    let (score, last) = fwd[0].max_dim(-1, false);
    // Backtracking: q_t−1 = ψ_t(q_t), from the end.
    let back = g.scan(&[&last], &[&fwd[1]], &[], 1, true, |c, x, _| {
        let prev = x[0].gather(-1, &c[0].unsqueeze(-1)).squeeze(-1);
        (vec![prev.clone()], vec![prev])
    });
    if back.len() < 2 {
        return (back[0].clone(), back[0].clone());
    }
    (onde_nn::cat(&[&back[1], &last.unsqueeze(1)], 1), score)
}

/// A Gaussian HMM with diagonal covariances (host-side parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianHmm {
    /// Start and transition probabilities.
    pub markov: Markov,
    /// Feature dimension `D`.
    pub dim: usize,
    /// Means `[S, D]`, row-major.
    pub means: Vec<f64>,
    /// Variances `[S, D]`, row-major.
    pub vars: Vec<f64>,
}

fn bw_err(reason: String) -> SignalError {
    SignalError::Invalid {
        what: "baum_welch".into(),
        reason,
    }
}

/// Baum–Welch re-estimation of a Gaussian HMM on sequences `x` (f64 `[B, T, D]`):
/// `iters` EM iterations from `init` (start, transitions, means and variances all
/// re-estimated; variances floored at `min_var`, as hmmlearn's `min_covar`). The E
/// step (forward-backward, state and transition posteriors) is one compiled graph run
/// per iteration; the M step is closed-form on the host. Returns the model and the
/// total log-likelihood of the data before each iteration's update (non-decreasing).
///
/// # Errors
/// Shapes that do not match, or a compile or run failure, named.
pub fn baum_welch(
    x: &Array,
    init: &GaussianHmm,
    iters: usize,
    min_var: f64,
) -> Result<(GaussianHmm, Vec<f64>), SignalError> {
    let dims = x.shape().dims().to_vec();
    let (s, d) = (init.markov.states, init.dim);
    if dims.len() != 3 || dims[2] != d || dims[1] < 2 || x.dtype() != DType::F64 {
        return Err(bw_err(format!(
            "x must be f64 [B, T >= 2, D = {d}], got {} {dims:?}",
            x.dtype()
        )));
    }
    if init.means.len() != s * d || init.vars.len() != s * d {
        return Err(bw_err(format!(
            "means and vars must hold S·D = {} values",
            s * d
        )));
    }
    let (b, t) = (dims[0], dims[1]);
    let g = GraphBuilder::new();
    let xt = g.input("x", DType::F64, [b, t, d]);
    let ls = g.input("log_start", DType::F64, [s]);
    let lt = g.input("log_trans", DType::F64, [s, s]);
    let mu = g.input("means", DType::F64, [s, d]);
    let var = g.input("vars", DType::F64, [s, d]);
    let e = gaussian_log_emissions(&xt, &mu, &var);
    let (alphas, ll) = forward(&e, &ls, &lt);
    let betas = backward(&e, &lt);
    let gamma = (&alphas + &betas - ll.unsqueeze(-1).unsqueeze(-1)).exp();
    let a = alphas.narrow(1, 0, t - 1).unsqueeze(-1);
    let eb = (e.narrow(1, 1, t - 1) + betas.narrow(1, 1, t - 1)).unsqueeze(-2);
    let xi = (a + &lt + eb - ll.unsqueeze(-1).unsqueeze(-1).unsqueeze(-1))
        .exp()
        .sum([0i64, 1], false);
    let mut exe = g
        .compile(&[&ll, &gamma, &xi])
        .map_err(|e| bw_err(e.to_string()))?;
    let mut model = init.clone();
    let mut history = Vec::with_capacity(iters);
    let xv = x.to_f64_vec();
    for _ in 0..iters {
        let ln = |v: &[f64]| v.iter().map(|p| p.max(1e-300).ln()).collect::<Vec<f64>>();
        let arr = |shape: Vec<usize>, v: Vec<f64>| {
            Array::f64(shape, v).map_err(|e| bw_err(e.to_string()))
        };
        let feeds = [
            ("x", x.clone()),
            ("log_start", arr(vec![s], ln(&model.markov.start))?),
            ("log_trans", arr(vec![s, s], ln(&model.markov.trans))?),
            ("means", arr(vec![s, d], model.means.clone())?),
            ("vars", arr(vec![s, d], model.vars.clone())?),
        ];
        let out = exe.run(&feeds).map_err(|e| bw_err(e.to_string()))?;
        history.push(out[0].to_f64_vec().iter().sum());
        let gam = out[1].to_f64_vec();
        let xi = out[2].to_f64_vec();
        // Start: the mean posterior of the first frame.
        let mut start = vec![0.0; s];
        for bi in 0..b {
            for k in 0..s {
                start[k] += gam[bi * t * s + k] / b as f64;
            }
        }
        // Transitions: expected counts, rows normalised.
        let mut trans = xi.clone();
        for row in trans.chunks_mut(s) {
            let sum: f64 = row.iter().sum();
            if sum > 0.0 {
                row.iter_mut().for_each(|v| *v /= sum);
            }
        }
        // Means and variances weighted by the state posteriors.
        let mut w = vec![0.0; s];
        let mut m1 = vec![0.0; s * d];
        for bt in 0..b * t {
            for k in 0..s {
                let gk = gam[bt * s + k];
                w[k] += gk;
                for j in 0..d {
                    m1[k * d + j] += gk * xv[bt * d + j];
                }
            }
        }
        let means: Vec<f64> = (0..s * d).map(|i| m1[i] / w[i / d].max(1e-300)).collect();
        let mut m2 = vec![0.0; s * d];
        for bt in 0..b * t {
            for k in 0..s {
                let gk = gam[bt * s + k];
                for j in 0..d {
                    let dv = xv[bt * d + j] - means[k * d + j];
                    m2[k * d + j] += gk * dv * dv;
                }
            }
        }
        let vars: Vec<f64> = (0..s * d)
            .map(|i| (m2[i] / w[i / d].max(1e-300)).max(min_var))
            .collect();
        model = GaussianHmm {
            markov: Markov {
                states: s,
                start,
                trans,
            },
            dim: d,
            means,
            vars,
        };
    }
    Ok((model, history))
}
