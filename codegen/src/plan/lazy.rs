//! Lazy values: an elementwise expression tree whose leaves read buffers through
//! affine maps. View ops (broadcast, permute, slice, contiguous reshape) transform the
//! leaves' maps instead of moving data; elementwise ops combine trees. A lazy value
//! becomes a kernel when it is materialised.

use onde_ir::{BinaryOp, CmpOp, DType, SliceAxis, UnaryOp};

/// A node of a lazy expression tree.
#[derive(Clone, Debug, PartialEq)]
pub enum LNode {
    /// A buffer read through `offset + Σ strides·i` (elements).
    Leaf {
        /// Buffer id.
        buf: usize,
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
    pub fn buffer(buf: usize, dtype: DType, shape: &[usize]) -> Lazy {
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
    pub fn as_leaf(&self) -> Option<(usize, isize, &[isize])> {
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
    pub fn is_whole_buffer(&self) -> Option<usize> {
        let (buf, off, strides) = self.as_leaf()?;
        (off == 0 && strides == contiguous(&self.shape).as_slice()).then_some(buf)
    }

    /// Whether evaluation is trivially cheap (one read or a constant).
    pub fn is_cheap(&self) -> bool {
        self.nodes.len() == 1
    }

    fn map_leaves(&mut self, f: impl Fn(isize, &[isize]) -> (isize, Vec<isize>)) {
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

    /// Axis permutation: result axis `a` is axis `perm[a]`.
    pub fn permute(&self, perm: &[usize]) -> Lazy {
        let mut out = self.clone();
        out.shape = perm.iter().map(|&p| self.shape[p]).collect();
        out.map_leaves(|o, s| (o, perm.iter().map(|&p| s[p]).collect()));
        out
    }

    /// Strided slice.
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
                .map(|(a, &st)| st * a.step as isize)
                .collect();
            (off, strides)
        });
        out
    }

    /// Reshape, possible without data movement when every leaf reads contiguously
    /// (or there are no leaves). `None` otherwise: materialise first.
    pub fn reshape(&self, to: &[usize]) -> Option<Lazy> {
        let c = contiguous(&self.shape);
        let ok = self.nodes.iter().all(|n| match n {
            LNode::Leaf { strides, .. } => *strides == c,
            LNode::Const(..)
            | LNode::Unary(..)
            | LNode::Binary(..)
            | LNode::Compare(..)
            | LNode::Where(..)
            | LNode::Cast(..) => true,
        });
        if !ok {
            return None;
        }
        let mut out = self.clone();
        out.shape = to.to_vec();
        let nc = contiguous(to);
        out.map_leaves(|o, _| (o, nc.clone()));
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
