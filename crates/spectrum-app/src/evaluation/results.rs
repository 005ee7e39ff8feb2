//! The read model of an evaluation run: every family's summaries and rows
//! as stored, aggregated over tasks (METHOD.md §4).

use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use spectrum_eval::dist::{DistItem, DistSummary};
use spectrum_eval::metrics::{MeanSe, mean_se};
use spectrum_eval::steer::{SteerOutput, SteerSummary};
use spectrum_eval::valid::{Sample, Setting, ValidSummary};
use spectrum_eval::{Family, Profile, Settings};
use spectrum_lm::PromptFormat;
use spectrum_store::{EvalOutcome, RunDataset, RunStatus};

use super::family;
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

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct SteerReport {
    /// Means over tasks (equal weight) of the task means of examples 1..k (the reference's loss_geq_1).
    pub loss: MeanSe,
    pub acc: MeanSe,
    /// The curve over tasks: at each example number every task reaches
    /// (0..=the smallest k), the mean of the tasks' means ± s.e. over tasks
    /// ([`crate::figures::steer_mean_curve`]).
    pub curve: Vec<spectrum_eval::steer::CurvePoint>,
    pub tasks: Vec<SteerSummary>,
    /// Every scored output, with its task.
    pub outputs: Vec<TaskRow<SteerOutput>>,
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

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct DistReport {
    /// Means over tasks (equal weight).
    pub js: MeanSe,
    pub tv: MeanSe,
    pub coverage: MeanSe,
    pub tasks: Vec<DistSummary>,
    /// Every item, with its task.
    pub items: Vec<TaskRow<DistItem>>,
    /// The items' JS divergences, binned ([`crate::figures::js_histogram`]).
    pub js_histogram: crate::figures::JsHistogram,
}

/// Validity and diversity of one (setting, temperature) averaged over tasks
/// with equal weight (METHOD.md §4.3).
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ValidOverall {
    pub setting: Setting,
    pub temperature: f64,
    pub tasks: usize,
    pub percent_valid: f64,
    pub unique_pct: f64,
    #[serde(rename = "yield")]
    pub yield_: f64,
    /// Over the closed-set tasks only.
    pub coverage_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ValidReport {
    pub overall: Vec<ValidOverall>,
    /// `overall` as lines through the temperature sweep, per setting
    /// ([`crate::figures::validity_frontier`]).
    pub frontier: Vec<crate::figures::FrontierLine>,
    pub tasks: Vec<ValidSummary>,
    /// Every sample with its verdict and task.
    pub samples: Vec<TaskRow<Sample>>,
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
        let (mut steer, mut dist, mut valid) = (Vec::new(), Vec::new(), Vec::new());
        let (mut outputs, mut items, mut samples) = (Vec::new(), Vec::new(), Vec::new());
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
                Family::Steer => {
                    let (s, rows) = family::read::<family::Steer>(&store, record.id, t, summary)?;
                    steer.push(s);
                    outputs.extend(rows);
                }
                Family::Dist => {
                    let (s, rows) = family::read::<family::Dist>(&store, record.id, t, summary)?;
                    dist.push(s);
                    items.extend(rows);
                }
                Family::Valid => {
                    let (s, rows) = family::read::<family::Valid>(&store, record.id, t, summary)?;
                    valid.push(s);
                    samples.extend(rows);
                }
            }
        }
        let over = |xs: Vec<f64>| mean_se(&xs);
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
            steer: (!steer.is_empty()).then(|| SteerReport {
                loss: over(steer.iter().map(|s| s.loss.mean).collect()),
                acc: over(steer.iter().map(|s| s.acc.mean).collect()),
                curve: crate::figures::steer_mean_curve(&steer),
                tasks: steer,
                outputs,
            }),
            dist: (!dist.is_empty()).then(|| DistReport {
                js: over(dist.iter().map(|s| s.js.mean).collect()),
                tv: over(dist.iter().map(|s| s.tv.mean).collect()),
                coverage: over(dist.iter().map(|s| s.coverage.mean).collect()),
                js_histogram: crate::figures::js_histogram(&items),
                tasks: dist,
                items,
            }),
            valid: (!valid.is_empty()).then(|| {
                let overall = valid_overall(&valid);
                ValidReport {
                    frontier: crate::figures::validity_frontier(&overall),
                    overall,
                    tasks: valid,
                    samples,
                }
            }),
            skipped,
        })
    }
}

/// METHOD.md §4.3: each (setting, temperature) averaged over tasks with equal weight.
fn valid_overall(tasks: &[ValidSummary]) -> Vec<ValidOverall> {
    let mut keys: Vec<(Setting, f64)> = Vec::new();
    for t in tasks {
        for c in &t.cells {
            if !keys
                .iter()
                .any(|k| k.0 == c.setting && k.1 == c.temperature)
            {
                keys.push((c.setting, c.temperature));
            }
        }
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    keys.into_iter()
        .map(|(setting, temperature)| {
            let cells: Vec<_> = tasks
                .iter()
                .flat_map(|t| &t.cells)
                .filter(|c| c.setting == setting && c.temperature == temperature)
                .map(|c| &c.stats)
                .collect();
            let n = cells.len() as f64;
            let closed: Vec<f64> = cells.iter().filter_map(|c| c.coverage_pct).collect();
            ValidOverall {
                setting,
                temperature,
                tasks: cells.len(),
                percent_valid: cells.iter().map(|c| c.percent_valid).sum::<f64>() / n,
                unique_pct: cells.iter().map(|c| c.unique_pct).sum::<f64>() / n,
                yield_: cells.iter().map(|c| c.yield_ as f64).sum::<f64>() / n,
                coverage_pct: (!closed.is_empty())
                    .then(|| closed.iter().sum::<f64>() / closed.len() as f64),
            }
        })
        .collect()
}
