//! Built-in example graphs, shown by `onde dump --example NAME` and used in tests.
//!
//! Parameters are initialised like PyTorch's defaults from the builder's seed
//! ([`onde_nn::init`]), so dumps are stable.

use onde_ir::Graph;
use onde_nn::loss::{nll_loss, NllOpts};
use onde_nn::module::{Linear, Module, Sequential, Sigmoid};
use onde_nn::optim::Adam;
use onde_nn::{DType, Evaluator, GraphBuilder, Result, Tensor, TrainOptions, TrainStep};

mod w2;
mod w34;
mod w5;
pub use w2::{Kws, KwsBlock, MeanStd};
pub use w34::{Readout, RnnClassifier};
pub use w5::AttnNet;

/// Examples that are modules, for `onde summary --example NAME`: the model (built on
/// its own builder) and the input shape summarised.
pub fn example_module(name: &str) -> Option<(Box<dyn Module>, Vec<usize>)> {
    let g = GraphBuilder::new();
    match name {
        "mlp" => Some((Box::new(w1_mlp(&g)), vec![64, 256])),
        "kws" => Some((Box::new(Kws::new(&g, "")), vec![32, 1, 16000])),
        "attention" => Some((Box::new(AttnNet::new(&g, "", false)), vec![32, 100, 64])),
        "gru" => Some((Box::new(RnnClassifier::w3(&g, "")), vec![32, 100, 40])),
        "lstm" => Some((Box::new(RnnClassifier::w4(&g, "")), vec![32, 100, 40])),
        "mon_modele" => Some((
            Box::new(MonModeleQuiTorche::new(&g, "mon_modele", 4)),
            vec![5, 1, 100],
        )),
        _ => None,
    }
}

/// Names of the built-in examples.
pub const EXAMPLES: [&str; 7] = [
    "mlp",
    "mon_modele",
    "rnn",
    "kws",
    "attention",
    "gru",
    "lstm",
];

/// Builds the named example graph, or `None` for an unknown name.
pub fn build_example(name: &str) -> Option<Result<Graph>> {
    match name {
        "mlp" => Some(mlp()),
        "mon_modele" => Some(mon_modele()),
        "rnn" => Some(rnn()),
        "kws" | "attention" | "gru" | "lstm" => {
            let (g, loss) = build_example_loss(name)?;
            Some(g.build(&[&loss]))
        }
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
        // W2, W5, W3 and W4 of bench.py with their NLL loss on a batch input `y`.
        "kws" | "attention" | "gru" | "lstm" => {
            let g = GraphBuilder::new();
            let (m, shape): (Box<dyn Module>, [usize; 3]) = match name {
                "kws" => (Box::new(Kws::new(&g, "")), [32, 1, 16000]),
                "attention" => (Box::new(AttnNet::new(&g, "", false)), [32, 100, 64]),
                "gru" => (Box::new(RnnClassifier::w3(&g, "")), [32, 100, 40]),
                _ => (Box::new(RnnClassifier::w4(&g, "")), [32, 100, 40]),
            };
            let x = g.input("x", DType::F32, shape);
            let y = g.input("y", DType::I64, [32]);
            let loss = nll_loss(&m.forward(&x), &y, &NllOpts::default());
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
        onde_nn::TrainStep::new(&g, &loss, &onde_nn::optim::Adam::new(1e-3))
            .map(|s| s.graph().clone()),
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

/// The W1 MLP: `[64,256] → Linear 256 → sigmoid → Linear 256 → sigmoid → Linear 10 →
/// log_softmax`.
pub fn mlp() -> Result<Graph> {
    let g = GraphBuilder::new();
    let out = mlp_forward(&g);
    g.build(&[&out])
}

/// The layers of W1 (`../shared/bench/bench.py`): `fc1` 256→256, sigmoid, `fc2`
/// 256→256, sigmoid, `fc3` 256→10, with PyTorch's names and default initialisation.
/// Its log-probabilities are `model.forward(x).log_softmax(-1)`.
pub fn w1_mlp(g: &GraphBuilder) -> Sequential {
    let mut m = Sequential::new("");
    m.push(Linear::new(g, "fc1", 256, 256))
        .push(Sigmoid)
        .push(Linear::new(g, "fc2", 256, 256))
        .push(Sigmoid)
        .push(Linear::new(g, "fc3", 256, 10));
    m
}

/// A classifier workload as `bench.py` times it: the compiled training step of `m`
/// (declared on `g`; NLL of its log-probabilities, Adam with lr 1e-3) and its eval-mode
/// forward sharing the weights (and running statistics). Inputs: `x` f32 `x_shape`, `y`
/// i64 `[x_shape[0]]`.
fn bench_classifier(
    g: &GraphBuilder,
    m: &dyn Module,
    x_shape: &[usize],
    compile: onde_codegen::CompileOptions,
) -> Result<(TrainStep, Evaluator)> {
    let x = g.input("x", DType::F32, x_shape.to_vec());
    let y = g.input("y", DType::I64, [x_shape[0]]);
    let loss = nll_loss(&m.forward(&x), &y, &NllOpts::default());
    let opts = TrainOptions {
        compile,
        ..TrainOptions::default()
    };
    let step = TrainStep::with_options(g, &loss, &Adam::new(1e-3), opts)?;
    m.eval();
    let eval = step.evaluator(g, &[&m.forward(&x)])?;
    Ok((step, eval))
}

/// W1 as `bench.py` times it: the compiled training step (NLL loss, Adam with lr
/// 1e-3) and the eval-mode forward (log-probabilities) sharing its weights. Inputs:
/// `x` f32 `[64, 256]`, `y` i64 `[64]`.
pub fn w1(compile: onde_codegen::CompileOptions) -> Result<(TrainStep, Evaluator)> {
    let g = GraphBuilder::new();
    let m = w1_mlp(&g);
    let x = g.input("x", DType::F32, [64, 256]);
    let y = g.input("y", DType::I64, [64]);
    let loss = nll_loss(&m.forward(&x).log_softmax(-1), &y, &NllOpts::default());
    let opts = TrainOptions {
        compile,
        ..TrainOptions::default()
    };
    let step = TrainStep::with_options(&g, &loss, &Adam::new(1e-3), opts)?;
    m.eval();
    let eval = step.evaluator(&g, &[&m.forward(&x).log_softmax(-1)])?;
    Ok((step, eval))
}

/// W2 as `bench.py` times it: the compiled training step of [`Kws`] (NLL loss, Adam
/// with lr 1e-3; BatchNorm statistics updated in place) and the eval-mode forward
/// sharing its weights and running statistics. Inputs: `x` f32 `[32, 1, 16000]`, `y`
/// i64 `[32]`.
pub fn w2(compile: onde_codegen::CompileOptions) -> Result<(TrainStep, Evaluator)> {
    let g = GraphBuilder::new();
    bench_classifier(&g, &Kws::new(&g, ""), &[32, 1, 16000], compile)
}

/// W3 (`lstm` false: [`RnnClassifier::w3`]) or W4 (`lstm` true: [`RnnClassifier::w4`]) as `bench.py` times
/// it: the compiled training step (NLL loss, Adam with lr 1e-3) and the eval-mode
/// forward sharing its weights. Inputs: `x` f32 `[32, 100, 40]`, `y` i64 `[32]`.
pub fn w34(compile: onde_codegen::CompileOptions, lstm: bool) -> Result<(TrainStep, Evaluator)> {
    let g = GraphBuilder::new();
    let m: Box<dyn Module> = if lstm {
        Box::new(RnnClassifier::w4(&g, ""))
    } else {
        Box::new(RnnClassifier::w3(&g, ""))
    };
    bench_classifier(&g, m.as_ref(), &[32, 100, 40], compile)
}

/// W4's LSTM as a stream of single frames (batch 1, chunk 1), for the per-frame
/// latency of streaming inference: a [`onde_nn::RecurrentStream`] over [`RnnClassifier::w4`]'s
/// recurrent layer. Input chunks: f32 `[1, 1, 40]`.
pub fn w4_stream() -> Result<onde_nn::RecurrentStream> {
    let g = GraphBuilder::new();
    let m = RnnClassifier::w4(&g, "");
    onde_nn::RecurrentStream::new(&g, &m.rnn, 1, 1)
}

/// W5 (`sdpa` false: explicit products and softmax) or W5s (`sdpa` true: through
/// `scaled_dot_product_attention`) as `bench.py` times it: the compiled training step of
/// [`AttnNet`] (NLL loss, Adam with lr 1e-3) and the eval-mode forward sharing its
/// weights. Inputs: `x` f32 `[32, 100, 64]`, `y` i64 `[32]`.
pub fn w5(compile: onde_codegen::CompileOptions, sdpa: bool) -> Result<(TrainStep, Evaluator)> {
    let g = GraphBuilder::new();
    bench_classifier(&g, &AttnNet::new(&g, "", sdpa), &[32, 100, 64], compile)
}

fn mlp_forward(g: &GraphBuilder) -> Tensor {
    let x = g.input("x", DType::F32, [64, 256]);
    w1_mlp(g).forward(&x).log_softmax(-1)
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
                &onde_nn::module::child(name, "learnable_param"),
                onde_nn::init::uniform(DType::F32, &[1, delta_chan, 1], 0.0, 1.0, g.init_seed()),
            ),
            not_learnable_param: g.buffer(
                &onde_nn::module::child(name, "not_learnable_param"),
                onde_nn::init::uniform(DType::F32, &[1, delta_chan, 1], 0.0, 1.0, g.init_seed()),
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
        onde_nn::cat(&[x, &y2], 1)
    }
}

impl onde_nn::module::Module for MonModeleQuiTorche {
    fn forward(&self, x: &Tensor) -> Tensor {
        MonModeleQuiTorche::forward(self, x)
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![(
            onde_nn::module::child(&self.name, "learnable_param"),
            self.learnable_param.clone(),
        )]
    }
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        vec![(
            onde_nn::module::child(&self.name, "not_learnable_param"),
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
    let init =
        |shape: &[usize]| onde_nn::init::uniform(DType::F32, shape, -bound, bound, g.init_seed());
    let w_ih = g.parameter("rnn.weight_ih_l0", init(&[64, 40]));
    let w_hh = g.parameter("rnn.weight_hh_l0", init(&[64, 64]));
    let b = g.parameter("rnn.bias_l0", init(&[64]));
    let h0 = g.zeros([32, 64], DType::F32);
    let out = g.scan(&[&h0], &[&x], &[&w_ih, &w_hh, &b], 1, false, |c, xs, k| {
        let h = (xs[0].matmul(&k[0].t()) + c[0].matmul(&k[1].t()) + &k[2]).tanh();
        (vec![h.clone()], vec![h])
    });
    (g, out)
}
