//! DataLoader throughput (samples/s) on one-second 16 kHz WAV clips (16-bit, written
//! to a temporary folder first), with the course's augmentation (speed perturbation,
//! random crop, shift, gain, noise) and padding collate, at 0, 1 and 2 workers.
//!
//! `cargo bench -p onde-data --bench loader`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use onde_data::{
    write_wav, AddNoise, AudioFiles, Compose, DataLoader, Dataset, PadCollate, RandomCropOrPad,
    RandomGain, SpeedPerturb, TimeShift,
};
use onde_ir::Array;
use std::sync::Arc;

const CLIPS: usize = 64;
const RATE: usize = 16000;

fn clips() -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("onde-data-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for k in 0..CLIPS {
        let class = root.join(format!("c{}", k % 4));
        std::fs::create_dir_all(&class).unwrap();
        let f = 200.0 + 37.0 * k as f64;
        let v: Vec<f32> = (0..RATE)
            .map(|t| (0.3 * (std::f64::consts::TAU * f * t as f64 / RATE as f64).sin()) as f32)
            .collect();
        let x = Array::f32([1, RATE], v).unwrap();
        write_wav(class.join(format!("clip{k:03}.wav")), &x, RATE as u32, 16).unwrap();
    }
    root
}

fn loader(c: &mut Criterion) {
    let root = clips();
    let ds: Arc<dyn Dataset> = Arc::new(AudioFiles::folder(&root).unwrap());
    let aug = || {
        Compose::new()
            .then(SpeedPerturb::new(vec![0.9, 1.0, 1.1]).unwrap())
            .then(RandomCropOrPad::new(RATE))
            .then(TimeShift::new(RATE / 10))
            .then(RandomGain::new(-6.0, 6.0))
            .then(AddNoise::new(20.0, 40.0))
    };
    let mut g = c.benchmark_group("loader");
    g.throughput(Throughput::Elements(CLIPS as u64));
    g.sample_size(10);
    for workers in [0, 1, 2] {
        for augment in [false, true] {
            let mut l = DataLoader::new(ds.clone(), 16)
                .shuffle(1)
                .collate(PadCollate::new("audio"))
                .num_workers(workers);
            if augment {
                l = l.transform(aug(), 2);
            }
            let name = format!(
                "{}workers{}",
                workers,
                if augment { "_augment" } else { "" }
            );
            let mut epoch = 0;
            g.bench_function(name, |b| {
                b.iter(|| {
                    epoch += 1;
                    let n: usize = l.epoch(epoch).unwrap().map(|b| b.unwrap().len()).sum();
                    assert_eq!(n, CLIPS);
                })
            });
        }
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, loader);
criterion_main!(benches);
