//! The planner's cost model: what an expression costs to recompute, and which scalars
//! are worth storing before a broadcast.

use super::*;

/// Work per element of a lazy expression: 1 per op, 4 per transcendental function,
/// counting each distinct subexpression once (trees repeat shared subexpressions, which
/// a kernel computes once).
/// A one-element value is stored (computed once) before it is broadcast into a larger
/// loop when it costs a transcendental or mixes dtypes: inlined into that loop it would
/// be recomputed per element, and a mixed-width expression forces the whole loop onto
/// scalar code (e.g. an optimiser's f64 bias corrections cast to f32 inside a parameter
/// update).
pub(super) fn scalar_worth_storing(l: &Lazy) -> bool {
    if l.shape.iter().product::<usize>() != 1 || l.ops() == 0 {
        return false;
    }
    let mixed = l.nodes.iter().any(|n| match n {
        LNode::Leaf { dtype, .. } | LNode::Const(_, dtype) | LNode::Cast(dtype, _) => {
            *dtype != l.dtype
        }
        LNode::Unary(..) | LNode::Binary(..) | LNode::Compare(..) | LNode::Where(..) => false,
    });
    mixed || cost(l) >= 4
}

pub(super) fn cost(l: &Lazy) -> usize {
    let mut keys: Vec<String> = Vec::with_capacity(l.nodes.len());
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for n in &l.nodes {
        let (key, c) = match n {
            LNode::Leaf {
                buf,
                offset,
                strides,
                ..
            } => (format!("L{buf}/{offset}/{strides:?}"), 0),
            LNode::Const(v, d) => (format!("C{v:?}{d:?}"), 0),
            LNode::Unary(u, a) => {
                let c = match u {
                    onde_ir::UnaryOp::Exp
                    | onde_ir::UnaryOp::Log
                    | onde_ir::UnaryOp::Tanh
                    | onde_ir::UnaryOp::Sigmoid
                    | onde_ir::UnaryOp::Sin
                    | onde_ir::UnaryOp::Cos => 4,
                    onde_ir::UnaryOp::Neg
                    | onde_ir::UnaryOp::Abs
                    | onde_ir::UnaryOp::Sign
                    | onde_ir::UnaryOp::Sqrt
                    | onde_ir::UnaryOp::Relu
                    | onde_ir::UnaryOp::Floor
                    | onde_ir::UnaryOp::Not => 1,
                };
                (format!("U{u:?}({})", keys[*a]), c)
            }
            LNode::Binary(b, x, y) => {
                let c = if *b == BinaryOp::Pow { 8 } else { 1 };
                (format!("B{b:?}({},{})", keys[*x], keys[*y]), c)
            }
            LNode::Compare(cm, x, y) => (format!("P{cm:?}({},{})", keys[*x], keys[*y]), 1),
            LNode::Where(c, x, y) => (format!("W({},{},{})", keys[*c], keys[*x], keys[*y]), 1),
            LNode::Cast(d, a) => (format!("T{d:?}({})", keys[*a]), 1),
        };
        if seen.insert(key.clone()) {
            total += c;
        }
        keys.push(key);
    }
    total
}
