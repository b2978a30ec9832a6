//! A syntax check for Common Expression Language (CEL) expressions, as access-log filters are
//! written in. It answers only "would this parse?": names and types are resolved by the proxy
//! when the filter runs, so a well-formed expression about an unknown attribute is accepted.

use std::fmt;

/// Why an expression does not parse: what was wrong, and at which character (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "syntax error at character {}: {}",
            self.column, self.message
        )
    }
}

/// How deeply expressions may nest before the check gives up (as CEL parsers limit recursion).
const MAX_DEPTH: usize = 200;

/// Words CEL keeps for itself; they cannot name variables or functions.
const RESERVED: [&str; 16] = [
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
];

/// Checks that `text` is one well-formed CEL expression.
pub fn check(text: &str) -> Result<(), SyntaxError> {
    let tokens = lex(text)?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        depth: 0,
        end: text.chars().count() + 1,
    };
    parser.expr()?;
    match parser.peek() {
        None => Ok(()),
        Some(token) => Err(parser.error_at(token, format!("unexpected {}", token.kind))),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Ident(String),
    Literal,
    Punct(&'static str),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Ident(name) => write!(f, "{name:?}"),
            Kind::Literal => f.write_str("literal"),
            Kind::Punct(p) => write!(f, "'{p}'"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    column: usize,
}

const PUNCTUATION: [&str; 24] = [
    "==", "!=", "<=", ">=", "&&", "||", "(", ")", "[", "]", "{", "}", ".", ",", ":", "?", "!", "-",
    "+", "*", "/", "%", "<", ">",
];

fn lex(text: &str) -> Result<Vec<Token>, SyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let error = |column: usize, message: String| SyntaxError {
        column: column + 1,
        message,
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            i = lex_number(&chars, i).map_err(|m| error(start, m))?;
            tokens.push(Token {
                kind: Kind::Literal,
                column: start,
            });
        } else if let Some(end) = string_start(&chars, i) {
            i = lex_string(&chars, i, end).map_err(|m| error(start, m))?;
            tokens.push(Token {
                kind: Kind::Literal,
                column: start,
            });
        } else if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let kind = match word.as_str() {
                "true" | "false" | "null" => Kind::Literal,
                "in" => Kind::Punct("in"),
                _ => Kind::Ident(word),
            };
            tokens.push(Token {
                kind,
                column: start,
            });
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(p) = PUNCTUATION.iter().find(|p| rest.starts_with(**p)) else {
                return Err(error(start, format!("unexpected character {c:?}")));
            };
            i += p.chars().count();
            tokens.push(Token {
                kind: Kind::Punct(p),
                column: start,
            });
        }
    }
    Ok(tokens)
}

/// Reads a number (int, uint, hex or double) starting at `i`; returns where it ends.
fn lex_number(chars: &[char], mut i: usize) -> Result<usize, String> {
    let digits = |i: &mut usize, hex: bool| {
        let from = *i;
        while *i < chars.len()
            && (chars[*i].is_ascii_digit() || (hex && chars[*i].is_ascii_hexdigit()))
        {
            *i += 1;
        }
        *i > from
    };
    if chars[i] == '0' && matches!(chars.get(i + 1), Some('x' | 'X')) {
        i += 2;
        if !digits(&mut i, true) {
            return Err("a hexadecimal number needs digits after 0x".into());
        }
    } else {
        let mut float = false;
        digits(&mut i, false);
        if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            i += 1;
            digits(&mut i, false);
            float = true;
        }
        if matches!(chars.get(i), Some('e' | 'E')) {
            i += 1;
            if matches!(chars.get(i), Some('+' | '-')) {
                i += 1;
            }
            if !digits(&mut i, false) {
                return Err("an exponent needs digits".into());
            }
            float = true;
        }
        if float {
            return Ok(i);
        }
    }
    if matches!(chars.get(i), Some('u' | 'U')) {
        i += 1;
    }
    if chars
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
    {
        return Err(format!("unexpected {:?} after a number", chars[i]));
    }
    Ok(i)
}

/// If a string literal starts at `i` (with its optional `r`/`b` prefixes), where its quotes
/// start.
fn string_start(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    while j < chars.len() && j < i + 2 && matches!(chars[j], 'r' | 'R' | 'b' | 'B') {
        j += 1;
    }
    matches!(chars.get(j), Some('"' | '\'')).then_some(j)
}

/// Reads a string literal whose prefix starts at `i` and quotes at `quote_at`.
fn lex_string(chars: &[char], i: usize, quote_at: usize) -> Result<usize, String> {
    let raw = chars[i..quote_at].iter().any(|c| matches!(c, 'r' | 'R'));
    let quote = chars[quote_at];
    let triple = chars.get(quote_at + 1) == Some(&quote) && chars.get(quote_at + 2) == Some(&quote);
    let mut j = quote_at + if triple { 3 } else { 1 };
    loop {
        let Some(&c) = chars.get(j) else {
            return Err("the string is not closed".into());
        };
        if triple
            && c == quote
            && chars.get(j + 1) == Some(&quote)
            && chars.get(j + 2) == Some(&quote)
        {
            return Ok(j + 3);
        }
        if !triple && c == quote {
            return Ok(j + 1);
        }
        if !triple && (c == '\n' || c == '\r') {
            return Err("a quoted string cannot span lines (use triple quotes)".into());
        }
        if c == '\\' && !raw {
            j += escape_length(&chars[j + 1..])? + 1;
        } else {
            j += 1;
        }
    }
}

/// How many characters follow a backslash in a valid escape.
fn escape_length(rest: &[char]) -> Result<usize, String> {
    let hex = |n: usize| rest.len() > n && rest[1..=n].iter().all(char::is_ascii_hexdigit);
    match rest.first() {
        Some('\\' | '"' | '\'' | '`' | '?' | 'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v') => Ok(1),
        Some('x' | 'X') if hex(2) => Ok(3),
        Some('u') if hex(4) => Ok(5),
        Some('U') if hex(8) => Ok(9),
        Some('0'..='3') if rest.len() > 2 && rest[1..3].iter().all(|c| ('0'..='7').contains(c)) => {
            Ok(3)
        }
        Some(c) => Err(format!("invalid escape sequence \\{c}")),
        None => Err("the string is not closed".into()),
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    depth: usize,
    /// The column just past the text, for errors at its end.
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn is(&self, punct: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: Kind::Punct(p), .. }) if *p == punct)
    }

    fn eat(&mut self, punct: &str) -> bool {
        let found = self.is(punct);
        if found {
            self.at += 1;
        }
        found
    }

    fn error_at(&self, token: &Token, message: String) -> SyntaxError {
        SyntaxError {
            column: token.column + 1,
            message,
        }
    }

    fn expected(&self, what: &str) -> SyntaxError {
        match self.peek() {
            Some(token) => self.error_at(token, format!("expected {what}, found {}", token.kind)),
            None => SyntaxError {
                column: self.end,
                message: format!("expected {what}, found the end of the expression"),
            },
        }
    }

    fn expect(&mut self, punct: &'static str) -> Result<(), SyntaxError> {
        if self.eat(punct) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{punct}'")))
        }
    }

    fn expr(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.expected("a less deeply nested expression"));
        }
        self.binary(0)?;
        if self.eat("?") {
            self.binary(0)?;
            self.expect(":")?;
            self.expr()?;
        }
        self.depth -= 1;
        Ok(())
    }

    /// Binary operators by precedence, loosest first.
    fn binary(&mut self, level: usize) -> Result<(), SyntaxError> {
        const LEVELS: [&[&str]; 5] = [
            &["||"],
            &["&&"],
            &["==", "!=", "<", "<=", ">", ">=", "in"],
            &["+", "-"],
            &["*", "/", "%"],
        ];
        let Some(operators) = LEVELS.get(level) else {
            return self.unary();
        };
        self.binary(level + 1)?;
        while operators.iter().any(|op| self.is(op)) {
            self.at += 1;
            self.binary(level + 1)?;
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<(), SyntaxError> {
        while self.eat("!") || self.eat("-") {}
        self.member()
    }

    fn member(&mut self) -> Result<(), SyntaxError> {
        self.primary()?;
        loop {
            if self.eat(".") {
                self.ident("a field name after '.'")?;
                if self.eat("(") {
                    self.list(")")?;
                }
            } else if self.eat("[") {
                self.expr()?;
                self.expect("]")?;
            } else if self.is("{") && self.is_type_name() {
                self.at += 1;
                self.field_inits()?;
            } else {
                return Ok(());
            }
        }
    }

    /// Whether the tokens just read were a (qualified) name, so `{` starts a message literal.
    fn is_type_name(&self) -> bool {
        let mut i = self.at;
        loop {
            match self.tokens.get(i.wrapping_sub(1)).map(|t| &t.kind) {
                Some(Kind::Ident(_)) => {}
                _ => return false,
            }
            match self.tokens.get(i.wrapping_sub(2)).map(|t| &t.kind) {
                Some(Kind::Punct(".")) => i -= 2,
                _ => return true,
            }
        }
    }

    fn primary(&mut self) -> Result<(), SyntaxError> {
        let Some(token) = self.peek().cloned() else {
            return Err(self.expected("an expression"));
        };
        match &token.kind {
            Kind::Literal => self.at += 1,
            Kind::Ident(_) => {
                self.ident("a name")?;
                if self.eat("(") {
                    self.list(")")?;
                }
            }
            Kind::Punct(".") => {
                self.at += 1;
                self.ident("a name after a leading '.'")?;
                if self.eat("(") {
                    self.list(")")?;
                }
            }
            Kind::Punct("(") => {
                self.at += 1;
                self.expr()?;
                self.expect(")")?;
            }
            Kind::Punct("[") => {
                self.at += 1;
                self.list("]")?;
            }
            Kind::Punct("{") => {
                self.at += 1;
                self.map_inits()?;
            }
            _ => return Err(self.expected("an expression")),
        }
        Ok(())
    }

    fn ident(&mut self, what: &str) -> Result<(), SyntaxError> {
        match self.peek() {
            Some(Token {
                kind: Kind::Ident(name),
                column,
            }) => {
                if RESERVED.contains(&name.as_str()) {
                    return Err(SyntaxError {
                        column: column + 1,
                        message: format!("{name:?} is a reserved word"),
                    });
                }
                self.at += 1;
                Ok(())
            }
            _ => Err(self.expected(what)),
        }
    }

    /// `expr, expr, ...` up to `close`, with an optional trailing comma.
    fn list(&mut self, close: &'static str) -> Result<(), SyntaxError> {
        while !self.eat(close) {
            self.expr()?;
            if !self.eat(",") {
                return self.expect(close);
            }
        }
        Ok(())
    }

    /// `key: value, ...}` of a map literal.
    fn map_inits(&mut self) -> Result<(), SyntaxError> {
        while !self.eat("}") {
            self.expr()?;
            self.expect(":")?;
            self.expr()?;
            if !self.eat(",") {
                return self.expect("}");
            }
        }
        Ok(())
    }

    /// `field: value, ...}` of a message literal.
    fn field_inits(&mut self) -> Result<(), SyntaxError> {
        while !self.eat("}") {
            self.ident("a field name")?;
            self.expect(":")?;
            self.expr()?;
            if !self.eat(",") {
                return self.expect("}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_expressions_filters_use() {
        for ok in [
            "response.code >= 400",
            "response.code >= 400 || xds.cluster_name == 'BlackHoleCluster'",
            "!has(request.headers['x-debug']) && request.url_path.startsWith(\"/api\")",
            "connection.mtls ? 1 : 2",
            "request.size in [1, 2u, 0x1F, 1.5e3, -.5]",
            "{'a': 1, 'b': [true, null]}.size() > 0",
            "google.protobuf.Duration{seconds: 5} != null",
            "r'raw\\d' + b\"\\x00\" + '''multi\nline''' + '\\u00e9\\101'",
            "a // trailing comment",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_malformed_expressions() {
        for (bad, words) in [
            ("", "expected an expression, found the end"),
            ("response.code >=", "expected an expression"),
            ("response.code = 400", "unexpected character '='"),
            ("(a", "expected ')'"),
            ("a b", "unexpected \"b\""),
            ("'open", "not closed"),
            ("'\\q'", "invalid escape"),
            ("if == 1", "reserved word"),
            ("a.", "a field name after '.'"),
            ("1x", "after a number"),
        ] {
            let error = check(bad).expect_err(bad).to_string();
            assert!(error.contains(words), "{bad}: {error}");
        }
        assert_eq!(check("a &&").unwrap_err().column, 5);
        assert!(check(&"(".repeat(500)).is_err());
    }
}
