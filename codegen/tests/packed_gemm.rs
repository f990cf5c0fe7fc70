//! The prepacked-weights GEMM (`native::prepacked`, AVX2 and AVX-512) against an f64
//! reference over odd sizes and strided operands, the same bits at every vector width
//! the CPU has (with each activation epilogue), and its use by versioned runs of an
//! executable.

use onde_codegen::native::prepacked::{
    available, gemm, gemm_epilogue_capped, pack_b, Activation, PackedB,
};
use onde_codegen::{CompileOptions, Executable, IsaLevel};
use onde_ir::{Array, DType, Graph, Op, TensorType};

fn vals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn packed_gemm_matches_reference() {
    if !available() {
        // Without AVX2 the executor never takes this path; the kernel refuses.
        let mut pk = PackedB::default();
        pack_b(&[1.0], 1, 1, 1, 1, &mut pk).unwrap();
        assert!(gemm(1, &[1.0], 1, 1, &pk, &mut [0.0], 1).is_err());
        return;
    }
    for &(m, k, n) in &[
        (1, 1, 1),
        (13, 7, 33),
        (12, 0, 5),
        (25, 40, 70),
        (64, 256, 10),
        (3, 5, 64),
    ] {
        for a_t in [false, true] {
            for b_t in [false, true] {
                let a = vals(m * k, 1 + m as u64);
                let b = vals(k * n, 2 + n as u64);
                // a: [m,k] row-major, or stored transposed ([k,m]) and read with strides.
                let (rsa, csa) = if a_t {
                    (1, m as isize)
                } else {
                    (k as isize, 1)
                };
                let (rsb, csb) = if b_t {
                    (1, k as isize)
                } else {
                    (n as isize, 1)
                };
                let at = |i: usize, p: usize| a[i * rsa as usize + p * csa as usize] as f64;
                let bt = |p: usize, j: usize| b[p * rsb as usize + j * csb as usize] as f64;
                let mut pk = PackedB::default();
                pack_b(&b, k, n, rsb, csb, &mut pk).unwrap();
                let mut c = vec![f32::NAN; m * n + 3];
                gemm(m, &a, rsa, csa, &pk, &mut c, n).unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                        let got = c[i * n + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-5 * (k as f64 + 1.0),
                            "m{m} k{k} n{n} a_t{a_t} b_t{b_t} ({i},{j}): {got} vs {want}"
                        );
                    }
                }
                // Nothing written past the output.
                assert!(c[m * n..].iter().all(|v| v.is_nan()));
            }
        }
    }
}

#[test]
fn every_width_computes_the_same_bits_with_each_epilogue() {
    let widths: Vec<IsaLevel> = IsaLevel::available()
        .into_iter()
        .filter(|&l| l >= IsaLevel::Avx2)
        .collect();
    if widths.is_empty() {
        let mut pk = PackedB::default();
        pack_b(&[1.0], 1, 1, 1, 1, &mut pk).unwrap();
        let r = gemm_epilogue_capped(
            IsaLevel::Avx512,
            1,
            &[1.0],
            1,
            1,
            &pk,
            &mut [0.0],
            1,
            None,
            Activation::None,
        );
        assert!(r.is_err(), "no SIMD width: the kernel refuses");
        return;
    }
    // Sizes with partial tiles on both widths (rows not a multiple of 6 or 12, columns
    // not of 8, 16 or 32).
    for &(m, k, n) in &[(13, 37, 45), (64, 256, 10), (7, 5, 33), (1, 300, 17)] {
        let (a, b) = (vals(m * k, 7 + m as u64), vals(k * n, 9 + n as u64));
        let bias = vals(n, 11);
        let mut pk = PackedB::default();
        pack_b(&b, k, n, n as isize, 1, &mut pk).unwrap();
        for act in [
            Activation::None,
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Relu,
        ] {
            let outs: Vec<Vec<f32>> = widths
                .iter()
                .map(|&isa| {
                    let mut c = vec![f32::NAN; m * n + 2];
                    gemm_epilogue_capped(
                        isa,
                        m,
                        &a,
                        k as isize,
                        1,
                        &pk,
                        &mut c,
                        n,
                        Some(&bias),
                        act,
                    )
                    .unwrap();
                    assert!(c[m * n..].iter().all(|v| v.is_nan()), "wrote past the end");
                    c
                })
                .collect();
            for (isa, c) in widths.iter().zip(&outs) {
                let same = c
                    .iter()
                    .zip(&outs[0])
                    .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
                assert!(
                    same,
                    "m{m} k{k} n{n} {act:?}: {isa} differs from {}",
                    widths[0]
                );
            }
            // And the values are right (f64 reference, then the activation).
            for i in 0..m {
                for j in 0..n {
                    let z: f64 = (0..k)
                        .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                        .sum::<f64>()
                        + f64::from(bias[j]);
                    let want = match act {
                        Activation::None => z,
                        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
                        Activation::Tanh => z.tanh(),
                        Activation::Relu => z.max(0.0),
                    };
                    let got = f64::from(outs[0][i * n + j]);
                    assert!(
                        (got - want).abs() <= 1e-5 * (k as f64 + 1.0),
                        "m{m} k{k} n{n} {act:?} ({i},{j}): {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn packed_gemm_rejects_bad_views() {
    let mut pk = PackedB::default();
    assert!(
        pack_b(&[1.0; 5], 2, 3, 3, 1, &mut pk).is_err(),
        "b too short"
    );
    pack_b(&[1.0; 6], 2, 3, 3, 1, &mut pk).unwrap();
    assert!(
        gemm(2, &[1.0; 3], 2, 1, &pk, &mut [0.0; 6], 3).is_err(),
        "a too short"
    );
    assert!(
        gemm(2, &[1.0; 4], 2, 1, &pk, &mut [0.0; 5], 3).is_err(),
        "c too short"
    );
}

/// `y = x @ wᵀ` with `w` a parameter.
fn linear_graph(m: usize, k: usize, n: usize) -> Graph {
    let mut g = Graph::new();
    let (_, x) = g
        .add_op(
            Op::Input {
                name: "x".into(),
                ty: TensorType::new(DType::F32, [m, k]),
            },
            &[],
            None,
        )
        .unwrap();
    let (_, w) = g
        .add_op(
            Op::Parameter {
                name: "w".into(),
                ty: TensorType::new(DType::F32, [n, k]),
            },
            &[],
            None,
        )
        .unwrap();
    let (_, wt) = g
        .add_op(Op::Permute { perm: vec![1, 0] }, &[w[0]], None)
        .unwrap();
    let (_, y) = g.add_op(Op::MatMul, &[x[0], wt[0]], None).unwrap();
    g.set_outputs(vec![y[0]]);
    g
}

#[test]
fn versioned_runs_reuse_packed_weights_until_the_version_changes() {
    let (m, k, n) = (5, 6, 7);
    let g = linear_graph(m, k, n);
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let x = Array::f32([m, k], vals(m * k, 3)).unwrap();
    let w1 = Array::f32([n, k], vals(n * k, 4)).unwrap();
    let reference = |w: &Array| {
        onde_runtime::run(
            &g,
            &[("x".to_string(), x.clone()), ("w".to_string(), w.clone())]
                .into_iter()
                .collect(),
        )
        .unwrap()
    };
    let close = |a: &[f32], b: &Array| {
        a.iter()
            .zip(b.as_f32().unwrap())
            .all(|(x, y)| (x - y).abs() <= 1e-5)
    };
    exe.run_in_place_versioned(&[("x", &x), ("w", &w1)], 1, &["w"])
        .unwrap();
    assert!(close(exe.output_f32(0).unwrap(), &reference(&w1)[0]));
    // A new version with other weights: repacked.
    let w2 = Array::f32([n, k], vals(n * k, 5)).unwrap();
    exe.run_in_place_versioned(&[("x", &x), ("w", &w2)], 2, &["w"])
        .unwrap();
    assert!(close(exe.output_f32(0).unwrap(), &reference(&w2)[0]));
    // An unversioned run never reuses.
    exe.run_in_place(&[("x", &x), ("w", &w1)]).unwrap();
    assert!(close(exe.output_f32(0).unwrap(), &reference(&w1)[0]));
    // Same version, same array, values changed behind the executable's back: the packed
    // copy is reused (that is the contract: bump the version when weights change).
    if available() {
        let mut w3 = w2.clone();
        exe.run_in_place_versioned(&[("x", &x), ("w", &w3)], 3, &["w"])
            .unwrap();
        w3.as_f32_mut().unwrap().fill(0.0);
        exe.run_in_place_versioned(&[("x", &x), ("w", &w3)], 3, &["w"])
            .unwrap();
        assert!(
            close(exe.output_f32(0).unwrap(), &reference(&w2)[0]),
            "reused"
        );
        exe.run_in_place_versioned(&[("x", &x), ("w", &w3)], 4, &["w"])
            .unwrap();
        assert!(
            exe.output_f32(0).unwrap().iter().all(|&v| v == 0.0),
            "repacked"
        );
    }
    // A feed not declared as a weight is never reused, even with the same version.
    exe.run_in_place_versioned(&[("x", &x), ("w", &w2)], 2, &[])
        .unwrap();
    assert!(close(exe.output_f32(0).unwrap(), &reference(&w2)[0]));
}
