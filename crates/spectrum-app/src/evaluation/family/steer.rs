//! In-context steerability: every output of a sequence scored given the
//! earlier ones (METHOD.md §4.1).

use anyhow::{Context, Result};
use serde::Serialize;
use spectrum_eval::metrics::{MeanSe, mean_se};
use spectrum_eval::steer::{CurvePoint, EvalSequence, SteerOutput, SteerSummary};
use spectrum_eval::{EvalError, Evaluator, Family, Progress};
use spectrum_store::Store;
use spectrum_store::records::{self, RowRecord, TaskRecord};

use spectrum_report::{Block, Chart, Figure, Panel, Section, Series};

use super::present::{ChartMetric, f, mse, names, task_table, tasks};
use super::{EvalFamily, mean_se as read_stat, stat, tasks_in};
use crate::EvalReport;
use crate::Studio;
use crate::evaluation::PromptView;
use crate::evaluation::TaskRow;
use crate::evaluation::prompt::{Chosen, past_the_end};

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

    const NAME: &'static str = "steerability";
    const HEADLINE: &'static [(&'static str, f32)] = &[("steer loss", 0.16), ("steer acc", 0.09)];

    fn of(report: &EvalReport) -> Option<&SteerReport> {
        report.steer.as_ref()
    }

    fn tasks(report: &SteerReport) -> Vec<String> {
        report.tasks.iter().map(|t| t.task.clone()).collect()
    }

    fn headline(report: Option<&SteerReport>) -> Vec<String> {
        vec![
            report.map_or("-".into(), |s| mse(&s.loss, 3)),
            report.map_or("-".into(), |s| f(s.acc.mean, 3)),
        ]
    }

    /// Steerability curves and the per-task table.
    fn section(evals: &[EvalReport]) -> Result<Section> {
        let names = names(evals);
        let tasks = tasks(evals, tasks_in::<Steer>);
        let mut blocks = Vec::new();
        for chunk in tasks.chunks(9) {
            blocks.push(Block::Figure {
                svg: steer_figure(evals, chunk, ChartMetric::Loss).svg()?,
                caption: "Loss of each output given the earlier outputs of its sequence; bands: ± one standard error over sequences. Lower is better; a falling curve means the model follows its context.".into(),
            });
        }
        for chunk in tasks.chunks(9) {
            blocks.push(Block::Figure {
                svg: steer_figure(evals, chunk, ChartMetric::Acc).svg()?,
                caption: "Accuracy of each output (every token the arg-max) given the earlier outputs; bands: ± one standard error. Higher is better.".into(),
            });
        }
        let rows = tasks
            .iter()
            .flat_map(|task| {
                evals.iter().zip(&names).filter_map(move |(r, name)| {
                    let t = r.steer.as_ref()?.tasks.iter().find(|t| &t.task == task)?;
                    Some(vec![
                        task.clone(),
                        name.clone(),
                        t.k.to_string(),
                        t.sequences.to_string(),
                        mse(&t.loss, 3),
                        mse(&t.acc, 3),
                        t.ece.map_or("-".into(), |e| f(e, 3)),
                    ])
                })
            })
            .collect();
        blocks.extend(task_table(
            "Per task",
            &["task", "run", "k", "seqs", "loss", "acc", "ECE"],
            rows,
            vec![0.19, 0.33, 0.05, 0.06, 0.15, 0.14, 0.08],
        ));
        Ok(Section {
            title: "In-context steerability".into(),
            blocks,
        })
    }

    /// The prompt of one of the sequences the evaluation scores, its loss tokens marked.
    fn prompt(studio: &Studio, chosen: &Chosen, view: &mut PromptView) -> Result<()> {
        let (request, task, tok, store) = (chosen.request, chosen.task, chosen.tok, chosen.store);
        let i = request.index;
        let sequences: Vec<EvalSequence> = store
            .task_sequences_with_ids(task.id)?
            .into_iter()
            .map(|(id, messages)| EvalSequence { id, messages })
            .collect();
        let k_tok = studio.k_tokenizer(&request.settings, tok)?;
        let (k, chosen) = spectrum_eval::steer::prepare(
            tok,
            &k_tok.tokenizer,
            request.format,
            &task.name,
            &sequences,
            &request.settings,
        )?;
        let i = match &request.pick {
            Some(id) => chosen.iter().position(|(c, _)| c == id).with_context(|| {
                format!(
                    "{}: sequence {id} is not among those the evaluation scores",
                    task.name
                )
            })?,
            None => i,
        };
        let Some((id, r)) = chosen.get(i) else {
            return Err(past_the_end(
                &task.name,
                "sequences the evaluation scores",
                chosen.len(),
                i,
            ));
        };
        view.ids = r.ids.clone();
        view.loss = r.loss.clone();
        view.note = format!(
            "sequence {id} ({} of {}), examples 0..={k}: k measured with {} within {} tokens",
            i + 1,
            chosen.len(),
            k_tok.name,
            request.settings.budget
        );
        Ok(())
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

/// Steerability curves: the mean over tasks (the app's "all tasks" chart,
/// from the same series) then one panel per task, runs overlaid.
pub(crate) fn steer_figure(evals: &[EvalReport], tasks: &[String], metric: ChartMetric) -> Figure {
    let series = |curve: &[spectrum_eval::steer::CurvePoint]| -> Vec<(f64, f64, f64)> {
        curve
            .iter()
            .map(|p| {
                let m = match metric {
                    ChartMetric::Acc => &p.acc,
                    ChartMetric::Loss => &p.loss,
                };
                (p.index as f64, m.mean, m.se.unwrap_or(0.0))
            })
            .collect()
    };
    let panel =
        |title: String,
         curve: &dyn Fn(&EvalReport) -> Option<&[spectrum_eval::steer::CurvePoint]>| {
            Panel {
                title,
                series: evals
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| {
                        Some(Series {
                            run: i,
                            points: series(curve(r)?),
                        })
                    })
                    .collect(),
            }
        };
    let mean = panel(
        "mean over tasks (outputs every task reaches)".into(),
        &|r| r.steer.as_ref().map(|s| s.curve.as_slice()),
    );
    let panels = std::iter::once(mean)
        .chain(tasks.iter().map(|task| {
            panel(task.clone(), &|r| {
                let t = r.steer.as_ref()?.tasks.iter().find(|t| &t.task == task)?;
                Some(t.curve.as_slice())
            })
        }))
        .collect::<Vec<_>>();
    let rows = panels.len().div_ceil(3).max(1) as u32;
    Figure {
        title: format!("Steerability: {metric} of output j given outputs 0..j-1 (mean ± s.e.)"),
        runs: names(evals),
        chart: Chart::Steer {
            metric: match metric {
                ChartMetric::Acc => "accuracy".into(),
                ChartMetric::Loss => "loss (nats)".into(),
            },
            panels,
        },
        width: 640,
        height: 70 + 200 * rows,
    }
}
