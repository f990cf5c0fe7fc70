//! Results do not depend on the thread count, beyond the documented reordering of
//! float sums: elementwise outputs are bit-identical with 1 and 2 threads, reductions
//! agree to rounding.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};

const SRC: &str = r#"graph {
  %0: f32[300000] = input "x"
  %1: f32[300000] = input "a"
  %2: f32[300000] = mul %0, %1
  %3: f32[300000] = tanh %2
  %4: f32[300000] = sigmoid %0
  %5: f32[300000] = mul %3, %4
  %6: f32[] = reduce_sum %5 axes=[0] keepdim=false
  %7: f32[] = reduce_max %2 axes=[0] keepdim=false
  %8: f32[600,500] = reshape %5 shape=[600,500]
  %9: f32[600] = reduce_sum %8 axes=[1] keepdim=false
  outputs %6, %5, %7, %9
}"#;

fn run(threads: usize) -> Vec<Array> {
    let g = parse_graph(SRC).unwrap();
    let n = 300_000;
    let x = Array::f32(
        [n],
        (0..n)
            .map(|i| ((i % 1000) as f32 - 500.0) * 0.003)
            .collect(),
    )
    .unwrap();
    let a = Array::f32(
        [n],
        (0..n).map(|i| ((i % 777) as f32 - 300.0) * 0.002).collect(),
    )
    .unwrap();
    let mut exe = Executable::compile(
        &g,
        CompileOptions {
            threads,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    exe.run(&[("x", &x), ("a", &a)]).unwrap()
}

#[test]
fn one_and_two_threads_agree() {
    let (one, two) = (run(1), run(2));
    assert_eq!(one[1], two[1], "elementwise output differs");
    assert_eq!(one[2], two[2], "max differs");
    let (s1, s2) = (one[0].to_f64_vec()[0], two[0].to_f64_vec()[0]);
    assert!((s1 - s2).abs() <= 1e-4 * s1.abs().max(1.0), "{s1} vs {s2}");
    for (p, q) in one[3].to_f64_vec().iter().zip(two[3].to_f64_vec()) {
        assert!((p - q).abs() <= 1e-5 * p.abs().max(1.0), "{p} vs {q}");
    }
}

/// Softmax and its backward, lines split across threads (each line whole on one
/// thread), and a column sum (always one share) give the bits of one thread, at every
/// ISA level this CPU has: lines not a multiple of the thread count, fewer lines than
/// threads, `inner > 1`.
#[test]
fn softmax_and_column_sums_are_the_same_bits_on_two_threads() {
    let src = r#"graph {
  %0: f32[301,257] = input "x"
  %1: f32[301,257] = softmax %0 axis=1
  %2: f32[1,77357] = reshape %0 shape=[1,77357]
  %3: f32[1,77357] = softmax %2 axis=1
  %4: f32[7,43,257] = reshape %0 shape=[7,43,257]
  %5: f32[7,43,257] = softmax %4 axis=1
  %6: f32[257] = reduce_sum %0 axes=[0] keepdim=false
  %7: f32[301,257] = softmax_backward %0, %1 axis=1
  %8: f32[7,43,257] = softmax_backward %4, %5 axis=1
  outputs %1, %3, %5, %6, %7, %8
}"#;
    let g = parse_graph(src).unwrap();
    let n = 301 * 257;
    let x = Array::f32(
        [301, 257],
        (0..n)
            .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) * 0.004)
            .collect(),
    )
    .unwrap();
    for isa in onde_codegen::IsaLevel::available() {
        let outs: Vec<Vec<Array>> = [1, 2]
            .into_iter()
            .map(|threads| {
                let opts = CompileOptions {
                    threads,
                    isa,
                    ..CompileOptions::default()
                };
                let mut exe = Executable::compile(&g, opts).unwrap();
                exe.run(&[("x", &x)]).unwrap()
            })
            .collect();
        for (k, (a, b)) in outs[0].iter().zip(&outs[1]).enumerate() {
            let bits = |v: &Array| -> Vec<u32> {
                v.as_f32().unwrap().iter().map(|f| f.to_bits()).collect()
            };
            assert_eq!(bits(a), bits(b), "{isa}: output {k}");
        }
    }
}
