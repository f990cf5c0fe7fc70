//! Attention by query blocks (`scaled_dot_product_attention_blocked`, and what long
//! sequences get automatically): a `scan` over blocks of queries whose gradient
//! recomputes each block's scores. Same values and gradients as the one-shot form —
//! interpreted and compiled, with causal, boolean (per query, with a fully masked row)
//! and additive (broadcast) masks, a ragged last block and broadcast key heads.

use crate::common::{a32, assert_close};
use onde::{Array, DType, GraphBuilder, Tensor};

fn vals(n: usize, s: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((i * 7919 + s * 104_729) % 2003) as f64 / 1001.0 - 1.0)
        .collect()
}

/// Outputs `[out, dq, dk, dv]` of `loss = Σ out · w` for both forms, interpreted and
/// compiled, compared.
fn compare(
    kshape: [usize; 4],
    mask: impl Fn(&GraphBuilder) -> Option<(Tensor, Array)>,
    is_causal: bool,
    block: usize,
) {
    let (l, e, ev) = (37usize, 8usize, 5usize);
    let s = kshape[2];
    let g = GraphBuilder::new();
    let q = g.input("q", DType::F32, [2, 3, l, e]);
    let k = g.input("k", DType::F32, kshape);
    let v = g.input("v", DType::F32, [kshape[0], kshape[1], s, ev]);
    let w = g.input("w", DType::F32, [2, 3, l, ev]);
    let m = mask(&g);
    let mt = m.as_ref().map(|(t, _)| t);
    let one = q.scaled_dot_product_attention(&k, &v, mt, 0.0, is_causal, None);
    let blk = q.scaled_dot_product_attention_blocked(&k, &v, mt, is_causal, None, block);
    let mut outs = vec![];
    for out in [&one, &blk] {
        let loss = (out * &w).sum_all();
        let grads = g.grad(&loss, &[&q, &k, &v]).unwrap();
        outs.push(vec![
            out.clone(),
            grads[0].clone(),
            grads[1].clone(),
            grads[2].clone(),
        ]);
    }
    let n = |sh: &[usize]| sh.iter().product::<usize>();
    let mut feeds = vec![
        ("q", a32(&[2, 3, l, e], &vals(n(&[2, 3, l, e]), 1))),
        ("k", a32(&kshape, &vals(n(&kshape), 2))),
        (
            "v",
            a32(
                &[kshape[0], kshape[1], s, ev],
                &vals(n(&[kshape[0], kshape[1], s, ev]), 3),
            ),
        ),
        ("w", a32(&[2, 3, l, ev], &vals(n(&[2, 3, l, ev]), 4))),
    ];
    if let Some((_, a)) = &m {
        feeds.push(("mask", a.clone()));
    }
    let all: Vec<&Tensor> = outs.iter().flatten().collect();
    let interp = g.run(&all, &feeds).unwrap();
    let mut c = g.compile(&all).unwrap();
    let compiled = c.run(&feeds).unwrap();
    let names = ["out", "dq", "dk", "dv"];
    for (i, name) in names.iter().enumerate() {
        let want = interp[i].to_f64_vec();
        assert!(want.iter().all(|x| x.is_finite()), "{name}");
        assert_close(
            &interp[4 + i].to_f64_vec(),
            &want,
            1e-5,
            &format!("interpreted blocked {name}"),
        );
        assert_close(
            &compiled[4 + i].to_f64_vec(),
            &want,
            1e-5,
            &format!("compiled blocked {name}"),
        );
        assert_close(
            &compiled[i].to_f64_vec(),
            &want,
            1e-5,
            &format!("compiled one-shot {name}"),
        );
    }
}

#[test]
fn blocked_attention_equals_the_one_shot_form() {
    // No mask; keys shared across heads (broadcast); block 8 of 37 queries.
    compare([2, 1, 29, 8], |_| None, false, 8);
    // Causal, block 16.
    compare([2, 3, 29, 8], |_| None, true, 16);
    // A boolean mask per query (row 5 fully masked: zeros, as PyTorch), block 8.
    compare(
        [2, 3, 29, 8],
        |g| {
            let keep: Vec<bool> = (0..37 * 29)
                .map(|i| (i / 29) != 5 && (i * 31) % 7 != 0)
                .collect();
            Some((
                g.input("mask", DType::Bool, [37, 29]),
                Array::bool([37, 29], keep).unwrap(),
            ))
        },
        false,
        8,
    );
    // An additive mask without a query axis (invariant), block 37 (one block).
    compare(
        [2, 3, 29, 8],
        |g| {
            let add: Vec<f64> = (0..2 * 29)
                .map(|i| {
                    if i % 5 == 0 {
                        -1e9
                    } else {
                        (i % 3) as f64 * 0.1
                    }
                })
                .collect();
            Some((
                g.input("mask", DType::F32, [2, 1, 1, 29]),
                a32(&[2, 1, 1, 29], &add),
            ))
        },
        false,
        37,
    );
}

#[test]
fn long_sequences_take_the_blocked_form_and_bad_blocks_are_errors() {
    let g = GraphBuilder::new();
    let q = g.input("q", DType::F32, [1, 2, 2048, 16]);
    let out = q.scaled_dot_product_attention(&q, &q, None, 0.0, true, None);
    let ir = onde::ir::print_graph(&g.build(&[&out]).unwrap());
    assert!(
        ir.contains("= scan "),
        "long attention should scan over query blocks"
    );
    // W5's length keeps the one-shot form.
    let short = g.input("s", DType::F32, [32, 100, 64]);
    let o2 = short.scaled_dot_product_attention(&short, &short, None, 0.0, false, None);
    assert!(!onde::ir::print_graph(&g.build(&[&o2]).unwrap()).contains("= scan "));
    let e = q
        .scaled_dot_product_attention_blocked(&q, &q, None, false, None, 0)
        .check()
        .unwrap_err();
    assert!(e.to_string().contains("block must be at least 1"), "{e}");
    let bad = g.input("b", DType::F32, [1, 2, 2048, 8]);
    let e = q
        .scaled_dot_product_attention_blocked(&bad, &bad, None, false, None, 64)
        .check()
        .unwrap_err();
    assert!(
        e.to_string().contains("scaled_dot_product_attention"),
        "{e}"
    );
}
