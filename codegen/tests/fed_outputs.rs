//! Outputs that are the caller's feeds (an input passed through, a reshape of one) are
//! readable after the run even when the caller has dropped the fed arrays: the
//! executable keeps its own copy. Before any run, or after a failed one, they read as
//! zeros instead of through a stale pointer.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};

#[test]
fn fed_outputs_outlive_the_fed_arrays() {
    let g = parse_graph(
        r#"graph {
  %0: f32[2,3] = input "x"
  %1: f32[6] = reshape %0 shape=[6]
  %2: f32[2,3] = tanh %0
  outputs %0, %1, %2
}"#,
    )
    .unwrap();
    let mut exe = Executable::compile(&g, CompileOptions::default()).unwrap();
    // Before any run: zeros.
    assert_eq!(exe.output_array(0).to_f64_vec(), vec![0.0; 6]);
    {
        let x = Array::f32([2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        exe.run_in_place(&[("x", &x)]).unwrap();
    } // `x` is freed here.
      // Overwrite the freed memory's likely reuse with another allocation.
    let noise = Array::f32([2, 3], vec![-9.0; 6]).unwrap();
    assert_eq!(
        exe.output_array(0).to_f64_vec(),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    assert_eq!(
        exe.output_array(1).to_f64_vec(),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    assert!((exe.output_array(2).to_f64_vec()[0] - 1f64.tanh()).abs() < 1e-6);
    assert_eq!(exe.output_f32(0).unwrap(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    drop(noise);
    // A failed run (a feed of the wrong type) leaves no pointer to the caller's array.
    let bad = Array::f32([3, 2], vec![0.0; 6]).unwrap();
    assert!(exe.run_in_place(&[("x", &bad)]).is_err());
    let again = Array::f32([2, 3], vec![0.5; 6]).unwrap();
    exe.run_in_place(&[("x", &again)]).unwrap();
    assert_eq!(exe.output_array(1).to_f64_vec(), vec![0.5; 6]);
}
