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
//!
//! Files: this one compiles, caches, allocates and runs the steps; `native_steps.rs`
//! runs matrix products and convolutions on their buffers, `prepacked.rs` the versioned
//! runs on packed weights, `epilogue.rs` decides which consumer kernels become
//! epilogues (`rows_epilogue.rs`: a softmax, its backward, a residual add or column sums after a product), `dump.rs` prints plans and profiles, `copy.rs` the data-movement steps,
//! `scan.rs` loops, `state.rs` state bound to outputs.

mod copy;
mod dump;
mod epilogue;
mod native_steps;
mod prepacked;
mod rows_epilogue;
mod scan;
mod state;

use state::StateBinding;

use crate::isa::IsaLevel;
use crate::jit::{Jit, JitError, KernelFn};
use crate::native;
use crate::plan::{self, BufId, BufKind, Plan, PlanError, Step};
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
    /// Threads: large kernels, matrix products and convolutions are split over them,
    /// and two independent scans (a bidirectional layer's directions,
    /// `plan::concurrent`) run side by side when there are at least two.
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
    /// (versioned runs, and plain runs for a transposed weight with few rows), or its
    /// bias alone preset for the library GEMM to add the product onto (plain runs on
    /// one thread); a convolution's elementwise consumer on each block of output rows
    /// as soon as it is written (see `exec::epilogue`).
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
    /// A plain column sum in registers ([`crate::kernel::engine::column`]).
    ColumnSum(Arc<crate::kernel::engine::column::ColumnSum>),
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
            KernelCode::ColumnSum(c) => {
                // A column sum is one share (`clif::outer_extent` gives it extent 1):
                // only the share starting at 0 computes it, so a split could not race.
                debug_assert!(lo == 0 && partial.is_null(), "a column sum is one share");
                if lo == 0 {
                    // SAFETY: forwarded; `column::compile` only returns sums of a width
                    // this CPU has.
                    unsafe { c.call(table) }
                }
            }
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
    aliases: Vec<(BufId, BufId)>,
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
    feeds: Vec<(String, TensorType, BufId)>,
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
    /// panels)`, reused while the caller vouches the weights are unchanged (`None`:
    /// packed in a plain run, never reused; its storage is).
    packed: Vec<Option<(Option<u64>, usize, native::prepacked::PackedB)>>,
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
    /// Copies of the outputs that were (views of) the caller's feed arrays in the last
    /// run ([`Executable::keep_fed_outputs`]).
    kept: Vec<Array>,
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
    /// Per carry: staging for its new value, or the spare it is written into by turns.
    carry_stage: Vec<Storage>,
    /// Per stacked output: the body writes it straight into its slot of the result
    /// (see `exec/scan.rs`), and the body buffer's own pointer, restored after a call.
    direct: Vec<Option<*mut u8>>,
    /// Per carry: where the body leaves its new value (see `exec/scan.rs`).
    carries: Vec<scan::CarryPath>,
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
    crate::kernel::nest::elem_size(d)
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
    // Per step: the kernel's code compiled ahead of time (column sum, tile engine).
    let mut natives = Vec::with_capacity(plan.steps.len());
    let mut bodies = Vec::with_capacity(plan.steps.len());
    for s in &plan.steps {
        let native = match s {
            Step::Kernel(k) => crate::kernel::engine::column::compile(k, opts.isa)
                .map(|c| KernelCode::ColumnSum(Arc::new(c)))
                .or_else(|| {
                    crate::kernel::engine::compile(k, opts.isa)
                        .map(|p| KernelCode::Engine(Arc::new(p)))
                }),
            Step::MatMul { .. }
            | Step::Conv { .. }
            | Step::Host { .. }
            | Step::Scan { .. }
            | Step::Copy(..) => None,
        };
        slots.push(match s {
            Step::Kernel(k) if native.is_none() => Some(jit.add(k)?),
            Step::Kernel(_) => None,
            Step::MatMul { .. }
            | Step::Conv { .. }
            | Step::Host { .. }
            | Step::Scan { .. }
            | Step::Copy(..) => None,
        });
        natives.push(native);
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
        .zip(natives)
        .zip(&plan.steps)
        .map(|((slot, native), st)| {
            let Step::Kernel(k) = st else { return None };
            let (extent, reduced) = crate::kernel::clif::outer_extent(k);
            let code = match (slot, native) {
                (_, Some(code)) => code,
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
            BufKind::Alias(of) => Some((BufId::new(i), of)),
            BufKind::Feed(_) | BufKind::Const(_) | BufKind::Temp => None,
        })
        .collect();
    let memory = plan::memory::plan_memory(&plan);
    if cfg!(debug_assertions) {
        plan::verify::verify_memory(&plan, &memory)?;
    }
    let epilogues = if opts.epilogues {
        epilogue::find(&plan, &memory)
    } else {
        vec![None; plan.steps.len()]
    };
    if cfg!(debug_assertions) {
        epilogue::verify(&plan, &memory, &epilogues)?;
    }
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
                    feeds.push((name.clone(), b.ty.clone(), BufId::new(i)));
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
                    ptrs.push(
                        ptrs.get(of.index())
                            .copied()
                            .unwrap_or(std::ptr::null_mut()),
                    );
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
            kept: Vec::new(),
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

    /// Runs on `feeds` (every input and parameter, by name) and returns the outputs.
    pub fn run(&mut self, feeds: &[(&str, &Array)]) -> Result<Vec<Array>, RunError> {
        self.run_in_place(feeds)?;
        Ok((0..self.compiled.plan.outputs.len())
            .map(|i| self.output_array(i))
            .collect())
    }

    /// Output `i` of the last [`Executable::run_in_place`] as a new array (zeros before
    /// any run, or after a failed one for an output that was a feed).
    pub fn output_array(&self, i: usize) -> Array {
        let b = self.compiled.plan.outputs[i];
        let ty = &self.compiled.plan.buffers[b].ty;
        if self.ptrs[b].is_null() {
            return Array::full(ty.dtype, ty.shape.clone(), 0.0);
        }
        // SAFETY: buffer `b` holds numel elements of its dtype: a temp/const storage
        // allocated for it, a bound state, or an owned copy of a fed output
        // (`keep_fed_outputs`), never an array the caller may have freed since.
        unsafe { read_array(self.ptrs[b], ty) }
    }

    /// After a run: outputs that are (views of) the caller's feed arrays are copied
    /// into storage the executable owns, so reading them later never touches an array
    /// the caller may have freed; after a failed run, the pointers to the caller's
    /// arrays are cleared instead.
    fn keep_fed_outputs(&mut self, feeds: &[(&str, &Array)], ok: bool) {
        // No allocation unless an output is fed (the no-allocation guarantee of runs).
        let inside = |p: *mut u8| {
            let p = p as usize;
            feeds.iter().any(|(_, a)| {
                let lo = array_ptr(a) as usize;
                p >= lo && p < lo + a.numel() * elem_size(a.dtype())
            })
        };
        let plan = &self.compiled.plan;
        let mut used = 0;
        for (i, p) in self.ptrs.iter_mut().enumerate() {
            if p.is_null() || !inside(*p) {
                continue;
            }
            let b = BufId::new(i);
            if ok && plan.outputs.contains(&b) {
                // SAFETY: `p` points into a feed array borrowed for this call, at a view
                // the planner typed as buffer `b` (numel elements of its dtype).
                let a = unsafe { read_array(*p, &plan.buffers[b].ty) };
                // (A copy per run: outputs that are feeds are rare, and the only
                // allocation of such a run.)
                if used < self.kept.len() {
                    self.kept[used] = a;
                } else {
                    self.kept.push(a);
                }
                *p = array_ptr(&self.kept[used]);
                used += 1;
            } else {
                *p = std::ptr::null_mut();
            }
        }
        self.kept.truncate(used);
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
        }
        // Every feed checked: only now point at the caller's arrays (a refused run
        // leaves no pointer to them).
        for (name, _, buf) in &self.feeds {
            if let Some((_, a)) = feeds.iter().find(|(n, _)| n == name) {
                if !self.states.iter().any(|st| st.feed_buf == *buf) {
                    self.ptrs[*buf] = array_ptr(a);
                }
            }
        }
        self.point_states();
        let r = self.execute();
        if r.is_ok() {
            self.commit_states();
        }
        self.keep_fed_outputs(feeds, r.is_ok());
        r
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
                // Ran as the previous matmul's epilogue, or alongside the previous scan.
                continue;
            }
            if self.threads > 1 && compiled.memory.alongside.get(i + 1) == Some(&true) {
                let times = self.scan_pair(i)?;
                if let Some(p) = self.profile.as_mut() {
                    for (k, t) in times.into_iter().enumerate() {
                        p[i + k].0 += 1;
                        p[i + k].1 += t;
                    }
                }
                fused_next = true;
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
                    if let Some(epilogue::Fused::TileRows(what, dst)) = compiled.epilogues[i] {
                        if self.matmul_rows(a, b, *out, what, dst)? {
                            fused_next = true;
                        } else if !self.packed_matmul(i, a, b, *out, *dtype)? {
                            self.matmul(a, b, *out, *dtype)?
                        }
                    } else if let Some(epilogue::Fused::Registers(ep)) = compiled.epilogues[i] {
                        if self.packed_ready(i, a, b, *dtype)? {
                            self.packed_run(i, a, ep.dst, ep.bias, ep.act)?;
                            fused_next = true;
                        } else if self.library_bias_run(a, b, ep)? {
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
        let threads = self.share_count(k.iterations(), extent);
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
        // One 8-byte slot per share, reused across calls (no allocation per run).
        let mut partials = std::mem::take(&mut self.partials);
        partials.clear();
        partials.resize(threads, [0u8; 8]);
        let parts = SendPtr(partials.as_mut_ptr().cast::<u8>());
        let share = move |t: usize, lo: usize, hi: usize| {
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
        run_shares(threads, extent, share);
        if reduced {
            // A kernel with sibling reductions is never split this way
            // (`clif::outer_extent`): one partial slot per share holds one value.
            if let Some(r) = &k.reduction {
                let st = &k.stores[r.store];
                let d = k.dtypes[st.expr];
                let dst = self.ptrs[st.buffer];
                combine_partials(r.kind, d, &partials, dst);
            }
        }
        self.partials = partials;
    }

    /// Threads to split `extent` items over (at most one per item): the executor's
    /// when the step does at least [`PARALLEL_MIN_ITERATIONS`] of `work`, else one.
    fn share_count(&self, work: usize, extent: usize) -> usize {
        if work >= PARALLEL_MIN_ITERATIONS {
            self.threads.min(extent).max(1)
        } else {
            1
        }
    }

    fn buf_len(&self, b: BufId) -> usize {
        self.compiled.plan.buffers[b].ty.shape.numel()
    }

    /// Two operand slices and an output slice of type `T` over buffers.
    ///
    /// # Safety
    /// Each buffer must hold its declared element count of `T` (temps and consts are
    /// allocated for it, feeds were type-checked), aligned for `T`; `out` must be a temp
    /// distinct from both operands.
    unsafe fn slices<T>(&mut self, a: BufId, b: BufId, out: BufId) -> (&[T], &[T], &mut [T]) {
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

    fn host(&mut self, graph: &Graph, args: &[BufId], outs: &[BufId]) -> Result<(), RunError> {
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

/// Runs `share(t, lo, hi)` for every `t < threads`, `[lo, hi)` the `t`-th of the
/// contiguous ranges splitting `[0, extent)` (the last ones may be empty), on the
/// worker pool (or scoped threads without one), this thread taking share 0; returns
/// when every share is done.
fn run_shares(threads: usize, extent: usize, share: impl Fn(usize, usize, usize) + Send + Copy) {
    let chunk = extent.div_ceil(threads.max(1));
    let part = move |t: usize| share(t, (t * chunk).min(extent), ((t + 1) * chunk).min(extent));
    match crate::pool::pool() {
        Some(pool) => pool.in_place_scope(|scope| {
            for t in 1..threads {
                scope.spawn(move |_| part(t));
            }
            part(0);
        }),
        None => std::thread::scope(|scope| {
            for t in 1..threads {
                scope.spawn(move || part(t));
            }
            part(0);
        }),
    }
}

/// A raw pointer that may cross into the pool's workers during one kernel call.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);

// SAFETY: the pointee (the buffer table and partial slots, or a softmax's operand and
// output buffers) outlives the call: the scope (pool or scoped threads, `run_shares`)
// joins every share before the step returns, and the shares only read the table and
// the operands and write disjoint memory.
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
