//! Training use cases: start a Spectrum Tuning run, resume it, list and show
//! runs, export what they produced. The loop lives in `spectrum-train`; this
//! file resolves the tasks and the model, feeds the loop from the store, and
//! writes its metrics back as they come.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use spectrum_core::Problem;
use spectrum_store::{
    EvalMetrics, Lease, ModelRecord, NewRun, RunKind, RunRecord, RunStatus, StepMetrics, Store,
    TaskFilter, TaskSummary,
};
use spectrum_suite::{Message, Rng, Split};
use spectrum_train::{
    Checkpoint, Event, Method, RunSpec, SourceSequence, TrainError, TrainJob, checkpoint, export,
};

use crate::runs::{find_run, unique_name};
use crate::{AppError, ErrorCode, Fix, Listing, Studio};
use crate::{ModelSource, RunRef};

/// What `train` needs: the settings, the base model (as `--model` takes it)
/// and, optionally, the name of the run and of the tuned model it registers.
#[derive(Debug, Clone, Deserialize, ts_rs::TS)]
pub struct TrainRequest {
    pub spec: RunSpec,
    pub model: ModelSource,
    /// The run's name (default: MODEL-spectrum); also the tuned model's.
    pub name: Option<String>,
    /// For a base model without the spectrum format's turn tokens: the
    /// instruct sibling whose rows for them are copied (default: the mean row).
    pub init_tokens_from: Option<ModelSource>,
}

/// What a run record's `spec` column holds: the settings and what they resolved to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredRun {
    pub(crate) spec: RunSpec,
    pub(crate) model_path: PathBuf,
    pub(crate) train_tasks: Vec<i64>,
    pub(crate) held_out_tasks: Vec<i64>,
}

impl StoredRun {
    pub(crate) fn of(record: &RunRecord) -> Result<StoredRun> {
        serde_json::from_value(record.spec.clone()).with_context(|| {
            format!(
                "run {}: its stored spec is not readable by this version",
                record.id
            )
        })
    }
}

/// Progress of a training job, for progress bars and the desktop app.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainProgress {
    Started {
        run: i64,
        name: String,
        start_step: usize,
        total_steps: usize,
        trainable_parameters: usize,
        train_sequences: usize,
    },
    Step {
        total_steps: usize,
        /// Seconds left at this session's pace.
        eta_s: f64,
        metrics: StepMetrics,
    },
    Eval(EvalMetrics),
    Checkpoint {
        step: usize,
        path: PathBuf,
    },
    /// The finished run's model is being written and registered.
    Registering {
        name: String,
    },
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct TrainOutcome {
    pub run: RunRecord,
    pub cancelled: bool,
    /// The registered tuned model (absent when cancelled).
    pub model: Option<ModelRecord>,
    pub evals: Vec<EvalMetrics>,
}

impl Studio {
    /// Where a run keeps its checkpoints and the model it produces.
    pub(crate) fn run_dir(&self, id: i64) -> PathBuf {
        self.store_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("runs")
            .join(id.to_string())
    }

    /// Starts a Spectrum Tuning run and trains until it finishes or `cancel` is set.
    pub fn train(
        &self,
        request: &TrainRequest,
        progress: &mut dyn FnMut(&TrainProgress),
        note: &mut dyn FnMut(&str),
        cancel: &AtomicBool,
    ) -> Result<TrainOutcome> {
        let (run, stored, lease) = self.create_run(request, true, note)?;
        self.execute(run, stored, &lease, progress, cancel)
    }

    /// Records a training run (spec, tasks, model) without training: for
    /// `spectrum export-job`, or `--resume` later. It is stored as stopped
    /// before its first step (status `cancelled`, step 0).
    pub fn plan_run(
        &self,
        request: &TrainRequest,
        note: &mut dyn FnMut(&str),
    ) -> Result<RunRecord> {
        // A planned run trains elsewhere (a cluster): this machine's memory
        // does not matter.
        let (run, _, lease) = self.create_run(request, false, note)?;
        let mut store = self.store()?;
        store.set_run_status(run.id, RunStatus::Cancelled, None)?;
        drop(lease);
        store
            .run(run.id)?
            .context("the run vanished from the store")
    }

    /// Records a run; `check_memory` refuses one that cannot fit in this
    /// machine's free memory (with the settings that would), before anything
    /// is recorded.
    fn create_run(
        &self,
        request: &TrainRequest,
        check_memory: bool,
        note: &mut dyn FnMut(&str),
    ) -> Result<(RunRecord, StoredRun, Lease)> {
        let spec = &request.spec;
        spec.validate().context("run spec")?;
        // A device this build or machine lacks is refused before a run is recorded.
        spectrum_lm::Backend::device(spec.device)?;
        let mut model_path = self.resolve_model(&request.model, note)?;
        crate::models::require_weights(&model_path)?;
        if spec.format == spectrum_lm::PromptFormat::Spectrum
            && let Some(extended) =
                self.add_turn_tokens(&request.model, request.init_tokens_from.as_ref(), note)?
        {
            model_path = PathBuf::from(extended.path);
        }
        if check_memory {
            let fit = crate::MemoryFit::of(&model_path, spec)?;
            note(&fit.summary());
            if !fit.fits {
                return Err(fit.refusal().into());
            }
        }
        let mut store = self.store()?;
        let (train_tasks, held_out_tasks) = resolve_tasks(&store, &spec.tasks)?;
        if held_out_tasks.is_empty() {
            note(
                "the selected datasets have no held-out tasks with sequences: the held-out loss will not be measured",
            );
        }
        let base = store
            .models()?
            .into_iter()
            .find(|m| Path::new(&m.path) == model_path);
        let name = unique_name(
            &store,
            request.name.clone().unwrap_or_else(|| {
                let base_name = base.as_ref().map_or_else(
                    || {
                        model_path
                            .file_name()
                            .map_or("model".into(), |n| n.to_string_lossy().into_owned())
                    },
                    |m| m.name.clone(),
                );
                format!("{base_name}-spectrum")
            }),
        )?;
        let stored = StoredRun {
            spec: spec.clone(),
            model_path: model_path.clone(),
            train_tasks: train_tasks.iter().map(|t| t.id).collect(),
            held_out_tasks: held_out_tasks.iter().map(|t| t.id).collect(),
        };
        let (run, lease) = store.create_run(&NewRun {
            kind: RunKind::Train,
            name,
            spec: serde_json::to_value(&stored)?,
            spec_hash: spec.hash(),
            model_hash: crate::models::model_hash(base.as_ref(), &model_path),
            model_id: base.map(|m| m.id),
            tasks: stored
                .train_tasks
                .iter()
                .chain(&stored.held_out_tasks)
                .copied()
                .collect(),
            seed: spec.seed as i64,
            device: spec.device,
            app_version: env!("CARGO_PKG_VERSION").into(),
            out_dir: String::new(),
            total_steps: 0,
        })?;
        Ok((run, stored, lease))
    }

    /// Continues an unfinished run from its newest checkpoint (after a crash, a
    /// kill or a cancel); with a fixed seed on the CPU the losses equal those of
    /// an uninterrupted run.
    pub fn resume(
        &self,
        run: &RunRef,
        progress: &mut dyn FnMut(&TrainProgress),
        cancel: &AtomicBool,
    ) -> Result<TrainOutcome> {
        let mut store = self.store()?;
        let (record, lease) = crate::runs::claim(&mut store, run, RunKind::Train)?;
        let stored = StoredRun::of(&record)?;
        let dir = self.run_dir(record.id);
        let step = match checkpoint::latest(&dir.join("checkpoints"))? {
            Some(c) => c.state()?.step,
            None => 0,
        };
        store.rewind_run(record.id, step as i64)?;
        store.set_run_status(record.id, RunStatus::Running, None)?;
        drop(store);
        self.execute(record, stored, &lease, progress, cancel)
    }

    /// Trains a run this process holds the lease of, and records how it ended.
    fn execute(
        &self,
        run: RunRecord,
        stored: StoredRun,
        lease: &Lease,
        progress: &mut dyn FnMut(&TrainProgress),
        cancel: &AtomicBool,
    ) -> Result<TrainOutcome> {
        let result = self.execute_inner(&run, &stored, lease, progress, cancel);
        let mut store = self.store()?;
        match &result {
            Ok(true) => {}
            Ok(false) => store.set_run_status(run.id, RunStatus::Cancelled, None)?,
            Err(e) => store.set_run_status(run.id, RunStatus::Failed, Some(&format!("{e:#}")))?,
        }
        let cancelled = !result?;
        let record = store
            .run(run.id)?
            .context("the run vanished from the store")?;
        let model = match &record.result_model {
            Some(name) if !cancelled => store.find_model(name)?,
            _ => None,
        };
        Ok(TrainOutcome {
            evals: store.run_evals(run.id)?,
            run: record,
            cancelled,
            model,
        })
    }

    /// Trains; `Ok(false)` when cancelled.
    fn execute_inner(
        &self,
        run: &RunRecord,
        stored: &StoredRun,
        lease: &Lease,
        progress: &mut dyn FnMut(&TrainProgress),
        cancel: &AtomicBool,
    ) -> Result<bool> {
        let mut store = self.store()?;
        let spec = &stored.spec;
        let (train, held_out) = load_data(&store, stored)?;
        let dir = self.run_dir(run.id);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let job = TrainJob {
            spec,
            model_dir: &stored.model_path,
            train: &train,
            held_out: &held_out,
            run_dir: &dir,
        };
        // The pace is measured from the first step on (loading the model and the
        // held-out loss before training are not steps); later evaluations count.
        let mut session = Instant::now();
        let mut first_step = None;
        let mut total = 0;
        let mut on_event = |e: Event| -> spectrum_train::Result<()> {
            let events_error = |e: spectrum_store::StoreError| TrainError::Events(Box::new(e));
            // Nothing is written once another process has taken the run over.
            lease.check().map_err(events_error)?;
            match e {
                Event::Started {
                    start_step,
                    total_steps,
                    trainable_parameters,
                    train_sequences,
                    ..
                } => {
                    total = total_steps;
                    store
                        .set_run_progress(
                            run.id,
                            start_step as i64,
                            total_steps as i64,
                            &dir.display().to_string(),
                        )
                        .map_err(events_error)?;
                    progress(&TrainProgress::Started {
                        run: run.id,
                        name: run.name.clone(),
                        start_step,
                        total_steps,
                        trainable_parameters,
                        train_sequences,
                    });
                }
                Event::Step(m) => {
                    let metrics = StepMetrics {
                        step: m.step as i64,
                        loss: m.loss,
                        lr: m.lr,
                        grad_norm: m.grad_norm,
                        tokens: m.tokens as i64,
                        tokens_per_s: m.tokens_per_s,
                        elapsed_s: m.elapsed_s,
                    };
                    store.record_step(run.id, &metrics).map_err(events_error)?;
                    let first = *first_step.get_or_insert(m.step - 1);
                    let per_step = session.elapsed().as_secs_f64() / (m.step - first) as f64;
                    progress(&TrainProgress::Step {
                        total_steps: total,
                        eta_s: per_step * (total - m.step) as f64,
                        metrics,
                    });
                }
                Event::Eval(m) => {
                    if first_step.is_none() {
                        session = Instant::now();
                    }
                    let metrics = EvalMetrics {
                        step: m.step as i64,
                        loss: m.loss,
                        acc: m.acc,
                        outputs: m.outputs as i64,
                    };
                    store.record_eval(run.id, &metrics).map_err(events_error)?;
                    progress(&TrainProgress::Eval(metrics));
                }
                Event::Checkpoint { step, path } => {
                    progress(&TrainProgress::Checkpoint { step, path })
                }
            }
            Ok(())
        };
        let outcome = spectrum_train::train(&job, &mut on_event, cancel)?;
        if outcome.cancelled {
            return Ok(false);
        }
        progress(&TrainProgress::Registering {
            name: run.name.clone(),
        });
        let ckpt = Checkpoint {
            dir: outcome.checkpoint,
        };
        let model_dir = match &spec.method {
            Method::Lora(_) => {
                let out = dir.join("adapter");
                export::export_peft(&ckpt, &spec.method, &stored.model_path, &out)?;
                out
            }
            Method::Full => {
                let out = dir.join("model");
                export::export_merged(&ckpt, &spec.method, &stored.model_path, &out)?;
                out
            }
        };
        let model = self.register(&model_dir, &run.name, &format!("run:{}", run.id))?;
        let mut store = self.store()?;
        store.set_run_result_model(run.id, model.id)?;
        store.set_run_status(run.id, RunStatus::Finished, None)?;
        Ok(true)
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        Ok(self.store()?.runs(None)?)
    }

    /// Writes a run's newest checkpoint as a PEFT adapter folder and/or a
    /// merged Hugging Face folder.
    pub fn export_run(
        &self,
        run: &RunRef,
        peft: Option<&Path>,
        merged: Option<&Path>,
    ) -> Result<RunRecord> {
        if peft.is_none() && merged.is_none() {
            return Err(Problem::say(
                "nothing to export",
                "name a folder for the PEFT adapter, for the merged model, or both",
            )
            .into());
        }
        let store = self.store()?;
        let record = find_run(&store, run)?;
        let stored = StoredRun::of(&record)?;
        let ckpt =
            checkpoint::latest(&self.run_dir(record.id).join("checkpoints"))?.ok_or_else(|| {
                AppError::bad_input(format!("run {} has no checkpoint yet", record.id)).with_fix(
                    Fix::Resume {
                        run: record.id,
                        run_kind: RunKind::Train,
                    },
                )
            })?;
        for out in [peft, merged].into_iter().flatten() {
            if out.exists()
                && std::fs::read_dir(out)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true)
            {
                return Err(AppError::bad_input(format!(
                    "{}: the folder exists and is not empty; nothing was overwritten",
                    out.display()
                ))
                .with_fix(Fix::Say {
                    text: "choose a new folder".into(),
                })
                .into());
            }
        }
        if let Some(out) = peft {
            export::export_peft(&ckpt, &stored.spec.method, &stored.model_path, out)?;
        }
        if let Some(out) = merged {
            export::export_merged(&ckpt, &stored.spec.method, &stored.model_path, out)?;
        }
        Ok(record)
    }
}

impl Studio {
    /// Writes a training run as a job for a distributed engine (`trl`): its
    /// rendered data exactly as our trainer would use it, and a launcher.
    /// `model` overrides how the engine finds the base model (default: its folder).
    pub fn export_job(
        &self,
        run: &RunRef,
        engine: &str,
        out: &Path,
        model: Option<&str>,
    ) -> Result<spectrum_train::job::JobBundle> {
        if engine != "trl" {
            return Err(Problem::setting(format!("no engine {engine:?}"), "engine", "trl").into());
        }
        let store = self.store()?;
        let record = find_run(&store, run)?;
        if record.kind != RunKind::Train {
            return Err(Problem::say(
                format!(
                    "run {} ({}) is an evaluation; a job is exported from a training run",
                    record.id, record.name
                ),
                "record a training run without starting it (train, no start), and export that",
            )
            .into());
        }
        let stored = StoredRun::of(&record)?;
        if stored.model_path.join("adapter_config.json").is_file() {
            return Err(Problem::say(
                format!(
                    "the base model {} is a LoRA adapter",
                    stored.model_path.display()
                ),
                "export its run's merged model, add that folder as a model, and train on it",
            )
            .into());
        }
        let (train, held_out) = load_data(&store, &stored)?;
        let tokenizer = spectrum_lm::tokenizer::TextTokenizer::from_dir(&stored.model_path)?;
        let model_ref =
            model.map_or_else(|| stored.model_path.display().to_string(), str::to_string);
        let input = spectrum_train::job::JobInput {
            run_id: record.id,
            run_name: &record.name,
            spec: &stored.spec,
            model: &model_ref,
            tokenizer: &tokenizer,
            train: &train,
            held_out: &held_out,
        };
        Ok(spectrum_train::job::write_trl_bundle(&input, out)?)
    }
}

/// The train tasks a selection names, and the held-out tasks of the same
/// datasets (for the held-out loss). Held-out tasks are never trained on.
fn resolve_tasks(
    store: &Store,
    sel: &spectrum_train::TaskSelection,
) -> Result<(Vec<TaskSummary>, Vec<TaskSummary>)> {
    let dataset_id = match &sel.dataset {
        Some(d) => Some(
            store
                .find_dataset(d)?
                .ok_or_else(|| AppError::not_found(format!("no dataset {d:?}"), Listing::Datasets))?
                .id,
        ),
        None => None,
    };
    let all = store.tasks(&TaskFilter {
        dataset_id,
        split: None,
    })?;
    if all.is_empty() {
        return Err(AppError::new(
            ErrorCode::NotFound,
            "no tasks to train on: the store holds none",
        )
        .with_fix(Fix::Import)
        .into());
    }
    let is_train = |t: &TaskSummary| t.split == Split::Train;
    for name in &sel.names {
        let matching: Vec<&TaskSummary> = all.iter().filter(|t| &t.name == name).collect();
        if matching.is_empty() {
            return Err(AppError::not_found(
                format!("no task {name:?} among the train tasks"),
                Listing::Tasks,
            )
            .into());
        }
        if matching.iter().any(|t| !is_train(t)) {
            return Err(Problem::setting(
                format!(
                    "task {name:?} is held out: held-out tasks are kept for evaluation and are never trained on"
                ),
                "tasks",
                "leave it out; the task list's train split shows the tasks to train on",
            )
            .into());
        }
    }
    for category in &sel.categories {
        if !all.iter().any(|t| &t.category == category && is_train(t)) {
            return Err(AppError::not_found(
                format!("no train task in category {category:?}"),
                Listing::Tasks,
            )
            .into());
        }
    }
    let train: Vec<TaskSummary> = all
        .iter()
        .filter(|t| is_train(t) && t.sequences > 0)
        .filter(|t| {
            (sel.names.is_empty() && sel.categories.is_empty())
                || sel.names.contains(&t.name)
                || sel.categories.contains(&t.category)
        })
        .cloned()
        .collect();
    if train.is_empty() {
        return Err(AppError::new(
            ErrorCode::NotFound,
            "the selected tasks have no sequences to train on (sequences are `messages` rows)",
        )
        .with_fix(Fix::Import)
        .into());
    }
    let datasets: Vec<i64> = train.iter().map(|t| t.dataset_id).collect();
    let held_out = all
        .into_iter()
        .filter(|t| !is_train(t) && t.sequences > 0 && datasets.contains(&t.dataset_id))
        .collect();
    Ok((train, held_out))
}

/// Loads the run's sequences, and the fixed held-out sample (seed 42).
fn load_data(
    store: &Store,
    stored: &StoredRun,
) -> Result<(Vec<SourceSequence>, Vec<Vec<Message>>)> {
    let mut train = Vec::new();
    for &task in &stored.train_tasks {
        let name = store
            .task_name(task)?
            .with_context(|| format!("task {task} of this run was removed from the store (its dataset was deleted); the run cannot continue"))?;
        let fallback: Vec<String> = store
            .task_descriptions(task)?
            .into_iter()
            .filter(|d| !d.contains('{'))
            .collect();
        for messages in store.task_sequences(task)? {
            train.push(SourceSequence {
                task: name.clone(),
                messages,
                fallback_descriptions: fallback.clone(),
            });
        }
    }
    let mut held_out = Vec::new();
    for &task in &stored.held_out_tasks {
        held_out.extend(store.task_sequences(task)?);
    }
    let mut rng = Rng::new(42);
    rng.shuffle(&mut held_out);
    held_out.truncate(stored.spec.eval_sequences);
    Ok((train, held_out))
}

impl Studio {
    /// Whether `request` would fit in memory, without starting it (the Train
    /// view asks as settings change). The model must be registered or a
    /// folder; nothing is installed.
    pub fn train_memory(&self, request: &TrainRequest) -> Result<crate::MemoryFit> {
        let path = match &request.model {
            crate::ModelSource::Registered { .. } | crate::ModelSource::Folder { .. } => {
                self.resolve_model(&request.model, &mut |_| {})?
            }
            other => {
                return Err(crate::Problem::setting(
                    format!("{other} is not installed yet: its size is not known"),
                    "model",
                    "add the model first, then choose it by name",
                )
                .into());
            }
        };
        crate::MemoryFit::of(&path, &request.spec)
    }
}
