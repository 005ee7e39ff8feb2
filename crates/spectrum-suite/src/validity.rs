//! Validity rules for diverse-valid tasks. A rule is data (serialisable, stored
//! beside its task) and is compiled once into a [`Validator`] before checking
//! many outputs. Outputs are checked exactly as given: callers strip them first
//! (METHOD.md §4.3).

use std::collections::HashSet;

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
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
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
}

impl ValidityRule {
    /// Checks the rule and prepares it for fast repeated checks.
    pub fn compile(&self) -> Result<Validator, RuleError> {
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
        };
        Ok(Validator { check })
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
}

impl Validator {
    pub fn is_valid(&self, output: &str) -> bool {
        match &self.check {
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
        }
    }
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
    let mut d = 3u64;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
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
