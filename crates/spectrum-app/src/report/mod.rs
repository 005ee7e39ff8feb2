//! Reports and charts of stored runs: turns evaluation and training runs into
//! `spectrum-report` figures and the PDF document.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use spectrum_core::Problem;
use spectrum_eval::Family;
use spectrum_report::{DocumentSpec, Figure};

use crate::evaluation::ChartMetric;
use crate::evaluation::family::present;
use crate::evaluation::family::{Dist, EvalFamily, Steer, Valid, tasks_in};
use crate::{AppError, Fix, Listing, RunKind, RunRef, Studio};

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
    evals: Vec<crate::EvalReport>,
    trains: Vec<crate::RunDetail>,
}

impl Runs {
    fn names(&self) -> Vec<String> {
        present::names(&self.evals)
    }

    fn tasks(&self, family: impl Fn(&crate::EvalReport) -> Vec<String>) -> Vec<String> {
        present::tasks(&self.evals, family)
    }
}

mod figures;
mod sections;

use figures::*;
use sections::title_lines;

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
                    None => runs.tasks(tasks_in::<Steer>),
                };
                crate::evaluation::family::steer_figure(&runs.evals, &tasks, request.metric)
            }
            ChartKind::Items => {
                need_eval()?;
                let task = match task {
                    Some(t) => t.to_string(),
                    None => runs
                        .tasks(tasks_in::<Dist>)
                        .into_iter()
                        .next()
                        .context("the runs have no distributional results")?,
                };
                crate::evaluation::family::items_figure(&runs.evals, &task, 9).with_context(
                    || format!("no distributional items of task {task:?} in these runs"),
                )?
            }
            ChartKind::Js => {
                need_eval()?;
                crate::evaluation::family::js_figure(&runs.evals)
            }
            ChartKind::Validity => {
                need_eval()?;
                crate::evaluation::family::validity_figure(&runs.evals)
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
        fn family<F: EvalFamily>(
            runs: &Runs,
            progress: &mut dyn FnMut(&str),
            sections: &mut Vec<spectrum_report::Section>,
        ) -> Result<()> {
            if runs.evals.iter().any(|r| F::of(r).is_some()) {
                progress(F::NAME);
                sections.push(F::section(&runs.evals)?);
            }
            Ok(())
        }
        if want(ReportSection::Steer) {
            family::<Steer>(&runs, progress, &mut sections)?;
        }
        if want(ReportSection::Dist) {
            family::<Dist>(&runs, progress, &mut sections)?;
        }
        if want(ReportSection::Valid) {
            family::<Valid>(&runs, progress, &mut sections)?;
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
    use spectrum_eval::valid::Setting;
    use spectrum_report::Chart;

    use super::*;
    use crate::evaluation::family::{js_figure, validity_figure};
    use crate::evaluation::{DistReport, TaskRow, ValidOverall, ValidReport};
    use crate::figures::{js_histogram, validity_frontier};
    use crate::{EvalReport, RunStatus};

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
        } = js_figure(&runs.evals).chart
        else {
            panic!("not a histogram")
        };
        for (i, r) in runs.evals.iter().enumerate() {
            let h = &r.dist.as_ref().expect("dist").js_histogram;
            assert_eq!((&edges, width), (&h.edges, h.width));
            assert_eq!(bars[i], (i, h.all.clone()));
        }
        assert_eq!(bars[0].1.iter().sum::<usize>(), 3);
        let Chart::Validity { panels } = validity_figure(&runs.evals).chart else {
            panic!("not the validity chart")
        };
        for (panel, setting) in panels.iter().zip(Setting::ALL) {
            for series in &panel.series {
                let line = runs.evals[series.run]
                    .valid
                    .as_ref()
                    .and_then(|v| v.frontier.iter().find(|l| l.setting == *setting))
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
