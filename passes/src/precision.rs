//! Precision promotion: the same graph computed in f64 instead of f32 (for gradient
//! checks by finite differences, which need f64 to be meaningful). Every f32 input,
//! parameter, constant, cast target and random dtype becomes f64, Scan bodies
//! included; integer and bool values are untouched. The result is rebuilt op by op
//! and type-checked, so it is well typed by construction.

use onde_ir::{Array, DType, Graph, GraphError, Op, ScanOp, TensorType, ValueId};
use std::collections::HashMap;
use std::sync::Arc;

fn up(d: DType) -> DType {
    if d == DType::F32 {
        DType::F64
    } else {
        d
    }
}

fn up_ty(t: &TensorType) -> TensorType {
    TensorType::new(up(t.dtype), t.shape.clone())
}

fn up_op(op: &Op) -> Result<Op, GraphError> {
    Ok(match op {
        Op::Input { name, ty } => Op::Input {
            name: name.clone(),
            ty: up_ty(ty),
        },
        Op::Parameter { name, ty } => Op::Parameter {
            name: name.clone(),
            ty: up_ty(ty),
        },
        Op::Constant(a) => match a.as_f32() {
            Some(v) => Op::Constant(
                Array::f64(a.shape().clone(), v.iter().map(|&x| f64::from(x)).collect())
                    .unwrap_or_else(|_| a.clone()),
            ),
            None => op.clone(),
        },
        Op::Cast { to } => Op::Cast { to: up(*to) },
        Op::Random { dist, dtype, shape } => Op::Random {
            dist: *dist,
            dtype: up(*dtype),
            shape: shape.clone(),
        },
        Op::Scan(s) => Op::Scan(ScanOp {
            body: Arc::new(to_f64(&s.body)?),
            ..s.clone()
        }),
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Compare(_)
        | Op::Where
        | Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::Reshape { .. }
        | Op::Permute { .. }
        | Op::Expand { .. }
        | Op::Slice { .. }
        | Op::Unfold { .. }
        | Op::Pad { .. }
        | Op::Concat { .. }
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::Softmax { .. }
        | Op::SoftmaxBackward { .. }
        | Op::Detach
        | Op::MatMul
        | Op::Conv(_) => op.clone(),
    })
}

/// `g` computed in f64: returns the new graph and the map from old to new values.
pub fn to_f64_mapped(g: &Graph) -> Result<(Graph, HashMap<ValueId, ValueId>), GraphError> {
    let mut out = Graph::new();
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    let order = g.topo_ops().unwrap_or_default();
    for o in order {
        let node = g.op(o);
        let mut operands = Vec::new();
        for v in g.operands(o) {
            operands.push(*map.get(&v).ok_or(GraphError::UnknownValue(v))?);
        }
        let (_, rs) = out.add_op(up_op(&node.op)?, &operands, node.loc.clone())?;
        for (old, new) in g.results(o).into_iter().zip(rs) {
            map.insert(old, new);
        }
    }
    let remap = |vs: &[ValueId]| vs.iter().filter_map(|v| map.get(v).copied()).collect();
    out.set_inputs(remap(g.inputs()));
    out.set_outputs(remap(g.outputs()));
    Ok((out, map))
}

/// `g` computed in f64.
pub fn to_f64(g: &Graph) -> Result<Graph, GraphError> {
    to_f64_mapped(g).map(|r| r.0)
}
