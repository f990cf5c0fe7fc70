//! Printer of the text form (grammar in the module doc of [`crate::text`]).

use crate::array::Data;
use crate::dtype::{Shape, TensorType};
use crate::graph::Graph;
use crate::ids::{OpId, ValueId};
use crate::loc::SourceLoc;
use crate::op::{ConvParams, Op, SliceAxis};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// Prints a graph in the text form; [`crate::text::parse_graph`] reads it back.
///
/// Values are renumbered `%0, %1, …` in the order of [`Graph::topo_ops`] (each op's
/// results in slot order); a Scan body has its own numbering. Deliberately broken
/// graphs print on a best-effort basis: bare values without a producer come first as
/// `orphan` lines, a cyclic graph prints in insertion order after a warning comment
/// (and does not parse back), and references to nodes that are not values print as
/// `%?N` (raw node index), which does not parse either. Never panics.
pub fn print_graph(g: &Graph) -> String {
    let mut out = String::from("graph {\n");
    write_body(g, 1, &mut out);
    out.push_str("}\n");
    out
}

/// How the values of one graph are named in the text form.
pub(crate) struct Numbering {
    ids: HashMap<ValueId, usize>,
    /// Ops in print order.
    pub order: Vec<OpId>,
    /// Values with no producer among the ops, printed first.
    pub orphans: Vec<ValueId>,
    /// Whether the graph has a cycle (then `order` is insertion order).
    pub cyclic: bool,
}

impl Numbering {
    pub fn new(g: &Graph) -> Numbering {
        let (order, cyclic) = match g.topo_ops() {
            Some(o) => (o, false),
            None => (g.op_ids(), true),
        };
        let results: Vec<Vec<ValueId>> = order.iter().map(|&o| g.results(o)).collect();
        let produced: HashSet<ValueId> = results.iter().flatten().copied().collect();
        let orphans: Vec<ValueId> = g
            .value_ids()
            .into_iter()
            .filter(|v| !produced.contains(v))
            .collect();
        let mut ids = HashMap::new();
        for &v in orphans.iter().chain(results.iter().flatten()) {
            let n = ids.len();
            ids.entry(v).or_insert(n);
        }
        Numbering {
            ids,
            order,
            orphans,
            cyclic,
        }
    }

    /// `%n`, or `%?N` (raw node index) for an id that is not a value of the graph.
    pub fn name(&self, v: ValueId) -> String {
        match self.ids.get(&v) {
            Some(n) => format!("%{n}"),
            None => format!("%?{}", v.index()),
        }
    }

    /// The number of `v`, if it is a value of the graph.
    pub fn number(&self, v: ValueId) -> Option<usize> {
        self.ids.get(&v).copied()
    }
}

/// The type of a value as text, `?` if `v` is not a value.
pub(crate) fn type_text(g: &Graph, v: ValueId) -> String {
    match g.try_value_type(v) {
        Some(t) => t.to_string(),
        None => "?".to_string(),
    }
}

fn write_body(g: &Graph, depth: usize, out: &mut String) {
    let ind = "  ".repeat(depth);
    let num = Numbering::new(g);
    if num.cyclic {
        let _ = writeln!(
            out,
            "{ind}// warning: the graph has a cycle; ops are in insertion order"
        );
    }
    for &v in &num.orphans {
        let _ = writeln!(out, "{ind}{}: {} = orphan", num.name(v), type_text(g, v));
    }
    let mut default_inputs = Vec::new();
    for &o in &num.order {
        let Some(node) = g.try_op(o) else { continue };
        let results = g.results(o);
        if let Op::Input { .. } = node.op {
            default_inputs.extend(results.iter().copied());
        }
        out.push_str(&ind);
        if !results.is_empty() {
            let rs: Vec<String> = results
                .iter()
                .map(|&v| format!("{}: {}", num.name(v), type_text(g, v)))
                .collect();
            out.push_str(&rs.join(", "));
            out.push_str(" = ");
        }
        out.push_str(node.op.name());
        let operands = g.operands(o);
        if !operands.is_empty() {
            out.push(' ');
            out.push_str(&value_list(&num, &operands));
        }
        let result_tys: Vec<Option<&TensorType>> =
            results.iter().map(|&v| g.try_value_type(v)).collect();
        out.push_str(&payload(&node.op, &result_tys, None));
        if let Some(l) = &node.loc {
            out.push(' ');
            out.push_str(&loc_text(l));
        }
        if let Op::Scan(s) = &node.op {
            out.push_str(" {\n");
            write_body(&s.body, depth + 1, out);
            out.push_str(&ind);
            out.push('}');
        }
        out.push('\n');
    }
    if g.inputs() != default_inputs.as_slice() {
        list_line(out, &ind, "inputs", &num, g.inputs());
    }
    list_line(out, &ind, "outputs", &num, g.outputs());
}

/// `inputs %a, %b` / `outputs` (no trailing space when empty).
fn list_line(out: &mut String, ind: &str, kw: &str, num: &Numbering, vs: &[ValueId]) {
    out.push_str(ind);
    out.push_str(kw);
    if !vs.is_empty() {
        out.push(' ');
        out.push_str(&value_list(num, vs));
    }
    out.push('\n');
}

pub(crate) fn value_list(num: &Numbering, vs: &[ValueId]) -> String {
    let names: Vec<String> = vs.iter().map(|&v| num.name(v)).collect();
    names.join(", ")
}

/// ` @ "file":line:col` without the leading space.
pub(crate) fn loc_text(l: &SourceLoc) -> String {
    format!("@ {}:{}:{}", quote(&l.file), l.line, l.col)
}

/// A double-quoted string literal with `"`, `\` and control characters escaped.
pub(crate) fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{{{:x}}}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// An f32 that parses back to the same bits: shortest round-trip digits, `inf`,
/// `-inf`, `nan` for the canonical quiet NaN and `nan(0x…)` with the raw bits for any
/// other NaN.
pub(crate) fn f32_text(x: f32) -> String {
    if x.is_nan() {
        if x.to_bits() == f32::NAN.to_bits() {
            "nan".to_string()
        } else {
            format!("nan(0x{:08x})", x.to_bits())
        }
    } else {
        format!("{x:?}")
    }
}

/// An f64 that parses back to the same bits (see [`f32_text`]).
pub(crate) fn f64_text(x: f64) -> String {
    if x.is_nan() {
        if x.to_bits() == f64::NAN.to_bits() {
            "nan".to_string()
        } else {
            format!("nan(0x{:016x})", x.to_bits())
        }
    } else {
        format!("{x:?}")
    }
}

fn usize_list(v: &[usize]) -> String {
    let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", s.join(","))
}

fn pair_list(v: &[(usize, usize)]) -> String {
    let s: Vec<String> = v.iter().map(|(a, b)| format!("({a},{b})")).collect();
    format!("[{}]", s.join(", "))
}

fn range_list(v: &[SliceAxis]) -> String {
    let s: Vec<String> = v
        .iter()
        .map(|a| format!("{}:{}:{}", a.start, a.stop, a.step))
        .collect();
    format!("[{}]", s.join(", "))
}

fn shape_text(s: &Shape) -> String {
    usize_list(s.dims())
}

/// The elements of a constant, `[a, b, c]`; with `limit`, at most that many followed
/// by `...`.
pub(crate) fn data_text(d: &Data, limit: Option<usize>) -> String {
    let n = d.len();
    let shown = limit.map_or(n, |l| l.min(n));
    let items: Vec<String> = (0..shown)
        .map(|i| match d {
            Data::Bool(v) => v[i].to_string(),
            Data::I64(v) => v[i].to_string(),
            Data::F32(v) => f32_text(v[i]),
            Data::F64(v) => f64_text(v[i]),
        })
        .collect();
    let mut s = format!("[{}", items.join(", "));
    if shown < n {
        s.push_str(", ...");
    }
    s.push(']');
    s
}

/// Everything printed after an op's operands and before its location, with a
/// leading space if non-empty. `constant_limit` shortens constants (for Graphviz).
pub(crate) fn payload(
    op: &Op,
    result_tys: &[Option<&TensorType>],
    constant_limit: Option<usize>,
) -> String {
    // Input and Parameter carry their type, which is normally the result type; it is
    // printed only when it differs (ill-typed graphs), so that parsing restores it.
    let ty_attr = |ty: &TensorType| -> String {
        if result_tys.len() == 1 && result_tys[0] == Some(ty) {
            String::new()
        } else {
            format!(" ty={ty}")
        }
    };
    match op {
        Op::Input { name, ty } | Op::Parameter { name, ty } => {
            format!(" {}{}", quote(name), ty_attr(ty))
        }
        Op::Constant(a) => format!(
            " {}{} {}",
            a.dtype(),
            shape_text(a.shape()),
            data_text(a.data(), constant_limit)
        ),
        Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Where | Op::Detach | Op::MatMul => {
            String::new()
        }
        Op::ScatterAdd { axis, shape } => format!(" axis={axis} shape={}", shape_text(shape)),
        Op::Cast { to } => format!(" to={to}"),
        Op::Reduce { axes, keepdim, .. } => {
            format!(" axes={} keepdim={keepdim}", usize_list(axes))
        }
        Op::ArgReduce { axis, keepdim, .. } => format!(" axis={axis} keepdim={keepdim}"),
        Op::Reshape { shape } | Op::Expand { shape } => format!(" shape={}", shape_text(shape)),
        Op::Permute { perm } => format!(" perm={}", usize_list(perm)),
        Op::Slice { axes } => format!(" axes={}", range_list(axes)),
        Op::Unfold {
            axis,
            size,
            step,
            dilation,
        } => format!(" axis={axis} size={size} step={step} dilation={dilation}"),
        Op::Pad { pads, value_bits } => format!(
            " pads={} value={}",
            pair_list(pads),
            f64_text(Op::pad_value(*value_bits))
        ),
        Op::Concat { axis }
        | Op::Gather { axis }
        | Op::Softmax { axis }
        | Op::SoftmaxBackward { axis } => {
            format!(" axis={axis}")
        }
        Op::Conv(ConvParams {
            stride,
            padding,
            dilation,
            groups,
        }) => format!(
            " stride={} padding={} dilation={} groups={groups}",
            usize_list(stride),
            pair_list(padding),
            usize_list(dilation)
        ),
        Op::Random { dist, dtype, shape } => format!(
            " dist={} dtype={dtype} shape={}",
            dist.name(),
            shape_text(shape)
        ),
        Op::Scan(s) => format!(
            " carry={} xs={} length={} axis={} reverse={}",
            s.num_carry, s.num_xs, s.length, s.axis, s.reverse
        ),
    }
}

/// A one-line header for dumps: `// 12 values, 6 ops, 3 parameters (1,234 elements)`.
///
/// Counts include the nested bodies of Scan ops, recursively (a body is counted once
/// per Scan op that holds it); when there are any, the line ends with
/// `; including 1 scan body`. Element counts saturate instead of overflowing.
pub fn summary(g: &Graph) -> String {
    #[derive(Default)]
    struct Counts {
        values: usize,
        ops: usize,
        params: usize,
        elems: usize,
        bodies: usize,
    }
    fn count(g: &Graph, c: &mut Counts) {
        c.values += g.num_values();
        c.ops += g.num_ops();
        for o in g.op_ids() {
            let op = &g.op(o).op;
            if let Op::Parameter { ty, .. } = op {
                c.params += 1;
                let n = ty
                    .shape
                    .dims()
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .unwrap_or(usize::MAX);
                c.elems = c.elems.saturating_add(n);
            }
            if let Op::Scan(s) = op {
                c.bodies += 1;
                count(&s.body, c);
            }
        }
    }
    let plural = |n: usize, one: &str, many: &str| {
        format!("{} {}", thousands(n), if n == 1 { one } else { many })
    };
    let mut c = Counts::default();
    count(g, &mut c);
    let mut s = format!(
        "// {}, {}, {} ({})",
        plural(c.values, "value", "values"),
        plural(c.ops, "op", "ops"),
        plural(c.params, "parameter", "parameters"),
        plural(c.elems, "element", "elements"),
    );
    if c.bodies > 0 {
        let _ = write!(
            s,
            "; including {}",
            plural(c.bodies, "scan body", "scan bodies")
        );
    }
    s
}

/// `1234567` → `1,234,567`.
fn thousands(n: usize) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn float_text_is_exact() {
        for x in [
            0.0f32,
            -0.0,
            1.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-45,
            f32::MAX,
        ] {
            assert_eq!(f32_text(x).parse::<f32>().unwrap().to_bits(), x.to_bits());
        }
        assert_eq!(f32_text(f32::NAN), "nan");
        assert_eq!(f32_text(f32::from_bits(0x7fc0_0001)), "nan(0x7fc00001)");
        assert_eq!(f64_text(-f64::NAN), "nan(0xfff8000000000000)");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u{1}\"");
    }
}
