//! What crosses to the desktop app and is not already a use case's value:
//! requests from the UI, job events and results, errors. TypeScript for these
//! and every value type they reach is generated (`bindings.rs`) into
//! `ui/src/lib/bindings.ts`; the shell (`src-tauri`) only moves them.

use crate::{ErrorCode, EvalSettings, Fix, Profile, ReportSection, RunSpec};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// What the commands return, named here so that this module is the whole
/// boundary: each is defined beside the use case (or the library) that
/// computes it, where the CLI prints the same value, and derives its
/// TypeScript there; `bindings.rs` generates every type from this list.
pub use crate::{
    AddModelRequest, Comparison, DatasetSummary, DemoOutcome, EvalProgress, EvalReport,
    EvalRequest, ImportOutcome, ImportPreview, ImportRequest, MemoryFit, ModelRecord, ModelSource,
    PromptView, ReportRequest, RunDetail, RunRecord, RunRef, RunSettings, TaskDetail, TaskItem,
    TaskSummary, Tour, TrainOutcome, TrainProgress, TrainRequest,
};

/// The error every command rejects with: [`crate::AppError`] (code,
/// message, the fix as data); the UI phrases the fix and offers its button.
pub type UiError = crate::AppError;

/// A path the web view was not given (by a dialog or a drop).
pub fn not_allowed(path: &std::path::Path) -> UiError {
    UiError::new(
        ErrorCode::NotAllowed,
        format!(
            "{} was not chosen in a dialog or dropped on the window",
            path.display()
        ),
    )
    .with_fix(Fix::Say {
        text: "drop it on the window or use the Browse button".into(),
    })
}

/// A job's life, as sent on its channel.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// Free-text progress ("downloading...", "loading the model").
    Note {
        text: String,
    },
    Import {
        progress: ImportProgress,
    },
    Train {
        progress: TrainProgress,
    },
    Eval {
        progress: EvalProgress,
    },
    /// Building the paper's suite: downloads, tasks built or missing.
    Suite {
        progress: crate::PaperEvent,
    },
    /// The job's result, tagged with what it is.
    Done {
        result: JobResult,
    },
    Failed {
        error: UiError,
    },
    Cancelled,
}

impl From<crate::Resumed> for JobResult {
    fn from(resumed: crate::Resumed) -> JobResult {
        match resumed {
            crate::Resumed::Train(outcome) => JobResult::Train(outcome),
            crate::Resumed::Eval(report) => JobResult::Eval(EvalDone::from(report.as_ref())),
        }
    }
}

/// What a finished job produced: one variant per kind of job.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum JobResult {
    Preview(Box<ImportPreview>),
    Import(Box<ImportOutcome>),
    Model(Box<ModelRecord>),
    Train(Box<crate::TrainOutcome>),
    /// The evaluation run written (its report is read with `eval_report`).
    Eval(EvalDone),
    /// The PDF written.
    Report(String),
    Demo(Box<DemoOutcome>),
    /// The paper's suite fetched and imported.
    Suite(Box<crate::PaperFetched>),
}

/// An evaluation run that finished.
#[derive(Debug, Clone, Serialize, TS)]
pub struct EvalDone {
    pub run: i64,
    pub name: String,
}

impl From<&crate::EvalReport> for EvalDone {
    fn from(report: &crate::EvalReport) -> EvalDone {
        EvalDone {
            run: report.run,
            name: report.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, TS)]
pub struct ImportProgress {
    pub bytes_done: f64,
    pub bytes_total: f64,
    pub rows: f64,
}

/// The `files-dropped` event: paths dropped on the window (or built by the tour).
#[derive(Debug, Clone, Serialize, TS)]
pub struct Dropped {
    pub paths: Vec<String>,
    /// The models, when every path is a GGUF file or a model folder (has
    /// config.json): the Models view adds them; otherwise (empty) the
    /// Library's import preview takes the paths.
    pub models: Vec<ModelSource>,
}

impl Dropped {
    pub fn of(paths: &[std::path::PathBuf]) -> Dropped {
        let models: Option<Vec<ModelSource>> =
            paths.iter().map(|p| ModelSource::local(p)).collect();
        Dropped {
            paths: paths.iter().map(|p| p.display().to_string()).collect(),
            models: models.unwrap_or_default(),
        }
    }
}

/// What a job does (the UI's jobs bar and the views find their jobs by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Preview,
    Import,
    Model,
    Train,
    Eval,
    Report,
    Demo,
    Suite,
}

impl From<crate::RunKind> for JobKind {
    fn from(kind: crate::RunKind) -> JobKind {
        match kind {
            crate::RunKind::Train => JobKind::Train,
            crate::RunKind::Eval => JobKind::Eval,
        }
    }
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct JobInfo {
    pub id: u64,
    pub kind: JobKind,
    pub label: String,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct AppInfo {
    pub version: String,
    pub store: String,
    /// Nothing imported yet: the UI offers the tour.
    pub first_run: bool,
    /// How far the store is along the main job, for the tour's checklist.
    pub tour: Tour,
    /// Training and evaluation runs left `running` by a process that is gone.
    pub interrupted: Vec<RunRecord>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct Preset {
    pub name: String,
    pub spec: RunSpec,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct TrainDefaults {
    pub presets: Vec<Preset>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct EvalDefaults {
    pub profiles: Vec<(Profile, EvalSettings)>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct ReportOptions {
    pub sections: Vec<ReportSection>,
}

/// What a pick dialog is for.
#[derive(Debug, Clone, Copy, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum PickKind {
    /// Dataset files (JSONL, CSV, Parquet...) or a folder of them.
    DataFiles,
    DataFolder,
    /// A Hugging Face model folder.
    ModelFolder,
    GgufFile,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_cross_with_their_code_and_fix() {
        let e = UiError::from(anyhow::Error::new(crate::AppError::not_found(
            "no model \"q\"",
            crate::Listing::Models,
        )));
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(
            e.fix,
            Some(Fix::List {
                what: crate::Listing::Models
            })
        );
        let e = UiError::from(anyhow::Error::new(crate::Cancelled("training")));
        assert_eq!(e.code, ErrorCode::Cancelled);
        let json = serde_json::to_value(not_allowed(std::path::Path::new("/x"))).expect("json");
        assert_eq!(json["code"], "not_allowed");
        assert_eq!(json["fix"]["kind"], "say");
    }
}
