//! `scatter_add` compiled natively (a block step, no interpreter) equals the reference
//! interpreter for f32, f64 and i64, any axis, repeated indices; an index out of range
//! is a typed run error from both.

use onde::{Array, DType, GraphBuilder};

fn index(shape: &[usize], extent: usize, seed: u64) -> Array {
    let n: usize = shape.iter().product();
    let mut s = seed;
    let v = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % extent as u64) as i64
        })
        .collect();
    Array::i64(shape.to_vec(), v).unwrap()
}

fn check(dtype: DType, out: &[usize], idx: &[usize], axis: i64) {
    let g = GraphBuilder::new();
    let base = g.input("base", dtype, out.to_vec());
    let ix = g.input("ix", DType::I64, idx.to_vec());
    let src = g.input("src", dtype, idx.to_vec());
    let y = base.scatter_add(axis, &ix, &src);
    let n_out: usize = out.iter().product();
    let n_src: usize = idx.iter().product();
    let vals = |n: usize, k: f64| {
        (0..n)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) * k)
            .collect::<Vec<_>>()
    };
    let feeds = [
        (
            "base",
            Array::from_f64(dtype, out.to_vec(), &vals(n_out, 0.5)).unwrap(),
        ),
        ("ix", index(idx, out[axis as usize], 7)),
        (
            "src",
            Array::from_f64(dtype, idx.to_vec(), &vals(n_src, 0.25)).unwrap(),
        ),
    ];
    let want = g.run(&[&y], &feeds).unwrap();
    let mut exe = g.compile(&[&y]).unwrap();
    let dump = exe.executable().dump_fused();
    assert!(
        !dump.contains("host scatter_add"),
        "scatter_add ran on the interpreter:\n{dump}"
    );
    let got = exe.run(&feeds).unwrap();
    assert_eq!(
        got[0], want[0],
        "{dtype} out {out:?} index {idx:?} axis {axis}"
    );
}

#[test]
fn scatter_add_compiled_equals_interpreter() {
    for dtype in [DType::F32, DType::F64, DType::I64] {
        check(dtype, &[5, 3], &[7, 3], 0);
        check(dtype, &[4, 6], &[4, 9], 1);
        check(dtype, &[3, 4, 5], &[2, 9, 5], 1);
        check(dtype, &[3, 4, 5], &[3, 4, 11], 2);
    }
}

#[test]
fn scatter_add_index_out_of_range_is_a_typed_error() {
    let g = GraphBuilder::new();
    let base = g.input("base", DType::F32, [4]);
    let ix = g.input("ix", DType::I64, [3]);
    let src = g.input("src", DType::F32, [3]);
    let y = base.scatter_add(0, &ix, &src);
    let mut exe = g.compile(&[&y]).unwrap();
    let feeds = [
        ("base", Array::f32([4], vec![0.0; 4]).unwrap()),
        ("ix", Array::i64([3], vec![0, 4, 1]).unwrap()),
        ("src", Array::f32([3], vec![1.0; 3]).unwrap()),
    ];
    let e = exe.run(&feeds).unwrap_err().to_string();
    assert!(e.contains("scatter_add") && e.contains("index 4"), "{e}");
    assert!(g.run(&[&y], &feeds).is_err());
}
