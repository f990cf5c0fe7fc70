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
//! | `Baseline` | x86-64 (SSE2; SSE4.2 by practice) | Cranelift f32x4 code, library GEMM, scalar-FMA-free direct convolution |
//! | `Avx2`     | AVX2 + FMA                        | + 8-lane direct convolution            |
//! | `Avx512`   | AVX-512F + DQ (+ AVX2 + FMA)      | + 16-lane tile engine, prepacked GEMM with register epilogues, long-dot products, 16-lane direct convolution |
//!
//! Non-x86-64 targets are `Baseline` (Cranelift code and the library GEMM).

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
    }
}
