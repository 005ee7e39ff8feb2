//! The shapes a row can have, how a shape is recognised from a row's fields, and
//! how a row of each shape becomes a validated suite value.

use std::collections::HashSet;

use serde_json::Value;

use super::error::RowProblem;
use super::fields::{Fields, kind_of};
use crate::model::{
    DistributionItem, Message, Role, Sequence, Split, TaskDef, TaskKind, ValidityTask,
};
use crate::validity::ValidityRule;

/// What the rows of a file hold.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Task definitions: `task`, `category`, `split`, `kind`, `descriptions`.
    Tasks,
    /// Sequences: `task`, `messages: [{role, content}]` (METHOD.md §1).
    Messages,
    /// One example per row: `task`, `input` (or `prompt`), `output` (or `completion`),
    /// optional `description`.
    Rows,
    /// Distribution items: `description`, `input`, `options`, `probs` (or the
    /// reference's `description_text`, `input_text`, `target_outputs`, `target_probs`).
    Distribution,
    /// Diverse-valid task definitions: `task`, `description`, `examples`, `rule`.
    DiverseValid,
}

pub const SHAPE_NAMES: &str = "tasks, messages, rows, distribution, diverse_valid";

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::Tasks,
        Shape::Messages,
        Shape::Rows,
        Shape::Distribution,
        Shape::DiverseValid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Tasks => "tasks",
            Shape::Messages => "messages",
            Shape::Rows => "rows",
            Shape::Distribution => "distribution",
            Shape::DiverseValid => "diverse_valid",
        }
    }

    pub fn parse(s: &str) -> Option<Shape> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Shape::ALL.into_iter().find(|shape| shape.as_str() == s)
    }

    /// Recognises a shape from the field names of a file's first row.
    pub fn detect<'a>(fields: impl IntoIterator<Item = &'a str>) -> Option<Shape> {
        let fields: HashSet<&str> = fields.into_iter().collect();
        let has = |names: &[&str]| names.iter().any(|n| fields.contains(n));
        if has(&["messages"]) {
            Some(Shape::Messages)
        } else if has(&["options", "target_outputs"]) && has(&["probs", "target_probs"]) {
            Some(Shape::Distribution)
        } else if has(&["rule"]) && has(&["examples"]) {
            Some(Shape::DiverseValid)
        } else if has(&["output", "completion"]) {
            Some(Shape::Rows)
        } else if has(&["descriptions"])
            || (has(&["task"]) && has(&["split"]) && has(&["kind", "category"]))
        {
            Some(Shape::Tasks)
        } else {
            None
        }
    }

    /// Columns a CSV file of this shape must have (the first name of each group,
    /// any alias satisfies it).
    pub(crate) fn required_columns(self) -> &'static [&'static [&'static str]] {
        match self {
            Shape::Tasks => &[&["task", "name"]],
            Shape::Messages => &[&["messages"]],
            Shape::Rows => &[&["output", "completion"]],
            Shape::Distribution => &[
                &["description", "description_text"],
                &["options", "target_outputs"],
                &["probs", "target_probs"],
            ],
            Shape::DiverseValid => &[
                &["task", "name"],
                &["description"],
                &["examples"],
                &["rule"],
            ],
        }
    }

    /// The kind a task gets when it is first seen in a file of this shape without
    /// a task definition.
    pub fn implied_kind(self) -> TaskKind {
        match self {
            Shape::Distribution => TaskKind::Distribution,
            Shape::DiverseValid => TaskKind::DiverseValid,
            _ => TaskKind::Sequence,
        }
    }
}

/// One validated value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Task(TaskDef),
    Sequence(Sequence),
    Distribution(DistributionItem),
    Validity(ValidityTask),
}

impl Item {
    pub fn task(&self) -> &str {
        match self {
            Item::Task(t) => &t.task,
            Item::Sequence(s) => &s.task,
            Item::Distribution(d) => &d.task,
            Item::Validity(v) => &v.task,
        }
    }
}

pub(crate) const TASK_FIELDS: &[&str] = &["task", "task_name"];

/// Parses one row of the given shape. `default_task` names rows without a task field.
pub(crate) fn parse_row(
    shape: Shape,
    fields: Fields,
    default_task: &str,
) -> Result<Item, RowProblem> {
    match shape {
        Shape::Tasks => parse_task(fields).map(Item::Task),
        Shape::Messages => parse_messages(fields, default_task).map(Item::Sequence),
        Shape::Rows => parse_flat(fields, default_task).map(Item::Sequence),
        Shape::Distribution => parse_distribution(fields, default_task).map(Item::Distribution),
        Shape::DiverseValid => parse_diverse_valid(fields).map(Item::Validity),
    }
}

fn task_name(fields: &mut Fields, default_task: &str) -> Result<String, RowProblem> {
    let name = fields
        .opt_string(TASK_FIELDS)?
        .unwrap_or_else(|| default_task.to_string());
    check_task_name(&name)?;
    Ok(name)
}

fn check_task_name(name: &str) -> Result<(), RowProblem> {
    if name.trim().is_empty() || name.trim() != name {
        return Err(RowProblem::new(
            Some("task"),
            format!("task name {name:?} is empty or has spaces around it"),
            "give the task a non-empty name without leading or trailing spaces",
        ));
    }
    Ok(())
}

fn parse_task(mut f: Fields) -> Result<TaskDef, RowProblem> {
    let task = f.string(&["task", "name"])?;
    check_task_name(&task)?;
    let category = f
        .opt_string(&["category"])?
        .unwrap_or_else(|| "uncategorised".into());
    let split = match f.opt_string(&["split"])? {
        None => Split::Train,
        Some(s) => Split::parse(&s).ok_or_else(|| {
            RowProblem::new(
                Some("split"),
                format!("expected train or held_out, found {s:?}"),
                "write train or held_out",
            )
        })?,
    };
    let kind = match f.opt_string(&["kind"])? {
        None => TaskKind::Sequence,
        Some(s) => TaskKind::parse(&s).ok_or_else(|| {
            RowProblem::new(
                Some("kind"),
                format!("expected sequence, distribution or diverse_valid, found {s:?}"),
                "write one of sequence, distribution, diverse_valid",
            )
        })?,
    };
    let descriptions = if f.has_any(&["descriptions"]) {
        string_list(
            &mut f,
            &["descriptions"],
            r#"["Flip a fair coin.", "Toss a coin."]"#,
        )?
        .1
    } else {
        f.opt_string(&["description"])?.into_iter().collect()
    };
    Ok(TaskDef {
        task,
        category,
        split,
        kind,
        descriptions,
    })
}

fn string_list(
    f: &mut Fields,
    names: &[&'static str],
    example: &str,
) -> Result<(&'static str, Vec<String>), RowProblem> {
    let (name, items) = f.array(names, example)?;
    let strings = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s),
            other => Err(RowProblem::new(
                Some(&format!("{name}[{i}]")),
                format!("expected a string, found {}", kind_of(&other)),
                format!("make every element of `{name}` a string, e.g. {example}"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name, strings))
}

const ROLE_FIX: &str = "use description (at most one, first), input and output; \
                        for chat data, system -> description, user -> input, assistant -> output";

fn parse_messages(mut f: Fields, default_task: &str) -> Result<Sequence, RowProblem> {
    let task = task_name(&mut f, default_task)?;
    let (_, raw) = f.array(&["messages"], r#"[{"role": "output", "content": "heads"}]"#)?;
    let mut messages = Vec::with_capacity(raw.len());
    for (i, m) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("messages[{i}].{field}");
        let Value::Object(mut obj) = m else {
            return Err(RowProblem::new(
                Some(&format!("messages[{i}]")),
                format!(
                    "expected an object with role and content, found {}",
                    kind_of(&m)
                ),
                r#"write each message as {"role": "output", "content": "..."}"#,
            ));
        };
        let role = match obj.shift_remove("role") {
            Some(Value::String(r)) => match r.as_str() {
                "description" => Role::Description,
                "input" => Role::Input,
                "output" => Role::Output,
                _ => {
                    return Err(RowProblem::new(
                        Some(&at("role")),
                        format!("unknown role {r:?}; expected description, input or output"),
                        ROLE_FIX,
                    ));
                }
            },
            Some(other) => {
                return Err(RowProblem::new(
                    Some(&at("role")),
                    format!("expected a string, found {}", kind_of(&other)),
                    ROLE_FIX,
                ));
            }
            None => return Err(RowProblem::new(Some(&at("role")), "is missing", ROLE_FIX)),
        };
        let content = match obj.shift_remove("content") {
            Some(Value::String(s)) => s,
            // Multi-field values are JSON objects serialised into the content (METHOD.md §1).
            Some(v @ Value::Object(_)) => v.to_string(),
            Some(other) => {
                return Err(RowProblem::new(
                    Some(&at("content")),
                    format!("expected a string, found {}", kind_of(&other)),
                    "put the content in double quotes (objects are serialised as JSON)",
                ));
            }
            None => {
                return Err(RowProblem::new(
                    Some(&at("content")),
                    "is missing",
                    "add the message text as `content`",
                ));
            }
        };
        messages.push(Message { role, content });
    }
    check_order(&messages)?;
    Ok(Sequence {
        task,
        messages,
        metadata: f.rest(),
    })
}

/// Enforces METHOD.md §1: at most one description, first; then outputs only, or
/// input/output pairs; at least one output.
pub(crate) fn check_order(messages: &[Message]) -> Result<(), RowProblem> {
    let has_inputs = messages.iter().any(|m| m.role == Role::Input);
    let mut pending_input: Option<usize> = None;
    for (i, m) in messages.iter().enumerate() {
        let field = format!("messages[{i}].role");
        match m.role {
            Role::Description if i > 0 => {
                return Err(RowProblem::new(
                    Some(&field),
                    format!(
                        "out-of-order roles: a description at position {i}; it may only come first, once"
                    ),
                    "move the description to the start of the sequence, or merge the two descriptions",
                ));
            }
            Role::Description => {}
            Role::Input => {
                if let Some(j) = pending_input {
                    return Err(RowProblem::new(
                        Some(&format!("messages[{j}].role")),
                        format!(
                            "input at position {j} has no output; another input follows at position {i}"
                        ),
                        "add the output that answers it, or remove the input",
                    ));
                }
                pending_input = Some(i);
            }
            Role::Output => {
                if has_inputs && pending_input.is_none() {
                    return Err(RowProblem::new(
                        Some(&field),
                        format!(
                            "out-of-order roles: output at position {i} has no input before it, but this sequence has inputs"
                        ),
                        "pair every output with the input just before it, or remove all inputs",
                    ));
                }
                pending_input = None;
            }
        }
    }
    if let Some(j) = pending_input {
        return Err(RowProblem::new(
            Some(&format!("messages[{j}].role")),
            format!("input at position {j} has no output after it"),
            "add the output that answers it, or remove the input",
        ));
    }
    if !messages.iter().any(|m| m.role == Role::Output) {
        return Err(RowProblem::new(
            Some("messages"),
            "has no output",
            "add at least one message with role output",
        ));
    }
    Ok(())
}

fn parse_flat(mut f: Fields, default_task: &str) -> Result<Sequence, RowProblem> {
    let task = task_name(&mut f, default_task)?;
    let description = f.opt_string(&["description"])?;
    let input = f.opt_string(&["input", "prompt"])?;
    let output = match f.opt_string(&["output", "completion"])? {
        Some(o) => o,
        None if input.is_some() => {
            return Err(RowProblem::new(
                Some("output"),
                "the row has an input but no output",
                "fill in the output for this input, or remove the row",
            ));
        }
        None => {
            return Err(RowProblem::new(
                Some("output"),
                "is missing or empty",
                "fill in the output",
            ));
        }
    };
    let mut messages = Vec::with_capacity(3);
    messages.extend(description.map(|d| Message::new(Role::Description, d)));
    messages.extend(input.map(|x| Message::new(Role::Input, x)));
    messages.push(Message::new(Role::Output, output));
    Ok(Sequence {
        task,
        messages,
        metadata: f.rest(),
    })
}

fn parse_distribution(mut f: Fields, default_task: &str) -> Result<DistributionItem, RowProblem> {
    let task = task_name(&mut f, default_task)?;
    let description = f.string(&["description", "description_text"])?;
    let input = f.opt_string(&["input", "input_text"])?.unwrap_or_default();
    let (opt_name, options) =
        string_list(&mut f, &["options", "target_outputs"], r#"["red", "blue"]"#)?;
    let (prob_name, raw_probs) = f.array(&["probs", "target_probs"], "[0.75, 0.25]")?;
    let ordinal = f.opt_bool("ordinal")?.unwrap_or(false);
    if options.len() < 2 {
        return Err(RowProblem::new(
            Some(opt_name),
            format!("has {} option(s)", options.len()),
            "list at least two options",
        ));
    }
    let mut seen = HashSet::new();
    for (i, o) in options.iter().enumerate() {
        if o.is_empty() {
            return Err(RowProblem::new(
                Some(&format!("{opt_name}[{i}]")),
                "is an empty string",
                "give every option a label",
            ));
        }
        if !seen.insert(o.as_str()) {
            return Err(RowProblem::new(
                Some(opt_name),
                format!("duplicate option label {o:?}"),
                "give each option a distinct label, or merge their probabilities",
            ));
        }
    }
    if raw_probs.len() != options.len() {
        return Err(RowProblem::new(
            Some(prob_name),
            format!(
                "has {} probabilities for {} options",
                raw_probs.len(),
                options.len()
            ),
            format!("give exactly one probability per entry of `{opt_name}`, in the same order"),
        ));
    }
    let mut probs = Vec::with_capacity(raw_probs.len());
    for (i, p) in raw_probs.into_iter().enumerate() {
        let field = format!("{prob_name}[{i}]");
        let x = match &p {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
        .ok_or_else(|| {
            RowProblem::new(
                Some(&field),
                format!("expected a number, found {}", kind_of(&p)),
                "write probabilities as numbers like 0.25",
            )
        })?;
        if !(0.0..=1.0).contains(&x) {
            return Err(RowProblem::new(
                Some(&field),
                format!("{x} is not a probability"),
                "use values between 0 and 1",
            ));
        }
        probs.push(x);
    }
    let sum: f64 = probs.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(RowProblem::new(
            Some(prob_name),
            format!("probabilities sum to {sum}, not 1 (tolerance 1e-6)"),
            "normalise them (divide each by their sum) or correct the one that is off",
        ));
    }
    Ok(DistributionItem {
        task,
        description,
        input,
        options,
        probs,
        ordinal,
        metadata: f.rest(),
    })
}

const RULE_EXAMPLE: &str = r#"{"type": "closed_set", "values": ["Monday", "Tuesday"]}"#;

fn parse_diverse_valid(mut f: Fields) -> Result<ValidityTask, RowProblem> {
    let task = f.string(&["task", "name"])?;
    check_task_name(&task)?;
    let description = f.string(&["description"])?;
    let (_, examples) = string_list(&mut f, &["examples"], r#"["Ohio", "Texas", "Maine"]"#)?;
    if examples.is_empty() {
        return Err(RowProblem::new(
            Some("examples"),
            "is empty",
            "give three example outputs",
        ));
    }
    let rule_value = match f.take(&["rule"]) {
        Some((_, Value::String(s))) => serde_json::from_str(&s).map_err(|e| {
            RowProblem::new(
                Some("rule"),
                format!("is not valid JSON: {e}"),
                format!("write the rule as {RULE_EXAMPLE}"),
            )
        })?,
        Some((_, v)) => v,
        None => {
            return Err(RowProblem::new(
                Some("rule"),
                "is missing",
                format!("add a rule such as {RULE_EXAMPLE}"),
            ));
        }
    };
    let rule: ValidityRule = serde_json::from_value(rule_value).map_err(|e| {
        RowProblem::new(
            Some("rule"),
            format!("is not a validity rule: {e}"),
            "use type closed_set (values), integer_range (min, max), prime (min, max), regex (pattern), email or phone",
        )
    })?;
    let validator = rule
        .compile()
        .map_err(|e| RowProblem::new(Some("rule"), e.to_string(), "correct the rule"))?;
    if let Some((i, bad)) = examples
        .iter()
        .enumerate()
        .find(|(_, e)| !validator.is_valid(e))
    {
        return Err(RowProblem::new(
            Some(&format!("examples[{i}]")),
            format!(
                "example {bad:?} is not valid under its own {} rule",
                rule.name()
            ),
            "correct the example or the rule",
        ));
    }
    let max_new_tokens = match f.take(&["max_new_tokens"]) {
        None | Some((_, Value::Null)) => None,
        Some((_, v)) => Some(
            v.as_u64()
                .filter(|&n| n >= 1)
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| {
                    RowProblem::new(
                        Some("max_new_tokens"),
                        format!("{v} is not a whole number of tokens"),
                        "write a number of tokens such as 16, or leave the field out",
                    )
                })? as usize,
        ),
    };
    Ok(ValidityTask {
        task,
        description,
        examples,
        rule,
        max_new_tokens,
    })
}
