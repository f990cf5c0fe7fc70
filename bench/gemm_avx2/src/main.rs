//! See Cargo.toml: GFLOP/s of `gemm`'s AVX2 kernel and of matrixmultiply capped at AVX2.

use std::time::Instant;

fn main() {
    for (m, k, n, reps) in [
        (1024usize, 1024usize, 1024usize, 5usize),
        (64, 256, 256, 2000),
        (256, 64, 256, 2000),
        (3200, 64, 64, 200),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
        let mut c = vec![0f32; m * n];
        let mut best = [f64::MAX; 2];
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..reps {
                // SAFETY: row-major views of `a` (m×k), `b` (k×n) and `c` (m×n) with
                // their own lengths; `c` is written only.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        k as isize,
                        b.as_ptr(),
                        1,
                        n as isize,
                        0.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
            best[0] = best[0].min(t.elapsed().as_secs_f64() / reps as f64);
            let t = Instant::now();
            for _ in 0..reps {
                // SAFETY: as above.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
            }
            best[1] = best[1].min(t.elapsed().as_secs_f64() / reps as f64);
        }
        let gf = 2.0 * (m * k * n) as f64 / 1e9;
        println!(
            "{m}×{k}×{n}: gemm (AVX2 kernels) {:.1} GFLOP/s, matrixmultiply (MMTEST_FEATURE={}) {:.1} GFLOP/s",
            gf / best[0],
            option_env!("MMTEST_FEATURE").unwrap_or("unset: may use AVX-512"),
            gf / best[1]
        );
    }
}
