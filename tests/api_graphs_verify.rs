//! Property: every graph the API builds passes the verifier, runs on the interpreter,
//! and survives a text round trip. Graphs are random sequences of API calls whose
//! arguments are derived from the current shapes so that every call is valid.
//! Longer sweep: `PROPTEST_CASES=5000 cargo test --test api_graphs_verify`.

use onde::ir::{parse_graph, print_graph, verify};
use onde::{cat, s, where_, Array, ConvOpts, DType, GraphBuilder, Idx, Tensor};
use proptest::prelude::*;

/// Max-based reductions (max, argmax, logsumexp) only see non-empty tensors: over an
/// empty axis they are run-time errors, as in PyTorch.
/// Applies API call number `code` to tensors of the pool; `p` picks axes and sizes.
fn step(g: &GraphBuilder, pool: &[Tensor], code: u8, i: usize, j: usize, p: usize) -> Tensor {
    let x = &pool[i % pool.len()];
    let y = &pool[j % pool.len()];
    let r = x.dim().max(1) as i64;
    let ax = (p as i64 % r) - if p.is_multiple_of(2) { r } else { 0 }; // negative half the time
    let ax = if x.dim() == 0 { 0 } else { ax };
    match code % 24 {
        0 => x.tanh(),
        1 => x.exp().log(),
        2 => x.sigmoid() * x,
        3 => x + x.sum([ax], true),
        4 if x.dim() > 0 => x.mean([ax], p.is_multiple_of(3)),
        5 if x.dim() > 0 && x.numel() > 0 => x.max([ax], true) - x,
        6 if x.dim() > 0 => x.transpose(0, ax),
        7 => x.flatten(0, -1),
        8 if x.dim() > 0 => x.unsqueeze(ax),
        9 if x.dim() > 0 => cat(&[x, x], ax),
        10 if x.dim() > 0 => x.tile([1 + (p % 2) as i64]),
        11 if x.dim() > 0 => x.slice(ax, Some(0), None, 1 + (p % 3) as i64),
        12 if x.dim() > 0 => x.pad([p % 2, 1], 0.5),
        13 if x.dim() >= 2 => x.matmul(&x.transpose(-1, -2)),
        14 => where_(&x.gt(0.0), x, x.neg()),
        15 if x.dim() > 0 && x.numel() > 0 => {
            let idx = x.argmax(ax, true);
            x.gather(ax, &idx)
        }
        16 if x.dim() == 3 && x.size()[2] >= 2 => {
            let c = x.size()[1];
            let w = g.ones([c, 1, 2], DType::F32);
            x.conv1d(&w, None, &ConvOpts::default().groups(c).padding(p % 2))
        }
        17 if x.size() == y.size() => x.maximum(y) / (y.abs() + 1.0),
        18 if x.dim() > 0 => x.var([ax], 1, false),
        19 if x.dim() > 0 && x.numel() > 0 => x.logsumexp([ax], false),
        20 if x.dim() >= 2 => x.index(s![Idx::Ellipsis, Idx::from(1..).step(2), 0]),
        21 => x.clamp(-0.5, 0.5).square(),
        22 if x.dim() > 0 => x.expand(
            [2].into_iter()
                .chain(x.size().iter().map(|&d| d as i64))
                .collect::<Vec<i64>>(),
        ),
        23 => x.lt(y.mean_all()).float() + x,
        _ => x.abs().sqrt(),
    }
}

fn shapes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..4, 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn api_graphs_verify_run_and_round_trip(
        shape in shapes(),
        steps in prop::collection::vec((0u8..24, 0usize..8, 0usize..8, 0usize..8), 1..12),
    ) {
        let g = GraphBuilder::new();
        let x = g.input("x", DType::F32, shape.clone());
        let mut pool = vec![x.clone()];
        for (code, i, j, p) in steps {
            let t = step(&g, &pool, code, i, j, p);
            prop_assert!(t.check().is_ok(), "call {} failed: {:?}", code, t.check());
            if t.numel() <= 4096 {
                pool.push(t);
            }
        }
        let outs: Vec<&Tensor> = pool.iter().skip(1).collect();
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
