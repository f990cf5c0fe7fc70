//! `onde features` end to end: every kind writes one `features` tensor of the
//! documented shape (checked against the library on the same samples), the picture is
//! a PNG, and bad files or arguments are errors naming them.

use onde_ir::{Array, DType};
use onde_nn::GraphBuilder;
use std::path::PathBuf;
use std::process::Command;

fn onde(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_onde"))
        .args(args)
        .output()
        .expect("runs the onde binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("onde-features-{}-{name}", std::process::id()))
}

/// A 2-channel, 0.5 s, 16 kHz WAV of two tones.
fn wav(name: &str) -> (PathBuf, Array) {
    let n = 8000;
    let v: Vec<f32> = (0..2 * n)
        .map(|i| {
            let (c, t) = (i / n, (i % n) as f32 / 16000.0);
            0.3 * (std::f32::consts::TAU * if c == 0 { 440.0 } else { 1250.0 } * t).sin()
        })
        .collect();
    let x = Array::f32([2, n], v).unwrap();
    let path = tmp(name);
    onde_data::write_wav(&path, &x, 16000, 32).unwrap();
    (path, x)
}

#[test]
fn every_kind_writes_the_documented_tensor() {
    let (input, x) = wav("kinds.wav");
    let cases = [
        ("stft", vec![2, 201, 41, 2]),
        ("spectrogram", vec![2, 201, 41]),
        ("mel", vec![2, 64, 41]),
        ("logmel", vec![2, 64, 41]),
        ("mfcc", vec![2, 13, 41]),
    ];
    for (kind, shape) in cases {
        let out = tmp(&format!("{kind}.safetensors"));
        let png = tmp(&format!("{kind}.png"));
        let (ok, err) = onde(&[
            "features",
            input.to_str().unwrap(),
            "--kind",
            kind,
            "--n-mels",
            "64",
            "--n-mfcc",
            "13",
            "--out",
            out.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
        ]);
        assert!(ok, "{kind}: {err}");
        let dict = onde_nn::checkpoint::load(&out).unwrap();
        assert_eq!(dict.len(), 1);
        assert_eq!(dict[0].0, "features");
        assert_eq!(dict[0].1.shape().dims(), &shape[..], "{kind}");
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{kind}: a PNG");
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&png);
    }
    // The log-mel equals the library's on the same samples (interpreted).
    let out = tmp("check.safetensors");
    let (ok, err) = onde(&[
        "features",
        input.to_str().unwrap(),
        "--kind",
        "logmel",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let got = onde_nn::checkpoint::load(&out)
        .unwrap()
        .remove(0)
        .1
        .to_f64_vec();
    let g = GraphBuilder::new();
    let xt = g.input("x", DType::F32, [2, 8000]);
    let y = onde_signal::log_mel_spectrogram(&xt, &onde_signal::MelOpts::new(16000), 1e-6);
    let want = g.run(&[&y], &[("x", x)]).unwrap()[0].to_f64_vec();
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&input);
}

#[test]
fn bad_files_and_arguments_are_errors_naming_them() {
    let out = tmp("bad.safetensors");
    let text = tmp("notes.wav");
    std::fs::write(&text, b"not a wav file").unwrap();
    let (ok, err) = onde(&[
        "features",
        text.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("notes.wav"), "{err}");
    let empty = tmp("empty.wav");
    onde_data::write_wav(&empty, &Array::f32([1, 0], vec![]).unwrap(), 16000, 16).unwrap();
    let (ok, err) = onde(&[
        "features",
        empty.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("no samples"), "{err}");
    let (input, _) = wav("bad-args.wav");
    let (ok, err) = onde(&[
        "features",
        input.to_str().unwrap(),
        "--kind",
        "mel",
        "--f-max",
        "9000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("Nyquist"), "{err}");
    let (ok, err) = onde(&[
        "features",
        input.to_str().unwrap(),
        "--hop",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("hop"), "{err}");
    for f in [text, empty, input] {
        let _ = std::fs::remove_file(f);
    }
}
