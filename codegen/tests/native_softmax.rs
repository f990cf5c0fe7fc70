//! The native softmax (`native::softmax`) against the reference interpreter, at every
//! ISA level this CPU has (a level it lacks runs the next lower path, which must keep
//! the same promise): lines of every length around the vector widths, along the last
//! axis (one, four and nine lines: the lines go four at a time) and across columns
//! (`inner > 1`), a line's bits alone or among others, the NaN / infinity rules, and
//! the operand's scale factor (bit for bit the multiply, then the softmax).

use onde_codegen::native::softmax::{softmax_f32, softmax_f64};
use onde_codegen::native::NativeError;
use onde_codegen::IsaLevel;
use onde_ir::{Array, Op};

use crate::common::{interpret_op, values};

/// The interpreter's softmax of `x` (`[outer, n, inner]`) along axis 1.
fn reference(x: &Array) -> Vec<f64> {
    interpret_op(Op::Softmax { axis: 1 }, &[("x", x)])
}

fn check_f32(isa: IsaLevel, outer: usize, n: usize, inner: usize, x: &[f32]) {
    let arr = Array::f32(vec![outer, n, inner], x.to_vec()).unwrap();
    let want = reference(&arr);
    let mut got = vec![0f32; x.len()];
    softmax_f32(isa, x, &mut got, (outer, n, inner), &mut Vec::new()).unwrap();
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let g = f64::from(g);
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= 2e-6 * w.abs() + 1e-30;
        assert!(
            ok,
            "{isa:?} [{outer}, {n}, {inner}] element {i}: got {g}, want {w}"
        );
    }
}

#[test]
fn lines_of_every_length_match_the_interpreter_at_every_level() {
    for isa in IsaLevel::ALL {
        for n in [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 129] {
            // Contiguous lines run four at a time: 3 is single lines only, 4 one group,
            // 9 two groups and one single.
            for (inner, outer) in [(1, 3), (1, 4), (1, 9), (3, 3), (16, 3), (17, 3)] {
                let x: Vec<f32> = values(outer * n * inner, (n * 31 + inner) as u64, 8.0)
                    .into_iter()
                    .map(|v| v as f32)
                    .collect();
                check_f32(isa, outer, n, inner, &x);
            }
        }
    }
}

/// A line's bits do not depend on its neighbours: lines softmaxed together (four at a
/// time) equal each line softmaxed alone, and a NaN line leaves the lines of its group
/// finite.
#[test]
fn a_line_is_the_same_alone_or_among_others() {
    for isa in IsaLevel::ALL {
        for n in [5, 16, 33, 100] {
            let outer = 9;
            let mut x: Vec<f32> = values(outer * n, n as u64, 6.0)
                .into_iter()
                .map(|v| v as f32)
                .collect();
            x[2 * n + 1] = f32::NAN;
            let mut together = vec![0f32; x.len()];
            softmax_f32(isa, &x, &mut together, (outer, n, 1), &mut Vec::new()).unwrap();
            for (o, line) in x.chunks(n).enumerate() {
                let mut alone = vec![0f32; n];
                softmax_f32(isa, line, &mut alone, (1, n, 1), &mut Vec::new()).unwrap();
                let got = &together[o * n..(o + 1) * n];
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    alone.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{isa:?} n={n} line {o}"
                );
                assert_eq!(
                    got.iter().all(|v| v.is_nan()),
                    o == 2,
                    "{isa:?} n={n} line {o}"
                );
            }
        }
    }
}

#[test]
fn large_logits_do_not_overflow() {
    for isa in IsaLevel::ALL {
        let x: Vec<f32> = values(2 * 40, 7, 30.0)
            .into_iter()
            .map(|v| (v + 1000.0) as f32)
            .collect();
        check_f32(isa, 2, 40, 1, &x);
        check_f32(isa, 2, 20, 2, &x);
    }
}

#[test]
fn nan_and_infinities_follow_pytorch_at_every_level() {
    let (inf, ninf, nan) = (f32::INFINITY, f32::NEG_INFINITY, f32::NAN);
    for isa in IsaLevel::ALL {
        for n in [3, 17, 40] {
            // A NaN or +inf anywhere (in a full vector or the tail) makes the line NaN;
            // a line of -inf only is NaN; -inf entries of a finite line are 0.
            for (pos, v) in [(0, nan), (n - 1, nan), (n / 2, inf), (n - 1, inf)] {
                let mut x: Vec<f32> = values(n, 3, 2.0).into_iter().map(|v| v as f32).collect();
                x[pos] = v;
                for inner in [1, 2, 16, 17] {
                    let xs: Vec<f32> = x.iter().flat_map(|&v| vec![v; inner]).collect();
                    let mut out = vec![0f32; xs.len()];
                    softmax_f32(isa, &xs, &mut out, (1, n, inner), &mut Vec::new()).unwrap();
                    assert!(
                        out.iter().all(|v| v.is_nan()),
                        "{isa:?} n={n} pos={pos} {v}"
                    );
                }
            }
            for inner in [1, 16, 17] {
                let all_ninf = vec![ninf; n * inner];
                let mut out = vec![0f32; n * inner];
                softmax_f32(isa, &all_ninf, &mut out, (1, n, inner), &mut Vec::new()).unwrap();
                assert!(out.iter().all(|v| v.is_nan()), "{isa:?} n={n} all -inf");
            }
            let mut x: Vec<f32> = values(n, 5, 2.0).into_iter().map(|v| v as f32).collect();
            x[n - 1] = ninf;
            x[0] = ninf;
            check_f32(isa, 1, n, 1, &x);
            let mut out = vec![1f32; n];
            softmax_f32(isa, &x, &mut out, (1, n, 1), &mut Vec::new()).unwrap();
            assert_eq!((out[0], out[n - 1]), (0.0, 0.0));
        }
    }
}

#[test]
fn f64_lines_are_the_interpreter_bit_for_bit() {
    let x = values(2 * 5 * 3, 11, 6.0);
    let arr = Array::f64(vec![2, 5, 3], x.clone()).unwrap();
    let want = reference(&arr);
    let mut got = vec![0f64; x.len()];
    softmax_f64(&x, &mut got, (2, 5, 3), &mut Vec::new()).unwrap();
    assert_eq!(got, want);
}

#[test]
fn wrong_lengths_are_errors_not_panics() {
    let x = vec![0f32; 12];
    let mut out = vec![0f32; 11];
    let e = softmax_f32(IsaLevel::detect(), &x, &mut out, (2, 3, 2), &mut Vec::new()).unwrap_err();
    assert!(
        matches!(
            e,
            NativeError::Length {
                operand: "out",
                expected: 12,
                actual: 11,
                ..
            }
        ),
        "{e}"
    );
    let e = softmax_f64(&[0.0; 5], &mut [0.0; 6], (2, 3, 1), &mut Vec::new()).unwrap_err();
    assert!(matches!(e, NativeError::Length { operand: "x", .. }), "{e}");
    let e = softmax_f32(
        IsaLevel::detect(),
        &[],
        &mut [],
        (usize::MAX, 2, 2),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("overflows"), "{e}");
}

/// `softmax_scaled_*(x, c)` is bit for bit the softmax of `x · c` multiplied first (in
/// the element type), at every level, along lines and across columns, f32 and f64.
#[test]
fn a_scaled_softmax_equals_the_multiply_then_the_softmax() {
    use onde_codegen::native::softmax::{softmax_scaled_f32, softmax_scaled_f64};
    for isa in IsaLevel::ALL {
        for (outer, n, inner) in [(9, 100, 1), (3, 33, 1), (2, 17, 3), (1, 5, 20)] {
            for c in [0.125f32, 0.3, -1.7] {
                let numel = outer * n * inner;
                let x64 = values(numel, (n + inner) as u64, 9.0);
                let x: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
                let xc: Vec<f32> = x.iter().map(|&v| v * c).collect();
                let lines = (outer, n, inner);
                let mut got = vec![0f32; numel];
                let mut want = vec![0f32; numel];
                softmax_scaled_f32(isa, &x, c, &mut got, lines, &mut Vec::new()).unwrap();
                softmax_f32(isa, &xc, &mut want, lines, &mut Vec::new()).unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{isa:?} {lines:?} c={c}");
                let c64 = f64::from(c);
                let xc64: Vec<f64> = x64.iter().map(|&v| v * c64).collect();
                let (mut got, mut want) = (vec![0f64; numel], vec![0f64; numel]);
                softmax_scaled_f64(&x64, c64, &mut got, lines, &mut Vec::new()).unwrap();
                softmax_f64(&xc64, &mut want, lines, &mut Vec::new()).unwrap();
                assert_eq!(got, want, "f64 {lines:?} c={c}");
            }
        }
    }
}
