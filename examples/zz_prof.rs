use onde::{Array, ConvOpts, DType, GraphBuilder, Padding};
fn main() {
    let g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [32, 32, 4000]);
    let w = g.input("w", DType::F32, [32, 32, 3]);
    let o = ConvOpts {
        stride: vec![2],
        padding: Padding::Explicit(vec![1]),
        dilation: vec![1],
        groups: 1,
    };
    let h = x.conv1d(&w, None, &o).relu();
    let loss = (&h * &h).sum(vec![0i64, 1, 2], false);
    let gr = g.grad(&loss, &[&x, &w]).unwrap();
    let mut outs = vec![&loss];
    outs.extend(gr.iter());
    let mut exe = g.compile(&outs).unwrap();
    let feeds: Vec<(&str, Array)> = [("x", vec![32usize, 32, 4000]), ("w", vec![32, 32, 3])]
        .iter()
        .map(|(n, s)| {
            (
                *n,
                Array::f32(
                    s.clone(),
                    (0..s.iter().product::<usize>())
                        .map(|i| ((i * 7919 % 2003) as f32 / 1001.5 - 1.0) * 0.5)
                        .collect(),
                )
                .unwrap(),
            )
        })
        .collect();
    for _ in 0..3 {
        exe.run(&feeds).unwrap();
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for _ in 0..4 {
            exe.run(&feeds).unwrap();
        }
        best = best.min(t.elapsed().as_secs_f64() * 1000.0 / 4.0);
    }
    println!("best ms {best:.2}");
    exe.executable_mut().set_profiling(true);
    for _ in 0..20 {
        exe.run(&feeds).unwrap();
    }
    println!("{}", exe.executable().profile().unwrap());
}
