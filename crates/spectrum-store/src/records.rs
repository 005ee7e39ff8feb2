//! What an evaluation run keeps of each task, as the store's own records:
//! a task's summary (`eval_tasks.summary`) and the rows behind it
//! (`eval_rows.record`: scored outputs, items, samples), one record type per
//! family, stored as JSON and versioned by `eval_tasks.version`.
//!
//! These types are the stored schema and nothing else. The evaluation
//! library's types (spectrum-eval's summaries and rows) and the UI's may
//! change as they like: spectrum-app converts between them and these, field
//! by field. A change to what is stored is a new record version here, with
//! the earlier versions still read (see [`RECORD_VERSION`]).
//!
//! Version 1 is the JSON every store written so far holds: a field added
//! since the first stores is optional (`#[serde(default)]`).

use serde::{Deserialize, Serialize};
use spectrum_core::closed_set;

use crate::Family;

/// The record version this build writes. Reading a record of a later version
/// (a store written by a newer Spectrum Studio) is refused with a message
/// that says so.
pub const RECORD_VERSION: u32 = 1;

/// A mean with its standard error (`None` with fewer than two values).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub se: Option<f64>,
    pub n: usize,
}

/// One task's summary, by family.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskRecord {
    Steer(SteerTask),
    Dist(DistTask),
    Valid(ValidTask),
}

/// One row behind a task's summary, by family.
#[derive(Debug, Clone, PartialEq)]
pub enum RowRecord {
    Steer(SteerRow),
    Dist(DistRow),
    Valid(ValidRow),
}

impl TaskRecord {
    pub fn family(&self) -> Family {
        match self {
            TaskRecord::Steer(_) => Family::Steer,
            TaskRecord::Dist(_) => Family::Dist,
            TaskRecord::Valid(_) => Family::Valid,
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Result<String> {
        match self {
            TaskRecord::Steer(r) => serde_json::to_string(r),
            TaskRecord::Dist(r) => serde_json::to_string(r),
            TaskRecord::Valid(r) => serde_json::to_string(r),
        }
    }

    pub(crate) fn from_json(family: Family, text: &str) -> serde_json::Result<TaskRecord> {
        Ok(match family {
            Family::Steer => TaskRecord::Steer(serde_json::from_str(text)?),
            Family::Dist => TaskRecord::Dist(serde_json::from_str(text)?),
            Family::Valid => TaskRecord::Valid(serde_json::from_str(text)?),
        })
    }
}

impl RowRecord {
    pub fn family(&self) -> Family {
        match self {
            RowRecord::Steer(_) => Family::Steer,
            RowRecord::Dist(_) => Family::Dist,
            RowRecord::Valid(_) => Family::Valid,
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Result<String> {
        match self {
            RowRecord::Steer(r) => serde_json::to_string(r),
            RowRecord::Dist(r) => serde_json::to_string(r),
            RowRecord::Valid(r) => serde_json::to_string(r),
        }
    }

    pub(crate) fn from_json(family: Family, text: &str) -> serde_json::Result<RowRecord> {
        Ok(match family {
            Family::Steer => RowRecord::Steer(serde_json::from_str(text)?),
            Family::Dist => RowRecord::Dist(serde_json::from_str(text)?),
            Family::Valid => RowRecord::Valid(serde_json::from_str(text)?),
        })
    }
}

/// A steerability task: the reference's figures over examples 1..=k and ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteerTask {
    pub task: String,
    pub k: usize,
    pub sequences: usize,
    pub loss: Stat,
    #[serde(default)]
    pub loss_se_sequences: Option<f64>,
    pub acc: Stat,
    #[serde(default)]
    pub all_acc: Option<Stat>,
    #[serde(default)]
    pub first_acc: Option<Stat>,
    #[serde(default)]
    pub loss_all: Option<Stat>,
    pub ece: Option<f64>,
    #[serde(default)]
    pub ece_geq_1: Option<f64>,
    #[serde(default)]
    pub k_tokenizer: Option<String>,
    pub curve: Vec<CurvePoint>,
}

/// One point of a task's steerability curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub index: usize,
    pub loss: Stat,
    pub acc: Stat,
}

/// One scored output of a steerability task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteerRow {
    pub sequence: String,
    pub index: usize,
    #[serde(default)]
    pub example: Option<usize>,
    pub loss: Option<f64>,
    pub acc: Option<f64>,
    #[serde(default)]
    pub all_acc: Option<u8>,
    #[serde(default)]
    pub first_acc: Option<u8>,
    pub tokens: usize,
}

/// A distributional task's means over its items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistTask {
    pub task: String,
    pub items: usize,
    pub js: Stat,
    pub kl: Stat,
    pub reverse_kl: Stat,
    pub tv: Stat,
    pub cross_entropy: Stat,
    pub mode_match: Stat,
    pub coverage: Stat,
    pub wasserstein: Option<Stat>,
    pub unclean_boundaries: usize,
}

/// One scored item of a distributional task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistRow {
    pub id: String,
    pub options: Vec<String>,
    pub target: Vec<f64>,
    pub p: Vec<f64>,
    pub coverage: f64,
    pub q: Vec<f64>,
    pub js: f64,
    pub kl: f64,
    pub reverse_kl: f64,
    pub tv: f64,
    pub cross_entropy: f64,
    pub mode_match: bool,
    pub wasserstein: Option<f64>,
    pub boundary_clean: bool,
}

closed_set! {
    /// What a validity prompt showed the model.
    Shown { Description => "description", Examples => "examples", Both => "both" }
}

/// A validity task's statistics per (prompt setting, temperature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidTask {
    pub task: String,
    pub valid_set_size: Option<u64>,
    pub cells: Vec<ValidCell>,
}

/// Validity and diversity of one (setting, temperature) cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidCell {
    pub setting: Shown,
    pub temperature: f64,
    pub n: usize,
    pub valid: usize,
    pub percent_valid: f64,
    pub unique_pct: f64,
    #[serde(rename = "yield")]
    pub yield_: usize,
    pub coverage_pct: Option<f64>,
    #[serde(default)]
    pub usable_unique_pct: f64,
    #[serde(default)]
    pub raw_unique_count: usize,
    #[serde(default)]
    pub raw_unique_pct: f64,
    #[serde(default)]
    pub possible_collisions: u64,
    #[serde(default)]
    pub actual_collisions: u64,
    #[serde(default)]
    pub pairwise_collision: f64,
    #[serde(default)]
    pub pairwise_uniqueness: f64,
    #[serde(default)]
    pub pairwise_collision_sem: f64,
}

/// One sample of a validity task and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidRow {
    pub setting: Shown,
    pub temperature: f64,
    pub index: usize,
    pub text: String,
    pub valid: bool,
}
