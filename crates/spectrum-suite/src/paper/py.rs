//! How the reference's generators turn a cell into text: Python's `str()` of
//! the value pandas holds, and `json.dumps` (ASCII-escaped, `", "` and `": "`
//! separators) when an example has several given or generated variables.
//! Spelled out here because a task's texts must equal the reference's.

use serde_json::Value;

/// pandas' NaN, the missing cell of a CSV file (JSON has no NaN): a text no
/// table holds. [`str_of`], [`repr`] and [`json_dumps`] write it as Python
/// writes `float("nan")`.
pub const NAN: &str = "\u{0}NaN";

pub fn is_nan(value: &Value) -> bool {
    value.as_str() == Some(NAN)
}

/// Python's `str(x)` for a value read from a table (a missing value is
/// `None`, as pandas holds it in a text column of a Parquet file, or NaN,
/// as it reads a missing cell of a CSV file: [`NAN`]).
pub fn str_of(value: &Value) -> String {
    match value {
        v if is_nan(v) => "nan".into(),
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => match n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)) {
            Some(i) if n.is_i64() || n.is_u64() => i.to_string(),
            _ => float_repr(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.clone(),
        // A list or dict prints as Python's repr of its items.
        other => repr(other),
    }
}

/// Python's `str.isspace()` for one character: Unicode's white space and the
/// four information separators U+001C..U+001F, which Python counts and Rust's
/// `char::is_whitespace` does not.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `repr(x)`: strings quoted the way Python quotes them.
pub fn repr(value: &Value) -> String {
    match value {
        v if is_nan(v) => "nan".into(),
        Value::String(s) => string_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", string_repr(k), repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        other => str_of(other),
    }
}

/// Python's `repr(str)`: single quotes unless the text has a single quote
/// and no double quote; backslash escapes for the quote, `\\`, `\n`, `\r`,
/// `\t` and other control characters.
fn string_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `str()` of a 1-D numpy array whose items print as `words`: space-separated
/// in brackets, wrapped as numpy's `array2string` wraps at its default line
/// width of 75 (a word goes to a new line, indented by one space, when the line
/// would pass 74 characters, the last column kept for the closing bracket;
/// never before the first word of a line). Arrays past numpy's summary
/// threshold (1,000 items) are not printed in full by numpy: not handled.
pub fn numpy_str(words: &[String]) -> String {
    const WIDTH: usize = 75 - 1;
    let (mut text, mut line) = (String::new(), String::from(" "));
    for (i, word) in words.iter().enumerate() {
        if line.chars().count() + word.chars().count() > WIDTH && line.chars().count() > 1 {
            text.push_str(line.trim_end());
            text.push('\n');
            line = String::from(" ");
        }
        line.push_str(word);
        if i + 1 < words.len() {
            line.push(' ');
        }
    }
    text.push_str(&line);
    format!("[{}]", &text[1..])
}

/// Python's `repr(float)`: the shortest text that reads back as the same
/// number, fixed-point for exponents -4..16, else `1e-05` / `1e+16` style;
/// always with a `.0` when it would look like an integer.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d.ddde±x".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let mant = if digits.len() == 1 {
            digits
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.abs())
    }
}

/// Python's `json.dumps(obj)` with its defaults: `ensure_ascii` (every
/// non-ASCII character as `\uXXXX`, surrogate pairs beyond the BMP), `", "`
/// and `": "` separators, floats as `repr`, NaN as `NaN`.
pub fn json_dumps(value: &Value) -> String {
    let mut out = String::new();
    dump(value, &mut out);
    out
}

fn dump(value: &Value, out: &mut String) {
    match value {
        v if is_nan(v) => out.push_str("NaN"),
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.push_str(&n.to_string())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                out.push_str(&match float_repr(f).as_str() {
                    "nan" => "NaN".into(),
                    "inf" => "Infinity".into(),
                    "-inf" => "-Infinity".into(),
                    r => r.to_string(),
                })
            }
        }
        Value::String(s) => dump_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dump(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dump_str(k, out);
                out.push_str(": ");
                dump(v, out);
            }
            out.push('}');
        }
    }
}

fn dump_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if c.is_ascii() && (c as u32) >= 0x20 => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Python's `ast.literal_eval` for the literals tables hold as text: dicts,
/// lists, tuples (as lists), strings (either quote, with escapes), ints,
/// floats, `True`, `False`, `None`. Dicts keep their order; keys become text.
pub fn literal_eval(text: &str) -> Result<Value, String> {
    let mut p = Literal {
        chars: text.chars().collect(),
        at: 0,
    };
    let value = p.value()?;
    p.space();
    if p.at < p.chars.len() {
        return Err(format!(
            "unexpected {:?} at character {}",
            p.chars[p.at],
            p.at + 1
        ));
    }
    Ok(value)
}

struct Literal {
    chars: Vec<char>,
    at: usize,
}

impl Literal {
    fn space(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.space();
        self.chars.get(self.at).copied()
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.peek() {
            Some(got) if got == c => {
                self.at += 1;
                Ok(())
            }
            got => Err(format!(
                "expected {c:?} at character {}, found {got:?}",
                self.at + 1
            )),
        }
    }

    /// Items up to `close`, separated by commas (a trailing one allowed).
    fn items<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let mut out = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.at += 1;
                return Ok(out);
            }
            out.push(item(self)?);
            match self.peek() {
                Some(',') => self.at += 1,
                Some(c) if c == close => {}
                got => return Err(format!("expected ',' or {close:?}, found {got:?}")),
            }
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some('{') => {
                self.at += 1;
                let pairs = self.items('}', |p| {
                    let key = p.value()?;
                    p.expect(':')?;
                    Ok((str_of(&key), p.value()?))
                })?;
                Ok(Value::Object(pairs.into_iter().collect()))
            }
            Some('[') => {
                self.at += 1;
                Ok(Value::Array(self.items(']', Self::value)?))
            }
            Some('(') => {
                self.at += 1;
                Ok(Value::Array(self.items(')', Self::value)?))
            }
            Some(q @ ('\'' | '"')) => {
                self.at += 1;
                self.string(q).map(Value::String)
            }
            Some(_) => self.word(),
            None => Err("unexpected end".into()),
        }
    }

    fn string(&mut self, quote: char) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let c = *self.chars.get(self.at).ok_or("unterminated string")?;
            self.at += 1;
            match c {
                c if c == quote => return Ok(out),
                '\\' => {
                    let e = *self.chars.get(self.at).ok_or("unterminated string")?;
                    self.at += 1;
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '0' => out.push('\0'),
                        '\\' | '\'' | '"' => out.push(e),
                        '\n' => {}
                        'x' | 'u' | 'U' => {
                            let n = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let hex: String = self.chars.iter().skip(self.at).take(n).collect();
                            self.at += n;
                            let code = u32::from_str_radix(&hex, 16)
                                .map_err(|_| format!("bad escape \\{e}{hex}"))?;
                            out.push(char::from_u32(code).ok_or("bad code point")?);
                        }
                        other => {
                            out.push('\\');
                            out.push(other);
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }

    /// A number or a name.
    fn word(&mut self) -> Result<Value, String> {
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| c.is_alphanumeric() || "+-._".contains(*c))
        {
            self.at += 1;
        }
        let word: String = self.chars[start..self.at].iter().collect();
        match word.as_str() {
            "True" => Ok(Value::Bool(true)),
            "False" => Ok(Value::Bool(false)),
            "None" => Ok(Value::Null),
            w => {
                let plain = w.replace('_', "");
                if let Ok(i) = plain.parse::<i64>() {
                    Ok(Value::from(i))
                } else if let Ok(f) = plain.parse::<f64>()
                    && f.is_finite()
                {
                    Ok(Value::from(f))
                } else {
                    Err(format!("not a literal: {w:?}"))
                }
            }
        }
    }
}

/// numpy's `np.random.RandomState(seed).permutation(n)`, which is also the
/// row order of pandas' `df.sample(frac=1, random_state=seed)`: the legacy
/// Mersenne Twister seeded with `seed` (`init_genrand`), and a Fisher-Yates
/// shuffle of `0..n` from the back whose draws are masked and rejected as
/// numpy's `random_interval` does.
pub fn numpy_permutation(seed: u32, n: usize) -> Vec<usize> {
    let mut mt = MersenneTwister::new(seed);
    let mut items: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let max = i as u64;
        let mask = u64::MAX >> max.leading_zeros();
        let j = loop {
            let value = if max <= u64::from(u32::MAX) {
                u64::from(mt.next_u32()) & mask
            } else {
                (u64::from(mt.next_u32()) << 32 | u64::from(mt.next_u32())) & mask
            };
            if value <= max {
                break value as usize;
            }
        };
        items.swap(i, j);
    }
    items
}

/// MT19937, as numpy's legacy `RandomState` holds it.
struct MersenneTwister {
    state: [u32; 624],
    at: usize,
}

impl MersenneTwister {
    fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        MersenneTwister { state, at: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.at == 624 {
            for i in 0..624 {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
                let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
                if y & 1 == 1 {
                    next ^= 0x9908_b0df;
                }
                self.state[i] = next;
            }
            self.at = 0;
        }
        let mut y = self.state[self.at];
        self.at += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }
}

#[cfg(test)]
mod tests {
    use super::numpy_str;

    /// Against numpy 2.x's own output for arrays of strings (recorded with
    /// `str(np.array([...], dtype=object))`).
    #[test]
    fn numpy_str_wraps_as_numpy_does() {
        let words = |ws: &[&str]| ws.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>();
        assert_eq!(
            numpy_str(&words(&["model_a", "model_b", "tie", "tie (bothbad)"])),
            "['model_a' 'model_b' 'tie' 'tie (bothbad)']"
        );
        assert_eq!(numpy_str(&[]), "[]");
        // 20 items of 'wordNN' (8 characters with quotes): 8 to a line of 74.
        let twenty: Vec<String> = (0..20).map(|i| format!("'word{i:02}'")).collect();
        assert_eq!(
            numpy_str(&twenty),
            "['word00' 'word01' 'word02' 'word03' 'word04' 'word05' 'word06' 'word07'\n 'word08' 'word09' 'word10' 'word11' 'word12' 'word13' 'word14' 'word15'\n 'word16' 'word17' 'word18' 'word19']"
        );
        // The boundary: a line may reach 74 characters, not 75.
        let (a33, a34, b35) = ("a".repeat(33), "a".repeat(34), "b".repeat(35));
        assert_eq!(
            numpy_str(&words(&[&a33, &b35, "c"])),
            format!("['{a33}' '{b35}'\n 'c']")
        );
        assert_eq!(
            numpy_str(&words(&[&a34, &b35, "c"])),
            format!("['{a34}'\n '{b35}' 'c']")
        );
        // A word longer than the line still starts a line of its own.
        let long = words(&["a", &"x".repeat(80), "b"]);
        assert_eq!(
            numpy_str(&long),
            format!("['a'\n '{}'\n 'b']", "x".repeat(80))
        );
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn literal_eval_reads_pythons_literals() {
        let v = literal_eval(
            "{'Belgium': [0.21, 0.07, 1, -2e-3], \"It's\": ('a', \"b\\n\", None, True), 'x': {}}",
        )
        .expect("parses");
        assert_eq!(
            v,
            json!({"Belgium": [0.21, 0.07, 1, -0.002], "It's": ["a", "b\n", null, true], "x": {}})
        );
        assert_eq!(
            literal_eval("['caf\\xe9', '\\u00fc', 'tr, ail',]").expect("parses"),
            json!(["café", "ü", "tr, ail"])
        );
        assert!(literal_eval("[1, 2").is_err());
        assert!(literal_eval("os.system('x')").is_err());
    }

    #[test]
    fn strip_is_pythons() {
        // Python: " \x1c\xa0a b\u2003\n".strip() == "a b"
        assert_eq!(strip(" \u{1c}\u{a0}a b\u{2003}\n"), "a b");
        assert_eq!(
            strip("\u{200b}x"),
            "\u{200b}x",
            "a zero-width space is not a space"
        );
    }

    #[test]
    fn floats_print_as_python_prints_them() {
        for (x, want) in [
            (3.0, "3.0"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (-2.5, "-2.5"),
            (1.5e300, "1.5e+300"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(float_repr(x), want, "{x}");
        }
    }

    #[test]
    fn values_print_as_str_and_json_dumps_do() {
        assert_eq!(str_of(&json!(null)), "None");
        assert_eq!(str_of(&json!(true)), "True");
        assert_eq!(str_of(&json!(7)), "7");
        assert_eq!(str_of(&json!(7.0)), "7.0");
        assert_eq!(str_of(&json!(["a", "it's"])), r#"['a', "it's"]"#);
        assert_eq!(
            json_dumps(&json!({"q": "café \"x\"", "n": 2, "f": 0.5, "e": "😀"})),
            r#"{"q": "caf\u00e9 \"x\"", "n": 2, "f": 0.5, "e": "\ud83d\ude00"}"#
        );
    }
}
