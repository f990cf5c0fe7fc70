//! Sum factoring (`onde_passes::factor`): constant factors leave sums, sums sharing a
//! core become one, centred values sum to zero, splits never add a pass over the data,
//! and the optimised graph computes the same values (up to reassociation).

mod common;

use common::{assert_same, feeds, optimised};
use onde_ir::{print_graph, Array, BinaryOp, DType, Graph, Op, TensorType};
use onde_ir::{ReduceKind, UnaryOp, ValueId};
use onde_passes::{optimizer, FactorSums, Pass};
use proptest::prelude::*;

/// Sums over the whole `[2, 3, 4]` data (one pass over memory each).
fn full_sums(g: &Graph) -> usize {
    g.op_ids()
        .into_iter()
        .filter(|&o| {
            matches!(
                g.op(o).op,
                Op::Reduce {
                    kind: ReduceKind::Sum,
                    ..
                }
            ) && g.value_type(g.operands(o)[0]).shape.numel() > 12
        })
        .count()
}

const HEAD: &str = r#"  %0: f64[2,3,4] = input "x"
  %1: f64[2,3,4] = input "g"
  %2: f64[1,3,1] = input "c"
  %3: f64[3,1] = input "d"
"#;

#[test]
fn constant_factors_leave_the_sum() {
    // Σ_{0,2} (x·c / d) → (Σ x)·c/d: the sum reads x alone.
    let src = format!(
        "graph {{\n{HEAD}  %4: f64[2,3,4] = mul %0, %2\n  %5: f64[2,3,4] = div %4, %3\n  \
         %6: f64[3] = reduce_sum %5 axes=[0,2] keepdim=false\n  outputs %6\n}}"
    );
    let (g, o) = optimised(&src);
    assert_same(&g, &o);
    let text = print_graph(&o);
    let sum_line = text.lines().find(|l| l.contains("reduce_sum")).unwrap();
    assert!(sum_line.contains("reduce_sum %0 "), "{text}");
}

#[test]
fn batch_norm_style_sums_share_one_pass() {
    // Σ g·(x−μ)·r, Σ −(g·γ·(x−μ)·r)/s and Σ g·γ/s, with μ = mean(x): two cores
    // (g·(x−μ) and g) — plus μ's own sum — instead of three full passes besides μ's.
    let src = format!(
        "graph {{\n{HEAD}  %4: f64[1,3,1] = reduce_sum %0 axes=[0,2] keepdim=true\n  \
         %5: f64[] = constant f64[] [8.0]\n  %6: f64[1,3,1] = div %4, %5\n  \
         %7: f64[2,3,4] = sub %0, %6\n  %8: f64[2,3,4] = mul %7, %2\n  \
         %9: f64[2,3,4] = mul %1, %8\n  %10: f64[1,3,1] = reduce_sum %9 axes=[0,2] keepdim=true\n  \
         %11: f64[2,3,4] = mul %1, %2\n  %12: f64[2,3,4] = mul %11, %8\n  \
         %13: f64[2,3,4] = div %12, %2\n  %14: f64[2,3,4] = neg %13\n  \
         %15: f64[1,3,1] = reduce_sum %14 axes=[0,2] keepdim=true\n  \
         %16: f64[2,3,4] = div %11, %2\n  %17: f64[1,3,1] = reduce_sum %16 axes=[0,2] keepdim=true\n  \
         %18: f64[1,3,1] = reduce_sum %1 axes=[0,2] keepdim=true\n  \
         outputs %10, %15, %17, %18\n}}"
    );
    let (g, o) = optimised(&src);
    assert_eq!(full_sums(&g), 5);
    assert_eq!(full_sums(&o), 3, "{}", print_graph(&o));
    assert_same(&g, &o);
}

#[test]
fn a_centred_value_sums_to_zero_and_a_split_needs_every_part_summed() {
    // Σ (x − mean(x)) is 0; Σ (x + g) splits (both are summed elsewhere); Σ (x·g − c)
    // with nothing else summing x·g stays one sum (a split would cancel Σx·g against
    // N·c).
    let src = format!(
        "graph {{\n{HEAD}  %4: f64[1,3,1] = reduce_sum %0 axes=[0,2] keepdim=true\n  \
         %5: f64[] = constant f64[] [8.0]\n  %6: f64[1,3,1] = div %4, %5\n  \
         %7: f64[2,3,4] = sub %0, %6\n  %8: f64[1,3,1] = reduce_sum %7 axes=[0,2] keepdim=true\n  \
         %9: f64[1,3,1] = reduce_sum %1 axes=[0,2] keepdim=true\n  \
         %10: f64[2,3,4] = add %0, %1\n  %11: f64[1,3,1] = reduce_sum %10 axes=[0,2] keepdim=true\n  \
         %14: f64[2,3,4] = mul %0, %1\n  %12: f64[2,3,4] = sub %14, %2\n  \
         %13: f64[3] = reduce_sum %12 axes=[0,2] keepdim=false\n  \
         outputs %4, %8, %11, %13\n}}"
    );
    let (g, o) = optimised(&src);
    let f = feeds(&g);
    let y = onde_runtime::run(&o, &f).unwrap();
    assert!(y[1].to_f64_vec().iter().all(|&v| v == 0.0), "{:?}", y[1]);
    // Σx, Σg (shared by the split) and Σ(x·g − c).
    assert_eq!(full_sums(&o), 3, "{}", print_graph(&o));
    let x = onde_runtime::run(&g, &f).unwrap();
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        for (u, v) in p.to_f64_vec().iter().zip(q.to_f64_vec()) {
            // Output 1 is exactly 0 after factoring, rounding noise before.
            let tol = if i == 1 {
                1e-12
            } else {
                1e-12 * (1.0 + u.abs())
            };
            assert!((u - v).abs() <= tol, "output {i}: {u} vs {v}");
        }
    }
}

#[test]
fn products_in_either_order_are_one_sum_and_the_pass_settles() {
    let src = format!(
        "graph {{\n{HEAD}  %4: f64[2,3,4] = mul %0, %1\n  %5: f64[2,3,4] = mul %1, %0\n  \
         %6: f64[2,3,4] = mul %5, %2\n  %7: f64[3] = reduce_sum %4 axes=[0,2] keepdim=false\n  \
         %8: f64[3] = reduce_sum %6 axes=[0,2] keepdim=false\n  outputs %7, %8\n}}"
    );
    let (g, o) = optimised(&src);
    assert_eq!(full_sums(&o), 1, "{}", print_graph(&o));
    assert_same(&g, &o);
    // A second run changes nothing.
    let mut again = o.clone();
    assert!(!FactorSums::default().run(&mut again).unwrap());
}

#[test]
fn a_sum_of_a_sum_rewritten_in_the_same_round_settles() {
    // `%6 = Σ₀(x·2)` becomes `2·Σ₀x` (= `%5` after CSE), which changes the operand of
    // `%9 = Σ(%6·w)`: a plan for `%9` made before that rewrite named `%6`, and building
    // it brought `%6` back, so every round rewrote both again until the optimiser gave
    // up (`NoFixpoint`; found by jit_differential, a tanh/unfold/mean program).
    let src = r#"graph {
  %0: f64[2,2] = input "x"
  %1: f64[1,2] = input "w"
  %2: f64[] = constant f64[] [2.0]
  %4: f64[2,2] = mul %0, %2
  %10: f64[1,2] = reduce_sum %0 axes=[0] keepdim=true
  %5: f64[1,2] = mul %10, %2
  %6: f64[1,2] = reduce_sum %4 axes=[0] keepdim=true
  %12: f64[1,2] = cos %1
  %7: f64[1,2] = mul %6, %12
  %9: f64[1,1] = reduce_sum %7 axes=[0,1] keepdim=true
  outputs %9, %5
}"#;
    let (g, o) = optimised(src);
    assert_same(&g, &o);
    let mut again = o.clone();
    assert!(
        !FactorSums::default().run(&mut again).unwrap(),
        "{}",
        print_graph(&o)
    );
}

/// A random expression over x, g (full), c [1,3,1], d [3,1] and constants.
fn expr(g: &mut Graph, leaves: &[ValueId], code: &[(u8, usize)]) -> ValueId {
    let mut stack: Vec<ValueId> = vec![leaves[0]];
    for &(op, i) in code {
        let a = *stack.last().unwrap();
        let b = leaves[i % leaves.len()];
        let pick = match op % 6 {
            0 => Op::Binary(BinaryOp::Add),
            1 => Op::Binary(BinaryOp::Sub),
            2 => Op::Binary(BinaryOp::Mul),
            3 => Op::Binary(BinaryOp::Div),
            4 => Op::Unary(UnaryOp::Neg),
            _ => Op::Binary(BinaryOp::Mul),
        };
        let v = if op % 6 == 4 {
            g.add_op(pick, &[a], None).unwrap().1[0]
        } else if op % 6 == 3 {
            // Divide only by the positive per-channel leaves.
            let d = leaves[2 + i % 2];
            g.add_op(pick, &[a, d], None).unwrap().1[0]
        } else {
            let r = g.add_op(pick, &[a, b], None).unwrap().1[0];
            if g.value_type(r).shape.dims() != [2, 3, 4] {
                a
            } else {
                r
            }
        };
        stack.push(v);
    }
    *stack.last().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Random sums of random expressions: the optimised graph gives the same values and
    /// never more passes over the full data.
    #[test]
    fn factoring_keeps_values_and_never_adds_passes(
        exprs in prop::collection::vec(
            (prop::collection::vec((0u8..6, 0usize..6), 1..7), 0usize..4), 1..5),
    ) {
        let mut g = Graph::new();
        let input = |g: &mut Graph, name: &str, shape: &[usize]| {
            g.add_op(
                Op::Input { name: name.into(), ty: TensorType::new(DType::F64, shape.to_vec()) },
                &[],
                None,
            )
            .unwrap()
            .1[0]
        };
        let x = input(&mut g, "x", &[2, 3, 4]);
        let y = input(&mut g, "g", &[2, 3, 4]);
        let c = input(&mut g, "c", &[1, 3, 1]);
        let d = input(&mut g, "d", &[3, 1]);
        let k = g.add_op(Op::Constant(Array::scalar(DType::F64, 1.5)), &[], None).unwrap().1[0];
        // Division by c or d: make them positive first.
        let c2 = g.add_op(Op::Binary(BinaryOp::Mul), &[c, c], None).unwrap().1[0];
        let c2 = g.add_op(Op::Binary(BinaryOp::Add), &[c2, k], None).unwrap().1[0];
        let d2 = g.add_op(Op::Binary(BinaryOp::Mul), &[d, d], None).unwrap().1[0];
        let d2 = g.add_op(Op::Binary(BinaryOp::Add), &[d2, k], None).unwrap().1[0];
        let leaves = [x, y, c2, d2, k, x];
        let axes_sets: [&[usize]; 4] = [&[0, 2], &[0], &[2], &[0, 1, 2]];
        let mut outs = Vec::new();
        for (code, ax) in &exprs {
            let v = expr(&mut g, &leaves, code);
            if g.value_type(v).shape.dims() != [2, 3, 4] {
                continue;
            }
            let op = Op::Reduce { kind: ReduceKind::Sum, axes: axes_sets[*ax].to_vec(), keepdim: ax % 2 == 0 };
            outs.push(g.add_op(op, &[v], None).unwrap().1[0]);
        }
        prop_assume!(!outs.is_empty());
        g.set_outputs(outs);
        let mut o = g.clone();
        optimizer().run(&mut o).unwrap();
        let mut base = g.clone();
        onde_passes::exact_optimizer().run(&mut base).unwrap();
        prop_assert!(full_sums(&o) <= full_sums(&base), "{}", print_graph(&o));
        let f = feeds(&g);
        let a = onde_runtime::run(&g, &f).unwrap();
        let b = onde_runtime::run(&o, &f).unwrap();
        for (p, q) in a.iter().zip(&b) {
            prop_assert_eq!(p.shape(), q.shape());
            let scale = p.to_f64_vec().iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (u, v) in p.to_f64_vec().iter().zip(q.to_f64_vec()) {
                prop_assert!((u - v).abs() <= 1e-9 * scale, "{} vs {}", u, v);
            }
        }
    }
}

/// A residual stream `x_k = x_{k−1} + y_k` whose every state is summed (each block's
/// batch-norm mean): the pass settles (a split never relies on a sum that is split
/// itself), the values stay, and no sum is added.
#[test]
fn a_long_residual_chain_settles() {
    let mut g = Graph::new();
    let input = |g: &mut Graph, name: String| {
        g.add_op(
            Op::Input {
                name,
                ty: TensorType::new(DType::F64, vec![2, 3, 4]),
            },
            &[],
            None,
        )
        .unwrap()
        .1[0]
    };
    let mut x = input(&mut g, "x0".into());
    let sum = |g: &mut Graph, v: ValueId| {
        let op = Op::Reduce {
            kind: ReduceKind::Sum,
            axes: vec![0, 2],
            keepdim: true,
        };
        g.add_op(op, &[v], None).unwrap().1[0]
    };
    let mut outs = vec![sum(&mut g, x)];
    for k in 1..=24 {
        let y = input(&mut g, format!("y{k}"));
        x = g
            .add_op(Op::Binary(BinaryOp::Add), &[x, y], None)
            .unwrap()
            .1[0];
        outs.push(sum(&mut g, x));
        if k % 3 == 0 {
            // Some of the y's are summed on their own too.
            outs.push(sum(&mut g, y));
        }
    }
    g.set_outputs(outs);
    let mut o = g.clone();
    optimizer()
        .run(&mut o)
        .expect("settles within the fixpoint's rounds");
    assert!(full_sums(&o) <= full_sums(&g));
    assert_same(&g, &o);
}

/// `x − mean(x)` is centred only when `x` is the full shape summed and the mean is
/// exactly `Σx/n` (a `[N, 1]` value broadcast over the summed axis is not).
#[test]
fn only_a_true_mean_makes_a_value_centred() {
    let src = r#"graph {
  %0: f64[4,1] = input "x"
  %1: f64[4,1] = reduce_sum %0 axes=[1] keepdim=true
  %2: f64[] = constant f64[] [3.0]
  %3: f64[4,1] = div %1, %2
  %4: f64[4,3] = expand %3 shape=[4,3]
  %5: f64[4,3] = sub %0, %4
  %6: f64[4,1] = reduce_sum %5 axes=[1] keepdim=true
  outputs %6
}"#;
    let (g, o) = optimised(src);
    assert_same(&g, &o);
    let y = onde_runtime::run(&o, &feeds(&g)).unwrap();
    assert!(y[0].to_f64_vec().iter().any(|&v| v != 0.0));
}

/// Sums of a convolution's output over the batch and the positions.
fn conv_sum_graph(kernel: usize, stride: usize, groups: usize, axes: &str) -> String {
    let (c, o) = (6, 4);
    let len = (10 - kernel) / stride + 1;
    format!(
        r#"graph {{
  %0: f64[3,{c},10] = input "x"
  %1: f64[{o},{cg},{kernel}] = input "w"
  %2: f64[3,{o},{len}] = conv %0, %1 stride=[{stride}] padding=[(0,0)] dilation=[1] groups={groups}
  %3: f64[{o}] = reduce_sum %2 axes={axes} keepdim=false
  outputs %3
}}"#,
        cg = c / groups
    )
}

fn convs_of_full_size(g: &Graph) -> usize {
    g.op_ids()
        .into_iter()
        .filter(|&o| {
            matches!(g.op(o).op, Op::Conv(_)) && g.value_type(g.results(o)[0]).shape.numel() > 4
        })
        .count()
}

#[test]
fn a_sum_over_positions_goes_through_a_pointwise_convolution() {
    // Σ_{n,t} conv₁ₓ₁(x) = conv₁ₓ₁(Σ_{n,t} x): the convolution runs on one position,
    // the sum reads x; with groups too.
    for groups in [1, 2] {
        let (g, o) = optimised(&conv_sum_graph(1, 1, groups, "[0,2]"));
        assert_eq!(convs_of_full_size(&g), 1);
        assert_eq!(convs_of_full_size(&o), 0, "{}", print_graph(&o));
        assert_same(&g, &o);
    }
    // Also summed over the channels: one more (tiny) sum.
    let src =
        conv_sum_graph(1, 1, 1, "[0,1,2]").replace("f64[4] = reduce_sum", "f64[] = reduce_sum");
    let (g, o) = optimised(&src);
    assert_eq!(convs_of_full_size(&o), 0, "{}", print_graph(&o));
    assert_same(&g, &o);
}

#[test]
fn other_convolutions_and_sums_are_left_alone() {
    // A wider kernel, a stride, a sum that keeps the positions: unchanged.
    for src in [
        conv_sum_graph(3, 1, 1, "[0,2]"),
        conv_sum_graph(1, 2, 1, "[0,2]"),
        conv_sum_graph(1, 1, 1, "[0]").replace("f64[4] = reduce_sum", "f64[4,10] = reduce_sum"),
    ] {
        let (g, o) = optimised(&src);
        assert_eq!(convs_of_full_size(&o), 1, "{}", print_graph(&o));
        assert_same(&g, &o);
    }
}
