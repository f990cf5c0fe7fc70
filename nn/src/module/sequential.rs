//! Containers: [`Sequential`] (modules applied in order, like `torch.nn.Sequential`)
//! and [`Residual`] (`x + f(x)`).

use super::{Module, TimeMap};
use crate::tensor::Tensor;
use onde_ir::SourceLoc;
use std::cell::Cell;

/// Modules applied one after the other. Children are usually named `{prefix}.{index}`
/// (PyTorch's keys): [`Sequential::next_name`] gives that name for the next child.
pub struct Sequential {
    prefix: String,
    layers: Vec<Box<dyn Module>>,
    training: Cell<bool>,
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequential")
            .field("prefix", &self.prefix)
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl Default for Sequential {
    /// An empty top-level sequence, in train mode.
    fn default() -> Sequential {
        Sequential::new("")
    }
}

impl Sequential {
    /// An empty sequence whose children are named under `prefix` ("" at top level).
    pub fn new(prefix: &str) -> Sequential {
        Sequential {
            prefix: prefix.to_string(),
            layers: Vec::new(),
            training: Cell::new(true),
        }
    }

    /// The PyTorch name of the next child: `{prefix}.{len}`.
    pub fn next_name(&self) -> String {
        super::child(&self.prefix, &self.layers.len().to_string())
    }

    /// Appends a module.
    pub fn push(&mut self, m: impl Module + 'static) -> &mut Sequential {
        self.layers.push(Box::new(m));
        self
    }

    /// Appends a module built from the next child's name (see [`Sequential::next_name`]).
    pub fn push_with<M: Module + 'static>(&mut self, make: impl FnOnce(&str) -> M) -> &mut Self {
        let m = make(&self.next_name());
        self.push(m)
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            let ok = h.check().is_ok();
            let input = if ok { h.size() } else { Vec::new() };
            h = l.forward(&h);
            if ok {
                // An error raised by this child names it (locations through
                // `dyn Module` stop at the child's `forward`).
                let path = super::child(&self.prefix, &i.to_string());
                h = h.in_layer(&path, l.type_name(), input);
            }
        }
        h
    }
    fn set_training(&self, training: bool) {
        self.training.set(training);
        for l in &self.layers {
            l.set_training(training);
        }
    }
    fn is_training(&self) -> bool {
        self.training.get()
    }
    fn named_children(&self) -> Vec<(String, &dyn Module)> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| (super::child(&self.prefix, &i.to_string()), l.as_ref()))
            .collect()
    }
}

/// A residual block `x + f(x)` (the course's skip connection): `f` must keep the shape
/// of its input. Its parameters and buffers are `f`'s (name `f`'s children under the
/// block's prefix, as PyTorch does for a block holding them). For receptive fields the
/// block counts as `f` (the skip path sees a subset of what `f` sees when `f` keeps the
/// length with centred padding).
pub struct Residual {
    inner: Box<dyn Module>,
}

impl std::fmt::Debug for Residual {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Residual")
            .field("inner", &self.inner.type_name())
            .finish()
    }
}

impl Residual {
    /// `x + f(x)`.
    pub fn new(f: impl Module + 'static) -> Residual {
        Residual { inner: Box::new(f) }
    }
}

impl Module for Residual {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let loc = SourceLoc::caller();
        let y = self.inner.forward(x);
        if let (Ok(_), Ok(_)) = (x.check(), y.check()) {
            if x.size() != y.size() {
                return x.fail(
                    "residual",
                    format!(
                        "the block's output {:?} must have its input's shape {:?} to be added",
                        y.size(),
                        x.size()
                    ),
                    loc,
                );
            }
        }
        x + &y
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.inner.named_parameters()
    }
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        self.inner.named_buffers()
    }
    fn set_training(&self, training: bool) {
        self.inner.set_training(training);
    }
    fn is_training(&self) -> bool {
        self.inner.is_training()
    }
    fn time_map(&self) -> TimeMap {
        self.inner.time_map()
    }
}
