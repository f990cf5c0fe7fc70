//! The DataLoader, samplers, collate functions and splits: orders, determinism across
//! worker counts, padding, errors delivered in place, bounded prefetch.

use onde_data::{
    group_split, random_split, BatchSampler, Collate, DataError, DataLoader, Dataset, InMemory,
    PadCollate, RandomSampler, Sample, Sampler, SequentialSampler, Stack, WeightedRandomSampler,
};
use onde_ir::Array;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn dataset(n: usize) -> Arc<dyn Dataset> {
    let samples = (0..n)
        .map(|i| {
            let x = Array::f32([3], vec![i as f32, i as f32 * 0.5, -(i as f32)]).unwrap();
            Sample::new("x", x, (i % 5) as i64)
        })
        .collect();
    Arc::new(InMemory::new(samples))
}

/// Every batch of an epoch: (dataset indices, x values, labels).
fn collect(loader: &DataLoader, epoch: u64) -> Vec<(Vec<usize>, Vec<f32>, Vec<i64>)> {
    loader
        .epoch(epoch)
        .unwrap()
        .map(|b| {
            let b = b.unwrap();
            let x = b.field("x").unwrap().as_f32().unwrap().to_vec();
            (b.indices.clone(), x, b.labels.as_i64().unwrap().to_vec())
        })
        .collect()
}

#[test]
fn same_batches_in_the_same_order_whatever_the_number_of_workers() {
    let ds = dataset(103);
    let base = DataLoader::new(ds, 8).shuffle(7);
    let want = collect(&base, 3);
    assert_eq!(want.len(), 13);
    for workers in [1, 2, 3] {
        for prefetch in [1, 4] {
            let l = base.clone().num_workers(workers).prefetch_factor(prefetch);
            assert_eq!(
                collect(&l, 3),
                want,
                "{workers} workers, prefetch {prefetch}"
            );
        }
    }
    // The batch holds its samples' values and labels, stacked in order.
    for (idx, x, y) in &want {
        for (k, &i) in idx.iter().enumerate() {
            assert_eq!(x[3 * k], i as f32);
            assert_eq!(y[k], (i % 5) as i64);
        }
    }
}

#[test]
fn shuffled_epochs_are_permutations_that_differ_and_replay() {
    let l = DataLoader::new(dataset(50), 7).shuffle(11).num_workers(2);
    let order = |e: u64| -> Vec<usize> { collect(&l, e).into_iter().flat_map(|b| b.0).collect() };
    let (e0, e1) = (order(0), order(1));
    let mut sorted = e0.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "each sample once");
    assert_ne!(e0, e1, "a fresh order every epoch");
    assert_eq!(order(1), e1, "an epoch replays identically");
    // Unshuffled: dataset order.
    let seq: Vec<usize> = collect(&DataLoader::new(dataset(10), 4), 0)
        .into_iter()
        .flat_map(|b| b.0)
        .collect();
    assert_eq!(seq, (0..10).collect::<Vec<_>>());
}

#[test]
fn drop_last_and_bad_arguments() {
    let l = DataLoader::new(dataset(103), 8);
    assert_eq!(l.len(0).unwrap(), 13);
    let sizes: Vec<usize> = collect(&l, 0).iter().map(|b| b.0.len()).collect();
    assert_eq!(sizes.last(), Some(&7));
    assert_eq!(l.clone().drop_last(true).len(0).unwrap(), 12);
    assert_eq!(
        DataLoader::new(dataset(5), 8)
            .drop_last(true)
            .epoch(0)
            .unwrap_err(),
        DataError::NoBatch {
            samples: 5,
            batch_size: 8
        }
    );
    assert_eq!(
        DataLoader::new(dataset(0), 8).epoch(0).unwrap_err(),
        DataError::EmptyDataset
    );
    let e = DataLoader::new(dataset(5), 0).epoch(0).unwrap_err();
    assert!(e.to_string().contains("batch_size"), "{e}");
}

/// A dataset failing at one index (an unreadable file) or panicking at another.
struct Flaky {
    inner: Arc<dyn Dataset>,
    fail: usize,
    panic_at: Option<usize>,
}

impl Dataset for Flaky {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, index: usize) -> onde_data::Result<Sample> {
        if index == self.fail {
            return Err(DataError::Sample {
                index,
                message: "clip_042.wav: truncated".into(),
            });
        }
        if self.panic_at == Some(index) {
            panic!("decoder bug at {index}");
        }
        self.inner.get(index)
    }
}

#[test]
fn a_workers_error_arrives_in_place_of_its_batch() {
    for workers in [0, 2] {
        let ds = Arc::new(Flaky {
            inner: dataset(40),
            fail: 17,
            panic_at: None,
        });
        let l = DataLoader::new(ds, 5).num_workers(workers);
        let got: Vec<_> = l.epoch(0).unwrap().collect();
        assert_eq!(got.len(), 8);
        for (k, b) in got.iter().enumerate() {
            if k == 3 {
                let e = b.as_ref().unwrap_err();
                assert!(e.to_string().contains("clip_042.wav"), "{e}");
            } else {
                assert!(b.is_ok(), "batch {k}: {b:?}");
            }
        }
    }
    // A panic in a worker is caught and reported; the other batches still come.
    let ds = Arc::new(Flaky {
        inner: dataset(20),
        fail: usize::MAX,
        panic_at: Some(12),
    });
    let got: Vec<_> = DataLoader::new(ds, 5)
        .num_workers(2)
        .epoch(0)
        .unwrap()
        .collect();
    assert_eq!(got.len(), 4);
    let e = got[2].as_ref().unwrap_err();
    assert!(matches!(e, DataError::Worker { .. }), "{e}");
    assert!(e.to_string().contains("decoder bug at 12"), "{e}");
    assert!(got[3].is_ok());
}

/// Counts `get` calls.
struct Counting {
    inner: Arc<dyn Dataset>,
    gets: Arc<AtomicUsize>,
}

impl Dataset for Counting {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, index: usize) -> onde_data::Result<Sample> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(index)
    }
}

#[test]
fn workers_prepare_at_most_the_prefetch_window_ahead() {
    let gets = Arc::new(AtomicUsize::new(0));
    let ds = Arc::new(Counting {
        inner: dataset(400),
        gets: gets.clone(),
    });
    let (workers, prefetch, batch) = (2, 2, 4);
    let l = DataLoader::new(ds, batch)
        .num_workers(workers)
        .prefetch_factor(prefetch);
    let mut e = l.epoch(0).unwrap();
    assert!(e.next().unwrap().is_ok());
    // Let the workers run as far as they may, then check the bound.
    let mut last = usize::MAX;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(5));
        let now = gets.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
    }
    let bound = (1 + workers * prefetch) * batch;
    assert!(last <= bound, "{last} samples loaded, bound {bound}");
    // Dropping a half-read epoch stops the workers (no hang).
    drop(e);
    let rest: usize = l.epoch(1).unwrap().map(|b| b.unwrap().len()).sum();
    assert_eq!(rest, 400);
}

fn wave(len: usize, label: i64) -> Sample {
    let x = Array::f32([1, len], (0..len).map(|t| t as f32 + 1.0).collect()).unwrap();
    Sample {
        fields: vec![
            ("audio".into(), x),
            ("speaker".into(), Array::i64([], vec![label * 10]).unwrap()),
        ],
        label,
    }
}

#[test]
fn padding_collate_returns_lengths_and_mask() {
    let samples = vec![(4, wave(3, 0)), (9, wave(5, 1)), (2, wave(1, 2))];
    let b = PadCollate::new("audio").collate(&samples).unwrap();
    let audio = b.field("audio").unwrap();
    assert_eq!(audio.shape().dims(), &[3, 1, 5]);
    assert_eq!(
        audio.as_f32().unwrap(),
        &[1., 2., 3., 0., 0., 1., 2., 3., 4., 5., 1., 0., 0., 0., 0.]
    );
    assert_eq!(b.field("lengths").unwrap().as_i64().unwrap(), &[3, 5, 1]);
    let mask = b.field("mask").unwrap();
    assert_eq!(mask.shape().dims(), &[3, 5]);
    assert_eq!(
        mask.as_f32().unwrap(),
        &[1., 1., 1., 0., 0., 1., 1., 1., 1., 1., 1., 0., 0., 0., 0.]
    );
    assert_eq!(b.field("speaker").unwrap().as_i64().unwrap(), &[0, 10, 20]);
    assert_eq!(b.labels.as_i64().unwrap(), &[0, 1, 2]);
    assert_eq!(b.indices, vec![4, 9, 2]);
    // Buckets: lengths rounded up to a multiple of 4.
    let b = PadCollate::new("audio")
        .multiple_of(4)
        .collate(&samples)
        .unwrap();
    assert_eq!(b.field("audio").unwrap().shape().dims(), &[3, 1, 8]);
    // Stacking variable lengths says what to do.
    let e = Stack.collate(&samples).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("`audio`") && m.contains("sample 9") && m.contains("PadCollate"),
        "{m}"
    );
    // Mismatched fields name the sample.
    let odd = Sample::new("other", Array::f32([1], vec![0.0]).unwrap(), 0);
    let e = Stack.collate(&[(0, wave(3, 0)), (7, odd)]).unwrap_err();
    assert!(e.to_string().contains("sample 7"), "{e}");
    // Through the loader, with workers.
    let ds: Arc<dyn Dataset> = Arc::new(InMemory::new((1..=10).map(|n| wave(n, 0)).collect()));
    let l = DataLoader::new(ds, 4)
        .collate(PadCollate::new("audio"))
        .num_workers(2);
    let lens: Vec<Vec<i64>> = l
        .epoch(0)
        .unwrap()
        .map(|b| {
            b.unwrap()
                .field("lengths")
                .unwrap()
                .as_i64()
                .unwrap()
                .to_vec()
        })
        .collect();
    assert_eq!(lens, vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10]]);
}

#[test]
fn samplers_draw_what_they_promise() {
    // Sequential, and a permutation per epoch.
    assert_eq!(SequentialSampler.indices(4, 9), vec![0, 1, 2, 3]);
    let r = RandomSampler::new(3);
    let mut p = r.indices(100, 0);
    p.sort_unstable();
    assert_eq!(p, (0..100).collect::<Vec<_>>());
    // With replacement: num_samples draws, repeats expected, all in range.
    let d = RandomSampler::with_replacement(3, 1000).indices(10, 0);
    assert_eq!(d.len(), 1000);
    assert!(d.iter().all(|&i| i < 10));
    assert!(d.iter().collect::<HashSet<_>>().len() == 10);
    // Weighted: index 1 never, index 2 three times as often as index 0.
    let w = WeightedRandomSampler::new(vec![1.0, 0.0, 3.0], 40_000, true, 5).unwrap();
    let d = w.indices(3, 0);
    let count = |k: usize| d.iter().filter(|&&i| i == k).count() as f64;
    assert_eq!(count(1), 0.0);
    let ratio = count(2) / count(0);
    assert!((ratio - 3.0).abs() < 0.15, "ratio {ratio}");
    // Without replacement: distinct indices of non-zero weight.
    let w = WeightedRandomSampler::new(vec![1.0, 0.0, 3.0, 2.0], 3, false, 5).unwrap();
    let mut d = w.indices(4, 2);
    d.sort_unstable();
    assert_eq!(d, vec![0, 2, 3]);
    assert!(WeightedRandomSampler::new(vec![1.0, 0.0], 2, false, 5).is_err());
    assert!(WeightedRandomSampler::new(vec![1.0, -1.0], 2, true, 5).is_err());
    // Class balance: 90 of class 0, 10 of class 1 → about half and half.
    let labels: Vec<i64> = (0..100).map(|i| i64::from(i >= 90)).collect();
    let d = WeightedRandomSampler::balanced(&labels, 20_000, 1)
        .unwrap()
        .indices(100, 0);
    let ones = d.iter().filter(|&&i| labels[i] == 1).count() as f64 / d.len() as f64;
    assert!((ones - 0.5).abs() < 0.03, "{ones}");
    // Batches.
    let b = BatchSampler {
        batch_size: 3,
        drop_last: true,
    };
    assert_eq!(b.batches(&[5, 6, 7, 8]), vec![vec![5, 6, 7]]);
}

#[test]
fn splits_cover_the_dataset_and_keep_groups_whole() {
    let ds = dataset(100);
    let parts = random_split(ds.clone(), &[0.8, 0.1, 0.1], 4).unwrap();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        vec![80, 10, 10]
    );
    let mut all: Vec<usize> = parts.iter().flat_map(|p| p.indices().to_vec()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert!(random_split(ds.clone(), &[0.5, 0.6], 4).is_err());
    // 20 speakers of 5 samples each.
    let samples = (0..100)
        .map(|i| Sample::new("x", Array::f32([1], vec![i as f32]).unwrap(), 0))
        .collect();
    let groups = (0..100).map(|i| format!("spk{}", i / 5)).collect();
    let ds: Arc<dyn Dataset> = Arc::new(InMemory::new(samples).with_groups(groups).unwrap());
    let parts = group_split(ds.clone(), &[0.7, 0.3], 9).unwrap();
    let speakers = |k: usize| -> HashSet<String> {
        (0..parts[k].len())
            .filter_map(|i| parts[k].group(i))
            .collect()
    };
    assert!(speakers(0).is_disjoint(&speakers(1)));
    assert_eq!(parts[0].len() + parts[1].len(), 100);
    assert_eq!(parts[0].len(), 70);
    // No group keys: an error that says so.
    let e = group_split(dataset(10), &[0.5, 0.5], 0).unwrap_err();
    assert!(e.to_string().contains("group key"), "{e}");
}

#[test]
fn rows_of_an_array_as_a_dataset() {
    let x = Array::f32([3, 2], vec![1., 2., 3., 4., 5., 6.]).unwrap();
    let ds = InMemory::from_rows("x", &x, &[7, 8, 9]).unwrap();
    assert_eq!(ds.len(), 3);
    let s = ds.get(1).unwrap();
    assert_eq!(s.field("x").unwrap().as_f32().unwrap(), &[3., 4.]);
    assert_eq!(s.label, 8);
    assert_eq!(
        ds.get(3).unwrap_err(),
        DataError::Index { index: 3, len: 3 }
    );
    assert!(InMemory::from_rows("x", &x, &[1]).is_err());
}
