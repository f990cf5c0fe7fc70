//! The front-end at a model's input: a log-mel module in a `Sequential` before a
//! convolution and statistics pooling compiles into one training step with the
//! classifier, learns to tell two tones from noise apart, and `summarize` reports the
//! STFT's window in its receptive field.

use onde_ir::{Array, DType};
use onde_nn::loss::{cross_entropy, NllOpts};
use onde_nn::module::{summarize, Conv, Linear, Module, Relu, Sequential, StatisticsPooling};
use onde_nn::optim::Adam;
use onde_nn::{ConvOpts, GraphBuilder, TrainStep};
use onde_signal::{LogMel, MelOpts, SpectrogramOpts};

const N: usize = 1024;
const B: usize = 12;

/// Class 0: a 500 Hz tone, 1: a 2 kHz tone, 2: noise (8 kHz rate), at random phases.
fn batch(seed: u64) -> (Array, Array) {
    let mut x = Vec::with_capacity(B * N);
    let mut y = Vec::with_capacity(B);
    for b in 0..B {
        let class = (b as u64 + seed) % 3;
        let phase = onde_runtime::uniform_f64(seed as i64, b as u64) * std::f64::consts::TAU;
        for t in 0..N {
            let u = onde_runtime::uniform_f64(seed as i64 + 99, (b * N + t) as u64) - 0.5;
            let s = match class {
                0 => (std::f64::consts::TAU * 500.0 * t as f64 / 8000.0 + phase).sin(),
                1 => (std::f64::consts::TAU * 2000.0 * t as f64 / 8000.0 + phase).sin(),
                _ => 2.0 * u,
            };
            x.push((0.5 * s + 0.05 * u) as f32);
        }
        y.push(class as i64);
    }
    (Array::f32([B, N], x).unwrap(), Array::i64([B], y).unwrap())
}

#[test]
fn a_log_mel_front_end_trains_inside_the_compiled_step() {
    let g = GraphBuilder::new();
    g.manual_seed(5);
    let front = LogMel {
        mel: MelOpts {
            spec: SpectrogramOpts::new(256).hop(128),
            n_mels: 24,
            ..MelOpts::new(8000)
        },
        offset: 1e-6,
    };
    let mut m = Sequential::new("");
    m.push(front)
        .push(Conv::conv1d(&g, "conv", 24, 16, 3, ConvOpts::default()))
        .push(Relu)
        .push(StatisticsPooling::new())
        .push(Linear::new(&g, "fc", 32, 3));
    let x = g.input("x", DType::F32, [B, N]);
    let y = g.input("y", DType::I64, [B]);
    let loss = cross_entropy(&m.forward(&x), &y, &NllOpts::default());
    let mut step = TrainStep::new(&g, &loss, &Adam::new(1e-2)).unwrap();
    let mut losses = Vec::new();
    for i in 0..60 {
        let (bx, by) = batch(i % 5);
        losses.push(step.step(&[("x", &bx), ("y", &by)]).unwrap());
    }
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[55..].iter().sum::<f64>() / 5.0;
    assert!(last < 0.2 * first, "loss {first} -> {last}");
    // The receptive field starts with the STFT window (256 samples every 128).
    let s = summarize(&m, &[B, N]).unwrap().to_string();
    assert!(s.contains("256") && s.contains("128"), "{s}");
}
