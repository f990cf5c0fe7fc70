//! Helpers shared by the codegen integration tests.

/// Calls of step `i` in an [`onde_codegen::Executable::profile`] table.
pub fn calls(profile: &str, step: usize) -> u64 {
    profile
        .lines()
        .skip(1)
        .find_map(|l| {
            let mut w = l.split_whitespace();
            if w.next()? != step.to_string() {
                return None;
            }
            w.next()?.parse().ok()
        })
        .expect("step in profile")
}

/// Every ISA level this CPU has (each test of a kernel runs at all of them).
pub fn isa_levels() -> Vec<onde_codegen::IsaLevel> {
    use onde_codegen::IsaLevel;
    [IsaLevel::Baseline, IsaLevel::Avx2, IsaLevel::Avx512]
        .into_iter()
        .filter(|&l| l.capped() == l)
        .collect()
}
