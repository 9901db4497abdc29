//! A strict JSON reader that keeps positions and refuses duplicate keys.
//!
//! serde_json silently keeps the last of two equal keys, and Go's
//! `encoding/json` (which the engine uses) also keeps the last one — but other
//! readers keep the first. A policy that checked one copy while the engine
//! honours the other would be bypassed, so every document hull-policy reads
//! goes through this parser, which refuses duplicates outright. It also
//! records the line and column of every value so that settings errors can
//! point at the offending spot, and it bounds nesting depth so hostile input
//! cannot exhaust the stack.

use std::fmt;

/// Limits applied while parsing untrusted JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of arrays and objects.
    pub max_depth: usize,
}

impl Limits {
    /// Limits for settings files: small documents, shallow nesting.
    pub const SETTINGS: Limits = Limits {
        max_bytes: 1024 * 1024,
        max_depth: 32,
    };
    /// Limits for Docker API bodies (`/containers/create`, `/volumes/create`).
    /// The deepest legitimate create body nests about 6 levels.
    pub const API_BODY: Limits = Limits {
        max_bytes: 4 * 1024 * 1024,
        max_depth: 64,
    };
}

/// A parsed JSON value together with where it started in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line of the value's first character.
    pub line: usize,
    /// 1-based column (in characters) of the value's first character.
    pub column: usize,
    /// The value itself.
    pub value: NodeValue,
}

/// The value part of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    /// The number exactly as written (already checked against the grammar).
    Number(String),
    String(String),
    Array(Vec<Node>),
    /// Members in document order; keys are unique.
    Object(Vec<(String, Node)>),
}

impl NodeValue {
    /// A short name of the JSON type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Number(_) => "a number",
            NodeValue::String(_) => "a string",
            NodeValue::Array(_) => "an array",
            NodeValue::Object(_) => "an object",
        }
    }
}

/// Why a document was not accepted as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// 1-based line where the problem was found.
    pub line: usize,
    /// 1-based column where the problem was found.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for JsonError {}

/// Parses one JSON document (surrounding whitespace allowed, nothing else).
pub fn parse(input: &[u8], limits: Limits) -> Result<Node, JsonError> {
    if input.len() > limits.max_bytes {
        return Err(JsonError {
            line: 1,
            column: 1,
            message: format!(
                "document is {} bytes, more than the limit of {} bytes",
                input.len(),
                limits.max_bytes
            ),
        });
    }
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            let (line, column) = position_of(input, e.valid_up_to());
            return Err(JsonError {
                line,
                column,
                message: "invalid UTF-8".to_string(),
            });
        }
    };
    if text.starts_with('\u{feff}') {
        return Err(JsonError {
            line: 1,
            column: 1,
            message: "byte order mark (BOM) at the start; save the file as UTF-8 without BOM"
                .to_string(),
        });
    }
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        line: 1,
        col: 1,
        limits,
    };
    p.skip_ws();
    let node = p.value(0)?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(p.err("unexpected content after the JSON value"));
    }
    Ok(node)
}

fn position_of(input: &[u8], offset: usize) -> (usize, usize) {
    let before = &input[..offset.min(input.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
    col: usize,
    limits: Limits,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> JsonError {
        JsonError {
            line: self.line,
            column: self.col,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Advances over one byte, keeping line/column in characters: UTF-8
    /// continuation bytes do not start a new column.
    fn bump(&mut self) {
        if let Some(&b) = self.s.get(self.i) {
            self.i += 1;
            if b == b'\n' {
                self.line += 1;
                self.col = 1;
            } else if b & 0xC0 != 0x80 {
                self.col += 1;
            }
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<(), JsonError> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            for _ in 0..word.len() {
                self.bump();
            }
            Ok(())
        } else {
            Err(self.err("invalid literal (expected true, false or null)"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, JsonError> {
        let (line, column) = (self.line, self.col);
        let value = match self.peek() {
            None => return Err(self.err("unexpected end of input, expected a value")),
            Some(b'{') => self.object(depth + 1)?,
            Some(b'[') => self.array(depth + 1)?,
            Some(b'"') => NodeValue::String(self.string()?),
            Some(b't') => {
                self.expect_word("true")?;
                NodeValue::Bool(true)
            }
            Some(b'f') => {
                self.expect_word("false")?;
                NodeValue::Bool(false)
            }
            Some(b'n') => {
                self.expect_word("null")?;
                NodeValue::Null
            }
            Some(b'-' | b'0'..=b'9') => NodeValue::Number(self.number()?),
            Some(_) => return Err(self.err("unexpected character, expected a value")),
        };
        Ok(Node {
            line,
            column,
            value,
        })
    }

    fn check_depth(&self, depth: usize) -> Result<(), JsonError> {
        if depth > self.limits.max_depth {
            Err(self.err(format!(
                "nesting deeper than {} levels",
                self.limits.max_depth
            )))
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> Result<NodeValue, JsonError> {
        self.check_depth(depth)?;
        self.bump(); // '{'
        let mut members: Vec<(String, Node)> = Vec::new();
        // A set beside the list keeps duplicate detection linear-ish for
        // hostile objects with very many keys.
        let mut seen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.bump();
            return Ok(NodeValue::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let (kline, kcol) = (self.line, self.col);
            let key = self.string()?;
            if !seen.insert(key.clone()) {
                return Err(JsonError {
                    line: kline,
                    column: kcol,
                    message: format!("duplicate key \"{}\"", escape_for_message(&key)),
                });
            }
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':' after the key"));
            }
            self.bump();
            self.skip_ws();
            let v = self.value(depth)?;
            members.push((key, v));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.bump(),
                Some(b'}') => {
                    self.bump();
                    return Ok(NodeValue::Object(members));
                }
                _ => return Err(self.err("expected ',' or '}' in object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<NodeValue, JsonError> {
        self.check_depth(depth)?;
        self.bump(); // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.bump();
            return Ok(NodeValue::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.bump(),
                Some(b']') => {
                    self.bump();
                    return Ok(NodeValue::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']' in array")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v: u32 = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => u32::from(c - b'0'),
                Some(c @ b'a'..=b'f') => u32::from(c - b'a' + 10),
                Some(c @ b'A'..=b'F') => u32::from(c - b'A' + 10),
                _ => return Err(self.err("invalid \\u escape")),
            };
            v = v * 16 + d;
            self.bump();
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.bump(); // opening quote
        let mut out = String::new();
        loop {
            let start = self.i;
            // Copy the run of plain characters in one go.
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.bump();
            }
            // The input is valid UTF-8 and the run stops at ASCII bytes, so
            // the slice boundaries are character boundaries.
            out.push_str(
                std::str::from_utf8(&self.s[start..self.i])
                    .map_err(|_| self.err("invalid UTF-8"))?,
            );
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.bump();
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.bump();
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.bump();
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.peek() != Some(b'\\') {
                                    return Err(self.err("lone UTF-16 surrogate in \\u escape"));
                                }
                                self.bump();
                                if self.peek() != Some(b'u') {
                                    return Err(self.err("lone UTF-16 surrogate in \\u escape"));
                                }
                                self.bump();
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("lone UTF-16 surrogate in \\u escape"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(self.err("lone UTF-16 surrogate in \\u escape"));
                            } else {
                                hi
                            };
                            let ch = char::from_u32(code)
                                .ok_or_else(|| self.err("invalid \\u escape"))?;
                            out.push(ch);
                            continue;
                        }
                        _ => return Err(self.err("invalid escape in string")),
                    };
                    self.bump();
                    out.push(c);
                }
                Some(_) => return Err(self.err("control character in string (escape it)")),
            }
        }
    }

    fn number(&mut self) -> Result<String, JsonError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.bump();
        }
        match self.peek() {
            Some(b'0') => self.bump(),
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.bump();
                }
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.bump();
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number: digit expected after '.'"));
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.bump();
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.bump();
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.bump();
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number: digit expected in exponent"));
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.bump();
            }
        }
        // Only ASCII digits and signs were consumed.
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
}

/// Keeps attacker-supplied text in messages printable and bounded.
pub fn escape_for_message(s: &str) -> String {
    const MAX: usize = 200;
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n >= MAX {
            out.push('…');
            break;
        }
        if c.is_control() || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl Node {
    /// Converts to a `serde_json::Value`. Numbers that serde_json cannot
    /// represent exactly enough (overflowing `f64`) are refused rather than
    /// silently changed.
    pub fn to_value(&self) -> Result<serde_json::Value, JsonError> {
        use serde_json::Value;
        Ok(match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Number(n) => {
                let num: serde_json::Number = serde_json::from_str(n).map_err(|_| JsonError {
                    line: self.line,
                    column: self.column,
                    message: format!("number {} is out of range", escape_for_message(n)),
                })?;
                Value::Number(num)
            }
            NodeValue::String(s) => Value::String(s.clone()),
            NodeValue::Array(items) => Value::Array(
                items
                    .iter()
                    .map(Node::to_value)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            NodeValue::Object(members) => {
                let mut map = serde_json::Map::new();
                for (k, v) in members {
                    map.insert(k.clone(), v.to_value()?);
                }
                Value::Object(map)
            }
        })
    }

    /// Looks up a member of an object node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Node, JsonError> {
        parse(s.as_bytes(), Limits::SETTINGS)
    }

    #[test]
    fn parses_ordinary_documents() {
        let n = p(r#" {"a": [1, -2.5e3, true, false, null, "x\u00e9\n"], "b": {}} "#).unwrap();
        let v = n.to_value().unwrap();
        assert_eq!(v["a"][0], 1);
        assert_eq!(v["a"][5], "xé\n");
        assert!(v["b"].as_object().unwrap().is_empty());
    }

    #[test]
    fn refuses_duplicate_keys_with_position() {
        let e = p("{\n  \"a\": 1,\n  \"a\": 2\n}").unwrap_err();
        assert_eq!((e.line, e.column), (3, 3));
        assert!(e.message.contains("duplicate key \"a\""));
    }

    #[test]
    fn keys_equal_after_unescaping_are_duplicates() {
        assert!(p(r#"{"a": 1, "\u0061": 2}"#).is_err());
    }

    #[test]
    fn refuses_trailing_content_and_bad_literals() {
        assert!(p("{} {}").is_err());
        assert!(p("tru").is_err());
        assert!(p("[1,]").is_err());
        assert!(p("{\"a\":1,}").is_err());
        assert!(p("01").is_err());
        assert!(p("1.").is_err());
        assert!(p("").is_err());
        assert!(p("'a'").is_err());
    }

    #[test]
    fn refuses_non_utf8_and_bom_and_surrogates() {
        assert!(parse(b"{\"a\": \"\xff\"}", Limits::SETTINGS).is_err());
        assert!(p("\u{feff}{}").is_err());
        assert!(p(r#""\ud800""#).is_err());
        assert!(p(r#""\udc00""#).is_err());
        assert_eq!(
            p(r#""\ud83d\ude00""#).unwrap().value,
            NodeValue::String("😀".into())
        );
    }

    #[test]
    fn bounds_depth_and_size() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let e = p(&deep).unwrap_err();
        assert!(e.message.contains("nesting"));
        let ok = "[".repeat(32) + &"]".repeat(32);
        assert!(p(&ok).is_ok());
        let big = vec![b' '; Limits::SETTINGS.max_bytes + 1];
        assert!(parse(&big, Limits::SETTINGS).is_err());
    }

    #[test]
    fn columns_count_characters() {
        let e = p("{\"é\": x}").unwrap_err();
        assert_eq!((e.line, e.column), (1, 7));
    }

    #[test]
    fn huge_numbers_refused_on_conversion() {
        let n = p("1e400").unwrap();
        assert!(n.to_value().is_err());
    }

    #[test]
    fn control_characters_in_strings_refused() {
        assert!(p("\"a\u{1}b\"").is_err());
        assert!(p("\"a\nb\"").is_err());
    }
}
