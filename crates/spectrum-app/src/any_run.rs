//! What works on a run of either kind: its settings as started, and
//! resuming it. Above the training and evaluation modules, which know
//! nothing of each other.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use serde::Serialize;
use spectrum_store::{EvalMetrics, RunKind, RunRecord, RunRef, StepMetrics};
use spectrum_train::RunSpec;

use crate::runs::find_run;
use crate::{EvalProgress, EvalReport, Studio, TrainOutcome, TrainProgress};

/// A run's settings as it was started, read from the store: what a front end
/// shows of a run beside its record.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunSettings {
    Train {
        spec: RunSpec,
        /// The dtype it trains in (`spec.dtype`, or the device's default).
        dtype: spectrum_train::Dtype,
        /// The base model's folder.
        model_path: PathBuf,
        /// Store ids of the tasks it trains on and holds out.
        train_tasks: Vec<i64>,
        held_out_tasks: Vec<i64>,
    },
    Eval {
        model: String,
        model_path: PathBuf,
        template: spectrum_lm::PromptFormat,
        profile: spectrum_eval::Profile,
        settings: spectrum_eval::Settings,
        families: Vec<spectrum_eval::Family>,
        tasks: Vec<String>,
        device: spectrum_lm::DeviceSpec,
    },
}

impl RunSettings {
    pub fn of(record: &RunRecord) -> Result<RunSettings> {
        Ok(match record.kind {
            RunKind::Train => {
                let s = crate::training::StoredRun::of(record)?;
                RunSettings::Train {
                    dtype: s.spec.resolved_dtype(),
                    spec: s.spec,
                    model_path: s.model_path,
                    train_tasks: s.train_tasks,
                    held_out_tasks: s.held_out_tasks,
                }
            }
            RunKind::Eval => {
                let s = crate::evaluation::StoredEval::of(record)?;
                RunSettings::Eval {
                    model: s.model,
                    model_path: s.model_path,
                    template: s.template,
                    profile: s.profile,
                    settings: s.settings,
                    families: s.families,
                    tasks: s.tasks,
                    device: s.device,
                }
            }
        })
    }
}

/// What a resumed run reports as it goes, whichever its kind.
#[derive(Debug)]
pub enum RunEvent<'a> {
    Train(&'a TrainProgress),
    Eval(&'a EvalProgress),
    Note(&'a str),
}

/// What a resumed run produced.
#[derive(Debug)]
pub enum Resumed {
    Train(Box<TrainOutcome>),
    Eval(Box<EvalReport>),
}

/// A run with its settings, metrics and checkpoints.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct RunDetail {
    pub run: RunRecord,
    pub settings: RunSettings,
    pub steps: Vec<StepMetrics>,
    pub evals: Vec<EvalMetrics>,
    pub checkpoints: Vec<PathBuf>,
}

impl Studio {
    /// A run of either kind with its settings, metrics and checkpoints.
    pub fn run_detail(&self, run: &RunRef) -> Result<RunDetail> {
        let store = self.store()?;
        let record = find_run(&store, run)?;
        let checkpoints =
            spectrum_train::checkpoint::list(&self.run_dir(record.id).join("checkpoints"))?
                .into_iter()
                .map(|c| c.dir)
                .collect();
        Ok(RunDetail {
            settings: RunSettings::of(&record)?,
            steps: store.run_steps(record.id)?,
            evals: store.run_evals(record.id)?,
            run: record,
            checkpoints,
        })
    }

    /// Resumes run `run`, a training or an evaluation run alike.
    pub fn resume_run(
        &self,
        run: &RunRef,
        events: &mut dyn FnMut(RunEvent<'_>),
        cancel: &AtomicBool,
    ) -> Result<Resumed> {
        let record = find_run(&self.store()?, run)?;
        let run = RunRef::Id(record.id);
        Ok(match record.kind {
            RunKind::Train => Resumed::Train(Box::new(self.resume(
                &run,
                &mut |p| events(RunEvent::Train(p)),
                cancel,
            )?)),
            RunKind::Eval => {
                let events = std::cell::RefCell::new(events);
                Resumed::Eval(Box::new(self.resume_eval(
                    &run,
                    &mut |p| (events.borrow_mut())(RunEvent::Eval(p)),
                    &mut |n| (events.borrow_mut())(RunEvent::Note(n)),
                    cancel,
                )?))
            }
        })
    }
}
