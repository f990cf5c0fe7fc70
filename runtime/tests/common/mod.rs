//! Helpers shared by the interpreter tests: small graph builders and array makers.
#![allow(dead_code)]

use onde_ir::{Array, DType, Graph, Op, TensorType, ValueId};
use onde_runtime::{run, InterpError};
use std::borrow::Borrow;
use std::collections::HashMap;

/// An f32 array.
pub fn f32s(shape: &[usize], v: &[f32]) -> Array {
    Array::f32(shape.to_vec(), v.to_vec()).unwrap()
}

/// An f64 array.
pub fn f64s(shape: &[usize], v: &[f64]) -> Array {
    Array::f64(shape.to_vec(), v.to_vec()).unwrap()
}

/// An i64 array.
pub fn i64s(shape: &[usize], v: &[i64]) -> Array {
    Array::i64(shape.to_vec(), v.to_vec()).unwrap()
}

/// A bool array.
pub fn bools(shape: &[usize], v: &[bool]) -> Array {
    Array::bool(shape.to_vec(), v.to_vec()).unwrap()
}

/// A type.
pub fn ty(dtype: DType, shape: &[usize]) -> TensorType {
    TensorType::new(dtype, shape.to_vec())
}

/// Adds `op` on `args` (type-checked) and returns its results.
pub fn add(g: &mut Graph, op: Op, args: &[ValueId]) -> Vec<ValueId> {
    g.add_op(op, args, None).unwrap().1
}

/// Adds `op` on `args` and returns its single result.
pub fn add1(g: &mut Graph, op: Op, args: &[ValueId]) -> ValueId {
    add(g, op, args)[0]
}

/// Adds a constant.
pub fn constant(g: &mut Graph, a: Array) -> ValueId {
    add1(g, Op::Constant(a), &[])
}

/// Adds an input.
pub fn input(g: &mut Graph, name: &str, t: TensorType) -> ValueId {
    add1(
        g,
        Op::Input {
            name: name.into(),
            ty: t,
        },
        &[],
    )
}

/// Evaluates `op` applied to constant operands; returns all results.
pub fn try_eval<A: Borrow<Array>>(op: Op, args: &[A]) -> Result<Vec<Array>, InterpError> {
    let mut g = Graph::new();
    let vs: Vec<ValueId> = args
        .iter()
        .map(|a| constant(&mut g, a.borrow().clone()))
        .collect();
    let outs = add(&mut g, op, &vs);
    g.set_outputs(outs);
    run(&g, &HashMap::new())
}

/// Evaluates single-result `op` applied to constant operands.
pub fn eval<A: Borrow<Array>>(op: Op, args: &[A]) -> Array {
    let mut r = try_eval(op, args).unwrap();
    assert_eq!(r.len(), 1);
    r.remove(0)
}

/// Asserts `a` has the given dtype and shape and its elements are within `tol` of
/// `want` (NaN matches NaN).
pub fn assert_close(a: &Array, dtype: DType, shape: &[usize], want: &[f64], tol: f64) {
    assert_eq!(a.dtype(), dtype, "dtype of {a:?}");
    assert_eq!(a.shape().dims(), shape, "shape of {a:?}");
    let got = a.to_f64_vec();
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * w.abs().max(1.0);
        assert!(ok, "element {i}: got {g}, want {w} (all: {got:?})");
    }
}
