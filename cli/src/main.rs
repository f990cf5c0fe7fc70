//! The `onde` command.
//!
//! - `onde dump --example NAME [--format text|dot]`: the IR of a built-in example
//!   (`mlp`, `mon_modele`, `rnn`).
//! - `onde dump FILE [--format text|dot]`: parse, verify and print a text IR file.
//!
//! Each dump starts with a header line giving the value, op and parameter counts.

use clap::{Parser, Subcommand, ValueEnum};
use onde_ir::{parse_graph, print_graph, text, to_dot, verify, Graph};
use onde_nn::examples::{build_example, EXAMPLES};
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
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// onde's text IR.
    Text,
    /// Graphviz.
    Dot,
}

fn load(file: Option<PathBuf>, example: Option<String>) -> Result<(String, Graph), String> {
    match (file, example) {
        (_, Some(name)) => match build_example(&name) {
            Some(Ok(g)) => Ok((name, g)),
            Some(Err(e)) => Err(format!("example {name}: {e}")),
            None => Err(format!(
                "unknown example {name:?}; available: {}",
                EXAMPLES.join(", ")
            )),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Dump {
            file,
            example,
            format,
        } => match load(file, example) {
            Ok((name, g)) => {
                match format {
                    Format::Text => {
                        println!("// {name}");
                        println!("{}", text::summary(&g));
                        print!("{}", print_graph(&g));
                    }
                    Format::Dot => {
                        println!("// {name}");
                        println!("{}", text::summary(&g));
                        print!("{}", to_dot(&g));
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}
