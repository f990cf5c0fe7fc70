//! Model summaries: receptive fields, jumps and starts checked against hand
//! computations (the course's intermezzo and W2 of `../shared/bench/bench.py`), output
//! shapes, parameter counts, and that summarising leaves the model untouched.

use onde::apps::examples::Kws;
use onde::module::{
    summarize, AvgPool1d, Conv, Field, MaxPool1d, Module, Relu, Residual, Sequential,
    StatisticsPooling,
};
use onde::{ConvOpts, Error, GraphBuilder, Padding, PoolOpts};

#[test]
fn two_kernel_5_convolutions_see_9_samples() {
    // The course: one conv of kernel 5 sees 5 samples, two see 9.
    let g = GraphBuilder::new();
    let mut m = Sequential::new("");
    m.push_with(|n| Conv::conv1d(&g, n, 1, 4, 5, ConvOpts::default()))
        .push(Relu)
        .push_with(|n| Conv::conv1d(&g, n, 4, 4, 5, ConvOpts::default()));
    let s = summarize(&m, &[2, 1, 100]).unwrap();
    let rf: Vec<Option<usize>> = s.rows.iter().map(|r| r.field.receptive_field).collect();
    assert_eq!(rf, [Some(5), Some(5), Some(9)]);
    assert_eq!(s.rows[2].output, vec![2, 4, 92]);
    assert_eq!(s.rows[0].parameters, 5 * 4 + 4);
    assert_eq!(s.rows[2].name, "2");
    assert_eq!(s.total_parameters, 24 + 5 * 4 * 4 + 4);
}

#[test]
fn strides_dilations_padding_and_pooling_compose() {
    let g = GraphBuilder::new();
    let same = ConvOpts {
        padding: Padding::Same,
        ..ConvOpts::default()
    };
    let mut m = Sequential::new("net");
    // k11 s2 p5: rf 11, jump 2, start -5.
    m.push_with(|n| Conv::conv1d(&g, n, 1, 2, 11, ConvOpts::default().stride(2).padding(5)))
        // dilated 'same' k3 d4: rf + 2·4·2 = 27, start − 4·2 = −13.
        .push_with(|n| Conv::conv1d(&g, n, 2, 2, 3, same.clone().dilation(4)))
        // max pool k2 s2: rf + 1·4... with jump 2: +2 = 29, jump 4.
        .push(MaxPool1d::new(PoolOpts::new(2)))
        // avg pool k3 s1 p1: rf + 2·4 = 37, start − 4 = −17.
        .push(AvgPool1d::new(PoolOpts::new(3).stride(1).padding(1)))
        .push(StatisticsPooling::new());
    let s = summarize(&m, &[1, 1, 64]).unwrap();
    let f: Vec<Field> = s.rows.iter().map(|r| r.field).collect();
    let want = [
        (Some(11), 2, -5),
        (Some(27), 2, -13),
        (Some(29), 4, -13),
        (Some(37), 4, -17),
    ];
    for (i, (rf, jump, start)) in want.into_iter().enumerate() {
        assert_eq!(
            (f[i].receptive_field, f[i].jump, f[i].start),
            (rf, jump, start),
            "row {i}"
        );
    }
    assert_eq!(
        f[4].receptive_field, None,
        "pooling over time sees everything"
    );
    assert_eq!(s.rows[4].output, vec![1, 4]);
    let text = s.to_string();
    assert!(
        text.contains(
            "after `net.3`: each output sees 37 input samples, neighbouring outputs are 4 apart"
        ),
        "{text}"
    );
}

#[test]
fn w2_last_convolution_sees_243_samples_8_apart() {
    // bench.py's W2: each output of conv_s2 sees 243 input samples, 8 apart (by hand:
    // 11, then + 8·4·{1, 2, 4} through the dilated blocks = 235, then + 2·4 = 243).
    let g = GraphBuilder::new();
    let m = Kws::new(&g, "");
    let s = summarize(&m, &[32, 1, 16000]).unwrap();
    let row = |n: &str| s.rows.iter().find(|r| r.name == n).unwrap().clone();
    assert_eq!(row("conv0").field.receptive_field, Some(11));
    assert_eq!(row("blocks.0").field.receptive_field, Some(43));
    assert_eq!(row("blocks.2").field.receptive_field, Some(235));
    let last = row("conv_s2");
    assert_eq!(
        (last.field.receptive_field, last.field.jump),
        (Some(243), 8)
    );
    assert_eq!(last.output, vec![32, 32, 2000]);
    assert_eq!(row("fc2").output, vec![32, 12]);
    // PyTorch's count: 384 + 64 + 3·(320 + 1056 + 64) + 3104 + 4160 + 780.
    assert_eq!(s.total_parameters, 12812);
    assert_eq!(m.num_parameters(), 12812);
    // Summarising built eval-mode ops only: no buffer update registered, mode restored.
    assert!(g.buffer_updates().is_empty());
    assert!(m.is_training());
}

#[test]
fn a_failing_layer_is_named_by_its_path() {
    let g = GraphBuilder::new();
    let mut m = Sequential::new("enc");
    m.push_with(|n| Conv::conv1d(&g, n, 1, 4, 3, ConvOpts::default()))
        .push_with(|n| Conv::conv1d(&g, n, 5, 4, 3, ConvOpts::default()));
    match summarize(&m, &[1, 1, 20]) {
        Err(Error::Layer {
            path,
            kind,
            input,
            source,
        }) => {
            assert_eq!(
                (path.as_str(), kind, input),
                ("enc.1", "Conv", vec![1, 4, 18])
            );
            assert!(source.to_string().contains("input channels"), "{source}");
        }
        other => panic!("expected a Layer error, got {other:?}"),
    }
    // A residual block must keep the shape.
    let g = GraphBuilder::new();
    let r = Residual::new(Conv::conv1d(&g, "r", 2, 2, 3, ConvOpts::default()));
    let x = g.input("x", onde::DType::F32, [1, 2, 10]);
    match r.forward(&x).check() {
        Err(Error::Op { op, reason, .. }) => {
            assert_eq!(op, "residual");
            assert!(
                reason.contains("[1, 2, 8] must have its input's shape [1, 2, 10]"),
                "{reason}"
            );
        }
        other => panic!("expected an Op error, got {other:?}"),
    }
}
