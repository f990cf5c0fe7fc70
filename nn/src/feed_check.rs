//! Class indices checked where they enter the graph.
//!
//! A loss that picks classes by index ([`crate::loss::nll_loss`],
//! [`crate::loss::cross_entropy`]) registers a check when its target is a graph input:
//! every run of a graph reading that input (`TrainStep::step`, `Evaluator::run`,
//! `Compiled::run`, `GraphBuilder::run`) first verifies the fed labels, so a label out
//! of range is reported in the user's terms — the loss, the input, the element, the
//! class count and the line that built the loss — instead of as an index error of the
//! gather deep inside the loss. Targets computed inside the graph are still caught by
//! that gather at run time (never a wrong value).

use crate::error::{Error, Result};
use onde_ir::{Array, DType, SourceLoc};

/// One registered check: the input `input` holds class indices in `0..classes` (or
/// `ignore`), or, for `lengths`, sequence lengths in `1..=classes`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexCheck {
    pub input: String,
    pub classes: usize,
    pub ignore: Option<i64>,
    pub api: &'static str,
    pub loc: SourceLoc,
    /// Sequence lengths (a recurrent layer's `lengths`) rather than class indices.
    pub lengths: bool,
}

/// Verifies every fed input that has checks.
pub(crate) fn check_feeds<'a>(
    checks: &[IndexCheck],
    feeds: impl IntoIterator<Item = (&'a str, &'a Array)> + Clone,
) -> Result<()> {
    for c in checks {
        let Some((_, a)) = feeds.clone().into_iter().find(|(n, _)| *n == c.input) else {
            continue;
        };
        if a.dtype() != DType::I64 {
            continue; // the executable reports the feed's type
        }
        let Some(vals) = a.as_i64() else { continue };
        let range = if c.lengths {
            1..c.classes as i64 + 1
        } else {
            0..c.classes as i64
        };
        let bad = vals
            .iter()
            .position(|&v| !range.contains(&v) && Some(v) != c.ignore);
        if let Some(i) = bad {
            let dims = a.shape().dims().to_vec();
            let mut pos = vec![0usize; dims.len()];
            let mut rest = i;
            for (k, &d) in dims.iter().enumerate().rev() {
                pos[k] = rest % d.max(1);
                rest /= d.max(1);
            }
            if c.lengths {
                return Err(Error::LengthOutOfRange {
                    api: c.api,
                    input: c.input.clone(),
                    position: pos,
                    value: vals[i],
                    max: c.classes,
                    loc: c.loc.clone(),
                });
            }
            return Err(Error::TargetOutOfRange {
                api: c.api,
                input: c.input.clone(),
                position: pos,
                value: vals[i],
                classes: c.classes,
                ignore: c.ignore,
                loc: c.loc.clone(),
            });
        }
    }
    Ok(())
}
