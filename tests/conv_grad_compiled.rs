//! Convolution gradients compiled end to end equal the reference interpreter's: the
//! forms `passes::autodiff::conv` picks (1-d input gradient by phases, one stride-1
//! convolution each; kernel gradient per tap, from gathered columns or from the
//! input's windows) running on
//! the compiled paths they rely on (strided views kept through reshapes, thin
//! products outside the library GEMM, pad and where kernels, the native convolution
//! with padding up to the kernel's reach), in f32 and f64, with 1 and 2 threads. This
//! checks the compiled code against the interpreter on the same gradient graph; the
//! gradient formulas themselves are checked by finite differences in `grad_rules.rs`.

use crate::common;

use onde::codegen::CompileOptions;
use onde::{ConvOpts, DType, GraphBuilder, Padding};

struct Case {
    name: &'static str,
    x: Vec<usize>,
    w: Vec<usize>,
    opts: ConvOpts,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            // 'same' with an even kernel: padding (1, 2), depthwise; dx as a convolution,
            // dW from the input's windows, long rows (vector loops and tails).
            name: "depthwise same k4",
            x: vec![3, 6, 301],
            w: vec![6, 1, 4],
            opts: ConvOpts::default().same().groups(6),
        },
        Case {
            // Depthwise with a channel multiplier, strided and dilated: dW as one
            // reduction over the input's windows (unfold view).
            name: "depthwise multiplier 2 stride 2 dilation 2",
            x: vec![2, 4, 257],
            w: vec![8, 1, 5],
            opts: ConvOpts::default()
                .stride(2)
                .padding(4)
                .dilation(2)
                .groups(4),
        },
        Case {
            name: "depthwise conv2d stride (2, 1) dilation (1, 2)",
            x: vec![2, 3, 17, 33],
            w: vec![3, 1, 3, 3],
            opts: ConvOpts {
                stride: vec![2, 1],
                padding: Padding::Explicit(vec![1, 2]),
                dilation: vec![1, 2],
                groups: 3,
            },
        },
        Case {
            // Pointwise over 1100 steps: in f32 the kernel gradient's products (k = 1100
            // dot products per output) run on the AVX-512 long-dot kernel.
            name: "pointwise long",
            x: vec![2, 8, 1100],
            w: vec![8, 8, 1],
            opts: ConvOpts::default(),
        },
        Case {
            // 1 → 12 channels, stride 3: dW from gathered columns, dx by three phases.
            name: "first layer stride 3",
            x: vec![2, 1, 200],
            w: vec![12, 1, 5],
            opts: ConvOpts::default().stride(3).padding(2),
        },
        Case {
            // Dense, stride 2, groups 2: dx by two phases, dW per tap.
            name: "grouped stride 2",
            x: vec![2, 4, 121],
            w: vec![6, 2, 3],
            opts: ConvOpts::default().stride(2).padding(1).groups(2),
        },
        Case {
            // Dense, stride 2 over 2500 steps: in f32 the per-tap kernel gradients
            // (k = 1250 dot products) run on the long-dot kernel reading x every other
            // element; dx by phases.
            name: "dense stride 2 long",
            x: vec![2, 4, 2500],
            w: vec![4, 4, 3],
            opts: ConvOpts::default().stride(2).padding(1),
        },
        Case {
            // An empty input padded to two outputs: dx (empty) by phases, dW zero.
            name: "empty input",
            x: vec![2, 4, 0],
            w: vec![4, 2, 3],
            opts: ConvOpts::default().stride(2).padding(2).groups(2),
        },
        Case {
            // Padding beyond the kernel's reach: dx by phases reads a slice of dy.
            name: "wide padding",
            x: vec![2, 3, 40],
            w: vec![4, 3, 2],
            opts: ConvOpts::default().padding(3),
        },
        Case {
            name: "conv2d stride (2, 2) groups 2",
            x: vec![2, 4, 11, 12],
            w: vec![6, 2, 3, 3],
            opts: ConvOpts {
                stride: vec![2, 2],
                padding: Padding::Explicit(vec![1, 2]),
                dilation: vec![1, 1],
                groups: 2,
            },
        },
        Case {
            name: "conv2d stride (2, 1) dilation (1, 2) groups 2",
            x: vec![2, 4, 9, 14],
            w: vec![6, 2, 3, 2],
            opts: ConvOpts {
                stride: vec![2, 1],
                padding: Padding::Explicit(vec![1, 2]),
                dilation: vec![1, 2],
                groups: 2,
            },
        },
    ]
}

#[test]
fn conv_gradients_compiled_equal_the_interpreter() {
    for c in cases() {
        for dtype in [DType::F32, DType::F64] {
            let g = GraphBuilder::new();
            let x = g.input("x", dtype, c.x.clone());
            let w = g.input("w", dtype, c.w.clone());
            let y = if c.x.len() == 3 {
                x.conv1d(&w, None, &c.opts)
            } else {
                x.conv2d(&w, None, &c.opts)
            };
            // A weighted sum, so every output position has its own gradient.
            let ydims = y.shape().dims().to_vec();
            let r = g.input("r", dtype, ydims.clone());
            let all: Vec<i64> = (0..ydims.len() as i64).collect();
            let loss = (&y * &r).sum(all, false);
            let grads = g.grad(&loss, &[&x, &w]).expect("differentiable");
            let feeds = [
                ("x", common::data(dtype, &c.x, 1)),
                ("w", common::data(dtype, &c.w, 2)),
                ("r", common::data(dtype, &ydims, 3)),
            ];
            let outs = [&loss, &grads[0], &grads[1]];
            let want = g.run(&outs, &feeds).unwrap();
            for threads in [1, 2] {
                let opts = CompileOptions {
                    threads,
                    ..CompileOptions::default()
                };
                let got = g.compile_with(&outs, opts).unwrap().run(&feeds).unwrap();
                let tol = if dtype == DType::F32 { 2e-4 } else { 1e-10 };
                for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
                    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                    for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                        assert!(
                            (p - q).abs() <= tol * scale,
                            "{} {dtype} threads {threads}: output {k}[{i}] {p} vs {q}",
                            c.name
                        );
                    }
                }
            }
        }
    }
}
