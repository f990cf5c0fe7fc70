//! A tiny FileCheck for golden tests of IR files (the Cranelift filetest idea): a test
//! file holds a graph in the text form and directive lines starting with `;`.
//!
//! - `; KEY: TEXT` lines are read with [`directives`] (`run:`, `check:`, `not:`,
//!   `kernels:` …, the meaning is the test's);
//! - [`graph_text`] is the file without its directive lines;
//! - [`check`] asserts that every `check:` text appears in the output in order and no
//!   `not:` text appears at all.

/// The values of the `; KEY:` directives of `src`, in order (`key` includes the colon).
pub fn directives(src: &str, key: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| l.trim_start().strip_prefix(';'))
        .filter_map(|l| l.trim_start().strip_prefix(key))
        .map(|l| l.trim().to_string())
        .collect()
}

/// `src` without its directive lines.
pub fn graph_text(src: &str) -> String {
    src.lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Checks `out` against the `check:` (in order) and `not:` directives of `src`.
pub fn check(src: &str, out: &str) -> Result<(), String> {
    let mut at = 0;
    for c in directives(src, "check:") {
        match out[at..].find(&c) {
            Some(i) => at += i + c.len(),
            None => return Err(format!("check {c:?} not found (in order) in:\n{out}")),
        }
    }
    for n in directives(src, "not:") {
        if out.contains(&n) {
            return Err(format!("{n:?} should not appear in:\n{out}"));
        }
    }
    Ok(())
}
