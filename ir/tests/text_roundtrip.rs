//! Text form: golden file, print → parse → print property tests on random well-typed
//! graphs, and parser robustness on garbage and mutated text.

use onde_ir::text::summary;
use onde_ir::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

// ---------------------------------------------------------------------------------------
// Golden file
// ---------------------------------------------------------------------------------------

/// Hand-written, well-typed, covering most ops and every literal form.
const GOLDEN: &str = r#"graph {
  %0: f32[2,3,8] = input "x" @ "examples/golden.rs":1:1
  %1: i64[] = input "seed"
  %2: f32[4,3,3] = parameter "conv.weight"
  %3: f32[4,1] = parameter "conv.bias"
  %4: f32[2,4,8] = conv %0, %2 stride=[1] padding=[(1,1)] dilation=[1] groups=1 @ "examples/golden.rs":2:13
  %5: f32[2,4,8] = add %4, %3
  %6: f32[2,4,8] = relu %5
  %7: f32[2,4,8] = random %1 dist=normal dtype=f32 shape=[2,4,8]
  %8: bool[2,4,8] = gt %7, %6
  %9: f32[] = constant f32[] [0.0]
  %10: f32[2,4,8] = where %8, %6, %9
  %11: f32[2,8,4] = permute %10 perm=[0,2,1]
  %12: f32[2,4,4] = slice %11 axes=[0:2:1, 0:8:2, 0:4:1]
  %13: f32[2,4,4] = matmul %12, %12
  %14: f32[2,6,4] = pad %13 pads=[(0,0), (1,1), (0,0)] value=-inf
  %15: f32[2,1,4] = reduce_max %14 axes=[1] keepdim=true
  %16: f32[2,6,4] = expand %15 shape=[2,6,4]
  %17: f32[2,6,4] = sub %14, %16
  %18: f32[2,6,4] = exp %17 @ "a \"quoted\" \\ path\tü":7:1
  %19: f32[2,24] = reshape %18 shape=[2,24]
  %20: i64[2] = argmax %19 axis=1 keepdim=false
  %21: i64[2,1] = reshape %20 shape=[2,1]
  %22: f32[2,1] = gather %19, %21 axis=1
  %23: f64[2,1] = cast %22 to=f64
  %24: f64[2,3] = constant f64[2,3] [nan, nan(0x7ff8000000000001), -0.0, inf, -inf, 1e-300]
  %25: f64[2,4] = concat %23, %24 axis=1
  %26: f64[2] = reduce_sum %25 axes=[1] keepdim=false
  %27: bool[2] = constant bool[2] [true, false]
  %28: i64[2,3] = constant i64[2,3] [-9223372036854775808, 0, 1, 2, 3, 9223372036854775807]
  %29: i64[] = reduce_prod %28 axes=[0,1] keepdim=false
  %30: f64[2,3] = cast %28 to=f64
  %31: f64[2], %32: f64[2,3] = scan %26, %30, %27 carry=1 xs=1 length=3 axis=1 reverse=true {
    %0: f64[2] = input "h"
    %1: f64[2] = input "x"
    %2: bool[2] = input "mask"
    %3: f64[2] = add %0, %1
    %4: f64[2] = tanh %3
    %5: f64[2] = where %2, %4, %0
    outputs %5, %3
  }
  %33: f32[2] = constant f32[2] [nan(0xffc00000), 1e-45]
  outputs %26, %29, %31, %32
}
"#;

/// Every op's result types are what `infer` gives for its operands (recursively).
fn assert_well_typed(g: &Graph) {
    for o in g.topo_ops().unwrap() {
        let tys: Vec<TensorType> = g
            .operands(o)
            .iter()
            .map(|&v| g.value_type(v).clone())
            .collect();
        let res: Vec<TensorType> = g
            .results(o)
            .iter()
            .map(|&v| g.value_type(v).clone())
            .collect();
        let op = &g.op(o).op;
        assert_eq!(infer(op, &tys).unwrap(), res, "op {}", op.name());
        if let Op::Scan(s) = op {
            assert_well_typed(&s.body);
        }
    }
}

#[test]
fn golden_parses_and_prints_identically() {
    let g = parse_graph(GOLDEN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(print_graph(&g), GOLDEN);
    assert_well_typed(&g);
    assert_eq!(g.inputs().len(), 2);
    assert_eq!(g.outputs().len(), 4);
    assert_eq!(g.parameters().len(), 2);
    assert_eq!(
        summary(&g),
        "// 40 values, 39 ops, 2 parameters (40 elements); including 1 scan body"
    );
    // Special floats keep their exact bits.
    let c = g
        .op_ids()
        .into_iter()
        .find_map(|o| {
            if let Op::Constant(a) = &g.op(o).op {
                (a.dtype() == DType::F64).then(|| a.clone())
            } else {
                None
            }
        })
        .unwrap();
    let bits: Vec<u64> = c.as_f64().unwrap().iter().map(|x| x.to_bits()).collect();
    assert_eq!(
        bits,
        [
            f64::NAN.to_bits(),
            0x7ff8_0000_0000_0001,
            (-0.0f64).to_bits(),
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits(),
            1e-300f64.to_bits()
        ]
    );
    let dot = to_dot(&g);
    assert!(dot.contains("subgraph cluster_"));
}

// ---------------------------------------------------------------------------------------
// Random well-typed graphs
// ---------------------------------------------------------------------------------------

/// SplitMix64: the generator is driven by one proptest-chosen seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

const NAMES: &[&str] = &[
    "x",
    "m.layer.0.weight",
    "quo\"te",
    "back\\slash",
    "new\nline",
    "tab\there",
    "ünïcødé ✓",
    "",
    "ctl\u{1}\u{7f}",
    "{}[]%0@:=,",
    "// not a comment",
];

struct Builder {
    g: Graph,
    rng: Rng,
    pool: Vec<ValueId>,
    allow_inputs: bool,
    depth: usize,
}

impl Builder {
    fn new(rng: Rng, allow_inputs: bool, depth: usize) -> Builder {
        Builder {
            g: Graph::new(),
            rng,
            pool: Vec::new(),
            allow_inputs,
            depth,
        }
    }

    fn ty(&self, v: ValueId) -> TensorType {
        self.g.value_type(v).clone()
    }

    fn name(&mut self) -> String {
        self.rng.pick(NAMES).to_string()
    }

    fn loc(&mut self) -> Option<SourceLoc> {
        if self.rng.chance(40) {
            let f = self.name();
            let (l, c) = (self.rng.next() as u32, self.rng.range(0, 200) as u32);
            Some(SourceLoc::new(&f, l, c))
        } else {
            None
        }
    }

    fn add(&mut self, op: Op, operands: &[ValueId]) -> Vec<ValueId> {
        let loc = self.loc();
        let name = op.name();
        let (_, rs) = self
            .g
            .add_op(op, operands, loc)
            .unwrap_or_else(|e| panic!("generator built an ill-typed {name}: {e}"));
        self.pool.extend(rs.iter().copied());
        rs
    }

    fn add1(&mut self, op: Op, operands: &[ValueId]) -> ValueId {
        self.add(op, operands)[0]
    }

    fn dims(&mut self, max_rank: usize) -> Vec<usize> {
        let r = self.rng.range(0, max_rank);
        (0..r)
            .map(|_| {
                if self.rng.chance(3) {
                    0
                } else {
                    self.rng.range(1, 3)
                }
            })
            .collect()
    }

    fn f32_elem(&mut self) -> f32 {
        match self.rng.below(12) {
            0 => f32::NAN,
            1 => f32::from_bits(self.rng.next() as u32),
            2 => f32::from_bits(0x7f80_0000 | (self.rng.next() as u32 & 0x807f_ffff) | 1),
            3 => f32::INFINITY,
            4 => f32::NEG_INFINITY,
            5 => -0.0,
            6 => f32::from_bits(1),
            7 => f32::MAX,
            _ => (self.rng.next() as i32) as f32 / 1e5,
        }
    }

    fn f64_elem(&mut self) -> f64 {
        match self.rng.below(12) {
            0 => f64::NAN,
            1 => f64::from_bits(self.rng.next()),
            2 => f64::from_bits(
                0x7ff0_0000_0000_0000 | (self.rng.next() & 0x800f_ffff_ffff_ffff) | 1,
            ),
            3 => f64::INFINITY,
            4 => f64::NEG_INFINITY,
            5 => -0.0,
            6 => f64::from_bits(1),
            7 => f64::MIN,
            _ => (self.rng.next() as i64) as f64 / 1e7,
        }
    }

    fn array(&mut self, dtype: DType, dims: &[usize]) -> Array {
        let n: usize = dims.iter().product();
        let data = match dtype {
            DType::Bool => Data::Bool((0..n).map(|_| self.rng.chance(50)).collect()),
            DType::I64 => Data::I64(
                (0..n)
                    .map(|_| match self.rng.below(4) {
                        0 => i64::MIN,
                        1 => i64::MAX,
                        _ => self.rng.next() as i64 % 1000,
                    })
                    .collect(),
            ),
            DType::F32 => Data::F32((0..n).map(|_| self.f32_elem()).collect()),
            DType::F64 => Data::F64((0..n).map(|_| self.f64_elem()).collect()),
        };
        Array::new(dims.to_vec(), data).unwrap()
    }

    /// A fresh input, parameter or constant.
    fn leaf(&mut self, dtype: DType, dims: &[usize]) -> ValueId {
        let ty = TensorType::new(dtype, dims.to_vec());
        match self.rng.below(3) {
            0 if self.allow_inputs => {
                let name = self.name();
                self.add1(Op::Input { name, ty }, &[])
            }
            0 | 1 => {
                let name = self.name();
                self.add1(Op::Parameter { name, ty }, &[])
            }
            _ => {
                let a = self.array(dtype, dims);
                self.add1(Op::Constant(a), &[])
            }
        }
    }

    fn any_dtype(&mut self) -> DType {
        self.rng.pick(&DType::ALL)
    }

    fn float_dtype(&mut self) -> DType {
        self.rng.pick(&[DType::F32, DType::F64])
    }

    /// A pool value satisfying `pred`, or a fresh leaf of type `fallback()`.
    fn value(
        &mut self,
        pred: impl Fn(&TensorType) -> bool,
        fallback: impl FnOnce(&mut Builder) -> (DType, Vec<usize>),
    ) -> ValueId {
        let cands: Vec<ValueId> = self
            .pool
            .iter()
            .copied()
            .filter(|&v| pred(self.g.value_type(v)))
            .collect();
        if !cands.is_empty() && self.rng.chance(75) {
            return self.rng.pick(&cands);
        }
        let (d, s) = fallback(self);
        self.leaf(d, &s)
    }

    /// A shape that broadcasts against `dims`: a suffix with some extents set to 1.
    fn broadcastable(&mut self, dims: &[usize]) -> Vec<usize> {
        let drop = self.rng.range(0, dims.len());
        dims[drop..]
            .iter()
            .map(|&d| if self.rng.chance(30) { 1 } else { d })
            .collect()
    }

    fn step(&mut self) {
        let choice = self.rng.below(if self.depth < 2 { 21 } else { 20 });
        match choice {
            0 => {
                let (d, s) = (self.any_dtype(), self.dims(3));
                self.leaf(d, &s);
            }
            1 => {
                let v = self.value(|_| true, |b| (b.any_dtype(), b.dims(3)));
                let d = self.ty(v).dtype;
                let ops: Vec<UnaryOp> = UnaryOp::ALL.into_iter().filter(|u| u.accepts(d)).collect();
                let u = self.rng.pick(&ops);
                self.add(Op::Unary(u), &[v]);
            }
            2 | 3 => {
                let a = self.value(|_| true, |b| (b.any_dtype(), b.dims(3)));
                let t = self.ty(a);
                let s = self.broadcastable(t.shape.dims());
                let b = self.value(
                    |u| u.dtype == t.dtype && broadcast_shapes(&u.shape, &t.shape).is_some(),
                    |_| (t.dtype, s),
                );
                let (x, y) = if self.rng.chance(50) { (a, b) } else { (b, a) };
                if choice == 2 {
                    let ops: Vec<BinaryOp> = BinaryOp::ALL
                        .into_iter()
                        .filter(|o| o.accepts(t.dtype))
                        .collect();
                    let o = self.rng.pick(&ops);
                    self.add(Op::Binary(o), &[x, y]);
                } else {
                    let c = self.rng.pick(&CmpOp::ALL);
                    self.add(Op::Compare(c), &[x, y]);
                }
            }
            4 => {
                let a = self.value(|_| true, |b| (b.any_dtype(), b.dims(3)));
                let t = self.ty(a);
                let cs = self.broadcastable(t.shape.dims());
                let cond = self.leaf(DType::Bool, &cs);
                let bs = self.broadcastable(t.shape.dims());
                let b = self.leaf(t.dtype, &bs);
                self.add(Op::Where, &[cond, a, b]);
            }
            5 => {
                let v = self.value(|_| true, |b| (b.any_dtype(), b.dims(3)));
                let to = self.any_dtype();
                self.add(Op::Cast { to }, &[v]);
            }
            6 => {
                let v = self.value(|t| t.dtype != DType::Bool, |b| (b.float_dtype(), b.dims(3)));
                let r = self.ty(v).shape.rank();
                let axes: Vec<usize> = (0..r).filter(|_| self.rng.chance(50)).collect();
                let kind = self.rng.pick(&ReduceKind::ALL);
                let keepdim = self.rng.chance(50);
                self.add(
                    Op::Reduce {
                        kind,
                        axes,
                        keepdim,
                    },
                    &[v],
                );
            }
            7 => {
                let v = self.value(
                    |t| t.dtype != DType::Bool && t.shape.rank() > 0,
                    |b| (DType::I64, vec![b.rng.range(1, 3), 2]),
                );
                let axis = self.rng.below(self.ty(v).shape.rank());
                let kind = self.rng.pick(&[ArgKind::ArgMax, ArgKind::ArgMin]);
                let keepdim = self.rng.chance(50);
                self.add(
                    Op::ArgReduce {
                        kind,
                        axis,
                        keepdim,
                    },
                    &[v],
                );
            }
            8 => {
                let v = self.value(|_| true, |b| (b.any_dtype(), b.dims(4)));
                let mut d = self.ty(v).shape.dims().to_vec();
                for _ in 0..self.rng.range(1, 3) {
                    match self.rng.below(3) {
                        0 if d.len() >= 2 => {
                            let i = self.rng.below(d.len() - 1);
                            let m = d[i] * d[i + 1];
                            d.splice(i..i + 2, [m]);
                        }
                        1 => {
                            let i = self.rng.range(0, d.len());
                            d.insert(i, 1);
                        }
                        _ => {
                            if let Some(i) = d.iter().position(|&x| x == 1) {
                                d.remove(i);
                            }
                        }
                    }
                }
                self.add(Op::Reshape { shape: d.into() }, &[v]);
            }
            9 => {
                let v = self.value(|_| true, |b| (b.any_dtype(), b.dims(4)));
                let mut perm: Vec<usize> = (0..self.ty(v).shape.rank()).collect();
                for i in (1..perm.len()).rev() {
                    let j = self.rng.range(0, i);
                    perm.swap(i, j);
                }
                self.add(Op::Permute { perm }, &[v]);
            }
            10 => {
                let v = self.value(|_| true, |b| (b.any_dtype(), b.dims(3)));
                let mut d: Vec<usize> = self
                    .ty(v)
                    .shape
                    .dims()
                    .iter()
                    .map(|&x| if x == 1 { self.rng.range(1, 3) } else { x })
                    .collect();
                for _ in 0..self.rng.range(0, 2) {
                    d.insert(0, self.rng.range(1, 3));
                }
                self.add(Op::Expand { shape: d.into() }, &[v]);
            }
            11 => {
                let v = self.value(|_| true, |b| (b.any_dtype(), b.dims(3)));
                let axes = self
                    .ty(v)
                    .shape
                    .dims()
                    .iter()
                    .map(|&d| {
                        let start = self.rng.range(0, d);
                        let stop = self.rng.range(start, d);
                        let step = self.rng.range(1, 3);
                        SliceAxis { start, stop, step }
                    })
                    .collect();
                self.add(Op::Slice { axes }, &[v]);
            }
            12 => {
                let v = self.value(|_| true, |b| (b.any_dtype(), b.dims(3)));
                let pads = (0..self.ty(v).shape.rank())
                    .map(|_| (self.rng.range(0, 2), self.rng.range(0, 2)))
                    .collect();
                let value_bits = self.f64_elem().to_bits();
                self.add(Op::Pad { pads, value_bits }, &[v]);
            }
            13 => {
                let v = self.value(
                    |t| t.shape.rank() > 0,
                    |b| (b.any_dtype(), vec![b.rng.range(1, 3); b.rng.range(1, 3)]),
                );
                let t = self.ty(v);
                let axis = self.rng.below(t.shape.rank());
                let mut operands = vec![v];
                for _ in 0..self.rng.range(0, 2) {
                    if self.rng.chance(30) {
                        operands.push(v);
                    } else {
                        let mut d = t.shape.dims().to_vec();
                        d[axis] = self.rng.range(0, 3);
                        let w = self.leaf(t.dtype, &d);
                        operands.push(w);
                    }
                }
                self.add(Op::Concat { axis }, &operands);
            }
            14 => {
                let v = self.value(
                    |t| t.shape.rank() > 0,
                    |b| (b.any_dtype(), vec![b.rng.range(1, 3); b.rng.range(1, 3)]),
                );
                let t = self.ty(v);
                let axis = self.rng.below(t.shape.rank());
                let idx_dims: Vec<usize> = t
                    .shape
                    .dims()
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| {
                        if i == axis {
                            self.rng.range(1, 3)
                        } else {
                            self.rng.range(0, d)
                        }
                    })
                    .collect();
                let n: usize = idx_dims.iter().product();
                let extent = t.shape.dims()[axis].max(1);
                let idx: Vec<i64> = (0..n).map(|_| self.rng.below(extent) as i64).collect();
                let a = Array::i64(idx_dims, idx).unwrap();
                let index = self.add1(Op::Constant(a), &[]);
                let gathered = self.add(Op::Gather { axis }, &[v, index])[0];
                if t.dtype != DType::Bool {
                    let shape = t.shape.clone();
                    self.add(Op::ScatterAdd { axis, shape }, &[index, gathered]);
                }
                self.add(Op::Detach, &[gathered]);
            }
            15 => {
                let a = self.value(
                    |t| t.dtype != DType::Bool && t.shape.rank() >= 2,
                    |b| {
                        let mut d = b.dims(2);
                        d.push(b.rng.range(1, 3));
                        d.push(b.rng.range(1, 3));
                        (b.float_dtype(), d)
                    },
                );
                let t = self.ty(a);
                let r = t.shape.rank();
                let k = t.shape.dims()[r - 1];
                let mut d = self.broadcastable(&t.shape.dims()[..r - 2]);
                d.push(k);
                d.push(self.rng.range(1, 3));
                let b = self.leaf(t.dtype, &d);
                self.add(Op::MatMul, &[a, b]);
            }
            16 => {
                let n = self.rng.range(1, 2);
                let groups = self.rng.range(1, 2);
                let (cin, cout) = (groups * self.rng.range(1, 2), groups * self.rng.range(1, 2));
                let mut xd = vec![self.rng.range(1, 2), cin];
                let mut wd = vec![cout, cin / groups];
                let (mut stride, mut padding, mut dilation) = (vec![], vec![], vec![]);
                for _ in 0..n {
                    let k = self.rng.range(1, 3);
                    let dil = self.rng.range(1, 2);
                    let pad = (self.rng.range(0, 2), self.rng.range(0, 2));
                    let span = dil * (k - 1) + 1;
                    let len = span.saturating_sub(pad.0 + pad.1).max(1) + self.rng.range(0, 3);
                    xd.push(len);
                    wd.push(k);
                    stride.push(self.rng.range(1, 2));
                    padding.push(pad);
                    dilation.push(dil);
                }
                let dt = self.float_dtype();
                let x = self.leaf(dt, &xd);
                let w = self.leaf(dt, &wd);
                let p = ConvParams {
                    stride,
                    padding,
                    dilation,
                    groups,
                };
                self.add(Op::Conv(p), &[x, w]);
            }
            17 => {
                let seed = self.value(
                    |t| t.dtype == DType::I64 && t.shape.rank() == 0,
                    |_| (DType::I64, vec![]),
                );
                let dist = self
                    .rng
                    .pick(&[Distribution::Uniform, Distribution::Normal]);
                let dtype = self.float_dtype();
                let shape = self.dims(3).into();
                self.add(Op::Random { dist, dtype, shape }, &[seed]);
            }
            18 => {
                let v = self.value(
                    |t| t.shape.dims().iter().any(|&d| d > 0),
                    |b| (b.any_dtype(), vec![b.rng.range(1, 5), b.rng.range(1, 3)]),
                );
                let dims = self.ty(v).shape.dims().to_vec();
                let axes: Vec<usize> = (0..dims.len()).filter(|&i| dims[i] > 0).collect();
                let axis = self.rng.pick(&axes);
                let dilation = self.rng.range(1, 2);
                let size = self.rng.range(1, (dims[axis] - 1) / dilation + 1);
                let step = self.rng.range(1, 3);
                self.add(
                    Op::Unfold {
                        axis,
                        size,
                        step,
                        dilation,
                    },
                    &[v],
                );
            }
            19 => {
                let v = self.value(
                    |t| t.dtype.is_float() && t.shape.rank() > 0,
                    |b| (b.float_dtype(), vec![b.rng.range(1, 4), b.rng.range(1, 5)]),
                );
                let t = self.ty(v);
                let axis = self.rng.below(t.shape.rank());
                if self.rng.chance(50) {
                    self.add(Op::Softmax { axis }, &[v]);
                } else {
                    // Its backward: a second operand of the same type.
                    let dims = t.shape.dims().to_vec();
                    let w = self.value(|u| *u == t, |_| (t.dtype, dims));
                    self.add(Op::SoftmaxBackward { axis }, &[w, v]);
                }
            }
            _ => self.scan(),
        }
    }

    /// A scan whose body is itself a random graph (nested scans up to depth 2).
    fn scan(&mut self) {
        let dt = self.float_dtype();
        let s = self.dims(2);
        let num_carry = self.rng.range(0, 1);
        let num_xs = self.rng.range(0, 2);
        let num_inv = self.rng.range(0, 1);
        let length = self.rng.range(1, 3);
        let axis = self.rng.range(0, s.len());
        let reverse = self.rng.chance(50);

        let mut body = Builder::new(Rng(self.rng.next()), false, self.depth + 1);
        let mut body_inputs = Vec::new();
        for i in 0..num_carry + num_xs + num_inv {
            let name = body.name();
            let ty = TensorType::new(dt, s.clone());
            body.allow_inputs = true;
            let v = body.add1(Op::Input { name, ty }, &[]);
            body.allow_inputs = false;
            body_inputs.push((i, v));
        }
        for _ in 0..body.rng.range(1, 6) {
            body.step();
        }
        let carry_ty = TensorType::new(dt, s.clone());
        let mut outs = Vec::new();
        for _ in 0..num_carry {
            let cands: Vec<ValueId> = body
                .pool
                .iter()
                .copied()
                .filter(|&v| body.g.value_type(v) == &carry_ty)
                .collect();
            outs.push(body.rng.pick(&cands));
        }
        for _ in 0..body.rng.range(0, 2) {
            let cands: Vec<ValueId> = body
                .pool
                .iter()
                .copied()
                .filter(|&v| body.g.value_type(v).shape.rank() >= axis)
                .collect();
            if !cands.is_empty() {
                outs.push(body.rng.pick(&cands));
            }
        }
        body.g.set_outputs(outs);

        let mut operands = Vec::new();
        for _ in 0..num_carry {
            let v = self.value(|t| t == &carry_ty, |_| (dt, s.clone()));
            operands.push(v);
        }
        let mut xs_dims = s.clone();
        xs_dims.insert(axis, length);
        for _ in 0..num_xs {
            let v = self.leaf(dt, &xs_dims);
            operands.push(v);
        }
        for _ in 0..num_inv {
            let v = self.value(|t| t == &carry_ty, |_| (dt, s.clone()));
            operands.push(v);
        }
        let op = Op::Scan(ScanOp {
            body: Arc::new(body.g),
            num_carry,
            num_xs,
            length,
            axis,
            reverse,
        });
        self.add(op, &operands);
    }
}

/// A random well-typed graph built with `Graph::add_op`.
fn random_graph(seed: u64) -> Graph {
    let mut b = Builder::new(Rng(seed), true, 0);
    for _ in 0..b.rng.range(1, 20) {
        b.step();
    }
    let n_out = b.rng.range(0, 3);
    let outs: Vec<ValueId> = (0..n_out).map(|_| b.rng.pick(&b.pool)).collect();
    b.g.set_outputs(outs);
    if b.rng.chance(30) {
        let mut ins = b.g.inputs().to_vec();
        ins.reverse();
        b.g.set_inputs(ins);
    }
    b.g
}

/// `a` and `b` have equal ops (payloads, locations, operands, result types) in
/// topological order, and the same inputs and outputs, recursively into Scan bodies.
fn assert_same(a: &Graph, b: &Graph) {
    let (oa, ob) = (a.topo_ops().unwrap(), b.topo_ops().unwrap());
    assert_eq!(oa.len(), ob.len());
    assert_eq!(a.num_values(), b.num_values());
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for (&x, &y) in oa.iter().zip(&ob) {
        let (nx, ny) = (a.op(x), b.op(y));
        assert_eq!(nx.op, ny.op);
        assert_eq!(nx.loc, ny.loc);
        let operands: Vec<ValueId> = a.operands(x).iter().map(|v| map[v]).collect();
        assert_eq!(operands, b.operands(y));
        let (rx, ry) = (a.results(x), b.results(y));
        assert_eq!(rx.len(), ry.len());
        for (&vx, &vy) in rx.iter().zip(&ry) {
            assert_eq!(a.value_type(vx), b.value_type(vy));
            map.insert(vx, vy);
        }
        if let (Op::Scan(sx), Op::Scan(sy)) = (&nx.op, &ny.op) {
            assert_same(&sx.body, &sy.body);
        }
    }
    let mapped = |vs: &[ValueId]| vs.iter().map(|v| map[v]).collect::<Vec<_>>();
    assert_eq!(mapped(a.inputs()), b.inputs());
    assert_eq!(mapped(a.outputs()), b.outputs());
}

fn check_round_trip(g: &Graph) {
    let s = print_graph(g);
    let h = parse_graph(&s).unwrap_or_else(|e| panic!("{e}\n{s}"));
    assert_eq!(print_graph(&h), s);
    assert_same(g, &h);
    assert_well_typed(&h);
    assert_eq!(summary(g), summary(&h));
    assert_eq!(to_dot(g), to_dot(&h));
}

/// If `src` parses, printing is a fixed point of parse ∘ print.
fn check_parse_is_stable(src: &str) {
    if let Ok(g) = parse_graph(src) {
        let s = print_graph(&g);
        let h = parse_graph(&s).unwrap_or_else(|e| panic!("{e}\n{s}"));
        assert_eq!(print_graph(&h), s);
        let _ = to_dot(&g);
        let _ = summary(&g);
    }
}

fn mutate(src: &str, rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "%",
        "%0",
        "%99",
        ",",
        "=",
        ":",
        "[",
        "]",
        "(",
        ")",
        "{",
        "}",
        "\"",
        "\\",
        "\n",
        " ",
        "-",
        "@",
        "0x",
        "nan",
        "inf",
        "1e",
        "f32",
        "i64",
        "bool",
        "scan",
        "input",
        "axis=",
        "orphan",
        "outputs",
        "inputs",
        "//",
        "18446744073709551616",
    ];
    let mut c: Vec<char> = src.chars().collect();
    for _ in 0..rng.range(1, 3) {
        if c.is_empty() {
            break;
        }
        let i = rng.below(c.len());
        match rng.below(9) {
            // Gentle mutations that often still parse: a digit, a whole line.
            5 | 6 => {
                let digits: Vec<usize> = (0..c.len()).filter(|&k| c[k].is_ascii_digit()).collect();
                if !digits.is_empty() {
                    let k = rng.pick(&digits);
                    c[k] = char::from(b'0' + rng.below(10) as u8);
                }
            }
            7 | 8 => {
                let s: String = c.iter().collect();
                let mut lines: Vec<&str> = s.lines().collect();
                if lines.len() > 2 {
                    let k = rng.range(1, lines.len() - 2);
                    if rng.chance(50) {
                        lines.remove(k);
                    } else {
                        lines.swap(k, k + 1);
                    }
                }
                c = (lines.join("\n") + "\n").chars().collect();
            }
            0 => {
                let j = (i + rng.range(1, 8)).min(c.len());
                c.drain(i..j);
            }
            1 => {
                let p: Vec<char> = rng.pick(PIECES).chars().collect();
                c.splice(i..i, p);
            }
            2 => {
                let p: Vec<char> = rng.pick(PIECES).chars().collect();
                c.splice(i..(i + 1).min(c.len()), p);
            }
            3 => c.truncate(i),
            _ => {
                // Duplicate a line.
                let s: String = c.iter().collect();
                let lines: Vec<&str> = s.lines().collect();
                let k = rng.below(lines.len().max(1));
                let mut out: Vec<&str> = lines.clone();
                if let Some(l) = lines.get(k) {
                    out.insert(k, l);
                }
                c = (out.join("\n") + "\n").chars().collect();
            }
        }
    }
    c.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_graphs_round_trip(seed in any::<u64>()) {
        check_round_trip(&random_graph(seed));
    }

    #[test]
    fn mutated_text_never_panics(seed in any::<u64>()) {
        let src = print_graph(&random_graph(seed));
        let mut rng = Rng(seed ^ 0x5555);
        for _ in 0..8 {
            let m = mutate(&src, &mut rng);
            check_parse_is_stable(&m);
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,300}") {
        check_parse_is_stable(&s);
    }

    #[test]
    fn grammar_soup_never_panics(
        s in "(graph \\{\n)?([%0-9a-z_\\[\\](){},=:@\" .\\-\n]|f32|scan|input|outputs|nan\\(0x){0,200}"
    ) {
        check_parse_is_stable(&s);
    }
}

#[test]
fn scan_op_equality_compares_bodies_by_text() {
    let a = parse_graph(GOLDEN).unwrap();
    let b = parse_graph(GOLDEN).unwrap();
    let scan = |g: &Graph| {
        g.op_ids()
            .into_iter()
            .find_map(|o| {
                if let Op::Scan(s) = &g.op(o).op {
                    Some(s.clone())
                } else {
                    None
                }
            })
            .unwrap()
    };
    let (sa, sb) = (scan(&a), scan(&b));
    assert!(!Arc::ptr_eq(&sa.body, &sb.body));
    assert_eq!(sa, sb);
    let other = parse_graph(&GOLDEN.replace("tanh %3", "sigmoid %3")).unwrap();
    assert_ne!(sa, scan(&other));
}
