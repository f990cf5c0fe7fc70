//! Modules: reusable pieces of a model with named parameters, as `torch.nn.Module`.
//!
//! A module is built against a [`GraphBuilder`]: its constructor declares its
//! parameters ([`GraphBuilder::parameter`], learnable) and buffers
//! ([`GraphBuilder::buffer`], not learnable) under a dotted name prefix, and
//! [`Module::forward`] adds its ops to the graph. Names follow PyTorch's `state_dict`
//! keys (`fc1.weight`, `0.bias`, `encoder.layers.2.weight`), so weights exported from
//! PyTorch load by name (see [`crate::checkpoint`]).
//!
//! Train/eval mode: a graph is static, so the mode is read when `forward` builds ops.
//! Build the training graph in train mode, call [`Module::set_training`]`(false)` (or
//! [`Module::eval`]) and build the inference graph: both graphs share the parameters
//! (same names, same stored values).
//!
//! Several inputs or outputs (attention's `q, k, v` and masks, an RNN's `x, h0` →
//! `y, h_n`): [`Forward`], implemented beside `Module` for each such signature;
//! containers chain the single-tensor [`Module::forward`].
//!
//! # Writing a module
//! A struct holding its layers (built in its constructor under a name prefix) and
//! implementing [`Module`]: `forward`, plus `named_children` listing the layers in
//! forward order, from which parameters, buffers, train/eval mode and the receptive
//! field ([`summarize`]) are derived — when `forward` chains them (each layer's output
//! is the next one's input). Otherwise (attention's q, k, v all reading `x`, pooling
//! between layers) override `named_parameters` (and `named_buffers`, `set_training`,
//! `time_map`) instead: a summary then shows the module as one row. Errors: an op given bad shapes poisons its result
//! and the error surfaces where the graph is used (`check`, `compile`, a training step)
//! with the line of the op — inside your `forward`, or the line that called your
//! module if `forward` carries `#[track_caller]` (every library layer does). Inside a
//! [`Sequential`] the error also names the layer's path (`blocks.1.dw`, its type and
//! input shape), whichever line it points to.
//!
//! Design choice: the prefix is passed explicitly at construction (Rust has no
//! attribute introspection to derive `self.fc1` → `"fc1"`); [`child`] joins names.

mod activation;
mod attention;
mod conv;
mod dropout;
mod forward;
mod linear;
mod norm;
mod pool;
mod recurrent;
mod sequential;
mod sinc;
mod summary;
mod temporal;

pub use activation::{LeakyRelu, LogSoftmax, PRelu, Relu, Sigmoid, Softmax, Tanh};
pub use attention::{InProj, MhaInputs, MultiheadAttention};
pub use conv::{
    depthwise_conv1d, pointwise_conv1d, Conv, Conv1d, Conv2d, PaddingMode, SeparableConv1d,
};
pub use dropout::{Dropout, Dropout1d, Dropout2d};
pub use forward::Forward;
pub use linear::Linear;
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm};
pub use pool::{AdaptiveAvgPool1d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d};
pub use recurrent::{CellKind, Gru, Lstm, Recurrent, RecurrentCell, RecurrentOpts, Rnn};
pub use sequential::{Residual, Sequential};
pub use sinc::SincConv1d;
pub use summary::{summarize, Field, LayerRow, Summary, TimeMap};
pub use temporal::{AttentivePooling, StatisticsPooling};

use crate::tensor::Tensor;
#[cfg(doc)]
use crate::GraphBuilder;

/// A piece of a model: parameters plus a forward computation.
pub trait Module {
    /// Adds the module's computation on `x` to the graph.
    fn forward(&self, x: &Tensor) -> Tensor;

    /// Learnable parameters with their dotted names (recursively), in declaration order.
    /// By default, those of [`Module::named_children`] (none for a layer without
    /// children).
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.named_children()
            .into_iter()
            .flat_map(|(_, c)| c.named_parameters())
            .collect()
    }

    /// Non-learnable buffers with their dotted names (recursively); by default, the
    /// children's.
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        self.named_children()
            .into_iter()
            .flat_map(|(_, c)| c.named_buffers())
            .collect()
    }

    /// Sets train (`true`) or eval (`false`) mode, recursively (by default, on the
    /// children). Layers whose forward depends on the mode (dropout, batch norm) read it
    /// when `forward` is called.
    fn set_training(&self, training: bool) {
        for (_, c) in self.named_children() {
            c.set_training(training);
        }
    }

    /// Whether the module is in train mode (modules start in train mode, as in PyTorch).
    fn is_training(&self) -> bool {
        true
    }

    /// The learnable parameters (without names).
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Number of learnable scalars (`sum(p.numel() for p in model.parameters())`).
    fn num_parameters(&self) -> usize {
        self.named_parameters().iter().map(|(_, t)| t.numel()).sum()
    }

    /// `set_training(false)`, like `module.eval()`.
    fn eval(&self) {
        self.set_training(false);
    }

    /// `set_training(true)`, like `module.train()`.
    fn train(&self) {
        self.set_training(true);
    }

    /// How the module maps positions along the last (time) axis, for receptive fields
    /// ([`summarize`]). By default the children's maps in order, which for a layer
    /// without children is the identity ([`TimeMap::Pointwise`]: each time step
    /// alone); convolutions and pooling override it.
    fn time_map(&self) -> TimeMap {
        let maps: Vec<TimeMap> = self
            .named_children()
            .into_iter()
            .map(|(_, c)| c.time_map())
            .collect();
        if maps.is_empty() {
            TimeMap::Pointwise
        } else {
            TimeMap::Chain(maps)
        }
    }

    /// Children to list separately in a [`summarize`] table, with their dotted names,
    /// in forward order (containers such as [`Sequential`]); empty for a layer.
    fn named_children(&self) -> Vec<(String, &dyn Module)> {
        Vec::new()
    }

    /// The module's state dict (PyTorch's `model.state_dict()`): its parameters, then
    /// its buffers, with their values in `values` — a [`crate::TrainStep`] (the trained
    /// values) or a [`GraphBuilder`] (the initial ones) — under the module's names, and
    /// nothing else (no optimiser state, no other module's weights), so it loads into
    /// the PyTorch model with `load_state_dict(strict=True)`. The optimiser's state is
    /// [`crate::TrainStep::optimizer_state_dict`].
    fn state_dict(&self, values: &dyn StateSource) -> Vec<(String, onde_ir::Array)> {
        self.named_parameters()
            .into_iter()
            .chain(self.named_buffers())
            .filter_map(|(n, _)| values.state_value(&n).map(|a| (n, a)))
            .collect()
    }

    /// The module's type name, for summaries (`Conv`, `BatchNorm`, …).
    fn type_name(&self) -> &'static str {
        let full = std::any::type_name::<Self>();
        let base = full.split('<').next().unwrap_or(full);
        base.rsplit("::").next().unwrap_or(base)
    }
}

/// Where [`Module::state_dict`] reads values: a training step or a builder.
pub trait StateSource {
    /// The current value of parameter or buffer `name`.
    fn state_value(&self, name: &str) -> Option<onde_ir::Array>;
}

impl StateSource for crate::TrainStep {
    fn state_value(&self, name: &str) -> Option<onde_ir::Array> {
        self.value(name).cloned()
    }
}

impl StateSource for crate::GraphBuilder {
    fn state_value(&self, name: &str) -> Option<onde_ir::Array> {
        self.parameter_values()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }
}

/// A table of the module's parameters and buffers: name, shape, element count, and the
/// total of learnable ones (the course's parameter count per layer).
pub fn summary(m: &dyn Module) -> String {
    let mut s = String::new();
    let mut rows: Vec<(String, String, usize, &str)> = Vec::new();
    for (n, t) in m.named_parameters() {
        rows.push((n, format!("{:?}", t.size()), t.numel(), "parameter"));
    }
    for (n, t) in m.named_buffers() {
        rows.push((n, format!("{:?}", t.size()), t.numel(), "buffer"));
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(4).max(4);
    s.push_str(&format!(
        "{:<w$}  {:<14} {:>10}  kind\n",
        "name", "shape", "count"
    ));
    for (n, shape, c, kind) in &rows {
        s.push_str(&format!("{n:<w$}  {shape:<14} {c:>10}  {kind}\n"));
    }
    s.push_str(&format!("learnable parameters: {}\n", m.num_parameters()));
    s
}

/// The dotted name of child `name` under `prefix` (`child("", "fc1") == "fc1"`).
pub fn child(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
