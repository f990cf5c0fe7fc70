//! Model summaries (the course's "intermezzo" on receptive fields): per layer, the
//! output shape, the parameter count, and along the last (time) axis the receptive field
//! in input samples, the jump (distance in input samples between neighbouring outputs,
//! the product of strides) and the start (the input index of the first sample seen by
//! output 0; negative when it lies in the padding).
//!
//! Each module describes its action on the time axis with [`Module::time_map`]; the
//! summary composes the maps: through a window of `kernel` taps, `stride`, `dilation`
//! and left padding `p`, `rf' = rf + (kernel − 1)·dilation·jump`, `jump' = jump·stride`,
//! `start' = start − p·jump`. Containers ([`Module::named_children`]) are expanded
//! into their children. Shapes come from building each layer's forward on a fresh input
//! in eval mode (so no running-statistics update or dropout stream is registered); the
//! extra ops are never part of a compiled graph (graphs are pruned to their outputs).

use super::Module;
use crate::builder::GraphBuilder;
use crate::error::Result;
use onde_ir::DType;
use std::fmt;

/// How a module maps positions along the last axis (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeMap {
    /// Output `t` depends on input `t` only (activations, norms, linear layers on
    /// channels, pointwise convolutions).
    Pointwise,
    /// A sliding window.
    Window {
        /// Taps.
        kernel: usize,
        /// Step between outputs.
        stride: usize,
        /// Spacing of the taps.
        dilation: usize,
        /// Padding before the first sample.
        padding: usize,
    },
    /// Maps applied one after the other.
    Chain(Vec<TimeMap>),
    /// Every output sees the whole input (pooling over time, adaptive pooling).
    Global,
}

impl TimeMap {
    /// The window of a convolution of `kernel` taps (along the last axis) with `opts`:
    /// `'same'` pads `dilation·(kernel − 1)/2` on the left (PyTorch puts the odd element
    /// after).
    pub fn conv(kernel: usize, opts: &crate::tensor::ConvOpts) -> TimeMap {
        use crate::tensor::Padding;
        let last = |v: &[usize], default: usize| v.last().copied().unwrap_or(default);
        let dilation = last(&opts.dilation, 1);
        let padding = match &opts.padding {
            Padding::Valid => 0,
            Padding::Same => dilation * kernel.saturating_sub(1) / 2,
            Padding::Explicit(p) => last(p, 0),
        };
        TimeMap::Window {
            kernel,
            stride: last(&opts.stride, 1),
            dilation,
            padding,
        }
    }
}

/// Receptive-field state along the time axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Input samples seen by one output; `None` once a layer pools over all of time.
    pub receptive_field: Option<usize>,
    /// Input samples between neighbouring outputs.
    pub jump: usize,
    /// Input index of the first sample seen by output 0.
    pub start: i64,
}

impl Field {
    /// The input itself: each sample sees itself.
    pub const INPUT: Field = Field {
        receptive_field: Some(1),
        jump: 1,
        start: 0,
    };

    /// The field after `map`.
    pub fn then(self, map: &TimeMap) -> Field {
        match map {
            TimeMap::Pointwise => self,
            TimeMap::Global => Field {
                receptive_field: None,
                ..self
            },
            TimeMap::Chain(maps) => maps.iter().fold(self, |f, m| f.then(m)),
            &TimeMap::Window {
                kernel,
                stride,
                dilation,
                padding,
            } => Field {
                receptive_field: self
                    .receptive_field
                    .map(|rf| rf + kernel.saturating_sub(1) * dilation * self.jump),
                jump: self.jump * stride.max(1),
                start: self.start - (padding * self.jump) as i64,
            },
        }
    }
}

/// One row of a [`Summary`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    /// Dotted name (`features.3`), or the type for unnamed top-level layers.
    pub name: String,
    /// The module's type (`Conv`, `BatchNorm`, …).
    pub kind: String,
    /// Output shape for the summary's input shape.
    pub output: Vec<usize>,
    /// Learnable scalars of this layer.
    pub parameters: usize,
    /// Time-axis geometry after this layer.
    pub field: Field,
}

/// A model summary: one row per leaf layer, then totals. `Display` prints the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The input shape summarised.
    pub input: Vec<usize>,
    /// The layers in forward order.
    pub rows: Vec<LayerRow>,
    /// All learnable scalars.
    pub total_parameters: usize,
}

/// Summarises `m` on an f32 input of `input_shape` (time last): see the module docs.
/// Errors are the forward's own (a wrong channel count names the layer).
pub fn summarize(m: &dyn Module, input_shape: &[usize]) -> Result<Summary> {
    let g = GraphBuilder::new();
    // The forward is built in the model's builder (its parameters live there): take it
    // from any parameter, else a scratch builder (parameter-free models).
    let params = m.named_parameters();
    let b = params
        .first()
        .map(|(_, t)| t.builder().clone())
        .unwrap_or(g);
    let was = m.is_training();
    m.set_training(false);
    let x = b.input(&fresh_name(&b), DType::F32, input_shape.to_vec());
    let mut rows = Vec::new();
    let out = walk(m, "", &x, Field::INPUT, &mut rows);
    m.set_training(was);
    out?;
    Ok(Summary {
        input: input_shape.to_vec(),
        rows,
        total_parameters: m.num_parameters(),
    })
}

/// A name for the summary's input no other input has.
fn fresh_name(b: &GraphBuilder) -> String {
    let taken = b.input_names();
    (0..)
        .map(|i| format!("summary.input{i}"))
        .find(|n| !taken.contains(n))
        .unwrap_or_default()
}

fn walk(
    m: &dyn Module,
    name: &str,
    x: &crate::Tensor,
    field: Field,
    rows: &mut Vec<LayerRow>,
) -> Result<(crate::Tensor, Field)> {
    let children = m.named_children();
    if !children.is_empty() {
        let (mut h, mut f) = (x.clone(), field);
        for (n, c) in children {
            (h, f) = walk(c, &n, &h, f, rows)?;
        }
        return Ok((h, f));
    }
    let kind = m.type_name();
    let path = if name.is_empty() { kind } else { name };
    let y = m.forward(x).in_layer(path, kind, x.size()).check()?;
    let field = field.then(&m.time_map());
    rows.push(LayerRow {
        name: if name.is_empty() {
            kind.to_string()
        } else {
            name.to_string()
        },
        kind: kind.to_string(),
        output: y.size(),
        parameters: m.num_parameters(),
        field,
    });
    Ok((y, field))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|r| {
                let rf = r
                    .field
                    .receptive_field
                    .map_or_else(|| "all".to_string(), |v| v.to_string());
                [
                    r.name.clone(),
                    r.kind.clone(),
                    format!("{:?}", r.output),
                    r.parameters.to_string(),
                    rf,
                    r.field.jump.to_string(),
                    r.field.start.to_string(),
                ]
            })
            .collect();
        let head = [
            "layer",
            "type",
            "output",
            "params",
            "receptive field",
            "jump",
            "start",
        ];
        let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
        for c in &cells {
            for (i, s) in c.iter().enumerate() {
                w[i] = w[i].max(s.len());
            }
        }
        writeln!(f, "input {:?}", self.input)?;
        let line = |f: &mut fmt::Formatter<'_>, c: &[String]| {
            writeln!(
                f,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {:>w5$}  {:>w6$}",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                c[6],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4],
                w5 = w[5],
                w6 = w[6]
            )
        };
        line(f, &head.map(String::from))?;
        for c in &cells {
            line(f, c)?;
        }
        writeln!(f, "learnable parameters: {}", self.total_parameters)?;
        // The last layer that still has a time axis: what its outputs see.
        let last = self
            .rows
            .iter()
            .rev()
            .find(|r| r.field.receptive_field.is_some());
        if let Some(r) = last {
            writeln!(
                f,
                "after `{}`: each output sees {} input samples, neighbouring outputs are {} apart",
                r.name,
                r.field.receptive_field.unwrap_or(0),
                r.field.jump
            )?;
        }
        Ok(())
    }
}
