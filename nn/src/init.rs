//! Parameter initialisation on the host, with PyTorch's default distributions.
//!
//! Samples come from the runtime's counter-based generator (the one behind the `rand`
//! and `randn` ops, `onde_runtime::random`) seeded by
//! [`crate::GraphBuilder::init_seed`]: equal in distribution to PyTorch's (not
//! bit-identical: PyTorch's generator is a Mersenne twister), and reproducible from
//! [`crate::GraphBuilder::manual_seed`].

use onde_ir::{Array, DType};
use onde_runtime::uniform_f64;

/// `1/√fan_in`: the bound of PyTorch's default `Linear`/`Conv` weight
/// (`kaiming_uniform_(a=√5)` gives `gain·√(3/fan_in)` with `gain = √(2/(1+5))`) and bias.
pub fn linear_bound(fan_in: usize) -> f64 {
    if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f64).sqrt()
    }
}

/// `v` as an array of the float `dtype` (f32 for any non-float dtype).
fn float_array(dtype: DType, shape: &[usize], v: &[f64]) -> Array {
    let d = if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    Array::from_f64(d, shape.to_vec(), v).unwrap_or_else(|_| Array::full(d, shape.to_vec(), 0.0))
}

/// Uniform samples on `[lo, hi)` of a float dtype (f32 for any other dtype).
pub fn uniform(dtype: DType, shape: &[usize], lo: f64, hi: f64, seed: u64) -> Array {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n as u64)
        .map(|i| lo + (hi - lo) * uniform_f64(seed as i64, i))
        .collect();
    float_array(dtype, shape, &v)
}
