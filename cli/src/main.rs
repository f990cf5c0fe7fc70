//! The `onde` command.
//!
//! - `onde dump --example NAME [--format text|dot] [--grad]`: the IR of a built-in
//!   example (`mlp`, `mon_modele`, `rnn`); with `--grad`, the forward graph with its
//!   loss, then the forward + backward graph with the gradient of every parameter.
//! - `onde dump --example NAME --train`: the example's whole training step (forward, loss,
//!   backward, Adam update of every parameter) as one graph; with `--stage fused`, the
//!   kernels it compiles to.
//! - `onde dump FILE [--format text|dot]`: parse, verify and print a text IR file.
//!
//! - `onde summary --example NAME [--input SHAPE]`: per layer, output shape, parameter
//!   count, receptive field, jump and start along time (`kws`, `mlp`, `mon_modele`).
//! - `onde features IN.wav --kind stft|spectrogram|mel|logmel|mfcc [...] --out
//!   OUT.safetensors [--png OUT.png]`: features of a WAV file (see `features.rs`).
//!
//! Each dump starts with a header line giving the value, op and parameter counts.

mod bench;
mod features;

use clap::{Parser, Subcommand, ValueEnum};
use onde_apps::examples::{build_example, build_example_grad, build_example_train, EXAMPLES};
use onde_ir::{parse_graph, print_graph, text, to_dot, verify, Graph};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "onde",
    version,
    about = "onde: a deep-learning graph compiler for signals"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the IR of a built-in example or of a text IR file.
    Dump {
        /// A text IR file to parse, verify and print.
        file: Option<PathBuf>,
        /// A built-in example graph instead of a file.
        #[arg(long, conflicts_with = "file")]
        example: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// With --example: differentiate the example's loss with respect to every
        /// parameter; print the forward graph, then the forward + backward graph.
        #[arg(long, requires = "example")]
        grad: bool,
        /// With --example: the whole training step (forward, loss, backward and an Adam
        /// update of every parameter) as one graph, as `TrainStep` compiles it.
        #[arg(long, requires = "example", conflicts_with = "grad")]
        train: bool,
        /// Print the graph after a compiler stage instead: `input`, `simplify`,
        /// `constfold`, `cse`, `dce` (one round each, in that order), `optimized` (the
        /// whole optimisation fixpoint) or `fused` (the plan of fused kernels).
        #[arg(long)]
        stage: Option<String>,
        /// Also print the generated Cranelift IR of every kernel (implies `--stage fused`).
        #[arg(long)]
        clif: bool,
    },
    /// Per-layer table of a built-in model: output shapes, parameters, receptive field,
    /// jump and start along time (the course's intermezzo).
    Summary {
        /// The model: `kws` (W2), `mlp` (W1), `mon_modele`.
        #[arg(long)]
        example: String,
        /// Input shape instead of the example's, e.g. `1,1,8000`.
        #[arg(long, value_delimiter = ',')]
        input: Option<Vec<usize>>,
    },
    /// Features of a WAV file (STFT, spectrogram, mel, log-mel, MFCC; torchaudio's
    /// defaults) into a safetensors file, like Kaldi's feature tools.
    Features(features::FeatureArgs),
    /// Time a reference workload (W6, W7) on the JIT; one JSON line per phase.
    Bench {
        /// Workloads, e.g. `W6` or `W6 W7`.
        #[arg(required = true)]
        workloads: Vec<String>,
        /// Threads for library kernels.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Minimum timed iterations.
        #[arg(long, default_value_t = 20)]
        min_iters: usize,
        /// Minimum timed seconds per phase.
        #[arg(long, default_value_t = 1.0)]
        target_s: f64,
        /// Highest instruction-set level the kernels may use: `baseline`, `avx2` or
        /// `avx512` (default: the best this CPU has). A cap measures a lower level's
        /// code path on this machine (e.g. the AVX2 path on an AVX-512 CPU).
        #[arg(long)]
        isa: Option<onde_codegen::IsaLevel>,
        /// Same as `--isa avx2`: no AVX-512 kernel (tile engine, prepacked GEMM,
        /// long-dot products, 16-lane convolution).
        #[arg(long, conflicts_with = "isa")]
        no_avx512: bool,
        /// Do not fuse matmul epilogues (see `codegen/src/exec/epilogue.rs`).
        #[arg(long)]
        no_epilogues: bool,
        /// Time every compiled step and print a table per phase on stderr (slowest
        /// first; the medians then include one clock read per step).
        #[arg(long)]
        profile: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// onde's text IR.
    Text,
    /// Graphviz.
    Dot,
}

fn unknown(name: &str) -> String {
    format!(
        "unknown example {name:?}; available: {}",
        EXAMPLES.join(", ")
    )
}

fn show(title: &str, g: &Graph, format: Format) {
    println!("// {title}");
    println!("{}", text::summary(g));
    match format {
        Format::Text => print!("{}", print_graph(g)),
        Format::Dot => print!("{}", to_dot(g)),
    }
}

fn load(file: Option<PathBuf>, example: Option<String>) -> Result<(String, Graph), String> {
    match (file, example) {
        (_, Some(name)) if name == "w6" => Ok((name, bench::w6_graph()?)),
        (_, Some(name)) => match build_example(&name) {
            Some(Ok(g)) => Ok((name, g)),
            Some(Err(e)) => Err(format!("example {name}: {e}")),
            None => Err(unknown(&name)),
        },
        (Some(path), None) => {
            let src =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let g = parse_graph(&src).map_err(|e| format!("{}: {e}", path.display()))?;
            verify(&g).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((path.display().to_string(), g))
        }
        (None, None) => Err("give a FILE or --example NAME".into()),
    }
}

/// The names `--stage` accepts.
const STAGES: [&str; 7] = [
    "input",
    "simplify",
    "constfold",
    "cse",
    "dce",
    "optimized",
    "fused",
];

fn stage(name: &str, g: &Graph, stage: &str, clif: bool, format: Format) -> Result<(), String> {
    if !STAGES.contains(&stage) {
        return Err(format!(
            "unknown stage {stage:?}; stages: {}",
            STAGES.join(", ")
        ));
    }
    let mut g = g.clone();
    match stage {
        "fused" => {
            onde_passes::optimize(&mut g).map_err(|e| e.to_string())?;
            let opts = onde_codegen::CompileOptions {
                keep_clif: clif,
                ..onde_codegen::CompileOptions::default()
            };
            let exe = onde_codegen::Executable::compile(&g, opts).map_err(|e| e.to_string())?;
            println!(
                "// {name}: fused plan (compiled in {:.2} ms)",
                exe.compile_time().as_secs_f64() * 1e3
            );
            print!("{}", exe.dump_fused());
            for c in exe.clif() {
                println!("{c}");
            }
            Ok(())
        }
        "optimized" => {
            onde_passes::optimize(&mut g).map_err(|e| e.to_string())?;
            show(
                &format!("{name}: after the optimisation fixpoint"),
                &g,
                format,
            );
            Ok(())
        }
        _ => {
            let captured = std::rc::Rc::new(std::cell::RefCell::new(None));
            let c = captured.clone();
            let want = stage.to_string();
            let mut p = onde_passes::Pipeline::new()
                .then(onde_passes::Simplify::default())
                .then(onde_passes::ConstFold)
                .then(onde_passes::Cse)
                .then(onde_passes::Dce)
                .dump_after(&[stage], move |pass, g| {
                    if pass == want {
                        *c.borrow_mut() = Some(g.clone());
                    }
                });
            p.run(&mut g).map_err(|e| e.to_string())?;
            let after = captured.borrow_mut().take().unwrap_or(g);
            show(&format!("{name}: after {stage}"), &after, format);
            Ok(())
        }
    }
}

/// The example's training-step graph.
fn train_graph(example: Option<String>) -> Result<(String, Graph), String> {
    let name = example.unwrap_or_default();
    let g = build_example_train(&name)
        .ok_or_else(|| unknown(&name))?
        .map_err(|e| format!("example {name}: {e}"))?;
    Ok((
        format!("{name} (training step: forward, loss, backward, Adam)"),
        g,
    ))
}

fn dump(
    file: Option<PathBuf>,
    example: Option<String>,
    format: Format,
    (grad, train): (bool, bool),
    at: Option<String>,
) -> Result<(), String> {
    if train {
        let (name, g) = train_graph(example)?;
        return match at {
            Some(st) => stage(&name, &g, &st, false, format),
            None => {
                show(&name, &g, format);
                Ok(())
            }
        };
    }
    if let Some(st) = at {
        let (name, g) = if grad {
            let name = example.unwrap_or_default();
            let (_, both) = build_example_grad(&name)
                .ok_or_else(|| unknown(&name))?
                .map_err(|e| format!("example {name}: {e}"))?;
            (format!("{name} (forward + backward)"), both)
        } else {
            load(file, example)?
        };
        return stage(&name, &g, &st, false, format);
    }
    if grad {
        let name = example.unwrap_or_default();
        let (fwd, both) = build_example_grad(&name)
            .ok_or_else(|| unknown(&name))?
            .map_err(|e| format!("example {name}: {e}"))?;
        show(&format!("{name}: forward (outputs: loss)"), &fwd, format);
        show(
            &format!(
                "{name}: forward + backward (outputs: loss, then the gradient of each parameter)"
            ),
            &both,
            format,
        );
        return Ok(());
    }
    let (name, g) = load(file, example)?;
    show(&name, &g, format);
    Ok(())
}

fn dump_clif(
    file: Option<PathBuf>,
    example: Option<String>,
    (grad, train): (bool, bool),
) -> Result<(), String> {
    let (name, g) = if train {
        train_graph(example)?
    } else if grad {
        let name = example.unwrap_or_default();
        let (_, both) = build_example_grad(&name)
            .ok_or_else(|| unknown(&name))?
            .map_err(|e| format!("example {name}: {e}"))?;
        (name, both)
    } else {
        load(file, example)?
    };
    stage(&name, &g, "fused", true, Format::Text)
}

fn summary(name: &str, input: Option<Vec<usize>>) -> Result<(), String> {
    let Some((model, shape)) = onde_apps::examples::example_module(name) else {
        return Err(format!(
            "unknown model {name:?}; available: kws, attention, gru, lstm, mlp, mon_modele"
        ));
    };
    let shape = input.unwrap_or(shape);
    let s = onde_nn::module::summarize(model.as_ref(), &shape)
        .map_err(|e| format!("{name} on input {shape:?}: {e}"))?;
    print!("{s}");
    Ok(())
}

fn main() -> ExitCode {
    // matrixmultiply reads its thread count once per process; onde splits GEMMs across
    // `--threads` itself, so the library stays single-threaded (no oversubscription).
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Dump {
            file,
            example,
            format,
            grad,
            train,
            stage,
            clif,
        } => {
            let st = if clif {
                Some("fused".to_string())
            } else {
                stage
            };
            if clif {
                dump_clif(file, example, (grad, train))
            } else {
                dump(file, example, format, (grad, train), st)
            }
        }
        Command::Summary { example, input } => summary(&example, input),
        Command::Features(args) => features::run(&args),
        Command::Bench {
            workloads,
            threads,
            min_iters,
            target_s,
            isa,
            no_avx512,
            no_epilogues,
            profile,
        } => {
            bench::set_profile(profile);
            let isa = match (isa, no_avx512) {
                (Some(l), _) => l,
                (None, true) => onde_codegen::IsaLevel::Avx2,
                (None, false) => onde_codegen::IsaLevel::Avx512,
            };
            let opts = onde_codegen::CompileOptions {
                threads: threads.max(1),
                isa,
                epilogues: !no_epilogues,
                ..onde_codegen::CompileOptions::default()
            };
            workloads
                .iter()
                .try_for_each(|w| bench::run(w, opts, min_iters, target_s))
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
