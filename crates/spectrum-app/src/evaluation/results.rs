//! The read model of an evaluation run: every family's summaries and rows
//! as stored, aggregated over tasks (METHOD.md §4) by the family's own
//! [`family::EvalFamily::aggregate`].

use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use spectrum_eval::{Family, Profile, Settings};
use spectrum_lm::PromptFormat;
use spectrum_store::{EvalOutcome, RunDataset, RunStatus};

use super::family;
pub use super::family::{DistReport, SteerReport, ValidOverall, ValidReport};
use super::{StoredEval, not_an_evaluation};
use crate::runs::find_run;
use crate::{RunRef, Studio};

/// A task a family could not evaluate, and why.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct Skipped {
    pub family: Family,
    pub task: String,
    pub reason: String,
}

/// A per-unit row of an evaluation (a scored output, an item, a sample) and
/// the task it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct TaskRow<T> {
    pub task: String,
    #[serde(flatten)]
    #[ts(flatten)]
    pub row: T,
}

/// The rows of `task`.
pub fn rows_of<'a, T>(rows: &'a [TaskRow<T>], task: &'a str) -> impl Iterator<Item = &'a T> + 'a {
    rows.iter().filter(move |r| r.task == task).map(|r| &r.row)
}

/// An evaluation run and everything it produced.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct EvalReport {
    pub run: i64,
    pub name: String,
    pub status: RunStatus,
    pub model: String,
    /// The model folder the run evaluated.
    pub model_path: PathBuf,
    /// The model's content hash and the datasets the run read, recorded when
    /// it started (absent for runs from before provenance was kept).
    pub model_hash: Option<String>,
    pub datasets: Vec<RunDataset>,
    pub template: PromptFormat,
    pub profile: Profile,
    pub settings: Settings,
    pub steer: Option<SteerReport>,
    pub dist: Option<DistReport>,
    pub valid: Option<ValidReport>,
    pub skipped: Vec<Skipped>,
    /// Planned (family, task) pairs not finished (a cancelled or failed run).
    pub unfinished: usize,
}

impl Studio {
    /// An evaluation run and all its results, as stored.
    pub fn eval_report(&self, run: &RunRef) -> Result<EvalReport> {
        let store = self.store()?;
        let record = find_run(&store, run)?;
        not_an_evaluation(&record)?;
        let stored = StoredEval::of(&record)?;
        let finished = store.eval_tasks(record.id)?;
        let mut skipped = Vec::new();
        let mut steer = family::Collected::<family::Steer>::default();
        let mut dist = family::Collected::<family::Dist>::default();
        let mut valid = family::Collected::<family::Valid>::default();
        for t in &finished {
            let summary = match &t.outcome {
                EvalOutcome::Done { summary } => summary,
                EvalOutcome::Skipped { reason } => {
                    skipped.push(Skipped {
                        family: t.family,
                        task: t.task.clone(),
                        reason: reason.clone(),
                    });
                    continue;
                }
            };
            match t.family {
                Family::Steer => steer.add(&store, record.id, t, summary)?,
                Family::Dist => dist.add(&store, record.id, t, summary)?,
                Family::Valid => valid.add(&store, record.id, t, summary)?,
            }
        }
        Ok(EvalReport {
            run: record.id,
            name: record.name.clone(),
            status: record.status,
            model: stored.model.clone(),
            model_path: stored.model_path.clone(),
            model_hash: record.model_hash.clone(),
            datasets: record.datasets.clone(),
            template: stored.template,
            profile: stored.profile,
            unfinished: stored.plan.len().saturating_sub(finished.len()),
            settings: stored.settings,
            steer: steer.report(),
            dist: dist.report(),
            valid: valid.report(),
            skipped,
        })
    }
}
