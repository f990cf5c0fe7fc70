//! Golden tests of fusion decisions (`tests/fusion/*.onde`): each file is a graph in
//! the text form plus `;` directives checked against `Executable::dump_fused`:
//! `; check: TEXT` (in order), `; not: TEXT`, `; kernels: N` (number of JIT kernels).

use onde_codegen::{CompileOptions, Executable};
use onde_ir::parse_graph;
use onde_ir::text::filecheck::{check, directives, graph_text};
use std::path::Path;

fn run_file(path: &Path) -> Result<(), String> {
    let src = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let g = parse_graph(&graph_text(&src)).map_err(|e| format!("parse: {e}"))?;
    let exe = Executable::compile(&g, CompileOptions::default()).map_err(|e| e.to_string())?;
    let out = exe.dump_fused();
    check(&src, &out)?;
    for k in directives(&src, "kernels:") {
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
