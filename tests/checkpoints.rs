//! Checkpoints (safetensors): a trained step's state dict saved and loaded into a fresh
//! model gives identical outputs and identical further training; corrupt, truncated,
//! missing and mistyped inputs are typed errors naming the file or tensor, never panics.

use onde::checkpoint;
use onde::loss::{cross_entropy, NllOpts};
use onde::module::{Linear, Module};
use onde::optim::Adam;
use onde::{Array, DType, Error, GraphBuilder, Tensor, TrainStep};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A unique temporary file removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!(
            "onde-ckpt-test-{}-{}-{}-{tag}.safetensors",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            nanos
        );
        TempFile(std::env::temp_dir().join(name))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Linear(4→3) → tanh → Linear(3→2), cross-entropy; `seed` sets the initialisation.
struct Model {
    g: GraphBuilder,
    out: Tensor,
    loss: Tensor,
}

fn model(seed: i64) -> Model {
    let g = GraphBuilder::new();
    g.manual_seed(seed);
    let fc1 = Linear::new(&g, "fc1", 4, 3);
    let fc2 = Linear::new(&g, "fc2", 3, 2);
    let x = g.input("x", DType::F32, [5, 4]);
    let y = g.input("y", DType::I64, [5]);
    let out = fc2.forward(&fc1.forward(&x).tanh());
    let loss = cross_entropy(&out, &y, &NllOpts::default());
    Model { g, out, loss }
}

fn batch() -> (Array, Array) {
    let xv: Vec<f64> = (0..20).map(|i| ((i * 7) % 9) as f64 / 4.0 - 1.0).collect();
    (
        Array::from_f64(DType::F32, vec![5, 4], &xv).unwrap(),
        Array::i64(vec![5], vec![0, 1, 1, 0, 1]).unwrap(),
    )
}

fn get<'a>(d: &'a [(String, Array)], n: &str) -> &'a Array {
    &d.iter()
        .find(|(k, _)| k == n)
        .unwrap_or_else(|| panic!("{n} missing"))
        .1
}

/// A trained step (3 Adam steps) and its state dict.
fn trained() -> (Model, TrainStep, Vec<(String, Array)>) {
    let m = model(1);
    let mut step = TrainStep::new(&m.g, &m.loss, &Adam::new(0.05)).unwrap();
    let (x, y) = batch();
    for _ in 0..3 {
        step.step(&[("x", &x), ("y", &y)]).unwrap();
    }
    let sd = step.state_dict();
    (m, step, sd)
}

#[test]
fn save_load_roundtrip_into_a_fresh_model() {
    let (m, step, sd) = trained();
    let f = TempFile::new("roundtrip");
    checkpoint::save(f.path(), &sd).unwrap();
    let loaded = checkpoint::load(f.path()).unwrap();
    // Every entry comes back bit-identical (names sorted).
    assert_eq!(loaded.len(), sd.len());
    let mut want_names: Vec<&String> = sd.iter().map(|(n, _)| n).collect();
    want_names.sort();
    let got_names: Vec<&String> = loaded.iter().map(|(n, _)| n).collect();
    assert_eq!(got_names, want_names);
    for (n, a) in &sd {
        assert_eq!(get(&loaded, n), a, "{n}");
    }
    for n in [
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "optim.fc1.weight.exp_avg",
        "optim.fc2.bias.exp_avg_sq",
        "optim.step",
        "optim.lr",
    ] {
        get(&loaded, n);
    }

    // A fresh model with other initial weights, loaded from the file.
    let (x, y) = batch();
    let feeds = [("x", &x), ("y", &y)];
    let fresh = model(99);
    let mut step2 = TrainStep::new(&fresh.g, &fresh.loss, &Adam::new(0.05)).unwrap();
    assert_ne!(
        step2.value("fc1.weight").unwrap(),
        step.value("fc1.weight").unwrap(),
        "the fresh model starts elsewhere"
    );
    step2.load_state_dict(&loaded, true).unwrap();
    let mut e1 = step.evaluator(&m.g, &[&m.out]).unwrap();
    let mut e2 = step2.evaluator(&fresh.g, &[&fresh.out]).unwrap();
    let o1 = e1.run(&step, &feeds).unwrap();
    let o2 = e2.run(&step2, &feeds).unwrap();
    assert_eq!(o1, o2, "identical outputs after loading");
    // The optimiser state came along: one more step on each stays identical.
    let mut step = step;
    let l1 = step.step(&feeds).unwrap();
    let l2 = step2.step(&feeds).unwrap();
    assert_eq!(l1, l2);
    for n in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"] {
        assert_eq!(step.value(n), step2.value(n), "{n} after one more step");
    }
    assert_eq!(step2.value("optim.step").unwrap().to_f64_vec(), vec![4.0]);

    // The builder's own load (model weights only; optimiser entries ignored when not
    // strict) gives the same outputs on the interpreter.
    let fresh = model(123);
    fresh.g.load_state_dict(&loaded, false).unwrap();
    let o3 = fresh
        .g
        .run(&[&fresh.out], &[("x", x.clone()), ("y", y.clone())])
        .unwrap();
    let a = o1[0].to_f64_vec();
    let b = o3[0].to_f64_vec();
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() <= 1e-6 * v.abs().max(1.0), "{a:?} vs {b:?}");
    }
    // Strict: optimiser entries are not parameters of the builder.
    let e = model(5).g.load_state_dict(&loaded, true).unwrap_err();
    match &e {
        Error::StateDict { name, .. } => assert!(name.starts_with("optim."), "{e}"),
        Error::Op { .. }
        | Error::MixedBuilders { .. }
        | Error::DuplicateName { .. }
        | Error::Grad { .. }
        | Error::Compile(..)
        | Error::Exec(..)
        | Error::Gradcheck { .. }
        | Error::UnknownParameter { .. }
        | Error::ParameterType { .. }
        | Error::Train { .. }
        | Error::Checkpoint { .. }
        | Error::Layer { .. }
        | Error::TargetOutOfRange { .. }
        | Error::LengthOutOfRange { .. }
        | Error::Verify(..)
        | Error::Run(..) => panic!("expected a state dict error, got {e:?}"),
    }
}

#[test]
fn all_dtypes_roundtrip_through_bytes() {
    let dict = vec![
        (
            "a".to_string(),
            Array::f32(vec![2, 2], vec![1.5, -0.0, f32::MAX, 1e-40]).unwrap(),
        ),
        (
            "b".to_string(),
            Array::f64(vec![3], vec![std::f64::consts::PI, -1e300, 0.1]).unwrap(),
        ),
        (
            "c".to_string(),
            Array::i64(vec![2], vec![i64::MIN, 7]).unwrap(),
        ),
        (
            "d".to_string(),
            Array::bool(vec![3], vec![true, false, true]).unwrap(),
        ),
        ("e".to_string(), Array::scalar(DType::F64, 42.0)),
    ];
    let bytes = checkpoint::to_bytes(&dict).unwrap();
    let back = checkpoint::from_bytes(&bytes, Path::new("<mem>")).unwrap();
    assert_eq!(back, dict);
    // Saved through a file too.
    let f = TempFile::new("dtypes");
    checkpoint::save(f.path(), &dict).unwrap();
    assert_eq!(checkpoint::load(f.path()).unwrap(), dict);
}

/// Whether `e` is a checkpoint error about `path`.
fn is_checkpoint_err(e: &Error, path: &Path) -> bool {
    match e {
        Error::Checkpoint { path: p, .. } => p == &path.display().to_string(),
        Error::Op { .. }
        | Error::MixedBuilders { .. }
        | Error::DuplicateName { .. }
        | Error::Grad { .. }
        | Error::Compile(..)
        | Error::Exec(..)
        | Error::Gradcheck { .. }
        | Error::UnknownParameter { .. }
        | Error::ParameterType { .. }
        | Error::Train { .. }
        | Error::StateDict { .. }
        | Error::Layer { .. }
        | Error::TargetOutOfRange { .. }
        | Error::LengthOutOfRange { .. }
        | Error::Verify(..)
        | Error::Run(..) => false,
    }
}

/// The name of a state-dict error.
fn state_dict_name(e: &Error) -> Option<&str> {
    match e {
        Error::StateDict { name, .. } => Some(name),
        Error::Op { .. }
        | Error::MixedBuilders { .. }
        | Error::DuplicateName { .. }
        | Error::Grad { .. }
        | Error::Compile(..)
        | Error::Exec(..)
        | Error::Gradcheck { .. }
        | Error::UnknownParameter { .. }
        | Error::ParameterType { .. }
        | Error::Train { .. }
        | Error::Checkpoint { .. }
        | Error::Layer { .. }
        | Error::TargetOutOfRange { .. }
        | Error::LengthOutOfRange { .. }
        | Error::Verify(..)
        | Error::Run(..) => None,
    }
}

#[test]
fn truncated_file_is_a_checkpoint_error() {
    let (_m, _step, sd) = trained();
    let bytes = checkpoint::to_bytes(&sd).unwrap();
    let f = TempFile::new("truncated");
    std::fs::write(f.path(), &bytes[..bytes.len() / 2]).unwrap();
    let e = checkpoint::load(f.path()).unwrap_err();
    assert!(is_checkpoint_err(&e, f.path()), "{e:?}");
    assert!(
        e.to_string().contains(&f.path().display().to_string()),
        "{e}"
    );
    // Every other cut too (header cut, data cut, empty file): an error, never a panic.
    for cut in [0, 1, 7, 8, 9, 20, bytes.len() - 1] {
        std::fs::write(f.path(), &bytes[..cut]).unwrap();
        let e = checkpoint::load(f.path()).unwrap_err();
        assert!(is_checkpoint_err(&e, f.path()), "cut {cut}: {e:?}");
    }
}

#[test]
fn garbage_bytes_are_a_checkpoint_error() {
    // Deterministic pseudo-random bytes (xorshift), plus a header length that points
    // past the end, plus a valid length with a non-JSON header.
    let mut s: u64 = 0x1234_5678_9abc_def1;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    let mut bad_len = 1_000_000u64.to_le_bytes().to_vec();
    bad_len.extend_from_slice(b"{}");
    let mut not_json = 8u64.to_le_bytes().to_vec();
    not_json.extend_from_slice(b"notjson!");
    let mut bad_offsets = Vec::new();
    let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}}"#;
    bad_offsets.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bad_offsets.extend_from_slice(header);
    bad_offsets.extend_from_slice(&[0u8; 16]);
    let f = TempFile::new("garbage");
    for (what, bytes) in [
        ("random", junk),
        ("length past the end", bad_len),
        ("header not json", not_json),
        ("data offsets past the end", bad_offsets),
    ] {
        std::fs::write(f.path(), &bytes).unwrap();
        let e = checkpoint::load(f.path()).unwrap_err();
        assert!(is_checkpoint_err(&e, f.path()), "{what}: {e:?}");
    }
}

#[test]
fn unsupported_dtype_is_an_error_naming_the_tensor() {
    // A valid safetensors file with an f16 tensor (PyTorch half precision).
    let header = br#"{"half_w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0, 60, 0, 64]); // 1.0, 2.0 in f16
    let e = checkpoint::from_bytes(&bytes, Path::new("half.safetensors")).unwrap_err();
    assert!(
        is_checkpoint_err(&e, Path::new("half.safetensors")),
        "{e:?}"
    );
    assert!(e.to_string().contains("half_w"), "{e}");
}

#[test]
fn missing_name_is_a_state_dict_error_naming_it() {
    let (_m, _step, sd) = trained();
    let without: Vec<(String, Array)> = sd
        .iter()
        .filter(|(n, _)| n != "fc2.bias")
        .cloned()
        .collect();
    // Into a TrainStep.
    let fresh = model(2);
    let mut step = TrainStep::new(&fresh.g, &fresh.loss, &Adam::new(0.05)).unwrap();
    let before = step.state_dict();
    let e = step.load_state_dict(&without, true).unwrap_err();
    assert_eq!(state_dict_name(&e), Some("fc2.bias"), "{e:?}");
    assert!(e.to_string().contains("fc2.bias"), "{e}");
    assert_eq!(step.state_dict(), before, "nothing loaded on error");
    // Into a builder.
    let fresh = model(2);
    let before = fresh.g.state_dict();
    let e = fresh.g.load_state_dict(&without, false).unwrap_err();
    assert_eq!(state_dict_name(&e), Some("fc2.bias"), "{e:?}");
    assert_eq!(fresh.g.state_dict(), before, "nothing loaded on error");
}

#[test]
fn wrong_shape_or_dtype_is_an_error_naming_the_tensor() {
    let (_m, _step, sd) = trained();
    for (victim, bad) in [
        ("fc1.weight", Array::full(DType::F32, [4, 3], 0.0)), // transposed
        ("fc1.bias", Array::full(DType::F64, [3], 0.0)),      // dtype
        ("fc2.weight", Array::full(DType::F32, [2, 3, 1], 0.0)),
    ] {
        let dict: Vec<(String, Array)> = sd
            .iter()
            .map(|(n, a)| {
                if n == victim {
                    (n.clone(), bad.clone())
                } else {
                    (n.clone(), a.clone())
                }
            })
            .collect();
        // Also through a file (what a user would actually load).
        let f = TempFile::new("wrongshape");
        checkpoint::save(f.path(), &dict).unwrap();
        let dict = checkpoint::load(f.path()).unwrap();
        let fresh = model(3);
        let mut step = TrainStep::new(&fresh.g, &fresh.loss, &Adam::new(0.05)).unwrap();
        let e = step.load_state_dict(&dict, true).unwrap_err();
        assert_eq!(state_dict_name(&e), Some(victim), "{e:?}");
        assert!(e.to_string().contains(victim), "{e}");
        let fresh = model(3);
        let before = fresh.g.state_dict();
        let e = fresh.g.load_state_dict(&dict, false).unwrap_err();
        assert_eq!(state_dict_name(&e), Some(victim), "{e:?}");
        assert_eq!(fresh.g.state_dict(), before, "nothing loaded on error");
    }
    // Optimiser state of the wrong shape.
    let dict: Vec<(String, Array)> = sd
        .iter()
        .map(|(n, a)| {
            if n == "optim.fc1.weight.exp_avg" {
                (n.clone(), Array::full(DType::F32, [3], 0.0))
            } else {
                (n.clone(), a.clone())
            }
        })
        .collect();
    let fresh = model(3);
    let mut step = TrainStep::new(&fresh.g, &fresh.loss, &Adam::new(0.05)).unwrap();
    let e = step.load_state_dict(&dict, true).unwrap_err();
    assert_eq!(
        state_dict_name(&e),
        Some("optim.fc1.weight.exp_avg"),
        "{e:?}"
    );
}

#[test]
fn unknown_name_is_an_error_when_strict() {
    let (_m, _step, mut sd) = trained();
    sd.push(("fc3.weight".into(), Array::full(DType::F32, [1], 0.0)));
    let fresh = model(4);
    let mut step = TrainStep::new(&fresh.g, &fresh.loss, &Adam::new(0.05)).unwrap();
    let e = step.load_state_dict(&sd, true).unwrap_err();
    assert_eq!(state_dict_name(&e), Some("fc3.weight"), "{e:?}");
    // Not strict: ignored, everything else loads.
    step.load_state_dict(&sd, false).unwrap();
    assert_eq!(step.value("fc1.weight").unwrap(), get(&sd, "fc1.weight"));
    // The builder, with the model weights only plus the unknown entry.
    let weights: Vec<(String, Array)> = sd
        .iter()
        .filter(|(n, _)| !n.starts_with("optim."))
        .cloned()
        .collect();
    assert_eq!(weights.len(), 5, "four parameters and fc3.weight");
    let before = fresh.g.state_dict();
    let e = fresh.g.load_state_dict(&weights, true).unwrap_err();
    assert_eq!(state_dict_name(&e), Some("fc3.weight"), "{e:?}");
    assert_eq!(fresh.g.state_dict(), before, "nothing loaded on error");
    fresh.g.load_state_dict(&weights, false).unwrap();
    assert_eq!(get(&fresh.g.state_dict(), "fc2.bias"), get(&sd, "fc2.bias"));
}

#[test]
fn nonexistent_paths_are_checkpoint_errors() {
    let dir = std::env::temp_dir().join(format!(
        "onde-ckpt-test-no-such-dir-{}-{}",
        std::process::id(),
        line!()
    ));
    let p = dir.join("model.safetensors");
    let e = checkpoint::load(&p).unwrap_err();
    assert!(is_checkpoint_err(&e, &p), "{e:?}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    // Saving into a directory that does not exist.
    let e = checkpoint::save(&p, &[("a".into(), Array::scalar(DType::F32, 1.0))]).unwrap_err();
    assert!(is_checkpoint_err(&e, &p), "{e:?}");
    // A directory is not a file.
    let e = checkpoint::load(std::env::temp_dir()).unwrap_err();
    assert!(is_checkpoint_err(&e, &std::env::temp_dir()), "{e:?}");
}
