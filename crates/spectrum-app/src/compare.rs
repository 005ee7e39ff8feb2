//! `spectrum compare`: evaluation runs lined up per family and task against the
//! first (the baseline), with bootstrap intervals for the differences.

use crate::RunRef;
use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;
use spectrum_core::Problem;
use spectrum_eval::Family;
use spectrum_eval::dist::DistItem;
use spectrum_eval::stats::{self, Interval, Verdict};
use spectrum_eval::steer::{SteerOutput, per_sequence_means};
use spectrum_eval::valid::Setting;

use crate::evaluation::rows_of;
use crate::{EvalReport, Studio};

/// One metric of one task: baseline and candidate values and the interval of
/// their difference (candidate - baseline).
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct CompareRow {
    pub family: Family,
    pub task: String,
    pub metric: String,
    pub lower_is_better: bool,
    pub baseline: f64,
    pub candidate: f64,
    pub interval: Interval,
    pub verdict: Verdict,
    /// Whether this row counts in the win/tie/loss tally (one headline metric
    /// per family and task: steer loss, dist JS, valid yield at temperature 1).
    pub headline: bool,
}

#[derive(Debug, Clone, Copy, Default, Serialize, ts_rs::TS)]
pub struct Tally {
    pub win: usize,
    pub tie: usize,
    pub loss: usize,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ComparedRun {
    pub run: i64,
    pub name: String,
    pub model: String,
    pub template: spectrum_lm::PromptFormat,
}

impl ComparedRun {
    fn of(r: &EvalReport) -> ComparedRun {
        ComparedRun {
            run: r.run,
            name: r.name.clone(),
            model: r.model.clone(),
            template: r.template,
        }
    }
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct CandidateComparison {
    pub run: ComparedRun,
    pub rows: Vec<CompareRow>,
    /// Per family, over the headline rows.
    pub tally: BTreeMap<Family, Tally>,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct Comparison {
    pub baseline: ComparedRun,
    pub candidates: Vec<CandidateComparison>,
    /// Paired units (sequences, items) that only one of two runs had.
    pub unpaired_units: usize,
    /// Tasks x runs (the baseline first) of each family's headline metric,
    /// for the breakdown heatmaps the app and the PDF draw alike.
    pub heatmaps: Vec<crate::figures::Heatmap>,
}

/// Pairs units by key: (baseline value, candidate value) per key both have.
fn pair(a: &[(String, f64)], b: &[(String, f64)], missing: &mut usize) -> Vec<(f64, f64)> {
    let index: BTreeMap<&str, f64> = b.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let paired: Vec<(f64, f64)> = a
        .iter()
        .filter_map(|(k, v)| index.get(k.as_str()).map(|w| (*v, *w)))
        .collect();
    *missing += a.len() + b.len() - 2 * paired.len();
    paired
}

fn paired_row(
    family: Family,
    task: &str,
    metric: &str,
    lower_is_better: bool,
    pairs: &[(f64, f64)],
    headline: bool,
) -> Option<CompareRow> {
    let diffs: Vec<f64> = pairs.iter().map(|(a, b)| b - a).collect();
    let interval = stats::paired(&diffs, 0)?;
    let n = pairs.len() as f64;
    Some(CompareRow {
        family,
        task: task.to_string(),
        metric: metric.to_string(),
        lower_is_better,
        baseline: pairs.iter().map(|p| p.0).sum::<f64>() / n,
        candidate: pairs.iter().map(|p| p.1).sum::<f64>() / n,
        verdict: interval.verdict(lower_is_better),
        interval,
        headline,
    })
}

fn steer_units(report: &EvalReport, task: &str) -> Vec<(String, f64, f64)> {
    let Some(steer) = &report.steer else {
        return Vec::new();
    };
    let outputs: Vec<SteerOutput> = rows_of(&steer.outputs, task).cloned().collect();
    per_sequence_means(&outputs)
}

/// One per-item figure of a distribution item.
type DistMetric = fn(&DistItem) -> f64;

fn dist_units(report: &EvalReport, task: &str, metric: fn(&DistItem) -> f64) -> Vec<(String, f64)> {
    let Some(dist) = &report.dist else {
        return Vec::new();
    };
    rows_of(&dist.items, task)
        .map(|r| (r.id.clone(), metric(r)))
        .collect()
}

/// (text, valid) of a task's samples in one setting at one temperature.
fn samples(
    report: &EvalReport,
    task: &str,
    setting: Setting,
    temperature: f64,
) -> Vec<(String, bool)> {
    let Some(valid) = &report.valid else {
        return Vec::new();
    };
    rows_of(&valid.samples, task)
        .filter(|r| r.setting == setting && r.temperature == temperature)
        .map(|r| (r.text.clone(), r.valid))
        .collect()
}

fn task_names<T>(tasks: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
    tasks.iter().map(|t| name(t).to_string()).collect()
}

fn compare_pair(base: &EvalReport, cand: &EvalReport, missing: &mut usize) -> Vec<CompareRow> {
    let mut rows = Vec::new();
    if let (Some(a), Some(_)) = (&base.steer, &cand.steer) {
        for task in task_names(&a.tasks, |t| &t.task) {
            let (ua, ub) = (steer_units(base, &task), steer_units(cand, &task));
            let loss = pair(
                &ua.iter().map(|u| (u.0.clone(), u.1)).collect::<Vec<_>>(),
                &ub.iter().map(|u| (u.0.clone(), u.1)).collect::<Vec<_>>(),
                missing,
            );
            let acc = pair(
                &ua.iter().map(|u| (u.0.clone(), u.2)).collect::<Vec<_>>(),
                &ub.iter().map(|u| (u.0.clone(), u.2)).collect::<Vec<_>>(),
                &mut 0,
            );
            rows.extend(paired_row(Family::Steer, &task, "loss", true, &loss, true));
            rows.extend(paired_row(Family::Steer, &task, "acc", false, &acc, false));
        }
    }
    if let (Some(a), Some(_)) = (&base.dist, &cand.dist) {
        for task in task_names(&a.tasks, |t| &t.task) {
            let metrics: [(&str, DistMetric, bool, bool); 3] = [
                ("js", |i| i.alignment.js, true, true),
                ("tv", |i| i.alignment.tv, true, false),
                ("coverage", |i| i.alignment.coverage, false, false),
            ];
            for (metric, value, lower, headline) in metrics {
                let m = if metric == "js" {
                    &mut *missing
                } else {
                    &mut 0
                };
                let pairs = pair(
                    &dist_units(base, &task, value),
                    &dist_units(cand, &task, value),
                    m,
                );
                rows.extend(paired_row(
                    Family::Dist,
                    &task,
                    metric,
                    lower,
                    &pairs,
                    headline,
                ));
            }
        }
    }
    if let (Some(a), Some(_)) = (&base.valid, &cand.valid) {
        for t in &a.tasks {
            let temperature = if t.cells.iter().any(|c| c.temperature == 1.0) {
                1.0
            } else {
                match t.cells.first() {
                    Some(c) => c.temperature,
                    None => continue,
                }
            };
            for &setting in spectrum_eval::valid::Setting::ALL {
                let (sa, sb) = (
                    samples(base, &t.task, setting, temperature),
                    samples(cand, &t.task, setting, temperature),
                );
                let yield_of = |xs: &[&(String, bool)]| {
                    xs.iter()
                        .filter(|s| s.1)
                        .map(|s| s.0.as_str())
                        .collect::<std::collections::HashSet<_>>()
                        .len() as f64
                };
                let valid_of = |xs: &[&(String, bool)]| {
                    xs.iter().filter(|s| s.1).count() as f64 / xs.len() as f64
                };
                let task = format!("{} [{}]", t.task, setting.as_str());
                for (metric, stat, headline) in [
                    (
                        "yield",
                        &yield_of as &dyn Fn(&[&(String, bool)]) -> f64,
                        spectrum_eval::valid::Setting::is_headline(setting, temperature),
                    ),
                    ("percent_valid", &valid_of, false),
                ] {
                    if let Some(interval) = stats::unpaired(&sa, &sb, stat, 0) {
                        let all = |xs: &[(String, bool)]| stat(&xs.iter().collect::<Vec<_>>());
                        rows.push(CompareRow {
                            family: Family::Valid,
                            task: task.clone(),
                            metric: format!("{metric}@T={temperature}"),
                            lower_is_better: false,
                            baseline: all(&sa),
                            candidate: all(&sb),
                            verdict: interval.verdict(false),
                            interval,
                            headline,
                        });
                    }
                }
            }
        }
    }
    rows
}

impl Studio {
    /// Lines up evaluation runs against the first one.
    pub fn compare(&self, runs: &[RunRef]) -> Result<Comparison> {
        if runs.len() < 2 {
            return Err(Problem::setting(
                "compare needs at least two evaluation runs",
                "runs",
                "a baseline and one or more evaluation runs to compare with it",
            )
            .into());
        }
        let reports = runs
            .iter()
            .map(|r| self.eval_report(r))
            .collect::<Result<Vec<_>>>()?;
        let base = &reports[0];
        let mut unpaired_units = 0;
        let candidates = reports[1..]
            .iter()
            .map(|cand| {
                let rows = compare_pair(base, cand, &mut unpaired_units);
                let mut tally: BTreeMap<Family, Tally> = BTreeMap::new();
                for r in rows.iter().filter(|r| r.headline) {
                    let t = tally.entry(r.family).or_default();
                    match r.verdict {
                        Verdict::Win => t.win += 1,
                        Verdict::Tie => t.tie += 1,
                        Verdict::Loss => t.loss += 1,
                    }
                }
                CandidateComparison {
                    run: ComparedRun::of(cand),
                    rows,
                    tally,
                }
            })
            .collect();
        let heatmaps = Family::ALL
            .iter()
            .map(|f| crate::figures::heatmap(&reports, *f))
            .filter(|h| !h.tasks.is_empty())
            .collect();
        Ok(Comparison {
            baseline: ComparedRun::of(base),
            candidates,
            unpaired_units,
            heatmaps,
        })
    }
}
