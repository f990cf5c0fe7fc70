//! Tensor creation: constants, `zeros`/`ones`/`full`, `arange`, `rand`/`randn` with
//! explicit or builder-managed seeds, and the `*_like` forms.

use super::Tensor;
use crate::builder::GraphBuilder;
use onde_ir::{Array, DType, Distribution, Op, Shape, SourceLoc};

impl GraphBuilder {
    /// A filled tensor as a scalar constant broadcast with `expand`: graphs stay small
    /// and fusion sees a broadcast operand instead of a large constant buffer.
    pub(crate) fn full_at(
        &self,
        api: &'static str,
        shape: Shape,
        value: f64,
        dtype: DType,
        loc: SourceLoc,
    ) -> Tensor {
        let c = self.push(
            api,
            Op::Constant(Array::scalar(dtype, value)),
            &[],
            loc.clone(),
        );
        c.expand_at(api, shape, loc)
    }

    /// A tensor of `shape` filled with `value` (`torch.full`).
    #[track_caller]
    pub fn full(&self, shape: impl Into<Shape>, value: f64, dtype: DType) -> Tensor {
        self.full_at("full", shape.into(), value, dtype, SourceLoc::caller())
    }

    /// Zeros (`torch.zeros`).
    #[track_caller]
    pub fn zeros(&self, shape: impl Into<Shape>, dtype: DType) -> Tensor {
        self.full_at("zeros", shape.into(), 0.0, dtype, SourceLoc::caller())
    }

    /// Ones (`torch.ones`).
    #[track_caller]
    pub fn ones(&self, shape: impl Into<Shape>, dtype: DType) -> Tensor {
        self.full_at("ones", shape.into(), 1.0, dtype, SourceLoc::caller())
    }

    /// A rank-0 constant.
    #[track_caller]
    pub fn scalar(&self, value: f64, dtype: DType) -> Tensor {
        self.push(
            "scalar",
            Op::Constant(Array::scalar(dtype, value)),
            &[],
            SourceLoc::caller(),
        )
    }

    /// `start, start+step, …` below `end` (`torch.arange`); a zero step is an error.
    #[track_caller]
    pub fn arange(&self, start: f64, end: f64, step: f64, dtype: DType) -> Tensor {
        let loc = SourceLoc::caller();
        let n = if step == 0.0 || !((end - start) / step).is_finite() {
            None
        } else {
            Some(((end - start) / step).ceil().max(0.0) as usize)
        };
        let Some(n) = n else {
            return self.poisoned(crate::Error::Op {
                op: "arange",
                reason: format!("invalid range {start}..{end} with step {step}"),
                operands: vec![],
                loc,
            });
        };
        let v: Vec<f64> = (0..n).map(|i| start + step * i as f64).collect();
        match Array::from_f64(dtype, [n], &v) {
            Ok(a) => self.push("arange", Op::Constant(a), &[], loc),
            Err(e) => self.poisoned(crate::Error::Op {
                op: "arange",
                reason: e.to_string(),
                operands: vec![],
                loc,
            }),
        }
    }

    fn random_at(
        &self,
        api: &'static str,
        dist: Distribution,
        shape: Shape,
        dtype: DType,
        seed: Option<&Tensor>,
        loc: SourceLoc,
    ) -> Tensor {
        let seed = match seed {
            Some(s) => s.clone(),
            None => {
                let s = {
                    let mut st = self.state.borrow_mut();
                    let s = st.next_seed;
                    st.next_seed = st.next_seed.wrapping_add(1);
                    s
                };
                self.push(api, Op::Constant(Array::scalar_i64(s)), &[], loc.clone())
            }
        };
        Tensor::apply_at(api, Op::Random { dist, dtype, shape }, &[&seed], loc)
    }

    /// Uniform samples on `[0, 1)` (`torch.rand`), seeded from the builder (see
    /// [`GraphBuilder::manual_seed`]).
    #[track_caller]
    pub fn rand(&self, shape: impl Into<Shape>, dtype: DType) -> Tensor {
        self.random_at(
            "rand",
            Distribution::Uniform,
            shape.into(),
            dtype,
            None,
            SourceLoc::caller(),
        )
    }

    /// Standard normal samples (`torch.randn`), seeded from the builder.
    #[track_caller]
    pub fn randn(&self, shape: impl Into<Shape>, dtype: DType) -> Tensor {
        self.random_at(
            "randn",
            Distribution::Normal,
            shape.into(),
            dtype,
            None,
            SourceLoc::caller(),
        )
    }

    /// Uniform samples with an explicit `i64[]` seed tensor (e.g. a graph input, so each
    /// run can draw new numbers).
    #[track_caller]
    pub fn rand_seeded(&self, shape: impl Into<Shape>, dtype: DType, seed: &Tensor) -> Tensor {
        self.random_at(
            "rand",
            Distribution::Uniform,
            shape.into(),
            dtype,
            Some(seed),
            SourceLoc::caller(),
        )
    }

    /// Normal samples with an explicit `i64[]` seed tensor.
    #[track_caller]
    pub fn randn_seeded(&self, shape: impl Into<Shape>, dtype: DType, seed: &Tensor) -> Tensor {
        self.random_at(
            "randn",
            Distribution::Normal,
            shape.into(),
            dtype,
            Some(seed),
            SourceLoc::caller(),
        )
    }
}

impl Tensor {
    fn full_like_at(&self, api: &'static str, value: f64, loc: SourceLoc) -> Tensor {
        if let Err(e) = self.check() {
            return self.builder().poisoned(e);
        }
        self.builder()
            .full_at(api, self.shape(), value, self.dtype(), loc)
    }

    /// Zeros of this tensor's shape and dtype (`torch.zeros_like`).
    #[track_caller]
    pub fn zeros_like(&self) -> Tensor {
        self.full_like_at("zeros_like", 0.0, SourceLoc::caller())
    }

    /// Ones of this tensor's shape and dtype (`torch.ones_like`).
    #[track_caller]
    pub fn ones_like(&self) -> Tensor {
        self.full_like_at("ones_like", 1.0, SourceLoc::caller())
    }

    /// `value` in this tensor's shape and dtype (`torch.full_like`).
    #[track_caller]
    pub fn full_like(&self, value: f64) -> Tensor {
        self.full_like_at("full_like", value, SourceLoc::caller())
    }

    /// Uniform samples of this tensor's shape and (float) dtype (`torch.rand_like`).
    #[track_caller]
    pub fn rand_like(&self) -> Tensor {
        let loc = SourceLoc::caller();
        if let Err(e) = self.check() {
            return self.builder().poisoned(e);
        }
        self.builder().random_at(
            "rand_like",
            Distribution::Uniform,
            self.shape(),
            self.dtype(),
            None,
            loc,
        )
    }
}
