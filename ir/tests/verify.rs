//! One graph per verifier invariant that breaks exactly that invariant.

use onde_ir::verify::Invariant;
use onde_ir::{verify, Array, BinaryOp, DType, Graph, Op, ScanOp, TensorType, UnaryOp, ValueId};
use std::sync::Arc;

fn f32t(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F32, shape)
}

fn input(g: &mut Graph, name: &str, shape: &[usize]) -> ValueId {
    g.add_op(
        Op::Input {
            name: name.into(),
            ty: f32t(shape),
        },
        &[],
        None,
    )
    .unwrap()
    .1[0]
}

fn broken(g: &Graph) -> Invariant {
    verify(g).expect_err("graph should be rejected").invariant
}

fn good() -> (Graph, ValueId, ValueId, ValueId) {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 3]);
    let y = input(&mut g, "y", &[3]);
    let z = g
        .add_op(Op::Binary(BinaryOp::Add), &[x, y], None)
        .unwrap()
        .1[0];
    g.set_outputs(vec![z]);
    (g, x, y, z)
}

#[test]
fn well_formed_graph_passes() {
    let (g, ..) = good();
    verify(&g).unwrap();
}

#[test]
fn bipartite_value_to_value_edge() {
    let (mut g, x, y, _) = good();
    g.add_raw_edge(x.index(), y.index(), 0);
    assert_eq!(broken(&g), Invariant::Bipartite);
}

#[test]
fn single_producer_orphan_value() {
    let (mut g, ..) = good();
    g.add_orphan_value(f32t(&[1]));
    assert_eq!(broken(&g), Invariant::SingleProducer);
}

#[test]
fn single_producer_two_producers() {
    let (mut g, _, y, z) = good();
    let p = g.producer(y).unwrap();
    g.add_raw_edge(p.index(), z.index(), 1);
    assert_eq!(broken(&g), Invariant::SingleProducer);
}

#[test]
fn slots_gap_in_operands() {
    let (mut g, x, _, z) = good();
    let add = g.producer(z).unwrap();
    g.add_raw_edge(x.index(), add.index(), 5);
    assert_eq!(broken(&g), Invariant::Slots);
}

#[test]
fn acyclic_value_feeds_its_producer() {
    let (mut g, _, _, z) = good();
    let add = g.producer(z).unwrap();
    g.add_raw_edge(z.index(), add.index(), 2);
    assert_eq!(broken(&g), Invariant::Acyclic);
}

#[test]
fn typing_wrong_result_shape() {
    let (mut g, x, ..) = good();
    g.add_op_unchecked(Op::Unary(UnaryOp::Exp), &[x], vec![f32t(&[3, 2])], None);
    let e = verify(&g).unwrap_err();
    assert_eq!(e.invariant, Invariant::Typing);
    assert!(
        e.message.contains("f32[3,2]") && e.message.contains("f32[2,3]"),
        "{e}"
    );
}

#[test]
fn typing_incompatible_broadcast() {
    let (mut g, x, ..) = good();
    let w = input(&mut g, "w", &[4]);
    g.add_op_unchecked(
        Op::Binary(BinaryOp::Mul),
        &[x, w],
        vec![f32t(&[2, 3])],
        None,
    );
    assert_eq!(broken(&g), Invariant::Typing);
}

#[test]
fn typing_wrong_operand_count() {
    let (mut g, x, ..) = good();
    g.add_op_unchecked(Op::Binary(BinaryOp::Mul), &[x], vec![f32t(&[2, 3])], None);
    assert_eq!(broken(&g), Invariant::Typing);
}

#[test]
fn inputs_list_missing_an_input() {
    let (mut g, x, ..) = good();
    g.set_inputs(vec![x]);
    assert_eq!(broken(&g), Invariant::Inputs);
}

#[test]
fn inputs_duplicate_name() {
    let (mut g, ..) = good();
    input(&mut g, "x", &[1]);
    assert_eq!(broken(&g), Invariant::Inputs);
}

#[test]
fn parameters_duplicate_name() {
    let (mut g, ..) = good();
    for _ in 0..2 {
        g.add_op(
            Op::Parameter {
                name: "w".into(),
                ty: f32t(&[1]),
            },
            &[],
            None,
        )
        .unwrap();
    }
    assert_eq!(broken(&g), Invariant::Parameters);
}

#[test]
fn outputs_not_in_graph() {
    let (mut g, ..) = good();
    let mut big = Graph::new();
    let mut last = None;
    for i in 0..10 {
        last = Some(input(&mut big, &format!("i{i}"), &[1]));
    }
    g.set_outputs(vec![last.unwrap()]);
    assert_eq!(broken(&g), Invariant::Outputs);
}

fn scan_over(body: Graph) -> Graph {
    let mut g = Graph::new();
    let c = input(&mut g, "c", &[2]);
    let xs = input(&mut g, "xs", &[3, 2]);
    let scan = ScanOp {
        body: Arc::new(body),
        num_carry: 1,
        num_xs: 1,
        length: 3,
        axis: 0,
        reverse: false,
    };
    let r = g.add_op(Op::Scan(scan), &[c, xs], None).unwrap().1;
    g.set_outputs(r);
    g
}

fn cumsum_body() -> Graph {
    let mut b = Graph::new();
    let c = input(&mut b, "c", &[2]);
    let x = input(&mut b, "x", &[2]);
    let s = b
        .add_op(Op::Binary(BinaryOp::Add), &[c, x], None)
        .unwrap()
        .1[0];
    b.set_outputs(vec![s, s]);
    b
}

#[test]
fn scan_with_good_body_passes() {
    verify(&scan_over(cumsum_body())).unwrap();
}

#[test]
fn scan_body_broken_inside() {
    let mut body = cumsum_body();
    for _ in 0..2 {
        body.add_op(Op::Constant(Array::scalar(DType::F32, 1.0)), &[], None)
            .unwrap();
        body.add_op(
            Op::Parameter {
                name: "p".into(),
                ty: f32t(&[]),
            },
            &[],
            None,
        )
        .unwrap();
    }
    let e = verify(&scan_over(body)).unwrap_err();
    assert_eq!(e.invariant, Invariant::ScanBody);
    assert!(e.message.contains("Parameters"), "{e}");
}

#[test]
fn scan_interface_mismatch_is_a_typing_error() {
    // Body carries f32[3] while the scan's initial state is f32[2].
    let mut b = Graph::new();
    let c = input(&mut b, "c", &[3]);
    let x = input(&mut b, "x", &[2]);
    b.set_outputs(vec![c, x]);
    let mut g = Graph::new();
    let c0 = input(&mut g, "c", &[2]);
    let xs = input(&mut g, "xs", &[3, 2]);
    let scan = ScanOp {
        body: Arc::new(b),
        num_carry: 1,
        num_xs: 1,
        length: 3,
        axis: 0,
        reverse: false,
    };
    g.add_op_unchecked(
        Op::Scan(scan),
        &[c0, xs],
        vec![f32t(&[2]), f32t(&[3, 2])],
        None,
    );
    assert_eq!(broken(&g), Invariant::Typing);
}
