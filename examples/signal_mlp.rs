//! The README's main job: an MLP learns to tell sine, square, sawtooth and chirp
//! waveforms apart (random frequency, phase, amplitude and noise; generated here, no
//! download). A `DataLoader` (shuffled, two worker threads) feeds `Trainer::fit`, which
//! runs one compiled training step (forward, cross-entropy, backward, Adam) under a
//! cosine learning-rate schedule and an eval-mode evaluator; prints per-epoch
//! train/validation loss and accuracy, draws the curves and the confusion matrix in
//! `signal_mlp_plots/`, then saves the weights as safetensors.
//!
//! `cargo run --release --example signal_mlp [-- OUT.safetensors]`

use onde::apps::recipes::{train_signal_mlp, SignalMlpConfig};

fn main() -> onde::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "signal_mlp.safetensors".into());
    let cfg = SignalMlpConfig {
        plots_dir: Some("signal_mlp_plots".into()),
        progress: true,
        ..SignalMlpConfig::default()
    };
    println!(
        "synthetic signals: {} train / {} val waveforms of {} samples, noise std {}, 4 classes",
        cfg.train, cfg.val, cfg.length, cfg.noise
    );
    println!("epoch      lr  train_loss  train_acc  val_loss  val_acc");
    let t0 = std::time::Instant::now();
    let (reports, step) = train_signal_mlp(&cfg, |r| {
        println!(
            "{:>5} {:>7.5} {:>11.4} {:>9.1}% {:>9.4} {:>7.1}%",
            r.epoch,
            r.lr,
            r.train_loss,
            100.0 * r.train_acc,
            r.val_loss,
            100.0 * r.val_acc
        );
    })?;
    let secs = t0.elapsed().as_secs_f64();
    let last = reports.last().map_or(0.0, |r| r.val_acc);
    println!(
        "trained {} steps in {secs:.2} s; final validation accuracy {:.1}%",
        step.steps(),
        100.0 * last
    );
    onde::checkpoint::save(&out, &step.state_dict())?;
    println!("saved parameters and optimiser state to {out}");
    println!("curves: signal_mlp_plots/curves.png (and .svg), confusion matrix: signal_mlp_plots/confusion.png (and .svg)");
    Ok(())
}
