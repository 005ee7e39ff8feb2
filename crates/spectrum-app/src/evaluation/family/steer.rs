//! In-context steerability: every output of a sequence scored given the
//! earlier ones (METHOD.md §4.1).

use anyhow::Result;
use serde::Serialize;
use spectrum_eval::metrics::{MeanSe, mean_se};
use spectrum_eval::steer::{EvalSequence, SteerOutput, SteerSummary};
use spectrum_eval::{EvalError, Evaluator, Family, Progress};
use spectrum_store::Store;

use super::EvalFamily;
use crate::evaluation::TaskRow;

pub(crate) struct Steer;

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

impl EvalFamily for Steer {
    const FAMILY: Family = Family::Steer;
    type Summary = SteerSummary;
    type Row = SteerOutput;
    type Input = Vec<EvalSequence>;
    type Report = SteerReport;

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

    fn aggregate(tasks: Vec<SteerSummary>, outputs: Vec<TaskRow<SteerOutput>>) -> SteerReport {
        SteerReport {
            loss: mean_se(&tasks.iter().map(|s| s.loss.mean).collect::<Vec<_>>()),
            acc: mean_se(&tasks.iter().map(|s| s.acc.mean).collect::<Vec<_>>()),
            curve: crate::figures::steer_mean_curve(&tasks),
            tasks,
            outputs,
        }
    }
}
