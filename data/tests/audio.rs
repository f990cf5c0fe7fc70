//! WAV reading at every bit depth and channel count (files written by `hound` here),
//! errors naming the file, and the folder and manifest datasets through the loader.

use onde_data::{
    group_split, read_wav, write_wav, AudioFiles, DataError, DataLoader, Dataset, PadCollate,
};
use onde_ir::Array;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A fresh directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("onde-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// A test tone as interleaved integers of `bits` bits: frame t, channel c.
fn tone(t: usize, c: usize) -> f64 {
    ((t as f64 * 0.31 + c as f64).sin()) * 0.9
}

fn write_int(path: &Path, bits: u16, channels: u16, frames: usize) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: 8000,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let full = (1i64 << (bits - 1)) as f64;
    for t in 0..frames {
        for c in 0..usize::from(channels) {
            let v = (tone(t, c) * full).round() as i32;
            match bits {
                8 => w.write_sample(v as i8).unwrap(),
                16 => w.write_sample(v as i16).unwrap(),
                _ => w.write_sample(v).unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

#[test]
fn every_bit_depth_and_channel_count_reads_back() {
    let d = scratch("depths");
    for bits in [8u16, 16, 24, 32] {
        for channels in [1u16, 2, 3] {
            let p = d.join(format!("i{bits}_{channels}.wav"));
            write_int(&p, bits, channels, 101);
            let w = read_wav(&p).unwrap();
            assert_eq!(w.rate, 8000);
            assert_eq!(w.samples.shape().dims(), &[usize::from(channels), 101]);
            let got = w.samples.as_f32().unwrap();
            // One quantisation step of the depth (8-bit: 1/128).
            let tol = 1.0 / (1u64 << (bits - 1)) as f64 + 1e-6;
            for c in 0..usize::from(channels) {
                for t in 0..101 {
                    let v = f64::from(got[c * 101 + t]);
                    assert!(
                        (v - tone(t, c)).abs() <= tol,
                        "{bits}-bit ch {c} t {t}: {v}"
                    );
                }
            }
        }
    }
    // 32-bit float, through write_wav: exact.
    let x = Array::f32(
        [2, 5],
        vec![0.5, -0.25, 0.0, 1.0, -1.0, 0.1, 0.2, 0.3, 0.4, 0.5],
    )
    .unwrap();
    let p = d.join("f32.wav");
    write_wav(&p, &x, 16000, 32).unwrap();
    let w = read_wav(&p).unwrap();
    assert_eq!(w.rate, 16000);
    assert_eq!(w.samples, x);
}

#[test]
fn broken_files_name_themselves() {
    let d = scratch("broken");
    let missing = d.join("missing.wav");
    let e = read_wav(&missing).unwrap_err();
    assert!(
        matches!(e, DataError::File { .. }) && e.to_string().contains("missing.wav"),
        "{e}"
    );
    let text = d.join("notes.wav");
    std::fs::write(&text, b"this is not a RIFF file at all").unwrap();
    let e = read_wav(&text).unwrap_err();
    assert!(e.to_string().contains("notes.wav"), "{e}");
    // A file cut in the middle of its data chunk.
    let full = d.join("full.wav");
    write_int(&full, 16, 1, 1000);
    let bytes = std::fs::read(&full).unwrap();
    let cut = d.join("cut.wav");
    std::fs::write(&cut, &bytes[..bytes.len() - 701]).unwrap();
    let e = read_wav(&cut).unwrap_err();
    assert!(e.to_string().contains("cut.wav"), "{e}");
}

/// root/no/*.wav and root/yes/*.wav, speakers in the file names, lengths 40..=49.
fn folder(name: &str) -> Scratch {
    let root = scratch(name);
    for (class, n) in [("yes", 6), ("no", 4)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for k in 0..n {
            let frames = 40 + k + if class == "yes" { 4 } else { 0 };
            let x = Array::f32(
                [1, frames],
                (0..frames).map(|t| tone(t, k) as f32).collect(),
            )
            .unwrap();
            let spk = format!("spk{}", k % 3);
            write_wav(
                root.join(class).join(format!("{spk}_{k:03}.wav")),
                &x,
                8000,
                16,
            )
            .unwrap();
        }
    }
    std::fs::write(root.join("README.txt"), "not a class").unwrap();
    root
}

#[test]
fn a_folder_per_class_through_the_loader() {
    let root = folder("folder");
    let ds = AudioFiles::folder(&*root)
        .unwrap()
        .expect_rate(8000)
        .group_by_name_prefix('_');
    assert_eq!(ds.classes(), &["no".to_string(), "yes".to_string()]);
    assert_eq!(ds.len(), 10);
    let s = ds.get(0).unwrap();
    assert_eq!(s.label, 0);
    assert_eq!(s.field("audio").unwrap().shape().dims(), &[1, 40]);
    assert_eq!(ds.get(9).unwrap().label, 1);
    assert_eq!(ds.group(0).as_deref(), Some("spk0"));
    let ds: Arc<dyn Dataset> = Arc::new(ds);
    let parts = group_split(ds.clone(), &[0.5, 0.5], 3).unwrap();
    assert_eq!(parts[0].len() + parts[1].len(), 10);
    // Batches padded to their longest clip, the same with 0 and 2 workers.
    let l = DataLoader::new(ds.clone(), 4)
        .shuffle(1)
        .collate(PadCollate::new("audio"));
    let run = |l: &DataLoader| -> Vec<(Vec<usize>, Vec<i64>)> {
        l.epoch(0)
            .unwrap()
            .map(|b| {
                let b = b.unwrap();
                let lens = b.field("lengths").unwrap().as_i64().unwrap().to_vec();
                let t = b.field("audio").unwrap().shape().dims()[2];
                assert_eq!(t as i64, *lens.iter().max().unwrap());
                (b.indices, lens)
            })
            .collect()
    };
    assert_eq!(run(&l), run(&l.clone().num_workers(2)));
    // A wrong rate names the file.
    let e = AudioFiles::folder(&*root)
        .unwrap()
        .expect_rate(16000)
        .get(3)
        .unwrap_err();
    assert!(
        e.to_string().contains("8000 Hz") && e.to_string().contains(".wav"),
        "{e}"
    );
    // No class folders.
    let empty = scratch("empty");
    assert!(AudioFiles::folder(&*empty).is_err());
}

#[test]
fn a_manifest_with_spans() {
    let root = folder("manifest");
    let m = root.join("train.csv");
    std::fs::write(
        &m,
        "path,label,start,end\nyes/spk0_000.wav,yes,0.001,0.004\nno/spk1_001.wav,no,0,0.005\n",
    )
    .unwrap();
    let ds = AudioFiles::manifest(&m).unwrap();
    assert_eq!(ds.classes(), &["no".to_string(), "yes".to_string()]);
    let s = ds.get(0).unwrap();
    assert_eq!(s.label, 1);
    // 8 kHz: [0.001, 0.004) s = frames 8..32.
    let a = s.field("audio").unwrap();
    assert_eq!(a.shape().dims(), &[1, 24]);
    let whole = read_wav(root.join("yes/spk0_000.wav")).unwrap();
    assert_eq!(a.as_f32().unwrap(), &whole.samples.as_f32().unwrap()[8..32]);
    assert_eq!(
        ds.get(1).unwrap().field("audio").unwrap().shape().dims(),
        &[1, 40]
    );
    // A span shorter than one sample after rounding (0.001 s .. 0.00101 s at 8 kHz):
    // skip_unreadable drops it as `get` would refuse it.
    std::fs::write(
        &m,
        "path,label,start,end\nyes/spk0_000.wav,yes,0.001,0.00101\nno/spk1_001.wav,no,0,0.005\n",
    )
    .unwrap();
    let all = AudioFiles::manifest(&m).unwrap();
    assert!(all.get(0).is_err());
    let kept = AudioFiles::manifest(&m).unwrap().skip_unreadable();
    assert_eq!(kept.len(), 1);
    assert!(
        kept.skipped()[0].1.contains("holds no sample"),
        "{:?}",
        kept.skipped()
    );
    // Malformed lines name the manifest and line.
    std::fs::write(&m, "yes/a.wav,yes\nno/b.wav\n").unwrap();
    let e = AudioFiles::manifest(&m).unwrap_err();
    assert!(e.to_string().contains("train.csv:2"), "{e}");
    std::fs::write(&m, "yes/a.wav,yes,0.5,0.2\n").unwrap();
    let e = AudioFiles::manifest(&m).unwrap_err();
    assert!(
        e.to_string().contains("train.csv:1") && e.to_string().contains("empty"),
        "{e}"
    );
    // A listed file that is missing fails when loaded, naming it.
    std::fs::write(&m, "yes/nothere.wav,yes\n").unwrap();
    let e = AudioFiles::manifest(&m).unwrap().get(0).unwrap_err();
    assert!(e.to_string().contains("nothere.wav"), "{e}");
}

#[test]
fn unreadable_files_are_skipped_with_a_warning_when_asked() {
    let root = folder("skip");
    let yes = root.join("yes");
    // A truncated clip, a text file with a .wav name, and one at another rate.
    let bytes = std::fs::read(yes.join("spk0_000.wav")).unwrap();
    std::fs::write(yes.join("spk9_cut.wav"), &bytes[..bytes.len() - 11]).unwrap();
    std::fs::write(yes.join("spk9_text.wav"), b"RIFF? no").unwrap();
    let x = Array::f32([1, 40], vec![0.1; 40]).unwrap();
    write_wav(yes.join("spk9_rate.wav"), &x, 16000, 16).unwrap();
    // By default the bad files are errors naming them when reached.
    let all = AudioFiles::folder(&*root).unwrap().expect_rate(8000);
    assert_eq!(all.len(), 13);
    let bad: Vec<String> = (0..all.len())
        .filter_map(|i| all.get(i).err())
        .map(|e| e.to_string())
        .collect();
    assert_eq!(bad.len(), 3, "{bad:?}");
    for name in ["spk9_cut.wav", "spk9_text.wav", "spk9_rate.wav"] {
        assert!(bad.iter().any(|e| e.contains(name)), "{name}: {bad:?}");
    }
    // Asked to skip them: the 10 good clips remain, every one readable, the skipped
    // listed with their reasons.
    let ds = AudioFiles::folder(&*root)
        .unwrap()
        .expect_rate(8000)
        .skip_unreadable();
    assert_eq!(ds.len(), 10);
    assert!((0..ds.len()).all(|i| ds.get(i).is_ok()));
    let skipped: Vec<String> = ds
        .skipped()
        .iter()
        .map(|(p, why)| format!("{}: {why}", p.display()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped
        .iter()
        .any(|s| s.contains("spk9_rate.wav") && s.contains("16000 Hz")));
    assert!(skipped
        .iter()
        .any(|s| s.contains("spk9_cut.wav") && s.contains("truncated")));
    assert!(skipped.iter().any(|s| s.contains("spk9_text.wav")));
}
