//! `torch.nn.functional` as free functions: convolutions, pooling, normalisation,
//! dropout, attention, activations and losses, each the stateless form of a layer in
//! [`crate::module`] (which holds the parameters and calls these).
//!
//! They forward to the [`Tensor`] methods of the same name (one implementation; the
//! methods are for chaining, `x.conv1d(..).relu()`), taking arguments in PyTorch's
//! order, and carry `#[track_caller]` so errors name the caller's line. Losses live in
//! [`crate::loss`] and are re-exported here.

use crate::tensor::{ConvOpts, PadMode, PoolOpts, Tensor};
use crate::IntList;

pub use crate::loss::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss,
    NllOpts, Reduction,
};

/// `F.conv1d(input, weight, bias, stride, padding, dilation, groups)`.
#[track_caller]
pub fn conv1d(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, opts: &ConvOpts) -> Tensor {
    input.conv1d(weight, bias, opts)
}

/// `F.conv2d(input, weight, bias, stride, padding, dilation, groups)`.
#[track_caller]
pub fn conv2d(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, opts: &ConvOpts) -> Tensor {
    input.conv2d(weight, bias, opts)
}

/// `F.pad(input, pad, mode, value)`: `mode` constant (with its value), reflect,
/// replicate or circular; `pad` lists (before, after) pairs from the last axis.
#[track_caller]
pub fn pad(input: &Tensor, pad: impl IntList, mode: PadMode) -> Tensor {
    input.pad_mode(pad, mode)
}

/// `F.max_pool1d`.
#[track_caller]
pub fn max_pool1d(input: &Tensor, opts: &PoolOpts) -> Tensor {
    input.max_pool1d(opts)
}

/// `F.max_pool2d`.
#[track_caller]
pub fn max_pool2d(input: &Tensor, opts: &PoolOpts) -> Tensor {
    input.max_pool2d(opts)
}

/// `F.avg_pool1d`.
#[track_caller]
pub fn avg_pool1d(input: &Tensor, opts: &PoolOpts) -> Tensor {
    input.avg_pool1d(opts)
}

/// `F.avg_pool2d`.
#[track_caller]
pub fn avg_pool2d(input: &Tensor, opts: &PoolOpts) -> Tensor {
    input.avg_pool2d(opts)
}

/// `F.adaptive_avg_pool1d`.
#[track_caller]
pub fn adaptive_avg_pool1d(input: &Tensor, output_size: usize) -> Tensor {
    input.adaptive_avg_pool1d(output_size)
}

/// `F.layer_norm(input, normalized_shape, weight, bias, eps)`.
#[track_caller]
pub fn layer_norm(
    input: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Tensor {
    input.layer_norm(normalized_shape, weight, bias, eps)
}

/// `F.group_norm(input, num_groups, weight, bias, eps)`.
#[track_caller]
pub fn group_norm(
    input: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Tensor {
    input.group_norm(num_groups, weight, bias, eps)
}

/// `F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum,
/// eps)` (see [`Tensor::batch_norm`] for the running-statistics update).
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn batch_norm(
    input: &Tensor,
    running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> Tensor {
    input.batch_norm(
        running_mean,
        running_var,
        weight,
        bias,
        training,
        momentum,
        eps,
    )
}

/// `F.dropout(input, p, training)` (a fresh mask every step from the step seed).
#[track_caller]
pub fn dropout(input: &Tensor, p: f64, training: bool) -> Tensor {
    input.dropout(p, training)
}

/// `F.dropout1d(input, p, training)`: whole channels of `[N, C, L]`.
#[track_caller]
pub fn dropout1d(input: &Tensor, p: f64, training: bool) -> Tensor {
    input.dropout1d(p, training)
}

/// `F.dropout2d(input, p, training)`: whole channels of `[N, C, H, W]`.
#[track_caller]
pub fn dropout2d(input: &Tensor, p: f64, training: bool) -> Tensor {
    input.dropout2d(p, training)
}

/// `F.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal,
/// scale)`.
#[track_caller]
pub fn scaled_dot_product_attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    attn_mask: Option<&Tensor>,
    dropout_p: f64,
    is_causal: bool,
    scale: Option<f64>,
) -> Tensor {
    query.scaled_dot_product_attention(key, value, attn_mask, dropout_p, is_causal, scale)
}

/// `F.relu`.
#[track_caller]
pub fn relu(input: &Tensor) -> Tensor {
    input.relu()
}

/// `F.leaky_relu(input, negative_slope)`.
#[track_caller]
pub fn leaky_relu(input: &Tensor, negative_slope: f64) -> Tensor {
    input.leaky_relu(negative_slope)
}

/// `F.prelu(input, weight)`.
#[track_caller]
pub fn prelu(input: &Tensor, weight: &Tensor) -> Tensor {
    input.prelu(weight)
}

/// `torch.sigmoid` (`F.sigmoid`).
#[track_caller]
pub fn sigmoid(input: &Tensor) -> Tensor {
    input.sigmoid()
}

/// `torch.tanh` (`F.tanh`).
#[track_caller]
pub fn tanh(input: &Tensor) -> Tensor {
    input.tanh()
}

/// `F.softmax(input, dim)`.
#[track_caller]
pub fn softmax(input: &Tensor, dim: i64) -> Tensor {
    input.softmax(dim)
}

/// `F.log_softmax(input, dim)`.
#[track_caller]
pub fn log_softmax(input: &Tensor, dim: i64) -> Tensor {
    input.log_softmax(dim)
}

/// `F.linear(input, weight, bias)`: `input @ weightᵀ + bias` over the last axis.
///
/// An input with several leading axes (`[B, T, in]`) is multiplied as one `[B·T, in]`
/// matrix and reshaped back (same values): a strided input (an RNN's batch-first input
/// seen time-major) is then copied once, narrow as it is, and multiplied in one GEMM,
/// where the batched product would run one small GEMM per leading index.
#[track_caller]
pub fn linear(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let size = input.size();
    let y = if size.len() > 2 && weight.dim() == 2 && input.check().is_ok() {
        let rows: usize = size[..size.len() - 1].iter().product();
        let mut out: Vec<i64> = size[..size.len() - 1].iter().map(|&d| d as i64).collect();
        out.push(weight.size()[0] as i64);
        input
            .reshape([rows as i64, size[size.len() - 1] as i64])
            .matmul(&weight.t())
            .reshape(out)
    } else {
        input.matmul(&weight.t())
    };
    match bias {
        Some(b) => y + b,
        None => y,
    }
}
