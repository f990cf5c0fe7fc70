//! The course's slide "Définition d'un réseau de neurones": the `MonModeleQuiTorche`
//! module applied twice, then three of them in sequence, with the shapes the slide
//! prints. Run with `cargo run --example mon_modele`.

use onde::nn::examples::MonModeleQuiTorche;
use onde::{DType, GraphBuilder};

fn main() -> onde::Result<()> {
    let g = GraphBuilder::new();
    let mon_modele = MonModeleQuiTorche::new(&g, "mon_modele", 4);
    let x = g.rand([5, 1, 100], DType::F32);
    let y = mon_modele.forward(&x);
    let z = mon_modele.forward(&y);
    println!("x {:?} -> y {:?} -> z {:?}", x.size(), y.size(), z.size());

    // mon_modele_sequentiel = Sequential(MonModeleQuiTorche(4), (5), (6))
    let layers: Vec<MonModeleQuiTorche> = (4..=6)
        .map(|d| MonModeleQuiTorche::new(&g, &format!("seq.{}", d - 4), d))
        .collect();
    let mut h = g.rand([5, 1, 100], DType::F32);
    for layer in &layers {
        h = layer.forward(&h);
    }
    println!("sequential output {:?}", h.size()); // [5, 16, 100]

    let out = g.run(&[&z, &h], &[])?;
    println!(
        "z[0,0..4,0] = {:?}",
        &out[0].as_f32().unwrap_or(&[])[..4 * 100]
            .iter()
            .step_by(100)
            .collect::<Vec<_>>()
    );
    let graph = g.build(&[&z, &h])?;
    println!("{}", onde::ir::text::summary(&graph));
    Ok(())
}
