//! Python literals on the command line, and values printed back as Python would.

use rpyc::Value;

/// A Python literal: `None`, `True`, `False`, ints, floats, quoted strings, `b'...'`, tuples
/// and lists (as tuples). Anything that does not start like a literal is a plain string.
pub fn parse(text: &str) -> Result<Value, String> {
    let t = text.trim();
    let starts_literal = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || "-+.'\"([".contains(c))
        || t.starts_with("b'")
        || t.starts_with("b\"")
        || ["None", "True", "False"].contains(&t);
    if !starts_literal {
        return Ok(Value::str(text));
    }
    let mut p = Parser {
        s: t.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text at {:?}", &t[p.i..]));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        match self.peek() {
            None => Err("a value is missing".into()),
            Some(b'(') => self.seq(b')'),
            Some(b'[') => self.seq(b']'),
            Some(b'\'' | b'"') => Ok(Value::Str(
                String::from_utf8(self.quoted()?).map_err(|_| "not UTF-8".to_owned())?,
            )),
            Some(b'b') if matches!(self.s.get(self.i + 1), Some(b'\'' | b'"')) => {
                self.i += 1;
                Ok(Value::Bytes(self.quoted()?))
            }
            Some(_) => self.word(),
        }
    }

    fn seq(&mut self, close: u8) -> Result<Value, String> {
        self.i += 1;
        let mut items = Vec::new();
        let mut trailing_comma = false;
        loop {
            self.ws();
            if self.peek() == Some(close) {
                self.i += 1;
                break;
            }
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    trailing_comma = true;
                }
                Some(c) if c == close => {
                    trailing_comma = false;
                }
                _ => return Err(format!("expected ',' or '{}'", close as char)),
            }
        }
        // `(x)` is x itself, as in Python; `(x,)` a 1-tuple.
        if close == b')' && items.len() == 1 && !trailing_comma {
            return Ok(items.remove(0));
        }
        Ok(Value::Tuple(items))
    }

    fn quoted(&mut self) -> Result<Vec<u8>, String> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            match c {
                c if c == quote => return Ok(out),
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err("unterminated string".into());
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'0' => out.push(0),
                        b'x' => {
                            let hex = self.s.get(self.i..self.i + 2).ok_or("bad \\x escape")?;
                            let hex = std::str::from_utf8(hex).map_err(|_| "bad \\x escape")?;
                            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad \\x escape")?);
                            self.i += 2;
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }

    fn word(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| !c.is_ascii_whitespace() && !b",)]".contains(&c))
        {
            self.i += 1;
        }
        let w = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| "not UTF-8")?;
        match w {
            "None" => return Ok(Value::None),
            "True" => return Ok(Value::Bool(true)),
            "False" => return Ok(Value::Bool(false)),
            _ => {}
        }
        let digits = w.replace('_', "");
        if let Ok(i) = digits.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        let canonical = digits.strip_prefix('+').unwrap_or(&digits);
        if let Some(v) = Value::int_from_decimal(canonical) {
            return Ok(v);
        }
        if let Ok(f) = digits.parse::<f64>() {
            return Ok(Value::Float(f));
        }
        Err(format!("{w:?} is not a number (quote it to send a string)"))
    }
}

/// Python's `repr` of a value.
pub fn repr(v: &Value) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(s) => s.clone(),
        Value::Float(f) if f.is_nan() => "nan".into(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { "inf" } else { "-inf" }.into(),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e16 => format!("{f:.1}"),
        Value::Float(f) => format!("{f}"),
        Value::Complex(r, i) => format!("({}{}{}j)", r, if *i >= 0.0 { "+" } else { "" }, i),
        Value::Str(s) => format!("'{}'", escape(s.as_bytes(), true)),
        Value::Bytes(b) => format!("b'{}'", escape(b, false)),
        Value::Tuple(items) if items.len() == 1 => format!("({},)", repr(&items[0])),
        Value::Tuple(items) => format!("({})", join(items)),
        Value::FrozenSet(items) if items.is_empty() => "frozenset()".into(),
        Value::FrozenSet(items) => format!("frozenset({{{}}})", join(items)),
        Value::Slice(p) => format!("slice({}, {}, {})", repr(&p.0), repr(&p.1), repr(&p.2)),
        Value::Ellipsis => "Ellipsis".into(),
        Value::NotImplemented => "NotImplemented".into(),
        other => format!("{other:?}"),
    }
}

fn join(items: &[Value]) -> String {
    items.iter().map(repr).collect::<Vec<_>>().join(", ")
}

fn escape(b: &[u8], text: bool) -> String {
    if text {
        let s = String::from_utf8_lossy(b);
        return s
            .chars()
            .map(|c| match c {
                '\'' => "\\'".into(),
                '\\' => "\\\\".into(),
                '\n' => "\\n".into(),
                '\t' => "\\t".into(),
                c if (c as u32) < 0x20 => format!("\\x{:02x}", c as u32),
                c => c.to_string(),
            })
            .collect();
    }
    b.iter()
        .map(|&c| match c {
            b'\'' => "\\'".into(),
            b'\\' => "\\\\".into(),
            b'\n' => "\\n".into(),
            b'\t' => "\\t".into(),
            0x20..=0x7e => (c as char).to_string(),
            _ => format!("\\x{c:02x}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(parse("5"), Ok(Value::Int(5)));
        assert_eq!(parse("-2.5"), Ok(Value::Float(-2.5)));
        assert_eq!(parse("hello"), Ok(Value::str("hello")));
        assert_eq!(parse("'a b'"), Ok(Value::str("a b")));
        assert_eq!(parse("b'\\x00a'"), Ok(Value::bytes(vec![0, b'a'])));
        assert_eq!(parse("None"), Ok(Value::None));
        assert_eq!(
            parse("(1, 'x', [True, None])"),
            Ok(Value::Tuple(vec![
                Value::Int(1),
                Value::str("x"),
                Value::Tuple(vec![Value::Bool(true), Value::None])
            ]))
        );
        assert_eq!(parse("(1,)"), Ok(Value::Tuple(vec![Value::Int(1)])));
        assert_eq!(parse("(1)"), Ok(Value::Int(1)));
        assert_eq!(
            parse("123456789012345678901234567890"),
            Ok(Value::BigInt("123456789012345678901234567890".into()))
        );
        assert!(parse("(1, 2").is_err());
        assert!(parse("'open").is_err());
        assert!(parse("12abc").is_err());
        let v = parse("(1, 'x', 2.0, b'\\n')").unwrap_or_default();
        assert_eq!(repr(&v), "(1, 'x', 2.0, b'\\n')");
    }

    #[test]
    fn reprs() {
        assert_eq!(repr(&Value::Float(2.0)), "2.0");
        assert_eq!(repr(&Value::str("it's")), "'it\\'s'");
        assert_eq!(repr(&Value::Tuple(vec![Value::Int(1)])), "(1,)");
        assert_eq!(repr(&Value::bytes(vec![0u8, b'a'])), "b'\\x00a'");
    }
}
