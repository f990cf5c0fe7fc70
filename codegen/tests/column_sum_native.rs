//! Plain column sums (`Σ` of a row-major operand over its leading axes: bias
//! gradients) run in registers (`kernel::engine::column`) where the ISA level has the
//! engine's widths, and give the bits of the sequential chain `0 + x₀ + x₁ + …` — what
//! the Cranelift column kernel computes at the baseline level. Every column count
//! around the vector widths, strided rows (a slice of a wider buffer), 3-D operands,
//! and kernels that are not plain sums keep their Cranelift code.

use onde_codegen::{CompileOptions, Executable, IsaLevel};
use onde_ir::{parse_graph, Array};

fn vals(n: usize, s: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + s * 104_729) % 2003) as f32 - 1001.0) * 0.0137)
        .collect()
}

fn compile(src: &str, isa: IsaLevel) -> Executable {
    let g = parse_graph(src).unwrap();
    let opts = CompileOptions {
        isa,
        optimize: false,
        ..CompileOptions::default()
    };
    Executable::compile(&g, opts).unwrap()
}

/// The expected sums of columns `[0, cols)` of `x` (`rows × width`, row-major).
fn chain(x: &[f32], rows: usize, width: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .map(|j| (0..rows).fold(0.0f32, |acc, i| acc + x[i * width + j]))
        .collect()
}

fn bits(a: &Array) -> Vec<u32> {
    a.as_f32().unwrap().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn plain_column_sums_are_the_sequential_chain_at_every_level() {
    for rows in [1usize, 3, 100] {
        for cols in [8usize, 15, 16, 17, 48, 64, 100, 129, 192, 300] {
            let x = vals(rows * cols, cols);
            let xa = Array::f32([rows, cols], x.clone()).unwrap();
            let src = format!(
                r#"graph {{
  %0: f32[{rows},{cols}] = input "x"
  %1: f32[{cols}] = reduce_sum %0 axes=[0] keepdim=false
  outputs %1
}}"#
            );
            let want: Vec<u32> = chain(&x, rows, cols, cols)
                .iter()
                .map(|v| v.to_bits())
                .collect();
            for isa in IsaLevel::available() {
                let mut exe = compile(&src, isa);
                let dump = exe.dump_fused();
                let native = dump.contains("native column sum");
                let expect_native = isa != IsaLevel::Baseline
                    && cols
                        >= if isa.capped() == IsaLevel::Avx512 {
                            16
                        } else {
                            8
                        }
                    && rows > 1;
                assert_eq!(native, expect_native, "{isa} {rows}×{cols}:\n{dump}");
                let out = exe.run(&[("x", &xa)]).unwrap();
                assert_eq!(bits(&out[0]), want, "{isa} {rows}×{cols}");
            }
        }
    }
}

#[test]
fn strided_rows_and_three_axes_sum_in_registers() {
    // Columns [2, 2 + 70) of a [3, 40, 80] operand, summed over the first two axes:
    // rows 80 floats apart, starting at an offset.
    let x = vals(3 * 40 * 80, 9);
    let xa = Array::f32([3, 40, 80], x.clone()).unwrap();
    let src = r#"graph {
  %0: f32[3,40,80] = input "x"
  %1: f32[3,40,70] = slice %0 axes=[0:3:1,0:40:1,2:72:1]
  %2: f32[70] = reduce_sum %1 axes=[0,1] keepdim=false
  outputs %2
}"#;
    let want: Vec<u32> = chain(&x[2..], 120, 80, 70)
        .iter()
        .map(|v| v.to_bits())
        .collect();
    for isa in IsaLevel::available() {
        let mut exe = compile(src, isa);
        let dump = exe.dump_fused();
        assert_eq!(
            dump.contains("native column sum"),
            isa != IsaLevel::Baseline,
            "{isa}:\n{dump}"
        );
        let out = exe.run(&[("x", &xa)]).unwrap();
        assert_eq!(bits(&out[0]), want, "{isa}");
    }
}

#[test]
fn other_column_reductions_keep_their_cranelift_kernel() {
    // A fused product, a maximum, an f64 sum: column order, but not a plain f32 sum.
    let src = r#"graph {
  %0: f32[50,64] = input "x"
  %1: f32[50,64] = mul %0, %0
  %2: f32[64] = reduce_sum %1 axes=[0] keepdim=false
  %3: f32[64] = reduce_max %0 axes=[0] keepdim=false
  %4: f64[50,64] = input "y"
  %5: f64[64] = reduce_sum %4 axes=[0] keepdim=false
  outputs %2, %3, %5
}"#;
    for isa in IsaLevel::available() {
        let exe = compile(src, isa);
        let dump = exe.dump_fused();
        assert!(!dump.contains("native column sum"), "{isa}:\n{dump}");
        assert!(dump.contains("// column order"), "{isa}:\n{dump}");
    }
}
