//! The course's slides "Exemples PyTorch — Opération sur les tenseurs", reproduced with
//! exactly the shapes the slides print, and run on the interpreter with values checked
//! by hand on an `arange` tensor.

use onde::nn::{cat, s, Array, DType, GraphBuilder, Idx, Tensor};

fn arange_10_5_100() -> Array {
    Array::f32([10, 5, 100], (0..5000).map(|i| i as f32).collect()).unwrap()
}

fn setup() -> (GraphBuilder, Tensor, Tensor) {
    let g = GraphBuilder::new();
    let t = g.input("tenseur", DType::F32, [10, 5, 100]);
    let t2 = g.rand([10, 5, 100], DType::F32);
    (g, t, t2)
}

#[test]
fn creation_and_elementwise_shapes() {
    let (g, t, t2) = setup();
    assert_eq!(g.zeros([10, 5, 100], DType::F32).size(), [10, 5, 100]);
    assert_eq!(g.ones([10, 5, 100], DType::F32).size(), [10, 5, 100]);
    assert_eq!(t.zeros_like().size(), [10, 5, 100]);
    assert_eq!(t.clone().size(), [10, 5, 100]);
    assert_eq!(t.dtype(), DType::F32);
    assert_eq!(t.pow(2.0).size(), [10, 5, 100]);
    assert_eq!(t.exp().size(), [10, 5, 100]);
    assert_eq!((&t + &t2).size(), [10, 5, 100]);
    assert_eq!((&t * &t2).size(), [10, 5, 100]);
}

#[test]
fn concatenation_and_tile_shapes() {
    let (_, t, t2) = setup();
    assert_eq!(cat(&[&t, &t2], 0).size(), [20, 5, 100]);
    assert_eq!(cat(&[&t, &t2], 1).size(), [10, 10, 100]);
    assert_eq!(cat(&[&t, &t2], 2).size(), [10, 5, 200]);
    assert_eq!(t.tile([2, 3, 4]).size(), [20, 15, 400]);
}

#[test]
fn reduction_shapes() {
    let (_, t, _) = setup();
    assert_eq!(t.mean([0], false).size(), [5, 100]);
    assert_eq!(t.mean([1], false).size(), [10, 100]);
    assert_eq!(t.mean([2], false).size(), [10, 5]);
    assert_eq!(t.mean([0], true).size(), [1, 5, 100]);
    assert_eq!(t.mean([1], true).size(), [10, 1, 100]);
    assert_eq!(t.mean([2], true).size(), [10, 5, 1]);
}

#[test]
fn dimension_manipulation_shapes() {
    let (_, t, _) = setup();
    assert_eq!(t.transpose(1, 2).size(), [10, 100, 5]);
    assert_eq!(t.flatten(0, -1).size(), [5000]);
    assert_eq!(t.unsqueeze(0).size(), [1, 10, 5, 100]);
    assert_eq!(t.unsqueeze(1).size(), [10, 1, 5, 100]);
}

#[test]
fn slicing_shapes() {
    let (_, t, _) = setup();
    assert_eq!(t.index(s![0, .., ..]).size(), [5, 100]); // tenseur[0,:,:]
    assert_eq!(t.index(s![0, Idx::Ellipsis]).size(), [5, 100]); // tenseur[0,...]
    assert_eq!(t.index(s![0..5, .., ..]).size(), [5, 5, 100]); // tenseur[0:5,:,:]
                                                               // The slide's comment says [10,5,50] for tenseur[0,:,0::2]; PyTorch itself gives
                                                               // [5,50] (the leading 0 removes an axis). We follow PyTorch; [10,5,50] is
                                                               // tenseur[:,:,0::2].
    assert_eq!(t.index(s![0, .., Idx::from(0..).step(2)]).size(), [5, 50]);
    assert_eq!(
        t.index(s![.., .., Idx::from(0..).step(2)]).size(),
        [10, 5, 50]
    );
}

/// Values, on `tenseur = arange(5000).reshape(10, 5, 100)`, element (i, j, k) = 500i + 100j + k.
#[test]
fn slide_ops_values_on_the_interpreter() {
    let (g, t, _) = setup();
    let outs = [
        cat(&[&t, &t], 1),
        t.tile([2, 3, 4]),
        t.mean([0], false),
        t.mean([2], true),
        t.transpose(1, 2),
        t.flatten(0, -1),
        t.index(s![0, .., Idx::from(0..).step(2)]),
        t.index(s![0..5, .., ..]),
    ];
    let refs: Vec<&Tensor> = outs.iter().collect();
    let r = g.run(&refs, &[("tenseur", arange_10_5_100())]).unwrap();
    let at = |a: &Array, idx: &[usize]| {
        let st = a.shape().strides();
        a.as_f32().unwrap()[idx.iter().zip(&st).map(|(i, s)| i * s).sum::<usize>()]
    };
    let v = |i: usize, j: usize, k: usize| (500 * i + 100 * j + k) as f32;
    // cat axis 1: channel 7 is channel 2 of the second copy.
    assert_eq!(at(&r[0], &[3, 7, 9]), v(3, 2, 9));
    // tile: (i, j, k) -> (i mod 10, j mod 5, k mod 100)
    assert_eq!(at(&r[1], &[13, 11, 250]), v(3, 1, 50));
    // mean over axis 0 of 500i + c = 500·4.5 + c
    assert_eq!(at(&r[2], &[2, 7]), 2250.0 + 207.0);
    // mean over axis 2 of k = 49.5
    assert_eq!(at(&r[3], &[1, 3, 0]), v(1, 3, 0) + 49.5);
    assert_eq!(at(&r[4], &[2, 40, 3]), v(2, 3, 40));
    assert_eq!(r[5].as_f32().unwrap()[1234], 1234.0);
    assert_eq!(at(&r[6], &[4, 10]), v(0, 4, 20));
    assert_eq!(at(&r[7], &[4, 4, 99]), v(4, 4, 99));
}
