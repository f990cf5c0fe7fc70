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

/// The reference interpreter's result of one op applied to `inputs` (fed by name, in
/// operand order), as f64.
pub fn interpret_op(op: onde_ir::Op, inputs: &[(&str, &onde_ir::Array)]) -> Vec<f64> {
    use onde_ir::{Graph, Op, TensorType};
    let mut g = Graph::new();
    let operands: Vec<_> = inputs
        .iter()
        .map(|(name, a)| {
            let ty = TensorType::new(a.dtype(), a.shape().dims().to_vec());
            let input = Op::Input {
                name: (*name).into(),
                ty,
            };
            g.add_op(input, &[], None).unwrap().1[0]
        })
        .collect();
    let r = g.add_op(op, &operands, None).unwrap().1[0];
    g.set_outputs(vec![r]);
    let feeds = inputs
        .iter()
        .map(|(name, a)| ((*name).to_string(), (*a).clone()))
        .collect();
    onde_runtime::run(&g, &feeds).unwrap()[0].to_f64_vec()
}

/// Deterministic values in `[-scale, scale]`.
pub fn values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// `g` compiled at `isa` with or without epilogues, on `threads` threads.
pub fn compile_with(
    g: &onde_ir::Graph,
    isa: onde_codegen::IsaLevel,
    epilogues: bool,
    threads: usize,
) -> onde_codegen::Executable {
    let options = onde_codegen::CompileOptions {
        isa,
        epilogues,
        threads,
        ..onde_codegen::CompileOptions::default()
    };
    onde_codegen::Executable::compile(g, options).unwrap()
}

/// How many times the first step of `exe`'s plan that `which` picks ran, from
/// `exe`'s profile (profiling on).
pub fn step_calls(
    exe: &onde_codegen::Executable,
    which: impl Fn(&onde_codegen::plan::Step) -> bool,
) -> u64 {
    let profile = exe.profile().unwrap();
    let step = exe
        .plan()
        .steps
        .iter()
        .position(which)
        .expect("such a step");
    calls(&profile, step)
}

/// `got` within `rel` (relative, at least absolute for values below 1) of `want`.
pub fn assert_close(got: &onde_ir::Array, want: &onde_ir::Array, rel: f64, what: &str) {
    for (p, q) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
        assert!(
            (p - q).abs() <= rel * q.abs().max(1.0),
            "{what}: {p} vs {q}"
        );
    }
}
