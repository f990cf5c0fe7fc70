//! Persistent state in executables (`Executable::bind_state`): the in-place path, the
//! copy path, swaps between states, identity outputs, and typed errors.

use onde::codegen::{CompileOptions, Executable, RunError};
use onde::{Array, DType, GraphBuilder};

fn arr(v: &[f32]) -> Array {
    Array::f32([v.len()], v.to_vec()).unwrap()
}

fn compile(g: &GraphBuilder, outs: &[&onde::Tensor]) -> Executable {
    Executable::compile(&g.build(outs).unwrap(), CompileOptions::default()).unwrap()
}

#[test]
fn elementwise_update_is_in_place_and_accumulates_over_runs() {
    // s ← s·0.5 + x: an elementwise kernel reading s where it writes.
    let g = GraphBuilder::new();
    let s = g.input("s", DType::F32, [5]);
    let x = g.input("x", DType::F32, [5]);
    let new = &s * 0.5 + &x;
    let mut exe = compile(&g, &[&new]);
    exe.bind_state("s", 0, arr(&[8.0; 5])).unwrap();
    assert_eq!(exe.state_in_place("s"), Some(true));
    let xs = arr(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    let mut want = [8.0f32; 5];
    for _ in 0..3 {
        exe.run_in_place(&[("x", &xs)]).unwrap();
        for (w, x) in want.iter_mut().zip(xs.as_f32().unwrap()) {
            *w = *w * 0.5 + x;
        }
        assert_eq!(exe.state("s").unwrap().as_f32().unwrap(), &want);
        // The output reads the new value too.
        assert_eq!(exe.output_f32(0).unwrap(), &want);
    }
}

#[test]
fn a_state_read_after_its_update_is_copied_not_overwritten_early() {
    // new_s = s + 1 (a kernel), but another output, s @ m, also reads s: whichever runs
    // last, every reader must see the OLD s, and s must end up as s + 1.
    let g = GraphBuilder::new();
    let s = g.input("s", DType::F32, [1, 3]);
    let m = g.input("m", DType::F32, [3, 3]);
    let new = &s + 1.0;
    let prod = s.matmul(&m);
    let mut exe = compile(&g, &[&new, &prod]);
    exe.bind_state("s", 0, Array::f32([1, 3], vec![1.0, 2.0, 3.0]).unwrap())
        .unwrap();
    let eye = Array::f32([3, 3], vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
    exe.run_in_place(&[("m", &eye)]).unwrap();
    assert_eq!(
        exe.output_f32(1).unwrap(),
        &[1.0, 2.0, 3.0],
        "matmul saw the old s"
    );
    assert_eq!(exe.state("s").unwrap().as_f32().unwrap(), &[2.0, 3.0, 4.0]);
    exe.run_in_place(&[("m", &eye)]).unwrap();
    assert_eq!(exe.output_f32(1).unwrap(), &[2.0, 3.0, 4.0]);
    assert_eq!(exe.state("s").unwrap().as_f32().unwrap(), &[3.0, 4.0, 5.0]);
}

#[test]
fn states_that_swap_values_use_the_old_values() {
    // (a, b) ← (b, a + b): Fibonacci pairs; b's new value reads old a and b, a's new
    // value is old b itself (an output that is a bound feed).
    let g = GraphBuilder::new();
    let a = g.input("a", DType::F32, [2]);
    let b = g.input("b", DType::F32, [2]);
    let sum = &a + &b;
    let mut exe = compile(&g, &[&b, &sum]);
    exe.bind_state("a", 0, arr(&[0.0, 2.0])).unwrap();
    exe.bind_state("b", 1, arr(&[1.0, 3.0])).unwrap();
    let (mut fa, mut fb) = ([0.0f32, 2.0], [1.0f32, 3.0]);
    for _ in 0..6 {
        exe.run_in_place(&[]).unwrap();
        let n = [fa[0] + fb[0], fa[1] + fb[1]];
        fa = fb;
        fb = n;
        assert_eq!(exe.state("a").unwrap().as_f32().unwrap(), &fa);
        assert_eq!(exe.state("b").unwrap().as_f32().unwrap(), &fb);
    }
}

#[test]
fn a_state_returned_unchanged_keeps_its_value() {
    let g = GraphBuilder::new();
    let s = g.input("s", DType::F32, [3]);
    let y = s.sum_all();
    let mut exe = compile(&g, &[&s, &y]);
    exe.bind_state("s", 0, arr(&[1.0, 2.0, 4.0])).unwrap();
    exe.run_in_place(&[]).unwrap();
    exe.run_in_place(&[]).unwrap();
    assert_eq!(exe.state("s").unwrap().as_f32().unwrap(), &[1.0, 2.0, 4.0]);
    assert_eq!(exe.output_f32(1).unwrap(), &[7.0]);
}

#[test]
fn state_errors_are_typed() {
    let g = GraphBuilder::new();
    let s = g.input("s", DType::F32, [3]);
    let t = g.input("t", DType::F32, [2]);
    let new = &s * 2.0;
    let other = &t + 1.0;
    let mut exe = compile(&g, &[&new, &other]);
    let state_err = |r: Result<(), RunError>| match r {
        Err(RunError::State { name, reason }) => format!("{name}: {reason}"),
        other => panic!("expected a state error, got {other:?}"),
    };
    assert!(state_err(exe.bind_state("nope", 0, arr(&[0.0; 3]))).contains("not an input"));
    assert!(state_err(exe.bind_state("s", 5, arr(&[0.0; 3]))).contains("does not exist"));
    assert!(state_err(exe.bind_state("s", 1, arr(&[0.0; 3]))).contains("output 1 is"));
    assert!(state_err(exe.bind_state("s", 0, arr(&[0.0; 2]))).contains("initial value"));
    exe.bind_state("s", 0, arr(&[1.0; 3])).unwrap();
    assert!(state_err(exe.bind_state("s", 0, arr(&[1.0; 3]))).contains("already bound"));
    assert!(state_err(exe.set_state("s", arr(&[1.0; 4]))).contains("new value"));
    assert!(state_err(exe.set_state("t", arr(&[1.0; 2]))).contains("not bound"));
    // A bound state is not a feed any more.
    let ts = arr(&[1.0, 1.0]);
    let e = exe.run_in_place(&[("t", &ts), ("s", &arr(&[0.0; 3]))]);
    assert!(matches!(e, Err(RunError::State { .. })), "{e:?}");
    exe.run_in_place(&[("t", &ts)]).unwrap();
    exe.zero_state("s").unwrap();
    assert_eq!(exe.state("s").unwrap().as_f32().unwrap(), &[0.0; 3]);
}

#[test]
fn an_output_that_is_an_input_is_a_copy_not_the_callers_array() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [4]);
    let r = x.reshape([2, 2]);
    let mut exe = compile(&g, &[&x, &r]);
    {
        let xs = arr(&[1.0, 2.0, 3.0, 4.0]);
        exe.run_in_place(&[("x", &xs)]).unwrap();
    } // the caller's array is gone
    assert_eq!(exe.output_f32(0).unwrap(), &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(exe.output_f32(1).unwrap(), &[1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn an_output_of_a_state_shows_the_old_value_and_set_state_keeps_outputs_valid() {
    // Outputs: s (old value) and s + 1 (bound as the new s, in place).
    let g = GraphBuilder::new();
    let s = g.input("s", DType::F32, [3]);
    let new = &s + 1.0;
    let mut exe = compile(&g, &[&new, &s]);
    exe.bind_state("s", 0, arr(&[1.0, 2.0, 3.0])).unwrap();
    assert_eq!(exe.state_in_place("s"), Some(true));
    exe.run_in_place(&[]).unwrap();
    assert_eq!(exe.output_f32(1).unwrap(), &[1.0, 2.0, 3.0], "old value");
    assert_eq!(exe.state("s").unwrap().as_f32().unwrap(), &[2.0, 3.0, 4.0]);
    exe.set_state("s", arr(&[10.0, 20.0, 30.0])).unwrap();
    // The state's storage was overwritten, not replaced: outputs still read valid memory.
    assert_eq!(exe.output_f32(0).unwrap(), &[10.0, 20.0, 30.0]);
    exe.run_in_place(&[]).unwrap();
    assert_eq!(
        exe.state("s").unwrap().as_f32().unwrap(),
        &[11.0, 21.0, 31.0]
    );
}
