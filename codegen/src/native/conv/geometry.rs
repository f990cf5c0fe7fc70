//! The geometry of a convolution: shapes, strides and padding resolved once per call
//! (`Geom`), and the ranges of outputs whose taps read inside a row.

use super::*;

/// Validated geometry, normalised to 2 spatial axes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geom {
    pub(super) batch: usize,
    pub(super) c_in: usize,
    pub(super) groups: usize,
    pub(super) cin_g: usize,
    pub(super) cout_g: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
    pub(super) sh: usize,
    pub(super) sw: usize,
    /// Padding before, per axis (padding after only shapes the output extent).
    pub(super) ph: usize,
    pub(super) pw: usize,
    pub(super) dh: usize,
    pub(super) dw: usize,
}

impl Geom {
    /// Output positions per channel.
    pub(super) fn npos(&self) -> usize {
        self.oh * self.ow
    }

    /// Reduction length of one output: `C_in/groups · kh · kw`.
    pub(super) fn rows_k(&self) -> usize {
        self.cin_g * self.kh * self.kw
    }

    /// Whether the input is its own column matrix (1×1 kernel, stride 1, no padding).
    pub(super) fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.oh == self.h
            && self.ow == self.w
    }

    /// Columns per im2col tile.
    pub(super) fn tile(&self) -> usize {
        let t = (TILE_ELEMS / self.rows_k().max(1)).max(64) / 16 * 16;
        t.min(self.npos()).max(1)
    }
}

pub(super) fn geometry(
    x_shape: &[usize],
    w_shape: &[usize],
    p: &ConvParams,
    out_shape: &[usize],
) -> Result<Geom, NativeError> {
    let n = p.stride.len();
    if p.padding.len() != n || p.dilation.len() != n {
        return Err(NativeError::shape(
            OP,
            "stride, padding and dilation need one entry per spatial axis",
        ));
    }
    if n != 1 && n != 2 {
        return Err(NativeError::Unsupported {
            op: OP,
            what: format!("{n}-d convolution (only 1-d and 2-d)"),
        });
    }
    if x_shape.len() != n + 2 || w_shape.len() != n + 2 || out_shape.len() != n + 2 {
        return Err(NativeError::shape(
            OP,
            format!(
                "{n}-d convolution needs rank {} input, weight and output, got {x_shape:?}, {w_shape:?}, {out_shape:?}",
                n + 2
            ),
        ));
    }
    let (batch, c_in, c_out, cin_g) = (x_shape[0], x_shape[1], w_shape[0], w_shape[1]);
    let groups = p.groups;
    if groups == 0 || c_out % groups != 0 || cin_g.checked_mul(groups) != Some(c_in) {
        return Err(NativeError::shape(
            OP,
            format!("input channels {c_in}, weight {w_shape:?} and groups {groups} do not match"),
        ));
    }
    let mut o = [1usize; 2];
    for i in 0..n {
        if p.dilation[i] == 0 {
            return Err(NativeError::shape(OP, "dilation 0"));
        }
        o[i] = onde_ir::typing::conv_out_len(
            x_shape[2 + i],
            w_shape[2 + i],
            p.stride[i],
            p.padding[i],
            p.dilation[i],
        )
        .ok_or_else(|| {
            NativeError::shape(
                OP,
                format!(
                    "kernel {:?} (stride {:?}, dilation {:?}) does not fit input {x_shape:?} padded by {:?}",
                    &w_shape[2..],
                    p.stride,
                    p.dilation,
                    p.padding
                ),
            )
        })?;
    }
    // Checked without building the expected shape (this runs on every call).
    if out_shape.len() != 2 + n || out_shape[..2] != [batch, c_out] || out_shape[2..] != o[..n] {
        let mut want = vec![batch, c_out];
        want.extend_from_slice(&o[..n]);
        return Err(NativeError::shape(
            OP,
            format!("output shape {out_shape:?}, expected {want:?}"),
        ));
    }
    // Spatial axes, with a leading unit axis for 1-d.
    let at = |v: &[usize], i: usize, unit: usize| {
        if n == 2 {
            v[i]
        } else if i == 0 {
            unit
        } else {
            v[0]
        }
    };
    Ok(Geom {
        batch,
        c_in,
        groups,
        cin_g,
        cout_g: c_out / groups,
        h: at(&x_shape[2..], 0, 1),
        w: at(&x_shape[2..], 1, 1),
        kh: at(&w_shape[2..], 0, 1),
        kw: at(&w_shape[2..], 1, 1),
        oh: at(&o, 0, 1),
        ow: at(&o, 1, 1),
        sh: at(&p.stride, 0, 1),
        sw: at(&p.stride, 1, 1),
        // Leading padding only: the output extent already accounts for the trailing one.
        ph: if n == 2 { p.padding[0].0 } else { 0 },
        pw: p.padding[n - 1].0,
        dh: at(&p.dilation, 0, 1),
        dw: at(&p.dilation, 1, 1),
    })
}

pub(super) fn check_len(
    operand: &'static str,
    actual: usize,
    dims: &[usize],
) -> Result<(), NativeError> {
    let expected = checked_numel(dims)
        .ok_or_else(|| NativeError::shape(OP, format!("{operand} shape {dims:?} overflows")))?;
    if actual != expected {
        return Err(NativeError::Length {
            op: OP,
            operand,
            expected,
            actual,
        });
    }
    Ok(())
}

/// Least common multiple of two positive numbers.
pub(super) fn lcm(a: usize, b: usize) -> usize {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

/// Output positions `o` (along one axis) whose tap at padded offset `off` reads inside
/// an input of length `len` padded by `pad` before: `pad ≤ o·s + off < pad + len`.
/// Returns `[lo, hi)` (not clamped to the output length; empty as `lo == hi`).
pub(super) fn valid_range(len: usize, s: usize, off: usize, pad: usize) -> (usize, usize) {
    let lo = if off >= pad {
        0
    } else {
        (pad - off).div_ceil(s)
    };
    let hi = if pad + len > off {
        (pad + len - 1 - off) / s + 1
    } else {
        0
    };
    (lo, hi.max(lo))
}
