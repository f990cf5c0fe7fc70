//! [`Executable`]: a graph compiled for fixed input shapes, run on named inputs.
//!
//! `compile` verifies the graph, plans it ([`crate::plan`]), JIT-compiles every kernel
//! into one module, and allocates every temporary buffer once (64-byte aligned).
//! `run` checks each feed against the declared dtype and shape (typed errors), points
//! the input buffers at the caller's arrays (no copy), executes the steps in order and
//! copies the outputs out; [`Executable::run_in_place`] skips that copy
//! ([`Executable::output_f32`] reads an output in place), so after the first run nothing is
//! allocated except by host-fallback steps (see `plan`).
//!
//! Compiled code is shared between executables of the same graph and shapes through a
//! per-thread cache ([`Executable::compile_cached`], keyed by the graph's text, which
//! holds every shape), and freed when the last executable using it is dropped.

mod copy;
mod epilogue;
mod scan;
mod state;

use state::StateBinding;

use crate::isa::IsaLevel;
use crate::jit::{Jit, JitError, KernelFn};
use crate::native;
use crate::plan::{self, BufKind, Plan, PlanError, Step};
use cranelift_jit::JITModule;
use onde_ir::{Array, DType, Data, Graph, TensorType, VerifyError};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Compilation failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// The graph does not verify.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The planner could not schedule an op.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Cranelift failed.
    #[error(transparent)]
    Jit(#[from] JitError),
}

/// Running failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RunError {
    /// An input or parameter was not fed.
    #[error("no tensor fed for {name:?} (expected {expected})")]
    MissingFeed {
        /// Its name.
        name: String,
        /// Its declared type.
        expected: Box<TensorType>,
    },
    /// A feed names nothing in the graph.
    #[error("{name:?} is not an input or parameter of this graph")]
    UnknownFeed {
        /// The name given.
        name: String,
    },
    /// A feed has the wrong dtype or shape.
    #[error("{name:?} must be {expected}, got {got}")]
    FeedType {
        /// Its name.
        name: String,
        /// Declared.
        expected: Box<TensorType>,
        /// Given.
        got: Box<TensorType>,
    },
    /// A host step failed (e.g. a gather index out of range).
    #[error(transparent)]
    Host(#[from] onde_runtime::InterpError),
    /// An index tensor addresses outside its axis (as the interpreter reports it).
    #[error("{op}: index {index} out of range for axis {axis} of extent {extent}")]
    IndexOutOfRange {
        /// The op.
        op: &'static str,
        /// The offending index.
        index: i64,
        /// The axis.
        axis: usize,
        /// Its extent.
        extent: usize,
    },
    /// A native kernel rejected its operands (a bug in onde).
    #[error("native kernel: {0}")]
    Native(String),
    /// [`Executable::bind_state`] or [`Executable::set_state`] was given something that
    /// does not fit.
    #[error("state {name:?}: {reason}")]
    State {
        /// The feed name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Options of [`Executable::compile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompileOptions {
    /// Threads for library kernels (matmul, convolution).
    pub threads: usize,
    /// Keep the CLIF text of every kernel ([`Executable::clif`]).
    pub keep_clif: bool,
    /// Run the optimisation pipeline (`onde_passes::optimizer`) before planning.
    pub optimize: bool,
    /// The highest instruction-set level the kernels may use, capped by what the CPU
    /// has ([`IsaLevel::capped`]); the default, [`IsaLevel::Avx512`], is no cap. At
    /// `Avx2` and above, eligible f32 kernels run on the tile engine
    /// ([`crate::kernel::engine`], 8 or 16 lanes) instead of their Cranelift f32x4 code;
    /// at `Avx512`, matrix products also use the prepacked and long-dot kernels; the
    /// direct convolution takes the widest kernel allowed. A lower cap runs the lower levels' code on any machine
    /// (tests check every level the machine has; `onde bench --isa` measures them).
    pub isa: IsaLevel,
    /// Run a matmul's or a convolution's consumer kernel as its epilogue: a Linear
    /// layer's bias + activation on the prepacked GEMM's output tiles in registers
    /// (versioned runs), a convolution's elementwise consumer on each block of output
    /// rows as soon as it is written (see `exec::epilogue`).
    pub epilogues: bool,
}

impl Default for CompileOptions {
    fn default() -> CompileOptions {
        CompileOptions {
            threads: 1,
            keep_clif: false,
            optimize: true,
            isa: IsaLevel::Avx512,
            epilogues: true,
        }
    }
}

/// How a kernel step runs.
#[derive(Clone)]
enum KernelCode {
    /// Cranelift code of the kernel.
    Jit(KernelFn),
    /// The tile engine's program of the kernel.
    Engine(Arc<crate::kernel::engine::Program>),
}

impl KernelCode {
    /// Computes `[lo, hi)` of the kernel's outermost axis (the contract of
    /// [`crate::kernel::clif::signature`]).
    ///
    /// # Safety
    /// `table` is the executor's buffer table with every buffer the kernel accesses
    /// live and of its planned size; `partial` is null or an 8-byte slot.
    unsafe fn call(&self, table: *const *mut u8, lo: usize, hi: usize, partial: *mut u8) {
        match self {
            // SAFETY: forwarded from the caller; the function was compiled from this
            // kernel with `clif::signature`.
            KernelCode::Jit(f) => unsafe { f(table, lo as i64, hi as i64, partial) },
            // SAFETY: forwarded; `engine::compile` only returns programs of a width
            // this CPU has.
            KernelCode::Engine(p) => unsafe { p.call(table, lo, hi, partial) },
        }
    }
}

/// Code and plan shared by executables of one graph.
struct Compiled {
    plan: Plan,
    /// Storage slots of the temporaries.
    memory: plan::memory::MemoryPlan,
    /// The compiled body of each scan step.
    bodies: Vec<Option<Rc<Compiled>>>,
    module: Option<JITModule>,
    /// Kernel function per step (`None` for non-kernel steps), with how it splits
    /// across threads (outer extent, outer axis reduced), computed once here.
    fns: Vec<Option<(KernelCode, usize, bool)>>,
    /// Reshape aliases `(alias, root)`, re-pointed at every run.
    aliases: Vec<(usize, usize)>,
    /// Per step: a matmul or conv whose next step is its epilogue kernel ([`epilogue`]).
    epilogues: Vec<Option<epilogue::Fused>>,
    clif: Vec<String>,
    compile_time: Duration,
}

impl Drop for Compiled {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the function pointers in `fns` die with `self`; no executable
            // holding this `Compiled` is alive (we are in its drop).
            unsafe { m.free_memory() };
        }
    }
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// A 64-byte-aligned byte buffer.
struct Storage {
    lines: Vec<Line>,
}

impl Storage {
    fn new(bytes: usize) -> Storage {
        Storage {
            lines: vec![Line([0; 64]); bytes.div_ceil(64).max(1)],
        }
    }

    fn ptr(&mut self) -> *mut u8 {
        self.lines.as_mut_ptr().cast()
    }
}

/// A graph compiled for fixed input shapes.
pub struct Executable {
    compiled: Rc<Compiled>,
    storage: Vec<Option<Storage>>,
    ptrs: Vec<*mut u8>,
    /// The planned pointer of every buffer (before any state redirection), restored
    /// for a state output that is not (or no longer) updated in place.
    home: Vec<*mut u8>,
    /// Feed buffers: name, type, buffer.
    feeds: Vec<(String, TensorType, usize)>,
    threads: usize,
    /// The instruction-set level the kernels use ([`CompileOptions::isa`], capped).
    isa: IsaLevel,
    scratch32: Vec<f32>,
    scratch64: Vec<f64>,
    /// Weights version vouched for by the caller of the current run
    /// ([`Executable::run_in_place_versioned`]); `None` outside such a run.
    weights_version: Option<u64>,
    /// Per buffer: a feed the current versioned run vouches for.
    is_weight: Vec<bool>,
    /// Per step: a prepacked right operand of a matmul `(version, source pointer,
    /// panels)`, reused while the caller vouches the weights are unchanged.
    packed: Vec<Option<(u64, usize, native::prepacked::PackedB)>>,
    /// Reused per-share partial results of threaded full reductions.
    partials: Vec<[u8; 8]>,
    /// Reused index counters and i64 accumulators of the native loop steps.
    scratch_idx: Vec<usize>,
    scratch_i64: Vec<i64>,
    /// Per scan step: the body's executable and its staging buffers.
    scans: Vec<Option<ScanState>>,
    /// Feeds bound as persistent state ([`Executable::bind_state`]).
    states: Vec<StateBinding>,
    /// Per step: calls and total time, while profiling ([`Executable::set_profiling`]).
    profile: Option<Vec<(u64, Duration)>>,
}

/// A scan step's compiled body and reusable staging memory.
struct ScanState {
    body: Box<Executable>,
    /// Feed index in `body` of each body input, in body-input order.
    inputs: Vec<usize>,
    /// Scanned inputs with the scan axis moved to the front (when it is not already).
    xs_front: Vec<Storage>,
    /// Stacked outputs with the scan axis in front, before moving it into place.
    ys_front: Vec<Storage>,
    /// Staging for carries that the body returns unchanged (may alias inputs).
    carry_stage: Vec<Storage>,
}

impl fmt::Debug for Executable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executable")
            .field("steps", &self.compiled.plan.steps.len())
            .field("buffers", &self.storage.len())
            .finish()
    }
}

thread_local! {
    static CACHE: RefCell<HashMap<(String, usize), Weak<Compiled>>> = RefCell::new(HashMap::new());
}

fn elem_size(d: DType) -> usize {
    crate::kernel::clif::elem_size(d)
}

fn compile_shared(g: &Graph, opts: CompileOptions) -> Result<Compiled, CompileError> {
    let t0 = Instant::now();
    onde_ir::verify(g)?;
    let optimized;
    let g = if opts.optimize {
        let mut o = g.clone();
        onde_passes::optimize(&mut o).map_err(|e| PlanError {
            op: "optimize".into(),
            reason: e.to_string(),
        })?;
        optimized = o;
        &optimized
    } else {
        g
    };
    let plan = plan::plan(g)?;
    // The executor's `unsafe` blocks rely on the plan's invariants: checked in debug
    // builds (every test), where a planner bug becomes an error, not memory corruption.
    if cfg!(debug_assertions) {
        plan::verify::verify(&plan)?;
    }
    let mut jit = Jit::new(opts.keep_clif)?;
    let mut slots = Vec::with_capacity(plan.steps.len());
    let mut engine = Vec::with_capacity(plan.steps.len());
    let mut bodies = Vec::with_capacity(plan.steps.len());
    for s in &plan.steps {
        let wide = match s {
            Step::Kernel(k) => crate::kernel::engine::compile(k, opts.isa).map(Arc::new),
            Step::MatMul { .. }
            | Step::Conv { .. }
            | Step::Host { .. }
            | Step::Scan { .. }
            | Step::Copy(..) => None,
        };
        slots.push(match s {
            Step::Kernel(k) if wide.is_none() => Some(jit.add(k)?),
            Step::Kernel(_) => None,
            Step::MatMul { .. }
            | Step::Conv { .. }
            | Step::Host { .. }
            | Step::Scan { .. }
            | Step::Copy(..) => None,
        });
        engine.push(wide);
        bodies.push(match s {
            Step::Scan { scan, .. } => {
                let mut body = (*scan.body).clone();
                onde_passes::optimize(&mut body).map_err(|e| PlanError {
                    op: "scan".into(),
                    reason: format!("optimising the body: {e}"),
                })?;
                Some(Rc::new(compile_shared(&body, opts)?))
            }
            Step::Kernel(_)
            | Step::MatMul { .. }
            | Step::Conv { .. }
            | Step::Host { .. }
            | Step::Copy(..) => None,
        });
    }
    let (module, fns, clif) = jit.finish()?;
    let fns = slots
        .into_iter()
        .zip(engine)
        .zip(&plan.steps)
        .map(|((slot, wide), st)| {
            let Step::Kernel(k) = st else { return None };
            let (extent, reduced) = crate::kernel::clif::outer_extent(k);
            let code = match (slot, wide) {
                (_, Some(p)) => KernelCode::Engine(p),
                (Some(i), None) => KernelCode::Jit(fns[i]),
                (None, None) => return None,
            };
            Some((code, extent, reduced))
        })
        .collect();
    let aliases = plan
        .buffers
        .iter()
        .enumerate()
        .filter_map(|(i, b)| match b.kind {
            BufKind::Alias(of) => Some((i, of)),
            BufKind::Feed(_) | BufKind::Const(_) | BufKind::Temp => None,
        })
        .collect();
    let memory = plan::memory::plan_memory(&plan);
    let epilogues = if opts.epilogues {
        epilogue::find(&plan, &memory)
    } else {
        vec![None; plan.steps.len()]
    };
    Ok(Compiled {
        plan,
        memory,
        epilogues,
        aliases,
        bodies,
        module: Some(module),
        fns,
        clif,
        compile_time: t0.elapsed(),
    })
}

fn array_ptr_mut(a: &mut Array) -> *mut u8 {
    if let Some(v) = a.as_f32_mut() {
        return v.as_mut_ptr().cast();
    }
    if let Some(v) = a.as_f64_mut() {
        return v.as_mut_ptr().cast();
    }
    if let Some(v) = a.as_i64_mut() {
        return v.as_mut_ptr().cast();
    }
    match a.as_bool_mut() {
        Some(v) => v.as_mut_ptr().cast(),
        None => std::ptr::null_mut(),
    }
}

fn array_ptr(a: &Array) -> *mut u8 {
    match a.data() {
        Data::Bool(v) => v.as_ptr() as *mut u8,
        Data::I64(v) => v.as_ptr() as *mut u8,
        Data::F32(v) => v.as_ptr() as *mut u8,
        Data::F64(v) => v.as_ptr() as *mut u8,
    }
}

/// Copies `ty`'s elements from `p` into an array.
///
/// # Safety
/// `p` must point to `ty.shape.numel()` initialised elements of `ty.dtype`, suitably
/// aligned (or be any pointer if there are none).
unsafe fn read_array(p: *const u8, ty: &TensorType) -> Array {
    let n = ty.shape.numel();
    let shape = ty.shape.clone();
    let fallback = || Array::full(ty.dtype, shape.clone(), 0.0);
    if n == 0 {
        return fallback();
    }
    // SAFETY: guaranteed by the caller.
    let r = unsafe {
        match ty.dtype {
            DType::Bool => Array::bool(
                shape.clone(),
                std::slice::from_raw_parts(p.cast::<u8>(), n)
                    .iter()
                    .map(|&b| b != 0)
                    .collect(),
            ),
            DType::I64 => Array::i64(
                shape.clone(),
                std::slice::from_raw_parts(p.cast::<i64>(), n).to_vec(),
            ),
            DType::F32 => Array::f32(
                shape.clone(),
                std::slice::from_raw_parts(p.cast::<f32>(), n).to_vec(),
            ),
            DType::F64 => Array::f64(
                shape.clone(),
                std::slice::from_raw_parts(p.cast::<f64>(), n).to_vec(),
            ),
        }
    };
    r.unwrap_or_else(|_| fallback())
}

/// Copies an array's elements to `p`.
///
/// # Safety
/// `p` must be valid for writing `a.numel()` elements of `a.dtype()`.
unsafe fn write_array(p: *mut u8, a: &Array) {
    let bytes = a.numel() * elem_size(a.dtype());
    let src = array_ptr(a) as *const u8;
    if bytes > 0 {
        // SAFETY: `src` holds `bytes` bytes (bool is one byte, 0 or 1); `p` is valid by
        // the caller's guarantee; the regions do not overlap (distinct allocations).
        unsafe { std::ptr::copy_nonoverlapping(src, p, bytes) };
    }
}

impl Executable {
    /// Compiles `g` (outputs as set on the graph) for its declared input shapes.
    pub fn compile(g: &Graph, opts: CompileOptions) -> Result<Executable, CompileError> {
        Ok(Executable::from_compiled(
            Rc::new(compile_shared(g, opts)?),
            opts,
        ))
    }

    /// Like [`Executable::compile`], reusing the code of an executable of the same
    /// graph (same text, hence same shapes) that is still alive on this thread.
    pub fn compile_cached(g: &Graph, opts: CompileOptions) -> Result<Executable, CompileError> {
        let key = (
            onde_ir::print_graph(g),
            usize::from(opts.keep_clif)
                | usize::from(opts.optimize) << 1
                | (opts.isa.capped() as usize) << 2
                | usize::from(opts.epilogues) << 4
                | opts.threads << 5,
        );
        if let Some(c) = CACHE.with(|c| c.borrow().get(&key).and_then(Weak::upgrade)) {
            return Ok(Executable::from_compiled(c, opts));
        }
        let c = Rc::new(compile_shared(g, opts)?);
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            cache.retain(|_, w| w.strong_count() > 0);
            cache.insert(key, Rc::downgrade(&c));
        });
        Ok(Executable::from_compiled(c, opts))
    }

    fn from_compiled(compiled: Rc<Compiled>, opts: CompileOptions) -> Executable {
        let mem = &compiled.memory;
        let mut slots: Vec<Storage> = mem.slot_bytes.iter().map(|&b| Storage::new(b)).collect();
        let mut storage = Vec::with_capacity(compiled.plan.buffers.len());
        let mut ptrs = Vec::with_capacity(compiled.plan.buffers.len());
        let mut feeds = Vec::new();
        for (i, b) in compiled.plan.buffers.iter().enumerate() {
            let bytes = b.ty.shape.numel() * elem_size(b.ty.dtype);
            match &b.kind {
                BufKind::Feed(name) => {
                    feeds.push((name.clone(), b.ty.clone(), i));
                    storage.push(None);
                    ptrs.push(std::ptr::null_mut());
                }
                BufKind::Const(a) => {
                    let mut s = Storage::new(bytes);
                    // SAFETY: `s` holds at least `bytes` bytes = a.numel() elements.
                    unsafe { write_array(s.ptr(), a) };
                    ptrs.push(s.ptr());
                    storage.push(Some(s));
                }
                BufKind::Temp => {
                    match mem.slot_of[i] {
                        Some(sl) => ptrs.push(slots[sl].ptr()),
                        None => {
                            let mut s = Storage::new(bytes);
                            ptrs.push(s.ptr());
                            storage.push(Some(s));
                            continue;
                        }
                    }
                    storage.push(None);
                }
                BufKind::Alias(of) => {
                    // Aliases come after their root; feeds are re-pointed in `run`.
                    ptrs.push(ptrs.get(*of).copied().unwrap_or(std::ptr::null_mut()));
                    storage.push(None);
                }
            }
        }
        let mut scans = Vec::with_capacity(compiled.plan.steps.len());
        for (i, st) in compiled.plan.steps.iter().enumerate() {
            scans.push(match (st, compiled.bodies.get(i).cloned().flatten()) {
                (Step::Scan { scan, args, outs }, Some(body)) => {
                    Some(ScanState::new(scan, args, outs, &compiled.plan, body, opts))
                }
                _ => None,
            });
        }
        storage.extend(slots.drain(..).map(Some));
        Executable {
            compiled,
            storage,
            home: ptrs.clone(),
            ptrs,
            feeds,
            threads: opts.threads.max(1),
            isa: opts.isa.capped(),
            scratch32: Vec::new(),
            scratch64: Vec::new(),
            scratch_idx: Vec::new(),
            partials: Vec::new(),
            weights_version: None,
            is_weight: Vec::new(),
            packed: Vec::new(),
            scratch_i64: Vec::new(),
            scans,
            states: Vec::new(),
            profile: None,
        }
    }

    /// The instruction-set level this executable's kernels use: the compile's cap
    /// ([`CompileOptions::isa`]) limited to what the CPU has.
    pub fn isa(&self) -> IsaLevel {
        self.isa
    }

    /// Time spent compiling (planning, code generation, finalisation).
    pub fn compile_time(&self) -> Duration {
        self.compiled.compile_time
    }

    /// The plan (kernels and library steps), for dumps.
    pub fn plan(&self) -> &Plan {
        &self.compiled.plan
    }

    /// CLIF text of each kernel (empty unless compiled with `keep_clif`).
    pub fn clif(&self) -> &[String] {
        &self.compiled.clif
    }

    /// A readable listing of the steps: fused kernels with their loads and bodies,
    /// library calls and host steps.
    pub fn dump_fused(&self) -> String {
        let p = &self.compiled.plan;
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
                    if let Some((KernelCode::Engine(p), ..)) = &self.compiled.fns[i] {
                        s.push_str(&format!("    // runs on the {}:\n", p.describe()));
                        for line in p.listing().lines() {
                            s.push_str(&format!("    //   {line}\n"));
                        }
                    }
                }
                Step::MatMul { a, b, out, dtype } => {
                    s.push_str(&format!(
                        "step {i}: matmul {dtype} buf{}{:?}/{:?} @ buf{}{:?}/{:?} -> buf{out}\n",
                        a.buf, a.shape, a.strides, b.buf, b.shape, b.strides
                    ));
                    if let Some(epilogue::Fused::Registers(sm)) = self.compiled.epilogues[i] {
                        s.push_str(&format!(
                            "    // epilogue: step {} (bias {}, activation {:?}) applied to the output tiles in registers (prepacked runs)\n",
                            i + 1,
                            if sm.bias.is_some() { "added" } else { "none" },
                            sm.act
                        ));
                    }
                }
                Step::Conv { x, w, out, params, dtype } => {
                    s.push_str(&format!(
                        "step {i}: conv {dtype} buf{x} * buf{w} -> buf{out} stride={:?} padding={:?} dilation={:?} groups={}\n",
                        params.stride, params.padding, params.dilation, params.groups
                    ));
                    if self.compiled.epilogues[i].is_some() {
                        s.push_str(&format!(
                            "    // epilogue: step {} runs on each block of output rows as soon as it is written\n",
                            i + 1
                        ));
                    }
                }
                Step::Copy(op, args, out) => {
                    s.push_str(&format!("step {i}: copy {op:?} {args:?} -> buf{out}\n"))
                }
                Step::Scan { scan, args, outs } => s.push_str(&format!(
                    "step {i}: scan length={} axis={} reverse={} carries={} xs={} {args:?} -> {outs:?} (body compiled: {} steps)\n",
                    scan.length,
                    scan.axis,
                    scan.reverse,
                    scan.num_carry,
                    scan.num_xs,
                    self.compiled.bodies[i].as_ref().map_or(0, |b| b.plan.steps.len())
                )),
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
        let mem = &self.compiled.memory;
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

    /// Runs on `feeds` (every input and parameter, by name) and returns the outputs.
    pub fn run(&mut self, feeds: &[(&str, &Array)]) -> Result<Vec<Array>, RunError> {
        self.run_in_place(feeds)?;
        Ok((0..self.compiled.plan.outputs.len())
            .map(|i| self.output_array(i))
            .collect())
    }

    /// Output `i` of the last [`Executable::run_in_place`] as a new array.
    pub fn output_array(&self, i: usize) -> Array {
        let b = self.compiled.plan.outputs[i];
        let ty = &self.compiled.plan.buffers[b].ty;
        // SAFETY: buffer `b` holds numel elements of its dtype: a temp/const storage
        // allocated for it, or a feed array checked against `ty` in the last run.
        unsafe { read_array(self.ptrs[b], ty) }
    }

    /// Output `i` of the last run, in place, as f32 (`None` for another dtype).
    pub fn output_f32(&self, i: usize) -> Option<&[f32]> {
        let b = *self.compiled.plan.outputs.get(i)?;
        let ty = &self.compiled.plan.buffers[b].ty;
        if ty.dtype != DType::F32 || self.ptrs[b].is_null() {
            return None;
        }
        let n = ty.shape.numel();
        // SAFETY: as in `output_array`; the slice borrows `self`, so no run can
        // overwrite it while it is alive.
        Some(unsafe { std::slice::from_raw_parts(self.ptrs[b].cast::<f32>(), n) })
    }

    /// Runs without copying outputs out (read them with [`Executable::output_f32`] or
    /// [`Executable::output_array`]).
    pub fn run_in_place(&mut self, feeds: &[(&str, &Array)]) -> Result<(), RunError> {
        for (name, _) in feeds {
            if self.states.iter().any(|st| st.name == *name) {
                return Err(RunError::State {
                    name: (*name).to_string(),
                    reason: "is bound as state: set it with set_state, not as a feed".into(),
                });
            }
            if !self.feeds.iter().any(|(n, _, _)| n == name) {
                return Err(RunError::UnknownFeed {
                    name: (*name).to_string(),
                });
            }
        }
        for (name, ty, buf) in &self.feeds {
            if self.states.iter().any(|st| st.feed_buf == *buf) {
                continue;
            }
            let Some((_, a)) = feeds.iter().find(|(n, _)| n == name) else {
                return Err(RunError::MissingFeed {
                    name: name.clone(),
                    expected: Box::new(ty.clone()),
                });
            };
            let got = TensorType::new(a.dtype(), a.shape().clone());
            if &got != ty {
                return Err(RunError::FeedType {
                    name: name.clone(),
                    expected: Box::new(ty.clone()),
                    got: Box::new(got),
                });
            }
            self.ptrs[*buf] = array_ptr(a);
        }
        self.point_states();
        self.execute()?;
        self.commit_states();
        Ok(())
    }

    /// [`Executable::run_in_place`] for a caller that vouches for its weights: while
    /// `version` is the same as in an earlier call, the feeds named in `weights` (and
    /// constants) read as the right operand of a matrix product are assumed unchanged
    /// (same array, same values), so their packed form (AVX-512 kernel,
    /// `native::prepacked`) is reused instead of repacked. Bump `version` whenever a weight changes (a training
    /// step, a loaded checkpoint); a wrong version gives stale results. Small-batch
    /// inference (an evaluator of a training step) is the use.
    pub fn run_in_place_versioned(
        &mut self,
        feeds: &[(&str, &Array)],
        version: u64,
        weights: &[&str],
    ) -> Result<(), RunError> {
        let n = self.compiled.plan.buffers.len();
        self.is_weight.clear();
        self.is_weight.resize(n, false);
        for (name, _, buf) in &self.feeds {
            if weights.contains(&name.as_str()) {
                self.is_weight[*buf] = true;
            }
        }
        self.weights_version = Some(version);
        let r = self.run_in_place(feeds);
        self.weights_version = None;
        r
    }

    /// Runs a 2-D f32 matmul step on the prepacked-weights kernel when the current
    /// run vouches for its right operand (see [`Executable::run_in_place_versioned`]);
    /// `false` when it does not apply (the caller then uses the library GEMM).
    fn packed_matmul(
        &mut self,
        i: usize,
        a: &plan::View,
        b: &plan::View,
        out: usize,
        dtype: DType,
    ) -> Result<bool, RunError> {
        if !self.packed_ready(i, a, b, dtype)? {
            return Ok(false);
        }
        self.packed_run(i, a, out, None, native::prepacked::Activation::None)?;
        Ok(true)
    }

    /// Whether matmul step `i` can run on the prepacked kernel in this run; packs its
    /// right operand when the packed copy is stale.
    fn packed_ready(
        &mut self,
        i: usize,
        a: &plan::View,
        b: &plan::View,
        dtype: DType,
    ) -> Result<bool, RunError> {
        let Some(version) = self.weights_version else {
            return Ok(false);
        };
        let plan = &self.compiled.plan;
        let root = plan::memory::root(plan, b.buf);
        let weight = match plan.buffers[root].kind {
            BufKind::Const(_) => true,
            BufKind::Feed(_) => self.is_weight.get(root).copied().unwrap_or(false),
            BufKind::Temp | BufKind::Alias(_) => false,
        };
        if dtype != DType::F32
            || !weight
            || a.shape.len() != 2
            || b.shape.len() != 2
            || self.threads > 1
            || self.isa < IsaLevel::Avx2
            || !native::prepacked::available()
        {
            return Ok(false);
        }
        let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1]);
        if m > 512 || k.saturating_mul(n) > 1 << 22 {
            return Ok(false);
        }
        if self.packed.len() < plan.steps.len() {
            self.packed.resize_with(plan.steps.len(), || None);
        }
        let src = self.ptrs[b.buf] as usize;
        let fresh = matches!(&self.packed[i], Some((v, p, _)) if *v == version && *p == src);
        if !fresh {
            let nb = self.buf_len(b.buf);
            let mut pk = self.packed[i].take().map(|(_, _, p)| p).unwrap_or_default();
            // SAFETY: buffer `b.buf` holds `nb` f32 elements (planner type, checked feed).
            let sb = unsafe { std::slice::from_raw_parts(self.ptrs[b.buf].cast::<f32>(), nb) };
            native::prepacked::pack_b(b.from_offset(sb), k, n, b.strides[0], b.strides[1], &mut pk)
                .map_err(|e| RunError::Native(e.to_string()))?;
            self.packed[i] = Some((version, src, pk));
        }
        Ok(true)
    }

    /// Matmul step `i` on its packed right operand (after [`Self::packed_ready`]
    /// returned `true` in this run), writing `act(a·B + bias)` to `dst`: the product
    /// itself (`dst` = the step's output, no bias, no activation) or, for an epilogue
    /// ([`epilogue`]), the epilogue kernel's output with the product never stored.
    fn packed_run(
        &mut self,
        i: usize,
        a: &plan::View,
        dst: usize,
        bias: Option<(usize, isize)>,
        act: native::prepacked::Activation,
    ) -> Result<(), RunError> {
        let (na, nd) = (self.buf_len(a.buf), self.buf_len(dst));
        // SAFETY: `a.buf` holds `na` f32 elements and `dst` (a temp sharing no storage
        // with `a`, the weights or the bias: the planner's matmul output, or checked by
        // `epilogue::check`) `nd`; the bias buffer, when present, its own length; the
        // planner made all of them f32. Nothing else accesses `dst` during the call.
        let (sa, sd, sb) = unsafe {
            (
                std::slice::from_raw_parts(self.ptrs[a.buf].cast::<f32>(), na),
                std::slice::from_raw_parts_mut(self.ptrs[dst].cast::<f32>(), nd),
                bias.map(|(b, off)| {
                    let len = self.buf_len(b);
                    let all = std::slice::from_raw_parts(self.ptrs[b].cast::<f32>(), len);
                    all.get(off.max(0) as usize..).unwrap_or(&[])
                }),
            )
        };
        let Some(Some((_, _, pk))) = self.packed.get(i) else {
            return Err(RunError::Native(format!(
                "matmul step {i}: operand not packed"
            )));
        };
        let m = a.shape[0];
        native::prepacked::gemm_epilogue_capped(
            self.isa,
            m,
            a.from_offset(sa),
            a.strides[0],
            a.strides[1],
            pk,
            sd,
            nd / m.max(1),
            sb,
            act,
        )
        .map_err(|e| RunError::Native(e.to_string()))
    }

    /// Executes the steps (feeds already pointed at).
    fn execute(&mut self) -> Result<(), RunError> {
        let compiled = self.compiled.clone();
        for &(i, of) in &compiled.aliases {
            self.ptrs[i] = self.ptrs[of];
        }
        let mut fused_next = false;
        for (i, step) in compiled.plan.steps.iter().enumerate() {
            if std::mem::take(&mut fused_next) {
                // Ran as the previous matmul's epilogue.
                continue;
            }
            let t0 = self.profile.is_some().then(Instant::now);
            match step {
                Step::Kernel(k) => {
                    if let Some((code, extent, reduced)) = &compiled.fns[i] {
                        self.kernel(code, k, *extent, *reduced);
                    }
                }
                Step::MatMul { a, b, out, dtype } => {
                    if let Some(epilogue::Fused::Registers(ep)) = compiled.epilogues[i] {
                        if self.packed_ready(i, a, b, *dtype)? {
                            self.packed_run(i, a, ep.dst, ep.bias, ep.act)?;
                            fused_next = true;
                        } else {
                            self.matmul(a, b, *out, *dtype)?
                        }
                    } else if !self.packed_matmul(i, a, b, *out, *dtype)? {
                        self.matmul(a, b, *out, *dtype)?
                    }
                }
                Step::Conv {
                    x,
                    w,
                    out,
                    params,
                    dtype,
                } => {
                    let then = match (compiled.epilogues[i], compiled.fns.get(i + 1)) {
                        (Some(epilogue::Fused::Rows), Some(Some((code, extent, _))))
                            if self.stores_clear_of(i + 1, &[*x, *w]) =>
                        {
                            Some((code, *extent))
                        }
                        _ => None,
                    };
                    fused_next = self.conv(*x, *w, *out, params, *dtype, then)?;
                }
                Step::Host { graph, args, outs } => self.host(graph, args, outs)?,
                Step::Scan { scan, args, outs } => self.scan(i, scan, args, outs)?,
                Step::Copy(op, args, out) => self.copy(op, args, *out)?,
            }
            if let (Some(t0), Some(p)) = (t0, self.profile.as_mut()) {
                p[i].0 += 1;
                p[i].1 += t0.elapsed();
            }
        }
        Ok(())
    }

    /// Starts (and resets) or stops timing every step of every run; see
    /// [`Executable::profile`]. Costs one clock read per step while on.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(|| vec![(0, Duration::ZERO); self.compiled.plan.steps.len()]);
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
        }
        Some(s)
    }

    fn step_label(&self, i: usize) -> String {
        let c = &self.compiled;
        match &c.plan.steps[i] {
            Step::Kernel(k) => {
                let on = match &c.fns[i] {
                    Some((KernelCode::Engine(_), ..)) => "engine",
                    Some((KernelCode::Jit(_), ..)) | None => "cranelift",
                };
                format!("kernel {} over {:?} ({on})", k.name, k.shape)
            }
            Step::MatMul { a, b, .. } => {
                let ep = if c.epilogues[i].is_some() {
                    format!(" (+ step {} as its epilogue in prepacked runs)", i + 1)
                } else {
                    String::new()
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

    /// Calls a kernel, split over the outermost axis across `threads` threads when the
    /// work is large enough. A full reduction split this way produces one partial result
    /// per thread, combined here in thread order (so results depend on the thread count
    /// only through float summation order).
    fn kernel(
        &mut self,
        code: &KernelCode,
        k: &crate::kernel::Kernel,
        extent: usize,
        reduced: bool,
    ) {
        let work = k.iterations().max(1);
        let threads = if work >= PARALLEL_MIN_ITERATIONS {
            self.threads.min(extent).max(1)
        } else {
            1
        };
        let table = SendPtr(self.ptrs.as_ptr() as *mut *mut u8);
        if threads == 1 {
            // SAFETY: the kernel reads and writes only the buffers of its loads and
            // stores, at offsets within their declared sizes (the planner derives every
            // access from the verified shapes); every entry of `ptrs` it uses is a live
            // allocation of that size: storage of this executable or a feed array
            // checked in `run_in_place` and borrowed for this call. Feeds are only read.
            unsafe { code.call(table.0, 0, extent, std::ptr::null_mut()) };
            return;
        }
        let chunk = extent.div_ceil(threads);
        // One 8-byte slot per share, reused across calls (no allocation per run).
        let mut partials = std::mem::take(&mut self.partials);
        partials.clear();
        partials.resize(threads, [0u8; 8]);
        let parts = SendPtr(partials.as_mut_ptr().cast::<u8>());
        let share = move |t: usize| {
            let (lo, hi) = (t * chunk, ((t + 1) * chunk).min(extent));
            let out = if reduced {
                parts.add(t * 8)
            } else {
                std::ptr::null_mut()
            };
            // SAFETY: as above; shares compute disjoint ranges of the outermost axis, so
            // their element stores never overlap, and a partial reduction goes to this
            // share's own 8-byte slot (an empty share, `lo >= hi`, writes the identity).
            unsafe { code.call(table.get(), lo, hi, out) };
        };
        match crate::pool::pool() {
            Some(pool) => pool.in_place_scope(|scope| {
                for t in 1..threads {
                    scope.spawn(move |_| share(t));
                }
                share(0);
            }),
            None => std::thread::scope(|scope| {
                for t in 1..threads {
                    scope.spawn(move || share(t));
                }
                share(0);
            }),
        }
        if reduced {
            if let Some(r) = &k.reduction {
                let st = &k.stores[r.store];
                let d = k.dtypes[st.expr];
                let dst = self.ptrs[st.buffer];
                combine_partials(r.kind, d, &partials, dst);
            }
        }
        self.partials = partials;
    }

    fn buf_len(&self, b: usize) -> usize {
        self.compiled.plan.buffers[b].ty.shape.numel()
    }

    /// Two operand slices and an output slice of type `T` over buffers.
    ///
    /// # Safety
    /// Each buffer must hold its declared element count of `T` (temps and consts are
    /// allocated for it, feeds were type-checked), aligned for `T`; `out` must be a temp
    /// distinct from both operands.
    unsafe fn slices<T>(&mut self, a: usize, b: usize, out: usize) -> (&[T], &[T], &mut [T]) {
        let (na, nb, no) = (self.buf_len(a), self.buf_len(b), self.buf_len(out));
        // SAFETY: guaranteed by the caller.
        unsafe {
            (
                std::slice::from_raw_parts(self.ptrs[a].cast::<T>(), na),
                std::slice::from_raw_parts(self.ptrs[b].cast::<T>(), nb),
                std::slice::from_raw_parts_mut(self.ptrs[out].cast::<T>(), no),
            )
        }
    }

    fn matmul(
        &mut self,
        a: &plan::View,
        b: &plan::View,
        out: usize,
        dtype: DType,
    ) -> Result<(), RunError> {
        fn go<T: native::Real>(
            sa: &[T],
            sb: &[T],
            so: &mut [T],
            a: &plan::View,
            b: &plan::View,
            threads: usize,
            isa: IsaLevel,
        ) -> Result<(), RunError> {
            native::matmul_capped(
                isa,
                a.from_offset(sa),
                &a.shape,
                &a.strides,
                b.from_offset(sb),
                &b.shape,
                &b.strides,
                so,
                threads,
            )
            .map_err(|e| RunError::Native(e.to_string()))
        }
        let (threads, isa) = (self.threads, self.isa);
        match dtype {
            DType::F32 => {
                // SAFETY: the planner made `out` a fresh f32 temp and `a`, `b` f32 buffers.
                let (sa, sb, so) = unsafe { self.slices::<f32>(a.buf, b.buf, out) };
                go(sa, sb, so, a, b, threads, isa)
            }
            DType::F64 => {
                // SAFETY: as above, for f64.
                let (sa, sb, so) = unsafe { self.slices::<f64>(a.buf, b.buf, out) };
                go(sa, sb, so, a, b, threads, isa)
            }
            DType::Bool | DType::I64 => Err(RunError::Native(format!("matmul on {dtype}"))),
        }
    }

    /// Runs a convolution; with `then` (its consumer kernel and the kernel's outer
    /// extent), runs the kernel on each block of output rows as the convolution finishes
    /// it ([`epilogue`]). Returns whether the kernel ran (otherwise it is the caller's).
    fn conv(
        &mut self,
        x: usize,
        w: usize,
        out: usize,
        p: &onde_ir::ConvParams,
        dtype: DType,
        then: Option<(&KernelCode, usize)>,
    ) -> Result<bool, RunError> {
        #[allow(clippy::too_many_arguments)] // `native::conv`'s arguments and `then`.
        fn go<T: native::Real>(
            sx: &[T],
            xs: &[usize],
            sw: &[T],
            ws: &[usize],
            p: &onde_ir::ConvParams,
            so: &mut [T],
            os: &[usize],
            scratch: &mut Vec<T>,
            threads: usize,
            isa: IsaLevel,
            then: Option<(&KernelCode, usize, SendPtr<*mut u8>)>,
        ) -> Result<bool, native::NativeError> {
            let Some((code, rows, table)) = then else {
                native::conv_capped(isa, sx, xs, sw, ws, p, so, os, scratch, threads)?;
                return Ok(false);
            };
            let run = move |lo: usize, hi: usize| {
                // SAFETY: as in `Executable::kernel` — the kernel accesses only its
                // loads' and stores' buffers, all live in the table, within their
                // sizes. `conv_then` calls this on rows `[lo, hi)` once the
                // convolution has written them and never writes them again; calls
                // cover disjoint rows. `epilogue::check_conv` admitted the kernel only
                // if it reads the output at the element it writes and its stores share
                // no storage with the input or weight the convolution still reads
                // (`stores_clear_of` re-checks the pointers of this run). The rows it
                // touches lie in the part of `so` the convolution has finished: the
                // convolution's `&mut` views of them are never used again.
                unsafe { code.call(table.get(), lo, hi, std::ptr::null_mut()) }
            };
            let e = native::RowEpilogue { rows, run: &run };
            native::conv_then(sx, xs, sw, ws, p, so, os, scratch, threads, isa, &e)
        }
        // The shapes are borrowed from a handle on the plan (no copy per run).
        let compiled = self.compiled.clone();
        let dims = |b: usize| compiled.plan.buffers[b].ty.shape.dims();
        let (xs, ws, os) = (dims(x), dims(w), dims(out));
        let (threads, isa) = (self.threads, self.isa);
        let table = SendPtr(self.ptrs.as_ptr() as *mut *mut u8);
        let then = then.map(|(code, rows)| (code, rows, table));
        let err = |e: native::NativeError| RunError::Native(e.to_string());
        match dtype {
            DType::F32 => {
                let mut scratch = std::mem::take(&mut self.scratch32);
                // SAFETY: the planner made `out` a fresh f32 temp and `x`, `w` f32 buffers.
                let (sx, sw, so) = unsafe { self.slices::<f32>(x, w, out) };
                let r =
                    go(sx, xs, sw, ws, p, so, os, &mut scratch, threads, isa, then).map_err(err);
                self.scratch32 = scratch;
                r
            }
            DType::F64 => {
                let mut scratch = std::mem::take(&mut self.scratch64);
                // SAFETY: as above, for f64.
                let (sx, sw, so) = unsafe { self.slices::<f64>(x, w, out) };
                let r =
                    go(sx, xs, sw, ws, p, so, os, &mut scratch, threads, isa, then).map_err(err);
                self.scratch64 = scratch;
                r
            }
            DType::Bool | DType::I64 => Err(RunError::Native(format!("conv on {dtype}"))),
        }
    }

    /// Whether no store of kernel step `k` overlaps, at the pointers of this run, the
    /// memory of `bufs` (a graph output may be bound anywhere by the caller).
    fn stores_clear_of(&self, k: usize, bufs: &[usize]) -> bool {
        let Step::Kernel(kernel) = &self.compiled.plan.steps[k] else {
            return false;
        };
        let span = |b: usize| {
            let start = self.ptrs[b] as usize;
            let ty = &self.compiled.plan.buffers[b].ty;
            (start, start + ty.shape.numel() * elem_size(ty.dtype))
        };
        kernel.stores.iter().all(|st| {
            let (s0, s1) = span(st.buffer);
            bufs.iter().all(|&b| {
                let (b0, b1) = span(b);
                s1 <= b0 || b1 <= s0
            })
        })
    }

    /// Index of the feed `name`.
    fn feed_index(&self, name: &str) -> Option<usize> {
        self.feeds.iter().position(|(n, _, _)| n == name)
    }

    /// Runs with feeds given as pointers (feed index, pointer), unchecked: for scan
    /// bodies, whose feeds the planner sized.
    fn run_ptrs(&mut self, idx: &[usize], ptrs: &[*mut u8]) -> Result<(), RunError> {
        for (&k, &p) in idx.iter().zip(ptrs) {
            let buf = self.feeds[k].2;
            self.ptrs[buf] = p;
        }
        self.execute()
    }

    fn host(&mut self, graph: &Graph, args: &[usize], outs: &[usize]) -> Result<(), RunError> {
        let mut feeds = HashMap::with_capacity(args.len());
        for (i, &b) in args.iter().enumerate() {
            let ty = &self.compiled.plan.buffers[b].ty;
            // SAFETY: buffer `b` holds its declared elements (see `output_array`).
            feeds.insert(format!("a{i}"), unsafe { read_array(self.ptrs[b], ty) });
        }
        let results = onde_runtime::run(graph, &feeds)?;
        for (r, &b) in results.iter().zip(outs) {
            // SAFETY: `b` is a temp allocated for exactly this result's type (the host
            // graph's result types are the planned buffer types).
            unsafe { write_array(self.ptrs[b], r) };
        }
        Ok(())
    }
}

/// Kernels with fewer iterations run on one thread (spawning costs ~10 µs).
pub const PARALLEL_MIN_ITERATIONS: usize = 1 << 16;

/// A raw pointer that may cross into the pool's workers during one kernel call.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);

// SAFETY: the pointee (the buffer table and partial slots) outlives the call: the scope
// (pool or scoped threads) joins every share before `kernel` returns, and the kernels
// only read the table and write disjoint memory.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: the buffer table, shared by a conv epilogue's closure across the
// convolution's threads: it is only read, and the call joins them before returning.
unsafe impl Sync for SendPtr<*mut u8> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut T {
        self.0
    }

    fn add(self, bytes: usize) -> *mut u8 {
        // SAFETY: callers stay within the partials array (one 8-byte slot per thread).
        unsafe { self.0.cast::<u8>().add(bytes) }
    }
}

/// Combines per-thread partial reductions (8-byte slots holding the dtype's value) into
/// the reduction's output element.
fn combine_partials(kind: onde_ir::ReduceKind, d: DType, parts: &[[u8; 8]], dst: *mut u8) {
    use onde_ir::ReduceKind;
    match d {
        DType::F32 | DType::F64 => {
            let val = |p: &[u8; 8]| {
                if d == DType::F32 {
                    f64::from(f32::from_ne_bytes([p[0], p[1], p[2], p[3]]))
                } else {
                    f64::from_ne_bytes(*p)
                }
            };
            let mut acc = val(&parts[0]);
            for p in &parts[1..] {
                let v = val(p);
                acc = match kind {
                    ReduceKind::Sum => acc + v,
                    ReduceKind::Prod => acc * v,
                    ReduceKind::Max => {
                        if acc.is_nan() || v.is_nan() {
                            f64::NAN
                        } else {
                            acc.max(v)
                        }
                    }
                    ReduceKind::Min => {
                        if acc.is_nan() || v.is_nan() {
                            f64::NAN
                        } else {
                            acc.min(v)
                        }
                    }
                };
            }
            if d == DType::F32 {
                let b = (acc as f32).to_ne_bytes();
                // SAFETY: `dst` is the reduction's output element (4 bytes for f32).
                unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), dst, 4) };
            } else {
                let b = acc.to_ne_bytes();
                // SAFETY: `dst` is the reduction's output element (8 bytes for f64).
                unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), dst, 8) };
            }
        }
        DType::I64 => {
            let mut acc = i64::from_ne_bytes(parts[0]);
            for p in &parts[1..] {
                let v = i64::from_ne_bytes(*p);
                acc = match kind {
                    ReduceKind::Sum => acc.wrapping_add(v),
                    ReduceKind::Prod => acc.wrapping_mul(v),
                    ReduceKind::Max => acc.max(v),
                    ReduceKind::Min => acc.min(v),
                };
            }
            let b = acc.to_ne_bytes();
            // SAFETY: `dst` is the reduction's output element (8 bytes for i64).
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), dst, 8) };
        }
        DType::Bool => {}
    }
}
