//! Reports and charts of stored runs: turns evaluation and training runs into
//! `spectrum-report` figures and the PDF document.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use spectrum_core::Problem;
use spectrum_eval::Family;
use spectrum_eval::dist::DistItem;
use spectrum_eval::valid::Setting;
use spectrum_lm::template;
use spectrum_report::{Block, Chart, DocumentSpec, Figure, ItemBars, Panel, Section, Series};
use spectrum_suite::{Message, Role};

use crate::RunRef;
use crate::evaluation::rows_of;
use crate::{AppError, EvalReport, Fix, Listing, RunDetail, RunKind, Studio};

spectrum_core::closed_set! {
    /// The figures one can ask for.
    ChartKind {
        Steer => "steer",
        Items => "items",
        Js => "js",
        Validity => "validity",
        Heatmap => "heatmap",
        Training => "training",
    }
}

spectrum_core::closed_set! {
    /// What a steerability chart plots.
    ChartMetric { Loss => "loss", Acc => "acc" }
}

spectrum_core::closed_set! {
    /// The report's sections, in order.
    ReportSection {
        Summary => "summary",
        Steer => "steer",
        Dist => "dist",
        Valid => "valid",
        Tasks => "tasks",
        Training => "training",
        Templates => "templates",
        Appendix => "appendix",
    }
}

/// One chart of stored runs.
#[derive(Debug, Clone)]
pub struct ChartRequest {
    pub kind: ChartKind,
    pub runs: Vec<RunRef>,
    /// One task (steer, items).
    pub task: Option<String>,
    /// The family whose headline metric a heatmap shows (default steer).
    pub family: Option<Family>,
    /// The run differences are taken against (heatmap).
    pub baseline: Option<RunRef>,
    pub metric: ChartMetric,
}

/// A PDF report of stored runs.
#[derive(Debug, Clone, serde::Deserialize, ts_rs::TS)]
pub struct ReportRequest {
    /// Evaluation and training runs.
    pub runs: Vec<RunRef>,
    /// The run differences are taken against (default: the first evaluation run).
    pub baseline: Option<RunRef>,
    /// Sections to include (empty: all, in [`ReportSection::ALL`]'s order).
    pub sections: Vec<ReportSection>,
    /// Where the PDF goes; `None`: [`Studio::default_report_path`].
    pub out: Option<PathBuf>,
    /// The creation date written into the PDF (UTC); default: now. Fixed for identical bytes.
    #[serde(skip)]
    #[ts(skip)]
    pub created: Option<(u16, u8, u8, u8, u8, u8)>,
}

/// The runs of a report, split by kind, with the baseline first among the evaluations.
struct Runs {
    evals: Vec<EvalReport>,
    trains: Vec<RunDetail>,
}

impl Runs {
    fn names(&self) -> Vec<String> {
        self.evals
            .iter()
            .map(|r| format!("{} ({})", r.name, r.template.as_str()))
            .collect()
    }

    fn tasks(&self, family: impl Fn(&EvalReport) -> Vec<String>) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for r in &self.evals {
            for t in family(r) {
                if seen.insert(t.clone()) {
                    out.push(t);
                }
            }
        }
        out
    }
}

fn steer_tasks(r: &EvalReport) -> Vec<String> {
    r.steer.as_ref().map_or(Vec::new(), |s| {
        s.tasks.iter().map(|t| t.task.clone()).collect()
    })
}
fn dist_tasks(r: &EvalReport) -> Vec<String> {
    r.dist.as_ref().map_or(Vec::new(), |s| {
        s.tasks.iter().map(|t| t.task.clone()).collect()
    })
}
fn valid_tasks(r: &EvalReport) -> Vec<String> {
    r.valid.as_ref().map_or(Vec::new(), |s| {
        s.tasks.iter().map(|t| t.task.clone()).collect()
    })
}

fn f(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "-".into()
    }
}

fn mse(m: &spectrum_eval::metrics::MeanSe, digits: usize) -> String {
    m.text(digits)
}

/// Steerability curves: the mean over tasks (the app's "all tasks" chart,
/// from the same series) then one panel per task, runs overlaid.
fn steer_figure(runs: &Runs, tasks: &[String], metric: ChartMetric) -> Figure {
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

fn item_rows<'a>(r: &'a EvalReport, task: &'a str) -> Vec<&'a DistItem> {
    r.dist
        .as_ref()
        .map_or(Vec::new(), |d| rows_of(&d.items, task).collect())
}

/// Model vs target bars for the first `n` items of a task (the baseline's item order).
fn items_figure(runs: &Runs, task: &str, n: usize) -> Option<Figure> {
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

fn js_figure(runs: &Runs) -> Figure {
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

fn validity_figure(runs: &Runs) -> Figure {
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
fn heatmap_figure(runs: &Runs, family: Family) -> Figure {
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

fn training_figure(t: &RunDetail) -> Figure {
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
fn rendered_example(r: &EvalReport) -> Result<String> {
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

impl Studio {
    fn report_runs(&self, runs: &[RunRef], baseline: Option<&RunRef>) -> Result<Runs> {
        if runs.is_empty() {
            return Err(AppError::bad_input("no runs given")
                .with_fix(Fix::List {
                    what: Listing::Runs,
                })
                .into());
        }
        let mut out = Runs {
            evals: Vec::new(),
            trains: Vec::new(),
        };
        for r in runs {
            let detail = self.run_detail(r)?;
            if detail.run.kind == RunKind::Eval {
                out.evals
                    .push(self.eval_report(&RunRef::Id(detail.run.id))?);
            } else {
                out.trains.push(detail);
            }
        }
        if let Some(b) = baseline {
            let id = self.run_detail(b)?.run.id;
            let at = out.evals.iter().position(|r| r.run == id).ok_or_else(|| {
                Problem::setting(
                    format!("the baseline {b} is not one of the evaluation runs of the report"),
                    "runs",
                    "list the baseline among the runs",
                )
            })?;
            let base = out.evals.remove(at);
            out.evals.insert(0, base);
        }
        Ok(out)
    }

    /// One figure of stored runs, written as SVG or PNG by the file's extension.
    pub fn chart(&self, request: &ChartRequest, out: &Path) -> Result<()> {
        let (kind, task) = (request.kind, request.task.as_deref());
        let runs = self.report_runs(&request.runs, request.baseline.as_ref())?;
        let need_eval = || -> Result<()> {
            if runs.evals.is_empty() {
                return Err(AppError::not_found(
                    format!("a {kind} chart needs evaluation runs"),
                    Listing::Runs,
                )
                .into());
            }
            Ok(())
        };
        let figure = match kind {
            ChartKind::Steer => {
                need_eval()?;
                let tasks = match task {
                    Some(t) => vec![t.to_string()],
                    None => runs.tasks(steer_tasks),
                };
                steer_figure(&runs, &tasks, request.metric)
            }
            ChartKind::Items => {
                need_eval()?;
                let task = match task {
                    Some(t) => t.to_string(),
                    None => runs
                        .tasks(dist_tasks)
                        .into_iter()
                        .next()
                        .context("the runs have no distributional results")?,
                };
                items_figure(&runs, &task, 9).with_context(|| {
                    format!("no distributional items of task {task:?} in these runs")
                })?
            }
            ChartKind::Js => {
                need_eval()?;
                js_figure(&runs)
            }
            ChartKind::Validity => {
                need_eval()?;
                validity_figure(&runs)
            }
            ChartKind::Heatmap => {
                need_eval()?;
                let family = request.family.unwrap_or(Family::Steer);
                heatmap_figure(&runs, family)
            }
            ChartKind::Training => training_figure(
                runs.trains
                    .first()
                    .context("a training chart needs a training run")?,
            ),
        };
        write_figure(&figure, out)
    }

    /// Writes the PDF report of `request.runs`.
    pub fn report(
        &self,
        request: &ReportRequest,
        progress: &mut dyn FnMut(&str),
    ) -> Result<PathBuf> {
        let want = |s: ReportSection| request.sections.is_empty() || request.sections.contains(&s);
        let runs = self.report_runs(&request.runs, request.baseline.as_ref())?;
        progress(&format!(
            "{} evaluation and {} training runs",
            runs.evals.len(),
            runs.trains.len()
        ));
        let mut sections = Vec::new();
        let version = env!("CARGO_PKG_VERSION");
        let created = request.created.unwrap_or_else(now);
        let title_lines = title_lines(&runs, created, version);
        if want(ReportSection::Summary) && !runs.evals.is_empty() {
            sections.push(self.summary_section(&runs)?);
        }
        if want(ReportSection::Steer) && runs.evals.iter().any(|r| r.steer.is_some()) {
            progress("steerability");
            sections.push(Self::steer_section(&runs)?);
        }
        if want(ReportSection::Dist) && runs.evals.iter().any(|r| r.dist.is_some()) {
            progress("distributional alignment");
            sections.push(Self::dist_section(&runs)?);
        }
        if want(ReportSection::Valid) && runs.evals.iter().any(|r| r.valid.is_some()) {
            progress("validity and diversity");
            sections.push(Self::valid_section(&runs)?);
        }
        if want(ReportSection::Tasks) && runs.evals.len() > 1 {
            progress("task breakdown");
            sections.push(Self::tasks_section(&runs)?);
        }
        if want(ReportSection::Training) && !runs.trains.is_empty() {
            sections.push(Self::training_section(&runs)?);
        }
        if want(ReportSection::Templates) && !runs.evals.is_empty() {
            sections.push(Self::templates_section(&runs)?);
        }
        if want(ReportSection::Appendix) {
            sections.push(self.appendix_section(request)?);
        }
        let out = match &request.out {
            Some(path) => path.clone(),
            None => self.default_report_path(),
        };
        progress(&format!("writing {}", out.display()));
        let spec = DocumentSpec {
            title: format!(
                "Spectrum Studio report: {}",
                runs.evals
                    .iter()
                    .map(|r| r.name.as_str())
                    .chain(runs.trains.iter().map(|t| t.run.name.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            title_lines,
            created,
            producer: format!("Spectrum Studio {version}"),
            sections,
        };
        let bytes = spectrum_report::pdf::render(&spec)?;
        write_new(&out, &bytes)?;
        Ok(out)
    }

    /// Where a report goes when no path is given: `reports/` beside the
    /// store, named by the time (seconds since 1970).
    pub fn default_report_path(&self) -> PathBuf {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.store_path()
            .parent()
            .unwrap_or(Path::new("."))
            .join("reports")
            .join(format!("report-{stamp}.pdf"))
    }

    /// The means of every run and, with a baseline, the comparison against it.
    fn summary_section(&self, runs: &Runs) -> Result<Section> {
        let names = runs.names();
        let rows = runs
            .evals
            .iter()
            .zip(&names)
            .map(|(r, name)| {
                let both = r.valid.as_ref().and_then(|v| {
                    v.overall
                        .iter()
                        .find(|c| Setting::is_headline(c.setting, c.temperature))
                });
                vec![
                    name.clone(),
                    r.steer.as_ref().map_or("-".into(), |s| mse(&s.loss, 3)),
                    r.steer.as_ref().map_or("-".into(), |s| f(s.acc.mean, 3)),
                    r.dist.as_ref().map_or("-".into(), |d| mse(&d.js, 4)),
                    r.dist
                        .as_ref()
                        .map_or("-".into(), |d| f(d.coverage.mean, 3)),
                    both.map_or("-".into(), |c| {
                        format!("{} / {}", f(c.percent_valid, 2), f(c.yield_, 1))
                    }),
                ]
            })
            .collect();
        let mut blocks = vec![
            Block::Text("Means over tasks with equal weight; ± is the standard error over tasks. Steerability: loss (nats) and token accuracy of examples 1..k, numbered as the reference numbers them (contiguous loss runs). Distributional: JS divergence (natural log) and mass on the valid options. Validity: fraction valid / yield (distinct valid outputs) with description and examples in the prompt, temperature 1.".into()),
            Block::Table {
                header: ["run", "steer loss", "steer acc", "dist JS", "coverage", "valid / yield"].map(String::from).to_vec(),
                rows,
                widths: vec![0.36, 0.16, 0.09, 0.17, 0.09, 0.13],
            },
        ];
        if runs.evals.len() > 1 {
            let ids: Vec<RunRef> = runs.evals.iter().map(|r| RunRef::Id(r.run)).collect();
            let cmp = self.compare(&ids)?;
            blocks.extend(comparison_blocks(&cmp, &names));
        }
        Ok(Section {
            title: "Summary".into(),
            blocks,
        })
    }

    /// Steerability curves and the per-task table.
    fn steer_section(runs: &Runs) -> Result<Section> {
        let names = runs.names();
        let tasks = runs.tasks(steer_tasks);
        let mut blocks = Vec::new();
        for chunk in tasks.chunks(9) {
            blocks.push(Block::Figure {
                svg: steer_figure(runs, chunk, ChartMetric::Loss).svg()?,
                caption: "Loss of each output given the earlier outputs of its sequence; bands: ± one standard error over sequences. Lower is better; a falling curve means the model follows its context.".into(),
            });
        }
        for chunk in tasks.chunks(9) {
            blocks.push(Block::Figure {
                svg: steer_figure(runs, chunk, ChartMetric::Acc).svg()?,
                caption: "Accuracy of each output (every token the arg-max) given the earlier outputs; bands: ± one standard error. Higher is better.".into(),
            });
        }
        let rows = tasks
            .iter()
            .flat_map(|task| {
                runs.evals.iter().zip(&names).filter_map(move |(r, name)| {
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

    /// The JS histogram, model vs target bars and the per-task table.
    fn dist_section(runs: &Runs) -> Result<Section> {
        let names = runs.names();
        let mut blocks = vec![Block::Figure {
            svg: js_figure(runs).svg()?,
            caption: "Items per bin of JS divergence (nats, 0 to ln 2), over every distribution task; more items on the left is better.".into(),
        }];
        for task in runs.tasks(dist_tasks) {
            if let Some(fig) = items_figure(runs, &task, 6) {
                blocks.push(Block::Figure {
                    svg: fig.svg()?,
                    caption: format!(
                        "{task}: grey bars are the target, coloured bars each run's distribution."
                    ),
                });
            }
        }
        let rows = runs
            .tasks(dist_tasks)
            .iter()
            .flat_map(|task| {
                runs.evals.iter().zip(&names).filter_map(move |(r, name)| {
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

    /// The validity-diversity frontier and the per-task table at temperature 1.
    fn valid_section(runs: &Runs) -> Result<Section> {
        let names = runs.names();
        let mut blocks = vec![Block::Figure {
            svg: validity_figure(runs).svg()?,
            caption: "Each point is one temperature of the sweep; up and to the right is better."
                .into(),
        }];
        let rows = runs
            .tasks(valid_tasks)
            .iter()
            .flat_map(|task| {
                runs.evals.iter().zip(&names).flat_map(move |(r, name)| {
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

    /// Per-task heatmaps against the baseline.
    fn tasks_section(runs: &Runs) -> Result<Section> {
        let names = runs.names();
        let mut blocks = Vec::new();
        for family in Family::ALL {
            let fig = heatmap_figure(runs, *family);
            if matches!(&fig.chart, Chart::Heatmap { tasks, .. } if tasks.is_empty()) {
                continue;
            }
            blocks.push(Block::Figure {
                svg: fig.svg()?,
                caption: format!("Differences from the baseline, {}.", names[0]),
            });
        }
        Ok(Section {
            title: "Task breakdown".into(),
            blocks,
        })
    }

    /// The training curves of every training run.
    fn training_section(runs: &Runs) -> Result<Section> {
        let mut blocks = Vec::new();
        for t in &runs.trains {
            blocks.push(Block::Figure { svg: training_figure(t).svg()?, caption: "Training loss is per loss token; the held-out loss is per output with index >= 1.".into() });
        }
        Ok(Section {
            title: "Training".into(),
            blocks,
        })
    }

    /// How each run's template renders a short sequence.
    fn templates_section(runs: &Runs) -> Result<Section> {
        let mut blocks = vec![Block::Text("How each run's prompts look: a short sequence rendered by the run's template with its model's tokenizer. Text in [[ ]] carries loss (is scored). The chat template adds this system prompt:".into()), Block::Code(template::CHAT_SYSTEM_PROMPT.into())];
        let mut done = BTreeSet::new();
        for r in &runs.evals {
            if !done.insert((r.model_path.clone(), format!("{:?}", r.template))) {
                continue;
            }
            blocks.push(Block::Heading(format!(
                "{} with the {} template",
                r.model,
                r.template.as_str()
            )));
            match rendered_example(r) {
                Ok(text) => blocks.push(Block::Code(text)),
                Err(e) => blocks.push(Block::Text(format!("(not available: {e:#})"))),
            }
        }
        Ok(Section {
            title: "Prompt templates".into(),
            blocks,
        })
    }

    /// Every run's full spec.
    fn appendix_section(&self, request: &ReportRequest) -> Result<Section> {
        let store = self.store()?;
        let mut blocks = Vec::new();
        for r in request.runs.iter() {
            let run = crate::runs::find_run(&store, r)?;
            blocks.push(Block::Heading(format!(
                "Run {} ({}), {}",
                run.id, run.name, run.kind
            )));
            let settings = crate::RunSettings::of(&run)?;
            blocks.push(Block::Code(serde_json::to_string_pretty(&settings)?));
        }
        Ok(Section {
            title: "Appendix: run specifications".into(),
            blocks,
        })
    }
}

/// A per-task table under its heading.
fn task_table(
    heading: &str,
    header: &[&str],
    rows: Vec<Vec<String>>,
    widths: Vec<f32>,
) -> [Block; 2] {
    [
        Block::Heading(heading.into()),
        Block::Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
            widths,
        },
    ]
}

/// The comparison against the baseline: win/tie/loss per family, then each
/// run's headline differences with their intervals.
fn comparison_blocks(cmp: &crate::Comparison, names: &[String]) -> Vec<Block> {
    let mut blocks = vec![Block::Heading(format!(
        "Against the baseline, {}",
        names[0]
    ))];
    blocks.push(Block::Text("Differences are run minus baseline with 95% bootstrap intervals (paired on sequences and items). A task is a win when the whole interval lies on the better side of zero.".into()));
    let mut rows = Vec::new();
    for c in &cmp.candidates {
        for (family, t) in &c.tally {
            rows.push(vec![
                format!("{} ({})", c.run.name, c.run.template.as_str()),
                family.as_str().to_string(),
                t.win.to_string(),
                t.tie.to_string(),
                t.loss.to_string(),
            ]);
        }
    }
    blocks.push(Block::Table {
        header: ["run", "family", "wins", "ties", "losses"]
            .map(String::from)
            .to_vec(),
        rows,
        widths: vec![0.46, 0.14, 0.13, 0.13, 0.14],
    });
    for c in &cmp.candidates {
        blocks.push(Block::Heading(format!(
            "{} ({}) minus the baseline",
            c.run.name,
            c.run.template.as_str()
        )));
        let rows = c
            .rows
            .iter()
            .filter(|r| r.headline)
            .map(|r| {
                vec![
                    r.family.as_str().to_string(),
                    r.task.clone(),
                    r.metric.clone(),
                    format!("{:.3}", r.baseline),
                    format!("{:.3}", r.candidate),
                    format!(
                        "{:+.3} [{:+.3}, {:+.3}]",
                        r.interval.diff, r.interval.lo, r.interval.hi
                    ),
                    r.verdict.as_str().into(),
                ]
            })
            .collect();
        blocks.push(Block::Table {
            header: [
                "family",
                "task",
                "metric",
                "baseline",
                "run",
                "difference [95% CI]",
                "",
            ]
            .map(String::from)
            .to_vec(),
            rows,
            widths: vec![0.08, 0.3, 0.12, 0.1, 0.1, 0.24, 0.06],
        });
    }
    blocks
}

/// The title page: when and by what the report was made, every run with its
/// model and content hash, and the datasets the runs read.
fn title_lines(runs: &Runs, created: (u16, u8, u8, u8, u8, u8), version: &str) -> Vec<String> {
    let mut title_lines = vec![format!(
        "Created {:04}-{:02}-{:02} {:02}:{:02} UTC by Spectrum Studio {version}.",
        created.0, created.1, created.2, created.3, created.4
    )];
    for r in &runs.evals {
        let hash = r.model_hash.as_deref().unwrap_or("not recorded");
        title_lines.push(format!(
            "Evaluation run {} ({}): model {} (content hash {}), template {}, profile {}, status {}.",
            r.run,
            r.name,
            r.model,
            shorten_hash(hash),
            r.template.as_str(),
            r.profile.as_str(),
            r.status
        ));
    }
    for t in &runs.trains {
        title_lines.push(format!(
            "Training run {} ({}): base model {} (content hash {}), tuned model {}, status {}, step {}/{}.",
            t.run.id,
            t.run.name,
            t.run.model.as_deref().unwrap_or("-"),
            shorten_hash(t.run.model_hash.as_deref().unwrap_or("not recorded")),
            t.run.result_model.as_deref().unwrap_or("-"),
            t.run.status,
            t.run.step,
            t.run.total_steps
        ));
    }
    title_lines.extend(provenance_lines(runs));
    title_lines
}

/// The datasets the report's runs read, as each run recorded them when it
/// started (a dataset removed or re-imported since keeps its recorded hash),
/// and the runs that predate provenance.
fn provenance_lines(runs: &Runs) -> Vec<String> {
    let recorded = runs
        .evals
        .iter()
        .map(|r| (r.run, &r.datasets))
        .chain(runs.trains.iter().map(|t| (t.run.id, &t.run.datasets)));
    let mut read: std::collections::BTreeMap<(&str, &str), Vec<i64>> = Default::default();
    let mut unrecorded = Vec::new();
    for (run, datasets) in recorded {
        if datasets.is_empty() {
            unrecorded.push(run.to_string());
        }
        for d in datasets {
            read.entry((&d.name, &d.content_hash))
                .or_default()
                .push(run);
        }
    }
    let mut lines: Vec<String> = read
        .into_iter()
        .map(|((name, hash), runs)| {
            let runs: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
            format!(
                "Dataset {name} (content hash {}): read by run{} {}.",
                shorten_hash(hash),
                if runs.len() == 1 { "" } else { "s" },
                runs.join(", ")
            )
        })
        .collect();
    if !unrecorded.is_empty() {
        lines.push(format!(
            "Run{} {} started before Spectrum Studio recorded the datasets a run reads.",
            if unrecorded.len() == 1 { "" } else { "s" },
            unrecorded.join(", ")
        ));
    }
    lines
}

fn shorten_hash(h: &str) -> String {
    h.chars().take(16).collect()
}

/// The current UTC time as (year, month, day, hour, minute, second).
fn now() -> (u16, u8, u8, u8, u8, u8) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + (month <= 2) as i64) as u16;
    (
        year,
        month,
        day,
        (rem / 3600) as u8,
        (rem % 3600 / 60) as u8,
        (rem % 60) as u8,
    )
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn write_figure(figure: &Figure, out: &Path) -> Result<()> {
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => write_new(out, figure.svg()?.as_bytes()),
        Some("png") => {
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            Ok(figure.png(out, 2)?)
        }
        _ => bail!("{}: the chart file must end in .svg or .png", out.display()),
    }
}

#[cfg(test)]
mod tests {
    use spectrum_eval::dist::DistItem;
    use spectrum_eval::metrics::MeanSe;

    use super::*;
    use crate::RunStatus;
    use crate::evaluation::{DistReport, TaskRow, ValidOverall, ValidReport};
    use crate::figures::{js_histogram, validity_frontier};

    fn item(task: &str, id: &str, js: f64) -> TaskRow<DistItem> {
        let row = serde_json::from_value(serde_json::json!({
            "id": id, "options": ["a", "b"], "target": [0.5, 0.5], "p": [0.6, 0.4],
            "coverage": 1.0, "q": [0.6, 0.4], "js": js, "kl": 0.0, "reverse_kl": 0.0,
            "tv": 0.1, "cross_entropy": 0.7, "mode_match": true, "wasserstein": null,
            "boundary_clean": true
        }))
        .unwrap_or_else(|e| panic!("item JSON: {e}"));
        TaskRow {
            task: task.into(),
            row,
        }
    }

    fn summary(task: &str, js: f64) -> spectrum_eval::dist::DistSummary {
        let m = serde_json::json!({"mean": js, "se": null, "n": 1});
        serde_json::from_value(serde_json::json!({
            "task": task, "items": 1, "js": m, "kl": m, "reverse_kl": m, "tv": m,
            "cross_entropy": m, "mode_match": m, "coverage": m, "wasserstein": null,
            "unclean_boundaries": 0
        }))
        .unwrap_or_else(|e| panic!("summary JSON: {e}"))
    }

    fn report(run: i64, items: Vec<TaskRow<DistItem>>, overall: Vec<ValidOverall>) -> EvalReport {
        let ms = MeanSe {
            mean: 0.0,
            se: None,
            n: 0,
        };
        EvalReport {
            run,
            name: format!("run{run}"),
            status: RunStatus::Finished,
            model: "m".into(),
            model_path: "/m".into(),
            model_hash: None,
            datasets: Vec::new(),
            template: spectrum_lm::PromptFormat::Spectrum,
            profile: spectrum_eval::Profile::Quick,
            unfinished: 0,
            settings: spectrum_eval::Profile::Quick.settings(),
            steer: None,
            dist: Some(DistReport {
                js: ms,
                tv: ms,
                coverage: ms,
                tasks: items
                    .iter()
                    .map(|i| summary(&i.task, i.row.alignment.js))
                    .collect(),
                js_histogram: js_histogram(&items),
                items,
            }),
            valid: Some(ValidReport {
                frontier: validity_frontier(&overall),
                overall,
                tasks: Vec::new(),
                samples: Vec::new(),
            }),
            skipped: Vec::new(),
        }
    }

    fn cell(setting: Setting, temperature: f64, yield_: f64, percent_valid: f64) -> ValidOverall {
        ValidOverall {
            setting,
            temperature,
            tasks: 1,
            percent_valid,
            unique_pct: 50.0,
            yield_,
            coverage_pct: None,
        }
    }

    /// The PDF draws exactly the series the app receives in the report.
    #[test]
    fn the_pdf_figures_draw_the_series_the_app_draws() {
        let runs = Runs {
            evals: vec![
                report(
                    1,
                    vec![
                        item("u", "1", 0.01),
                        item("u", "2", 0.69),
                        item("v", "3", 0.3),
                    ],
                    vec![
                        cell(Setting::Both, 1.5, 6.0, 40.0),
                        cell(Setting::Both, 0.5, 2.0, 90.0),
                    ],
                ),
                report(
                    2,
                    vec![item("u", "1", 0.2)],
                    vec![cell(Setting::Examples, 1.0, 3.0, 70.0)],
                ),
            ],
            trains: Vec::new(),
        };
        let Chart::JsHistogram {
            edges,
            width,
            runs: bars,
        } = js_figure(&runs).chart
        else {
            panic!("not a histogram")
        };
        for (i, r) in runs.evals.iter().enumerate() {
            let h = &r.dist.as_ref().expect("dist").js_histogram;
            assert_eq!((&edges, width), (&h.edges, h.width));
            assert_eq!(bars[i], (i, h.all.clone()));
        }
        assert_eq!(bars[0].1.iter().sum::<usize>(), 3);
        let Chart::Validity { panels } = validity_figure(&runs).chart else {
            panic!("not the validity chart")
        };
        for (panel, setting) in panels.iter().zip(Setting::ALL) {
            for series in &panel.series {
                let line = runs.evals[series.run]
                    .valid
                    .as_ref()
                    .and_then(|v| v.frontier.iter().find(|l| l.setting == setting))
                    .expect("the app's line");
                let app: Vec<(f64, f64, f64)> = line
                    .points
                    .iter()
                    .map(|p| (p.yield_, p.percent_valid, p.temperature))
                    .collect();
                assert_eq!(series.points, app, "{setting:?}");
            }
        }
        // The breakdown heatmap: the app's (in the comparison) and the PDF's cells.
        let h = crate::figures::heatmap(&runs.evals, Family::Dist);
        let Chart::Heatmap { tasks, values, .. } = heatmap_figure(&runs, Family::Dist).chart else {
            panic!("not a heatmap")
        };
        assert_eq!((&tasks, &values), (&h.tasks, &h.values));
        // Task u: run 1 has JS 0.01 then 0.69 (summaries of one item each: the
        // first row), run 2 has 0.2; v is missing from run 2.
        assert_eq!(h.tasks, ["u", "v"]);
        assert!((h.improvement(0, 1).expect("u") - (0.01 - 0.2)).abs() < 1e-12);
        assert_eq!(h.improvement(1, 1), None);
        // Sorted by temperature, whatever order the cells came in.
        let both = &runs.evals[0].valid.as_ref().expect("valid").frontier[0];
        assert_eq!(
            both.points
                .iter()
                .map(|p| p.temperature)
                .collect::<Vec<_>>(),
            [0.5, 1.5]
        );
    }
}
