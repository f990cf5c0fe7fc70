//! SpecAugment's masking (torchaudio's `FrequencyMasking` and `TimeMasking` with
//! `iid_masks=True`): in training, each example gets one band of `⌊u·param⌋`
//! consecutive frequency bins (or frames) set to zero, starting at
//! `⌊u'·(size − u·param)⌋` (torchaudio's draw), with new draws at every step from the
//! step seed (no recompilation); in eval, the identity.

use onde_nn::module::Module;
use onde_nn::Tensor;
use std::cell::Cell;

/// Masks one band of at most `param − 1` entries along `axis` (−2: frequency, −1:
/// time) of `x` `[..., F, T]`, per example (per index of the axes before the last two).
#[track_caller]
fn mask_along(x: &Tensor, param: usize, axis: i64, training: bool, op: &'static str) -> Tensor {
    let dims = x.size();
    if dims.len() < 2 || !x.dtype().is_float() {
        return x.refuse(op, "expects a float spectrogram [..., freq, time]");
    }
    let size = dims[(dims.len() as i64 + axis) as usize];
    if param > size {
        return x.refuse(
            op,
            format!("the mask parameter {param} is larger than the axis ({size})"),
        );
    }
    if !training || param == 0 {
        return x.clone();
    }
    let g = x.builder();
    let mut draw = dims.clone();
    let n = draw.len();
    draw[n - 2] = 1;
    draw[n - 1] = 1;
    let dtype = x.dtype();
    let (s1, s2) = (g.stream_seed(), g.stream_seed());
    let value = g.rand_seeded(draw.clone(), dtype, &s1) * param as f64;
    let start = (g.rand_seeded(draw, dtype, &s2) * (-&value + size as f64)).floor();
    let end = &start + value.floor();
    let mut shape = vec![1usize; n];
    shape[(n as i64 + axis) as usize] = size;
    let idx = g.arange(0.0, size as f64, 1.0, dtype).reshape(shape);
    let inside = idx.ge(&start).logical_and(idx.lt(&end));
    x.masked_fill(&inside, 0.0)
}

/// Frequency masking of `x` `[..., F, T]` (training only).
#[track_caller]
pub fn frequency_masking(x: &Tensor, param: usize, training: bool) -> Tensor {
    mask_along(x, param, -2, training, "frequency_masking")
}

/// Time masking of `x` `[..., F, T]` (training only).
#[track_caller]
pub fn time_masking(x: &Tensor, param: usize, training: bool) -> Tensor {
    mask_along(x, param, -1, training, "time_masking")
}

/// A masking module (torchaudio's class of the same name) applying `$apply`, in train
/// mode until `set_training(false)`.
macro_rules! masking_module {
    ($name:ident, $apply:ident, $what:literal) => {
        #[doc = concat!("torchaudio's `", stringify!($name), "`: [`", stringify!($apply), "`] of bands of up to `param − 1` ", $what, ", in train mode until `set_training(false)`.")]
        #[derive(Debug)]
        pub struct $name {
            /// Maximum band width (exclusive).
            pub param: usize,
            training: Cell<bool>,
        }

        impl $name {
            #[doc = concat!("Bands of up to `param − 1` ", $what, ".")]
            pub fn new(param: usize) -> $name {
                $name {
                    param,
                    training: Cell::new(true),
                }
            }
        }

        impl Module for $name {
            fn forward(&self, x: &Tensor) -> Tensor {
                $apply(x, self.param, self.training.get())
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

masking_module!(FrequencyMasking, frequency_masking, "frequency bins");
masking_module!(TimeMasking, time_masking, "frames");
