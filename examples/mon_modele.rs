//! The course's slides "Définition d'un réseau de neurones": the `MonModeleQuiTorche`
//! module applied twice, then three of them in a `Sequential`, with the shapes the
//! slides print; then one compiled SGD step shows that the learnable parameters move
//! and the non-learnable buffers do not. Run with `cargo run --example mon_modele`.

use onde::apps::examples::MonModeleQuiTorche;
use onde::module::{Module, Sequential};
use onde::optim::Sgd;
use onde::{DType, GraphBuilder, TrainStep};

fn main() -> onde::Result<()> {
    let g = GraphBuilder::new();
    // mon_modele = MonModeleQuiTorche(delta_chan=4); y = mon_modele(x); z = mon_modele(y)
    let mon_modele = MonModeleQuiTorche::new(&g, "mon_modele", 4);
    let x = g.rand([5, 1, 100], DType::F32);
    let y = Module::forward(&mon_modele, &x);
    let z = Module::forward(&mon_modele, &y);
    println!("x {:?} -> y {:?} -> z {:?}", x.size(), y.size(), z.size());

    // mon_modele_sequentiel = torch.nn.Sequential(MonModeleQuiTorche(4), (5), (6))
    let mut seq = Sequential::new("seq");
    for d in 4..=6 {
        seq.push_with(|name| MonModeleQuiTorche::new(&g, name, d));
    }
    let h = seq.forward(&g.rand([5, 1, 100], DType::F32));
    println!("sequential output {:?}", h.size()); // [5, 16, 100]
    for (name, t) in seq.named_parameters() {
        println!("  parameter {name} {:?}", t.size());
    }
    for (name, t) in seq.named_buffers() {
        println!("  buffer    {name} {:?}", t.size());
    }

    // One compiled SGD step on mean(h²): parameters move, buffers stay.
    let loss = h.square().mean_all();
    let before = g.state_dict();
    let mut step = TrainStep::new(&g, &loss, &Sgd::new(0.1))?;
    let l = step.step(&[])?;
    println!("loss before the step: {l:.4}");
    for (name, old) in &before {
        if let Some(new) = step.value(name) {
            let moved = old.to_f64_vec() != new.to_f64_vec();
            let kind = if g.is_buffer(name) {
                "buffer"
            } else {
                "parameter"
            };
            println!(
                "  {kind:<9} {name}: {}",
                if moved { "updated" } else { "unchanged" }
            );
        }
    }
    let graph = g.build(&[&z, &h])?;
    println!("{}", onde::ir::text::summary(&graph));
    Ok(())
}
