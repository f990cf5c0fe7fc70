//! JIT module management: one Cranelift `JITModule` per executable, holding all of its
//! kernels (many functions per module amortise finalisation), freed when the
//! executable is dropped.
//!
//! The ISA comes from `cranelift_native` (so SSE4.1/AVX/FMA are used when present and
//! no libcalls like `fmaf` are needed), with `is_pic=false` (required by cranelift-jit)
//! and `opt_level=speed`. DESIGN.md found `none` faster for hand-ordered loops, but our
//! fused kernels repeat constants and address arithmetic that `speed` (GVN, LICM)
//! removes: measured on W6 here, forward 2.94 ms with `speed` vs 4.39 ms with `none`,
//! forward+backward 3.51 vs 4.87 ms, with the same ~2 ms compile time.

use crate::kernel::{clif, Kernel};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};

/// A JIT error (ISA detection, compilation, finalisation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("JIT: {0}")]
pub struct JitError(pub String);

/// The signature of a compiled kernel (see [`clif::signature`]).
pub type KernelFn = unsafe extern "C" fn(*const *mut u8, i64, i64, *mut u8);

/// A module being filled with kernels.
pub struct Jit {
    module: JITModule,
    ctx: Context,
    fctx: FunctionBuilderContext,
    ids: Vec<FuncId>,
    /// CLIF text of each kernel (for `onde dump --clif`), if requested.
    pub clif: Vec<String>,
    keep_clif: bool,
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jit")
            .field("kernels", &self.ids.len())
            .finish()
    }
}

impl Jit {
    /// A new module for the host CPU.
    pub fn new(keep_clif: bool) -> Result<Jit, JitError> {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| {
            f.set(k, v)
                .map_err(|e| JitError(format!("setting {k}={v}: {e}")))
        };
        set(&mut flags, "opt_level", "speed")?;
        set(&mut flags, "is_pic", "false")?;
        set(&mut flags, "use_colocated_libcalls", "false")?;
        let isa_builder = cranelift_native::builder().map_err(|e| JitError(e.to_string()))?;
        let isa = isa_builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| JitError(e.to_string()))?;
        let builder = JITBuilder::with_isa(isa, default_libcall_names());
        let module = JITModule::new(builder);
        let ctx = module.make_context();
        Ok(Jit {
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            ids: Vec::new(),
            clif: Vec::new(),
            keep_clif,
        })
    }

    /// Compiles a kernel; returns its index for [`Jit::finish`].
    pub fn add(&mut self, k: &Kernel) -> Result<usize, JitError> {
        let sig = clif::signature(self.module.isa().default_call_conv());
        let name = format!("{}_{}", k.name, self.ids.len());
        let id = self
            .module
            .declare_function(&name, Linkage::Local, &sig)
            .map_err(|e| JitError(e.to_string()))?;
        self.ctx.clear();
        self.ctx.func.signature = sig;
        let config = self.module.isa().frontend_config();
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            clif::emit(k, &mut b);
            b.finalize(config);
        }
        if self.keep_clif {
            self.clif
                .push(format!("; {}\n{}", k.name, self.ctx.func.display()));
        }
        self.ctx.set_disasm(self.keep_clif);
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| JitError(format!("kernel {}: {e:?}", k.name)))?;
        if self.keep_clif {
            if let Some(asm) = self.ctx.compiled_code().and_then(|c| c.vcode.clone()) {
                if let Some(last) = self.clif.last_mut() {
                    last.push_str(&format!("; machine code of {}\n{asm}", k.name));
                }
            }
        }
        self.ids.push(id);
        Ok(self.ids.len() - 1)
    }

    /// Finalises the module and returns the function pointers, in `add` order, and the
    /// module (which owns the code: keep it alive while the pointers are used).
    pub fn finish(mut self) -> Result<(JITModule, Vec<KernelFn>, Vec<String>), JitError> {
        self.module
            .finalize_definitions()
            .map_err(|e| JitError(e.to_string()))?;
        let mut fns = Vec::with_capacity(self.ids.len());
        for &id in &self.ids {
            let p = self.module.get_finalized_function(id);
            // SAFETY: `p` points to a finalised function compiled from
            // `clif::signature`, i.e. `extern "C" fn(*const *mut u8, i64, i64, *mut u8)`
            // in the default call convention, and the module that owns it is returned
            // alongside.
            fns.push(unsafe { std::mem::transmute::<*const u8, KernelFn>(p) });
        }
        Ok((self.module, fns, self.clif))
    }
}
