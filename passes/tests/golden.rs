//! Golden tests of the optimisation passes on small IR files (`tests/golden/*.onde`).
//!
//! Each file holds a graph in the text form and directive lines starting with `;`:
//! `; run: PASS` (one of `simplify`, `constfold`, `cse`, `dce`, `optimize`),
//! `; check: TEXT` (TEXT must appear in the output, after the previous check), and
//! `; not: TEXT` (TEXT must not appear anywhere in the output).

use onde_ir::{parse_graph, print_graph, verify};
use onde_passes::{optimize, ConstFold, Cse, Dce, Pass, Simplify};
use std::path::Path;

fn run_file(path: &Path) -> Result<(), String> {
    let src = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let graph_text: String = src
        .lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut g = parse_graph(&graph_text).map_err(|e| format!("parse: {e}"))?;
    verify(&g).map_err(|e| format!("input does not verify: {e}"))?;
    let directive = |key: &str| {
        src.lines()
            .filter_map(|l| l.trim_start().strip_prefix(';'))
            .filter_map(|l| l.trim_start().strip_prefix(key))
            .map(|l| l.trim().to_string())
            .collect::<Vec<_>>()
    };
    let run = directive("run:");
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
    let out = print_graph(&g);
    let mut at = 0;
    for c in directive("check:") {
        match out[at..].find(&c) {
            Some(i) => at += i + c.len(),
            None => return Err(format!("check {c:?} not found (in order) in:\n{out}")),
        }
    }
    for n in directive("not:") {
        if out.contains(&n) {
            return Err(format!("{n:?} should not appear in:\n{out}"));
        }
    }
    Ok(())
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
