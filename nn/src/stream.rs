//! [`RecurrentStream`]: streaming inference with a recurrent layer — a chunk of frames
//! at a time, the hidden (and cell) state kept between chunks — for the course's
//! real-time uses (voice activity detection, keyword spotting on a live signal).
//!
//! The layer is compiled once for a chunk of `chunk` frames whose initial states are
//! graph inputs; each [`RecurrentStream::push`] feeds the states the previous chunk
//! ended with and keeps the new ones, so the outputs of consecutive chunks are those of
//! the whole sequence (tested). Training the same way (truncated backpropagation
//! through time) needs nothing more: a `TrainStep` over a chunk graph with `h0` as an
//! input, fed with the previous step's `h_n` output — a feed carries no gradient, so
//! the state is detached between chunks.

use crate::builder::GraphBuilder;
use crate::compile::Compiled;
use crate::error::{Error, Result};
use crate::module::{CellKind, Module, Recurrent};
use crate::tensor::Tensor;
use onde_ir::{Array, DType};

/// A compiled recurrent layer run chunk by chunk with its state kept (see the module
/// docs). Unidirectional layers only (a backward direction needs the whole sequence).
#[derive(Debug)]
pub struct RecurrentStream {
    exe: Compiled,
    x_name: String,
    h_name: String,
    c_name: Option<String>,
    h: Array,
    c: Option<Array>,
    x_shape: Vec<usize>,
    h_init: Array,
    c_init: Option<Array>,
}

fn stream_err(reason: String) -> Error {
    Error::Train { reason }
}

impl RecurrentStream {
    /// Compiles `layer` (declared on `g`, with `g`'s current parameter values; update
    /// them with [`RecurrentStream::set_parameter`]) for chunks of `chunk` frames of a
    /// batch of `batch` streams, in the layer's layout (`[B, chunk, I]` if
    /// `batch_first`, else `[chunk, B, I]`). States start at zero.
    pub fn new(
        g: &GraphBuilder,
        layer: &Recurrent,
        batch: usize,
        chunk: usize,
    ) -> Result<RecurrentStream> {
        if layer.opts.bidirectional {
            return Err(stream_err(
                "a bidirectional layer cannot stream: its backward direction needs the whole \
                 sequence"
                    .into(),
            ));
        }
        if batch == 0 || chunk == 0 {
            return Err(stream_err(format!(
                "batch and chunk must be at least 1, got batch {batch}, chunk {chunk}"
            )));
        }
        let layers = layer.opts.num_layers;
        let h_out = if layer.cell == CellKind::Lstm && layer.opts.proj_size > 0 {
            layer.opts.proj_size
        } else {
            layer.hidden_size
        };
        let x_shape = if layer.opts.batch_first {
            vec![batch, chunk, layer.input_size]
        } else {
            vec![chunk, batch, layer.input_size]
        };
        // Names unique to this layer's parameters, reused if streamed twice.
        let base = layer
            .named_parameters()
            .first()
            .map(|(n, _)| {
                n.rsplit_once('.')
                    .map_or(String::new(), |(p, _)| format!("{p}."))
            })
            .unwrap_or_default();
        let x_name = format!("{base}stream.x");
        let h_name = format!("{base}stream.h0");
        let x = g.input_reuse(&x_name, DType::F32, x_shape.clone().into())?;
        let h0 = g.input_reuse(&h_name, DType::F32, vec![layers, batch, h_out].into())?;
        let lstm = layer.cell == CellKind::Lstm;
        let (outs, c_name): (Vec<Tensor>, Option<String>) = if lstm {
            let c_name = format!("{base}stream.c0");
            let c0 = g.input_reuse(
                &c_name,
                DType::F32,
                vec![layers, batch, layer.hidden_size].into(),
            )?;
            let (y, (h, c)) = crate::module::Forward::call(layer, (&x, Some((&h0, &c0))));
            (vec![y, h, c], Some(c_name))
        } else {
            let (y, h) = crate::module::Forward::call(layer, (&x, Some(&h0)));
            (vec![y, h], None)
        };
        let refs: Vec<&Tensor> = outs.iter().collect();
        let exe = g.compile_pruned(&refs)?;
        let h_init = Array::full(DType::F32, [layers, batch, h_out], 0.0);
        let c_init = lstm.then(|| Array::full(DType::F32, [layers, batch, layer.hidden_size], 0.0));
        Ok(RecurrentStream {
            exe,
            x_name,
            h_name,
            c_name,
            h: h_init.clone(),
            c: c_init.clone(),
            x_shape,
            h_init,
            c_init,
        })
    }

    /// Runs the next chunk of frames; returns its outputs and keeps the final states
    /// for the next chunk.
    pub fn push(&mut self, frames: &Array) -> Result<Array> {
        if frames.shape().dims() != self.x_shape.as_slice() {
            return Err(stream_err(format!(
                "a chunk must be {:?}, got {:?}",
                self.x_shape,
                frames.shape().dims()
            )));
        }
        let mut feeds: Vec<(&str, Array)> = vec![
            (self.x_name.as_str(), frames.clone()),
            (self.h_name.as_str(), self.h.clone()),
        ];
        if let (Some(n), Some(c)) = (&self.c_name, &self.c) {
            feeds.push((n.as_str(), c.clone()));
        }
        let mut out = self.exe.run(&feeds)?;
        if self.c.is_some() {
            self.c = out.pop();
        }
        self.h = out.pop().ok_or_else(|| stream_err("missing h_n".into()))?;
        out.pop().ok_or_else(|| stream_err("missing output".into()))
    }

    /// The current hidden state `[num_layers, B, H]`.
    pub fn state(&self) -> &Array {
        &self.h
    }

    /// Back to zero states (a new stream).
    pub fn reset(&mut self) {
        self.h = self.h_init.clone();
        self.c = self.c_init.clone();
    }

    /// Replaces a parameter's value (e.g. from a trained step's `model_state_dict`).
    pub fn set_parameter(&mut self, name: &str, value: Array) -> Result<()> {
        self.exe.set_parameter(name, value)
    }
}
