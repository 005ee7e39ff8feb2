//! A fast path for the commonest row: a `messages` row of JSON Lines, parsed
//! straight into a [`Sequence`] without building a generic JSON tree first.
//!
//! It only accepts rows it can read exactly as the general path would; anything
//! unusual (a wrong type, an unknown role, object content, a `task_name` field,
//! duplicate keys) makes it give up, and the general path then parses the row
//! and reports any problem precisely. Tests check both paths agree.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::model::{Message, Sequence};

#[derive(serde::Deserialize)]
struct FastMessage {
    role: crate::model::Role,
    content: String,
}

struct FastRow {
    task: Option<String>,
    messages: Option<Vec<FastMessage>>,
    metadata: Map<String, Value>,
}

impl<'de> serde::Deserialize<'de> for FastRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RowVisitor)
    }
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = FastRow;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a messages row")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FastRow, A::Error> {
        let mut row = FastRow {
            task: None,
            messages: None,
            metadata: Map::new(),
        };
        let mut saw_task = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "task" if !saw_task => {
                    saw_task = true;
                    row.task = map.next_value()?;
                }
                "messages" if row.messages.is_none() => row.messages = Some(map.next_value()?),
                "task" | "messages" | "task_name" => {
                    return Err(de::Error::custom("needs the general path"));
                }
                _ => {
                    let value: Value = map.next_value()?;
                    if row.metadata.insert(key.into_owned(), value).is_some() {
                        return Err(de::Error::custom("duplicate key"));
                    }
                }
            }
        }
        Ok(row)
    }
}

/// Parses a messages row, or returns `None` when the general path must decide.
pub(crate) fn messages_row(text: &str, default_task: &str) -> Option<Sequence> {
    let row: FastRow = serde_json::from_str(text).ok()?;
    let task = match row.task {
        Some(t) if t.is_empty() => return None,
        Some(t) => t,
        None => default_task.to_string(),
    };
    if task.trim() != task || task.is_empty() {
        return None;
    }
    let messages: Vec<Message> = row
        .messages?
        .into_iter()
        .map(|m| Message {
            role: m.role,
            content: m.content,
        })
        .collect();
    super::shape::check_order(&messages).ok()?;
    Some(Sequence {
        task,
        messages,
        metadata: row.metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::fields::Fields;
    use crate::import::shape::{Item, Shape, parse_row};

    fn general(text: &str) -> Option<Sequence> {
        let map = match serde_json::from_str::<Value>(text).ok()? {
            Value::Object(m) => m,
            _ => return None,
        };
        match parse_row(Shape::Messages, Fields { map }, "file").ok()? {
            Item::Sequence(s) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn fast_path_agrees_with_the_general_path() {
        let rows = [
            r#"{"task": "a", "messages": [{"role": "output", "content": "x"}]}"#,
            r#"{"messages": [{"role": "output", "content": "x"}], "id": 3, "seed": {"k": [1, 2]}}"#,
            r#"{"task": null, "messages": [{"role": "description", "content": "d"}, {"role": "input", "content": "i"}, {"role": "output", "content": "o", "weight": 1}]}"#,
            r#"{"task": "", "messages": [{"role": "output", "content": "x"}]}"#,
            r#"{"task": " a", "messages": [{"role": "output", "content": "x"}]}"#,
            r#"{"task_name": "b", "messages": [{"role": "output", "content": "x"}]}"#,
            r#"{"task": "a", "task_name": "b", "messages": [{"role": "output", "content": "x"}]}"#,
            r#"{"task": "a", "messages": [{"role": "output", "content": {"a": 1}}]}"#,
            r#"{"task": "a", "messages": [{"role": "user", "content": "x"}]}"#,
            r#"{"task": "a", "messages": [{"role": "input", "content": "x"}]}"#,
            r#"{"task": "a", "messages": []}"#,
            r#"{"task": 5, "messages": [{"role": "output", "content": "x"}]}"#,
            r#"{"task": "a", "messages": [{"role": "output", "content": "x"}], "id": 1, "id": 2}"#,
            r#"{"task": "a"}"#,
            r#"[1]"#,
        ];
        for row in rows {
            let fast = messages_row(row, "file");
            let slow = general(row);
            if let Some(f) = &fast {
                assert_eq!(
                    Some(f),
                    slow.as_ref(),
                    "fast and general paths disagree on {row}"
                );
            }
        }
        assert!(messages_row(rows[0], "file").is_some() && messages_row(rows[1], "file").is_some());
        assert_eq!(
            messages_row(rows[1], "file").map(|s| s.task),
            Some("file".into())
        );
    }
}
