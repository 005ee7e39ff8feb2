//! In-context steerability: every output of a sequence scored given the
//! earlier ones (METHOD.md §4.1).

use anyhow::Result;
use serde::Serialize;
use spectrum_eval::metrics::{MeanSe, mean_se};
use spectrum_eval::steer::{CurvePoint, EvalSequence, SteerOutput, SteerSummary};
use spectrum_eval::{EvalError, Evaluator, Family, Progress};
use spectrum_store::Store;
use spectrum_store::records::{self, RowRecord, TaskRecord};

use super::{EvalFamily, mean_se as read_stat, stat};
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

    fn summary_record(s: &SteerSummary) -> TaskRecord {
        TaskRecord::Steer(records::SteerTask {
            task: s.task.clone(),
            k: s.k,
            sequences: s.sequences,
            loss: stat(&s.loss),
            loss_se_sequences: s.loss_se_sequences,
            acc: stat(&s.acc),
            all_acc: s.all_acc.as_ref().map(stat),
            first_acc: s.first_acc.as_ref().map(stat),
            loss_all: s.loss_all.as_ref().map(stat),
            ece: s.ece,
            ece_geq_1: s.ece_geq_1,
            k_tokenizer: s.k_tokenizer.clone(),
            curve: s
                .curve
                .iter()
                .map(|p| records::CurvePoint {
                    index: p.index,
                    loss: stat(&p.loss),
                    acc: stat(&p.acc),
                })
                .collect(),
        })
    }

    fn row_record(o: &SteerOutput) -> RowRecord {
        RowRecord::Steer(records::SteerRow {
            sequence: o.sequence.clone(),
            index: o.index,
            example: o.example,
            loss: o.loss,
            acc: o.acc,
            all_acc: o.all_acc,
            first_acc: o.first_acc,
            tokens: o.tokens,
        })
    }

    fn summary_of(record: &TaskRecord) -> Option<SteerSummary> {
        let TaskRecord::Steer(r) = record else {
            return None;
        };
        Some(SteerSummary {
            task: r.task.clone(),
            k: r.k,
            sequences: r.sequences,
            loss: read_stat(&r.loss),
            loss_se_sequences: r.loss_se_sequences,
            acc: read_stat(&r.acc),
            all_acc: r.all_acc.as_ref().map(read_stat),
            first_acc: r.first_acc.as_ref().map(read_stat),
            loss_all: r.loss_all.as_ref().map(read_stat),
            ece: r.ece,
            ece_geq_1: r.ece_geq_1,
            k_tokenizer: r.k_tokenizer.clone(),
            curve: r
                .curve
                .iter()
                .map(|p| CurvePoint {
                    index: p.index,
                    loss: read_stat(&p.loss),
                    acc: read_stat(&p.acc),
                })
                .collect(),
        })
    }

    fn row_of(record: RowRecord) -> Option<SteerOutput> {
        let RowRecord::Steer(r) = record else {
            return None;
        };
        Some(SteerOutput {
            sequence: r.sequence,
            index: r.index,
            example: r.example,
            loss: r.loss,
            acc: r.acc,
            all_acc: r.all_acc,
            first_acc: r.first_acc,
            tokens: r.tokens,
        })
    }
}
