//! Pooling modules (`torch.nn.MaxPool1d/2d`, `AvgPool1d/2d`, `AdaptiveAvgPool1d`):
//! parameter-free wrappers of the functional ops of `tensor::pool` (semantics there).

use super::{Module, TimeMap};
use crate::tensor::{PoolOpts, Tensor};

macro_rules! pool_module {
    ($(#[$m:meta])* $name:ident, $method:ident) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            /// The options (kernel size, stride, padding, …).
            pub opts: PoolOpts,
        }

        impl $name {
            /// The module with these options (`PoolOpts::new(kernel)` and its setters).
            pub fn new(opts: PoolOpts) -> $name {
                $name { opts }
            }
        }

        impl Module for $name {
            #[track_caller]
            fn forward(&self, x: &Tensor) -> Tensor {
                x.$method(&self.opts)
            }

            fn time_map(&self) -> TimeMap {
                pool_window(&self.opts)
            }
        }
    };
}

pool_module!(
    /// `torch.nn.MaxPool1d`.
    MaxPool1d,
    max_pool1d
);
pool_module!(
    /// `torch.nn.MaxPool2d`.
    MaxPool2d,
    max_pool2d
);
pool_module!(
    /// `torch.nn.AvgPool1d`.
    AvgPool1d,
    avg_pool1d
);
pool_module!(
    /// `torch.nn.AvgPool2d`.
    AvgPool2d,
    avg_pool2d
);

/// `torch.nn.AdaptiveAvgPool1d(output_size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveAvgPool1d {
    /// Bins along the last axis.
    pub output_size: usize,
}

impl AdaptiveAvgPool1d {
    /// The module with `output_size` bins.
    pub fn new(output_size: usize) -> AdaptiveAvgPool1d {
        AdaptiveAvgPool1d { output_size }
    }
}

impl Module for AdaptiveAvgPool1d {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.adaptive_avg_pool1d(self.output_size)
    }

    /// Bins depend on the input length: counted as seeing all of it.
    fn time_map(&self) -> TimeMap {
        TimeMap::Global
    }
}

/// The window of pooling options along the last pooled axis.
fn pool_window(o: &PoolOpts) -> TimeMap {
    let last = |v: &[usize], default: usize| v.last().copied().unwrap_or(default);
    let kernel = last(&o.kernel, 1);
    TimeMap::Window {
        kernel,
        stride: o.stride.as_deref().map_or(kernel, |s| last(s, kernel)),
        dilation: last(&o.dilation, 1),
        padding: last(&o.padding, 0),
    }
}
