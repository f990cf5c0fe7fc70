//! Augmentations: each does what it says (gain range, SNR, background level, shift,
//! crop/pad windows, speed), and through the loader they are the same for any number
//! of workers and new every epoch.

use onde_data::rng::SplitMix64;
use onde_data::{
    AddNoise, Compose, DataLoader, Dataset, InMemory, MixBackground, PadCollate, RandomCropOrPad,
    RandomGain, Sample, SpeedPerturb, TimeShift, Transform,
};
use onde_ir::Array;
use std::sync::Arc;

fn sine(c: usize, t: usize, f: f64, rate: f64) -> Array {
    let v = (0..c)
        .flat_map(|ch| {
            (0..t).map(move |k| {
                (0.5 * (std::f64::consts::TAU * f * k as f64 / rate + ch as f64).sin()) as f32
            })
        })
        .collect();
    Array::f32([c, t], v).unwrap()
}

fn audio(s: &Sample) -> Vec<f32> {
    s.field("audio").unwrap().as_f32().unwrap().to_vec()
}

fn power(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64
}

#[test]
fn gain_and_noise_hit_their_targets() {
    let x = Sample::new("audio", sine(2, 16000, 440.0, 16000.0), 0);
    for seed in 0..20 {
        let mut rng = SplitMix64::new(seed);
        let y = RandomGain::new(-6.0, 3.0)
            .apply(x.clone(), &mut rng)
            .unwrap();
        let ratio = audio(&y)[1] / audio(&x)[1];
        let db = 20.0 * f64::from(ratio).log10();
        assert!((-6.0..=3.0).contains(&db), "{db} dB");
    }
    let mut rng = SplitMix64::new(3);
    let y = AddNoise::new(10.0, 10.0)
        .apply(x.clone(), &mut rng)
        .unwrap();
    let noise: Vec<f32> = audio(&y)
        .iter()
        .zip(audio(&x))
        .map(|(a, b)| a - b)
        .collect();
    let snr = 10.0 * (power(&audio(&x)) / power(&noise)).log10();
    assert!((snr - 10.0).abs() < 0.2, "SNR {snr} dB");
    // A missing field is an error that names it.
    let e = RandomGain::new(0.0, 1.0)
        .apply(Sample::new("x", sine(1, 4, 1.0, 4.0), 0), &mut rng)
        .unwrap_err();
    assert!(e.to_string().contains("`audio`"), "{e}");
}

#[test]
fn background_is_mixed_at_the_requested_snr() {
    let x = Sample::new("audio", sine(1, 8000, 300.0, 8000.0), 0);
    let bg = sine(1, 3000, 1234.0, 8000.0); // shorter: looped
    let m = MixBackground::new(vec![bg], 5.0, 5.0).unwrap();
    let y = m.apply(x.clone(), &mut SplitMix64::new(1)).unwrap();
    let added: Vec<f32> = audio(&y)
        .iter()
        .zip(audio(&x))
        .map(|(a, b)| a - b)
        .collect();
    let snr = 10.0 * (power(&audio(&x)) / power(&added)).log10();
    assert!((snr - 5.0).abs() < 0.05, "SNR {snr} dB");
    // p = 0 never mixes.
    let y = m
        .clone()
        .probability(0.0)
        .apply(x.clone(), &mut SplitMix64::new(1))
        .unwrap();
    assert_eq!(audio(&y), audio(&x));
    assert!(MixBackground::new(vec![], 0.0, 1.0).is_err());
}

#[test]
fn shifts_crops_and_pads_move_samples_without_changing_them() {
    let x = Sample::new(
        "audio",
        Array::f32([1, 6], vec![1., 2., 3., 4., 5., 6.]).unwrap(),
        0,
    );
    for seed in 0..10 {
        let mut rng = SplitMix64::new(seed);
        let y = audio(
            &TimeShift {
                field: "audio".into(),
                max_shift: 2,
                circular: true,
            }
            .apply(x.clone(), &mut rng)
            .unwrap(),
        );
        let mut sorted = y.clone();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, vec![1., 2., 3., 4., 5., 6.], "a rotation");
        let z = audio(&TimeShift::new(2).apply(x.clone(), &mut rng).unwrap());
        assert_eq!(z.len(), 6);
        let kept: Vec<f32> = z.iter().copied().filter(|&v| v != 0.0).collect();
        assert!(
            kept.len() >= 4 && kept.windows(2).all(|w| w[1] == w[0] + 1.0),
            "{z:?}"
        );
        let c = audio(&RandomCropOrPad::new(4).apply(x.clone(), &mut rng).unwrap());
        assert_eq!(c.len(), 4);
        assert!(c.windows(2).all(|w| w[1] == w[0] + 1.0), "a window: {c:?}");
        let p = audio(&RandomCropOrPad::new(9).apply(x.clone(), &mut rng).unwrap());
        assert_eq!(p.len(), 9);
        let inner: Vec<f32> = p.iter().copied().filter(|&v| v != 0.0).collect();
        assert_eq!(
            inner,
            vec![1., 2., 3., 4., 5., 6.],
            "zero-padded around: {p:?}"
        );
    }
}

/// Sign changes of `x` per frame, away from the edges.
fn crossings(x: &[f32]) -> f64 {
    let mid = &x[100..x.len() - 100];
    mid.windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count() as f64
        / mid.len() as f64
}

#[test]
fn speed_perturbation_scales_length_and_frequency() {
    let rate = 16000.0;
    let x = Sample::new("audio", sine(1, 16000, 500.0, rate), 0);
    for factor in [0.9, 1.1] {
        let y = SpeedPerturb::new(vec![factor])
            .unwrap()
            .apply(x.clone(), &mut SplitMix64::new(0))
            .unwrap();
        let a = audio(&y);
        assert_eq!(a.len(), (16000.0 / factor).floor() as usize);
        let ratio = crossings(&a) / crossings(&audio(&x));
        assert!(
            (ratio - factor).abs() < 0.01,
            "factor {factor}: frequency x{ratio}"
        );
        // Amplitude kept (a band-limited interpolation, not a smear).
        let amp = a[100..a.len() - 100]
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()));
        assert!((amp - 0.5).abs() < 0.01, "amplitude {amp}");
    }
    let same = SpeedPerturb::new(vec![1.0])
        .unwrap()
        .apply(x.clone(), &mut SplitMix64::new(0))
        .unwrap();
    assert_eq!(audio(&same), audio(&x));
    // Speeding up a tone near Nyquist must not fold it back: 7.8 kHz at 1.1x would be
    // 8.58 kHz > 8 kHz, so it is removed rather than aliased to 7.42 kHz.
    let hi = Sample::new("audio", sine(1, 16000, 7800.0, rate), 0);
    let y = SpeedPerturb::new(vec![1.1])
        .unwrap()
        .apply(hi, &mut SplitMix64::new(0))
        .unwrap();
    let a = audio(&y);
    let p = power(&a[200..a.len() - 200]);
    assert!(p < 0.01 * 0.125, "aliased power {p}");
    assert!(SpeedPerturb::new(vec![0.0]).is_err());
}

#[test]
fn augmented_batches_do_not_depend_on_workers_and_change_each_epoch() {
    let samples = (0..24)
        .map(|i| {
            Sample::new(
                "audio",
                sine(1, 200 + 10 * i, 100.0 + i as f64, 8000.0),
                i as i64,
            )
        })
        .collect();
    let ds: Arc<dyn Dataset> = Arc::new(InMemory::new(samples));
    let aug = Compose::new()
        .then(RandomGain::new(-3.0, 3.0))
        .then(AddNoise::new(15.0, 30.0))
        .then(SpeedPerturb::new(vec![0.9, 1.0, 1.1]).unwrap())
        .then(TimeShift::new(20));
    let l = DataLoader::new(ds, 5)
        .shuffle(2)
        .collate(PadCollate::new("audio"))
        .transform(aug, 77);
    let run = |l: &DataLoader, e: u64| -> Vec<Vec<f32>> {
        l.epoch(e)
            .unwrap()
            .map(|b| {
                b.unwrap()
                    .field("audio")
                    .unwrap()
                    .as_f32()
                    .unwrap()
                    .to_vec()
            })
            .collect()
    };
    let a = run(&l, 0);
    assert_eq!(a, run(&l.clone().num_workers(2), 0));
    assert_eq!(a, run(&l.clone().num_workers(3).prefetch_factor(1), 0));
    assert_ne!(a, run(&l, 1));
}
