//! argmax/argmin and random numbers compiled as native steps (no interpreter) equal the
//! reference interpreter: ties pick the first index, a NaN wins, every axis and dtype;
//! random draws are the interpreter's bit for bit; pad, concat and stack copy exactly.

use onde::{Array, DType, GraphBuilder};

fn values(dtype: DType, shape: &[usize], nan_at: Option<usize>) -> Array {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| {
            if Some(i) == nan_at {
                f64::NAN
            } else {
                ((i * 7 % 5) as f64) - 2.0 // many ties
            }
        })
        .collect();
    Array::from_f64(dtype, shape.to_vec(), &v).unwrap()
}

#[test]
fn argmax_argmin_compiled_equal_interpreter() {
    for dtype in [DType::F32, DType::F64, DType::I64] {
        for (shape, nan_at) in [
            (vec![7], None),
            (vec![3, 5], Some(6)),
            (vec![2, 3, 4], Some(13)),
        ] {
            let nan_at = if dtype == DType::I64 { None } else { nan_at };
            for axis in 0..shape.len() as i64 {
                for keepdim in [false, true] {
                    let g = GraphBuilder::new();
                    let x = g.input("x", dtype, shape.clone());
                    let mx = x.argmax(axis, keepdim);
                    let mn = x.argmin(axis, keepdim);
                    let feeds = [("x", values(dtype, &shape, nan_at))];
                    let want = g.run(&[&mx, &mn], &feeds).unwrap();
                    let mut exe = g.compile(&[&mx, &mn]).unwrap();
                    let dump = exe.executable().dump_fused();
                    assert!(!dump.contains(": host "), "interpreter step:\n{dump}");
                    let got = exe.run(&feeds).unwrap();
                    assert_eq!(got, want, "{dtype} {shape:?} axis {axis} keepdim {keepdim}");
                }
            }
        }
    }
}

#[test]
fn random_compiled_equals_interpreter_bit_for_bit() {
    for dtype in [DType::F32, DType::F64] {
        let g = GraphBuilder::new();
        let seed = g.input("seed", DType::I64, Vec::<usize>::new());
        let u = g.rand_seeded([3, 17], dtype, &seed);
        let n = g.randn_seeded([5, 4], dtype, &seed);
        let feeds = [("seed", Array::scalar_i64(42))];
        let want = g.run(&[&u, &n], &feeds).unwrap();
        let mut exe = g.compile(&[&u, &n]).unwrap();
        assert!(!exe.executable().dump_fused().contains(": host "));
        let got = exe.run(&feeds).unwrap();
        assert_eq!(got, want, "{dtype}");
        // Another seed, other numbers.
        let other = exe.run(&[("seed", Array::scalar_i64(43))]).unwrap();
        assert_ne!(other[0], got[0]);
    }
}

#[test]
fn integer_pow_compiled_equals_interpreter() {
    // Every sign of base and exponent, exponents past 63 bits of squaring (wrapping),
    // 0 and ±1 to negative powers; broadcast exponent rows.
    let bases: Vec<i64> = vec![
        0,
        1,
        -1,
        2,
        -2,
        3,
        -3,
        7,
        10,
        -10,
        1 << 20,
        i64::MAX,
        i64::MIN,
        12345,
    ];
    let exps: Vec<i64> = vec![
        0,
        1,
        2,
        3,
        5,
        62,
        63,
        64,
        100,
        -1,
        -2,
        -3,
        i64::MAX,
        i64::MIN,
    ];
    let (nb, ne) = (bases.len(), exps.len());
    let g = GraphBuilder::new();
    let x = g.input("x", DType::I64, [nb, 1]);
    let y = g.input("y", DType::I64, [1, ne]);
    let p = x.pow(&y);
    let q = (&p + &x).pow(2i64);
    let feeds = [
        ("x", Array::i64([nb, 1], bases).unwrap()),
        ("y", Array::i64([1, ne], exps).unwrap()),
    ];
    let want = g.run(&[&p, &q], &feeds).unwrap();
    let mut exe = g.compile(&[&p, &q]).unwrap();
    let dump = exe.executable().dump_fused();
    assert!(!dump.contains(": host "), "interpreter step:\n{dump}");
    assert_eq!(exe.run(&feeds).unwrap(), want);
}

#[test]
fn relu_special_values_compiled_equal_interpreter_bit_for_bit() {
    // relu keeps x where x > 0 or x is NaN (sign and payload of a quiet NaN kept) and
    // is +0 elsewhere, -0 included: compiled as a compare and a mask, checked against
    // the interpreter's rule over vector lanes and the scalar tail (37 elements), and
    // (1003 elements, next to an `exp` in the same kernel) on the AVX-512 engine when
    // the CPU has it. Signalling NaNs are left out: the f32 interpreter computes in f64,
    // which quiets them.
    let specials = [
        0.0f64,
        -0.0,
        1.5,
        -1.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff8_0000_2000_0000),
        1e-310,
        -1e-310,
        f64::MIN_POSITIVE,
        f64::MAX,
    ];
    for (n, with_exp) in [(37, false), (1003, true)] {
        let v: Vec<f64> = (0..n).map(|i| specials[i % specials.len()]).collect();
        for dtype in [DType::F32, DType::F64] {
            let g = GraphBuilder::new();
            let x = g.input("x", dtype, vec![n]);
            let y = x.relu();
            let e = x.exp();
            let outs: Vec<&onde::Tensor> = if with_exp { vec![&y, &e] } else { vec![&y] };
            let x_arr = if dtype == DType::F32 {
                Array::f32([n], v.iter().map(|&a| a as f32).collect()).unwrap()
            } else {
                Array::f64([n], v.clone()).unwrap()
            };
            let feeds = [("x", x_arr)];
            let want = g.run(&outs, &feeds).unwrap();
            let mut exe = g.compile(&outs).unwrap();
            let got = exe.run(&feeds).unwrap();
            if with_exp
                && dtype == DType::F32
                && onde_codegen::IsaLevel::detect() >= onde_codegen::IsaLevel::Avx2
            {
                let dump = exe.executable().dump_fused();
                assert!(dump.contains("runs on the engine"), "{dump}");
            }
            let bits = |a: &Array| -> Vec<u64> {
                match (a.as_f32(), a.as_f64()) {
                    (Some(s), _) => s.iter().map(|x| u64::from(x.to_bits())).collect(),
                    (_, Some(s)) => s.iter().map(|x| x.to_bits()).collect(),
                    _ => panic!("float output"),
                }
            };
            assert_eq!(bits(&got[0]), bits(&want[0]), "{dtype}, {n} elements");
            // The rule itself, not only agreement: -0 -> +0, NaN kept.
            assert_eq!(bits(&got[0])[1], 0, "{dtype}: relu(-0) is +0");
            assert!(got[0].to_f64_vec()[6].is_nan(), "{dtype}: relu(NaN) is NaN");
        }
    }
}

#[test]
fn pad_compiled_equals_interpreter() {
    // `F.pad` order (last axis first), padding on every axis of ranks 1 to 4, rows of
    // one element (the run-of-rows copy), a non-zero fill, every dtype.
    let cases: [(Vec<usize>, Vec<i64>); 5] = [
        (vec![7], vec![2, 3]),
        (vec![3, 5], vec![0, 1, 2, 0]),
        (vec![2, 3, 1], vec![0, 1, 1, 1, 0, 2]),
        (vec![2, 2, 3, 1], vec![1, 0, 0, 0, 2, 1, 0, 1]),
        (vec![4, 6, 1], vec![0, 1]),
    ];
    for dtype in [DType::F32, DType::F64, DType::I64, DType::Bool] {
        for (shape, pads) in &cases {
            let g = GraphBuilder::new();
            let x = g.input("x", dtype, shape.clone());
            let fill = if dtype == DType::Bool { 1.0 } else { -3.0 };
            let y = x.pad(pads.clone(), fill);
            let n: usize = shape.iter().product();
            let v: Vec<f64> = (0..n).map(|i| (i % 3) as f64).collect();
            let feeds = [("x", Array::from_f64(dtype, shape.clone(), &v).unwrap())];
            let want = g.run(&[&y], &feeds).unwrap();
            let got = g.compile(&[&y]).unwrap().run(&feeds).unwrap();
            assert_eq!(got, want, "{dtype} {shape:?} pads {pads:?}");
        }
    }
}

#[test]
fn concat_and_stack_compiled_equal_interpreter() {
    // Parts of one element per output row (stack along the last axis: the word-copy
    // interleave for 4-byte dtypes, word copies for 8-byte, memcpy for bool), rows of
    // several elements, unequal parts, up to and past the interleave's eight parts,
    // bool rows of 4 bytes (the interleave), zero-length parts and no rows.
    for dtype in [DType::F32, DType::F64, DType::I64, DType::Bool] {
        for parts in [2usize, 3, 8, 9] {
            let g = GraphBuilder::new();
            let xs: Vec<_> = (0..parts)
                .map(|i| g.input(&format!("x{i}"), dtype, [3, 5]))
                .collect();
            let refs: Vec<_> = xs.iter().collect();
            let stacked = onde::stack(&refs, -1);
            let wide = onde::cat(&refs, 1);
            let head = g.input("h", dtype, [3, 2]);
            let uneven = onde::cat(&[&head, &xs[0], &head], 1);
            let feeds: Vec<(String, Array)> = (0..parts)
                .map(|i| {
                    let v: Vec<f64> = (0..15).map(|k| ((k * 3 + i * 7) % 11) as f64).collect();
                    (
                        format!("x{i}"),
                        Array::from_f64(dtype, vec![3, 5], &v).unwrap(),
                    )
                })
                .chain([
                    (
                        "h".to_string(),
                        Array::from_f64(dtype, vec![3, 2], &[1., 0., 1., 1., 0., 1.]).unwrap(),
                    ),
                    (
                        "z".to_string(),
                        Array::from_f64(dtype, vec![3, 0], &[]).unwrap(),
                    ),
                    (
                        "e".to_string(),
                        Array::from_f64(dtype, vec![0, 5], &[]).unwrap(),
                    ),
                    (
                        "e2".to_string(),
                        Array::from_f64(dtype, vec![0, 5], &[]).unwrap(),
                    ),
                ])
                .collect();
            let feeds: Vec<(&str, Array)> =
                feeds.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
            // A zero-length part, and parts with no rows at all.
            let none = g.input("z", dtype, [3, 0]);
            let with_empty = onde::cat(&[&xs[0], &none, &xs[1]], 1);
            let empty_rows = onde::cat(
                &[&g.input("e", dtype, [0, 5]), &g.input("e2", dtype, [0, 5])],
                1,
            );
            // Bool rows of four 1-byte elements take the 4-byte interleave.
            let quads: Vec<_> = xs.iter().map(|x| x.slice(1, Some(0), Some(4), 1)).collect();
            let quad_refs: Vec<_> = quads.iter().collect();
            let quads = onde::cat(&quad_refs, 1);
            let outs = [&stacked, &wide, &uneven, &with_empty, &empty_rows, &quads];
            let want = g.run(&outs, &feeds).unwrap();
            let got = g.compile(&outs).unwrap().run(&feeds).unwrap();
            assert_eq!(got, want, "{dtype} with {parts} parts");
        }
    }
}

#[test]
fn softmax_is_one_native_step_equal_to_the_interpreter_at_every_level() {
    use onde::codegen::{CompileOptions, IsaLevel};
    for dtype in [DType::F32, DType::F64] {
        for (shape, nan_at) in [
            (vec![37], None),
            (vec![4, 100], Some(150)),
            (vec![3, 18, 5], Some(7)),
        ] {
            for axis in 0..shape.len() as i64 {
                let g = GraphBuilder::new();
                let x = g.input("x", dtype, shape.clone());
                let y = (&x * 1.5).softmax(axis);
                let feeds = [("x", values(dtype, &shape, nan_at))];
                let want = g.run(&[&y], &feeds).unwrap();
                for isa in IsaLevel::available() {
                    let opts = CompileOptions {
                        isa,
                        ..CompileOptions::default()
                    };
                    let mut exe = g.compile_with(&[&y], opts).unwrap();
                    let dump = exe.executable().dump_fused();
                    assert!(dump.contains("Softmax"), "{dump}");
                    assert!(!dump.contains(": host "), "interpreter step:\n{dump}");
                    assert!(!dump.contains("= exp "), "softmax spelled out:\n{dump}");
                    let got = exe.run(&feeds).unwrap();
                    let (w, gv) = (want[0].to_f64_vec(), got[0].to_f64_vec());
                    let what = format!("{dtype} {shape:?} axis {axis} {isa}");
                    if dtype == DType::F64 {
                        // The f64 path is the interpreter's definition.
                        assert_eq!(gv.len(), w.len());
                        for (a, b) in gv.iter().zip(&w) {
                            assert!(
                                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                                "{what}"
                            );
                        }
                    } else {
                        for (a, b) in gv.iter().zip(&w) {
                            let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 2e-6 * b.abs();
                            assert!(ok, "{what}: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }
}
