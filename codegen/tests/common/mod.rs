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
