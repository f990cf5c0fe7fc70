//! The README's main job (`examples/signal_mlp.rs`): the synthetic-signal MLP reaches
//! at least 95% validation accuracy, and its loss falls.

use onde::apps::recipes::{train_signal_mlp, SignalMlpConfig};

#[test]
fn signal_mlp_reaches_95_percent_validation_accuracy() {
    let cfg = SignalMlpConfig::default();
    let (reports, step) = train_signal_mlp(&cfg, |_| {}).unwrap();
    assert_eq!(reports.len(), cfg.epochs);
    let first = reports[0];
    let last = *reports.last().unwrap();
    assert!(
        last.val_acc >= 0.95,
        "validation accuracy {:.3} < 0.95 ({reports:?})",
        last.val_acc
    );
    assert!(last.train_loss < first.train_loss / 2.0, "{reports:?}");
    assert!(last.val_loss < first.val_loss / 2.0, "{reports:?}");
    assert_eq!(
        step.steps(),
        (cfg.epochs * cfg.train.div_ceil(cfg.batch)) as u64
    );
    // The schedule annealed the rate without recompiling: one executable throughout.
    assert!(last.lr < first.lr / 10.0);
}
