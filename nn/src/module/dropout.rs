//! Dropout modules (`torch.nn.Dropout`, `Dropout1d`, `Dropout2d`): the functional ops of
//! `tensor::dropout` in train mode, the identity in eval mode (the mode is read when
//! `forward` builds the graph; see the [module docs](super)).

use super::Module;
use crate::tensor::Tensor;
use std::cell::Cell;

macro_rules! dropout_module {
    ($(#[$m:meta])* $name:ident, $method:ident) => {
        $(#[$m])*
        #[derive(Clone, Debug)]
        pub struct $name {
            /// Probability of zeroing (PyTorch's default 0.5); checked by `forward`.
            pub p: f64,
            training: Cell<bool>,
        }

        impl $name {
            /// In train mode, zeroing with probability `p`.
            pub fn new(p: f64) -> $name {
                $name {
                    p,
                    training: Cell::new(true),
                }
            }
        }

        impl Default for $name {
            /// `p = 0.5`, as PyTorch.
            fn default() -> $name {
                $name::new(0.5)
            }
        }

        impl Module for $name {
            #[track_caller]
            fn forward(&self, x: &Tensor) -> Tensor {
                x.$method(self.p, self.training.get())
            }

            fn set_training(&self, training: bool) {
                self.training.set(training);
            }

            fn is_training(&self) -> bool {
                self.training.get()
            }
        }
    };
}

dropout_module!(
    /// `torch.nn.Dropout(p)`: element-wise ([`Tensor::dropout`]).
    Dropout,
    dropout
);
dropout_module!(
    /// `torch.nn.Dropout1d(p)`: whole channels of `[N, C, L]` ([`Tensor::dropout1d`]).
    Dropout1d,
    dropout1d
);
dropout_module!(
    /// `torch.nn.Dropout2d(p)`: whole channels of `[N, C, H, W]` ([`Tensor::dropout2d`]).
    Dropout2d,
    dropout2d
);
