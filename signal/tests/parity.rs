//! Every transform against torchaudio (fixtures made by `fixtures/gen_torchaudio.py`):
//! outputs within 1e-4 relative, in f64 on the reference interpreter, on real speech (one
//! second of a public-domain LibriVox recording), Gaussian noise, a synthetic voiced
//! signal, a length no hop divides and a signal shorter than n_fft;
//! gradients of the STFT, spectrogram, mel spectrogram and MFCC against PyTorch's
//! autograd; and the compiled f32 front-end against the interpreter.

use onde_ir::{Array, DType};
use onde_nn::{GraphBuilder, PadMode, Tensor};
use onde_signal::*;
use std::collections::HashMap;
use std::sync::OnceLock;

fn fixtures() -> &'static HashMap<String, Array> {
    static F: OnceLock<HashMap<String, Array>> = OnceLock::new();
    F.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/torchaudio.safetensors"
        );
        onde_nn::checkpoint::load(path)
            .unwrap()
            .into_iter()
            .collect()
    })
}

fn fx(name: &str) -> &'static Array {
    fixtures()
        .get(name)
        .unwrap_or_else(|| panic!("no fixture `{name}`"))
}

const SIGNALS: [&str; 5] = ["speech", "noise", "voiced", "odd", "short"];

/// `got` equals `want` within 1e-4 relative per element, an element's scale being at
/// least 1% of the output's root mean square (so values that cancel to near zero — a
/// DCT coefficient, a gradient — are held to 1e-6 of the typical value, not to their
/// own rounding).
fn close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let rms = (want.iter().map(|v| v * v).sum::<f64>() / want.len().max(1) as f64).sqrt();
    let mut worst = (0.0, 0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / (w.abs() + 0.01 * rms + 1e-300);
        if err > worst.0 || err.is_nan() {
            worst = (err, i);
        }
    }
    assert!(
        worst.0 <= 1e-4,
        "{what}: element {} is {} vs torchaudio {} (relative error {:.2e}, rms {rms:.3e})",
        worst.1,
        got[worst.1],
        want[worst.1],
        worst.0
    );
}

/// Runs `f` on case input `x` in f64 on the interpreter; compares with `<case>.y`, and
/// with `<case>.grad` when the fixture has one.
fn check(case: &str, x: &Array, f: impl Fn(&Tensor) -> Tensor) {
    let g = GraphBuilder::new();
    let xt = g.input("x", DType::F64, x.shape().clone());
    let y = f(&xt);
    let want = fx(&format!("{case}.y"));
    if let Err(e) = y.check() {
        panic!("{case}: {e}");
    }
    assert_eq!(y.size(), want.shape().dims(), "{case}: shape");
    let mut outs = vec![y.clone()];
    let r = fixtures().get(&format!("{case}.r"));
    if let Some(r) = r {
        let r64 = Array::f64(r.shape().clone(), r.to_f64_vec()).unwrap();
        let loss = (&y * &g.constant(r64)).sum_all();
        outs.push(g.grad(&loss, &[&xt]).unwrap().remove(0));
    }
    let refs: Vec<&Tensor> = outs.iter().collect();
    let got = g.run(&refs, &[("x", x.clone())]).unwrap();
    close(case, &got[0].to_f64_vec(), &want.to_f64_vec());
    if r.is_some() {
        close(
            &format!("{case} gradient"),
            &got[1].to_f64_vec(),
            &fx(&format!("{case}.grad")).to_f64_vec(),
        );
    }
}

fn per_signal(case: &str, f: impl Fn(&Tensor) -> Tensor, skip_short: bool) {
    for s in SIGNALS {
        if skip_short && s == "short" {
            continue;
        }
        check(&format!("{case}.{s}"), fx(&format!("sig.{s}")), &f);
    }
}

#[test]
fn stft_matches_torch_stft() {
    per_signal("stft_default", |x| stft(x, &StftOpts::new(400)), false);
    let hamming = StftOpts {
        hop_length: Some(160),
        win_length: Some(400),
        window: Window::Hamming,
        pad_mode: PadMode::Constant(0.0),
        normalized: true,
        ..StftOpts::new(512)
    };
    per_signal("stft_hamming", |x| stft(x, &hamming), true);
    let nocenter = StftOpts {
        hop_length: Some(97),
        periodic: false,
        center: false,
        onesided: false,
        ..StftOpts::new(256)
    };
    per_signal("stft_nocenter", |x| stft(x, &nocenter), true);
}

#[test]
fn spectrograms_match_torchaudio() {
    per_signal(
        "spec_default",
        |x| spectrogram(x, &SpectrogramOpts::default()),
        false,
    );
    let mag = SpectrogramOpts {
        power: Some(1.0),
        ..SpectrogramOpts::new(512).win_length(400).hop(160)
    };
    per_signal("spec_magnitude", |x| spectrogram(x, &mag), false);
    let norm = SpectrogramOpts {
        pad: 10,
        normalized: true,
        ..SpectrogramOpts::new(256)
    };
    per_signal("spec_normalized", |x| spectrogram(x, &norm), false);
}

#[test]
fn filterbanks_match_torchaudio() {
    let cases = [
        (
            "fbank_htk",
            (201, 0.0, 8000.0, 128, 16000, MelNorm::None, MelScale::Htk),
        ),
        (
            "fbank_slaney",
            (
                257,
                20.0,
                7600.0,
                40,
                16000,
                MelNorm::Slaney,
                MelScale::Slaney,
            ),
        ),
        (
            "fbank_8k",
            (129, 100.0, 3800.0, 23, 8000, MelNorm::None, MelScale::Htk),
        ),
    ];
    for (name, (nf, lo, hi, nm, sr, norm, scale)) in cases {
        let fb = melscale_fbanks(nf, lo, hi, nm, sr, norm, scale).unwrap();
        let want = fixtures().get(name).unwrap();
        assert_eq!(fb.shape(), want.shape(), "{name}");
        // The fixtures' filterbanks are computed in f64 (stored as f32): within 1e-6 of
        // the peak (Slaney-normalised peaks are ~1e-2, compared relative to them).
        let w = want.to_f64_vec();
        let max = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in fb.to_f64_vec().iter().zip(&w).enumerate() {
            assert!((a - b).abs() <= 1e-6 * max, "{name}[{i}]: {a} vs {b}");
        }
    }
}

#[test]
fn mel_spectrograms_match_torchaudio() {
    per_signal(
        "mel_default",
        |x| mel_spectrogram(x, &MelOpts::default()),
        false,
    );
    let slaney = MelOpts {
        spec: SpectrogramOpts::new(512).win_length(400).hop(160),
        f_min: 20.0,
        f_max: Some(7600.0),
        n_mels: 40,
        norm: MelNorm::Slaney,
        mel_scale: MelScale::Slaney,
        ..MelOpts::new(16000)
    };
    per_signal("mel_slaney", |x| mel_spectrogram(x, &slaney), false);
}

#[test]
fn decibels_match_torchaudio() {
    for s in SIGNALS {
        let db80 = DbOpts {
            top_db: Some(80.0),
            ..DbOpts::default()
        };
        let c = format!("db_3d.{s}");
        check(&c, fx(&format!("{c}.x")), |x| amplitude_to_db(x, &db80));
        let db40 = DbOpts {
            top_db: Some(40.0),
            ..DbOpts::default()
        };
        let c = format!("db_4d.{s}");
        check(&c, fx(&format!("{c}.x")), |x| amplitude_to_db(x, &db40));
        let mag = DbOpts {
            stype: Scale::Magnitude,
            ..DbOpts::default()
        };
        let c = format!("db_mag.{s}");
        check(&c, fx(&format!("{c}.x")), |x| amplitude_to_db(x, &mag));
    }
}

#[test]
fn mfcc_deltas_and_preemphasis_match_torchaudio() {
    per_signal("mfcc_default", |x| mfcc(x, &MfccOpts::default()), false);
    let log13 = MfccOpts {
        n_mfcc: 13,
        log_mels: true,
        mel: MelOpts {
            spec: SpectrogramOpts::new(512).win_length(400).hop(160),
            n_mels: 40,
            ..MelOpts::new(16000)
        },
        ..MfccOpts::default()
    };
    per_signal("mfcc_log", |x| mfcc(x, &log13), false);
    for s in SIGNALS {
        for (case, win) in [("deltas", 5), ("deltas7", 7)] {
            let c = format!("{case}.{s}");
            check(&c, fx(&format!("{c}.x")), |x| compute_deltas(x, win));
        }
    }
    per_signal("preemphasis", |x| preemphasis(x, 0.97), false);
}

#[test]
fn windows_match_torch() {
    for n in [1usize, 2, 7, 400] {
        let cases = [
            ("hann", "p", Window::Hann, true),
            ("hann", "s", Window::Hann, false),
            ("hamming", "p", Window::Hamming, true),
            ("blackman", "s", Window::Blackman, false),
        ];
        for (name, kind, w, periodic) in cases {
            let want = fx(&format!("win.{name}.{n}.{kind}")).to_f64_vec();
            let got = w.coefficients(n, periodic);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{name} {n} {kind}: {a} vs {b}");
            }
            assert_eq!(got.len(), want.len());
        }
        let want = fx(&format!("win.povey.{n}")).to_f64_vec();
        let got = Window::Povey.coefficients(n, true);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "povey {n}: {a} vs {b}");
        }
    }
}

#[test]
fn the_compiled_f32_front_end_matches_the_interpreter() {
    // Log-mel and MFCC of the voiced signal in f32, compiled vs interpreted.
    let x64 = fx("sig.voiced");
    let x = Array::f32(
        x64.shape().clone(),
        x64.to_f64_vec().iter().map(|&v| v as f32).collect(),
    )
    .unwrap();
    let g = GraphBuilder::new();
    let xt = g.input("x", DType::F32, x.shape().clone());
    let lm = log_mel_spectrogram(&xt, &MelOpts::default(), 1e-6);
    let mf = mfcc(&xt, &MfccOpts::default());
    let want = g.run(&[&lm, &mf], &[("x", x.clone())]).unwrap();
    let mut exe = g.compile(&[&lm, &mf]).unwrap();
    let got = exe.run(&[("x", x)]).unwrap();
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
        let max = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (p, q) in a.iter().zip(&b) {
            assert!(
                (p - q).abs() <= 1e-4 * max,
                "output {i}: {p} vs {q} (max {max})"
            );
        }
    }
}

#[test]
fn istft_matches_torch_istft() {
    for s in ["noise", "odd"] {
        let x = fx(&format!("sig.{s}"));
        let n = x.shape().dims()[1];
        let o = IstftOpts {
            stft: StftOpts::new(400),
            length: Some(n),
        };
        // The round trip through onde's own STFT gives the signal back too.
        check(&format!("istft_round.{s}"), x, |x| {
            istft(&stft(x, &o.stft), &o)
        });
    }
    let o = IstftOpts {
        stft: StftOpts::new(400),
        length: None,
    };
    check("istft_random", fx("istft_random.x"), |z| istft(z, &o));
    let o = IstftOpts {
        stft: StftOpts {
            hop_length: Some(160),
            win_length: Some(400),
            window: Window::Hamming,
            ..StftOpts::new(512)
        },
        length: Some(5000),
    };
    check("istft_hamming", fx("istft_hamming.x"), |z| istft(z, &o));
}

#[test]
fn resample_matches_torchaudio() {
    for s in ["speech", "odd"] {
        for (a, b) in [(16000, 8000), (8000, 16000), (44100, 16000), (16000, 22050)] {
            check(
                &format!("resample_{a}_{b}.{s}"),
                fx(&format!("sig.{s}")),
                |x| resample(x, a, b),
            );
        }
    }
}
