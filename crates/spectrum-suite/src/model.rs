//! The values a suite is made of. Serialised with serde in exactly the shapes the
//! importers read (see METHOD.md §1), so a built suite can be imported unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use spectrum_core::{Message, Role};

use crate::validity::ValidityRule;

/// Whether a task is trained on or kept aside for evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    #[serde(alias = "held-out", alias = "heldout", alias = "test")]
    HeldOut,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::HeldOut => "held_out",
        }
    }

    /// Parses the names users type: `train`, `held_out`, `held-out`, `heldout`, `test`.
    pub fn parse(s: &str) -> Option<Split> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Some(Split::Train),
            "held_out" | "held-out" | "heldout" | "test" => Some(Split::HeldOut),
            _ => None,
        }
    }
}

/// Which evaluation family a task belongs to first. Every task can still yield
/// training sequences; the kind says what else it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Sequences of samples: scored for in-context steerability.
    Sequence,
    /// Prompts with target distributions over options.
    Distribution,
    /// A validity rule and examples: sampled for validity and diversity.
    DiverseValid,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Sequence => "sequence",
            TaskKind::Distribution => "distribution",
            TaskKind::DiverseValid => "diverse_valid",
        }
    }

    pub fn parse(s: &str) -> Option<TaskKind> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "sequence" => Some(TaskKind::Sequence),
            "distribution" => Some(TaskKind::Distribution),
            "diverse_valid" => Some(TaskKind::DiverseValid),
            _ => None,
        }
    }
}

/// One data-generating process, as listed in a suite's `tasks.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDef {
    pub task: String,
    /// Free text; the built-in suite uses `numbers_random`, `urns`, `diverse_valid`
    /// and `input_output`, imported suites may use METHOD.md's categories.
    pub category: String,
    pub split: Split,
    pub kind: TaskKind,
    /// Alternative descriptions; a sequence uses one of them, chosen by seed.
    /// Parametrised tasks write their parameters as `{name}` placeholders.
    pub descriptions: Vec<String>,
}

/// One training or evaluation row: many samples from one task.
///
/// Invariant (checked by the importers): at most one description, first; then
/// either outputs only, or input/output pairs; at least one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    pub task: String,
    pub messages: Vec<Message>,
    /// Fields of the source row that are not part of the format (`id`, `seed`...),
    /// kept as they were.
    #[serde(flatten, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl Sequence {
    /// Number of outputs, i.e. examples, in the sequence.
    pub fn examples(&self) -> usize {
        self.messages
            .iter()
            .filter(|m| m.role == Role::Output)
            .count()
    }
}

/// A prompt with a target distribution over options (METHOD.md §4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionItem {
    pub task: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub input: String,
    pub options: Vec<String>,
    pub probs: Vec<f64>,
    /// Options have a natural order (Likert items, counts): enables Wasserstein-1.
    #[serde(default)]
    pub ordinal: bool,
    #[serde(flatten, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl DistributionItem {
    /// What the task calls its output (e.g. `Response (color)`, `Answer
    /// (Likert 1-7)`): the `output_name` field of the item's row, if any. The
    /// colon format labels the scored output with it, as the reference does.
    pub fn output_name(&self) -> Option<&str> {
        self.metadata
            .get("output_name")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// A diverse-valid task: a description, three example outputs and the rule that
/// decides whether a sampled output is valid (METHOD.md §4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidityTask {
    pub task: String,
    pub description: String,
    pub examples: Vec<String>,
    pub rule: ValidityRule,
    /// Tokens a sample may run to (the reference sets one per task: 4 for
    /// small numbers, 40 for e-mail addresses); `None`: the evaluation's
    /// `max_new_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
}
