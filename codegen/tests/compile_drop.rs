//! Compiled code is freed when its executable is dropped: 10,000 compile/run/drop
//! cycles of a small graph keep the resident set within a bound (64 MiB over the
//! level reached after a warm-up), where leaking every JIT module would exceed it.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};

fn rss_kib() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

const SRC: &str = r#"graph {
  %0: f32[37] = input "x"
  %1: f32[37] = tanh %0
  %2: f32[37] = exp %1
  %3: f32[] = reduce_sum %2 axes=[0] keepdim=false
  outputs %3
}"#;

#[test]
fn ten_thousand_compile_drop_cycles_do_not_grow_memory() {
    let g = parse_graph(SRC).unwrap();
    let x = Array::f32([37], (0..37).map(|i| i as f32 * 0.01).collect()).unwrap();
    let cycle = || {
        let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
        let r = exe.run(&[("x", &x)]).unwrap();
        assert!(r[0].as_f32().unwrap()[0].is_finite());
    };
    for _ in 0..300 {
        cycle();
    }
    let before = rss_kib();
    for _ in 0..10_000 {
        cycle();
    }
    let after = rss_kib();
    let grown = after.saturating_sub(before);
    eprintln!("rss before {before} KiB, after {after} KiB, grown {grown} KiB");
    assert!(
        grown < 64 * 1024,
        "resident memory grew by {grown} KiB over 10,000 cycles"
    );
}
