//! Attention over T = 4096 under a memory bound: forward and backward of
//! `scaled_dot_product_attention` with causal masking for q, k, v `[1, 2, 4096, 32]`
//! (compiled). One `[1, 2, 4096, 4096]` f32 score tensor alone is 128 MiB, and the
//! one-shot form's gradient keeps several; long sequences run by query blocks
//! (`Tensor::attention_blocked`), so the process's peak resident memory stays under
//! 100 MiB, the test binary included (measured 46 MiB on the Xeon; the one-shot form
//! peaked at 1142 MiB). Its own `[[test]]` (one process, one test): the peak is the
//! process's.

use onde::{Array, DType, GraphBuilder};

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The stated bound (MiB of peak resident memory, whole process).
const BOUND_MIB: f64 = 100.0;

#[test]
fn attention_over_4096_steps_trains_under_the_memory_bound() {
    let (t, e) = (4096usize, 32usize);
    let g = GraphBuilder::new();
    let q = g.input("q", DType::F32, [1, 2, t, e]);
    let k = g.input("k", DType::F32, [1, 2, t, e]);
    let v = g.input("v", DType::F32, [1, 2, t, e]);
    let out = q.scaled_dot_product_attention(&k, &v, None, 0.0, true, None);
    let loss = out.square().mean_all();
    let grads = g.grad(&loss, &[&q, &k, &v]).unwrap();
    let mut exe = g
        .compile(&[&loss, &out, &grads[0], &grads[1], &grads[2]])
        .unwrap();
    let n = 2 * t * e;
    let data = |s: usize| {
        Array::f32(
            [1, 2, t, e],
            (0..n)
                .map(|i| (((i * 7919 + s * 104_729) % 2003) as f32 / 1001.0 - 1.0) * 0.5)
                .collect(),
        )
        .unwrap()
    };
    let out = exe
        .run(&[("q", data(1)), ("k", data(2)), ("v", data(3))])
        .unwrap();
    // Causal: the first query sees only the first key, so its output is v[0].
    let o = out[1].as_f32().unwrap();
    let v0 = data(3);
    let v0 = v0.as_f32().unwrap();
    for j in 0..e {
        assert!((o[j] - v0[j]).abs() < 1e-6, "out[0, 0, 0, {j}]");
    }
    for (i, gr) in out[2..].iter().enumerate() {
        let gv = gr.as_f32().unwrap();
        assert!(gv.iter().all(|x| x.is_finite()), "gradient {i}");
        assert!(gv.iter().any(|&x| x != 0.0), "gradient {i}");
    }
    let peak = peak_rss_mib();
    eprintln!("peak resident memory: {peak:.1} MiB (bound {BOUND_MIB} MiB)");
    assert!(peak < BOUND_MIB, "peak {peak:.1} MiB over {BOUND_MIB} MiB");
}
