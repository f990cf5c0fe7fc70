//! Where the planner stores a computed operand, and in which layout:
//! - a costly value an op broadcasts (attention-pooling weights `exp(s)` `[B, T, 1]`
//!   times features `[B, T, C]`) is computed once at its own size, not per output
//!   element;
//! - a transposed computed matrix-product operand (`(k + b)ᵀ` in `q kᵀ`) is written in
//!   its natural layout (contiguous loads and stores) and passed as a transposed view.
//!
//! Both against the reference interpreter.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};
use std::collections::HashMap;

fn vals(n: usize, s: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + s * 104_729) % 2003) as f32 - 1001.0) * 0.001)
        .collect()
}

fn check(src: &str, feeds: &[(&str, Array)]) -> String {
    let g = parse_graph(src).unwrap();
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let refs: Vec<(&str, &Array)> = feeds.iter().map(|(n, a)| (*n, a)).collect();
    let got = exe.run(&refs).unwrap();
    let map: HashMap<String, Array> = feeds
        .iter()
        .map(|(n, a)| (n.to_string(), a.clone()))
        .collect();
    let want = onde_runtime::run(&g, &map).unwrap();
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
        let scale = b.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * scale, "output {i}: {x} vs {y}");
        }
    }
    exe.dump_fused()
}

#[test]
fn a_costly_broadcast_operand_is_computed_at_its_own_size() {
    let (b, t, c) = (2, 9, 16);
    let src = format!(
        r#"graph {{
  %0: f32[{b},{t},1] = input "s"
  %1: f32[{b},{t},{c}] = input "h"
  %2: f32[{b},{t},1] = exp %0
  %3: f32[{b},{t},{c}] = mul %2, %1
  %4: f32[{b},{c}] = reduce_sum %3 axes=[1] keepdim=false
  outputs %4
}}"#
    );
    let dump = check(
        &src,
        &[
            ("s", Array::f32([b, t, 1], vals(b * t, 1)).unwrap()),
            ("h", Array::f32([b, t, c], vals(b * t * c, 2)).unwrap()),
        ],
    );
    // The exp runs in a kernel over the weights' own 18 elements; the reduction's kernel
    // reads them back (no exp over 288 elements).
    let kernels: Vec<&str> = dump.split("step ").collect();
    let exp_kernels: Vec<&&str> = kernels.iter().filter(|k| k.contains("= exp")).collect();
    assert_eq!(exp_kernels.len(), 1, "{dump}");
    assert!(
        exp_kernels[0].contains(&format!("over [{b}, {t}, 1]")),
        "{dump}"
    );
}

#[test]
fn a_transposed_computed_operand_is_written_in_its_natural_layout() {
    let (b, t, e) = (3, 10, 8);
    let src = format!(
        r#"graph {{
  %0: f32[{b},{t},{e}] = input "q"
  %1: f32[{b},{t},{e}] = input "k"
  %2: f32[{e}] = input "bias"
  %3: f32[{b},{t},{e}] = expand %2 shape=[{b},{t},{e}]
  %4: f32[{b},{t},{e}] = add %1, %3
  %5: f32[{b},{e},{t}] = permute %4 perm=[0,2,1]
  %6: f32[{b},{t},{t}] = matmul %0, %5
  outputs %6
}}"#
    );
    let dump = check(
        &src,
        &[
            ("q", Array::f32([b, t, e], vals(b * t * e, 3)).unwrap()),
            ("k", Array::f32([b, t, e], vals(b * t * e, 4)).unwrap()),
            ("bias", Array::f32([e], vals(e, 5)).unwrap()),
        ],
    );
    assert!(
        dump.contains(&format!("matmul_operand over [{}, {e}]", b * t))
            || dump.contains(&format!("matmul_operand over [{b}, {t}, {e}]")),
        "{dump}"
    );
    assert!(!dump.contains(&format!("over [{b}, {e}, {t}]")), "{dump}");
}

#[test]
fn a_shared_sum_of_big_tensors_is_stored_once() {
    // g = a + b + c + d ([64, 2048]: above the size where recomputation stays in cache)
    // feeds two reductions: stored once (one kernel reads a..d), not re-read by each.
    let (r, c) = (64, 2048);
    let src = format!(
        r#"graph {{
  %0: f32[{r},{c}] = input "a"
  %1: f32[{r},{c}] = input "b"
  %2: f32[{r},{c}] = input "c"
  %3: f32[{r},{c}] = input "d"
  %4: f32[{r},{c}] = add %0, %1
  %5: f32[{r},{c}] = add %4, %2
  %6: f32[{r},{c}] = add %5, %3
  %7: f32[{r}] = reduce_sum %6 axes=[1] keepdim=false
  %8: f32[{r},{c}] = mul %6, %0
  %9: f32[{r}] = reduce_sum %8 axes=[1] keepdim=false
  outputs %7, %9
}}"#
    );
    let feeds: Vec<(&str, Array)> = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, Array::f32([r, c], vals(r * c, i)).unwrap()))
        .collect();
    let dump = check(&src, &feeds);
    let kernels: Vec<&str> = dump.split("step ").skip(1).collect();
    let reading_d = kernels.iter().filter(|k| k.contains("buf3 f32")).count();
    assert_eq!(reading_d, 1, "{dump}");
}
