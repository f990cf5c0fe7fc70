//! `onde::functional` (PyTorch's `torch.nn.functional`) gives what the layers give: each
//! function against the module or the hand computation it stands for, interpreted.

use crate::common::{a32, assert_close, run};
use onde::functional as F;
use onde::module::{BatchNorm, Conv, LayerNorm, Linear, Module};
use onde::{ConvOpts, DType, GraphBuilder, PadMode, PoolOpts};

#[test]
fn functional_forms_equal_their_layers() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 3, 10]);
    let xs: Vec<f64> = (0..60).map(|i| (i as f64 * 0.7).sin()).collect();
    let feeds = [("x", a32(&[2, 3, 10], &xs))];
    let conv = Conv::conv1d(
        &g,
        "conv",
        3,
        4,
        3,
        ConvOpts::default().padding(1).dilation(2),
    );
    let f_conv = F::conv1d(
        &x,
        &conv.weight,
        conv.bias.as_ref(),
        &ConvOpts::default().padding(1).dilation(2),
    );
    let lin = Linear::new(&g, "lin", 10, 5);
    let f_lin = F::linear(&x, &lin.weight, lin.bias.as_ref());
    let ln = LayerNorm::new(&g, "ln", &[10]);
    let f_ln = F::layer_norm(&x, &[10], ln.weight.as_ref(), ln.bias.as_ref(), 1e-5);
    let bn = BatchNorm::batch_norm1d(&g, "bn", 3);
    bn.eval();
    let (rm, rv, _) = bn.running.clone().unwrap();
    let f_bn = F::batch_norm(
        &x,
        Some(&rm),
        Some(&rv),
        bn.weight.as_ref(),
        bn.bias.as_ref(),
        false,
        0.1,
        1e-5,
    );
    let outs = [
        (conv.forward(&x), f_conv),
        (lin.forward(&x), f_lin),
        (ln.forward(&x), f_ln),
        (bn.forward(&x), f_bn),
        (
            x.max_pool1d(&PoolOpts::new(3).stride(2)),
            F::max_pool1d(&x, &PoolOpts::new(3).stride(2)),
        ),
        (
            x.pad_mode([2, 1], PadMode::Reflect),
            F::pad(&x, [2, 1], PadMode::Reflect),
        ),
        (x.softmax(-1), F::softmax(&x, -1)),
        (x.relu(), F::relu(&x)),
    ];
    for (i, (m, f)) in outs.iter().enumerate() {
        let r = run(&g, &[m, f], &feeds);
        assert_close(&r[1], &r[0], 0.0, &format!("case {i}"));
    }
    // linear by hand: y[b, c, o] = Σ_t x[b, c, t]·W[o, t] + bias[o].
    let v = |n: &str| {
        g.parameter_values()
            .into_iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .to_f64_vec()
    };
    let (w, b) = (v("lin.weight"), v("lin.bias"));
    let got = &run(&g, &[&outs[1].1], &feeds)[0];
    let mut want = vec![0.0; 30];
    for row in 0..6 {
        for o in 0..5 {
            want[row * 5 + o] = b[o]
                + (0..10)
                    .map(|t| xs[row * 10 + t] * w[o * 10 + t])
                    .sum::<f64>();
        }
    }
    assert_close(got, &want, 1e-5, "linear by hand");
}

#[test]
fn functional_errors_name_the_callers_line() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 3, 10]);
    let w = g.input("w", DType::F32, [4, 5, 3]);
    let line = line!() + 1;
    let e = F::conv1d(&x, &w, None, &ConvOpts::default())
        .check()
        .unwrap_err();
    let loc = e.loc().expect("located");
    assert_eq!(
        (loc.file.as_ref(), loc.line),
        ("tests/functional.rs", line),
        "{e}"
    );
}
