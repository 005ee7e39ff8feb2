//! The evaluation families behind one trait, one module each: what a family
//! reads from the store for a task, how it scores it, how its results become
//! the store's records and back (field by field: the stored schema is
//! `spectrum_store::records`, not the library's types), and what they come to
//! over a run's tasks, and its part of the PDF report (summary columns,
//! section, figures). Adding a family is one module here and one arm in
//! [`run_task`], in [`super::results`] and in the report's list of sections.

mod dist;
pub(crate) mod present;
mod steer;
mod valid;

pub use dist::DistReport;
pub(crate) use dist::{Dist, items_figure, js_figure};
pub use steer::SteerReport;
pub(crate) use steer::{Steer, steer_figure};
pub(crate) use valid::{Valid, validity_figure};
pub use valid::{ValidOverall, ValidReport};

use anyhow::{Context, Result};
use spectrum_eval::metrics::MeanSe;
use spectrum_eval::{EvalError, Evaluator, Family, Progress};
use spectrum_store::records::{RowRecord, Stat, TaskRecord};
use spectrum_store::{EvalOutcome, EvalTaskRecord, Store};

use spectrum_report::Section;

use super::prompt::Chosen;
use super::{EvalReport, PromptView, TaskRow};
use crate::{Cancelled, Studio};

/// One evaluation family.
pub(crate) trait EvalFamily {
    const FAMILY: Family;
    /// What the family keeps per task (means, curves, cells).
    type Summary;
    /// What it keeps per unit (a scored output, an item, a sample).
    type Row;
    /// What it reads from the store to score a task.
    type Input;
    /// A run's results of the family over all its tasks (the read model).
    type Report;

    /// The task's input, `None` when the task has nothing for this family.
    fn input(
        store: &Store,
        task_id: i64,
        note: &mut dyn FnMut(&str),
    ) -> Result<Option<Self::Input>>;

    fn evaluate(
        ev: &mut Evaluator,
        task: &str,
        input: &Self::Input,
        progress: Progress,
    ) -> Result<(Self::Summary, Vec<Self::Row>), EvalError>;

    /// What the family's results over a run's tasks come to (means over
    /// tasks, the figures' series), with every task and row.
    fn aggregate(tasks: Vec<Self::Summary>, rows: Vec<TaskRow<Self::Row>>) -> Self::Report;

    /// What the report's progress calls the family's section.
    const NAME: &'static str;
    /// The family's columns of the report's summary table: header and width.
    const HEADLINE: &'static [(&'static str, f32)];

    /// The family's results in an evaluation report (`None`: it has none).
    fn of(report: &EvalReport) -> Option<&Self::Report>;
    /// The tasks of the family's results.
    fn tasks(report: &Self::Report) -> Vec<String>;
    /// A run's cells under [`Self::HEADLINE`] (`-` where it has no results).
    fn headline(report: Option<&Self::Report>) -> Vec<String>;
    /// The family's section of the PDF report: its figures and per-task table.
    fn section(evals: &[EvalReport]) -> Result<Section>;

    /// The prompt `chosen` names, rendered by the family's evaluation code
    /// (`spectrum prompt`, the Results view): fills `view`.
    fn prompt(studio: &Studio, chosen: &Chosen, view: &mut PromptView) -> Result<()>;

    /// The store's record of a task's summary, and of a row.
    fn summary_record(summary: &Self::Summary) -> TaskRecord;
    fn row_record(row: &Self::Row) -> RowRecord;
    /// A stored record read back; `None` when it is another family's.
    fn summary_of(record: &TaskRecord) -> Option<Self::Summary>;
    fn row_of(record: RowRecord) -> Option<Self::Row>;
}

/// The tasks `F` has results for in a run.
pub(crate) fn tasks_in<F: EvalFamily>(report: &EvalReport) -> Vec<String> {
    F::of(report).map_or(Vec::new(), F::tasks)
}

/// A mean with its standard error, as stored and back.
pub(crate) fn stat(m: &MeanSe) -> Stat {
    Stat {
        mean: m.mean,
        se: m.se,
        n: m.n,
    }
}

pub(crate) fn mean_se(s: &Stat) -> MeanSe {
    MeanSe {
        mean: s.mean,
        se: s.se,
        n: s.n,
    }
}

/// What one task of a run came to, ready for the store: `None` when the task
/// has nothing for the family.
pub(crate) type Recorded = Option<(EvalOutcome, Vec<RowRecord>)>;

/// Scores one task with `family`; a task the family cannot evaluate is
/// recorded as skipped with its reason, a cancellation is an error.
pub(crate) fn run_task(
    family: Family,
    ev: &mut Evaluator,
    store: &Store,
    task_id: i64,
    task: &str,
    progress: Progress,
    note: &mut dyn FnMut(&str),
) -> Result<Recorded> {
    match family {
        Family::Steer => run::<Steer>(ev, store, task_id, task, progress, note),
        Family::Dist => run::<Dist>(ev, store, task_id, task, progress, note),
        Family::Valid => run::<Valid>(ev, store, task_id, task, progress, note),
    }
}

fn run<F: EvalFamily>(
    ev: &mut Evaluator,
    store: &Store,
    task_id: i64,
    task: &str,
    progress: Progress,
    note: &mut dyn FnMut(&str),
) -> Result<Recorded> {
    let Some(input) = F::input(store, task_id, note)? else {
        return Ok(None);
    };
    match F::evaluate(ev, task, &input, progress) {
        Ok((summary, rows)) => {
            let summary = Box::new(F::summary_record(&summary));
            let rows = rows.iter().map(F::row_record).collect();
            Ok(Some((EvalOutcome::Done { summary }, rows)))
        }
        Err(EvalError::Cancelled) => Err(Cancelled("the evaluation").into()),
        Err(EvalError::Task { task, reason }) => {
            note(&format!("{} {task}: skipped: {reason}", F::FAMILY));
            Ok(Some((EvalOutcome::Skipped { reason }, Vec::new())))
        }
        Err(e) => Err(e).with_context(|| format!("{} {task}", F::FAMILY)),
    }
}

/// A finished task's summary and its rows.
pub(crate) type Read<F> = (
    <F as EvalFamily>::Summary,
    Vec<TaskRow<<F as EvalFamily>::Row>>,
);

/// A finished task's summary and rows, read back as `F`'s types; an error
/// names the run, family and task when they are not readable.
pub(crate) fn read<F: EvalFamily>(
    store: &Store,
    run_id: i64,
    task: &EvalTaskRecord,
    summary: &TaskRecord,
) -> Result<Read<F>> {
    let corrupt = || {
        format!(
            "run {run_id}: the {} results of {} are stored as another family's",
            F::FAMILY,
            task.task
        )
    };
    let parsed = F::summary_of(summary).with_context(corrupt)?;
    let rows = store
        .eval_rows(run_id, F::FAMILY, &task.task)?
        .into_iter()
        .map(|r| {
            Some(TaskRow {
                task: task.task.clone(),
                row: F::row_of(r)?,
            })
        })
        .collect::<Option<_>>()
        .with_context(corrupt)?;
    Ok((parsed, rows))
}

/// A run's finished tasks of family `F`, read back one by one.
pub(crate) struct Collected<F: EvalFamily> {
    tasks: Vec<F::Summary>,
    rows: Vec<TaskRow<F::Row>>,
}

impl<F: EvalFamily> Default for Collected<F> {
    fn default() -> Self {
        Collected {
            tasks: Vec::new(),
            rows: Vec::new(),
        }
    }
}

impl<F: EvalFamily> Collected<F> {
    pub(crate) fn add(
        &mut self,
        store: &Store,
        run_id: i64,
        task: &EvalTaskRecord,
        summary: &TaskRecord,
    ) -> Result<()> {
        let (summary, rows) = read::<F>(store, run_id, task, summary)?;
        self.tasks.push(summary);
        self.rows.extend(rows);
        Ok(())
    }

    /// The family's report, `None` when no task of it finished.
    pub(crate) fn report(self) -> Option<F::Report> {
        (!self.tasks.is_empty()).then(|| F::aggregate(self.tasks, self.rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(mean: f64) -> serde_json::Value {
        json!({"mean": mean, "se": mean / 10.0, "n": 3})
    }

    /// Library value -> store record -> library value is the identity; the
    /// records, for the cross-family check.
    fn round_trips<F: EvalFamily>(
        summary: serde_json::Value,
        row: serde_json::Value,
    ) -> (TaskRecord, RowRecord)
    where
        F::Summary: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        F::Row: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let summary: F::Summary = serde_json::from_value(summary).expect("a summary");
        let row: F::Row = serde_json::from_value(row).expect("a row");
        let record = F::summary_record(&summary);
        assert_eq!(record.family(), F::FAMILY);
        assert_eq!(F::summary_of(&record), Some(summary));
        let stored = F::row_record(&row);
        assert_eq!(stored.family(), F::FAMILY);
        assert_eq!(F::row_of(stored.clone()), Some(row));
        (record, stored)
    }

    /// Whether `F` reads the records (`None` for another family's).
    fn reads<F: EvalFamily>((task, row): &(TaskRecord, RowRecord)) -> (bool, bool) {
        (
            F::summary_of(task).is_some(),
            F::row_of(row.clone()).is_some(),
        )
    }

    fn steer_summary() -> spectrum_eval::steer::SteerSummary {
        serde_json::from_value(json!({
            "task": "urn", "k": 4, "sequences": 9, "loss": ms(1.5), "loss_se_sequences": 0.3,
            "acc": ms(0.25), "all_acc": ms(0.125), "first_acc": ms(0.375), "loss_all": ms(2.5),
            "ece": 0.0625, "ece_geq_1": 0.03125, "k_tokenizer": "gemma",
            "curve": [{"index": 1, "loss": ms(3.5), "acc": ms(0.75)}]
        }))
        .expect("a steer summary")
    }

    #[test]
    fn every_family_converts_to_its_records_and_back() {
        let steer = round_trips::<Steer>(
            serde_json::to_value(steer_summary()).expect("json"),
            json!({"sequence": "s1", "index": 2, "example": 1, "loss": 0.5, "acc": 0.75,
                   "all_acc": 1, "first_acc": 0, "tokens": 7}),
        );
        let dist = round_trips::<Dist>(
            json!({"task": "coin", "items": 5, "js": ms(0.1), "kl": ms(0.2),
                   "reverse_kl": ms(0.3), "tv": ms(0.4), "cross_entropy": ms(0.5),
                   "mode_match": ms(0.6), "coverage": ms(0.7), "wasserstein": ms(0.8),
                   "unclean_boundaries": 2}),
            json!({"id": "i1", "options": ["a", "b"], "target": [0.25, 0.75],
                   "p": [0.1, 0.2], "coverage": 0.3, "q": [0.33, 0.67], "js": 0.01,
                   "kl": 0.02, "reverse_kl": 0.03, "tv": 0.04, "cross_entropy": 0.05,
                   "mode_match": true, "wasserstein": 0.06, "boundary_clean": false}),
        );
        let valid = round_trips::<Valid>(
            json!({"task": "weekdays", "valid_set_size": 7, "cells": [{
                "setting": "examples", "temperature": 0.7, "n": 8, "valid": 6,
                "percent_valid": 0.75, "unique_pct": 0.5, "yield": 3, "coverage_pct": 0.43,
                "usable_unique_pct": 0.375, "raw_unique_count": 5, "raw_unique_pct": 0.625,
                "possible_collisions": 15, "actual_collisions": 4, "pairwise_collision": 0.27,
                "pairwise_uniqueness": 0.73, "pairwise_collision_sem": 0.11}]}),
            json!({"setting": "description", "temperature": 1.0, "index": 3,
                   "text": "Monday", "valid": true}),
        );
        let readers = [reads::<Steer>, reads::<Dist>, reads::<Valid>];
        for (i, records) in [steer, dist, valid].iter().enumerate() {
            for (j, read) in readers.iter().enumerate() {
                assert_eq!(read(records), (i == j, i == j), "family {j} reads {i}'s");
            }
        }
    }
}
