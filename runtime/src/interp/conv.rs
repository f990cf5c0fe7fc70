//! `conv`: N-d cross-correlation, like PyTorch's `conv1d`/`conv2d` (no bias).
//!
//! Input `[B, C_in, *S]`, weight `[C_out, C_in/groups, *K]`, result `[B, C_out, *O]`
//! with `O = (S + pad_lo + pad_hi - dilation·(K-1) - 1) / stride + 1`. Output channel
//! `co` belongs to group `g = co / (C_out/groups)` and reads input channels
//! `g·(C_in/groups) ..` of that group:
//!
//! `out[b, co, o] = Σ_{ci, k} x[b, g·C_in/groups + ci, o·stride + k·dilation - pad_lo]
//! · w[co, ci, k]`, where positions outside the input read zero.
//!
//! The sum runs over `ci`, then kernel positions in row-major order, in f64.

use super::elem::{at, make, typed, with_float, Float};
use super::error::{InterpError, Result};
use super::index::{count, dot, strides, try_for_each_coord};
use onde_ir::{Array, ConvParams};

/// Validated geometry of one convolution.
struct Geometry {
    batch: usize,
    c_in: usize,
    c_out: usize,
    groups: usize,
    spatial: Vec<usize>,
    kernel: Vec<usize>,
    out: Vec<usize>,
}

fn geometry(x: &Array, w: &Array, p: &ConvParams) -> Result<Geometry> {
    let bad = |why: &str| InterpError::internal(format!("conv: {why}"));
    let (xd, wd) = (x.shape().dims(), w.shape().dims());
    let n = p.stride.len();
    if n == 0 || p.padding.len() != n || p.dilation.len() != n {
        return Err(bad(
            "one stride, padding and dilation per spatial axis expected",
        ));
    }
    let ([batch, c_in, spatial @ ..], [c_out, c_in_g, kernel @ ..]) = (xd, wd) else {
        return Err(bad("input and weight need rank >= 2"));
    };
    if spatial.len() != n || kernel.len() != n {
        return Err(bad("rank does not match the number of spatial axes"));
    }
    let groups = p.groups;
    if groups == 0
        || c_in % groups != 0
        || c_out % groups != 0
        || c_in_g.checked_mul(groups) != Some(*c_in)
    {
        return Err(bad("channels do not match groups"));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if p.dilation[i] == 0 {
            return Err(bad("dilation 0"));
        }
        let o = onde_ir::typing::conv_out_len(
            spatial[i],
            kernel[i],
            p.stride[i],
            p.padding[i],
            p.dilation[i],
        )
        .ok_or_else(|| bad("kernel does not fit the padded input"))?;
        out.push(o);
    }
    Ok(Geometry {
        batch: *batch,
        c_in: *c_in,
        c_out: *c_out,
        groups,
        spatial: spatial.to_vec(),
        kernel: kernel.to_vec(),
        out,
    })
}

fn conv_float<T: Float>(x: &Array, w: &Array, p: &ConvParams, g: &Geometry) -> Result<Array> {
    let (xs, ws) = (typed::<T>(x)?, typed::<T>(w)?);
    let (cin_g, cout_g) = (g.c_in / g.groups, g.c_out / g.groups);
    let (x_st, w_st) = (strides(x.shape().dims()), strides(w.shape().dims()));
    let mut out_dims = vec![g.batch, g.c_out];
    out_dims.extend(&g.out);
    let mut out = Vec::with_capacity(count(&out_dims));
    let mut pos = vec![0; g.spatial.len()];
    for b in 0..g.batch {
        for co in 0..g.c_out {
            let group = co / cout_g;
            try_for_each_coord(&g.out, |o| {
                let mut acc = 0.0;
                for ci in 0..cin_g {
                    let x_base = b * x_st[0] + (group * cin_g + ci) * x_st[1];
                    let w_base = co * w_st[0] + ci * w_st[1];
                    try_for_each_coord(&g.kernel, |k| {
                        // Input position per axis; skip the tap if it lands in padding.
                        for (i, slot) in pos.iter_mut().enumerate() {
                            let padded = o[i] * p.stride[i] + k[i] * p.dilation[i];
                            match padded.checked_sub(p.padding[i].0) {
                                Some(q) if q < g.spatial[i] => *slot = q,
                                Some(_) | None => return Ok(()),
                            }
                        }
                        let xv = at(xs, dot(&pos, &x_st[2..], x_base))?;
                        let wv = at(ws, dot(k, &w_st[2..], w_base))?;
                        acc += xv.to_f64() * wv.to_f64();
                        Ok(())
                    })?;
                }
                out.push(T::from_f64(acc));
                Ok(())
            })?;
        }
    }
    make(out_dims, out)
}

/// Convolution (cross-correlation) of `x` with weight `w`.
pub(crate) fn conv(x: &Array, w: &Array, p: &ConvParams) -> Result<Array> {
    if x.dtype() != w.dtype() {
        return Err(InterpError::internal("conv operand dtypes differ"));
    }
    let g = geometry(x, w, p)?;
    with_float!(x.dtype(), T => conv_float::<T>(x, w, p, &g), else Err(super::elem::bad_dtype("conv", x.dtype())))
}
