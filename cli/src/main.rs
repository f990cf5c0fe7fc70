//! The `onde` command.
//!
//! - `onde dump --example NAME [--format text|dot] [--grad]`: the IR of a built-in
//!   example (`mlp`, `mon_modele`, `rnn`); with `--grad`, the forward graph with its
//!   loss, then the forward + backward graph with the gradient of every parameter.
//! - `onde dump FILE [--format text|dot]`: parse, verify and print a text IR file.
//!
//! Each dump starts with a header line giving the value, op and parameter counts.

use clap::{Parser, Subcommand, ValueEnum};
use onde_ir::{parse_graph, print_graph, text, to_dot, verify, Graph};
use onde_nn::examples::{build_example, build_example_grad, EXAMPLES};
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

fn dump(
    file: Option<PathBuf>,
    example: Option<String>,
    format: Format,
    grad: bool,
) -> Result<(), String> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Dump {
            file,
            example,
            format,
            grad,
        } => dump(file, example, format, grad),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
