//! Persistent state: feeds bound to outputs ([`Executable::bind_state`]), updated in
//! place by the kernel that computes them when the plan allows
//! (`plan::memory::state_in_place`), else staged and copied after the run.

use super::{array_ptr_mut, elem_size, Executable, RunError};
use crate::plan;
use crate::plan::BufId;
use onde_ir::{Array, TensorType};

/// A feed whose value lives in the executable and is replaced by an output after each
/// run (parameters and optimiser state of a training step).
pub(super) struct StateBinding {
    pub(super) name: String,
    pub(super) feed_buf: BufId,
    pub(super) out_buf: BufId,
    pub(super) value: Array,
    /// The output's kernel writes straight into `value` (else it is copied after the run).
    pub(super) in_place: bool,
    /// Staging for the copy when not in place.
    pub(super) stage: Vec<u8>,
}

impl Executable {
    /// Points each bound feed (and, when updated in place, its output) at the state's
    /// storage; a state copied after the run writes to its planned buffer.
    pub(super) fn point_states(&mut self) {
        for st in &mut self.states {
            let p = array_ptr_mut(&mut st.value);
            self.ptrs[st.feed_buf] = p;
            self.ptrs[st.out_buf] = if st.in_place {
                p
            } else {
                self.home[st.out_buf]
            };
        }
    }

    /// After a run: the new value of every state not updated in place is staged first
    /// (an output may be another state's old value), then committed.
    pub(super) fn commit_states(&mut self) {
        for st in &mut self.states {
            if !st.in_place {
                let src = self.ptrs[st.out_buf];
                if src != self.ptrs[st.feed_buf] && !st.stage.is_empty() {
                    // SAFETY: `src` is the output buffer, holding the state's byte size
                    // (same type, checked in `bind_state`); `stage` has that size.
                    unsafe {
                        std::ptr::copy_nonoverlapping(src, st.stage.as_mut_ptr(), st.stage.len())
                    };
                }
            }
        }
        for st in &mut self.states {
            if !st.in_place && self.ptrs[st.out_buf] != self.ptrs[st.feed_buf] {
                let dst = array_ptr_mut(&mut st.value);
                // SAFETY: `dst` is the state's array, `stage.len()` bytes long.
                unsafe { std::ptr::copy_nonoverlapping(st.stage.as_ptr(), dst, st.stage.len()) };
            }
        }
    }

    /// Binds input or parameter `feed` to output `output` as persistent state: the
    /// executable keeps `init` as the feed's value, and after every run replaces it with
    /// that output (a training step's parameters and optimiser state). When the output
    /// is computed by one kernel that runs after every other reader of the feed, the
    /// kernel writes straight into the state's memory (no copy); otherwise the new value
    /// is copied in after the run. A bound feed is no longer passed to `run`.
    ///
    /// If a run fails part-way (an index out of range in a gather or scatter), states
    /// already written in place keep their new values; the others keep their old ones.
    pub fn bind_state(&mut self, feed: &str, output: usize, init: Array) -> Result<(), RunError> {
        let err = |reason: String| RunError::State {
            name: feed.to_string(),
            reason,
        };
        let Some((_, ty, fb)) = self.feeds.iter().find(|(n, _, _)| n == feed).cloned() else {
            return Err(err("not an input or parameter of this graph".into()));
        };
        if self.states.iter().any(|st| st.feed_buf == fb) {
            return Err(err("already bound".into()));
        }
        let plan = &self.compiled.plan;
        let Some(&ob) = plan.outputs.get(output) else {
            return Err(err(format!(
                "output {output} does not exist ({} outputs)",
                plan.outputs.len()
            )));
        };
        if plan.buffers[ob].ty != ty {
            return Err(err(format!(
                "output {output} is {}, the feed is {ty}",
                plan.buffers[ob].ty
            )));
        }
        let got = TensorType::new(init.dtype(), init.shape().clone());
        if got != ty {
            return Err(err(format!("initial value is {got}, expected {ty}")));
        }
        let taken = self.states.iter().any(|st| st.in_place && st.out_buf == ob);
        let in_place = !taken && plan::memory::state_in_place(plan, fb, ob);
        self.states.push(StateBinding {
            name: feed.to_string(),
            feed_buf: fb,
            out_buf: ob,
            value: init,
            in_place,
            stage: Vec::new(),
        });
        self.fix_states();
        Ok(())
    }

    /// An output that reads another bound state's old value forbids updating that state
    /// in place; staging buffers exist for the states that are copied.
    fn fix_states(&mut self) {
        let plan = &self.compiled.plan;
        let roots: Vec<BufId> = self
            .states
            .iter()
            .map(|st| plan::memory::root(plan, st.out_buf))
            .collect();
        for i in 0..self.states.len() {
            let fb = self.states[i].feed_buf;
            if roots.iter().enumerate().any(|(j, &r)| j != i && r == fb) {
                self.states[i].in_place = false;
            }
        }
        for st in &mut self.states {
            let ty = &plan.buffers[st.feed_buf].ty;
            let bytes = ty.shape.numel() * elem_size(ty.dtype);
            if !st.in_place && st.stage.len() != bytes {
                st.stage = vec![0; bytes];
            }
        }
    }

    /// The names and types of the graph's feeds (inputs and parameters), bound or not.
    pub fn feeds(&self) -> impl Iterator<Item = (&str, &TensorType)> {
        self.feeds.iter().map(|(n, t, _)| (n.as_str(), t))
    }

    /// Sets every element of bound state `name` to zero (no allocation).
    pub fn zero_state(&mut self, name: &str) -> Result<(), RunError> {
        let Some(st) = self.states.iter_mut().find(|s| s.name == name) else {
            return Err(RunError::State {
                name: name.into(),
                reason: "not bound as state".into(),
            });
        };
        st.value.fill(0.0);
        Ok(())
    }

    /// The current value of bound state `name`.
    pub fn state(&self, name: &str) -> Option<&Array> {
        self.states
            .iter()
            .find(|s| s.name == name)
            .map(|s| &s.value)
    }

    /// Replaces the value of bound state `name` (same dtype and shape).
    pub fn set_state(&mut self, name: &str, value: Array) -> Result<(), RunError> {
        let Some(st) = self.states.iter_mut().find(|s| s.name == name) else {
            return Err(RunError::State {
                name: name.into(),
                reason: "not bound as state".into(),
            });
        };
        // Copied into the existing storage, so every pointer to it stays valid.
        if !st.value.copy_from(&value) {
            let want = TensorType::new(st.value.dtype(), st.value.shape().clone());
            let got = TensorType::new(value.dtype(), value.shape().clone());
            return Err(RunError::State {
                name: name.into(),
                reason: format!("new value is {got}, expected {want}"),
            });
        }
        Ok(())
    }

    /// Exchanges the value of bound state `name` with `other`'s state of the same name
    /// (same dtype and shape), without copying: the same training step compiled for
    /// two batch sizes hands its parameters and optimiser state from one executable to
    /// the other.
    pub fn swap_state_with(&mut self, other: &mut Executable, name: &str) -> Result<(), RunError> {
        let missing = |reason: &str| RunError::State {
            name: name.into(),
            reason: reason.into(),
        };
        let a = self
            .states
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| missing("not bound as state"))?;
        let b = other
            .states
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| missing("not bound as state of the other executable"))?;
        let (ta, tb) = (
            TensorType::new(a.value.dtype(), a.value.shape().clone()),
            TensorType::new(b.value.dtype(), b.value.shape().clone()),
        );
        if ta != tb {
            return Err(RunError::State {
                name: name.into(),
                reason: format!("is {ta} here and {tb} in the other executable"),
            });
        }
        // Every pointer to a state is taken afresh at each run (`point_states`).
        std::mem::swap(&mut a.value, &mut b.value);
        Ok(())
    }

    /// Whether bound state `name` is updated in place by its kernel (no copy per run).
    pub fn state_in_place(&self, name: &str) -> Option<bool> {
        self.states
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.in_place)
    }
}
