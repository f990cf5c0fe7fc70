//! Helpers shared by the pass tests: deterministic feeds, the fast pipeline on a text
//! graph, and interpreter equality before and after.

use onde_ir::{parse_graph, Array, Graph, Op};
use onde_passes::optimizer;
use std::collections::HashMap;

/// Deterministic values in `[-0.37, 0.63)`.
pub fn data(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104_729) % 1009) as f64 / 1009.0 - 0.37)
        .collect()
}

/// Feeds for every input of `g` (seeded by its name).
pub fn feeds(g: &Graph) -> HashMap<String, Array> {
    g.op_ids()
        .into_iter()
        .filter_map(|o| {
            let Op::Input { name, ty } = &g.op(o).op else {
                return None;
            };
            let n = ty.shape.numel();
            let seed = name.len() + name.bytes().map(usize::from).sum::<usize>();
            Some((
                name.clone(),
                Array::f64(ty.shape.clone(), data(n, seed)).unwrap(),
            ))
        })
        .collect()
}

/// `src` parsed, and a copy run through [`optimizer`].
pub fn optimised(src: &str) -> (Graph, Graph) {
    let g = parse_graph(src).unwrap();
    let mut o = g.clone();
    optimizer().run(&mut o).unwrap();
    (g, o)
}

/// The interpreter gives `a` and `b` the same outputs (to 1e-12 relative).
pub fn assert_same(a: &Graph, b: &Graph) {
    let f = feeds(a);
    let x = onde_runtime::run(a, &f).unwrap();
    let y = onde_runtime::run(b, &f).unwrap();
    for (p, q) in x.iter().zip(&y) {
        assert_eq!(p.shape(), q.shape());
        for (u, v) in p.to_f64_vec().iter().zip(q.to_f64_vec()) {
            assert!((u - v).abs() <= 1e-12 * (1.0 + u.abs()), "{u} vs {v}");
        }
    }
}
