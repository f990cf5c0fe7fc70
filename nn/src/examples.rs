//! Built-in example graphs, shown by `onde dump --example NAME` and used in tests.
//!
//! Parameters are initialised deterministically (a fixed-seed generator with PyTorch's
//! `Linear` bound `1/sqrt(fan_in)`), so dumps are stable.

use crate::{Array, DType, GraphBuilder, Result, Tensor};
use onde_ir::Graph;

/// Names of the built-in examples.
pub const EXAMPLES: [&str; 3] = ["mlp", "mon_modele", "rnn"];

/// Builds the named example graph, or `None` for an unknown name.
pub fn build_example(name: &str) -> Option<Result<Graph>> {
    match name {
        "mlp" => Some(mlp()),
        "mon_modele" => Some(mon_modele()),
        "rnn" => Some(rnn()),
        _ => None,
    }
}

/// The named example with a scalar loss: `(forward, forward + backward)`, where the
/// forward graph outputs the loss and the second also outputs the gradient of the loss
/// with respect to every parameter (in declaration order).
pub fn build_example_grad(name: &str) -> Option<Result<(Graph, Graph)>> {
    let (g, loss) = build_example_loss(name)?;
    Some(with_grads(&g, &loss))
}

/// The named example's builder and scalar loss (for gradients or a training step).
pub fn build_example_loss(name: &str) -> Option<(GraphBuilder, Tensor)> {
    let (g, loss) = match name {
        "mlp" => mlp_loss(),
        "mon_modele" => {
            let g = GraphBuilder::new();
            let m = MonModeleQuiTorche::new(&g, "mon_modele", 4);
            let x = g.input("x", DType::F32, [5, 1, 100]);
            let z = m.forward(&m.forward(&x));
            let loss = z.mean_all();
            (g, loss)
        }
        "rnn" => {
            let (g, out) = rnn_builder();
            let loss = out[1].square().mean_all();
            (g, loss)
        }
        _ => return None,
    };
    Some((g, loss))
}

/// The named example's whole training step as one graph: forward, loss, backward and
/// an Adam update of every parameter (`TrainStep::graph`).
pub fn build_example_train(name: &str) -> Option<Result<Graph>> {
    let (g, loss) = build_example_loss(name)?;
    Some(
        crate::TrainStep::new(&g, &loss, &crate::optim::Adam::new(1e-3)).map(|s| s.graph().clone()),
    )
}

fn with_grads(g: &GraphBuilder, loss: &Tensor) -> Result<(Graph, Graph)> {
    let fwd = g.build(&[loss])?;
    let params = g.parameters();
    let refs: Vec<&Tensor> = params.iter().collect();
    let grads = g.grad(loss, &refs)?;
    let mut outs = vec![loss];
    outs.extend(grads.iter());
    Ok((fwd, g.build(&outs)?))
}

/// The MLP with the NLL loss of W1: `-mean(log_softmax(logits)[i, labels[i]])`.
fn mlp_loss() -> (GraphBuilder, Tensor) {
    let g = GraphBuilder::new();
    let logp = mlp_forward(&g);
    let labels = g.input("labels", DType::I64, [64]);
    let picked = logp.gather(1, &labels.unsqueeze(1));
    let loss = -picked.mean_all();
    (g, loss)
}

/// A deterministic uniform sample on `[-bound, bound)` (SplitMix64).
pub fn uniform_init(shape: &[usize], bound: f64, seed: u64) -> Array {
    uniform_range(shape, -bound, bound, seed)
}

/// A deterministic uniform sample on `[lo, hi)` (SplitMix64).
pub fn uniform_range(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Array {
    let n: usize = shape.iter().product();
    let mut s = seed;
    let v = (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f64 / (1u64 << 24) as f64;
            (lo + (hi - lo) * u) as f32
        })
        .collect();
    Array::f32(shape.to_vec(), v).unwrap_or_else(|_| Array::full(DType::F32, shape.to_vec(), 0.0))
}

/// `x @ W^T + b` with parameters `{name}.weight` `[out, in]` and `{name}.bias` `[out]`.
#[track_caller]
fn linear(
    g: &GraphBuilder,
    name: &str,
    x: &Tensor,
    fan_in: usize,
    fan_out: usize,
    seed: u64,
) -> Tensor {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let w = g.parameter(
        &format!("{name}.weight"),
        uniform_init(&[fan_out, fan_in], bound, seed),
    );
    let b = g.parameter(
        &format!("{name}.bias"),
        uniform_init(&[fan_out], bound, seed + 1),
    );
    x.matmul(&w.t()) + &b
}

/// The W1 MLP: `[64,256] → Linear 256 → sigmoid → Linear 256 → sigmoid → Linear 10 →
/// log_softmax`.
pub fn mlp() -> Result<Graph> {
    let g = GraphBuilder::new();
    let out = mlp_forward(&g);
    g.build(&[&out])
}

fn mlp_forward(g: &GraphBuilder) -> Tensor {
    let x = g.input("x", DType::F32, [64, 256]);
    let h = linear(g, "fc1", &x, 256, 256, 1).sigmoid();
    let h = linear(g, "fc2", &h, 256, 256, 3).sigmoid();
    let logits = linear(g, "fc3", &h, 256, 10, 5);
    &logits - logits.logsumexp([-1], true)
}

/// The course's `MonModeleQuiTorche` module (slide "Définition d'un réseau de
/// neurones"): mean over channels, tiled `delta_chan` times, scaled by a learnable
/// `[1, delta_chan, 1]` parameter, shifted by a non-learnable one, `abs`, and
/// concatenated to the input along the channels.
///
/// The slide's `not_learnable_param` is a plain tensor drawn once at construction;
/// here it is a buffer ([`GraphBuilder::buffer`]): fixed, never trained, but saved in
/// the state dict (PyTorch's `register_buffer`, so a checkpoint restores it too).
#[derive(Debug)]
pub struct MonModeleQuiTorche {
    name: String,
    delta_chan: usize,
    learnable_param: Tensor,
    not_learnable_param: Tensor,
}

impl MonModeleQuiTorche {
    /// Creates the module's tensors in `g` (uniform on `[0, 1)` for both, like
    /// `torch.rand([1, delta_chan, 1])`).
    pub fn new(g: &GraphBuilder, name: &str, delta_chan: usize) -> MonModeleQuiTorche {
        MonModeleQuiTorche {
            name: name.to_string(),
            delta_chan,
            learnable_param: g.parameter(
                &crate::module::child(name, "learnable_param"),
                uniform_range(&[1, delta_chan, 1], 0.0, 1.0, 7 + delta_chan as u64),
            ),
            not_learnable_param: g.buffer(
                &crate::module::child(name, "not_learnable_param"),
                uniform_range(&[1, delta_chan, 1], 0.0, 1.0, 1007 + delta_chan as u64),
            ),
        }
    }

    /// `x` is `[B, C, T]`; the result is `[B, C + delta_chan, T]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let x_reduced = x.mean([1], true);
        let x_duplicated = x_reduced.tile([1, self.delta_chan as i64, 1]);
        let y0 = &self.learnable_param * &x_duplicated;
        let y1 = &y0 + &self.not_learnable_param;
        let y2 = y1.abs();
        crate::cat(&[x, &y2], 1)
    }
}

impl crate::module::Module for MonModeleQuiTorche {
    fn forward(&self, x: &Tensor) -> Tensor {
        MonModeleQuiTorche::forward(self, x)
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![(
            crate::module::child(&self.name, "learnable_param"),
            self.learnable_param.clone(),
        )]
    }
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        vec![(
            crate::module::child(&self.name, "not_learnable_param"),
            self.not_learnable_param.clone(),
        )]
    }
}

/// The slide's use: `y = mon_modele(x); z = mon_modele(y)` with `x = rand(5, 1, 100)`.
pub fn mon_modele() -> Result<Graph> {
    let g = GraphBuilder::new();
    let m = MonModeleQuiTorche::new(&g, "mon_modele", 4);
    let x = g.input("x", DType::F32, [5, 1, 100]);
    let y = m.forward(&x);
    let z = m.forward(&y);
    g.build(&[&y, &z])
}

/// A vanilla tanh RNN over 100 steps as one `scan` (graph size independent of length):
/// `h_t = tanh(x_t W_ih^T + h_{t-1} W_hh^T + b)`, input `[32, 100, 40]` batch-first.
pub fn rnn() -> Result<Graph> {
    let (g, out) = rnn_builder();
    g.build(&[&out[0], &out[1]])
}

fn rnn_builder() -> (GraphBuilder, Vec<Tensor>) {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [32, 100, 40]);
    let bound = 1.0 / 64f64.sqrt();
    let w_ih = g.parameter("rnn.weight_ih_l0", uniform_init(&[64, 40], bound, 11));
    let w_hh = g.parameter("rnn.weight_hh_l0", uniform_init(&[64, 64], bound, 12));
    let b = g.parameter("rnn.bias_l0", uniform_init(&[64], bound, 13));
    let h0 = g.zeros([32, 64], DType::F32);
    let out = g.scan(&[&h0], &[&x], &[&w_ih, &w_hh, &b], 1, false, |c, xs, k| {
        let h = (xs[0].matmul(&k[0].t()) + c[0].matmul(&k[1].t()) + &k[2]).tanh();
        (vec![h.clone()], vec![h])
    });
    (g, out)
}
