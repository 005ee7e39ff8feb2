//! Rows to sequences: what the reference's ICL classes do, with our random
//! stream. A recipe's templates turn each source row into an example; the
//! grouping decides which examples share a sequence; each sequence starts with
//! one of the task's descriptions with probability `description_prob`.

use minijinja::Environment;
use serde_json::{Map, Value};
use spectrum_core::{Message, Rng, Role};

use super::recipe::{Individual, Length, Recipe, Step};
use crate::Sequence;

/// What went wrong with a recipe or a row it read.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("recipe {file}: {message}")]
    Invalid { file: String, message: String },
    #[error(
        "{task}: the source has no column {column:?} (it has {present}); the dataset changed its schema, or the recipe names the wrong column"
    )]
    MissingColumn {
        task: String,
        column: String,
        present: String,
    },
    #[error(transparent)]
    Sav(#[from] super::sav::SavError),
    #[error("{task}: row {row}: column {column}: {message}")]
    Row {
        task: String,
        row: usize,
        column: String,
        message: String,
    },
}

/// How the suite's sequences are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildConfig {
    pub seed: u64,
    /// Probability that a sequence starts with a description: 0.6, the
    /// reference's `include_description_prob`.
    pub description_prob: f64,
    /// At most this many sequences per task (drawn at random from all of them).
    pub max_sequences: Option<usize>,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            seed: 0,
            description_prob: 0.6,
            max_sequences: None,
        }
    }
}

const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The tables a recipe's joins read, by URL.
pub type Joined = std::collections::BTreeMap<String, Vec<Map<String, Value>>>;

/// The examples of `rows`: each row with the recipe's derived columns added.
/// Every column the recipe reads must be in the first row's schema.
pub fn examples(
    recipe: &Recipe,
    rows: &[Map<String, Value>],
) -> Result<Vec<Map<String, Value>>, RecipeError> {
    examples_joined(recipe, rows, &Joined::new())
}

/// [`examples`] for a recipe with joins: `joined` holds each joined file's rows.
pub fn examples_joined(
    recipe: &Recipe,
    rows: &[Map<String, Value>],
    joined: &Joined,
) -> Result<Vec<Map<String, Value>>, RecipeError> {
    let invalid = |message: String| RecipeError::Invalid {
        file: format!("{}.toml", recipe.task),
        message,
    };
    let mut env = environment();
    for (name, text) in &recipe.columns {
        env.add_template_owned(name.clone(), text.clone())
            .map_err(|e| invalid(format!("column {name}: {e}")))?;
    }
    let rows = steps(recipe, rows, joined, &env)?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let context = context(&row);
        let mut example = row;
        for name in recipe.columns.keys() {
            let rendered = env
                .get_template(name)
                .and_then(|t| t.render(&context))
                .map_err(|e| RecipeError::Row {
                    task: recipe.task.clone(),
                    row: i + 1,
                    column: name.clone(),
                    message: e.to_string(),
                })?;
            example.insert(name.clone(), Value::String(rendered));
        }
        for column in recipe.example_columns() {
            if !example.contains_key(column) {
                return Err(RecipeError::MissingColumn {
                    task: recipe.task.clone(),
                    column: column.clone(),
                    present: example.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            }
        }
        out.push(example);
    }
    Ok(out)
}

/// The task's descriptions: a description with `{{ ... }}` is a MiniJinja
/// template over all of the task's `examples` (the reference writes some
/// from its table, e.g. the winner labels that occur).
pub fn descriptions(
    recipe: &Recipe,
    examples: &[Map<String, Value>],
) -> Result<Vec<String>, RecipeError> {
    let env = environment();
    let context = minijinja::context! { examples => minijinja::Value::from_serialize(examples) };
    recipe
        .descriptions()
        .into_iter()
        .map(|d| {
            if !d.contains("{{") {
                return Ok(d);
            }
            env.render_str(&d, &context)
                .map_err(|e| RecipeError::Invalid {
                    file: format!("{}.toml", recipe.task),
                    message: format!("description {d:?}: {e}"),
                })
        })
        .collect()
}

/// The recipe's steps, in order, over the source rows.
fn steps(
    recipe: &Recipe,
    rows: &[Map<String, Value>],
    joined: &Joined,
    env: &Environment,
) -> Result<Vec<Map<String, Value>>, RecipeError> {
    if let Some(first) = rows.first() {
        for column in &recipe.source.columns {
            if !first.contains_key(column) {
                return Err(RecipeError::MissingColumn {
                    task: recipe.task.clone(),
                    column: column.clone(),
                    present: first.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            }
        }
    }
    let mut rows = rows.to_vec();
    for step in &recipe.steps {
        rows = apply(recipe, step, rows, joined, env)?;
    }
    Ok(rows)
}

/// The prompts and targets of a distributional recipe: one per row after its
/// steps.
pub fn distribution_items(
    recipe: &Recipe,
    rows: &[Map<String, Value>],
    joined: &Joined,
) -> Result<Vec<crate::DistributionItem>, RecipeError> {
    let spec = recipe
        .distribution
        .as_ref()
        .ok_or_else(|| RecipeError::Invalid {
            file: format!("{}.toml", recipe.task),
            message: "not a distributional recipe: it has no [distribution]".into(),
        })?;
    let invalid = |what: &str, e: minijinja::Error| RecipeError::Invalid {
        file: format!("{}.toml", recipe.task),
        message: format!("distribution.{what}: {e}"),
    };
    let mut env = environment();
    env.add_template_owned("description", spec.description.clone())
        .map_err(|e| invalid("description", e))?;
    env.add_template_owned("input", spec.input.clone())
        .map_err(|e| invalid("input", e))?;
    let rows = steps(recipe, rows, joined, &env)?;
    let options = env
        .compile_expression(&spec.options)
        .map_err(|e| invalid("options", e))?;
    let probs = env
        .compile_expression(&spec.probs)
        .map_err(|e| invalid("probs", e))?;
    let mut items = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let at = |column: &str, message: String| RecipeError::Row {
            task: recipe.task.clone(),
            row: i + 1,
            column: format!("distribution.{column}"),
            message,
        };
        let ctx = context(row);
        let render = |name: &str| {
            env.get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| at(name, e.to_string()))
        };
        let list = |name: &str, e: &minijinja::Expression| -> Result<Vec<Value>, RecipeError> {
            match serde_json::to_value(e.eval(&ctx).map_err(|e| at(name, e.to_string()))?) {
                Ok(Value::Array(values)) => Ok(values),
                other => Err(at(name, format!("not a list: {other:?}"))),
            }
        };
        let options: Vec<String> = list("options", &options)?
            .iter()
            .map(super::py::str_of)
            .collect();
        let probs = list("probs", &probs)?
            .iter()
            .map(|p| {
                p.as_f64()
                    .ok_or_else(|| at("probs", format!("{p} is not a number")))
            })
            .collect::<Result<Vec<f64>, _>>()?;
        let mut metadata = Map::new();
        metadata.insert(
            "output_name".into(),
            Value::String(spec.output_name.clone()),
        );
        items.push(crate::DistributionItem {
            task: recipe.task.clone(),
            description: render("description")?,
            input: render("input")?,
            options,
            probs,
            ordinal: spec.ordinal,
            metadata,
        });
    }
    Ok(items)
}

/// The templates' and expressions' environment: strict about undefined
/// names, with `letters`, Python's ways of writing values (`py`, `json`,
/// `strip`, `round_even`) and the `missing` test (None or NaN).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_global(
        "letters",
        minijinja::Value::from_serialize(LETTERS.chars().map(String::from).collect::<Vec<_>>()),
    );
    let json = |v: &minijinja::Value| serde_json::to_value(v).unwrap_or(Value::Null);
    env.add_filter("py", move |v: minijinja::Value| {
        super::py::str_of(&json(&v))
    });
    env.add_filter("json", move |v: minijinja::Value| {
        super::py::json_dumps(&json(&v))
    });
    // Python's round(x): to the nearest integer, halves to even.
    env.add_filter("round_even", |x: f64| -> i64 { x.round_ties_even() as i64 });
    env.add_filter("strip", move |v: minijinja::Value| {
        super::py::strip(&super::py::str_of(&json(&v))).to_string()
    });
    // ast.literal_eval of a text cell.
    env.add_filter(
        "literal",
        |text: String| -> Result<minijinja::Value, minijinja::Error> {
            super::py::literal_eval(&text)
                .map(|v| minijinja::Value::from_serialize(&v))
                .map_err(|e| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("not a Python literal: {e}"),
                    )
                })
        },
    );
    // re.search(pattern, text).group(), or none.
    env.add_filter(
        "regex_search",
        |text: String, pattern: String| -> Result<minijinja::Value, minijinja::Error> {
            let re = regex::Regex::new(&pattern).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
            })?;
            Ok(re.find(&text).map_or(minijinja::Value::from(()), |m| {
                minijinja::Value::from(m.as_str())
            }))
        },
    );
    // numpy's round(x, n) for n >= 0: rint(x * 10^n) / 10^n, halves to even.
    env.add_filter("np_round", |x: f64, digits: i32| -> f64 {
        let scale = 10f64.powi(digits);
        (x * scale).round_ties_even() / scale
    });
    // Probabilities divided by their sum (left to right, as Python's sum
    // adds), when it is positive.
    env.add_filter("normalized", |probs: Vec<f64>| -> Vec<f64> {
        let total = probs.iter().fold(0.0, |a, p| a + p);
        if total > 0.0 {
            probs.iter().map(|p| p / total).collect()
        } else {
            probs
        }
    });
    // [map.get(item, default) for item in items]
    env.add_filter(
        "lookup",
        |items: Vec<minijinja::Value>, map: minijinja::Value, default: minijinja::Value| {
            items
                .into_iter()
                .map(|k| match map.get_item(&k) {
                    Ok(v) if !v.is_undefined() => v,
                    _ => default.clone(),
                })
                .collect::<Vec<_>>()
        },
    );
    // list(map.values())
    env.add_filter(
        "values",
        |map: minijinja::Value| -> Result<Vec<minijinja::Value>, minijinja::Error> {
            map.try_iter()?.map(|k| map.get_item(&k)).collect()
        },
    );
    // [x / total for x in items]
    env.add_filter("over", |items: Vec<f64>, total: f64| -> Vec<f64> {
        items.iter().map(|x| x / total).collect()
    });
    // The indices 0..n in an order of our own, the same for the same key
    // (a task's choices, shuffled once per question).
    env.add_filter("permutation", |n: usize, key: String| -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        Rng::derive(0, &key).shuffle(&mut order);
        order
    });
    // list.index(value)
    env.add_filter(
        "index_of",
        |items: Vec<minijinja::Value>,
         value: minijinja::Value|
         -> Result<usize, minijinja::Error> {
            items.iter().position(|v| *v == value).ok_or_else(|| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("{value} is not in the list"),
                )
            })
        },
    );
    // A uniform distribution over a list's items.
    env.add_filter("uniform", |items: Vec<minijinja::Value>| -> Vec<f64> {
        vec![1.0 / items.len() as f64; items.len()]
    });
    // Python's str.isdigit(): not empty, every character a digit.
    env.add_test("digits", |v: minijinja::Value| {
        v.as_str()
            .is_some_and(|s| !s.is_empty() && s.chars().all(char::is_numeric))
    });
    // pandas' NaN, for a value mapped to nothing.
    env.add_global("nan", super::py::NAN);
    // str() of a 1-D numpy object array: its items' repr, space-separated,
    // wrapped as numpy wraps them.
    env.add_filter("np_str", move |items: Vec<minijinja::Value>| {
        let items: Vec<String> = items.iter().map(|v| super::py::repr(&json(v))).collect();
        super::py::numpy_str(&items)
    });
    env.add_test("missing", |v: minijinja::Value| {
        v.is_undefined() || v.is_none() || v.as_str() == Some(super::py::NAN)
    });
    env
}

/// A row as templates see it: its columns, and `row` for dotted names.
fn context(row: &Map<String, Value>) -> minijinja::Value {
    let mut context = row.clone();
    context.insert("row".into(), Value::Object(row.clone()));
    minijinja::Value::from_serialize(&context)
}

fn is_missing(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null)) || value.is_some_and(super::py::is_nan)
}

/// The values of `columns` in `row` as text, or `None` when one is missing.
fn key(row: &Map<String, Value>, columns: &[String]) -> Option<Vec<String>> {
    columns
        .iter()
        .map(|c| (!is_missing(row.get(c))).then(|| super::py::str_of(&row[c])))
        .collect()
}

/// One step of the recipe's table pipeline.
fn apply(
    recipe: &Recipe,
    step: &Step,
    rows: Vec<Map<String, Value>>,
    joined: &Joined,
    env: &Environment,
) -> Result<Vec<Map<String, Value>>, RecipeError> {
    Ok(match step {
        Step::Join(join) => {
            let right = joined.get(&join.url).ok_or_else(|| RecipeError::Invalid {
                file: format!("{}.toml", recipe.task),
                message: format!("the joined file {} was not read", join.url),
            })?;
            let numbered: Vec<Map<String, Value>>;
            let right = match &join.number {
                Some(column) => {
                    numbered = right
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            let mut r = r.clone();
                            r.insert(column.clone(), Value::from(i));
                            r
                        })
                        .collect();
                    &numbered
                }
                None => right,
            };
            if let Some(first) = right.first() {
                for column in join.on.iter().chain(&join.columns) {
                    if !first.contains_key(column) {
                        return Err(RecipeError::MissingColumn {
                            task: recipe.task.clone(),
                            column: column.clone(),
                            present: first.keys().cloned().collect::<Vec<_>>().join(", "),
                        });
                    }
                }
            }
            let mut index: std::collections::HashMap<Vec<String>, Vec<usize>> = Default::default();
            for (i, r) in right.iter().enumerate() {
                if let Some(k) = key(r, &join.on) {
                    index.entry(k).or_default().push(i);
                }
            }
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                match key(&row, &join.on).and_then(|k| index.get(&k)) {
                    Some(matches) => {
                        for &m in matches {
                            let mut merged = row.clone();
                            for c in &join.columns {
                                merged.insert(c.clone(), right[m][c].clone());
                            }
                            out.push(merged);
                        }
                    }
                    None => {
                        let mut merged = row;
                        for c in &join.columns {
                            merged.insert(c.clone(), Value::String(super::py::NAN.into()));
                        }
                        out.push(merged);
                    }
                }
            }
            out
        }
        Step::Keep(expression) => {
            let compiled =
                env.compile_expression(expression)
                    .map_err(|e| RecipeError::Invalid {
                        file: format!("{}.toml", recipe.task),
                        message: format!("keep {expression:?}: {e}"),
                    })?;
            let mut out = Vec::with_capacity(rows.len());
            for (i, row) in rows.into_iter().enumerate() {
                let keep = compiled.eval(context(&row)).map_err(|e| RecipeError::Row {
                    task: recipe.task.clone(),
                    row: i + 1,
                    column: format!("keep {expression:?}"),
                    message: e.to_string(),
                })?;
                if keep.is_true() {
                    out.push(row);
                }
            }
            out
        }
        Step::Derive(columns) => {
            let mut compiled = Vec::with_capacity(columns.len());
            for (name, expression) in columns {
                let e = env
                    .compile_expression(expression)
                    .map_err(|e| RecipeError::Invalid {
                        file: format!("{}.toml", recipe.task),
                        message: format!("derive {name}: {e}"),
                    })?;
                compiled.push((name, e));
            }
            let mut out = Vec::with_capacity(rows.len());
            for (i, mut row) in rows.into_iter().enumerate() {
                let ctx = context(&row);
                for (name, e) in &compiled {
                    let value = e.eval(&ctx).map_err(|e| RecipeError::Row {
                        task: recipe.task.clone(),
                        row: i + 1,
                        column: name.to_string(),
                        message: e.to_string(),
                    })?;
                    row.insert(
                        name.to_string(),
                        serde_json::to_value(&value).unwrap_or(Value::Null),
                    );
                }
                out.push(row);
            }
            out
        }
        Step::Explode(explode) => {
            let mut out = Vec::with_capacity(rows.len());
            for mut row in rows {
                let items: Vec<(Value, Value)> = match row.remove(&explode.column) {
                    Some(Value::Object(map)) => map
                        .into_iter()
                        .map(|(k, v)| (Value::String(k), v))
                        .collect(),
                    Some(Value::Array(list)) => list
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::from(i), v))
                        .collect(),
                    _ => Vec::new(),
                };
                for (k, v) in items {
                    let mut one = row.clone();
                    one.insert(explode.key.clone(), k);
                    one.insert(explode.value.clone(), v);
                    out.push(one);
                }
            }
            out
        }
        Step::MinGroup(group) => {
            let mut counts: std::collections::HashMap<Vec<String>, usize> = Default::default();
            for row in &rows {
                if let Some(k) = key(row, &group.by) {
                    *counts.entry(k).or_default() += 1;
                }
            }
            rows.into_iter()
                .filter(|row| key(row, &group.by).is_some_and(|k| counts[&k] >= group.rows))
                .collect()
        }
        Step::KeepSeen(seen) => {
            let among: std::collections::HashSet<String> = rows
                .iter()
                .filter_map(|r| key(r, std::slice::from_ref(&seen.among)))
                .map(|mut k| k.remove(0))
                .collect();
            rows.into_iter()
                .filter(|row| {
                    key(row, std::slice::from_ref(&seen.column))
                        .is_some_and(|k| among.contains(&k[0]))
                })
                .collect()
        }
        Step::Unpivot(unpivot) => {
            let pattern =
                regex::Regex::new(&format!("^(?:{})$", unpivot.pattern)).map_err(|e| {
                    RecipeError::Invalid {
                        file: format!("{}.toml", recipe.task),
                        message: format!("unpivot pattern: {e}"),
                    }
                })?;
            let mut out = Vec::new();
            for row in rows {
                for (column, cell) in row {
                    if pattern.is_match(&column) {
                        let mut one = Map::new();
                        one.insert(unpivot.key.clone(), Value::String(column));
                        one.insert(unpivot.value.clone(), cell);
                        out.push(one);
                    }
                }
            }
            out
        }
        Step::DropMissing(columns) => rows
            .into_iter()
            .filter(|row| columns.iter().all(|c| !is_missing(row.get(c))))
            .collect(),
        Step::Distinct(columns) => {
            // Missing values are equal to each other here, as in pandas.
            let mut seen = std::collections::HashSet::new();
            rows.into_iter()
                .filter(|row| {
                    let k: Vec<Option<String>> = columns
                        .iter()
                        .map(|c| key(row, std::slice::from_ref(c)).map(|mut k| k.remove(0)))
                        .collect();
                    seen.insert(k)
                })
                .collect()
        }
        Step::Collect(collect) => {
            let mut groups: std::collections::BTreeMap<Vec<String>, Map<String, Value>> =
                Default::default();
            for row in &rows {
                let Some(k) = key(row, &collect.by) else {
                    continue;
                };
                let group = groups.entry(k).or_insert_with(|| {
                    let mut g: Map<String, Value> = collect
                        .by
                        .iter()
                        .map(|c| (c.clone(), row[c].clone()))
                        .collect();
                    for l in &collect.lists {
                        g.insert(l.clone(), Value::Array(Vec::new()));
                    }
                    g
                });
                for l in &collect.lists {
                    if let Some(Value::Array(values)) = group.get_mut(l) {
                        values.push(row.get(l).cloned().unwrap_or(Value::Null));
                    }
                }
            }
            groups.into_values().collect()
        }
    })
}

/// The task's sequences, drawn from its examples.
pub fn sequences(
    recipe: &Recipe,
    examples: &[Map<String, Value>],
    config: &BuildConfig,
) -> Vec<Sequence> {
    let mut rng = Rng::derive(config.seed, &recipe.task);
    // A description template that does not render is reported by
    // [`descriptions`], which callers run first; here it stays as written.
    let descriptions = descriptions(recipe, examples).unwrap_or_else(|_| recipe.descriptions());
    let mut out = Vec::new();
    let mut individuals = individuals(recipe, examples);
    if let Some(max) = recipe.individual.as_ref().and_then(|i| i.max)
        && individuals.len() > max
    {
        rng.shuffle(&mut individuals);
        individuals.truncate(max);
    }
    for (individual, members, description) in individuals {
        let draw = |rng: &mut Rng| -> Vec<usize> {
            if recipe.group_by.is_empty() {
                let mut order = members.clone();
                rng.shuffle(&mut order);
                order
            } else {
                grouped_order(examples, &members, &recipe.group_by, rng)
            }
        };
        let mut chunks: Vec<Vec<usize>> = Vec::new();
        match recipe.per_individual {
            Some(n) => {
                for _ in 0..n {
                    let take = length(recipe.length, &mut rng);
                    let order = draw(&mut rng);
                    chunks.push(order.into_iter().take(take).collect());
                }
            }
            None => {
                let order = draw(&mut rng);
                let mut rest = &order[..];
                while !rest.is_empty() {
                    let take = length(recipe.length, &mut rng).clamp(1, rest.len());
                    chunks.push(rest[..take].to_vec());
                    rest = &rest[take..];
                }
            }
        }
        let chunks: Vec<Vec<usize>> = chunks
            .into_iter()
            .filter(|c| !c.is_empty())
            .flat_map(|c| {
                let mut copies = vec![c; recipe.permutations.max(1)];
                for copy in copies.iter_mut().skip(1) {
                    rng.shuffle(copy);
                }
                copies
            })
            .collect();
        for chunk in chunks {
            let mut messages = Vec::with_capacity(chunk.len() * 2 + 1);
            if rng.bernoulli(config.description_prob) {
                let text = rng
                    .choose(&descriptions)
                    .replace("{individual}", individual.as_deref().unwrap_or_default())
                    .replace("{description}", description.as_deref().unwrap_or_default());
                messages.push(Message::new(Role::Description, text));
            }
            for &i in &chunk {
                let (input, output) = recipe.texts(&examples[i]);
                if let Some(input) = input {
                    messages.push(Message::new(Role::Input, input));
                }
                messages.push(Message::new(Role::Output, output));
            }
            let mut metadata = Map::new();
            if let Some(id) = &individual {
                metadata.insert("individual".into(), Value::String(id.clone()));
            }
            out.push(Sequence {
                task: recipe.task.clone(),
                messages,
                metadata,
            });
        }
    }
    keep_at_most(&mut out, config.max_sequences, &mut rng);
    out
}

/// At most `max` of `items`, drawn at random.
pub(crate) fn keep_at_most<T>(items: &mut Vec<T>, max: Option<usize>, rng: &mut Rng) {
    if let Some(max) = max
        && items.len() > max
    {
        rng.shuffle(items);
        items.truncate(max);
    }
}

/// The individuals of a task in order of first appearance: their id (none
/// for a generic task, which is one individual), the examples that are
/// theirs, and their description if the recipe reads one.
fn individuals(
    recipe: &Recipe,
    examples: &[Map<String, Value>],
) -> Vec<(Option<String>, Vec<usize>, Option<String>)> {
    let cell =
        |i: usize, column: &str| super::py::str_of(examples[i].get(column).unwrap_or(&Value::Null));
    match &recipe.individual {
        None => vec![(None, (0..examples.len()).collect(), None)],
        Some(Individual {
            id_column,
            description_column,
            ..
        }) => groups_in_order(0..examples.len(), |i| cell(i, id_column))
            .into_iter()
            .map(|(id, rows)| {
                let description = description_column.as_deref().map(|c| cell(rows[0], c));
                (Some(id), rows, description)
            })
            .collect(),
    }
}

/// `members` with the groups (rows equal on `group_by`) shuffled and each
/// group's rows kept together in their order.
fn grouped_order(
    examples: &[Map<String, Value>],
    members: &[usize],
    group_by: &[String],
    rng: &mut Rng,
) -> Vec<usize> {
    let key = |i: usize| -> String {
        group_by
            .iter()
            .map(|c| super::py::str_of(examples[i].get(c).unwrap_or(&Value::Null)))
            .collect::<Vec<_>>()
            .join("\u{1f}")
    };
    let mut groups = groups_in_order(members.iter().copied(), key);
    // pandas' groupby sorts the groups before the shuffle; the shuffle makes
    // the starting order irrelevant to the distribution.
    rng.shuffle(&mut groups);
    groups.into_iter().flat_map(|(_, rows)| rows).collect()
}

/// `indices` grouped by `key`, groups in order of first appearance, each
/// group's indices in their order.
fn groups_in_order(
    indices: impl Iterator<Item = usize>,
    key: impl Fn(usize) -> String,
) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = Default::default();
    for i in indices {
        let k = key(i);
        match at.get(&k) {
            Some(&g) => groups[g].1.push(i),
            None => {
                at.insert(k.clone(), groups.len());
                groups.push((k, vec![i]));
            }
        }
    }
    groups
}

/// Examples in the next sequence.
fn length(length: Length, rng: &mut Rng) -> usize {
    match length {
        Length::Fixed(n) => n,
        Length::GeomAndPoisson { geom_and_poisson } => {
            let half = geom_and_poisson / 2.0;
            geometric(1.0 / half, rng) + poisson(half, rng)
        }
    }
}

/// Trials up to and including the first success (numpy's `geometric`, >= 1).
fn geometric(p: f64, rng: &mut Rng) -> usize {
    let p = p.clamp(f64::MIN_POSITIVE, 1.0);
    if p >= 1.0 {
        return 1;
    }
    let u = 1.0 - rng.f64();
    (u.ln() / (1.0 - p).ln()).ceil().max(1.0) as usize
}

/// A Poisson draw (Knuth's product of uniforms; means here are small).
fn poisson(mean: f64, rng: &mut Rng) -> usize {
    let limit = (-mean).exp();
    let (mut k, mut product) = (0usize, rng.f64());
    while product > limit {
        k += 1;
        product *= rng.f64();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recipe(text: &str) -> Recipe {
        toml::from_str(text).expect("recipe")
    }

    const QA: &str = r#"
task = "qa"
split = "held_out"
given = ["prompt"]
generated = ["answer_letter"]
descriptions = ["Answer."]
length = 3
[source]
hf = "x/qa"
split = "test"
columns = ["question", "choices", "answer"]
[columns]
prompt = """Question: {{ question | trim }}
{%- for c in choices %}
{{ letters[loop.index0] }}. {{ c }}
{%- endfor %}"""
answer_letter = "{{ letters[answer] }}"
"#;

    fn rows(n: usize) -> Vec<Map<String, Value>> {
        (0..n)
            .map(|i| {
                json!({"question": format!(" Q{i}? "), "choices": ["yes", "no"], "answer": i % 2})
                    .as_object()
                    .cloned()
                    .expect("object")
            })
            .collect()
    }

    #[test]
    fn rows_become_example_texts_through_the_templates() {
        let r = recipe(QA);
        let ex = examples(&r, &rows(2)).expect("examples");
        assert_eq!(
            r.texts(&ex[1]),
            (Some("Question: Q1?\nA. yes\nB. no".into()), "B".into())
        );
    }

    #[test]
    fn every_example_is_used_once_in_sequences_of_the_length() {
        let r = recipe(QA);
        let ex = examples(&r, &rows(10)).expect("examples");
        let seqs = sequences(&r, &ex, &BuildConfig::default());
        let lengths: Vec<usize> = seqs.iter().map(|s| s.examples()).collect();
        assert_eq!(lengths.iter().sum::<usize>(), 10);
        assert!(lengths.iter().all(|&n| n == 3 || n == 1), "{lengths:?}");
        let mut inputs: Vec<&str> = seqs
            .iter()
            .flat_map(|s| &s.messages)
            .filter(|m| m.role == Role::Input)
            .map(|m| m.content.as_str())
            .collect();
        inputs.sort();
        inputs.dedup();
        assert_eq!(inputs.len(), 10, "no example twice");
    }

    #[test]
    fn permutations_repeat_each_sequence_in_new_orders() {
        let r = recipe(&QA.replace("length = 3", "length = 3\npermutations = 4"));
        let ex = examples(&r, &rows(9)).expect("examples");
        let seqs = sequences(&r, &ex, &BuildConfig::default());
        assert_eq!(seqs.len(), 12, "3 sequences, 4 orders each");
        let inputs = |s: &Sequence| -> Vec<String> {
            s.messages
                .iter()
                .filter(|m| m.role == Role::Input)
                .map(|m| m.content.clone())
                .collect()
        };
        let mut orders = std::collections::HashSet::new();
        for copies in seqs.chunks(4) {
            let mut first = inputs(&copies[0]);
            first.sort();
            for c in copies {
                let mut these = inputs(c);
                orders.insert(these.clone());
                these.sort();
                assert_eq!(these, first, "the same examples in every copy");
            }
        }
        assert!(orders.len() > 3, "new orders, not only copies");
    }

    #[test]
    fn collect_and_distinct_reshape_rows_as_pandas_does() {
        let text = r#"
task = "c"
split = "held_out"
given = ["k"]
generated = ["vs"]
length = 5
[source]
hf = "x/c"
split = "train"
columns = ["k", "v"]
[[steps]]
collect = { by = ["k"], lists = ["v"] }
[columns]
vs = "{{ v | json }}"
"#;
        let table: Vec<Map<String, Value>> = [
            json!({"k": "b", "v": 1}),
            json!({"k": "a", "v": "é"}),
            json!({"k": null, "v": 3}),
            json!({"k": "b", "v": null}),
        ]
        .iter()
        .map(|v| v.as_object().cloned().expect("object"))
        .collect();
        let ex = examples(&recipe(text), &table).expect("examples");
        let texts: Vec<_> = ex.iter().map(|e| recipe(text).texts(e)).collect();
        assert_eq!(
            texts,
            vec![
                (Some("a".into()), "[\"\\u00e9\"]".into()),
                (Some("b".into()), "[1, null]".into())
            ],
            "sorted groups, the missing key dropped"
        );
        let distinct = r#"
task = "d"
split = "held_out"
generated = ["v"]
length = 5
[source]
hf = "x/c"
split = "train"
columns = ["k", "v"]
[[steps]]
distinct = ["k"]
"#;
        let ex = examples(&recipe(distinct), &table).expect("examples");
        let firsts: Vec<String> = ex
            .iter()
            .map(|e| super::super::py::str_of(&e["v"]))
            .collect();
        assert_eq!(
            firsts,
            ["1", "é", "3"],
            "the first row of each key, in order"
        );
    }

    #[test]
    fn a_missing_column_is_named() {
        let r = recipe(QA);
        let mut bad = rows(1);
        bad[0].remove("answer");
        let err = examples(&r, &bad).expect_err("schema changed");
        assert!(err.to_string().contains("no column \"answer\""), "{err}");
    }

    #[test]
    fn individuals_keep_to_their_own_rows_and_descriptions() {
        let r = recipe(
            r#"
task = "people"
split = "held_out"
individual = { id_column = "who", description_column = "bio" }
descriptions = ["About {description}."]
given = ["q"]
generated = ["a"]
per_individual = 2
length = 2
[source]
hf = "x/p"
split = "train"
columns = ["who", "bio", "q", "a"]
"#,
        );
        let rows: Vec<Map<String, Value>> = (0..12)
            .map(|i| {
                json!({"who": i % 3, "bio": format!("person {}", i % 3), "q": format!("q{i}"), "a": format!("{}", i % 3)})
                    .as_object()
                    .cloned()
                    .expect("object")
            })
            .collect();
        let ex = examples(&r, &rows).expect("examples");
        let config = BuildConfig {
            description_prob: 1.0,
            ..BuildConfig::default()
        };
        let seqs = sequences(&r, &ex, &config);
        assert_eq!(seqs.len(), 6, "two per individual");
        for s in &seqs {
            let who = s.metadata["individual"].as_str().expect("id");
            assert_eq!(s.messages[0].content, format!("About person {who}."));
            assert!(
                s.messages
                    .iter()
                    .filter(|m| m.role == Role::Output)
                    .all(|m| m.content == who)
            );
        }
    }

    #[test]
    fn geom_and_poisson_lengths_have_the_mean() {
        let mut rng = Rng::new(1);
        let n = 20_000;
        let mean = (0..n)
            .map(|_| {
                length(
                    Length::GeomAndPoisson {
                        geom_and_poisson: 10.0,
                    },
                    &mut rng,
                )
            })
            .sum::<usize>() as f64
            / n as f64;
        assert!((mean - 10.0).abs() < 0.2, "{mean}");
    }
}
