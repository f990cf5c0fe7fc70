//! Per-step profiling (`Executable::set_profiling` / `profile`): off by default, one
//! line per step naming what the step is, reset when restarted, gone when stopped.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};

#[test]
fn profile_lists_every_step_with_its_kind() {
    let g = parse_graph(
        r#"graph {
  %0: f32[8,300] = input "x"
  %1: f32[300,4] = input "w"
  %2: f32[8,4] = matmul %0, %1
  %3: f32[8,4] = tanh %2
  %4: f32[8] = reduce_sum %3 axes=[1] keepdim=false
  outputs %4
}"#,
    )
    .unwrap();
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let x = Array::f32([8, 300], vec![0.01; 2400]).unwrap();
    let w = Array::f32([300, 4], vec![0.02; 1200]).unwrap();
    let feeds = [("x", &x), ("w", &w)];
    exe.run(&feeds).unwrap();
    assert_eq!(exe.profile(), None, "profiling is off by default");
    exe.set_profiling(true);
    for _ in 0..3 {
        exe.run(&feeds).unwrap();
    }
    let p = exe.profile().expect("profiling is on");
    let steps = exe.plan().steps.len();
    assert_eq!(
        p.lines().count(),
        steps + 1,
        "a header and one line per step:\n{p}"
    );
    assert!(p.contains("matmul [8, 300] @ [300, 4]"), "{p}");
    assert!(p.contains("kernel ") && p.contains("(cranelift)"), "{p}");
    // Every step ran three times.
    for l in p.lines().skip(1) {
        assert_eq!(l.split_whitespace().nth(1), Some("3"), "{p}");
    }
    // Shares add up to 100%.
    let total: f64 = p
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.split_whitespace()
                .nth(3)?
                .trim_end_matches('%')
                .parse::<f64>()
                .ok()
        })
        .sum();
    assert!((total - 100.0).abs() < 0.5, "shares sum to {total}:\n{p}");
    exe.set_profiling(false);
    assert_eq!(exe.profile(), None);
}

/// A scan's body is listed under the scan, in the plan dump (its own buffers and
/// steps) and in the profile (its steps timed per iteration: calls = runs × length).
#[test]
fn scan_bodies_are_dumped_and_profiled() {
    let g = parse_graph(
        r#"graph {
  %0: f32[6,2,4] = input "x"
  %1: f32[4,4] = input "u"
  %2: f32[2,4] = input "h0"
  %3: f32[2,4], %4: f32[6,2,4] = scan %2, %0, %1 carry=1 xs=1 length=6 axis=0 reverse=false {
    %0: f32[2,4] = input "c"
    %1: f32[2,4] = input "xt"
    %2: f32[4,4] = input "u"
    %3: f32[2,4] = matmul %0, %2
    %4: f32[2,4] = add %3, %1
    %5: f32[2,4] = tanh %4
    outputs %5, %5
  }
  outputs %3, %4
}"#,
    )
    .unwrap();
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let dump = exe.dump_fused();
    assert!(dump.contains(": scan length=6"), "{dump}");
    assert!(dump.contains("  body ("), "{dump}");
    assert!(dump.contains("    | step 0:"), "{dump}");
    assert!(dump.contains("    | buf0: f32[2,4] feed"), "{dump}");
    let x = Array::f32([6, 2, 4], vec![0.1; 48]).unwrap();
    let u = Array::f32([4, 4], vec![0.2; 16]).unwrap();
    let h0 = Array::f32([2, 4], vec![0.0; 8]).unwrap();
    let feeds = [("x", &x), ("u", &u), ("h0", &h0)];
    exe.set_profiling(true);
    for _ in 0..2 {
        exe.run(&feeds).unwrap();
    }
    let p = exe.profile().expect("profiling is on");
    let body: Vec<&str> = p
        .lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .collect();
    assert!(!body.is_empty(), "body steps listed:\n{p}");
    for l in &body {
        let calls = l
            .trim_start()
            .trim_start_matches('|')
            .split_whitespace()
            .nth(1);
        assert_eq!(calls, Some("12"), "2 runs × 6 iterations:\n{p}");
    }
    assert!(
        body.iter().any(|l| l.contains("matmul [2, 4] @ [4, 4]")),
        "{p}"
    );
}
