//! Typing of the contractions: matrix product and convolution.

use super::*;

pub(super) fn matmul(c: &Ctx<'_>) -> Res {
    c.arity(2)?;
    let d = c.same_dtype()?;
    if d == DType::Bool {
        return c.err("not defined for dtype bool");
    }
    let (a, b) = (&c.tys[0].shape, &c.tys[1].shape);
    if a.rank() < 2 || b.rank() < 2 {
        return c.err("both operands need rank >= 2");
    }
    let (m, k) = (a.0[a.rank() - 2], a.0[a.rank() - 1]);
    let (k2, n) = (b.0[b.rank() - 2], b.0[b.rank() - 1]);
    if k != k2 {
        return c.err(format!("inner dimensions differ: {a} @ {b} ({k} vs {k2})"));
    }
    let ba = Shape::new(a.0[..a.rank() - 2].iter().copied());
    let bb = Shape::new(b.0[..b.rank() - 2].iter().copied());
    let Some(mut batch) = broadcast_shapes(&ba, &bb) else {
        return c.err(format!("batch shapes {ba} and {bb} cannot be broadcast"));
    };
    batch.0.push(m);
    batch.0.push(n);
    one(TensorType::new(d, batch))
}

pub(super) fn conv_op(c: &Ctx<'_>, p: &ConvParams) -> Res {
    c.arity(2)?;
    infer_conv(c, p)
}

fn infer_conv(c: &Ctx<'_>, p: &ConvParams) -> Result<Vec<TensorType>, TypeError> {
    let d = c.same_dtype()?;
    if !d.is_float() {
        return c.err(format!("not defined for dtype {d}"));
    }
    let (x, w) = (&c.tys[0].shape, &c.tys[1].shape);
    let n = p.stride.len();
    if n == 0 || p.padding.len() != n || p.dilation.len() != n {
        return c.err("stride, padding and dilation need one entry per spatial axis");
    }
    if x.rank() != n + 2 || w.rank() != n + 2 {
        return c.err(format!(
            "{n}-d convolution needs input [B, C, *{n} spatial] and weight [C_out, C_in/groups, *{n} kernel]"
        ));
    }
    if p.groups == 0 || x.0[1] % p.groups != 0 || w.0[0] % p.groups != 0 {
        return c.err(format!(
            "groups={} must divide input channels {} and output channels {}",
            p.groups, x.0[1], w.0[0]
        ));
    }
    if w.0[1] * p.groups != x.0[1] {
        return c.err(format!(
            "weight expects {} input channels per group, input has {} channels in {} group(s)",
            w.0[1], x.0[1], p.groups
        ));
    }
    let mut out = vec![x.0[0], w.0[0]];
    for i in 0..n {
        if p.dilation[i] == 0 {
            return c.err("dilation must be >= 1");
        }
        match conv_out_len(x.0[i + 2], w.0[i + 2], p.stride[i], p.padding[i], p.dilation[i]) {
            Some(o) => out.push(o),
            None => {
                return c.err(format!(
                    "kernel {} (dilation {}) does not fit input length {} padded by {:?} with stride {}",
                    w.0[i + 2], p.dilation[i], x.0[i + 2], p.padding[i], p.stride[i]
                ))
            }
        }
    }
    Ok(vec![TensorType::new(d, out)])
}
