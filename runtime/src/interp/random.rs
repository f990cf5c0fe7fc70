//! The counter-based random numbers of `Op::Random`.
//!
//! Element `i` (row-major flat index) of a random tensor is a pure function of the seed
//! and `i`, so results do not depend on evaluation order or backend. The scheme, which
//! every backend must reproduce exactly:
//!
//! 1. **Bits.** With `γ = 0x9E37_79B9_7F4A_7C15` and SplitMix64's finaliser
//!    `mix(z) = z₃` where `z₁ = (z ^ (z >> 30)) · 0xBF58_476D_1CE4_E5B9`,
//!    `z₂ = (z₁ ^ (z₁ >> 27)) · 0x94D0_49BB_1331_11EB`, `z₃ = z₂ ^ (z₂ >> 31)`
//!    (all arithmetic on `u64`, wrapping):
//!    `key = mix(seed + γ)` (the seed's two's-complement bits), and the bits of counter
//!    `c` are `bits(seed, c) = mix(key + (c + 1)·γ)`: output `c` of a SplitMix64
//!    generator whose state starts at `key`. See [`random_bits`].
//! 2. **Uniform** on `[0, 1)`: element `i` uses counter `c = i`. For f32,
//!    `(bits >> 40) · 2⁻²⁴` (24 random bits, exact in f32); for f64,
//!    `(bits >> 11) · 2⁻⁵³` (53 random bits). See [`uniform_f32`], [`uniform_f64`].
//! 3. **Normal** (standard): element `i` uses the two f64 uniforms (53 bits each)
//!    `u₁` of counter `2i` and `u₂` of counter `2i + 1`, and the Box–Muller cosine
//!    branch `z = sqrt(-2·ln(1 - u₁)) · cos(2π·u₂)`, computed in f64 and rounded once
//!    to the dtype (also for f32). `1 - u₁ ∈ (0, 1]` keeps the logarithm finite. See
//!    [`standard_normal`].

use super::elem::{at, bad_dtype, make, typed};
use super::error::{InterpError, Result};
use super::index::count;
use onde_ir::{Array, DType, Distribution, Shape};

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 64 random bits of counter `counter` for `seed`:
/// `mix(mix(seed + γ) + (counter + 1)·γ)` (wrapping `u64` arithmetic; `mix` and `γ` are
/// defined in the [module documentation](self)).
pub fn random_bits(seed: i64, counter: u64) -> u64 {
    let key = mix((seed as u64).wrapping_add(GAMMA));
    mix(key.wrapping_add(counter.wrapping_add(1).wrapping_mul(GAMMA)))
}

/// Element `i` of an f32 uniform tensor: `(random_bits(seed, i) >> 40) · 2⁻²⁴`, in
/// `[0, 1)`.
pub fn uniform_f32(seed: i64, i: u64) -> f32 {
    (random_bits(seed, i) >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// Element `i` of an f64 uniform tensor: `(random_bits(seed, i) >> 11) · 2⁻⁵³`, in
/// `[0, 1)`.
pub fn uniform_f64(seed: i64, i: u64) -> f64 {
    (random_bits(seed, i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Element `i` of a normal tensor, before rounding to its dtype: Box–Muller
/// `sqrt(-2·ln(1 - u₁)) · cos(2π·u₂)` with `u₁ = uniform_f64(seed, 2i)` and
/// `u₂ = uniform_f64(seed, 2i + 1)`.
pub fn standard_normal(seed: i64, i: u64) -> f64 {
    let u1 = uniform_f64(seed, i.wrapping_mul(2));
    let u2 = uniform_f64(seed, i.wrapping_mul(2).wrapping_add(1));
    (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The `random` op: a tensor of `shape` and float `dtype` drawn from `dist` with the
/// scalar i64 seed.
pub(crate) fn random(
    seed: &Array,
    dist: Distribution,
    dtype: DType,
    shape: &Shape,
) -> Result<Array> {
    if seed.shape().rank() != 0 {
        return Err(InterpError::internal("the seed must be a scalar"));
    }
    let s = at(typed::<i64>(seed)?, 0)?;
    let dims = shape.dims().to_vec();
    let counters = 0..count(&dims) as u64;
    match (dtype, dist) {
        (DType::F32, Distribution::Uniform) => make(
            dims,
            counters.map(|i| uniform_f32(s, i)).collect::<Vec<_>>(),
        ),
        (DType::F64, Distribution::Uniform) => make(
            dims,
            counters.map(|i| uniform_f64(s, i)).collect::<Vec<_>>(),
        ),
        (DType::F32, Distribution::Normal) => make(
            dims,
            counters
                .map(|i| standard_normal(s, i) as f32)
                .collect::<Vec<_>>(),
        ),
        (DType::F64, Distribution::Normal) => make(
            dims,
            counters.map(|i| standard_normal(s, i)).collect::<Vec<_>>(),
        ),
        (DType::Bool | DType::I64, Distribution::Uniform | Distribution::Normal) => {
            Err(bad_dtype("random", dtype))
        }
    }
}
