//! Evaluation use cases: run the three families of METHOD.md §4 on a model,
//! keep every output, item and sample in the store, read runs back.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use spectrum_core::Problem;
use spectrum_eval::{Evaluator, Family, Profile, Settings};
use spectrum_lm::{Backend, DeviceSpec, PromptFormat};
use spectrum_store::{
    Lease, NewRun, RunKind, RunRecord, RunStatus, Store, TaskFilter, TaskSummary,
};
use spectrum_suite::Split;

use crate::runs::{find_run, unique_name};
use crate::{AppError, Cancelled, ErrorCode, Fix, Listing, Studio};
use crate::{ModelSource, RunRef};

pub(crate) mod family;
pub mod figures;
pub(crate) mod prompt;
mod results;

pub use family::present::ChartMetric;
pub use prompt::{PromptOption, PromptRequest, PromptView, TextVerdict};
pub use results::*;

/// What to evaluate, on what, how.
#[derive(Debug, Clone, Deserialize, ts_rs::TS)]
pub struct EvalRequest {
    pub model: ModelSource,
    pub families: Vec<Family>,
    /// Task selectors: `held-out` (the default when empty), `train`, `all`,
    /// task names, categories or dataset names.
    pub tasks: Vec<String>,
    pub format: PromptFormat,
    pub profile: Profile,
    /// The profile's settings with the user's overrides; `None`: the profile's own.
    pub settings: Option<Settings>,
    pub device: DeviceSpec,
    pub name: Option<String>,
}

impl EvalRequest {
    /// The settings it runs with: the edited ones, else the profile's.
    pub fn settings(&self) -> Settings {
        self.settings
            .clone()
            .unwrap_or_else(|| self.profile.settings())
    }
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
    pub(crate) model: String,
    pub(crate) model_path: PathBuf,
    pub(crate) template: PromptFormat,
    pub(crate) profile: Profile,
    pub(crate) settings: Settings,
    pub(crate) families: Vec<Family>,
    pub(crate) tasks: Vec<String>,
    plan: Vec<Planned>,
    #[serde(default)]
    pub(crate) device: DeviceSpec,
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
            all.iter().filter(|t| t.split == split).collect()
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
        let settings = request.settings();
        settings.validate()?;
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
            settings: settings.clone(),
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
            seed: settings.seed as i64,
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
        run: &RunRef,
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
        self.eval_report(&RunRef::Id(run.id))
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
        let finished: Vec<(Family, String)> = store
            .eval_tasks(run.id)?
            .into_iter()
            .map(|t| (t.family, t.task))
            .collect();
        for (i, planned) in stored.plan.iter().enumerate() {
            let (family, task) = (planned.family, planned.task.as_str());
            if finished.contains(&(family, task.to_string())) {
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
            let recorded = family::run_task(
                family,
                &mut ev,
                store,
                planned.task_id,
                task,
                &mut report,
                note,
            )?;
            let Some((outcome, rows)) = recorded else {
                continue;
            };
            // Nothing is written once another process has taken the run over.
            lease.check()?;
            store.record_eval_task(run.id, family, task, &outcome, &rows)?;
            store.set_run_progress(run.id, i as i64 + 1, total as i64, "")?;
        }
        Ok(())
    }

    /// The prompt an evaluation run scored or sampled for `task`: the run's
    /// model, template and settings; `pick` names the sequence or item (its id
    /// in the run's rows), `setting` the validity prompt.
    pub fn run_prompt(
        &self,
        run: &RunRef,
        family: Family,
        task: &str,
        pick: Option<String>,
        setting: Option<spectrum_eval::valid::Setting>,
    ) -> Result<crate::PromptView> {
        let record = find_run(&self.store()?, run)?;
        not_an_evaluation(&record)?;
        let stored = StoredEval::of(&record)?;
        let request = crate::PromptRequest {
            model: ModelSource::Folder {
                path: stored.model_path.clone(),
            },
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
                && s.settings == request.settings()
                && s.families == request.families
                && s.tasks == request.tasks
            {
                return self.eval_report(&RunRef::Id(run.id)).map(Some);
            }
        }
        Ok(None)
    }
}

fn spec_hash(text: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}
