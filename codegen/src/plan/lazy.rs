//! Lazy values: an elementwise expression tree whose leaves read buffers through
//! affine maps. View ops (broadcast, permute, slice, contiguous reshape) transform the
//! leaves' maps instead of moving data; elementwise ops combine trees. A lazy value
//! becomes a kernel when it is materialised.

use super::BufId;
use onde_ir::{BinaryOp, CmpOp, DType, SliceAxis, UnaryOp};

/// A node of a lazy expression tree.
#[derive(Clone, Debug, PartialEq)]
pub enum LNode {
    /// A buffer read through `offset + Σ strides·i` (elements).
    Leaf {
        /// Buffer id.
        buf: BufId,
        /// Element type.
        dtype: DType,
        /// Offset in elements.
        offset: isize,
        /// Strides per axis of the lazy value's shape.
        strides: Vec<isize>,
    },
    /// A constant.
    Const(f64, DType),
    /// Unary op.
    Unary(UnaryOp, usize),
    /// Binary op.
    Binary(BinaryOp, usize, usize),
    /// Comparison.
    Compare(CmpOp, usize, usize),
    /// Select.
    Where(usize, usize, usize),
    /// Conversion.
    Cast(DType, usize),
}

/// An unmaterialised value.
#[derive(Clone, Debug, PartialEq)]
pub struct Lazy {
    /// Shape of the value.
    pub shape: Vec<usize>,
    /// dtype of the value.
    pub dtype: DType,
    /// Nodes; children before parents; the last node is the root.
    pub nodes: Vec<LNode>,
    /// The IR ops folded into this value (`%v = op @ file:line`), for dumps.
    pub ops: Vec<String>,
}

/// The stride of an axis of `n` elements taken `by` apart from an axis of stride `st`
/// (a slice's step, an unfold's step or dilation). With at most one element the step
/// is never taken — it may be near `usize::MAX`, legal there, and must not overflow —
/// so the axis keeps `st` (a one-element step-1 slice stays contiguous for the memory
/// plan's checks); otherwise `by < extent`, and the product fits.
pub fn along(n: usize, by: usize, st: isize) -> isize {
    if n > 1 {
        st * by as isize
    } else {
        st
    }
}

/// Row-major strides of `shape`, in elements.
pub fn contiguous(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![0isize; shape.len()];
    let mut acc = 1isize;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i] as isize;
    }
    s
}

impl Lazy {
    /// A whole contiguous buffer.
    pub fn buffer(buf: BufId, dtype: DType, shape: &[usize]) -> Lazy {
        Lazy {
            shape: shape.to_vec(),
            dtype,
            nodes: vec![LNode::Leaf {
                buf,
                dtype,
                offset: 0,
                strides: contiguous(shape),
            }],
            ops: Vec::new(),
        }
    }

    /// A constant broadcast to `shape`.
    pub fn constant(v: f64, dtype: DType, shape: &[usize]) -> Lazy {
        Lazy {
            shape: shape.to_vec(),
            dtype,
            nodes: vec![LNode::Const(v, dtype)],
            ops: Vec::new(),
        }
    }

    /// Records that an IR op (described by `desc`) was folded into this value.
    pub fn note(mut self, desc: String) -> Lazy {
        if !self.ops.contains(&desc) {
            self.ops.push(desc);
        }
        self
    }

    /// Index of the root node.
    pub fn root(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Number of non-leaf, non-constant nodes (work per element).
    pub fn ops(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| !matches!(n, LNode::Leaf { .. } | LNode::Const(..)))
            .count()
    }

    /// If this is a single buffer read, that read.
    pub fn as_leaf(&self) -> Option<(BufId, isize, &[isize])> {
        match self.nodes.as_slice() {
            [LNode::Leaf {
                buf,
                offset,
                strides,
                ..
            }] => Some((*buf, *offset, strides)),
            _ => None,
        }
    }

    /// Whether this reads one buffer contiguously from its start.
    pub fn is_whole_buffer(&self) -> Option<BufId> {
        let (buf, off, strides) = self.as_leaf()?;
        (off == 0 && strides == contiguous(&self.shape).as_slice()).then_some(buf)
    }

    /// Whether evaluation is trivially cheap (one read or a constant).
    pub fn is_cheap(&self) -> bool {
        self.nodes.len() == 1
    }

    fn map_leaves(&mut self, mut f: impl FnMut(isize, &[isize]) -> (isize, Vec<isize>)) {
        for n in &mut self.nodes {
            if let LNode::Leaf {
                offset, strides, ..
            } = n
            {
                let (o, s) = f(*offset, strides);
                *offset = o;
                *strides = s;
            }
        }
    }

    /// NumPy broadcast to `to` (right-aligned; size-1 axes get stride 0).
    pub fn broadcast(&self, to: &[usize]) -> Lazy {
        if self.shape == to {
            return self.clone();
        }
        let r = self.shape.len();
        let lead = to.len() - r;
        let from = self.shape.clone();
        let mut out = self.clone();
        out.shape = to.to_vec();
        out.map_leaves(|o, s| {
            let strides = (0..to.len())
                .map(|a| {
                    if a < lead {
                        0
                    } else {
                        let j = a - lead;
                        if from[j] == 1 && to[a] != 1 {
                            0
                        } else {
                            s[j]
                        }
                    }
                })
                .collect();
            (o, strides)
        });
        out
    }

    /// The strides of every buffer read (one per leaf, in node order).
    pub fn leaf_strides(&self) -> Vec<&[isize]> {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                LNode::Leaf { strides, .. } => Some(strides.as_slice()),
                LNode::Const(..)
                | LNode::Unary(..)
                | LNode::Binary(..)
                | LNode::Compare(..)
                | LNode::Where(..)
                | LNode::Cast(..) => None,
            })
            .collect()
    }

    /// Axis permutation: result axis `a` is axis `perm[a]`.
    pub fn permute(&self, perm: &[usize]) -> Lazy {
        let mut out = self.clone();
        out.shape = perm.iter().map(|&p| self.shape[p]).collect();
        out.map_leaves(|o, s| (o, perm.iter().map(|&p| s[p]).collect()));
        out
    }

    /// Strided slice (see [`along`] for one-element axes).
    pub fn slice(&self, axes: &[SliceAxis]) -> Lazy {
        let mut out = self.clone();
        out.shape = axes.iter().map(|a| a.len()).collect();
        out.map_leaves(|o, s| {
            let off = o + axes
                .iter()
                .zip(s)
                .map(|(a, &st)| a.start as isize * st)
                .sum::<isize>();
            let strides = axes
                .iter()
                .zip(s)
                .map(|(a, &st)| along(a.len(), a.step, st))
                .collect();
            (off, strides)
        });
        out
    }

    /// Sliding windows along `axis` (`Op::Unfold`): the axis becomes `[size, count]`,
    /// window element `k` of window `p` reading element `p·step + k·dilation`. The
    /// windows overlap (read-only: the in-place rule of the memory plan wants
    /// contiguous reads of the buffer it overwrites, which these are not).
    pub fn unfold(
        &self,
        axis: usize,
        size: usize,
        count: usize,
        step: usize,
        dilation: usize,
    ) -> Lazy {
        let mut out = self.clone();
        out.shape.splice(axis..=axis, [size, count]);
        out.map_leaves(|o, s| {
            let mut strides = s.to_vec();
            let st = s[axis];
            strides.splice(
                axis..=axis,
                [along(size, dilation, st), along(count, step, st)],
            );
            (o, strides)
        });
        out
    }

    /// Reshape, possible without data movement when every leaf's strides can express
    /// the new shape (as `torch.Tensor.view`: see `view_strides`), e.g. a contiguous
    /// leaf, or a strided slice whose merged or split axes are contiguous among
    /// themselves (a convolution gradient's per-tap slices gain a unit axis). `None`
    /// otherwise: materialise first.
    pub fn reshape(&self, to: &[usize]) -> Option<Lazy> {
        let mut views = Vec::new();
        for n in &self.nodes {
            match n {
                LNode::Leaf { strides, .. } => views.push(view_strides(&self.shape, strides, to)?),
                LNode::Const(..)
                | LNode::Unary(..)
                | LNode::Binary(..)
                | LNode::Compare(..)
                | LNode::Where(..)
                | LNode::Cast(..) => {}
            }
        }
        let mut out = self.clone();
        out.shape = to.to_vec();
        let mut views = views.into_iter();
        out.map_leaves(|o, _| (o, views.next().unwrap_or_default()));
        Some(out)
    }

    /// Appends `other`'s nodes; returns the index of its root in the combined list.
    fn absorb(&mut self, other: &Lazy) -> usize {
        let base = self.nodes.len();
        for n in &other.nodes {
            let shifted = match n.clone() {
                LNode::Unary(u, a) => LNode::Unary(u, a + base),
                LNode::Binary(b, x, y) => LNode::Binary(b, x + base, y + base),
                LNode::Compare(c, x, y) => LNode::Compare(c, x + base, y + base),
                LNode::Where(c, x, y) => LNode::Where(c + base, x + base, y + base),
                LNode::Cast(d, a) => LNode::Cast(d, a + base),
                leaf @ (LNode::Leaf { .. } | LNode::Const(..)) => leaf,
            };
            self.nodes.push(shifted);
        }
        self.nodes.len() - 1
    }

    /// Combines operands (already broadcast to `shape`) under a node built by `make`.
    pub fn combine(
        shape: &[usize],
        dtype: DType,
        parts: &[Lazy],
        make: impl Fn(&[usize]) -> LNode,
    ) -> Lazy {
        let mut out = Lazy {
            shape: shape.to_vec(),
            dtype,
            nodes: Vec::new(),
            ops: Vec::new(),
        };
        for p in parts {
            for o in &p.ops {
                if !out.ops.contains(o) {
                    out.ops.push(o.clone());
                }
            }
        }
        let roots: Vec<usize> = parts
            .iter()
            .map(|p| out.absorb(&p.broadcast(shape)))
            .collect();
        out.nodes.push(make(&roots));
        out
    }
}

/// Strides that read a tensor of shape `old` with element strides `strides` as shape
/// `new` (same element count) without moving data, or `None` when no strides can.
///
/// Runs of `old` axes that are contiguous among themselves (`stride[i] = stride[i+1] ·
/// old[i+1]`) may be merged or split freely; `new` must regroup whole runs. Walks both
/// shapes from the innermost axis, one run at a time (the rule `torch.Tensor.view`
/// follows). Unit axes take any stride; an empty tensor is trivially a view.
pub(crate) fn view_strides(old: &[usize], strides: &[isize], new: &[usize]) -> Option<Vec<isize>> {
    if old.iter().product::<usize>() == 0 || old.is_empty() {
        return (old.iter().product::<usize>() == new.iter().product::<usize>())
            .then(|| contiguous(new));
    }
    let mut out = vec![0isize; new.len()];
    let mut view_d = new.len();
    let mut base = strides[old.len() - 1];
    let (mut run, mut view) = (1usize, 1usize);
    for d in (0..old.len()).rev() {
        run *= old[d];
        let run_ends = d == 0 || (old[d - 1] != 1 && strides[d - 1] != run as isize * base);
        if !run_ends {
            continue;
        }
        while view_d > 0 && (view < run || new[view_d - 1] == 1) {
            out[view_d - 1] = view as isize * base;
            view *= new[view_d - 1];
            view_d -= 1;
        }
        if view != run {
            return None;
        }
        if d > 0 {
            base = strides[d - 1];
            run = 1;
            view = 1;
        }
    }
    (view_d == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Element offset of row-major flat index `i` of `shape` read with `strides`.
    fn addr(mut i: usize, shape: &[usize], strides: &[isize]) -> isize {
        let mut off = 0;
        for (&d, &s) in shape.iter().zip(strides).rev() {
            off += (i % d) as isize * s;
            i /= d;
        }
        off
    }

    /// A view of a contiguous buffer: its shape, then a permutation and per-axis steps
    /// (slices), and a regrouping of the result's element count into another shape.
    fn case() -> impl Strategy<Value = (Vec<usize>, Vec<isize>, Vec<usize>)> {
        (1usize..5)
            .prop_flat_map(|r| {
                (
                    proptest::collection::vec(1usize..5, r),
                    Just((0..r).collect::<Vec<_>>()).prop_shuffle(),
                    proptest::collection::vec(1usize..3, r),
                    any::<u64>(),
                )
            })
            .prop_map(|(base, perm, steps, seed)| {
                let st = contiguous(&base);
                // Slice each axis with its step, then permute.
                let sliced: Vec<usize> = base
                    .iter()
                    .zip(&steps)
                    .map(|(&d, &s)| d.div_ceil(s))
                    .collect();
                let sst: Vec<isize> = st
                    .iter()
                    .zip(&steps)
                    .map(|(&x, &s)| x * s as isize)
                    .collect();
                let shape: Vec<usize> = perm.iter().map(|&p| sliced[p]).collect();
                let strides: Vec<isize> = perm.iter().map(|&p| sst[p]).collect();
                // New shape: the prime factors of the count, grouped pseudo-randomly,
                // with unit axes sprinkled in.
                let mut n: usize = shape.iter().product();
                let mut factors = Vec::new();
                let mut f = 2;
                while n > 1 {
                    while n.is_multiple_of(f) {
                        factors.push(f);
                        n /= f;
                    }
                    f += 1;
                }
                let mut new = Vec::new();
                let mut s = seed;
                let mut cur = 1;
                for x in factors {
                    cur *= x;
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    if s >> 62 != 0 {
                        new.push(cur);
                        cur = 1;
                    }
                    if s >> 60 == 0 {
                        new.push(1);
                    }
                }
                new.push(cur);
                (shape, strides, new)
            })
    }

    proptest! {
        /// Whenever `view_strides` answers, the new strides read every element where
        /// the old view does (row-major order preserved); a contiguous view always has
        /// an answer.
        #[test]
        fn view_strides_read_the_same_elements((shape, strides, new) in case()) {
            if let Some(ns) = view_strides(&shape, &strides, &new) {
                let n: usize = shape.iter().product();
                for i in 0..n {
                    prop_assert_eq!(addr(i, &new, &ns), addr(i, &shape, &strides), "flat {}", i);
                }
            }
            let c = contiguous(&shape);
            prop_assert!(view_strides(&shape, &c, &new).is_some());
        }
    }

    #[test]
    fn a_strided_slice_gains_a_unit_axis_without_a_copy() {
        // A convolution gradient's per-tap slice [B, C, P] of a padded [B, C, P + 8]
        // buffer, reshaped to [B, G, C/G, P]: no copy.
        let (shape, strides) = ([32usize, 32, 4000], [32 * 4008isize, 4008, 1]);
        let v = view_strides(&shape, &strides, &[32, 32, 1, 4000]).expect("a view");
        assert_eq!(v[0], 32 * 4008);
        assert_eq!(v[1], 4008);
        assert_eq!(v[3], 1);
        // Merging the strided axes is not a view.
        assert!(view_strides(&shape, &strides, &[32, 128_000]).is_none());
    }
}
