//! Sibling reductions: sums of the same kind over the same axes of one iteration space
//! share one loop (`Reduction::also`), so the data they read is read once — a batch
//! norm backward's `Σ g` and `Σ g·(x − μ)` over `[N, C, T]`. Each sum is bit for bit
//! the sum compiled alone (same accumulation order), at every length the vector loop
//! handles (unrolled, whole vectors, scalar tail), with two threads, in f32 and f64,
//! partial and full reductions, at every ISA level this CPU has.

use onde_codegen::{CompileOptions, Executable, IsaLevel};
use onde_ir::{parse_graph, Array, DType};

fn vals(n: usize, s: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (((i * 7919 + s * 104_729) % 2003) as f64 - 1001.0) * 0.0137)
        .collect()
}

fn array(dt: DType, shape: &[usize], v: Vec<f64>) -> Array {
    if dt == DType::F32 {
        Array::f32(shape.to_vec(), v.iter().map(|&x| x as f32).collect()).unwrap()
    } else {
        Array::f64(shape.to_vec(), v).unwrap()
    }
}

fn compile(src: &str, threads: usize, isa: IsaLevel) -> Executable {
    Executable::compile(
        &parse_graph(src).unwrap(),
        CompileOptions {
            threads,
            isa,
            ..CompileOptions::default()
        },
    )
    .unwrap()
}

fn levels() -> Vec<IsaLevel> {
    crate::common::isa_levels()
}

fn bits(a: &Array) -> Vec<u64> {
    a.to_f64_vec().iter().map(|v| v.to_bits()).collect()
}

/// `[n, c, t]`: the masked gradient's sum and its sum against the centred input.
fn batch_norm_sums(dt: &str, n: usize, c: usize, t: usize, outputs: &str) -> String {
    format!(
        r#"graph {{
  %0: {dt}[{n},{c},{t}] = input "x"
  %1: {dt}[{n},{c},{t}] = input "g"
  %2: {dt}[1,{c},1] = input "m"
  %3: {dt}[] = constant {dt}[] [0.0]
  %4: {dt}[{n},{c},{t}] = expand %3 shape=[{n},{c},{t}]
  %5: bool[{n},{c},{t}] = gt %0, %4
  %6: {dt}[{n},{c},{t}] = where %5, %1, %4
  %7: {dt}[{n},{c},{t}] = sub %0, %2
  %8: {dt}[{n},{c},{t}] = mul %6, %7
  %9: {dt}[1,{c},1] = reduce_sum %6 axes=[0,2] keepdim=true
  %10: {dt}[1,{c},1] = reduce_sum %8 axes=[0,2] keepdim=true
  outputs {outputs}
}}"#
    )
}

#[test]
fn batch_norm_sums_share_one_pass_and_keep_their_bits() {
    for (dt, dtype) in [("f32", DType::F32), ("f64", DType::F64)] {
        for t in [1usize, 3, 4, 5, 17, 64, 100] {
            let (n, c) = (5, 6);
            let x = array(dtype, &[n, c, t], vals(n * c * t, t));
            let g = array(dtype, &[n, c, t], vals(n * c * t, t + 1));
            let m = array(dtype, &[1, c, 1], vals(c, t + 2));
            let feeds = [("x", &x), ("g", &g), ("m", &m)];
            for isa in levels() {
                for threads in [1, 2] {
                    let mut both = compile(&batch_norm_sums(dt, n, c, t, "%9, %10"), threads, isa);
                    let dump = both.dump_fused();
                    assert!(dump.contains("into store 0, 1"), "{dt} t={t}: {dump}");
                    let got = both.run(&feeds).unwrap();
                    for (k, out) in ["%9", "%10"].iter().enumerate() {
                        let mut alone = compile(&batch_norm_sums(dt, n, c, t, out), threads, isa);
                        let want = alone.run(&feeds).unwrap();
                        assert_eq!(
                            bits(&got[k]),
                            bits(&want[0]),
                            "{dt} t={t} {isa:?} threads={threads}: sum {k}"
                        );
                    }
                    // And against a host sum in f64.
                    let (xv, gv, mv) = (x.to_f64_vec(), g.to_f64_vec(), m.to_f64_vec());
                    for (ch, &mean) in mv.iter().enumerate() {
                        let (mut s1, mut s2) = (0.0, 0.0);
                        for b in 0..n {
                            for i in 0..t {
                                let j = (b * c + ch) * t + i;
                                let gm = if xv[j] > 0.0 { gv[j] } else { 0.0 };
                                s1 += gm;
                                s2 += gm * (xv[j] - mean);
                            }
                        }
                        let tol = if dtype == DType::F32 { 1e-3 } else { 1e-9 };
                        let (a, b2) = (got[0].to_f64_vec()[ch], got[1].to_f64_vec()[ch]);
                        assert!((a - s1).abs() <= tol * (1.0 + s1.abs()), "{a} vs {s1}");
                        assert!((b2 - s2).abs() <= tol * (1.0 + s2.abs()), "{b2} vs {s2}");
                    }
                }
            }
        }
    }
}

#[test]
fn full_sibling_sums_run_as_one_share() {
    let n = 100_003;
    let src = format!(
        r#"graph {{
  %0: f32[{n}] = input "x"
  %1: f32[{n}] = input "y"
  %2: f32[{n}] = mul %0, %1
  %3: f32[] = reduce_sum %0 axes=[0] keepdim=false
  %4: f32[] = reduce_sum %2 axes=[0] keepdim=false
  outputs %3, %4
}}"#
    );
    let x = array(DType::F32, &[n], vals(n, 1));
    let y = array(
        DType::F32,
        &[n],
        vals(n, 2).iter().map(|v| v * 0.01).collect(),
    );
    let one = compile(&src, 1, IsaLevel::Avx512)
        .run(&[("x", &x), ("y", &y)])
        .unwrap();
    let mut exe = compile(&src, 2, IsaLevel::Avx512);
    assert!(exe.dump_fused().contains("into store 0, 1"));
    let two = exe.run(&[("x", &x), ("y", &y)]).unwrap();
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(bits(a), bits(b), "a split sibling reduction would differ");
    }
    let (xv, yv) = (x.to_f64_vec(), y.to_f64_vec());
    let s: f64 = xv.iter().sum();
    let p: f64 = xv.iter().zip(&yv).map(|(a, b)| a * b).sum();
    // f32 sums of 10⁵ terms: within 1e-5 of the sum of magnitudes.
    let mag: f64 = xv.iter().map(|v| v.abs()).sum();
    let pmag: f64 = xv.iter().zip(&yv).map(|(a, b)| (a * b).abs()).sum();
    assert!(
        (one[0].to_f64_vec()[0] - s).abs() <= 1e-5 * mag,
        "{:?} vs {s} {p}",
        one
    );
    assert!((one[1].to_f64_vec()[0] - p).abs() <= 1e-5 * pmag);
}
