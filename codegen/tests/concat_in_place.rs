//! Concatenations written in place (`Planner::concat_in_place`): when an operand is
//! computed, each operand's kernel stores straight into its window of the result (no
//! operand buffers, no copy step), kernels over one operand shape merge into one loop,
//! and the result equals the interpreter's along every axis, for odd widths, an
//! operand that is a plain input (copied in by a kernel), an empty operand, f32, f64
//! and i64, one and two threads, at every ISA level this CPU has.

use onde_codegen::{CompileOptions, Executable, IsaLevel};
use onde_ir::{parse_graph, Array};
use std::collections::HashMap;

fn levels() -> Vec<IsaLevel> {
    crate::common::isa_levels()
}

fn vals(n: usize, s: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (((i * 7919 + s * 104_729) % 2003) as f64 - 1001.0) * 0.0137)
        .collect()
}

fn feed(dt: &str, shape: &[usize], seed: usize) -> Array {
    let n = shape.iter().product();
    let v = vals(n, seed);
    match dt {
        "f32" => Array::f32(shape.to_vec(), v.iter().map(|&x| x as f32).collect()).unwrap(),
        "f64" => Array::f64(shape.to_vec(), v).unwrap(),
        _ => Array::i64(
            shape.to_vec(),
            v.iter().map(|&x| (x * 10.0) as i64).collect(),
        )
        .unwrap(),
    }
}

fn shape_str(s: &[usize]) -> String {
    s.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `concat(a·b, neg(a), c, b + b)` along `axis`, where the operands' extents along
/// `axis` are `widths` (c is a plain input; a width may be 0).
fn graph(dt: &str, base: &[usize], axis: usize, widths: [usize; 4]) -> String {
    let with = |w: usize| {
        let mut s = base.to_vec();
        s[axis] = w;
        s
    };
    let total: usize = widths.iter().sum();
    let (s0, s1, s2, s3) = (
        with(widths[0]),
        with(widths[1]),
        with(widths[2]),
        with(widths[3]),
    );
    format!(
        r#"graph {{
  %0: {dt}[{a}] = input "a"
  %1: {dt}[{a}] = input "b"
  %2: {dt}[{a}] = mul %0, %1
  %3: {dt}[{b}] = input "a1"
  %4: {dt}[{b}] = neg %3
  %5: {dt}[{c}] = input "c"
  %6: {dt}[{d}] = input "b3"
  %7: {dt}[{d}] = add %6, %6
  %8: {dt}[{o}] = concat %2, %4, %5, %7 axis={axis}
  outputs %8
}}"#,
        a = shape_str(&s0),
        b = shape_str(&s1),
        c = shape_str(&s2),
        d = shape_str(&s3),
        o = shape_str(&with(total)),
    )
}

#[test]
fn computed_operands_are_written_into_the_concatenation() {
    let base = [3usize, 5, 7];
    for dt in ["f32", "f64", "i64"] {
        for axis in 0..3 {
            for widths in [[2usize, 3, 1, 4], [5, 0, 17, 1], [1, 1, 1, 1]] {
                let src = graph(dt, &base, axis, widths);
                let g = parse_graph(&src).unwrap();
                let with = |w: usize| {
                    let mut s = base.to_vec();
                    s[axis] = w;
                    s
                };
                let feeds: Vec<(&str, Array)> = vec![
                    ("a", feed(dt, &with(widths[0]), 1)),
                    ("b", feed(dt, &with(widths[0]), 2)),
                    ("a1", feed(dt, &with(widths[1]), 3)),
                    ("c", feed(dt, &with(widths[2]), 4)),
                    ("b3", feed(dt, &with(widths[3]), 5)),
                ];
                let map: HashMap<String, Array> = feeds
                    .iter()
                    .map(|(n, a)| (n.to_string(), a.clone()))
                    .collect();
                let want = onde_runtime::run(&g, &map).unwrap();
                for isa in levels() {
                    for threads in [1, 2] {
                        let mut exe = Executable::compile(
                            &g,
                            CompileOptions {
                                isa,
                                threads,
                                ..CompileOptions::default()
                            },
                        )
                        .unwrap();
                        let dump = exe.dump_fused();
                        assert!(!dump.contains("copy Concat"), "{src}\n{dump}");
                        assert!(dump.contains("offset="), "{dump}");
                        let refs: Vec<(&str, &Array)> =
                            feeds.iter().map(|(n, a)| (*n, a)).collect();
                        let got = exe.run(&refs).unwrap();
                        // Each element is computed by the same scalar op as in the
                        // interpreter: bit for bit.
                        assert_eq!(got[0], want[0], "{dt} axis {axis} {widths:?} {isa:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn a_recurrent_steps_gate_gradients_fill_one_buffer_in_one_kernel() {
    // Three `[32, 64]` gate pieces computed from shared inputs, concatenated to
    // `[32, 192]`: one merged kernel with three window stores, no copy.
    let src = r#"graph {
  %0: f32[32,64] = input "x"
  %1: f32[32,64] = input "y"
  %2: f32[32,64] = mul %0, %1
  %3: f32[32,64] = sub %0, %1
  %4: f32[32,64] = tanh %0
  %5: f32[32,192] = concat %2, %3, %4 axis=1
  outputs %5
}"#;
    let g = parse_graph(src).unwrap();
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let dump = exe.dump_fused();
    assert!(!dump.contains("copy Concat"), "{dump}");
    assert_eq!(dump.matches("kernel k").count(), 1, "{dump}");
    assert_eq!(dump.matches("strides=[192, 1] <-").count(), 3, "{dump}");
    let x = feed("f32", &[32, 64], 1);
    let y = feed("f32", &[32, 64], 2);
    let got = exe.run(&[("x", &x), ("y", &y)]).unwrap();
    let map: HashMap<String, Array> = [("x".to_string(), x), ("y".to_string(), y)]
        .into_iter()
        .collect();
    let want = onde_runtime::run(&g, &map).unwrap();
    for (p, q) in got[0].to_f64_vec().iter().zip(want[0].to_f64_vec()) {
        // tanh: the JIT's within a few ulps of the interpreter's.
        assert!((p - q).abs() <= 1e-6 * (1.0 + q.abs()), "{p} vs {q}");
    }
}
