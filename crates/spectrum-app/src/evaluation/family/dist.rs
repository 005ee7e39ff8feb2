//! Distributional alignment: the model's distribution over a task's options
//! against the target (METHOD.md §4.2).

use anyhow::{Context, Result};
use serde::Serialize;
use spectrum_eval::dist::{DistItem, DistSummary};
use spectrum_eval::metrics::{Alignment, MeanSe, mean_se};
use spectrum_eval::{EvalError, Evaluator, Family, Progress};
use spectrum_store::Store;
use spectrum_store::records::{self, RowRecord, TaskRecord};

use spectrum_report::{Block, Chart, Figure, ItemBars, Section};

use super::present::{f, mse, names, task_table, tasks};
use super::{EvalFamily, mean_se as read_stat, stat, tasks_in};
use crate::EvalReport;
use crate::Studio;
use crate::evaluation::TaskRow;
use crate::evaluation::prompt::{Chosen, past_the_end};
use crate::evaluation::rows_of;
use crate::evaluation::{PromptOption, PromptView};

pub(crate) struct Dist;

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

impl EvalFamily for Dist {
    const FAMILY: Family = Family::Dist;
    type Summary = DistSummary;
    type Row = DistItem;
    type Input = Vec<spectrum_suite::DistributionItem>;
    type Report = DistReport;

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

    fn aggregate(tasks: Vec<DistSummary>, items: Vec<TaskRow<DistItem>>) -> DistReport {
        let over = |f: fn(&DistSummary) -> f64| mean_se(&tasks.iter().map(f).collect::<Vec<_>>());
        DistReport {
            js: over(|s| s.js.mean),
            tv: over(|s| s.tv.mean),
            coverage: over(|s| s.coverage.mean),
            js_histogram: crate::figures::js_histogram(&items),
            tasks,
            items,
        }
    }

    const NAME: &'static str = "distributional alignment";
    const HEADLINE: &'static [(&'static str, f32)] = &[("dist JS", 0.17), ("coverage", 0.09)];

    fn of(report: &EvalReport) -> Option<&DistReport> {
        report.dist.as_ref()
    }

    fn tasks(report: &DistReport) -> Vec<String> {
        report.tasks.iter().map(|t| t.task.clone()).collect()
    }

    fn headline(report: Option<&DistReport>) -> Vec<String> {
        vec![
            report.map_or("-".into(), |d| mse(&d.js, 4)),
            report.map_or("-".into(), |d| f(d.coverage.mean, 3)),
        ]
    }

    /// The JS histogram, model vs target bars and the per-task table.
    fn section(evals: &[EvalReport]) -> Result<Section> {
        let names = names(evals);
        let mut blocks = vec![Block::Figure {
            svg: js_figure(evals).svg()?,
            caption: "Items per bin of JS divergence (nats, 0 to ln 2), over every distribution task; more items on the left is better.".into(),
        }];
        for task in tasks(evals, tasks_in::<Dist>) {
            if let Some(fig) = items_figure(evals, &task, 6) {
                blocks.push(Block::Figure {
                    svg: fig.svg()?,
                    caption: format!(
                        "{task}: grey bars are the target, coloured bars each run's distribution."
                    ),
                });
            }
        }
        let rows = tasks(evals, tasks_in::<Dist>)
            .iter()
            .flat_map(|task| {
                evals.iter().zip(&names).filter_map(move |(r, name)| {
                    let t = r.dist.as_ref()?.tasks.iter().find(|t| &t.task == task)?;
                    Some(vec![
                        task.clone(),
                        name.clone(),
                        t.items.to_string(),
                        mse(&t.js, 4),
                        f(t.kl.mean, 3),
                        f(t.tv.mean, 3),
                        f(t.mode_match.mean, 2),
                        f(t.coverage.mean, 3),
                        t.wasserstein.map_or("-".into(), |w| f(w.mean, 3)),
                    ])
                })
            })
            .collect();
        blocks.extend(task_table(
            "Per task",
            &[
                "task", "run", "items", "JS", "KL", "TV", "mode", "coverage", "W1",
            ],
            rows,
            vec![0.15, 0.27, 0.06, 0.15, 0.07, 0.07, 0.07, 0.09, 0.07],
        ));
        Ok(Section {
            title: "Distributional alignment".into(),
            blocks,
        })
    }

    /// The prompt of one distribution item's prompt and the options scored after it.
    fn prompt(_: &Studio, chosen: &Chosen, view: &mut PromptView) -> Result<()> {
        let (request, task, tok, store) = (chosen.request, chosen.task, chosen.tok, chosen.store);
        let i = request.index;
        let items = store.task_distribution_items(task.id)?;
        let i = match &request.pick {
            Some(id) => (0..items.len())
                .find(|&j| &spectrum_eval::dist::item_id(&items[j], j) == id)
                .with_context(|| format!("{}: no item {id}", task.name))?,
            None => i,
        };
        let Some(item) = items.get(i) else {
            return Err(past_the_end(
                &task.name,
                "distribution items",
                items.len(),
                i,
            ));
        };
        let (prompt, options, _) = spectrum_eval::dist::item_tokens(tok, request.format, item)?;
        view.ids = prompt;
        for (o, ids) in item.options.iter().zip(options) {
            view.options.push(PromptOption {
                text: o.clone(),
                ids,
            });
        }
        view.note = format!(
            "item {} ({} of {})",
            spectrum_eval::dist::item_id(item, i),
            i + 1,
            items.len()
        );
        Ok(())
    }

    fn summary_record(s: &DistSummary) -> TaskRecord {
        TaskRecord::Dist(records::DistTask {
            task: s.task.clone(),
            items: s.items,
            js: stat(&s.js),
            kl: stat(&s.kl),
            reverse_kl: stat(&s.reverse_kl),
            tv: stat(&s.tv),
            cross_entropy: stat(&s.cross_entropy),
            mode_match: stat(&s.mode_match),
            coverage: stat(&s.coverage),
            wasserstein: s.wasserstein.as_ref().map(stat),
            unclean_boundaries: s.unclean_boundaries,
        })
    }

    fn row_record(i: &DistItem) -> RowRecord {
        let a = &i.alignment;
        RowRecord::Dist(records::DistRow {
            id: i.id.clone(),
            options: i.options.clone(),
            target: i.target.clone(),
            p: a.p.clone(),
            coverage: a.coverage,
            q: a.q.clone(),
            js: a.js,
            kl: a.kl,
            reverse_kl: a.reverse_kl,
            tv: a.tv,
            cross_entropy: a.cross_entropy,
            mode_match: a.mode_match,
            wasserstein: a.wasserstein,
            boundary_clean: i.boundary_clean,
        })
    }

    fn summary_of(record: &TaskRecord) -> Option<DistSummary> {
        let TaskRecord::Dist(r) = record else {
            return None;
        };
        Some(DistSummary {
            task: r.task.clone(),
            items: r.items,
            js: read_stat(&r.js),
            kl: read_stat(&r.kl),
            reverse_kl: read_stat(&r.reverse_kl),
            tv: read_stat(&r.tv),
            cross_entropy: read_stat(&r.cross_entropy),
            mode_match: read_stat(&r.mode_match),
            coverage: read_stat(&r.coverage),
            wasserstein: r.wasserstein.as_ref().map(read_stat),
            unclean_boundaries: r.unclean_boundaries,
        })
    }

    fn row_of(record: RowRecord) -> Option<DistItem> {
        let RowRecord::Dist(r) = record else {
            return None;
        };
        Some(DistItem {
            id: r.id,
            options: r.options,
            target: r.target,
            alignment: Alignment {
                p: r.p,
                coverage: r.coverage,
                q: r.q,
                js: r.js,
                kl: r.kl,
                reverse_kl: r.reverse_kl,
                tv: r.tv,
                cross_entropy: r.cross_entropy,
                mode_match: r.mode_match,
                wasserstein: r.wasserstein,
            },
            boundary_clean: r.boundary_clean,
        })
    }
}

pub(crate) fn item_rows<'a>(r: &'a EvalReport, task: &'a str) -> Vec<&'a DistItem> {
    r.dist
        .as_ref()
        .map_or(Vec::new(), |d| rows_of(&d.items, task).collect())
}

/// Model vs target bars for the first `n` items of a task (the baseline's item order).
pub(crate) fn items_figure(evals: &[EvalReport], task: &str, n: usize) -> Option<Figure> {
    let base = evals.iter().find(|r| !item_rows(r, task).is_empty())?;
    let items: Vec<ItemBars> = item_rows(base, task)
        .into_iter()
        .take(n)
        .map(|item| ItemBars {
            title: item.id.clone(),
            options: item.options.clone(),
            target: item.target.clone(),
            models: evals
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let same = item_rows(r, task).into_iter().find(|x| x.id == item.id)?;
                    Some((i, same.alignment.q.clone()))
                })
                .collect(),
        })
        .collect();
    let rows = items.len().div_ceil(3).max(1) as u32;
    Some(Figure {
        title: format!("{task}: model distribution (normalised over the options) vs target"),
        runs: names(evals),
        chart: Chart::Items { items },
        width: 640,
        height: 70 + 190 * rows,
    })
}

pub(crate) fn js_figure(evals: &[EvalReport]) -> Figure {
    let histograms: Vec<(usize, &crate::figures::JsHistogram)> = evals
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, &r.dist.as_ref()?.js_histogram)))
        .collect();
    let (edges, width) = histograms
        .first()
        .map_or((Vec::new(), 0.0), |(_, h)| (h.edges.clone(), h.width));
    Figure {
        title: "Distributional alignment: items per JS divergence (all distribution tasks)".into(),
        runs: names(evals),
        chart: Chart::JsHistogram {
            edges,
            width,
            runs: histograms
                .into_iter()
                .map(|(i, h)| (i, h.all.clone()))
                .collect(),
        },
        width: 640,
        height: 300,
    }
}
