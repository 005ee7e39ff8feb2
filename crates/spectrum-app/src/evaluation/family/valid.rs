//! Validity and diversity: samples judged valid and counted distinct, over
//! prompt settings and temperatures (METHOD.md §4.3).

use anyhow::{Context, Result};
use serde::Serialize;
use spectrum_eval::metrics::Yield;
use spectrum_eval::valid::{Cell, Sample, Setting, ValidSummary};
use spectrum_eval::{EvalError, Evaluator, Family, Progress};
use spectrum_store::Store;
use spectrum_store::records::{self, RowRecord, Shown, TaskRecord};

use spectrum_report::{Block, Chart, Figure, Panel, Section, Series};

use super::present::{f, names, task_table, tasks};
use super::{EvalFamily, tasks_in};
use crate::EvalReport;
use crate::Studio;
use crate::evaluation::PromptView;
use crate::evaluation::TaskRow;
use crate::evaluation::prompt::Chosen;

pub(crate) struct Valid;

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

impl EvalFamily for Valid {
    const FAMILY: Family = Family::Valid;
    type Summary = ValidSummary;
    type Row = Sample;
    type Input = spectrum_suite::ValidityTask;
    type Report = ValidReport;

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

    fn aggregate(tasks: Vec<ValidSummary>, samples: Vec<TaskRow<Sample>>) -> ValidReport {
        let overall = overall(&tasks);
        ValidReport {
            frontier: crate::figures::validity_frontier(&overall),
            overall,
            tasks,
            samples,
        }
    }

    const NAME: &'static str = "validity and diversity";
    const HEADLINE: &'static [(&'static str, f32)] = &[("valid / yield", 0.13)];

    fn of(report: &EvalReport) -> Option<&ValidReport> {
        report.valid.as_ref()
    }

    fn tasks(report: &ValidReport) -> Vec<String> {
        report.tasks.iter().map(|t| t.task.clone()).collect()
    }

    /// Fraction valid / yield with description and examples in the prompt,
    /// temperature 1.
    fn headline(report: Option<&ValidReport>) -> Vec<String> {
        let both = report.and_then(|v| {
            v.overall
                .iter()
                .find(|c| Setting::is_headline(c.setting, c.temperature))
        });
        vec![both.map_or("-".into(), |c| {
            format!("{} / {}", f(c.percent_valid, 2), f(c.yield_, 1))
        })]
    }

    /// The validity-diversity frontier and the per-task table at temperature 1.
    fn section(evals: &[EvalReport]) -> Result<Section> {
        let names = names(evals);
        let mut blocks = vec![Block::Figure {
            svg: validity_figure(evals).svg()?,
            caption: "Each point is one temperature of the sweep; up and to the right is better."
                .into(),
        }];
        let rows = tasks(evals, tasks_in::<Valid>)
            .iter()
            .flat_map(|task| {
                evals.iter().zip(&names).flat_map(move |(r, name)| {
                    r.valid
                        .as_ref()
                        .and_then(|v| v.tasks.iter().find(|t| &t.task == task))
                        .map_or(Vec::new(), |t| {
                            t.cells
                                .iter()
                                .filter(|c| c.temperature == 1.0)
                                .map(|c| {
                                    vec![
                                        task.clone(),
                                        name.clone(),
                                        c.setting.as_str().to_string(),
                                        format!("{}/{}", c.stats.valid, c.stats.n),
                                        f(c.stats.unique_pct, 2),
                                        c.stats.yield_.to_string(),
                                        c.stats.coverage_pct.map_or("-".into(), |x| f(x, 3)),
                                    ]
                                })
                                .collect()
                        })
                })
            })
            .collect();
        blocks.extend(task_table(
            "Per task at temperature 1",
            &[
                "task", "run", "prompt", "valid", "unique", "yield", "coverage",
            ],
            rows,
            vec![0.18, 0.3, 0.13, 0.1, 0.09, 0.09, 0.11],
        ));
        Ok(Section {
            title: "Validity and diversity".into(),
            blocks,
        })
    }

    /// The prompt of the prompt one setting samples from, with its stop strings.
    fn prompt(_: &Studio, chosen: &Chosen, view: &mut PromptView) -> Result<()> {
        let (request, task, tok, store) = (chosen.request, chosen.task, chosen.tok, chosen.store);
        let defs = store.task_validity(task.id)?;
        let def = defs
            .first()
            .with_context(|| format!("{}: no diverse-valid definition", task.name))?;
        let setting = request.setting.unwrap_or(Setting::Both);
        let prompt = setting.prompt(tok, request.format, def)?;
        view.ids = prompt.ids;
        view.stop_strings = spectrum_eval::valid::stop_strings(tok.eos_token.as_deref());
        view.max_new_tokens = Some(
            def.max_new_tokens
                .unwrap_or(request.settings.max_new_tokens),
        );
        view.note = format!("setting {}", setting.as_str());
        Ok(())
    }

    fn summary_record(s: &ValidSummary) -> TaskRecord {
        TaskRecord::Valid(records::ValidTask {
            task: s.task.clone(),
            valid_set_size: s.valid_set_size,
            cells: s
                .cells
                .iter()
                .map(|c| {
                    let y = &c.stats;
                    records::ValidCell {
                        setting: shown(c.setting),
                        temperature: c.temperature,
                        n: y.n,
                        valid: y.valid,
                        percent_valid: y.percent_valid,
                        unique_pct: y.unique_pct,
                        yield_: y.yield_,
                        coverage_pct: y.coverage_pct,
                        usable_unique_pct: y.usable_unique_pct,
                        raw_unique_count: y.raw_unique_count,
                        raw_unique_pct: y.raw_unique_pct,
                        possible_collisions: y.possible_collisions,
                        actual_collisions: y.actual_collisions,
                        pairwise_collision: y.pairwise_collision,
                        pairwise_uniqueness: y.pairwise_uniqueness,
                        pairwise_collision_sem: y.pairwise_collision_sem,
                    }
                })
                .collect(),
        })
    }

    fn row_record(s: &Sample) -> RowRecord {
        RowRecord::Valid(records::ValidRow {
            setting: shown(s.setting),
            temperature: s.temperature,
            index: s.index,
            text: s.text.clone(),
            valid: s.valid,
        })
    }

    fn summary_of(record: &TaskRecord) -> Option<ValidSummary> {
        let TaskRecord::Valid(r) = record else {
            return None;
        };
        Some(ValidSummary {
            task: r.task.clone(),
            valid_set_size: r.valid_set_size,
            cells: r
                .cells
                .iter()
                .map(|c| Cell {
                    setting: setting(c.setting),
                    temperature: c.temperature,
                    stats: Yield {
                        n: c.n,
                        valid: c.valid,
                        percent_valid: c.percent_valid,
                        unique_pct: c.unique_pct,
                        yield_: c.yield_,
                        coverage_pct: c.coverage_pct,
                        usable_unique_pct: c.usable_unique_pct,
                        raw_unique_count: c.raw_unique_count,
                        raw_unique_pct: c.raw_unique_pct,
                        possible_collisions: c.possible_collisions,
                        actual_collisions: c.actual_collisions,
                        pairwise_collision: c.pairwise_collision,
                        pairwise_uniqueness: c.pairwise_uniqueness,
                        pairwise_collision_sem: c.pairwise_collision_sem,
                    },
                })
                .collect(),
        })
    }

    fn row_of(record: RowRecord) -> Option<Sample> {
        let RowRecord::Valid(r) = record else {
            return None;
        };
        Some(Sample {
            setting: setting(r.setting),
            temperature: r.temperature,
            index: r.index,
            text: r.text,
            valid: r.valid,
        })
    }
}

fn shown(setting: Setting) -> Shown {
    match setting {
        Setting::Description => Shown::Description,
        Setting::Examples => Shown::Examples,
        Setting::Both => Shown::Both,
    }
}

fn setting(shown: Shown) -> Setting {
    match shown {
        Shown::Description => Setting::Description,
        Shown::Examples => Setting::Examples,
        Shown::Both => Setting::Both,
    }
}

/// METHOD.md §4.3: each (setting, temperature) averaged over tasks with equal weight.
fn overall(tasks: &[ValidSummary]) -> Vec<ValidOverall> {
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

pub(crate) fn validity_figure(evals: &[EvalReport]) -> Figure {
    let panels = Setting::ALL
        .iter()
        .map(|&setting| Panel {
            title: format!("prompt: {}", setting.as_str()),
            series: evals
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let line = r
                        .valid
                        .as_ref()?
                        .frontier
                        .iter()
                        .find(|l| l.setting == setting)?;
                    Some(Series {
                        run: i,
                        points: line
                            .points
                            .iter()
                            .map(|p| (p.yield_, p.percent_valid, p.temperature))
                            .collect(),
                    })
                })
                .collect(),
        })
        .collect();
    Figure {
        title: "Validity vs diversity across the temperature sweep (averaged over tasks)".into(),
        runs: names(evals),
        chart: Chart::Validity { panels },
        width: 640,
        height: 260,
    }
}
