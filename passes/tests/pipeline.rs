//! The pass machinery: visible order, verification after each pass, dump hooks,
//! fixpoints, and the first passes (DCE, CSE).

use onde_ir::{verify, BinaryOp, DType, Graph, Op, TensorType, UnaryOp, ValueId};
use onde_passes::{Cse, Dce, Fixpoint, Pass, PassError, Pipeline};
use std::cell::RefCell;
use std::rc::Rc;

fn input(g: &mut Graph, name: &str) -> ValueId {
    let ty = TensorType::new(DType::F32, [3]);
    g.add_op(
        Op::Input {
            name: name.into(),
            ty,
        },
        &[],
        None,
    )
    .unwrap()
    .1[0]
}

fn op(g: &mut Graph, o: Op, xs: &[ValueId]) -> ValueId {
    g.add_op(o, xs, None).unwrap().1[0]
}

/// x, y inputs; a = exp(x) twice (duplicate), b = a + a', dead = sin(y); outputs [b].
fn sample() -> Graph {
    let mut g = Graph::new();
    let x = input(&mut g, "x");
    let y = input(&mut g, "y");
    let a1 = op(&mut g, Op::Unary(UnaryOp::Exp), &[x]);
    let a2 = op(&mut g, Op::Unary(UnaryOp::Exp), &[x]);
    let b = op(&mut g, Op::Binary(BinaryOp::Add), &[a1, a2]);
    op(&mut g, Op::Unary(UnaryOp::Sin), &[y]);
    g.set_outputs(vec![b]);
    g
}

#[test]
fn dce_removes_dead_ops_and_keeps_inputs() {
    let mut g = sample();
    assert_eq!(g.num_ops(), 6);
    assert!(Dce.run(&mut g).unwrap());
    assert_eq!(g.num_ops(), 5);
    assert_eq!(g.inputs().len(), 2);
    assert!(!Dce.run(&mut g).unwrap());
    verify(&g).unwrap();
}

#[test]
fn cse_merges_duplicates_then_dce_removes_them() {
    let mut g = sample();
    assert!(Cse.run(&mut g).unwrap());
    let add = g.producer(g.outputs()[0]).unwrap();
    let ops = g.operands(add);
    assert_eq!(ops[0], ops[1], "both operands are the first exp");
    Dce.run(&mut g).unwrap();
    assert_eq!(g.num_ops(), 4); // x, y, exp, add
    verify(&g).unwrap();
}

#[test]
fn pipeline_runs_in_order_and_dumps_after_named_passes() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let mut p = Pipeline::new()
        .then(Cse)
        .then(Dce)
        .verify_each(true)
        .dump_after(&["input", "dce"], move |name, g| {
            s.borrow_mut().push((name.to_string(), g.num_ops()))
        });
    assert_eq!(p.names(), vec!["cse", "dce"]);
    let mut g = sample();
    assert!(p.run(&mut g).unwrap());
    assert_eq!(
        *seen.borrow(),
        vec![("input".to_string(), 6), ("dce".to_string(), 4)]
    );
}

/// A broken pass: adds an ill-typed op.
struct Breaker;

impl Pass for Breaker {
    fn name(&self) -> &'static str {
        "breaker"
    }
    fn run(&mut self, g: &mut Graph) -> Result<bool, PassError> {
        let x = g.inputs()[0];
        g.add_op_unchecked(
            Op::Unary(UnaryOp::Exp),
            &[x],
            vec![TensorType::new(DType::F64, [7])],
            None,
        );
        Ok(true)
    }
}

#[test]
fn verification_after_each_pass_names_the_culprit() {
    let mut p = Pipeline::new().then(Dce).then(Breaker).verify_each(true);
    let e = p.run(&mut sample()).unwrap_err();
    assert!(
        matches!(
            e,
            PassError::Verify {
                pass: "breaker",
                ..
            }
        ),
        "{e}"
    );
}

/// Changes the graph the first `n` times it runs.
struct Countdown(usize);

impl Pass for Countdown {
    fn name(&self) -> &'static str {
        "countdown"
    }
    fn run(&mut self, _: &mut Graph) -> Result<bool, PassError> {
        if self.0 == 0 {
            return Ok(false);
        }
        self.0 -= 1;
        Ok(true)
    }
}

#[test]
fn fixpoint_reruns_until_nothing_changes_and_gives_up_with_an_error() {
    let mut g = sample();
    let mut f = Fixpoint::new("cleanup", 10).then(Countdown(3)).then(Dce);
    assert!(f.run(&mut g).unwrap());
    let mut f = Fixpoint::new("endless", 5).then(Countdown(100));
    let e = f.run(&mut g).unwrap_err();
    assert_eq!(
        e,
        PassError::NoFixpoint {
            name: "endless",
            iterations: 5
        }
    );
}
