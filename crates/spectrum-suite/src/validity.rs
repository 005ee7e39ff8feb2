//! Validity rules for diverse-valid tasks. A rule is data (serialisable, stored
//! beside its task) and is compiled once into a [`Validator`] before checking
//! many outputs. Outputs are checked exactly as given: callers strip them first
//! (METHOD.md §4.3).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// What makes an output valid. Serialised as `{"type": "closed_set", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ValidityRule {
    /// One of a fixed list of strings (US states, weekdays, "1".."10").
    ClosedSet {
        values: Vec<String>,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        case_sensitive: bool,
    },
    /// A decimal integer in `min..=max`, written without leading zeros or a plus sign.
    IntegerRange { min: i64, max: i64 },
    /// A prime number written like [`ValidityRule::IntegerRange`], optionally bounded.
    Prime {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
    },
    /// The whole output matches the regular expression (Rust `regex` syntax).
    Regex { pattern: String },
    /// A well-formed e-mail address: `local@domain.tld`, dot-atom local part.
    Email,
    /// A phone number: optional `+` and country code, 7 to 15 digits in groups
    /// separated by single spaces, dashes or dots, an optional parenthesised area code.
    Phone,
    /// Every one of `rules` accepts the output (for checks no single kind
    /// expresses, such as a pattern plus a count of digits).
    AllOf { rules: Vec<ValidityRule> },
    /// An integer as Python's `int(text)` reads it: an optional `+` or `-`,
    /// then decimal digits of any script (Unicode category Nd: `٣`, `３`),
    /// single underscores allowed between digits, leading zeros allowed, at
    /// most 4300 digits (Python's default limit); no surrounding whitespace.
    /// Within `min..=max` where given; prime if `prime` (numbers of 2^64 and
    /// more are never prime here); and, if `no_leading_zero`, not two or more
    /// characters of which the first is `0` (`+05` and `٠٥` pass that check).
    PythonInt {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<i64>,
        #[serde(default, skip_serializing_if = "is_false")]
        prime: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        no_leading_zero: bool,
    },
    /// An entry of a published word list that the app does not ship (the
    /// reference downloads it when first used). The rule names the list; its
    /// entries come from [`ValidityRule::compile_with`].
    WordList {
        /// The list's name: its key in [`WordLists`].
        list: String,
        /// Where the list comes from and which part of it is meant, for a person.
        source: String,
        /// How an output is compared with the entries.
        matching: ListMatch,
        /// The list's entries, once fetched (`spectrum suite fetch` writes
        /// them in): a rule with them needs no [`WordLists`].
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        entries: Vec<Vec<String>>,
    },
}

/// How a [`ValidityRule::WordList`] compares an output with the list's
/// entries. Lowercasing is Unicode's (as Python's `str.lower`: `İ` becomes
/// `i̇`, a final `Σ` becomes `ς`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ListMatch {
    /// The output is an entry, exactly.
    Exact,
    /// The lowercased output is a lowercased entry.
    IgnoreCase,
    /// The lowercased output is an entry as listed (entries with capitals never match).
    LowercaseOutput,
    /// For some entry of several fields, each lowercased field occurs somewhere
    /// in the lowercased output (`"2020 ford mustang gt"` holds make `Ford` and
    /// model `Mustang`).
    EveryFieldWithin,
}

/// The word lists [`ValidityRule::WordList`] rules name, each a list of
/// entries of one or more fields, supplied by whoever has the lists.
#[derive(Debug, Clone, Default)]
pub struct WordLists {
    lists: HashMap<String, Vec<Vec<String>>>,
}

impl WordLists {
    pub fn new() -> WordLists {
        WordLists::default()
    }

    /// Adds (or replaces) the list `name`.
    pub fn insert(&mut self, name: impl Into<String>, entries: Vec<Vec<String>>) {
        self.lists.insert(name.into(), entries);
    }

    pub fn get(&self, name: &str) -> Option<&[Vec<String>]> {
        self.lists.get(name).map(Vec::as_slice)
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("the regular expression {pattern:?} does not compile: {source}")]
    BadRegex {
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("the closed set is empty: list at least one valid value")]
    EmptySet,
    #[error("the range is empty: min {min} is greater than max {max}")]
    EmptyRange { min: i64, max: i64 },
    #[error("all_of lists no rules: list at least one")]
    EmptyAllOf,
    #[error(
        "the word list {list:?} is not shipped with the app (it is {origin}): supply its entries"
    )]
    MissingList { list: String, origin: String },
    #[error("the word list {list:?} has no entries")]
    EmptyList { list: String },
    #[error(
        "entry {index} of the word list {list:?} has {fields} fields; matching {matching:?} compares one"
    )]
    ListShape {
        list: String,
        index: usize,
        fields: usize,
        matching: ListMatch,
    },
}

impl ValidityRule {
    /// Checks the rule and prepares it for fast repeated checks. A
    /// [`ValidityRule::WordList`] rule fails here with
    /// [`RuleError::MissingList`]: it needs [`ValidityRule::compile_with`].
    pub fn compile(&self) -> Result<Validator, RuleError> {
        self.compile_with(&WordLists::default())
    }

    /// [`ValidityRule::compile`], with the entries of the word lists the
    /// rule names.
    pub fn compile_with(&self, lists: &WordLists) -> Result<Validator, RuleError> {
        Ok(Validator {
            check: self.check(lists)?,
        })
    }

    /// The rule with the entries of every word list it names written in, so
    /// that it validates on its own (stored, evaluated later).
    pub fn with_entries(&self, lists: &WordLists) -> Result<ValidityRule, RuleError> {
        Ok(match self {
            ValidityRule::WordList {
                list,
                source,
                matching,
                ..
            } => ValidityRule::WordList {
                list: list.clone(),
                source: source.clone(),
                matching: *matching,
                entries: lists
                    .get(list)
                    .ok_or_else(|| RuleError::MissingList {
                        list: list.clone(),
                        origin: source.clone(),
                    })?
                    .to_vec(),
            },
            ValidityRule::AllOf { rules } => ValidityRule::AllOf {
                rules: rules
                    .iter()
                    .map(|r| r.with_entries(lists))
                    .collect::<Result<_, _>>()?,
            },
            other => other.clone(),
        })
    }

    /// The names of the word lists the rule needs.
    pub fn word_lists(&self) -> Vec<&str> {
        match self {
            ValidityRule::WordList { list, .. } => vec![list.as_str()],
            ValidityRule::AllOf { rules } => rules.iter().flat_map(|r| r.word_lists()).collect(),
            _ => Vec::new(),
        }
    }

    fn check(&self, lists: &WordLists) -> Result<Check, RuleError> {
        let check = match self {
            ValidityRule::ClosedSet {
                values,
                case_sensitive,
            } => {
                if values.is_empty() {
                    return Err(RuleError::EmptySet);
                }
                let fold = |s: &str| {
                    if *case_sensitive {
                        s.to_string()
                    } else {
                        s.to_lowercase()
                    }
                };
                Check::Set {
                    values: values.iter().map(|v| fold(v)).collect(),
                    case_sensitive: *case_sensitive,
                }
            }
            &ValidityRule::IntegerRange { min, max } => {
                if min > max {
                    return Err(RuleError::EmptyRange { min, max });
                }
                Check::Range { min, max }
            }
            &ValidityRule::Prime { min, max } => Check::Prime {
                min: min.unwrap_or(2),
                max: max.unwrap_or(u64::MAX),
            },
            ValidityRule::Regex { pattern } => {
                let anchored = format!("^(?:{pattern})$");
                let re = regex::Regex::new(&anchored).map_err(|e| RuleError::BadRegex {
                    pattern: pattern.clone(),
                    source: Box::new(e),
                })?;
                Check::Regex(re)
            }
            ValidityRule::Email => Check::Email,
            ValidityRule::Phone => Check::Phone,
            ValidityRule::AllOf { rules } => {
                if rules.is_empty() {
                    return Err(RuleError::EmptyAllOf);
                }
                let checks = rules.iter().map(|r| r.check(lists));
                Check::All(checks.collect::<Result<_, _>>()?)
            }
            &ValidityRule::PythonInt {
                min,
                max,
                prime,
                no_leading_zero,
            } => {
                if let (Some(min), Some(max)) = (min, max)
                    && min > max
                {
                    return Err(RuleError::EmptyRange { min, max });
                }
                Check::PythonInt {
                    min,
                    max,
                    prime,
                    no_leading_zero,
                }
            }
            ValidityRule::WordList {
                list,
                source,
                matching,
                entries,
            } => {
                let entries = if entries.is_empty() {
                    lists.get(list).ok_or_else(|| RuleError::MissingList {
                        list: list.clone(),
                        origin: source.clone(),
                    })?
                } else {
                    entries.as_slice()
                };
                Check::List(ListCheck::new(list, entries, *matching)?)
            }
        };
        Ok(check)
    }

    /// The number of valid strings, where the rule admits finitely many
    /// (used for `coverage_pct`, METHOD.md §4.3).
    pub fn valid_set_size(&self) -> Option<u64> {
        match self {
            ValidityRule::ClosedSet {
                values,
                case_sensitive,
            } => {
                let distinct: HashSet<String> = values
                    .iter()
                    .map(|v| {
                        if *case_sensitive {
                            v.clone()
                        } else {
                            v.to_lowercase()
                        }
                    })
                    .collect();
                Some(distinct.len() as u64)
            }
            &ValidityRule::IntegerRange { min, max } => Some(max.abs_diff(min) + 1),
            &ValidityRule::Prime {
                min,
                max: Some(max),
            } => {
                let lo = min.unwrap_or(2);
                (max <= 10_000_000).then(|| (lo..=max).filter(|&n| is_prime(n)).count() as u64)
            }
            _ => None,
        }
    }

    /// A short name for listings: `closed_set`, `integer_range`...
    pub fn name(&self) -> &'static str {
        match self {
            ValidityRule::ClosedSet { .. } => "closed_set",
            ValidityRule::IntegerRange { .. } => "integer_range",
            ValidityRule::Prime { .. } => "prime",
            ValidityRule::Regex { .. } => "regex",
            ValidityRule::Email => "email",
            ValidityRule::Phone => "phone",
            ValidityRule::AllOf { .. } => "all_of",
            ValidityRule::PythonInt { .. } => "python_int",
            ValidityRule::WordList { .. } => "word_list",
        }
    }
}

/// A compiled [`ValidityRule`].
#[derive(Debug, Clone)]
pub struct Validator {
    check: Check,
}

#[derive(Debug, Clone)]
enum Check {
    Set {
        values: HashSet<String>,
        case_sensitive: bool,
    },
    Range {
        min: i64,
        max: i64,
    },
    Prime {
        min: u64,
        max: u64,
    },
    Regex(regex::Regex),
    Email,
    Phone,
    All(Vec<Check>),
    PythonInt {
        min: Option<i64>,
        max: Option<i64>,
        prime: bool,
        no_leading_zero: bool,
    },
    List(ListCheck),
}

impl Validator {
    pub fn is_valid(&self, output: &str) -> bool {
        self.check.accepts(output)
    }
}

impl Check {
    fn accepts(&self, output: &str) -> bool {
        match self {
            Check::Set {
                values,
                case_sensitive,
            } => {
                if *case_sensitive {
                    values.contains(output)
                } else {
                    values.contains(&output.to_lowercase())
                }
            }
            &Check::Range { min, max } => {
                parse_canonical_int(output).is_some_and(|n| (min..=max).contains(&n))
            }
            &Check::Prime { min, max } => parse_canonical_int(output)
                .and_then(|n| u64::try_from(n).ok())
                .is_some_and(|n| (min..=max).contains(&n) && is_prime(n)),
            Check::Regex(re) => re.is_match(output),
            Check::Email => is_email(output),
            Check::Phone => is_phone(output),
            Check::All(checks) => checks.iter().all(|c| c.accepts(output)),
            &Check::PythonInt {
                min,
                max,
                prime,
                no_leading_zero,
            } => {
                if no_leading_zero && output.starts_with('0') && output.chars().nth(1).is_some() {
                    return false;
                }
                let Some(n) = parse_python_int(output) else {
                    return false;
                };
                let prime_ok =
                    !prime || (!n.negative && u64::try_from(n.magnitude).is_ok_and(is_prime));
                n.at_least(min) && n.at_most(max) && prime_ok
            }
            Check::List(list) => list.accepts(output),
        }
    }
}

/// A word list prepared for its matching.
#[derive(Debug, Clone)]
enum ListCheck {
    /// `Exact`, `IgnoreCase` and `LowercaseOutput`: the entries as compared
    /// (lowercased for `IgnoreCase`), and whether the output is lowercased.
    Set {
        entries: HashSet<String>,
        lowercase_output: bool,
    },
    /// `EveryFieldWithin`: each entry's fields, lowercased.
    Within(Vec<Vec<String>>),
}

impl ListCheck {
    fn new(
        list: &str,
        entries: &[Vec<String>],
        matching: ListMatch,
    ) -> Result<ListCheck, RuleError> {
        if entries.is_empty() {
            return Err(RuleError::EmptyList { list: list.into() });
        }
        let lower = |fields: &[String]| fields.iter().map(|f| f.to_lowercase()).collect::<Vec<_>>();
        if matching == ListMatch::EveryFieldWithin {
            return Ok(ListCheck::Within(
                entries.iter().map(|e| lower(e)).collect(),
            ));
        }
        let mut set = HashSet::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let [value] = entry.as_slice() else {
                return Err(RuleError::ListShape {
                    list: list.into(),
                    index,
                    fields: entry.len(),
                    matching,
                });
            };
            set.insert(if matching == ListMatch::IgnoreCase {
                value.to_lowercase()
            } else {
                value.clone()
            });
        }
        Ok(ListCheck::Set {
            entries: set,
            lowercase_output: matching != ListMatch::Exact,
        })
    }

    fn accepts(&self, output: &str) -> bool {
        match self {
            ListCheck::Set {
                entries,
                lowercase_output: true,
            } => entries.contains(&output.to_lowercase()),
            ListCheck::Set { entries, .. } => entries.contains(output),
            ListCheck::Within(entries) => {
                let output = output.to_lowercase();
                entries
                    .iter()
                    .any(|fields| fields.iter().all(|f| output.contains(f.as_str())))
            }
        }
    }
}

/// An integer read by [`parse_python_int`].
struct ParsedInt {
    negative: bool,
    /// Saturated: `u128::MAX` stands for itself and anything larger.
    magnitude: u128,
}

impl ParsedInt {
    fn cmp_i64(&self, bound: i64) -> std::cmp::Ordering {
        let magnitude = i128::try_from(self.magnitude).unwrap_or(i128::MAX);
        let value = if self.negative { -magnitude } else { magnitude };
        value.cmp(&i128::from(bound))
    }

    fn at_least(&self, min: Option<i64>) -> bool {
        min.is_none_or(|m| self.cmp_i64(m).is_ge())
    }

    fn at_most(&self, max: Option<i64>) -> bool {
        max.is_none_or(|m| self.cmp_i64(m).is_le())
    }
}

/// Python's default limit on the digits `int()` reads
/// (`sys.int_info.default_max_str_digits`); underscores do not count.
const PYTHON_MAX_DIGITS: usize = 4300;

/// Reads `s` as Python's `int(s)` does (base 10), except that surrounding
/// whitespace is refused: the caller has stripped it.
fn parse_python_int(s: &str) -> Option<ParsedInt> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut magnitude = 0u128;
    let mut count = 0usize;
    let mut after_digit = false;
    for c in digits.chars() {
        if c == '_' {
            // Only single underscores, between digits.
            if !after_digit {
                return None;
            }
            after_digit = false;
            continue;
        }
        let d = decimal_value(c)?;
        count += 1;
        after_digit = true;
        magnitude = magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(d)))
            .unwrap_or(u128::MAX);
    }
    (after_digit && count <= PYTHON_MAX_DIGITS).then_some(ParsedInt {
        negative,
        magnitude,
    })
}

/// The value of a decimal digit of any script (Unicode category Nd), as
/// Python's `int()` reads it. Unicode assigns these digits only in runs of
/// ten, 0 to 9 in order (a stability policy), so a digit's value is its
/// distance from the first of the Nd code points consecutive with it, modulo
/// 10 (checked against Python's `unicodedata.decimal` for all 660 digits of
/// Unicode 14).
fn decimal_value(c: char) -> Option<u32> {
    if let Some(d) = c.to_digit(10) {
        return Some(d);
    }
    static DECIMAL: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r"\A\p{Nd}\z").ok());
    let decimal = DECIMAL.as_ref()?;
    let is_decimal = |c: char| decimal.is_match(c.encode_utf8(&mut [0; 4]));
    if !is_decimal(c) {
        return None;
    }
    let before = (1..)
        .map_while(|k| char::from_u32(u32::from(c).checked_sub(k)?))
        .take_while(|&p| is_decimal(p))
        .count();
    u32::try_from(before % 10).ok()
}

/// Parses `0`, `7`, `-12`, but not `007`, `+7`, `-0`, ` 7` or `7.0`.
fn parse_canonical_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = match digits.as_bytes() {
        [] => false,
        [b'0'] => digits.len() == s.len(),
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
    };
    if canonical { s.parse().ok() } else { None }
}

pub(crate) fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    if n >= 1 << 32 {
        return is_prime_miller_rabin(n);
    }
    let mut d = 3u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// Miller-Rabin with the first twelve primes as bases, which decides every
/// odd `n` below 3.3e24 (Sorenson and Webster, 2015), so every `u64`.
fn is_prime_miller_rabin(n: u64) -> bool {
    let mul = |a: u64, b: u64| ((u128::from(a) * u128::from(b)) % u128::from(n)) as u64;
    let pow = |mut base: u64, mut exp: u64| {
        let mut acc = 1u64;
        while exp > 0 {
            if exp & 1 == 1 {
                acc = mul(acc, base);
            }
            base = mul(base, base);
            exp >>= 1;
        }
        acc
    };
    let (mut d, mut s) = (n - 1, 0);
    while d.is_multiple_of(2) {
        d /= 2;
        s += 1;
    }
    [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]
        .iter()
        .all(|&a| {
            let mut x = pow(a, d);
            if x == 1 || x == n - 1 {
                return true;
            }
            (1..s).any(|_| {
                x = mul(x, x);
                x == n - 1
            })
        })
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && labels.len() >= 2 && labels.iter().all(label_ok) && tld_ok && domain.len() <= 253
}

fn is_phone(s: &str) -> bool {
    let rest = s.strip_prefix('+');
    let international = rest.is_some();
    let mut rest = rest.unwrap_or(s);
    let mut digits = 0usize;
    // An international prefix is a 1-3 digit country code followed by a separator.
    if international {
        let cc = rest.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=3).contains(&cc) {
            return false;
        }
        digits += cc;
        rest = &rest[cc..];
        match rest.as_bytes().first() {
            Some(b' ' | b'-' | b'.') => rest = &rest[1..],
            _ => return false,
        }
    }
    // Optional "(123) " area code.
    if let Some(after) = rest.strip_prefix('(') {
        let n = after.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=4).contains(&n) || after.as_bytes().get(n) != Some(&b')') {
            return false;
        }
        digits += n;
        rest = &after[n + 1..];
        match rest.as_bytes().first() {
            Some(b' ' | b'-' | b'.') => rest = &rest[1..],
            _ => return false,
        }
    }
    let mut groups = 0;
    for group in rest.split([' ', '-', '.']) {
        if group.is_empty() || !group.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        digits += group.len();
        groups += 1;
    }
    groups >= 1 && (7..=15).contains(&digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rule: ValidityRule, valid: &[&str], invalid: &[&str]) {
        let v = rule.compile().expect("rule compiles");
        for s in valid {
            assert!(v.is_valid(s), "{rule:?} should accept {s:?}");
        }
        for s in invalid {
            assert!(!v.is_valid(s), "{rule:?} should reject {s:?}");
        }
    }

    #[test]
    fn closed_set() {
        let values = ["Monday", "Tuesday"].map(String::from).to_vec();
        check(
            ValidityRule::ClosedSet {
                values: values.clone(),
                case_sensitive: true,
            },
            &["Monday", "Tuesday"],
            &["monday", "Monday ", "Mon", ""],
        );
        check(
            ValidityRule::ClosedSet {
                values,
                case_sensitive: false,
            },
            &["monday", "TUESDAY"],
            &["mon"],
        );
    }

    #[test]
    fn integer_range_rejects_leading_zeros() {
        check(
            ValidityRule::IntegerRange { min: 0, max: 100 },
            &["0", "1", "42", "100"],
            &[
                "007", "01", "+5", "-0", "101", "-1", "4.0", " 4", "", "1e2", "fifty",
            ],
        );
        check(
            ValidityRule::IntegerRange { min: -10, max: -1 },
            &["-10", "-1"],
            &["0", "-011", "-"],
        );
    }

    #[test]
    fn prime() {
        check(
            ValidityRule::Prime {
                min: None,
                max: Some(100),
            },
            &["2", "3", "5", "97"],
            &["1", "0", "4", "91", "101", "03", "-3", "2.0"],
        );
        assert_eq!(
            ValidityRule::Prime {
                min: None,
                max: Some(100)
            }
            .valid_set_size(),
            Some(25)
        );
    }

    #[test]
    fn regex_matches_whole_output() {
        check(
            ValidityRule::Regex {
                pattern: "[A-Z]{3}-\\d{2}".into(),
            },
            &["ABC-12"],
            &["xABC-12", "ABC-123", "abc-12"],
        );
        let bad = ValidityRule::Regex {
            pattern: "(".into(),
        }
        .compile();
        assert!(matches!(bad, Err(RuleError::BadRegex { .. })));
    }

    #[test]
    fn email() {
        check(
            ValidityRule::Email,
            &[
                "ada@example.com",
                "first.last+tag@mail.example.co.uk",
                "x_y@a-b.io",
            ],
            &[
                "ada",
                "@example.com",
                "ada@",
                "ada@example",
                "a..b@example.com",
                ".a@example.com",
                "ada@-example.com",
                "ada@example.c",
                "ada@exa mple.com",
                "ada@example.com.",
            ],
        );
    }

    #[test]
    fn phone() {
        check(
            ValidityRule::Phone,
            &[
                "555-123-4567",
                "(555) 123-4567",
                "+1 555 123 4567",
                "+44 20 7946 0958",
                "555.123.4567",
                "5551234",
            ],
            &[
                "555-1234-",
                "123",
                "+ 555 123 4567",
                "(555 123-4567",
                "555--123-4567",
                "phone",
                "+1234 555 123 4567",
                "1234567890123456",
            ],
        );
    }

    #[test]
    fn all_of_needs_every_rule() {
        let regex = |p: &str| ValidityRule::Regex { pattern: p.into() };
        check(
            ValidityRule::AllOf {
                rules: vec![regex("[a-z]+"), regex(".{2,3}")],
            },
            &["ab", "abc"],
            &["a", "abcd", "AB"],
        );
        let empty = ValidityRule::AllOf { rules: vec![] }.compile();
        assert!(matches!(empty, Err(RuleError::EmptyAllOf)));
    }

    /// What Python 3.11's `int()` makes of these (run by hand): `+5`, `1_0`,
    /// `٠٥` (Arabic-Indic), `５` (fullwidth) and `𝟓` (mathematical bold) read
    /// as 5 or 10; `1__0`, `_1`, `1_`, `+_1`, `+`, `¹`, `½`, `Ⅴ`, `5.0` and
    /// `0x10` are errors; 4300 digits read, 4301 do not, underscores not
    /// counted. (`int(" 5")` is 5, but the rule leaves stripping to its caller.)
    #[test]
    fn python_int_reads_what_python_reads() {
        check(
            ValidityRule::PythonInt {
                min: Some(0),
                max: Some(10),
                prime: false,
                no_leading_zero: false,
            },
            &[
                "5", "+5", "-0", "+0", "00", "007", "1_0", "٠٥", "٥", "５", "𝟓", "0_5", "१०",
            ],
            &[
                "1__0", "_1", "1_", "+_1", "+", "-", "", "¹", "½", "Ⅴ", "5.0", "0x10", " 5", "5 ",
                "-1", "11", "+-1", "五",
            ],
        );
        let any = ValidityRule::PythonInt {
            min: None,
            max: None,
            prime: false,
            no_leading_zero: false,
        };
        let limit = format!("{}7", "0".repeat(4299));
        let over = format!("{}7", "0".repeat(4300));
        let underscored = format!("{}1", "1_".repeat(4299));
        let huge = format!("-{}", "9".repeat(60));
        check(
            any,
            &[&limit, &underscored, &huge],
            &[&over, &format!("{}1", "1_".repeat(4300))],
        );
        let bounded = ValidityRule::PythonInt {
            min: Some(-5),
            max: Some(i64::MAX),
            prime: false,
            no_leading_zero: false,
        };
        check(
            bounded,
            &["-5", "9223372036854775807"],
            &["-6", "9223372036854775808", &"9".repeat(50), &huge],
        );
    }

    #[test]
    fn python_int_primes_and_leading_zeros() {
        let prime = ValidityRule::PythonInt {
            min: None,
            max: None,
            prime: true,
            no_leading_zero: true,
        };
        check(
            prime,
            &[
                "2",
                "+7",
                "+07",
                "٠٧",
                "9_7",
                "4294967291",
                "18446744073709551557",
                "1000000000000000003",
            ],
            &[
                "07",
                "00",
                "0",
                "1",
                "-7",
                "4294967297",
                "18446744073709551617",
                "18446744073709551615",
                "3825123056546413051",
                "340282366920938463463374607431768211507",
            ],
        );
    }

    #[test]
    fn miller_rabin_agrees_with_trial_division() {
        let trial = |n: u64| {
            n >= 2
                && (2..)
                    .take_while(|d| d * d <= n)
                    .all(|d| !n.is_multiple_of(d))
        };
        for n in (1u64 << 32) - 1000..(1u64 << 32) + 3000 {
            assert_eq!(is_prime(n), trial(n), "{n}");
        }
        // The least strong pseudoprime to the bases 2..=23 (OEIS A014233).
        assert!(!is_prime(3_825_123_056_546_413_051));
    }

    #[test]
    fn word_lists_match_as_their_rule_says() {
        let rule = |matching| ValidityRule::WordList {
            list: "colors".into(),
            source: "a test".into(),
            matching,
            entries: Vec::new(),
        };
        let mut lists = WordLists::new();
        let one = |v: &[&str]| v.iter().map(|s| vec![s.to_string()]).collect::<Vec<_>>();
        lists.insert("colors", one(&["Green", "Σίσυφος", "İris", "teal"]));
        let verdicts = |m: ListMatch, texts: &[&str]| {
            let v = rule(m).compile_with(&lists).expect("compiles");
            texts.iter().map(|t| v.is_valid(t)).collect::<Vec<_>>()
        };
        let texts = [
            "Green",
            "green",
            "GREEN",
            "ΣΊΣΥΦΟΣ",
            "i̇ris",
            "TEAL",
            "teal",
            "Gree",
        ];
        assert_eq!(
            verdicts(ListMatch::Exact, &texts),
            [true, false, false, false, false, false, true, false]
        );
        assert_eq!(
            verdicts(ListMatch::IgnoreCase, &texts),
            [true, true, true, true, true, true, true, false]
        );
        assert_eq!(
            verdicts(ListMatch::LowercaseOutput, &texts),
            [false, false, false, false, false, true, true, false]
        );

        lists.insert(
            "cars",
            vec![
                vec!["Ford".into(), "Mustang".into()],
                vec!["Tesla".into(), "Model 3".into()],
            ],
        );
        let within = ValidityRule::WordList {
            list: "cars".into(),
            source: "a test".into(),
            matching: ListMatch::EveryFieldWithin,
            entries: Vec::new(),
        };
        let v = within.compile_with(&lists).expect("compiles");
        // Written in, the entries need no lists, and survive a round trip
        // through JSON (the store).
        let written = within.with_entries(&lists).expect("the list is there");
        let stored: ValidityRule =
            serde_json::from_str(&serde_json::to_string(&written).expect("json")).expect("back");
        let alone = stored.compile().expect("compiles without lists");
        assert!(alone.is_valid("Tesla Model 3") && !alone.is_valid("Ford Model 3"));
        assert!(
            within.compile().is_err(),
            "without entries, the list is needed"
        );
        for (text, valid) in [
            ("Ford Mustang", true),
            ("mustang FORD", true),
            ("2020 FordMustang GT", true),
            ("Ford", false),
            ("Tesla Mustang", false),
            ("tesla model 3", true),
        ] {
            assert_eq!(v.is_valid(text), valid, "{text}");
        }
        let shape = ValidityRule::WordList {
            list: "cars".into(),
            source: "a test".into(),
            matching: ListMatch::IgnoreCase,
            entries: Vec::new(),
        };
        assert!(matches!(
            shape.compile_with(&lists),
            Err(RuleError::ListShape { .. })
        ));
        let missing = rule(ListMatch::Exact).compile();
        assert!(
            matches!(&missing, Err(RuleError::MissingList { list, .. }) if list == "colors"),
            "{missing:?}"
        );
        lists.insert("colors", vec![]);
        assert!(matches!(
            rule(ListMatch::Exact).compile_with(&lists),
            Err(RuleError::EmptyList { .. })
        ));
    }

    #[test]
    fn rules_round_trip_through_json() {
        let rules = [
            ValidityRule::ClosedSet {
                values: vec!["a".into()],
                case_sensitive: false,
            },
            ValidityRule::IntegerRange { min: 1, max: 100 },
            ValidityRule::Prime {
                min: Some(2),
                max: None,
            },
            ValidityRule::Regex {
                pattern: "a+".into(),
            },
            ValidityRule::Email,
            ValidityRule::Phone,
            ValidityRule::AllOf {
                rules: vec![ValidityRule::Email, ValidityRule::Phone],
            },
            ValidityRule::PythonInt {
                min: None,
                max: Some(99),
                prime: true,
                no_leading_zero: true,
            },
            ValidityRule::WordList {
                list: "color-names".into(),
                source: "somewhere".into(),
                matching: ListMatch::EveryFieldWithin,
                entries: Vec::new(),
            },
        ];
        for rule in rules {
            let json = serde_json::to_string(&rule).expect("serialises");
            let back: ValidityRule = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, rule, "{json}");
        }
        let parsed: ValidityRule =
            serde_json::from_str(r#"{"type":"integer_range","min":1,"max":10}"#).expect("parses");
        assert_eq!(parsed.valid_set_size(), Some(10));
    }
}
