//! Where the store stands along the main job (the tour's checklist) and the
//! runs a front end can offer to resume, in one query for every front end.

use std::collections::BTreeSet;

use anyhow::Result;
use serde::Serialize;
use spectrum_store::{RunKind, RunRecord, RunStatus};

use crate::Studio;

/// How far the store is along the main job: import, add a model, tune, evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Tour {
    pub datasets: usize,
    pub models: usize,
    /// Finished training runs.
    pub trained: usize,
    /// Finished evaluation runs.
    pub evaluated: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct Overview {
    pub tour: Tour,
    /// Training and evaluation runs that stopped before their end (cancelled,
    /// or left `running` by a process that is gone), newest first.
    pub interrupted: Vec<RunRecord>,
}

impl Studio {
    /// The tour's state and the interrupted runs. `active` names the runs a
    /// job of the calling process is working on: those are not interrupted.
    pub fn overview(&self, active: &BTreeSet<String>) -> Result<Overview> {
        let store = self.store()?;
        let runs = store.runs(None)?;
        let finished = |kind: RunKind| {
            runs.iter()
                .filter(|r| r.kind == kind && r.status == RunStatus::Finished)
                .count()
        };
        let tour = Tour {
            datasets: store.datasets()?.len(),
            models: store.models()?.len(),
            trained: finished(RunKind::Train),
            evaluated: finished(RunKind::Eval),
        };
        let interrupted = runs
            .into_iter()
            .filter(|r| matches!(r.status, RunStatus::Running | RunStatus::Cancelled))
            .filter(|r| !active.contains(&r.name))
            .collect();
        Ok(Overview { tour, interrupted })
    }
}
