//! Counter-based random tensors.

use crate::common;

use common::*;
use onde_ir::{Array, DType, Distribution, Op, Shape};
use onde_runtime::{random_bits, standard_normal, uniform_f32, uniform_f64};

fn random(dist: Distribution, dtype: DType, shape: &[usize], seed: i64) -> Array {
    eval(
        Op::Random {
            dist,
            dtype,
            shape: Shape::new(shape.iter().copied()),
        },
        &[i64s(&[], &[seed])],
    )
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

#[test]
fn same_seed_same_values_different_seed_different_values() {
    for dist in [Distribution::Uniform, Distribution::Normal] {
        for dtype in [DType::F32, DType::F64] {
            let a = random(dist, dtype, &[4, 8], 42);
            let b = random(dist, dtype, &[4, 8], 42);
            let c = random(dist, dtype, &[4, 8], 43);
            assert_eq!(a, b);
            let (av, cv) = (a.to_f64_vec(), c.to_f64_vec());
            assert!(av.iter().zip(&cv).all(|(x, y)| x != y), "{av:?} vs {cv:?}");
            // Elements are pairwise distinct within a tensor too.
            let mut sorted = av.clone();
            sorted.sort_by(f64::total_cmp);
            sorted.dedup();
            assert_eq!(sorted.len(), av.len());
        }
    }
}

#[test]
fn element_depends_only_on_seed_and_flat_index() {
    let small = random(Distribution::Normal, DType::F64, &[5], -7);
    let big = random(Distribution::Normal, DType::F64, &[3, 4], -7);
    assert_eq!(small.to_f64_vec(), big.to_f64_vec()[..5].to_vec());
    let u = random(Distribution::Uniform, DType::F32, &[2, 3], 9);
    let want: Vec<f32> = (0..6).map(|i| uniform_f32(9, i)).collect();
    assert_eq!(u.as_f32().unwrap(), &want[..]);
    let n = random(Distribution::Normal, DType::F32, &[3], 9);
    let want: Vec<f32> = (0..3).map(|i| standard_normal(9, i) as f32).collect();
    assert_eq!(n.as_f32().unwrap(), &want[..]);
}

#[test]
fn documented_scheme() {
    // SplitMix64 with state mix(seed + γ): known first outputs of SplitMix64 for
    // state 0 are 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4.
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    const G: u64 = 0x9E37_79B9_7F4A_7C15;
    assert_eq!(mix(G), 0xE220_A839_7B1D_CDAF);
    assert_eq!(mix(G.wrapping_mul(2)), 0x6E78_9E6A_A1B9_65F4);
    let key = mix(5u64.wrapping_add(G));
    assert_eq!(random_bits(5, 0), mix(key.wrapping_add(G)));
    assert_eq!(random_bits(5, 3), mix(key.wrapping_add(G.wrapping_mul(4))));
    let b = random_bits(5, 3);
    assert_eq!(uniform_f64(5, 3), (b >> 11) as f64 / (1u64 << 53) as f64);
    assert_eq!(uniform_f32(5, 3), (b >> 40) as f32 / (1u64 << 24) as f32);
    let (u1, u2) = (uniform_f64(5, 6), uniform_f64(5, 7));
    let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    assert_eq!(standard_normal(5, 3), z);
}

#[test]
fn uniform_is_in_unit_interval_with_mean_one_half() {
    for dtype in [DType::F32, DType::F64] {
        let v = random(Distribution::Uniform, dtype, &[100_000], 1234).to_f64_vec();
        assert!(v.iter().all(|&x| (0.0..1.0).contains(&x)));
        let (mean, var) = mean_var(&v);
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.002, "var {var}");
    }
}

#[test]
fn normal_has_mean_zero_variance_one() {
    for dtype in [DType::F32, DType::F64] {
        let v = random(Distribution::Normal, dtype, &[100_000], 99).to_f64_vec();
        assert!(v.iter().all(|x| x.is_finite()));
        let (mean, var) = mean_var(&v);
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "var {var}");
    }
}

#[test]
fn random_of_empty_and_scalar_shape() {
    assert_eq!(
        random(Distribution::Uniform, DType::F32, &[0, 4], 1),
        f32s(&[0, 4], &[])
    );
    let s = random(Distribution::Uniform, DType::F64, &[], 1);
    assert_eq!(s, f64s(&[], &[uniform_f64(1, 0)]));
}
