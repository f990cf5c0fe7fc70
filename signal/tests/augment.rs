//! SpecAugment masking: in training one contiguous band per example and channel, of
//! fewer than `param` bins or frames, set to zero, with new draws at every run of the
//! compiled graph; identity in eval; gradients pass where nothing is masked.

use onde_ir::{Array, DType};
use onde_nn::module::Module;
use onde_nn::GraphBuilder;
use onde_signal::{frequency_masking, time_masking, FrequencyMasking, TimeMasking};

const B: usize = 6;
const C: usize = 2;
const F: usize = 20;
const T: usize = 30;

/// Per (example, channel): the masked rows (freq) or columns (time) of an all-ones
/// input, which must be whole rows or columns forming one band; returns the widths.
fn bands(y: &[f64], along_freq: bool) -> Vec<usize> {
    let mut widths = Vec::new();
    for bc in 0..B * C {
        let m = &y[bc * F * T..(bc + 1) * F * T];
        let (n, other) = if along_freq { (F, T) } else { (T, F) };
        let at = |i: usize, j: usize| {
            if along_freq {
                m[i * T + j]
            } else {
                m[j * T + i]
            }
        };
        let zero: Vec<bool> = (0..n)
            .map(|i| {
                let z = (0..other).filter(|&j| at(i, j) == 0.0).count();
                assert!(z == 0 || z == other, "a partly masked line");
                z == other
            })
            .collect();
        let first = zero.iter().position(|&z| z);
        let count = zero.iter().filter(|&&z| z).count();
        if let Some(f) = first {
            assert!(
                zero[f..f + count].iter().all(|&z| z),
                "not one band: {zero:?}"
            );
        }
        widths.push(count);
    }
    widths
}

#[test]
fn masks_are_bands_drawn_anew_every_step() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [B, C, F, T]);
    let fm = frequency_masking(&x, 8, true);
    let tm = time_masking(&x, 10, true);
    let mut exe = g.compile(&[&fm, &tm]).unwrap();
    let ones = Array::f32([B, C, F, T], vec![1.0; B * C * F * T]).unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let out = exe.run(&[("x", ones.clone())]).unwrap();
        let wf = bands(&out[0].to_f64_vec(), true);
        let wt = bands(&out[1].to_f64_vec(), false);
        assert!(
            wf.iter().all(|&w| w < 8) && wt.iter().all(|&w| w < 10),
            "{wf:?} {wt:?}"
        );
        seen.push((out[0].to_f64_vec(), wf, wt));
    }
    // New draws at every run, and per example.
    assert!(seen.windows(2).all(|w| w[0].0 != w[1].0));
    assert!(seen.iter().any(|(_, wf, _)| wf.iter().any(|&w| w != wf[0])));
    assert!(seen.iter().any(|(_, wf, _)| wf.iter().any(|&w| w > 0)));
}

#[test]
fn eval_is_the_identity_and_gradients_pass_where_unmasked() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2, 1, 5, 7]);
    let f = FrequencyMasking::new(3);
    let t = TimeMasking::new(4);
    f.set_training(false);
    t.set_training(false);
    let y = t.forward(&f.forward(&x));
    assert_eq!(y.value().unwrap(), x.value().unwrap(), "eval adds nothing");
    // In training, the gradient is the mask itself.
    f.set_training(true);
    let y = f.forward(&x);
    let gx = g.grad(&y.sum_all(), &[&x]).unwrap().remove(0);
    let xs = Array::f64([2, 1, 5, 7], (0..70).map(|i| i as f64 + 1.0).collect()).unwrap();
    let out = g.run(
        &[&y, &gx],
        &[
            ("x", xs.clone()),
            (onde_nn::STEP_SEED, Array::i64([], vec![3]).unwrap()),
        ],
    );
    let out = out.unwrap();
    for ((yv, gv), xv) in out[0]
        .to_f64_vec()
        .iter()
        .zip(out[1].to_f64_vec())
        .zip(xs.to_f64_vec())
    {
        assert!((*yv == 0.0 && gv == 0.0) || (*yv == xv && gv == 1.0));
    }
    let e = frequency_masking(&x, 9, true).check().unwrap_err();
    assert!(e.to_string().contains("larger than the axis (5)"), "{e}");
}
