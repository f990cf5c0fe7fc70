//! The models and applications built on onde's layer library ([`onde_nn`]): kept out
//! of the library so it holds layers, not models (`../shared/DESIGN.md`: apps → data /
//! signal → nn).
//!
//! - [`examples`]: the benchmark workloads of `../shared/bench/bench.py` with
//!   PyTorch's module names (W1's MLP, W2's keyword spotter, W5's attention
//!   classifier) and the course's demo graphs, shown by `onde dump`, `onde summary`
//!   and `onde bench`, and used by the parity tests;
//! - [`recipes`]: complete training programs (the README's synthetic-signal MLP).
//!
//! The course's applications (keyword spotting, voice activity detection, speaker
//! recognition on real speech) will live here too.
#![warn(missing_docs)]

pub mod examples;
pub mod recipes;
