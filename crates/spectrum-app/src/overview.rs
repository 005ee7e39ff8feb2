//! Where the store stands along the main job (the tour's checklist) and the
//! runs a front end can offer to resume, in one query for every front end.

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
    /// Training and evaluation runs that can be resumed: not finished, and
    /// no process runs them (`RunRecord::resumable`), newest first.
    pub interrupted: Vec<RunRecord>,
}

impl Studio {
    /// The tour's state and the interrupted runs. A run a job is working on,
    /// in this process or another, holds its lease and is not interrupted.
    pub fn overview(&self) -> Result<Overview> {
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
        let interrupted = runs.into_iter().filter(|r| r.resumable).collect();
        Ok(Overview { tour, interrupted })
    }
}

#[cfg(test)]
mod tests {
    use spectrum_store::{DeviceSpec, NewRun, Store};

    use super::*;

    /// The defect this replaced: runs were called interrupted unless a job
    /// *label* of this process matched their *name*, so every unnamed run was
    /// offered for resuming while it ran. Now a run held by any process, or
    /// any job of this one, is never listed.
    #[test]
    fn a_running_run_is_never_interrupted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.sqlite3");
        let studio = Studio::new(Some(path.clone())).expect("studio");
        let mut store = Store::open(&path).expect("store");
        let (run, lease) = store
            .create_run(&NewRun {
                kind: RunKind::Eval,
                name: "eval-tiny-spectrum".into(),
                spec: serde_json::json!({}),
                spec_hash: "h".into(),
                model_id: None,
                model_hash: None,
                tasks: Vec::new(),
                seed: 0,
                device: DeviceSpec::Cpu,
                app_version: "0".into(),
                out_dir: String::new(),
                total_steps: 1,
            })
            .expect("run");
        assert!(studio.overview().expect("overview").interrupted.is_empty());
        drop(lease);
        let listed = studio.overview().expect("overview").interrupted;
        assert_eq!(
            listed.iter().map(|r| r.id).collect::<Vec<_>>(),
            [run.id],
            "left running by a job that is gone: interrupted"
        );
    }
}
