//! Column reductions (a partial reduction over leading axes of row-major data, e.g. a
//! bias gradient) run in column order (`clif::column_nest`): vectorised along the kept
//! axis, each output combining its inputs in order, exactly the sequential f32 chain.
//! Checked bit for bit against that chain, for sum/prod/max/min, odd widths (scalar
//! tail), a broadcast operand, a fused elementwise producer, 3-D with two threads.

use onde_codegen::{CompileOptions, Executable};
use onde_ir::{parse_graph, Array};

fn vals(n: usize, s: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + s * 104_729) % 2003) as f32 - 1001.0) * 0.0137)
        .collect()
}

fn run(src: &str, feeds: &[(&str, &Array)], threads: usize) -> Vec<Array> {
    let g = parse_graph(src).unwrap();
    let mut exe = Executable::compile(
        &g,
        CompileOptions {
            threads,
            // The graph as written: the optimiser would factor `b` out of `Σ x·b`.
            optimize: false,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    let dump = exe.dump_fused();
    assert!(dump.contains("// column order"), "{dump}");
    exe.run(feeds).unwrap()
}

fn same(got: &Array, want: &[f32], what: &str) {
    let g: Vec<f32> = got.to_f64_vec().iter().map(|&v| v as f32).collect();
    assert_eq!(g.len(), want.len(), "{what}");
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        assert!(
            a.to_bits() == b.to_bits(),
            "{what} element {i}: {a:e} vs {b:e}"
        );
    }
}

#[test]
fn column_sums_are_the_sequential_chain_bit_for_bit() {
    for (r, c) in [(64usize, 256usize), (37, 13), (5, 1001)] {
        let x = vals(r * c, 1);
        let b = vals(c, 2);
        let y: Vec<f32> = vals(r * c, 4).iter().map(|v| 1.0 + v * 0.01).collect();
        let xa = Array::f32([r, c], x.clone()).unwrap();
        let ya = Array::f32([r, c], y.clone()).unwrap();
        let ba = Array::f32([c], b.clone()).unwrap();
        let src = format!(
            r#"graph {{
  %0: f32[{r},{c}] = input "x"
  %1: f32[{c}] = input "b"
  %2: f32[{r},{c}] = expand %1 shape=[{r},{c}]
  %3: f32[{r},{c}] = mul %0, %2
  %4: f32[{c}] = reduce_sum %3 axes=[0] keepdim=false
  %5: f32[{c}] = reduce_max %0 axes=[0] keepdim=false
  %6: f32[{c}] = reduce_min %0 axes=[0] keepdim=false
  %8: f32[{r},{c}] = input "y"
  %7: f32[{c}] = reduce_prod %8 axes=[0] keepdim=false
  outputs %4, %5, %6, %7
}}"#
        );
        let out = run(&src, &[("x", &xa), ("b", &ba), ("y", &ya)], 1);
        let chain = |f: &dyn Fn(f32, f32) -> f32, init: f32, v: &dyn Fn(usize, usize) -> f32| {
            (0..c)
                .map(|j| (0..r).fold(init, |acc, i| f(acc, v(i, j))))
                .collect::<Vec<f32>>()
        };
        let prod = |i: usize, j: usize| x[i * c + j] * b[j];
        same(&out[0], &chain(&|a, v| a + v, 0.0, &prod), "sum");
        same(
            &out[1],
            &chain(&f32::max, f32::NEG_INFINITY, &|i, j| x[i * c + j]),
            "max",
        );
        same(
            &out[2],
            &chain(&f32::min, f32::INFINITY, &|i, j| x[i * c + j]),
            "min",
        );
        same(
            &out[3],
            &chain(&|a, v| a * v, 1.0, &|i, j| y[i * c + j]),
            "prod",
        );
    }
}

#[test]
fn three_d_column_sums_split_over_threads() {
    // [B, T, C] summed over T keeps B (split across threads) and C (vectorised).
    let (bn, t, c) = (6usize, 40usize, 600usize);
    let x = vals(bn * t * c, 3);
    let xa = Array::f32([bn, t, c], x.clone()).unwrap();
    let src = format!(
        r#"graph {{
  %0: f32[{bn},{t},{c}] = input "x"
  %1: f32[{bn},{t},{c}] = tanh %0
  %2: f32[{bn},{c}] = reduce_sum %0 axes=[1] keepdim=false
  outputs %2
}}"#
    );
    let want: Vec<f32> = (0..bn)
        .flat_map(|b0| {
            let x = &x;
            (0..c).map(move |j| (0..t).fold(0f32, |a, i| a + x[(b0 * t + i) * c + j]))
        })
        .collect();
    for threads in [1, 2] {
        let out = run(&src, &[("x", &xa)], threads);
        same(&out[0], &want, &format!("{threads} threads"));
    }
}
