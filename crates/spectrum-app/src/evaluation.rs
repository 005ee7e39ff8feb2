//! Evaluation use cases: run the three families of METHOD.md §4 on a model,
//! keep every output, item and sample in the store, read runs back.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spectrum_core::Problem;
use spectrum_eval::dist::{DistItem, DistSummary};
use spectrum_eval::metrics::{MeanSe, mean_se};
use spectrum_eval::steer::{EvalSequence, SteerOutput, SteerSummary};
use spectrum_eval::valid::{Sample, Setting, ValidSummary};
use spectrum_eval::{EvalError, Evaluator, Family, Profile, Settings};
use spectrum_lm::{Backend, DeviceSpec, PromptFormat};
use spectrum_store::{
    Lease, NewRun, RunDataset, RunKind, RunRecord, RunStatus, Store, TaskFilter, TaskSummary,
};
use spectrum_suite::Split;

use crate::runs::{find_run, unique_name};
use crate::{AppError, Cancelled, ErrorCode, Fix, Listing, Studio};

/// What to evaluate, on what, how.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    /// `default`, a registered model, a folder or a GGUF file.
    pub model: String,
    pub families: Vec<Family>,
    /// Task selectors: `held-out` (the default when empty), `train`, `all`,
    /// task names, categories or dataset names.
    pub tasks: Vec<String>,
    pub format: PromptFormat,
    pub profile: Profile,
    /// The profile's settings with the user's overrides.
    pub settings: Settings,
    pub device: DeviceSpec,
    pub name: Option<String>,
}

/// Where an evaluation is.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct EvalProgress {
    pub run_id: i64,
    pub family: Family,
    pub task: String,
    /// Units (sequences, items, sample batches) of this task done, of `total`.
    pub done: usize,
    pub total: usize,
    /// Tasks finished before this one, of `tasks_total`.
    pub tasks_done: usize,
    pub tasks_total: usize,
}

/// One (family, task) the run evaluates.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Planned {
    family: Family,
    task: String,
    task_id: i64,
}

/// The spec stored with an evaluation run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredEval {
    model: String,
    model_path: PathBuf,
    template: PromptFormat,
    profile: Profile,
    settings: Settings,
    families: Vec<Family>,
    tasks: Vec<String>,
    plan: Vec<Planned>,
    #[serde(default)]
    device: DeviceSpec,
    /// The metric definitions the run computes ([`spectrum_eval::DEFINITIONS`]);
    /// absent in runs from before it was recorded.
    #[serde(default)]
    definitions: Option<String>,
}

impl StoredEval {
    pub(crate) fn of(record: &RunRecord) -> Result<StoredEval> {
        serde_json::from_value(record.spec.clone()).with_context(|| {
            format!(
                "run {}: its stored evaluation settings are not readable by this version",
                record.id
            )
        })
    }

    /// What a front end shows of them.
    pub(crate) fn settings(self) -> crate::RunSettings {
        crate::RunSettings::Eval {
            model: self.model,
            model_path: self.model_path,
            template: self.template,
            profile: self.profile,
            settings: self.settings,
            families: self.families,
            tasks: self.tasks,
            device: self.device,
        }
    }
}

/// Refuses a run that is not an evaluation (its results and prompts are asked for).
fn not_an_evaluation(record: &RunRecord) -> Result<()> {
    if record.kind == RunKind::Eval {
        return Ok(());
    }
    Err(AppError::bad_input(format!(
        "run {} ({}) is a {} run, not an evaluation",
        record.id, record.name, record.kind
    ))
    .with_fix(Fix::List {
        what: Listing::Runs,
    })
    .into())
}

/// A task a family could not evaluate, and why.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct Skipped {
    pub family: Family,
    pub task: String,
    pub reason: String,
}

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

/// A per-unit row of an evaluation (a scored output, an item, a sample) and
/// the task it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct TaskRow<T> {
    pub task: String,
    #[serde(flatten)]
    #[ts(flatten)]
    pub row: T,
}

/// The rows of `task`.
pub fn rows_of<'a, T>(rows: &'a [TaskRow<T>], task: &'a str) -> impl Iterator<Item = &'a T> + 'a {
    rows.iter().filter(move |r| r.task == task).map(|r| &r.row)
}

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

/// An evaluation run and everything it produced.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct EvalReport {
    pub run: i64,
    pub name: String,
    pub status: RunStatus,
    pub model: String,
    /// The model folder the run evaluated.
    pub model_path: PathBuf,
    /// The model's content hash and the datasets the run read, recorded when
    /// it started (absent for runs from before provenance was kept).
    pub model_hash: Option<String>,
    pub datasets: Vec<RunDataset>,
    pub template: PromptFormat,
    pub profile: Profile,
    pub settings: Settings,
    pub steer: Option<SteerReport>,
    pub dist: Option<DistReport>,
    pub valid: Option<ValidReport>,
    pub skipped: Vec<Skipped>,
    /// Planned (family, task) pairs not finished (a cancelled or failed run).
    pub unfinished: usize,
}

/// Which tasks the selectors name. An empty list means the held-out tasks.
fn select_tasks(store: &Store, selectors: &[String]) -> Result<Vec<TaskSummary>> {
    let all = store.tasks(&TaskFilter::default())?;
    if all.is_empty() {
        return Err(
            AppError::new(ErrorCode::NotFound, "the store holds no tasks")
                .with_fix(Fix::Import)
                .into(),
        );
    }
    let selectors: Vec<String> = if selectors.is_empty() {
        vec!["held-out".into()]
    } else {
        selectors.to_vec()
    };
    let mut chosen: Vec<TaskSummary> = Vec::new();
    for sel in &selectors {
        let matched: Vec<&TaskSummary> = if sel == "all" {
            all.iter().collect()
        } else if let Some(split) = Split::parse(sel) {
            all.iter().filter(|t| t.split == split.as_str()).collect()
        } else {
            let by_name: Vec<&TaskSummary> = all.iter().filter(|t| &t.name == sel).collect();
            if !by_name.is_empty() {
                by_name
            } else {
                all.iter()
                    .filter(|t| &t.category == sel || &t.dataset == sel)
                    .collect()
            }
        };
        if matched.is_empty() {
            return Err(AppError::not_found(
                format!(
                    "no task, category or dataset {sel:?} (`held-out`, `train` and `all` select by split)"
                ),
                Listing::Tasks,
            )
            .into());
        }
        for t in matched {
            // A task imported twice under one name: the newest import wins.
            chosen.retain(|c| c.name != t.name);
            chosen.push(t.clone());
        }
    }
    Ok(chosen)
}

fn plan(tasks: &[TaskSummary], families: &[Family]) -> Vec<Planned> {
    let mut plan = Vec::new();
    for &family in families {
        for t in tasks {
            let has = match family {
                Family::Steer => t.sequences > 0,
                Family::Dist => t.distribution_items > 0,
                Family::Valid => t.validity_tasks > 0,
            };
            if has {
                plan.push(Planned {
                    family,
                    task: t.name.clone(),
                    task_id: t.id,
                });
            }
        }
    }
    plan
}

/// The row JSON with its task added in front.
/// Stored rows of one task, read back as `T`.
fn task_rows<T: serde::de::DeserializeOwned>(
    task: &str,
    rows: Vec<Value>,
) -> serde_json::Result<Vec<TaskRow<T>>> {
    rows.into_iter()
        .map(|r| {
            Ok(TaskRow {
                task: task.to_string(),
                row: serde_json::from_value(r)?,
            })
        })
        .collect()
}

/// Where the Hugging Face cache keeps google/gemma-3-1b-it's tokenizer (the
/// one the reference measures k with), if it is there.
fn cached_gemma_tokenizer() -> Option<PathBuf> {
    let hub = std::env::var_os("HF_HUB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
        })?;
    let snapshots = hub.join("models--google--gemma-3-1b-it/snapshots");
    std::fs::read_dir(snapshots)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("tokenizer.json").exists())
}

impl Studio {
    /// The tokenizer that measures steerability's k for this run: the
    /// settings' folder; else gemma-3-1b-it's from the Hugging Face cache (the
    /// reference's); else the default model's; else the evaluated model's.
    pub(crate) fn k_tokenizer(
        &self,
        settings: &Settings,
        own: &spectrum_lm::tokenizer::TextTokenizer,
    ) -> Result<spectrum_eval::steer::KTokenizer> {
        use spectrum_lm::tokenizer::TextTokenizer;
        let load = |dir: &Path, name: String| -> Result<spectrum_eval::steer::KTokenizer> {
            let tokenizer = TextTokenizer::from_dir(dir)
                .with_context(|| format!("k tokenizer {}", dir.display()))?;
            Ok(spectrum_eval::steer::KTokenizer { tokenizer, name })
        };
        if let Some(dir) = &settings.k_tokenizer {
            return load(Path::new(dir), dir.clone());
        }
        if let Some(dir) = cached_gemma_tokenizer() {
            return load(&dir, "google/gemma-3-1b-it (the reference's)".into());
        }
        let default = self.models_dir().join(spectrum_lm::default_model::NAME);
        if default.join("tokenizer.json").exists() {
            return load(&default, spectrum_lm::default_model::NAME.into());
        }
        // Named without the path: a served model and its local folder have
        // the same tokenizer, hence the same selection.
        Ok(spectrum_eval::steer::KTokenizer {
            tokenizer: own.clone(),
            name: "the evaluated model's own (no k tokenizer was given, and neither gemma-3-1b-it in the Hugging Face cache nor the default model was there)".into(),
        })
    }

    /// Evaluates a model: every planned (family, task) in turn, each task's
    /// results stored as soon as it finishes, so a cancel keeps finished tasks.
    pub fn evaluate(
        &self,
        request: &EvalRequest,
        progress: &mut dyn FnMut(&EvalProgress),
        note: &mut dyn FnMut(&str),
        cancel: &AtomicBool,
    ) -> Result<EvalReport> {
        request.settings.validate()?;
        if request.families.is_empty() {
            return Err(Problem::setting(
                "no evaluation family chosen",
                "family",
                "one or more of steer, dist and valid",
            )
            .into());
        }
        // A device this build or machine lacks is refused before a run is recorded.
        request.device.device()?;
        let mut store = self.store()?;
        let tasks = select_tasks(&store, &request.tasks)?;
        let plan = plan(&tasks, &request.families);
        if plan.is_empty() {
            let names: Vec<&str> = request.families.iter().map(|f| f.as_str()).collect();
            return Err(AppError::not_found(
                format!(
                    "none of the {} selected tasks has data for {} (steer needs sequences, dist distribution items, valid diverse-valid definitions)",
                    tasks.len(),
                    names.join(", ")
                ),
                Listing::Tasks,
            )
            .into());
        }
        let model_path = self.resolve_model(&request.model, note)?;
        let base = store
            .models()?
            .into_iter()
            .find(|m| Path::new(&m.path) == model_path);
        let model_name = base
            .as_ref()
            .map_or_else(|| model_path.display().to_string(), |m| m.name.clone());
        let format_name = request.format.as_str();
        let name = unique_name(
            &store,
            request
                .name
                .clone()
                .unwrap_or_else(|| format!("eval-{model_name}-{format_name}")),
        )?;
        let stored = StoredEval {
            model: model_name,
            model_path: model_path.clone(),
            template: request.format,
            profile: request.profile,
            settings: request.settings.clone(),
            families: request.families.clone(),
            tasks: request.tasks.clone(),
            plan,
            device: request.device,
            definitions: Some(spectrum_eval::DEFINITIONS.into()),
        };
        let spec = serde_json::to_value(&stored)?;
        let (run, lease) = store.create_run(&NewRun {
            kind: RunKind::Eval,
            name,
            spec_hash: spec_hash(&spec.to_string()),
            spec,
            model_hash: crate::models::model_hash(base.as_ref(), &model_path),
            model_id: base.map(|m| m.id),
            tasks: tasks.iter().map(|t| t.id).collect(),
            seed: request.settings.seed as i64,
            device: request.device,
            app_version: env!("CARGO_PKG_VERSION").into(),
            out_dir: String::new(),
            total_steps: stored.plan.len() as i64,
        })?;
        note(&format!(
            "evaluation run {} ({}): {} task evaluations, profile {}, template {format_name}",
            run.id,
            run.name,
            stored.plan.len(),
            request.profile.as_str()
        ));
        self.execute_eval(&mut store, &run, &stored, &lease, progress, note, cancel)
    }

    /// Continues a cancelled, failed or killed evaluation: the tasks it finished
    /// are kept, the others run with the run's own settings.
    pub fn resume_eval(
        &self,
        run: &str,
        progress: &mut dyn FnMut(&EvalProgress),
        note: &mut dyn FnMut(&str),
        cancel: &AtomicBool,
    ) -> Result<EvalReport> {
        let mut store = self.store()?;
        let (record, lease) = crate::runs::claim(&mut store, run, RunKind::Eval)?;
        let stored = StoredEval::of(&record)?;
        if stored.definitions.as_deref() != Some(spectrum_eval::DEFINITIONS) {
            return Err(AppError::bad_input(format!(
                "evaluation run {} ({}) was started with other metric definitions ({}); its remaining tasks would not be comparable with the finished ones",
                record.id,
                record.name,
                stored
                    .definitions
                    .as_deref()
                    .unwrap_or("from before definitions were recorded")
            ))
            .with_fix(Fix::Say {
                text: "start a new evaluation with the same settings".into(),
            })
            .into());
        }
        stored.device.device()?;
        store.set_run_status(record.id, RunStatus::Running, None)?;
        note(&format!(
            "resuming evaluation run {} ({}): {} of {} task evaluations done",
            record.id,
            record.name,
            store.eval_tasks(record.id)?.len(),
            stored.plan.len()
        ));
        self.execute_eval(&mut store, &record, &stored, &lease, progress, note, cancel)
    }

    /// Evaluates a run this process holds the lease of, and records how it ended.
    #[allow(clippy::too_many_arguments)]
    fn execute_eval(
        &self,
        store: &mut Store,
        run: &RunRecord,
        stored: &StoredEval,
        lease: &Lease,
        progress: &mut dyn FnMut(&EvalProgress),
        note: &mut dyn FnMut(&str),
        cancel: &AtomicBool,
    ) -> Result<EvalReport> {
        let result = self.run_plan(store, run, stored, lease, progress, note, cancel);
        match &result {
            Ok(()) => store.set_run_status(run.id, RunStatus::Finished, None)?,
            Err(e) if e.downcast_ref::<Cancelled>().is_some() => {
                store.set_run_status(run.id, RunStatus::Cancelled, None)?
            }
            Err(e) => store.set_run_status(run.id, RunStatus::Failed, Some(&format!("{e:#}")))?,
        }
        result?;
        self.eval_report(&run.id.to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_plan(
        &self,
        store: &mut Store,
        run: &RunRecord,
        stored: &StoredEval,
        lease: &Lease,
        progress: &mut dyn FnMut(&EvalProgress),
        note: &mut dyn FnMut(&str),
        cancel: &AtomicBool,
    ) -> Result<()> {
        note(&format!("loading {}", stored.model_path.display()));
        let mut loaded = crate::models::load_model(&stored.model_path, stored.device)?;
        let tok = loaded.tokenizer.clone();
        let k_tokenizer = self.k_tokenizer(&stored.settings, &tok)?;
        let mut ev = Evaluator {
            lm: loaded.lm.as_mut(),
            tok: &tok,
            format: stored.template,
            settings: &stored.settings,
            k_tokenizer: &k_tokenizer,
            cancel,
        };
        let total = stored.plan.len();
        let finished: Vec<(String, String)> = store
            .eval_tasks(run.id)?
            .into_iter()
            .map(|t| (t.family, t.task))
            .collect();
        for (i, planned) in stored.plan.iter().enumerate() {
            let (family, task) = (planned.family, planned.task.as_str());
            if finished.contains(&(family.as_str().to_string(), task.to_string())) {
                continue;
            }
            let mut report = |done: usize, units: usize| {
                progress(&EvalProgress {
                    run_id: run.id,
                    family,
                    task: task.to_string(),
                    done,
                    total: units,
                    tasks_done: i,
                    tasks_total: total,
                })
            };
            report(0, 1);
            let outcome = match family {
                Family::Steer => {
                    let sequences: Vec<EvalSequence> = store
                        .task_sequences_with_ids(planned.task_id)?
                        .into_iter()
                        .map(|(id, messages)| EvalSequence { id, messages })
                        .collect();
                    spectrum_eval::steer::evaluate(&mut ev, task, &sequences, &mut report)
                        .map(|r| (to_json(&r.summary), r.outputs.iter().map(to_json).collect()))
                }
                Family::Dist => {
                    let items = store.task_distribution_items(planned.task_id)?;
                    spectrum_eval::dist::evaluate(&mut ev, task, &items, &mut report)
                        .map(|r| (to_json(&r.summary), r.items.iter().map(to_json).collect()))
                }
                Family::Valid => {
                    let defs = store.task_validity(planned.task_id)?;
                    let Some(def) = defs.first() else {
                        continue;
                    };
                    if defs.len() > 1 {
                        note(&format!(
                            "{task}: {} diverse-valid definitions, the first is used",
                            defs.len()
                        ));
                    }
                    spectrum_eval::valid::evaluate(&mut ev, def, &mut report)
                        .map(|r| (to_json(&r.summary), r.samples.iter().map(to_json).collect()))
                }
            };
            let (summary, rows): (Value, Vec<Value>) = match outcome {
                Ok(done) => done,
                Err(EvalError::Cancelled) => return Err(Cancelled("the evaluation").into()),
                Err(EvalError::Task { task, reason }) => {
                    note(&format!("{} {task}: skipped: {reason}", family.as_str()));
                    (
                        serde_json::json!({ "task": task, "skipped": reason }),
                        Vec::new(),
                    )
                }
                Err(e) => return Err(e).with_context(|| format!("{} {task}", family.as_str())),
            };
            // Nothing is written once another process has taken the run over.
            lease.check()?;
            store.record_eval_task(run.id, family.as_str(), task, &summary, &rows)?;
            store.set_run_progress(run.id, i as i64 + 1, total as i64, "")?;
        }
        Ok(())
    }

    /// The prompt an evaluation run scored or sampled for `task`: the run's
    /// model, template and settings; `pick` names the sequence or item (its id
    /// in the run's rows), `setting` the validity prompt.
    pub fn run_prompt(
        &self,
        run: &str,
        family: Family,
        task: &str,
        pick: Option<String>,
        setting: Option<spectrum_eval::valid::Setting>,
    ) -> Result<crate::PromptView> {
        let record = find_run(&self.store()?, run)?;
        not_an_evaluation(&record)?;
        let stored = StoredEval::of(&record)?;
        let request = crate::PromptRequest {
            model: stored.model_path.display().to_string(),
            task: task.to_string(),
            family: Some(family),
            format: stored.template,
            setting,
            index: 0,
            pick,
            settings: stored.settings,
        };
        self.prompt(&request, &mut |_| {})
    }

    /// A finished evaluation of the same model, template, families, tasks and
    /// settings as `request`, if there is one (the demo reuses it).
    pub fn finished_eval(&self, request: &EvalRequest) -> Result<Option<EvalReport>> {
        let store = self.store()?;
        let path = self.resolve_model(&request.model, &mut |_| {})?;
        for run in store.runs(Some(RunKind::Eval))? {
            let Ok(s) = StoredEval::of(&run) else {
                continue;
            };
            if run.status == RunStatus::Finished
                && s.model_path == path
                && s.template == request.format
                && s.settings == request.settings
                && s.families == request.families
                && s.tasks == request.tasks
            {
                return self.eval_report(&run.id.to_string()).map(Some);
            }
        }
        Ok(None)
    }

    /// An evaluation run and all its results, as stored.
    pub fn eval_report(&self, run: &str) -> Result<EvalReport> {
        let store = self.store()?;
        let record = find_run(&store, run)?;
        not_an_evaluation(&record)?;
        let stored = StoredEval::of(&record)?;
        let finished = store.eval_tasks(record.id)?;
        let mut skipped = Vec::new();
        let (mut steer, mut dist, mut valid) = (Vec::new(), Vec::new(), Vec::new());
        let (mut outputs, mut items, mut samples) = (Vec::new(), Vec::new(), Vec::new());
        for t in &finished {
            let family = Family::parse(&t.family).context("unknown family in the store")?;
            if let Some(reason) = t.summary.get("skipped").and_then(Value::as_str) {
                skipped.push(Skipped {
                    family,
                    task: t.task.clone(),
                    reason: reason.to_string(),
                });
                continue;
            }
            let rows = store.eval_rows(record.id, &t.family, &t.task)?;
            let corrupt = || {
                format!(
                    "run {}: the {} summary of {} is not readable",
                    record.id, t.family, t.task
                )
            };
            match family {
                Family::Steer => {
                    steer.push(
                        serde_json::from_value::<SteerSummary>(t.summary.clone())
                            .with_context(corrupt)?,
                    );
                    outputs.extend(task_rows(&t.task, rows).with_context(corrupt)?);
                }
                Family::Dist => {
                    dist.push(
                        serde_json::from_value::<DistSummary>(t.summary.clone())
                            .with_context(corrupt)?,
                    );
                    items.extend(task_rows(&t.task, rows).with_context(corrupt)?);
                }
                Family::Valid => {
                    valid.push(
                        serde_json::from_value::<ValidSummary>(t.summary.clone())
                            .with_context(corrupt)?,
                    );
                    samples.extend(task_rows(&t.task, rows).with_context(corrupt)?);
                }
            }
        }
        let over = |xs: Vec<f64>| mean_se(&xs);
        Ok(EvalReport {
            run: record.id,
            name: record.name.clone(),
            status: record.status,
            model: stored.model.clone(),
            model_path: stored.model_path.clone(),
            model_hash: record.model_hash.clone(),
            datasets: record.datasets.clone(),
            template: stored.template,
            profile: stored.profile,
            unfinished: stored.plan.len().saturating_sub(finished.len()),
            settings: stored.settings,
            steer: (!steer.is_empty()).then(|| SteerReport {
                loss: over(steer.iter().map(|s| s.loss.mean).collect()),
                acc: over(steer.iter().map(|s| s.acc.mean).collect()),
                curve: crate::figures::steer_mean_curve(&steer),
                tasks: steer,
                outputs,
            }),
            dist: (!dist.is_empty()).then(|| DistReport {
                js: over(dist.iter().map(|s| s.js.mean).collect()),
                tv: over(dist.iter().map(|s| s.tv.mean).collect()),
                coverage: over(dist.iter().map(|s| s.coverage.mean).collect()),
                js_histogram: crate::figures::js_histogram(&items),
                tasks: dist,
                items,
            }),
            valid: (!valid.is_empty()).then(|| {
                let overall = valid_overall(&valid);
                ValidReport {
                    frontier: crate::figures::validity_frontier(&overall),
                    overall,
                    tasks: valid,
                    samples,
                }
            }),
            skipped,
        })
    }
}

fn to_json(x: &impl Serialize) -> Value {
    serde_json::to_value(x).unwrap_or(Value::Null)
}

fn spec_hash(text: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}

/// METHOD.md §4.3: each (setting, temperature) averaged over tasks with equal weight.
fn valid_overall(tasks: &[ValidSummary]) -> Vec<ValidOverall> {
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
