//! Plan dumps and per-step profiles of an [`Executable`]: what each step runs as
//! (Cranelift code, the tile engine, a native kernel, an epilogue) and its time.

use super::*;

impl Executable {
    /// A readable listing of the steps: fused kernels with their loads and bodies,
    /// library calls and host steps.
    pub fn dump_fused(&self) -> String {
        self.compiled.dump()
    }

    /// Starts (and resets) or stops timing every step of every run; see
    /// [`Executable::profile`]. Costs one clock read per step while on.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(|| vec![(0, Duration::ZERO); self.compiled.plan.steps.len()]);
        for st in self.scans.iter_mut().flatten() {
            st.body.set_profiling(on);
        }
    }

    /// Time spent in each step since profiling started, one line per step, slowest
    /// first: calls, mean µs per call, share of the total, what the step is (kernel
    /// name and whether it runs on Cranelift code or the AVX-512 engine, matmul
    /// shapes…). A kernel that ran as a matmul's epilogue shows 0 calls (its time is
    /// in the matmul's line). `None` when not profiling.
    pub fn profile(&self) -> Option<String> {
        let p = self.profile.as_ref()?;
        let total: f64 = p.iter().map(|(_, d)| d.as_secs_f64()).sum();
        let mut rows: Vec<(usize, f64, u64)> = p
            .iter()
            .enumerate()
            .map(|(i, &(n, d))| (i, d.as_secs_f64(), n))
            .collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut s = format!(
            "{:>5} {:>7} {:>10} {:>6}  step\n",
            "step", "calls", "mean µs", "share"
        );
        for (i, t, n) in rows {
            let mean = if n > 0 { t / n as f64 * 1e6 } else { 0.0 };
            let share = if total > 0.0 { 100.0 * t / total } else { 0.0 };
            s.push_str(&format!(
                "{i:>5} {n:>7} {mean:>10.2} {share:>5.1}%  {}\n",
                self.step_label(i)
            ));
            // A scan's body: its own steps, per iteration (their share is of the body).
            if let Some(body) = self.scans.get(i).and_then(|st| st.as_ref()) {
                if let Some(bp) = body.body.profile() {
                    for line in bp.lines().skip(1) {
                        s.push_str(&format!("{:>32}| {line}\n", ""));
                    }
                }
            }
        }
        Some(s)
    }

    pub(super) fn step_label(&self, i: usize) -> String {
        let c = &self.compiled;
        match &c.plan.steps[i] {
            Step::Kernel(k) => {
                let on = match &c.fns[i] {
                    Some((KernelCode::Engine(_), ..)) => "engine",
                    Some((KernelCode::ColumnSum(_), ..)) => "native column sum",
                    Some((KernelCode::Jit(_), ..)) | None => "cranelift",
                };
                format!("kernel {} over {:?} ({on})", k.name, k.shape)
            }
            Step::MatMul { a, b, .. } => {
                let ep = match c.epilogues[i] {
                    Some(epilogue::Fused::TileRows(..)) => {
                        format!(" (+ step {} as its epilogue on one-panel products)", i + 1)
                    }
                    Some(_) => format!(" (+ step {} as its epilogue in prepacked runs)", i + 1),
                    None => String::new(),
                };
                format!("matmul {:?} @ {:?}{ep}", a.shape, b.shape)
            }
            Step::Conv { x, w, .. } => format!(
                "conv {:?} * {:?}{}",
                c.plan.buffers[*x].ty.shape,
                c.plan.buffers[*w].ty.shape,
                if c.epilogues[i].is_some() {
                    format!(" (+ step {} as its epilogue on finished rows)", i + 1)
                } else {
                    String::new()
                }
            ),
            Step::Host { .. } => "host (interpreter)".to_string(),
            Step::Scan { .. } => "scan".to_string(),
            Step::Copy(op, ..) => format!("copy {op:?}"),
        }
    }
}

impl Compiled {
    /// The listing behind [`Executable::dump_fused`], scan bodies included.
    fn dump(&self) -> String {
        let p = &self.plan;
        let mut s = String::new();
        for (i, b) in p.buffers.iter().enumerate() {
            let kind = match &b.kind {
                BufKind::Feed(n) => format!("feed {n:?}"),
                BufKind::Const(_) => "constant".to_string(),
                BufKind::Temp => "temp".to_string(),
                BufKind::Alias(of) => format!("alias of buf{of}"),
            };
            s.push_str(&format!("buf{i}: {} {kind}\n", b.ty));
        }
        for (i, st) in p.steps.iter().enumerate() {
            match st {
                Step::Kernel(k) => {
                    s.push_str(&format!("step {i}: {k}\n"));
                    if crate::kernel::clif::column_nest(k).is_some() {
                        s.push_str(
                            "    // column order: vectorised along the kept axis, accumulated row by row\n",
                        );
                    }
                    if let Some((KernelCode::Engine(p), ..)) = &self.fns[i] {
                        s.push_str(&format!("    // runs on the {}:\n", p.describe()));
                        for line in p.listing().lines() {
                            s.push_str(&format!("    //   {line}\n"));
                        }
                    }
                    if let Some((KernelCode::ColumnSum(c), ..)) = &self.fns[i] {
                        s.push_str(&format!("    // runs as a {}\n", c.describe()));
                    }
                }
                Step::MatMul { a, b, out, dtype } => {
                    s.push_str(&format!(
                        "step {i}: matmul {dtype} buf{}{:?}/{:?} @ buf{}{:?}/{:?} -> buf{out}\n",
                        a.buf, a.shape, a.strides, b.buf, b.shape, b.strides
                    ));
                    if let Some(epilogue::Fused::TileRows(..)) = self.epilogues[i] {
                        s.push_str(&format!(
                            "    // epilogue: step {} (the softmax of the product, its backward, an add or column sums) applied to each tile's rows (one-panel products, one thread)\n",
                            i + 1
                        ));
                    }
                    if let Some(epilogue::Fused::Registers(sm)) = self.epilogues[i] {
                        let onto_bias =
                            sm.bias.is_some() && sm.act == native::prepacked::Activation::None;
                        s.push_str(&format!(
                            "    // epilogue: step {} (bias {}, activation {:?}) applied to the output tiles in registers (prepacked runs){}\n",
                            i + 1,
                            if sm.bias.is_some() { "added" } else { "none" },
                            sm.act,
                            if onto_bias {
                                ", or the bias added as the one-panel kernel stores, or the product added onto the preset bias (library GEMM); one thread"
                            } else {
                                ""
                            }
                        ));
                    }
                }
                Step::Conv {
                    x,
                    w,
                    out,
                    params,
                    dtype,
                } => {
                    s.push_str(&format!(
                        "step {i}: conv {dtype} buf{x} * buf{w} -> buf{out} stride={:?} padding={:?} dilation={:?} groups={}\n",
                        params.stride, params.padding, params.dilation, params.groups
                    ));
                    if self.epilogues[i].is_some() {
                        s.push_str(&format!(
                            "    // epilogue: step {} runs on each block of output rows as soon as it is written\n",
                            i + 1
                        ));
                    }
                }
                Step::Copy(op, args, out) => {
                    s.push_str(&format!("step {i}: copy {op:?} {args:?} -> buf{out}\n"))
                }
                Step::Scan { scan, args, outs } => {
                    s.push_str(&format!(
                        "step {i}: scan length={} axis={} reverse={} carries={} xs={} {args:?} -> {outs:?}\n",
                        scan.length, scan.axis, scan.reverse, scan.num_carry, scan.num_xs,
                    ));
                    // The body's own plan (its buffers are the body's: inputs in scan
                    // order, carries first), indented.
                    if let Some(b) = &self.bodies[i] {
                        s.push_str(&format!(
                            "  body ({} steps, run once per iteration) {{\n",
                            b.plan.steps.len()
                        ));
                        for line in b.dump().lines() {
                            s.push_str(&format!("    | {line}\n"));
                        }
                        s.push_str("  }\n");
                    }
                }
                Step::Host { graph, args, outs } => {
                    let name = graph
                        .op_ids()
                        .last()
                        .map(|&o| graph.op(o).op.name())
                        .unwrap_or("?");
                    s.push_str(&format!("step {i}: host {name} {args:?} -> {outs:?}\n"));
                }
            }
        }
        s.push_str(&format!("outputs: {:?}\n", p.outputs));
        let mem = &self.memory;
        let temps: usize = p
            .buffers
            .iter()
            .filter(|b| matches!(b.kind, BufKind::Temp))
            .map(|b| b.ty.shape.numel() * elem_size(b.ty.dtype))
            .sum();
        s.push_str(&format!(
            "memory: {} bytes in {} slots for {temps} bytes of temporaries; slots {:?}\n",
            mem.total_bytes(),
            mem.slot_bytes.len(),
            mem.slot_of
        ));
        s
    }
}
