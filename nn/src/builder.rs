//! [`GraphBuilder`]: owns the graph being built, parameter values and the first error.
//!
//! Tensors hold a shared handle (`Rc<RefCell<..>>`) to their builder so that
//! `&a + &b` can add a node without threading the builder through every call. A
//! builder is single-threaded by design: graph building is cheap and sequential;
//! compiled executables (later issues) are what runs in parallel.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use onde_ir::{Array, DType, Graph, Op, Shape, SourceLoc, TensorType, ValueId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Name of the step-seed input ([`GraphBuilder::step_seed`]).
pub const STEP_SEED: &str = "rng.seed";

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) graph: Graph,
    /// Parameter initial values, by name, in declaration order.
    pub(crate) params: Vec<(String, Array)>,
    pub(crate) first_error: Option<Rc<Error>>,
    /// Seed of the next `rand`/`randn` call without an explicit seed.
    pub(crate) next_seed: i64,
    /// Names of non-learnable parameters ([`GraphBuilder::buffer`]).
    pub(crate) buffers: Vec<String>,
    /// Counter of host-side initialisations ([`GraphBuilder::init_seed`]).
    pub(crate) init_count: u64,
    /// Random streams handed out by [`GraphBuilder::stream_seed`] (one per dropout).
    pub(crate) streams: i64,
    /// New values of buffers computed by the graph ([`GraphBuilder::update_buffer`]),
    /// by buffer name, in registration order.
    pub(crate) buffer_updates: Vec<(String, ValueId)>,
    /// Class-index inputs checked before each run ([`crate::feed_check`]).
    pub(crate) index_checks: Vec<crate::feed_check::IndexCheck>,
}

/// Builds a graph through [`Tensor`] handles, then builds or runs it.
///
/// ```
/// use onde_nn::{GraphBuilder, DType};
/// let g = GraphBuilder::new();
/// let x = g.input("x", DType::F32, [2, 3]);
/// let y = (&x * 2.0 + 1.0).sum([1], false);
/// let out = g.run(&[&y], &[("x", onde_ir::Array::f32([2, 3], vec![1.0; 6]).unwrap())]).unwrap();
/// assert_eq!(out[0].as_f32().unwrap(), &[9.0, 9.0]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct GraphBuilder {
    pub(crate) state: Rc<RefCell<State>>,
}

impl GraphBuilder {
    /// A new, empty builder.
    pub fn new() -> GraphBuilder {
        GraphBuilder::default()
    }

    pub(crate) fn same(&self, other: &GraphBuilder) -> bool {
        Rc::ptr_eq(&self.state, &other.state)
    }

    /// Sets the seed used by the next [`GraphBuilder::rand`]/[`GraphBuilder::randn`]
    /// calls (each call takes the current seed, then increments it), like
    /// `torch.manual_seed`.
    pub fn manual_seed(&self, seed: i64) {
        self.state.borrow_mut().next_seed = seed;
    }

    pub(crate) fn poisoned(&self, e: Error) -> Tensor {
        let e = Rc::new(e);
        let mut st = self.state.borrow_mut();
        if st.first_error.is_none() {
            st.first_error = Some(e.clone());
        }
        Tensor::from_parts(self.clone(), Err(e))
    }

    /// Like [`GraphBuilder::push`] for ops with several results.
    pub(crate) fn push_multi(
        &self,
        api: &'static str,
        op: Op,
        operands: &[ValueId],
        loc: SourceLoc,
    ) -> Vec<Tensor> {
        let r = self
            .state
            .borrow_mut()
            .graph
            .add_op(op, operands, Some(loc.clone()));
        match r {
            Ok((_, results)) => results
                .into_iter()
                .map(|v| Tensor::from_parts(self.clone(), Ok(v)))
                .collect(),
            Err(e) => vec![self.push_error(api, e, loc)],
        }
    }

    fn push_error(&self, api: &'static str, e: onde_ir::GraphError, loc: SourceLoc) -> Tensor {
        match e {
            onde_ir::GraphError::Type(te) => self.poisoned(Error::Op {
                op: api,
                reason: te.reason,
                operands: te.operands,
                loc,
            }),
            onde_ir::GraphError::UnknownValue(v) => self.poisoned(Error::Op {
                op: api,
                reason: format!("operand {v:?} is not a value of this graph"),
                operands: vec![],
                loc,
            }),
        }
    }

    /// Adds an op whose operands are already known good; maps a typing error to an
    /// [`Error::Op`] named `api` at `loc`.
    pub(crate) fn push(
        &self,
        api: &'static str,
        op: Op,
        operands: &[ValueId],
        loc: SourceLoc,
    ) -> Tensor {
        let results = self.push_multi(api, op, operands, loc.clone());
        match results.into_iter().next() {
            Some(t) => t,
            None => self.poisoned(Error::Op {
                op: api,
                reason: "op produced no result".into(),
                operands: vec![],
                loc,
            }),
        }
    }

    /// The type of a value of this builder's graph.
    pub(crate) fn ty(&self, v: ValueId) -> TensorType {
        self.state.borrow().graph.value_type(v).clone()
    }

    /// A named graph input of the given dtype and shape, fed at run time.
    ///
    /// Declaring a name again with the same dtype and shape gives the same input, with
    /// another dtype is an error. A name may be declared again with another shape (the
    /// same model applied to batches of another size, [`crate::TrainStep::any_batch`]):
    /// each shape is its own input, and a built graph may read only one of them.
    #[track_caller]
    pub fn input(&self, name: &str, dtype: DType, shape: impl Into<Shape>) -> Tensor {
        let loc = SourceLoc::caller();
        let shape = shape.into();
        let same = {
            let st = self.state.borrow();
            st.graph.inputs().iter().copied().find(|&v| {
                st.graph.input_name(v) == Some(name)
                    && st.graph.value_type(v) == &TensorType::new(dtype, shape.clone())
            })
        };
        if let Some(v) = same {
            return Tensor::from_parts(self.clone(), Ok(v));
        }
        let other_dtype = {
            let st = self.state.borrow();
            st.graph.inputs().iter().any(|&v| {
                st.graph.input_name(v) == Some(name) && st.graph.value_type(v).dtype != dtype
            })
        };
        if other_dtype || name.is_empty() {
            return self.poisoned(Error::DuplicateName {
                what: "input",
                name: name.into(),
                loc,
            });
        }
        let ty = TensorType::new(dtype, shape);
        self.push(
            "input",
            Op::Input {
                name: name.into(),
                ty,
            },
            &[],
            loc,
        )
    }

    /// A learnable parameter with a dotted name and an initial value. Its value is fed
    /// from the builder's store at run time (see [`GraphBuilder::parameter_values`]).
    #[track_caller]
    pub fn parameter(&self, name: &str, init: Array) -> Tensor {
        let loc = SourceLoc::caller();
        if name.is_empty() || self.state.borrow().params.iter().any(|(n, _)| n == name) {
            return self.poisoned(Error::DuplicateName {
                what: "parameter",
                name: name.into(),
                loc,
            });
        }
        let ty = TensorType::new(init.dtype(), init.shape().clone());
        let t = self.push(
            "parameter",
            Op::Parameter {
                name: name.into(),
                ty,
            },
            &[],
            loc,
        );
        self.state.borrow_mut().params.push((name.into(), init));
        t
    }

    /// A non-learnable persistent tensor (PyTorch's `register_buffer`, the course's
    /// `not_learnable_param`): fed like a parameter, saved in the state dict, but not
    /// listed by [`GraphBuilder::parameters`] and not updated by optimisers.
    #[track_caller]
    pub fn buffer(&self, name: &str, init: Array) -> Tensor {
        let t = self.parameter(name, init);
        if t.value().is_ok() {
            self.state.borrow_mut().buffers.push(name.into());
        }
        t
    }

    /// Registers `new_value` as the value buffer `name` takes after each training step
    /// (batch norm's running statistics): a [`crate::TrainStep`] outputs it and writes
    /// it back into the buffer, in place. `new_value` must have the buffer's dtype and
    /// shape (no gradient flows through it). Registering a buffer again
    /// replaces the earlier update: compute the second one from
    /// [`GraphBuilder::latest_buffer`] to chain them (a module applied twice per step).
    /// Graphs run outside a training step ([`GraphBuilder::run`], evaluators) leave
    /// buffers unchanged.
    #[track_caller]
    pub fn update_buffer(&self, name: &str, new_value: &Tensor) -> Result<()> {
        let loc = SourceLoc::caller();
        let fail = |reason: String| Error::Op {
            op: "update_buffer",
            reason,
            operands: new_value.ty().into_iter().collect(),
            loc: loc.clone(),
        };
        let v = new_value.value()?;
        if !new_value.builder().same(self) {
            return Err(fail(format!(
                "the new value of `{name}` is from another builder"
            )));
        }
        let buffer = self
            .named_buffers()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| fail(format!("`{name}` is not a buffer of this builder")))?;
        if buffer.ty() != new_value.ty() {
            return Err(fail(format!(
                "buffer `{name}` is {}, the new value is {}",
                buffer.ty().map_or_else(|| "?".into(), |t| t.to_string()),
                new_value.ty().map_or_else(|| "?".into(), |t| t.to_string()),
            )));
        }
        let mut st = self.state.borrow_mut();
        st.buffer_updates.retain(|(n, _)| n != name);
        st.buffer_updates.push((name.to_string(), v));
        Ok(())
    }

    /// The name of `t` if it is one of this builder's buffers.
    pub fn buffer_name(&self, t: &Tensor) -> Option<String> {
        let v = t.value().ok()?;
        self.named_buffers()
            .into_iter()
            .find(|(_, b)| b.value().ok() == Some(v))
            .map(|(n, _)| n)
    }

    /// The value buffer `name` will have after this step's updates registered so far
    /// (the buffer itself if none).
    pub fn latest_buffer(&self, name: &str) -> Option<Tensor> {
        let pending = {
            let st = self.state.borrow();
            st.buffer_updates
                .iter()
                .find(|(n, _)| n == name)
                .map(|&(_, v)| v)
        };
        match pending {
            Some(v) => Some(Tensor::from_parts(self.clone(), Ok(v))),
            None => self
                .named_buffers()
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t),
        }
    }

    /// Forgets the registered buffer updates (a training step for another batch size
    /// is about to be built; the earlier steps already hold theirs).
    pub(crate) fn clear_buffer_updates(&self) {
        self.state.borrow_mut().buffer_updates.clear();
    }

    /// The registered buffer updates (name, new value), in registration order.
    pub fn buffer_updates(&self) -> Vec<(String, Tensor)> {
        let st = self.state.borrow();
        st.buffer_updates
            .iter()
            .map(|(n, v)| (n.clone(), Tensor::from_parts(self.clone(), Ok(*v))))
            .collect()
    }

    /// Whether `name` is a buffer (non-learnable) rather than a learnable parameter.
    pub fn is_buffer(&self, name: &str) -> bool {
        self.state.borrow().buffers.iter().any(|b| b == name)
    }

    /// A fresh seed for host-side parameter initialisation: derived from the seed set by
    /// [`GraphBuilder::manual_seed`] and a counter, so two builders seeded alike
    /// initialise alike.
    pub fn init_seed(&self) -> u64 {
        let mut st = self.state.borrow_mut();
        st.init_count += 1;
        (st.next_seed as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(st.init_count.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    /// The step seed: the `i64[]` graph input named [`STEP_SEED`], created on first use.
    /// [`crate::TrainStep`] and [`crate::Compiled`] feed it a new value at every run
    /// (unless the caller feeds it), so random ops reading it (dropout) draw new numbers
    /// at every step without recompiling; feed it yourself to replay a step.
    #[track_caller]
    pub fn step_seed(&self) -> Tensor {
        let scalar = Shape::from(Vec::<usize>::new());
        match self.input_reuse(STEP_SEED, DType::I64, scalar) {
            Ok(t) => t,
            Err(e) => self.poisoned(e),
        }
    }

    /// The first step seed fed by a compiled graph of this builder: derived from the
    /// seed set by [`GraphBuilder::manual_seed`], so runs seeded alike draw alike.
    pub(crate) fn seed_base(&self) -> i64 {
        let s = self.state.borrow().next_seed as u64;
        (s.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 24) as i64
    }

    /// A seed for one more independent random stream of every step (dropout masks,
    /// SpecAugment): the step seed plus
    /// `k · 2⁴⁰` for the `k`-th stream of this builder. Seeds pass through SplitMix64's
    /// finaliser ([`onde_runtime::random_bits`]), so neighbouring seeds give unrelated
    /// numbers; streams collide only after 2⁴⁰ steps.
    #[track_caller]
    pub fn stream_seed(&self) -> Tensor {
        let k = {
            let mut st = self.state.borrow_mut();
            st.streams += 1;
            st.streams
        };
        self.step_seed().add(k.wrapping_mul(1 << 40))
    }

    /// The input named `name` if it exists with this dtype and shape, else a new one;
    /// an existing input of another type is an error (and poisons nothing). Used for
    /// the inputs a [`crate::TrainStep`] adds (learning rate, optimiser state), so
    /// several training steps can be built on one builder.
    pub(crate) fn input_reuse(&self, name: &str, dtype: DType, shape: Shape) -> Result<Tensor> {
        let want = TensorType::new(dtype, shape.clone());
        let found = {
            let st = self.state.borrow();
            st.graph
                .inputs()
                .iter()
                .copied()
                .find(|&v| st.graph.input_name(v) == Some(name))
                .map(|v| (v, st.graph.value_type(v).clone()))
        };
        match found {
            Some((v, ty)) if ty == want => Ok(Tensor::from_parts(self.clone(), Ok(v))),
            Some((_, ty)) => Err(Error::DuplicateName {
                what: "input",
                name: format!("{name} (already declared as {ty}, needed {want})"),
                loc: SourceLoc::caller(),
            }),
            None => self.input(name, dtype, shape).check(),
        }
    }

    /// Whether `y` depends on `x` (through any chain of ops, scan bodies' operands
    /// included).
    pub(crate) fn depends_on(&self, y: &Tensor, x: &Tensor) -> bool {
        let (Ok(y), Ok(x)) = (y.value(), x.value()) else {
            return false;
        };
        let st = self.state.borrow();
        let g = &st.graph;
        let mut stack = vec![y];
        let mut seen = std::collections::HashSet::new();
        while let Some(v) = stack.pop() {
            if v == x {
                return true;
            }
            if !seen.insert(v) {
                continue;
            }
            if let Some(o) = g.producer(v) {
                stack.extend(g.operands(o));
            }
        }
        false
    }

    /// The value of `t` if it can be known while building: when it depends on no input,
    /// parameter or random op (only on constants), it is evaluated on the reference
    /// interpreter (`Some(Err)` if that evaluation fails). `None` if it depends on
    /// something fed at run time, is poisoned, or belongs to another builder.
    pub(crate) fn known_value(&self, t: &Tensor) -> Option<std::result::Result<Array, String>> {
        if !self.same(t.builder()) {
            return None;
        }
        let v = t.value().ok()?;
        {
            let st = self.state.borrow();
            let g = &st.graph;
            let mut stack = vec![v];
            let mut seen = std::collections::HashSet::new();
            while let Some(v) = stack.pop() {
                if !seen.insert(v) {
                    continue;
                }
                let o = g.producer(v)?;
                if matches!(
                    g.op(o).op,
                    Op::Input { .. } | Op::Parameter { .. } | Op::Random { .. }
                ) {
                    return None;
                }
                stack.extend(g.operands(o));
            }
        }
        // Not `build`: an unrelated failed op elsewhere in the builder must not hide a
        // value that is known.
        let mut g = self.state.borrow().graph.clone();
        g.set_outputs(vec![v]);
        onde_passes::dce::dce(&mut g);
        let leaves: Vec<onde_ir::OpId> = g
            .op_ids()
            .into_iter()
            .filter(|&o| matches!(g.op(o).op, Op::Input { .. } | Op::Parameter { .. }))
            .collect();
        for o in leaves {
            g.remove_op(o);
        }
        Some(match onde_runtime::run(&g, &HashMap::new()) {
            Ok(mut vs) => vs.pop().ok_or_else(|| "nothing was evaluated".to_string()),
            Err(e) => Err(e.to_string()),
        })
    }

    /// The names of every input declared so far.
    pub fn input_names(&self) -> Vec<String> {
        let st = self.state.borrow();
        st.graph
            .inputs()
            .iter()
            .filter_map(|&v| st.graph.input_name(v).map(String::from))
            .collect()
    }

    /// Registers that input `target` (if it is a graph input) holds class indices in
    /// `0..classes` or `ignore`, checked before every run ([`crate::feed_check`]).
    pub(crate) fn check_class_indices(
        &self,
        target: &Tensor,
        classes: usize,
        ignore: Option<i64>,
        api: &'static str,
        loc: &SourceLoc,
    ) {
        self.register_check(target, classes, ignore, api, loc, false);
    }

    /// Registers that input `lengths` (if it is a graph input) holds sequence lengths
    /// in `1..=max`, checked before every run ([`crate::feed_check`]).
    pub(crate) fn check_lengths(
        &self,
        lengths: &Tensor,
        max: usize,
        api: &'static str,
        loc: &SourceLoc,
    ) {
        self.register_check(lengths, max, None, api, loc, true);
    }

    /// Records a feed check of `t` when it is a graph input (once).
    fn register_check(
        &self,
        t: &Tensor,
        classes: usize,
        ignore: Option<i64>,
        api: &'static str,
        loc: &SourceLoc,
        lengths: bool,
    ) {
        let Ok(v) = t.value() else { return };
        let mut st = self.state.borrow_mut();
        let Some(input) = st.graph.input_name(v).map(String::from) else {
            return;
        };
        let check = crate::feed_check::IndexCheck {
            input,
            classes,
            ignore,
            api,
            loc: loc.clone(),
            lengths,
        };
        if !st.index_checks.contains(&check) {
            st.index_checks.push(check);
        }
    }

    /// The registered class-index checks.
    pub(crate) fn index_checks(&self) -> Vec<crate::feed_check::IndexCheck> {
        self.state.borrow().index_checks.clone()
    }

    /// A constant tensor.
    #[track_caller]
    pub fn constant(&self, value: Array) -> Tensor {
        self.push("constant", Op::Constant(value), &[], SourceLoc::caller())
    }

    /// The parameters' current values, by name, in declaration order.
    pub fn parameter_values(&self) -> Vec<(String, Array)> {
        self.state.borrow().params.clone()
    }

    /// The first error any op of this builder produced, if any.
    pub fn first_error(&self) -> Option<Error> {
        self.state.borrow().first_error.as_deref().cloned()
    }

    /// The graph with `outputs` as its outputs, verified. Fails with the first error
    /// any op produced, even on a tensor not among `outputs`.
    #[track_caller]
    pub fn build(&self, outputs: &[&Tensor]) -> Result<Graph> {
        if let Some(e) = self.first_error() {
            return Err(e);
        }
        let mut ids = Vec::with_capacity(outputs.len());
        for t in outputs {
            if !self.same(t.builder()) {
                return Err(Error::MixedBuilders {
                    op: "build",
                    loc: SourceLoc::caller(),
                });
            }
            ids.push(t.value()?);
        }
        let mut g = self.state.borrow().graph.clone();
        g.set_outputs(ids);
        // Ops that do not lead to an output (e.g. the forward scan autodiff replaced,
        // unused temporaries) are dropped; inputs and parameters are kept.
        onde_passes::dce::dce(&mut g);
        drop_other_declarations(&mut g)?;
        onde_ir::verify(&g)?;
        Ok(g)
    }

    /// Like [`GraphBuilder::build`], but inputs and parameters that `outputs` do not
    /// depend on are dropped too (an inference graph then needs no label input).
    #[track_caller]
    pub fn build_pruned(&self, outputs: &[&Tensor]) -> Result<Graph> {
        let mut g = self.build(outputs)?;
        let unused: Vec<onde_ir::OpId> = g
            .op_ids()
            .into_iter()
            .filter(|&o| matches!(g.op(o).op, Op::Input { .. } | Op::Parameter { .. }))
            .filter(|&o| {
                g.results(o)
                    .iter()
                    .all(|&v| g.users(v).is_empty() && !g.outputs().contains(&v))
            })
            .collect();
        for o in unused {
            g.remove_op(o);
        }
        onde_ir::verify(&g)?;
        Ok(g)
    }

    /// Builds the graph with `outputs` and runs it on the reference interpreter, with
    /// `feeds` for the inputs by name and the stored parameter values.
    #[track_caller]
    pub fn run(&self, outputs: &[&Tensor], feeds: &[(&str, Array)]) -> Result<Vec<Array>> {
        let g = self.build(outputs)?;
        crate::feed_check::check_feeds(&self.index_checks(), feeds.iter().map(|(n, a)| (*n, a)))?;
        // A feed must name an input or a parameter of this builder (a typo is an error,
        // as for compiled graphs, not a feed silently ignored).
        let inputs = self.input_names();
        let params = self.parameter_values();
        for (name, _) in feeds {
            let known = *name == STEP_SEED
                || inputs.iter().any(|n| n == name)
                || params.iter().any(|(n, _)| n == name);
            if !known {
                return Err(Error::Exec(Box::new(onde_codegen::RunError::UnknownFeed {
                    name: (*name).to_string(),
                })));
            }
        }
        let mut map: HashMap<String, Array> = params.into_iter().collect();
        for (name, a) in feeds {
            map.insert((*name).to_string(), a.clone());
        }
        // The step seed, unless fed: the first value a compiled graph would use.
        map.entry(STEP_SEED.to_string())
            .or_insert_with(|| Array::scalar_i64(self.seed_base()));
        Ok(onde_runtime::run(&g, &map)?)
    }
}

/// Of the declarations of one input name at several shapes
/// ([`GraphBuilder::input`]), keeps the one the graph reads (or the first when it reads
/// none); a graph that reads two is an error naming both types.
fn drop_other_declarations(g: &mut Graph) -> Result<()> {
    let inputs: Vec<(onde_ir::OpId, String, bool, TensorType)> = g
        .op_ids()
        .into_iter()
        .filter_map(|o| {
            let Op::Input { name, ty } = &g.op(o).op else {
                return None;
            };
            let used = g
                .results(o)
                .iter()
                .any(|&v| !g.users(v).is_empty() || g.outputs().contains(&v));
            Some((o, name.clone(), used, ty.clone()))
        })
        .collect();
    let mut drop = Vec::new();
    for (i, (o, name, used, ty)) in inputs.iter().enumerate() {
        let others: Vec<&(onde_ir::OpId, String, bool, TensorType)> = inputs
            .iter()
            .enumerate()
            .filter(|&(j, x)| j != i && &x.1 == name)
            .map(|(_, x)| x)
            .collect();
        if others.is_empty() {
            continue;
        }
        if let Some(other) = others.iter().find(|x| x.2).filter(|_| *used) {
            return Err(Error::DuplicateName {
                what: "input",
                name: format!(
                    "{name} (the graph reads its declarations as {ty} and {}: one graph \
                     takes one shape of an input)",
                    other.3
                ),
                loc: g.op(*o).loc.clone().unwrap_or_else(SourceLoc::caller),
            });
        }
        // Unused, and another declaration is used or comes first: dropped.
        let first_unused =
            others.iter().all(|x| !x.2) && inputs.iter().position(|x| &x.1 == name) == Some(i);
        if !*used && !first_unused {
            drop.push(*o);
        }
    }
    for o in drop {
        g.remove_op(o);
    }
    Ok(())
}
