//! Property tests: random ops with random (often invalid) parameters on random small
//! arrays. The interpreter must never panic; when the typing rule accepts the op it must
//! succeed with results of the inferred types, or fail only with a data-dependent user
//! error (gather index out of range, empty max/min).

use crate::common;

use common::*;
use onde_ir::{
    infer, Array, BinaryOp, CmpOp, ConvParams, DType, Distribution, Graph, Op, ReduceKind, Shape,
    SliceAxis, TensorType, UnaryOp,
};
use onde_runtime::{run, InterpError};
use proptest::collection::vec;
use proptest::prelude::*;
use std::collections::HashMap;

const POOL: [f64; 8] = [-2.5, -1.0, 0.0, 1.0, 2.0, 3.0, f64::NAN, f64::INFINITY];

/// Three operands: a base shape and dtype, each operand possibly with some extents set
/// to 1 and possibly another dtype.
fn operands() -> impl Strategy<Value = Vec<Array>> {
    (
        0usize..5,
        vec(0usize..4, 4),
        0usize..4,
        vec((0usize..16, 0usize..16), 3),
        vec(0usize..8, 64),
    )
        .prop_map(|(rank, dims, dt, ops, vals)| {
            ops.iter()
                .map(|&(mask, dchoice)| {
                    let shape: Vec<usize> = (0..rank)
                        .map(|i| {
                            if mask & (1 << i) != 0 && mask >= 8 {
                                1
                            } else {
                                dims[i % 4]
                            }
                        })
                        .collect();
                    let dtype = DType::ALL[if dchoice < 3 { dchoice } else { dt }];
                    let n: usize = shape.iter().product();
                    let v: Vec<f64> = (0..n).map(|i| POOL[vals[i % 64]]).collect();
                    Array::from_f64(dtype, shape, &v).unwrap()
                })
                .collect()
        })
}

/// `x` with its values converted to `dtype` and its extents replaced by `dims`
/// (cycling through the values as needed).
fn remake(x: &Array, dtype: DType, dims: Vec<usize>) -> Array {
    let v = x.to_f64_vec();
    let n: usize = dims.iter().product();
    let data: Vec<f64> = (0..n)
        .map(|i| if v.is_empty() { 1.0 } else { v[i % v.len()] })
        .collect();
    Array::from_f64(dtype, dims, &data).unwrap()
}

/// An op from the raw parameters, and its operands. With `flag`, parameters are
/// derived from the first operand so that the op is usually well-typed.
fn make_case(
    kind: u8,
    p: &[usize],
    q: &[usize],
    flag: bool,
    sel: usize,
    args: &[Array],
) -> (Op, Vec<Array>) {
    let x = &args[0];
    let dims = x.shape().dims().to_vec();
    let rank = dims.len();
    let take = |n: usize| args[..n].to_vec();
    let cyc = |v: &[usize], n: usize| -> Vec<usize> {
        (0..n)
            .map(|i| if v.is_empty() { 0 } else { v[i % v.len()] })
            .collect()
    };
    let (pp, qq) = if flag {
        (cyc(p, rank), cyc(q, rank))
    } else {
        (p.to_vec(), q.to_vec())
    };
    let pairs: Vec<(usize, usize)> = pp.iter().zip(&qq).map(|(&a, &b)| (a % 3, b % 3)).collect();
    match kind % 18 {
        // Sliding windows; with `flag` usually well-typed, sometimes with a step or
        // dilation near usize::MAX where only one window or element fits.
        17 => {
            let huge = usize::MAX / (2 + sel % 3);
            let op = if flag {
                Op::Unfold {
                    axis: if rank > 0 { sel % rank } else { 0 },
                    size: 1 + sel % 3,
                    step: if sel.is_multiple_of(5) {
                        huge
                    } else {
                        1 + sel % 2
                    },
                    dilation: if sel.is_multiple_of(7) {
                        huge
                    } else {
                        1 + sel % 2
                    },
                }
            } else {
                Op::Unfold {
                    axis: p.first().copied().unwrap_or(0),
                    size: q.first().copied().unwrap_or(0),
                    step: sel % 3,
                    dilation: p.get(1).copied().unwrap_or(1),
                }
            };
            (op, take(1))
        }
        0 => (Op::Unary(UnaryOp::ALL[sel % UnaryOp::ALL.len()]), take(1)),
        1 => (
            Op::Binary(BinaryOp::ALL[sel % BinaryOp::ALL.len()]),
            take(2),
        ),
        2 => (Op::Compare(CmpOp::ALL[sel % CmpOp::ALL.len()]), take(2)),
        3 => {
            let mut a = take(3);
            if flag {
                a[0] = remake(&a[0], DType::Bool, a[0].shape().dims().to_vec());
            }
            (Op::Where, a)
        }
        4 => (
            Op::Cast {
                to: DType::ALL[sel % 4],
            },
            take(1),
        ),
        5 => {
            let mut axes: Vec<usize> = p.iter().map(|a| a % 4).collect();
            if flag {
                axes.retain(|&a| a < rank);
                axes.sort_unstable();
                axes.dedup();
            }
            let op = Op::Reduce {
                kind: ReduceKind::ALL[sel % 4],
                axes,
                keepdim: sel.is_multiple_of(2),
            };
            (op, take(1))
        }
        6 => {
            let kind = if sel.is_multiple_of(3) {
                onde_ir::ArgKind::ArgMax
            } else {
                onde_ir::ArgKind::ArgMin
            };
            let axis = if flag && rank > 0 {
                sel % rank
            } else {
                sel % 4
            };
            (
                Op::ArgReduce {
                    kind,
                    axis,
                    keepdim: sel.is_multiple_of(2),
                },
                take(1),
            )
        }
        7 => {
            let shape = if flag {
                dims.iter().rev().copied().collect()
            } else {
                p.to_vec()
            };
            (
                Op::Reshape {
                    shape: Shape::new(shape),
                },
                take(1),
            )
        }
        8 => {
            let perm = if flag {
                (0..rank).map(|i| (i + sel) % rank).collect()
            } else {
                p.to_vec()
            };
            (Op::Permute { perm }, take(1))
        }
        9 => {
            let mut shape = if flag { dims.clone() } else { p.to_vec() };
            if flag {
                shape.insert(0, sel % 3);
                for d in &mut shape[1..] {
                    if *d == 1 {
                        *d = sel % 4;
                    }
                }
            }
            (
                Op::Expand {
                    shape: Shape::new(shape),
                },
                take(1),
            )
        }
        10 => {
            let axes = (0..pp.len().min(qq.len()))
                .map(|i| {
                    let bound = if flag { dims[i] + 1 } else { 5 };
                    let (a, b) = (pp[i] % bound, qq[i] % bound);
                    SliceAxis {
                        start: a.min(b),
                        stop: a.max(b),
                        step: if flag { 1 + sel % 3 } else { sel % 3 },
                    }
                })
                .collect();
            (Op::Slice { axes }, take(1))
        }
        11 => {
            let op = Op::Pad {
                pads: pairs,
                value_bits: (sel as f64 - 1.5).to_bits(),
            };
            (op, take(1))
        }
        12 => {
            let axis = if flag && rank > 0 {
                sel % rank
            } else {
                sel % 4
            };
            let n = 1 + sel % 3;
            let mut a = take(n);
            if flag {
                for (i, b) in a.iter_mut().enumerate().skip(1) {
                    let mut d = dims.clone();
                    if rank > 0 {
                        d[axis] = (sel + i) % 3;
                    }
                    *b = remake(b, x.dtype(), d);
                }
            }
            (Op::Concat { axis }, a)
        }
        13 => {
            let axis = if flag && rank > 0 {
                sel % rank
            } else {
                sel % 4
            };
            let mut a = take(2);
            if flag {
                let d: Vec<usize> = dims
                    .iter()
                    .enumerate()
                    .map(|(i, &e)| {
                        if i == axis {
                            (sel % 3) + 1
                        } else {
                            e.min(1 + sel % 2)
                        }
                    })
                    .collect();
                a[1] = remake(&a[1], DType::I64, d);
            }
            (Op::Gather { axis }, a)
        }
        14 => {
            let mut a = take(2);
            if flag && rank >= 2 {
                let mut d = dims.clone();
                d.swap(rank - 1, rank - 2);
                a[1] = remake(&a[1], x.dtype(), d);
            }
            (Op::MatMul, a)
        }
        15 => {
            let n = if flag {
                rank.saturating_sub(2).max(1)
            } else {
                p.len()
            };
            let groups = if flag { 1 } else { sel % 4 };
            let stride: Vec<usize> = cyc(p, n)
                .iter()
                .map(|s| if flag { 1 + s % 2 } else { s % 3 })
                .collect();
            let dilation: Vec<usize> = cyc(q, n)
                .iter()
                .map(|d| if flag { 1 + d % 2 } else { d % 3 })
                .collect();
            let padding: Vec<(usize, usize)> = cyc(p, n)
                .iter()
                .zip(cyc(q, n))
                .map(|(&a, b)| (a % 2, b % 3))
                .collect();
            let mut a = take(2);
            if flag && rank >= 3 {
                let mut w = vec![1 + sel % 3, dims[1]];
                w.extend(dims[2..].iter().map(|&k| k.clamp(1, 2)));
                a[1] = remake(&a[1], x.dtype(), w);
            }
            let op = Op::Conv(ConvParams {
                stride,
                padding,
                dilation,
                groups,
            });
            (op, a)
        }
        _ => {
            let op = Op::Random {
                dist: if sel.is_multiple_of(2) {
                    Distribution::Uniform
                } else {
                    Distribution::Normal
                },
                dtype: DType::ALL[sel % 4],
                shape: Shape::new(p.iter().copied()),
            };
            let seed = if flag {
                i64s(&[], &[sel as i64 - 7])
            } else {
                x.clone()
            };
            (op, vec![seed])
        }
    }
}

fn type_of(a: &Array) -> TensorType {
    TensorType::new(a.dtype(), a.shape().clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn ops_never_panic_and_agree_with_typing(
        args in operands(),
        kind in any::<u8>(),
        p in vec(0usize..5, 0..5),
        q in vec(0usize..5, 0..5),
        flag in any::<bool>(),
        sel in 0usize..64,
    ) {
        let (op, args) = make_case(kind, &p, &q, flag, sel, &args);
        let mut g = Graph::new();
        let vs: Vec<_> = args.iter().map(|a| constant(&mut g, a.clone())).collect();
        let tys: Vec<TensorType> = args.iter().map(type_of).collect();
        match infer(&op, &tys) {
            Ok(result_tys) => {
                let (_, rs) = g.add_op_unchecked(op.clone(), &vs, result_tys.clone(), None);
                g.set_outputs(rs);
                match run(&g, &HashMap::new()) {
                    Ok(outs) => {
                        let got: Vec<TensorType> = outs.iter().map(type_of).collect();
                        prop_assert_eq!(got, result_tys);
                    }
                    Err(e) => prop_assert!(
                        matches!(
                            e,
                            InterpError::GatherIndexOutOfRange { .. }
                                | InterpError::EmptyReduction { .. }
                        ),
                        "{:?} on {:?}: unexpected error {}", op, tys, e
                    ),
                }
            }
            Err(_) => {
                let (_, rs) = g.add_op_unchecked(
                    op.clone(),
                    &vs,
                    vec![ty(DType::F32, &[1])],
                    None,
                );
                g.set_outputs(rs);
                let e = run(&g, &HashMap::new());
                prop_assert!(
                    matches!(e, Err(InterpError::TypeRule { .. })),
                    "{:?} on {:?}: expected a typing error, got {:?}", op, tys, e
                );
            }
        }
    }

    #[test]
    fn permute_then_inverse_is_identity(
        dims in vec(0usize..4, 0..5),
        seed in any::<u64>(),
    ) {
        let rank = dims.len();
        // A permutation from the seed (Fisher–Yates with an LCG).
        let mut perm: Vec<usize> = (0..rank).collect();
        let mut s = seed;
        for i in (1..rank).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut inv = vec![0; rank];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        let n: usize = dims.iter().product();
        let x = i64s(&dims, &(0..n as i64).collect::<Vec<_>>());
        let mut g = Graph::new();
        let c = constant(&mut g, x.clone());
        let y = add1(&mut g, Op::Permute { perm }, &[c]);
        let z = add1(&mut g, Op::Permute { perm: inv }, &[y]);
        g.set_outputs(vec![z]);
        prop_assert_eq!(run(&g, &HashMap::new()).unwrap(), vec![x]);
    }

    #[test]
    fn broadcast_add_matches_explicit_expand(
        a_mask in 0usize..8,
        b_mask in 0usize..8,
        dims in vec(1usize..4, 3),
        drop_lead in 0usize..3,
    ) {
        let shape = |mask: usize, lead: usize| -> Vec<usize> {
            (lead..3).map(|i| if mask & (1 << i) != 0 { 1 } else { dims[i] }).collect()
        };
        let (sa, sb) = (shape(a_mask, drop_lead), shape(b_mask, 0));
        let na: usize = sa.iter().product();
        let nb: usize = sb.iter().product();
        let a = f64s(&sa, &(0..na).map(|i| i as f64 * 1.5 - 2.0).collect::<Vec<_>>());
        let b = f64s(&sb, &(0..nb).map(|i| 10.0 * i as f64).collect::<Vec<_>>());
        let out = onde_ir::broadcast_shapes(&Shape::new(sa.clone()), &Shape::new(sb.clone())).unwrap();
        let mut g = Graph::new();
        let (ca, cb) = (constant(&mut g, a), constant(&mut g, b));
        let direct = add1(&mut g, Op::Binary(BinaryOp::Add), &[ca, cb]);
        let ea = add1(&mut g, Op::Expand { shape: out.clone() }, &[ca]);
        let eb = add1(&mut g, Op::Expand { shape: out }, &[cb]);
        let explicit = add1(&mut g, Op::Binary(BinaryOp::Add), &[ea, eb]);
        g.set_outputs(vec![direct, explicit]);
        let r = run(&g, &HashMap::new()).unwrap();
        prop_assert_eq!(&r[0], &r[1]);
    }
}
