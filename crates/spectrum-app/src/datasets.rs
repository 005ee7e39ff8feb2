//! The import use case: files in, one dataset in the store, all or nothing.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use spectrum_store::{DatasetSummary, NewDataset};
use spectrum_suite::import::{self, ImportOptions, ImportReport, Progress};

use crate::Studio;

impl ImportRequest {
    /// Blank fields of a form read as not given: no name, the default category.
    pub(crate) fn cleaned(&self) -> ImportRequest {
        let mut out = self.clone();
        out.name = out
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        if out.options.category.trim().is_empty() {
            out.options.category = ImportOptions::default().category;
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize, ts_rs::TS)]
pub struct ImportRequest {
    /// Files or folders of files; one import makes one dataset.
    pub paths: Vec<PathBuf>,
    /// Dataset name (default, or blank: the first path's file or folder name).
    pub name: Option<String>,
    pub options: ImportOptions,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ImportOutcome {
    Imported {
        dataset: DatasetSummary,
        report: ImportReport,
    },
    /// The same content was imported before with the same options: nothing done.
    AlreadyImported { dataset: DatasetSummary },
}

impl Studio {
    /// Imports files as one dataset in one transaction. With any invalid row and
    /// no `skip_invalid`, or on error or cancellation, the store is unchanged.
    pub fn import(
        &self,
        request: &ImportRequest,
        progress: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<ImportOutcome> {
        let request = &request.cleaned();
        let files = import::files_to_import(&request.paths)?;
        let content_hash = import::content_hash(&files)?;
        let import_key = import_key(&content_hash, &request.options);
        let mut store = self.store()?;
        if let Some(dataset) = store.dataset_by_import_key(&import_key)? {
            return Ok(ImportOutcome::AlreadyImported { dataset });
        }
        let new = NewDataset {
            name: request
                .name
                .clone()
                .unwrap_or_else(|| default_name(&request.paths)),
            source: request
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            content_hash,
            import_key,
            imported_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        };
        let mut tx = store.begin_import(&new)?;
        let report = import::import(&files, &request.options, &mut tx, progress, cancel)?;
        let id = tx.commit(&report.files)?;
        let dataset = store
            .find_dataset(&id.to_string())?
            .ok_or_else(|| anyhow::anyhow!("dataset {id} vanished after its import"))?;
        Ok(ImportOutcome::Imported { dataset, report })
    }
}

/// Options that change what an import produces are part of its identity.
pub(crate) fn import_key(content_hash: &str, o: &ImportOptions) -> String {
    let shape = o.shape.map_or("auto", |s| s.as_str());
    let task = o.task.as_deref().unwrap_or("");
    format!(
        "{content_hash}|as={shape}|task={task}|split={}|category={}",
        o.split.as_str(),
        o.category
    )
}

fn default_name(paths: &[PathBuf]) -> String {
    let first = paths.first().map(|p| {
        let p = p.canonicalize().unwrap_or_else(|_| p.clone());
        let name = if p.is_dir() {
            p.file_name()
        } else {
            p.file_stem()
        };
        name.map_or_else(
            || "dataset".to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    });
    match (first, paths.len()) {
        (Some(name), 1) => name,
        (Some(name), n) => format!("{name}+{}", n - 1),
        (None, _) => "dataset".into(),
    }
}
