//! Property: every graph the API builds passes the verifier, runs on the interpreter,
//! and survives a text round trip. Graphs are random sequences of API calls whose
//! arguments are derived from the current shapes so that every call is valid.
//! Longer sweep: `PROPTEST_CASES=5000 cargo test --test suite api_graphs_verify::`.

use crate::common;

use onde::ir::{parse_graph, print_graph, verify};
use onde::{Array, DType, Tensor};
use proptest::prelude::*;

fn shapes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..4, 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn api_graphs_verify_run_and_round_trip(
        shape in shapes(),
        steps in prop::collection::vec((0u8..34, 0usize..8, 0usize..8, 0usize..8), 1..12),
    ) {
        let (g, _, pool) = common::program(DType::F32, &shape, &steps);
        let outs: Vec<&Tensor> = pool.iter().collect();
        let graph = g.build(&outs).expect("builds and verifies");
        let n: usize = shape.iter().product();
        let feed = Array::f32(shape.clone(), (0..n).map(|k| (k as f32 * 0.37).sin()).collect()).unwrap();
        g.run(&outs, &[("x", feed)]).expect("runs on the interpreter");
        let text = print_graph(&graph);
        let back = parse_graph(&text).expect("parses");
        verify(&back).expect("parsed graph verifies");
        prop_assert_eq!(print_graph(&back), text);
    }
}
