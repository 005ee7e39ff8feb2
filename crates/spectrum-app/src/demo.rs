//! The demo: the whole job on the built-in default, as one use case that the
//! CLI (`spectrum demo`) and the desktop app's tour both call. Each step finds
//! what an earlier demo left (the import, the tuning run, the evaluations) and
//! reuses it, so running it again resumes or does nothing.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use serde::Serialize;
use spectrum_store::{ModelRecord, RunKind, RunStatus, TaskSummary};
use spectrum_suite::builtin::SuiteConfig;
use spectrum_suite::import::Progress;

use crate::{
    Cancelled, Comparison, EvalProgress, EvalReport, EvalRequest, Family, ImportOutcome,
    ImportRequest, Length, ModelSource, Profile, PromptFormat, ReportRequest, RunRef, RunSpec,
    Studio, TrainOutcome, TrainProgress, TrainRequest,
};

/// The demo's knobs; `Default` is the demo as the README runs it.
#[derive(Debug, Clone, Default)]
pub struct DemoRequest {
    /// Where the suite's files go (default: `demo-suite/` beside the store).
    pub suite_dir: Option<PathBuf>,
    pub suite: SuiteConfig,
    /// Overrides of the cpu preset's optimiser steps, token budget per
    /// training sequence and held-out sequences.
    pub steps: Option<usize>,
    pub max_tokens: Option<usize>,
    pub eval_sequences: Option<usize>,
    /// Shrinks the final evaluation to N sequences, items and samples per task
    /// at temperature 1 (default: the quick profile).
    pub eval_size: Option<usize>,
    /// The PDF (default: `demo-report.pdf` beside the store).
    pub report: Option<PathBuf>,
}

/// What the demo is doing, for a front end to show.
#[derive(Debug)]
pub enum DemoEvent<'a> {
    /// Step `step` of `of` begins.
    Step {
        step: usize,
        of: usize,
        text: String,
    },
    Note(&'a str),
    Import(Progress),
    Imported {
        outcome: &'a ImportOutcome,
        tasks: &'a [TaskSummary],
    },
    Model(&'a ModelRecord),
    Train(&'a TrainProgress),
    Trained(&'a TrainOutcome),
    Eval(&'a EvalProgress),
    Evaluated(&'a EvalReport),
    Compared(&'a Comparison),
}

/// What the demo produced.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct DemoOutcome {
    pub dataset: i64,
    pub base_model: String,
    pub tuned_model: String,
    pub train_run: i64,
    /// The instruct model with its chat template, then the tuned model with
    /// the spectrum template.
    pub eval_runs: Vec<i64>,
    pub report: PathBuf,
}

const STEPS: usize = 6;

impl DemoRequest {
    /// The cpu preset on the demo's dataset, with the request's overrides.
    pub fn run_spec(&self, dataset: i64) -> RunSpec {
        let mut spec = RunSpec::default();
        spec.tasks.dataset = Some(dataset.to_string());
        if let Some(n) = self.steps {
            spec.length = Length::Steps(n);
        }
        spec.max_tokens = self.max_tokens.unwrap_or(spec.max_tokens);
        spec.eval_sequences = self.eval_sequences.unwrap_or(spec.eval_sequences);
        spec
    }
}

impl Studio {
    /// Builds the built-in suite, imports it, installs the default model,
    /// Spectrum-tunes it, evaluates the instruct and the tuned model on the
    /// held-out tasks, compares them and writes the PDF report.
    pub fn demo(
        &self,
        request: &DemoRequest,
        on: &mut dyn FnMut(DemoEvent<'_>),
        cancel: &AtomicBool,
    ) -> Result<DemoOutcome> {
        let on = RefCell::new(on);
        let emit = |e: DemoEvent<'_>| (on.borrow_mut())(e);
        let step = |step: usize, text: String| {
            emit(DemoEvent::Step {
                step,
                of: STEPS,
                text,
            })
        };
        let beside_store = |name: &str| {
            self.store_path()
                .parent()
                .map_or_else(|| PathBuf::from(name), |p| p.join(name))
        };

        let dir = request
            .suite_dir
            .clone()
            .unwrap_or_else(|| beside_store("demo-suite"));
        let config = &request.suite;
        step(
            1,
            format!(
                "building the built-in suite (seed {}, {} sequences per task) in {}",
                config.seed,
                config.size,
                dir.display()
            ),
        );
        self.build_suite(config, &dir)?;

        step(
            2,
            format!("importing it into {}", self.store_path().display()),
        );
        let import = ImportRequest {
            paths: vec![dir],
            name: Some("builtin-suite".into()),
            options: Default::default(),
        };
        let imported = self.import(&import, &mut |p| emit(DemoEvent::Import(p)), cancel)?;
        let dataset = match &imported {
            ImportOutcome::Imported { dataset, .. }
            | ImportOutcome::AlreadyImported { dataset } => dataset.id,
        };
        let tasks = self.tasks(None, Some(&dataset.to_string()))?;
        emit(DemoEvent::Imported {
            outcome: &imported,
            tasks: &tasks,
        });

        step(
            3,
            "installing the default model (SmolLM2-135M-Instruct)".into(),
        );
        let model = self.install_default_model(&mut |m| emit(DemoEvent::Note(m)))?;
        emit(DemoEvent::Model(&model));

        let spec = request.run_spec(dataset);
        let steps = match spec.length {
            Length::Steps(n) => n.to_string(),
            Length::Epochs(e) => format!("{e} epochs of"),
        };
        step(
            4,
            format!(
                "Spectrum-tuning it: LoRA on the train tasks, {steps} steps (cpu preset: about 10 minutes on 2 cores; stopping keeps a checkpoint, running the demo again resumes)"
            ),
        );
        let (tuned_model, train_run) = self.demo_tuning(&model, spec, &emit, cancel)?;

        let profile = Profile::Quick;
        let mut settings = profile.settings();
        if let Some(n) = request.eval_size {
            (settings.max_sequences, settings.max_items, settings.samples) = (n, n, n);
            settings.temperatures = vec![1.0];
        }
        step(
            5,
            format!(
                "evaluating on the held-out tasks ({} profile): the instruct model with its chat template, then the tuned model with the spectrum template",
                profile.as_str()
            ),
        );
        let mut eval_runs = Vec::new();
        for (model, format) in [
            (model.name.clone(), PromptFormat::Chat),
            (tuned_model.clone(), PromptFormat::Spectrum),
        ] {
            let eval = EvalRequest {
                model: ModelSource::registered(model),
                families: Family::ALL.to_vec(),
                tasks: vec!["held-out".into()],
                format,
                profile,
                settings: Some(settings.clone()),
                device: Default::default(),
                name: None,
            };
            let report = match self.finished_eval(&eval)? {
                Some(report) => {
                    emit(DemoEvent::Note(&format!(
                        "already evaluated: run {} ({})",
                        report.run, report.name
                    )));
                    report
                }
                None => self.evaluate(
                    &eval,
                    &mut |p| emit(DemoEvent::Eval(p)),
                    &mut |m| emit(DemoEvent::Note(m)),
                    cancel,
                )?,
            };
            emit(DemoEvent::Evaluated(&report));
            eval_runs.push(report.run);
        }
        let ids: Vec<RunRef> = eval_runs.iter().copied().map(RunRef::Id).collect();
        emit(DemoEvent::Compared(&self.compare(&ids)?));

        let out = request
            .report
            .clone()
            .unwrap_or_else(|| beside_store("demo-report.pdf"));
        step(6, format!("writing the PDF report to {}", out.display()));
        let mut runs = ids;
        runs.push(RunRef::Id(train_run));
        self.report(
            &ReportRequest {
                runs,
                baseline: None,
                sections: Vec::new(),
                out: Some(out.clone()),
                created: None,
            },
            &mut |m| emit(DemoEvent::Note(m)),
        )?;
        Ok(DemoOutcome {
            dataset,
            base_model: model.name,
            tuned_model,
            train_run,
            eval_runs,
            report: out,
        })
    }

    /// The tuned model and its run: an earlier demo's run of the same spec on
    /// the same model if it finished, resumed if it did not, else a new one.
    fn demo_tuning(
        &self,
        model: &ModelRecord,
        spec: RunSpec,
        emit: &dyn Fn(DemoEvent<'_>),
        cancel: &AtomicBool,
    ) -> Result<(String, i64)> {
        let earlier = self.runs()?.into_iter().find(|r| {
            r.kind == RunKind::Train
                && r.model.as_deref() == Some(&model.name)
                && crate::training::StoredRun::of(r).is_ok_and(|s| s.spec == spec)
        });
        let mut progress = |p: &TrainProgress| emit(DemoEvent::Train(p));
        let outcome = match earlier {
            Some(run) if run.status == RunStatus::Finished => {
                emit(DemoEvent::Note(&format!(
                    "already tuned: run {} ({})",
                    run.id, run.name
                )));
                let tuned = run
                    .result_model
                    .context("the finished tuning run registered no model")?;
                return Ok((tuned, run.id));
            }
            Some(run) => self.resume(&RunRef::Id(run.id), &mut progress, cancel)?,
            None => {
                let request = TrainRequest {
                    spec,
                    model: ModelSource::registered(model.name.clone()),
                    name: None,
                    init_tokens_from: None,
                };
                self.train(
                    &request,
                    &mut progress,
                    &mut |m| emit(DemoEvent::Note(m)),
                    cancel,
                )?
            }
        };
        emit(DemoEvent::Trained(&outcome));
        if outcome.cancelled {
            return Err(Cancelled("the demo").into());
        }
        let tuned = outcome
            .model
            .context("the tuning run registered no model")?
            .name;
        Ok((tuned, outcome.run.id))
    }
}
