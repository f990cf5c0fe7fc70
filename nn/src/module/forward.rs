//! [`Forward`]: calling a module with several inputs or getting several outputs.
//!
//! [`Module::forward`] takes one tensor and returns one, which is what containers
//! ([`super::Sequential`], [`super::Residual`]) chain. A layer whose natural call has
//! more arguments or results also implements `Forward<I>` for each such signature,
//! with `I` a tuple of its arguments: attention takes `(query, key, value)` and masks and
//! returns the output and the weights; temporal pooling takes the sequence and its
//! lengths; a recurrent layer takes `x` and `h0` and returns `y` and `h_n`. Every
//! [`Module`] is also `Forward<&Tensor>` (its `forward`), so `m.call(&x)` works for any
//! layer and `m.call((&q, &k, &v))` for attention, as `m(x)` / `m(q, k, v)` in PyTorch.
//!
//! Design choice: a trait generic over the argument tuple (rather than
//! `forward(&[Tensor]) -> Vec<Tensor>`) keeps arity and types checked by the compiler,
//! lets optional arguments be `Option<&Tensor>`, and costs nothing for single-tensor
//! layers.

use super::attention::{MhaInputs, MultiheadAttention};
use super::temporal::{AttentivePooling, StatisticsPooling};
use super::Module;
use crate::tensor::Tensor;

/// A module call with input `I` (see the module docs).
pub trait Forward<I> {
    /// What the call returns.
    type Output;

    /// Adds the module's computation on `input` to the graph. Implementations should
    /// carry `#[track_caller]` so that errors name the caller's line.
    fn call(&self, input: I) -> Self::Output;
}

impl<'a, M: Module + ?Sized> Forward<&'a Tensor> for M {
    type Output = Tensor;
    #[track_caller]
    fn call(&self, x: &'a Tensor) -> Tensor {
        self.forward(x)
    }
}

/// `(query, key, value)` without masks → `(output, weights averaged over heads)`.
impl<'a> Forward<(&'a Tensor, &'a Tensor, &'a Tensor)> for MultiheadAttention {
    type Output = (Tensor, Option<Tensor>);
    #[track_caller]
    fn call(&self, (q, k, v): (&'a Tensor, &'a Tensor, &'a Tensor)) -> Self::Output {
        self.attend(
            q,
            k,
            v,
            &MhaInputs {
                need_weights: true,
                ..MhaInputs::default()
            },
        )
    }
}

/// `(query, key, value, options)` → `(output, weights)`, as
/// [`MultiheadAttention::attend`].
impl<'a> Forward<(&'a Tensor, &'a Tensor, &'a Tensor, &'a MhaInputs<'a>)> for MultiheadAttention {
    type Output = (Tensor, Option<Tensor>);
    #[track_caller]
    fn call(
        &self,
        (q, k, v, o): (&'a Tensor, &'a Tensor, &'a Tensor, &'a MhaInputs<'a>),
    ) -> Self::Output {
        self.attend(q, k, v, o)
    }
}

/// `(x, valid)`: pooling over the valid frames (lengths `i64 [B]` or mask `bool [B, T]`).
impl<'a> Forward<(&'a Tensor, Option<&'a Tensor>)> for StatisticsPooling {
    type Output = Tensor;
    #[track_caller]
    fn call(&self, (x, valid): (&'a Tensor, Option<&'a Tensor>)) -> Tensor {
        self.forward_valid(x, valid)
    }
}

/// `(x, valid)`: pooling over the valid frames (lengths `i64 [B]` or mask `bool [B, T]`).
impl<'a> Forward<(&'a Tensor, Option<&'a Tensor>)> for AttentivePooling {
    type Output = Tensor;
    #[track_caller]
    fn call(&self, (x, valid): (&'a Tensor, Option<&'a Tensor>)) -> Tensor {
        self.forward_valid(x, valid)
    }
}
