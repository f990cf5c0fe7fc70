//! The PyTorch refusals of issue 11's API pieces are typed errors that name the op and
//! the caller's line: bool subtraction, values that do not fit `masked_fill`'s dtype,
//! boolean masks whose values are unknown while building, padding that crops more than
//! an axis holds, label smoothing out of range or given to `nll_loss`, `ignore_index`
//! with probability targets, and non-broadcasting MSE shapes.

use onde::loss::{cross_entropy, mse_loss, nll_loss, NllOpts, Reduction};
use onde::{Array, DType, Error, GraphBuilder, Tensor};

/// The error of `t`, checked to name `op`, this file and `line`, and each needle.
fn assert_error(t: &Tensor, op: &str, line: u32, needles: &[&str]) {
    let e = t.check().unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, Error::Op { op: o, .. } if *o == op),
        "expected an error of {op}: {e:?}"
    );
    assert!(
        msg.contains(&format!("semantics_errors.rs:{line}:")),
        "{msg}"
    );
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} lacks {n:?}");
    }
}

#[test]
fn subtracting_bools_is_refused_as_in_pytorch() {
    let g = GraphBuilder::new();
    let a = g.input("a", DType::Bool, [3]);
    let b = g.input("b", DType::Bool, [3]);
    let line = line!() + 1;
    let d = &a - &b;
    assert_error(&d, "sub", line, &["bool", "logical_xor"]);
    let line = line!() + 1;
    let p = a.pow(&b);
    assert_error(&p, "pow", line, &["bool"]);
}

#[test]
fn floor_of_bool_is_refused() {
    let g = GraphBuilder::new();
    let a = g.input("a", DType::Bool, [3]);
    let line = line!() + 1;
    let f = a.floor();
    assert_error(&f, "floor", line, &["bool"]);
}

#[test]
fn masked_fill_values_that_do_not_fit_the_dtype() {
    let g = GraphBuilder::new();
    let m = g.input("m", DType::Bool, [2]);
    let k = g.input("k", DType::I64, [2]);
    let line = line!() + 1;
    let y = k.masked_fill(&m, f64::NAN);
    assert_error(&y, "masked_fill", line, &["NaN", "i64"]);
    let x = g.input("x", DType::F32, [2]);
    let line = line!() + 1;
    let y = x.masked_fill(&m, 1e40);
    assert_error(&y, "masked_fill", line, &["f32", "overflow"]);
    let v = g.input("v", DType::F32, [1]);
    let line = line!() + 1;
    let y = x.masked_fill(&m, &v);
    assert_error(&y, "masked_fill", line, &["0-d"]);
}

#[test]
fn a_mask_computed_from_inputs_cannot_index() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let line = line!() + 1;
    let y = x.index_mask(&x.gt(0.0));
    assert_error(&y, "index_mask", line, &["static", "where_", "masked_fill"]);
    let line = line!() + 1;
    let y = x.masked_select(&x.gt(0.0));
    assert_error(&y, "masked_select", line, &["static"]);
    // The mask must cover leading axes.
    let c = g.constant(Array::f32([4], vec![1.0, -1.0, 2.0, -2.0]).unwrap());
    let line = line!() + 1;
    let y = x.index_mask(&c.gt(0.0));
    assert_error(&y, "index_mask", line, &["leading axes"]);
    // A mask computed from constants only is known while building, and works, even in
    // a builder where another op failed.
    let y = x.masked_select(&c.gt(0.0));
    assert_eq!(y.size(), [6]);
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let c = g.constant(Array::f32([4], vec![1.0, -1.0, 2.0, -2.0]).unwrap());
    let y = x.masked_select(&c.gt(0.0));
    let v = Array::f32([3, 4], (0..12).map(|v| v as f32).collect()).unwrap();
    let out = g.run(&[&y], &[("x", v)]).unwrap();
    assert_eq!(out[0].as_f32().unwrap(), &[0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
}

#[test]
fn padding_that_crops_too_much() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 3]);
    let line = line!() + 1;
    let y = x.pad([-2, -2], 0.0);
    assert_error(&y, "pad", line, &["crops 4", "extent 3"]);
}

#[test]
fn label_smoothing_out_of_range_or_on_nll_loss() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let y = g.input("y", DType::I64, [3]);
    let opts = NllOpts {
        label_smoothing: 1.5,
        ..NllOpts::default()
    };
    let line = line!() + 1;
    let l = cross_entropy(&x, &y, &opts);
    assert_error(&l, "cross_entropy", line, &["label_smoothing", "1.5"]);
    let opts = NllOpts {
        label_smoothing: 0.1,
        ..NllOpts::default()
    };
    let line = line!() + 1;
    let l = nll_loss(&x.log_softmax(1), &y, &opts);
    assert_error(&l, "nll_loss", line, &["label_smoothing"]);
}

#[test]
fn ignore_index_does_not_apply_to_probability_targets() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 4]);
    let p = g.input("p", DType::F32, [3, 4]);
    let opts = NllOpts {
        ignore_index: 1,
        ..NllOpts::default()
    };
    let line = line!() + 1;
    let l = cross_entropy(&x, &p, &opts);
    assert_error(&l, "cross_entropy", line, &["ignore_index"]);
}

#[test]
fn mse_shapes_that_do_not_broadcast() {
    let g = GraphBuilder::new();
    let a = g.input("a", DType::F32, [3, 2]);
    let b = g.input("b", DType::F32, [3, 4]);
    let line = line!() + 1;
    let l = mse_loss(&a, &b, Reduction::Mean);
    assert_error(&l, "mse_loss", line, &["[3, 2]", "[3, 4]", "broadcast"]);
}

#[test]
fn pooling_refuses_what_pytorch_refuses() {
    use onde::PoolOpts;
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 3, 8]);
    let line = line!() + 1;
    let y = x.max_pool1d(&PoolOpts::new(3).padding(2));
    assert_error(
        &y,
        "max_pool1d",
        line,
        &["padding 2", "half the kernel size 3"],
    );
    let line = line!() + 1;
    let y = x.avg_pool1d(&PoolOpts::new(11));
    assert_error(&y, "avg_pool1d", line, &["larger than the padded input"]);
    let flat = g.input("flat", DType::F32, [3, 8]);
    let line = line!() + 1;
    let y = flat.max_pool2d(&PoolOpts::new(2));
    assert_error(&y, "max_pool2d", line, &["3-d or 4-d input", "[3, 8]"]);
    let line = line!() + 1;
    let y = x.avg_pool1d(&PoolOpts::new(2).dilation(2));
    assert_error(&y, "avg_pool1d", line, &["no dilation"]);
    let k = g.input("k", DType::I64, [2, 3, 8]);
    let line = line!() + 1;
    let y = k.max_pool1d(&PoolOpts::new(2));
    assert_error(&y, "max_pool1d", line, &["dtype i64"]);
}

#[test]
fn padding_modes_and_norms_refuse_bad_shapes() {
    use onde::PadMode;
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 3, 4]);
    let line = line!() + 1;
    let y = x.pad_mode([4, 0], PadMode::Reflect);
    assert_error(&y, "pad", line, &["too large", "extent 4", "Reflect"]);
    let line = line!() + 1;
    let y = x.layer_norm(&[3], None, None, 1e-5);
    assert_error(&y, "layer_norm", line, &["[3]", "last axes"]);
    let line = line!() + 1;
    let y = x.group_norm(2, None, None, 1e-5);
    assert_error(&y, "group_norm", line, &["divisible by num_groups 2"]);
}
