//! The executor side of the native steps: a matrix product or a convolution on its
//! buffers (with the convolution's row epilogue, and a product's bias preset for the
//! library GEMM to add onto), at the executable's thread count and ISA level.

use super::*;

impl Executable {
    pub(super) fn matmul(
        &mut self,
        a: &plan::View,
        b: &plan::View,
        out: BufId,
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

    /// A product with a bias-only epilogue that is not packed (a plain run with many
    /// rows, e.g. W5's `[3200, 64]` projections), through `native::matmul_bias_capped`:
    /// the one-panel kernel adds the bias as it stores each tile, or the bias is
    /// written to the epilogue's destination and the library GEMM adds the product onto
    /// it, so neither the product is stored nor the bias added in a second pass;
    /// bit-identical to the product then the kernel. Returns whether it ran (one thread
    /// only, no activation, and where one of those two kernels would take the product;
    /// otherwise the product and the kernel run as their own steps).
    pub(super) fn library_bias_run(
        &mut self,
        a: &plan::View,
        b: &plan::View,
        ep: epilogue::Simple,
    ) -> Result<bool, RunError> {
        let Some((bias, off)) = ep.bias else {
            return Ok(false);
        };
        if self.threads > 1
            || ep.act != native::prepacked::Activation::None
            || a.shape.len() != 2
            || b.shape.len() != 2
        {
            return Ok(false);
        }
        let (na, nb, nd, nbias) = (
            self.buf_len(a.buf),
            self.buf_len(b.buf),
            self.buf_len(ep.dst),
            self.buf_len(bias),
        );
        // SAFETY: the planner made `a`, `b`, the bias and `dst` f32 buffers of these
        // lengths; `dst` shares no storage with `a`, `b` or the bias (`epilogue::check`
        // admits only such epilogues), and nothing else accesses it during the call.
        let (sa, sb, sbias, sd) = unsafe {
            (
                std::slice::from_raw_parts(self.ptrs[a.buf].cast::<f32>(), na),
                std::slice::from_raw_parts(self.ptrs[b.buf].cast::<f32>(), nb),
                std::slice::from_raw_parts(self.ptrs[bias].cast::<f32>(), nbias),
                std::slice::from_raw_parts_mut(self.ptrs[ep.dst].cast::<f32>(), nd),
            )
        };
        let Some(sd) = sd.get_mut(..a.shape[0] * b.shape[1]) else {
            return Ok(false);
        };
        let sbias = usize::try_from(off)
            .ok()
            .and_then(|o| sbias.get(o..))
            .unwrap_or(&[]);
        native::matmul::matmul_bias_capped(
            self.isa,
            a.from_offset(sa),
            [a.shape[0], a.shape[1]],
            [a.strides[0], a.strides[1]],
            b.from_offset(sb),
            [b.shape[0], b.shape[1]],
            [b.strides[0], b.strides[1]],
            sbias,
            sd,
        )
        .map_err(|e| RunError::Native(e.to_string()))
    }

    /// A product whose next step, a softmax of it, its backward, a residual add or its
    /// column sums (`what`, found at compile by `exec::rows_epilogue`), runs as its
    /// epilogue: on each tile's rows, into the next step's destination `dst`. Returns whether it ran (one thread only, and where the
    /// one-panel kernel takes the products; otherwise the two steps run as they are).
    pub(super) fn matmul_rows(
        &mut self,
        a: &plan::View,
        b: &plan::View,
        out: BufId,
        what: rows_epilogue::After,
        dst: BufId,
    ) -> Result<bool, RunError> {
        if self.threads != 1 {
            return Ok(false);
        }
        if what == rows_epilogue::After::ColumnSums {
            return self.matmul_column_sums(a, b, out, dst);
        }
        let other = match what {
            rows_epilogue::After::SoftmaxBackward { y, .. } => Some(y),
            rows_epilogue::After::Add { r } => Some(r),
            rows_epilogue::After::Softmax { .. } | rows_epilogue::After::ColumnSums => None,
        };
        let len = |buf: BufId| self.buf_len(buf);
        // SAFETY: the planner made the product's operands, `y` (or `r`) and the
        // destination f32 buffers of these lengths; the destination shares no storage
        // with `a`, `b`, `y` or `r` (`rows_epilogue::check` admits only such
        // epilogues), and nothing else accesses it during the call; `y` and `r` are
        // only read.
        let (sa, sb, sy, sd) = unsafe {
            (
                std::slice::from_raw_parts(self.ptrs[a.buf].cast::<f32>(), len(a.buf)),
                std::slice::from_raw_parts(self.ptrs[b.buf].cast::<f32>(), len(b.buf)),
                other.map(|y| std::slice::from_raw_parts(self.ptrs[y].cast::<f32>(), len(y))),
                std::slice::from_raw_parts_mut(self.ptrs[dst].cast::<f32>(), len(dst)),
            )
        };
        let after = match (what, sy) {
            (rows_epilogue::After::Softmax { scale }, _) => native::matmul::RowsAfter::Softmax {
                scale: scale as f32,
            },
            (rows_epilogue::After::SoftmaxBackward { scale, .. }, Some(y)) => {
                native::matmul::RowsAfter::SoftmaxBackward {
                    y,
                    scale: scale as f32,
                }
            }
            (rows_epilogue::After::Add { .. }, Some(r)) => native::matmul::RowsAfter::Add { r },
            (
                rows_epilogue::After::SoftmaxBackward { .. } | rows_epilogue::After::Add { .. },
                None,
            )
            | (rows_epilogue::After::ColumnSums, _) => return Ok(false),
        };
        rows_capped(self.isa, (a, sa), (b, sb), after, sd)
    }

    /// [`Self::matmul_rows`] for column sums of the product: the product stored into
    /// `out`, its rows summed into `sums` as the tiles are done.
    fn matmul_column_sums(
        &mut self,
        a: &plan::View,
        b: &plan::View,
        out: BufId,
        sums: BufId,
    ) -> Result<bool, RunError> {
        let len = |buf: BufId| self.buf_len(buf);
        // SAFETY: the planner made the product's operands, its output and the sums f32
        // buffers of these lengths; the sums share no storage with `a`, `b` or the
        // output (`rows_epilogue::check` admits only such epilogues), the output none
        // with `a` or `b` (a product's fresh temp), and nothing else accesses the two
        // written buffers during the call.
        let (sa, sb, so, ss) = unsafe {
            (
                std::slice::from_raw_parts(self.ptrs[a.buf].cast::<f32>(), len(a.buf)),
                std::slice::from_raw_parts(self.ptrs[b.buf].cast::<f32>(), len(b.buf)),
                std::slice::from_raw_parts_mut(self.ptrs[out].cast::<f32>(), len(out)),
                std::slice::from_raw_parts_mut(self.ptrs[sums].cast::<f32>(), len(sums)),
            )
        };
        let after = native::matmul::RowsAfter::ColumnSums { sums: ss };
        rows_capped(self.isa, (a, sa), (b, sb), after, so)
    }

    /// Runs a convolution; with `then` (its consumer kernel and the kernel's outer
    /// extent), runs the kernel on each block of output rows as the convolution finishes
    /// it ([`epilogue`]). Returns whether the kernel ran (otherwise it is the caller's).
    pub(super) fn conv(
        &mut self,
        x: BufId,
        w: BufId,
        out: BufId,
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
        let dims = |b: BufId| compiled.plan.buffers[b].ty.shape.dims();
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
    pub(super) fn stores_clear_of(&self, k: usize, bufs: &[BufId]) -> bool {
        let Step::Kernel(kernel) = &self.compiled.plan.steps[k] else {
            return false;
        };
        let span = |b: BufId| {
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
}

/// `native::matmul::matmul_rows_capped` on two plan views and their buffers' slices.
fn rows_capped(
    isa: IsaLevel,
    (a, sa): (&plan::View, &[f32]),
    (b, sb): (&plan::View, &[f32]),
    after: native::matmul::RowsAfter<'_>,
    out: &mut [f32],
) -> Result<bool, RunError> {
    native::matmul::matmul_rows_capped(
        isa,
        a.from_offset(sa),
        &a.shape,
        &a.strides,
        b.from_offset(sb),
        &b.shape,
        &b.strides,
        after,
        out,
    )
    .map_err(|e| RunError::Native(e.to_string()))
}
