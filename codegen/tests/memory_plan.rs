//! Liveness-based buffer reuse: a chain of matrix products needs two slots, not one
//! per temporary, and still computes the interpreter's results; an elementwise kernel
//! whose input dies at that step writes in place.

use onde_codegen::plan::memory::plan_memory;
use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};
use std::collections::HashMap;

const CHAIN: &str = r#"graph {
  %0: f32[16,16] = input "x"
  %1: f32[16,16] = input "w"
  %2: f32[16,16] = matmul %0, %1
  %3: f32[16,16] = matmul %2, %1
  %4: f32[16,16] = matmul %3, %1
  %5: f32[16,16] = matmul %4, %1
  %6: f32[16,16] = matmul %5, %1
  outputs %6
}"#;

#[test]
fn chain_of_temporaries_reuses_slots_and_stays_correct() {
    let g = parse_graph(CHAIN).unwrap();
    let plan = onde_codegen::plan::plan(&g).unwrap();
    let mem = plan_memory(&plan);
    let temps = plan
        .buffers
        .iter()
        .filter(|b| matches!(b.kind, onde_codegen::plan::BufKind::Temp))
        .count();
    assert_eq!(temps, 5);
    assert!(mem.slot_bytes.len() <= 3, "{mem:?}");
    assert!(mem.total_bytes() < temps * 16 * 16 * 4, "{mem:?}");
    let x = Array::f32(
        [16, 16],
        (0..256).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect(),
    )
    .unwrap();
    let w = Array::f32(
        [16, 16],
        (0..256).map(|i| ((i % 5) as f32 - 2.0) * 0.1).collect(),
    )
    .unwrap();
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let got = exe.run(&[("x", &x), ("w", &w)]).unwrap();
    let feeds: HashMap<String, Array> = [("x".to_string(), x), ("w".to_string(), w)]
        .into_iter()
        .collect();
    let want = onde_runtime::run(&g, &feeds).unwrap();
    for (a, b) in got[0].to_f64_vec().iter().zip(want[0].to_f64_vec()) {
        assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{a} vs {b}");
    }
}

const IN_PLACE: &str = r#"graph {
  %0: f32[64,64] = input "x"
  %1: f32[64,64] = input "w"
  %2: f32[64,64] = matmul %0, %1
  %3: f32[64,64] = tanh %2
  %4: f32[64,64] = matmul %3, %1
  outputs %4
}"#;

#[test]
fn elementwise_kernel_writes_over_a_dying_input() {
    let g = parse_graph(IN_PLACE).unwrap();
    let plan = onde_codegen::plan::plan(&g).unwrap();
    let mem = plan_memory(&plan);
    // matmul -> t1, tanh(t1) -> t2 in place, matmul -> output: two slots.
    assert_eq!(mem.slot_bytes.len(), 2, "{mem:?}");
}

const COPIES: &str = r#"graph {
  %0: f32[2,3,4] = input "x"
  %1: f32[2,1,4] = input "y"
  %2: f32[2,4,4] = concat %0, %1 axis=1
  %3: f32[3,4,7] = pad %2 pads=[(0,1), (0,0), (2,1)] value=-1.5
  %4: i64[2,3] = input "i"
  %5: i64[2,5] = pad %4 pads=[(0,0), (1,1)] value=7.0
  outputs %3, %5
}"#;

#[test]
fn concat_and_pad_run_as_native_copies() {
    let g = parse_graph(COPIES).unwrap();
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    let plan = exe.dump_fused();
    assert!(
        plan.contains("copy Concat") && plan.contains("copy Pad") && !plan.contains("host"),
        "{plan}"
    );
    let x = Array::f32([2, 3, 4], (0..24).map(|i| i as f32).collect()).unwrap();
    let y = Array::f32([2, 1, 4], (0..8).map(|i| 100.0 + i as f32).collect()).unwrap();
    let i = Array::i64([2, 3], vec![1, 2, 3, 4, 5, 6]).unwrap();
    let got = exe.run(&[("x", &x), ("y", &y), ("i", &i)]).unwrap();
    let feeds: HashMap<String, Array> = [("x", x), ("y", y), ("i", i)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let want = onde_runtime::run(&g, &feeds).unwrap();
    assert_eq!(got, want);
}

const GATHER: &str = r#"graph {
  %0: f32[3,4] = input "x"
  %1: i64[3,2] = input "i"
  %2: f32[3,2] = gather %0, %1 axis=1
  %3: i64[2,4] = input "j"
  %4: f32[2,4] = gather %0, %3 axis=0
  outputs %2, %4
}"#;

#[test]
fn gather_runs_natively_and_reports_bad_indices() {
    let g = parse_graph(GATHER).unwrap();
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    assert!(exe.dump_fused().contains("copy Gather"));
    let x = Array::f32([3, 4], (0..12).map(|i| i as f32).collect()).unwrap();
    let i = Array::i64([3, 2], vec![3, 0, 1, 1, 2, 3]).unwrap();
    let j = Array::i64([2, 4], vec![2, 1, 0, 2, 0, 0, 1, 1]).unwrap();
    let got = exe.run(&[("x", &x), ("i", &i), ("j", &j)]).unwrap();
    let feeds: HashMap<String, Array> = [("x", x.clone()), ("i", i), ("j", j.clone())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(got, onde_runtime::run(&g, &feeds).unwrap());
    let bad = Array::i64([3, 2], vec![0, 4, 0, 0, 0, 0]).unwrap();
    let e = exe.run(&[("x", &x), ("i", &bad), ("j", &j)]).unwrap_err();
    assert!(
        e.to_string().contains("index 4") && e.to_string().contains("extent 4"),
        "{e}"
    );
}
