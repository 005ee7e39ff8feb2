//! The figures of a report or chart, built from stored runs.

use anyhow::{Context, Result};
use spectrum_eval::Family;
use spectrum_eval::dist::DistItem;
use spectrum_eval::valid::Setting;
use spectrum_lm::template;
use spectrum_report::{Chart, Figure, ItemBars, Panel, Series};
use spectrum_suite::{Message, Role};

use super::{ChartMetric, Runs};
use crate::evaluation::rows_of;
use crate::{EvalReport, RunDetail};

pub(super) fn steer_tasks(r: &EvalReport) -> Vec<String> {
    r.steer.as_ref().map_or(Vec::new(), |s| {
        s.tasks.iter().map(|t| t.task.clone()).collect()
    })
}
pub(super) fn dist_tasks(r: &EvalReport) -> Vec<String> {
    r.dist.as_ref().map_or(Vec::new(), |s| {
        s.tasks.iter().map(|t| t.task.clone()).collect()
    })
}
pub(super) fn valid_tasks(r: &EvalReport) -> Vec<String> {
    r.valid.as_ref().map_or(Vec::new(), |s| {
        s.tasks.iter().map(|t| t.task.clone()).collect()
    })
}

pub(super) fn f(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "-".into()
    }
}

pub(super) fn mse(m: &spectrum_eval::metrics::MeanSe, digits: usize) -> String {
    m.text(digits)
}

/// Steerability curves: the mean over tasks (the app's "all tasks" chart,
/// from the same series) then one panel per task, runs overlaid.
pub(super) fn steer_figure(runs: &Runs, tasks: &[String], metric: ChartMetric) -> Figure {
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
                series: runs
                    .evals
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
        runs: runs.names(),
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

pub(super) fn item_rows<'a>(r: &'a EvalReport, task: &'a str) -> Vec<&'a DistItem> {
    r.dist
        .as_ref()
        .map_or(Vec::new(), |d| rows_of(&d.items, task).collect())
}

/// Model vs target bars for the first `n` items of a task (the baseline's item order).
pub(super) fn items_figure(runs: &Runs, task: &str, n: usize) -> Option<Figure> {
    let base = runs.evals.iter().find(|r| !item_rows(r, task).is_empty())?;
    let items: Vec<ItemBars> = item_rows(base, task)
        .into_iter()
        .take(n)
        .map(|item| ItemBars {
            title: item.id.clone(),
            options: item.options.clone(),
            target: item.target.clone(),
            models: runs
                .evals
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
        runs: runs.names(),
        chart: Chart::Items { items },
        width: 640,
        height: 70 + 190 * rows,
    })
}

pub(super) fn js_figure(runs: &Runs) -> Figure {
    let histograms: Vec<(usize, &crate::figures::JsHistogram)> = runs
        .evals
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, &r.dist.as_ref()?.js_histogram)))
        .collect();
    let (edges, width) = histograms
        .first()
        .map_or((Vec::new(), 0.0), |(_, h)| (h.edges.clone(), h.width));
    Figure {
        title: "Distributional alignment: items per JS divergence (all distribution tasks)".into(),
        runs: runs.names(),
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

pub(super) fn validity_figure(runs: &Runs) -> Figure {
    let panels = Setting::ALL
        .iter()
        .map(|&setting| Panel {
            title: format!("prompt: {}", setting.as_str()),
            series: runs
                .evals
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
        runs: runs.names(),
        chart: Chart::Validity { panels },
        width: 640,
        height: 260,
    }
}

/// Tasks x runs heatmap of a headline metric, coloured by the difference from
/// the baseline: [`crate::figures::heatmap`], as the app draws it.
pub(super) fn heatmap_figure(runs: &Runs, family: Family) -> Figure {
    let h = crate::figures::heatmap(&runs.evals, family);
    let height = 140 + 22 * h.tasks.len().max(1) as u32;
    Figure {
        title: format!("Per task: {}", h.metric),
        runs: runs.names(),
        chart: Chart::Heatmap {
            metric: h.metric,
            lower_is_better: h.lower_is_better,
            tasks: h.tasks,
            values: h.values,
            improvement: h.improvement,
            baseline: 0,
        },
        width: 640,
        height,
    }
}

pub(super) fn training_figure(t: &RunDetail) -> Figure {
    Figure {
        title: format!("Training run {} ({})", t.run.id, t.run.name),
        runs: Vec::new(),
        chart: Chart::Training {
            steps: t
                .steps
                .iter()
                .map(|s| (s.step as f64, s.loss, s.lr))
                .collect(),
            evals: t.evals.iter().map(|e| (e.step as f64, e.loss)).collect(),
        },
        width: 640,
        height: 260,
    }
}

/// A held-out example rendered in a run's template, loss tokens in [[ ]].
pub(super) fn rendered_example(r: &EvalReport) -> Result<String> {
    // An adapter folder's tokenizer is its base model's; a remote model keeps its own.
    let dir = if spectrum_openai::client::is_remote(&r.model_path) {
        r.model_path.clone()
    } else {
        spectrum_lm::hf::ModelDir::open(&r.model_path)?.dir
    };
    let tok = spectrum_lm::tokenizer::TextTokenizer::from_dir(&dir)
        .with_context(|| format!("the tokenizer of {}", dir.display()))?;
    let messages = vec![
        Message::new(
            Role::Description,
            "Flip a coin that lands heads 70% of the time.",
        ),
        Message::new(Role::Output, "heads"),
        Message::new(Role::Output, "tails"),
    ];
    let rendered = template::render(&tok, r.template, &messages, None)?;
    let mut text = String::new();
    let mut i = 0;
    while i < rendered.ids.len() {
        let start = i;
        let loss = rendered.loss[i];
        while i < rendered.ids.len() && rendered.loss[i] == loss {
            i += 1;
        }
        let piece = tok.decode(&rendered.ids[start..i])?;
        if loss {
            text.push_str(&format!("[[{piece}]]"));
        } else {
            text.push_str(&piece);
        }
    }
    Ok(text)
}
