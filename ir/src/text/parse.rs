//! Parser of the text form (grammar in the module doc of [`crate::text`]).

use super::lexer::{lex, Tok, Token};
use crate::array::{Array, Data};
use crate::dtype::{DType, Shape, TensorType};
use crate::graph::Graph;
use crate::ids::ValueId;
use crate::loc::SourceLoc;
use crate::op::{
    ArgKind, BinaryOp, CmpOp, ConvParams, Distribution, Op, ReduceKind, ScanOp, SliceAxis, UnaryOp,
};
use std::collections::HashMap;
use std::sync::Arc;

/// A syntax error in the text form, with its 1-based position (column in characters).
///
/// Displays as `line 3, col 14: expected ']' after shape, found ','`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, col {col}: {msg}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// What was expected and what was found.
    pub msg: String,
}

/// Scan bodies nested deeper than this are rejected (keeps recursion bounded).
const MAX_DEPTH: usize = 64;

/// Parses the text form back into a graph.
///
/// Ops are added with [`Graph::add_op_unchecked`] using the printed result types, so
/// ill-typed text parses (and [`fn@crate::verify`] can reject it); the input and output
/// lists are set from the `inputs` and `outputs` lines. Errors: syntax errors, unknown
/// ops or attributes, missing or repeated attributes, a use of an undefined `%n`, a
/// redefinition of `%n`, a constant whose element count does not match its shape, and
/// shapes with more than `usize::MAX` elements. Never panics.
pub fn parse_graph(src: &str) -> Result<Graph, ParseError> {
    let toks = lex(src)?;
    let mut p = Parser { toks, pos: 0 };
    p.skip_newlines();
    p.keyword("graph", "'graph' at the start of the text")?;
    p.punct('{', "'{' after 'graph'")?;
    p.end_line()?;
    let g = p.body(0)?;
    p.punct('}', "'}' to close the graph")?;
    p.skip_newlines();
    if p.peek().tok != Tok::Eof {
        return p.expected("end of input after the closing '}'");
    }
    Ok(g)
}

/// The attribute value kinds.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Usize,
    Bool,
    DType,
    Dist,
    UsizeList,
    Shape,
    Pairs,
    Ranges,
    Float,
    Type,
}

/// A parsed attribute value.
#[derive(Clone, Debug)]
enum Val {
    Usize(usize),
    Bool(bool),
    DType(DType),
    Dist(Distribution),
    List(Vec<usize>),
    Shape(Shape),
    Pairs(Vec<(usize, usize)>),
    Ranges(Vec<SliceAxis>),
    Float(u64),
    Type(TensorType),
}

/// The attributes of one op line, taken out one by one while building the op.
struct Attrs {
    op: &'static str,
    vals: Vec<(&'static str, Val)>,
    /// Where missing-attribute errors point: the end of the attribute list.
    line: usize,
    col: usize,
}

impl Attrs {
    fn missing<T>(&self, key: &str) -> Result<T, ParseError> {
        Err(ParseError {
            line: self.line,
            col: self.col,
            msg: format!("op '{}' needs attribute '{key}='", self.op),
        })
    }

    fn take(&mut self, key: &str) -> Option<Val> {
        let i = self.vals.iter().position(|(k, _)| *k == key)?;
        Some(self.vals.remove(i).1)
    }
}

macro_rules! getter {
    ($fn:ident, $variant:ident, $t:ty) => {
        fn $fn(&mut self, key: &str) -> Result<$t, ParseError> {
            match self.take(key) {
                Some(Val::$variant(x)) => Ok(x),
                Some(_) | None => self.missing(key),
            }
        }
    };
}

impl Attrs {
    getter!(usize, Usize, usize);
    getter!(bool, Bool, bool);
    getter!(dtype, DType, DType);
    getter!(dist, Dist, Distribution);
    getter!(list, List, Vec<usize>);
    getter!(shape, Shape, Shape);
    getter!(pairs, Pairs, Vec<(usize, usize)>);
    getter!(ranges, Ranges, Vec<SliceAxis>);
    getter!(float, Float, u64);

    fn opt_type(&mut self) -> Option<TensorType> {
        match self.take("ty") {
            Some(Val::Type(t)) => Some(t),
            Some(_) | None => None,
        }
    }
}

/// Every op mnemonic with a template op carrying placeholder payloads.
fn op_template(name: &str) -> Option<Op> {
    let placeholder = TensorType::new(DType::F32, Shape::scalar());
    let mut all = vec![
        Op::Input {
            name: String::new(),
            ty: placeholder.clone(),
        },
        Op::Parameter {
            name: String::new(),
            ty: placeholder,
        },
        Op::Constant(Array::scalar(DType::F32, 0.0)),
        Op::Where,
        Op::Cast { to: DType::F32 },
        Op::Reshape {
            shape: Shape::scalar(),
        },
        Op::Permute { perm: Vec::new() },
        Op::Expand {
            shape: Shape::scalar(),
        },
        Op::Slice { axes: Vec::new() },
        Op::Unfold {
            axis: 0,
            size: 1,
            step: 1,
            dilation: 1,
        },
        Op::Pad {
            pads: Vec::new(),
            value_bits: 0,
        },
        Op::Concat { axis: 0 },
        Op::Gather { axis: 0 },
        Op::Softmax { axis: 0 },
        Op::SoftmaxBackward { axis: 0 },
        Op::ScatterAdd {
            axis: 0,
            shape: Shape::scalar(),
        },
        Op::Detach,
        Op::MatMul,
        Op::Conv(ConvParams {
            stride: Vec::new(),
            padding: Vec::new(),
            dilation: Vec::new(),
            groups: 1,
        }),
        Op::Random {
            dist: Distribution::Uniform,
            dtype: DType::F32,
            shape: Shape::scalar(),
        },
        Op::Scan(ScanOp {
            body: Arc::new(Graph::new()),
            num_carry: 0,
            num_xs: 0,
            length: 0,
            axis: 0,
            reverse: false,
        }),
    ];
    all.extend(UnaryOp::ALL.map(Op::Unary));
    all.extend(BinaryOp::ALL.map(Op::Binary));
    all.extend(CmpOp::ALL.map(Op::Compare));
    all.extend(ReduceKind::ALL.map(|kind| Op::Reduce {
        kind,
        axes: Vec::new(),
        keepdim: false,
    }));
    all.extend(
        [ArgKind::ArgMax, ArgKind::ArgMin].map(|kind| Op::ArgReduce {
            kind,
            axis: 0,
            keepdim: false,
        }),
    );
    all.into_iter().find(|op| op.name() == name)
}

/// Per-graph parsing state: the `%n` namespace and the list lines.
struct Body {
    g: Graph,
    vals: HashMap<usize, ValueId>,
    inputs: Option<Vec<ValueId>>,
    outputs: Option<Vec<ValueId>>,
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

type PResult<T> = Result<T, ParseError>;

impl Parser {
    fn peek(&self) -> &Token {
        // `lex` always ends with Eof, and `next` never moves past it.
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn err_at<T>(&self, t: &Token, msg: impl Into<String>) -> PResult<T> {
        Err(ParseError {
            line: t.line,
            col: t.col,
            msg: msg.into(),
        })
    }

    /// `expected WHAT, found TOKEN`, at the next token.
    fn expected<T>(&self, what: &str) -> PResult<T> {
        let t = self.peek();
        self.err_at(t, format!("expected {what}, found {}", t.describe()))
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek().tok == Tok::Punct(c)
    }

    fn punct(&mut self, c: char, what: &str) -> PResult<()> {
        if self.is_punct(c) {
            self.next();
            Ok(())
        } else {
            self.expected(what)
        }
    }

    fn keyword(&mut self, kw: &str, what: &str) -> PResult<()> {
        if self.peek().tok == Tok::Ident(kw.to_string()) {
            self.next();
            Ok(())
        } else {
            self.expected(what)
        }
    }

    fn skip_newlines(&mut self) {
        while self.peek().tok == Tok::Newline {
            self.next();
        }
    }

    fn end_line(&mut self) -> PResult<()> {
        if self.peek().tok == Tok::Newline {
            self.next();
            Ok(())
        } else {
            self.expected("end of line")
        }
    }

    fn ident(&mut self, what: &str) -> PResult<(String, Token)> {
        if let Tok::Ident(s) = &self.peek().tok {
            let s = s.clone();
            return Ok((s, self.next()));
        }
        self.expected(what)
    }

    fn string(&mut self, what: &str) -> PResult<String> {
        if let Tok::Str(s) = &self.peek().tok {
            let s = s.clone();
            self.next();
            return Ok(s);
        }
        self.expected(what)
    }

    /// A number token's text.
    fn num(&mut self, what: &str) -> PResult<(String, Token)> {
        if let Tok::Num(s) = &self.peek().tok {
            let s = s.clone();
            return Ok((s, self.next()));
        }
        self.expected(what)
    }

    fn usize(&mut self, what: &str) -> PResult<usize> {
        let (s, t) = self.num(what)?;
        s.parse::<usize>().or_else(|_| {
            self.err_at(
                &t,
                format!("expected {what} (a non-negative integer), found {s}"),
            )
        })
    }

    fn u32(&mut self, what: &str) -> PResult<u32> {
        let (s, t) = self.num(what)?;
        s.parse::<u32>().or_else(|_| {
            self.err_at(
                &t,
                format!("expected {what} (a 32-bit unsigned integer), found {s}"),
            )
        })
    }

    fn bool(&mut self, what: &str) -> PResult<bool> {
        let (s, t) = self.ident(what)?;
        match s.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => self.err_at(
                &t,
                format!("expected {what} ('true' or 'false'), found '{s}'"),
            ),
        }
    }

    fn dtype(&mut self) -> PResult<DType> {
        let what = "a dtype (f32, f64, i64 or bool)";
        let (s, t) = self.ident(what)?;
        match DType::from_name(&s) {
            Some(d) => Ok(d),
            None => self.err_at(&t, format!("expected {what}, found '{s}'")),
        }
    }

    /// `[item, item, …]`.
    fn list<T>(
        &mut self,
        what: &str,
        mut item: impl FnMut(&mut Parser) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        self.punct('[', &format!("'[' to start {what}"))?;
        let mut out = Vec::new();
        if self.is_punct(']') {
            self.next();
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if self.is_punct(',') {
                self.next();
            } else if self.is_punct(']') {
                self.next();
                return Ok(out);
            } else {
                return self.expected(&format!("',' or ']' in {what}"));
            }
        }
    }

    /// `[d0,d1,…]` with a product that fits in `usize`.
    fn shape(&mut self) -> PResult<Shape> {
        let start = self.peek().clone();
        let dims = self.list("shape", |p| p.usize("an extent"))?;
        if dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .is_none()
        {
            return self.err_at(&start, "shape has more elements than fit in usize");
        }
        Ok(Shape::new(dims))
    }

    /// `f32[5,1,100]`.
    fn ty(&mut self) -> PResult<TensorType> {
        let dtype = self.dtype()?;
        let shape = self.shape()?;
        Ok(TensorType { dtype, shape })
    }

    /// A float literal: `1.5`, `-0.0`, `1e-7`, `inf`, `-inf`, `nan`, `nan(0x7fc00001)`.
    /// Decimal digits are parsed directly as `T` (no double rounding).
    fn float<T: std::str::FromStr>(
        &mut self,
        inf: T,
        neg_inf: T,
        nan_from_bits: impl Fn(u64) -> Option<T>,
        canonical_nan: T,
    ) -> PResult<T> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Num(s) => {
                self.next();
                if s.starts_with("0x") || s.starts_with("-0x") {
                    return self.err_at(&t, format!("expected a float, found {s}"));
                }
                s.parse::<T>()
                    .or_else(|_| self.err_at(&t, format!("invalid float literal {s}")))
            }
            Tok::Punct('-') => {
                self.next();
                self.keyword("inf", "'inf' after '-'")?;
                Ok(neg_inf)
            }
            Tok::Ident(s) if s == "inf" => {
                self.next();
                Ok(inf)
            }
            Tok::Ident(s) if s == "nan" => {
                self.next();
                if !self.is_punct('(') {
                    return Ok(canonical_nan);
                }
                self.next();
                let (h, ht) = self.num("NaN bits in hex (0x…)")?;
                let bits = h
                    .strip_prefix("0x")
                    .and_then(|d| u64::from_str_radix(d, 16).ok());
                let Some(x) = bits.and_then(nan_from_bits) else {
                    return self.err_at(&ht, format!("{h} is not the bit pattern of a NaN"));
                };
                self.punct(')', "')' after NaN bits")?;
                Ok(x)
            }
            Tok::Newline
            | Tok::Value(_)
            | Tok::Ident(_)
            | Tok::Str(_)
            | Tok::Punct(_)
            | Tok::Eof => self.expected("a float (e.g. 1.5, -0.0, inf, -inf, nan)"),
        }
    }

    fn f32(&mut self) -> PResult<f32> {
        self.float(
            f32::INFINITY,
            f32::NEG_INFINITY,
            |b| {
                let x = f32::from_bits(u32::try_from(b).ok()?);
                x.is_nan().then_some(x)
            },
            f32::NAN,
        )
    }

    fn f64(&mut self) -> PResult<f64> {
        self.float(
            f64::INFINITY,
            f64::NEG_INFINITY,
            |b| {
                let x = f64::from_bits(b);
                x.is_nan().then_some(x)
            },
            f64::NAN,
        )
    }

    fn i64(&mut self) -> PResult<i64> {
        let (s, t) = self.num("an i64 element")?;
        s.parse::<i64>()
            .or_else(|_| self.err_at(&t, format!("expected an i64 element, found {s}")))
    }

    /// `f32[2] [1.5, nan]`.
    fn constant(&mut self) -> PResult<Array> {
        let start = self.peek().clone();
        let ty = self.ty()?;
        let data = match ty.dtype {
            DType::Bool => Data::Bool(self.list("constant elements", |p| p.bool("a bool"))?),
            DType::I64 => Data::I64(self.list("constant elements", Parser::i64)?),
            DType::F32 => Data::F32(self.list("constant elements", Parser::f32)?),
            DType::F64 => Data::F64(self.list("constant elements", Parser::f64)?),
        };
        let got = data.len();
        // `shape()` checked that numel does not overflow.
        Array::new(ty.shape, data).or_else(|e| {
            self.err_at(
                &start,
                format!(
                    "constant of type {}{} needs {} elements, got {got}",
                    ty.dtype, e.shape, e.expected
                ),
            )
        })
    }

    /// A `%n` use.
    fn value_ref(&mut self, b: &Body) -> PResult<ValueId> {
        let t = self.next();
        let Tok::Value(d) = &t.tok else {
            return self.err_at(&t, format!("expected a value '%n', found {}", t.describe()));
        };
        match d.parse::<usize>().ok().and_then(|n| b.vals.get(&n)) {
            Some(&v) => Ok(v),
            None => self.err_at(&t, format!("use of undefined value %{d}")),
        }
    }

    /// `%a, %b, …`, possibly empty.
    fn value_list(&mut self, b: &Body) -> PResult<Vec<ValueId>> {
        let mut out = Vec::new();
        if !matches!(self.peek().tok, Tok::Value(_)) {
            return Ok(out);
        }
        loop {
            out.push(self.value_ref(b)?);
            if !self.is_punct(',') {
                return Ok(out);
            }
            self.next();
        }
    }

    /// The statements of one graph, up to (not including) its closing `}`.
    fn body(&mut self, depth: usize) -> PResult<Graph> {
        let mut b = Body {
            g: Graph::new(),
            vals: HashMap::new(),
            inputs: None,
            outputs: None,
        };
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::Newline => {
                    self.next();
                }
                Tok::Punct('}') => break,
                Tok::Ident(kw) if kw == "inputs" || kw == "outputs" => {
                    self.next();
                    let list = self.value_list(&b)?;
                    self.end_line()?;
                    let slot = if kw == "inputs" {
                        &mut b.inputs
                    } else {
                        &mut b.outputs
                    };
                    if slot.is_some() {
                        return self.err_at(&t, format!("second '{kw}' line in one graph"));
                    }
                    *slot = Some(list);
                }
                Tok::Value(_) | Tok::Ident(_) => self.statement(&mut b, depth)?,
                Tok::Eof => {
                    return self.err_at(&t, "expected '}' to close the graph, found end of input")
                }
                Tok::Num(_) | Tok::Str(_) | Tok::Punct(_) => {
                    return self.expected("a statement ('%n: type = op …', 'inputs' or 'outputs')")
                }
            }
        }
        if let Some(i) = b.inputs {
            b.g.set_inputs(i);
        }
        b.g.set_outputs(b.outputs.unwrap_or_default());
        Ok(b.g)
    }

    /// One op line (or an `orphan` line), including a Scan's body.
    fn statement(&mut self, b: &mut Body, depth: usize) -> PResult<()> {
        let mut results: Vec<(usize, TensorType)> = Vec::new();
        if matches!(self.peek().tok, Tok::Value(_)) {
            loop {
                let t = self.next();
                let Tok::Value(d) = &t.tok else {
                    return self.err_at(
                        &t,
                        format!("expected a result '%n', found {}", t.describe()),
                    );
                };
                let Ok(n) = d.parse::<usize>() else {
                    return self.err_at(&t, format!("value number %{d} is too large"));
                };
                if b.vals.contains_key(&n) || results.iter().any(|r| r.0 == n) {
                    return self.err_at(&t, format!("redefinition of %{n}"));
                }
                self.punct(':', &format!("':' and a type after %{n}"))?;
                results.push((n, self.ty()?));
                if !self.is_punct(',') {
                    break;
                }
                self.next();
            }
            self.punct('=', "'=' after the results")?;
        }
        let (name, name_tok) = self.ident("an op mnemonic")?;
        if name == "orphan" {
            if results.len() != 1 {
                return self.err_at(&name_tok, "'orphan' defines exactly one value");
            }
            self.end_line()?;
            let (n, ty) = results.remove(0);
            let v = b.g.add_orphan_value(ty);
            b.vals.insert(n, v);
            return Ok(());
        }
        let Some(template) = op_template(&name) else {
            return self.err_at(&name_tok, format!("unknown op '{name}'"));
        };
        let operands = self.value_list(b)?;
        let positional = match &template {
            Op::Input { .. } | Op::Parameter { .. } => Some(Positional::Name(
                self.string(&format!("the {name}'s name (a string)"))?,
            )),
            Op::Constant(_) => Some(Positional::Array(self.constant()?)),
            Op::Unary(_)
            | Op::Binary(_)
            | Op::Compare(_)
            | Op::Where
            | Op::Cast { .. }
            | Op::Reduce { .. }
            | Op::ArgReduce { .. }
            | Op::Reshape { .. }
            | Op::Permute { .. }
            | Op::Expand { .. }
            | Op::Slice { .. }
            | Op::Unfold { .. }
            | Op::Pad { .. }
            | Op::Concat { .. }
            | Op::Gather { .. }
            | Op::ScatterAdd { .. }
            | Op::Softmax { .. }
            | Op::SoftmaxBackward { .. }
            | Op::Detach
            | Op::MatMul
            | Op::Conv(_)
            | Op::Random { .. }
            | Op::Scan(_) => None,
        };
        let mut attrs = self.attrs(&template)?;
        let result_ty = match results.as_slice() {
            [(_, t)] => Some(t.clone()),
            _ => None,
        };
        let mut op = build(template, positional, &mut attrs, result_ty)?;
        if let Some((key, _)) = attrs.vals.first() {
            // Unreachable: `attrs` only accepts keys of the op's schema.
            return attrs.missing(key);
        }
        let loc = if self.is_punct('@') {
            self.next();
            let file = self.string("a file name (a string) after '@'")?;
            self.punct(':', "':' after the file name")?;
            let line = self.u32("a line number")?;
            self.punct(':', "':' after the line number")?;
            let col = self.u32("a column number")?;
            Some(SourceLoc::new(&file, line, col))
        } else {
            None
        };
        if let Op::Scan(s) = &mut op {
            if depth + 1 >= MAX_DEPTH {
                return self.expected("no deeper scan nesting (limit reached)");
            }
            self.punct('{', "'{' to start the scan body")?;
            self.end_line()?;
            s.body = Arc::new(self.body(depth + 1)?);
            self.punct('}', "'}' to close the scan body")?;
        }
        self.end_line()?;
        let (_, vs) = b.g.add_op_unchecked(
            op,
            &operands,
            results.iter().map(|r| r.1.clone()).collect(),
            loc,
        );
        for ((n, _), v) in results.iter().zip(vs) {
            b.vals.insert(*n, v);
        }
        Ok(())
    }

    /// `key=value …` for the keys of `op`'s schema, each at most once.
    fn attrs(&mut self, op: &Op) -> PResult<Attrs> {
        let schema = schema(op);
        let mut vals: Vec<(&'static str, Val)> = Vec::new();
        while let Tok::Ident(key) = &self.peek().tok {
            let key = key.clone();
            let key_tok = self.next();
            let Some(&(k, kind)) = schema.iter().find(|(k, _)| *k == key) else {
                let known: Vec<String> = schema.iter().map(|(k, _)| format!("'{k}='")).collect();
                let hint = if known.is_empty() {
                    "it takes no attributes".to_string()
                } else {
                    format!("expected one of {}", known.join(", "))
                };
                return self.err_at(
                    &key_tok,
                    format!("unknown attribute '{key}' for op '{}' ({hint})", op.name()),
                );
            };
            if vals.iter().any(|(k2, _)| *k2 == k) {
                return self.err_at(&key_tok, format!("attribute '{k}' given twice"));
            }
            self.punct('=', &format!("'=' after attribute '{k}'"))?;
            let v = match kind {
                Kind::Usize => Val::Usize(self.usize(&format!("an integer for '{k}'"))?),
                Kind::Bool => Val::Bool(self.bool(&format!("a bool for '{k}'"))?),
                Kind::DType => Val::DType(self.dtype()?),
                Kind::Dist => {
                    let what = "a distribution (uniform or normal)";
                    let (s, t) = self.ident(what)?;
                    let d = [Distribution::Uniform, Distribution::Normal]
                        .into_iter()
                        .find(|d| d.name() == s);
                    match d {
                        Some(d) => Val::Dist(d),
                        None => return self.err_at(&t, format!("expected {what}, found '{s}'")),
                    }
                }
                Kind::UsizeList => Val::List(self.list(k, |p| p.usize("an integer"))?),
                Kind::Shape => Val::Shape(self.shape()?),
                Kind::Pairs => Val::Pairs(self.list(k, |p| {
                    p.punct('(', "'(' to start a (before,after) pair")?;
                    let a = p.usize("an integer")?;
                    p.punct(',', "',' in a (before,after) pair")?;
                    let b = p.usize("an integer")?;
                    p.punct(')', "')' to close a (before,after) pair")?;
                    Ok((a, b))
                })?),
                Kind::Ranges => Val::Ranges(self.list(k, |p| {
                    let start = p.usize("a slice start")?;
                    p.punct(':', "':' in start:stop:step")?;
                    let stop = p.usize("a slice stop")?;
                    p.punct(':', "':' in start:stop:step")?;
                    let step = p.usize("a slice step")?;
                    Ok(SliceAxis { start, stop, step })
                })?),
                Kind::Float => Val::Float(self.f64()?.to_bits()),
                Kind::Type => Val::Type(self.ty()?),
            };
            vals.push((k, v));
        }
        let end = self.peek();
        Ok(Attrs {
            op: op.name(),
            vals,
            line: end.line,
            col: end.col,
        })
    }
}

/// Operand-free payload printed right after the operands.
enum Positional {
    Name(String),
    Array(Array),
}

/// The attribute keys each op accepts.
fn schema(op: &Op) -> &'static [(&'static str, Kind)] {
    match op {
        Op::Input { .. } | Op::Parameter { .. } => &[("ty", Kind::Type)],
        Op::Constant(_)
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Compare(_)
        | Op::Where
        | Op::Detach
        | Op::MatMul => &[],
        Op::ScatterAdd { .. } => &[("axis", Kind::Usize), ("shape", Kind::Shape)],
        Op::Cast { .. } => &[("to", Kind::DType)],
        Op::Reduce { .. } => &[("axes", Kind::UsizeList), ("keepdim", Kind::Bool)],
        Op::ArgReduce { .. } => &[("axis", Kind::Usize), ("keepdim", Kind::Bool)],
        Op::Reshape { .. } | Op::Expand { .. } => &[("shape", Kind::Shape)],
        Op::Permute { .. } => &[("perm", Kind::UsizeList)],
        Op::Slice { .. } => &[("axes", Kind::Ranges)],
        Op::Unfold { .. } => &[
            ("axis", Kind::Usize),
            ("size", Kind::Usize),
            ("step", Kind::Usize),
            ("dilation", Kind::Usize),
        ],
        Op::Pad { .. } => &[("pads", Kind::Pairs), ("value", Kind::Float)],
        Op::Concat { .. } | Op::Gather { .. } | Op::Softmax { .. } | Op::SoftmaxBackward { .. } => {
            &[("axis", Kind::Usize)]
        }
        Op::Conv(_) => &[
            ("stride", Kind::UsizeList),
            ("padding", Kind::Pairs),
            ("dilation", Kind::UsizeList),
            ("groups", Kind::Usize),
        ],
        Op::Random { .. } => &[
            ("dist", Kind::Dist),
            ("dtype", Kind::DType),
            ("shape", Kind::Shape),
        ],
        Op::Scan(_) => &[
            ("carry", Kind::Usize),
            ("xs", Kind::Usize),
            ("length", Kind::Usize),
            ("axis", Kind::Usize),
            ("reverse", Kind::Bool),
        ],
    }
}

/// Fills a template op with its parsed payload. `result_ty` is the type of the single
/// result, if there is exactly one (the default `ty` of Input and Parameter).
fn build(
    template: Op,
    positional: Option<Positional>,
    a: &mut Attrs,
    result_ty: Option<TensorType>,
) -> PResult<Op> {
    let name = match &positional {
        Some(Positional::Name(n)) => n.clone(),
        Some(Positional::Array(_)) | None => String::new(),
    };
    let ty = |a: &mut Attrs| match a.opt_type().or(result_ty) {
        Some(t) => Ok(t),
        None => a.missing("ty"),
    };
    Ok(match template {
        Op::Input { .. } => Op::Input { name, ty: ty(a)? },
        Op::Parameter { .. } => Op::Parameter { name, ty: ty(a)? },
        Op::Constant(placeholder) => match positional {
            Some(Positional::Array(arr)) => Op::Constant(arr),
            Some(Positional::Name(_)) | None => Op::Constant(placeholder),
        },
        op @ (Op::Unary(_)
        | Op::Binary(_)
        | Op::Compare(_)
        | Op::Where
        | Op::Detach
        | Op::MatMul) => op,
        Op::ScatterAdd { .. } => Op::ScatterAdd {
            axis: a.usize("axis")?,
            shape: a.shape("shape")?,
        },
        Op::Cast { .. } => Op::Cast { to: a.dtype("to")? },
        Op::Reduce { kind, .. } => Op::Reduce {
            kind,
            axes: a.list("axes")?,
            keepdim: a.bool("keepdim")?,
        },
        Op::ArgReduce { kind, .. } => Op::ArgReduce {
            kind,
            axis: a.usize("axis")?,
            keepdim: a.bool("keepdim")?,
        },
        Op::Reshape { .. } => Op::Reshape {
            shape: a.shape("shape")?,
        },
        Op::Expand { .. } => Op::Expand {
            shape: a.shape("shape")?,
        },
        Op::Permute { .. } => Op::Permute {
            perm: a.list("perm")?,
        },
        Op::Slice { .. } => Op::Slice {
            axes: a.ranges("axes")?,
        },
        Op::Unfold { .. } => Op::Unfold {
            axis: a.usize("axis")?,
            size: a.usize("size")?,
            step: a.usize("step")?,
            dilation: a.usize("dilation")?,
        },
        Op::Pad { .. } => Op::Pad {
            pads: a.pairs("pads")?,
            value_bits: a.float("value")?,
        },
        Op::Softmax { .. } => Op::Softmax {
            axis: a.usize("axis")?,
        },
        Op::SoftmaxBackward { .. } => Op::SoftmaxBackward {
            axis: a.usize("axis")?,
        },
        Op::Concat { .. } => Op::Concat {
            axis: a.usize("axis")?,
        },
        Op::Gather { .. } => Op::Gather {
            axis: a.usize("axis")?,
        },
        Op::Conv(_) => Op::Conv(ConvParams {
            stride: a.list("stride")?,
            padding: a.pairs("padding")?,
            dilation: a.list("dilation")?,
            groups: a.usize("groups")?,
        }),
        Op::Random { .. } => Op::Random {
            dist: a.dist("dist")?,
            dtype: a.dtype("dtype")?,
            shape: a.shape("shape")?,
        },
        Op::Scan(s) => Op::Scan(ScanOp {
            body: s.body,
            num_carry: a.usize("carry")?,
            num_xs: a.usize("xs")?,
            length: a.usize("length")?,
            axis: a.usize("axis")?,
            reverse: a.bool("reverse")?,
        }),
    })
}
