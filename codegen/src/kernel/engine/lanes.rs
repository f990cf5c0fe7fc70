//! The engine's vector widths: one trait of f32-vector operations, one token type per
//! instruction set ([`X16`]: AVX-512F/DQ, 16 lanes; [`X8`]: AVX2 + FMA, 8 lanes).
//!
//! The engine's operations (`ops`), math (`math`) and loops (`run`) are written once,
//! generic over [`Lanes`]; each width is instantiated inside one `#[target_feature]`
//! entry point, into which everything on the hot path is `#[inline(always)]`, so the
//! intrinsics inline there (the pattern of the `pulp` crate, which `faer` and `gemm`
//! use). Our own trait rather than `pulp`: the engine must reproduce the Cranelift
//! f32x4 lane bit for bit (`max`/`min` with `-0 < +0` and NaN propagation built from
//! MAXPS/MINPS operand order, masked blends, integer views of the lanes for the
//! exponent tricks of `exp`/`log`), so it needs exactly these instructions, and the
//! trait is ~40 one-line methods. A NEON width (4 lanes) would be a third token.
//!
//! Soundness: a token exists only when the CPU has its instruction set: it is made by
//! `assume`, inside code running under the matching `#[target_feature]`, entered only
//! after [`crate::IsaLevel::detect`] found the level. So the methods are safe to call;
//! each intrinsic call is wrapped by the `simd!` macro whose SAFETY argument is that
//! one.

use std::arch::x86_64::*;

/// Defines `$vis unsafe fn $name(width: Width, args: $args)`, which runs `$kernel(token,
/// args)` — a kernel written once over [`Lanes`] — inside the `#[target_feature]`
/// entry point of `width` (AVX-512F/DQ for [`X16`], AVX2 + FMA for [`X8`]), so the
/// kernel's `#[inline(always)]` body and the intrinsics inline there.
///
/// The defined function's safety contract: `width` is one this CPU has (as
/// [`super::Width::for_level`] returns), and `args` meet `$kernel`'s contract.
macro_rules! width_entry {
    ($(#[$meta:meta])* $vis:vis unsafe fn $name:ident($args:ty) => $kernel:ident) => {
        $(#[$meta])*
        $vis unsafe fn $name(width: $crate::kernel::engine::Width, args: $args) {
            #[target_feature(enable = "avx512f,avx512dq")]
            unsafe fn x16(a: $args) {
                // SAFETY: this runs with AVX-512F/DQ (the contract of `$name`), so the
                // token's claim holds; `a` is forwarded.
                unsafe { $kernel($crate::kernel::engine::lanes::X16::assume(), a) }
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn x8(a: $args) {
                // SAFETY: as in `x16`, with AVX2 and FMA.
                unsafe { $kernel($crate::kernel::engine::lanes::X8::assume(), a) }
            }
            // SAFETY: the width's instruction set is present and `args` meet the
            // kernel's contract (both the contract of `$name`).
            unsafe {
                match width {
                    $crate::kernel::engine::Width::X16 => x16(args),
                    $crate::kernel::engine::Width::X8 => x8(args),
                }
            }
        }
    };
}
pub(crate) use width_entry;

/// `unsafe` around an intrinsic call in a token's method.
macro_rules! simd {
    ($e:expr) => {
        // SAFETY: a token of this impl's type exists only on a CPU with its instruction
        // set (see the module doc), which is all these intrinsics require.
        unsafe { $e }
    };
}

/// An f32 comparison predicate (ordered unless said).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pred {
    Eq,
    /// Unordered or not equal (Cranelift's `NotEqual`).
    NeU,
    Lt,
    Le,
    Gt,
    Ge,
    /// Either operand NaN.
    Unord,
    /// Not less-or-equal, or unordered (`x > y` or NaN).
    NleU,
}

/// f32 vectors of one width and their lane masks (see the module doc).
pub(crate) trait Lanes: Copy {
    /// Lanes per vector.
    const N: usize;
    /// A vector of `N` f32 lanes (also viewed as `N` i32 lanes).
    type V: Copy;
    /// A lane mask.
    type M: Copy;

    fn splat(self, x: f32) -> Self::V;
    fn splat_bits(self, bits: u32) -> Self::V;
    fn zero(self) -> Self::V;
    /// # Safety
    /// `p` valid for reading `N` floats.
    unsafe fn load(self, p: *const f32) -> Self::V;
    /// # Safety
    /// `p` valid for writing `N` floats.
    unsafe fn store(self, p: *mut f32, v: Self::V);
    /// Lanes `[0, n)` from `p`, the others 0 (`n < N`; nothing past them is read).
    ///
    /// # Safety
    /// `p` valid for reading `min(n, N)` floats.
    unsafe fn load_first(self, p: *const f32, n: usize) -> Self::V;
    /// Lanes `[0, n)` of `v` to `p` (nothing past them is written).
    ///
    /// # Safety
    /// `p` valid for writing `min(n, N)` floats.
    unsafe fn store_first(self, p: *mut f32, n: usize, v: Self::V);
    /// The mask of lanes `[0, n)`.
    fn first(self, n: usize) -> Self::M;
    /// The lanes, in order, in the first `N` entries.
    fn to_array(self, v: Self::V) -> [f32; 16];

    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    fn sqrt(self, a: Self::V) -> Self::V;
    /// `a·b + c`, one rounding.
    fn fmadd(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `-(a·b) + c`, one rounding.
    fn fnmadd(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// MINPS: `a < b ? a : b` (the second operand on NaN or equal).
    fn min_raw(self, a: Self::V, b: Self::V) -> Self::V;
    /// MAXPS: `a > b ? a : b` (the second operand on NaN or equal).
    fn max_raw(self, a: Self::V, b: Self::V) -> Self::V;
    fn floor(self, a: Self::V) -> Self::V;
    /// Round to nearest, ties to even.
    fn nearest(self, a: Self::V) -> Self::V;

    fn and(self, a: Self::V, b: Self::V) -> Self::V;
    fn or(self, a: Self::V, b: Self::V) -> Self::V;
    fn xor(self, a: Self::V, b: Self::V) -> Self::V;
    /// `!a & b`.
    fn andnot(self, a: Self::V, b: Self::V) -> Self::V;
    /// i32 lanes `a + b`.
    fn add_i(self, a: Self::V, b: Self::V) -> Self::V;
    /// i32 lanes `a - b`.
    fn sub_i(self, a: Self::V, b: Self::V) -> Self::V;
    fn shl_22(self, a: Self::V) -> Self::V;
    fn shl_23(self, a: Self::V) -> Self::V;
    /// `p · 2ⁿ` for `exp`'s reduction (`math::exp`): `n` integer-valued in `[-150, 128]`,
    /// `t` the same `n` as the reduction encodes it (`n + 254` in its low mantissa
    /// bits). By default two multiplies by powers of two (`2^⌊(n+254)/2⌋-127` then the
    /// rest), the first exact, so one rounding — to a subnormal or to infinity at the
    /// ends of the range, exact elsewhere; a width with a scaling instruction (SCALEFPS)
    /// does the same in one (one rounding of the same exact product: the same bits).
    #[inline(always)]
    fn scale_pow2(self, p: Self::V, t: Self::V, n: Self::V) -> Self::V {
        let _ = n;
        let s1 = self.and(self.shl_22(t), self.splat_bits(0x7f80_0000));
        let s2 = self.sub_i(self.shl_23(t), s1);
        self.mul(self.mul(p, s1), s2)
    }
    /// Logical shift right of the i32 lanes by 23.
    fn shr_23(self, a: Self::V) -> Self::V;
    /// The i32 lanes converted to f32.
    fn i32_to_f32(self, a: Self::V) -> Self::V;

    fn cmp(self, p: Pred, a: Self::V, b: Self::V) -> Self::M;
    /// Unsigned comparison of mask lanes (0 or all ones: false < true).
    fn cmp_masks(self, c: onde_ir::CmpOp, a: Self::V, b: Self::V) -> Self::M;
    /// `m ? b : a` per lane.
    fn blend(self, m: Self::M, a: Self::V, b: Self::V) -> Self::V;
    fn mask_and(self, a: Self::M, b: Self::M) -> Self::M;
    /// All-ones lanes where `m` holds, zeros elsewhere.
    fn mask_to_v(self, m: Self::M) -> Self::V;
    /// The lanes whose sign bit is set.
    fn sign_to_mask(self, v: Self::V) -> Self::M;
    /// The sum of the lanes (a fixed order per width).
    fn reduce_add(self, v: Self::V) -> f32;
    /// Every lane holds the maximum of `v`'s lanes, folded in registers by MAXPS. A NaN
    /// lane may be dropped, and which of `-0` and `+0` survives is unspecified — lanes
    /// may even disagree on those (callers such as the softmax do not depend on it:
    /// `exp(x - ±0)` is the same, and a NaN makes its line NaN anyway).
    fn all_max_raw(self, v: Self::V) -> Self::V;
    /// Lane `j` = `at[2·j]` for `j < min(left, N)`, 0 beyond: every other element, two
    /// loads de-interleaved in registers (only the `2·min(left, N) - 1` first floats
    /// are read).
    ///
    /// # Safety
    /// `at` valid for reading `2·min(left, N) - 1` floats; `left ≥ 1`.
    unsafe fn load_every_other(self, at: *const f32, left: usize) -> Self::V;
}

/// AVX-512F/DQ: 16 lanes, `__mmask16` masks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct X16(());

impl X16 {
    /// The token without detection (the kernels detect AVX-512F/DQ through
    /// [`crate::IsaLevel::detect`] when they choose a width).
    ///
    /// # Safety
    /// The CPU has AVX-512F and DQ (e.g. the caller runs under
    /// `#[target_feature(enable = "avx512f,avx512dq")]`).
    #[inline(always)]
    pub(crate) unsafe fn assume() -> X16 {
        X16(())
    }
}

/// The mask of lanes `[0, n)` of a 16-lane vector (all of them for `n >= 16`).
#[inline(always)]
pub(crate) fn mask16(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

impl Lanes for X16 {
    const N: usize = 16;
    type V = __m512;
    type M = __mmask16;

    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        simd!(_mm512_set1_ps(x))
    }
    #[inline(always)]
    fn splat_bits(self, bits: u32) -> __m512 {
        simd!(_mm512_castsi512_ps(_mm512_set1_epi32(bits as i32)))
    }
    #[inline(always)]
    fn zero(self) -> __m512 {
        simd!(_mm512_setzero_ps())
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        // SAFETY: the caller's `p`; the token's instruction set.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512) {
        // SAFETY: the caller's `p`; the token's instruction set.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_first(self, p: *const f32, n: usize) -> __m512 {
        // SAFETY: masked-off lanes are not read; the caller's `p` covers the others.
        unsafe { _mm512_maskz_loadu_ps(mask16(n), p) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize, v: __m512) {
        // SAFETY: masked-off lanes are not written; the caller's `p` covers the others.
        unsafe { _mm512_mask_storeu_ps(p, mask16(n), v) }
    }
    #[inline(always)]
    fn first(self, n: usize) -> __mmask16 {
        mask16(n)
    }
    #[inline(always)]
    fn to_array(self, v: __m512) -> [f32; 16] {
        let mut a = [0f32; 16];
        // SAFETY: `a` holds 16 floats.
        unsafe { self.store(a.as_mut_ptr(), v) };
        a
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_add_ps(a, b))
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_sub_ps(a, b))
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_mul_ps(a, b))
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_div_ps(a, b))
    }
    #[inline(always)]
    fn sqrt(self, a: __m512) -> __m512 {
        simd!(_mm512_sqrt_ps(a))
    }
    #[inline(always)]
    fn fmadd(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        simd!(_mm512_fmadd_ps(a, b, c))
    }
    #[inline(always)]
    fn fnmadd(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        simd!(_mm512_fnmadd_ps(a, b, c))
    }
    #[inline(always)]
    fn min_raw(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_min_ps(a, b))
    }
    #[inline(always)]
    fn max_raw(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_max_ps(a, b))
    }
    #[inline(always)]
    fn floor(self, a: __m512) -> __m512 {
        simd!(_mm512_roundscale_ps::<
            { _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC },
        >(a))
    }
    #[inline(always)]
    fn nearest(self, a: __m512) -> __m512 {
        simd!(_mm512_roundscale_ps::<
            { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
        >(a))
    }
    #[inline(always)]
    fn and(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_and_ps(a, b))
    }
    #[inline(always)]
    fn or(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_or_ps(a, b))
    }
    #[inline(always)]
    fn xor(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_xor_ps(a, b))
    }
    #[inline(always)]
    fn andnot(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_andnot_ps(a, b))
    }
    #[inline(always)]
    fn add_i(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_castsi512_ps(_mm512_add_epi32(
            _mm512_castps_si512(a),
            _mm512_castps_si512(b)
        )))
    }
    #[inline(always)]
    fn sub_i(self, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_castsi512_ps(_mm512_sub_epi32(
            _mm512_castps_si512(a),
            _mm512_castps_si512(b)
        )))
    }
    #[inline(always)]
    fn shl_22(self, a: __m512) -> __m512 {
        simd!(_mm512_castsi512_ps(_mm512_slli_epi32::<22>(
            _mm512_castps_si512(a)
        )))
    }
    #[inline(always)]
    fn shl_23(self, a: __m512) -> __m512 {
        simd!(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(
            _mm512_castps_si512(a)
        )))
    }
    #[inline(always)]
    fn scale_pow2(self, p: __m512, _t: __m512, n: __m512) -> __m512 {
        simd!(_mm512_scalef_ps(p, n))
    }
    #[inline(always)]
    fn shr_23(self, a: __m512) -> __m512 {
        simd!(_mm512_castsi512_ps(_mm512_srli_epi32::<23>(
            _mm512_castps_si512(a)
        )))
    }
    #[inline(always)]
    fn i32_to_f32(self, a: __m512) -> __m512 {
        simd!(_mm512_cvtepi32_ps(_mm512_castps_si512(a)))
    }
    #[inline(always)]
    fn cmp(self, p: Pred, a: __m512, b: __m512) -> __mmask16 {
        simd!(match p {
            Pred::Eq => _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b),
            Pred::NeU => _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(a, b),
            Pred::Lt => _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b),
            Pred::Le => _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, b),
            Pred::Gt => _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b),
            Pred::Ge => _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, b),
            Pred::Unord => _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b),
            Pred::NleU => _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(a, b),
        })
    }
    #[inline(always)]
    fn cmp_masks(self, c: onde_ir::CmpOp, a: __m512, b: __m512) -> __mmask16 {
        use onde_ir::CmpOp;
        simd!({
            let (x, y) = (_mm512_castps_si512(a), _mm512_castps_si512(b));
            match c {
                CmpOp::Eq => _mm512_cmp_epu32_mask::<_MM_CMPINT_EQ>(x, y),
                CmpOp::Ne => _mm512_cmp_epu32_mask::<_MM_CMPINT_NE>(x, y),
                CmpOp::Lt => _mm512_cmp_epu32_mask::<_MM_CMPINT_LT>(x, y),
                CmpOp::Le => _mm512_cmp_epu32_mask::<_MM_CMPINT_LE>(x, y),
                CmpOp::Gt => _mm512_cmp_epu32_mask::<_MM_CMPINT_NLE>(x, y),
                CmpOp::Ge => _mm512_cmp_epu32_mask::<_MM_CMPINT_NLT>(x, y),
            }
        })
    }
    #[inline(always)]
    fn blend(self, m: __mmask16, a: __m512, b: __m512) -> __m512 {
        simd!(_mm512_mask_blend_ps(m, a, b))
    }
    #[inline(always)]
    fn mask_and(self, a: __mmask16, b: __mmask16) -> __mmask16 {
        a & b
    }
    #[inline(always)]
    fn mask_to_v(self, m: __mmask16) -> __m512 {
        simd!(_mm512_castsi512_ps(_mm512_movm_epi32(m)))
    }
    #[inline(always)]
    fn sign_to_mask(self, v: __m512) -> __mmask16 {
        simd!(_mm512_movepi32_mask(_mm512_castps_si512(v)))
    }
    #[inline(always)]
    fn reduce_add(self, v: __m512) -> f32 {
        simd!(_mm512_reduce_add_ps(v))
    }
    #[inline(always)]
    fn all_max_raw(self, v: __m512) -> __m512 {
        simd!({
            // Swap 256-bit halves, then 128-bit quarters, then pairs, then neighbours.
            let v = _mm512_max_ps(v, _mm512_shuffle_f32x4::<0b0100_1110>(v, v));
            let v = _mm512_max_ps(v, _mm512_shuffle_f32x4::<0b1011_0001>(v, v));
            let v = _mm512_max_ps(v, _mm512_permute_ps::<0b0100_1110>(v));
            _mm512_max_ps(v, _mm512_permute_ps::<0b1011_0001>(v))
        })
    }
    #[inline(always)]
    unsafe fn load_every_other(self, at: *const f32, left: usize) -> __m512 {
        let span = 2 * left.min(16) - 1;
        // SAFETY: both loads are masked to the `span` floats the caller guarantees (the
        // second starts 16 floats in; masked-off lanes are not read, and `wrapping_add`
        // forms its address without claiming it is in bounds).
        unsafe {
            let lo = _mm512_maskz_loadu_ps(mask16(span), at);
            let hi = _mm512_maskz_loadu_ps(mask16(span.saturating_sub(16)), at.wrapping_add(16));
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            _mm512_permutex2var_ps(lo, even, hi)
        }
    }
}

/// AVX2 + FMA: 8 lanes; masks are vectors of all-ones or zero lanes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct X8(());

impl X8 {
    /// The token without detection (the engine detects AVX2 + FMA through
    /// [`crate::IsaLevel::detect`] when it compiles a program).
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA (e.g. the caller runs under
    /// `#[target_feature(enable = "avx2,fma")]`).
    #[inline(always)]
    pub(crate) unsafe fn assume() -> X8 {
        X8(())
    }
}

impl X8 {
    /// i32 lanes: all ones in lanes `[0, n)`.
    #[inline(always)]
    fn first_i(self, n: usize) -> __m256i {
        let n = n.min(8) as i32;
        simd!(_mm256_cmpgt_epi32(
            _mm256_set1_epi32(n),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
        ))
    }

    #[inline(always)]
    fn ints(self, a: __m256) -> __m256i {
        simd!(_mm256_castps_si256(a))
    }

    #[inline(always)]
    fn floats(self, a: __m256i) -> __m256 {
        simd!(_mm256_castsi256_ps(a))
    }
}

impl Lanes for X8 {
    const N: usize = 8;
    type V = __m256;
    type M = __m256;

    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        simd!(_mm256_set1_ps(x))
    }
    #[inline(always)]
    fn splat_bits(self, bits: u32) -> __m256 {
        simd!(_mm256_castsi256_ps(_mm256_set1_epi32(bits as i32)))
    }
    #[inline(always)]
    fn zero(self) -> __m256 {
        simd!(_mm256_setzero_ps())
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: the caller's `p`; the token's instruction set.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        // SAFETY: the caller's `p`; the token's instruction set.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_first(self, p: *const f32, n: usize) -> __m256 {
        // SAFETY: VMASKMOVPS neither reads masked-off lanes nor faults on them; the
        // caller's `p` covers the others.
        unsafe { _mm256_maskload_ps(p, self.first_i(n)) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize, v: __m256) {
        // SAFETY: masked-off lanes are not written; the caller's `p` covers the others.
        unsafe { _mm256_maskstore_ps(p, self.first_i(n), v) }
    }
    #[inline(always)]
    fn first(self, n: usize) -> __m256 {
        self.floats(self.first_i(n))
    }
    #[inline(always)]
    fn to_array(self, v: __m256) -> [f32; 16] {
        let mut a = [0f32; 16];
        // SAFETY: `a` holds 16 ≥ 8 floats.
        unsafe { self.store(a.as_mut_ptr(), v) };
        a
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_add_ps(a, b))
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_sub_ps(a, b))
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_mul_ps(a, b))
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_div_ps(a, b))
    }
    #[inline(always)]
    fn sqrt(self, a: __m256) -> __m256 {
        simd!(_mm256_sqrt_ps(a))
    }
    #[inline(always)]
    fn fmadd(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        simd!(_mm256_fmadd_ps(a, b, c))
    }
    #[inline(always)]
    fn fnmadd(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        simd!(_mm256_fnmadd_ps(a, b, c))
    }
    #[inline(always)]
    fn min_raw(self, a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_min_ps(a, b))
    }
    #[inline(always)]
    fn max_raw(self, a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_max_ps(a, b))
    }
    #[inline(always)]
    fn floor(self, a: __m256) -> __m256 {
        simd!(_mm256_round_ps::<
            { _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC },
        >(a))
    }
    #[inline(always)]
    fn nearest(self, a: __m256) -> __m256 {
        simd!(_mm256_round_ps::<
            { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
        >(a))
    }
    #[inline(always)]
    fn and(self, a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_and_ps(a, b))
    }
    #[inline(always)]
    fn or(self, a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_or_ps(a, b))
    }
    #[inline(always)]
    fn xor(self, a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_xor_ps(a, b))
    }
    #[inline(always)]
    fn andnot(self, a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_andnot_ps(a, b))
    }
    #[inline(always)]
    fn add_i(self, a: __m256, b: __m256) -> __m256 {
        self.floats(simd!(_mm256_add_epi32(self.ints(a), self.ints(b))))
    }
    #[inline(always)]
    fn sub_i(self, a: __m256, b: __m256) -> __m256 {
        self.floats(simd!(_mm256_sub_epi32(self.ints(a), self.ints(b))))
    }
    #[inline(always)]
    fn shl_22(self, a: __m256) -> __m256 {
        self.floats(simd!(_mm256_slli_epi32::<22>(self.ints(a))))
    }
    #[inline(always)]
    fn shl_23(self, a: __m256) -> __m256 {
        self.floats(simd!(_mm256_slli_epi32::<23>(self.ints(a))))
    }
    #[inline(always)]
    fn shr_23(self, a: __m256) -> __m256 {
        self.floats(simd!(_mm256_srli_epi32::<23>(self.ints(a))))
    }
    #[inline(always)]
    fn i32_to_f32(self, a: __m256) -> __m256 {
        simd!(_mm256_cvtepi32_ps(self.ints(a)))
    }
    #[inline(always)]
    fn cmp(self, p: Pred, a: __m256, b: __m256) -> __m256 {
        simd!(match p {
            Pred::Eq => _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b),
            Pred::NeU => _mm256_cmp_ps::<_CMP_NEQ_UQ>(a, b),
            Pred::Lt => _mm256_cmp_ps::<_CMP_LT_OQ>(a, b),
            Pred::Le => _mm256_cmp_ps::<_CMP_LE_OQ>(a, b),
            Pred::Gt => _mm256_cmp_ps::<_CMP_GT_OQ>(a, b),
            Pred::Ge => _mm256_cmp_ps::<_CMP_GE_OQ>(a, b),
            Pred::Unord => _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b),
            Pred::NleU => _mm256_cmp_ps::<_CMP_NLE_UQ>(a, b),
        })
    }
    #[inline(always)]
    fn cmp_masks(self, c: onde_ir::CmpOp, a: __m256, b: __m256) -> __m256 {
        use onde_ir::CmpOp;
        // Lanes are 0 or all ones (-1 as i32): unsigned `x < y` (false < true) is
        // signed `x > y`.
        let (x, y) = (self.ints(a), self.ints(b));
        let ones = simd!(_mm256_set1_epi32(-1));
        let r = simd!(match c {
            CmpOp::Eq => _mm256_cmpeq_epi32(x, y),
            CmpOp::Ne => _mm256_xor_si256(_mm256_cmpeq_epi32(x, y), ones),
            CmpOp::Lt => _mm256_cmpgt_epi32(x, y),
            CmpOp::Le => _mm256_xor_si256(_mm256_cmpgt_epi32(y, x), ones),
            CmpOp::Gt => _mm256_cmpgt_epi32(y, x),
            CmpOp::Ge => _mm256_xor_si256(_mm256_cmpgt_epi32(x, y), ones),
        });
        self.floats(r)
    }
    #[inline(always)]
    fn blend(self, m: __m256, a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_blendv_ps(a, b, m))
    }
    #[inline(always)]
    fn mask_and(self, a: __m256, b: __m256) -> __m256 {
        self.and(a, b)
    }
    #[inline(always)]
    fn mask_to_v(self, m: __m256) -> __m256 {
        m
    }
    #[inline(always)]
    fn sign_to_mask(self, v: __m256) -> __m256 {
        // All ones where the sign bit is set (masks stay canonical).
        self.floats(simd!(_mm256_srai_epi32::<31>(self.ints(v))))
    }
    #[inline(always)]
    fn all_max_raw(self, v: __m256) -> __m256 {
        simd!({
            // Swap 128-bit halves, then pairs, then neighbours.
            let v = _mm256_max_ps(v, _mm256_permute2f128_ps::<0x01>(v, v));
            let v = _mm256_max_ps(v, _mm256_permute_ps::<0b0100_1110>(v));
            _mm256_max_ps(v, _mm256_permute_ps::<0b1011_0001>(v))
        })
    }
    #[inline(always)]
    fn reduce_add(self, v: __m256) -> f32 {
        simd!({
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
            _mm_cvtss_f32(s)
        })
    }
    #[inline(always)]
    unsafe fn load_every_other(self, at: *const f32, left: usize) -> __m256 {
        let span = 2 * left.min(8) - 1;
        // SAFETY: both loads are masked to the `span` floats the caller guarantees (the
        // second starts 8 floats in; masked-off lanes are neither read nor faulted on,
        // and `wrapping_add` forms its address without claiming it is in bounds).
        unsafe {
            let lo = self.load_first(at, span);
            let hi = self.load_first(at.wrapping_add(8), span.saturating_sub(8));
            let idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
            let lo = _mm256_permutevar8x32_ps(lo, idx);
            let hi = _mm256_permutevar8x32_ps(hi, idx);
            // The even elements of each: the low 128 bits of both.
            _mm256_permute2f128_ps::<0x20>(lo, hi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `all_max_raw` puts the maximum of the lanes in every lane, wherever it sits.
    #[inline(always)]
    fn all_max_on<L: Lanes>(l: L) {
        for at in 0..L::N {
            let mut lanes = [0f32; 16];
            for (i, v) in lanes.iter_mut().take(L::N).enumerate() {
                *v = -(i as f32) - 1.0;
            }
            lanes[at] = 3.5;
            // SAFETY: `lanes` holds 16 floats, `N ≤ 16`.
            let v = unsafe { l.load(lanes.as_ptr()) };
            let got = l.to_array(l.all_max_raw(v));
            assert!(
                got[..L::N].iter().all(|&g| g == 3.5),
                "{} lanes, max at {at}: {got:?}",
                L::N
            );
        }
    }

    /// The check compiled with each width's instruction set, as the kernels are.
    #[target_feature(enable = "avx512f,avx512dq")]
    fn all_max_x16() {
        // SAFETY: this function runs with AVX-512F/DQ (its callers check).
        all_max_on(unsafe { X16::assume() });
    }

    #[target_feature(enable = "avx2,fma")]
    fn all_max_x8() {
        // SAFETY: this function runs with AVX2 and FMA (its callers check).
        all_max_on(unsafe { X8::assume() });
    }

    #[test]
    fn all_max_raw_fills_every_lane_on_each_width_this_cpu_has() {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
        {
            // SAFETY: AVX-512F/DQ detected just above.
            unsafe { all_max_x16() };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA detected just above.
            unsafe { all_max_x8() };
        }
    }
}
