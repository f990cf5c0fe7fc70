//! A wrong shape or dtype in user code yields a typed error whose message names the
//! op, the operand shapes and this file's name and line — never a panic.

use onde::{cat, DType, Error, GraphBuilder};

fn assert_points_here(e: &Error, line: u32, needles: &[&str]) {
    let msg = e.to_string();
    let loc = e.loc().expect("error has a location");
    assert!(loc.file.ends_with("errors.rs"), "{msg}");
    assert_eq!(loc.line, line, "{msg}");
    assert!(msg.contains(&format!("errors.rs:{line}:")), "{msg}");
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} lacks {n:?}");
    }
}

#[test]
fn matmul_inner_dimension_mismatch() {
    let g = GraphBuilder::new();
    let a = g.input("a", DType::F32, [2, 3]);
    let b = g.input("b", DType::F32, [4, 5]);
    let line = line!() + 1;
    let c = a.matmul(&b);
    let e = c.check().unwrap_err();
    assert_points_here(&e, line, &["matmul", "f32[2,3]", "f32[4,5]"]);
    // The builder refuses to build or run a graph with a failed op.
    assert_eq!(g.build(&[&a]).unwrap_err(), e);
    // 1-D operands (promoted, then the added axes removed): a mismatch is an error too,
    // not a panic (it was an index underflow).
    for (x, y) in [
        (vec![3], vec![4]),
        (vec![3], vec![4, 2]),
        (vec![2, 3], vec![4]),
    ] {
        let (x, y) = (g.input_like(&x), g.input_like(&y));
        match x.matmul(&y).check() {
            Err(Error::Op { op: "matmul", .. }) => {}
            other => panic!("expected a matmul error, got {other:?}"),
        }
    }
}

/// A fresh f32 input of `shape` (test helper).
trait InputLike {
    fn input_like(&self, shape: &[usize]) -> onde::Tensor;
}

impl InputLike for GraphBuilder {
    fn input_like(&self, shape: &[usize]) -> onde::Tensor {
        let name = format!("in{}", self.input_names().len());
        self.input(&name, DType::F32, shape.to_vec())
    }
}

#[test]
fn add_broadcast_mismatch_through_operator() {
    let g = GraphBuilder::new();
    let a = g.input("a", DType::F32, [2, 3]);
    let b = g.input("b", DType::F32, [4]);
    let line = line!() + 1;
    let c = &a + &b;
    assert_points_here(
        &c.check().unwrap_err(),
        line,
        &["add", "[2,3]", "[4]", "broadcast"],
    );
}

#[test]
fn errors_propagate_through_later_ops_and_keep_the_first_location() {
    let g = GraphBuilder::new();
    let a = g.input("a", DType::F32, [2, 3]);
    let line = line!() + 1;
    let bad = a.reshape([7, -1]);
    let later = bad.exp().sum_all() * 2.0;
    assert_points_here(&later.check().unwrap_err(), line, &["reshape", "[2,3]"]);
}

#[test]
fn cat_shape_mismatch() {
    let g = GraphBuilder::new();
    let a = g.input("a", DType::F32, [10, 5, 100]);
    let b = g.input("b", DType::F32, [10, 6, 100]);
    let line = line!() + 1;
    let c = cat(&[&a, &b], 2);
    assert_points_here(
        &c.check().unwrap_err(),
        line,
        &["cat", "[10,5,100]", "[10,6,100]"],
    );
}

#[test]
fn axis_out_of_range() {
    let g = GraphBuilder::new();
    let a = g.input("a", DType::F32, [2, 3]);
    let line = line!() + 1;
    let m = a.mean([3], false);
    assert_points_here(
        &m.check().unwrap_err(),
        line,
        &["mean", "dimension 3", "f32[2,3]"],
    );
}

#[test]
fn conv_channel_mismatch() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [1, 3, 20]);
    let w = g.input("w", DType::F32, [8, 4, 5]);
    let line = line!() + 1;
    let y = x.conv1d(&w, None, &onde::ConvOpts::default());
    assert_points_here(
        &y.check().unwrap_err(),
        line,
        &["conv1d", "[1,3,20]", "[8,4,5]"],
    );
}

#[test]
fn dtype_errors_name_the_dtype() {
    let g = GraphBuilder::new();
    let i = g.input("i", DType::I64, [4]);
    let line = line!() + 1;
    let m = i.mean([0], false);
    assert_points_here(&m.check().unwrap_err(), line, &["mean", "i64"]);
    let x = g.input("x", DType::F32, [4, 2]);
    let line = line!() + 1;
    let bad = x.gather(0, &x);
    assert_points_here(&bad.check().unwrap_err(), line, &["gather", "i64", "f32"]);
}

#[test]
fn index_out_of_bounds() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let line = line!() + 1;
    let y = x.index(onde::s![3, ..]);
    assert_points_here(
        &y.check().unwrap_err(),
        line,
        &["index", "out of bounds", "size 3"],
    );
}

#[test]
fn duplicate_input_name() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3]);
    let line = line!() + 1;
    let x2 = g.input("x", DType::I64, [3]);
    assert_points_here(&x2.check().unwrap_err(), line, &["\"x\""]);
    // The same name, dtype and shape again is the same input.
    assert_eq!(
        g.input("x", DType::F32, [3]).value().unwrap(),
        x.value().unwrap()
    );
}

#[test]
fn mixing_builders_is_an_error() {
    let g1 = GraphBuilder::new();
    let g2 = GraphBuilder::new();
    let a = g1.input("a", DType::F32, [3]);
    let b = g2.input("b", DType::F32, [3]);
    let line = line!() + 1;
    let c = &a + &b;
    assert_points_here(
        &c.check().unwrap_err(),
        line,
        &["add", "different graph builders"],
    );
}

#[test]
fn missing_and_misshapen_feeds_are_run_errors() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3]);
    let y = x.exp();
    let e = g.run(&[&y], &[]).unwrap_err();
    assert!(
        matches!(e, Error::Run(_)) && e.to_string().contains("input `x`"),
        "{e}"
    );
    let wrong = onde::Array::f32([4], vec![0.0; 4]).unwrap();
    let e = g.run(&[&y], &[("x", wrong)]).unwrap_err();
    assert!(
        e.to_string().contains("f32[3]") && e.to_string().contains("f32[4]"),
        "{e}"
    );
}

#[test]
fn unfold_window_larger_than_the_axis() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 5]);
    let line = line!() + 1;
    let w = x.unfold(1, 6, 1);
    assert_points_here(
        &w.check().unwrap_err(),
        line,
        &["unfold", "size 6", "extent 5", "[2,5]"],
    );
    let line = line!() + 1;
    let w = x.unfold(-1, 2, 0);
    assert_points_here(&w.check().unwrap_err(), line, &["unfold", "step 0"]);
}

#[test]
fn debug_prints_the_message_for_main_returning_result() {
    // `fn main() -> onde::Result<()>` prints an error with `Debug`: the message, not a
    // struct dump.
    let g = onde::GraphBuilder::new();
    let a = g.input("a", onde::DType::F32, [2, 3]);
    let e = a.matmul(&a).check().unwrap_err();
    let debug = format!("{e:?}");
    assert_eq!(debug, e.to_string());
    assert!(
        debug.contains("matmul") && debug.contains("errors.rs"),
        "{debug}"
    );
    assert!(!debug.contains("Op {"), "{debug}");
}

#[test]
fn running_with_a_feed_that_names_nothing_is_an_error() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2]);
    let y = &x * 2.0;
    let ok = onde::Array::f32([2], vec![1.0, 2.0]).unwrap();
    // A typo in a feed name is reported, not ignored.
    let e = g
        .run(&[&y], &[("x", ok.clone()), ("xx", ok.clone())])
        .unwrap_err();
    assert!(e.to_string().contains("xx"), "{e}");
    // Inputs the outputs do not read, parameters and the step seed are fine.
    let _unused = g.input("labels", DType::I64, [2]);
    let out = g.run(
        &[&y],
        &[
            ("x", ok.clone()),
            ("labels", onde::Array::i64([2], vec![0, 1]).unwrap()),
        ],
    );
    assert_eq!(out.unwrap()[0].as_f32().unwrap(), &[2.0, 4.0]);
}
