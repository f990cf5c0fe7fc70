//! `ScaleMatMul` (in the fast `optimizer`): a uniform scale of a matrix product moves
//! to the product's smaller computed operand, values kept (the interpreter, before and
//! after); products read elsewhere, non-uniform, zero or infinite scales and fed
//! operands are left alone; the exact pipeline never does it.

mod common;

use common::{assert_same, feeds, optimised};
use onde_ir::{parse_graph, print_graph, BinaryOp, Graph, Op};

/// `q @ kᵀ` (`[2, 5, 3] @ [2, 3, 5]`) scaled by a constant with `op`, the product on
/// side `left` (0: `p op c`, 1: `c op p`), and `extra` lines after it.
fn scaled_product(op: &str, c: &str, left: bool, extra: &str, outputs: &str) -> String {
    let (a, b) = if left { ("%2", "%3") } else { ("%3", "%2") };
    format!(
        r#"graph {{
  %10: f64[2,5,3] = input "q"
  %11: f64[2,3,5] = input "k"
  %0: f64[2,5,3] = tanh %10
  %1: f64[2,3,5] = tanh %11
  %2: f64[2,5,5] = matmul %0, %1
  %3: f64[] = constant f64[] [{c}]
  %4: f64[2,5,5] = {op} {a}, {b}
{extra}  outputs {outputs}
}}"#
    )
}

/// The op scaling a value of `numel` elements by a constant, if any (its operand).
fn scaled_numel(g: &Graph) -> Vec<usize> {
    g.op_ids()
        .into_iter()
        .filter(|&o| matches!(g.op(o).op, Op::Binary(BinaryOp::Mul | BinaryOp::Div)))
        .map(|o| g.value_type(g.results(o)[0]).shape.numel())
        .collect()
}

#[test]
fn a_uniform_scale_of_a_product_moves_to_its_smaller_operand() {
    // `(q kᵀ) · c`, `c · (q kᵀ)`, `(q kᵀ) / c`: the 30-element operand is scaled, not the
    // 50-element product; values equal (to rounding: 1/√3 is not a power of two).
    for (op, c, left) in [
        ("mul", "0.125", true),
        ("mul", "0.125", false),
        ("div", "1.7320508075688772", true),
    ] {
        let (g, o) = optimised(&scaled_product(op, c, left, "", "%4"));
        assert_eq!(scaled_numel(&g), vec![50]);
        assert_eq!(
            scaled_numel(&o),
            vec![30],
            "{op} {left}: {}",
            print_graph(&o)
        );
        assert_same(&g, &o);
    }
    // A power-of-two scale gives the same bits (here: no under- or overflow).
    let (g, o) = optimised(&scaled_product("mul", "0.125", true, "", "%4"));
    let f = feeds(&g);
    let want = onde_runtime::run(&g, &f).unwrap();
    let got = onde_runtime::run(&o, &f).unwrap();
    assert_eq!(want[0].to_f64_vec(), got[0].to_f64_vec());
}

#[test]
fn a_product_read_elsewhere_or_a_non_uniform_scale_is_left_alone() {
    // The product is also an output: scaling an operand would compute it twice.
    let (_, o) = optimised(&scaled_product("mul", "0.125", true, "", "%2, %4"));
    assert_eq!(scaled_numel(&o), vec![50], "{}", print_graph(&o));
    // `c / (q kᵀ)` is not a scale of the product.
    let (g, o) = optimised(&scaled_product("div", "2.0", false, "", "%4"));
    assert_eq!(scaled_numel(&o), vec![50], "{}", print_graph(&o));
    assert_same(&g, &o);
    // A per-column factor is not uniform.
    let src = r#"graph {
  %10: f64[2,5,3] = input "q"
  %11: f64[2,3,5] = input "k"
  %0: f64[2,5,3] = tanh %10
  %1: f64[2,3,5] = tanh %11
  %2: f64[5] = input "c"
  %3: f64[2,5,5] = matmul %0, %1
  %4: f64[2,5,5] = mul %3, %2
  outputs %4
}"#;
    let (_, o) = optimised(src);
    assert_eq!(scaled_numel(&o), vec![50], "{}", print_graph(&o));
    // The exact pipeline keeps the product's scale where it is.
    let mut e = parse_graph(&scaled_product("mul", "0.125", true, "", "%4")).unwrap();
    onde_passes::exact_optimizer().run(&mut e).unwrap();
    assert_eq!(scaled_numel(&e), vec![50]);
}

/// The product of `q` and `k` (computed with `tanh`, or fed when `fed`), scaled by `c`
/// of type `cty` read from `c_line`, plus `extra` lines; outputs `outputs`.
fn graph_with(fed: bool, c_line: &str, extra: &str, outputs: &str) -> String {
    let (q, k) = if fed {
        ("input \"q\"", "input \"k\"")
    } else {
        ("tanh %10", "tanh %11")
    };
    format!(
        r#"graph {{
  %10: f64[2,5,3] = input "q0"
  %11: f64[2,3,5] = input "k0"
  %0: f64[2,5,3] = {q}
  %1: f64[2,3,5] = {k}
  %2: f64[2,5,5] = matmul %0, %1
  {c_line}
  %4: f64[2,5,5] = mul %2, %3
{extra}  outputs {outputs}
}}"#
    )
}

#[test]
fn more_cases_the_pass_must_refuse_or_take() {
    let scaled = |src: &str| {
        let (g, o) = optimised(src);
        assert_same(&g, &o);
        scaled_numel(&o)
    };
    // A one-element constant of higher rank is a uniform scale.
    let src = graph_with(
        false,
        "%3: f64[1,1,1] = constant f64[1,1,1] [0.5]",
        "",
        "%4",
    );
    assert_eq!(scaled(&src), vec![30]);
    // A scale fed at run time is not a constant; zero and infinity are refused.
    for c_line in [
        "%3: f64[] = input \"c\"",
        "%3: f64[] = constant f64[] [0.0]",
        "%3: f64[] = constant f64[] [inf]",
    ] {
        let src = graph_with(false, c_line, "", "%4");
        let (_, o) = optimised(&src);
        assert_eq!(scaled_numel(&o), vec![50], "{c_line}: {}", print_graph(&o));
    }
    // A product read by two ops: left alone.
    let src = graph_with(
        false,
        "%3: f64[] = constant f64[] [0.5]",
        "  %5: f64[2,5,5] = exp %2\n  %6: f64[2,5,5] = add %4, %5\n",
        "%6",
    );
    assert!(scaled(&src).contains(&50));
    // Fed operands (a graph input, a parameter): not scaled at every run.
    let src = graph_with(true, "%3: f64[] = constant f64[] [0.5]", "", "%4");
    let (_, o) = optimised(&src);
    assert_eq!(scaled_numel(&o), vec![50], "{}", print_graph(&o));
    // A scaled product feeding another scaled product `[2,5,5] @ [2,5,8]`: both move,
    // the second onto the first product (50 < 80 elements), and from there onto `q`
    // (30) in the next round: two scalings of `q`, none of a product.
    let src = graph_with(
        false,
        "%3: f64[] = constant f64[] [0.5]",
        "  %12: f64[2,5,8] = input \"r0\"\n  %7: f64[2,5,8] = tanh %12\n  \
         %5: f64[2,5,8] = matmul %4, %7\n  %6: f64[2,5,8] = mul %5, %3\n",
        "%6",
    );
    let mut moved = scaled(&src);
    moved.sort_unstable();
    assert_eq!(moved, vec![30, 30]);
}

#[test]
fn a_weight_read_through_a_permute_is_not_scaled() {
    // A Linear layer without bias, `tanh(x) @ Wᵀ`, scaled: `Wᵀ` (12 elements) is smaller
    // than `tanh(x)` (18) but is a fed weight seen through a permute, so `tanh(x)` is
    // scaled; with `x` fed too, nothing moves.
    let src = |x: &str| {
        format!(
            r#"graph {{
  %0: f64[6,3] = input "x"
  %1: f64[4,3] = input "w"
  %2: f64[6,3] = {x}
  %3: f64[3,4] = permute %1 perm=[1,0]
  %4: f64[6,4] = matmul %2, %3
  %5: f64[] = constant f64[] [0.25]
  %6: f64[6,4] = mul %4, %5
  outputs %6
}}"#
        )
    };
    let (g, o) = optimised(&src("tanh %0"));
    assert_eq!(scaled_numel(&o), vec![18], "{}", print_graph(&o));
    assert_same(&g, &o);
    let (_, o) = optimised(&src("reshape %0 shape=[6,3]"));
    assert_eq!(scaled_numel(&o), vec![24], "{}", print_graph(&o));
}

#[test]
fn a_scaled_product_read_by_a_softmax_keeps_its_scale() {
    // `softmax(q kᵀ · c)`: the codegen's softmax takes the factor as it reads the
    // product, so the multiply stays on the 50-element product; a division (by a
    // non-power of two: others become multiplies), or a softmax of something else, is
    // still moved.
    let softmax = "  %5: f64[2,5,5] = softmax %4 axis=2\n";
    let (g, o) = optimised(&scaled_product("mul", "0.125", true, softmax, "%5"));
    assert_eq!(scaled_numel(&o), vec![50], "{}", print_graph(&o));
    assert_same(&g, &o);
    let (_, o) = optimised(&scaled_product("div", "3", true, softmax, "%5"));
    assert_eq!(scaled_numel(&o), vec![30], "{}", print_graph(&o));
    let tanh_then_softmax = "  %6: f64[2,5,5] = tanh %4\n  %5: f64[2,5,5] = softmax %6 axis=2\n";
    let (_, o) = optimised(&scaled_product(
        "mul",
        "0.125",
        true,
        tanh_then_softmax,
        "%5",
    ));
    assert_eq!(scaled_numel(&o), vec![30], "{}", print_graph(&o));
}
