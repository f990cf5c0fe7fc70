//! Golden tests of fusion decisions (`tests/fusion/*.onde`): each file is a graph in
//! the text form plus `;` directives checked against `Executable::dump_fused`:
//! `; check: TEXT` (in order), `; not: TEXT`, `; kernels: N` (number of JIT kernels).

use onde_codegen::{CompileOptions, Executable};
use onde_ir::parse_graph;
use std::path::Path;

fn run_file(path: &Path) -> Result<(), String> {
    let src = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let text: String = src
        .lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .map(|l| format!("{l}\n"))
        .collect();
    let g = parse_graph(&text).map_err(|e| format!("parse: {e}"))?;
    let exe = Executable::compile(&g, CompileOptions::default()).map_err(|e| e.to_string())?;
    let out = exe.dump_fused();
    let directive = |key: &str| -> Vec<String> {
        src.lines()
            .filter_map(|l| l.trim_start().strip_prefix(';'))
            .filter_map(|l| l.trim_start().strip_prefix(key))
            .map(|l| l.trim().to_string())
            .collect()
    };
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
    for k in directive("kernels:") {
        let want: usize = k
            .parse()
            .map_err(|_| format!("bad kernels directive {k:?}"))?;
        let got = out.lines().filter(|l| l.contains(": kernel ")).count();
        if got != want {
            return Err(format!("{got} kernels, expected {want}:\n{out}"));
        }
    }
    Ok(())
}

#[test]
fn fusion_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fusion");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut n = 0;
    for p in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "onde"))
    {
        n += 1;
        if let Err(e) = run_file(p) {
            failures.push(format!("{}: {e}", p.display()));
        }
    }
    assert!(n >= 4);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
