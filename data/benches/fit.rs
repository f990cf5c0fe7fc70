//! What the training loop costs on top of the compiled steps: one epoch of
//! `Trainer::fit` through a `DataLoader` (shuffled, collate, metrics, quiet) against
//! the same training steps on the same batches, collated beforehand. The model is the
//! main job's MLP (128 → 128 → 128 → 4, batch 64, 16384 in-memory waveforms: 256
//! steps of ~0.1 ms, the case where the loop's own cost shows most), with 0 and 2
//! loader workers.
//!
//! `cargo bench -p onde-data --bench fit`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use onde_data::{Batch, DataLoader, Dataset, InMemory, Trainer};
use onde_nn::data::SyntheticSignals;
use onde_nn::loss::{cross_entropy, NllOpts};
use onde_nn::module::{Linear, Module, Relu, Sequential};
use onde_nn::optim::Adam;
use onde_nn::{DType, GraphBuilder, TrainOptions, TrainStep};
use std::sync::Arc;

const LEN: usize = 128;
const N: usize = 16384;
const BATCH: usize = 64;

fn step() -> TrainStep {
    let g = GraphBuilder::new();
    g.manual_seed(1);
    let mut m = Sequential::new("");
    m.push(Linear::new(&g, "0", LEN, 128))
        .push(Relu)
        .push(Linear::new(&g, "2", 128, 128))
        .push(Relu)
        .push(Linear::new(&g, "4", 128, 4));
    let x = g.input("x", DType::F32, [BATCH, LEN]);
    let y = g.input("y", DType::I64, [BATCH]);
    let logits = m.forward(&x);
    let loss = cross_entropy(&logits, &y, &NllOpts::default());
    let opts = TrainOptions {
        outputs: vec![&logits],
        ..TrainOptions::default()
    };
    TrainStep::with_options(&g, &loss, &Adam::new(1e-3), opts).unwrap()
}

fn fit(c: &mut Criterion) {
    let (x, y) = SyntheticSignals::new(LEN, 0.3, 0).dataset(N);
    let ds: Arc<dyn Dataset> = Arc::new(InMemory::from_rows("x", &x, y.as_i64().unwrap()).unwrap());
    let loader = |workers| {
        DataLoader::new(ds.clone(), BATCH)
            .shuffle(1)
            .num_workers(workers)
    };
    // The same batches, collated once.
    let batches: Vec<Batch> = loader(0).epoch(0).unwrap().map(|b| b.unwrap()).collect();
    let mut grp = c.benchmark_group("epoch");
    grp.throughput(Throughput::Elements(N as u64));
    grp.sample_size(20);
    let mut s = step();
    grp.bench_function("compiled steps alone", |b| {
        b.iter(|| {
            for batch in &batches {
                let x = &batch.fields[0].1;
                s.step(&[("x", x), ("y", &batch.labels)]).unwrap();
                std::hint::black_box(s.output(1).unwrap());
            }
        })
    });
    for workers in [0, 2] {
        let l = loader(workers);
        let mut s = step();
        let mut t = Trainer::new(1, 4);
        t.quiet = true;
        grp.bench_function(
            format!("Trainer::fit through the loader, {workers} workers"),
            |b| b.iter(|| t.fit(&mut s, &l, None, |_| {}).unwrap()),
        );
    }
    grp.finish();
}

criterion_group!(benches, fit);
criterion_main!(benches);
