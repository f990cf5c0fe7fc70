//! Golden tests of the optimisation passes on small IR files (`tests/golden/*.onde`).
//!
//! Each file holds a graph in the text form and directive lines starting with `;`:
//! `; run: PASS` (one of `simplify`, `constfold`, `cse`, `dce`, `optimize`),
//! `; check: TEXT` (TEXT must appear in the output, after the previous check), and
//! `; not: TEXT` (TEXT must not appear anywhere in the output).

use onde_ir::text::filecheck::{check, directives, graph_text};
use onde_ir::{parse_graph, print_graph, verify};
use onde_passes::{optimize, ConstFold, Cse, Dce, Pass, Simplify};
use std::path::Path;

fn run_file(path: &Path) -> Result<(), String> {
    let src = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut g = parse_graph(&graph_text(&src)).map_err(|e| format!("parse: {e}"))?;
    verify(&g).map_err(|e| format!("input does not verify: {e}"))?;
    let run = directives(&src, "run:");
    match run.first().map(String::as_str) {
        Some("optimize") => optimize(&mut g).map_err(|e| e.to_string())?,
        Some("simplify") => drop(Simplify::default().run(&mut g).map_err(|e| e.to_string())?),
        Some("constfold") => drop(ConstFold.run(&mut g).map_err(|e| e.to_string())?),
        Some("cse") => drop(Cse.run(&mut g).map_err(|e| e.to_string())?),
        Some("dce") => drop(Dce.run(&mut g).map_err(|e| e.to_string())?),
        other => return Err(format!("unknown run directive {other:?}")),
    }
    Dce.run(&mut g).map_err(|e| e.to_string())?;
    verify(&g).map_err(|e| format!("output does not verify: {e}"))?;
    check(&src, &print_graph(&g))
}

#[test]
fn golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut n = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.extension().is_some_and(|e| e == "onde") {
            n += 1;
            if let Err(e) = run_file(&p) {
                failures.push(format!("{}: {e}", p.display()));
            }
        }
    }
    assert!(n >= 5, "golden files found: {n}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
