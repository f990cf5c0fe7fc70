//! The prepacked GEMM (`native::prepacked`) for matrix products against weights, with
//! the consumer kernel as its register epilogue when `exec::epilogue` admitted it:
//! - in versioned runs, against weights the caller vouches are unchanged, packed once
//!   per weights version (an evaluator's small-batch inference);
//! - in plain runs (a training step, whose weights change every step), packed at every
//!   run, only where that measured faster than the library on AVX-512: a transposed
//!   weight (`x·Wᵀ`, which the library packs slowly) and at most [`PER_RUN_MAX_M`]
//!   rows, where packing plus our kernel (with the bias + activation kernel folded
//!   in) beats the library's own packing; with more rows the library's kernel is the
//!   faster one. On 8 lanes W1's step measured level, so it is not done there.
//!   Measurements: `docs/performance.md` (2026-12-07, fifth session).

/// Most rows of a product packed at every plain run (module doc).
const PER_RUN_MAX_M: usize = 256;

use super::*;

impl Executable {
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

    /// Runs a 2-D f32 matmul step on the prepacked-weights kernel when
    /// [`Self::packed_ready`] takes it (module doc); `false` when it does not apply
    /// (the caller then uses the library GEMM).
    pub(super) fn packed_matmul(
        &mut self,
        i: usize,
        a: &plan::View,
        b: &plan::View,
        out: BufId,
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
    pub(super) fn packed_ready(
        &mut self,
        i: usize,
        a: &plan::View,
        b: &plan::View,
        dtype: DType,
    ) -> Result<bool, RunError> {
        let version = self.weights_version;
        let plan = &self.compiled.plan;
        let root = plan::memory::root(plan, b.buf);
        // A constant never changes: its packed copy stays valid in plain runs too.
        let constant = matches!(plan.buffers[root].kind, BufKind::Const(_));
        let weight = match (&plan.buffers[root].kind, version) {
            (BufKind::Const(_), _) | (BufKind::Feed(_), None) => true,
            (BufKind::Feed(_), Some(_)) => {
                self.is_weight.get(root.index()).copied().unwrap_or(false)
            }
            (BufKind::Temp | BufKind::Alias(_), _) => false,
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
        let transposed = b.strides[0] == 1 && b.strides[1] != 1;
        let sixteen_lanes = crate::kernel::engine::Width::for_level(self.isa)
            == Some(crate::kernel::engine::Width::X16);
        if version.is_none() && !(transposed && m <= PER_RUN_MAX_M && sixteen_lanes) {
            return Ok(false);
        }
        if self.packed.len() < plan.steps.len() {
            self.packed.resize_with(plan.steps.len(), || None);
        }
        let src = self.ptrs[b.buf] as usize;
        let fresh = (constant || version.is_some())
            && matches!(&self.packed[i], Some((v, p, _)) if (constant || *v == version) && *p == src);
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
    pub(super) fn packed_run(
        &mut self,
        i: usize,
        a: &plan::View,
        dst: BufId,
        bias: Option<(BufId, isize)>,
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
}
