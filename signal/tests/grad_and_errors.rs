//! Gradients of the STFT, mel spectrogram and MFCC against central finite differences
//! in f64 (`GraphBuilder::gradcheck`), including second derivatives through the
//! spectrum; and bad arguments are typed errors naming the transform and the caller's
//! line.

use onde_ir::{Array, DType};
use onde_nn::{Error, GradcheckOpts, GraphBuilder, PadMode, Tensor};
use onde_signal::*;

fn signal(n: usize, seed: u64) -> Array {
    let v: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64;
            (0.3 * t + seed as f64).sin() + 0.5 * (0.071 * t * t / n as f64).cos()
        })
        .collect();
    Array::f64([1, n], v).unwrap()
}

/// Gradcheck of `(f(x) · r).sum()` with respect to `x` (`[1, n]`).
fn gradcheck(what: &str, n: usize, f: impl Fn(&Tensor) -> Tensor) {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [1, n]);
    let y = f(&x);
    if let Err(e) = y.check() {
        panic!("{what}: {e}");
    }
    let r: Vec<f64> = (0..y.numel())
        .map(|i| ((i * 7919) % 13) as f64 / 6.0 - 1.0)
        .collect();
    let r = g.constant(Array::f64(y.shape(), r).unwrap());
    let loss = (&y * &r).sum_all();
    let report = g
        .gradcheck(
            &loss,
            &[&x],
            &[("x", signal(n, 3))],
            GradcheckOpts::default(),
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    drop(report);
}

#[test]
fn stft_spectrogram_mel_and_mfcc_pass_gradcheck() {
    let small = StftOpts {
        hop_length: Some(24),
        ..StftOpts::new(64)
    };
    gradcheck("stft", 200, |x| stft(x, &small));
    let spec = SpectrogramOpts {
        stft: small.clone(),
        ..SpectrogramOpts::new(64)
    };
    gradcheck("power spectrogram", 200, |x| spectrogram(x, &spec));
    let mel = MelOpts {
        spec: spec.clone(),
        n_mels: 12,
        ..MelOpts::new(8000)
    };
    gradcheck("mel", 200, |x| mel_spectrogram(x, &mel));
    gradcheck("log-mel", 200, |x| log_mel_spectrogram(x, &mel, 1e-3));
    let mf = MfccOpts {
        n_mfcc: 8,
        log_mels: true,
        mel: mel.clone(),
        lifter: Some(22.0),
        ..MfccOpts::default()
    };
    gradcheck("mfcc", 200, |x| mfcc(x, &mf));
    gradcheck("deltas of log-mel", 200, |x| {
        compute_deltas(&log_mel_spectrogram(x, &mel, 1e-3), 5)
    });
    gradcheck("preemphasis", 50, |x| preemphasis(x, 0.97));
}

#[test]
fn second_derivatives_flow_through_the_spectrum() {
    // The Hessian-vector product of a mel energy, against finite differences of the
    // gradient (double reverse mode through unfold, matmul and the power).
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [1, 120]);
    let mel = MelOpts {
        spec: SpectrogramOpts::new(32).hop(16),
        n_mels: 6,
        ..MelOpts::new(8000)
    };
    let e = mel_spectrogram(&x, &mel).sum_all();
    let gx = g.grad(&e, &[&x]).unwrap().remove(0);
    let v = g.constant(signal(120, 9));
    let gv = (&gx * &v).sum_all();
    let report = g.gradcheck(
        &gv,
        &[&x],
        &[("x", signal(120, 1))],
        GradcheckOpts::default(),
    );
    assert!(report.is_ok(), "{report:?}");
}

/// The error of a poisoned result, which must name `op`, the caller's line and `words`.
fn refused(t: &Tensor, line: u32, op: &str, words: &[&str]) {
    let e = t.check().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Op { .. }), "{msg}");
    assert!(msg.contains(op), "{msg}");
    assert!(
        msg.contains(&format!("grad_and_errors.rs:{line}:")),
        "{msg}"
    );
    for w in words {
        assert!(msg.contains(w), "`{w}` not in: {msg}");
    }
}

#[test]
fn bad_arguments_are_typed_errors_at_the_callers_line() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 300]);
    let hop0 = StftOpts {
        hop_length: Some(0),
        ..StftOpts::new(64)
    };
    let line = line!() + 1;
    let y = stft(&x, &hop0);
    refused(&y, line, "stft", &["hop_length"]);
    // n_fft longer than the padded signal.
    let long = StftOpts {
        center: false,
        ..StftOpts::new(512)
    };
    let line = line!() + 1;
    let y = stft(&x, &long);
    refused(&y, line, "stft", &["n_fft 512", "300 samples"]);
    // Reflect padding wider than the signal.
    let short = g.input("s", DType::F32, [1, 100]);
    let line = line!() + 1;
    let y = spectrogram(&short, &SpectrogramOpts::new(400));
    refused(&y, line, "spectrogram", &["reflect", "Constant"]);
    // ... which constant padding accepts.
    let constant = SpectrogramOpts {
        stft: StftOpts {
            pad_mode: PadMode::Constant(0.0),
            ..SpectrogramOpts::new(400).stft
        },
        ..SpectrogramOpts::new(400)
    };
    assert_eq!(spectrogram(&short, &constant).size(), vec![1, 201, 1]);
    // f_max above Nyquist.
    let nyq = MelOpts {
        f_max: Some(9000.0),
        ..MelOpts::new(16000)
    };
    let line = line!() + 1;
    let y = mel_spectrogram(&x, &nyq);
    refused(&y, line, "mel_spectrogram", &["f_max 9000", "Nyquist"]);
    let e = melscale_fbanks(201, 0.0, 9000.0, 40, 16000, MelNorm::None, MelScale::Htk).unwrap_err();
    assert!(e.to_string().contains("Nyquist"), "{e}");
    // Integer audio, n_mfcc above n_mels, a window longer than n_fft, empty deltas.
    let ints = g.input("i", DType::I64, [1, 1000]);
    let line = line!() + 1;
    let y = stft(&ints, &StftOpts::new(64));
    refused(&y, line, "stft", &["f32 or f64"]);
    let too_many = MfccOpts {
        n_mfcc: 200,
        ..MfccOpts::default()
    };
    let line = line!() + 1;
    let y = mfcc(&x, &too_many);
    refused(&y, line, "mfcc", &["n_mfcc 200"]);
    let wide = StftOpts {
        win_length: Some(100),
        ..StftOpts::new(64)
    };
    let line = line!() + 1;
    let y = stft(&x, &wide);
    refused(&y, line, "stft", &["win_length 100"]);
    let line = line!() + 1;
    let y = compute_deltas(&x, 1);
    refused(&y, line, "compute_deltas", &["win_length"]);
    let line = line!() + 1;
    let y = frame(&x, 400, 10);
    refused(&y, line, "frame", &["400"]);
    // An inverse STFT whose windows leave gaps (NOLA), one of the wrong shape; a zero
    // resampling rate.
    let z = g.input("z", DType::F32, [1, 201, 10, 2]);
    let gaps = IstftOpts {
        stft: StftOpts {
            hop_length: Some(300),
            win_length: Some(100),
            ..StftOpts::new(400)
        },
        length: None,
    };
    let line = line!() + 1;
    let y = istft(&z, &gaps);
    refused(&y, line, "istft", &["NOLA"]);
    let line = line!() + 1;
    let y = istft(
        &z,
        &IstftOpts {
            stft: StftOpts::new(512),
            length: None,
        },
    );
    refused(&y, line, "istft", &["n_freq = 257"]);
    let line = line!() + 1;
    let y = resample(&x, 0, 16000);
    refused(&y, line, "resample", &["positive"]);
    // Rates that reduce to large coprime numbers would need gigabytes of filters.
    let line = line!() + 1;
    let y = resample(&x, 44101, 48000);
    refused(&y, line, "resample", &["intermediate rate"]);
    // A window longer than n_fft with window normalisation, and a huge istft length.
    let norm = SpectrogramOpts {
        normalized: true,
        stft: StftOpts {
            win_length: Some(500),
            ..StftOpts::new(400)
        },
        ..SpectrogramOpts::new(400)
    };
    let line = line!() + 1;
    let y = spectrogram(&x, &norm);
    refused(&y, line, "spectrogram", &["win_length 500"]);
    let huge = IstftOpts {
        stft: StftOpts::new(400),
        length: Some(usize::MAX),
    };
    let z = g.input("z2", DType::F32, [1, 201, 10, 2]);
    let line = line!() + 1;
    let y = istft(&z, &huge);
    refused(&y, line, "istft", &["too large"]);
}

#[test]
fn stft_equals_a_direct_dft_for_any_frame_size() {
    // Sizes the two-stage product splits (96 = 8·12, 300 = 15·20, 400 = 20·20) and sizes
    // it leaves to the direct product (402 = 2·3·67, a prime 37), one-sided and not,
    // against the DFT summed on the host in f64.
    let len = 1000;
    let x = signal(len, 5);
    let xv = x.to_f64_vec();
    for (n, onesided) in [
        (96, true),
        (300, true),
        (400, false),
        (402, true),
        (37, false),
    ] {
        let o = StftOpts {
            hop_length: Some(50),
            center: false,
            onesided,
            window: Window::Hamming,
            ..StftOpts::new(n)
        };
        let g = GraphBuilder::new();
        let xt = g.input("x", DType::F64, [1, len]);
        let y = stft(&xt, &o);
        let got = g.run(&[&y], &[("x", x.clone())]).unwrap()[0].to_f64_vec();
        let (nf, frames) = (o.n_freq(), o.frames(len).unwrap());
        let w = o.padded_window();
        for k in 0..nf {
            for f in 0..frames {
                let (mut re, mut im) = (0.0, 0.0);
                for i in 0..n {
                    let a = std::f64::consts::TAU * (i * k) as f64 / n as f64;
                    let v = w[i] * xv[f * 50 + i];
                    re += v * a.cos();
                    im -= v * a.sin();
                }
                let at = (k * frames + f) * 2;
                assert!(
                    (got[at] - re).abs() < 1e-9 && (got[at + 1] - im).abs() < 1e-9,
                    "n_fft {n}, bin {k}, frame {f}: ({}, {}) vs ({re}, {im})",
                    got[at],
                    got[at + 1]
                );
            }
        }
    }
}

#[test]
fn mixing_channels_averages_them() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F64, [2, 3, 4]);
    let y = mix_channels(&x);
    assert_eq!(y.size(), vec![2, 1, 4]);
    let v: Vec<f64> = (0..24).map(f64::from).collect();
    let out = g
        .run(&[&y], &[("x", Array::f64([2, 3, 4], v).unwrap())])
        .unwrap();
    assert_eq!(&out[0].to_f64_vec()[..4], &[4.0, 5.0, 6.0, 7.0]);
    let mono = g.input("m", DType::F64, [5]);
    assert!(mix_channels(&mono).check().is_err());
}
