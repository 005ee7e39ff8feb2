//! Typed access to the fields of one row, with errors that say which field was
//! wrong, what it held and what was expected. Rows from CSV hold only strings,
//! so list fields also accept a string holding a JSON array.

use serde_json::{Map, Value};

use super::error::RowProblem;

pub(crate) struct Fields {
    pub map: Map<String, Value>,
}

pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Fields {
    /// Removes and returns the first present field among `names` (a name and its aliases).
    pub fn take(&mut self, names: &[&'static str]) -> Option<(&'static str, Value)> {
        names
            .iter()
            .find_map(|n| self.map.shift_remove(*n).map(|v| (*n, v)))
    }

    pub fn has_any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.map.contains_key(*n))
    }

    /// A required string field.
    pub fn string(&mut self, names: &[&'static str]) -> Result<String, RowProblem> {
        match self.take(names) {
            None | Some((_, Value::Null)) => Err(RowProblem::new(
                Some(names[0]),
                "is missing",
                format!("add a `{}` field with a string value", names[0]),
            )),
            Some((name, v)) => expect_string(name, v),
        }
    }

    /// An optional string field; an empty or null value counts as absent.
    pub fn opt_string(&mut self, names: &[&'static str]) -> Result<Option<String>, RowProblem> {
        match self.take(names) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((name, v)) => expect_string(name, v).map(|s| (!s.is_empty()).then_some(s)),
        }
    }

    /// A required list field.
    pub fn array(
        &mut self,
        names: &[&'static str],
        example: &str,
    ) -> Result<(&'static str, Vec<Value>), RowProblem> {
        let missing = || {
            RowProblem::new(
                Some(names[0]),
                "is missing",
                format!("add `{}` as a list, e.g. {example}", names[0]),
            )
        };
        let (name, v) = self.take(names).ok_or_else(missing)?;
        match v {
            Value::Array(items) => Ok((name, items)),
            Value::String(s) if s.trim_start().starts_with('[') => match serde_json::from_str(&s) {
                Ok(Value::Array(items)) => Ok((name, items)),
                _ => Err(RowProblem::new(
                    Some(name),
                    format!("holds {s:?}, which is not a valid JSON list"),
                    format!("write it as {example}"),
                )),
            },
            Value::Null => Err(missing()),
            other => Err(RowProblem::new(
                Some(name),
                format!("expected a list, found {}", kind_of(&other)),
                format!("write it as {example}"),
            )),
        }
    }

    /// An optional boolean; CSV's `true`/`false`/`1`/`0` are accepted.
    pub fn opt_bool(&mut self, name: &'static str) -> Result<Option<bool>, RowProblem> {
        match self.take(&[name]) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((_, Value::Bool(b))) => Ok(Some(b)),
            Some((_, Value::String(s))) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" | "" => Ok(Some(false)),
                _ => Err(RowProblem::new(
                    Some(name),
                    format!("expected true or false, found {s:?}"),
                    "write true or false",
                )),
            },
            Some((_, other)) => Err(RowProblem::new(
                Some(name),
                format!("expected true or false, found {}", kind_of(&other)),
                "write true or false",
            )),
        }
    }

    /// What is left: the row's extra fields, kept as metadata.
    pub fn rest(self) -> Map<String, Value> {
        self.map
    }
}

pub(crate) fn expect_string(field: &str, v: Value) -> Result<String, RowProblem> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(RowProblem::new(
            Some(field),
            format!("expected a string, found {}", kind_of(&other)),
            "put the value in double quotes",
        )),
    }
}
