//! Instruction-set levels: what the CPU offers, and the cap a compile may set.
//!
//! onde picks its kernels once per compile from the level it may use: the CPU's best
//! ([`IsaLevel::detect`]) capped by [`crate::CompileOptions::isa`]. A cap lets one
//! machine run (and test, and benchmark) every lower level's code path: an AVX-512
//! machine runs the AVX2 and the baseline paths too, so a test can check every path the
//! machine has (see [`IsaLevel::available`]).
//!
//! | level      | requires                          | kernels it enables                     |
//! |------------|-----------------------------------|----------------------------------------|
//! | `Baseline` | x86-64 (SSE2; SSE4.2 by practice) | Cranelift f32x4 code, library GEMM (`matrixmultiply`), scalar-FMA-free direct convolution |
//! | `Avx2`     | AVX2 + FMA                        | + the tile engine, prepacked GEMM with register epilogues, long-dot products, native softmax and column sums, direct convolution, all on 8 lanes; f32 matrix products on `gemm`'s AVX2 kernels on a CPU without AVX-512F or in a build without the `gemm-avx512` feature (`native/matmul/wide.rs`) |
//! | `Avx512`   | AVX-512F + DQ (+ AVX2 + FMA)      | the same on 16 lanes, f32 matrix products on `gemm`'s AVX-512 kernels (feature `gemm-avx512`, default) |
//!
//! Non-x86-64 targets are `Baseline` (Cranelift code and the library GEMM).
//!
//! # The library GEMMs and the cap
//! The cap reaches every kernel onde writes, but the third-party GEMMs choose their own
//! kernels from the CPU: `gemm` is only called where its choice is the compile's level
//! (`native/matmul/wide.rs`), so the cap holds for it, while
//! `matrixmultiply` (every other library product) picks its AVX-512 kernel on an
//! AVX-512 CPU whatever the cap. It has one switch, read when it is compiled:
//! `MMTEST_FEATURE`, a comma-separated list of the features it may use
//! (`fma,avx2,avx,sse2` for an AVX2 machine). [`library_gemm_level`] says which level a
//! build's `matrixmultiply` can reach on this CPU; `bench/compare.sh --isa` builds with
//! the switch so that a capped comparison runs no AVX-512 code at all.

use std::fmt;
use std::str::FromStr;

/// An x86-64 instruction-set level, in increasing order (`Baseline < Avx2 < Avx512`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IsaLevel {
    /// The target's baseline: no AVX.
    Baseline,
    /// AVX2 with FMA (8 f32 lanes).
    Avx2,
    /// AVX-512F and DQ, with AVX2 and FMA (16 f32 lanes).
    Avx512,
}

impl IsaLevel {
    /// Every level, lowest first.
    pub const ALL: [IsaLevel; 3] = [IsaLevel::Baseline, IsaLevel::Avx2, IsaLevel::Avx512];

    /// The best level this CPU supports (detection is cached by `std`).
    pub fn detect() -> IsaLevel {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                return if has!("avx512f") && has!("avx512dq") {
                    IsaLevel::Avx512
                } else {
                    IsaLevel::Avx2
                };
            }
        }
        IsaLevel::Baseline
    }

    /// The levels this CPU can run, lowest first (a test runs each).
    pub fn available() -> Vec<IsaLevel> {
        let best = IsaLevel::detect();
        IsaLevel::ALL.into_iter().filter(|&l| l <= best).collect()
    }

    /// This level as a cap: the level actually used on this CPU.
    pub fn capped(self) -> IsaLevel {
        self.min(IsaLevel::detect())
    }

    /// The level's name, as `--isa` takes it: `baseline`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            IsaLevel::Baseline => "baseline",
            IsaLevel::Avx2 => "avx2",
            IsaLevel::Avx512 => "avx512",
        }
    }
}

/// The highest level `matrixmultiply` (the library GEMM below `Avx512`) may use on this
/// CPU in this build: its kernels are chosen from the CPU, limited only by the
/// `MMTEST_FEATURE` list it was compiled with (see the module doc). A cap below this is
/// not a cap for those products.
pub fn library_gemm_level() -> IsaLevel {
    // The same variable, read at the same build (cargo records it as a dependency of
    // both crates): `None` or empty means every feature is allowed.
    let allowed = |feature: &str| match option_env!("MMTEST_FEATURE") {
        None | Some("") => true,
        // Split as matrixmultiply splits it: on commas, no trimming.
        Some(list) => list.split(',').any(|f| f == feature),
    };
    let level = if allowed("avx512f") {
        IsaLevel::Avx512
    } else if allowed("avx2") && allowed("fma") {
        IsaLevel::Avx2
    } else {
        IsaLevel::Baseline
    };
    level.capped()
}

impl fmt::Display for IsaLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IsaLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<IsaLevel, String> {
        IsaLevel::ALL
            .into_iter()
            .find(|l| l.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown ISA level {s:?} (expected baseline, avx2 or avx512)"))
    }
}

#[cfg(test)]
mod tests {
    use super::IsaLevel;

    #[test]
    fn levels_parse_print_and_cap() {
        for l in IsaLevel::ALL {
            assert_eq!(l.name().parse::<IsaLevel>(), Ok(l));
            assert!(l.capped() <= IsaLevel::detect());
            assert!(l.capped() <= l);
        }
        assert!("sse9".parse::<IsaLevel>().is_err());
        let avail = IsaLevel::available();
        assert_eq!(avail.first(), Some(&IsaLevel::Baseline));
        assert_eq!(avail.last(), Some(&IsaLevel::detect()));
        assert!(super::library_gemm_level() <= IsaLevel::detect());
    }
}
