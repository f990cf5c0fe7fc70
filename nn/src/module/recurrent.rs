//! Recurrent layers — `Rnn` (tanh or ReLU), `Lstm` (with `proj_size`), `Gru` — as
//! PyTorch's `torch.nn.RNN`, `LSTM`, `GRU`: the same options, parameter names
//! (`weight_ih_l{k}[_reverse]`, `weight_hh_…`, `bias_ih_…`, `bias_hh_…`,
//! `weight_hr_…`), shapes, gate orders (LSTM i, f, g, o; GRU r, z, n with
//! `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`) and initialisation
//! `U(−1/√H, 1/√H)`, so PyTorch weights load unchanged.
//!
//! Each layer and direction is one `scan` over time (the graph does not grow with the
//! sequence; its gradient is the reverse scan). The input projections of every step
//! (`x W_ihᵀ`) are one matrix product before the loop; the loop body adds `b_ih + b_hh`
//! as one vector (the GRU's `b_hn` apart: it is multiplied by `r`; see
//! `Weights::input_bias`), and `h W_hhᵀ`, and applies the cell. Inputs are `[T, B, I]`
//! (`[B, T, I]` with `batch_first`, or unbatched `[T, I]`); outputs `[T, B, D·H_out]`
//! and final states `[D·num_layers, B, H]` (`D` = 2 if bidirectional). Dropout between
//! layers in train mode, as PyTorch.
//!
//! Calls: [`Module::forward`] gives the output sequence; [`Forward`] with `(x, h0)`
//! (`Option`) gives `(output, h_n)`, and for the LSTM with `(x, Option<(h0, c0)>)`
//! gives `(output, (h_n, c_n))`.

use super::{child, Forward, Module};
use crate::builder::GraphBuilder;
use crate::init;
use crate::tensor::Tensor;
use onde_ir::{DType, SourceLoc};
use std::cell::Cell;

/// The cell of a [`Recurrent`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnTanh,
    /// `h' = relu(…)`.
    RnnRelu,
    /// Long short-term memory (gates i, f, g, o).
    Lstm,
    /// Gated recurrent unit (gates r, z, n).
    Gru,
}

impl CellKind {
    /// Gates per hidden unit (rows of `weight_ih` per `hidden_size`).
    fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => "RNN",
            CellKind::Lstm => "LSTM",
            CellKind::Gru => "GRU",
        }
    }
}

/// Options of a recurrent layer, PyTorch's defaults (`num_layers = 1`, `bias`,
/// sequence-first, no dropout, unidirectional, no projection).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecurrentOpts {
    /// Stacked layers.
    pub num_layers: usize,
    /// Biases `bias_ih`, `bias_hh`.
    pub bias: bool,
    /// Inputs and outputs `[B, T, ·]` instead of `[T, B, ·]`.
    pub batch_first: bool,
    /// Dropout on the outputs of every layer but the last, in train mode.
    pub dropout: f64,
    /// A second direction, running backwards in time.
    pub bidirectional: bool,
    /// LSTM only: projected hidden state size (0: none).
    pub proj_size: usize,
}

impl Default for RecurrentOpts {
    fn default() -> RecurrentOpts {
        RecurrentOpts {
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
            proj_size: 0,
        }
    }
}

impl RecurrentOpts {
    /// With `n` stacked layers.
    pub fn num_layers(mut self, n: usize) -> Self {
        self.num_layers = n;
        self
    }
    /// With or without biases.
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }
    /// Batch-first layout.
    pub fn batch_first(mut self, on: bool) -> Self {
        self.batch_first = on;
        self
    }
    /// Dropout between layers.
    pub fn dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self
    }
    /// Bidirectional.
    pub fn bidirectional(mut self, on: bool) -> Self {
        self.bidirectional = on;
        self
    }
    /// LSTM projection size.
    pub fn proj_size(mut self, p: usize) -> Self {
        self.proj_size = p;
        self
    }
}

/// The weights of one layer and direction.
#[derive(Debug, Clone)]
struct Weights {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Option<Tensor>,
    b_hh: Option<Tensor>,
    w_hr: Option<Tensor>,
    /// Parameter name suffix: `l{k}` or `l{k}_reverse`.
    suffix: String,
}

impl Weights {
    /// The bias added to each step's input projection `x W_ihᵀ`: `b_ih + b_hh` (the
    /// GRU: `b_ih + [b_hr, b_hz, 0]`, its `b_hn` is multiplied by `r` inside the step).
    /// One vector instead of two, so the step's gate kernel reads one broadcast operand;
    /// it is added inside the step rather than to the `[T, B, G·H]` projections before
    /// the loop, where it cost a pass over them (W3: ~0.1 ms per layer and direction).
    fn input_bias(&self, cell: CellKind) -> Option<Tensor> {
        let b_ih = self.b_ih.as_ref()?;
        let Some(b_hh) = &self.b_hh else {
            return Some(b_ih.clone());
        };
        Some(match cell {
            CellKind::Gru => {
                let gh = b_hh.size()[0];
                let hs = gh / 3;
                let rz = b_hh.narrow(0, 0, 2 * hs);
                let zero = b_hh.builder().zeros([hs], b_hh.dtype());
                b_ih + &crate::cat(&[&rz, &zero], 0)
            }
            CellKind::RnnTanh | CellKind::RnnRelu | CellKind::Lstm => b_ih + b_hh,
        })
    }
}

/// `torch.nn.RNN` / `LSTM` / `GRU` (see the module docs).
#[derive(Debug, Clone)]
pub struct Recurrent {
    name: String,
    /// The cell.
    pub cell: CellKind,
    /// Features of each input step.
    pub input_size: usize,
    /// Hidden state size.
    pub hidden_size: usize,
    /// Options.
    pub opts: RecurrentOpts,
    /// Per layer, per direction.
    weights: Vec<Weights>,
    training: Cell<bool>,
}

/// `torch.nn.RNN`.
pub type Rnn = Recurrent;
/// `torch.nn.LSTM`.
pub type Lstm = Recurrent;
/// `torch.nn.GRU`.
pub type Gru = Recurrent;

impl Recurrent {
    /// `RNN(input_size, hidden_size, nonlinearity='tanh')` with `opts`.
    #[track_caller]
    pub fn rnn(
        g: &GraphBuilder,
        name: &str,
        input_size: usize,
        hidden_size: usize,
        opts: RecurrentOpts,
    ) -> Recurrent {
        Recurrent::new(g, name, CellKind::RnnTanh, input_size, hidden_size, opts)
    }

    /// `RNN(…, nonlinearity='relu')`.
    #[track_caller]
    pub fn rnn_relu(
        g: &GraphBuilder,
        name: &str,
        input_size: usize,
        hidden_size: usize,
        opts: RecurrentOpts,
    ) -> Recurrent {
        Recurrent::new(g, name, CellKind::RnnRelu, input_size, hidden_size, opts)
    }

    /// `LSTM(input_size, hidden_size)` with `opts` (including `proj_size`).
    #[track_caller]
    pub fn lstm(
        g: &GraphBuilder,
        name: &str,
        input_size: usize,
        hidden_size: usize,
        opts: RecurrentOpts,
    ) -> Recurrent {
        Recurrent::new(g, name, CellKind::Lstm, input_size, hidden_size, opts)
    }

    /// `GRU(input_size, hidden_size)` with `opts`.
    #[track_caller]
    pub fn gru(
        g: &GraphBuilder,
        name: &str,
        input_size: usize,
        hidden_size: usize,
        opts: RecurrentOpts,
    ) -> Recurrent {
        Recurrent::new(g, name, CellKind::Gru, input_size, hidden_size, opts)
    }

    /// A layer of any cell; parameters `{name}.weight_ih_l0`, … with PyTorch's
    /// initialisation.
    #[track_caller]
    pub fn new(
        g: &GraphBuilder,
        name: &str,
        cell: CellKind,
        input_size: usize,
        hidden_size: usize,
        opts: RecurrentOpts,
    ) -> Recurrent {
        let bound = if hidden_size > 0 {
            1.0 / (hidden_size as f64).sqrt()
        } else {
            0.0
        };
        let u = |shape: &[usize]| init::uniform(DType::F32, shape, -bound, bound, g.init_seed());
        let dirs = if opts.bidirectional { 2 } else { 1 };
        let proj = opts.proj_size > 0 && cell == CellKind::Lstm;
        let h_out = if proj { opts.proj_size } else { hidden_size };
        let gh = cell.gates() * hidden_size;
        let mut weights = Vec::new();
        for layer in 0..opts.num_layers {
            let in_size = if layer == 0 { input_size } else { dirs * h_out };
            for d in 0..dirs {
                let suffix = if d == 0 {
                    format!("l{layer}")
                } else {
                    format!("l{layer}_reverse")
                };
                let p = |what: &str, shape: &[usize]| {
                    g.parameter(&child(name, &format!("{what}_{suffix}")), u(shape))
                };
                let w_ih = p("weight_ih", &[gh, in_size]);
                let w_hh = p("weight_hh", &[gh, h_out]);
                let (b_ih, b_hh) = if opts.bias {
                    (Some(p("bias_ih", &[gh])), Some(p("bias_hh", &[gh])))
                } else {
                    (None, None)
                };
                let w_hr = proj.then(|| p("weight_hr", &[opts.proj_size, hidden_size]));
                weights.push(Weights {
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                    w_hr,
                    suffix,
                });
            }
        }
        Recurrent {
            name: name.to_string(),
            cell,
            input_size,
            hidden_size,
            opts,
            weights,
            training: Cell::new(true),
        }
    }

    /// Directions (1 or 2).
    fn dirs(&self) -> usize {
        if self.opts.bidirectional {
            2
        } else {
            1
        }
    }

    /// Size of each direction's output (`proj_size` for a projected LSTM).
    fn h_out(&self) -> usize {
        if self.cell == CellKind::Lstm && self.opts.proj_size > 0 {
            self.opts.proj_size
        } else {
            self.hidden_size
        }
    }

    /// The whole computation: output and final states `h_n` (and `c_n` for the LSTM).
    fn run(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        lengths: Option<&Tensor>,
        loc: SourceLoc,
    ) -> (Tensor, Tensor, Option<Tensor>) {
        let api = self.cell.name();
        // Errors name the layer by its path in the model (its parameters' prefix).
        let path = if self.name.is_empty() {
            String::new()
        } else {
            format!("`{}`: ", self.name)
        };
        let fail = |t: &Tensor, reason: String| {
            let e = t.fail(api, format!("{path}{reason}"), loc.clone());
            (e.clone(), e.clone(), Some(e))
        };
        for t in [Some(x), h0, c0, lengths].into_iter().flatten() {
            if let Err(e) = t.check() {
                let p = x.builder().poisoned(e);
                return (p.clone(), p.clone(), Some(p));
            }
        }
        if !x.dtype().is_float() {
            return fail(x, format!("input must be float, got {}", x.dtype()));
        }
        if self.opts.proj_size > 0 && self.cell != CellKind::Lstm {
            return fail(x, "proj_size is an LSTM option".into());
        }
        if self.cell == CellKind::Lstm
            && self.opts.proj_size >= self.hidden_size
            && self.opts.proj_size > 0
        {
            return fail(
                x,
                format!(
                    "proj_size ({}) must be smaller than hidden_size ({})",
                    self.opts.proj_size, self.hidden_size
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.opts.dropout) {
            return fail(
                x,
                format!("dropout must be in [0, 1], got {}", self.opts.dropout),
            );
        }
        let xs = x.size();
        let unbatched = xs.len() == 2;
        if !(xs.len() == 3 || unbatched) || xs[xs.len() - 1] != self.input_size {
            return fail(
                x,
                format!(
                    "expected input [T, B, {i}] ([B, T, {i}] with batch_first, or unbatched [T, {i}]), got {xs:?}",
                    i = self.input_size
                ),
            );
        }
        // Time-major [T, B, I].
        let seq = if unbatched {
            x.unsqueeze(1)
        } else if self.opts.batch_first {
            x.transpose(0, 1)
        } else {
            x.clone()
        };
        let (t, b) = (seq.size()[0], seq.size()[1]);
        if t == 0 {
            return fail(x, "the sequence is empty (T = 0)".into());
        }
        let (dirs, layers) = (self.dirs(), self.opts.num_layers);
        let h_out = self.h_out();
        let states = dirs * layers;
        let state =
            |s: Option<&Tensor>, width: usize, what: &str| -> Result<Option<Tensor>, String> {
                let Some(s) = s else { return Ok(None) };
                let want: Vec<usize> = if unbatched {
                    vec![states, width]
                } else {
                    vec![states, b, width]
                };
                if s.size() != want {
                    return Err(format!("{what} must be {want:?}, got {:?}", s.size()));
                }
                Ok(Some(if unbatched { s.unsqueeze(1) } else { s.clone() }))
            };
        // Variable lengths: `valid[t, b]` = t < lengths[b], as `[T, B, 1]` floats.
        let valid = match lengths {
            None => None,
            Some(len) => {
                if len.dtype() != DType::I64 || len.size() != [b] || unbatched {
                    return fail(
                        len,
                        format!(
                            "lengths must be i64 [{b}] (one per sequence of a batched input), got {:?} {}",
                            len.size(),
                            len.dtype()
                        ),
                    );
                }
                let g = x.builder();
                g.check_lengths(len, t, api, &loc);
                let steps = g.arange(0.0, t as f64, 1.0, DType::I64).unsqueeze(1);
                Some(steps.lt(len.unsqueeze(0)).to_dtype(x.dtype()).unsqueeze(2))
            }
        };
        let h0 = match state(h0, h_out, "h0") {
            Ok(h) => h,
            Err(r) => return fail(x, r),
        };
        let c0 = match state(c0, self.hidden_size, "c0") {
            Ok(c) => c,
            Err(r) => return fail(x, r),
        };
        let g = x.builder();
        let dt = x.dtype();
        let mut input = seq;
        let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
        for layer in 0..layers {
            // Input projections of every step, before the loops: [T, B, G·H], one
            // `[T·B, I]` product per direction (a batch-first input is transposed first:
            // a copy of the narrow input, not of the wide projection). Both directions'
            // products come first so that their two loops are adjacent steps of the
            // plan, which runs them side by side on two threads.
            let xps: Vec<Tensor> = (0..dirs)
                .map(|d| {
                    crate::functional::linear(&input, &self.weights[layer * dirs + d].w_ih, None)
                })
                .collect();
            let mut outs = Vec::with_capacity(dirs);
            for (d, xp) in xps.iter().enumerate() {
                let k = layer * dirs + d;
                let w = &self.weights[k];
                let h_init = h0
                    .as_ref()
                    .map(|h| h.narrow(0, k as i64, 1).squeeze(0))
                    .unwrap_or_else(|| g.zeros([b, h_out], dt));
                let c_init = (self.cell == CellKind::Lstm).then(|| {
                    c0.as_ref()
                        .map(|c| c.narrow(0, k as i64, 1).squeeze(0))
                        .unwrap_or_else(|| g.zeros([b, self.hidden_size], dt))
                });
                let (y, h, c) =
                    self.direction(xp, w, &h_init, c_init.as_ref(), valid.as_ref(), d == 1);
                outs.push(y);
                h_n.push(h);
                c_n.extend(c);
            }
            let refs: Vec<&Tensor> = outs.iter().collect();
            input = if dirs == 1 {
                outs[0].clone()
            } else {
                crate::cat(&refs, 2)
            };
            if layer + 1 < layers && self.opts.dropout > 0.0 && self.training.get() {
                input = input.dropout(self.opts.dropout, true);
            }
        }
        let hr: Vec<&Tensor> = h_n.iter().collect();
        let mut hn = crate::stack(&hr, 0);
        let mut cn = (!c_n.is_empty()).then(|| {
            let cr: Vec<&Tensor> = c_n.iter().collect();
            crate::stack(&cr, 0)
        });
        let mut out = input;
        if unbatched {
            out = out.squeeze(1);
            hn = hn.squeeze(1);
            cn = cn.map(|c| c.squeeze(1));
        } else if self.opts.batch_first {
            out = out.transpose(0, 1);
        }
        (out, hn, cn)
    }

    /// One layer and direction over the input projections `xp` `[T, B, G·H]`: the
    /// per-step outputs `[T, B, H_out]` (in time order) and the final states.
    ///
    /// With `valid` (`[T, B, 1]`, 1 while `t < length`), a step past a sequence's end
    /// keeps its state and outputs zeros: the final state is the state at the sequence's
    /// own length, and the reverse direction starts at its own end (its state stays the
    /// initial one through the padding), as `pack_padded_sequence` does.
    #[allow(clippy::too_many_arguments)]
    fn direction(
        &self,
        xp: &Tensor,
        w: &Weights,
        h0: &Tensor,
        c0: Option<&Tensor>,
        valid: Option<&Tensor>,
        reverse: bool,
    ) -> (Tensor, Tensor, Option<Tensor>) {
        let g = xp.builder();
        let cell = self.cell;
        let hs = self.hidden_size;
        let mut init: Vec<&Tensor> = vec![h0];
        init.extend(c0);
        // `b_ih` and the part of `b_hh` that adds to the gates directly are one vector
        // added to `xp[t]` in the step (`Weights::input_bias`); the GRU's `b_hn`, inside
        // `r ⊙ (…)`, is its own.
        let b_in = w.input_bias(cell);
        let b_hn = match (cell, &w.b_hh) {
            (CellKind::Gru, Some(b)) => Some(b.narrow(0, (2 * hs) as i64, hs)),
            _ => None,
        };
        let mut invariants: Vec<&Tensor> = vec![&w.w_hh];
        invariants.extend(b_hn.as_ref());
        invariants.extend(w.w_hr.as_ref());
        invariants.extend(b_in.as_ref());
        let has_hn = b_hn.is_some();
        let has_hr = w.w_hr.is_some();
        let has_in = b_in.is_some();
        let mut scanned: Vec<&Tensor> = vec![xp];
        scanned.extend(valid);
        let masked = valid.is_some();
        let res = g.scan(
            &init,
            &scanned,
            &invariants,
            0,
            reverse,
            move |carry, xs, inv| {
                let hbias = if has_hn {
                    HBias::NGate(&inv[1])
                } else {
                    HBias::None
                };
                let w_hr = has_hr.then(|| &inv[1 + usize::from(has_hn)]);
                let xg = if has_in {
                    &xs[0] + &inv[inv.len() - 1]
                } else {
                    xs[0].clone()
                };
                let states = step(cell, hs, carry, &xg, &inv[0], hbias, w_hr);
                if !masked {
                    let y = states[0].clone();
                    return (states, vec![y]);
                }
                // Past the end: keep the state, output zeros.
                let m = &xs[1];
                let keep: Vec<Tensor> = states
                    .iter()
                    .zip(carry)
                    .map(|(new, old)| m * new + (1.0 - m) * old)
                    .collect();
                let y = m * &keep[0];
                (keep, vec![y])
            },
        );
        let n_carry = init.len();
        let y = res[n_carry].clone();
        let h = res[0].clone();
        let c = (n_carry == 2).then(|| res[1].clone());
        (y, h, c)
    }
}

/// Where `b_hh` is added in a step (see [`step`]).
#[derive(Clone, Copy)]
enum HBias<'a> {
    /// Not at all (folded into the input projection, or no bias).
    None,
    /// To every gate of `h W_hhᵀ` (the cells: `xg` holds `b_ih` only).
    All(&'a Tensor),
    /// To the GRU's `n` gate only (`b_hn`; `b_hr`, `b_hz` are folded into `xg`).
    NGate(&'a Tensor),
}

/// One step of `cell`: the new carried states (`h`, and `c` for the LSTM) from the
/// carried ones, the step's input projection `xg` (with the biases folded into it),
/// `W_hh`, where the rest of `b_hh` goes, and `W_hr` for a projected LSTM.
fn step(
    cell: CellKind,
    hs: usize,
    carry: &[Tensor],
    xg: &Tensor,
    w_hh: &Tensor,
    hbias: HBias<'_>,
    w_hr: Option<&Tensor>,
) -> Vec<Tensor> {
    let h = &carry[0];
    let mut hg = h.matmul(&w_hh.t());
    if let HBias::All(b) = hbias {
        hg = hg + b;
    }
    let gate = |t: &Tensor, i: usize| t.narrow(-1, (i * hs) as i64, hs);
    match cell {
        CellKind::RnnTanh => vec![(xg + &hg).tanh()],
        CellKind::RnnRelu => vec![(xg + &hg).relu()],
        CellKind::Gru => {
            let r = (gate(xg, 0) + gate(&hg, 0)).sigmoid();
            let z = (gate(xg, 1) + gate(&hg, 1)).sigmoid();
            let hn = match hbias {
                HBias::NGate(b) => gate(&hg, 2) + b,
                HBias::None | HBias::All(_) => gate(&hg, 2),
            };
            let n = (gate(xg, 2) + &r * &hn).tanh();
            let h2: Tensor = (1.0 - &z) * &n + &z * h;
            vec![h2]
        }
        CellKind::Lstm => {
            let c = &carry[1];
            let pre = xg + &hg;
            let i = gate(&pre, 0).sigmoid();
            let f = gate(&pre, 1).sigmoid();
            let gg = gate(&pre, 2).tanh();
            let o = gate(&pre, 3).sigmoid();
            let c2 = &f * c + &i * &gg;
            let mut h2 = &o * &c2.tanh();
            if let Some(w_hr) = w_hr {
                h2 = h2.matmul(&w_hr.t());
            }
            vec![h2, c2]
        }
    }
}

impl Recurrent {
    /// The layer over a padded batch of sequences of `lengths` (i64 `[B]`, each in
    /// `1..=T`), as PyTorch's `pack_padded_sequence(x, lengths, enforce_sorted=False)`
    /// → layer → `pad_packed_sequence`: outputs past each sequence's length are zeros,
    /// `h_n` (and `c_n`) are the states at each sequence's own length, and the reverse
    /// direction starts at each sequence's own end. Returns `(output, h_n, c_n)`
    /// (`c_n` for the LSTM). Lengths fed as a graph input are checked before every run
    /// ([`crate::Error::LengthOutOfRange`]).
    #[track_caller]
    pub fn forward_lengths(
        &self,
        x: &Tensor,
        lengths: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> (Tensor, Tensor, Option<Tensor>) {
        self.run(x, h0, c0, Some(lengths), SourceLoc::caller())
    }
}

impl Module for Recurrent {
    /// The output sequence (zero initial states).
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.run(x, None, None, None, SourceLoc::caller()).0
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        for w in &self.weights {
            let n = |what: &str| child(&self.name, &format!("{what}_{}", w.suffix));
            v.push((n("weight_ih"), w.w_ih.clone()));
            v.push((n("weight_hh"), w.w_hh.clone()));
            if let (Some(bi), Some(bh)) = (&w.b_ih, &w.b_hh) {
                v.push((n("bias_ih"), bi.clone()));
                v.push((n("bias_hh"), bh.clone()));
            }
            if let Some(hr) = &w.w_hr {
                v.push((n("weight_hr"), hr.clone()));
            }
        }
        v
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn is_training(&self) -> bool {
        self.training.get()
    }

    /// Every output may depend on every input step (all past steps, and all future ones
    /// for a bidirectional layer): the whole sequence, for receptive fields.
    fn time_map(&self) -> super::TimeMap {
        super::TimeMap::Global
    }
}

/// `(x, h0)` → `(output, h_n)` (RNN, GRU; for the LSTM `h0` with zero `c0`).
impl<'a> Forward<(&'a Tensor, Option<&'a Tensor>)> for Recurrent {
    type Output = (Tensor, Tensor);
    #[track_caller]
    fn call(&self, (x, h0): (&'a Tensor, Option<&'a Tensor>)) -> (Tensor, Tensor) {
        let (y, h, _) = self.run(x, h0, None, None, SourceLoc::caller());
        (y, h)
    }
}

/// LSTM: `(x, Some((h0, c0)))` → `(output, (h_n, c_n))`.
impl<'a> Forward<(&'a Tensor, Option<(&'a Tensor, &'a Tensor)>)> for Recurrent {
    type Output = (Tensor, (Tensor, Tensor));
    #[track_caller]
    fn call(
        &self,
        (x, state): (&'a Tensor, Option<(&'a Tensor, &'a Tensor)>),
    ) -> (Tensor, (Tensor, Tensor)) {
        let loc = SourceLoc::caller();
        let (h0, c0) = state.unzip();
        let (y, h, c) = self.run(x, h0, c0, None, loc.clone());
        let c = c.unwrap_or_else(|| {
            x.fail(
                self.cell.name(),
                "(h_n, c_n) is the LSTM's state; this layer has no cell state".into(),
                loc,
            )
        });
        (y, (h, c))
    }
}

/// One step of a recurrent cell, `torch.nn.RNNCell` / `LSTMCell` / `GRUCell`:
/// parameters `{name}.weight_ih` `[G·H, I]`, `weight_hh` `[G·H, H]`, `bias_ih`,
/// `bias_hh` (PyTorch's names, gate orders and initialisation). Input `[B, I]` (or
/// unbatched `[I]`); the state defaults to zeros. [`Forward`] with `(x, h)` gives `h'`
/// (RNN, GRU), with `(x, Some((h, c)))` gives `(h', c')` (LSTM); [`Module::forward`]
/// gives `h'` from zero states.
#[derive(Debug, Clone)]
pub struct RecurrentCell {
    /// The cell.
    pub cell: CellKind,
    /// Input features.
    pub input_size: usize,
    /// Hidden state size.
    pub hidden_size: usize,
    w: Weights,
    name: String,
}

impl RecurrentCell {
    /// A cell of `kind` with PyTorch's initialisation `U(−1/√H, 1/√H)`.
    #[track_caller]
    pub fn new(
        g: &GraphBuilder,
        name: &str,
        kind: CellKind,
        input_size: usize,
        hidden_size: usize,
        bias: bool,
    ) -> RecurrentCell {
        let bound = if hidden_size > 0 {
            1.0 / (hidden_size as f64).sqrt()
        } else {
            0.0
        };
        let u = |shape: &[usize]| init::uniform(DType::F32, shape, -bound, bound, g.init_seed());
        let gh = kind.gates() * hidden_size;
        let p = |what: &str, shape: &[usize]| g.parameter(&child(name, what), u(shape));
        let w_ih = p("weight_ih", &[gh, input_size]);
        let w_hh = p("weight_hh", &[gh, hidden_size]);
        let (b_ih, b_hh) = if bias {
            (Some(p("bias_ih", &[gh])), Some(p("bias_hh", &[gh])))
        } else {
            (None, None)
        };
        RecurrentCell {
            cell: kind,
            input_size,
            hidden_size,
            w: Weights {
                w_ih,
                w_hh,
                b_ih,
                b_hh,
                w_hr: None,
                suffix: String::new(),
            },
            name: name.to_string(),
        }
    }

    /// The new states from input `x` and states `h` (and `c`), zeros when absent.
    fn cell_step(
        &self,
        x: &Tensor,
        h: Option<&Tensor>,
        c: Option<&Tensor>,
        loc: SourceLoc,
    ) -> Vec<Tensor> {
        let api = match self.cell {
            CellKind::RnnTanh | CellKind::RnnRelu => "RNNCell",
            CellKind::Lstm => "LSTMCell",
            CellKind::Gru => "GRUCell",
        };
        let n = if self.cell == CellKind::Lstm { 2 } else { 1 };
        for t in [Some(x), h, c].into_iter().flatten() {
            if let Err(e) = t.check() {
                return vec![x.builder().poisoned(e); n];
            }
        }
        let xs = x.size();
        let unbatched = xs.len() == 1;
        if !(xs.len() == 2 || unbatched) || xs[xs.len() - 1] != self.input_size {
            return vec![
                x.fail(
                    api,
                    format!(
                        "expected input [B, {i}] (or unbatched [{i}]), got {xs:?}",
                        i = self.input_size
                    ),
                    loc
                );
                n
            ];
        }
        let xb = if unbatched { x.unsqueeze(0) } else { x.clone() };
        let b = xb.size()[0];
        let want: Vec<usize> = if unbatched {
            vec![self.hidden_size]
        } else {
            vec![b, self.hidden_size]
        };
        let mut states = Vec::with_capacity(n);
        for (s, what) in [(h, "h"), (c, "c")].into_iter().take(n) {
            match s {
                Some(s) if s.size() != want => {
                    return vec![
                        x.fail(
                            api,
                            format!("{what} must be {want:?}, got {:?}", s.size()),
                            loc.clone()
                        );
                        n
                    ]
                }
                Some(s) if unbatched => states.push(s.unsqueeze(0)),
                Some(s) => states.push(s.clone()),
                None => states.push(x.builder().zeros([b, self.hidden_size], x.dtype())),
            }
        }
        let xg = crate::functional::linear(&xb, &self.w.w_ih, self.w.b_ih.as_ref());
        let hbias = match &self.w.b_hh {
            Some(b) => HBias::All(b),
            None => HBias::None,
        };
        let out = step(
            self.cell,
            self.hidden_size,
            &states,
            &xg,
            &self.w.w_hh,
            hbias,
            None,
        );
        if unbatched {
            out.into_iter().map(|t| t.squeeze(0)).collect()
        } else {
            out
        }
    }
}

impl Module for RecurrentCell {
    /// `h'` from zero states.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.cell_step(x, None, None, SourceLoc::caller()).remove(0)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let n = |what: &str| child(&self.name, what);
        let mut v = vec![
            (n("weight_ih"), self.w.w_ih.clone()),
            (n("weight_hh"), self.w.w_hh.clone()),
        ];
        if let (Some(bi), Some(bh)) = (&self.w.b_ih, &self.w.b_hh) {
            v.push((n("bias_ih"), bi.clone()));
            v.push((n("bias_hh"), bh.clone()));
        }
        v
    }
}

/// `(x, h)` → `h'` (RNN, GRU cells; an LSTM cell returns its `h'` with zero `c`).
impl<'a> Forward<(&'a Tensor, Option<&'a Tensor>)> for RecurrentCell {
    type Output = Tensor;
    #[track_caller]
    fn call(&self, (x, h): (&'a Tensor, Option<&'a Tensor>)) -> Tensor {
        self.cell_step(x, h, None, SourceLoc::caller()).remove(0)
    }
}

/// LSTM cell: `(x, Some((h, c)))` → `(h', c')`.
impl<'a> Forward<(&'a Tensor, Option<(&'a Tensor, &'a Tensor)>)> for RecurrentCell {
    type Output = (Tensor, Tensor);
    #[track_caller]
    fn call(&self, (x, state): (&'a Tensor, Option<(&'a Tensor, &'a Tensor)>)) -> (Tensor, Tensor) {
        let loc = SourceLoc::caller();
        let (h, c) = state.unzip();
        let mut out = self.cell_step(x, h, c, loc.clone());
        if out.len() == 2 {
            let c2 = out
                .pop()
                .unwrap_or_else(|| x.fail("LSTMCell", "state".into(), loc.clone()));
            (out.remove(0), c2)
        } else {
            let h2 = out.remove(0);
            let e = x.fail(
                "RNNCell",
                "(h, c) is the LSTM cell's state; this cell has no cell state".into(),
                loc,
            );
            (h2, e)
        }
    }
}
