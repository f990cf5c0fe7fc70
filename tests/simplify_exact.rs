//! Exact simplification rules keep every bit: `x / 2ᵏ → x · 2⁻ᵏ` (`div_pow2`) on f32 and
//! f64 values spanning normals, subnormals, zeros, infinities and NaN, interpreted
//! before and after `simplify`.

use onde::ir::{parse_graph, Array};
use onde::passes::{Dce, Pass, Simplify};
use std::collections::HashMap;

#[test]
fn dividing_by_a_power_of_two_is_multiplying_bit_for_bit() {
    for (dt, divisors) in [
        (
            "f32",
            vec![8.0, -0.5, 2f64.powi(126), 2f64.powi(-126), 1024.0],
        ),
        ("f64", vec![8.0, -0.25, 2f64.powi(1022), 2f64.powi(-1022)]),
    ] {
        for c in divisors {
            let src = format!(
                r#"graph {{
  %0: {dt}[12] = input "x"
  %1: {dt}[] = constant {dt}[] [{c:e}]
  %2: {dt}[12] = expand %1 shape=[12]
  %3: {dt}[12] = div %0, %2
  outputs %3
}}"#
            );
            let g = parse_graph(&src).unwrap();
            let mut s = g.clone();
            Simplify::default().run(&mut s).unwrap();
            Dce.run(&mut s).unwrap();
            assert!(
                !onde::ir::print_graph(&s).contains("= div"),
                "{dt} / {c}: not rewritten"
            );
            let vals = [
                1.0,
                -3.75,
                1e-40,
                -1e-45,
                5e-324,
                0.0,
                -0.0,
                3e38,
                1e300,
                f64::INFINITY,
                f64::NAN,
                0.1,
            ];
            let x = Array::from_f64(
                if dt == "f32" {
                    onde::DType::F32
                } else {
                    onde::DType::F64
                },
                vec![12],
                &vals,
            )
            .unwrap();
            let feeds: HashMap<String, Array> = [("x".to_string(), x)].into_iter().collect();
            same_bits(&g, &s, &feeds, &format!("{dt} x / {c}"));
        }
    }
}

/// `before` and `after` interpreted on `feeds` give the same bits in their first output
/// (any NaN matching any NaN); returns it.
fn same_bits(
    before: &onde::ir::Graph,
    after: &onde::ir::Graph,
    feeds: &HashMap<String, Array>,
    what: &str,
) -> Vec<f64> {
    let want = onde::runtime::run(before, feeds).unwrap()[0].to_f64_vec();
    let got = onde::runtime::run(after, feeds).unwrap()[0].to_f64_vec();
    for (i, (p, q)) in want.iter().zip(&got).enumerate() {
        assert!(
            p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()),
            "{what}, element {i}: {p:e} vs {q:e}"
        );
    }
    want
}

/// Feeds for every input of `g`: distinct, signed values of mixed magnitudes.
fn feeds_for(g: &onde::ir::Graph) -> HashMap<String, Array> {
    g.op_ids()
        .into_iter()
        .filter_map(|o| {
            let onde::ir::Op::Input { name, ty } = &g.op(o).op else {
                return None;
            };
            let n = ty.shape.numel();
            let v: Vec<f64> = (0..n)
                .map(|i| ((i * 7919 + name.len() * 31) % 1013) as f64 * 0.37 - 150.0)
                .map(|v| v * 10f64.powi((v as i64 % 5) as i32))
                .collect();
            Some((
                name.clone(),
                Array::from_f64(ty.dtype, ty.shape.dims().to_vec(), &v).unwrap(),
            ))
        })
        .collect()
}

#[test]
fn reductions_of_a_concatenation_reduce_its_parts_bit_for_bit() {
    // A bidirectional layer's outputs [T, B, 2H] averaged over time (batch-first view):
    // the concatenation is never built; also without the permute, over two axes (with
    // and without a permute, which moves the concatenation axis to the front), with
    // keepdim, and a maximum.
    let cases = [
        (
            "%3: f32[4,5,6] = concat %0, %1 axis=2
  %4: f32[5,4,6] = permute %3 perm=[1,0,2]
  %5: f32[5,6] = reduce_sum %4 axes=[1] keepdim=false",
            true,
        ),
        (
            "%3: f32[4,5,6] = concat %0, %1 axis=2
  %5: f32[6] = reduce_sum %3 axes=[0,1] keepdim=false",
            true,
        ),
        (
            "%3: f32[4,5,6] = concat %0, %1 axis=2
  %4: f32[5,4,6] = permute %3 perm=[1,0,2]
  %5: f32[5,1,6] = reduce_max %4 axes=[1] keepdim=true",
            true,
        ),
        (
            "%3: f32[4,5,6] = concat %0, %1 axis=2
  %4: f32[6,4,5] = permute %3 perm=[2,0,1]
  %5: f32[6,5] = reduce_sum %4 axes=[1] keepdim=false",
            true,
        ),
        (
            "%3: f32[4,5,6] = concat %0, %1 axis=2
  %4: f32[5,4,6] = permute %3 perm=[1,0,2]
  %5: f32[6] = reduce_sum %4 axes=[0,1] keepdim=false",
            true,
        ),
        // Reducing over the concatenation axis, or a concatenation read elsewhere too:
        // left alone.
        (
            "%3: f32[4,5,6] = concat %0, %1 axis=2
  %5: f32[4,5] = reduce_sum %3 axes=[2] keepdim=false",
            false,
        ),
        (
            "%3: f32[4,5,6] = concat %0, %1 axis=2
  %6: f32[4,5,6] = exp %3
  %7: f32[6] = reduce_sum %6 axes=[0,1] keepdim=false
  %8: f32[6] = reduce_sum %3 axes=[0,1] keepdim=false
  %5: f32[6] = add %7, %8",
            false,
        ),
    ];
    for (body, rewritten) in cases {
        let src = format!(
            r#"graph {{
  %0: f32[4,5,2] = input "a"
  %1: f32[4,5,4] = input "b"
  {body}
  outputs %5
}}"#
        );
        let g = parse_graph(&src).unwrap();
        let mut s = g.clone();
        Simplify::default().run(&mut s).unwrap();
        Dce.run(&mut s).unwrap();
        let printed = onde::ir::print_graph(&s);
        let big_concat = printed.contains("f32[4,5,6] = concat");
        assert_eq!(!big_concat, rewritten, "{body}\n{printed}");
        let f = feeds_for(&g);
        let want = onde::runtime::run(&g, &f).unwrap();
        let got = onde::runtime::run(&s, &f).unwrap();
        let bits = |a: &Array| -> Vec<u64> { a.to_f64_vec().iter().map(|v| v.to_bits()).collect() };
        assert_eq!(got[0].shape(), want[0].shape(), "{body}");
        assert_eq!(bits(&got[0]), bits(&want[0]), "{body}");
    }
}

#[test]
fn a_deep_chain_of_concatenations_is_reduced_in_one_round() {
    // `out = cat([out, h_t], 0)` twenty times, then summed over the other axis: the
    // whole tree of concatenations is taken apart at once (one level per round would
    // exhaust the optimiser's 16 rounds), and the values are the same bits.
    let n = 20;
    let mut src = String::from("graph {\n");
    for i in 0..=n {
        src.push_str(&format!("  %{i}: f32[1,4] = input \"h{i}\"\n"));
    }
    let mut prev = 0;
    for i in 1..=n {
        let id = 100 + i;
        src.push_str(&format!(
            "  %{id}: f32[{},4] = concat %{prev}, %{i} axis=0\n",
            i + 1
        ));
        prev = id;
    }
    src.push_str(&format!(
        "  %200: f32[{}] = reduce_sum %{prev} axes=[1] keepdim=false\n  outputs %200\n}}",
        n + 1
    ));
    let g = parse_graph(&src).unwrap();
    let mut o = g.clone();
    onde::passes::optimizer().run(&mut o).unwrap();
    let printed = onde::ir::print_graph(&o);
    assert!(!printed.contains(",4] = concat"), "{printed}");
    let f = feeds_for(&g);
    let want = onde::runtime::run(&g, &f).unwrap();
    let got = onde::runtime::run(&o, &f).unwrap();
    let bits = |a: &Array| -> Vec<u64> { a.to_f64_vec().iter().map(|v| v.to_bits()).collect() };
    assert_eq!(bits(&got[0]), bits(&want[0]));
}

#[test]
fn an_outer_product_is_an_elementwise_product_bit_for_bit() {
    // `[B, T, 1] @ [1, n]`-like products (a Linear(·, 1) layer's input gradient), with a
    // broadcast batch axis, in f32 and f64; signed zeros, infinities and NaN included:
    // `-0 · x` must come out `+0` as from the GEMM's sum.
    for dt in ["f32", "f64"] {
        let src = format!(
            r#"graph {{
  %0: {dt}[3,4,1] = input "a"
  %1: {dt}[1,1,5] = input "b"
  %2: {dt}[3,4,5] = matmul %0, %1
  outputs %2
}}"#
        );
        let g = parse_graph(&src).unwrap();
        let mut s = g.clone();
        let mut simp = Simplify::default();
        simp.run(&mut s).unwrap();
        Dce.run(&mut s).unwrap();
        let printed = onde::ir::print_graph(&s);
        assert!(!printed.contains("matmul"), "{printed}");
        assert!(simp.fired.iter().any(|(n, _)| *n == "outer_product"));
        let dtype = if dt == "f32" {
            onde::DType::F32
        } else {
            onde::DType::F64
        };
        let a = [
            -0.0,
            0.0,
            1.5,
            -2.25,
            f64::INFINITY,
            f64::NAN,
            1e-30,
            -3e20,
            7.0,
            0.1,
            -1.0,
            2.0,
        ];
        let b = [-0.0, 3.0, f64::NEG_INFINITY, 1e-20, -0.5];
        let feeds: HashMap<String, Array> = [
            (
                "a".to_string(),
                Array::from_f64(dtype, vec![3, 4, 1], &a).unwrap(),
            ),
            (
                "b".to_string(),
                Array::from_f64(dtype, vec![1, 1, 5], &b).unwrap(),
            ),
        ]
        .into_iter()
        .collect();
        let want = same_bits(&g, &s, &feeds, dt);
        assert!(want.iter().any(|v| v.to_bits() == 0), "a +0 from -0 · x");
    }
    // Not an outer product (k = 2), or integer: left alone.
    for src in [
        r#"graph {
  %0: f32[4,2] = input "a"
  %1: f32[2,5] = input "b"
  %2: f32[4,5] = matmul %0, %1
  outputs %2
}"#,
        r#"graph {
  %0: i64[4,1] = input "a"
  %1: i64[1,5] = input "b"
  %2: i64[4,5] = matmul %0, %1
  outputs %2
}"#,
    ] {
        let mut s = parse_graph(src).unwrap();
        Simplify::default().run(&mut s).unwrap();
        assert!(onde::ir::print_graph(&s).contains("matmul"), "{src}");
    }
}
