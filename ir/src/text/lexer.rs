//! Tokenizer of the text form.
//!
//! Whitespace other than newlines is insignificant; newlines end statements. `//`
//! starts a comment running to the end of the line. Every token records its 1-based
//! line and column (in characters) for error messages.

use super::parse::ParseError;

/// A token kind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// End of a line.
    Newline,
    /// `%` followed by digits; holds the digits.
    Value(String),
    /// `[A-Za-z_][A-Za-z0-9_]*`.
    Ident(String),
    /// A number: `-?digits(.digits)?([eE][+-]?digits)?` or `0x` hex digits.
    Num(String),
    /// A double-quoted string, escapes resolved.
    Str(String),
    /// One of `{ } [ ] ( ) , = : @ -`.
    Punct(char),
    /// End of input.
    Eof,
}

/// A token and where it starts.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    /// The token.
    pub tok: Tok,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl Token {
    /// A short description for "found …" in error messages.
    pub fn describe(&self) -> String {
        match &self.tok {
            Tok::Newline => "end of line".to_string(),
            Tok::Value(d) => format!("'%{d}'"),
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Num(s) => format!("number {s}"),
            Tok::Str(s) => {
                let short: String = s.chars().take(20).collect();
                if short.len() < s.len() {
                    format!("string {:?}…", short)
                } else {
                    format!("string {s:?}")
                }
            }
            Tok::Punct(c) => format!("'{c}'"),
            Tok::Eof => "end of input".to_string(),
        }
    }
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek2(&self) -> Option<char> {
        self.chars.get(self.i + 1).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn err<T>(&self, line: usize, col: usize, msg: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            line,
            col,
            msg: msg.into(),
        })
    }

    fn take_while(&mut self, mut f: impl FnMut(char) -> bool) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            s.push(c);
            self.bump();
        }
        s
    }

    fn number(&mut self) -> String {
        let mut s = String::new();
        if self.peek() == Some('-') {
            s.push('-');
            self.bump();
        }
        if self.peek() == Some('0') && matches!(self.peek2(), Some('x' | 'X')) {
            s.push('0');
            self.bump();
            s.push('x');
            self.bump();
            s.push_str(&self.take_while(|c| c.is_ascii_hexdigit()));
            return s;
        }
        s.push_str(&self.take_while(|c| c.is_ascii_digit()));
        if self.peek() == Some('.') {
            s.push('.');
            self.bump();
            s.push_str(&self.take_while(|c| c.is_ascii_digit()));
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = matches!(self.peek2(), Some('+' | '-'));
            let digit_at = if sign { self.i + 2 } else { self.i + 1 };
            if self
                .chars
                .get(digit_at)
                .is_some_and(|c: &char| c.is_ascii_digit())
            {
                for _ in self.i..digit_at {
                    if let Some(c) = self.bump() {
                        s.push(c);
                    }
                }
                s.push_str(&self.take_while(|c| c.is_ascii_digit()));
            }
        }
        s
    }

    fn string(&mut self, line: usize, col: usize) -> Result<String, ParseError> {
        self.bump(); // opening quote
        let mut s = String::new();
        loop {
            let (l, c0) = (self.line, self.col);
            match self.bump() {
                None | Some('\n') => return self.err(line, col, "unterminated string"),
                Some('"') => return Ok(s),
                Some('\\') => match self.bump() {
                    Some('"') => s.push('"'),
                    Some('\\') => s.push('\\'),
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('u') => {
                        if self.bump() != Some('{') {
                            return self.err(l, c0, "expected '{' after '\\u' in string");
                        }
                        let hex = self.take_while(|c| c.is_ascii_hexdigit());
                        if self.bump() != Some('}') {
                            return self.err(l, c0, "expected '}' to close '\\u{…}' in string");
                        }
                        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                            Some(ch) => s.push(ch),
                            None => {
                                return self.err(l, c0, format!("invalid escape '\\u{{{hex}}}'"))
                            }
                        }
                    }
                    Some(other) => {
                        return self.err(
                            l,
                            c0,
                            format!("unknown escape '\\{}' in string", other.escape_debug()),
                        )
                    }
                    None => return self.err(line, col, "unterminated string"),
                },
                Some(ch) => s.push(ch),
            }
        }
    }
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lx = Lexer {
        chars: src.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    let mut out = Vec::new();
    while let Some(c) = lx.peek() {
        let (line, col) = (lx.line, lx.col);
        let tok = match c {
            '\n' => {
                lx.bump();
                Tok::Newline
            }
            ' ' | '\t' | '\r' => {
                lx.bump();
                continue;
            }
            '/' if lx.peek2() == Some('/') => {
                lx.take_while(|c| c != '\n');
                continue;
            }
            '%' => {
                lx.bump();
                let d = lx.take_while(|c| c.is_ascii_digit());
                if d.is_empty() {
                    return lx.err(line, col, "expected digits after '%'");
                }
                Tok::Value(d)
            }
            '"' => Tok::Str(lx.string(line, col)?),
            c if c.is_ascii_alphabetic() || c == '_' => {
                Tok::Ident(lx.take_while(|c| c.is_ascii_alphanumeric() || c == '_'))
            }
            c if c.is_ascii_digit() => Tok::Num(lx.number()),
            '-' if lx.peek2().is_some_and(|c| c.is_ascii_digit()) => Tok::Num(lx.number()),
            '{' | '}' | '[' | ']' | '(' | ')' | ',' | '=' | ':' | '@' | '-' => {
                lx.bump();
                Tok::Punct(c)
            }
            other => {
                return lx.err(
                    line,
                    col,
                    format!("unexpected character '{}'", other.escape_debug()),
                )
            }
        };
        out.push(Token { tok, line, col });
    }
    out.push(Token {
        tok: Tok::Eof,
        line: lx.line,
        col: lx.col,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers_and_punctuation() {
        assert_eq!(
            kinds("%12: f32[1,2] -1.5e-7 0x7fc00001 -inf 3:4 // c\n"),
            vec![
                Tok::Value("12".into()),
                Tok::Punct(':'),
                Tok::Ident("f32".into()),
                Tok::Punct('['),
                Tok::Num("1".into()),
                Tok::Punct(','),
                Tok::Num("2".into()),
                Tok::Punct(']'),
                Tok::Num("-1.5e-7".into()),
                Tok::Num("0x7fc00001".into()),
                Tok::Punct('-'),
                Tok::Ident("inf".into()),
                Tok::Num("3".into()),
                Tok::Punct(':'),
                Tok::Num("4".into()),
                Tok::Newline,
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn strings_and_positions() {
        let t = lex("a\n  \"x\\\"y\\\\z\\u{e9}\\n\"").unwrap();
        assert_eq!(t[2].tok, Tok::Str("x\"y\\zé\n".into()));
        assert_eq!((t[2].line, t[2].col), (2, 3));
        let e = lex("\n\n  \"abc").unwrap_err();
        assert_eq!((e.line, e.col), (3, 3));
        let e = lex("a $").unwrap_err();
        assert_eq!((e.line, e.col), (1, 3));
    }
}
