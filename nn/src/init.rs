//! Parameter initialisation on the host, with PyTorch's default distributions.
//!
//! Samples come from SplitMix64 seeded by [`crate::GraphBuilder::init_seed`]: equal in
//! distribution to PyTorch's (not bit-identical: PyTorch's generator is a Mersenne
//! twister), and reproducible from [`crate::GraphBuilder::manual_seed`].

use onde_ir::{Array, DType};

/// `1/√fan_in`: the bound of PyTorch's default `Linear`/`Conv` weight
/// (`kaiming_uniform_(a=√5)` gives `gain·√(3/fan_in)` with `gain = √(2/(1+5))`) and bias.
pub fn linear_bound(fan_in: usize) -> f64 {
    if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f64).sqrt()
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform samples on `[lo, hi)` of a float dtype (f32 for any other dtype).
pub fn uniform(dtype: DType, shape: &[usize], lo: f64, hi: f64, seed: u64) -> Array {
    let n: usize = shape.iter().product();
    let mut s = seed;
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let u = (splitmix(&mut s) >> 11) as f64 / (1u64 << 53) as f64;
            lo + (hi - lo) * u
        })
        .collect();
    let d = if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    Array::from_f64(d, shape.to_vec(), &v).unwrap_or_else(|_| Array::full(d, shape.to_vec(), 0.0))
}

/// Standard normal samples times `std` (Box–Muller).
pub fn normal(dtype: DType, shape: &[usize], std: f64, seed: u64) -> Array {
    let n: usize = shape.iter().product();
    let mut s = seed;
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let u1 = ((splitmix(&mut s) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let u2 = (splitmix(&mut s) >> 11) as f64 / (1u64 << 53) as f64;
            std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect();
    let d = if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    Array::from_f64(d, shape.to_vec(), &v).unwrap_or_else(|_| Array::full(d, shape.to_vec(), 0.0))
}
