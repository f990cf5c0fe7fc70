//! `matmul`: batched matrix product `[.., m, k] @ [.., k, n]` with broadcast batch axes.
//!
//! Float products accumulate in f64 over `k` in increasing order and are rounded once;
//! i64 products wrap.

use super::elem::{at, bad_dtype, make, typed, Elem, Float};
use super::error::{InterpError, Result};
use super::index::{broadcast_all, broadcast_strides, count, strided_indices};
use onde_ir::{Array, DType};

/// The operand's batch extents and its `(rows, cols)`.
fn split(x: &Array) -> Result<(&[usize], usize, usize)> {
    let d = x.shape().dims();
    match d {
        [batch @ .., r, c] => Ok((batch, *r, *c)),
        [] | [_] => Err(InterpError::internal("matmul operands need rank >= 2")),
    }
}

/// Generic kernel: `acc` folds products starting from `zero`, `fin` rounds the sum.
fn kernel<T: Elem, A: Copy>(
    a: &Array,
    b: &Array,
    zero: A,
    acc: impl Fn(A, T, T) -> A,
    fin: impl Fn(A) -> T,
) -> Result<Array> {
    let (ba, m, k) = split(a)?;
    let (bb, k2, n) = split(b)?;
    if k != k2 {
        return Err(InterpError::internal("matmul inner dimensions differ"));
    }
    let batch = broadcast_all(&[ba, bb])
        .ok_or_else(|| InterpError::internal("matmul batch axes do not broadcast"))?;
    let unbroadcastable = || InterpError::internal("matmul batch axes do not broadcast");
    // Offsets (in matrices) of each batch entry in a and b.
    let oa = strided_indices(
        &batch,
        &broadcast_strides(ba, &batch).ok_or_else(unbroadcastable)?,
        0,
    );
    let ob = strided_indices(
        &batch,
        &broadcast_strides(bb, &batch).ok_or_else(unbroadcastable)?,
        0,
    );
    let (x, y) = (typed::<T>(a)?, typed::<T>(b)?);
    let mut out_dims = batch.clone();
    out_dims.extend([m, n]);
    let mut out = Vec::with_capacity(count(&out_dims));
    for (&pa, &pb) in oa.iter().zip(&ob) {
        let (base_a, base_b) = (pa * m * k, pb * k * n);
        for i in 0..m {
            for j in 0..n {
                let mut s = zero;
                for p in 0..k {
                    s = acc(s, at(x, base_a + i * k + p)?, at(y, base_b + p * n + j)?);
                }
                out.push(fin(s));
            }
        }
    }
    make(out_dims, out)
}

fn float_kernel<T: Float>(a: &Array, b: &Array) -> Result<Array> {
    kernel::<T, f64>(
        a,
        b,
        0.0,
        |s, x, y| s + x.to_f64() * y.to_f64(),
        T::from_f64,
    )
}

/// Batched matrix product.
pub(crate) fn matmul(a: &Array, b: &Array) -> Result<Array> {
    if a.dtype() != b.dtype() {
        return Err(InterpError::internal("matmul operand dtypes differ"));
    }
    match a.dtype() {
        DType::F32 => float_kernel::<f32>(a, b),
        DType::F64 => float_kernel::<f64>(a, b),
        DType::I64 => {
            kernel::<i64, i64>(a, b, 0, |s, x, y| s.wrapping_add(x.wrapping_mul(y)), |s| s)
        }
        DType::Bool => Err(bad_dtype("matmul", DType::Bool)),
    }
}
