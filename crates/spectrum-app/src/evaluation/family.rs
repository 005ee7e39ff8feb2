//! The three evaluation families behind one trait: what each reads from the
//! store for a task, how it scores it, and how its stored results read back.
//! Adding a family is one implementation here and one arm in [`run_task`] /
//! [`super::results`].

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use spectrum_eval::dist::{DistItem, DistSummary};
use spectrum_eval::steer::{EvalSequence, SteerOutput, SteerSummary};
use spectrum_eval::valid::{Sample, ValidSummary};
use spectrum_eval::{EvalError, Evaluator, Family, Progress};
use spectrum_store::{EvalOutcome, EvalTaskRecord, Store};

use super::TaskRow;
use crate::Cancelled;

/// One evaluation family.
pub(crate) trait EvalFamily {
    const FAMILY: Family;
    /// What the family keeps per task (means, curves, cells).
    type Summary: Serialize + DeserializeOwned;
    /// What it keeps per unit (a scored output, an item, a sample).
    type Row: Serialize + DeserializeOwned;
    /// What it reads from the store to score a task.
    type Input;

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
}

pub(crate) struct Steer;
pub(crate) struct Dist;
pub(crate) struct Valid;

impl EvalFamily for Steer {
    const FAMILY: Family = Family::Steer;
    type Summary = SteerSummary;
    type Row = SteerOutput;
    type Input = Vec<EvalSequence>;

    fn input(store: &Store, task_id: i64, _: &mut dyn FnMut(&str)) -> Result<Option<Self::Input>> {
        let sequences = store
            .task_sequences_with_ids(task_id)?
            .into_iter()
            .map(|(id, messages)| EvalSequence { id, messages })
            .collect();
        Ok(Some(sequences))
    }

    fn evaluate(
        ev: &mut Evaluator,
        task: &str,
        input: &Self::Input,
        progress: Progress,
    ) -> Result<(Self::Summary, Vec<Self::Row>), EvalError> {
        spectrum_eval::steer::evaluate(ev, task, input, progress).map(|r| (r.summary, r.outputs))
    }
}

impl EvalFamily for Dist {
    const FAMILY: Family = Family::Dist;
    type Summary = DistSummary;
    type Row = DistItem;
    type Input = Vec<spectrum_suite::DistributionItem>;

    fn input(store: &Store, task_id: i64, _: &mut dyn FnMut(&str)) -> Result<Option<Self::Input>> {
        Ok(Some(store.task_distribution_items(task_id)?))
    }

    fn evaluate(
        ev: &mut Evaluator,
        task: &str,
        input: &Self::Input,
        progress: Progress,
    ) -> Result<(Self::Summary, Vec<Self::Row>), EvalError> {
        spectrum_eval::dist::evaluate(ev, task, input, progress).map(|r| (r.summary, r.items))
    }
}

impl EvalFamily for Valid {
    const FAMILY: Family = Family::Valid;
    type Summary = ValidSummary;
    type Row = Sample;
    type Input = spectrum_suite::ValidityTask;

    fn input(
        store: &Store,
        task_id: i64,
        note: &mut dyn FnMut(&str),
    ) -> Result<Option<Self::Input>> {
        let mut defs = store.task_validity(task_id)?;
        if defs.len() > 1 {
            note(&format!(
                "{}: {} diverse-valid definitions, the first is used",
                defs[0].task,
                defs.len()
            ));
        }
        Ok((!defs.is_empty()).then(|| defs.swap_remove(0)))
    }

    fn evaluate(
        ev: &mut Evaluator,
        _task: &str,
        input: &Self::Input,
        progress: Progress,
    ) -> Result<(Self::Summary, Vec<Self::Row>), EvalError> {
        spectrum_eval::valid::evaluate(ev, input, progress).map(|r| (r.summary, r.samples))
    }
}

/// What one task of a run came to, ready for the store: `None` when the task
/// has nothing for the family.
pub(crate) type Recorded = Option<(EvalOutcome, Vec<Value>)>;

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
            let summary = serde_json::to_value(summary)?;
            let rows = rows
                .iter()
                .map(serde_json::to_value)
                .collect::<serde_json::Result<_>>()?;
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
    summary: &Value,
) -> Result<Read<F>> {
    let corrupt = || {
        format!(
            "run {run_id}: the {} results of {} are not readable",
            F::FAMILY,
            task.task
        )
    };
    let parsed = serde_json::from_value(summary.clone()).with_context(corrupt)?;
    let rows = store
        .eval_rows(run_id, F::FAMILY, &task.task)?
        .into_iter()
        .map(|r| {
            Ok(TaskRow {
                task: task.task.clone(),
                row: serde_json::from_value(r)?,
            })
        })
        .collect::<serde_json::Result<_>>()
        .with_context(corrupt)?;
    Ok((parsed, rows))
}
