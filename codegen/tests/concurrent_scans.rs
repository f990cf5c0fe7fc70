//! Independent scans run side by side (`plan::concurrent`): the planner makes them
//! adjacent (steps the second needs move before the first, steps that need the first
//! stay after the pair), memory planning keeps their storage apart, and the executor
//! runs the pair on two threads with the same bits as one after the other.

use onde_codegen::plan::{self, concurrent, memory, verify, Step};
use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};
use std::collections::HashMap;

/// The body of scan A: `h' = tanh(h·u + x_t)`, also its output.
const STEP_A: &str = r#"    %0: f32[2,4] = input "c"
    %1: f32[2,4] = input "xt"
    %2: f32[4,4] = input "u"
    %3: f32[2,4] = matmul %0, %2
    %4: f32[2,4] = add %3, %1
    %5: f32[2,4] = tanh %4
    outputs %5, %5
"#;

/// The body of scan B: `h' = sigmoid(x_t − h·u)`, also its output.
const STEP_B: &str = r#"    %0: f32[2,4] = input "c"
    %1: f32[2,4] = input "xt"
    %2: f32[4,4] = input "u"
    %3: f32[2,4] = matmul %0, %2
    %4: f32[2,4] = sub %1, %3
    %5: f32[2,4] = sigmoid %4
    outputs %5, %5
"#;

/// Scan A over `tanh(x)` (a temporary that dies with A, whose storage B's output would
/// take if the pair were not one step for memory); a sum over A's outputs (needs A);
/// `exp(x)` (does not); scan B, in reverse, over `exp(x)`; a result combining both.
fn src() -> String {
    format!(
        r#"graph {{
  %0: f32[6,2,4] = input "x"
  %1: f32[4,4] = input "u"
  %2: f32[2,4] = input "h0"
  %3: f32[6,2,4] = tanh %0
  %4: f32[2,4], %5: f32[6,2,4] = scan %2, %3, %1 carry=1 xs=1 length=6 axis=0 reverse=false {{
{STEP_A}  }}
  %6: f32[2,4] = reduce_sum %5 axes=[0] keepdim=false
  %7: f32[6,2,4] = exp %0
  %8: f32[2,4], %9: f32[6,2,4] = scan %2, %7, %1 carry=1 xs=1 length=6 axis=0 reverse=true {{
{STEP_B}  }}
  %10: f32[2,4] = mul %6, %8
  outputs %4, %9, %10
}}"#
    )
}

fn feeds() -> Vec<(&'static str, Array)> {
    let v = |n: usize, s: f32| (0..n).map(|i| ((i as f32 * s).sin()) * 0.7).collect();
    vec![
        ("x", Array::f32([6, 2, 4], v(48, 0.37)).unwrap()),
        ("u", Array::f32([4, 4], v(16, 1.3)).unwrap()),
        ("h0", Array::f32([2, 4], v(8, 2.1)).unwrap()),
    ]
}

/// The outputs of graph `src` compiled for `threads` threads.
fn run(src: &str, threads: usize) -> Vec<Vec<f64>> {
    let g = parse_graph(src).unwrap();
    let mut exe = Executable::compile(
        &g,
        CompileOptions {
            threads,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    let f = feeds();
    let refs: Vec<(&str, &Array)> = f.iter().map(|(n, a)| (*n, a)).collect();
    exe.run(&refs)
        .unwrap()
        .iter()
        .map(Array::to_f64_vec)
        .collect()
}

#[test]
fn independent_scans_become_adjacent_and_the_plan_stays_valid() {
    let g = parse_graph(&src()).unwrap();
    let p = plan::plan(&g).unwrap();
    verify::verify(&p).unwrap();
    let scans: Vec<usize> = (0..p.steps.len())
        .filter(|&i| matches!(p.steps[i], Step::Scan { .. }))
        .collect();
    assert_eq!(scans.len(), 2);
    assert_eq!(scans[1], scans[0] + 1, "{:#?}", p.steps);
    let along = concurrent::alongside(&p);
    assert_eq!(
        along.iter().filter(|&&a| a).count(),
        1,
        "one pair: {along:?}"
    );
    assert!(along[scans[1]]);
    // `exp(x)`, which the second scan reads, is computed before the first; the sum of
    // the first scan's outputs after the pair.
    let kernel_names: Vec<(usize, String)> = p
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            if let Step::Kernel(k) = s {
                Some((i, k.name.clone()))
            } else {
                None
            }
        })
        .collect();
    let exp_step = kernel_names
        .iter()
        .find(|(_, n)| n.contains("exp") || n.contains("scan_operand"))
        .map(|&(i, _)| i)
        .expect("a kernel computes exp(x)");
    assert!(exp_step < scans[0], "{kernel_names:?}");
    let sum_step = kernel_names
        .iter()
        .find(|(_, n)| n.contains("reduce_sum"))
        .map(|&(i, _)| i)
        .expect("a kernel sums the first scan's outputs");
    assert!(sum_step > scans[1], "{kernel_names:?}");
    let m = memory::plan_memory(&p);
    verify::verify_memory(&p, &m).unwrap();
}

#[test]
fn a_pair_sharing_storage_is_refused_by_the_verifier() {
    let g = parse_graph(&src()).unwrap();
    let p = plan::plan(&g).unwrap();
    let mut m = memory::plan_memory(&p);
    let i = concurrent::alongside(&p).iter().position(|&a| a).unwrap();
    let (Step::Scan { outs: a, .. }, Step::Scan { outs: b, .. }) = (&p.steps[i - 1], &p.steps[i])
    else {
        panic!("a pair of scans");
    };
    // The second scan's stacked output placed in the first's: both written at once.
    let (sa, sb) = (m.slot_of[a[1]].unwrap(), m.slot_of[b[1]].unwrap());
    assert_ne!(sa, sb);
    m.slot_of[b[1]] = Some(sa);
    let e = verify::verify_memory(&p, &m).unwrap_err().to_string();
    assert!(e.contains("run together"), "{e}");
}

#[test]
fn the_pair_on_two_threads_computes_the_same_bits() {
    let one = run(&src(), 1);
    let two = run(&src(), 2);
    // f32 results widened exactly: equal as f64 means the same bits (no NaN here).
    assert_eq!(one, two);
    // And what the reference interpreter computes.
    let g = parse_graph(&src()).unwrap();
    let map: HashMap<String, Array> = feeds()
        .into_iter()
        .map(|(n, a)| (n.to_string(), a))
        .collect();
    let want = onde_runtime::run(&g, &map).unwrap();
    for (got, w) in one.iter().zip(&want) {
        for (&p, q) in got.iter().zip(w.to_f64_vec()) {
            assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{p} vs {q}");
        }
    }
}

/// B scans a value computed from A's outputs: B depends on A, no pair.
fn dependent() -> String {
    format!(
        r#"graph {{
  %0: f32[6,2,4] = input "x"
  %1: f32[4,4] = input "u"
  %2: f32[2,4] = input "h0"
  %3: f32[2,4], %4: f32[6,2,4] = scan %2, %0, %1 carry=1 xs=1 length=6 axis=0 reverse=false {{
{STEP_A}  }}
  %5: f32[6,2,4] = exp %4
  %6: f32[2,4], %7: f32[6,2,4] = scan %2, %5, %1 carry=1 xs=1 length=6 axis=0 reverse=true {{
{STEP_B}  }}
  outputs %3, %6, %7
}}"#
    )
}

#[test]
fn a_scan_reading_the_other_is_not_paired() {
    let g = parse_graph(&dependent()).unwrap();
    let p = plan::plan(&g).unwrap();
    verify::verify(&p).unwrap();
    assert!(!concurrent::alongside(&p).contains(&true), "{:#?}", p.steps);
    // Two threads still compute what one does (to rounding: unpaired bodies split
    // their products over both threads).
    for (a, b) in run(&dependent(), 1).iter().zip(run(&dependent(), 2)) {
        for (p, q) in a.iter().zip(b) {
            assert!((p - q).abs() <= 1e-6 * (1.0 + q.abs()), "{p} vs {q}");
        }
    }
}
