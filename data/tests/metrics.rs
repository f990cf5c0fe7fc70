//! Classification metrics against a hand-computed example (scikit-learn's formulas).

use onde_data::ClassificationMetrics;
use onde_ir::Array;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn metrics_match_a_hand_computed_example() {
    let scores = Array::f32(
        [8, 3],
        vec![
            3., 1., 0., // y 0, predicted 0
            2., 3., 0., // y 0, predicted 1 (true class second)
            0., 3., 1., // y 1, predicted 1
            1., 3., 0., // y 1, predicted 1
            0., 1., 3., // y 2, predicted 2
            3., 2., 1., // y 2, predicted 0 (true class third)
            0., 3., 2., // y 2, predicted 1 (true class second)
            1., 2., 3., // ignored
        ],
    )
    .unwrap();
    let labels = [0, 0, 1, 1, 2, 2, 2, -100];
    let mut m = ClassificationMetrics::new(3, &[1, 2]);
    m.update(&scores, &labels, Some(0.7)).unwrap();
    assert_eq!(m.samples(), 7);
    assert_eq!(m.confusion(), &[1, 1, 0, 0, 2, 0, 1, 1, 1]);
    assert!(close(m.accuracy(), 4.0 / 7.0));
    assert!(close(m.top_k(1).unwrap(), 4.0 / 7.0));
    assert!(close(m.top_k(2).unwrap(), 6.0 / 7.0));
    assert_eq!(m.top_k(5), None);
    let (p, r) = ([0.5, 0.5, 1.0], [0.5, 1.0, 1.0 / 3.0]);
    for c in 0..3 {
        assert!(close(m.precision(c), p[c]), "precision {c}");
        assert!(close(m.recall(c), r[c]), "recall {c}");
        assert!(close(m.f1(c), 2.0 * p[c] * r[c] / (p[c] + r[c])), "f1 {c}");
    }
    assert!(close(m.macro_f1(), (0.5 + 2.0 / 3.0 + 0.5) / 3.0));
    assert!(close(m.balanced_accuracy(), (0.5 + 1.0 + 1.0 / 3.0) / 3.0));
    // The running loss is weighted by the counted samples of each batch.
    m.update_predictions(&[2, 2, 2], &[2, 2, 2]).unwrap();
    assert!(close(m.loss(), 0.7), "no loss given with predictions");
    let s = Array::f64([3, 3], vec![0., 0., 1., 0., 0., 1., 0., 0., 1.]).unwrap();
    m.update(&s, &[2, 2, 2], Some(0.2)).unwrap();
    assert!(close(m.loss(), (0.7 * 7.0 + 0.2 * 3.0) / 10.0));
    let names: Vec<String> = m.summary().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "loss",
            "accuracy",
            "top1",
            "top2",
            "balanced_accuracy",
            "macro_f1"
        ]
    );
    m.reset();
    assert_eq!(m.samples(), 0);
    assert_eq!(m.accuracy(), 0.0);
}

#[test]
fn bad_batches_say_what_is_wrong() {
    let mut m = ClassificationMetrics::new(3, &[]);
    let s = Array::f32([2, 3], vec![0.0; 6]).unwrap();
    let e = m.update(&s, &[0, 7], None).unwrap_err();
    assert!(
        e.to_string().contains("label [1] = 7") && e.to_string().contains("3 classes"),
        "{e}"
    );
    let e = m.update(&s, &[0], None).unwrap_err();
    assert!(e.to_string().contains("[2, 3]"), "{e}");
    assert!(m.update_predictions(&[0, 1], &[0]).is_err());
    // A class never seen nor predicted: precision and recall 0, not NaN.
    assert_eq!(m.precision(2), 0.0);
    assert_eq!(m.recall(2), 0.0);
    assert_eq!(m.f1(2), 0.0);
}

#[test]
fn metric_logs_are_csv_and_json_lines() {
    let dir = std::env::temp_dir().join(format!("onde-data-{}-log", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut log = onde_data::MetricLog::create(&dir).unwrap();
    let row = |l: f64, a: f64| vec![("loss".to_string(), l), ("accuracy".to_string(), a)];
    log.log(1, "train", &row(0.5, 0.75)).unwrap();
    log.log(1, "valid", &row(0.625, f64::NAN)).unwrap();
    let e = log
        .log(2, "train", &[("loss".to_string(), 0.1)])
        .unwrap_err();
    assert!(e.to_string().contains("columns"), "{e}");
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(
        csv,
        "epoch,phase,loss,accuracy\n1,train,0.5,0.75\n1,valid,0.625,NaN\n"
    );
    let jsonl = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(
        jsonl,
        "{\"epoch\":1,\"phase\":\"train\",\"loss\":0.5,\"accuracy\":0.75}\n{\"epoch\":1,\"phase\":\"valid\",\"loss\":0.625,\"accuracy\":null}\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn early_stopping_waits_patience_epochs_and_remembers_the_best() {
    use onde_data::early_stopping::Mode;
    use onde_data::EarlyStopping;
    let mut es = EarlyStopping::new(Mode::Min, 2).min_delta(0.01);
    let losses = [1.0, 0.8, 0.795, 0.7, 0.71, 0.705];
    let stops: Vec<bool> = losses.iter().map(|&l| es.step(l)).collect();
    // 0.795 is not 0.01 better than 0.8; 0.7 is; then two epochs without improvement.
    assert_eq!(stops, [false, false, false, false, false, true]);
    assert_eq!(es.best(), Some((3, 0.7)));
    assert!(!es.improved());
    let mut es = EarlyStopping::new(Mode::Max, 1);
    assert!(
        es.step(f64::NAN),
        "a NaN is never an improvement: patience 1 stops at once"
    );
    assert_eq!(es.best(), None);
    let mut es = EarlyStopping::new(Mode::Max, 3);
    for a in [0.5, 0.6] {
        assert!(!es.step(a));
        assert!(es.improved());
    }
    assert_eq!(es.best(), Some((1, 0.6)));
}
