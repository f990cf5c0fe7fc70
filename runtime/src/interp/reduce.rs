//! Reductions: `reduce_{sum,prod,max,min}` over several axes, `argmax`/`argmin`
//! along one, and `softmax` along one (a reduction and a pass over its line).
//!
//! Elements are combined in row-major order of the operand. Floats accumulate in f64
//! and are rounded once at the end; i64 sums and products wrap. `max`/`min` propagate
//! NaN. Sum of nothing is 0, product of nothing is 1; max/min/argmax/argmin of nothing
//! is an [`InterpError::EmptyReduction`], as in PyTorch.

use super::elem::{at, bad_dtype, make, typed, with_elem, Elem, Float};
use super::error::{InterpError, Result, Site};
use super::index::{count, strided_indices, strides};
use onde_ir::{ArgKind, Array, DType, ReduceKind};

/// Result extents of reducing `dims` over `axes`.
fn reduced_dims(dims: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(dims.len());
    for (i, &d) in dims.iter().enumerate() {
        if !axes.contains(&i) {
            out.push(d);
        } else if keepdim {
            out.push(1);
        }
    }
    out
}

/// Checks `axes` against `dims` and, for reductions without identity, that no reduced
/// axis is empty.
fn check_axes(site: Site, dims: &[usize], axes: &[usize], needs_element: bool) -> Result<()> {
    if axes.iter().any(|&a| a >= dims.len()) || axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(InterpError::internal(format!(
            "{}: axes {axes:?} invalid for rank {}",
            site.name,
            dims.len()
        )));
    }
    if needs_element {
        if let Some(&axis) = axes.iter().find(|&&a| dims[a] == 0) {
            return Err(InterpError::EmptyReduction {
                op: site.id,
                name: site.name,
                axis,
            });
        }
    }
    Ok(())
}

/// For each operand element (row-major), the flat index of the result element it
/// contributes to.
fn destinations(dims: &[usize], axes: &[usize]) -> Vec<usize> {
    let kept = reduced_dims(dims, axes, true);
    let mut st = strides(&kept);
    for &a in axes {
        if let Some(s) = st.get_mut(a) {
            *s = 0;
        }
    }
    strided_indices(dims, &st, 0)
}

/// Folds the elements of `x` into result slots, starting from `init`.
fn fold<T: Elem, A: Copy>(
    x: &Array,
    axes: &[usize],
    init: A,
    f: impl Fn(A, T) -> A,
) -> Result<Vec<A>> {
    let dims = x.shape().dims();
    let src = typed::<T>(x)?;
    let mut acc = vec![init; count(&reduced_dims(dims, axes, false))];
    for (&v, d) in src.iter().zip(destinations(dims, axes)) {
        let slot = acc
            .get_mut(d)
            .ok_or_else(|| InterpError::internal("reduction slot out of range"))?;
        *slot = f(*slot, v);
    }
    Ok(acc)
}

fn reduce_float<T: Float>(kind: ReduceKind, x: &Array, axes: &[usize]) -> Result<Vec<T>> {
    let acc = match kind {
        ReduceKind::Sum => fold::<T, f64>(x, axes, 0.0, |a, v| a + v.to_f64())?,
        ReduceKind::Prod => fold::<T, f64>(x, axes, 1.0, |a, v| a * v.to_f64())?,
        ReduceKind::Max => fold::<T, f64>(x, axes, f64::NEG_INFINITY, |a, v| {
            let v = v.to_f64();
            if a.is_nan() || v.is_nan() {
                f64::NAN
            } else {
                a.max(v)
            }
        })?,
        ReduceKind::Min => fold::<T, f64>(x, axes, f64::INFINITY, |a, v| {
            let v = v.to_f64();
            if a.is_nan() || v.is_nan() {
                f64::NAN
            } else {
                a.min(v)
            }
        })?,
    };
    Ok(acc.into_iter().map(T::from_f64).collect())
}

fn reduce_int(kind: ReduceKind, x: &Array, axes: &[usize]) -> Result<Vec<i64>> {
    match kind {
        ReduceKind::Sum => fold::<i64, i64>(x, axes, 0, i64::wrapping_add),
        ReduceKind::Prod => fold::<i64, i64>(x, axes, 1, i64::wrapping_mul),
        ReduceKind::Max => fold::<i64, i64>(x, axes, i64::MIN, i64::max),
        ReduceKind::Min => fold::<i64, i64>(x, axes, i64::MAX, i64::min),
    }
}

/// `reduce_*` over the sorted, unique `axes`.
pub(crate) fn reduce(
    site: Site,
    kind: ReduceKind,
    x: &Array,
    axes: &[usize],
    keepdim: bool,
) -> Result<Array> {
    let needs_element = match kind {
        ReduceKind::Sum | ReduceKind::Prod => false,
        ReduceKind::Max | ReduceKind::Min => true,
    };
    let dims = x.shape().dims();
    check_axes(site, dims, axes, needs_element)?;
    let out = reduced_dims(dims, axes, keepdim);
    match x.dtype() {
        DType::F32 => make(out, reduce_float::<f32>(kind, x, axes)?),
        DType::F64 => make(out, reduce_float::<f64>(kind, x, axes)?),
        DType::I64 => make(out, reduce_int(kind, x, axes)?),
        DType::Bool => Err(bad_dtype(site.name, DType::Bool)),
    }
}

/// Whether `v` replaces `best` as the arg-extremum: strictly better, or the first NaN
/// (NaN counts as both the maximum and the minimum, as in PyTorch).
fn replaces<T: Elem>(kind: ArgKind, v: T, best: T) -> bool {
    if best.is_nan() {
        return false;
    }
    v.is_nan()
        || match kind {
            ArgKind::ArgMax => v > best,
            ArgKind::ArgMin => v < best,
        }
}

/// `argmax`/`argmin` along `axis`: index of the first extremum, as i64.
pub(crate) fn arg_reduce(
    site: Site,
    kind: ArgKind,
    x: &Array,
    axis: usize,
    keepdim: bool,
) -> Result<Array> {
    if x.dtype() == DType::Bool {
        return Err(bad_dtype(site.name, DType::Bool));
    }
    let dims = x.shape().dims();
    check_axes(site, dims, &[axis], true)?;
    let n = dims[axis];
    let outer = count(&dims[..axis]);
    let inner = count(&dims[axis + 1..]);
    let out_dims = reduced_dims(dims, &[axis], keepdim);
    let mut out = Vec::with_capacity(count(&out_dims));
    with_elem!(x.dtype(), T => {
        let src = typed::<T>(x)?;
        for o in 0..outer {
            for i in 0..inner {
                let base = o * n * inner + i;
                let mut best_k = 0;
                let mut best = at(src, base)?;
                for k in 1..n {
                    let v = at(src, base + k * inner)?;
                    if replaces(kind, v, best) {
                        best = v;
                        best_k = k;
                    }
                }
                out.push(i64::try_from(best_k).map_err(|e| InterpError::internal(e.to_string()))?);
            }
        }
    });
    make(out_dims, out)
}

/// `softmax` along `axis`: per line, `m` = the maximum, `e = exp(x - m)`, `e / Σe`,
/// all in f64 and rounded once (NaN where the line holds NaN or `+inf`, or only
/// `-inf`: `x - m` is NaN there).
pub(crate) fn softmax(site: Site, x: &Array, axis: usize) -> Result<Array> {
    let dims = x.shape().dims();
    check_axes(site, dims, &[axis], false)?;
    let lines = (count(&dims[..axis]), dims[axis], count(&dims[axis + 1..]));
    fn run<T: Float>(src: &[T], lines: (usize, usize, usize)) -> Result<Vec<T>> {
        let mut out = vec![T::from_f64(0.0); src.len()];
        softmax_lines(
            src,
            &mut out,
            lines,
            &mut Vec::new(),
            T::to_f64,
            T::from_f64,
        )
        .map_err(|e| InterpError::internal(e.to_string()))?;
        Ok(out)
    }
    match x.dtype() {
        DType::F32 => make(dims.to_vec(), run(typed::<f32>(x)?, lines)?),
        DType::F64 => make(dims.to_vec(), run(typed::<f64>(x)?, lines)?),
        dt @ (DType::I64 | DType::Bool) => Err(bad_dtype(site.name, dt)),
    }
}

/// `softmax_backward(dy, y)` along `axis` ([`onde_ir::Op::SoftmaxBackward`]).
pub(crate) fn softmax_backward(site: Site, dy: &Array, y: &Array, axis: usize) -> Result<Array> {
    let dims = y.shape().dims();
    if dy.shape().dims() != dims || dy.dtype() != y.dtype() {
        return Err(InterpError::internal(format!(
            "{}: dy {:?} {:?} and y {:?} {:?} differ",
            site.name,
            dy.dtype(),
            dy.shape().dims(),
            y.dtype(),
            dims
        )));
    }
    check_axes(site, dims, &[axis], false)?;
    let lines = (count(&dims[..axis]), dims[axis], count(&dims[axis + 1..]));
    fn run<T: Float>(dy: &[T], y: &[T], lines: (usize, usize, usize)) -> Result<Vec<T>> {
        let mut out = vec![T::from_f64(0.0); y.len()];
        softmax_backward_lines(dy, y, &mut out, lines, T::to_f64, T::from_f64)
            .map_err(|e| InterpError::internal(e.to_string()))?;
        Ok(out)
    }
    match y.dtype() {
        DType::F32 => make(
            dims.to_vec(),
            run(typed::<f32>(dy)?, typed::<f32>(y)?, lines)?,
        ),
        DType::F64 => make(
            dims.to_vec(),
            run(typed::<f64>(dy)?, typed::<f64>(y)?, lines)?,
        ),
        dt @ (DType::I64 | DType::Bool) => Err(bad_dtype(site.name, dt)),
    }
}

/// A line function's operand ([`softmax_lines`], [`softmax_backward_lines`], the
/// compiled code's vector kernels) whose length is not the `outer · n · inner` elements
/// of its lines (`expected` is `usize::MAX` when that count overflows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinesError {
    /// The function.
    pub op: &'static str,
    /// The operand.
    pub operand: &'static str,
    /// `outer · n · inner` (`usize::MAX` when that overflows).
    pub expected: usize,
    /// The operand's length.
    pub actual: usize,
}

impl std::fmt::Display for LinesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.expected == usize::MAX {
            write!(f, "{}: the lines' element count overflows usize", self.op)
        } else {
            write!(
                f,
                "{}: {} holds {} elements, its lines need {}",
                self.op, self.operand, self.actual, self.expected
            )
        }
    }
}

impl std::error::Error for LinesError {}

/// Checks each operand's length against `(outer, n, inner)` lines, for function `op`.
///
/// # Errors
/// [`LinesError`] naming the first operand of another length.
pub fn check_lines(
    op: &'static str,
    (outer, n, inner): (usize, usize, usize),
    operands: &[(&'static str, usize)],
) -> std::result::Result<(), LinesError> {
    let expected = outer
        .checked_mul(n)
        .and_then(|v| v.checked_mul(inner))
        .unwrap_or(usize::MAX);
    match operands.iter().find(|(_, len)| *len != expected) {
        Some(&(operand, actual)) => Err(LinesError {
            op,
            operand,
            expected,
            actual,
        }),
        None => Ok(()),
    }
}

/// The definition of softmax's backward, on `[outer, n, inner]` row-major `dy` and `y`
/// into `out` (all of one length) along the middle axis: per line, `s = Σ dy·y` in f64
/// (`wide` converts an element), then each `y·(dy − s)` in f64, rounded once
/// (`narrow`). The interpreter computes it with this, and so does the compiled code
/// where it has no vector kernel (f64, or an ISA without AVX2).
///
/// # Errors
/// [`LinesError`] if an operand does not hold `outer · n · inner` elements.
pub fn softmax_backward_lines<T: Copy>(
    dy: &[T],
    y: &[T],
    out: &mut [T],
    lines: (usize, usize, usize),
    wide: impl Fn(T) -> f64,
    narrow: impl Fn(f64) -> T,
) -> std::result::Result<(), LinesError> {
    let ops = [("dy", dy.len()), ("y", y.len()), ("out", out.len())];
    check_lines("softmax_backward_lines", lines, &ops)?;
    let (outer, n, inner) = lines;
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * n + k) * inner + i;
            let s: f64 = (0..n).map(|k| wide(dy[at(k)]) * wide(y[at(k)])).sum();
            for k in 0..n {
                out[at(k)] = narrow(wide(y[at(k)]) * (wide(dy[at(k)]) - s));
            }
        }
    }
    Ok(())
}

/// The definition of softmax, on `[outer, n, inner]` row-major data `x` into `out`
/// (same length) along the middle axis: per line, the NaN-propagating maximum `m`,
/// then `exp(x - m)` and their sum in f64 (`wide` converts an element), each result
/// `e / Σe` rounded once (`narrow`). `e` is the line's scratch (grown to `n` and
/// reused). The interpreter computes softmax with it, and so does the compiled code
/// where it has no vector kernel (f64, or an ISA without AVX2), which then gives the
/// interpreter's bits.
///
/// # Errors
/// [`LinesError`] if `x` or `out` does not hold `outer · n · inner` elements.
pub fn softmax_lines<T: Copy>(
    x: &[T],
    out: &mut [T],
    lines: (usize, usize, usize),
    e: &mut Vec<f64>,
    wide: impl Fn(T) -> f64,
    narrow: impl Fn(f64) -> T,
) -> std::result::Result<(), LinesError> {
    check_lines(
        "softmax_lines",
        lines,
        &[("x", x.len()), ("out", out.len())],
    )?;
    let (outer, n, inner) = lines;
    e.clear();
    e.resize(n, 0.0);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * n + k) * inner + i;
            let m = (0..n).fold(f64::NEG_INFINITY, |m, k| {
                let v = wide(x[at(k)]);
                if m.is_nan() || v.is_nan() {
                    f64::NAN
                } else {
                    m.max(v)
                }
            });
            for (k, ek) in e.iter_mut().enumerate() {
                *ek = (wide(x[at(k)]) - m).exp();
            }
            let sum: f64 = e.iter().sum();
            for (k, &ek) in e.iter().enumerate() {
                out[at(k)] = narrow(ek / sum);
            }
        }
    }
    Ok(())
}
