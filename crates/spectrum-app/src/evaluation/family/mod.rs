//! The evaluation families behind one trait, one module each: what a family
//! reads from the store for a task, how it scores it, how its stored results
//! read back, and what they come to over a run's tasks. Adding a family is one
//! module here and one arm in [`run_task`] and in [`super::results`].

mod dist;
mod steer;
mod valid;

pub(crate) use dist::Dist;
pub use dist::DistReport;
pub(crate) use steer::Steer;
pub use steer::SteerReport;
pub(crate) use valid::Valid;
pub use valid::{ValidOverall, ValidReport};

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
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
        summary: &Value,
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
