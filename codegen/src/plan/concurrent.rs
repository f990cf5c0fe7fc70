//! Independent recurrences side by side: two scan steps that share no written buffer
//! (a bidirectional RNN layer's two directions) are made adjacent in the step list,
//! and the executor runs such a pair on two threads when it has them.
//!
//! # Why
//! A recurrence is a chain of small, latency-bound steps (a `[32, 64] @ [64, 192]`
//! product and a gate kernel per time step): splitting one step's kernels over two
//! threads costs more in synchronisation than it saves, but the two directions of a
//! bidirectional layer are independent loops of equal length, so one thread each
//! halves the layer's time without any synchronisation inside the loops.
//!
//! # How
//! - [`pair_scans`] (the last planning pass) reorders `[scan A, S…, scan B]`, where B
//!   does not depend on A, into `[S_free…, A, B, S_dep…]`: the steps of `S` that
//!   commute with A (and with the earlier steps that stay behind) move before A, the
//!   others after B (and a matrix product with them when the next of them is the step
//!   reading it, its epilogue). Two steps commute when neither writes a buffer
//!   (root) the other reads or writes. Each group keeps its order, so every value is
//!   still produced before it is read.
//! - [`alongside`] marks a scan that directly follows a scan it commutes with. Memory
//!   planning treats such a pair as one step (both steps' buffers live through both,
//!   `memory::lifetimes`), so neither overwrites storage the other still uses; the
//!   executor runs the pair concurrently when it has two threads, else one after the
//!   other, with the same results either way (nothing is shared but read-only inputs).

use super::memory::{reads, root_in};
use super::{writes, BufId, BufferSpec, Plan, Step};
use std::collections::HashSet;

/// Roots read and written by a step.
fn access(buffers: &[BufferSpec], s: &Step) -> (HashSet<BufId>, HashSet<BufId>) {
    let r = reads(s).into_iter().map(|b| root_in(buffers, b)).collect();
    let w = writes(s).into_iter().map(|b| root_in(buffers, b)).collect();
    (r, w)
}

/// Whether two steps can run in either order, or at the same time: neither writes a
/// buffer the other reads or writes.
fn commute(a: &(HashSet<BufId>, HashSet<BufId>), b: &(HashSet<BufId>, HashSet<BufId>)) -> bool {
    a.1.is_disjoint(&b.0) && a.1.is_disjoint(&b.1) && a.0.is_disjoint(&b.1)
}

/// Makes independent scans adjacent (see the module doc).
pub(super) fn pair_scans(buffers: &[BufferSpec], mut steps: Vec<Step>) -> Vec<Step> {
    let is_scan = |s: &Step| matches!(s, Step::Scan { .. });
    let mut i = 0;
    while i < steps.len() {
        if !is_scan(&steps[i]) {
            i += 1;
            continue;
        }
        let Some(j) = (i + 1..steps.len()).find(|&j| is_scan(&steps[j])) else {
            break;
        };
        if j == i + 1 {
            i = j + 1;
            continue;
        }
        // Roots read and written by each step of the window, `acc[k - i]` for step `k`.
        let acc: Vec<_> = steps[i..=j].iter().map(|s| access(buffers, s)).collect();
        let (a, b) = (&acc[0], &acc[j - i]);
        if !commute(a, b) {
            i = j;
            continue;
        }
        // Split the steps between A and B.
        let mut free = Vec::new();
        let mut dep: Vec<usize> = Vec::new();
        for k in i + 1..j {
            let s = &acc[k - i];
            if commute(a, s) && dep.iter().all(|&d| commute(&acc[d - i], s)) {
                free.push(k);
            } else {
                dep.push(k);
            }
        }
        if !dep.iter().all(|&d| commute(&acc[d - i], b)) {
            i = j;
            continue;
        }
        // A product followed by the step that reads it (its epilogue,
        // `merge::sink_products`) stays with that step when the step stays behind,
        // if it may then run after B and after the free steps that followed it.
        let keep_with_next: Vec<usize> = free
            .iter()
            .copied()
            .filter(|&k| {
                let m = &acc[k - i];
                matches!(steps[k], Step::MatMul { .. })
                    && dep.contains(&(k + 1))
                    && !m.1.is_disjoint(&acc[k + 1 - i].0)
                    && commute(m, b)
                    && free
                        .iter()
                        .filter(|&&f| f > k)
                        .all(|&f| commute(m, &acc[f - i]))
            })
            .collect();
        free.retain(|k| !keep_with_next.contains(k));
        dep.extend(keep_with_next);
        dep.sort_unstable();
        let order: Vec<usize> = free
            .iter()
            .copied()
            .chain([i, j])
            .chain(dep.iter().copied())
            .collect();
        let mut taken: Vec<Option<Step>> = steps.drain(i..=j).map(Some).collect();
        let moved: Vec<Step> = order.iter().filter_map(|&k| taken[k - i].take()).collect();
        steps.splice(i..i, moved);
        // The pair is at `i + free.len()`; continue after it.
        i += free.len() + 2;
    }
    steps
}

/// Per step: whether it is a scan that runs alongside the step before it (also a scan,
/// with which it commutes). A step is paired with at most one other.
pub fn alongside(plan: &Plan) -> Vec<bool> {
    let n = plan.steps.len();
    let mut out = vec![false; n];
    let mut i = 1;
    while i < n {
        let both = matches!(plan.steps[i - 1], Step::Scan { .. })
            && matches!(plan.steps[i], Step::Scan { .. });
        if both
            && commute(
                &access(&plan.buffers, &plan.steps[i - 1]),
                &access(&plan.buffers, &plan.steps[i]),
            )
        {
            out[i] = true;
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}
